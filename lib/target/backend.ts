/**
 * What the target serves a namespace from: a block device with asynchronous,
 * callback-completed IO and its own buffers. {@link DevBackend} maps IO
 * straight onto a namespace of an open {@link NVMeDev} (a VFIO controller or
 * the software controller) with DMA buffers from `dev.allocBuffer`, so data
 * arriving from the socket is copied once, into DMA memory, and read data
 * goes from DMA memory into the outgoing PDU; its IO is lib/sim's
 * {@link NamespaceMedia}, the same adapter the controller model runs every
 * other command on. {@link MediaBackend} serves lib/sim media (memory or a
 * file) synchronously.
 * @module
 */
import type { AnyMedia, Media } from "../sim/media.ts";
import { type BackingDevice, type BackingNamespace, NamespaceMedia } from "../sim/nsmedia.ts";
import { Status } from "../nvme/spec.ts";
import { statusFieldOf } from "../nvme/errors.ts";

export type { BackingDevice, BackingNamespace };

/** Completion of a backend IO: 0, or an NVMe status field (SC | SCT << 8 | DNR). */
export type IoDone = (sf: number) => void;

/** One exported namespace's storage. */
export interface BlockBackend {
  /** For logs and errors, e.g. "0000:00:04.0 ns 1". */
  readonly name: string;
  /** Bytes per logical block. */
  readonly blockSize: number;
  /** Size in blocks. */
  readonly blockCount: number;
  /** Largest transfer one command may move (the target's MDTS is capped by it). */
  readonly maxTransfer: number;
  /** A volatile write cache exists (Flush means something). */
  readonly vwc: boolean;
  /** Identify Controller of the backing controller, for passthrough of model, serial and limits (null if none). */
  readonly idCtrl: Uint8Array | null;
  /** ONCS of the backing controller (undefined: the target serves DSM and Write Zeroes itself). */
  readonly oncs?: number;
  /** Buffer of at least `bytes` for IO on this backend (DMA memory where the backend needs it). */
  alloc(bytes: number): Uint8Array;
  /** Return a buffer from {@link alloc}. */
  free(buf: Uint8Array): void;
  /** Read `buf.length` bytes from block `lba` into `buf` (a view of an {@link alloc} buffer). */
  read(lba: number, buf: Uint8Array, done: IoDone): void;
  /** Write `buf` at block `lba`; `fua` forces it to media. */
  write(lba: number, buf: Uint8Array, fua: boolean, done: IoDone): void;
  /**
   * The same storage as media for the controller model (lib/sim/engine.ts),
   * which runs every command but Read and Write (Flush, Write Zeroes, DSM...):
   * byte offsets, whole blocks.
   */
  readonly media: AnyMedia;
  /**
   * Submit now the IO that waits inside the backend (a device queue held for a
   * controller reset, or full): for its owner to call after the queue may
   * have resumed, which no completion announces when nothing was in flight.
   */
  retryWaiting?(): void;
  /** Release what the backend holds (closes the device if the backend owns it). */
  close(): Promise<void>;
}

/**
 * Free lists of buffers by power-of-two size class, so the hot path does not
 * map and unmap DMA memory per command.
 */
export class BufferPool {
  readonly #alloc: (n: number) => Uint8Array;
  readonly #release: (b: Uint8Array) => void;
  readonly #free = new Map<number, Uint8Array[]>();
  readonly #keep: number;
  #all = new Set<Uint8Array>();

  /** A pool over `alloc`/`release`, keeping up to `keep` idle buffers per size class. */
  constructor(alloc: (n: number) => Uint8Array, release: (b: Uint8Array) => void, keep = 256) {
    this.#alloc = alloc;
    this.#release = release;
    this.#keep = keep;
  }

  /** A buffer of the size class holding `bytes` (its length is the class size). */
  take(bytes: number): Uint8Array {
    const cls = bytes <= 4096 ? 4096 : 2 ** Math.ceil(Math.log2(bytes));
    const b = this.#free.get(cls)?.pop();
    if (b !== undefined) return b;
    const n = this.#alloc(cls);
    this.#all.add(n);
    return n;
  }

