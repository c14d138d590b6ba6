/**
 * Scatter Gather Lists (SGLs) for NVMe over PCIe: the 16-byte descriptor
 * layout (data block, bit bucket, segment, last segment), the PSDT field of
 * CDW0 that selects them instead of PRPs, the SGL status codes, and writers
 * that fill an SQE's data pointer and a command slot's preallocated list
 * memory without allocating (as PRP lists are, lib/nvme/prp.ts). The
 * software controller decodes the same layout (lib/sim/sgl.ts).
 * @module
 */
import { hi32, lo32, SqeDw } from "./command.ts";
import { InvalidArgumentError } from "./errors.ts";

/** Bytes of one SGL descriptor. */
export const SGL_DESC_BYTES: number = 16;

/** Byte offsets in an SGL descriptor. */
export const SglDescOffset = {
  /** Address (64-bit): data, or the next segment. */
  ADDRESS: 0,
  /** Length in bytes (32-bit). */
  LENGTH: 8,
  /** Descriptor identifier: type in bits 7:4, sub type in bits 3:0. */
  IDENTIFIER: 15,
} as const;

/** SGL descriptor types (identifier bits 7:4). */
export const SglType = {
  DATA_BLOCK: 0x0,
  BIT_BUCKET: 0x1,
  SEGMENT: 0x2,
  LAST_SEGMENT: 0x3,
  KEYED_DATA_BLOCK: 0x4,
  TRANSPORT_DATA_BLOCK: 0x5,
} as const;

/** SGL descriptor sub types (identifier bits 3:0). */
export const SglSubtype = { ADDRESS: 0x0, OFFSET: 0x1 } as const;

/** PRP or SGL for Data Transfer (CDW0 bits 15:14). */
export const Psdt = {
  PRP: 0,
  /** SGL; MPTR is the address of a contiguous metadata buffer. */
  SGL_MPTR_CONTIGUOUS: 1,
  /** SGL; MPTR is the address of a metadata SGL segment. */
  SGL_MPTR_SGL: 2,
} as const;

/** Bit position of PSDT in CDW0. */
export const PSDT_SHIFT: number = 14;
/** PSDT's bits in CDW0. */
export const PSDT_MASK: number = 3 << 14;

/** SGLS support field values (Identify Controller SGLS bits 1:0). */
export const SglsSupport = {
  NONE: 0,
  /** Supported, no alignment or granularity requirement. */
  ANY_ALIGNMENT: 1,
  /** Supported, data blocks must be dword aligned. */
  DWORD_ALIGNED: 2,
} as const;

/** SGLS bits beyond the support field. */
export const SglsBit = {
  /** Keyed SGL data block descriptors. */
  KEYED: 1 << 2,
  /** Bit bucket descriptors. */
  BIT_BUCKET: 1 << 16,
  /** Byte-aligned contiguous physical buffer of metadata. */
  MPTR_BYTE_ALIGNED: 1 << 17,
  /** An SGL longer than the data is accepted (the excess ignored). */
  EXCESS_LENGTH: 1 << 18,
  /** MPTR may hold one SGL descriptor (PSDT 10b). */
  MPTR_SGL: 1 << 19,
  /** The address field may be an offset. */
  OFFSET: 1 << 20,
} as const;

/** Generic status codes (SCT 0) a controller returns for a bad SGL. */
export const SglStatus = {
  INVALID_SEGMENT_DESCRIPTOR: 0x0d,
  INVALID_DESCRIPTOR_COUNT: 0x0e,
  DATA_LENGTH_INVALID: 0x0f,
  METADATA_LENGTH_INVALID: 0x10,
  DESCRIPTOR_TYPE_INVALID: 0x11,
  INVALID_CMB_USE: 0x12,
  OFFSET_INVALID: 0x16,
} as const;

/** True when SGLS (Identify Controller) says SGLs may carry data on this controller. */
export function sglSupported(sgls: number): boolean {
  return (sgls & 3) === SglsSupport.ANY_ALIGNMENT || (sgls & 3) === SglsSupport.DWORD_ALIGNED;
}

/** True when SGLS advertises bit bucket descriptors. */
export function sglBitBucket(sgls: number): boolean {
  return sglSupported(sgls) && (sgls & SglsBit.BIT_BUCKET) !== 0;
}

