/**
 * The transport-neutral half of a queue pair: command slots, command ids
 * carrying a generation, deadlines, the promise or callback of each command,
 * the DMA memory it refers to, and counters. A transport's ring (PCIe SQ/CQ
 * and doorbells, or NVMe/TCP capsules) places commands and hands completions
 * back through {@link CommandTracker.complete}, as SPDK's nvme_qpair and
 * OpenVMM's queue_pair sit above their rings.
 * @module
 */
import { type CommandContext, type NvmeError, NvmeTimeoutError, statusError } from "./errors.ts";
import type { CompletionSink } from "./ring.ts";
import type { CommandTrace } from "./trace.ts";
import type { DmaBuffer } from "./transport.ts";

/** Counters of the commands a tracker saw; cheap to read at any time. */
export interface CommandStats {
  /** Commands placed in the submission ring. */
  submitted: number;
  /** Completions matched to a command. */
  completed: number;
  /** Completions ignored: unknown or stale command id, or wrong SQ id. */
  bogus: number;
  /** Completions that arrived after their command had timed out. */
  late: number;
  /** Commands that timed out. */
  timeouts: number;
}

/**
 * Completion callback of the callback submission path: `err` is null on
 * success (then `dw0` and `dw1` are CQE DW0 and DW1). Called from the
 * queue's pump, never synchronously from the submit call.
 */
export type IoCallback = (err: NvmeError | null, dw0: number, dw1: number) => void;

const FREE = 0;
const BUSY = 1;
const TIMED_OUT = 2;

type Resolve = (dw0: number) => void;
type Reject = (err: unknown) => void;

/**
 * Slots and command ids of one queue; owned by exactly one thread. The
 * {@link CompletionSink} its ring hands completions to.
 */
export class CommandTracker implements CompletionSink {
  /** Queue id. */
  readonly qid: number;
  /** Command slots (commands in flight at most). */
  readonly slots: number;
  /** Counters (the object given to the constructor, which may carry more fields of its owner). */
  readonly stats: CommandStats;
  /** Called after a command times out (the controller decides on abort/reset). */
  onTimeout: ((cid: number, opcode: number) => void) | null = null;
  /** Command trace (null: off, one null check per submission and completion). */
  trace: CommandTrace | null = null;
  readonly #slotBits: number;
  readonly #slotMask: number;
  readonly #genMask: number;
  readonly #free: Int32Array;
  #freeTop = 0;
  #active = 0;
  readonly #gen: Uint16Array;
  readonly #state: Uint8Array;
  readonly #opcode: Uint8Array;
  readonly #nsid: Uint32Array;
  /** Deadline per slot; 0 = not stamped yet (stamped by the next timeout scan, so submit reads no clock). */
  readonly #deadline: Float64Array;
  readonly #timeout: Float64Array;
  readonly #ref: (DmaBuffer | null)[];
  readonly #resolve: (Resolve | null)[];
  readonly #reject: (Reject | null)[];
  readonly #cb: (IoCallback | null)[];
  readonly #waiters: (() => void)[] = [];
  #paused = false;

  /** A tracker for `slots` commands in flight on queue `qid`, counting into `stats`. */
  constructor(qid: number, slots: number, stats: CommandStats = { submitted: 0, completed: 0, bogus: 0, late: 0, timeouts: 0 }) {
    this.qid = qid;
    this.stats = stats;
    this.slots = slots;
    this.#slotBits = Math.max(1, Math.ceil(Math.log2(slots)));
    this.#slotMask = (1 << this.#slotBits) - 1;
    this.#genMask = (1 << (16 - this.#slotBits)) - 1;
    this.#free = new Int32Array(slots);
    for (let s = slots - 1; s >= 0; s--) this.#free[this.#freeTop++] = s;
    this.#gen = new Uint16Array(slots);
    this.#state = new Uint8Array(slots);
    this.#opcode = new Uint8Array(slots);
    this.#nsid = new Uint32Array(slots);
    this.#deadline = new Float64Array(slots);
    this.#timeout = new Float64Array(slots);
    this.#ref = new Array(slots).fill(null);
    this.#resolve = new Array(slots).fill(null);
    this.#reject = new Array(slots).fill(null);
    this.#cb = new Array(slots).fill(null);
  }

