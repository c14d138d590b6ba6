/**
 * Waiting for an interrupt without FFI: an {@link IrqHub} helper thread adds
 * each vector's interrupt count into a SharedArrayBuffer word and notifies it;
 * a waiter on any thread (main or Worker, Deno or Bun) sleeps in
 * Atomics.waitAsync on that word. The word is the whole interface, so a waiter
 * is rebuilt in a Worker from a posted {@link IrqWord}.
 * @module
 */

/** Layout of the hub's SharedArrayBuffer (Int32 words). */
export const IrqLayout = {
  /** Set to 1 to stop the helper; waiters then return at once. */
  STOP: 0,
  /** Helper state: 0 starting, 1 running, 2 stopped, 3 failed (errno in ERRNO). */
  STATE: 1,
  /** errno of the helper's failed epoll_wait. */
  ERRNO: 2,
  /** Helper loop turns completed (notified): lets the hub know a removed fd is no longer read. */
  TURNS: 3,
  /** Words before the per-slot counters. */
  HEADER: 4,
} as const;

/** Interrupt count word of slot `slot` (Int32 index into the hub's buffer). */
export function counterIndex(slot: number): number {
  return IrqLayout.HEADER + slot;
}

/** Int32 index of slot `slot`'s kind word (0 eventfd, 1 socket) in a hub of `slots` slots. */
export function kindIndex(slots: number, slot: number): number {
  return IrqLayout.HEADER + 2 * slots + slot;
}

/** A vector's (or socket's) wake word, as posted to a Worker (structured-clone safe). */
export interface IrqWord {
  /** The hub's shared buffer. */
  readonly sab: SharedArrayBuffer;
  /** The vector's slot in it. */
  readonly slot: number;
  /**
   * For a socket ({@link IrqHub.addSocket}): the hub's epoll fd and the
   * socket's fd, so the waiter's thread can re-arm it (`socketWaiter`).
   */
  readonly socket?: { readonly epfd: number; readonly fd: number };
}

/**
 * Turns a vector's interrupts off while its queue polls and back on before
 * it sleeps (lib/vfio: MsixMaskGate sets the MSI-X table entry's mask bit,
 * VectorGate detaches the eventfd through VFIO). Without a gate every
 * completion raises an interrupt even while the queue polls; in the QEMU
 * guest each one cost the kernel's handler and a helper wake-up, and QD1 ran
 * at a third of polling (README, Performance). Only for a vector no other
 * queue shares: masking it would starve the other queue's sleeps.
 */
export interface IrqGate {
  /** False only while interrupts are known to be on. */
  readonly masked: boolean;
  /** Interrupts off (a no-op when known off). A syscall: once per busy period, never per IO. */
  mask(): void;
  /** Interrupts on (a no-op when known on). An interrupt left pending while masked may fire at once. */
  unmask(): void;
  /** Times the gate switched (mask or unmask that reached the device); absent when not counted. */
  readonly switches?: number;
}

type WaitAsync = (a: Int32Array, i: number, v: number, t?: number) => { async: boolean; value: unknown };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;
const MAX_TIMER_MS = 2 ** 31 - 1;
const noop = () => {};

/**
 * Sleeps until an interrupt. Protocol, with no lost wake-up: {@link arm}
 * (snapshot the count), check the completion queue once more, then
 * {@link sleep}, which returns at once if an interrupt came after the arm.
 * One waiter per queue; owned by one thread.
 */
export class IrqWaiter {
  /** The word this waiter watches. */
  readonly word: IrqWord;
  readonly #i32: Int32Array;
  readonly #idx: number;
  readonly #gate: IrqGate | null;
  #armed = 0;
  /** The timer a sleep holds to keep the event loop alive (cleared by {@link wake} at once). */
  #hold: ReturnType<typeof setTimeout> | undefined = undefined;