  /** Give back a buffer from {@link take}. */
  give(b: Uint8Array): void {
    let l = this.#free.get(b.length);
    if (l === undefined) this.#free.set(b.length, l = []);
    if (l.length < this.#keep) l.push(b);
    else {
      this.#all.delete(b);
      this.#release(b);
    }
  }

  /** Release every buffer. */
  close(): void {
    for (const b of this.#all) this.#release(b);
    this.#all.clear();
    this.#free.clear();
  }
}


/** Options of {@link DevBackend}. */
export interface DevBackendOptions {
  /** Close the device when the backend closes (the CLI opened it for the target). */
  ownsDevice?: boolean;
}

/**
 * A namespace of an open NVMeDev: the target's face of lib/sim's
 * {@link NamespaceMedia} (which owns the callback path and the backlog), with
 * a pool of the device's DMA buffers, the backing controller's limits and
 * Identify for passthrough, and ownership of the device when asked.
 */
export class DevBackend implements BlockBackend {
  /** The name. */
  readonly name: string;
  /** Bytes per block. */
  readonly blockSize: number;
  /** Blocks. */
  readonly blockCount: number;
  /** Largest transfer. */
  readonly maxTransfer: number;
  /** Write cache present. */
  readonly vwc: boolean;
  /** Backing Identify Controller. */
  readonly idCtrl: Uint8Array;
  /** ONCS of the backing controller. */
  readonly oncs: number;
  /** The namespace as media: the IO path here, every other command for the controller model. */
  readonly media: NamespaceMedia;
  /** The device (a target's Workers each get a queue pair of it). */
  readonly device: BackingDevice;
  /** The namespace id on it. */
  readonly nsid: number;
  readonly #dev: BackingDevice;
  readonly #pool: BufferPool;
  readonly #owns: boolean;
  readonly #cbs = new WeakMap<IoDone, (err: unknown) => void>();
  readonly #wait: { write: boolean; lba: number; buf: Uint8Array; done: IoDone }[] = [];
  #waitHead = 0;
  #closed = false;

  /** Serve namespace `nsid` of `dev`. */
  constructor(dev: BackingDevice, nsid: number, opts: DevBackendOptions = {}) {
    this.#dev = this.device = dev;
    this.nsid = nsid;
    const m = this.media = new NamespaceMedia(dev, nsid);
    this.#owns = !!opts.ownsDevice;
    this.name = `${dev.target} ns ${nsid}`;
    this.blockSize = m.blockSize;
    this.blockCount = m.blockCount;
    this.maxTransfer = Math.min(dev.info.maxTransferBytes, 65536 * this.blockSize);
    this.vwc = dev.info.vwc;
    this.oncs = dev.info.oncs;
    this.idCtrl = dev.controller.identifyData.slice(0, 4096);
    this.#pool = new BufferPool((n) => m.alloc(n), (b) => m.free(b));
  }

  /** A DMA buffer. */
  alloc(bytes: number): Uint8Array {
    return this.#pool.take(bytes);
  }

  /** Back to the pool. */
  free(buf: Uint8Array): void {
    if (this.#closed) return;
    this.#pool.give(buf);
  }

  /** Read through the namespace's callback path. */
  read(lba: number, buf: Uint8Array, done: IoDone): void {
    this.#io(false, lba, buf, done);
  }

  /** Write through the namespace's callback path; FUA as a write followed by a Flush. */
  write(lba: number, buf: Uint8Array, fua: boolean, done: IoDone): void {
    const m = this.media;
    this.#io(true, lba, buf, fua && this.vwc ? (sf) => (sf !== 0 ? done(sf) : m.flush(done)) : done);
  }

  /**
   * Submit on the namespace's callback path with the completion wrapper
   * cached per `done` (callers that reuse their callbacks, as the target's
   * per-command contexts do, allocate nothing per IO); IO that finds every
   * queue slot taken, or the queue held for a reset, waits here, in order,
   * until a completion frees a slot or {@link retryWaiting}.
   */
  #io(write: boolean, lba: number, buf: Uint8Array, done: IoDone): void {
    let cb = this.#cbs.get(done);
    if (cb === undefined) {
      cb = (err) => {
        done(err === null ? 0 : statusFieldOf(err));
        if (this.#waitHead < this.#wait.length) this.#drain();
      };
      this.#cbs.set(done, cb);
    }
    if (this.#waitHead === this.#wait.length) {
      try {
        if (write ? this.media.ns.submitWrite(lba, buf, cb) : this.media.ns.submitRead(lba, buf, cb)) return;
      } catch (e) {
        return done(statusFieldOf(e));
      }
    }
    this.#wait.push({ write, lba, buf, done });
  }

  retryWaiting(): void {
    if (this.#waitHead < this.#wait.length) this.#drain();
  }

  #drain(): void {
    const w = this.#wait, ns = this.media.ns;
    while (this.#waitHead < w.length) {
      const x = w[this.#waitHead];
      const cb = this.#cbs.get(x.done)!;
      try {
        if (!(x.write ? ns.submitWrite(x.lba, x.buf, cb) : ns.submitRead(x.lba, x.buf, cb))) return;
      } catch (e) {
        this.#waitHead++;
        x.done(statusFieldOf(e));
        continue;
      }
      this.#waitHead++;
    }
    w.length = 0;
    this.#waitHead = 0;
  }

  /** Release the buffers (and the device if owned). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#pool.close();
    if (this.#owns) await this.#dev.close();
  }
}

/** lib/sim media (memory or a file) as a backend: synchronous copies, completions at once. */
export class MediaBackend implements BlockBackend {
  /** The name. */
  readonly name: string;
  /** Bytes per block. */
  readonly blockSize: number;
  /** Blocks. */
  readonly blockCount: number;
  /** Largest transfer. */
  readonly maxTransfer: number;
  /** Writes are not cached by the target. */
  readonly vwc = true;
  /** No backing controller. */
  readonly idCtrl = null;
  /** The media itself (synchronous: the model runs its commands inline). */
  readonly media: Media;
  /** The file behind the media, if any (a target Worker opens it again in its thread). */
  readonly file: string | null;
  readonly #media: Media;
  readonly #pool = new BufferPool((n) => new Uint8Array(n), () => {}, 64);

  /** Serve `media` in blocks of `blockSize`; `file`: the path of a FileMedia, so Workers can open it too. */
  constructor(media: Media, blockSize: number, name = "media", maxTransfer = 1 << 20, file: string | null = null) {
    this.#media = media;
    this.file = file;
    this.media = media;
    this.blockSize = blockSize;
    this.blockCount = Math.floor(media.size / blockSize);
    this.maxTransfer = maxTransfer;
    this.name = name;
  }

  /** A plain buffer. */
  alloc(bytes: number): Uint8Array {
    return this.#pool.take(bytes);
  }

  /** Back to the pool. */
  free(buf: Uint8Array): void {
    this.#pool.give(buf);
  }

  /** Copy out. */
  read(lba: number, buf: Uint8Array, done: IoDone): void {
    let sf = 0;
    try {
      this.#media.read(lba * this.blockSize, buf);
    } catch {
      sf = Status.INTERNAL_ERROR;
    }
    done(sf);
  }

  /** Copy in. */
  write(lba: number, buf: Uint8Array, _fua: boolean, done: IoDone): void {
    let sf = 0;
    try {
      this.#media.write(lba * this.blockSize, buf);
    } catch {
      sf = Status.INTERNAL_ERROR;
    }
    done(sf);
  }

  /** Close the media. */
  close(): Promise<void> {
    this.#media.close();
    return Promise.resolve();
  }
}
