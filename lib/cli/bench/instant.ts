/**
 * The instant device: the real PCIe ring plus a device that completes every
 * command the moment its doorbell is rung, in the same thread. It offers
 * shadow doorbells and keeps their event indexes as QEMU's NVMe does, and the
 * ring batches its CQ head as on a polled PCIe queue, so the driver takes the
 * path it takes in the QEMU guest the benchmarks run in. What a queue
 * pair over it costs is the driver's own work, nothing else; one per Worker
 * shows whether anything in the driver is shared between queues.
 * (scripts/bench-micro.ts holds the same device for its single-thread figures.)
 * @module
 */
import { PcieRing } from "../../nvme/pcie.ts";
import { QueuePair } from "../../nvme/queue.ts";
import type { CompletionSink, QueueRing } from "../../nvme/ring.ts";
import { dmaBuffer } from "../../nvme/transport.ts";

/** Ring depth of the instant device. */
export const INSTANT_DEPTH = 256;

/** A {@link QueueRing} whose device completes each command, successfully, at the doorbell. */
export class InstantRing implements QueueRing {
  /** Entries in the submission ring. */
  readonly depth: number = INSTANT_DEPTH;
  /** Largest transfer one command can carry. */
  readonly maxTransfer: number;
  /** The CQ is memory the pump may spin on, as a PCIe ring's. */
  readonly pollable = true;
  readonly #r: PcieRing;
  readonly #sq: Uint32Array;
  readonly #cq: Uint32Array;
  readonly #shadow = new Uint32Array(16);
  readonly #eventIdx = new Uint32Array(16);
  #head = 0;
  #tail = 0;
  #phase = 1;

  /** Rings in ordinary memory (nothing is mapped: no data moves). */
  constructor() {
    const d = INSTANT_DEPTH;
    const sq = dmaBuffer(new Uint8Array(d * 64), 0x10_0000, d * 64);
    const cq = dmaBuffer(new Uint8Array(d * 16), 0x20_0000, d * 16);
    this.#r = new PcieRing(
      {
        qid: 1,
        depth: d,
        sq,
        cq,
        prp: null,
        prpPagesPerSlot: 0,
        pageSize: 4096,
        doorbells: new Uint32Array(16), // MMIO writes land here; the device reads the shadows
        doorbellStride: 4,
        dbbuf: { shadow: this.#shadow, eventIdx: this.#eventIdx },
      },
      d - 1,
    );
    this.maxTransfer = this.#r.maxTransfer;
    this.#sq = new Uint32Array(sq.bytes.buffer);
    this.#cq = new Uint32Array(cq.bytes.buffer);
  }
  /** The SQE to fill next. */
  entry(): Uint32Array {
    return this.#r.entry();
  }
  /** PRPs of the entry. */
  setData(e: Uint32Array, slot: number, iova: number, len: number): void {
    this.#r.setData(e, slot, iova, len);
  }
  /** No data pointer. */
  clearData(e: Uint32Array): void {
    this.#r.clearData(e);
  }
  /** Commit the entry. */
  push(): void {
    this.#r.push();
  }
  /** SQ doorbell writes so far. */
  get flushes(): number {
    return this.#r.flushes;
  }
  /**
   * Ring the doorbell; the device completes everything up to the new tail before this returns.
   * It reads the SQ tail from the shadow doorbell and then sets the SQ's event index to it, and
   * reads the CQ head from the shadow before posting and sets that event index to it (QEMU's
   * nvme_process_sq and nvme_post_cqes), so the next doorbell after it caught up is an MMIO write.
   */
  flush(): boolean {
    const rang = this.#r.flush();
    const tailDb = this.#shadow[2];
    this.#eventIdx[2] = tailDb;
    this.#eventIdx[3] = this.#shadow[3];
    while (this.#head !== tailDb) {
      const cid = this.#sq[this.#head * 16] >>> 16;
      this.#head = (this.#head + 1) % INSTANT_DEPTH;
      const b = this.#tail * 4;
      this.#cq[b] = 0;
      this.#cq[b + 2] = (this.#head | (1 << 16)) >>> 0;
      Atomics.store(this.#cq, b + 3, (cid | (this.#phase << 16)) >>> 0);
      if (++this.#tail === INSTANT_DEPTH) {
        this.#tail = 0;
        this.#phase ^= 1;
      }
    }
    return rang;
  }
  /** SQ tail doorbells that were MMIO writes (the event index asked for them). */
  get mmioDoorbells(): number {
    return this.#r.mmioDoorbells;
  }
  /** CQ head doorbells that were MMIO writes. */
  get cqMmioDoorbells(): number {
    return this.#r.cqMmioDoorbells;
  }
  /** CQ head doorbells wait while the queue polls, as on a PCIe ring. */
  set batchCqDoorbell(on: boolean) {
    this.#r.batchCqDoorbell = on;
  }
  get batchCqDoorbell(): boolean {
    return this.#r.batchCqDoorbell;
  }
  /** The CQ head to the device if it moved. */
  flushCq(): void {
    this.#r.flushCq();
  }
  /** Hand new completions to `sink`. */
  reap(sink: CompletionSink): number {
    return this.#r.reap(sink);
  }
  /** Zero the rings. */
  reset(): void {
    this.#r.reset();
  }
  /** Stop. */
  close(): void {
    this.#r.close();
  }
}

/** A queue pair (qid 1) over a fresh {@link InstantRing}. */
export function instantQueuePair(): QueuePair {
  return new QueuePair({
    qid: 1,
    defaultTimeoutMs: 30_000,
    ring: new InstantRing(),
  });
}

/** IOs done and the time they took. */
export interface InstantRun {
  /** IOs completed in the measured window. */
  ios: number;
  /** Measured window, ms. */
  ms: number;
}

/**
 * Keep `qd` reads in flight on `qp` for `warmMs`, then count completions for
 * `ms`. `cpu` is read at both ends of the window. `api`: the Promise API (a
 * Promise and an async frame per IO, so the runtime's garbage collector runs
 * alongside) or the callback path (nothing allocated per IO).
 */
export async function instantRun(
  qp: QueuePair,
  qd: number,
  warmMs: number,
  ms: number,
  cpu: () => number,
  api: "promise" | "callback" = "promise",
): Promise<InstantRun & { cpuMs: number }> {
  let ios = 0, measuring = false, stop = false, lba = 0;
  let all: Promise<unknown>;
  if (api === "callback") {
    let inflight = 0;
    all = new Promise<void>((resolve, reject) => {
      const done = (err: Error | null) => {
        inflight--;
        if (err) return reject(err);
        if (measuring) ios++;
        if (!stop) submit();
        else if (inflight === 0) resolve();
      };
      const submit = () => {
        if (qp.rwCallback(2, 1, (lba++) & 1023, 7, 0x30_0000, 4096, 0, 30_000, null, done)) inflight++;
      };
      for (let i = 0; i < qd; i++) submit();
    });
  } else {
    const one = async () => {
      while (!stop) {
        await qp.rw(2, 1, (lba++) & 1023, 7, 0x30_0000, 4096);
        if (measuring) ios++;
      }
    };
    all = Promise.all(Array.from({ length: qd }, one));
  }
  await new Promise((r) => setTimeout(r, warmMs));
  measuring = true;
  const c0 = cpu(), t0 = performance.now();
  await new Promise((r) => setTimeout(r, ms));
  const t = performance.now() - t0, c = cpu() - c0;
  measuring = false;
  stop = true;
  await all;
  return { ios, ms: t, cpuMs: c };
}