  /**
   * Watch `word` (from {@link IrqHub.add} or posted from the thread that owns
   * the hub). With `gate`, {@link arm} turns the vector's interrupts on and
   * {@link disarm} off: the gate belongs to this waiter's thread.
   */
  constructor(word: IrqWord, gate: IrqGate | null = null) {
    this.word = word;
    this.#gate = gate;
    this.#i32 = new Int32Array(word.sab);
    this.#idx = counterIndex(word.slot);
    this.#armed = Atomics.load(this.#i32, this.#idx);
  }

  /** Interrupts counted on this vector so far (wraps at 2^32). */
  get count(): number {
    return Atomics.load(this.#i32, this.#idx) >>> 0;
  }

  /** True once the hub is closed: sleeps return at once. */
  get stopped(): boolean {
    return Atomics.load(this.#i32, IrqLayout.STOP) !== 0;
  }

  /** Times its gate switched the vector on or off (0 without a gate). */
  get gateSwitches(): number {
    return this.#gate?.switches ?? 0;
  }

  /** True when this waiter masks its vector while the queue polls (it has an {@link IrqGate}). */
  get gated(): boolean {
    return this.#gate !== null;
  }

  /**
   * Turn the vector's interrupts on if a gate masked them, then snapshot the
   * count. Call before the last completion check that precedes {@link sleep}:
   * a completion posted after that check raises an interrupt counted after
   * the snapshot, so the sleep returns.
   */
  arm(): void {
    const g = this.#gate;
    // Snapshot before unmasking: what fires as the gate opens (a pending MSI-X interrupt, a
    // socket's oneshot re-armed while readable) counts after it and ends the sleep at once.
    this.#armed = Atomics.load(this.#i32, this.#idx);
    if (g !== null && g.masked) {
      g.unmask();
      // A locked read-modify-write (adds 0): a full fence, so the unmask store is issued before the CQ re-check.
      Atomics.add(this.#i32, this.#idx, 0);
    }
  }

  /** The queue polls again: mask the vector's interrupts (gated waiters; a no-op otherwise or when masked). */
  disarm(): void {
    this.#gate?.mask();
  }

  /** True if an interrupt arrived since {@link arm}. */
  fired(): boolean {
    return Atomics.load(this.#i32, this.#idx) !== this.#armed;
  }

  /**
   * Wake whoever sleeps on this word without counting an interrupt: their
   * sleep resolves false. For a queue closing, or work handed over from
   * another thread. Needs no FFI, so any thread holding the word can call it.
   */
  wake(): void {
    Atomics.notify(this.#i32, this.#idx);
    // A sleep may last until a deadline days away: do not leave its timer behind a closing queue.
    if (this.#hold !== undefined) {
      clearTimeout(this.#hold);
      this.#hold = undefined;
    }
  }

  /**
   * Sleep until an interrupt newer than the last {@link arm}, or `timeoutMs`.
   * Resolves true on an interrupt, false on timeout or hub shutdown. The wait
   * itself has no timeout: our own timer ends it (a notify on this thread),
   * and keeps the event loop alive meanwhile (a pending waitAsync alone does
   * not keep Deno's). A finite waitAsync would put its timer in the runtime's
   * timer heap, and Bun's (WebKit's) notify from the hub's thread cancels that
   * timer from that thread while the main thread may walk the heap.
   */
  async sleep(timeoutMs = Infinity): Promise<boolean> {
    const i32 = this.#i32, idx = this.#idx, seen = this.#armed;
    if (Atomics.load(i32, idx) !== seen) return true;
    if (this.stopped || timeoutMs <= 0) return false;
    const finite = timeoutMs < MAX_TIMER_MS;
    const r = waitAsync(i32, idx, seen);
    if (r.async) {
      // One waiter per word (one per queue): the timeout's notify wakes only this sleep.
      const hold = setTimeout(finite ? () => Atomics.notify(i32, idx) : noop, finite ? timeoutMs : MAX_TIMER_MS);
      this.#hold = hold;
      try {
        await r.value;
      } finally {
        clearTimeout(hold);
        if (this.#hold === hold) this.#hold = undefined;
      }
    }
    return Atomics.load(i32, idx) !== seen;
  }
}
