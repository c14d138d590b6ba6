/**
 * Generic controller logic over any transport: reset, admin queue, enable,
 * identify, IO queue creation, recovery, shutdown. Over a memory-mapped
 * {@link Transport} (PCIe, the software controller) registers are MMIO and IO
 * queues are made with Create IO CQ/SQ; over a {@link FabricTransport}
 * (NVMe/TCP) registers are properties (Property Get/Set), every queue is a
 * connection bound with Fabrics Connect, Keep Alive runs at KATO/2, and
 * recovery is a reconnect with backoff until the loss timeout. Nothing here
 * knows PCIe or TCP.
 * @module
 */
import {
  abortCmd,
  activeNsListCmd,
  createIoCqCmd,
  createIoSqCmd,
  deleteIoCqCmd,
  deleteIoSqCmd,
  identifyControllerCmd,
  identifyNamespaceCmd,
  setNumQueuesCmd,
  type Sqe,
  sqe,
} from "./command.ts";
import { CNTLID_DYNAMIC, DISCOVERY_NQN } from "./fabrics.ts";
import { FabricCommands, fabricPair } from "./fabric-queue.ts";
import {
  ConnectionLostError,
  ControllerFatalError,
  ControllerResetError,
  DeviceClosedError,
  DeviceGoneError,
  InvalidArgumentError,
  NvmeError,
  OutOfResourcesError,
  SetupError,
} from "./errors.ts";
import { unrefTimer } from "../ffi/mod.ts";
import { decodeIdentifyController, type IdentifyController } from "./identify.ts";
import { prpListPages } from "./prp.ts";
import { QueuePair } from "./queue.ts";
import { PcieRing } from "./pcie.ts";
import {
  AdminOpc,
  type Cap,
  CAP_CSS_IOCS,
  CC,
  CC_CSS_ALL,
  ccValue,
  CQE_SIZE,
  CSTS,
  decodeCap,
  decodeVersion,
  NSSR_RESET,
  Reg,
  SQE_SIZE,
} from "./spec.ts";
import { type DmaBuffer, detachView, type FabricRing, type FabricTransport, isFabric, type Transport } from "./transport.ts";

/** Tunables for bringing a controller up. */
export interface ControllerOptions {
  /** IO queue pairs to create (default 1; the controller may grant fewer). */
  ioQueues?: number;
  /** Entries per IO queue (default min(1024, CAP.MQES)). */
  ioQueueDepth?: number;
  /** Entries in the admin queue (default 32). */
  adminQueueDepth?: number;
  /** Admin command timeout in ms (default 60 000, as Linux). */
  adminTimeoutMs?: number;
  /** IO command timeout in ms (default 30 000, as Linux). */
  ioTimeoutMs?: number;
  /** Cap on bytes per IO command, below MDTS (default 2 MiB). */
  maxTransferBytes?: number;
  /** IO queue polling window in µs before yielding to the event loop (default 500). */
  pollSpinUs?: number;
  /**
   * IO queues to ask the controller for at start-up, so queues can be created
   * later on demand, e.g. one per Worker (default max(ioQueues, 16)).
   */
  maxIoQueues?: number;
  /**
   * Interrupt vectors the transport has enabled (e.g. lib/vfio/irq.ts); 0
   * (default): IO completion queues are created without interrupts. With N > 0,
   * IO CQs are created with IEN and the vector {@link Controller.ioVector} gives.
   */
  ioInterruptVectors?: number;
  /**
   * Fabrics: the longest wait between reconnect attempts after a lost
   * connection, in ms (default 10 000, Linux's reconnect_delay). The first
   * attempt is at once, then the delay doubles from 100 ms up to this.
   */
  reconnectDelayMs?: number;
  /**
   * Fabrics: give up reconnecting after this many ms without a controller
   * (default 600 000, Linux's ctrl_loss_tmo); every queue then fails.
   */
  ctrlLossTimeoutMs?: number;
}

/**
 * A queue pair owned by another thread (lib/worker), as the controller sees it:
 * enough to create it on the device, recover it and delete it.
 */
