/**
 * When a queue's completion pump polls, yields, or sleeps on its interrupt.
 * Modes: `poll` (spin, then yield, then timer naps), `interrupt` (sleep on the
 * vector whenever a poll finds nothing), `adaptive` (poll while completions
 * come fast; after `spinUs` without one, arm the interrupt and sleep, as
 * QEMU's block/nvme.c and SPDK's interrupt mode do). The policy takes the
 * pump's own clock reading: it adds no clock read, no FFI call and no
 * allocation per IO, and arms at most once per idle period. Pure logic, used
 * by the queue pair (lib/nvme/queue.ts); lib/irq adds the sleeping itself.
 * @module
 */
import { InvalidArgumentError } from "./errors.ts";

/** How a queue waits for completions. */
export type WaitMode = "poll" | "interrupt" | "adaptive";

/** What the pump does after a poll ({@link IdlePolicy.next}). */
export const Idle = {
  /** Poll again after a microtask (`await null`). */
  SPIN: 0,
  /** Let the event loop run once (setImmediate), then poll. */
  YIELD: 1,
  /** Poll mode, long idle: sleep on a timer (1 ms, 10 ms past 1 s idle), then poll. */
  NAP: 2,
  /** Arm the interrupt and sleep on it (lib/irq's sleepOnIrq, or the queue pair's own arm-reap-sleep), then poll. */
  SLEEP: 3,
} as const;

/** One of the {@link Idle} actions. */
export type IdleAction = typeof Idle[keyof typeof Idle];

/** Options of {@link IdlePolicy}. */
export interface IdlePolicyOptions {
  /** The mode. */
  mode: WaitMode;
  /** Polling window after the last completion, in µs (default 500; `poll` then yields, `adaptive` sleeps). */
  spinUs?: number;
  /** While spinning, let the event loop run at least this often, in ms (default 2). */
  yieldMs?: number;
  /**
   * Longest interval between yields once yields prove expensive, in ms
   * (default 20): the pump spaces its yields so that they cost about 2% of
   * its time (a yield costs ~1-4 µs on a host, 0.5-1 ms in a TCG guest),
   * within [yieldMs, maxYieldMs].
   */
  maxYieldMs?: number;
  /** `poll` mode: idle time after which the pump naps on timers, in ms (default 50). */
  napAfterMs?: number;
  /**
   * `adaptive` mode: the longest the polling window may grow to, in µs
   * (default 10x spinUs). The window learns from the device: twice the
   * average wait for a completion that did come (found by a poll, or by an
   * interrupt that ended a sleep), never below spinUs. A device slower than
   * spinUs (a loaded TCG guest answers in 1-3 ms at depth 32) is then polled
   * through, not slept on per completion; a fast one keeps spinUs.
   */
  maxSpinUs?: number;
  /**
   * `adaptive` mode: the largest share of the time the queue sat empty that
   * the pump may spend polling for the next run's commands (default 0.001).
   * A run that starts after the queue was empty for `g` ms polls for at most
   * `g * spinShare` ms, then sleeps on the interrupt: at 10 commands a second
   * about 100 µs, at 100 or more at once; a stream (the pump never stops)
   * keeps the whole window. A trickle then pays for its IO and one wake-up,
   * not for a polling window sized for throughput. 0: no cap.
   */
  spinShare?: number;
}

/**
 * The pump's decision per turn. Owned by one queue's pump; state is two
 * numbers. Usage, once per pump turn (`now` = the pump's clock read, ms):
 *
 * ```ts
 * const n = reap();
 * switch (policy.next(n, now)) {
 *   case Idle.SPIN: await null; break;
 *   case Idle.YIELD: await yieldMacrotask(); policy.resumed(clock(), false); break;
 *   case Idle.NAP: await sleepMs(policy.napMs(now)); policy.resumed(clock(), false); break;
 *   case Idle.SLEEP: {
 *     const woke = await sleepOnIrq(irq, reap, untilNextDeadlineMs);
 *     policy.resumed(clock(), woke);
 *   }
 * }
 * ```
 */