/** CDW0 with its PSDT field set to `psdt`. */
export function withPsdt(cdw0: number, psdt: number): number {
  return ((cdw0 & ~PSDT_MASK) | ((psdt & 3) << PSDT_SHIFT)) >>> 0;
}

/** The PSDT field of CDW0. */
export function psdtOf(cdw0: number): number {
  return (cdw0 >>> PSDT_SHIFT) & 3;
}

/** Write one descriptor at dword `dw` of `u32` (little endian host). */
export function writeSglDescriptor(u32: Uint32Array, dw: number, type: number, address: number, length: number, subtype: number = SglSubtype.ADDRESS): void {
  u32[dw] = lo32(address);
  u32[dw + 1] = hi32(address);
  u32[dw + 2] = length >>> 0;
  u32[dw + 3] = (((type & 0xf) << 4 | (subtype & 0xf)) << 24) >>> 0;
}

/** Type of the descriptor at dword `dw`. */
export function sglTypeAt(u32: Uint32Array, dw: number): number {
  return u32[dw + 3] >>> 28;
}

/** Sub type of the descriptor at dword `dw`. */
export function sglSubtypeAt(u32: Uint32Array, dw: number): number {
  return (u32[dw + 3] >>> 24) & 0xf;
}

/** Address of the descriptor at dword `dw`. */
export function sglAddressAt(u32: Uint32Array, dw: number): number {
  return u32[dw] + u32[dw + 1] * 0x1_0000_0000;
}

/** Length of the descriptor at dword `dw`. */
export function sglLengthAt(u32: Uint32Array, dw: number): number {
  return u32[dw + 2];
}

/** A decoded SGL descriptor (tools and tests; the hot paths read fields in place). */
export interface SglDescriptor {
  /** {@link SglType} value. */
  type: number;
  /** {@link SglSubtype} value. */
  subtype: number;
  /** Address (or offset). */
  address: number;
  /** Length in bytes. */
  length: number;
}

/** Decode the descriptor at dword `dw` of `u32`. */
export function decodeSglDescriptor(u32: Uint32Array, dw: number): SglDescriptor {
  return { type: sglTypeAt(u32, dw), subtype: sglSubtypeAt(u32, dw), address: sglAddressAt(u32, dw), length: sglLengthAt(u32, dw) };
}

/**
 * The SQE's data pointer as one SGL Data Block descriptor for `len` bytes at
 * `iova` (a contiguous buffer: no list memory). Sets DPTR only; PSDT is the
 * caller's (see {@link withPsdt}).
 */
export function writeSglData(sqe: Uint32Array, iova: number, len: number): void {
  writeSglDescriptor(sqe, SqeDw.PRP1_LO, SglType.DATA_BLOCK, iova, len);
}

/** Marks a bit bucket in the chunk list given to {@link writeSglChunks}: bytes the controller discards (reads). */
export const SGL_BIT_BUCKET: number = -1;

/**
 * Descriptors of list memory {@link writeSglChunks} needs for `n` chunks when
 * each segment holds at most `perSegment` descriptors (the last slot of a
 * full segment chains to the next).
 */
export function sglListDescriptors(n: number, perSegment: number = Infinity): number {
  if (n <= 1) return 0;
  if (perSegment < 2) throw new InvalidArgumentError("an SGL segment holds at least 2 descriptors");
  if (n <= perSegment) return n;
  // Every full segment but the last gives up one slot to the pointer to the next.
  const segments = Math.ceil((n - 1) / (perSegment - 1));
  return n + segments - 1;
}

/**
 * Describe `n` chunks (pairs in `chunks`: IOVA, length; an IOVA of
 * {@link SGL_BIT_BUCKET} for bytes to discard) as an SGL: one chunk is a Data
 * Block in the SQE; more go into `list` (a Uint32Array view of the command
 * slot's list memory at `listIova`), reached through a Last Segment
 * descriptor in the SQE, or through Segment descriptors when a segment may
 * hold only `perSegment` descriptors. Allocates nothing; throws when the
 * list memory is too small. PSDT is the caller's.
 */
export function writeSglChunks(
  sqe: Uint32Array,
  chunks: ArrayLike<number>,
  n: number,
  list: Uint32Array | null,
  listIova: number,
  perSegment: number = Infinity,
): void {
  writeSglAt(sqe, SqeDw.PRP1_LO, chunks, n, list, listIova, perSegment);
}

