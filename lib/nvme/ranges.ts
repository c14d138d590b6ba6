/**
 * The range lists IO commands carry as data: Dataset Management ranges
 * (NVM Command Set 1.0, figure 39) and Copy source range entries, descriptor
 * format 0 (figure 45). Named once here; the host (lib/io/namespace.ts)
 * encodes them, the software controller (lib/sim/engine.ts) decodes them.
 * @module
 */
import { viewOf } from "./wide.ts";

/** Bytes of one Dataset Management range. */
export const DSM_RANGE_BYTES = 16;

/** Byte offsets in a Dataset Management range. */
export const DsmRangeOffset = {
  /** Context attributes. */
  CATTR: 0,
  /** Length in logical blocks (32 bits, not zero-based). */
  NLB: 4,
  /** Starting LBA (64 bits). */
  SLBA: 8,
} as const;

/** Bytes of one Copy source range entry (format 0). */
export const COPY_RANGE_BYTES = 32;

/** Byte offsets in a Copy source range entry (format 0). */
export const CopyRangeOffset = {
  /** Starting LBA (64 bits). */
  SLBA: 8,
  /** Number of logical blocks, zero-based (16 bits). */
  NLB: 16,
} as const;

/** A block range as the lists carry it: [starting LBA, blocks]. */
export type LbaRange = readonly [slba: number | bigint, blocks: number];

const TWO32 = 0x1_0000_0000;

/** Write Dataset Management ranges into `out` (its other bytes are left as they are). */
export function encodeDsmRanges(list: readonly LbaRange[], out: Uint8Array): void {
  const dv = viewOf(out), O = DsmRangeOffset;
  list.forEach(([slba, n], i) => {
    dv.setUint32(i * DSM_RANGE_BYTES + O.NLB, n, true);
    dv.setBigUint64(i * DSM_RANGE_BYTES + O.SLBA, BigInt(slba), true);
  });
}

/** Read `count` Dataset Management ranges as [slba, blocks] (LBAs below 2^53). */
export function decodeDsmRanges(d: Uint8Array, count: number): [number, number][] {
  const dv = viewOf(d), O = DsmRangeOffset;
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const o = i * DSM_RANGE_BYTES;
    out.push([dv.getUint32(o + O.SLBA, true) + dv.getUint32(o + O.SLBA + 4, true) * TWO32, dv.getUint32(o + O.NLB, true)]);
  }
  return out;
}

/** Write Copy source range entries (format 0) into `out` (its other bytes are left as they are). */
export function encodeCopyRanges(list: readonly LbaRange[], out: Uint8Array): void {
  const dv = viewOf(out), O = CopyRangeOffset;
  list.forEach(([slba, n], i) => {
    dv.setBigUint64(i * COPY_RANGE_BYTES + O.SLBA, BigInt(slba), true);
    dv.setUint16(i * COPY_RANGE_BYTES + O.NLB, n - 1, true);
  });
}

/** Read `count` Copy source range entries (format 0) as [slba, blocks] (LBAs below 2^53). */
export function decodeCopyRanges(d: Uint8Array, count: number): [number, number][] {
  const dv = viewOf(d), O = CopyRangeOffset;
  const out: [number, number][] = [];
  for (let i = 0; i < count; i++) {
    const o = i * COPY_RANGE_BYTES;
    out.push([dv.getUint32(o + O.SLBA, true) + dv.getUint32(o + O.SLBA + 4, true) * TWO32, dv.getUint16(o + O.NLB, true) + 1]);
  }
  return out;
}
