/**
 * Unsigned fields wider than a safe JavaScript number: 64-bit counters and
 * 128-bit capacities and SMART counters. Decoders in lib/nvme return them
 * wrapped so that `JSON.stringify` writes them as nvme-cli does (a 64-bit
 * value as a number, a 128-bit value as a string of digits).
 * @module
 */

const rawJSON = (JSON as unknown as { rawJSON?: (text: string) => unknown }).rawJSON;

/** An unsigned 64-bit field; nvme-cli prints it as a JSON number. */
export class Uint64 {
  /** The exact value. */
  readonly value: bigint;
  /** Wrap a 64-bit unsigned value. */
  constructor(value: bigint) {
    this.value = value;
  }
  /** Raw JSON digits where `JSON.rawJSON` exists, else a (possibly rounded) number. */
  toJSON(): unknown {
    return rawJSON ? rawJSON(this.value.toString()) : Number(this.value);
  }
  /** Decimal digits. */
  toString(): string {
    return this.value.toString();
  }
}

/** An unsigned 128-bit field; nvme-cli 2.3 prints it as a JSON string of decimal digits. */
export class Uint128 {
  /** The exact value. */
  readonly value: bigint;
  /** Wrap a 128-bit unsigned value. */
  constructor(value: bigint) {
    this.value = value;
  }
  /** Decimal digits (a JSON string, as nvme-cli prints it in the C locale). */
  toJSON(): string {
    return this.value.toString();
  }
  /** Decimal digits. */
  toString(): string {
    return this.value.toString();
  }
}

/** A little-endian view of `d` (its own window of the buffer). */
export function viewOf(d: Uint8Array): DataView {
  return new DataView(d.buffer, d.byteOffset, d.byteLength);
}

/** Read a little-endian 128-bit unsigned value. */
export function getU128(dv: DataView, off: number): bigint {
  return (dv.getBigUint64(off + 8, true) << 64n) | dv.getBigUint64(off, true);
}

/** Write a little-endian 128-bit unsigned value (the low 128 bits of `v`). */
export function setU128(dv: DataView, off: number, v: bigint): void {
  dv.setBigUint64(off, v & 0xffff_ffff_ffff_ffffn, true);
  dv.setBigUint64(off + 8, (v >> 64n) & 0xffff_ffff_ffff_ffffn, true);
}
