/**
 * Generic controller logic over any {@link Transport}: reset, admin queue,
 * enable, identify, IO queue creation, shutdown. Knows nothing about PCIe.
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
} from "./command.ts";
import {
  ControllerFatalError,
  ControllerResetError,
  DeviceClosedError,
  DeviceGoneError,
  InvalidArgumentError,
  NvmeError,
  SetupError,
} from "./errors.ts";
import { prpListPages } from "./prp.ts";
import { QueuePair } from "./queue.ts";
import {
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
import type { DmaBuffer, Transport } from "./transport.ts";

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
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

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
}

/** A controller that has been reset, enabled and identified. */
export class Controller {
  /** The transport it runs over. */
  readonly transport: Transport;
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
  /** Largest transfer per command in bytes (MDTS, PRP capacity and the option cap). */
  maxTransferBytes = 0;
  /** Options in force. */
  readonly options: Required<ControllerOptions>;
  readonly #dma: DmaBuffer[] = [];
  #scratch: DmaBuffer;
  #closed = false;

  private constructor(t: Transport, cap: Cap, version: string, pageSize: number, opts: Required<ControllerOptions>) {
    this.transport = t;
    this.cap = cap;
    this.version = version;
    this.pageSize = pageSize;
    this.options = opts;
    this.#scratch = this.#alloc(4096);
    const depth = Math.min(opts.adminQueueDepth, cap.mqes, 4096);
    // PRP list pages for admin transfers too (firmware images, large logs), up to the transfer cap.
    this.admin = this.#makePair(0, depth, prpPagesFor(opts.maxTransferBytes, pageSize), opts.adminTimeoutMs);
    this.#watch(this.admin);
  }

