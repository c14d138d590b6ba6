/**
 * io_uring over the runtime's FFI: io_uring_setup and io_uring_enter through
 * syscall(2), the rings mapped into this process, submissions and completions
 * exchanged through the mapped ring words (`Atomics.store` to publish,
 * `pollLoad32` to read the kernel's; no FFI call per entry), 128-byte SQEs for
 * URING_CMD, and blocking waits (GETEVENTS, optionally with a timeout) that
 * stall only the calling thread. A ring belongs to the thread
 * that made it; any Worker may make its own.
 *
 * @example
 * ```ts
 * import { Uring, UringOp } from "./mod.ts";
 * const ring = await Uring.tryCreate(8);
 * if (ring !== null) {
 *   const s = ring.sqe();
 *   ring.prep(s, UringOp.NOP, -1, 42);
 *   ring.submit(1); // submit and wait for one completion
 *   console.log(ring.cqeUserData(0), ring.cqeRes(0)); // 42 0
 *   ring.cqAdvance(1);
 *   ring.close();
 * }
 * ```
 * @module
 */
import { EINTR, errnoName, type Libc, loadLibc, MAP_FAILED, MAP_POPULATE, MAP_SHARED, MAP_PRIVATE, MAP_ANONYMOUS, PROT_READ, PROT_WRITE } from "../ffi/mod.ts";
import { pollLoad32 } from "../ffi/load.ts";
import { InvalidArgumentError, SyscallError } from "../nvme/errors.ts";

export type { Libc, RuntimeName } from "../ffi/mod.ts";

/** io_uring_setup flags this room uses (include/uapi/linux/io_uring.h). */
export const UringSetup = {
  /** cq_entries in the params is the CQ size. */
  CQSIZE: 1 << 3,
  /** Clamp too-large sizes instead of failing. */
  CLAMP: 1 << 4,
  /** Task work runs only when the thread enters the kernel (5.19). */
  COOP_TASKRUN: 1 << 8,
  /** 128-byte SQEs: needed by URING_CMD to ublk's control device (5.19). */
  SQE128: 1 << 10,
  /** One thread submits (6.0). */
  SINGLE_ISSUER: 1 << 12,
} as const;

/** io_uring_enter flags. */
export const UringEnter = {
  /** Wait for `minComplete` completions. */
  GETEVENTS: 1,
  /** The last two arguments are a struct io_uring_getevents_arg (timeout), 5.11. */
  EXT_ARG: 1 << 3,
} as const;

/** io_uring opcodes this project uses (enum io_uring_op). */
export const UringOp = {
  /** No operation: completes with 0. */
  NOP: 0,
  /** Poll an fd once (mask in the SQE's poll32_events). */
  POLL_ADD: 6,
  /** Cancel a poll by its user_data. */
  POLL_REMOVE: 7,
  /** read(2) into a buffer. */
  READ: 22,
  /** A driver command (ublk, NVMe passthrough, socket ops), 5.19. */
  URING_CMD: 46,
} as const;

/** Feature bits the kernel reports in params.features. */
export const UringFeat = {
  /** SQ and CQ rings share one mapping. */
  SINGLE_MMAP: 1 << 0,
  /** io_uring_enter takes EXT_ARG (timeouts). */
  EXT_ARG: 1 << 8,
} as const;

/** struct io_uring_params (120 bytes): offsets of the fields read or written here. */
export const UringParams = {
  SIZE: 120,
  SQ_ENTRIES: 0,
  CQ_ENTRIES: 4,
  FLAGS: 8,
  FEATURES: 20,
  /** struct io_sqring_offsets: head, tail, ring_mask, ring_entries, flags, dropped, array (u32 each). */
  SQ_OFF: 40,
  /** struct io_cqring_offsets: head, tail, ring_mask, ring_entries, overflow, cqes, flags (u32 each). */
  CQ_OFF: 80,
} as const;

/** Fields of an SQE (byte offsets; 64 bytes, or 128 with SQE128 where the command area grows). */
export const SqeOff = {
  OPCODE: 0,
  FLAGS: 1,
  IOPRIO: 2,
  FD: 4,
  /** off, or cmd_op (u32) for URING_CMD. */
  OFF: 8,
  ADDR: 16,
  LEN: 24,
  /** rw_flags / poll32_events / uring_cmd_flags. */
  OP_FLAGS: 28,
  USER_DATA: 32,
  /** URING_CMD payload: 16 bytes in a 64-byte SQE, 80 in a 128-byte one. */
  CMD: 48,
} as const;

