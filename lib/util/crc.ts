/**
 * The guard CRCs of end-to-end protection information: CRC-T10DIF (16-bit
 * guard; polynomial 0x8BB7, not reflected, seed 0, no final XOR) and
 * CRC64-NVME (64-bit guard; the Rocksoft polynomial 0xAD93D23594C93659,
 * reflected, seed and final XOR all ones, as Linux's crc64_rocksoft).
 * Table-driven: slice-by-4 for the 16-bit CRC, slice-by-8 over two 32-bit
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

/**
 * Slice-by-8 tables of the reflected polynomial: table k at k*256 is the CRC
 * of byte n followed by k zero bytes; low halves in T64L, high in T64H.
 */
const [T64L, T64H] = /* @__PURE__ */ (() => {
  const lo = new Uint32Array(8 * 256), hi = new Uint32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let l = n, h = 0;
    for (let k = 0; k < 8; k++) {
      const odd = l & 1;
      l = ((l >>> 1) | (h << 31)) >>> 0;
      h = h >>> 1;
      if (odd) {
        l = (l ^ P64_LO) >>> 0;
        h = (h ^ P64_HI) >>> 0;
      }
    }
    lo[n] = l;
    hi[n] = h;
  }
  for (let k = 1; k < 8; k++) {
    for (let n = 0; n < 256; n++) {
      const l = lo[(k - 1) * 256 + n], h = hi[(k - 1) * 256 + n], x = l & 0xff;
      lo[k * 256 + n] = (((l >>> 8) | (h << 24)) ^ lo[x]) >>> 0;
      hi[k * 256 + n] = ((h >>> 8) ^ hi[x]) >>> 0;
    }
  }
  return [lo, hi];
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
  const L = T64L, H = T64H;
  let i = start;
  const blocks = end - ((end - i) & 7);
  for (; i < blocks; i += 8) {
    // Eight bytes folded into the state, then one lookup per byte in its own table.
    const a = (lo ^ (b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24))) >>> 0;
    const c = (hi ^ (b[i + 4] | (b[i + 5] << 8) | (b[i + 6] << 16) | (b[i + 7] << 24))) >>> 0;
    const i7 = 1792 + (a & 0xff), i6 = 1536 + ((a >>> 8) & 0xff), i5 = 1280 + ((a >>> 16) & 0xff), i4 = 1024 + (a >>> 24);
    const i3 = 768 + (c & 0xff), i2 = 512 + ((c >>> 8) & 0xff), i1 = 256 + ((c >>> 16) & 0xff), i0 = c >>> 24;
    lo = (L[i7] ^ L[i6] ^ L[i5] ^ L[i4] ^ L[i3] ^ L[i2] ^ L[i1] ^ L[i0]) >>> 0;
    hi = (H[i7] ^ H[i6] ^ H[i5] ^ H[i4] ^ H[i3] ^ H[i2] ^ H[i1] ^ H[i0]) >>> 0;
  }
  for (; i < end; i++) {
    const x = (lo ^ b[i]) & 0xff;
    lo = (((lo >>> 8) | (hi << 24)) ^ L[x]) >>> 0;
    hi = ((hi >>> 8) ^ H[x]) >>> 0;
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
