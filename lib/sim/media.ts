/**
 * Storage behind the controller model's namespaces (the media room): sparse
 * memory (chunks allocated on first write, so large namespaces cost only what
 * is written) or a file, both synchronous so the software controller's IO path
 * has no Promise; and the shape of asynchronous media ({@link AsyncMedia}, e.g.
 * lib/sim/nsmedia.ts's namespace of an open NVMeDev).
 * @module
 */
import * as fs from "node:fs";

/** Byte-addressed synchronous storage of a namespace. */
export interface Media {
  /** Absent or false: every call completes before it returns. */
  readonly async?: false;
  /** Size in bytes. */
  readonly size: number;
  /** Copy `dst.length` bytes at `off` into `dst`. */
  read(off: number, dst: Uint8Array): void;
  /** Copy `src` to `off`. */
  write(off: number, src: Uint8Array): void;
  /** Zero `len` bytes at `off` (deallocate). */
  zero(off: number, len: number): void;
  /** Fill everything with a 32-bit little-endian pattern. */
  fillPattern(pattern: number): void;
  /** Release resources. */
  close(): void;
}

/**
 * Completion of an {@link AsyncMedia} operation: 0, or the NVMe status field
 * (SCT << 8 | SC; DNR may be set) the command fails with.
 */
export type MediaDone = (sf: number) => void;

/**
 * Byte-addressed storage whose operations complete later (a namespace behind
 * another controller). Each operation completes in one of two ways: it calls
 * `done` (no Promise per IO: the way for media on a hot path; `done` may run
 * before the call returns), or it returns a Promise and leaves `done` alone
 * (a rejection carrying `status: { sct, sc }`, as NvmeStatusError does, keeps
 * that status; any other fails the command as a media error). Never both.
 * Operations do not throw. The model keeps commands on the media pending and
 * completes them through its front end's callback.
 */
export interface AsyncMedia {
  /** Marks the media as asynchronous (the model tests this once per command). */
  readonly async: true;
  /** Size in bytes. */
  readonly size: number;
  /** Fill `dst` from `off`; `dst` stays the caller's, untouched by it, until `done`. */
  read(off: number, dst: Uint8Array, done: MediaDone): void | Promise<void>;
  /** Store `src` at `off`. */
  write(off: number, src: Uint8Array, done: MediaDone): void | Promise<void>;
  /** Zero `len` bytes at `off`. */
  zero(off: number, len: number, done: MediaDone): void | Promise<void>;
  /** Make completed writes durable (Flush). */
  flush(done: MediaDone): void | Promise<void>;
  /** A buffer IO on this media moves without a copy (DMA memory of the backing device), when it has such. */
  alloc?(bytes: number): Uint8Array;
  /** Return a buffer from {@link alloc}. */
  free?(buf: Uint8Array): void;
  /** Release what the media holds (not the device behind it). */
  close(): void;
}

/** Either kind of media; `media.async` tells them apart. */
export type AnyMedia = Media | AsyncMedia;

const CHUNK = 64 * 1024;

/** Sparse in-memory storage. */
export class MemMedia implements Media {
  /** Size in bytes. */
  readonly size: number;
  #chunks = new Map<number, Uint8Array>();
  #pattern: Uint8Array | null = null;

  /** Create zero-filled storage of `size` bytes. */
  constructor(size: number) {
    this.size = size;
  }

  #chunk(i: number, create: boolean): Uint8Array | undefined {
    let c = this.#chunks.get(i);
    if (!c && create) {
      c = new Uint8Array(CHUNK);
      if (this.#pattern) c.set(this.#pattern);
      this.#chunks.set(i, c);
    }
    return c;
  }