/** mmap offsets of the rings. */
const OFF_SQ_RING = 0n;
const OFF_CQ_RING = 0x8000000n;
const OFF_SQES = 0x10000000n;
/** Bytes of a CQE (no CQE32 here). */
const CQE_BYTES = 16;
const PAGE = 4096;
const ETIME = 62;
const EBUSY = 16;

/** Options of {@link Uring.create}. */
export interface UringOptions {
  /** 128-byte SQEs (URING_CMD to ublk's control device needs them). */
  sqe128?: boolean;
  /** CQ entries (default: twice the SQ's, the kernel's default). */
  cqEntries?: number;
  /** Further IORING_SETUP_* flags. */
  flags?: number;
  /** libc to use (default: this runtime's; each Worker loads its own). */
  libc?: Libc;
}

/**
 * One io_uring instance, owned by the thread that created it. Submission:
 * {@link sqe} hands out the next entry (zeroed), {@link prep} fills the
 * common fields, {@link submit} makes every prepared entry visible and
 * enters the kernel once. Completion: {@link cqReady} counts the waiting
 * CQEs, {@link cqeUserData}/{@link cqeRes} read the i-th of them, and
 * {@link cqAdvance} releases them. No allocation and no FFI call per entry.
 */
export class Uring {
  /** The ring's fd. */
  readonly fd: number;
  /** SQ entries. */
  readonly sqEntries: number;
  /** CQ entries. */
  readonly cqEntries: number;
  /** Bytes per SQE (64 or 128). */
  readonly sqeBytes: number;
  /** params.features as the kernel reported them. */
  readonly features: number;
  /** SQE memory, byte view (fill command payloads at {@link SqeOff.CMD}). */
  readonly sqes: Uint8Array;
  /** SQE memory as a DataView (little-endian fields). */
  readonly sqeView: DataView;
  readonly #libc: Libc;
  readonly #sqRing: Uint32Array;
  readonly #sqHead: number;
  readonly #sqTail: number;
  readonly #sqMask: number;
  readonly #sqArray: number;
  readonly #cqRing: Uint32Array;
  readonly #cqHead: number;
  readonly #cqTail: number;
  readonly #cqMask: number;
  readonly #cqes: Int32Array;
  readonly #cqesU32: Uint32Array;
  readonly #maps: [bigint, bigint][];
  /** Scratch page: io_uring_getevents_arg at 0, its timespec at 64. */
  readonly #scratch: DataView;
  readonly #scratchAddr: bigint;
  /** Next SQE index to hand out, and SQEs handed out but not yet submitted. */
  #tail = 0;
  #pending = 0;
  #closed = false;

