/**
 * A queue pair: the generic command tracker (slots, ids, deadlines, promises
 * or callbacks) over a transport's ring, plus the pump that reaps
 * completions. Owned by exactly one thread (the main thread or a Worker), with
 * no lock: SPDK's rule, "each queue pair should only be used from a single
 * thread".
 * @module
 */
import { type Sqe, setRw, SqeDw } from "./command.ts";
import { DeviceClosedError, type NvmeError } from "./errors.ts";
import { PcieRing, type PcieRingConfig, type QueueRing } from "./pcie.ts";
import { CommandTracker, type IoCallback, type QueueStats } from "./tracker.ts";
import type { DmaBuffer } from "./transport.ts";

export type { IoCallback, PcieRingConfig, QueueRing, QueueStats };

/** How a queue waits for completions once it has nothing to reap. */
export interface QueueWaiter {
  /**
   * Resolve when the queue's interrupt fires (or soon after `timeoutMs`). The
   * pump calls it only once it has been idle for its spin window, so it is
   * armed once per idle period, never per IO.
   */
  wait(timeoutMs: number): Promise<void>;
  /** Interrupts taken so far. */
  readonly count: number;
}

/** Memory, doorbells and policy of one queue pair. */
export interface QueuePairConfig extends PcieRingConfig {
  /** Timeout applied to commands that do not give their own, in ms. */
  defaultTimeoutMs: number;
  /** Most commands in flight at once (at most depth - 1). */
  maxInflight?: number;
  /**
   * How long the pump keeps polling on microtasks after the last completion
   * before it yields to the event loop between polls, in µs (default 500).
   * Higher: lower latency, more CPU; 0: yield after every empty poll.
   */
  pollSpinUs?: number;
  /** A ring other than the PCIe one built from the fields above (another transport). */
  ring?: QueueRing;
}

// setImmediate yields to the event loop in ~1-4 µs; setTimeout(0) costs milliseconds.
const yieldMacrotask: () => Promise<void> = typeof (globalThis as { setImmediate?: unknown }).setImmediate ===
    "function"
  ? () =>
    new Promise<void>((r) => (globalThis as unknown as { setImmediate(f: () => void): void }).setImmediate(r))
  : () => new Promise<void>((r) => setTimeout(r, 0));

/** Microtask turns between clock reads while the pump spins (the clock costs µs in a TCG guest). */
const TURNS_PER_CHECK = 64;
/** Turns the pump keeps spinning with nothing in flight, to catch the next submission without a restart. */
const LINGER_TURNS = 4;

/** A queue pair with a Promise API and a callback API. Owned by exactly one thread. */
export class QueuePair {
  /** Queue id. */
  readonly qid: number;
  /** Ring entries. */
  readonly depth: number;
  /** Command slots (commands in flight at most). */
  readonly slots: number;
  /** Counters. */
  readonly stats: QueueStats;
  /** Default command timeout in ms. */
  defaultTimeoutMs: number;
  /** Microtask polling window after the last completion, in µs (see QueuePairConfig.pollSpinUs). */
  pollSpinUs: number;
  /** Called after a command times out (the controller decides on abort/reset). */
  onTimeout: ((qp: QueuePair, cid: number, opcode: number) => void) | null = null;
  /**
   * Called about every `healthCheckMs` while commands wait, so a dead or fatal
   * controller is noticed without waiting for a command timeout.
   */
  onHealthCheck: (() => void) | null = null;
  /** Interval of {@link onHealthCheck} in ms. */
  healthCheckMs = 100;
  /**
   * Interrupt source of this queue (null: poll only). With one, the pump
   * polls while completions come fast and sleeps on the interrupt when idle
   * (adaptive); `interruptOnly` sleeps on it whenever nothing is ready.
   */
  waiter: QueueWaiter | null = null;
  /** With a {@link waiter}: sleep on the interrupt as soon as a poll finds nothing (no spinning). */
  interruptOnly = false;

  readonly #t: CommandTracker;
  readonly #ring: QueueRing;
  #flushQueued = false;
  #pumping = false;
  #closedWith: NvmeError | null = null;
  readonly #flush = (): void => this.ring();

  /** Wrap the rings described by `cfg`. The controller must already know them. */
  constructor(cfg: QueuePairConfig) {
    this.qid = cfg.qid;
    this.depth = cfg.depth;
    this.slots = Math.min(cfg.depth - 1, cfg.maxInflight ?? cfg.depth - 1);
    this.defaultTimeoutMs = cfg.defaultTimeoutMs;
    this.pollSpinUs = cfg.pollSpinUs ?? 500;
    this.#t = new CommandTracker(cfg.qid, this.slots);
    this.stats = this.#t.stats;
    this.#ring = cfg.ring ?? new PcieRing(cfg, this.slots);
    this.#t.onTimeout = (cid, opcode) => this.onTimeout?.(this, cid, opcode);
  }

