/**
 * The controller model (the command-semantics room): the state of an NVMe
 * controller and every admin and IO command the software controller
 * implements, with no knowledge of PRPs, IOVAs, rings or doorbells. A front
 * end owns the transport (lib/sim/pcie.ts: registers, rings, doorbells and
 * PRPs in shared memory; an NVMe/TCP target: capsules, R2T, H2CData, C2HData)
 * and drives the model through a handful of calls:
 *
 * - Controller state: {@link ControllerModel.setCc} on a CC write (PCIe
 *   MMIO, Fabrics Property Set), {@link ControllerModel.csts} to read CSTS,
 *   {@link ControllerModel.tick} now and then (CSTS.RDY delay, sanitize and
 *   self-test progress), {@link ControllerModel.fail} for CSTS.CFS. The model
 *   calls back {@link FrontEnd.enable} on CC.EN 0 to 1 (set up the admin
 *   queue; false makes the controller fatal) and {@link FrontEnd.reset} on
 *   1 to 0 (drop every queue).
 * - Before data moves: {@link transferDirection} (the opcode's data
 *   direction) and {@link ControllerModel.transferLength} (the bytes the
 *   command moves), so a TCP front end sends R2T for writes or knows how much
 *   C2HData to send.
 * - {@link ControllerModel.execute}(qid, sqe, port): runs the command. Data
 *   moves through the {@link DataPort} the front end supplies per call: the
 *   model asks it to `map` the command's data, then reads or fills its
 *   segments (PCIe: views of host memory, so IO is zero copy; TCP: the
 *   capsule or a buffer, {@link BufferPort}). Returns the status field (DNR
 *   included), dw0 in {@link ControllerModel.dw0}; or {@link PENDING}: the
 *   model completes the command later through {@link FrontEnd.complete}
 *   (an Asynchronous Event Request, IO on {@link AsyncMedia}). Sync media
 *   never return PENDING, and their path allocates nothing per IO; async
 *   media complete through a callback ({@link MediaDone}), not a Promise.
 *   {@link FrontEnd.complete} may be called from inside execute (an AER that
 *   finds an event queued completes at once) and from inside setCc/tick.
 * - Create/Delete IO SQ/CQ and Fabrics Connect are the front end's: it tells
 *   the model with {@link ControllerModel.noteIoQueueCreated} and respects
 *   {@link ControllerModel.grantedQueues}. Abort asks the front end first
 *   ({@link FrontEnd.abort}) for commands it holds. Errors the front end
 *   completes itself go to the error log through
 *   {@link ControllerModel.logError}.
 * - Fabrics: {@link ModelOptions.fabrics} reports the fabrics Identify
 *   fields (IOCCSZ, SGLS, MAXCMD, ...) and leaves Format, firmware, sanitize
 *   and namespace management to the backing controller;
 *   {@link ControllerModel.setKeepAlive} takes Connect's KATO;
 *   {@link ControllerModel.mediaOf} hands out the media so data buffers come
 *   from its DMA memory ({@link AsyncMedia.alloc}). {@link FrontEnd.identify}
 *   patches anything else. lib/sim/nsmedia.ts builds options that pass an open
 *   NVMeDev through (identity, MDTS, namespaces as media).
 * @module
 */
import { statusFieldOf } from "../nvme/errors.ts";
import { AdminOpc, CC, Cns, CSTS, Fid, IoOpc, Nidt, STATUS_DNR } from "../nvme/spec.ts";
import {
  decodeControllerList,
  decodeNamespaceCreate,
  encodeControllerList,
  encodeNsDescriptors,
  encodeNsidList,
  Ctratt,
  IdCtrlOffset,
  IdNsOffset,
  LBAF_BYTES,
  LbafOffset,
  PSD_BYTES,
  PsdOffset,
} from "../nvme/identify.ts";
import {
  encodeEffectsLog,
  encodeErrorLogEntry,
  encodeFwLog,
  encodeSanitizeLog,
  encodeSelfTestLog,
  encodeSmartLog,
  ERROR_LOG_ENTRY_SIZE,
  type SelfTestResult,
} from "../nvme/logs.ts";
import { decodeTimestamp, encodeTimestamp } from "../nvme/features.ts";
import { COPY_RANGE_BYTES, decodeCopyRanges, decodeDsmRanges, DSM_RANGE_BYTES } from "../nvme/ranges.ts";
import { Uint128, Uint64 } from "../nvme/wide.ts";
import { type AnyMedia, type AsyncMedia, FileMedia, type MediaDone, MemMedia } from "./media.ts";
import { ZonedNamespace, zonedCommand } from "./zns.ts";
import { FdpSubsystem, fdpTransferLength } from "./fdp.ts";
import { CSI_ZNS, ZnsOpc } from "../nvme/zns.ts";
import { decodePidList, FdpFid, IoMgmt } from "../nvme/fdp.ts";
import { isPiIo, SIM_LBAFS, simFormat, simIdNsPi, type SimMeta, simLbafCount, simNvmIdNs, simPiIo, simPiTransferLength } from "./pi.ts";
import type { PiCheck } from "../nvme/pi.ts";
import { LogId, SIM_DEFAULTS, SimCns, type SimNamespaceOptions, type SimOptions, SimStatus as S } from "./options.ts";

/** {@link ControllerModel.execute}'s result when the model completes the command later. */
export const PENDING: -1 = -1;

/** Data direction of an opcode (its bits 1:0, the same for admin and IO commands). */
export const DataDir = {
  /** No data. */
  NONE: 0,
  /** Host to controller (a write). */
  TO_CONTROLLER: 1,
  /** Controller to host (a read). */
  TO_HOST: 2,
  /** Both. */
  BIDIRECTIONAL: 3,
} as const;

/** The data direction of `opcode` (a {@link DataDir} value). */
export function transferDirection(opcode: number): number {
  return opcode & 3;
}

/**
 * Where a command's data lives, supplied by the front end for each execute.
 * The model calls `map` once per transfer, then reads or writes the views.
 */
export interface DataPort {
  /**
   * Make `len` bytes of the command's data reachable; 0, or the NVMe status
   * to fail the command with (PRP Offset Invalid, Data Transfer Error, ...).
   */
  map(cmd: Uint32Array, len: number): number;
  /** Segments after `map`; their lengths add up to the mapped length. */
  readonly count: number;
  /** View of segment `i` (host memory for PCIe: the model reads and fills it in place). */
  segment(i: number): Uint8Array;
}

/**
 * A {@link DataPort} over one buffer (in-capsule data, data fetched with
 * R2T, a C2HData buffer, tests). `map` fails with Data Transfer Error when
 * the command needs more than the buffer holds.
 */
export class BufferPort implements DataPort {
  /** The buffer; replace it between commands. */
  buf: Uint8Array;
  #len = 0;

  /** Wrap `buf` (default: empty, for commands without data). */
  constructor(buf: Uint8Array = new Uint8Array(0)) {
    this.buf = buf;
  }

  /** Map the first `len` bytes of the buffer. */
  map(_cmd: Uint32Array, len: number): number {
    if (len > this.buf.length) return S.DATA_TRANSFER_ERROR;
    this.#len = len;
    return 0;
  }

  /** One segment, or none for a zero-length transfer. */
  get count(): number {
    return this.#len ? 1 : 0;
  }

  /** The mapped bytes. */
  segment(_i: number): Uint8Array {
    return this.buf.subarray(0, this.#len);
  }
}

/** What the model calls back on its front end. */
export interface FrontEnd {
  /**
   * Complete a command the model finished later than its execute returned
   * (AER, async media, a held AER aborted). `sf` is the status field with
   * DNR, as execute returns it; errors are already in the error log.
   */
  complete(qid: number, cid: number, sf: number, dw0: number): void;
  /** CC.EN went 0 to 1: set up the admin queue; false when the configuration cannot run (the controller goes fatal). */
  enable?(cc: number): boolean;
  /** CC.EN went 1 to 0: drop every IO queue and every command the front end holds. */
  reset?(): void;
  /** CSTS changed (PCIe mirrors it into its register). */
  csts?(value: number): void;
  /**
   * Abort command `cid` of `sqid` when the front end holds it (not yet given
   * to execute): complete it with Abort Requested and return true.
   */
  abort?(sqid: number, cid: number): boolean;
  /** Patch Identify data before it goes to the host (fabrics fields: SGLS, IOCCSZ, NQN, ...). */
  identify?(cns: number, nsid: number, data: Uint8Array): void;
}

/** A namespace given as ready media instead of {@link SimNamespaceOptions}. */
export interface ModelNamespace {
  /** Its storage, sync or async. */
  media: AnyMedia;
  /** Logical block size (default 512). */
  blockSize?: 512 | 4096;
  /** NGUID to report (default derived from the serial and NSID). */
  nguid?: Uint8Array;
}

/** Identity the model reports (Identify Controller), e.g. passed through from a backing controller. */
export interface ModelIdentity {
  /** PCI vendor ID (VID). */
  vid?: number;
  /** PCI subsystem vendor ID (SSVID). */
  ssvid?: number;
  /** Serial number (SN). */
  serial?: string;
  /** Model number (MN). */
  model?: string;
  /** Firmware revision in slot 1 (FR). */
  firmware?: string;
  /** IEEE OUI, three bytes as Identify holds them. */
  ieee?: Uint8Array;
  /** NVM Subsystem NQN (SUBNQN); default derived from the serial. */
  subnqn?: string;
}

/**
 * What a fabrics I/O controller reports beyond a PCIe one (NVMe over Fabrics
 * Identify fields), and the admin set it serves: with {@link ModelOptions.fabrics}
 * the model refuses Format, Sanitize, firmware, self-test and namespace
 * management (the backing controller's business) and reports OACS 0.
 */
export interface FabricsIdentity {
  /** In-capsule data bytes accepted on IO queues (IOCCSZ = (64 + this) / 16). */
  inCapsule: number;
  /** Largest number of outstanding commands per queue (MAXCMD). */
  maxcmd: number;
  /** SGL support (SGLS), e.g. supported | keyed | offset. */
  sgls: number;
  /** Controller attributes (CTRATT, default 1: 128-bit host identifier). */
  ctratt?: number;
  /** Keep Alive Support granularity in 100 ms units (KAS, default 10: 1 s). */
  kas?: number;
}

/** How to build a model: the software controller's options minus the PCIe ones, plus identity. */
export interface ModelOptions extends Omit<SimOptions, "namespaces" | "irq" | "memoryBytes" | "iovaBase" | "latencyMs" | "sgl" | "shadowDoorbells" | "cmbBytes" | "sriovVfs" | "threads"> {
  /** Namespaces at start, attached: sizes (memory or file media) or ready media. */
  namespaces?: (SimNamespaceOptions | ModelNamespace)[];
  /** Serial number (required: front ends pick unique ones). */
  serial: string;
  /** Controller ID (CNTLID, default 1). */
  cntlid?: number;
  /** Identity fields that override the defaults (serial, model, firmware win over the plain options). */
  identity?: ModelIdentity;
  /** Report as a fabrics I/O controller and serve the fabrics admin set (see {@link FabricsIdentity}). */
  fabrics?: FabricsIdentity;
}

interface Ns {
  nsid: number;
  media: AnyMedia;
  lbaf: number;
  attached: boolean;
  nguid: Uint8Array;
  /** Zones when the namespace is zoned (lib/sim/zns.ts). */
  zns?: ZonedNamespace;
  /** Reclaim unit handles it places on when the subsystem has FDP (lib/sim/fdp.ts). */
  ruhs?: number[];
  /** Metadata and PI (lib/sim/pi.ts); absent: a format without metadata. */
  pi?: SimMeta | null;
}

/** The zoned/FDP hook's "not mine: carry on" (PENDING is -1). */
const CARRY_ON = -2;

const LBAF_DS = SIM_LBAFS.map((l) => l.ds);
const PAGE = 4096;
const TWO32 = 0x1_0000_0000;
const TEMP_K = 310;

/** Write `s` as an Identify ASCII field: 7-bit, space padded to `len` bytes. */
export function padAscii(dst: Uint8Array, off: number, len: number, s: string): void {
  for (let i = 0; i < len; i++) dst[off + i] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
}

function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v % TWO32, true);
  dv.setUint32(off + 4, Math.floor(v / TWO32), true);
}