export interface RemoteQueue {
  /** Queue id. */
  readonly qid: number;
  /** Ring entries. */
  readonly depth: number;
  /** Submission ring memory. */
  readonly sq: DmaBuffer;
  /** Completion ring memory. */
  readonly cq: DmaBuffer;
  /** Every piece of memory the owner has views of (rings, PRP pages, its buffer arena). */
  readonly memory: DmaBuffer[];
  /** Hold new submissions (a reset is coming). */
  pause(): void;
  /** The device is disabled: fail in-flight commands with `err`, zero the rings; resolves once done. */
  reset(err: NvmeError): Promise<void>;
  /** The queue exists on the device again: let submissions through. */
  resume(): void;
  /**
   * Fail everything for good with `err`; resolves true once the owner has let
   * go of every view of the memory, false if it did not answer in time.
   */
  fail(err: NvmeError): Promise<boolean>;
  /** Whether command `cid` is still held by the owner (after an Abort). */
  holds(cid: number): Promise<boolean>;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Commands of a recovery: they go through while the queue holds every other submission. */
const HELD = { held: true } as const;

/**
 * PRP list pages one command slot needs for `bytes`, counted for the worst
 * dword-aligned start (4 bytes before a page boundary: the most pages touched).
 */
function prpPagesFor(bytes: number, pageSize: number): number {
  return prpListPages(pageSize - 4, bytes, pageSize);
}

const OPTION_RULES: Record<keyof ControllerOptions, { min: number; max: number; integer: boolean }> = {
  ioQueues: { min: 1, max: 65535, integer: true },
  ioQueueDepth: { min: 2, max: 65536, integer: true },
  adminQueueDepth: { min: 2, max: 4096, integer: true },
  adminTimeoutMs: { min: 1, max: 2 ** 31 - 1, integer: false },
  ioTimeoutMs: { min: 1, max: 2 ** 31 - 1, integer: false },
  maxTransferBytes: { min: 4096, max: 2 ** 31, integer: true },
  pollSpinUs: { min: 0, max: 1e7, integer: false },
  maxIoQueues: { min: 1, max: 65535, integer: true },
  ioInterruptVectors: { min: 0, max: 2048, integer: true },
  reconnectDelayMs: { min: 0, max: 2 ** 31 - 1, integer: false },
  ctrlLossTimeoutMs: { min: 0, max: 2 ** 31 - 1, integer: false },
};

/** Entries in a fabric admin queue (Linux: NVME_AQ_DEPTH 32). */
const FABRIC_ADMIN_DEPTH = 32;
/** Data a fabric admin command carries in its capsule (Linux: 8 KiB). */
const FABRIC_ADMIN_IN_CAPSULE = 8192;
/** nvmet reports MDTS 0 (no limit) yet refuses SGLs over 4 MiB. */
const FABRIC_MAX_TRANSFER = 4 << 20;
/** CC as Linux writes it on fabrics before enabling: CSS NVM, MPS 4 KiB, IOSQES 6, IOCQES 4. */
const FABRIC_CC = ccValue(4096, 6, 4, 0) & ~CC.EN;

/** Check controller options; throws InvalidArgumentError before anything touches a device. */
export function validateControllerOptions(options: unknown): void {
  if (options === undefined) return;
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new InvalidArgumentError("options must be an object");
  }
  for (const [key, rule] of Object.entries(OPTION_RULES)) {
    const v = (options as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (
      typeof v !== "number" || !Number.isFinite(v) || v < rule.min || v > rule.max ||
      (rule.integer && !Number.isInteger(v))
    ) {
      throw new InvalidArgumentError(
        `option ${key} must be ${rule.integer ? "an integer" : "a number"} from ${rule.min} to ${rule.max}, got ${String(v)}`,
      );
    }
  }
}

/** A controller that has been reset, enabled and identified. */
export class Controller {
  /** The transport it runs over: memory-mapped (PCIe, the software controller) or a fabric. */
  readonly transport: Transport | FabricTransport;
  /** The fabric transport when the controller is reached over one (NVMe/TCP), else null. */
  readonly fabric: FabricTransport | null;
  /** Controller id: Connect's on fabrics (it changes on reconnect), Identify's otherwise. */
  cntlid = 0;
  /** Decoded CAP. */
  readonly cap: Cap;
  /** NVMe version from VS, e.g. "1.4.0". */
  readonly version: string;
  /** Memory page size in use (CC.MPS). */
  readonly pageSize: number;
  /** Admin queue pair. */
  readonly admin: QueuePair;
  /** IO queue pairs (qid 1..n). */
  readonly io: QueuePair[] = [];
  /** Raw Identify Controller data (4096 bytes). */
  identifyData: Uint8Array = new Uint8Array(4096);
  /** Identify Controller as the driver uses it, decoded once at start-up. */
  id!: IdentifyController;
  /** Largest transfer per command in bytes (MDTS, PRP capacity and the option cap). */
  maxTransferBytes = 0;
  /** Options in force. */
  readonly options: Required<ControllerOptions>;
  readonly #dma = new Set<DmaBuffer>();
  #scratch: DmaBuffer;
  #closed = false;

  private constructor(
    t: Transport | FabricTransport,
    cap: Cap,
    version: string,
    pageSize: number,
    opts: Required<ControllerOptions>,
    fabricAdmin: QueuePair | null = null,
  ) {
    this.transport = t;
    this.fabric = isFabric(t) ? t : null;
    this.cap = cap;
    this.version = version;
    this.pageSize = pageSize;
    this.options = opts;
    this.#scratch = this.#alloc(4096);
    const depth = Math.min(opts.adminQueueDepth, cap.mqes, 4096);
    // PRP list pages for admin transfers too (firmware images, large logs), up to the transfer cap.
    this.admin = fabricAdmin ?? this.#makePair(0, depth, prpPagesFor(opts.maxTransferBytes, pageSize), opts.adminTimeoutMs);
    this.#watch(this.admin);
  }

  /** The memory-mapped transport; only called on paths a fabric controller never takes. */
  get #mmio(): Transport {
    return this.transport as Transport;
  }

  /** Set once the controller is gone or could not be recovered; every queue was failed with it. */
  failed: NvmeError | null = null;
  /** Controller resets done to recover from faults. */
  resets = 0;
  #recovering: Promise<void> | null = null;
  readonly #resetTimes: number[] = [];
  /** IO queues the controller granted (Set Features Number of Queues). */
  #granted = 0;
  /** IO queues asked for at start-up (asked again after each reset). */
  #requested = 0;
  readonly #remote = new Map<number, RemoteQueue>();
  #healthTimer: ReturnType<typeof setInterval> | null = null;

  /** IO queue ids the controller granted; queues beyond those at start-up are created on demand. */
  get ioQueueLimit(): number {
    return this.#granted;
  }

  /** Queues owned by other threads. */
  get remoteQueues(): RemoteQueue[] {
    return [...this.#remote.values()];
  }

  #watch(q: QueuePair): void {
    q.onTimeout = this.#onTimeout;
    q.onHealthCheck = this.#onHealthCheck;
  }

  /** CSTS says gone or fatal: act on it and return true. */
  #checkCsts(): boolean {
    if (this.#closed || this.failed) return true;
    try {
      this.checkHealth();
      return false;
    } catch (e) {
      if (e instanceof DeviceGoneError) this.#giveUp(e);
      else void this.recover(e as NvmeError);
      return true;
    }
  }

  readonly #onHealthCheck = (): void => {
    if (!this.#recovering) this.#checkCsts();
  };

