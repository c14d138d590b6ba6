/**
 * Bring-up of one NVMe/TCP controller in Linux's order on the wire: admin
 * Connect, Property Get CAP, Property Set CC without EN, CC again, CAP again,
 * CC.EN, CSTS.RDY, VS, Identify Controller (cntlid, KAS, ICDOFF, SGLS, IOCCSZ,
 * MAXCMD, MDTS checked), Set Features Number of Queues, then one connection
 * and Connect per IO queue, and keep-alive at KATO/2. Until the generic
 * Controller can sit on an asynchronous transport, this is the fabrics
 * controller: its queues are {@link TcpQueue}s whose `qp` is the usual
 * {@link QueuePair}.
 * @module
 */
import { activeNsListCmd, getLogPageCmd, identifyControllerCmd, identifyNamespaceCmd, setNumQueuesCmd } from "../nvme/command.ts";
import { ControllerFatalError, InvalidArgumentError, SetupError } from "../nvme/errors.ts";
import { CC, CSTS, decodeCap, Reg } from "../nvme/spec.ts";
import type { Digests } from "./pdu.ts";
import { decodeDiscoveryHeader, decodeDiscoveryLog, DISC_RECORD_SIZE, type DiscoveryEntry, LID_DISCOVERY } from "./discovery.ts";
import { DISCOVERY_NQN } from "./fabrics.ts";
import { TcpMemory } from "./memory.ts";
import { TcpQueue, type TcpQueueOptions } from "./queue.ts";
import { ADMIN_IN_CAPSULE } from "./ring.ts";

/** How to reach and set up a fabrics controller over TCP. */
export interface TcpControllerOptions {
  /** Target address. */
  host: string;
  /** Target port (default 4420). */
  port?: number;
  /** Subsystem NQN. */
  subnqn: string;
  /** Host NQN (stable; see fabrics.ts hostIdentity). */
  hostnqn: string;
  /** Host ID, 16 bytes (stable). */
  hostid: Uint8Array;
  /** Header/data digests. */
  digests?: Partial<Digests>;
  /** IO queues wanted (default 1; the target may grant fewer; 0 = none, as for a discovery controller). */
  ioQueues?: number;
  /** IO queue entries (default 128, clamped to CAP.MQES + 1 and MAXCMD). */
  queueDepth?: number;
  /** Keep-alive timeout in ms (default 5000, as Linux; 0 = none). */
  katoMs?: number;
  /** Largest transfer per command before the target's own limits (default 1 MiB). */
  maxTransfer?: number;
  /** Default command timeout in ms (default 30 s). */
  timeoutMs?: number;
}

/** Identify Controller fields a fabrics host depends on (byte offsets). */
export const IdCtrl = {
  MDTS: 77,
  CNTLID: 78,
  VER: 80,
  CTRATT: 96,
  CNTRLTYPE: 111,
  KAS: 320,
  MAXCMD: 514,
  NN: 516,
  SGLS: 536,
  SUBNQN: 768,
  IOCCSZ: 1792,
  IORCSZ: 1796,
  ICDOFF: 1800,
  MSDBD: 1803,
} as const;

/** A namespace as Identify Namespace describes it. */
export interface TcpNamespaceInfo {
  /** Namespace id. */
  nsid: number;
  /** Size in logical blocks. */
  blocks: number;
  /** Logical block size in bytes. */
  lbaSize: number;
}

const u16 = (b: Uint8Array, o: number) => b[o] | (b[o + 1] << 8);
const u32 = (b: Uint8Array, o: number) => (u16(b, o) | (u16(b, o + 2) << 16)) >>> 0;

/** A connected, enabled NVMe/TCP controller with its admin and IO queues. */
export class TcpController {
  /** Memory every queue's commands point into (allocate data buffers here). */
  readonly memory: TcpMemory;
  /** Admin queue. */
  readonly admin: TcpQueue;
  /** IO queues (qid 1..). */
  readonly io: TcpQueue[] = [];
  /** Controller id. */
  readonly cntlid: number;
  /** CAP property. */
  readonly cap: bigint;
  /** VS property. */
  readonly vs: number;
  /** Identify Controller data (4096 bytes). */
  readonly identify: Uint8Array;
  /** Largest transfer per command (MDTS, the target's limit and the option). */
  readonly maxTransfer: number;
  /** Largest write sent in-capsule on IO queues (IOCCSZ × 16 − 64). */
  readonly inCapsuleMax: number;
  #closed = false;