  /** Commands waiting for completion (timed-out ones excluded). */
  get active(): number {
    return this.#active;
  }

  /** True while submissions are held (controller reset in progress). */
  get paused(): boolean {
    return this.#paused;
  }

  /** Slots free for new commands (0 while held). */
  get free(): number {
    return this.#paused ? 0 : this.#freeTop;
  }

  /** A free slot, or -1 when none is free or submissions are held. */
  take(): number {
    if (this.#paused || this.#freeTop === 0) return -1;
    return this.#free[--this.#freeTop];
  }

  /** A free slot even while submissions are held (commands of the recovery itself), or -1. */
  takeHeld(): number {
    if (this.#freeTop === 0) return -1;
    return this.#free[--this.#freeTop];
  }

  /** Command id of `slot` (slot number + generation). */
  cid(slot: number): number {
    return (slot | (this.#gen[slot] << this.#slotBits)) & 0xffff;
  }

  /**
   * Record a command placed in `slot`; returns its cid. `ref` stays busy until
   * the command has ended on the device (see DmaBuffer).
   */
  begin(slot: number, opcode: number, nsid: number, timeoutMs: number, ref: DmaBuffer | null): number {
    this.#state[slot] = BUSY;
    this.#opcode[slot] = opcode;
    this.#nsid[slot] = nsid;
    this.#timeout[slot] = timeoutMs;
    this.#deadline[slot] = 0;
    this.#ref[slot] = ref;
    if (ref !== null) ref.busy++;
    this.#active++;
    this.stats.submitted++;
    return this.cid(slot);
  }

  /** The slot {@link promise} is making a Promise for (read by the one executor). */
  #pending = 0;
  /** One executor for every command's Promise: no closure allocated per IO. */
  readonly #executor = (res: Resolve, rej: Reject): void => {
    this.#resolve[this.#pending] = res;
    this.#reject[this.#pending] = rej;
  };

  /** The promise of the command in `slot` (call once, right after {@link begin}). */
  promise(slot: number): Promise<number> {
    this.#pending = slot;
    return new Promise<number>(this.#executor);
  }

  /** Deliver the command in `slot` to `cb` instead of a promise. */
  callback(slot: number, cb: IoCallback): void {
    this.#cb[slot] = cb;
  }

  /** Wait for a free slot, then `retry`; `ref` counts as busy meanwhile so it cannot be freed under the call. */
  queued<T>(ref: DmaBuffer | null, retry: () => Promise<T>): Promise<T> {
    if (ref !== null) ref.busy++;
    return new Promise<void>((r) => this.#waiters.push(r)).then(() => {
      const p = retry();
      unref(ref);
      return p;
    });
  }

  /** True if command id `cid` is held (busy, or timed out and not yet answered). */
  holds(cid: number): boolean {
    const slot = cid & this.#slotMask;
    return slot < this.slots && this.#state[slot] !== FREE && (cid >>> this.#slotBits) === this.#gen[slot];
  }

  /** A completion for `cid` from SQ `sqid` with status field `sf` (15 bits, phase stripped). */
  complete(cid: number, sf: number, dw0: number, dw1: number, sqid: number): void {
    const slot = cid & this.#slotMask;
    if (
      sqid !== this.qid || slot >= this.slots || this.#state[slot] === FREE ||
      (cid >>> this.#slotBits) !== this.#gen[slot]
    ) {
      this.stats.bogus++;
      return;
    }
    if (this.trace !== null) this.trace.complete(this.qid, cid, sf, dw0);
    if (this.#state[slot] === TIMED_OUT) {
      this.stats.late++;
      this.#release(slot);
      return;
    }
    const res = this.#resolve[slot], rej = this.#reject[slot], cb = this.#cb[slot];
    this.#resolve[slot] = this.#reject[slot] = null;
    this.#cb[slot] = null;
    this.#active--;
    const opcode = this.#opcode[slot], nsid = this.#nsid[slot];
    this.#release(slot);
    this.stats.completed++;
    if ((sf & 0x7ff) === 0) {
      if (cb !== null) cb(null, dw0, dw1);
      else res!(dw0);
      return;
    }
    const err = statusError(sf, dw0, { qid: this.qid, cid, opcode, nsid: nsid || undefined });
    if (cb !== null) cb(err, dw0, dw1);
    else rej!(err);
  }

  /**
   * Stamp new commands' deadlines and expire those past theirs; returns how
   * many timed out. A timed-out command keeps its slot (and its memory busy)
   * until its late completion, an abort or a reset.
   */
  checkTimeouts(now: number): number {
    let n = 0;
    for (let s = 0; s < this.slots; s++) {
      if (this.#state[s] !== BUSY) continue;
      const d = this.#deadline[s];
      if (d === 0) {
        this.#deadline[s] = now + this.#timeout[s];
        continue;
      }
      if (d > now) continue;
      const cid = this.cid(s);
      const ctx: CommandContext = { qid: this.qid, cid, opcode: this.#opcode[s], nsid: this.#nsid[s] || undefined };
      const err = new NvmeTimeoutError(ctx, this.#timeout[s]);
      if (this.trace !== null) {
        this.trace.complete(this.qid, cid, -1, 0);
        err.trace = this.trace.last();
      }
      this.#state[s] = TIMED_OUT;
      this.#active--;
      this.stats.timeouts++;
      const rej = this.#reject[s], cb = this.#cb[s];
      this.#resolve[s] = this.#reject[s] = null;
      this.#cb[s] = null;
      if (cb !== null) cb(err, 0, 0);
      else rej?.(err);
      n++;
      this.onTimeout?.(cid, this.#opcode[s]);
    }
    return n;
  }

  /** The earliest deadline of a command waiting (after {@link checkTimeouts} stamped them), or Infinity. */
  nextDeadline(): number {
    let d = Infinity;
    for (let s = 0; s < this.slots; s++) {
      if (this.#state[s] === BUSY && this.#deadline[s] !== 0 && this.#deadline[s] < d) d = this.#deadline[s];
    }
    return d;
  }

  /**
   * Reject every command still holding a slot with `err` and free the slots.
   * Their DMA memory is released only when `deviceStopped` (it can no longer
   * be written); otherwise it stays busy for good (until the transport closes).
   */
  failAll(err: NvmeError, deviceStopped: boolean): void {
    for (let s = 0; s < this.slots; s++) {
      if (this.#state[s] === FREE) continue;
      const rej = this.#reject[s], cb = this.#cb[s];
      this.#resolve[s] = this.#reject[s] = null;
      this.#cb[s] = null;
      if (this.#state[s] === BUSY) this.#active--;
      if (!deviceStopped) this.#ref[s] = null;
      this.#release(s);
      if (cb !== null) cb(err, 0, 0);
      else rej?.(err);
    }
  }

  /** Hold submissions (they wait for {@link resume}). */
  pause(): void {
    this.#paused = true;
  }

  /** Let held submissions through. */
  resume(): void {
    this.#paused = false;
    this.wakeAll();
  }

  /** Wake every submission waiting for a slot (they retry, or fail on a closed queue). */
  wakeAll(): void {
    const w = this.#waiters.splice(0);
    for (const f of w) f();
  }

  #release(slot: number): void {
    const ref = this.#ref[slot];
    this.#ref[slot] = null;
    this.#state[slot] = FREE;
    this.#gen[slot] = (this.#gen[slot] + 1) & this.#genMask;
    this.#free[this.#freeTop++] = slot;
    unref(ref);
    if (this.#waiters.length > 0 && !this.#paused) this.#waiters.shift()!();
  }
}

/** One command fewer on `ref`; the last one runs its pending free or recycle. */
function unref(ref: DmaBuffer | null): void {
  if (ref !== null && --ref.busy === 0 && ref.onIdle !== null) {
    const f = ref.onIdle;
    ref.onIdle = null;
    f(ref);
  }
}