  readonly #onTimeout = (qp: QueuePair, cid: number, opcode: number): void => {
    if (this.#recovering || this.#checkCsts()) return;
    const what = `opcode 0x${opcode.toString(16).padStart(2, "0")} (cid ${cid}) on ${qp.qid === 0 ? "the admin queue" : `IO queue ${qp.qid}`} timed out`;
    // An admin timeout leaves nothing to send an Abort on: reset.
    if (qp.qid === 0) void this.recover(new ControllerResetError(what));
    else {
      void this.#abortOrReset(qp.qid, cid, what, async () => {
        const until = performance.now() + 50;
        while (qp.holds(cid) && performance.now() < until && !this.#recovering && !this.failed) {
          qp.processCompletions();
          await sleep(1);
        }
        return qp.holds(cid);
      });
    }
  };

  /**
   * A command on a queue owned by another thread timed out (the owner reports
   * it): Abort, then reset if the owner still holds it.
   */
  remoteTimeout(r: RemoteQueue, cid: number, opcode: number): void {
    if (this.#recovering || this.#checkCsts() || !this.#remote.has(r.qid)) return;
    const what = `opcode 0x${opcode.toString(16).padStart(2, "0")} (cid ${cid}) on IO queue ${r.qid} (a worker's) timed out`;
    void this.#abortOrReset(r.qid, cid, what, async () => {
      await sleep(50);
      return await r.holds(cid);
    });
  }

  /** Linux's order: Abort the command; if it is still held afterwards, reset the controller. */
  async #abortOrReset(qid: number, cid: number, what: string, stillHeld: () => Promise<boolean>): Promise<void> {
    try {
      await this.adminCommand(abortCmd(qid, cid), 0, 0, Math.min(this.options.adminTimeoutMs, 5000));
    } catch {
      // An Abort that fails or times out is handled by the check below.
    }
    let held = true;
    try {
      held = await stillHeld();
    } catch {
      held = true;
    }
    if (held && !this.#recovering && !this.failed && !this.#closed) {
      await this.recover(new ControllerResetError(`${what} and was not aborted`));
    }
  }

  #giveUp(err: NvmeError): void {
    if (this.failed) return;
    this.failed = err;
    this.admin.fail(err);
    for (const q of this.io) q.fail(err);
    for (const r of this.#remote.values()) void r.fail(err);
    this.#stopHealthTimer();
  }

  /**
   * Reset the controller and re-create its queues on the same memory. Commands in
   * flight fail with ControllerResetError (with `reason` as cause); commands
   * submitted meanwhile wait and then run. More than 3 resets a minute, or a reset
   * that fails, gives up: every queue then fails with the error.
   */
  recover(reason: NvmeError): Promise<void> {
    return this.#reset(reason, false, false);
  }

  /**
   * Reset the controller on request (CC.EN 1 to 0 to 1, as `nvme reset` does)
   * and re-create its queues. Commands in flight fail with ControllerResetError.
   * Not counted against the recovery limit; rejects with the error if the
   * controller does not come back.
   */
  async reset(): Promise<void> {
    this.#checkUsable();
    await this.#reset(new ControllerResetError("controller reset requested"), true, false);
    if (this.failed) throw this.failed;
  }

  /**
   * NVM Subsystem Reset (writes "NVMe" to NSSR), then bring the controller back
   * as {@link reset} does. Refused with EUNSUPPORTED before touching the device
   * when CAP.NSSRS says the controller has no subsystem reset. On a real PCIe
   * device the link may go down: the device can be lost (DeviceGoneError).
   */
  async subsystemReset(): Promise<void> {
    this.#checkUsable();
    if (!this.cap.nssrs) {
      throw new NvmeError("EUNSUPPORTED", "NVM Subsystem Reset not supported (CAP.NSSRS is 0)");
    }
    await this.#reset(new ControllerResetError("NVM subsystem reset requested"), true, true);
    if (this.failed) throw this.failed;
  }

  #checkUsable(): void {
    if (this.failed) throw this.failed;
    if (this.#closed) throw new DeviceClosedError();
  }

  /** Reset and re-create the queues; `requested` resets skip the rate limit, `nssr` resets the subsystem first. */
  #reset(reason: NvmeError, requested: boolean, nssr: boolean): Promise<void> {
    if (this.#recovering) return this.#recovering;
    if (this.failed || this.#closed) return Promise.resolve();
    const queues = [this.admin, ...this.io];
    const remote = [...this.#remote.values()];
    for (const q of queues) q.pause();
    for (const r of remote) r.pause();
    if (this.fabric) {
      this.#recovering = this.#reconnect(reason, requested, nssr).finally(() => {
        this.#recovering = null;
      });
      return this.#recovering;
    }
    this.#recovering = (async () => {
      const now = performance.now();
      if (!requested) {
        while (this.#resetTimes.length && now - this.#resetTimes[0] > 60_000) this.#resetTimes.shift();
        if (this.#resetTimes.length >= 3) {
          this.#giveUp(new ControllerFatalError(`giving up after 3 resets in a minute; last: ${reason.message}`));
          return;
        }
        this.#resetTimes.push(now);
      }
      const t = this.#mmio;
      const inflight = new ControllerResetError(
        requested ? reason.message : `controller reset to recover: ${reason.message}`,
        { cause: reason },
      );
      if (this.admin.trace) inflight.trace = this.admin.trace.last();
      try {
        if (nssr) t.writeReg32(Reg.NSSR, NSSR_RESET);
        const csts = t.readReg32(Reg.CSTS);
        if (csts === 0xffff_ffff) throw new DeviceGoneError();
        // A fatal controller may need more than CC.EN=0: reset the function when the transport can.
        if (csts & CSTS.CFS && t.resetDevice) t.resetDevice();
        try {
          await Controller.#disable(t, this.cap);
        } catch (e) {
          if (!t.resetDevice || e instanceof DeviceGoneError) throw e;
          t.resetDevice();
          await Controller.#disable(t, this.cap);
        }
        for (const q of queues) q.reset(inflight);
        // Every owner must have zeroed its rings before the queues exist on the device again.
        await Promise.all(remote.map((r) => r.reset(inflight)));
        this.admin.resume();
        await this.#enable();
        const want = this.#requested;
        if (want > 0) {
          const dw0 = await this.adminCommand(setNumQueuesCmd(want, want));
          if (Math.min((dw0 & 0xffff) + 1, (dw0 >>> 16) + 1) < this.io.length + this.#remote.size) {
            throw new ControllerFatalError("controller granted fewer IO queues after reset");
          }
        }
        for (const q of this.io) {
          await this.#createOnDevice(q);
          q.resume();
        }
        for (const r of this.#remote.values()) {
          await this.#createQueue(r.qid, r.depth, r.sq, r.cq);
          r.resume();
        }
        if (!requested) this.resets++;
      } catch (e) {
        const err = e instanceof NvmeError ? e : new ControllerFatalError(`reset failed: ${String(e)}`);
        this.#giveUp(err instanceof DeviceGoneError ? err : new ControllerFatalError(`recovery failed: ${err.message}`, { cause: reason }));
      }
    })().finally(() => {
      this.#recovering = null;
    });
    return this.#recovering;
  }

  /**
   * Reset and enable the controller behind `t`, identify it and create IO
   * queues; over a fabric, connect the admin queue first and each IO queue
   * as a connection of its own.
   */
  static async init(t: Transport | FabricTransport, options: ControllerOptions = {}): Promise<Controller> {
    validateControllerOptions(options);
    const opts: Required<ControllerOptions> = {
      ioQueues: options.ioQueues ?? 1,
      ioQueueDepth: options.ioQueueDepth ?? 1024,
      adminQueueDepth: options.adminQueueDepth ?? 32,
      adminTimeoutMs: options.adminTimeoutMs ?? 60_000,
      ioTimeoutMs: options.ioTimeoutMs ?? 30_000,
      maxTransferBytes: options.maxTransferBytes ?? 2 * 1024 * 1024,
      pollSpinUs: options.pollSpinUs ?? 500,
      maxIoQueues: Math.max(options.maxIoQueues ?? 16, options.ioQueues ?? 1),
      ioInterruptVectors: options.ioInterruptVectors ?? 0,
      reconnectDelayMs: options.reconnectDelayMs ?? 10_000,
      ctrlLossTimeoutMs: options.ctrlLossTimeoutMs ?? 600_000,
    };
    if (isFabric(t)) return await Controller.#initFabric(t, opts);
    const capRaw = t.readReg64(Reg.CAP);
    if (capRaw === 0xffff_ffff_ffff_ffffn) throw new DeviceGoneError("CAP reads all ones: the device is not responding");
    const cap = decodeCap(capRaw);
    if ((cap.css & 1) === 0) {
      throw new SetupError("unsupported-controller", "controller does not support the NVM command set (CAP.CSS)");
    }
    let pageSize = Math.min(Math.max(t.hostPageSize, cap.mpsMin), cap.mpsMax);
    if (pageSize % t.hostPageSize !== 0) pageSize = cap.mpsMin;
    if (cap.mpsMin > t.hostPageSize) {
      throw new SetupError(
        "unsupported-controller",
        `controller's minimum page size ${cap.mpsMin} exceeds the host page size ${t.hostPageSize}`,
      );
    }
    const version = decodeVersion(t.readReg32(Reg.VS));
    await Controller.#disable(t, cap);
    const c = new Controller(t, cap, version, pageSize, opts);
    try {
      await c.#enable();
      await c.#identify();
      await c.#createIoQueues();
    } catch (e) {
      c.#freeAll();
      throw e;
    }
    return c;
  }

  static async #disable(t: Transport, cap: Cap): Promise<void> {
    const cc = t.readReg32(Reg.CC);
    if (cc & CC.EN) t.writeReg32(Reg.CC, cc & ~CC.EN);
    await Controller.#waitReady(t, cap, false);
  }

  static async #waitReady(t: Transport, cap: Cap, ready: boolean): Promise<void> {
    const deadline = performance.now() + Math.max(cap.timeoutMs, 500);
    for (;;) {
      const csts = t.readReg32(Reg.CSTS);
      if (csts === 0xffff_ffff) throw new DeviceGoneError("CSTS reads all ones: the device is not responding");
      if (ready && csts & CSTS.CFS) throw new ControllerFatalError("controller fatal status (CSTS.CFS) during enable");
      if (((csts & CSTS.RDY) !== 0) === ready) return;
      if (performance.now() > deadline) {
        throw new ControllerFatalError(
          `controller did not become ${ready ? "ready" : "disabled"} within CAP.TO (${cap.timeoutMs} ms)`,
        );
      }
      await sleep(1);
    }
  }

  async #enable(): Promise<void> {
    const t = this.#mmio;
    const a = this.admin;
    t.writeReg32(Reg.AQA, (((a.depth - 1) << 16) | (a.depth - 1)) >>> 0);
    t.writeReg64(Reg.ASQ, BigInt(this.#adminMem[0].iova));
    t.writeReg64(Reg.ACQ, BigInt(this.#adminMem[1].iova));
    // As Linux does: with CAP.CSS "IO command sets", enable all of them (zoned too), not only NVM.
    t.writeReg32(Reg.CC, ccValue(this.pageSize, 6, 4, this.cap.css & CAP_CSS_IOCS ? CC_CSS_ALL : 0));
    await Controller.#waitReady(t, this.cap, true);
  }

  #adminMem: DmaBuffer[] = [];

  async #identify(): Promise<void> {
    this.identifyData = await this.identify(identifyControllerCmd());
    const id = this.id = decodeIdentifyController(this.identifyData);
    const mdts = id.mdts;
    // A discovery controller has no IO queues and need not report entry sizes.
    if (!this.isDiscovery && (id.sqes.min > 6 || id.sqes.max < 6 || id.cqes.min > 4 || id.cqes.max < 4)) {
      throw new SetupError("unsupported-controller", `controller does not accept 64-byte SQEs / 16-byte CQEs`);
    }
    const mdtsBytes = mdts === 0 ? Infinity : this.cap.mpsMin * 2 ** mdts;
    this.maxTransferBytes = Math.min(mdtsBytes, this.options.maxTransferBytes);
  }

  async #createIoQueues(): Promise<void> {
    const want = Math.max(1, this.options.maxIoQueues);
    const dw0 = await this.adminCommand(setNumQueuesCmd(want, want));
    this.#requested = want;
    this.#granted = Math.min(want, (dw0 & 0xffff) + 1, (dw0 >>> 16) + 1);
    const granted = Math.min(this.#granted, Math.max(1, this.options.ioQueues));
    const depth = Math.max(2, Math.min(this.options.ioQueueDepth, this.cap.mqes, 65536));
    const prpPages = prpPagesFor(this.maxTransferBytes, this.pageSize);
    for (let qid = 1; qid <= granted; qid++) {
      const qp = this.#makePair(qid, depth, prpPages, this.options.ioTimeoutMs);
      this.#watch(qp);
      await this.#createOnDevice(qp);
      this.io.push(qp);
    }
    // PRP list capacity may cap the transfer further.
    if (this.io.length) this.maxTransferBytes = Math.min(this.maxTransferBytes, this.io[0].maxPrpTransfer);
  }

  #ioMem = new Map<number, DmaBuffer[]>();

  /**
   * The interrupt vector IO queue `qid` signals, or -1 when IO queues are polled.
   * Vector 0 stays the admin queue's when there are two or more vectors; IO
   * queues take 1..N-1 round robin (all share vector 0 with a single MSI/INTx vector).
   */
  ioVector(qid: number): number {
    const n = this.options.ioInterruptVectors;
    if (n <= 0 || qid <= 0) return -1;
    return n === 1 ? 0 : 1 + ((qid - 1) % (n - 1));
  }

  /**
   * True when vector `v` serves one queue only (the admin queue for 0, else
   * the one IO queue id among those the controller granted that maps to it),
   * so that queue may turn it off while it polls.
   */
  vectorExclusive(v: number): boolean {
    const n = this.options.ioInterruptVectors;
    if (n <= 1 || !(v >= 0 && v < n) || !Number.isInteger(v)) return false;
    if (v === 0) return true;
    // IO queue ids v, v + (n - 1), v + 2(n - 1)... share vector v.
    return v + (n - 1) > Math.max(this.#granted, this.io.length);
  }

  /** Create IO queue pair `q` on the controller (its CQ first), on the memory it already owns. */
  async #createOnDevice(q: QueuePair): Promise<void> {
    const [sq, cq] = this.#ioMem.get(q.qid)!;
    await this.#createQueue(q.qid, q.depth, sq, cq);
  }

  /** Create CQ then SQ `qid` on rings `sq`/`cq`, with the queue's interrupt vector when there are any. */
  async #createQueue(qid: number, depth: number, sq: DmaBuffer, cq: DmaBuffer): Promise<void> {
    const iv = this.ioVector(qid);
    await this.adminCommand(createIoCqCmd(qid, depth, iv >= 0, Math.max(iv, 0)), cq.iova, 0);
    try {
      await this.adminCommand(createIoSqCmd(qid, depth, qid), sq.iova, 0);
    } catch (e) {
      await this.adminCommand(deleteIoCqCmd(qid), 0, 0, 5000).catch(() => {});
      throw e;
    }
  }

  #makePair(qid: number, depth: number, prpPages: number, timeoutMs: number): QueuePair {
    const sq = this.#alloc(depth * SQE_SIZE);
    const cq = this.#alloc(depth * CQE_SIZE);
    const slots = depth - 1;
    const prp = prpPages > 0 ? this.#alloc(slots * prpPages * this.pageSize) : null;
    if (qid === 0) this.#adminMem = [sq, cq];
    else this.#ioMem.set(qid, [sq, cq]);
    const ring = new PcieRing({
      qid,
      depth,
      sq,
      cq,
      prp,
      prpPagesPerSlot: prpPages,
      pageSize: this.pageSize,
      doorbells: this.#mmio.doorbells(),
      doorbellStride: this.cap.doorbellStride,
    });
    return new QueuePair({ qid, ring, defaultTimeoutMs: timeoutMs, pollSpinUs: this.options.pollSpinUs });
  }

  #alloc(size: number): DmaBuffer {
    const b = this.transport.allocDma(size);
    this.#dma.add(b);
    return b;
  }

  /**
   * Reserve a free IO queue id and the memory of a queue pair for another
   * thread: rings of `depth` entries (capped by CAP.MQES) and PRP list pages
   * for every slot. Create it on the device with {@link addRemote}.
   */
  reserveQueue(depth = this.options.ioQueueDepth): { qid: number; depth: number; sq: DmaBuffer; cq: DmaBuffer; prp: DmaBuffer | null; prpPages: number } {
    if (this.#closed || this.failed) throw this.failed ?? new DeviceClosedError();
    if (this.fabric) {
      throw new NvmeError("EUNSUPPORTED", `queues owned by Workers need a memory-mapped controller, not ${this.fabric.trtype}`);
    }
    let qid = 1;
    const used = new Set([...this.io.map((q) => q.qid), ...this.#remote.keys(), ...this.#reserved]);
    while (used.has(qid)) qid++;
    if (qid > this.#granted) {
      throw new OutOfResourcesError(`the controller granted ${this.#granted} IO queues and all are in use`);
    }
    const d = Math.max(2, Math.min(depth, this.cap.mqes, 65536));
    const prpPages = prpPagesFor(this.maxTransferBytes, this.pageSize);
    const sq = this.#alloc(d * SQE_SIZE), cq = this.#alloc(d * CQE_SIZE);
    const prp = prpPages > 0 ? this.#alloc((d - 1) * prpPages * this.pageSize) : null;
    this.#reserved.add(qid);
    return { qid, depth: d, sq, cq, prp, prpPages };
  }

  readonly #reserved = new Set<number>();

  /** Create a reserved queue on the device (CQ, then SQ) and take over its recovery. */
  async addRemote(r: RemoteQueue): Promise<void> {
    if (this.#recovering) await this.#recovering;
    if (this.#closed || this.failed) throw this.failed ?? new DeviceClosedError();
    await this.#createQueue(r.qid, r.depth, r.sq, r.cq);
    this.#reserved.delete(r.qid);
    this.#remote.set(r.qid, r);
    // Nobody polls on this thread for the owner's commands: watch CSTS here.
    if (!this.#healthTimer) {
      this.#healthTimer = setInterval(() => {
        if (!this.#recovering) this.#checkCsts();
      }, 100);
      unrefTimer(this.#healthTimer);
    }
  }

  /**
   * Delete a remote queue on the device, then free its memory once the device
   * can no longer write it (a failed delete keeps it mapped until close).
   */
  async removeRemote(r: RemoteQueue, memory: DmaBuffer[]): Promise<void> {
    if (this.#recovering) await this.#recovering.catch(() => {});
    const known = this.#remote.delete(r.qid) || this.#reserved.delete(r.qid);
    if (!known) return;
    if (this.#remote.size === 0) this.#stopHealthTimer();
    let deleted = false;
    if (!this.#closed && !this.failed) {
      try {
        await this.adminCommand(deleteIoSqCmd(r.qid), 0, 0, 5000);
        await this.adminCommand(deleteIoCqCmd(r.qid), 0, 0, 5000);
        deleted = true;
      } catch {
        // Left mapped: transport.close() unmaps it once the device is shut down.
      }
    }
    if (deleted) for (const b of memory) this.freeDma(b);
  }

  #stopHealthTimer(): void {
    if (this.#healthTimer) clearInterval(this.#healthTimer);
    this.#healthTimer = null;
  }

  /**
   * Send an admin command. With `dataIova`, the command's data pointer (PRP1)
   * addresses a buffer of `dataLen` bytes (0 for a queue base address).
   * Resolves to CQE DW0; rejects with NvmeStatusError on a failed status.
   */
  adminCommand(cmd: Sqe, dataIova = 0, dataLen = 0, timeoutMs?: number): Promise<number> {
    // The memory stays busy until the command ends, so freeing it meanwhile is deferred.
    let ref: DmaBuffer | null = null;
    if (dataIova !== 0) {
      ref = this.dmaAt(dataIova);
      if (ref === null || dataIova + dataLen > ref.iova + ref.size) {
        return Promise.reject(
          new InvalidArgumentError(
            `data at IOVA 0x${dataIova.toString(16)} (+${dataLen} bytes) is not inside live DMA memory from allocDma()/allocBuffer()`,
          ),
        );
      }
    }
    if (dataIova !== 0 && dataLen === 0) {
      // Queue base: PRP1 only.
      cmd[6] = dataIova % 0x1_0000_0000;
      cmd[7] = Math.floor(dataIova / 0x1_0000_0000);
      return this.admin.submit(cmd, 0, 0, timeoutMs, ref);
    }
    return this.admin.submit(cmd, dataIova, dataLen, timeoutMs, ref);
  }

  /** The live DMA buffer from {@link allocDma} that contains `iova`, else null (admin path only: a linear scan). */
  dmaAt(iova: number): DmaBuffer | null {
    for (const b of this.#dma) if (iova >= b.iova && iova < b.iova + b.size) return b;
    return null;
  }

  /**
   * Run an admin command that returns up to 4096 bytes of data (Identify, small
   * log pages) through the controller's scratch buffer; returns a copy.
   * `timeoutMs` defaults to the admin timeout.
   */
  async identify(cmd: Sqe, bytes = 4096, timeoutMs?: number): Promise<Uint8Array> {
    const s = this.#scratch;
    s.bytes.fill(0, 0, bytes);
    await this.adminCommand(cmd, s.iova, bytes, timeoutMs);
    return s.bytes.slice(0, bytes);
  }

  /** Active namespace ids, in ascending order (walks the CNS 02h list). */
  async activeNamespaces(): Promise<number[]> {
    const out: number[] = [];
    let start = 0;
    for (;;) {
      const d = await this.identify(activeNsListCmd(start));
      const v = new DataView(d.buffer);
      let n = 0;
      for (let i = 0; i < 1024; i++) {
        const id = v.getUint32(i * 4, true);
        if (id === 0) break;
        out.push(id);
        n++;
      }
      if (n < 1024) return out;
      start = out[out.length - 1];
    }
  }

  /** Raw Identify Namespace data for `nsid`. */
  identifyNamespace(nsid: number): Promise<Uint8Array> {
    return this.identify(identifyNamespaceCmd(nsid));
  }

  /** Allocate DMA memory owned by this controller (freed on close). */
  allocDma(size: number): DmaBuffer {
    return this.#alloc(size);
  }

  /**
   * Free DMA memory from {@link allocDma}. Its views are detached at once; if
   * a command on it has not ended yet (in flight, or timed out and not yet
   * aborted or ended by a reset), the unmap and the IOVA's reuse wait until it
   * has, so the device never writes memory that means something else.
   */
  freeDma(b: DmaBuffer): void {
    if (!this.#dma.delete(b)) return;
    detachView(b.bytes);
    if (b.busy > 0) b.onIdle = this.#unmap;
    else this.transport.freeDma(b);
  }

  readonly #unmap = (b: DmaBuffer): void => this.transport.freeDma(b);

  /**
   * Read CSTS and throw if the controller is gone or fatal. Over a fabric
   * CSTS is a Property Get away: a lost connection or keep-alive starts
   * recovery instead, so this only reports a controller that was given up.
   */
  checkHealth(): void {
    if (this.fabric) {
      if (this.failed) throw this.failed;
      return;
    }
    const csts = this.#mmio.readReg32(Reg.CSTS);
    if (csts === 0xffff_ffff) throw new DeviceGoneError();
    if (csts & CSTS.CFS) throw new ControllerFatalError("controller fatal status (CSTS.CFS)");
  }

  /**
   * Delete IO queues, notify a normal shutdown (CC.SHN) and wait for
   * CSTS.SHST = complete, fail anything still in flight, free DMA memory.
   */
  async shutdown(reason: NvmeError | null = null): Promise<void> {
    if (this.#closed) return;
    if (this.#recovering) {
      // A fabric may be waiting out its loss timeout: stop that rather than wait for it.
      if (this.fabric) this.#closing = true;
      await this.#recovering;
    }
    this.#closed = true;
    if (this.fabric) return await this.#shutdownFabric(reason);
    const t = this.#mmio;
    let healthy = true;
    try {
      this.checkHealth();
    } catch {
      healthy = false;
    }
    if (reason) for (const q of this.io) q.fail(reason);
    this.#stopHealthTimer();
    // Owners must drop their views before anything is unmapped; one that does not answer keeps its memory.
    const remotes = [...this.#remote.values()];
    const acked = await Promise.all(remotes.map((r) => r.fail(reason ?? new DeviceClosedError())));
    remotes.forEach((r, i) => {
      if (acked[i]) return;
      for (const b of r.memory) t.retain?.(b);
      t.retainDoorbells?.();
    });
    if (healthy) {
      try {
        for (const q of this.io) {
          q.close();
          await this.adminCommand(deleteIoSqCmd(q.qid), 0, 0, 5000);
          await this.adminCommand(deleteIoCqCmd(q.qid), 0, 0, 5000);
        }
        for (const r of this.#remote.values()) {
          await this.adminCommand(deleteIoSqCmd(r.qid), 0, 0, 5000);
          await this.adminCommand(deleteIoCqCmd(r.qid), 0, 0, 5000);
        }
        this.#remote.clear();
        const cc = t.readReg32(Reg.CC);
        t.writeReg32(Reg.CC, ((cc & ~CC.SHN_MASK) | CC.SHN_NORMAL) >>> 0);
        const rtd3e = this.id.rtd3e; // µs
        const deadline = performance.now() + Math.min(Math.max(rtd3e / 1000, 5000), 60_000);
        while ((t.readReg32(Reg.CSTS) & CSTS.SHST_MASK) !== CSTS.SHST_COMPLETE) {
          if (performance.now() > deadline) break;
          await sleep(1);
        }
        t.writeReg32(Reg.CC, t.readReg32(Reg.CC) & ~CC.EN);
      } catch {
        // A dying controller must not stop the host side from being released.
      }
    }
    for (const q of this.io) q.close();
    this.admin.close();
    this.#freeAll();
  }

  // ---- fabrics (NVMe over TCP): Connect, properties, keep-alive, reconnect ---------------------

  #closing = false;
  #kaTimer: ReturnType<typeof setInterval> | null = null;
  /** Fabrics: data an IO command carries in its capsule (IOCCSZ × 16 − 64). */
  #inCapsule = 0;

  /** Connect the admin queue, enable the controller in Linux's order, identify it, connect IO queues. */
  static async #initFabric(t: FabricTransport, opts: Required<ControllerOptions>): Promise<Controller> {
    const maxTransfer = Math.min(opts.maxTransferBytes, FABRIC_MAX_TRANSFER);
    const ring = await t.openRing(0, FABRIC_ADMIN_DEPTH, { inCapsuleMax: FABRIC_ADMIN_IN_CAPSULE, maxTransfer });
    const admin = fabricPair(0, ring, opts.adminTimeoutMs);
    ring.onLost = (e) => admin.fail(e);
    let c: Controller | null = null;
    try {
      const f = new FabricCommands(admin);
      const cntlid = await f.connect(t, CNTLID_DYNAMIC);
      // On the wire as Linux: CAP, CC without EN, CC, CAP again, CC.EN, CSTS until RDY, VS.
      await f.propertyGet(Reg.CAP, true);
      await f.propertySet(Reg.CC, FABRIC_CC);
      await f.propertyGet(Reg.CC, false);
      const cap = decodeCap(await f.propertyGet(Reg.CAP, true));
      if ((cap.css & 1) === 0) {
        throw new SetupError("unsupported-controller", "controller does not support the NVM command set (CAP.CSS)");
      }
      await f.propertySet(Reg.CC, FABRIC_CC | CC.EN);
      await f.waitReady(cap);
      const version = decodeVersion(Number(await f.propertyGet(Reg.VS, false)));
      c = new Controller(t, cap, version, 4096, opts, admin);
      c.cntlid = cntlid;
      ring.onLost = c.#onLost;
      await c.#identify();
      c.#checkFabricIdentity();
      c.#startKeepAlive();
      await c.#connectIoQueues();
      return c;
    } catch (e) {
      if (c) {
        c.#closed = true;
        c.#stopKeepAlive();
        for (const q of c.io) q.close();
      }
      admin.close();
      if (c) c.#freeAll();
      throw e;
    }
  }

  /** What a fabrics host relies on in Identify Controller. */
  #checkFabricIdentity(): void {
    const id = this.id;
    if (id.cntlid !== this.cntlid) {
      throw new SetupError("unsupported-controller", `Identify cntlid ${id.cntlid} differs from Connect's ${this.cntlid}`);
    }
    if (id.icdoff !== 0) throw new SetupError("unsupported-controller", "ICDOFF other than 0 is not supported");
    if ((id.sgls & 3) === 0) throw new SetupError("unsupported-controller", "controller reports no SGL support");
    this.maxTransferBytes = Math.min(this.maxTransferBytes, FABRIC_MAX_TRANSFER);
    this.#inCapsule = id.ioccsz >= 4 ? id.ioccsz * 16 - 64 : 0;
  }

  #ioLimits(): { inCapsuleMax: number; maxTransfer: number } {
    return { inCapsuleMax: this.#inCapsule, maxTransfer: this.maxTransferBytes };
  }

  /** A fabrics discovery controller (the well-known NQN): admin queue only, no IO queues. */
  get isDiscovery(): boolean {
    return this.fabric?.subnqn === DISCOVERY_NQN;
  }

  /** Fabrics: data an IO command carries inside its capsule (IOCCSZ × 16 − 64); 0 on PCIe. */
  get inCapsuleBytes(): number {
    return this.#inCapsule;
  }

  /** Set Features Number of Queues, then one connection and Connect per IO queue. */
  async #connectIoQueues(): Promise<void> {
    const t = this.fabric!;
    if (this.isDiscovery) return;
    const want = Math.max(1, this.options.ioQueues);
    const dw0 = await this.adminCommand(setNumQueuesCmd(want, want));
    this.#requested = want;
    this.#granted = Math.min(want, (dw0 & 0xffff) + 1, (dw0 >>> 16) + 1);
    const depth = Math.max(2, Math.min(this.options.ioQueueDepth, this.cap.mqes, this.id.maxcmd || 0x10000));
    for (let qid = 1; qid <= this.#granted; qid++) {
      const ring = await t.openRing(qid, depth, this.#ioLimits());
      const qp = fabricPair(qid, ring, this.options.ioTimeoutMs);
      ring.onLost = (e) => qp.fail(e);
      try {
        await new FabricCommands(qp).connect(t, this.cntlid);
      } catch (e) {
        qp.close();
        throw e;
      }
      ring.onLost = this.#onLost;
      this.#watch(qp);
      this.io.push(qp);
    }
  }

  /** A connection was lost: reconnect (in-flight commands fail with the loss). */
  readonly #onLost = (err: NvmeError): void => {
    if (this.#closed || this.failed) return;
    void this.#reset(err, false, false);
  };

  #startKeepAlive(): void {
    const kato = this.fabric!.katoMs;
    if (!(kato > 0) || this.#kaTimer) return;
    const period = kato / 2;
    // A Keep Alive that times out is an admin timeout: the usual recovery (here a reconnect) follows.
    this.#kaTimer = setInterval(() => {
      if (this.#recovering || this.#closed || this.failed) return;
      this.admin.submit(sqe(AdminOpc.KEEP_ALIVE), 0, 0, Math.max(period, 1000)).catch(() => {});
    }, period);
    unrefTimer(this.#kaTimer);
  }

  #stopKeepAlive(): void {
    if (this.#kaTimer) clearInterval(this.#kaTimer);
    this.#kaTimer = null;
  }

  /** Close every connection of the controller and fail what was in flight on them with `err`. */
  #dropConnections(err: NvmeError): void {
    for (const q of [this.admin, ...this.io]) {
      const r = q.queueRing as FabricRing;
      r.onLost = null;
      r.close(); // first: no data lands in the commands' memory once they are failed
      q.reset(err);
    }
  }

  /**
   * Fabric recovery: every connection goes (the target forgets the
   * controller with its admin connection), in-flight commands fail with the
   * loss, held submissions wait; then reconnect, at once and then with a
   * doubling delay up to reconnectDelayMs, until ctrlLossTimeoutMs has passed.
   */
  async #reconnect(reason: NvmeError, requested: boolean, nssr: boolean): Promise<void> {
    const t = this.fabric!;
    const inflight = reason instanceof ConnectionLostError ? reason : new ControllerResetError(
      requested ? reason.message : `controller reset to recover: ${reason.message}`,
      { cause: reason },
    );
    if (this.admin.trace && inflight instanceof ControllerResetError) inflight.trace = this.admin.trace.last();
    this.#stopKeepAlive();
    if (nssr) await new FabricCommands(this.admin, HELD).propertySet(Reg.NSSR, NSSR_RESET).catch(() => {});
    this.#dropConnections(inflight);
    const start = performance.now();
    let delay = Math.min(100, this.options.reconnectDelayMs);
    for (;;) {
      if (this.#closing || this.#closed) return this.#giveUp(new DeviceClosedError());
      try {
        await this.#connectAll();
        if (!requested) this.resets++;
        this.#startKeepAlive();
        return;
      } catch (e) {
        const err = e instanceof NvmeError ? e : new ConnectionLostError(String(e));
        this.#dropConnections(err);
        const elapsed = performance.now() - start;
        if (elapsed + delay > this.options.ctrlLossTimeoutMs) {
          return this.#giveUp(
            new ConnectionLostError(`gave up reconnecting to ${t.name} after ${Math.round(elapsed)} ms: ${err.message}`, {
              cause: err,
            }),
          );
        }
        const until = performance.now() + delay;
        while (performance.now() < until && !this.#closing) await sleep(Math.min(50, delay));
        delay = Math.min(delay * 2, Math.max(this.options.reconnectDelayMs, 1));
      }
    }
  }

  /** One reconnect attempt: admin connection, Connect, enable, queue count, every IO queue's connection and Connect. */
  async #connectAll(): Promise<void> {
    const t = this.fabric!;
    const a = this.admin;
    const aring = await t.openRing(0, a.depth, { inCapsuleMax: FABRIC_ADMIN_IN_CAPSULE, maxTransfer: a.maxPrpTransfer });
    aring.onLost = (e) => a.reset(e);
    a.replaceRing(aring);
    const f = new FabricCommands(a, HELD);
    this.cntlid = await f.connect(t, CNTLID_DYNAMIC);
    await f.propertySet(Reg.CC, FABRIC_CC);
    await f.propertySet(Reg.CC, FABRIC_CC | CC.EN);
    await f.waitReady(this.cap);
    const want = this.#requested;
    if (want > 0) {
      const dw0 = await a.submit(setNumQueuesCmd(want, want), 0, 0, undefined, null, HELD);
      if (Math.min((dw0 & 0xffff) + 1, (dw0 >>> 16) + 1) < this.io.length) {
        throw new ControllerFatalError("controller granted fewer IO queues after reconnect");
      }
    }
    for (const q of this.io) {
      const r = await t.openRing(q.qid, q.depth, this.#ioLimits());
      r.onLost = (e) => q.reset(e);
      q.replaceRing(r);
      await new FabricCommands(q, HELD).connect(t, this.cntlid);
    }
    for (const q of [a, ...this.io]) {
      (q.queueRing as FabricRing).onLost = this.#onLost;
      q.resume();
    }
  }

  /**
   * Read a controller register: MMIO on a memory-mapped transport, Property
   * Get over a fabric.
   */
  readRegister(offset: number, eightBytes = false): Promise<bigint> {
    if (!this.fabric) {
      const t = this.#mmio;
      return Promise.resolve(eightBytes ? t.readReg64(offset) : BigInt(t.readReg32(offset) >>> 0));
    }
    return new FabricCommands(this.admin).propertyGet(offset, eightBytes);
  }

  /** Fabric shutdown: disconnect IO queues, CC.SHN normal, CSTS.SHST complete (bounded), disconnect admin. */
  async #shutdownFabric(reason: NvmeError | null): Promise<void> {
    this.#stopKeepAlive();
    if (reason) for (const q of this.io) q.fail(reason);
    for (const q of this.io) q.close();
    if (!this.failed && !this.admin.closed) {
      try {
        const f = new FabricCommands(this.admin);
        await f.propertySet(Reg.CC, FABRIC_CC | CC.EN | CC.SHN_NORMAL, false, 5000);
        const deadline = performance.now() + Math.min(Math.max(this.id.rtd3e / 1000, 5000), 60_000);
        while ((Number(await f.propertyGet(Reg.CSTS, false, 5000)) & CSTS.SHST_MASK) !== CSTS.SHST_COMPLETE) {
          if (performance.now() > deadline) break;
          await sleep(10);
        }
      } catch {
        // A target that went away must not stop the host side from being released.
      }
    }
    this.admin.close();
    this.#freeAll();
  }

  #freeAll(): void {
    for (const b of this.#dma) this.transport.freeDma(b);
    this.#dma.clear();
  }
}