  private constructor(m: TcpMemory, admin: TcpQueue, cap: bigint, vs: number, id: Uint8Array, maxTransfer: number, inCap: number) {
    this.memory = m;
    this.admin = admin;
    this.cntlid = admin.cntlid;
    this.cap = cap;
    this.vs = vs;
    this.identify = id;
    this.maxTransfer = maxTransfer;
    this.inCapsuleMax = inCap;
  }

  /** Connect and enable the controller, then connect its IO queues. The queues close again on failure. */
  static async connect(o: TcpControllerOptions): Promise<TcpController> {
    const memory = new TcpMemory();
    const base: Omit<TcpQueueOptions, "qid" | "depth"> = {
      host: o.host,
      port: o.port ?? 4420,
      memory,
      subnqn: o.subnqn,
      hostnqn: o.hostnqn,
      hostid: o.hostid,
      digests: o.digests,
      timeoutMs: o.timeoutMs ?? 30_000,
    };
    const admin = await TcpQueue.connect({ ...base, qid: 0, depth: 32, katoMs: o.katoMs ?? 5000, inCapsuleMax: ADMIN_IN_CAPSULE });
    let ctrl: TcpController | null = null;
    try {
      const cap = await admin.propertyGet(Reg.CAP, true);
      const c = decodeCap(cap);
      const cc = 0x460000; // CSS NVM, MPS 4 KiB, IOSQES 6, IOCQES 4, not enabled (Linux writes this first)
      await admin.propertySet(Reg.CC, cc);
      await admin.propertyGet(Reg.CC, false);
      await admin.propertyGet(Reg.CAP, true); // CAP may change after the first CC write
      await admin.propertySet(Reg.CC, cc | CC.EN);
      const deadline = performance.now() + Math.max(500, (c.timeoutMs + 500) / 2); // Linux waits (TO + 1) / 2 s
      for (;;) {
        const csts = Number(await admin.propertyGet(Reg.CSTS, false));
        if (csts & CSTS.CFS) throw new ControllerFatalError("CSTS.CFS set while enabling the fabrics controller");
        if (csts & CSTS.RDY) break;
        if (performance.now() > deadline) throw new ControllerFatalError("fabrics controller did not become ready");
        await new Promise((r) => setTimeout(r, 10));
      }
      const vs = Number(await admin.propertyGet(Reg.VS, false));
      const idb = memory.allocDma(4096);
      await admin.qp.submit(identifyControllerCmd(), idb.iova, 4096);
      const id = idb.bytes.slice(0, 4096);
      memory.freeDma(idb);
      if (u16(id, IdCtrl.CNTLID) !== admin.cntlid) {
        throw new SetupError("unsupported-controller", `Identify cntlid ${u16(id, IdCtrl.CNTLID)} differs from Connect's ${admin.cntlid}`);
      }
      if (u16(id, IdCtrl.ICDOFF) !== 0) throw new SetupError("unsupported-controller", "ICDOFF other than 0 is not supported");
      if ((u32(id, IdCtrl.SGLS) & 3) === 0) throw new SetupError("unsupported-controller", "controller reports no SGL support");
      const mps = c.mpsMin;
      const mdts = id[IdCtrl.MDTS];
      // nvmet reports MDTS 0 (no limit) yet refuses SGLs over 4 MiB.
      const targetMax = mdts === 0 ? 4 << 20 : Math.min(mps * 2 ** mdts, 4 << 20);
      const maxTransfer = Math.min(o.maxTransfer ?? 1 << 20, targetMax);
      const ioccsz = u32(id, IdCtrl.IOCCSZ);
      const inCap = ioccsz >= 4 ? ioccsz * 16 - 64 : 0;
      ctrl = new TcpController(memory, admin, cap, vs, id, maxTransfer, inCap);
      if (o.katoMs !== 0) admin.startKeepAlive();
      const want = o.ioQueues ?? 1;
      if (want <= 0) return ctrl;
      const dw0 = await admin.qp.submit(setNumQueuesCmd(want, want));
      const granted = Math.min(want, (dw0 & 0xffff) + 1, ((dw0 >>> 16) & 0xffff) + 1);
      const maxcmd = u16(id, IdCtrl.MAXCMD) || 0x10000;
      const depth = Math.max(2, Math.min(o.queueDepth ?? 128, c.mqes, maxcmd));
      for (let qid = 1; qid <= granted; qid++) {
        ctrl.io.push(
          await TcpQueue.connect({ ...base, qid, depth, cntlid: admin.cntlid, inCapsuleMax: inCap, maxTransfer }),
        );
      }
      return ctrl;
    } catch (e) {
      if (ctrl) ctrl.close();
      else admin.close();
      memory.close();
      throw e;
    }
  }

