/**
 * The software controller's SGL walker: what a PCIe controller does with a
 * command whose PSDT selects SGLs. It follows the Data Block, Bit Bucket,
 * Segment and Last Segment descriptors (lib/nvme/sgl.ts's layout) through
 * host memory and hands each data piece to the front end's port, or fails
 * with the status a controller gives a bad SGL (Invalid SGL Segment
 * Descriptor, Invalid Number of SGL Descriptors, Data SGL Length Invalid,
 * SGL Descriptor Type Invalid), as QEMU's nvme_map_sgl does.
 * @module
 */
import {
  Psdt,
  psdtOf,
  SGL_DESC_BYTES,
  sglAddressAt,
  sglLengthAt,
  SglsBit,
  SglsSupport,
  SglStatus,
  SglSubtype,
  sglSubtypeAt,
  sglSupported,
  SglType,
  sglTypeAt,
} from "../nvme/sgl.ts";
import { SqeDw } from "../nvme/command.ts";

/** Generic status Invalid Field in Command (SCT 0). */
const INVALID_FIELD = 0x02;
/** Generic status Data Transfer Error (SCT 0). */
const DATA_TRANSFER_ERROR = 0x04;
/** Most descriptors one command may use (a segment chain pointing at itself must end). */
const MAX_DESCRIPTORS = 1 << 16;

/** What the walker needs of the device: host memory as dwords, and IOVA translation. */
export interface SglHost {
  /** Host memory, as dwords. */
  readonly host32: Uint32Array;
  /** Offset in host memory of `len` bytes at `iova`, or -1 (outside, or not mapped). */
  off(iova: number, len: number): number;
}

/**
 * Walk the SGL of `cmd` for `len` bytes. `piece(iova, n)` receives each data
 * piece in order (iova -1: a bit bucket, `n` bytes the device discards) and
 * returns false when the memory cannot be reached. Returns 0 or the status
 * code (SCT 0) to fail the command with. `sgls` is what the controller
 * advertises (SGLS); `admin` commands may not use SGLs on PCIe. PSDT 10b
 * (metadata in an SGL too) is taken when SGLS offers it.
 */
export function walkSgl(
  h: SglHost,
  cmd: Uint32Array,
  len: number,
  sgls: number,
  admin: boolean,
  piece: (iova: number, n: number) => boolean,
): number {
  const psdt = psdtOf(cmd[0]);
  if (admin || !sglSupported(sgls)) return INVALID_FIELD;
  if (psdt !== Psdt.SGL_MPTR_CONTIGUOUS && (psdt !== Psdt.SGL_MPTR_SGL || (sgls & SglsBit.MPTR_SGL) === 0)) return INVALID_FIELD;
  return walkFrom(h, cmd, SqeDw.PRP1_LO, len, sgls, (cmd[0] & 3) === 1, SglStatus.DATA_LENGTH_INVALID, piece);
}

/**
 * Walk the metadata SGL of `cmd` (PSDT 10b: MPTR holds the IOVA of one SGL
 * descriptor) for `len` bytes, as {@link walkSgl} walks the data; a length
 * that does not match is Metadata SGL Length Invalid; bit buckets are refused.
 */
export function walkMetadataSgl(
  h: SglHost,
  cmd: Uint32Array,
  len: number,
  sgls: number,
  piece: (iova: number, n: number) => boolean,
): number {
  if (psdtOf(cmd[0]) !== Psdt.SGL_MPTR_SGL || !sglSupported(sgls) || (sgls & SglsBit.MPTR_SGL) === 0) return INVALID_FIELD;
  const mptr = sglAddressAt(cmd, SqeDw.MPTR_LO);
  const at = h.off(mptr, SGL_DESC_BYTES);
  if (at < 0 || at % 4) return DATA_TRANSFER_ERROR;
  // Bit buckets are for data only: with their SGLS bit masked, one is SGL Descriptor Type Invalid.
  return walkFrom(h, h.host32, at >>> 2, len, sgls & ~SglsBit.BIT_BUCKET, (cmd[0] & 3) === 1, SglStatus.METADATA_LENGTH_INVALID, piece);
}

