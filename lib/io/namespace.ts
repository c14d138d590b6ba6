/**
 * Namespace IO: read, write, flush, write zeroes, dataset management, compare,
 * verify and copy. Validates every argument before anything
 * reaches the device, splits transfers at the controller's limit, and copies
 * plain (non-DMA) buffers through reusable bounce buffers.
 * @module
 */
import { copyCmd, dsmCmd, flushCmd } from "../nvme/command.ts";
import { InvalidArgumentError, type NvmeError } from "../nvme/errors.ts";
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

// One shared default: `opts = {}` would allocate on every call that omits it.
const NO_OPTIONS: IoOptions = Object.freeze({});

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
  readonly #host: IoHost;
  readonly #chunkBlocks: number;

  /** Bind a namespace to the device that owns it. */
  constructor(host: IoHost, info: NamespaceInfo) {
    this.#host = host;
    this.info = info;
    this.nsid = info.nsid;
    this.blockSize = info.blockSize;
    this.blockCount = Number(info.blockCount);
    // NLB is 16 bits: at most 65536 blocks per command, whatever MDTS says.
    this.#chunkBlocks = Math.max(1, Math.min(65536, Math.floor(host.maxTransferBytes / info.blockSize)));
  }

  /** Size in bytes. */
  get sizeBytes(): number {
    return this.blockCount * this.blockSize;
  }

  /** Read `buf.byteLength` bytes starting at block `lba` into `buf`. */
  read(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: IoOptions = NO_OPTIONS): Promise<void> {
    return this.#rw(IoOpc.READ, lba, buf, opts);
  }

  /** Write `buf` starting at block `lba`. */
  write(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: IoOptions = NO_OPTIONS): Promise<void> {
    return this.#rw(IoOpc.WRITE, lba, buf, opts);
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
    const bytes = this.#check(lba, buf, opts);
    if (typeof done !== "function") throw new InvalidArgumentError("done must be a function");
    const slba = this.#slba;
    const d = this.#host.dmaOf(bytes);
    const len = bytes.byteLength;
    if (d !== null && len / this.blockSize <= this.#chunkBlocks) {
      const iova = d.iova + bytes.byteOffset - d.bytes.byteOffset;
      if ((iova & 3) === 0) {
        const q = this.#host.pickQueue();
        return q.rwCallback(opc, this.nsid, slba, len / this.blockSize - 1, iova, len, 0, opts.timeoutMs ?? q.defaultTimeoutMs, d, done);
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
    await this.#noData(IoOpc.WRITE_ZEROES, slba, blocks, flags, opts.timeoutMs);
  }

  /**
   * Check `blocks` blocks from `lba` on the controller (Verify: the data is
   * read and checked, nothing is transferred). Unreadable blocks reject with
   * the media error status.
   */
  async verify(lba: number | bigint, blocks: number, opts: IoOptions = {}): Promise<void> {
    const slba = this.#checkRange(lba, blocks, opts);
    await this.#noData(IoOpc.VERIFY, slba, blocks, 0, opts.timeoutMs);
  }

  /**
   * Compare the blocks from `lba` with `buf`; a difference rejects with
   * NvmeCompareError.
   */
  async compare(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: IoOptions = {}): Promise<void> {
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

  /** Block-count-only commands (write zeroes, verify), split at 65536 blocks. */
  #noData(opc: number, slba: number, blocks: number, flags: number, timeoutMs?: number): Promise<void> {
    const q = this.#host.pickQueue();
    const t = timeoutMs ?? q.defaultTimeoutMs;
    const parts: Promise<number>[] = [];
    for (let done = 0; done < blocks; done += 65536) {
      const n = Math.min(65536, blocks - done);
      parts.push(q.rw(opc, this.nsid, slba + done, n - 1, 0, 0, flags, t));
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
    if (len % this.blockSize !== 0) {
      throw new InvalidArgumentError(
        `buffer length ${len} is not a multiple of the block size ${this.blockSize} (namespace ${this.nsid})`,
      );
    }
    const nlb = len / this.blockSize;
    if (slba >= this.blockCount || slba + nlb > this.blockCount) {
      throw new InvalidArgumentError(
        `blocks ${slba}..${slba + nlb - 1} are past the end of namespace ${this.nsid} (${this.blockCount} blocks)`,
      );
    }
    this.#slba = slba;
    return bytes;
  }

  async #xfer(opc: number, slba: number, bytes: Uint8Array, timeoutMs?: number): Promise<void> {
    const host = this.#host;
    const d = host.dmaOf(bytes);
    if (d !== null) {
      const iova = d.iova + bytes.byteOffset - d.bytes.byteOffset;
      if ((iova & 3) === 0) {
        await this.#submitChunks(opc, slba, iova, bytes.byteLength, timeoutMs, d);
        return;
      }
    }
    // Plain memory: stage through a DMA buffer, segment by segment.
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

  #submitChunks(opc: number, slba: number, iova: number, len: number, timeoutMs: number | undefined, ref: DmaBuffer): Promise<unknown> {
    const q = this.#host.pickQueue();
    const t = timeoutMs ?? q.defaultTimeoutMs;
    const bs = this.blockSize;
    const nlb = len / bs;
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
}