  /** Copy out; unwritten bytes read as zero (or the fill pattern). */
  read(off: number, dst: Uint8Array): void {
    let done = 0;
    while (done < dst.length) {
      const p = off + done, i = Math.floor(p / CHUNK), o = p % CHUNK;
      const n = Math.min(CHUNK - o, dst.length - done);
      const c = this.#chunk(i, false);
      if (c) dst.set(c.subarray(o, o + n), done);
      else if (this.#pattern) dst.set(this.#pattern.subarray(o, o + n), done);
      else dst.fill(0, done, done + n);
      done += n;
    }
  }

  /** Copy in. */
  write(off: number, src: Uint8Array): void {
    let done = 0;
    while (done < src.length) {
      const p = off + done, i = Math.floor(p / CHUNK), o = p % CHUNK;
      const n = Math.min(CHUNK - o, src.length - done);
      this.#chunk(i, true)!.set(src.subarray(done, done + n), o);
      done += n;
    }
  }

  /** Zero a range; whole chunks are dropped. */
  zero(off: number, len: number): void {
    if (off === 0 && len >= this.size) {
      this.#chunks.clear();
      this.#pattern = null;
      return;
    }
    let done = 0;
    while (done < len) {
      const p = off + done, i = Math.floor(p / CHUNK), o = p % CHUNK;
      const n = Math.min(CHUNK - o, len - done);
      if (n === CHUNK && !this.#pattern) this.#chunks.delete(i);
      else this.#chunk(i, true)!.fill(0, o, o + n);
      done += n;
    }
  }

  /** Overwrite everything with a pattern (kept as one template chunk, not per byte). */
  fillPattern(pattern: number): void {
    this.#chunks.clear();
    const t = new Uint8Array(CHUNK);
    new DataView(t.buffer).setUint32(0, pattern >>> 0, true);
    for (let i = 4; i < CHUNK; i *= 2) t.copyWithin(i, 0, i);
    this.#pattern = t;
  }

  /** Nothing to release. */
  close(): void {
    this.#chunks.clear();
  }
}

/** Storage in a file (created or extended to the size). */
export class FileMedia implements Media {
  /** Size in bytes. */
  readonly size: number;
  readonly #fd: number;
  #tmp = new Uint8Array(CHUNK);

  /** Open (or create) `path` and make it at least `size` bytes. */
  constructor(path: string, size: number) {
    this.size = size;
    this.#fd = fs.openSync(path, fs.existsSync(path) ? "r+" : "w+");
    if (fs.fstatSync(this.#fd).size < size) fs.ftruncateSync(this.#fd, size);
  }

  // Staged through a private buffer: host memory is a SharedArrayBuffer, which node:fs may refuse.
  /** Copy out. */
  read(off: number, dst: Uint8Array): void {
    for (let done = 0; done < dst.length;) {
      const n = Math.min(CHUNK, dst.length - done);
      let got = 0;
      while (got < n) {
        const r = fs.readSync(this.#fd, this.#tmp, got, n - got, off + done + got);
        if (r <= 0) {
          this.#tmp.fill(0, got, n);
          break;
        }
        got += r;
      }
      dst.set(this.#tmp.subarray(0, n), done);
      done += n;
    }
  }

  /** Copy in. */
  write(off: number, src: Uint8Array): void {
    for (let done = 0; done < src.length;) {
      const n = Math.min(CHUNK, src.length - done);
      this.#tmp.set(src.subarray(done, done + n));
      let put = 0;
      while (put < n) put += fs.writeSync(this.#fd, this.#tmp, put, n - put, off + done + put);
      done += n;
    }
  }

  /** Zero a range. */
  zero(off: number, len: number): void {
    const z = new Uint8Array(Math.min(CHUNK, len));
    for (let done = 0; done < len;) {
      const n = Math.min(z.length, len - done);
      this.write(off + done, z.subarray(0, n));
      done += n;
    }
  }

  /** Overwrite everything with a pattern. */
  fillPattern(pattern: number): void {
    const t = new Uint8Array(CHUNK);
    new DataView(t.buffer).setUint32(0, pattern >>> 0, true);
    for (let i = 4; i < CHUNK; i *= 2) t.copyWithin(i, 0, i);
    for (let done = 0; done < this.size;) {
      const n = Math.min(CHUNK, this.size - done);
      this.write(done, t.subarray(0, n));
      done += n;
    }
  }

  /** Close the file. */
  close(): void {
    try {
      fs.closeSync(this.#fd);
    } catch {
      // Already closed: close is idempotent.
    }
  }
}

/**
 * Storage in one SharedArrayBuffer, so several threads of the software
 * controller (one per IO queue, lib/sim/qthread.ts) serve it at once without
 * a lock: like a device's media, commands on different queues are not
 * ordered against each other. Untouched pages cost nothing until written
 * (the runtimes map large buffers lazily).
 */
export class SharedMemMedia implements Media {
  /** Size in bytes. */
  readonly size: number;
  /** The shared bytes: hand it to another thread and build a SharedMemMedia over it there. */
  readonly sab: SharedArrayBuffer;
  readonly #u8: Uint8Array;

  /** New zeroed storage of `size` bytes, or a view of storage another thread made. */
  constructor(sizeOrSab: number | SharedArrayBuffer) {
    this.sab = typeof sizeOrSab === "number" ? new SharedArrayBuffer(sizeOrSab) : sizeOrSab;
    this.size = this.sab.byteLength;
    this.#u8 = new Uint8Array(this.sab);
  }

  /** Copy out. */
  read(off: number, dst: Uint8Array): void {
    dst.set(this.#u8.subarray(off, off + dst.length));
  }

  /** Copy in. */
  write(off: number, src: Uint8Array): void {
    this.#u8.set(src, off);
  }

  /** Zero a range. */
  zero(off: number, len: number): void {
    this.#u8.fill(0, off, off + len);
  }

  /** Overwrite everything with a 32-bit little-endian pattern. */
  fillPattern(pattern: number): void {
    const u = this.#u8;
    if (u.length < 4) return;
    new DataView(this.sab).setUint32(0, pattern >>> 0, true);
    for (let i = 4; i < u.length; i *= 2) u.copyWithin(i, 0, Math.min(i, u.length - i));
  }

  /** Nothing to release (the buffer goes with its last view). */
  close(): void {}
}
