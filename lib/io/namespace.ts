/**
 * Namespace IO: read, write, flush, write zeroes, dataset management, compare,
 * verify and copy. Validates every argument before anything
 * reaches the device, splits transfers at the controller's limit, and copies
 * plain (non-DMA) buffers through reusable bounce buffers.
 * @module
 */
import { copyCmd, dsmCmd, flushCmd } from "../nvme/command.ts";
import { InvalidArgumentError, type NvmeError } from "../nvme/errors.ts";
import { type PiFormat, piFormatOf, piRefAt, piStripped, Prinfo, prinfoBits, refTagSpace } from "../nvme/pi.ts";
import { defaultPrchk, generatePi, type PiTags, type PiVerifyOptions, verifyPi } from "./pi.ts";
import type { QueuePair } from "../nvme/queue.ts";
import { IoOpc } from "../nvme/spec.ts";
import { COPY_RANGE_BYTES, DSM_RANGE_BYTES, encodeCopyRanges, encodeDsmRanges } from "../nvme/ranges.ts";
import type { DmaBuffer } from "../nvme/transport.ts";

/** What a namespace needs from the device that owns it. */
export interface IoHost {
  /** Set when the device is closed (or failed): IO is refused with this error. */
  readonly closedError: NvmeError | null;
  /** The queue pair this call should use. */
  pickQueue(): QueuePair;
  /** Bytes per command at most. */
  readonly maxTransferBytes: number;
  /** The DMA buffer a view lies in, else null (plain memory: bounced). */
  dmaOf(view: Uint8Array): DmaBuffer | null;
  /** Borrow a DMA bounce buffer of at least `size` bytes. */
  takeBounce(size: number): DmaBuffer;
  /** Return a bounce buffer. */
  giveBounce(buf: DmaBuffer): void;
}

/** Geometry of a namespace. */
export interface NamespaceInfo {
  /** Namespace id. */
  nsid: number;
  /** Bytes per logical block (data only). */
  blockSize: number;
  /** Namespace size in logical blocks (NSZE). */
  blockCount: bigint;
  /** Namespace capacity in blocks (NCAP). */
  capacity: bigint;
  /** Blocks in use (NUSE). */
  utilization: bigint;
  /** Metadata bytes per block (0: none). */
  metadataSize: number;
  /** Index of the LBA format in use. */
  lbaFormat: number;
  /** Copy: Maximum Single Source Range Length in blocks (0 or absent: only the 16-bit NLB limit). */
  mssrl?: number;
  /** Copy: Maximum Copy Length in blocks over all ranges (0 or absent: no limit known). */
  mcl?: number;
  /** Copy: Maximum Source Range Count, one-based (absent: 256). */
  msrc?: number;
  /** Metadata and protection information format (absent: derived from `metadataSize`, separate buffer, no PI). */
  pi?: PiFormat;
}

/** A run of blocks: start block and block count. */
export interface BlockRange {
  /** First block. */
  lba: number | bigint;
  /** Number of blocks (one-based). */
  blocks: number;
}

/** Options for {@link Namespace.writeZeroes}. */
export interface WriteZeroesOptions extends IoOptions {
  /** Also deallocate the blocks (DEAC), where the controller supports it. */
  deallocate?: boolean;
  /** Force Unit Access. */
  fua?: boolean;
}

/** Dataset Management attributes (CDW11) for {@link Namespace.dsm}. */
export interface DsmOptions extends IoOptions {
  /** Attribute Deallocate. */
  deallocate?: boolean;
  /** Integral Dataset for Write. */
  idw?: boolean;
  /** Integral Dataset for Read. */
  idr?: boolean;
}

/** Options for a single IO call. */
export interface IoOptions {
  /** Timeout in ms for each command of this call (default: the device's IO timeout). */
  timeoutMs?: number;
}

/**
 * Metadata and protection information of a read, write, compare or verify
 * on a namespace formatted with metadata. Ignored (and refused when set) on
 * a namespace without.
 */
