/**
 * What a target Worker needs to serve a namespace in its own thread, and the
 * one media that memory namespaces need for it: {@link SharedMedia}, flat
 * storage in a SharedArrayBuffer that every thread of the process reads and
 * writes in place. A device namespace travels as a queue of its own (the
 * Worker's queue pair, from `createQueue()`), a file as its path.
 * @module
 */
import type { Media } from "../sim/media.ts";

/** Storage in a SharedArrayBuffer: the same bytes in every thread it is posted to. */
export class SharedMedia implements Media {
  /** Size in bytes. */
  readonly size: number;
  /** The memory (post it to a Worker and wrap it there). */
  readonly sab: SharedArrayBuffer;
  readonly #b: Uint8Array;

  /** `size` zeroed bytes, or the storage of `sab` (another thread's). */
  constructor(size: number | SharedArrayBuffer) {
    this.sab = typeof size === "number" ? new SharedArrayBuffer(size) : size;
    this.size = this.sab.byteLength;
    this.#b = new Uint8Array(this.sab);
  }

  /** Copy out. */
  read(off: number, dst: Uint8Array): void {
    dst.set(this.#b.subarray(off, off + dst.length));
  }

  /** Copy in. */
  write(off: number, src: Uint8Array): void {
    this.#b.set(src, off);
  }

  /** Zero a range. */
  zero(off: number, len: number): void {
    this.#b.fill(0, off, off + len);
  }

  /** Fill with a 32-bit little-endian pattern. */
  fillPattern(pattern: number): void {
    new DataView(this.sab).setUint32(0, pattern >>> 0, true);
    for (let i = 4; i < this.size; i *= 2) this.#b.copyWithin(i, 0, Math.min(i, this.size - i));
  }

  /** Nothing to release (the memory goes with its last reference). */
  close(): void {}
}

/** A namespace as a Worker opens it (structured-cloneable). */
export type WorkerNamespace =
  | { kind: "shared"; sab: SharedArrayBuffer; blockSize: number; name: string; maxTransfer: number }
  | { kind: "file"; path: string; size: number; blockSize: number; name: string; maxTransfer: number }
  | { kind: "dev"; nsid: number };
