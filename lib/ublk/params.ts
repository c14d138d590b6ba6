/**
 * What the kernel's block layer is told about a tsnvme namespace (ublk's
 * SET_PARAMS), and how NVMe outcomes become the -errno a ublk request
 * completes with. Pure functions: no device needed.
 * @module
 */
import { InvalidArgumentError, type NvmeError, NvmeStatusError } from "../nvme/errors.ts";
import { ParamAttr, ParamsOff, ParamType } from "./uapi.ts";

/** The controller facts the parameters derive from (NVMeDev.info has them). */
export interface UblkControllerFacts {
  /** Largest transfer per command, bytes (from MDTS). */
  maxTransferBytes: number;
  /** Optional NVM Command Support (Identify Controller ONCS). */
  oncs: number;
  /** Volatile write cache present. */
  vwc: boolean;
}

/** The namespace facts the parameters derive from (Namespace.info has them). */
export interface UblkNamespaceFacts {
  /** Bytes per logical block. */
  blockSize: number;
  /** Size in logical blocks. */
  blockCount: bigint;
}

/** ublk_params as this server sets them (basic and discard parts). */
export interface UblkParams {
  /** ParamAttr bits. */
  attrs: number;
  /** log2 of the logical block size. */
  logicalBsShift: number;
  /** log2 of the physical block size. */
  physicalBsShift: number;
  /** log2 of the optimal IO size. */
  ioOptShift: number;
  /** log2 of the minimum IO size. */
  ioMinShift: number;
  /** Largest request, 512-byte sectors. */
  maxSectors: number;
  /** Capacity, 512-byte sectors. */
  devSectors: bigint;
  /** Discard granularity, bytes (0: no discard part). */
  discardGranularity: number;
  /** Largest discard, sectors (0: no discard). */
  maxDiscardSectors: number;
  /** Largest write zeroes, sectors (0: none). */
  maxWriteZeroesSectors: number;
}

/** ONCS bits this server maps requests onto. */
const ONCS_DSM = 1 << 2;
const ONCS_WRITE_ZEROES = 1 << 3;
/** Blocks one DSM range or Write Zeroes command covers at most here (Write Zeroes: 16-bit NLB). */
const MAX_DISCARD_BLOCKS = 1 << 22;
const MAX_WZ_BLOCKS = 1 << 16;

/**
 * The parameters for a namespace: capacity and block sizes from the
 * namespace, max sectors from `maxIoBytes` (at most the controller's MDTS),
 * discard from DSM support and write zeroes from ONCS, a volatile cache and
 * FUA when the controller has a write cache.
 */
export function ublkParams(ctrl: UblkControllerFacts, ns: UblkNamespaceFacts, maxIoBytes: number): UblkParams {
  const bs = ns.blockSize;
  const shift = Math.log2(bs);
  if (!Number.isInteger(shift) || shift < 9 || shift > 12) {
    throw new InvalidArgumentError(`block size ${bs} cannot be a ublk logical block size (512 to 4096, a power of two)`);
  }
  if (!Number.isSafeInteger(maxIoBytes) || maxIoBytes < bs || maxIoBytes % bs !== 0) {
    throw new InvalidArgumentError(`maxIoBytes must be a positive multiple of the block size ${bs}, got ${String(maxIoBytes)}`);
  }
  const io = Math.min(maxIoBytes, ctrl.maxTransferBytes);
  const spb = bs / 512;
  const dsm = (ctrl.oncs & ONCS_DSM) !== 0;
  const wz = (ctrl.oncs & ONCS_WRITE_ZEROES) !== 0;
  return {
    attrs: ctrl.vwc ? ParamAttr.VOLATILE_CACHE | ParamAttr.FUA : 0,
    logicalBsShift: shift,
    physicalBsShift: shift,
    ioOptShift: shift,
    ioMinShift: shift,
    maxSectors: Math.floor(io / 512),
    devSectors: ns.blockCount * BigInt(spb),
    discardGranularity: dsm || wz ? bs : 0,
    maxDiscardSectors: dsm ? MAX_DISCARD_BLOCKS * spb : 0,
    maxWriteZeroesSectors: wz ? MAX_WZ_BLOCKS * spb : 0,
  };
}