/** True when SGLS says MPTR may point at an SGL descriptor for the metadata (PSDT 10b). */
export function sglMetadataSupported(sgls: number): boolean {
  return sglSupported(sgls) && (sgls & SglsBit.MPTR_SGL) !== 0;
}

/**
 * A command's separate metadata as an SGL (PSDT 10b): MPTR holds the IOVA of
 * one descriptor, `head` (a 16-byte Uint32Array view of host memory at
 * `headIova`), which is a Data Block for one chunk, or a Last Segment (or a
 * chain of Segments, `perSegment`) into `list` at `listIova` for more. The
 * chunks are pairs (IOVA, length) as for {@link writeSglChunks}; bit buckets
 * are refused (metadata has no discard). Sets MPTR and PSDT 10b in `sqe`;
 * the data pointer must be an SGL too (PSDT 10b covers both). Allocates
 * nothing; throws when the list memory is too small.
 */
export function writeSglMetadata(
  sqe: Uint32Array,
  head: Uint32Array,
  headIova: number,
  chunks: ArrayLike<number>,
  n: number,
  list: Uint32Array | null = null,
  listIova: number = 0,
  perSegment: number = Infinity,
): void {
  if (head.length < 4) throw new InvalidArgumentError("the metadata SGL's first descriptor needs 16 bytes");
  if (headIova % 4) throw new InvalidArgumentError(`the metadata descriptor must be dword aligned (IOVA 0x${headIova.toString(16)})`);
  for (let k = 0; k < n; k++) {
    if (chunks[2 * k] === SGL_BIT_BUCKET) throw new InvalidArgumentError("metadata cannot go to a bit bucket");
  }
  writeSglAt(head, 0, chunks, n, list, listIova, perSegment);
  sqe[SqeDw.MPTR_LO] = lo32(headIova);
  sqe[SqeDw.MPTR_HI] = hi32(headIova);
  sqe[0] = withPsdt(sqe[0], Psdt.SGL_MPTR_SGL);
}

/** The SGL writer behind both pointers: the first descriptor at dword `dw` of `head`, the rest in `list`. */
function writeSglAt(
  head: Uint32Array,
  dw: number,
  chunks: ArrayLike<number>,
  n: number,
  list: Uint32Array | null,
  listIova: number,
  perSegment: number,
): void {
  if (n < 1) throw new InvalidArgumentError("an SGL needs at least one chunk");
  if (n === 1) {
    const a = chunks[0];
    if (a === SGL_BIT_BUCKET) writeSglDescriptor(head, dw, SglType.BIT_BUCKET, 0, chunks[1]);
    else writeSglDescriptor(head, dw, SglType.DATA_BLOCK, a, chunks[1]);
    return;
  }
  const need = sglListDescriptors(n, perSegment);
  if (list === null || list.length < need * 4) {
    throw new InvalidArgumentError(`SGL of ${n} chunks needs ${need} descriptors of list memory (the slot has ${list ? list.length >>> 2 : 0})`);
  }
  let idx = 0; // descriptor index in the list memory
  let left = n; // chunks still to describe
  let k = 0; // next chunk
  // The head points at the first segment.
  let inSeg = Math.min(left, perSegment);
  writeSglDescriptor(head, dw, left <= perSegment ? SglType.LAST_SEGMENT : SglType.SEGMENT, listIova, inSeg * SGL_DESC_BYTES);
  while (left > 0) {
    if (inSeg === 1 && left > 1) {
      // Last slot of a full segment: chain to the next one, right after this slot.
      const rest = left;
      const nextLen = rest <= perSegment ? rest : perSegment;
      writeSglDescriptor(
        list,
        idx * 4,
        rest <= perSegment ? SglType.LAST_SEGMENT : SglType.SEGMENT,
        listIova + (idx + 1) * SGL_DESC_BYTES,
        nextLen * SGL_DESC_BYTES,
      );
      idx++;
      inSeg = nextLen;
      continue;
    }
    const a = chunks[2 * k], len = chunks[2 * k + 1];
    if (a === SGL_BIT_BUCKET) writeSglDescriptor(list, idx * 4, SglType.BIT_BUCKET, 0, len);
    else writeSglDescriptor(list, idx * 4, SglType.DATA_BLOCK, a, len);
    idx++;
    k++;
    left--;
    inSeg--;
  }
}
