/**
 * A queue pair: the generic command tracker (slots, ids, deadlines, promises
 * or callbacks) over a transport's ring, plus the pump that reaps
 * completions. Owned by exactly one thread (the main thread or a Worker), with
 * no lock: SPDK's rule, "each queue pair should only be used from a single
 * thread".
 * @module
 */
import { microtaskTurn, yieldMacrotask } from "../ffi/yield.ts";
import { Idle, type IdleAction, IdlePolicy, type WaitMode } from "./idle.ts";
import { hi32, lo32, type Sqe, setRw, SqeDw } from "./command.ts";
import { DeviceClosedError, InvalidArgumentError, type NvmeError } from "./errors.ts";
import type { QueueRing } from "./ring.ts";
import { type CommandStats, CommandTracker, type IoCallback } from "./tracker.ts";
import type { CommandTrace } from "./trace.ts";
import type { DmaBuffer } from "./transport.ts";

export type { CommandStats, IoCallback, QueueRing, WaitMode };

/** Counters a queue pair keeps: its commands', its ring's and its pump's; cheap to read at any time. */
export interface QueueStats extends CommandStats {
  /** Times the ring made submissions visible: SQ doorbell writes on PCIe (fewer than submitted when batching). */
  sqDoorbells: number;
  /** Interrupts taken (0 in polling mode). */
  interrupts: number;
  /** Times the pump slept on the interrupt (each ended by an interrupt or a 100 ms bound). */
  sleeps: number;
  /**
   * Times the queue turned its vector's interrupts on or off (an MSI-X mask
   * store into the BAR, or an ioctl): adaptive mode switches once per busy
   * and idle period, never per IO; 0 without a gate.
   */
  gateSwitches: number;
  /**
   * Times the pump let the event loop run (a macrotask turn: timers, IO,
   * other tasks) while it polled: once per few ms while busy, never per IO.
   */
  yields: number;
}

/** How one command is submitted, beyond its data. */
export interface SubmitOptions {
  /**
   * A command of the recovery itself (a fabric queue's Connect, the enable
   * after a reconnect): it goes through while other submissions are held.
   */
  held?: boolean;
}

/** A completion's command-specific dwords. */
export interface Completion {
  /** CQE DW0. */
  dw0: number;
  /** CQE DW1 (e.g. the high half of an 8-byte Property Get). */
  dw1: number;
}

const NO_OPTIONS: SubmitOptions = {};

/**
 * A queue's interrupt, as the pump sleeps on it (lib/irq's IrqWaiter): arm,
 * check the ring once more, then sleep; no wake-up is lost in between.
 */
export interface QueueWaiter {
  /** Snapshot the interrupt count (before the last check that precedes {@link sleep}). */
  arm(): void;
  /** Until an interrupt newer than the arm, or `timeoutMs`; true on an interrupt. */
  sleep(timeoutMs: number): Promise<boolean>;
  /** End a sleep now (queue closing). */
  wake(): void;
  /**
   * The queue polls again: turn the vector's interrupts off until the next
   * {@link arm} (waiters with a gate; others ignore it). Called in adaptive
   * mode once per busy period, after the wake's completions were handled.
   */
  disarm?(): void;
  /** Interrupts counted so far. */
  readonly count: number;
  /** Times the waiter's gate switched the vector on or off (absent: no gate). */
  readonly gateSwitches?: number;
}

/** Policy of one queue pair, whatever its ring. */
export interface QueuePairOptions {
  /** Queue id (0 = admin). */
  qid: number;
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
  /**
   * Synchronous polls of a memory-polled ring after an empty poll, before the
   * pump awaits its next microtask turn (default {@link DEFAULT_SPIN_POLLS}; 0: none).
   */
  spinPolls?: number;
}

