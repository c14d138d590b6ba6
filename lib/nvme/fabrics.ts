/**
 * NVMe over Fabrics, shared by every fabric transport (as SPDK's
 * nvme_fabric.c serves TCP and RDMA): the Fabrics commands (opcode 7Fh:
 * Connect, Property Get/Set) and the Connect data block; the commands of one
 * queue ({@link FabricCommands}); and the transport operations the generic
 * controller calls on a fabric ({@link FabricOps}): the admin connection and
 * Connect, registers as properties in Linux's order, a connection and Connect
 * per IO queue, keep-alive at KATO/2, and the reconnect after a loss. A
 * transport (lib/tcp) only opens connections ({@link FabricTransport.openRing}).
 * @module
 */
import { type Sqe, sqe } from "./command.ts";
import type { ControllerOptions } from "./controller.ts";
import { ControllerFatalError, InvalidArgumentError, type NvmeError, SetupError } from "./errors.ts";
import type { IdentifyController } from "./identify.ts";
import type { AdminStart, OpsHost, ReservedQueue, TransportOps } from "./ops.ts";
import { QueuePair, type SubmitOptions } from "./queue.ts";
import { AdminOpc, type Cap, CC, ccValue, CSTS, decodeCap, NSSR_RESET, Reg } from "./spec.ts";
import type { DmaBuffer, DmaMemory, FabricHost, FabricQueueLimits, FabricRing, FabricTransport } from "./transport.ts";
import { clearInterval, setInterval } from "node:timers";

/** The Fabrics command opcode. */
export const FABRICS_OPCODE = 0x7f;

/** Fabrics Command Types (SQE byte 4). */
export const FcType = {
  PROPERTY_SET: 0x00,
  CONNECT: 0x01,
  PROPERTY_GET: 0x04,
  AUTH_SEND: 0x05,
  AUTH_RECEIVE: 0x06,
} as const;

/** Byte offsets of Fabrics fields inside the SQE. */
export const FabricsSqe = {
  FCTYPE: 4,
  /** Connect: record format (0). */
  RECFMT: 40,
  /** Connect: queue id. */
  QID: 42,
  /** Connect: SQ size, 0's based. */
  SQSIZE: 44,
  /** Connect: connect attributes (bit 2: disable SQ flow control). */
  CATTR: 46,
  /** Connect: keep-alive timeout in ms. */
  KATO: 48,
  /** Property Get/Set: bit 0 = 8-byte property. */
  ATTRIB: 40,
  /** Property Get/Set: property offset (the PCIe register offset). */
  OFST: 44,
  /** Property Set: value (8 bytes). */
  VALUE: 48,
} as const;

/** Connect CATTR bit: disable SQ flow control (the controller reports SQHD 0xFFFF). */
export const CATTR_DISABLE_SQFLOW = 0x04;

/** Byte offsets inside the 1024-byte Connect data. */
export const ConnectData = {
  HOSTID: 0,
  CNTLID: 16,
  SUBNQN: 256,
  HOSTNQN: 512,
  SIZE: 1024,
} as const;

/** Longest NQN (bytes, without the NUL). */
export const NQN_MAX = 223;

/** CNTLID asked for on an admin Connect: any (dynamic controller model). */
export const CNTLID_DYNAMIC = 0xffff;

/** The well-known discovery subsystem NQN. */
export const DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery";

/** Connect's status values (SC | SCT 1 << 8; NVMe over Fabrics 1.1, figure 20). */
export const ConnectStatus = {
  /** Incompatible format (RECFMT). */
  FORMAT: 0x180,
  /** Controller busy (the queue is already connected). */
  BUSY: 0x181,
  /** Invalid parameters; DW0 holds IATTR/IPO. */
  INVALID: 0x182,
  /** Host not allowed; DW0 holds IATTR/IPO of HOSTNQN. */
  INVALID_HOST: 0x184,
} as const;

/** Connect status SC 82h (SCT 1): Connect Invalid Parameters; DW0 then holds IATTR/IPO. */
export const SC_CONNECT_INVALID_PARAM: number = ConnectStatus.INVALID;

/** Connect DW0 on invalid parameters: IATTR (bit 16: in the data) | IPO. */
export function connectIpo(inData: boolean, offset: number): number {
  return (inData ? 1 << 16 : 0) | offset;
}

function fabrics(fctype: number): Sqe {
  const s = new Uint32Array(16);
  s[0] = FABRICS_OPCODE;
  s[1] = fctype; // byte 4 = FCTYPE (dword 1 byte 0)
  return s;
}