  /**
   * Connect to the discovery controller at `o.host:o.port` (no IO queues, no
   * keep-alive), read its log page and disconnect.
   */
  static async discover(o: Omit<TcpControllerOptions, "subnqn" | "ioQueues">): Promise<DiscoveryEntry[]> {
    const c = await TcpController.connect({ port: 8009, ...o, subnqn: DISCOVERY_NQN, ioQueues: 0, katoMs: 0 });
    try {
      return await c.discoveryLog();
    } finally {
      await c.shutdown().catch(() => c.close());
    }
  }

  /**
   * The discovery log (Get Log Page 70h): header, then header and entries
   * from offset 0 in pieces of at most maxTransfer, then the header again;
   * read again while the generation counter moved (at most `tries` times).
   */
  async discoveryLog(tries = 10): Promise<DiscoveryEntry[]> {
    for (let t = 0; t < tries; t++) {
      const h1 = decodeDiscoveryHeader(await this.#log(LID_DISCOVERY, 0, DISC_RECORD_SIZE));
      const all = await this.#log(LID_DISCOVERY, 0, DISC_RECORD_SIZE * (h1.numrec + 1));
      const h2 = decodeDiscoveryHeader(await this.#log(LID_DISCOVERY, 0, DISC_RECORD_SIZE));
      const mid = decodeDiscoveryHeader(all);
      if (h1.genctr === mid.genctr && mid.genctr === h2.genctr) return decodeDiscoveryLog(all);
    }
    throw new ControllerFatalError(`discovery log kept changing over ${tries} reads`);
  }

  async #log(lid: number, offset: number, bytes: number): Promise<Uint8Array> {
    const out = new Uint8Array(bytes);
    const step = Math.max(4096, Math.floor(this.maxTransfer / 4096) * 4096);
    const b = this.memory.allocDma(Math.min(bytes, step));
    try {
      for (let o = 0; o < bytes; o += step) {
        const n = Math.min(step, bytes - o);
        await this.admin.qp.submit(getLogPageCmd(lid, n, { nsid: 0, offset: offset + o }), b.iova, n);
        out.set(b.bytes.subarray(0, n), o);
      }
      return out;
    } finally {
      this.memory.freeDma(b);
    }
  }

  /** Identify Namespace `nsid`: size and block size. */
  async namespace(nsid: number): Promise<TcpNamespaceInfo> {
    const b = this.memory.allocDma(4096);
    try {
      await this.admin.qp.submit(identifyNamespaceCmd(nsid), b.iova, 4096);
      const nsze = u32(b.bytes, 0) + u32(b.bytes, 4) * 2 ** 32;
      const flbas = b.bytes[26] & 0xf;
      const lbads = b.bytes[128 + flbas * 4 + 2];
      if (lbads < 9) throw new InvalidArgumentError(`namespace ${nsid} is not active`);
      return { nsid, blocks: nsze, lbaSize: 2 ** lbads };
    } finally {
      this.memory.freeDma(b);
    }
  }

  /** Active namespace ids (Identify CNS 02h, first 1024). */
  async namespaceIds(): Promise<number[]> {
    const b = this.memory.allocDma(4096);
    try {
      await this.admin.qp.submit(activeNsListCmd(0), b.iova, 4096);
      const out: number[] = [];
      for (let i = 0; i < 1024; i++) {
        const v = u32(b.bytes, i * 4);
        if (v === 0) break;
        out.push(v);
      }
      return out;
    } finally {
      this.memory.freeDma(b);
    }
  }

  /** Normal shutdown: close the IO queues, CC.SHN = normal, wait for CSTS.SHST complete (bounded), close. */
  async shutdown(timeoutMs = 5000): Promise<void> {
    if (this.#closed) return;
    for (const q of this.io) q.close();
    try {
      await this.admin.propertySet(Reg.CC, 0x460000 | CC.EN | CC.SHN_NORMAL);
      const end = performance.now() + timeoutMs;
      while (performance.now() < end) {
        if ((Number(await this.admin.propertyGet(Reg.CSTS, false)) & CSTS.SHST_MASK) === CSTS.SHST_COMPLETE) break;
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      this.close();
    }
  }

  /** Close every queue now (in-flight commands fail with DeviceClosedError). Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const q of this.io) q.close();
    this.admin.close();
    this.memory.close();
  }
}