/** A status with Do Not Retry set where retrying cannot help. */
export function withDnr(status: number): number {
  if (status === 0 || status === S.ABORT_REQUESTED || status === S.SQ_DELETION || status === S.SANITIZE_IN_PROGRESS) {
    return status;
  }
  return status | STATUS_DNR;
}

/** The NVMe status a rejected media Promise maps to: the backing controller's SCT and SC when the error carries them (DNR is the model's call). */
function mediaStatus(e: unknown, fallback: number): number {
  return statusFieldOf(e, fallback) & SCT_SC_MASK;
}

/** SCT and SC of a status field. */
const SCT_SC_MASK = 0x7ff;

/** Wire a media operation that returned a Promise (instead of calling `done`) to `done`. */
function settle(r: void | Promise<void>, done: MediaDone, failSt: number): void {
  if (r != null && typeof (r as Promise<void>).then === "function") {
    (r as Promise<void>).then(() => done(0), (e) => done(mediaStatus(e, failSt)));
  }
}

function mRead(m: AsyncMedia, off: number, dst: Uint8Array, done: MediaDone): void {
  settle(m.read(off, dst, done), done, S.UNRECOVERED_READ_ERROR);
}

function mWrite(m: AsyncMedia, off: number, src: Uint8Array, done: MediaDone): void {
  settle(m.write(off, src, done), done, S.WRITE_FAULT);
}

function mZero(m: AsyncMedia, off: number, len: number, done: MediaDone): void {
  settle(m.zero(off, len, done), done, S.WRITE_FAULT);
}

function mFlush(m: AsyncMedia, done: MediaDone): void {
  settle(m.flush(done), done, S.WRITE_FAULT);
}

/** A MediaDone that calls `then` once `n` operations completed, with the first failure (or 0). */
function all(n: number, then: MediaDone): MediaDone {
  let left = n, err = 0;
  if (n === 0) then(0);
  return (sf) => {
    if (sf && !err) err = sf;
    if (--left === 0) then(err);
  };
}

/** Read/write-like IO opcodes (an LBA range in CDW10-12). */
export function isRw(opc: number): boolean {
  return opc === IoOpc.READ || opc === IoOpc.WRITE || opc === IoOpc.COMPARE || opc === IoOpc.WRITE_ZEROES ||
    opc === IoOpc.VERIFY || opc === IoOpc.WRITE_UNCORRECTABLE;
}

/** Identify CNS 05h: I/O command set specific Identify Namespace. */
/** Admin opcodes a fabrics controller leaves to the backing controller. */
const NOT_ON_FABRICS = new Set<number>([
  AdminOpc.FORMAT_NVM, AdminOpc.DEVICE_SELF_TEST, AdminOpc.FW_IMAGE_DOWNLOAD, AdminOpc.FW_COMMIT, AdminOpc.SANITIZE,
  AdminOpc.NS_MANAGEMENT, AdminOpc.NS_ATTACHMENT, AdminOpc.CREATE_IO_SQ, AdminOpc.CREATE_IO_CQ, AdminOpc.DELETE_IO_SQ,
  AdminOpc.DELETE_IO_CQ,
]);
const FEATURE_DEFAULTS: Record<number, number> = {
  [Fid.ARBITRATION]: 0,
  [Fid.POWER_MGMT]: 0,
  [Fid.ERROR_RECOVERY]: 0,
  [Fid.VOLATILE_WC]: 1,
  [Fid.IRQ_COALESCING]: 0,
  [Fid.IRQ_CONFIG]: 0,
  [Fid.WRITE_ATOMICITY]: 0,
  [Fid.ASYNC_EVENT]: 0x3ff,
  [Fid.HOST_BEHAVIOR]: 0,
  [Fid.KEEP_ALIVE_TIMER]: 0,
};

const NO_PORT = new BufferPort();

/** Namespace summary for inspection. */
export interface ModelNamespaceState {
  /** Namespace ID. */
  nsid: number;
  /** Size in logical blocks. */
  blocks: number;
  /** Logical block size in bytes. */
  blockSize: number;
  /** Attached to the controller. */
  attached: boolean;
}

/** A controller's command semantics and state; see the module doc for how front ends drive it. */
export class ControllerModel {
  readonly #o: Required<Omit<ModelOptions, "namespaces" | "capacityBytes" | "serial" | "identity" | "cntlid" | "fabrics" | "fdp">>;
  readonly #front: FrontEnd;
  readonly #serial: string;
  readonly #id: ModelIdentity;
  readonly #cntlid: number;
  readonly #fabrics: FabricsIdentity | null;
  readonly #capacity: number;
  #cc = 0;
  #csts = 0;
  #enabled = false;
  #fatal = false;
  #readyAt = -1;
  #ioQueuesCreated = false;
  #grantedQueues: number;
  readonly #ns = new Map<number, Ns>();
  #port: DataPort = NO_PORT;
  #dw0 = 0;
  #dw1 = 0;
  readonly #fdp: FdpSubsystem | null;
  // Features
  #feat = new Map<number, number>();
  #saved = new Map<number, number>();
  #tempThresh = new Map<number, number>();
  #timestampBase = 0;
  #timestampSetAt = 0;
  #timestampOrigin = 0;
  #hostBehavior: Uint8Array = new Uint8Array(512);
  // Async events
  #aers: { cid: number }[] = [];
  #events: number[] = [];
  #masked = new Set<number>();
  #criticalWarning = 0;
  // Logs and counters
  #errors: Uint8Array[] = [];
  #errorCount = 0;
  #smart = { unitsRead: 0, unitsWritten: 0, reads: 0, writes: 0, powerCycles: 0, unsafe: 0, mediaErrors: 0 };
  #changedNs: number[] = [];
  // Firmware
  #fwSlots: string[];
  #fwActive = 1;
  #fwNext = 0;
  #fwImage = new Uint8Array(0);
  #fwImageLen = 0;
  // Self-test
  #dst = { op: 0, nsid: 0, start: 0, end: 0 };
  #dstLog: Partial<SelfTestResult>[] = [];
  // Sanitize
  #san = { sstat: 0, sprog: 0xffff, cdw10: 0, start: 0, end: 0, running: false, action: 0, pattern: 0, passes: 0, invert: false };
  #sanDone = 0;