/** Connect options. */
export interface ConnectParams {
  /** Queue id (0 = admin). */
  qid: number;
  /** Submission queue entries (1's based here; sent 0's based). */
  entries: number;
  /** Keep-alive timeout in ms (admin queue; 0 = none). */
  katoMs?: number;
  /** CATTR bits (e.g. {@link CATTR_DISABLE_SQFLOW}). */
  cattr?: number;
}

/** A Connect command (its 1024-byte data goes in-capsule; the transport sets the SGL). */
export function connectCmd(p: ConnectParams): Sqe {
  if (p.entries < 2 || p.entries > 0x10000) throw new InvalidArgumentError(`connect: ${p.entries} entries`);
  const s = fabrics(FcType.CONNECT);
  s[10] = ((p.qid & 0xffff) << 16) >>> 0; // RECFMT 0 | QID
  s[11] = ((p.entries - 1) & 0xffff) | ((p.cattr ?? 0) & 0xff) << 16;
  s[12] = (p.katoMs ?? 0) >>> 0;
  return s;
}

/** Connect data fields. */
export interface ConnectDataParams {
  /** 16-byte host identifier (keep it stable: targets match controllers by it). */
  hostid: Uint8Array;
  /** {@link CNTLID_DYNAMIC} on the admin queue, the granted cntlid on IO queues. */
  cntlid: number;
  /** Subsystem NQN to connect to. */
  subnqn: string;
  /** Host NQN (allow-lists key on it). */
  hostnqn: string;
}

function putNqn(b: Uint8Array, off: number, nqn: string, what: string): void {
  const e = new TextEncoder().encode(nqn);
  if (e.length === 0 || e.length > NQN_MAX) throw new InvalidArgumentError(`${what} must be 1..${NQN_MAX} bytes: "${nqn}"`);
  b.set(e, off);
}

/** The 1024-byte Connect data block. */
export function connectData(p: ConnectDataParams): Uint8Array {
  if (p.hostid.length !== 16) throw new InvalidArgumentError("hostid must be 16 bytes");
  const b = new Uint8Array(ConnectData.SIZE);
  b.set(p.hostid, ConnectData.HOSTID);
  b[ConnectData.CNTLID] = p.cntlid & 0xff;
  b[ConnectData.CNTLID + 1] = (p.cntlid >>> 8) & 0xff;
  putNqn(b, ConnectData.SUBNQN, p.subnqn, "subnqn");
  putNqn(b, ConnectData.HOSTNQN, p.hostnqn, "hostnqn");
  return b;
}

/** A NUL-terminated string field of a data block. */
export function readNqn(b: Uint8Array, off: number, max = 256): string {
  let end = off;
  while (end < off + max && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(off, end));
}

/** Decode a Connect data block (the target's side). */
export function decodeConnectData(b: Uint8Array): ConnectDataParams {
  return {
    hostid: b.slice(ConnectData.HOSTID, ConnectData.HOSTID + 16),
    cntlid: b[ConnectData.CNTLID] | (b[ConnectData.CNTLID + 1] << 8),
    subnqn: readNqn(b, ConnectData.SUBNQN),
    hostnqn: readNqn(b, ConnectData.HOSTNQN),
  };
}

/** Property Get of the register at `offset` (4 or 8 bytes); the value comes back in CQE DW0/DW1. */
export function propertyGetCmd(offset: number, eightBytes: boolean): Sqe {
  const s = fabrics(FcType.PROPERTY_GET);
  s[10] = eightBytes ? 1 : 0;
  s[11] = offset >>> 0;
  return s;
}

/** Property Set of the register at `offset` (nvmet accepts only CC, 4 bytes). */
export function propertySetCmd(offset: number, value: bigint, eightBytes: boolean): Sqe {
  const s = fabrics(FcType.PROPERTY_SET);
  s[10] = eightBytes ? 1 : 0;
  s[11] = offset >>> 0;
  s[12] = Number(value & 0xffffffffn);
  s[13] = Number((value >> 32n) & 0xffffffffn);
  return s;
}

/**
 * Data direction of a command from its opcode (bits 1:0), or for Fabrics
 * commands from FCTYPE: 1 host to controller, 2 controller to host, 3 both, 0 none.
 */
export function dataDirection(cdw0: number, cdw1: number): number {
  const opc = cdw0 & 0xff;
  return (opc === FABRICS_OPCODE ? cdw1 & 0xff : opc) & 3;
}