export interface ProtectionOptions extends IoOptions {
  /**
   * The separate metadata buffer: `metadataSize` bytes per block, filled by
   * a read, sent by a write. Needed on a namespace with separate metadata
   * unless PRACT strips/inserts the whole of it. DMA memory goes straight
   * to the device; plain memory is bounced.
   */
  metadata?: Uint8Array;
  /**
   * PRACT: the controller inserts PI on a write and strips it on a read
   * (when the metadata is only the PI tuple, the host moves data only).
   * Default: on when the namespace has PI, its metadata is only the PI
   * tuple, and no `metadata` is given; else off.
   */
  pract?: boolean;
  /** Checks the controller makes (Prinfo.PRCHK_*); default guard and reference tag (type 3: guard), none without PI. */
  prchk?: number;
  /** Initial reference tag (default: the start LBA's low 32 or 48 bits, which type 1 requires). */
  refTag?: number;
  /** Application tag written (PRACT) or expected (default 0). */
  appTag?: number;
  /** Application tag mask for the check (default 0xffff). */
  appMask?: number;
}

// One shared default: `opts = {}` would allocate on every call that omits it.
const NO_OPTIONS: ProtectionOptions = Object.freeze({});

/** Bounce buffers are at most this big; longer plain-buffer IO goes through in segments. */
export const BOUNCE_MAX = 4 * 1024 * 1024;

function toBytes(buf: unknown, what: string): Uint8Array {
  if (buf instanceof Uint8Array) return buf;
  if (ArrayBuffer.isView(buf)) return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  if (buf instanceof ArrayBuffer) return new Uint8Array(buf);
  throw new InvalidArgumentError(`${what} must be a Uint8Array, another ArrayBufferView or an ArrayBuffer`);
}

/** One namespace of an open controller. */
export class Namespace {
  /** Namespace id. */
  readonly nsid: number;
  /** Bytes per logical block. */
  readonly blockSize: number;
  /** Size in logical blocks, as a number (exact below 2^53). */
  readonly blockCount: number;
  /** Geometry as identified. */
  readonly info: NamespaceInfo;
  /** Metadata and PI format; null when the namespace has no metadata. */
  readonly pi: PiFormat | null;
  readonly #host: IoHost;
  readonly #chunkBlocks: number;
  /** log2 of the block size (-1 if not a power of two): block counts by shift and mask, no division per IO. */
  readonly #shift: number;
  /**
   * The last view found in DMA memory, and its DMA buffer: a caller at depth
   * 1 reuses one view, so the host's lookup runs once (`view.buffer` is a C++
   * builtin call on V8, then a WeakMap get, per IO). A view lies in one DMA
   * buffer for life; a freed one is detached, refused by #check first.
   */
  #lastView: Uint8Array | null = null;
  #lastDma: DmaBuffer | null = null;

  /** Bind a namespace to the device that owns it. */
  constructor(host: IoHost, info: NamespaceInfo) {
    this.#host = host;
    this.info = info;
    this.nsid = info.nsid;
    this.blockSize = info.blockSize;
    this.blockCount = Number(info.blockCount);
    // NLB is 16 bits: at most 65536 blocks per command, whatever MDTS says.
    this.#chunkBlocks = Math.max(1, Math.min(65536, Math.floor(host.maxTransferBytes / info.blockSize)));
    const log2 = Math.log2(info.blockSize);
    this.#shift = Number.isInteger(log2) ? log2 : -1;
    this.pi = info.metadataSize > 0 ? info.pi ?? piFormatOf(info.blockSize, info.metadataSize, 0, 0) : null;
  }

  /** Size in bytes. */
  get sizeBytes(): number {
    return this.blockCount * this.blockSize;
  }

  /**
   * Read `buf.byteLength` bytes starting at block `lba` into `buf`. On a
   * namespace with extended LBAs `buf` holds data and metadata per block
   * (unless PRACT strips the PI); see {@link ProtectionOptions}.
   */
  read(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: ProtectionOptions = NO_OPTIONS): Promise<void> {
    if (this.pi !== null) return this.#meta(IoOpc.READ, lba, buf, opts);
    return this.#rw(IoOpc.READ, lba, buf, opts);
  }

  /** Write `buf` starting at block `lba` (metadata and PI: see {@link read}). */
  write(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: ProtectionOptions = NO_OPTIONS): Promise<void> {
    if (this.pi !== null) return this.#meta(IoOpc.WRITE, lba, buf, opts);
    return this.#rw(IoOpc.WRITE, lba, buf, opts);
  }

