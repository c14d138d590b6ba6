/**
 * The generic controller over any transport: the bring-up sequence (named
 * states, as SPDK's `nvme_ctrlr_state`: {@link CtrlrState}), recovery,
 * identify and namespaces, queues owned by other threads, shutdown. Every
 * step that depends on how the controller is reached is a call to its
 * {@link TransportOps}: lib/nvme/pcie.ts for memory-mapped transports (VFIO,
 * the software controller), lib/nvme/fabrics.ts for fabrics (NVMe/TCP).
 * Nothing here knows registers beyond CAP/VS/CSTS decoding, queue creation
 * commands, doorbells, Connect or properties.
 * @module
 */
import { abortCmd, activeNsListCmd, identifyControllerCmd, identifyNamespaceCmd, setNumQueuesCmd, type Sqe } from "./command.ts";
import { DISCOVERY_NQN, FabricOps } from "./fabrics.ts";
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
import {
  decodeNsidList,
  type IdCtrl,
  type IdentifyController,
  identifyControllerOf,
  NSID_LIST_ENTRIES,
  parseIdCtrl,
} from "./identify.ts";
import { adminTransfer } from "./transfer.ts";
import { CtrlrState, type CtrlrStateName, type OpsHost, type ReservedQueue, type TransportOps } from "./ops.ts";
import { PcieOps, type PcieOptions, type SharedPcieRing, validatePcieOptions } from "./pcie.ts";
import type { QueuePair, SubmitOptions } from "./queue.ts";
import { type Cap, decodeVersion, Reg } from "./spec.ts";
import { type DmaBuffer, detachView, type FabricTransport, isFabric, type Transport } from "./transport.ts";

export { CtrlrState, type CtrlrStateName };

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
  /** PCIe: SGLs or PRPs, shadow doorbells (see {@link PcieOptions}). */
  pcie?: PcieOptions;
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

/** Commands of a recovery: they go through while the queues hold every other submission. */
const HELD: SubmitOptions = { held: true };
const NOT_HELD: SubmitOptions = {};