/** A stable host identity: NQN and 16-byte host ID derived from one UUID string. */
export interface HostIdentity {
  /** Host NQN. */
  hostnqn: string;
  /** Host ID (16 bytes). */
  hostid: Uint8Array;
}

/** The host identity for UUID `uuid` (as nvme-cli's gen-hostnqn: nqn.2014-08.org.nvmexpress:uuid:UUID). */
export function hostIdentity(uuid: string): HostIdentity {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new InvalidArgumentError(`not a UUID: ${uuid}`);
  const hostid = new Uint8Array(16);
  for (let i = 0; i < 16; i++) hostid[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return { hostnqn: `nqn.2014-08.org.nvmexpress:uuid:${uuid.toLowerCase()}`, hostid };
}

// ---- one queue's fabrics commands -----------------------------------------------------------

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
    const v = typeof value === "number" ? BigInt(value >>> 0) : value;
    await this.qp.submit(propertySetCmd(offset, v, eightBytes), 0, 0, timeoutMs, null, this.opts);
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

/**
 * A queue pair on the connection `ring`, bound by Connect (to `cntlid`, with
 * `cattr`): the pair and the cntlid granted. Until the caller takes over, the
 * ring's loss fails the pair; a failed Connect closes the pair.
 */
export async function connectPair(
  ring: FabricRing,
  qid: number,
  timeoutMs: number,
  host: ConnectSource,
  cntlid: number,
  cattr = 0,
): Promise<[QueuePair, number]> {
  const qp = fabricPair(qid, ring, timeoutMs);
  ring.onLost = (e) => qp.fail(e);
  try {
    return [qp, await new FabricCommands(qp).connect(host, cntlid, cattr)];
  } catch (e) {
    qp.close();
    throw e;
  }
}

/**
 * Send Keep Alive on admin queue `qp` every `periodMs` (Linux: KATO/2) until
 * the returned function is called; `skip()` true leaves a period out
 * (recovery running). A failed Keep Alive goes to `onError`: a timed-out one
 * is an admin timeout, which the queue's owner recovers from.
 */
export function keepAliveTimer(qp: QueuePair, periodMs: number, skip: () => boolean, onError: (e: unknown) => void): () => void {
  const id = setInterval(() => {
    if (skip()) return;
    qp.submit(sqe(AdminOpc.KEEP_ALIVE), 0, 0, Math.max(periodMs, 1000)).catch(onError);
  }, periodMs);
  // node:timers (Deno and Bun alike): the timer does not keep the process alive.
  id.unref();
  return () => clearInterval(id);
}

// ---- the fabric transport operations ---------------------------------------------------------

/** Entries in a fabric admin queue (Linux: NVME_AQ_DEPTH 32). */
const FABRIC_ADMIN_DEPTH = 32;
/** Data a fabric admin command carries in its capsule (Linux: 8 KiB). */
const FABRIC_ADMIN_IN_CAPSULE = 8192;
/** nvmet reports MDTS 0 (no limit) yet refuses SGLs over 4 MiB. */
const FABRIC_MAX_TRANSFER = 4 << 20;
/** CC as Linux writes it on fabrics before enabling: CSS NVM, MPS 4 KiB, IOSQES 6, IOCQES 4. */
const FABRIC_CC = ccValue(4096, 6, 4, 0) & ~CC.EN;
/** Commands of a recovery: they go through while the queue holds every other submission. */
const HELD: SubmitOptions = { held: true };

/**
 * The fabrics transport operations over one {@link FabricTransport}, for one
 * controller: registers are properties, every queue is a connection bound
 * with Connect, keep-alive runs at KATO/2, and recovery reconnects.
 */
export class FabricOps implements TransportOps {
  /** A fabric. */
  readonly fabric = true;
  /** The fabric transport. */
  readonly memory: FabricTransport;
  readonly #opts: Required<ControllerOptions>;
  #host: OpsHost | null = null;
  #admin: QueuePair | null = null;
  #cap: Cap | null = null;
  #cntlid = 0;
  #inCapsule = 0;
  #stopKeepAlive: (() => void) | null = null;
  /** The connection under each queue pair (a pair's ring is replaced on reconnect). */
  readonly #rings = new Map<QueuePair, FabricRing>();

  /** Operations on `t` with the controller's options. */
  constructor(t: FabricTransport, opts: Required<ControllerOptions>) {
    this.memory = t;
    this.#opts = opts;
  }

  /** Fabrics: data an IO command carries inside its capsule (IOCCSZ × 16 − 64). */
  get inCapsuleBytes(): number {
    return this.#inCapsule;
  }

  get #a(): QueuePair {
    return this.#admin!;
  }

  /** The admin connection and Connect, then on the wire as Linux: CAP, CC without EN, CC, CAP again. */
  async connectAdmin(): Promise<AdminStart> {
    const maxTransfer = Math.min(this.#opts.maxTransferBytes, FABRIC_MAX_TRANSFER);
    const limits = { inCapsuleMax: FABRIC_ADMIN_IN_CAPSULE, maxTransfer };
    const [admin, ring, cntlid] = await this.#openPair(0, FABRIC_ADMIN_DEPTH, limits, this.#opts.adminTimeoutMs, CNTLID_DYNAMIC);
    this.#cntlid = cntlid;
    try {
      const f = new FabricCommands(admin);
      await f.propertyGet(Reg.CAP, true);
      await f.propertySet(Reg.CC, FABRIC_CC);
      await f.propertyGet(Reg.CC, false);
      const cap = this.#cap = decodeCap(await f.propertyGet(Reg.CAP, true));
      if ((cap.css & 1) === 0) {
        throw new SetupError("unsupported-controller", "controller does not support the NVM command set (CAP.CSS)");
      }
      this.#admin = admin;
      this.#rings.set(admin, ring);
      return { cap, pageSize: 4096, cntlid: this.#cntlid };
    } catch (e) {
      admin.close();
      throw e;
    }
  }

  /** The admin connection opened by {@link connectAdmin}; its loss now starts the host's recovery. */
  adminQueue(host: OpsHost): QueuePair {
    this.#host = host;
    this.#rings.get(this.#a)!.onLost = host.lost;
    return this.#a;
  }

  /** CC.EN by Property Set, then CSTS.RDY by Property Get. */
  async enable(opts: SubmitOptions): Promise<void> {
    const f = new FabricCommands(this.#a, opts);
    await f.propertySet(Reg.CC, FABRIC_CC | CC.EN);
    await f.waitReady(this.#cap!);
  }

  /** What a fabrics host relies on in Identify Controller; SGLs capped at what nvmet takes. */
  identified(id: IdentifyController, maxTransferBytes: number): number {
    if (id.cntlid !== this.#cntlid) {
      throw new SetupError("unsupported-controller", `Identify cntlid ${id.cntlid} differs from Connect's ${this.#cntlid}`);
    }
    if (id.icdoff !== 0) throw new SetupError("unsupported-controller", "ICDOFF other than 0 is not supported");
    if ((id.sgls & 3) === 0) throw new SetupError("unsupported-controller", "controller reports no SGL support");
    this.#inCapsule = id.ioccsz >= 4 ? id.ioccsz * 16 - 64 : 0;
    return Math.min(maxTransferBytes, FABRIC_MAX_TRANSFER);
  }

  /** A discovery controller has no IO queues; others get what the options ask. */
  ioQueuesToRequest(): number {
    // Room for Workers' queues too (each its own connection), as PCIe asks for maxIoQueues.
    return this.memory.subnqn === DISCOVERY_NQN ? 0 : Math.max(1, this.#opts.ioQueues, this.#opts.maxIoQueues);
  }

  #limits(): FabricQueueLimits {
    return { inCapsuleMax: this.#inCapsule, maxTransfer: this.#host!.maxTransferBytes };
  }

  /** One connection and Connect for IO queue `qid`. */
  async createIoQueue(qid: number): Promise<QueuePair> {
    const host = this.#host!;
    const depth = Math.max(2, Math.min(this.#opts.ioQueueDepth, this.#cap!.mqes, host.id.maxcmd || 0x10000));
    const [qp, ring] = await this.#openPair(qid, depth, this.#limits(), this.#opts.ioTimeoutMs, this.#cntlid);
    ring.onLost = host.lost;
    this.#rings.set(qp, ring);
    return qp;
  }

  /** A new connection under `q` and its Connect. */
  async restoreIoQueue(q: QueuePair, opts: SubmitOptions): Promise<void> {
    await this.#reconnectPair(q, this.#limits(), this.#cntlid, opts);
  }

  /**
   * A connection and a queue pair on it, bound by Connect (to `cntlid`): the
   * pair, its ring and the cntlid granted. Until the caller takes over, the
   * ring's loss fails the pair; a failed Connect closes it.
   */
  async #openPair(
    qid: number,
    depth: number,
    limits: FabricQueueLimits,
    timeoutMs: number,
    cntlid: number,
  ): Promise<[QueuePair, FabricRing, number]> {
    const ring = await this.memory.openRing(qid, depth, limits);
    const [qp, granted] = await connectPair(ring, qid, timeoutMs, this.memory, cntlid);
    return [qp, ring, granted];
  }

  /** A new connection under the existing pair `q` (its loss resets `q`), then Connect: the cntlid granted. */
  async #reconnectPair(q: QueuePair, limits: FabricQueueLimits, cntlid: number, opts: SubmitOptions): Promise<number> {
    const ring = await this.memory.openRing(q.qid, q.depth, limits);
    ring.onLost = (e) => q.reset(e);
    q.replaceRing(ring);
    this.#rings.set(q, ring);
    return await new FabricCommands(q, opts).connect(this.memory, cntlid);
  }

  /** A Worker's queue is its own connection: its owner connects it (Connect with the cntlid) on open and resume. */
  createRemoteQueue(): Promise<void> {
    return Promise.resolve();
  }

  /** Closing the connection deletes the queue. */
  deleteIoQueue(_qid: number): Promise<void> {
    return Promise.resolve();
  }

  /** Only a qid matters on a fabric (the owner opens the connection): one page each stands in for the rings. */
  reserveQueue(depth: number): ReservedQueue {
    return { depth, sq: this.memory.allocDma(4096), cq: this.memory.allocDma(4096), prp: null, prpPages: 0 };
  }

  /** Nothing is shared with other threads. */
  retain(_memory: DmaBuffer[]): void {}

  /** Property Get. */
  readRegister(offset: number, eightBytes: boolean): Promise<bigint> {
    return new FabricCommands(this.#a).propertyGet(offset, eightBytes);
  }

  /**
   * CSTS is a Property Get away: a lost connection or keep-alive starts
   * recovery instead, so this only reports a controller that was given up.
   */
  checkHealth(): void {
    const failed = this.#host?.failed;
    if (failed) throw failed;
  }

  /** NSSR by Property Set when asked, then every connection goes (the target forgets the controller with its admin connection). */
  async teardown(queues: QueuePair[], err: NvmeError, nssr: boolean): Promise<void> {
    if (nssr) await new FabricCommands(this.#a, HELD).propertySet(Reg.NSSR, NSSR_RESET).catch(() => {});
    for (const q of queues) {
      const r = this.#rings.get(q)!;
      r.onLost = null;
      r.close(); // first: no data lands in the commands' memory once they are failed
      q.reset(err);
    }
  }

  /** A new admin connection, Connect (a new cntlid), CC without EN. */
  async reconnectAdmin(opts: SubmitOptions): Promise<number> {
    const a = this.#a;
    const limits = { inCapsuleMax: FABRIC_ADMIN_IN_CAPSULE, maxTransfer: a.maxPrpTransfer };
    this.#cntlid = await this.#reconnectPair(a, limits, CNTLID_DYNAMIC, opts);
    await new FabricCommands(a, opts).propertySet(Reg.CC, FABRIC_CC);
    return this.#cntlid;
  }

  /** Every connection's loss starts the host's recovery again. */
  recovered(queues: QueuePair[]): void {
    for (const q of queues) this.#rings.get(q)!.onLost = this.#host!.lost;
  }

  /** Keep Alive at KATO/2 (none when KATO is 0); a timed-out one is an admin timeout, recovered as any. */
  keepAlive(on: boolean): void {
    if (!on) {
      this.#stopKeepAlive?.();
      this.#stopKeepAlive = null;
      return;
    }
    const kato = this.memory.katoMs;
    if (!(kato > 0) || this.#stopKeepAlive) return;
    const host = this.#host!;
    this.#stopKeepAlive = keepAliveTimer(this.#a, kato / 2, () => host.recovering || host.closed || host.failed !== null, () => {});
  }

  /** CC.SHN normal by Property Set, then CSTS.SHST complete (bounded by RTD3E, 5-60 s). */
  async shutdown(rtd3eUs: number): Promise<void> {
    const f = new FabricCommands(this.#a);
    await f.propertySet(Reg.CC, FABRIC_CC | CC.EN | CC.SHN_NORMAL, false, 5000);
    const deadline = performance.now() + Math.min(Math.max(rtd3eUs / 1000, 5000), 60_000);
    while ((Number(await f.propertyGet(Reg.CSTS, false, 5000)) & CSTS.SHST_MASK) !== CSTS.SHST_COMPLETE) {
      if (performance.now() > deadline) break;
      await sleep(10);
    }
  }
}