  /** Set once the controller is gone or could not be recovered; every queue was failed with it. */
  failed: NvmeError | null = null;
  /** Controller resets done to recover from faults. */
  resets = 0;
  #recovering: Promise<void> | null = null;
  readonly #resetTimes: number[] = [];

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
    else void this.#abortOrReset(qp, cid, what);
  };

  /** Linux's order: Abort the command; if it is still held afterwards, reset the controller. */
  async #abortOrReset(qp: QueuePair, cid: number, what: string): Promise<void> {
    try {
      await this.adminCommand(abortCmd(qp.qid, cid), 0, 0, Math.min(this.options.adminTimeoutMs, 5000));
    } catch {
      // An Abort that fails or times out is handled by the check below.
    }
    const until = performance.now() + 50;
    while (qp.holds(cid) && performance.now() < until && !this.#recovering && !this.failed) {
      qp.processCompletions();
      await sleep(1);
    }
    if (qp.holds(cid) && !this.#recovering && !this.failed && !this.#closed) {
      await this.recover(new ControllerResetError(`${what} and was not aborted`));
    }
  }

  #giveUp(err: NvmeError): void {
    if (this.failed) return;
    this.failed = err;
    this.admin.fail(err);
    for (const q of this.io) q.fail(err);
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
    for (const q of queues) q.pause();
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
      const t = this.transport;
      const inflight = new ControllerResetError(
        requested ? reason.message : `controller reset to recover: ${reason.message}`,
        { cause: reason },
      );
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
        this.admin.resume();
        await this.#enable();
        const want = this.io.length;
        if (want > 0) {
          const dw0 = await this.adminCommand(setNumQueuesCmd(want, want));
          if (Math.min((dw0 & 0xffff) + 1, (dw0 >>> 16) + 1) < want) {
            throw new ControllerFatalError("controller granted fewer IO queues after reset");
          }
        }
        for (const q of this.io) {
          await this.#createOnDevice(q);
          q.resume();
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

  /** Reset and enable the controller behind `t`, identify it and create IO queues. */
  static async init(t: Transport, options: ControllerOptions = {}): Promise<Controller> {
    validateControllerOptions(options);
    const opts: Required<ControllerOptions> = {
      ioQueues: options.ioQueues ?? 1,
      ioQueueDepth: options.ioQueueDepth ?? 1024,
      adminQueueDepth: options.adminQueueDepth ?? 32,
      adminTimeoutMs: options.adminTimeoutMs ?? 60_000,
      ioTimeoutMs: options.ioTimeoutMs ?? 30_000,
      maxTransferBytes: options.maxTransferBytes ?? 2 * 1024 * 1024,
      pollSpinUs: options.pollSpinUs ?? 500,
    };
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
    const t = this.transport;
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
    const id = new DataView(this.identifyData.buffer);
    const mdts = id.getUint8(77);
    const sqes = id.getUint8(512), cqes = id.getUint8(513);
    if ((sqes & 0xf) > 6 || (sqes >> 4) < 6 || (cqes & 0xf) > 4 || (cqes >> 4) < 4) {
      throw new SetupError("unsupported-controller", `controller does not accept 64-byte SQEs / 16-byte CQEs`);
    }
    const mdtsBytes = mdts === 0 ? Infinity : this.cap.mpsMin * 2 ** mdts;
    this.maxTransferBytes = Math.min(mdtsBytes, this.options.maxTransferBytes);
  }

  async #createIoQueues(): Promise<void> {
    const want = Math.max(1, this.options.ioQueues);
    const dw0 = await this.adminCommand(setNumQueuesCmd(want, want));
    const granted = Math.min(want, (dw0 & 0xffff) + 1, (dw0 >>> 16) + 1);
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

  /** Create IO queue pair `q` on the controller (its CQ first), on the memory it already owns. */
  async #createOnDevice(q: QueuePair): Promise<void> {
    const [sq, cq] = this.#ioMem.get(q.qid)!;
    await this.adminCommand(createIoCqCmd(q.qid, q.depth), cq.iova, 0);
    await this.adminCommand(createIoSqCmd(q.qid, q.depth, q.qid), sq.iova, 0);
  }

  #makePair(qid: number, depth: number, prpPages: number, timeoutMs: number): QueuePair {
    const sq = this.#alloc(depth * SQE_SIZE);
    const cq = this.#alloc(depth * CQE_SIZE);
    const slots = depth - 1;
    const prp = prpPages > 0 ? this.#alloc(slots * prpPages * this.pageSize) : null;
    if (qid === 0) this.#adminMem = [sq, cq];
    else this.#ioMem.set(qid, [sq, cq]);
    return new QueuePair({
      qid,
      depth,
      sq,
      cq,
      prp,
      prpPagesPerSlot: prpPages,
      pageSize: this.pageSize,
      doorbells: this.transport.doorbells(),
      doorbellStride: this.cap.doorbellStride,
      defaultTimeoutMs: timeoutMs,
      pollSpinUs: this.options.pollSpinUs,
    });
  }

  #alloc(size: number): DmaBuffer {
    const b = this.transport.allocDma(size);
    this.#dma.push(b);
    return b;
  }

  /**
   * Send an admin command. With `dataIova`, the command's data pointer (PRP1)
   * addresses a buffer of `dataLen` bytes (0 for a queue base address).
   * Resolves to CQE DW0; rejects with NvmeStatusError on a failed status.
   */
  adminCommand(cmd: Sqe, dataIova = 0, dataLen = 0, timeoutMs?: number): Promise<number> {
    if (dataIova !== 0 && dataLen === 0) {
      // Queue base: PRP1 only.
      cmd[6] = dataIova % 0x1_0000_0000;
      cmd[7] = Math.floor(dataIova / 0x1_0000_0000);
      return this.admin.submit(cmd, 0, 0, timeoutMs);
    }
    return this.admin.submit(cmd, dataIova, dataLen, timeoutMs);
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

  /** Free DMA memory from {@link allocDma}. */
  freeDma(b: DmaBuffer): void {
    const i = this.#dma.indexOf(b);
    if (i >= 0) this.#dma.splice(i, 1);
    this.transport.freeDma(b);
  }

  /** Read CSTS and throw if the controller is gone or fatal. */
  checkHealth(): void {
    const csts = this.transport.readReg32(Reg.CSTS);
    if (csts === 0xffff_ffff) throw new DeviceGoneError();
    if (csts & CSTS.CFS) throw new ControllerFatalError("controller fatal status (CSTS.CFS)");
  }

  /**
   * Delete IO queues, notify a normal shutdown (CC.SHN) and wait for
   * CSTS.SHST = complete, fail anything still in flight, free DMA memory.
   */
  async shutdown(reason: NvmeError | null = null): Promise<void> {
    if (this.#closed) return;
    if (this.#recovering) await this.#recovering;
    this.#closed = true;
    const t = this.transport;
    let healthy = true;
    try {
      this.checkHealth();
    } catch {
      healthy = false;
    }
    if (reason) for (const q of this.io) q.fail(reason);
    if (healthy) {
      try {
        for (const q of this.io) {
          q.close();
          await this.adminCommand(deleteIoSqCmd(q.qid), 0, 0, 5000);
          await this.adminCommand(deleteIoCqCmd(q.qid), 0, 0, 5000);
        }
        const cc = t.readReg32(Reg.CC);
        t.writeReg32(Reg.CC, ((cc & ~CC.SHN_MASK) | CC.SHN_NORMAL) >>> 0);
        const rtd3e = new DataView(this.identifyData.buffer).getUint32(88, true); // µs
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

  #freeAll(): void {
    for (const b of this.#dma.splice(0)) this.transport.freeDma(b);
  }
}