export class IdlePolicy {
  /** The mode. */
  readonly mode: WaitMode;
  /** Polling window after the last completion, in µs. */
  spinUs: number;
  /** Longest spin without yielding to the event loop, in ms. */
  yieldMs: number;
  /** Longest interval between yields, in ms (see IdlePolicyOptions.maxYieldMs). */
  maxYieldMs: number;
  /** `poll` mode: idle ms before timer naps. */
  napAfterMs: number;
  /** `adaptive` mode: cap of the learned polling window, in µs. */
  maxSpinUs: number;
  /** `adaptive` mode: largest share of the empty time before a run spent polling in it (see IdlePolicyOptions.spinShare). */
  spinShare: number;
  // The clock fields hold doubles from construction (-0.5, -0: heap numbers, not small integers). A
  // field that starts as a small integer changes representation at its first clock value, which gives
  // the object a new map and deoptimizes the pump's code that saw the old one: #emptiedAt did so at the
  // first pump stop, i.e. at a process's first trickled read after a stream (4 deopts, then their
  // recompiles on the compiler threads).
  /** Clock of the first empty poll of this idle stretch (< 0: completions flow). */
  #idleSince = -0.5;
  /**
   * Average wait (ms) for a completion that came while commands were in flight (`adaptive` only).
   * -0, a heap number: the field holds doubles from the start. A Smi 0 changed representation at the
   * first learned wait, which deoptimized the pump's code at the start of every adaptive run.
   */
  #waitAvg = -0;
  /** A sleep of the current idle stretch ran to its timeout: the stretch is idleness, not a slow device. */
  #timedOut = false;
  #lastYield = -Infinity;
  /** Clock at the last YIELD decision (< 0: none pending), to learn what a yield costs. */
  #yieldAt = -0.5;
  #yieldEvery = -0;
  /** Clock at which the queue last went empty ({@link emptied}; < 0: never), and whether a run's first poll is still to come. */
  #emptiedAt = -0.5;
  #runStart = false;
  /** This run's cap of the polling window in µs (Infinity: none; set at the run's first poll). */
  #runCapUs = Infinity;

  /** Make a policy; `interrupt` and `adaptive` need the queue to have an interrupt to sleep on. */
  constructor(opts: IdlePolicyOptions) {
    if (opts.mode !== "poll" && opts.mode !== "interrupt" && opts.mode !== "adaptive") {
      throw new InvalidArgumentError(`wait mode must be poll, interrupt or adaptive, got ${String(opts.mode)}`);
    }
    for (const k of ["spinUs", "yieldMs", "maxYieldMs", "napAfterMs", "maxSpinUs", "spinShare"] as const) {
      const v = opts[k];
      if (v !== undefined && (typeof v !== "number" || !(v >= 0) || !Number.isFinite(v))) {
        throw new InvalidArgumentError(`${k} must be a finite number >= 0, got ${String(v)}`);
      }
    }
    this.mode = opts.mode;
    this.spinUs = opts.spinUs ?? 500;
    this.yieldMs = opts.yieldMs ?? 2;
    this.maxYieldMs = Math.max(this.yieldMs, opts.maxYieldMs ?? 20);
    this.napAfterMs = opts.napAfterMs ?? 50;
    this.maxSpinUs = Math.max(this.spinUs, opts.maxSpinUs ?? this.spinUs * 10);
    this.spinShare = opts.spinShare ?? 0.001;
    this.#yieldEvery = this.yieldMs;
  }

