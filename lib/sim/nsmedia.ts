/**
 * Media backed by a namespace of an open NVMeDev (VFIO, the software
 * controller, or NVMe/TCP): the second kind of media of the controller
 * model, so a target exports a namespace of a real controller, and the one
 * adapter of such a namespace (lib/target's DevBackend runs its Read/Write
 * fast path on it too). Asynchronous:
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
import { decodeIdentifyController, IdCtrlOffset, type IdentifyController } from "../nvme/identify.ts";

/** What {@link NamespaceMedia} uses of a namespace (lib/io's Namespace of an open NVMeDev fits). */
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

/**
 * What the adapters use of an open device (structural: any NVMeDev fits, and
 * no VFIO or FFI code loads with this module): the model's media here and
 * the target's DevBackend (lib/target/backend.ts) alike.
 */
export interface BackingDevice {
  /** What was opened ("0000:00:04.0", "sim#1", "tcp://..."), for names in logs. */
  readonly target: string;
  /** Identity and limits. */
  readonly info: {
    readonly serial: string;
    readonly model: string;
    readonly firmware: string;
    readonly vid: number;
    readonly ssvid: number;
    readonly maxTransferBytes: number;
    readonly vwc: boolean;
    readonly oncs: number;
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
  /** Close the device (only its owner does). */
  close(): Promise<void>;
}

/**
 * A namespace of an open NVMeDev as {@link AsyncMedia}: the one adapter both
 * the controller model (byte offsets, through {@link read}/{@link write}) and
 * the NVMe/TCP target (blocks, through {@link readBlocks}/{@link writeBlocks})
 * use. Offsets and lengths are whole blocks of the namespace. Reads and
 * writes take the namespace's callback path (no Promise per IO); when every
 * queue slot is taken they wait in a backlog that drains as completions come.
 */
export class NamespaceMedia implements AsyncMedia {
  /** Asynchronous media. */
  readonly async = true as const;
  /** Size in bytes. */
  readonly size: number;
  /** Logical block size of the backing namespace. */
  readonly blockSize: number;
  /** Size in blocks. */
  readonly blockCount: number;
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
    this.blockCount = this.ns.blockCount;
    this.size = this.ns.blockCount * this.ns.blockSize;
    this.#shift = Math.log2(this.blockSize);
  }

  /** DMA memory of the backing device: IO from and to it needs no copy. */
  alloc(bytes: number): Uint8Array {
    return this.dev.allocBuffer(bytes);
  }

  /** Release a buffer from {@link alloc} (a closed device has released it already). */
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
    this.#byOffset(false, off, dst, done);
  }

  /** Write whole blocks at byte offset `off`. */
  write(off: number, src: Uint8Array, done: MediaDone): void {
    this.#byOffset(true, off, src, done);
  }

  /** Read `dst.length` bytes (whole blocks) from block `lba`. */
  readBlocks(lba: number, dst: Uint8Array, done: MediaDone): void {
    const cb = this.#cb(done), ns = this.ns;
    this.#backlog.submit(() => ns.submitRead(lba, dst, cb), (e) => this.#fail(done, e));
  }

  /** Write `src` (whole blocks) at block `lba`. */
  writeBlocks(lba: number, src: Uint8Array, done: MediaDone): void {
    const cb = this.#cb(done), ns = this.ns;
    this.#backlog.submit(() => ns.submitWrite(lba, src, cb), (e) => this.#fail(done, e));
  }

  #byOffset(write: boolean, off: number, buf: Uint8Array, done: MediaDone): void {
    let lba: number;
    try {
      lba = this.#lba(off);
    } catch (e) {
      return this.#fail(done, e);
    }
    if (write) this.writeBlocks(lba, buf, done);
    else this.readBlocks(lba, buf, done);
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

/**
 * A backing controller's identity from its raw Identify Controller data, for
 * Identify passthrough: VID, SSVID, serial, model, firmware revision and
 * IEEE OUI, so a front end (the model, the target) reports the controller it
 * exports.
 */
export function identityFromIdCtrl(raw: Uint8Array): ModelIdentity {
  return identityFrom(decodeIdentifyController(raw), raw);
}

/** The identity of an open device's controller: its decoded info and the IEEE OUI of its Identify data (nothing decoded again). */
export function identityOf(dev: BackingDevice): ModelIdentity {
  return identityFrom(dev.info, dev.controller.identifyData);
}

function identityFrom(c: Pick<IdentifyController, "vid" | "ssvid" | "serial" | "model" | "firmware">, raw: Uint8Array): ModelIdentity {
  const { vid, ssvid, serial, model, firmware } = c;
  return { vid, ssvid, serial, model, firmware, ieee: raw.slice(IdCtrlOffset.IEEE, IdCtrlOffset.IEEE + 3) };
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