/** Encode `p` as struct ublk_params for SET_PARAMS. */
export function encodeParams(p: UblkParams, out: Uint8Array = new Uint8Array(ParamsOff.SIZE)): Uint8Array {
  const v = new DataView(out.buffer, out.byteOffset, ParamsOff.SIZE);
  out.fill(0, 0, ParamsOff.SIZE);
  const O = ParamsOff;
  const discard = p.discardGranularity > 0;
  v.setUint32(O.LEN, O.SIZE, true);
  v.setUint32(O.TYPES, ParamType.BASIC | (discard ? ParamType.DISCARD : 0), true);
  v.setUint32(O.ATTRS, p.attrs, true);
  v.setUint8(O.LOGICAL_BS_SHIFT, p.logicalBsShift);
  v.setUint8(O.PHYSICAL_BS_SHIFT, p.physicalBsShift);
  v.setUint8(O.IO_OPT_SHIFT, p.ioOptShift);
  v.setUint8(O.IO_MIN_SHIFT, p.ioMinShift);
  v.setUint32(O.MAX_SECTORS, p.maxSectors, true);
  v.setBigUint64(O.DEV_SECTORS, p.devSectors, true);
  if (discard) {
    v.setUint32(O.DISCARD_GRANULARITY, p.discardGranularity, true);
    v.setUint32(O.MAX_DISCARD_SECTORS, p.maxDiscardSectors, true);
    v.setUint32(O.MAX_WRITE_ZEROES_SECTORS, p.maxWriteZeroesSectors, true);
    // The kernel takes one discard range per request.
    v.setUint16(O.MAX_DISCARD_SEGMENTS, 1, true);
  }
  return out;
}

/** Decode struct ublk_params (GET_PARAMS). */
export function decodeParams(b: Uint8Array): UblkParams {
  const v = new DataView(b.buffer, b.byteOffset, ParamsOff.SIZE);
  const O = ParamsOff;
  return {
    attrs: v.getUint32(O.ATTRS, true),
    logicalBsShift: v.getUint8(O.LOGICAL_BS_SHIFT),
    physicalBsShift: v.getUint8(O.PHYSICAL_BS_SHIFT),
    ioOptShift: v.getUint8(O.IO_OPT_SHIFT),
    ioMinShift: v.getUint8(O.IO_MIN_SHIFT),
    maxSectors: v.getUint32(O.MAX_SECTORS, true),
    devSectors: v.getBigUint64(O.DEV_SECTORS, true),
    discardGranularity: v.getUint32(O.DISCARD_GRANULARITY, true),
    maxDiscardSectors: v.getUint32(O.MAX_DISCARD_SECTORS, true),
    maxWriteZeroesSectors: v.getUint32(O.MAX_WRITE_ZEROES_SECTORS, true),
  };
}

/** Linux errno values a ublk request may complete with. */
export const Errno = {
  EIO: 5,
  ENODATA: 61,
  ENOSPC: 28,
  EOPNOTSUPP: 95,
  EREMOTEIO: 121,
} as const;

/** Retries of one request, as Linux's nvme_max_retries (default 5). */
export const MAX_RETRIES = 5;

/**
 * What becomes of a failed NVMe command, as Linux's nvme_decide_disposition
 * and nvme_error_status have it: a status without DNR, a timeout or a
 * controller reset is retried (up to {@link MAX_RETRIES}); anything else
 * completes the request with the -errno blk_status_to_errno gives.
 * Returns 0 for "retry", else the negative errno.
 */
export function disposition(err: NvmeError, retries: number): number {
  if (err instanceof NvmeStatusError) {
    const s = err.status;
    if (!s.dnr && retries < MAX_RETRIES) return 0;
    return -statusErrno(s.code);
  }
  if ((err.code === "ETIMEDOUT" || err.code === "ERESET") && retries < MAX_RETRIES) return 0;
  return -Errno.EIO;
}

/** nvme_error_status: an NVMe status ((SCT << 8) | SC) as a positive errno. */
export function statusErrno(code: number): number {
  switch (code) {
    case 0x081: // Capacity Exceeded
      return Errno.ENOSPC;
    case 0x080: // LBA Out of Range
      return Errno.EREMOTEIO;
    case 0x001: // Invalid Command Opcode
    case 0x002: // Invalid Field in Command
    case 0x00b: // Invalid Namespace or Format
    case 0x180: // Conflicting Attributes
      return Errno.EOPNOTSUPP;
    case 0x082: // Namespace is Write Protected
    case 0x280: // Write Fault
    case 0x281: // Unrecovered Read Error
    case 0x282: // End-to-end Guard Check Error
    case 0x283: // End-to-end Application Tag Check Error
    case 0x284: // End-to-end Reference Tag Check Error
    case 0x286: // Access Denied
    case 0x287: // Deallocated or Unwritten Logical Block
      return Errno.ENODATA;
    default:
      return Errno.EIO;
  }
}