  /** Build the model; `front` receives its callbacks. */
  constructor(opts: ModelOptions, front: FrontEnd) {
    const o = opts, id = opts.identity ?? {};
    this.#o = {
      maxQueues: o.maxQueues ?? SIM_DEFAULTS.maxQueues,
      maxQueueEntries: o.maxQueueEntries ?? SIM_DEFAULTS.maxQueueEntries,
      mdts: o.mdts ?? SIM_DEFAULTS.mdts,
      maxNamespaces: o.maxNamespaces ?? SIM_DEFAULTS.maxNamespaces,
      fwSlots: Math.max(1, Math.min(7, o.fwSlots ?? SIM_DEFAULTS.fwSlots)),
      fwSlot1ReadOnly: o.fwSlot1ReadOnly ?? SIM_DEFAULTS.fwSlot1ReadOnly,
      fwug: o.fwug ?? SIM_DEFAULTS.fwug,
      sanicap: o.sanicap ?? SIM_DEFAULTS.sanicap,
      sanitizeMs: o.sanitizeMs ?? SIM_DEFAULTS.sanitizeMs,
      selfTestMs: o.selfTestMs ?? SIM_DEFAULTS.selfTestMs,
      readyDelayMs: o.readyDelayMs ?? SIM_DEFAULTS.readyDelayMs,
      vwc: o.vwc ?? SIM_DEFAULTS.vwc,
      model: id.model ?? o.model ?? SIM_DEFAULTS.model,
      firmware: id.firmware ?? o.firmware ?? SIM_DEFAULTS.firmware,
      piFormats: o.piFormats ?? false,
    };
    this.#front = front;
    this.#serial = id.serial ?? o.serial;
    this.#id = id;
    this.#cntlid = o.cntlid ?? 1;
    this.#fabrics = o.fabrics ?? null;
    this.#grantedQueues = this.#o.maxQueues;
    this.#fwSlots = new Array(this.#o.fwSlots).fill("");
    this.#fwSlots[0] = this.#o.firmware;
    this.#fdp = o.fdp ? new FdpSubsystem(o.fdp) : null;
    const nss = o.namespaces ?? [{ size: 16 << 20, blockSize: 512 }, { size: 16 << 20, blockSize: 4096 }];
    let used = 0;
    nss.forEach((n, i) => {
      const bs = n.blockSize ?? 512;
      let media: AnyMedia, nguid: Uint8Array | undefined;
      if ("media" in n) {
        media = n.media;
        nguid = n.nguid;
      }
      else {
        const bytes = Math.floor(n.size / bs) * bs;
        media = n.path ? new FileMedia(n.path, bytes) : new MemMedia(bytes);
      }
      used += media.size;
      const ns: Ns = { nsid: i + 1, media, lbaf: bs === 4096 ? 1 : 0, attached: true, nguid: nguid ?? this.#nguid(i + 1) };
      if ("zoned" in n && n.zoned) ns.zns = new ZonedNamespace(Math.floor(media.size / bs), n.zoned);
      if (this.#fdp) this.#fdp.attach(ns.ruhs = ("fdpRuhs" in n && n.fdpRuhs) || Array.from({ length: this.#fdp.nruh }, (_, j) => j));
      this.#ns.set(i + 1, ns);
    });
    this.#capacity = o.capacityBytes ?? used + 64 * 1024 * 1024;
    this.#resetFeatures();
  }

  /** The options in effect (defaults applied). */
  get options(): Readonly<Required<Omit<ModelOptions, "namespaces" | "capacityBytes" | "serial" | "identity" | "cntlid" | "fabrics" | "fdp">>> {
    return this.#o;
  }

  /** Serial number reported in Identify. */
  get serial(): string {
    return this.#serial;
  }

  /** Command Specific DW0 of the last command execute completed synchronously. */
  get dw0(): number {
    return this.#dw0;
  }

  /** Command Specific DW1 of the last command execute completed synchronously (Zone Append's LBA, high half). */
  get dw1(): number {
    return this.#dw1;
  }

  /** The zones of namespace `nsid` when it is zoned (inspection, and media faults: read-only, offline zones). */
  zonesOf(nsid: number): ZonedNamespace | undefined {
    return this.#ns.get(nsid)?.zns;
  }

  /** Current CC. */
  get cc(): number {
    return this.#cc;
  }

  /** Current CSTS (RDY, CFS, SHST). */
  get csts(): number {
    return this.#csts;
  }

  /** CC.EN is set and the configuration was accepted. */
  get enabled(): boolean {
    return this.#enabled;
  }

  /** CSTS.RDY: commands may run. */
  get ready(): boolean {
    return (this.#csts & CSTS.RDY) !== 0;
  }

  /** CSTS.CFS: the controller failed and runs nothing until reset. */
  get failed(): boolean {
    return this.#fatal;
  }

  /** IO queues granted by Set Features Number of Queues (the front end refuses QIDs above it). */
  get grantedQueues(): number {
    return this.#grantedQueues;
  }

  /** Outstanding Asynchronous Event Requests. */
  get pendingAers(): number {
    return this.#aers.length;
  }

  /** An IO queue exists now: Number of Queues can no longer change until reset. */
  noteIoQueueCreated(): void {
    this.#ioQueuesCreated = true;
  }

  /**
   * Reads and writes of namespace `nsid` are plain data (no zones, metadata or
   * placement handles), so a queue thread may serve them without the model.
   */
  plainRw(nsid: number): boolean {
    const ns = this.#ns.get(nsid);
    return ns !== undefined && !ns.zns && !ns.pi && !ns.ruhs;
  }

  /** Media of namespace `nsid` (front ends take DMA buffers from {@link AsyncMedia.alloc}), or undefined. */
  mediaOf(nsid: number): AnyMedia | undefined {
    return this.#ns.get(nsid)?.media;
  }

  /** Keep Alive Timeout in ms (Connect's KATO or Set Features Keep Alive Timer; 0: none). */
  get keepAliveMs(): number {
    return this.#feat.get(Fid.KEEP_ALIVE_TIMER)!;
  }

  /** Set the Keep Alive Timeout (Fabrics Connect carries it). */
  setKeepAlive(ms: number): void {
    this.#feat.set(Fid.KEEP_ALIVE_TIMER, ms >>> 0);
  }

  /** A namespace's attributes changed (resized behind the model, ...): Changed Namespace List and its notice. */
  notifyNamespaceChanged(nsid: number): void {
    this.#nsChanged(nsid);
  }

  #nguid(nsid: number): Uint8Array {
    const g = new Uint8Array(16);
    for (let i = 0; i < 8; i++) g[i] = this.#serial.charCodeAt(i % this.#serial.length) || 0x53;
    new DataView(g.buffer).setUint32(12, nsid, false);
    g[8] = 0x5e;
    return g;
  }

  #resetFeatures(): void {
    this.#feat.clear();
    for (const [k, v] of Object.entries(FEATURE_DEFAULTS)) {
      const fid = Number(k);
      this.#feat.set(fid, this.#saved.get(fid) ?? v);
    }
    if (!this.#o.vwc) this.#feat.set(Fid.VOLATILE_WC, 0);
    this.#tempThresh.clear();
  }

  // ---- controller state machine -------------------------------------------------------------

  #setCsts(v: number): void {
    this.#csts = v >>> 0;
    this.#front.csts?.(this.#csts);
  }

