/**
 * The guard CRCs of end-to-end protection information: CRC-T10DIF (16-bit
 * guard; polynomial 0x8BB7, not reflected, seed 0, no final XOR) and
 * CRC64-NVME (64-bit guard; the Rocksoft polynomial 0xAD93D23594C93659,
 * reflected, seed and final XOR all ones, as Linux's crc64_rocksoft).
 * Table-driven, slice-by-4 for the 16-bit CRC and byte-wise over two 32-bit
 * halves for the 64-bit one, so a guard costs no allocation (no BigInt on
 * the data path).
 * @module
 */

const T10DIF_POLY = 0x8bb7;

/** Four 256-entry tables, table k at k*256: T[k][b] = CRC of byte b followed by k zero bytes. */
const T16 = /* @__PURE__ */ (() => {
  const t = new Uint16Array(4 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ T10DIF_POLY) & 0xffff : (c << 1) & 0xffff;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 4; k++) {
      c = ((c << 8) & 0xffff) ^ t[c >>> 8];
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/**
 * Advance a CRC-T10DIF over `b[start..end)`. Start from 0 (the seed); the
 * result is the guard (there is no final XOR), so a guard over data and then
 * metadata is `crc16T10dif(meta, crc16T10dif(data))`.
 */
export function crc16T10dif(b: Uint8Array, crc = 0, start = 0, end: number = b.length): number {
  let c = crc & 0xffff;
  let i = start;
  const t = T16;
  const blocks = end - ((end - i) & 3);
  for (; i < blocks; i += 4) {
    // Two CRC bytes folded into the first two data bytes, then four table lookups.
    const x = c ^ ((b[i] << 8) | b[i + 1]);
    c = t[768 + (x >>> 8)] ^ t[512 + (x & 0xff)] ^ t[256 + b[i + 2]] ^ t[b[i + 3]];
  }
  for (; i < end; i++) c = ((c << 8) & 0xffff) ^ t[(c >>> 8) ^ b[i]];
  return c;
}

// Reflected Rocksoft polynomial 0x9A6C9329AC4BC9B5, in halves.
const P64_HI = 0x9a6c9329, P64_LO = 0xac4bc9b5;

/** The 256-entry reflected table, low halves then high halves. */
const T64 = /* @__PURE__ */ (() => {
  const t = new Uint32Array(512);
  for (let n = 0; n < 256; n++) {
    let lo = n, hi = 0;
    for (let k = 0; k < 8; k++) {
      const odd = lo & 1;
      lo = ((lo >>> 1) | (hi << 31)) >>> 0;
      hi = hi >>> 1;
      if (odd) {
        lo = (lo ^ P64_LO) >>> 0;
        hi = (hi ^ P64_HI) >>> 0;
      }
    }
    t[n] = lo;
    t[256 + n] = hi;
  }
  return t;
})();

/**
 * A CRC64-NVME in progress: `[low 32 bits, high 32 bits]`. Set it with
 * {@link crc64NvmeInit}, feed it with {@link crc64NvmeUpdate}, end it with
 * {@link crc64NvmeFinal}; then it holds the CRC.
 */
export type Crc64State = Uint32Array;

/** A fresh state (allocates: make one per user, not per block). */
export function crc64NvmeState(): Crc64State {
  const s = new Uint32Array(2);
  crc64NvmeInit(s);
  return s;
}

/** Reset `s` to the seed (all ones). */
export function crc64NvmeInit(s: Crc64State): void {
  s[0] = 0xffffffff;
  s[1] = 0xffffffff;
}

/** Advance `s` over `b[start..end)`. */
export function crc64NvmeUpdate(s: Crc64State, b: Uint8Array, start = 0, end: number = b.length): void {
  let lo = s[0], hi = s[1];
  const t = T64;
  for (let i = start; i < end; i++) {
    const x = (lo ^ b[i]) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ t[x]) >>> 0;
    hi = ((hi >>> 8) ^ t[256 + x]) >>> 0;
  }
  s[0] = lo;
  s[1] = hi;
}

/** Apply the final XOR: `s` then holds the CRC as `[low, high]`. */
export function crc64NvmeFinal(s: Crc64State): void {
  s[0] = ~s[0] >>> 0;
  s[1] = ~s[1] >>> 0;
}

/** CRC64-NVME of `b` as a bigint (allocates: for tests and tools, not the data path). */
export function crc64Nvme(b: Uint8Array): bigint {
  const s = crc64NvmeState();
  crc64NvmeUpdate(s, b);
  crc64NvmeFinal(s);
  return (BigInt(s[1]) << 32n) | BigInt(s[0]);
}
