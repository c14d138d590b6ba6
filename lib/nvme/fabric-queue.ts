/**
 * The fabrics side of one queue, transport neutral (NVMe over Fabrics 1.1
 * §3.3-3.5): a queue pair over a {@link FabricRing}, Fabrics Connect, Property
 * Get/Set, and waiting for CSTS.RDY through properties. The controller uses
 * these for bring-up and reconnect; lib/tcp's TcpQueue for one bare queue.
 * @module
 */
import { connectCmd, connectData, propertyGetCmd, propertySetCmd } from "./fabrics.ts";
import { ControllerFatalError } from "./errors.ts";
import { QueuePair, type SubmitOptions } from "./queue.ts";
import { type Cap, CSTS, Reg } from "./spec.ts";
import type { DmaMemory, FabricHost, FabricRing } from "./transport.ts";

/** Bound on one Connect, ms. */
export const CONNECT_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A queue pair over a fabric connection; the pump sleeps on arrivals (no interrupt, no polling spin). */
export function fabricPair(qid: number, ring: FabricRing, timeoutMs: number): QueuePair {
  const qp = new QueuePair({ qid, defaultTimeoutMs: timeoutMs, ring });
  // Completions only arrive through the event loop (socket data events): a pump spinning on
  // microtasks would hold them off, so it sleeps on arrivals whenever a poll finds nothing.
  qp.pollSpinUs = 0;
  qp.setWaitMode("interrupt", ring.waiter);
  return qp;
}

/** What a Connect needs of its transport: the host's identity and memory for the Connect data. */
export type ConnectSource = Pick<FabricHost, "subnqn" | "hostnqn" | "hostid" | "katoMs"> & Pick<DmaMemory, "allocDma" | "freeDma">;

/**
 * The fabrics commands of one queue pair, each submitted with the same
 * options: `{ held: true }` for the commands of a reconnect, which go through
 * while the queue holds every other submission.
 */
export class FabricCommands {
  /** The queue pair the commands go to. */
  readonly qp: QueuePair;
  /** Options every command carries. */
  readonly opts: SubmitOptions;

  /** Commands on `qp`, submitted with `opts`. */
  constructor(qp: QueuePair, opts: SubmitOptions = {}) {
    this.qp = qp;
    this.opts = opts;
  }

  /** Fabrics Connect of the queue (cntlid dynamic on the admin queue); resolves to the controller id. */
  async connect(t: ConnectSource, cntlid: number, cattr = 0): Promise<number> {
    const q = this.qp;
    const data = t.allocDma(1024);
    try {
      data.bytes.set(connectData({ hostid: t.hostid, cntlid, subnqn: t.subnqn, hostnqn: t.hostnqn }));
      const cmd = connectCmd({ qid: q.qid, entries: q.depth, katoMs: q.qid === 0 ? t.katoMs : 0, cattr });
      const dw0 = await q.submit(cmd, data.iova, 1024, CONNECT_TIMEOUT_MS, data, this.opts);
      return dw0 & 0xffff;
    } finally {
      if (data.busy === 0) t.freeDma(data);
      else data.onIdle = (b) => t.freeDma(b);
    }
  }

  /** Property Get (admin queue): the register at `offset`, 4 or 8 bytes (DW1 carries the high half). */
  async propertyGet(offset: number, eightBytes: boolean, timeoutMs?: number): Promise<bigint> {
    const c = await this.qp.submitForCompletion(propertyGetCmd(offset, eightBytes), 0, 0, timeoutMs, null, this.opts);
    const lo = BigInt(c.dw0 >>> 0);
    return eightBytes ? lo | (BigInt(c.dw1 >>> 0) << 32n) : lo;
  }

  /** Property Set (admin queue) of the register at `offset` (nvmet takes only CC, 4 bytes). */
  async propertySet(offset: number, value: bigint | number, eightBytes = false, timeoutMs?: number): Promise<void> {
    await this.qp.submit(propertySetCmd(offset, typeof value === "number" ? BigInt(value >>> 0) : value, eightBytes), 0, 0, timeoutMs, null, this.opts);
  }

  /** Poll CSTS by Property Get until RDY (CFS fails at once), within CAP.TO. */
  async waitReady(cap: Cap): Promise<void> {
    const deadline = performance.now() + Math.max(cap.timeoutMs, 500);
    for (;;) {
      const csts = Number(await this.propertyGet(Reg.CSTS, false));
      if (csts & CSTS.CFS) throw new ControllerFatalError("controller fatal status (CSTS.CFS) while enabling the fabrics controller");
      if (csts & CSTS.RDY) return;
      if (performance.now() > deadline) throw new ControllerFatalError(`fabrics controller did not become ready within CAP.TO (${cap.timeoutMs} ms)`);
      await sleep(10);
    }
  }
}
