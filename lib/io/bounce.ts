/**
 * Bounce buffers for IO from plain (non-DMA) memory: DMA buffers in power-of-two
 * size classes, reused. A buffer whose command may still be written by the
 * device (timed out, not yet ended) rejoins the pool only once it has ended.
 * @module
 */
import type { DmaBuffer } from "../nvme/transport.ts";

/** Size class of a bounce buffer for `size` bytes: a power of two from one page. */
export function bounceClass(size: number): number {
  let c = 4096;
  while (c < size) c *= 2;
  return c;
}

/** A pool of bounce buffers per size class, owned by one thread. */
export class BouncePool {
  readonly #alloc: (size: number) => DmaBuffer;
  readonly #free: (b: DmaBuffer) => void;
  readonly #keep: number;
  readonly #pool = new Map<number, DmaBuffer[]>();
  #closed = false;
  readonly #idle = (b: DmaBuffer): void => this.give(b);

  /** Buffers come from `alloc` and go back through `free`; at most `keep` are kept per size class. */
  constructor(alloc: (size: number) => DmaBuffer, free: (b: DmaBuffer) => void, keep = 8) {
    this.#alloc = alloc;
    this.#free = free;
    this.#keep = keep;
  }

  /** A bounce buffer of at least `size` bytes. */
  take(size: number): DmaBuffer {
    const c = bounceClass(size);
    const l = this.#pool.get(c);
    if (l?.length) return l.pop()!;
    return this.#alloc(c);
  }

  /** Return `b`; deferred while a command on it has not ended. */
  give(b: DmaBuffer): void {
    if (this.#closed) return;
    if (b.busy > 0) {
      b.onIdle = this.#idle;
      return;
    }
    let l = this.#pool.get(b.size);
    if (!l) this.#pool.set(b.size, l = []);
    if (l.length < this.#keep) l.push(b);
    else this.#free(b);
  }

  /** Forget the pool (its memory is released by whoever owns it, e.g. the transport at close). */
  close(): void {
    this.#closed = true;
    this.#pool.clear();
  }
}