const OPTION_RULES: Record<Exclude<keyof ControllerOptions, "pcie">, { min: number; max: number; integer: boolean }> = {
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
  validatePcieOptions((options as ControllerOptions).pcie);
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
  /** Memory page size in use (CC.MPS). */
  readonly pageSize: number;
  /** Admin queue pair. */
  readonly admin: QueuePair;
  /** IO queue pairs (qid 1..n). */
  readonly io: QueuePair[] = [];
  /** Raw Identify Controller data (4096 bytes). */
  identifyData: Uint8Array = new Uint8Array(4096);
  /** Identify Controller with nvme-cli's field names, decoded once at start-up. */
  idCtrl!: IdCtrl;
  /** Identify Controller as the driver uses it (a view of {@link idCtrl}). */
  id!: IdentifyController;
  /** Largest transfer per command in bytes (MDTS, PRP capacity and the option cap). */
  maxTransferBytes = 0;
  /** Options in force. */
  readonly options: Required<ControllerOptions>;
  /** Set once the controller is gone or could not be recovered; every queue was failed with it. */
  failed: NvmeError | null = null;
  /** Controller resets done to recover from faults. */
  resets = 0;
  readonly #ops: TransportOps;
  readonly #dma = new Set<DmaBuffer>();
  #scratch: DmaBuffer;
  #closed = false;
  /** Shutdown asked while a fabric waits out its reconnect delay: stop waiting. */
  #closing = false;
  #state: CtrlrStateName = CtrlrState.CONNECT_ADMIN;
  #version = "";
  #recovering: Promise<void> | null = null;
  /** Ends each pending {@link #pause} early: shutdown must not leave a recovery's timer behind it. */
  readonly #pauses = new Set<() => void>();
  readonly #resetTimes: number[] = [];
  /** IO queues the controller granted (Set Features Number of Queues). */
  #granted = 0;
  /** IO queues asked for at start-up (asked again after each reset). */
  #requested = 0;
  readonly #remote = new Map<number, RemoteQueue>();
  readonly #reserved = new Set<number>();

  private constructor(t: Transport | FabricTransport, ops: TransportOps, cap: Cap, pageSize: number, cntlid: number, opts: Required<ControllerOptions>) {
    this.transport = t;
    this.fabric = isFabric(t) ? t : null;
    this.#ops = ops;
    this.cap = cap;
    this.pageSize = pageSize;
    this.cntlid = cntlid;
    this.options = opts;
    this.#scratch = this.#alloc(4096);
    this.admin = ops.adminQueue(this.#host);
    this.#watch(this.admin);
  }

  /** What the transport operations use of this controller. */
  readonly #host: OpsHost = (() => {
    // deno-lint-ignore no-this-alias
    const c = this;
    return {
      get admin() {
        return c.admin;
      },
      get id() {
        return c.id;
      },
      get maxTransferBytes() {
        return c.maxTransferBytes;
      },
      get recovering() {
        return c.#recovering !== null;
      },
      get closed() {
        return c.#closed;
      },
      get failed() {
        return c.failed;
      },
      allocDma: (size: number) => c.#alloc(size),
      adminCommand: (cmd: Sqe, dataIova?: number, dataLen?: number, timeoutMs?: number, opts?: SubmitOptions) =>
        c.adminCommand(cmd, dataIova, dataLen, timeoutMs, opts),
      ioVector: (qid: number) => c.ioVector(qid),
      lost: (err: NvmeError) => c.#onLost(err),
    };
  })();

  /** NVMe version from VS, e.g. "1.4.0" (read once the controller is enabled). */
  get version(): string {
    return this.#version;
  }

  /** The state of the bring-up, a recovery or the shutdown (see {@link CtrlrState}). */
  get state(): CtrlrStateName {
    return this.#state;
  }

  /** IO queue ids the controller granted; queues beyond those at start-up are created on demand. */
  get ioQueueLimit(): number {
    return this.#granted;
  }

  /** Queues owned by other threads. */
  get remoteQueues(): RemoteQueue[] {
    return [...this.#remote.values()];
  }

  /** A fabrics discovery controller (the well-known NQN): admin queue only, no IO queues. */
  get isDiscovery(): boolean {
    return this.fabric?.subnqn === DISCOVERY_NQN;
  }

  /** Fabrics: data an IO command carries inside its capsule (IOCCSZ × 16 − 64); 0 on PCIe. */
  get inCapsuleBytes(): number {
    return this.#ops.inCapsuleBytes;
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
        const until = performance.now() + this.#releaseWaitMs();
        while (qp.holds(cid) && performance.now() < until && !this.#recovering && !this.failed && !this.#closed) {
          qp.processCompletions();
          await this.#pause(1);
        }
        return !this.#closed && qp.holds(cid);
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
      const until = performance.now() + this.#releaseWaitMs();
      for (;;) {
        await this.#pause(50);
        // Closed meanwhile: nothing left to reset, and its owner may be gone (no answer would come).
        if (this.#closed || this.#closing || !(await r.holds(cid))) return false;
        if (performance.now() >= until || this.#recovering || this.failed) return true;
      }
    });
  }

  /**
   * How long a command may stay held after its Abort completed before the controller is reset.
   * Linux re-arms the full IO timeout after an Abort; the completion an Abort causes can reach the
   * queue's owner late (another thread, a loaded machine), so a fixed short grace reset controllers
   * whose Abort had worked.
   */
  #releaseWaitMs(): number {
    return Math.min(this.options.ioTimeoutMs, 5000);
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

  /** A timer wait of `ms` that {@link #endPauses} (shutdown) ends at once. Recovery paths only, never per IO. */
  #pause(ms: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.#pauses.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.#pauses.add(end);
    });
  }

  #endPauses(): void {
    for (const end of [...this.#pauses]) end();
  }

  #giveUp(err: NvmeError): void {
    if (this.failed) return;
    this.failed = err;
    this.#state = CtrlrState.FAILED;
    this.admin.fail(err);
    for (const q of this.io) q.fail(err);
    for (const r of this.#remote.values()) void r.fail(err);
  }

  /** A connection was lost: reconnect (in-flight commands fail with the loss). */
  #onLost(err: NvmeError): void {
    if (this.#closed || this.failed) return;
    void this.#reset(err, false, false);
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

  /**
   * Reset and bring the queues back; `requested` resets skip the rate limit,
   * `nssr` resets the subsystem first. The transport tears the controller's
   * use of the queues down (PCIe: CC.EN = 0; fabrics: every connection
   * closed), then the bring-up's own steps run again with held submissions:
   * reconnect the admin queue, enable, the queue count, every IO queue. A
   * memory-mapped controller that fails this gives up; a fabric retries, at
   * once and then with a doubling delay up to reconnectDelayMs, until
   * ctrlLossTimeoutMs has passed.
   */
  #reset(reason: NvmeError, requested: boolean, nssr: boolean): Promise<void> {
    if (this.#recovering) return this.#recovering;
    if (this.failed || this.#closed) return Promise.resolve();
    const queues = [this.admin, ...this.io];
    const remote = [...this.#remote.values()];
    for (const q of queues) q.pause();
    for (const r of remote) r.pause();
    this.#recovering = this.#recover(reason, requested, nssr, queues, remote).finally(() => {
      this.#recovering = null;
    });
    return this.#recovering;
  }

  async #recover(reason: NvmeError, requested: boolean, nssr: boolean, queues: QueuePair[], remote: RemoteQueue[]): Promise<void> {
    const ops = this.#ops;
    // Only a memory-mapped controller is rate limited: a fabric has its loss timeout.
    if (!requested && !ops.fabric) {
      const now = performance.now();
      while (this.#resetTimes.length && now - this.#resetTimes[0] > 60_000) this.#resetTimes.shift();
      if (this.#resetTimes.length >= 3) {
        this.#giveUp(new ControllerFatalError(`giving up after 3 resets in a minute; last: ${reason.message}`));
        return;
      }
      this.#resetTimes.push(now);
    }
    const inflight = reason instanceof ConnectionLostError ? reason : new ControllerResetError(
      requested ? reason.message : `controller reset to recover: ${reason.message}`,
      { cause: reason },
    );
    if (this.admin.trace && inflight instanceof ControllerResetError) inflight.trace = this.admin.trace.last();
    this.#state = CtrlrState.RESETTING;
    ops.keepAlive(false);
    const start = performance.now();
    let delay = Math.min(100, this.options.reconnectDelayMs);
    let err: NvmeError = inflight;
    let first = true;
    for (;;) {
      if (ops.fabric && (this.#closing || this.#closed)) return this.#giveUp(new DeviceClosedError());
      try {
        this.#state = CtrlrState.RESETTING;
        await ops.teardown(queues, err, first && nssr);
        if (first) {
          // Every owner must have zeroed its rings before the queues exist on the device again.
          await Promise.all(remote.map((r) => r.reset(inflight)));
        }
        first = false;
        await this.#restart(remote);
        if (!requested) this.resets++;
        ops.keepAlive(true);
        this.#state = CtrlrState.READY;
        return;
      } catch (e) {
        if (!ops.fabric) {
          const err = e instanceof NvmeError ? e : new ControllerFatalError(`reset failed: ${String(e)}`);
          return this.#giveUp(
            err instanceof DeviceGoneError
              ? err
              : new ControllerFatalError(`recovery failed (${this.#state}): ${err.message}`, { cause: reason }),
          );
        }
        first = false;
        err = e instanceof NvmeError ? e : new ConnectionLostError(String(e));
        const elapsed = performance.now() - start;
        if (elapsed + delay > this.options.ctrlLossTimeoutMs) {
          await ops.teardown(queues, err, false);
          return this.#giveUp(
            new ConnectionLostError(`gave up reconnecting to ${this.transport.name} after ${Math.round(elapsed)} ms: ${err.message}`, {
              cause: err,
            }),
          );
        }
        await ops.teardown(queues, err, false);
        const until = performance.now() + delay;
        while (performance.now() < until && !this.#closing) await this.#pause(Math.min(50, delay));
        delay = Math.min(delay * 2, Math.max(this.options.reconnectDelayMs, 1));
      }
    }
  }

  /** One attempt at the bring-up's steps again, every command held: admin queue, enable, queue count, IO queues. */
  async #restart(remote: RemoteQueue[]): Promise<void> {
    const ops = this.#ops;
    this.#state = CtrlrState.CONNECT_ADMIN;
    const cntlid = await ops.reconnectAdmin(HELD);
    if (cntlid !== null) this.cntlid = cntlid;
    await this.#enable(HELD);
    const want = this.#requested;
    if (want > 0) {
      if (await this.#setNumQueues(want, HELD) < this.io.length + this.#remote.size) {
        throw new ControllerFatalError(`controller granted fewer IO queues after ${ops.fabric ? "reconnect" : "reset"}`);
      }
    }
    this.#state = CtrlrState.CREATE_IO_QUEUES;
    for (const q of this.io) await ops.restoreIoQueue(q, HELD);
    for (const r of remote) if (this.#remote.has(r.qid)) await ops.createRemoteQueue(r.qid, r.depth, r.sq, r.cq, HELD);
    const queues = [this.admin, ...this.io];
    ops.recovered(queues);
    for (const q of queues) q.resume();
    for (const r of remote) if (this.#remote.has(r.qid)) r.resume();
  }

  /**
   * Reset and enable the controller behind `t`, identify it and create IO
   * queues; over a fabric, connect the admin queue first and each IO queue
   * as a connection of its own. A failure names the state it happened in.
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
      pcie: options.pcie ?? {},
    };
    const ops: TransportOps = isFabric(t) ? new FabricOps(t, opts) : new PcieOps(t, opts);
    let start;
    try {
      start = await ops.connectAdmin();
    } catch (e) {
      throw inState(e, CtrlrState.CONNECT_ADMIN);
    }
    const c = new Controller(t, ops, start.cap, start.pageSize, start.cntlid, opts);
    try {
      await c.#enable(NOT_HELD);
      c.#state = CtrlrState.READ_VS;
      c.#version = decodeVersion(Number(await ops.readRegister(Reg.VS, false)));
      c.#state = CtrlrState.IDENTIFY;
      await c.#identify();
      ops.keepAlive(true);
      await c.#createIoQueues();
      c.#state = CtrlrState.READY;
      return c;
    } catch (e) {
      const state = c.#state;
      c.#closed = true;
      ops.keepAlive(false);
      for (const q of c.io) q.close();
      c.admin.close();
      c.#freeAll();
      throw inState(e, state);
    }
  }

  async #enable(opts: SubmitOptions): Promise<void> {
    this.#state = CtrlrState.ENABLE;
    await this.#ops.enable(opts);
  }

  async #identify(): Promise<void> {
    this.identifyData = await this.identify(identifyControllerCmd());
    this.idCtrl = parseIdCtrl(this.identifyData);
    const id = this.id = identifyControllerOf(this.idCtrl);
    const mdts = id.mdts;
    // A discovery controller has no IO queues and need not report entry sizes.
    if (!this.isDiscovery && (id.sqes.min > 6 || id.sqes.max < 6 || id.cqes.min > 4 || id.cqes.max < 4)) {
      throw new SetupError("unsupported-controller", `controller does not accept 64-byte SQEs / 16-byte CQEs`);
    }
    const mdtsBytes = mdts === 0 ? Infinity : this.cap.mpsMin * 2 ** mdts;
    this.maxTransferBytes = this.#ops.identified(id, Math.min(mdtsBytes, this.options.maxTransferBytes));
  }

  /** Set Features Number of Queues asking for `want` SQ/CQ pairs: the pairs granted (the smaller of NSQA and NCQA, 1-based). */
  async #setNumQueues(want: number, opts?: SubmitOptions): Promise<number> {
    this.#state = CtrlrState.SET_NUM_QUEUES;
    const dw0 = await this.adminCommand(setNumQueuesCmd(want, want), 0, 0, undefined, opts);
    return Math.min((dw0 & 0xffff) + 1, (dw0 >>> 16) + 1);
  }

  /** Set Features Number of Queues, then the IO queues the options ask for, as the transport makes them. */
  async #createIoQueues(): Promise<void> {
    const want = this.#ops.ioQueuesToRequest();
    if (want === 0) return;
    const granted = await this.#setNumQueues(want);
    this.#requested = want;
    this.#granted = Math.min(want, granted);
    const count = Math.min(this.#granted, Math.max(1, this.options.ioQueues));
    this.#state = CtrlrState.CREATE_IO_QUEUES;
    for (let qid = 1; qid <= count; qid++) {
      const qp = await this.#ops.createIoQueue(qid);
      this.#watch(qp);
      this.io.push(qp);
    }
    // The ring's capacity (PRP list pages on PCIe) may cap the transfer further.
    if (this.io.length) this.maxTransferBytes = Math.min(this.maxTransferBytes, this.io[0].maxPrpTransfer);
  }

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
    let qid = 1;
    const used = new Set([...this.io.map((q) => q.qid), ...this.#remote.keys(), ...this.#reserved]);
    while (used.has(qid)) qid++;
    if (qid > this.#granted) {
      throw new OutOfResourcesError(`the controller granted ${this.#granted} IO queues and all are in use`);
    }
    const r = this.#ops.reserveQueue(depth);
    this.#reserved.add(qid);
    return { qid, ...r };
  }

  /** True when queues can be owned by other threads (a memory-mapped transport that shares its memory). */
  get canShareQueues(): boolean {
    return this.#ops instanceof PcieOps && this.#ops.canShare;
  }

  /** How another thread reaches the rings of queue `r` from {@link reserveQueue} (see {@link canShareQueues}). */
  shareQueue(r: ReservedQueue & { qid: number }): SharedPcieRing {
    if (!(this.#ops instanceof PcieOps)) throw new NvmeError("EUNSUPPORTED", "queues owned by Workers need a memory-mapped controller");
    return this.#ops.shareRing(r.qid, r);
  }

  /** Create a reserved queue on the device and take over its recovery. */
  async addRemote(r: RemoteQueue): Promise<void> {
    if (this.#recovering) await this.#recovering;
    if (this.#closed || this.failed) throw this.failed ?? new DeviceClosedError();
    await this.#ops.createRemoteQueue(r.qid, r.depth, r.sq, r.cq);
    this.#reserved.delete(r.qid);
    this.#remote.set(r.qid, r);
  }

  /**
   * A queue owned by another thread saw nothing complete for a health
   * interval while its commands waited (the owner's pump reports it, as this
   * thread's own queues call the same check): read CSTS and recover if the
   * controller failed. No timer here: a 100 ms one woke this thread ten
   * times a second for as long as a Worker owned a queue, idle or not, and on
   * the target's vCPU each wake-up took 1-6 ms of a TCG guest from its Worker.
   */
  remoteStalled(): void {
    this.#onHealthCheck();
  }

  /**
   * Delete a remote queue on the device, then free its memory once the device
   * can no longer write it (a failed delete keeps it mapped until close).
   */
  async removeRemote(r: RemoteQueue, memory: DmaBuffer[]): Promise<void> {
    if (this.#recovering) await this.#recovering.catch(() => {});
    const known = this.#remote.delete(r.qid) || this.#reserved.delete(r.qid);
    if (!known) return;
    let deleted = false;
    if (!this.#closed && !this.failed) {
      try {
        await this.#ops.deleteIoQueue(r.qid);
        deleted = true;
      } catch {
        // Left mapped: transport.close() unmaps it once the device is shut down.
      }
    }
    if (deleted) for (const b of memory) this.freeDma(b);
  }

  /**
   * Send an admin command. With `dataIova`, the command's data pointer (PRP1)
   * addresses a buffer of `dataLen` bytes (0 for a queue base address).
   * Resolves to CQE DW0; rejects with NvmeStatusError on a failed status.
   * `opts.held`: a command of a recovery, sent while other submissions wait.
   */
  adminCommand(cmd: Sqe, dataIova = 0, dataLen = 0, timeoutMs?: number, opts?: SubmitOptions): Promise<number> {
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
      return this.admin.submit(cmd, 0, 0, timeoutMs, ref, opts);
    }
    return this.admin.submit(cmd, dataIova, dataLen, timeoutMs, ref, opts);
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
    return (await adminTransfer(this, cmd, { bytes, timeoutMs, buffer: this.#scratch })).data!;
  }

  /** Active namespace ids, in ascending order (walks the CNS 02h list). */
  async activeNamespaces(): Promise<number[]> {
    const out: number[] = [];
    let start = 0;
    for (;;) {
      const ids = decodeNsidList(await this.identify(activeNsListCmd(start)));
      out.push(...ids);
      if (ids.length < NSID_LIST_ENTRIES) return out;
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

  /** Throw if the controller is gone or fatal (PCIe reads CSTS; a fabric reports a controller that was given up). */
  checkHealth(): void {
    this.#ops.checkHealth();
  }

  /**
   * Read a controller register: MMIO on a memory-mapped transport, Property
   * Get over a fabric.
   */
  readRegister(offset: number, eightBytes = false): Promise<bigint> {
    return this.#ops.readRegister(offset, eightBytes);
  }

  /**
   * Delete IO queues, notify a normal shutdown (CC.SHN) and wait for
   * CSTS.SHST = complete, fail anything still in flight, free DMA memory.
   * Over a fabric, closing a queue's connection deletes it.
   */
  async shutdown(reason: NvmeError | null = null): Promise<void> {
    if (this.#closed) return;
    const ops = this.#ops;
    if (this.#recovering) {
      // A fabric may be waiting out its loss timeout: stop that rather than wait for it.
      if (ops.fabric) {
        this.#closing = true;
        this.#endPauses();
      }
      await this.#recovering;
    }
    this.#closed = true;
    // An Abort's wait for a timed-out command (remoteTimeout, #onTimeout) ends now: it would outlive close.
    this.#endPauses();
    this.#state = CtrlrState.SHUTDOWN;
    ops.keepAlive(false);
    let healthy = !this.failed && !this.admin.closed;
    try {
      this.checkHealth();
    } catch {
      healthy = false;
    }
    if (reason) for (const q of this.io) q.fail(reason);
    // Owners must drop their views before anything is unmapped; one that does not answer keeps its memory.
    const remotes = [...this.#remote.values()];
    const acked = await Promise.all(remotes.map((r) => r.fail(reason ?? new DeviceClosedError())));
    remotes.forEach((r, i) => {
      if (!acked[i]) ops.retain(r.memory);
    });
    if (healthy) {
      try {
        for (const q of this.io) {
          q.close();
          await ops.deleteIoQueue(q.qid);
        }
        for (const r of this.#remote.values()) await ops.deleteIoQueue(r.qid);
        this.#remote.clear();
        await ops.shutdown(this.id.rtd3e);
      } catch {
        // A dying controller must not stop the host side from being released.
      }
    }
    for (const q of this.io) q.close();
    this.admin.close();
    this.#freeAll();
  }

  #freeAll(): void {
    for (const b of this.#dma) this.transport.freeDma(b);
    this.#dma.clear();
  }
}

/** `e` with the bring-up state it happened in named in its message. */
function inState(e: unknown, state: CtrlrStateName): unknown {
  if (e instanceof NvmeError && !e.message.includes("(bring-up state")) e.message = `${e.message} (bring-up state: ${state})`;
  return e;
}
