/**
 * A preallocated struct msghdr with its iovec array, for scatter-gather
 * sendmsg without a copy and without allocating per call. The control block
 * lives in its own anonymous mapping: its address never moves and no GC can
 * free it while the kernel reads it.
 * @module
 */
import { type Libc, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../ffi/mod.ts";
import { InvalidArgumentError, SyscallError } from "../nvme/errors.ts";
import { errnoName } from "../ffi/mod.ts";

/** Bytes of struct msghdr (x86-64 / arm64 LP64). */
const MSGHDR = 56;
/** Bytes of struct iovec. */
const IOVEC = 16;
/** Linux IOV_MAX: the most iovecs one sendmsg takes. */
export const IOV_MAX: number = 1024;
const TWO32 = 0x1_0000_0000;

/**
 * Segments queued for one sendmsg. Add segments with {@link push} (a typed
 * array: referenced until {@link clear}) or {@link pushAddress} (memory the
 * caller keeps mapped), send with `Socket.sendmsg`, which {@link consume}s
 * what the kernel took, so a partial send resumes where it stopped.
 * Owned by one thread; {@link close} unmaps it.
 */
export class IoVec {
  /** Most segments held at once. */
  readonly capacity: number;
  readonly #libc: Libc;
  readonly #addr: bigint;
  readonly #size: number;
  readonly #mem: Uint8Array;
  /** The msghdr's bytes, one view made once: {@link msghdr} runs per flush and allocates nothing. */
  readonly #msghdr: Uint8Array;
  readonly #view: DataView;
  readonly #iovBase: number;
  readonly #keep: (Uint8Array | null)[];
  readonly #base: Float64Array;
  readonly #len: Float64Array;
  #head = 0;
  #count = 0;
  #bytes = 0;
  #closed = false;

  /** Map the control block for up to `capacity` segments (default 64, at most {@link IOV_MAX}). */
  constructor(libc: Libc, capacity = 64) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > IOV_MAX) {
      throw new InvalidArgumentError(`IoVec capacity must be 1..${IOV_MAX}, got ${capacity}`);
    }
    this.#libc = libc;
    this.capacity = capacity;
    this.#size = Math.ceil((MSGHDR + IOVEC * capacity) / 4096) * 4096;
    const a = libc.mmap(0n, BigInt(this.#size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
    if (a === MAP_FAILED) throw new SyscallError("mmap (iovec)", libc.errno(), errnoName(libc.errno()));
    this.#addr = a;
    this.#mem = new Uint8Array(libc.view(a, this.#size));
    this.#view = new DataView(this.#mem.buffer, this.#mem.byteOffset, this.#size);
    this.#msghdr = this.#mem.subarray(0, MSGHDR);
    this.#iovBase = Number(a) + MSGHDR;
    this.#keep = new Array(capacity).fill(null);
    this.#base = new Float64Array(capacity);
    this.#len = new Float64Array(capacity);
  }

  /** Segments not yet (fully) sent. */
  get length(): number {
    return this.#count - this.#head;
  }

  /** Bytes not yet sent. */
  get pending(): number {
    return this.#bytes;
  }

  /** Room for `n` more segments. */
  hasRoom(n = 1): boolean {
    return this.#count + n <= this.capacity;
  }

  /**
   * Queue all of `bytes` (zero-length arrays are skipped). The array is
   * referenced until {@link clear} or until it has been sent: its address is
   * taken now, so it must not be a view the runtime may move (any array of
   * more than 64 bytes, or one over mapped memory, is safe).
   */
  push(bytes: Uint8Array): void {
    if (bytes.byteLength === 0) return;
    this.#put(Number(this.#libc.addressOf(bytes)), bytes.byteLength, bytes);
  }

  /**
   * Queue `buf[start..end)`, given the address of `buf`'s first byte (taken
   * once with `Libc.addressOf`): no address lookup and no view per call (a
   * Deno `UnsafePointer.of` per flush cost more than the copy it saved in a
   * TCG guest). `buf` is referenced until sent or {@link clear}ed, and must be
   * memory that never moves (as for {@link push}).
   */
  pushRange(buf: Uint8Array, address: number, start: number, end: number): void {
    if (end > start) this.#put(address + start, end - start, buf);
  }

  /** Queue `len` bytes at `address`: memory the caller keeps mapped until it was sent. */
  pushAddress(address: number, len: number): void {
    if (len > 0) this.#put(address, len, null);
  }

  #put(address: number, len: number, keep: Uint8Array | null): void {
    const i = this.#count;
    if (i >= this.capacity) throw new InvalidArgumentError(`IoVec full (${this.capacity} segments)`);
    this.#keep[i] = keep;
    this.#base[i] = address;
    this.#len[i] = len;
    this.#writeIov(i);
    this.#count = i + 1;
    this.#bytes += len;
  }

  #writeIov(i: number): void {
    const v = this.#view, o = MSGHDR + i * IOVEC, a = this.#base[i], n = this.#len[i];
    v.setUint32(o, a >>> 0, true);
    v.setUint32(o + 4, Math.floor(a / TWO32), true);
    v.setUint32(o + 8, n >>> 0, true);
    v.setUint32(o + 12, Math.floor(n / TWO32), true);
  }

  /** The msghdr to pass to sendmsg, pointing at the unsent segments. For `Socket.sendmsg`. */
  msghdr(): Uint8Array {
    const v = this.#view, iov = this.#iovBase + this.#head * IOVEC, n = this.#count - this.#head;
    // msg_name/msg_namelen, msg_control/controllen and msg_flags stay zero from the mapping.
    v.setUint32(16, iov >>> 0, true);
    v.setUint32(20, Math.floor(iov / TWO32), true);
    v.setUint32(24, n, true);
    v.setUint32(28, 0, true);
    return this.#msghdr;
  }

  /** Drop the first `n` bytes (sent): whole segments are released, a partly sent one is advanced. */
  consume(n: number): void {
    this.#bytes -= n;
    while (n > 0 && this.#head < this.#count) {
      const i = this.#head, l = this.#len[i];
      if (n >= l) {
        n -= l;
        this.#keep[i] = null;
        this.#head = i + 1;
      } else {
        this.#base[i] += n;
        this.#len[i] = l - n;
        this.#writeIov(i);
        n = 0;
      }
    }
    if (this.#head === this.#count) this.clear();
  }

  /** Forget every segment (sent or not) and release their arrays. */
  clear(): void {
    for (let i = this.#head; i < this.#count; i++) this.#keep[i] = null;
    this.#head = this.#count = this.#bytes = 0;
  }

  /** Unmap the control block. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.clear();
    this.#libc.munmap(this.#addr, BigInt(this.#size));
  }
}