  /**
   * A CC write: CC.EN 0 to 1 enables (after readyDelayMs CSTS.RDY follows),
   * 1 to 0 resets, CC.SHN set completes a shutdown at once (CSTS.SHST = 2).
   */
  setCc(cc: number, now: number = performance.now()): void {
    cc >>>= 0;
    const prev = this.#cc;
    if (cc === prev) return;
    this.#cc = cc;
    const delay = this.#o.readyDelayMs;
    if ((cc & CC.EN) && !(prev & CC.EN)) {
      this.#enable(cc);
      if (this.#enabled) {
        if (delay > 0) this.#readyAt = now + delay;
        else this.#setCsts((this.#csts & ~CSTS.SHST_MASK) | CSTS.RDY);
      }
    } else if (!(cc & CC.EN) && (prev & CC.EN)) {
      if (!(prev & CC.SHN_MASK) && !(this.#csts & CSTS.SHST_COMPLETE)) this.#smart.unsafe++;
      this.#reset();
      const keep = this.#csts & CSTS.SHST_MASK;
      if (delay > 0) {
        this.#setCsts(keep | (this.#csts & CSTS.RDY));
        this.#readyAt = now + delay;
      } else this.#setCsts(keep);
    }
    if ((cc & CC.SHN_MASK) && !(prev & CC.SHN_MASK)) {
      // Everything is in memory (or in the backing controller): the shutdown is complete at once.
      this.#setCsts((this.#csts & ~CSTS.SHST_MASK) | CSTS.SHST_COMPLETE);
    }
  }

  #enable(cc: number): void {
    const mps = (cc >>> 7) & 0xf, css = (cc >>> 4) & 7;
    if (mps !== 0 || css !== 0 || (this.#front.enable && !this.#front.enable(cc))) {
      // A configuration no controller could run with: fatal, as real ones do.
      this.fail();
      return;
    }
    this.#enabled = true;
    this.#fatal = false;
    this.#smart.powerCycles++;
    if (this.#fwNext) {
      this.#fwActive = this.#fwNext;
      this.#fwNext = 0;
    }
  }

  #reset(): void {
    this.#front.reset?.();
    this.#enabled = false;
    this.#fatal = false;
    this.#aers = [];
    this.#masked.clear();
    this.#ioQueuesCreated = false;
    this.#grantedQueues = this.#o.maxQueues;
    this.#resetFeatures();
    if (this.#dst.op) this.#finishSelfTest(2);
  }

  /** Controller Fatal Status: set CSTS.CFS; nothing runs until CC.EN is cleared. */
  fail(): void {
    this.#fatal = true;
    this.#setCsts(this.#csts | CSTS.CFS);
  }

  /** Advance time-driven state (CSTS.RDY delay, sanitize, self-test); true when CSTS changed. */
  tick(now: number = performance.now()): boolean {
    let did = false;
    if (this.#readyAt >= 0 && now >= this.#readyAt) {
      this.#readyAt = -1;
      if (this.#enabled && !this.#fatal) this.#setCsts(this.#csts | CSTS.RDY);
      else if (!this.#enabled) this.#setCsts(this.#csts & ~CSTS.RDY);
      did = true;
    }
    const s = this.#san;
    if (s.running) {
      s.sprog = Math.min(0xffff, Math.floor(((now - s.start) / Math.max(1, s.end - s.start)) * 65536));
      if (now >= s.end) this.#finishSanitize();
    }
    if (this.#dst.op && now >= this.#dst.end) this.#finishSelfTest(0);
    return did;
  }

  // ---- execution ---------------------------------------------------------------------------

  /**
   * Bytes `cmd` moves (before data moves: TCP sends R2T for that much, or
   * sizes C2HData); 0 for commands without data or that will fail before
   * any transfer (an unknown namespace).
   */
  transferLength(qid: number, cmd: Uint32Array): number {
    const opc = cmd[0] & 0xff;
    const fdp = this.#fdp ? fdpTransferLength(qid === 0, cmd) : -1;
    if (fdp >= 0) return fdp;
    if (qid !== 0) {
      switch (opc) {
        case ZnsOpc.ZONE_APPEND:
        case IoOpc.READ:
        case IoOpc.WRITE:
        case IoOpc.COMPARE: {
          const ns = this.#ns.get(cmd[1]);
          if (ns?.pi) return simPiTransferLength(ns.pi, cmd, (cmd[12] & 0xffff) + 1);
          return ns ? ((cmd[12] & 0xffff) + 1) << LBAF_DS[ns.lbaf] : 0;
        }
        case IoOpc.DATASET_MANAGEMENT:
          return ((cmd[10] & 0xff) + 1) * 16;
        case IoOpc.COPY:
          return ((cmd[12] & 0xff) + 1) * 32;
        case ZnsOpc.ZONE_MGMT_RECV:
          return (cmd[12] + 1) * 4;
      }
      return 0;
    }
    switch (opc) {
      case AdminOpc.IDENTIFY:
        return 4096;
      case AdminOpc.GET_LOG_PAGE:
        return ((cmd[10] >>> 16) + (cmd[11] & 0xffff) * 65536 + 1) * 4;
      case AdminOpc.GET_FEATURES:
      case AdminOpc.SET_FEATURES: {
        const fid = cmd[10] & 0xff;
        if (opc === AdminOpc.GET_FEATURES && ((cmd[10] >>> 8) & 7) === 3) return 0;
        return fid === Fid.TIMESTAMP ? 8 : fid === Fid.HOST_BEHAVIOR ? 512 : 0;
      }
      case AdminOpc.NS_MANAGEMENT:
        return (cmd[10] & 0xf) === 0 ? 4096 : 0;
      case AdminOpc.NS_ATTACHMENT:
        return 4096;
      case AdminOpc.FW_IMAGE_DOWNLOAD:
        return (cmd[10] + 1) * 4;
    }
    return 0;
  }

  /**
   * Run `cmd` (16 dwords) from queue `qid` (0: admin) with its data in
   * `port`. Returns the status field (DNR set where retrying cannot help;
   * dw0 in {@link dw0}), or {@link PENDING}: then the model calls
   * {@link FrontEnd.complete} later, and `cmd` and the port's segments must
   * stay valid until it does. The front end checks {@link ready} first.
   */
  execute(qid: number, cmd: Uint32Array, port: DataPort): number {
    this.#dw0 = 0;
    this.#dw1 = 0;
    this.#port = port;
    let st: number;
    try {
      st = qid === 0 ? this.#admin(cmd) : this.#io(qid, cmd);
    } finally {
      this.#port = NO_PORT;
    }
    if (st === PENDING) return PENDING;
    const sf = withDnr(st);
    if (sf & 0x7ff) this.logError(qid, cmd[0] >>> 16, sf, cmd);
    return sf;
  }

  /** Complete later through the front end, logging an error status. */
  #finish(qid: number, cid: number, st: number, dw0: number, cmd: Uint32Array | null): void {
    const sf = withDnr(st);
    if (sf & 0x7ff) this.logError(qid, cid, sf, cmd);
    this.#front.complete(qid, cid, sf, dw0);
  }

  /** Add an entry to the Error Information log (for errors the front end completes itself). */
  logError(qid: number, cid: number, sf: number, cmd: Uint32Array | null): void {
    this.#errorCount++;
    const e = encodeErrorLogEntry({
      error_count: new Uint64(BigInt(this.#errorCount)),
      sqid: qid,
      cmdid: cid,
      status_field: sf & 0x7fff,
      parm_error_location: 0xffff,
      lba: new Uint64(cmd && qid !== 0 && isRw(cmd[0] & 0xff) ? BigInt(cmd[10]) + (BigInt(cmd[11]) << 32n) : 0n),
      nsid: cmd ? cmd[1] : 0,
    });
    this.#errors.unshift(e);
    if (this.#errors.length > 16) this.#errors.length = 16;
  }

  /** Fault injection: flip a bit of block `lba`'s stored PI field; false when the namespace has no PI there. */
  corruptPi(nsid: number, lba: number, field: PiCheck): boolean {
    return this.#ns.get(nsid)?.pi?.corrupt(lba, field) ?? false;
  }

  /** Count a media error in SMART (an injected media status). */
  noteMediaError(): void {
    this.#smart.mediaErrors++;
  }

  /** Set SMART Critical Warning bits (tests) and raise the event when enabled. */
  setCriticalWarning(bits: number): void {
    this.#criticalWarning = bits & 0xff;
    this.#smartEvent();
  }

  // ---- data transfer through the port -------------------------------------------------------

  /** Gather the mapped bytes into a new array. */
  #gather(len: number): Uint8Array {
    const out = new Uint8Array(len), port = this.#port;
    let p = 0;
    for (let i = 0, n = port.count; i < n; i++) {
      const s = port.segment(i);
      out.set(s, p);
      p += s.length;
    }
    return out;
  }

  /** Scatter `src` into the mapped bytes. */
  #scatter(src: Uint8Array): void {
    const port = this.#port;
    let p = 0;
    for (let i = 0, n = port.count; i < n && p < src.length; i++) {
      const s = port.segment(i);
      const k = Math.min(s.length, src.length - p);
      s.set(src.subarray(p, p + k));
      p += k;
    }
  }

  /** Controller-to-host transfer of a data structure of `len` bytes (the command's own length). */
  #toHost(cmd: Uint32Array, data: Uint8Array, len: number): number {
    if (len > this.#mdtsBytes()) return S.INVALID_FIELD;
    const st = this.#port.map(cmd, len);
    if (st) return st;
    const buf = data.length >= len ? data.subarray(0, len) : (() => {
      const b = new Uint8Array(len);
      b.set(data);
      return b;
    })();
    this.#scatter(buf);
    return 0;
  }

  #fromHost(cmd: Uint32Array, len: number): Uint8Array | number {
    const st = this.#port.map(cmd, len);
    if (st) return st;
    return this.#gather(len);
  }

  #mdtsBytes(): number {
    return this.#o.mdts === 0 ? Infinity : PAGE * 2 ** this.#o.mdts;
  }

  // ---- admin commands ----------------------------------------------------------------------

  #admin(cmd: Uint32Array): number {
    const opc = cmd[0] & 0xff;
    if (this.#san.running && !SANITIZE_ALLOWED.has(opc)) return S.SANITIZE_IN_PROGRESS;
    if (this.#fabrics && NOT_ON_FABRICS.has(opc)) return S.INVALID_OPCODE;
    switch (opc) {
      case AdminOpc.IDENTIFY:
        return this.#identify(cmd);
      case AdminOpc.GET_LOG_PAGE:
        return this.#getLog(cmd);
      case AdminOpc.SET_FEATURES:
        return this.#setFeature(cmd);
      case AdminOpc.GET_FEATURES:
        return this.#getFeature(cmd);
      case AdminOpc.ASYNC_EVENT_REQUEST:
        if (this.#aers.length > 3) return S.AER_LIMIT_EXCEEDED;
        this.#aers.push({ cid: cmd[0] >>> 16 });
        this.#deliverEvents();
        return PENDING;
      case AdminOpc.ABORT:
        return this.#abort(cmd);
      case AdminOpc.FORMAT_NVM:
        return this.#format(cmd);
      case AdminOpc.DEVICE_SELF_TEST:
        return this.#selfTest(cmd);
      case AdminOpc.FW_IMAGE_DOWNLOAD:
        return this.#fwDownload(cmd);
      case AdminOpc.FW_COMMIT:
        return this.#fwCommit(cmd);
      case AdminOpc.SANITIZE:
        return this.#sanitize(cmd);
      case AdminOpc.NS_MANAGEMENT:
        return this.#nsMgmt(cmd);
      case AdminOpc.NS_ATTACHMENT:
        return this.#nsAttach(cmd);
      case AdminOpc.KEEP_ALIVE:
        return 0;
      default:
        return S.INVALID_OPCODE;
    }
  }

  #identify(cmd: Uint32Array): number {
    const cns = cmd[10] & 0xff, nsid = cmd[1];
    const d = new Uint8Array(4096);
    const dv = new DataView(d.buffer);
    switch (cns) {
      case Cns.CONTROLLER:
        this.#idCtrl(d, dv);
        break;
      case Cns.NAMESPACE:
      case SimCns.ALLOCATED_NS: {
        if (nsid === 0xffffffff) {
          this.#idNs(d, dv, null);
          break;
        }
        if (nsid === 0 || nsid > this.#o.maxNamespaces) return S.INVALID_NAMESPACE;
        const ns = this.#ns.get(nsid);
        if (ns && (ns.attached || cns === SimCns.ALLOCATED_NS)) this.#idNs(d, dv, ns);
        break;
      }
      case Cns.ACTIVE_NS_LIST:
      case SimCns.ALLOCATED_NS_LIST: {
        if (nsid >= 0xfffffffe) return S.INVALID_NAMESPACE;
        const ids = [...this.#ns.keys()].sort((a, b) => a - b)
          .filter((id) => id > nsid && (cns !== Cns.ACTIVE_NS_LIST || this.#ns.get(id)!.attached));
        encodeNsidList(ids, d);
        break;
      }
      case Cns.NS_DESCRIPTORS: {
        const ns = this.#ns.get(nsid);
        if (!ns || !ns.attached) return S.INVALID_NAMESPACE;
        // A version 4 UUID made of the NGUID.
        const uuid = ns.nguid.slice();
        uuid[6] = (uuid[6] & 0x0f) | 0x40;
        uuid[8] = (uuid[8] & 0x3f) | 0x80;
        encodeNsDescriptors([
          { nidt: Nidt.EUI64, id: ns.nguid.subarray(8, 16) },
          { nidt: Nidt.NGUID, id: ns.nguid },
          { nidt: Nidt.UUID, id: uuid },
          { nidt: Nidt.CSI, id: new Uint8Array([ns.zns ? CSI_ZNS : 0]) },
        ], d);
        break;
      }
      case SimCns.CSI_CTRL: // NVM: nothing; ZNS: ZASL
        if ((cmd[11] >>> 24) === CSI_ZNS && [...this.#ns.values()].some((n) => n.zns)) {
          d[0] = [...this.#ns.values()].find((n) => n.zns)!.zns!.zasl;
        } else if ((cmd[11] >>> 24) !== 0) return S.INVALID_FIELD;
        break;
      case Cns.CSI_NS: { // NVM: the extended LBA formats (guard sizes); ZNS: zone size and limits
        const ns = this.#ns.get(nsid), csi = cmd[11] >>> 24;
        if (csi !== 0 && !(csi === CSI_ZNS && ns?.zns)) return S.INVALID_FIELD;
        if (!ns?.attached) return S.INVALID_NAMESPACE;
        if (csi === CSI_ZNS) d.set(ns.zns!.identify(simLbafCount(this.#o.piFormats) - 1));
        else simNvmIdNs(d, simLbafCount(this.#o.piFormats));
        break;
      }
      case SimCns.NS_CTRL_LIST: {
        const ns = this.#ns.get(nsid);
        if (ns?.attached) encodeControllerList([1], d);
        break;
      }
      case SimCns.CTRL_LIST:
        encodeControllerList([1], d);
        break;
      default:
        return S.INVALID_FIELD;
    }
    this.#front.identify?.(cns, nsid, d);
    return this.#toHost(cmd, d, 4096);
  }

  #idCtrl(d: Uint8Array, dv: DataView): void {
    const o = this.#o, id = this.#id, C = IdCtrlOffset;
    dv.setUint16(C.VID, id.vid ?? 0x1d1d, true);
    dv.setUint16(C.SSVID, id.ssvid ?? 0x1d1d, true);
    padAscii(d, C.SN, 20, this.#serial);
    padAscii(d, C.MN, 40, o.model);
    padAscii(d, C.FR, 8, this.#fwSlots[this.#fwActive - 1]);
    d[C.RAB] = 6;
    d.set(id.ieee ?? [0x53, 0x4e, 0x54], C.IEEE);
    d[C.MDTS] = o.mdts;
    dv.setUint16(C.CNTLID, this.#cntlid, true);
    dv.setUint32(C.VER, 0x00010400, true);
    dv.setUint32(C.RTD3E, 1_000_000, true);
    dv.setUint32(C.OAES, 0x300, true); // namespace attribute and firmware activation notices
    d[C.CNTRLTYPE] = 1; // I/O controller
    dv.setUint16(C.OACS, 0x1e, true); // format, firmware, namespace management, self-test
    d[C.ACL] = 3;
    d[C.AERL] = 3;
    d[C.FRMW] = (o.fwSlot1ReadOnly ? 1 : 0) | (o.fwSlots << 1) | 0x10;
    d[C.LPA] = 0x0e; // commands supported and effects, extended data, telemetry (as before the split)
    d[C.ELPE] = 15;
    d[C.NPSS] = 0;
    dv.setUint16(C.WCTEMP, 343, true);
    dv.setUint16(C.CCTEMP, 373, true);
    setU64(dv, C.TNVMCAP, this.#capacity);
    setU64(dv, C.UNVMCAP, this.#capacity - this.#usedBytes());
    dv.setUint16(C.EDSTT, 1, true);
    d[C.FWUG] = o.fwug;
    dv.setUint32(C.SANICAP, o.sanicap & 7, true);
    d[C.SQES] = 0x66;
    d[C.CQES] = 0x44;
    dv.setUint16(C.MAXCMD, 0, true);
    dv.setUint32(C.NN, o.maxNamespaces, true);
    dv.setUint16(C.ONCS, 0x1dd, true);
    d[C.FNA] = 0x04;
    d[C.VWC] = o.vwc ? 0x07 : 0x06;
    dv.setUint16(C.OCFS, 1, true);
    dv.setUint32(C.MNAN, o.maxNamespaces, true);
    padAscii(d, C.SUBNQN, 256, id.subnqn ?? `nqn.2024-01.io.tsnvme:sim:${this.#serial}`);
    for (let i = C.SUBNQN + 255; i >= C.SUBNQN && d[i] === 0x20; i--) d[i] = 0;
    const f = this.#fabrics;
    if (f) {
      dv.setUint32(C.CTRATT, f.ctratt ?? 1, true);
      dv.setUint16(C.OACS, 0, true);
      d[C.FRMW] = 1 | (1 << 1); // one read-only slot: firmware is the backing controller's
      dv.setUint16(C.KAS, f.kas ?? 10, true);
      dv.setUint32(C.SANICAP, 0, true);
      dv.setUint16(C.MAXCMD, f.maxcmd, true);
      dv.setUint32(C.SGLS, f.sgls, true);
      dv.setUint32(C.IOCCSZ, (64 + f.inCapsule) / 16, true);
      dv.setUint32(C.IORCSZ, 1, true);
      dv.setUint16(C.ICDOFF, 0, true);
      d[C.FCATT] = 0; // dynamic controller model
      d[C.MSDBD] = 1;
    }
    if (this.#fdp) dv.setUint32(C.CTRATT, dv.getUint32(C.CTRATT, true) | 1 << 19, true); // FDPS
    dv.setUint16(C.PSD0 + 0 * PSD_BYTES + PsdOffset.MP, 2500, true); // power state 0: 25 W
    if (o.piFormats) dv.setUint32(C.CTRATT, dv.getUint32(C.CTRATT, true) | Ctratt.ELBAS, true);
  }

  #idNs(d: Uint8Array, dv: DataView, ns: Ns | null): void {
    const N = IdNsOffset;
    const nf = simLbafCount(this.#o.piFormats);
    d[N.NLBAF] = nf - 1;
    for (let i = 0; i < nf; i++) {
      d[N.LBAF + LBAF_BYTES * i + LbafOffset.LBADS] = LBAF_DS[i];
      d[N.LBAF + LBAF_BYTES * i + LbafOffset.RP] = LBAF_DS[i] === 12 ? 0 : 2; // relative performance
    }
    d[N.DLFEAT] = 0x09; // deallocated blocks read zero; Write Zeroes may deallocate
    dv.setUint16(N.MSSRL, 128, true);
    dv.setUint32(N.MCL, 1024, true);
    d[N.MSRC] = 7;
    if (!ns) return;
    const blocks = this.#blocks(ns);
    setU64(dv, N.NSZE, blocks);
    setU64(dv, N.NCAP, blocks);
    setU64(dv, N.NUSE, blocks);
    d[N.FLBAS] = ns.lbaf;
    simIdNsPi(d, ns.pi ?? null, nf);
    setU64(dv, N.NVMCAP, ns.media.size);
    d.set(ns.nguid, N.NGUID);
    d.set(ns.nguid.subarray(8, 16), N.EUI64);
  }

  #blocks(ns: Ns): number {
    return Math.floor(ns.media.size / (1 << LBAF_DS[ns.lbaf]));
  }

  #usedBytes(): number {
    let u = 0;
    for (const ns of this.#ns.values()) u += ns.media.size;
    return u;
  }
  #abort(cmd: Uint32Array): number {
    const sqid = cmd[10] & 0xffff, cid = cmd[10] >>> 16;
    this.#dw0 = 1;
    if (this.#front.abort?.(sqid, cid)) {
      this.#dw0 = 0;
      return 0;
    }
    if (sqid === 0) {
      const j = this.#aers.findIndex((a) => a.cid === cid);
      if (j >= 0) {
        this.#aers.splice(j, 1);
        this.#finish(0, cid, S.ABORT_REQUESTED, 0, null);
        this.#dw0 = 0;
      }
    }
    return 0;
  }

  // ---- async events ------------------------------------------------------------------------

  /** Queue an event (type, info, log page) and complete an outstanding AER if one waits. */
  #raise(type: number, info: number, lid: number): void {
    const dw0 = (type & 7) | ((info & 0xff) << 8) | ((lid & 0xff) << 16);
    if (!this.#events.includes(dw0)) this.#events.push(dw0);
    if (this.#enabled) this.#deliverEvents();
  }

  #deliverEvents(): void {
    for (let i = 0; i < this.#events.length && this.#aers.length;) {
      const ev = this.#events[i], lid = (ev >>> 16) & 0xff;
      if (this.#masked.has(lid)) {
        i++;
        continue;
      }
      this.#events.splice(i, 1);
      this.#masked.add(lid);
      const a = this.#aers.shift()!;
      this.#finish(0, a.cid, 0, ev, null);
    }
  }

  #smartEvent(): void {
    const cw = this.#criticalWarning | this.#tempWarning();
    const enabled = this.#feat.get(Fid.ASYNC_EVENT)! & 0xff;
    if (cw & enabled) this.#raise(1, cw & 2 ? 1 : cw & 1 ? 2 : 0, LogId.SMART);
  }

  #tempWarning(): number {
    const over = this.#tempThresh.get(0) ?? 343, under = this.#tempThresh.get(0x100000) ?? 0;
    return TEMP_K > over || TEMP_K < under ? 2 : 0;
  }

  // ---- log pages ---------------------------------------------------------------------------

  #getLog(cmd: Uint32Array): number {
    const lid = cmd[10] & 0xff, rae = (cmd[10] >>> 15) & 1;
    const numd = (cmd[10] >>> 16) + (cmd[11] & 0xffff) * 65536 + 1;
    const len = numd * 4;
    const off = cmd[12] + cmd[13] * TWO32;
    const nsid = cmd[1];
    if (off % 4) return S.INVALID_FIELD;
    let log: Uint8Array;
    switch (lid) {
      case LogId.ERROR:
        log = new Uint8Array(16 * ERROR_LOG_ENTRY_SIZE);
        this.#errors.forEach((e, i) => log.set(e, i * ERROR_LOG_ENTRY_SIZE));
        break;
      case LogId.SMART:
        if (nsid !== 0 && nsid !== 0xffffffff) return S.INVALID_FIELD;
        log = this.#smartLog();
        break;
      case LogId.FW_SLOT: {
        log = encodeFwLog({ afi: this.#fwActive | (this.#fwNext << 4), frs: this.#fwSlots });
        break;
      }
      case LogId.CHANGED_NS: {
        log = encodeNsidList(this.#changedNs);
        if (!rae) this.#changedNs = [];
        break;
      }
      case LogId.CMD_EFFECTS:
        log = this.#effectsLog();
        break;
      case LogId.SELF_TEST: {
        log = encodeSelfTestLog({ currentOperation: this.#dst.op, completion: this.#dst.op ? this.#dstPercent() : 0, results: this.#dstLog });
        break;
      }
      case LogId.SANITIZE: {
        const s = this.#san;
        const est = Math.max(1, Math.ceil(this.#o.sanitizeMs / 1000));
        log = encodeSanitizeLog({
          sprog: s.running ? s.sprog : 0xffff,
          sstat: s.sstat,
          scdw10: s.cdw10,
          eto: this.#o.sanicap & 4 ? est : 0xffffffff,
          etbe: this.#o.sanicap & 2 ? est : 0xffffffff,
          etce: this.#o.sanicap & 1 ? est : 0xffffffff,
        });
        break;
      }
      default: {
        const r = this.#fdp?.log(lid, cmd[11] >>> 16, (cmd[10] >>> 8) & 0x7f) ?? S.INVALID_LOG_PAGE;
        if (typeof r === "number") return r;
        log = r;
      }
    }
    if (off > log.length) return S.INVALID_FIELD;
    const out = new Uint8Array(len);
    out.set(log.subarray(off, Math.min(log.length, off + len)));
    const st = this.#toHost(cmd, out, len);
    if (!st && !rae) this.#masked.delete(lid);
    if (!st && !rae) this.#deliverEvents();
    return st;
  }

  #smartLog(): Uint8Array {
    const s = this.#smart;
    const u = (v: number) => new Uint128(BigInt(v));
    return encodeSmartLog({
      critical_warning: this.#criticalWarning | this.#tempWarning(),
      temperature: TEMP_K,
      avail_spare: 100,
      spare_thresh: 10,
      percent_used: 0,
      data_units_read: u(Math.ceil(s.unitsRead / 1000)),
      data_units_written: u(Math.ceil(s.unitsWritten / 1000)),
      host_read_commands: u(s.reads),
      host_write_commands: u(s.writes),
      power_cycles: u(s.powerCycles),
      unsafe_shutdowns: u(s.unsafe),
      media_errors: u(s.mediaErrors),
      num_err_log_entries: u(this.#errorCount),
      temperature_sensor_1: TEMP_K,
    });
  }

  #effectsLog(): Uint8Array {
    const acs: number[] = [], iocs: number[] = [];
    const admin: [number, number][] = [
      [AdminOpc.DELETE_IO_SQ, 1], [AdminOpc.CREATE_IO_SQ, 1], [AdminOpc.GET_LOG_PAGE, 1],
      [AdminOpc.DELETE_IO_CQ, 1], [AdminOpc.CREATE_IO_CQ, 1], [AdminOpc.IDENTIFY, 1], [AdminOpc.ABORT, 1],
      [AdminOpc.SET_FEATURES, 1], [AdminOpc.GET_FEATURES, 1], [AdminOpc.ASYNC_EVENT_REQUEST, 1],
      [AdminOpc.NS_MANAGEMENT, 0x1 | 0x2 | 0x4 | 0x8], [AdminOpc.FW_COMMIT, 0x1 | 0x10],
      [AdminOpc.FW_IMAGE_DOWNLOAD, 1], [AdminOpc.DEVICE_SELF_TEST, 1], [AdminOpc.NS_ATTACHMENT, 0x1 | 0x4 | 0x8],
      [AdminOpc.KEEP_ALIVE, 1], [AdminOpc.FORMAT_NVM, 0x1 | 0x2 | 0x4 | 0x8], [AdminOpc.SANITIZE, 0x1 | 0x2 | 0x4 | 0x8],
    ];
    for (const [opc, e] of admin) if (!this.#fabrics || !NOT_ON_FABRICS.has(opc)) acs[opc] = e;
    const io: [number, number][] = [
      [IoOpc.FLUSH, 1 | 2], [IoOpc.WRITE, 1 | 2], [IoOpc.READ, 1], [IoOpc.COMPARE, 1],
      [IoOpc.WRITE_ZEROES, 1 | 2], [IoOpc.DATASET_MANAGEMENT, 1 | 2], [IoOpc.VERIFY, 1], [IoOpc.COPY, 1 | 2],
    ];
    for (const [opc, e] of io) iocs[opc] = e;
    return encodeEffectsLog({ acs, iocs });
  }

  // ---- features ----------------------------------------------------------------------------

  #setFeature(cmd: Uint32Array): number {
    const fid = cmd[10] & 0xff, sv = cmd[10] >>> 31, v = cmd[11];
    if (this.#fdp && (fid === FdpFid.FDP || fid === FdpFid.FDP_EVENTS)) return this.#fdpFeature(cmd, true);
    switch (fid) {
      case Fid.NUM_QUEUES: {
        const nsq = (v & 0xffff) + 1, ncq = (v >>> 16) + 1;
        if (nsq === 0x10000 || ncq === 0x10000) return S.INVALID_FIELD;
        if (this.#ioQueuesCreated) return S.COMMAND_SEQUENCE_ERROR;
        this.#grantedQueues = Math.min(this.#o.maxQueues, Math.max(nsq, ncq));
        const g = Math.min(this.#o.maxQueues, nsq) - 1, h = Math.min(this.#o.maxQueues, ncq) - 1;
        this.#grantedQueues = Math.max(g, h) + 1;
        this.#dw0 = (g | (h << 16)) >>> 0;
        return 0;
      }
      case Fid.POWER_MGMT:
        if ((v & 0x1f) > 0) return S.INVALID_FIELD;
        break;
      case Fid.VOLATILE_WC:
        if (!this.#o.vwc) return S.INVALID_FIELD;
        break;
      case Fid.TEMP_THRESHOLD: {
        const sel = (v >>> 16) & 0xf, thsel = (v >>> 20) & 3;
        if (thsel > 1 || sel > 8) return S.INVALID_FIELD;
        if (sel === 0) this.#tempThresh.set(thsel << 20, v & 0xffff);
        if (this.#tempWarning()) this.#smartEvent();
        return 0;
      }
      case Fid.TIMESTAMP: {
        const d = this.#fromHost(cmd, 8);
        if (typeof d === "number") return d;
        this.#timestampBase = decodeTimestamp(d).timestamp;
        this.#timestampSetAt = performance.now();
        this.#timestampOrigin = 1;
        return 0;
      }
      case Fid.HOST_BEHAVIOR: {
        const d = this.#fromHost(cmd, 512);
        if (typeof d === "number") return d;
        this.#hostBehavior = d;
        return 0;
      }
      case Fid.ARBITRATION:
      case Fid.ERROR_RECOVERY:
      case Fid.IRQ_COALESCING:
      case Fid.IRQ_CONFIG:
      case Fid.WRITE_ATOMICITY:
      case Fid.ASYNC_EVENT:
      case Fid.KEEP_ALIVE_TIMER:
        break;
      default:
        return S.INVALID_FIELD;
    }
    this.#feat.set(fid, v);
    if (sv) this.#saved.set(fid, v);
    return 0;
  }

  #getFeature(cmd: Uint32Array): number {
    const fid = cmd[10] & 0xff, sel = (cmd[10] >>> 8) & 7;
    if (this.#fdp && sel !== 3 && (fid === FdpFid.FDP || fid === FdpFid.FDP_EVENTS)) return this.#fdpFeature(cmd, false);
    if (sel > 3) return S.INVALID_FIELD;
    if (sel === 3) {
      if (fid === Fid.NUM_QUEUES || fid === Fid.TIMESTAMP || fid === Fid.HOST_BEHAVIOR) this.#dw0 = 0x4;
      else if (fid in FEATURE_DEFAULTS || fid === Fid.TEMP_THRESHOLD) this.#dw0 = 0x5;
      else return S.INVALID_FIELD;
      return 0;
    }
    switch (fid) {
      case Fid.NUM_QUEUES: {
        const g = this.#grantedQueues - 1;
        this.#dw0 = (g | (g << 16)) >>> 0;
        return 0;
      }
      case Fid.TEMP_THRESHOLD: {
        const thsel = (cmd[11] >>> 20) & 3;
        const def = thsel === 0 ? 343 : 0;
        this.#dw0 = sel === 1 ? def : (this.#tempThresh.get(thsel << 20) ?? def);
        return 0;
      }
      case Fid.TIMESTAMP: {
        const ts = this.#timestampOrigin
          ? this.#timestampBase + Math.floor(performance.now() - this.#timestampSetAt)
          : Math.floor(performance.now());
        const d = encodeTimestamp({ timestamp: ts, origin: this.#timestampOrigin });
        return this.#toHost(cmd, d, d.length);
      }
      case Fid.HOST_BEHAVIOR:
        return this.#toHost(cmd, this.#hostBehavior, 512);
    }
    if (!(fid in FEATURE_DEFAULTS)) return S.INVALID_FIELD;
    const def = fid === Fid.VOLATILE_WC && !this.#o.vwc ? 0 : FEATURE_DEFAULTS[fid];
    this.#dw0 = sel === 0 ? this.#feat.get(fid)! : sel === 1 ? def : (this.#saved.get(fid) ?? def);
    return 0;
  }

  /** FDP (1Dh: read only here, the configuration is the subsystem's) and FDP Events (1Eh) features. */
  #fdpFeature(cmd: Uint32Array, set: boolean): number {
    const fdp = this.#fdp!, fid = cmd[10] & 0xff;
    if (fid === FdpFid.FDP) {
      if (set) return 0x10e; // Feature Not Changeable
      const r = fdp.getFdp(cmd[11] & 0xffff);
      if (r < 0) return -r;
      this.#dw0 = r;
      return 0;
    }
    const ruhs = this.#ns.get(cmd[1])?.ruhs;
    if (!ruhs) return S.INVALID_NAMESPACE;
    const ph = cmd[11] & 0xffff, noet = (cmd[11] >>> 16) & 0xff, len = fdpTransferLength(true, cmd);
    if (set) {
      const d = this.#fromHost(cmd, len);
      return typeof d === "number" ? d : fdp.setEvents(ruhs, ph, [...d.subarray(0, noet)], (cmd[12] & 1) === 1);
    }
    const r = fdp.getEvents(ruhs, ph, noet, len);
    if (typeof r === "number") return r;
    this.#dw0 = r.dw0;
    return this.#toHost(cmd, r.data, len);
  }

  // ---- format, self-test, firmware, sanitize, namespace management --------------------------

  #format(cmd: Uint32Array): number {
    const v = cmd[10], lbaf = (v & 0xf) | ((v >>> 8) & 0x30), mset = (v >>> 4) & 1, pi = (v >>> 5) & 7;
    const ses = (v >>> 9) & 7, nsid = cmd[1];
    if (ses > 2) return S.INVALID_FIELD;
    if (lbaf >= simLbafCount(this.#o.piFormats) || (!this.#o.piFormats && (mset || pi))) return S.INVALID_FORMAT;
    const targets = nsid === 0xffffffff ? [...this.#ns.values()].filter((n) => n.attached) : [this.#ns.get(nsid)];
    if (!targets.length || targets.some((n) => !n || !n.attached)) return S.INVALID_NAMESPACE;
    const metas = (targets as Ns[]).map((n) => simFormat(lbaf, mset, pi, (v >>> 8) & 1, n.media.size, !n.media.async));
    const bad = metas.find((x) => typeof x === "number");
    if (bad !== undefined) return bad as number;
    (targets as Ns[]).forEach((n, i) => n.pi = metas[i] as SimMeta | null);
    const slow = (targets as Ns[]).filter((n) => n.media.async);
    const done = slow.length ? all(slow.length, this.#done(0, cmd)) : null;
    for (const ns of targets as Ns[]) {
      ns.lbaf = lbaf;
      const m = ns.media;
      if (m.async) mZero(m, 0, m.size, done!);
      else m.zero(0, m.size);
    }
    return done ? PENDING : 0;
  }

  #dstPercent(): number {
    const d = this.#dst;
    return Math.min(99, Math.floor(((performance.now() - d.start) / Math.max(1, d.end - d.start)) * 100));
  }

  #selfTest(cmd: Uint32Array): number {
    const stc = cmd[10] & 0xf, nsid = cmd[1];
    if (stc === 0xf) {
      if (this.#dst.op) this.#finishSelfTest(1);
      return 0;
    }
    if (stc !== 1 && stc !== 2) return S.INVALID_FIELD;
    if (nsid !== 0 && nsid !== 0xffffffff && !this.#ns.get(nsid)?.attached) return S.INVALID_NAMESPACE;
    if (this.#dst.op) return S.SELF_TEST_IN_PROGRESS;
    const now = performance.now();
    this.#dst = { op: stc, nsid, start: now, end: now + this.#o.selfTestMs * stc };
    return 0;
  }

  /** result: 0 no error, 1 aborted by a Device Self-test command, 2 aborted by a controller reset. */
  #finishSelfTest(result: number): void {
    this.#dstLog.unshift({ code: this.#dst.op, result, nsid: this.#dst.nsid });
    if (this.#dstLog.length > 20) this.#dstLog.length = 20;
    this.#dst = { op: 0, nsid: 0, start: 0, end: 0 };
  }

  #fwDownload(cmd: Uint32Array): number {
    const numd = cmd[10] + 1, ofst = cmd[11];
    const len = numd * 4, off = ofst * 4;
    const g = this.#o.fwug;
    if (g !== 0 && g !== 0xff && (len % (g * 4096) || off % (g * 4096))) return S.INVALID_FIELD;
    if (off < this.#fwImageLen && off !== 0) return S.OVERLAPPING_RANGE;
    if (off > this.#fwImageLen) return S.INVALID_FIELD;
    if (len > this.#mdtsBytes()) return S.INVALID_FIELD;
    const d = this.#fromHost(cmd, len);
    if (typeof d === "number") return d;
    if (off === 0) this.#fwImageLen = 0;
    if (this.#fwImage.length < off + len) {
      const n = new Uint8Array(Math.max(off + len, this.#fwImage.length * 2));
      n.set(this.#fwImage.subarray(0, this.#fwImageLen));
      this.#fwImage = n;
    }
    this.#fwImage.set(d, off);
    this.#fwImageLen = off + len;
    return 0;
  }

  #fwCommit(cmd: Uint32Array): number {
    const fs = cmd[10] & 7, ca = (cmd[10] >>> 3) & 7;
    if (ca > 3) return S.INVALID_FIELD;
    let slot = fs;
    if (slot === 0) {
      if (ca >= 2) slot = this.#fwActive;
      else {
        slot = this.#fwSlots.findIndex((s, i) => !s && !(i === 0 && this.#o.fwSlot1ReadOnly)) + 1;
        if (slot === 0) slot = this.#fwActive === this.#o.fwSlots ? (this.#o.fwSlot1ReadOnly ? 2 : 1) : this.#fwActive + 1;
      }
    }
    if (slot > this.#o.fwSlots) return S.INVALID_FW_SLOT;
    // 0 and 1 commit the downloaded image, 3 does when one was downloaded; 2 (and 3 without one) activate what the slot holds.
    if (ca < 2 || (ca === 3 && this.#fwImageLen > 0)) {
      if (slot === 1 && this.#o.fwSlot1ReadOnly) return S.INVALID_FW_SLOT;
      if (this.#fwImageLen === 0) return S.INVALID_FW_IMAGE;
      let rev = "";
      for (let i = 0; i < 8 && i < this.#fwImageLen; i++) {
        const c = this.#fwImage[i];
        if (c < 0x20 || c > 0x7e) break;
        rev += String.fromCharCode(c);
      }
      this.#fwSlots[slot - 1] = rev.trim() || `SIM${slot}`;
      this.#fwImageLen = 0;
    } else if (!this.#fwSlots[slot - 1]) return S.INVALID_FW_IMAGE;
    if (ca === 1 || ca === 2) this.#fwNext = slot === this.#fwActive ? 0 : slot;
    if (ca === 3) {
      this.#fwActive = slot;
      this.#fwNext = 0;
      if (this.#feat.get(Fid.ASYNC_EVENT)! & 0x200) this.#raise(2, 1, LogId.FW_SLOT);
    }
    return 0;
  }

  #sanitize(cmd: Uint32Array): number {
    const v = cmd[10], act = v & 7;
    const cap = this.#o.sanicap;
    if (this.#san.running) return S.SANITIZE_IN_PROGRESS;
    if (act === 1) {
      if ((this.#san.sstat & 7) === 3) this.#san.sstat = 0;
      return 0;
    }
    const need = act === 2 ? 2 : act === 3 ? 4 : act === 4 ? 1 : 0;
    if (!need || !(cap & need)) return S.INVALID_FIELD;
    // Media behind another controller are that controller's to sanitize.
    for (const ns of this.#ns.values()) if (ns.media.async) return S.INVALID_FIELD;
    if (this.#dst.op) this.#finishSelfTest(2);
    const now = performance.now();
    const owpass = (v >>> 4) & 0xf;
    this.#san = {
      sstat: 2,
      sprog: 0,
      cdw10: v,
      start: now,
      end: now + this.#o.sanitizeMs,
      running: true,
      action: act,
      pattern: cmd[11],
      passes: owpass === 0 ? 16 : owpass,
      invert: ((v >>> 8) & 1) === 1,
    };
    return 0;
  }

  #finishSanitize(): void {
    const s = this.#san;
    for (const ns of this.#ns.values()) {
      if (ns.media.async) continue;
      if (s.action === 3) {
        // The last pass decides what stays: inverted on even-numbered passes when OIPBP is set.
        const inv = s.invert && s.passes % 2 === 0;
        ns.media.fillPattern(inv ? ~s.pattern >>> 0 : s.pattern >>> 0);
      } else ns.media.zero(0, ns.media.size);
    }
    s.running = false;
    s.sprog = 0xffff;
    s.sstat = 1 | (s.action === 3 ? (Math.min(31, s.passes) << 3) : 0) | 0x100;
    this.#sanDone++;
    this.#raise(6, 1, LogId.SANITIZE);
  }

  #nsMgmt(cmd: Uint32Array): number {
    const sel = cmd[10] & 0xf;
    if (sel === 0) {
      const d = this.#fromHost(cmd, 4096);
      if (typeof d === "number") return d;
      const c = decodeNamespaceCreate(d);
      const nsze = Number(c.nsze), ncap = Number(c.ncap), flbas = c.flbas, lbaf = c.lbaFormat;
      if (lbaf >= simLbafCount(this.#o.piFormats) || SIM_LBAFS[lbaf].ms || (flbas & 0x10)) return S.INVALID_FORMAT;
      if (nsze === 0 || ncap > nsze) return S.INVALID_FIELD;
      if (ncap !== nsze) return S.THIN_PROVISIONING_NOT_SUPPORTED;
      const bytes = nsze * (1 << LBAF_DS[lbaf]);
      if (bytes > this.#capacity - this.#usedBytes()) return S.NS_INSUFFICIENT_CAPACITY;
      let nsid = 0;
      for (let i = 1; i <= this.#o.maxNamespaces; i++) {
        if (!this.#ns.has(i)) {
          nsid = i;
          break;
        }
      }
      if (!nsid) return S.NS_ID_UNAVAILABLE;
      this.#ns.set(nsid, { nsid, media: new MemMedia(bytes), lbaf, attached: false, nguid: this.#nguid(nsid) });
      this.#dw0 = nsid;
      return 0;
    }
    if (sel === 1) {
      const nsid = cmd[1];
      const ids = nsid === 0xffffffff ? [...this.#ns.keys()] : [nsid];
      if (nsid !== 0xffffffff && !this.#ns.has(nsid)) return S.INVALID_NAMESPACE;
      for (const id of ids) {
        const ns = this.#ns.get(id)!;
        ns.media.close();
        this.#ns.delete(id);
        if (ns.attached) this.#nsChanged(id);
      }
      return 0;
    }
    return S.INVALID_FIELD;
  }

  #nsAttach(cmd: Uint32Array): number {
    const sel = cmd[10] & 0xf, nsid = cmd[1];
    if (sel > 1) return S.INVALID_FIELD;
    const ns = this.#ns.get(nsid);
    if (!ns) return S.INVALID_NAMESPACE;
    const d = this.#fromHost(cmd, 4096);
    if (typeof d === "number") return d;
    if (!decodeControllerList(d).includes(1)) return S.CONTROLLER_LIST_INVALID;
    if (sel === 0 && ns.attached) return S.NS_ALREADY_ATTACHED;
    if (sel === 1 && !ns.attached) return S.NS_NOT_ATTACHED;
    ns.attached = sel === 0;
    this.#nsChanged(nsid);
    return 0;
  }

  #nsChanged(nsid: number): void {
    if (!this.#changedNs.includes(nsid)) this.#changedNs.push(nsid);
    if (this.#feat.get(Fid.ASYNC_EVENT)! & 0x100) this.#raise(2, 0, LogId.CHANGED_NS);
  }


  // ---- IO commands -------------------------------------------------------------------------

  /** A MediaDone that completes `cmd` through the front end: `ok()`'s status on success, else the media's. */
  #done(qid: number, cmd: Uint32Array, ok?: () => number): MediaDone {
    const cid = cmd[0] >>> 16;
    return (sf) => {
      if (sf) {
        if (((sf >>> 8) & 7) === 2) this.#smart.mediaErrors++;
        this.#finish(qid, cid, sf, 0, cmd);
      } else this.#finish(qid, cid, ok ? ok() : 0, 0, cmd);
    };
  }

  #io(qid: number, cmd: Uint32Array): number {
    const opc = cmd[0] & 0xff, nsid = cmd[1];
    if (this.#san.running) return S.SANITIZE_IN_PROGRESS;
    if (opc === IoOpc.FLUSH) {
      if (nsid === 0xffffffff) {
        const slow: AsyncMedia[] = [];
        for (const ns of this.#ns.values()) if (ns.attached && ns.media.async) slow.push(ns.media);
        if (!slow.length) return 0;
        const done = all(slow.length, this.#done(qid, cmd));
        for (const m of slow) mFlush(m, done);
        return PENDING;
      }
      const ns = this.#ns.get(nsid);
      if (!ns?.attached) return S.INVALID_NAMESPACE;
      if (!ns.media.async) return 0;
      mFlush(ns.media, this.#done(qid, cmd));
      return PENDING;
    }
    const ns = this.#ns.get(nsid);
    if (ns?.attached && (ns.zns || ns.ruhs)) {
      const st = this.#zonedOrPlaced(cmd, ns);
      if (st !== CARRY_ON) return st;
    }
    if (!IO_OPCODES.has(opc)) return S.INVALID_OPCODE;
    if (!ns || !ns.attached) return S.INVALID_NAMESPACE;
    const bs = 1 << LBAF_DS[ns.lbaf], blocks = this.#blocks(ns);
    const slba = cmd[10] + cmd[11] * TWO32, nlb = (cmd[12] & 0xffff) + 1;
    if (ns.pi && isPiIo(opc) && !ns.media.async) {
      return slba + nlb > blocks ? S.LBA_OUT_OF_RANGE : simPiIo(ns.pi, ns.media, this.#port, cmd, opc, slba, nlb, this.#mdtsBytes());
    }
    switch (opc) {
      case IoOpc.READ:
      case IoOpc.WRITE:
      case IoOpc.COMPARE: {
        if (slba + nlb > blocks) return S.LBA_OUT_OF_RANGE;
        const len = nlb * bs;
        if (len > this.#mdtsBytes()) return S.INVALID_FIELD;
        const st = this.#port.map(cmd, len);
        if (st) return st;
        const m = ns.media;
        if (m.async) return this.#rwAsync(qid, cmd, m, opc, slba * bs, len);
        const port = this.#port;
        if (opc === IoOpc.WRITE) {
          for (let i = 0, n = port.count, off = slba * bs; i < n; i++) {
            const s = port.segment(i);
            m.write(off, s);
            off += s.length;
          }
          this.#countWrite(len);
          return 0;
        }
        if (opc === IoOpc.READ) {
          for (let i = 0, n = port.count, off = slba * bs; i < n; i++) {
            const s = port.segment(i);
            m.read(off, s);
            off += s.length;
          }
          this.#countRead(len);
          return 0;
        }
        const host = this.#gather(len), media = new Uint8Array(len);
        m.read(slba * bs, media);
        return sameBytes(host, media) ? 0 : S.COMPARE_FAILURE;
      }
      case IoOpc.WRITE_ZEROES:
        if (slba + nlb > blocks) return S.LBA_OUT_OF_RANGE;
        if (ns.media.async) {
          mZero(ns.media, slba * bs, nlb * bs, this.#done(qid, cmd));
          return PENDING;
        }
        ns.media.zero(slba * bs, nlb * bs);
        return 0;
      case IoOpc.VERIFY:
        return slba + nlb > blocks ? S.LBA_OUT_OF_RANGE : 0;
      case IoOpc.DATASET_MANAGEMENT: {
        const nr = (cmd[10] & 0xff) + 1, ad = (cmd[11] >>> 2) & 1;
        const d = this.#fromHost(cmd, nr * DSM_RANGE_BYTES);
        if (typeof d === "number") return d;
        const ranges = decodeDsmRanges(d, nr);
        if (ranges.some(([s, n]) => s + n > blocks)) return S.LBA_OUT_OF_RANGE;
        if (!ad) return 0;
        const m = ns.media;
        if (m.async) {
          const done = all(ranges.length, this.#done(qid, cmd));
          for (const [s, n] of ranges) mZero(m, s * bs, n * bs, done);
          return PENDING;
        }
        for (const [s, n] of ranges) m.zero(s * bs, n * bs), ns.pi?.deallocate(s, n);
        return 0;
      }
      case IoOpc.COPY: {
        const nr = (cmd[12] & 0xff) + 1, fmt = (cmd[12] >>> 8) & 0xf;
        if (fmt !== 0) return S.INVALID_FIELD;
        if (nr > 8) return S.COMMAND_SIZE_LIMIT_EXCEEDED;
        const d = this.#fromHost(cmd, nr * COPY_RANGE_BYTES);
        if (typeof d === "number") return d;
        const src: [number, number][] = [];
        let total = 0;
        for (const [s, n] of decodeCopyRanges(d, nr)) {
          if (n > 128) return S.COMMAND_SIZE_LIMIT_EXCEEDED;
          if (s + n > blocks) return S.LBA_OUT_OF_RANGE;
          total += n;
          if (total > 1024) return S.COMMAND_SIZE_LIMIT_EXCEEDED;
          src.push([s, n]);
        }
        if (slba + total > blocks) return S.LBA_OUT_OF_RANGE;
        const m = ns.media;
        if (m.async) {
          copyAsync(m, src, slba, bs, this.#done(qid, cmd));
          return PENDING;
        }
        ns.pi?.copy(src, slba);
        const parts = src.map(([s, n]) => {
          const b = new Uint8Array(n * bs);
          m.read(s * bs, b);
          return b;
        });
        let p = slba * bs;
        for (const b of parts) {
          m.write(p, b);
          p += b.length;
        }
        return 0;
      }
    }
    return S.INVALID_OPCODE;
  }

  /**
   * Zoned namespaces and FDP (lib/sim/zns.ts, lib/sim/fdp.ts): serve the
   * zoned and I/O Management commands; check a read or write against its
   * zone and account a write to its reclaim unit; CARRY_ON lets the NVM
   * command run as usual. Sync media only for the data these commands move.
   */
  #zonedOrPlaced(cmd: Uint32Array, ns: Ns): number {
    const opc = cmd[0] & 0xff, bs = 1 << LBAF_DS[ns.lbaf];
    const slba = cmd[10] + cmd[11] * TWO32, nlb = (cmd[12] & 0xffff) + 1;
    const z = ns.zns, m = ns.media;
    if (z && (opc === ZnsOpc.ZONE_MGMT_SEND || opc === ZnsOpc.ZONE_MGMT_RECV || opc === ZnsOpc.ZONE_APPEND)) {
      if (m.async) return S.INVALID_OPCODE;
      const st = zonedCommand(z, cmd, {
        blockSize: bs,
        maxBytes: this.#mdtsBytes(),
        toHost: (d) => this.#toHost(cmd, d, d.length),
        writeData: (off, len) => {
          const st = this.#port.map(cmd, len);
          if (st) return st;
          for (let i = 0, n = this.#port.count; i < n; i++) {
            const s = this.#port.segment(i);
            m.write(off, s);
            off += s.length;
          }
          this.#countWrite(len);
          return 0;
        },
        zero: (lba, n) => m.zero(lba * bs, n * bs),
        result: (dw0, dw1) => {
          this.#dw0 = dw0;
          this.#dw1 = dw1;
        },
      });
      if (!st && opc === ZnsOpc.ZONE_APPEND) this.#fdp?.write(ns.nsid, ns.ruhs ?? [], cmd[12], cmd[13], nlb * bs);
      return st;
    }
    if (ns.ruhs && (opc === IoMgmt.RECV_OPC || opc === IoMgmt.SEND_OPC)) {
      const fdp = this.#fdp!, len = fdpTransferLength(false, cmd);
      if ((cmd[10] & 0xff) !== IoMgmt.RUH_STATUS) return S.INVALID_FIELD;
      if (opc === IoMgmt.RECV_OPC) return this.#toHost(cmd, fdp.status(ns.ruhs, len, bs), len);
      const d = this.#fromHost(cmd, len);
      return typeof d === "number" ? d : fdp.update(ns.nsid, ns.ruhs, decodePidList(d, (cmd[10] >>> 16) + 1));
    }
    const write = opc === IoOpc.WRITE || opc === IoOpc.WRITE_ZEROES;
    if (z && (write || opc === IoOpc.READ || opc === IoOpc.COMPARE || opc === IoOpc.VERIFY)) {
      if (nlb * bs > this.#mdtsBytes() && opc !== IoOpc.WRITE_ZEROES && opc !== IoOpc.VERIFY) return S.INVALID_FIELD;
      const st = write ? z.write(slba, nlb) : z.read(slba, nlb);
      if (st) return st;
    }
    if (ns.ruhs && write) this.#fdp!.write(ns.nsid, ns.ruhs, cmd[12], cmd[13], nlb * bs);
    return CARRY_ON;
  }

  /** Read, Write or Compare on async media: completed through the front end. */
  #rwAsync(qid: number, cmd: Uint32Array, m: AsyncMedia, opc: number, off: number, len: number): number {
    const port = this.#port;
    if (opc === IoOpc.COMPARE) {
      const host = this.#gather(len), media = new Uint8Array(len);
      mRead(m, off, media, this.#done(qid, cmd, () => sameBytes(host, media) ? 0 : S.COMPARE_FAILURE));
      return PENDING;
    }
    const write = opc === IoOpc.WRITE;
    const n = port.count;
    const done = this.#done(qid, cmd, write ? () => this.#countWrite(len) : () => this.#countRead(len));
    if (n === 1) {
      if (write) mWrite(m, off, port.segment(0), done);
      else mRead(m, off, port.segment(0), done);
      return PENDING;
    }
    // Segments are taken now: the port is the front end's again once execute returns.
    const each = all(n, done);
    for (let i = 0; i < n; i++) {
      const s = port.segment(i);
      if (write) mWrite(m, off, s, each);
      else mRead(m, off, s, each);
      off += s.length;
    }
    return PENDING;
  }

  #countWrite(len: number): number {
    this.#smart.writes++;
    this.#smart.unitsWritten += len / 512;
    this.#san.sstat &= ~0x100;
    return 0;
  }

  /** Count reads and writes a front end served without the model (a queue thread's, lib/sim/qthread.ts) in SMART. */
  countIo(reads: number, bytesRead: number, writes: number, bytesWritten: number): void {
    this.#smart.reads += reads;
    this.#smart.unitsRead += bytesRead / 512;
    if (writes) {
      this.#smart.writes += writes;
      this.#smart.unitsWritten += bytesWritten / 512;
      this.#san.sstat &= ~0x100;
    }
  }

  #countRead(len: number): number {
    this.#smart.reads++;
    this.#smart.unitsRead += len / 512;
    return 0;
  }

  // ---- inspection --------------------------------------------------------------------------

  /** Namespaces, for inspection (tests, SimFaults.state). */
  namespaces(): ModelNamespaceState[] {
    return [...this.#ns.values()].sort((a, b) => a.nsid - b.nsid).map((n) => ({
      nsid: n.nsid,
      blocks: this.#blocks(n),
      blockSize: 1 << LBAF_DS[n.lbaf],
      attached: n.attached,
    }));
  }

  /** Firmware slots, for inspection. */
  firmware(): { active: number; next: number; slots: string[] } {
    return { active: this.#fwActive, next: this.#fwNext, slots: [...this.#fwSlots] };
  }

  /** Sanitize status (SSTAT, SPROG), for inspection. */
  sanitizeStatus(): { sstat: number; sprog: number } {
    return { sstat: this.#san.sstat, sprog: this.#san.running ? this.#san.sprog : 0xffff };
  }

  /** Device self-test in progress, for inspection. */
  selfTestStatus(): { op: number; percent: number } {
    return { op: this.#dst.op, percent: this.#dst.op ? this.#dstPercent() : 0 };
  }

  /** Close every namespace's media. */
  close(): void {
    for (const ns of this.#ns.values()) ns.media.close();
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Copy on async media: every source range read, then the destination written in order. */
function copyAsync(m: AsyncMedia, src: [number, number][], slba: number, bs: number, done: MediaDone): void {
  const parts = src.map(([, n]) => new Uint8Array(n * bs));
  const written = all(parts.length, done);
  const read = all(parts.length, (sf) => {
    if (sf) return done(sf);
    let p = slba * bs;
    for (const b of parts) {
      mWrite(m, p, b, written);
      p += b.length;
    }
  });
  src.forEach(([s], i) => mRead(m, s * bs, parts[i], read));
}

const SANITIZE_ALLOWED = new Set<number>([
  AdminOpc.DELETE_IO_SQ, AdminOpc.CREATE_IO_SQ, AdminOpc.GET_LOG_PAGE, AdminOpc.DELETE_IO_CQ, AdminOpc.CREATE_IO_CQ,
  AdminOpc.IDENTIFY, AdminOpc.ABORT, AdminOpc.SET_FEATURES, AdminOpc.GET_FEATURES, AdminOpc.ASYNC_EVENT_REQUEST,
  AdminOpc.KEEP_ALIVE, AdminOpc.SANITIZE,
]);

const IO_OPCODES = new Set<number>([
  IoOpc.READ, IoOpc.WRITE, IoOpc.COMPARE, IoOpc.WRITE_ZEROES, IoOpc.VERIFY, IoOpc.DATASET_MANAGEMENT, IoOpc.COPY,
]);
