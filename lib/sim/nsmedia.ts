/**
 * Media backed by a namespace of an open NVMeDev (VFIO, the software
 * controller, or NVMe/TCP): the second kind of media of the controller
 * model, so a target exports a namespace of a real controller. Asynchronous:
 * the model keeps commands on it pending and completes them through its
 * front end. Data goes straight through: a buffer from the device's
 * `allocBuffer` (see {@link NamespaceMedia.allocBuffer}) is DMA'd in place,
 * any other buffer takes the device's bounce path.
 *
 * Types only come from lib/dev.ts, so importing this module loads no VFIO or
 * FFI code.
 * @module
 */
import type { NVMeDev } from "../dev.ts";
import type { Namespace } from "../io/namespace.ts";
import type { AsyncMedia } from "./media.ts";
import type { ModelIdentity, ModelNamespace, ModelOptions } from "./engine.ts";

/** A namespace of an open NVMeDev as {@link AsyncMedia}. Offsets and lengths are whole blocks of the namespace. */
export class NamespaceMedia implements AsyncMedia {
  /** Asynchronous media. */
  readonly async = true as const;
  /** Size in bytes. */
  readonly size: number;
  /** Logical block size of the backing namespace. */
  readonly blockSize: number;
  /** The backing device (not owned: {@link close} leaves it open). */
  readonly dev: NVMeDev;
  /** The backing namespace. */
  readonly ns: Namespace;
  readonly #shift: number;

  /** Back media with namespace `nsid` of `dev`. */
  constructor(dev: NVMeDev, nsid: number) {
    this.dev = dev;
    this.ns = dev.ns(nsid);
    this.blockSize = this.ns.blockSize;
    this.size = this.ns.blockCount * this.ns.blockSize;
    this.#shift = Math.log2(this.blockSize);
  }

  /** DMA memory of the backing device, for front ends that want IO without a copy. */
  allocBuffer(bytes: number): Uint8Array {
    return this.dev.allocBuffer(bytes);
  }

  /** Release a buffer from {@link allocBuffer}. */
  freeBuffer(buf: Uint8Array): void {
    this.dev.freeBuffer(buf);
  }

  #lba(off: number): number {
    if (off % this.blockSize) throw new RangeError(`offset ${off} is not a multiple of the block size ${this.blockSize}`);
    return off >>> 0 === off ? off >>> this.#shift : Math.floor(off / this.blockSize);
  }

  /** Read whole blocks at byte offset `off` into `dst`. */
  read(off: number, dst: Uint8Array): Promise<void> {
    try {
      return this.ns.read(this.#lba(off), dst);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Write whole blocks at byte offset `off`. */
  write(off: number, src: Uint8Array): Promise<void> {
    try {
      return this.ns.write(this.#lba(off), src);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Zero whole blocks with Write Zeroes on the backing namespace. */
  zero(off: number, len: number): Promise<void> {
    try {
      return this.ns.writeZeroes(this.#lba(off), len / this.blockSize);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** Flush the backing namespace. */
  flush(): Promise<void> {
    return this.ns.flush();
  }

  /** Nothing of its own to release: the device stays open. */
  close(): void {}
}

/**
 * Namespace `nsid` of `dev` as a {@link ModelNamespace} for the controller
 * model (block size checked: the model serves 512 and 4096).
 */
export function namespaceOf(dev: NVMeDev, nsid: number): ModelNamespace {
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
export function identityOf(dev: NVMeDev): ModelIdentity {
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
export function modelOptionsOf(dev: NVMeDev, nsids: number[] = dev.nsList()): ModelOptions {
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