  private constructor(libc: Libc, fd: number, p: DataView, sqe128: boolean) {
    this.#libc = libc;
    this.fd = fd;
    this.sqEntries = p.getUint32(UringParams.SQ_ENTRIES, true);
    this.cqEntries = p.getUint32(UringParams.CQ_ENTRIES, true);
    this.features = p.getUint32(UringParams.FEATURES, true);
    this.sqeBytes = sqe128 ? 128 : 64;
    const so = (i: number) => p.getUint32(UringParams.SQ_OFF + 4 * i, true);
    const co = (i: number) => p.getUint32(UringParams.CQ_OFF + 4 * i, true);
    const sqLen = BigInt(so(6) + this.sqEntries * 4);
    const cqLen = BigInt(co(5) + this.cqEntries * CQE_BYTES);
    this.#maps = [];
    const map = (len: bigint, off: bigint): bigint => {
      const a = libc.mmap(0n, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, off);
      if (a === MAP_FAILED) {
        const e = libc.errno();
        this.close();
        throw new SyscallError("mmap(io_uring)", e, errnoName(e));
      }
      this.#maps.push([a, len]);
      return a;
    };
    const single = (this.features & UringFeat.SINGLE_MMAP) !== 0;
    const ringLen = single ? (sqLen > cqLen ? sqLen : cqLen) : sqLen;
    const sqAddr = map(ringLen, OFF_SQ_RING);
    const cqAddr = single ? sqAddr : map(cqLen, OFF_CQ_RING);
    const sqesLen = BigInt(this.sqEntries * this.sqeBytes);
    const sqesAddr = map(sqesLen, OFF_SQES);
    const scratch = libc.mmap(0n, BigInt(PAGE), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
    if (scratch === MAP_FAILED) {
      const e = libc.errno();
      this.close();
      throw new SyscallError("mmap", e, errnoName(e));
    }
    this.#maps.push([scratch, BigInt(PAGE)]);
    this.#scratchAddr = scratch;
    this.#scratch = new DataView(libc.view(scratch, PAGE));
    this.#sqRing = new Uint32Array(libc.view(sqAddr, Number(ringLen)));
    this.#sqHead = so(0) >>> 2;
    this.#sqTail = so(1) >>> 2;
    this.#sqMask = this.#sqRing[so(2) >>> 2];
    this.#sqArray = so(6) >>> 2;
    this.#cqRing = single ? this.#sqRing : new Uint32Array(libc.view(cqAddr, Number(cqLen)));
    this.#cqHead = co(0) >>> 2;
    this.#cqTail = co(1) >>> 2;
    this.#cqMask = this.#cqRing[co(2) >>> 2];
    this.#cqes = new Int32Array(this.#cqRing.buffer, this.#cqRing.byteOffset + co(5), this.cqEntries * 4);
    this.#cqesU32 = new Uint32Array(this.#cqes.buffer, this.#cqes.byteOffset, this.cqEntries * 4);
    this.sqes = new Uint8Array(libc.view(sqesAddr, Number(sqesLen)));
    this.sqeView = new DataView(this.sqes.buffer, this.sqes.byteOffset, this.sqes.byteLength);
    this.#tail = Atomics.load(this.#sqRing, this.#sqTail);
    // The index array maps ring slots to SQEs one to one: set once (SETUP_NO_SQARRAY is 6.6+).
    for (let i = 0; i < this.sqEntries; i++) this.#sqRing[this.#sqArray + i] = i;
  }

  /**
   * Set up a ring of `entries` SQEs (a power of two is not required: the
   * kernel rounds up). Throws SyscallError when the kernel refuses (ENOSYS:
   * no io_uring; EPERM: disabled by kernel.io_uring_disabled or a seccomp
   * filter).
   */
  static async create(entries: number, opts: UringOptions = {}): Promise<Uring> {
    if (!Number.isInteger(entries) || entries < 1 || entries > 32768) {
      throw new InvalidArgumentError(`io_uring entries must be an integer from 1 to 32768, got ${String(entries)}`);
    }
    const libc = opts.libc ?? await loadLibc();
    const params = new Uint8Array(UringParams.SIZE);
    const p = new DataView(params.buffer);
    let flags = (opts.flags ?? 0) | (opts.sqe128 ? UringSetup.SQE128 : 0);
    if (opts.cqEntries !== undefined) {
      flags |= UringSetup.CQSIZE;
      p.setUint32(UringParams.CQ_ENTRIES, opts.cqEntries, true);
    }
    p.setUint32(UringParams.FLAGS, flags >>> 0, true);
    const fd = libc.ioUringSetup(entries, params);
    if (fd < 0) {
      const e = libc.errno();
      throw new SyscallError("io_uring_setup", e, errnoName(e));
    }
    return new Uring(libc, fd, p, opts.sqe128 === true);
  }

  /**
   * As {@link create}, but null when this kernel or its policy refuses
   * io_uring (ENOSYS, EPERM, EACCES): for callers that can do without.
   */
  static async tryCreate(entries: number, opts: UringOptions = {}): Promise<Uring | null> {
    try {
      return await Uring.create(entries, opts);
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (errno === 38 || errno === 1 || errno === 13) return null;
      throw e;
    }
  }

  /** SQEs that can be handed out before a {@link submit}. */
  get sqSpace(): number {
    return this.sqEntries - ((this.#tail - pollLoad32(this.#sqRing, this.#sqHead)) >>> 0);
  }

  /** SQEs handed out and not yet submitted. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * The byte offset in {@link sqes} of the next free SQE, zeroed, or -1 when
   * the SQ is full (submit first).
   */
  sqe(): number {
    // The kernel's words: pollLoad32, not Atomics.load (a locked read-modify-write on Bun).
    const head = pollLoad32(this.#sqRing, this.#sqHead);
    if (((this.#tail - head) >>> 0) >= this.sqEntries) return -1;
    const off = ((this.#tail & this.#sqMask) >>> 0) * this.sqeBytes;
    this.sqes.fill(0, off, off + this.sqeBytes);
    this.#tail = (this.#tail + 1) >>> 0;
    this.#pending++;
    return off;
  }

  /** Fill the common fields of the SQE at `off`: opcode, fd, user_data (below 2^32), addr, len, off. */
  prep(off: number, opcode: number, fd: number, userData: number, addr = 0n, len = 0, fileOff = 0n): void {
    const v = this.sqeView;
    v.setUint8(off + SqeOff.OPCODE, opcode);
    v.setInt32(off + SqeOff.FD, fd, true);
    v.setBigUint64(off + SqeOff.OFF, fileOff, true);
    v.setBigUint64(off + SqeOff.ADDR, addr, true);
    v.setUint32(off + SqeOff.LEN, len >>> 0, true);
    v.setUint32(off + SqeOff.USER_DATA, userData >>> 0, true);
    v.setUint32(off + SqeOff.USER_DATA + 4, 0, true);
  }

  /**
   * Make the prepared SQEs visible (one release store of the SQ tail) and
   * enter the kernel once: submit them and, with `minComplete` > 0, wait for
   * that many completions. Returns how many SQEs the kernel consumed. EINTR
   * is retried; EBUSY (CQ overflow backlog) and ETIME return 0.
   */
  submit(minComplete = 0, timeoutNs = -1): number {
    if (this.#closed) throw new InvalidArgumentError("io_uring is closed");
    Atomics.store(this.#sqRing, this.#sqTail, this.#tail);
    const n = this.#pending;
    let flags = minComplete > 0 ? UringEnter.GETEVENTS : 0;
    let arg = 0n, argSize = 0n;
    if (minComplete > 0 && timeoutNs >= 0) {
      const s = this.#scratch;
      s.setBigInt64(64, BigInt(Math.floor(timeoutNs / 1e9)), true);
      s.setBigInt64(72, BigInt(timeoutNs % 1e9), true);
      // struct io_uring_getevents_arg { u64 sigmask; u32 sigmask_sz; u32 pad; u64 ts; }
      s.setBigUint64(0, 0n, true);
      s.setUint32(8, 8, true);
      s.setUint32(12, 0, true);
      s.setBigUint64(16, this.#scratchAddr + 64n, true);
      flags |= UringEnter.EXT_ARG;
      arg = this.#scratchAddr;
      argSize = 24n;
    }
    for (;;) {
      const r = this.#libc.ioUringEnter(this.fd, n, minComplete, flags, arg, argSize);
      if (r >= 0) {
        this.#pending -= r;
        return r;
      }
      const e = this.#libc.errno();
      if (e === EINTR) continue;
      if (e === ETIME || e === EBUSY) return 0;
      throw new SyscallError("io_uring_enter", e, errnoName(e));
    }
  }

  /** CQEs waiting to be read. */
  cqReady(): number {
    return (pollLoad32(this.#cqRing, this.#cqTail) - this.#cqRing[this.#cqHead]) >>> 0;
  }

  /** user_data (low 32 bits) of the i-th waiting CQE. */
  cqeUserData(i: number): number {
    const idx = ((this.#cqRing[this.#cqHead] + i) & this.#cqMask) >>> 0;
    return this.#cqesU32[idx * 4];
  }

  /** res of the i-th waiting CQE (a count, or -errno). */
  cqeRes(i: number): number {
    const idx = ((this.#cqRing[this.#cqHead] + i) & this.#cqMask) >>> 0;
    return this.#cqes[idx * 4 + 2];
  }

  /** flags of the i-th waiting CQE. */
  cqeFlags(i: number): number {
    const idx = ((this.#cqRing[this.#cqHead] + i) & this.#cqMask) >>> 0;
    return this.#cqesU32[idx * 4 + 3];
  }

  /** Release `n` CQEs to the kernel (one release store of the CQ head). */
  cqAdvance(n: number): void {
    Atomics.store(this.#cqRing, this.#cqHead, (this.#cqRing[this.#cqHead] + n) >>> 0);
  }

  /** Unmap the rings and close the fd. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [a, len] of this.#maps) this.#libc.munmap(a, len);
    this.#maps.length = 0;
    if (this.fd >= 0) this.#libc.close(this.fd);
  }
}