  /**
   * Fill in the PI tuples of `buf`'s blocks (from block `lba`) for a write
   * with PRACT off: in `buf` itself on an extended-LBA namespace, else in
   * `metadata`. Throws when the namespace has no PI.
   */
  generatePi(lba: number | bigint, buf: Uint8Array, metadata?: Uint8Array, tags?: PiTags): void {
    generatePi(this.#piOrThrow(), this.#checkLba(lba), buf, metadata, tags);
  }

  /**
   * Check the PI tuples of `buf`'s blocks (from block `lba`) after a read
   * with PRACT off; throws {@link PiCheckError} naming the check that failed.
   */
  verifyPi(lba: number | bigint, buf: Uint8Array, metadata?: Uint8Array, opts?: PiVerifyOptions): void {
    verifyPi(this.#piOrThrow(), this.#checkLba(lba), buf, metadata, opts);
  }

  #piOrThrow(): PiFormat {
    const f = this.pi;
    if (f === null || f.type === 0) throw new InvalidArgumentError(`namespace ${this.nsid} is not formatted with protection information`);
    return f;
  }

  /** The per-IO path: validate (a refusal is a rejected promise), then transfer. No array, one async frame. */
  #rw(opc: number, lba: number | bigint, buf: unknown, opts: IoOptions): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = this.#check(lba, buf, opts);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#xfer(opc, this.#slba, bytes, opts.timeoutMs);
  }

  /**
   * The callback path of {@link read}, for engines that keep many IOs in flight
   * and do not want a Promise per IO: `done(err)` runs when the read has ended
   * (`err` null on success). Returns false, sending nothing, when the queue has
   * no free slot right now: retry after a completion. Bad arguments and a
   * closed device throw at once. A DMA buffer whose transfer fits one command
   * goes straight to the ring; anything else takes the Promise path inside.
   */
  submitRead(lba: number | bigint, buf: Uint8Array, done: (err: NvmeError | null) => void, opts: IoOptions = NO_OPTIONS): boolean {
    return this.#submit(IoOpc.READ, lba, buf, done, opts);
  }

  /** The callback path of {@link write}; see {@link submitRead}. */
  submitWrite(lba: number | bigint, buf: Uint8Array, done: (err: NvmeError | null) => void, opts: IoOptions = NO_OPTIONS): boolean {
    return this.#submit(IoOpc.WRITE, lba, buf, done, opts);
  }

