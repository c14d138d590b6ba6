/**
 * The PCIe half of a queue pair (NVMe over PCIe, as VFIO and the software
 * controller reach it): submission and completion rings in DMA memory, phase
 * tags, batched doorbell writes and PRP lists per command slot.
 * @module
 */
import { InvalidArgumentError } from "./errors.ts";
import { writePrps } from "./prp.ts";
import { CQE_SIZE, SQE_SIZE } from "./spec.ts";
import type { CompletionSink, QueueRing } from "./ring.ts";
import type { DmaBuffer } from "./transport.ts";

export type { CompletionSink, QueueRing };

/** Memory and doorbells one PCIe queue pair needs. */
export interface PcieRingConfig {
  /** Queue id (0 = admin). */
  qid: number;
  /** Entries in each ring. */
  depth: number;
  /** Submission ring (depth * 64 bytes). */
  sq: DmaBuffer;
  /** Completion ring (depth * 16 bytes). */
  cq: DmaBuffer;
  /** PRP list pages for each command slot, or null when no transfer needs a list. */
  prp: DmaBuffer | null;
  /** PRP list pages reserved per command slot. */
  prpPagesPerSlot: number;
  /** Memory page size the controller was enabled with (CC.MPS). */
  pageSize: number;
  /** Doorbell array (from offset 0x1000). */
  doorbells: Uint32Array;
  /** Doorbell stride in bytes (CAP.DSTRD). */
  doorbellStride: number;
}

/** SQ/CQ rings and doorbells of one NVMe-over-PCIe queue pair. */
export class PcieRing implements QueueRing {
  /** Entries in each ring. */
  readonly depth: number;
  /** Largest transfer one command can carry with this pair's PRP list pages. */
  readonly maxTransfer: number;
  readonly #qid: number;
  readonly #sq32: Uint32Array;
  readonly #cq32: Uint32Array;
  readonly #entries: Uint32Array[];
  readonly #prpViews: (Uint32Array | null)[];
  readonly #prpIova: number[];
  readonly #db: Uint32Array;
  readonly #sqDb: number;
  readonly #cqDb: number;
  readonly #pageSize: number;
  #sqTail = 0;
  #sqTailRung = 0;
  #cqHead = 0;
  #phase = 1;
  #closed = false;
  #flushes = 0;

  /**
   * Wrap the rings described by `cfg` (the controller must know them before
   * use), with PRP list pages for `slots` command slots (default depth - 1).
   */
  constructor(cfg: PcieRingConfig, slots: number = cfg.depth - 1) {
    this.depth = cfg.depth;
    this.#qid = cfg.qid;
    this.#pageSize = cfg.pageSize;
    const sqb = cfg.sq.bytes, cqb = cfg.cq.bytes;
    if (sqb.byteLength < cfg.depth * SQE_SIZE || cqb.byteLength < cfg.depth * CQE_SIZE) {
      throw new InvalidArgumentError("queue memory smaller than depth");
    }
    this.#sq32 = new Uint32Array(sqb.buffer, sqb.byteOffset, cfg.depth * 16);
    this.#cq32 = new Uint32Array(cqb.buffer, cqb.byteOffset, cfg.depth * 4);
    this.#entries = [];
    for (let i = 0; i < cfg.depth; i++) this.#entries.push(this.#sq32.subarray(i * 16, i * 16 + 16));
    this.#prpViews = [];
    this.#prpIova = [];
    const slotBytes = cfg.prpPagesPerSlot * cfg.pageSize;
    for (let s = 0; s < slots; s++) {
      if (cfg.prp && slotBytes > 0) {
        const b = cfg.prp.bytes;
        this.#prpViews.push(new Uint32Array(b.buffer, b.byteOffset + s * slotBytes, slotBytes / 4));
        this.#prpIova.push(cfg.prp.iova + s * slotBytes);
      } else {
        this.#prpViews.push(null);
        this.#prpIova.push(0);
      }
    }
    this.#db = cfg.doorbells;
    this.#sqDb = (2 * cfg.qid * cfg.doorbellStride) / 4;
    this.#cqDb = ((2 * cfg.qid + 1) * cfg.doorbellStride) / 4;
    const per = cfg.pageSize / 8;
    const p = cfg.prpPagesPerSlot;
    // Holds for any dword-aligned start: a partial first page only adds room.
    this.maxTransfer = (p === 0 ? 1 : p * (per - 1) + 1) * cfg.pageSize;
  }

  entry(): Uint32Array {
    return this.#entries[this.#sqTail];
  }

  setData(e: Uint32Array, slot: number, iova: number, len: number): void {
    writePrps(e, iova, len, this.#pageSize, this.#prpViews[slot], this.#prpIova[slot]);
  }

  clearData(e: Uint32Array): void {
    e[6] = e[7] = e[8] = e[9] = 0;
  }

  push(): void {
    if (++this.#sqTail === this.depth) this.#sqTail = 0;
  }

  flush(): boolean {
    if (this.#sqTail === this.#sqTailRung || this.#closed) return false;
    // A sequentially consistent store orders the SQE writes before the doorbell (a fence on weak CPUs).
    const last = ((this.#sqTail + this.depth - 1) % this.depth) * 16;
    Atomics.store(this.#sq32, last, this.#sq32[last]);
    this.#db[this.#sqDb] = this.#sqTail;
    this.#sqTailRung = this.#sqTail;
    this.#flushes++;
    return true;
  }

  get flushes(): number {
    return this.#flushes;
  }

  reap(sink: CompletionSink): number {
    const cq = this.#cq32;
    let head = this.#cqHead;
    let phase = this.#phase;
    let n = 0;
    for (;;) {
      const base = head << 2;
      // Atomics.load: a plain load here can be hoisted out of the loop by Bun's JIT.
      const dw3 = Atomics.load(cq, base + 3);
      if (((dw3 >>> 16) & 1) !== phase) break;
      const dw0 = cq[base];
      const dw1 = cq[base + 1];
      const dw2 = cq[base + 2];
      if (++head === this.depth) {
        head = 0;
        phase ^= 1;
      }
      n++;
      sink.complete(dw3 & 0xffff, dw3 >>> 17, dw0, dw1, dw2 >>> 16);
    }
    if (n > 0) {
      this.#cqHead = head;
      this.#phase = phase;
      if (!this.#closed) this.#db[this.#cqDb] = head;
    }
    return n;
  }

  reset(): void {
    // Stale phase tags from the last lap would read as fresh completions.
    this.#cq32.fill(0);
    this.#sq32.fill(0);
    this.#sqTail = this.#sqTailRung = this.#cqHead = 0;
    this.#phase = 1;
  }

  close(): void {
    this.#closed = true;
  }

  /** Queue id (for diagnostics). */
  get qid(): number {
    return this.#qid;
  }
}