  /** Largest transfer one command can carry (PRP list capacity on PCIe). */
  get maxPrpTransfer(): number {
    return this.#ring.maxTransfer;
  }

  /** Commands waiting for completion (timed-out ones excluded). */
  get inflight(): number {
    return this.#t.active;
  }

  /** True once the pair has been failed or closed. */
  get closed(): boolean {
    return this.#closedWith !== null;
  }

  /** True if the pair currently holds a command id (busy or timed out and not yet answered). */
  holds(cid: number): boolean {
    return this.#t.holds(cid);
  }

  /** Hold new submissions (they wait) while the controller is being reset. */
  pause(): void {
    this.#t.pause();
  }

  /**
   * During a controller reset, while the device is disabled: fail whatever was
   * still outstanding with `err` and zero the rings. Submissions stay held
   * until {@link resume}.
   */
  reset(err: NvmeError): void {
    this.#t.pause();
    // The device is disabled: it can no longer write the commands' memory.
    this.#t.failAll(err, true);
    this.#ring.reset();
    this.#flushQueued = false;
  }

  /** Let held submissions through once the pair exists on the device again. */
  resume(): void {
    this.#t.resume();
  }

  /**
   * Submit a prepared command (`cmd` dwords copied) with an optional data
   * buffer. Resolves to CQE DW0. `ref` is the DMA memory the command uses:
   * it stays busy (never unmapped, its IOVA never reused) until the command
   * has ended on the device, even after its promise rejected on a timeout.
   */
  submit(
    cmd: Sqe,
    dataIova = 0,
    dataLen = 0,
    timeoutMs = this.defaultTimeoutMs,
    ref: DmaBuffer | null = null,
  ): Promise<number> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const slot = this.#t.take();
    if (slot < 0) return this.#t.queued(ref, () => this.submit(cmd, dataIova, dataLen, timeoutMs, ref));
    const e = this.#ring.entry();
    for (let i = 1; i < 16; i++) e[i] = cmd[i];
    // Without data the command's own dwords stand (a queue base address in PRP1).
    if (dataLen > 0) this.#ring.setData(e, slot, dataIova, dataLen);
    this.#post(slot, e, cmd[0], timeoutMs, ref);
    return this.#t.promise(slot);
  }

  /**
   * Submit a read/write-shaped IO (read, write, compare, verify, write zeroes)
   * straight into the ring: the hot path, no allocation but the Promise.
   */
  rw(
    opcode: number,
    nsid: number,
    slba: number,
    nlb0: number,
    dataIova: number,
    dataLen: number,
    cdw12Flags = 0,
    timeoutMs = this.defaultTimeoutMs,
    ref: DmaBuffer | null = null,
  ): Promise<number> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const slot = this.#t.take();
    if (slot < 0) {
      return this.#t.queued(ref, () => this.rw(opcode, nsid, slba, nlb0, dataIova, dataLen, cdw12Flags, timeoutMs, ref));
    }
    const e = this.#ring.entry();
    setRw(e, opcode, nsid, slba, nlb0, cdw12Flags);
    if (dataLen > 0) this.#ring.setData(e, slot, dataIova, dataLen);
    else this.#ring.clearData(e);
    this.#post(slot, e, opcode, timeoutMs, ref);
    return this.#t.promise(slot);
  }

  /**
   * The callback path: like {@link rw} but no Promise; `cb` runs from the
   * pump when the command ends (success, status error, timeout, reset). Returns
   * false, doing nothing, when no slot is free or the queue is held for a
   * reset: retry after a completion. Throws the queue's error once it failed
   * or closed.
   */
  rwCallback(
    opcode: number,
    nsid: number,
    slba: number,
    nlb0: number,
    dataIova: number,
    dataLen: number,
    cdw12Flags: number,
    timeoutMs: number,
    ref: DmaBuffer | null,
    cb: IoCallback,
  ): boolean {
    if (this.#closedWith) throw this.#closedWith;
    const slot = this.#t.take();
    if (slot < 0) return false;
    const e = this.#ring.entry();
    setRw(e, opcode, nsid, slba, nlb0, cdw12Flags);
    if (dataLen > 0) this.#ring.setData(e, slot, dataIova, dataLen);
    else this.#ring.clearData(e);
    this.#t.callback(slot, cb);
    this.#post(slot, e, opcode, timeoutMs, ref);
    return true;
  }

  /** Free command slots right now (0 while held for a reset). */
  get freeSlots(): number {
    return this.#t.free;
  }

  /** Write the SQ tail doorbell if entries were added since the last ring. */
  ring(): void {
    this.#flushQueued = false;
    if (this.#closedWith) return;
    if (this.#ring.flush()) this.stats.sqDoorbells++;
  }

  /** Reap completions without waiting; returns how many were consumed. */
  processCompletions(): number {
    return this.#ring.reap(this.#t);
  }

  /** Stamp new deadlines and expire commands past theirs; returns how many timed out. */
  checkTimeouts(now: number = performance.now()): number {
    return this.#t.checkTimeouts(now);
  }

  /**
   * Fail every outstanding command with `err` and refuse new ones. Used on
   * close, controller failure and device loss; no promise is left pending.
   */
  fail(err: NvmeError): void {
    if (!this.#closedWith) this.#closedWith = err;
    this.#ring.close();
    // The device may still be running: the commands' memory stays busy until the transport closes.
    this.#t.failAll(err, false);
    this.#t.wakeAll();
  }

  /** Reject new work with `DeviceClosedError` after failing what is in flight. */
  close(): void {
    this.fail(new DeviceClosedError());
  }

  #post(slot: number, e: Uint32Array, cdw0: number, timeoutMs: number, ref: DmaBuffer | null): void {
    const cid = this.#t.begin(slot, cdw0 & 0xff, e[SqeDw.NSID], timeoutMs, ref);
    e[0] = ((cdw0 & 0xffff) | (cid << 16)) >>> 0;
    this.#ring.push();
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
    if (!this.#pumping) void this.#pump();
  }

  /**
   * Reap until nothing is in flight. Spins on microtasks while completions
   * come (reading the clock only every {@link TURNS_PER_CHECK} turns), yields
   * to the event loop once idle for the spin window, then sleeps: on the
   * interrupt when the queue has one, else on growing timers (an async event
   * request may stay outstanding for hours).
   */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    const t = this.#t;
    try {
      // Let the caller finish its synchronous batch first: one doorbell for all of it.
      await null;
      let turns = 0, linger = 0, reaped = 0;
      let now = -1, lastYield = -1, idleSince = -1, lastTimeouts = -1, lastHealth = -1;
      let sleepy = false;
      while (!this.#closedWith) {
        if (t.active === 0) {
          if (++linger > LINGER_TURNS) break;
        } else linger = 0;
        if (this.#flushQueued) this.ring();
        const n = this.#ring.reap(t);
        reaped += n;
        if (n > 0 && sleepy) {
          sleepy = false;
          idleSince = -1;
        }
        if (!sleepy && (++turns & (TURNS_PER_CHECK - 1)) !== 0) {
          await null;
          continue;
        }
        // Checkpoint: one clock read for timeouts, health checks and the idle policy.
        now = performance.now();
        if (lastYield < 0) lastYield = lastTimeouts = lastHealth = now;
        if (now - lastTimeouts >= 5) {
          lastTimeouts = now;
          t.checkTimeouts(now);
        }
        if (reaped === 0) {
          if (idleSince < 0) idleSince = now;
          if (now - lastHealth >= this.healthCheckMs && this.onHealthCheck) {
            lastHealth = now;
            this.onHealthCheck();
          }
        } else idleSince = -1;
        reaped = 0;
        const idle = idleSince >= 0 ? now - idleSince : 0;
        sleepy = idleSince >= 0 && (idle * 1000 >= this.pollSpinUs || (this.interruptOnly && this.waiter !== null));
        if (sleepy && this.waiter !== null && t.active > 0) {
          // Adaptive: armed once per idle period; the interrupt or the next deadline check wakes us.
          await this.waiter.wait(Math.min(this.healthCheckMs, 100));
          this.stats.interrupts = this.waiter.count;
          lastYield = performance.now();
        } else if (sleepy && idle > 50) {
          await new Promise<void>((r) => setTimeout(r, idle > 1000 ? 10 : 1));
          lastYield = performance.now();
        } else if (sleepy || now - lastYield > 2) {
          await yieldMacrotask();
          lastYield = performance.now();
        } else {
          await null;
        }
      }
    } finally {
      this.#pumping = false;
    }
    // A submission may have raced the exit.
    if (t.active > 0 && !this.#closedWith) void this.#pump();
  }
}