  #submit(opc: number, lba: number | bigint, buf: unknown, done: (err: NvmeError | null) => void, opts: IoOptions): boolean {
    if (this.pi !== null) {
      if (typeof done !== "function") throw new InvalidArgumentError("done must be a function");
      this.#meta(opc, lba, buf, opts).then(() => done(null), (e) => done(e as NvmeError));
      return true;
    }
    const bytes = this.#check(lba, buf, opts);
    if (typeof done !== "function") throw new InvalidArgumentError("done must be a function");
    const slba = this.#slba;
    const d = this.#dmaOf(bytes);
    const len = bytes.byteLength;
    const nlb = this.#blocks(len);
    if (d !== null && nlb <= this.#chunkBlocks) {
      const iova = d.iova + bytes.byteOffset - d.bytes.byteOffset;
      if ((iova & 3) === 0) {
        const q = this.#host.pickQueue();
        return q.rwCallback(opc, this.nsid, slba, nlb - 1, iova, len, 0, opts.timeoutMs ?? q.defaultTimeoutMs, d, done);
      }
    }
    this.#xfer(opc, slba, bytes, opts.timeoutMs).then(() => done(null), (e) => done(e as NvmeError));
    return true;
  }

  /** Commit volatile write cache contents to media. */
  async flush(opts: IoOptions = {}): Promise<void> {
    this.#checkOpen();
    this.#checkTimeout(opts);
    const q = this.#host.pickQueue();
    await q.submit(flushCmd(this.nsid), 0, 0, opts.timeoutMs ?? q.defaultTimeoutMs);
  }

  /**
   * Zero `blocks` blocks from `lba` without transferring data (Write Zeroes),
   * split at the 16-bit block count limit.
   */
  async writeZeroes(lba: number | bigint, blocks: number, opts: WriteZeroesOptions = {}): Promise<void> {
    const slba = this.#checkRange(lba, blocks, opts);
    const flags = (opts.deallocate ? 1 << 25 : 0) | (opts.fua ? 1 << 30 : 0);
    // On a PI namespace the controller writes the zeroed blocks' PI (PRACT), as Linux asks it to.
    const pi = this.pi !== null && this.pi.type !== 0;
    await this.#noData(IoOpc.WRITE_ZEROES, slba, blocks, flags | (pi ? prinfoBits(Prinfo.PRACT) : 0), opts.timeoutMs, pi ? NO_OPTIONS : undefined);
  }

  /**
   * Check `blocks` blocks from `lba` on the controller (Verify: the data is
   * read and checked, nothing is transferred). Unreadable blocks reject with
   * the media error status.
   */
  async verify(lba: number | bigint, blocks: number, opts: ProtectionOptions = {}): Promise<void> {
    const slba = this.#checkRange(lba, blocks, opts);
    const f = this.pi;
    if (f !== null && f.type !== 0) {
      this.#piCheckOpts(f, opts);
      const prinfo = opts.prchk ?? defaultPrchk(f);
      await this.#noData(IoOpc.VERIFY, slba, blocks, prinfoBits(prinfo), opts.timeoutMs, opts);
      return;
    }
    if (opts.pract || opts.prchk) throw new InvalidArgumentError(`namespace ${this.nsid} has no protection information: pract/prchk do not apply`);
    await this.#noData(IoOpc.VERIFY, slba, blocks, 0, opts.timeoutMs);
  }

  /**
   * Compare the blocks from `lba` with `buf`; a difference rejects with
   * NvmeCompareError.
   */
  async compare(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: ProtectionOptions = {}): Promise<void> {
    if (this.pi !== null) return await this.#meta(IoOpc.COMPARE, lba, buf, opts);
    const bytes = this.#check(lba, buf, opts);
    await this.#xfer(IoOpc.COMPARE, this.#slba, bytes, opts.timeoutMs);
  }

  /** Deallocate (trim) the given ranges: Dataset Management with the Deallocate attribute. */
  deallocate(ranges: BlockRange | BlockRange[], opts: IoOptions = {}): Promise<void> {
    return this.dsm(ranges, { ...opts, deallocate: true });
  }

  /** Dataset Management over up to 256 ranges of at most 2^32-1 blocks each. */
  async dsm(ranges: BlockRange | BlockRange[], opts: DsmOptions = {}): Promise<void> {
    const list = this.#checkRanges(ranges, opts, 256, 0xffff_ffff);
    const b = this.#host.takeBounce(4096);
    try {
      b.bytes.fill(0, 0, 4096);
      encodeDsmRanges(list, b.bytes);
      const q = this.#host.pickQueue();
      const cmd = dsmCmd(this.nsid, list.length, { ad: opts.deallocate, idw: opts.idw, idr: opts.idr });
      await q.submit(cmd, b.iova, list.length * DSM_RANGE_BYTES, opts.timeoutMs ?? q.defaultTimeoutMs, b);
    } finally {
      this.#host.giveBounce(b);
    }
  }

  /**
   * Copy the source ranges, in order, to consecutive blocks from `destLba`
   * (Copy, source range descriptor format 0), within this namespace.
   */
  async copy(ranges: BlockRange | BlockRange[], destLba: number | bigint, opts: IoOptions = {}): Promise<void> {
    const msrc = this.info.msrc || 256;
    const mssrl = Math.min(this.info.mssrl || 65536, 65536);
    const list = this.#checkRanges(ranges, opts, msrc, mssrl);
    const total = list.reduce((a, [, n]) => a + n, 0);
    if (this.info.mcl && total > this.info.mcl) {
      throw new InvalidArgumentError(`copy of ${total} blocks exceeds the namespace's maximum copy length ${this.info.mcl}`);
    }
    const sdlba = this.#checkRange(destLba, total, opts);
    const bytes = list.length * COPY_RANGE_BYTES;
    const b = this.#host.takeBounce(bytes);
    try {
      b.bytes.fill(0, 0, bytes);
      encodeCopyRanges(list, b.bytes);
      const q = this.#host.pickQueue();
      await q.submit(copyCmd(this.nsid, sdlba, list.length), b.iova, bytes, opts.timeoutMs ?? q.defaultTimeoutMs, b);
    } finally {
      this.#host.giveBounce(b);
    }
  }

  #checkLba(lba: unknown, what = "lba"): number {
    if (typeof lba === "bigint") {
      if (lba < 0n || lba > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(`${what} ${lba} is out of range`);
      return Number(lba);
    }
    if (typeof lba === "number" && Number.isSafeInteger(lba) && lba >= 0) return lba;
    throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${String(lba)}`);
  }

  /** Validate a block range; returns the start block. */
  #checkRange(lba: unknown, blocks: unknown, opts: IoOptions, what = "blocks"): number {
    this.#checkOpen();
    this.#checkTimeout(opts);
    const slba = this.#checkLba(lba);
    if (typeof blocks !== "number" || !Number.isSafeInteger(blocks) || blocks < 1) {
      throw new InvalidArgumentError(`${what} must be a positive integer, got ${String(blocks)}`);
    }
    if (slba + blocks > this.blockCount) {
      throw new InvalidArgumentError(
        `blocks ${slba}..${slba + blocks - 1} are past the end of namespace ${this.nsid} (${this.blockCount} blocks)`,
      );
    }
    return slba;
  }

  #checkRanges(ranges: unknown, opts: IoOptions, maxRanges: number, maxBlocks: number): [number, number][] {
    const list = Array.isArray(ranges) ? ranges : [ranges];
    if (list.length === 0) throw new InvalidArgumentError("no ranges given");
    if (list.length > maxRanges) throw new InvalidArgumentError(`${list.length} ranges given, at most ${maxRanges} allowed`);
    return list.map((r, i) => {
      if (r === null || typeof r !== "object") throw new InvalidArgumentError(`range ${i} must be { lba, blocks }`);
      const { lba, blocks } = r as BlockRange;
      const slba = this.#checkRange(lba, blocks, opts, `range ${i} blocks`);
      if (blocks > maxBlocks) throw new InvalidArgumentError(`range ${i}: ${blocks} blocks, at most ${maxBlocks} allowed`);
      return [slba, blocks];
    });
  }

  /** Block-count-only commands (write zeroes, verify), split at 65536 blocks; `tags`: the PI fields too. */
  #noData(opc: number, slba: number, blocks: number, flags: number, timeoutMs?: number, tags?: ProtectionOptions): Promise<void> {
    const q = this.#host.pickQueue();
    const t = timeoutMs ?? q.defaultTimeoutMs;
    const parts: Promise<number>[] = [];
    const f = this.pi;
    const ref = tags && f ? tags.refTag ?? slba % refTagSpace(f) : 0;
    for (let done = 0; done < blocks; done += 65536) {
      const n = Math.min(65536, blocks - done);
      if (tags && f) {
        const r = piRefAt(f, ref, done);
        parts.push(q.rwMeta(opc, this.nsid, slba + done, n - 1, 0, 0, flags, t, null, 0, hiRef(r), r >>> 0, appDw(tags)));
      } else parts.push(q.rw(opc, this.nsid, slba + done, n - 1, 0, 0, flags, t));
    }
    return Promise.allSettled(parts).then((rs) => {
      for (const r of rs) if (r.status === "rejected") throw r.reason;
    });
  }

  #checkOpen(): void {
    const e = this.#host.closedError;
    if (e) throw e;
  }

  #checkTimeout(opts: IoOptions): void {
    if (opts === null || typeof opts !== "object") throw new InvalidArgumentError("options must be an object");
    const t = opts.timeoutMs;
    if (t !== undefined && (typeof t !== "number" || !(t > 0) || !Number.isFinite(t))) {
      throw new InvalidArgumentError(`timeoutMs must be a positive finite number, got ${String(t)}`);
    }
  }

  /** Start block of the request last validated by #check (synchronous, so never stale when read). */
  #slba = 0;

  /** Validate an IO request: sets #slba, returns the bytes. Nothing reaches the device on failure. */
  #check(lba: number | bigint, buf: unknown, opts: IoOptions): Uint8Array {
    this.#checkOpen();
    this.#checkTimeout(opts);
    const slba = this.#checkLba(lba);
    const bytes = toBytes(buf, "buffer");
    const len = bytes.byteLength;
    if (len === 0) {
      if ((bytes.buffer as ArrayBuffer & { detached?: boolean }).detached) {
        throw new InvalidArgumentError("buffer was freed (freeBuffer() or close() detached it)");
      }
      throw new InvalidArgumentError("buffer is empty: nothing to transfer");
    }
    // (A mask: `len` is an integer, and its low bits survive ToInt32.)
    if ((this.#shift >= 0 ? len & (this.blockSize - 1) : len % this.blockSize) !== 0) {
      throw new InvalidArgumentError(
        `buffer length ${len} is not a multiple of the block size ${this.blockSize} (namespace ${this.nsid})`,
      );
    }
    const nlb = this.#blocks(len);
    if (slba >= this.blockCount || slba + nlb > this.blockCount) {
      throw new InvalidArgumentError(
        `blocks ${slba}..${slba + nlb - 1} are past the end of namespace ${this.nsid} (${this.blockCount} blocks)`,
      );
    }
    this.#slba = slba;
    return bytes;
  }

  /**
   * DMA memory goes straight to the ring: the queue's own Promise is returned,
   * so the caller's `await` resumes in the same microtask turn as the reap (an
   * async frame here cost one more turn per IO). It resolves to the
   * completion's DW0, which the public `Promise<void>` signatures hide.
   */
  #xfer(opc: number, slba: number, bytes: Uint8Array, timeoutMs?: number): Promise<void> {
    try {
      const d = this.#dmaOf(bytes);
      if (d !== null) {
        const iova = d.iova + bytes.byteOffset - d.bytes.byteOffset;
        if ((iova & 3) === 0) return this.#submitChunks(opc, slba, iova, bytes.byteLength, timeoutMs, d) as Promise<void>;
      }
    } catch (e) {
      return Promise.reject(e); // a refusal is a rejected promise, as from the async frame before
    }
    return this.#bounced(opc, slba, bytes, timeoutMs);
  }

  /** Plain memory (or a DMA view not 4-byte aligned): stage through a DMA buffer, segment by segment. */
  async #bounced(opc: number, slba: number, bytes: Uint8Array, timeoutMs?: number): Promise<void> {
    const host = this.#host;
    const seg = Math.min(bytes.byteLength, BOUNCE_MAX - (BOUNCE_MAX % this.blockSize));
    const b = host.takeBounce(seg);
    try {
      for (let off = 0; off < bytes.byteLength; off += seg) {
        const n = Math.min(seg, bytes.byteLength - off);
        if (opc !== IoOpc.READ) b.bytes.set(bytes.subarray(off, off + n));
        await this.#submitChunks(opc, slba + off / this.blockSize, b.iova, n, timeoutMs, b);
        if (opc === IoOpc.READ) bytes.set(b.bytes.subarray(0, n), off);
      }
    } finally {
      host.giveBounce(b);
    }
  }

  /** The host's DMA buffer of `bytes`, or null (plain memory); see #lastDma. */
  #dmaOf(bytes: Uint8Array): DmaBuffer | null {
    if (bytes === this.#lastView) return this.#lastDma;
    const d = this.#host.dmaOf(bytes);
    if (d !== null) {
      this.#lastView = bytes;
      this.#lastDma = d;
    }
    return d;
  }

  /** Blocks in `len` bytes, a multiple of the block size. */
  #blocks(len: number): number {
    return this.#shift >= 0 && len <= 0xffff_ffff ? len >>> this.#shift : len / this.blockSize;
  }

  #submitChunks(opc: number, slba: number, iova: number, len: number, timeoutMs: number | undefined, ref: DmaBuffer): Promise<unknown> {
    const q = this.#host.pickQueue();
    const t = timeoutMs ?? q.defaultTimeoutMs;
    const bs = this.blockSize;
    const nlb = this.#blocks(len);
    if (nlb <= this.#chunkBlocks) return q.rw(opc, this.nsid, slba, nlb - 1, iova, len, 0, t, ref);
    const parts: Promise<number>[] = [];
    for (let done = 0; done < nlb; done += this.#chunkBlocks) {
      const n = Math.min(this.#chunkBlocks, nlb - done);
      parts.push(q.rw(opc, this.nsid, slba + done, n - 1, iova + done * bs, n * bs, 0, t, ref));
    }
    // Wait for every chunk, even after a failure: the buffer must not be reused while DMA is in flight.
    return Promise.allSettled(parts).then((rs) => {
      for (const r of rs) if (r.status === "rejected") throw r.reason;
    });
  }

  /** Refuse PI options the namespace cannot honour. */
  #piCheckOpts(f: PiFormat, opts: ProtectionOptions): void {
    if (f.type === 0 && (opts.pract || opts.prchk)) {
      throw new InvalidArgumentError(`namespace ${this.nsid} has no protection information: pract/prchk do not apply`);
    }
    for (const k of ["refTag", "appTag", "appMask"] as const) {
      const v = opts[k];
      if (v !== undefined && (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0 || v >= (k === "refTag" ? refTagSpace(f) : 0x10000))) {
        throw new InvalidArgumentError(`${k} out of range: ${String(v)}`);
      }
    }
  }

  /**
   * Read, write or compare on a namespace with metadata: validated at once
   * (a refusal is a rejected promise), then sent with MPTR and the PI fields.
   */
  #meta(opc: number, lba: number | bigint, buf: unknown, opts: ProtectionOptions): Promise<void> {
    const f = this.pi!;
    let bytes: Uint8Array, meta: Uint8Array | null, slba: number, prinfo: number, unit: number;
    try {
      this.#checkOpen();
      this.#checkTimeout(opts);
      this.#piCheckOpts(f, opts);
      slba = this.#checkLba(lba);
      bytes = toBytes(buf, "buffer");
      meta = opts.metadata === undefined ? null : toBytes(opts.metadata, "metadata");
      const pract = opts.pract ?? (f.type !== 0 && f.metadataSize === f.tupleBytes && meta === null);
      const strip = piStripped(f, pract);
      unit = f.extended && !strip ? f.blockSize + f.metadataSize : f.blockSize;
      const len = bytes.byteLength;
      if (len === 0) throw new InvalidArgumentError("buffer is empty: nothing to transfer");
      if (len % unit !== 0) {
        throw new InvalidArgumentError(
          `buffer length ${len} is not a multiple of ${unit} (namespace ${this.nsid}: ${f.blockSize} data` +
            `${unit > f.blockSize ? ` + ${f.metadataSize} metadata` : ""} bytes per block)`,
        );
      }
      const nlb = len / unit;
      if (slba + nlb > this.blockCount) {
        throw new InvalidArgumentError(`blocks ${slba}..${slba + nlb - 1} are past the end of namespace ${this.nsid} (${this.blockCount} blocks)`);
      }
      if (!f.extended && !strip) {
        if (meta === null) {
          throw new InvalidArgumentError(
            `namespace ${this.nsid} has ${f.metadataSize} bytes of separate metadata per block: pass opts.metadata` +
              (f.type ? " (or pract: true to let the controller insert and strip PI)" : ""),
          );
        }
        if (meta.byteLength < nlb * f.metadataSize) {
          throw new InvalidArgumentError(`metadata buffer of ${meta.byteLength} bytes is short: ${nlb} blocks need ${nlb * f.metadataSize}`);
        }
      } else if (meta !== null) {
        throw new InvalidArgumentError(
          f.extended ? `namespace ${this.nsid} uses extended LBAs: metadata travels in the data buffer` : "no metadata moves with PRACT on this namespace",
        );
      }
      prinfo = f.type ? (pract ? Prinfo.PRACT : 0) | (opts.prchk ?? defaultPrchk(f)) : 0;
    } catch (e) {
      return Promise.reject(e);
    }
    // DMA buffers and one command: straight to the ring, nothing allocated but the Promise.
    const host = this.#host, len = bytes.byteLength, f2 = this.pi!;
    const d = host.dmaOf(bytes), m = meta === null ? null : host.dmaOf(meta);
    if (d !== null && (meta === null || m !== null) && len / unit <= Math.min(65536, Math.floor(host.maxTransferBytes / unit))) {
      const dIova = d.iova + bytes.byteOffset - d.bytes.byteOffset;
      const mIova = m === null ? 0 : m.iova + meta!.byteOffset - m.bytes.byteOffset;
      if (((dIova | mIova) & 3) === 0) {
        const q = host.pickQueue();
        const r = f2.type ? opts.refTag ?? slba % refTagSpace(f2) : 0;
        return q.rwMeta(
          opc, this.nsid, slba, len / unit - 1, dIova, len, prinfoBits(prinfo), opts.timeoutMs ?? q.defaultTimeoutMs, d,
          mIova, hiRef(r), r >>> 0, appDw(opts),
        ) as Promise<unknown> as Promise<void>;
      }
    }
    return this.#metaXfer(opc, slba, bytes, meta, unit, prinfo, opts);
  }

  async #metaXfer(
    opc: number,
    slba: number,
    bytes: Uint8Array,
    meta: Uint8Array | null,
    unit: number,
    prinfo: number,
    opts: ProtectionOptions,
  ): Promise<void> {
    const host = this.#host, f = this.pi!, ms = f.metadataSize;
    const nlb = bytes.byteLength / unit;
    const toDev = opc !== IoOpc.READ;
    let d = host.dmaOf(bytes), dBounce: DmaBuffer | null = null;
    let dIova = d ? d.iova + bytes.byteOffset - d.bytes.byteOffset : 0;
    if (d === null || (dIova & 3) !== 0) {
      d = dBounce = host.takeBounce(bytes.byteLength);
      dIova = d.iova;
      if (toDev) d.bytes.set(bytes);
    }
    let mIova = 0, mBounce: DmaBuffer | null = null;
    if (meta !== null) {
      const m = host.dmaOf(meta);
      mIova = m ? m.iova + meta.byteOffset - m.bytes.byteOffset : 0;
      if (m === null || (mIova & 3) !== 0) {
        mBounce = host.takeBounce(nlb * ms);
        mIova = mBounce.iova;
        if (toDev) mBounce.bytes.set(meta.subarray(0, nlb * ms));
      }
    }
    try {
      const q = host.pickQueue();
      const t = opts.timeoutMs ?? q.defaultTimeoutMs;
      const chunk = Math.max(1, Math.min(65536, Math.floor(host.maxTransferBytes / unit)));
      const ref = opts.refTag ?? (f.type ? slba % refTagSpace(f) : 0), app = appDw(opts);
      const flags = prinfoBits(prinfo);
      const parts: Promise<number>[] = [];
      for (let done = 0; done < nlb; done += chunk) {
        const n = Math.min(chunk, nlb - done);
        const r = f.type ? piRefAt(f, ref, done) : 0;
        parts.push(q.rwMeta(
          opc, this.nsid, slba + done, n - 1, dIova + done * unit, n * unit, flags, t, d,
          meta !== null ? mIova + done * ms : 0, hiRef(r), r >>> 0, app,
        ));
      }
      // Every chunk settles before the buffers are reused, even after a failure.
      const rs = await Promise.allSettled(parts);
      for (const r of rs) if (r.status === "rejected") throw r.reason;
      if (!toDev) {
        if (dBounce) bytes.set(dBounce.bytes.subarray(0, bytes.byteLength));
        if (mBounce) meta!.set(mBounce.bytes.subarray(0, nlb * ms));
      }
    } finally {
      if (dBounce) host.giveBounce(dBounce);
      if (mBounce) host.giveBounce(mBounce);
    }
  }
}

/** CDW3 of a reference tag: its bits 47:32 (zero for 32-bit tags). */
function hiRef(r: number): number {
  return Math.floor(r / 0x1_0000_0000) & 0xffff;
}

/** CDW15: application tag and mask. */
function appDw(o: ProtectionOptions): number {
  return ((o.appTag ?? 0) & 0xffff | ((o.appMask ?? 0xffff) & 0xffff) << 16) >>> 0;
}
