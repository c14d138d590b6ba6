/**
 * CRC32C (Castagnoli: reflected polynomial 0x82F63B78, seed and final XOR
 * 0xFFFFFFFF), the NVMe/TCP header and data digest. Slice-by-8 in plain JS:
 * eight 256-entry tables fold eight input bytes per step, so the data digest
 * costs one table pass per 8 bytes instead of per byte. Buffers of
 * {@link CRC32C_WASM_MIN} bytes or more go to the same algorithm compiled as
 * WebAssembly (crc32c-wasm.ts) when the runtime has it; short ones (headers)
 * stay in JS, where a call costs less than the copy into wasm memory.
 * @module
 */
import { type Crc32cKernel, wasmCrc32c } from "./crc32c-wasm.ts";

const POLY = 0x82f63b78;

/** Eight 256-entry tables, table k at k*256: T[k][b] = CRC of byte b followed by k zero bytes. */
const T = /* @__PURE__ */ (() => {
  const t = new Int32Array(8 * 256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ POLY : c >>> 1;
    t[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = t[n];
    for (let k = 1; k < 8; k++) {
      c = t[c & 0xff] ^ (c >>> 8);
      t[k * 256 + n] = c;
    }
  }
  return t;
})();

/** Smallest buffer handed to the WebAssembly kernel. */
export const CRC32C_WASM_MIN = 256;

const WASM: Crc32cKernel | null = /* @__PURE__ */ wasmCrc32c(T);

/** Which implementation digests long buffers here: "wasm" or "js". */
export const crc32cImpl: "wasm" | "js" = WASM === null ? "js" : "wasm";

/** The raw CRC state before any byte (the seed). */
export const CRC32C_INIT = 0xffffffff;

/**
 * Advance a raw CRC32C state over `b[start..end)` (no final XOR), so a digest
 * can be computed over data that arrives in pieces. Returns the new state.
 */
export function crc32cUpdate(state: number, b: Uint8Array, start = 0, end = b.length): number {
  if (WASM !== null && end - start >= CRC32C_WASM_MIN) return WASM(state, b, start, end);
  return crc32cJs(state, b, start, end);
}

/** {@link crc32cUpdate} in plain JS only (the fallback, and the reference the tests compare with). */
export function crc32cJs(state: number, b: Uint8Array, start = 0, end = b.length): number {
  let c = state | 0;
  let i = start;
  const t = T;
  // Byte steps until 8 bytes or fewer remain in whole blocks.
  const blocks = end - ((end - i) & 7);
  for (; i < blocks; i += 8) {
    c ^= b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24);
    const hi = b[i + 4] | (b[i + 5] << 8) | (b[i + 6] << 16) | (b[i + 7] << 24);
    c = t[1792 + (c & 0xff)] ^ t[1536 + ((c >>> 8) & 0xff)] ^ t[1280 + ((c >>> 16) & 0xff)] ^ t[1024 + (c >>> 24)] ^
      t[768 + (hi & 0xff)] ^ t[512 + ((hi >>> 8) & 0xff)] ^ t[256 + ((hi >>> 16) & 0xff)] ^ t[hi >>> 24];
  }
  for (; i < end; i++) c = t[(c ^ b[i]) & 0xff] ^ (c >>> 8);
  return c >>> 0;
}

/** The finished digest of a raw state (final XOR). */
export function crc32cFinish(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}

/** CRC32C of `b[start..end)`: the value NVMe/TCP stores little-endian as a digest. */
export function crc32c(b: Uint8Array, start = 0, end = b.length): number {
  return (crc32cUpdate(CRC32C_INIT, b, start, end) ^ 0xffffffff) >>> 0;
}