  /**
   * The polling window now, in µs: spinUs, or in `adaptive` mode twice the
   * learned wait for a completion, within [spinUs, maxSpinUs].
   */
  get windowUs(): number {
    if (this.mode !== "adaptive") return this.spinUs;
    return Math.min(this.maxSpinUs, Math.max(this.spinUs, this.#waitAvg * 2000));
  }

  /** The current interval between yields while spinning, in ms (learned from what yields cost). */
  get yieldEveryMs(): number {
    return this.#yieldEvery;
  }

  /** ms since the last completion at `now`, 0 while completions flow. */
  idleMs(now: number): number {
    return this.#idleSince < 0 ? 0 : now - this.#idleSince;
  }

  /**
   * This run's polling window in µs: {@link windowUs}, or less in a run that
   * started after the queue sat empty ({@link emptied}; see spinShare).
   */
  get runWindowUs(): number {
    return Math.min(this.windowUs, this.#runCapUs);
  }

  /** Decide after a poll that reaped `n` completions at time `now` (ms). */
  next(n: number, now: number): IdleAction {
    if (this.#runStart) {
      // The run's first decision: how long was the queue empty before it? That sets what a poll
      // is worth (no clock read of its own: the pump's checkpoint clock).
      this.#runStart = false;
      if (this.mode === "adaptive" && this.#emptiedAt >= 0 && this.spinShare > 0) {
        this.#runCapUs = Math.max(0, now - this.#emptiedAt) * 1000 * this.spinShare;
      }
    }
    if (n > 0) {
      if (this.#idleSince >= 0) this.#learn(now - this.#idleSince);
      this.#idleSince = -1;
      // Completions in this run: more commands now are a stream, which keeps the whole window.
      this.#runCapUs = Infinity;
    } else if (this.#idleSince < 0) this.#idleSince = now;
    if (this.#lastYield === -Infinity) this.#lastYield = now;
    if (n === 0) {
      const idle = now - this.#idleSince;
      if (this.mode === "interrupt") return Idle.SLEEP;
      if (idle * 1000 >= Math.min(this.windowUs, this.#runCapUs)) {
        if (this.mode === "adaptive") return Idle.SLEEP;
        if (idle > this.napAfterMs) return Idle.NAP;
        this.#yieldAt = now;
        return Idle.YIELD;
      }
    }
    if (now - this.#lastYield > this.#yieldEvery) {
      this.#yieldAt = now;
      return Idle.YIELD;
    }
    return Idle.SPIN;
  }

  /** Timer nap for {@link Idle.NAP} at `now`: 1 ms, 10 ms once idle for over a second. */
  napMs(now: number): number {
    return this.idleMs(now) > 1000 ? 10 : 1;
  }

  /**
   * New work after a pause (the pump starts again for a new submission): the
   * polling window starts over at the next empty poll instead of counting the
   * pause as idle time, which would send a QD1 caller straight to a sleep or
   * a nap after every gap between its commands. No clock read.
   */
  restart(): void {
    this.#idleSince = -1;
    this.#runStart = true;
    this.#runCapUs = Infinity;
    this.#timedOut = false;
    // The yield clock too: a stale one made the first checkpoint of every run yield to the event
    // loop (a setImmediate: ~0.5-1 ms in the TCG guest) before the device had time to answer.
    this.#lastYield = -Infinity;
  }

  /**
   * The queue has nothing in flight at `now` and its pump stops (once per
   * busy period): the next run's first decision measures the empty time from
   * here ({@link runWindowUs}).
   */
  emptied(now: number): void {
    this.#emptiedAt = now;
  }

  /**
   * A command was submitted at `now` while the pump slept with nothing but
   * parked commands (an AER) in flight: the wait that the coming interrupt
   * ends counts from here (the idle time before it was nobody's wait). Without it, an admin queue kept alive by an AER learned
   * every gap between a user's commands as answer time and polled the whole
   * 5 ms cap after each one.
   */
  submitted(now: number): void {
    this.#idleSince = now;
    this.#timedOut = false;
  }

  /**
   * The pump did not run for `ms` between two empty polls of consecutive
   * turns (preempted, a GC pause, another task). Over half the window, that
   * time is not the device's: in `adaptive` mode it does not count toward the
   * window nor the learned wait. Otherwise a stall at the end of a window
   * armed the interrupt for a completion that had already landed (a guest
   * boot: of Bun's 119 arms per 1,000 QD1 reads, 86 found the completion in
   * the re-check after the arm), paying an unmask, an interrupt and a mask.
   */
  stalled(ms: number): void {
    // Not in a capped run (a trickle): there a gap is mostly the pump's own synchronous spin (256
    // polls took ~250 µs in the TCG guest, over half the window), and moving the clock on by it
    // kept a trickled read polling through the device's 4 ms instead of sleeping. A real stall
    // there costs at most an arm whose re-check finds the completion.
    if (this.#runCapUs < this.windowUs) return;
    if (this.mode === "adaptive" && this.#idleSince >= 0 && ms * 2000 > this.windowUs) this.#idleSince += ms;
  }

  /**
   * The pump ran again at `now` after a YIELD, NAP or SLEEP. `woke`: an
   * interrupt (or completions) ended the sleep, so polling starts a new
   * window: completions tend to come in bursts.
   */
  resumed(now: number, woke: boolean): void {
    if (this.#yieldAt >= 0) {
      // Space the yields ~50 times their cost apart (about 2% of the pump's time), within
      // [yieldMs, maxYieldMs]: in a TCG guest a setImmediate round trip took 0.5-1 ms, and yielding
      // every 2 ms there cost a QD1 caller a third of its IOPS.
      const cost = now - this.#yieldAt;
      this.#yieldAt = -1;
      this.#yieldEvery = Math.min(this.maxYieldMs, Math.max(this.yieldMs, cost * 50));
    } else if (!woke) this.#timedOut = true; // a sleep (or nap) ran out: nothing came
    this.#lastYield = now;
    if (woke) {
      if (this.#idleSince >= 0) this.#learn(now - this.#idleSince);
      this.#idleSince = -1;
      this.#runCapUs = Infinity;
    }
  }

  /**
   * An idle stretch of `ms` ended with completions: fold it into the average
   * wait (weight 1/8, no allocation), unless a sleep in it timed out (then
   * the queue was idle, not waiting on a slow device).
   */
  #learn(ms: number): void {
    const timedOut = this.#timedOut;
    this.#timedOut = false;
    // A capped run (a trickle) teaches nothing: its sleep's wake-up is not a stream's device wait.
    if (this.mode !== "adaptive" || timedOut || this.#runCapUs < this.windowUs) return;
    const capped = Math.min(ms, this.maxSpinUs / 1000);
    this.#waitAvg += (capped - this.#waitAvg) / 8;
  }
}
