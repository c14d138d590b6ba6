/**
 * Namespace IO: read, write, flush. Validates every argument before anything
 * reaches the device, splits transfers at the controller's limit, and copies
 * plain (non-DMA) buffers through reusable bounce buffers.
 * @module
 */
import { flushCmd } from "../nvme/command.ts";
import { InvalidArgumentError, type NvmeError } from "../nvme/errors.ts";
import type { QueuePair } from "../nvme/queue.ts";
import { IoOpc } from "../nvme/spec.ts";
import type { DmaBuffer } from "../nvme/transport.ts";

/** What a namespace needs from the device that owns it. */
export interface IoHost {
  /** Set when the device is closed (or failed): IO is refused with this error. */
  readonly closedError: NvmeError | null;
  /** The queue pair this call should use. */
  pickQueue(): QueuePair;
  /** Bytes per command at most. */
  readonly maxTransferBytes: number;
  /** IOVA of a view into DMA memory, else -1. */
  iovaOf(view: Uint8Array): number;
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
}

/** Options for a single IO call. */
export interface IoOptions {
  /** Timeout in ms for each command of this call (default: the device's IO timeout). */
  timeoutMs?: number;
}

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
  async read(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: IoOptions = {}): Promise<void> {
    const [slba, bytes] = this.#check(lba, buf, opts);
    await this.#xfer(IoOpc.READ, slba, bytes, opts.timeoutMs);
  }

  /** Write `buf` starting at block `lba`. */
  async write(lba: number | bigint, buf: Uint8Array | ArrayBufferView | ArrayBuffer, opts: IoOptions = {}): Promise<void> {
    const [slba, bytes] = this.#check(lba, buf, opts);
    await this.#xfer(IoOpc.WRITE, slba, bytes, opts.timeoutMs);
  }

  /** Commit volatile write cache contents to media. */
  async flush(opts: IoOptions = {}): Promise<void> {
    this.#checkOpen();
    this.#checkTimeout(opts);
    const q = this.#host.pickQueue();
    await q.submit(flushCmd(this.nsid), 0, 0, opts.timeoutMs ?? q.defaultTimeoutMs);
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

  /** Validate an IO request; returns [start block, bytes]. Nothing reaches the device on failure. */
  #check(lba: number | bigint, buf: unknown, opts: IoOptions): [number, Uint8Array] {
    this.#checkOpen();
    this.#checkTimeout(opts);
    let slba: number;
    if (typeof lba === "bigint") {
      if (lba < 0n || lba > BigInt(Number.MAX_SAFE_INTEGER)) throw new InvalidArgumentError(`lba ${lba} is out of range`);
      slba = Number(lba);
    } else if (typeof lba === "number" && Number.isSafeInteger(lba) && lba >= 0) {
      slba = lba;
    } else {
      throw new InvalidArgumentError(`lba must be a non-negative integer, got ${String(lba)}`);
    }
    const bytes = toBytes(buf, "buffer");
    const len = bytes.byteLength;
    if (len === 0) throw new InvalidArgumentError("buffer is empty: nothing to transfer");
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
    return [slba, bytes];
  }

  async #xfer(opc: number, slba: number, bytes: Uint8Array, timeoutMs?: number): Promise<void> {
    const host = this.#host;
    const iova = host.iovaOf(bytes);
    if (iova >= 0 && (iova & 3) === 0) {
      await this.#submitChunks(opc, slba, iova, bytes.byteLength, timeoutMs);
      return;
    }
    // Plain memory: stage through a DMA buffer, segment by segment.
    const seg = Math.min(bytes.byteLength, BOUNCE_MAX - (BOUNCE_MAX % this.blockSize));
    const b = host.takeBounce(seg);
    try {
      for (let off = 0; off < bytes.byteLength; off += seg) {
        const n = Math.min(seg, bytes.byteLength - off);
        if (opc !== IoOpc.READ) b.bytes.set(bytes.subarray(off, off + n));
        await this.#submitChunks(opc, slba + off / this.blockSize, b.iova, n, timeoutMs);
        if (opc === IoOpc.READ) bytes.set(b.bytes.subarray(0, n), off);
      }
    } finally {
      host.giveBounce(b);
    }
  }

  #submitChunks(opc: number, slba: number, iova: number, len: number, timeoutMs?: number): Promise<unknown> {
    const q = this.#host.pickQueue();
    const t = timeoutMs ?? q.defaultTimeoutMs;
    const bs = this.blockSize;
    const nlb = len / bs;
    if (nlb <= this.#chunkBlocks) return q.rw(opc, this.nsid, slba, nlb - 1, iova, len, 0, t);
    const parts: Promise<number>[] = [];
    for (let done = 0; done < nlb; done += this.#chunkBlocks) {
      const n = Math.min(this.#chunkBlocks, nlb - done);
      parts.push(q.rw(opc, this.nsid, slba + done, n - 1, iova + done * bs, n * bs, 0, t));
    }
    // Wait for every chunk, even after a failure: the buffer must not be reused while DMA is in flight.
    return Promise.allSettled(parts).then((rs) => {
      for (const r of rs) if (r.status === "rejected") throw r.reason;
    });
  }
}
