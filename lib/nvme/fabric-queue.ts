/**
 * The fabrics side of one queue, transport neutral (NVMe over Fabrics 1.1
 * §3.3-3.5): a queue pair over a {@link FabricRing}, Fabrics Connect, Property
 * Get/Set, and waiting for CSTS.RDY through properties. The controller uses
 * these for bring-up and reconnect; lib/tcp's TcpQueue for one bare queue.
 * @module
 */
import { connectCmd, connectData, propertyGetCmd, propertySetCmd } from "./fabrics.ts";
import { ControllerFatalError } from "./errors.ts";
import { QueuePair } from "./queue.ts";
import { type Cap, CSTS, Reg } from "./spec.ts";
import type { DmaMemory, FabricHost, FabricRing } from "./transport.ts";

/** Bound on one Connect, ms. */
export const CONNECT_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A queue pair over a fabric connection; the pump sleeps on arrivals (no interrupt, no polling spin). */
export function fabricPair(qid: number, ring: FabricRing, timeoutMs: number): QueuePair {
  const qp = new QueuePair({
    qid,
    depth: ring.depth,
    defaultTimeoutMs: timeoutMs,
    ring,
    // The PCIe fields are unused with a ring of another transport.
    sq: null as never,
    cq: null as never,
    prp: null,
    prpPagesPerSlot: 0,
    pageSize: 4096,
    doorbells: new Uint32Array(0),
    doorbellStride: 4,
  });
  // Completions only arrive through the event loop (socket data events): a pump spinning on
  // microtasks would hold them off, so it sleeps on arrivals whenever a poll finds nothing.
  qp.pollSpinUs = 0;
  qp.setWaitMode("interrupt", ring.waiter);
  return qp;
}

/** What a Connect needs of its transport: the host's identity and memory for the Connect data. */
export type ConnectSource = Pick<FabricHost, "subnqn" | "hostnqn" | "hostid" | "katoMs"> & Pick<DmaMemory, "allocDma" | "freeDma">;

/** Fabrics Connect of queue `q` (cntlid dynamic on the admin queue); resolves to the controller id. */
export async function fabricConnect(t: ConnectSource, q: QueuePair, cntlid: number, held: boolean, cattr = 0): Promise<number> {
  const data = t.allocDma(1024);
  try {
    data.bytes.set(connectData({ hostid: t.hostid, cntlid, subnqn: t.subnqn, hostnqn: t.hostnqn }));
    const cmd = connectCmd({ qid: q.qid, entries: q.depth, katoMs: q.qid === 0 ? t.katoMs : 0, cattr });
    const dw0 = held
      ? await q.submitHeld(cmd, data.iova, 1024, CONNECT_TIMEOUT_MS, data)
      : await q.submit(cmd, data.iova, 1024, CONNECT_TIMEOUT_MS, data);
    return dw0 & 0xffff;
  } finally {
    if (data.busy === 0) t.freeDma(data);
    else data.onIdle = (b) => t.freeDma(b);
  }
}

/** Property Get on admin queue `q` (callers serialize: DW1 of an 8-byte value is read from the ring). */
export async function propGet(q: QueuePair, offset: number, eightBytes: boolean, held: boolean, timeoutMs?: number): Promise<bigint> {
  const cmd = propertyGetCmd(offset, eightBytes);
  const dw0 = held ? await q.submitHeld(cmd, 0, 0, timeoutMs) : await q.submit(cmd, 0, 0, timeoutMs);
  const lo = BigInt(dw0 >>> 0);
  return eightBytes ? lo | (BigInt((q.queueRing as FabricRing).lastDw1 >>> 0) << 32n) : lo;
}

/** Property Set on admin queue `q` (nvmet takes only CC, 4 bytes). */
export async function propSet(q: QueuePair, offset: number, value: number, held: boolean, timeoutMs?: number): Promise<void> {
  const cmd = propertySetCmd(offset, BigInt(value >>> 0), false);
  if (held) await q.submitHeld(cmd, 0, 0, timeoutMs);
  else await q.submit(cmd, 0, 0, timeoutMs);
}

/** Poll CSTS by Property Get until RDY (CFS fails at once), within CAP.TO. */
export async function waitReadyFabric(q: QueuePair, cap: Cap, held: boolean): Promise<void> {
  const deadline = performance.now() + Math.max(cap.timeoutMs, 500);
  for (;;) {
    const csts = Number(await propGet(q, Reg.CSTS, false, held));
    if (csts & CSTS.CFS) throw new ControllerFatalError("controller fatal status (CSTS.CFS) while enabling the fabrics controller");
    if (csts & CSTS.RDY) return;
    if (performance.now() > deadline) throw new ControllerFatalError(`fabrics controller did not become ready within CAP.TO (${cap.timeoutMs} ms)`);
    await sleep(10);
  }
}
