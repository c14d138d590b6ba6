/**
 * Media backed by a namespace of an open NVMeDev (VFIO, the software
 * controller, or NVMe/TCP): the second kind of media of the controller
 * model, so a target exports a namespace of a real controller. Asynchronous:
 * the model keeps commands on it pending and completes them through its
 * front end. Data goes straight through: a buffer from the device's
 * `allocBuffer` (see {@link NamespaceMedia.alloc}) is DMA'd in place,
 * any other buffer takes the device's bounce path.
 *
 * The device is described structurally ({@link BackingDevice}: any NVMeDev
 * fits), so importing this module loads no VFIO or FFI code.
 * @module
 */
import type { AsyncMedia, MediaDone } from "./media.ts";
import type { ModelIdentity, ModelNamespace, ModelOptions } from "./engine.ts";
import { statusFieldOf as statusOf } from "../nvme/errors.ts";
import { SubmitBacklog } from "../io/backlog.ts";

/** What NamespaceMedia and the target's DevBackend use of a namespace (lib/io's Namespace of an open NVMeDev fits). */
export interface BackingNamespace {
  /** Bytes per logical block. */
  readonly blockSize: number;
  /** Size in blocks. */
  readonly blockCount: number;
  /** Callback read; false, sending nothing, when no queue slot is free. */
  submitRead(lba: number, buf: Uint8Array, done: (err: unknown) => void): boolean;
  /** Callback write; false when no queue slot is free. */
  submitWrite(lba: number, buf: Uint8Array, done: (err: unknown) => void): boolean;
  /** Write Zeroes (deallocating the blocks when asked). */
  writeZeroes(lba: number, blocks: number, opts?: { deallocate?: boolean }): Promise<void>;
  /** Flush. */
  flush(): Promise<void>;
}

/** What this module uses of an open device (an NVMeDev fits). */
export interface BackingDevice {
  /** Identity and limits. */
  readonly info: {
    readonly serial: string;
    readonly model: string;
    readonly firmware: string;
    readonly vid: number;
    readonly ssvid: number;
    readonly maxTransferBytes: number;
    readonly vwc: boolean;
  };
  /** Raw Identify Controller data. */
  readonly controller: { readonly identifyData: Uint8Array };
  /** True once closed. */
  readonly closed: boolean;
  /** An active namespace. */
  ns(nsid: number): BackingNamespace;
  /** Active namespace IDs. */
  nsList(): number[];
  /** DMA memory. */
  allocBuffer(bytes: number): Uint8Array;
  /** Release DMA memory. */
  freeBuffer(buf: Uint8Array): void;
}

/**
 * A namespace of an open NVMeDev as {@link AsyncMedia}. Offsets and lengths
 * are whole blocks of the namespace. Reads and writes take the namespace's
 * callback path (no Promise per IO); when every queue slot is taken they wait
 * in a backlog that drains as completions come.
 */
export class NamespaceMedia implements AsyncMedia {
  /** Asynchronous media. */
  readonly async = true as const;
  /** Size in bytes. */
  readonly size: number;
  /** Logical block size of the backing namespace. */
  readonly blockSize: number;
  /** The backing device (not owned: {@link close} leaves it open). */
  readonly dev: BackingDevice;
  /** The backing namespace. */
  readonly ns: BackingNamespace;
  readonly #shift: number;
  readonly #backlog = new SubmitBacklog();
  readonly #fail: (done: MediaDone, e: unknown) => void = (done, e) => done(statusOf(e));

  /** Back media with namespace `nsid` of `dev`. */
  constructor(dev: BackingDevice, nsid: number) {
    this.dev = dev;
    this.ns = dev.ns(nsid);
    this.blockSize = this.ns.blockSize;
    this.size = this.ns.blockCount * this.ns.blockSize;
    this.#shift = Math.log2(this.blockSize);
  }

  /** DMA memory of the backing device: IO from and to it needs no copy. */
  alloc(bytes: number): Uint8Array {
    return this.dev.allocBuffer(bytes);
  }