/**
 * Default {@link QueuePairOptions.spinPolls}: a reap that finds nothing is one
 * load of a CQE's DW3 (lib/ffi's pollLoad32: ~0.5-5 ns on a host, scripts/bench-poll.ts; some 100 ns
 * in a TCG guest), so 256 polls stay within microseconds on a host and ~25-50 µs in the guest, about
 * one device round trip there. Counted in polls, not time: a clock read costs µs in a TCG guest. A
 * spin that runs out ends in a checkpoint: a clock read, and the idle policy's window decides.
 */
export const DEFAULT_SPIN_POLLS = 256;

/** A command whose deadline is further away than this is parked (an async event request): no health checks for it. */
const PARKED_MS = 24 * 3600_000;

/** A queue pair over a transport's ring (lib/nvme/pcie.ts's PcieRing, lib/tcp's TcpRing). */
export type QueuePairConfig = QueuePairOptions & {
  /** The ring commands go through; its depth is the pair's. */
  ring: QueueRing;
};

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
  /** Interval of {@link onHealthCheck} in ms while a command with a deadline within a day waits. */
  healthCheckMs = 100;
  /**
   * Interval of {@link onHealthCheck} in ms while only commands that may wait
   * a day or more are outstanding (an async event request). Infinity (the
   * default): none, so an idle queue makes no wake-up of its own until its
   * interrupt or a deadline; a dead controller is then noticed by the next
   * command. Set a rate to watch CSTS while idle.
   */
  idleHealthCheckMs: number = Infinity;
  /**
   * Polls of the ring the pump may make synchronously after an empty poll,
   * while commands are in flight, before it awaits the next microtask turn
   * (rings with {@link QueueRing.pollable} only; 0: none). Bounds how long
   * other JavaScript waits behind the pump; see QueuePairOptions.spinPolls.
   */
  spinPolls: number;

  readonly #t: CommandTracker;
  readonly #stats: QueueStats = { submitted: 0, completed: 0, bogus: 0, late: 0, timeouts: 0, sqDoorbells: 0, interrupts: 0, sleeps: 0, gateSwitches: 0, yields: 0 };
  /** Flushes of rings this pair had before its current one (a fabric queue's earlier connections). */
  #flushesBefore = 0;
  #ring: QueueRing;
  #waiter: QueueWaiter | null = null;
  #policy: IdlePolicy;
  #irqBase = 0;
  #gateBase = 0;
  #flushQueued = false;
  #pumping = false;
  /** The pump awaits its next microtask turn: it rings the doorbell then, no flush microtask needed. */
  #spinning = false;
  /**
   * Adaptive: the vector was turned on for a sleep and not yet off again. Kept
   * across pump runs: a run that ended right after a wake must not leave the
   * vector raising an interrupt per completion for the next one.
   */
  #armed = false;
  #closedWith: NvmeError | null = null;
  /**
   * The pump sleeps with only parked commands in flight: the next submission
   * starts the policy's wait clock ({@link IdlePolicy.submitted}).
   */
  #asleep = false;
  /** Cids of commands submitted with a deadline a day or more away (an AER): never polled for. */
  readonly #parked: number[] = [];
  /** The poll-mode nap's timer and its end, while one runs: {@link fail} ends it, so no pump outlives close. */
  #napTimer: ReturnType<typeof setTimeout> | undefined = undefined;
  #napEnd: (() => void) | null = null;
  readonly #flush = (): void => this.ring();
  readonly #run = new PumpRun();

  /** A pair over `cfg.ring`. The device must already know the ring (created, or connected). */
  constructor(cfg: QueuePairConfig) {
    this.qid = cfg.qid;
    this.depth = cfg.ring.depth;
    this.slots = Math.min(this.depth - 1, cfg.maxInflight ?? this.depth - 1);
    this.defaultTimeoutMs = cfg.defaultTimeoutMs;
    this.pollSpinUs = cfg.pollSpinUs ?? 500;
    this.spinPolls = cfg.spinPolls ?? DEFAULT_SPIN_POLLS;
    this.#t = new CommandTracker(cfg.qid, this.slots, this.#stats);
    this.#ring = cfg.ring;
    this.#t.onTimeout = (cid, opcode) => this.onTimeout?.(this, cid, opcode);
    this.#policy = new IdlePolicy({ mode: "poll", spinUs: this.pollSpinUs });
    if (cfg.ring.batchCqDoorbell !== undefined) cfg.ring.batchCqDoorbell = true;
  }

  /** Counters (the ring's doorbell count and the gate's switches read now). */
  get stats(): QueueStats {
    const s = this.#stats;
    s.sqDoorbells = this.#flushesBefore + this.#ring.flushes;
    s.gateSwitches = (this.#waiter?.gateSwitches ?? 0) - this.#gateBase;
    return s;
  }

  /** The command trace this queue records into (null: off). */
  get trace(): CommandTrace | null {
    return this.#t.trace;
  }

  set trace(t: CommandTrace | null) {
    this.#t.trace = t;
  }

  /** How the pump waits once idle: `poll`, `interrupt` or `adaptive` (these two need the queue's interrupt). */
  get waitMode(): WaitMode {
    return this.#policy.mode;
  }

  /**
   * Choose how the pump waits: `poll` (spin, then yield, then timer naps),
   * `interrupt` (sleep on `waiter` whenever a poll finds nothing) or
   * `adaptive` (poll while completions come fast, sleep on the interrupt once
   * idle for {@link pollSpinUs}). The interrupt is armed once per idle period.
   */
  setWaitMode(mode: WaitMode, waiter: QueueWaiter | null = this.#waiter): void {
    if (mode !== "poll" && waiter === null) {
      throw new InvalidArgumentError(`wait mode ${mode} needs the queue's interrupt (none was enabled)`);
    }
    this.#policy = new IdlePolicy({ mode, spinUs: this.pollSpinUs });
    // A queue that sleeps on every completion tells the device its CQ head at once.
    if (this.#ring.batchCqDoorbell !== undefined) this.#ring.batchCqDoorbell = mode !== "interrupt";
    this.#waiter = waiter;
    this.#irqBase = waiter ? waiter.count - this.#stats.interrupts : 0;
    this.#gateBase = (waiter?.gateSwitches ?? 0) - this.#stats.gateSwitches;
    // Adaptive polls first: no interrupt per completion while it does (interrupt mode keeps them on).
    this.#armed = false;
    if (mode === "adaptive") waiter?.disarm?.();
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
   * Put a new ring under this pair (a fabric queue's new connection after a
   * reconnect). Only while held for a reset with nothing in flight: the
   * tracker's slots and waiting submissions carry over.
   */
  replaceRing(ring: QueueRing): void {
    if (!this.#t.paused || this.#t.active !== 0) {
      throw new InvalidArgumentError("replaceRing needs a paused queue with nothing in flight");
    }
    this.#ring.close();
    this.#flushesBefore += this.#ring.flushes;
    this.#ring = ring;
    this.#flushQueued = false;
  }

  /** The ring under this pair. */
  get queueRing(): QueueRing {
    return this.#ring;
  }

  #place(slot: number, cmd: Sqe, dataIova: number, dataLen: number, timeoutMs: number, ref: DmaBuffer | null): void {
    const e = this.#ring.entry();
    for (let i = 1; i < 16; i++) e[i] = cmd[i];
    // Without data the command's own dwords stand (a queue base address in PRP1).
    if (dataLen > 0) this.#ring.setData(e, slot, dataIova, dataLen);
    this.#post(slot, e, cmd[0], timeoutMs, ref);
  }

  /** A slot for a command submitted with `opts`, or -1 (none free, or held). */
  #take(opts: SubmitOptions): number {
    return opts.held ? this.#t.takeHeld() : this.#t.take();
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
    opts: SubmitOptions = NO_OPTIONS,
  ): Promise<number> {
    return this.#send(cmd, dataIova, dataLen, timeoutMs, ref, opts, false) as Promise<number>;
  }

  /** As {@link submit}, resolving to the completion's DW0 and DW1 (not on the hot path: it allocates). */
  submitForCompletion(
    cmd: Sqe,
    dataIova = 0,
    dataLen = 0,
    timeoutMs = this.defaultTimeoutMs,
    ref: DmaBuffer | null = null,
    opts: SubmitOptions = NO_OPTIONS,
  ): Promise<Completion> {
    return this.#send(cmd, dataIova, dataLen, timeoutMs, ref, opts, true) as Promise<Completion>;
  }

  /**
   * The one submit path: a slot (or a wait for one, or a rejection when closed
   * or held without a free slot), then the command placed. `dw1` resolves to
   * the whole {@link Completion}; without it only DW0, allocating nothing but the Promise.
   */
  #send(
    cmd: Sqe,
    dataIova: number,
    dataLen: number,
    timeoutMs: number,
    ref: DmaBuffer | null,
    opts: SubmitOptions,
    dw1: boolean,
  ): Promise<number | Completion> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const slot = this.#take(opts);
    if (slot < 0) {
      if (opts.held) return Promise.reject(new InvalidArgumentError("no free slot for a recovery command"));
      return this.#t.queued(ref, () => this.#send(cmd, dataIova, dataLen, timeoutMs, ref, opts, dw1));
    }
    if (!dw1) {
      this.#place(slot, cmd, dataIova, dataLen, timeoutMs, ref);
      return this.#t.promise(slot);
    }
    return new Promise<Completion>((resolve, reject) => {
      this.#t.callback(slot, (err, dw0, dw1) => err ? reject(err) : resolve({ dw0, dw1 }));
      this.#place(slot, cmd, dataIova, dataLen, timeoutMs, ref);
    });
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
   * {@link rw} with a metadata pointer and protection information fields:
   * MPTR (`metaIova`, 0: none), CDW3 (reference tag bits 47:32 of 64-bit
   * guard formats), CDW14 (reference tag), CDW15 (application tag and mask).
   * No allocation but the Promise.
   */
  rwMeta(
    opcode: number,
    nsid: number,
    slba: number,
    nlb0: number,
    dataIova: number,
    dataLen: number,
    cdw12Flags: number,
    timeoutMs: number,
    ref: DmaBuffer | null,
    metaIova: number,
    cdw3: number,
    cdw14: number,
    cdw15: number,
  ): Promise<number> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const slot = this.#t.take();
    if (slot < 0) {
      return this.#t.queued(
        ref,
        () => this.rwMeta(opcode, nsid, slba, nlb0, dataIova, dataLen, cdw12Flags, timeoutMs, ref, metaIova, cdw3, cdw14, cdw15),
      );
    }
    const e = this.#ring.entry();
    setRw(e, opcode, nsid, slba, nlb0, cdw12Flags);
    e[SqeDw.CDW3] = cdw3;
    e[SqeDw.MPTR_LO] = lo32(metaIova);
    e[SqeDw.MPTR_HI] = hi32(metaIova);
    e[SqeDw.CDW14] = cdw14;
    e[SqeDw.CDW15] = cdw15;
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
    this.#ring.flush();
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
    this.#waiter?.wake();
    this.#endNap();
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
    const t = this.#t;
    const cid = t.begin(slot, cdw0 & 0xff, e[SqeDw.NSID], timeoutMs, ref);
    e[0] = ((cdw0 & 0xffff) | (cid << 16)) >>> 0;
    if (timeoutMs >= PARKED_MS) this.#park(cid);
    if (this.#asleep) {
      // The first command into a sleeping queue (an admin command with only an AER outstanding):
      // its answer time counts from now, not from the last completion (one clock read per sleep).
      this.#asleep = false;
      this.#policy.submitted(performance.now());
    }
    if (t.trace !== null) t.trace.submit(this.qid, cid, e);
    this.#ring.push();
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      // A spinning pump rings on its next turn (or, from a completion's callback, in this one).
      if (!this.#spinning) queueMicrotask(this.#flush);
    }
    if (!this.#pumping) void this.#pump();
  }

  /** An idle pump's timer nap (poll mode, idle path only: not per IO). */
  #nap(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      this.#napEnd = resolve;
      this.#napTimer = setTimeout(() => {
        this.#napEnd = null;
        resolve();
      }, ms);
    });
  }

  /** End a running nap now (the pair is failing or closing). */
  #endNap(): void {
    const end = this.#napEnd;
    if (end === null) return;
    this.#napEnd = null;
    clearTimeout(this.#napTimer);
    end();
  }

  /** Remember a parked command's cid (rare: an AER), dropping those that ended. */
  #park(cid: number): void {
    const p = this.#parked;
    let k = 0;
    for (const c of p) if (this.#t.holds(c)) p[k++] = c;
    p.length = k;
    p.push(cid);
  }

  /**
   * True when every command in flight is parked (an AER): nobody waits on
   * this queue, so the pump sleeps at once instead of polling its window.
   * Checked only at an idle checkpoint, over a list of a few cids.
   */
  #onlyParked(): boolean {
    const p = this.#parked;
    if (p.length === 0) return false;
    let n = 0;
    for (const c of p) if (this.#t.holds(c)) n++;
    return n >= this.#t.active;
  }

  /** True while a command with a deadline within {@link PARKED_MS} waits: health checks run at {@link healthCheckMs}. */
  #watched(now: number): boolean {
    return this.#t.nextDeadline() - now < PARKED_MS;
  }

  /**
   * Reap until nothing is in flight. Spins on microtasks while completions
   * come (reading the clock only every {@link TURNS_PER_CHECK} turns), then
   * does what the idle policy says: yield to the event loop, nap on timers
   * (poll mode; an async event request may stay outstanding for hours), or
   * arm the interrupt and sleep (interrupt and adaptive modes). On a ring whose
   * completions land in polled memory ({@link QueueRing.pollable}), an empty
   * poll with commands in flight spins on the ring synchronously for at most
   * {@link spinPolls} polls before the next microtask turn, as SPDK's poller
   * would: the caller waiting for that completion sees it without the turn.
   *
   * Kept small on purpose: the work of a turn ({@link turn}), of a checkpoint
   * ({@link checkpoint}) and of a sleep live in their own methods. A JIT
   * compiles this async loop whole, and in a TCG guest one optimizing compile
   * of the former single-method pump took seconds of a vCPU (JSC's FTL: 0.5-0.7
   * s natively under load); a rare path (the first sleep, a health check) that
   * deoptimized it paid that again.
   */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    this.#policy.restart();
    const t = this.#t;
    this.#run.start();
    this.#run.completedAtHealth = t.stats.completed;
    try {
      // Let the caller finish its synchronous batch first: one doorbell for all of it.
      this.#spinning = true;
      await microtaskTurn;
      let turns = 0, linger = 0;
      while (!this.#closedWith) {
        if (t.active === 0) {
          if (++linger > LINGER_TURNS) {
            // Once per busy period: the next run's polling window depends on how long the queue sits empty.
            if (this.#policy.mode === "adaptive") this.#policy.emptied(performance.now());
            this.#ring.flushCq?.();
            this.#leaveArmed();
            break;
          }
        } else linger = 0;
        // Checkpoints: every 64 turns while busy; every turn once idle, or when the turn asks for one.
        if (!this.#turn() && (++turns & (TURNS_PER_CHECK - 1)) !== 0) {
          this.#run.lastEmpty = UNSET;
          await microtaskTurn;
          continue;
        }
        const action = this.#checkpoint();
        if (action === Idle.SPIN || (action === Idle.SLEEP && this.#waiter !== null && t.active === 0)) {
          await microtaskTurn; // (lingering with nothing in flight: no sleep)
          continue;
        }
        // Leaving the microtask turns: later submissions need their own flush microtask.
        this.#spinning = false;
        if (this.#flushQueued) this.ring();
        if (action === Idle.SLEEP && this.#waiter !== null) {
          const bound = this.#armSleep();
          let woke = true;
          if (bound > 0) {
            woke = await this.#waiter.sleep(bound);
            this.#asleep = false;
          }
          this.#woke(woke);
        } else if (action === Idle.NAP) {
          await this.#nap(this.#policy.napMs(this.#run.now));
          this.#policy.resumed(performance.now(), false);
        } else {
          this.#stats.yields++;
          await yieldMacrotask();
          this.#policy.resumed(performance.now(), false);
        }
        this.#spinning = true;
      }
    } finally {
      this.#pumping = false;
      this.#spinning = false;
    }
    // A submission may have raced the exit.
    if (t.active > 0 && !this.#closedWith) void this.#pump();
  }

  /** Leaving a run with the vector on (a wake ended it): off, or the next run's IO would raise an interrupt per completion. */
  #leaveArmed(): void {
    if (!this.#armed) return;
    this.#armed = false;
    this.#waiter?.disarm?.();
  }

  /**
   * One turn of the pump: ring what was queued, reap, and on a pollable ring
   * spin on it (at most {@link spinPolls} polls, no clock read) while that can
   * help. Adds to the run's count of reaped completions; true when a
   * checkpoint should follow now (idle, the device is slow, or interrupt mode
   * found nothing).
   */
  #turn(): boolean {
    const t = this.#t, run = this.#run;
    if (this.#flushQueued) this.ring();
    if (run.disarm) {
      // After the ring: the caller's next command is already on its way to the device.
      run.disarm = this.#armed = false;
      this.#waiter?.disarm?.();
    }
    // The ring is read per reap: a fabric queue's ring changes on reconnect.
    const ring = this.#ring;
    let n = ring.reap(t);
    // Completions' callbacks may have submitted: ring their doorbell in this same turn.
    let more = this.#flushQueued;
    if (more) this.ring();
    let check = run.idle;
    const mode = this.#policy.mode;
    if (t.active > 0 && (n === 0 || more) && !check && this.spinPolls > 0 && ring.pollable === true && mode !== "interrupt") {
      // Spin while it can help: nothing found yet, or the completions found submitted more work
      // (callbacks). Completions that resolved promises end the turn: their callers resubmit in
      // the next microtasks.
      for (let i = this.spinPolls; i > 0 && t.active > 0; i--) {
        const k = ring.reap(t);
        if (k === 0) continue;
        n += k;
        more = this.#flushQueued;
        if (!more) break;
        this.ring();
      }
      if (n === 0) check = true; // the device is slow: worth a clock read (and maybe a sleep) now
    }
    run.reaped += n;
    return check || (n === 0 && mode === "interrupt");
  }

  /**
   * A checkpoint (a clock read): deadlines, health checks, and the idle
   * policy's next action, with the run's bookkeeping.
   */
  #checkpoint(): IdleAction {
    const t = this.#t, run = this.#run, policy = this.#policy;
    const now = performance.now();
    const reaped = run.reaped;
    // Two empty polls in consecutive turns far apart: the pump did not run in between.
    if (reaped === 0 && run.lastEmpty >= 0) policy.stalled(now - run.lastEmpty);
    if (run.lastTimeouts < 0) {
      run.lastHealth = now;
      run.lastTimeouts = now - 5; // stamp new commands' deadlines at the first checkpoint
    }
    if (now - run.lastTimeouts >= 5) {
      run.lastTimeouts = now;
      t.checkTimeouts(now);
    }
    // A stall: nothing completed since the last look, whoever reaped (a target Worker's loop reaps
    // outside the pump), while a command with an ordinary deadline waits.
    if (reaped === 0 && now - run.lastHealth >= this.healthCheckMs && this.onHealthCheck && this.#watched(now)) {
      const done = t.stats.completed;
      run.lastHealth = now;
      if (done === run.completedAtHealth) this.onHealthCheck();
      run.completedAtHealth = done;
    }
    // Adaptive: completions came since the interrupt was turned on for a sleep: off at the next turn.
    if (this.#armed && reaped > 0) run.disarm = true;
    let action = policy.next(reaped, now);
    run.parked = false;
    if (action === Idle.SPIN && reaped === 0 && policy.mode !== "poll" && this.#waiter !== null && this.#onlyParked()) {
      // Only an AER left (the admin queue after a command): no window, sleep now; a sleep
      // that is not waiting on an answer teaches the policy nothing.
      policy.restart();
      action = Idle.SLEEP;
      run.parked = true;
    }
    run.lastEmpty = action === Idle.SPIN && reaped === 0 ? now : UNSET;
    run.reaped = 0;
    run.idle = action !== Idle.SPIN;
    run.now = now;
    return action;
  }

  /**
   * Before a sleep: arm (interrupt on, count snapshot), reap once more (a
   * completion that raced the arm is caught), and the sleep's bound: the
   * interrupt, the next command deadline or the next health check, whichever
   * comes first. Commands that may wait a day or more (an async event
   * request) get no health check by default: the queue then makes no wake-up
   * of its own. Returns 0 when the reap found completions (no sleep).
   */
  #armSleep(): number {
    const t = this.#t, run = this.#run, w = this.#waiter!, now = run.now;
    t.checkTimeouts(now);
    run.lastTimeouts = now;
    const deadline = t.nextDeadline() - now + 1;
    const health = this.#watched(now) ? this.healthCheckMs : this.idleHealthCheckMs;
    const bound = Math.max(1, Math.min(health - (now - run.lastHealth), deadline));
    this.#ring.flushCq?.();
    w.arm();
    this.#armed = this.#policy.mode === "adaptive";
    const found = this.#ring.reap(t) > 0;
    if (this.#flushQueued) this.ring();
    if (found) return 0;
    this.#stats.sleeps++;
    this.#asleep = run.parked;
    return bound;
  }

  /** After a sleep (or the reap before it found completions): counters and the policy. */
  #woke(woke: boolean): void {
    this.#stats.interrupts = this.#waiter!.count - this.#irqBase;
    this.#policy.resumed(performance.now(), woke);
  }
}

/** A clock field's "none": negative (tests are `< 0`) and not a small integer, so the field stays a double. */
const UNSET = -0.5;

/** A pump run's bookkeeping between its turns and checkpoints (one per queue pair, reset per run). */
class PumpRun {
  /** Completions reaped since the last checkpoint. */
  reaped = 0;
  // The clock fields hold doubles from construction (UNSET, -0): a Smi there turned into a double at
  // the first checkpoint, which changed the object's layout and deoptimized the pump's code.
  /** Clock of the previous checkpoint when it was an empty poll in the turn just before, else UNSET. */
  lastEmpty = UNSET;
  lastTimeouts = UNSET;
  lastHealth = UNSET;
  /** The last checkpoint's clock. */
  now = -0;
  /** The policy left SPIN at the last checkpoint: check every turn. */
  idle = false;
  /** Adaptive: completions came since the interrupt was turned on for a sleep: turn it off. */
  disarm = false;
  /** The coming sleep is for parked commands only. */
  parked = false;
  /** Commands completed on the queue at the last health look (or the run's start). */
  completedAtHealth = 0;

  /** A new run. */
  start(): void {
    this.reaped = 0;
    this.lastEmpty = this.lastTimeouts = this.lastHealth = UNSET;
    this.idle = this.disarm = this.parked = false;
  }
}