/** The walk behind both pointers: the first descriptor at dword `headDw` of `head`. */
function walkFrom(
  h: SglHost,
  head: Uint32Array,
  headDw: number,
  len: number,
  sgls: number,
  write: boolean,
  lengthInvalid: number,
  piece: (iova: number, n: number) => boolean,
): number {
  const excessOk = (sgls & SglsBit.EXCESS_LENGTH) !== 0;
  const bitBucketOk = (sgls & SglsBit.BIT_BUCKET) !== 0;
  let rem = len;

  /** One non-segment descriptor at dword `dw` of `u32`; 0 or a status. */
  const data = (u32: Uint32Array, dw: number): number => {
    const type = sglTypeAt(u32, dw);
    const dlen = sglLengthAt(u32, dw);
    if (type === SglType.BIT_BUCKET) {
      if (!bitBucketOk) return SglStatus.DESCRIPTOR_TYPE_INVALID;
      // A bit bucket in a write describes nothing to send (as QEMU): it is skipped.
      if (write || dlen === 0) return 0;
    } else if (type !== SglType.DATA_BLOCK || sglSubtypeAt(u32, dw) !== SglSubtype.ADDRESS) {
      return type === SglType.SEGMENT || type === SglType.LAST_SEGMENT
        ? SglStatus.INVALID_DESCRIPTOR_COUNT
        : SglStatus.DESCRIPTOR_TYPE_INVALID;
    }
    if (dlen === 0) return 0;
    if (rem === 0) return excessOk ? 0 : lengthInvalid;
    const n = Math.min(rem, dlen);
    if (dlen > rem && !excessOk) return lengthInvalid;
    if (!piece(type === SglType.BIT_BUCKET ? -1 : sglAddressAt(u32, dw), n)) return DATA_TRANSFER_ERROR;
    rem -= n;
    return 0;
  };

  // The first descriptor lives in the SQE's DPTR.
  const t0 = sglTypeAt(head, headDw);
  if (t0 !== SglType.SEGMENT && t0 !== SglType.LAST_SEGMENT) {
    const st = data(head, headDw);
    if (st) return st;
    return rem === 0 ? 0 : lengthInvalid;
  }
  let segU32: Uint32Array = head, segDw: number = headDw;
  let seen = 0;
  for (;;) {
    const type = sglTypeAt(segU32, segDw);
    const segLen = sglLengthAt(segU32, segDw);
    if (segLen === 0 || segLen % SGL_DESC_BYTES) return SglStatus.INVALID_SEGMENT_DESCRIPTOR;
    const last = type === SglType.LAST_SEGMENT;
    const count = segLen / SGL_DESC_BYTES;
    if ((seen += count) > MAX_DESCRIPTORS) return SglStatus.INVALID_DESCRIPTOR_COUNT;
    const base = h.off(sglAddressAt(segU32, segDw), segLen);
    if (base < 0 || base % 4) return DATA_TRANSFER_ERROR;
    const u32 = h.host32, b = base >>> 2;
    for (let i = 0; i < count - 1; i++) {
      const st = data(u32, b + i * 4);
      if (st) return st;
    }
    const lastDw = b + (count - 1) * 4;
    const lt = sglTypeAt(u32, lastDw);
    if (lt === SglType.SEGMENT || lt === SglType.LAST_SEGMENT) {
      // A Last Segment's segment may not point any further.
      if (last) return SglStatus.INVALID_SEGMENT_DESCRIPTOR;
      segU32 = u32;
      segDw = lastDw;
      continue;
    }
    // A segment that ends with data ends the SGL, Segment or Last Segment alike (as QEMU).
    const st = data(u32, lastDw);
    if (st) return st;
    return rem === 0 ? 0 : lengthInvalid;
  }
}

/** SGLS the software controller advertises: any alignment, bit buckets and metadata SGLs (PSDT 10b), or 0 (PRPs only) with `sgl=0`. */
export function simSgls(sgl: boolean | undefined): number {
  return sgl === false ? 0 : SglsSupport.ANY_ALIGNMENT | SglsBit.BIT_BUCKET | SglsBit.MPTR_SGL;
}