  /** Release a buffer from {@link alloc}. */
  free(buf: Uint8Array): void {
    if (!this.dev.closed) this.dev.freeBuffer(buf);
  }

  #lba(off: number): number {
    if (off % this.blockSize) throw new RangeError(`offset ${off} is not a multiple of the block size ${this.blockSize}`);
    return off >>> 0 === off ? off >>> this.#shift : Math.floor(off / this.blockSize);
  }

  #cb(done: MediaDone): (err: unknown) => void {
    return (err) => {
      done(err === null ? 0 : statusOf(err));
      this.#backlog.drain();
    };
  }

  /** Read whole blocks at byte offset `off` into `dst`. */
  read(off: number, dst: Uint8Array, done: MediaDone): void {
    this.#rw(false, off, dst, done);
  }

  /** Write whole blocks at byte offset `off`. */
  write(off: number, src: Uint8Array, done: MediaDone): void {
    this.#rw(true, off, src, done);
  }

  #rw(write: boolean, off: number, buf: Uint8Array, done: MediaDone): void {
    const cb = this.#cb(done);
    let lba: number;
    try {
      lba = this.#lba(off);
    } catch (e) {
      return this.#fail(done, e);
    }
    const ns = this.ns;
    this.#backlog.submit(() => write ? ns.submitWrite(lba, buf, cb) : ns.submitRead(lba, buf, cb), (e) => this.#fail(done, e));
  }

  /** Zero whole blocks with Write Zeroes on the backing namespace. */
  zero(off: number, len: number, done: MediaDone): void {
    let p: Promise<void>;
    try {
      p = this.ns.writeZeroes(this.#lba(off), len / this.blockSize);
    } catch (e) {
      return this.#fail(done, e);
    }
    p.then(() => done(0), (e) => done(statusOf(e)));
  }

  /** Flush the backing namespace. */
  flush(done: MediaDone): void {
    this.ns.flush().then(() => done(0), (e) => done(statusOf(e)));
  }

  /** Nothing of its own to release: the device stays open. */
  close(): void {}
}

/**
 * Namespace `nsid` of `dev` as a {@link ModelNamespace} for the controller
 * model (block size checked: the model serves 512 and 4096).
 */
export function namespaceOf(dev: BackingDevice, nsid: number): ModelNamespace {
  const media = new NamespaceMedia(dev, nsid);
  if (media.blockSize !== 512 && media.blockSize !== 4096) {
    throw new RangeError(`namespace ${nsid}: block size ${media.blockSize} is not one the model serves (512 or 4096)`);
  }
  return { media, blockSize: media.blockSize };
}

/** Identify Controller offset of the IEEE OUI (3 bytes). */
const ID_IEEE = 73;

/**
 * The backing controller's identity for Identify passthrough: VID, SSVID,
 * serial, model, firmware revision and IEEE OUI, so a target reports the
 * controller it exports.
 */
export function identityOf(dev: BackingDevice): ModelIdentity {
  const raw = dev.controller.identifyData;
  return {
    vid: dev.info.vid,
    ssvid: dev.info.ssvid,
    serial: dev.info.serial,
    model: dev.info.model,
    firmware: dev.info.firmware,
    ieee: raw.slice(ID_IEEE, ID_IEEE + 3),
  };
}

/**
 * Model options that pass an open NVMeDev through: its identity
 * ({@link identityOf}), its namespaces as {@link NamespaceMedia} (all active
 * ones, or `nsids`), MDTS no larger than the driver's transfer size on it,
 * its volatile write cache, and no sanitize (that stays the backing
 * controller's). The serial is the backing one; give front ends a different
 * one where two models must be told apart.
 */
export function modelOptionsOf(dev: BackingDevice, nsids: number[] = dev.nsList()): ModelOptions {
  const identity = identityOf(dev);
  const pages = Math.max(1, Math.floor(dev.info.maxTransferBytes / 4096));
  return {
    serial: identity.serial ?? "",
    identity,
    namespaces: nsids.map((id) => namespaceOf(dev, id)),
    mdts: Math.floor(Math.log2(pages)),
    vwc: dev.info.vwc,
    sanicap: 0,
  };
}
