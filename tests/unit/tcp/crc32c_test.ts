import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { crc32c, crc32cFinish, crc32cImpl, crc32cJs, crc32cUpdate, CRC32C_INIT, CRC32C_WASM_MIN } from "../../../lib/tcp/crc32c.ts";
import { WASM_CRC_BLOCK } from "../../../lib/tcp/crc32c-wasm.ts";

/** Bitwise reference: one bit per step, nothing shared with the tables. */
function slow(b: Uint8Array): number {
  let c = 0xffffffff;
  for (const x of b) {
    c ^= x;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

test("tcp crc32c: check value \"123456789\" = 0xE3069283", () => {
  assert.equal(crc32c(new TextEncoder().encode("123456789")), 0xe3069283);
});

test("tcp crc32c: RFC 3720 appendix B.4 vectors", () => {
  assert.equal(crc32c(new Uint8Array(32)), 0x8a9136aa);
  assert.equal(crc32c(new Uint8Array(32).fill(0xff)), 0x62a8ab43);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e);
  assert.equal(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c);
  // The iSCSI SCSI Read (10) command PDU of B.4.
  const rfc = Uint8Array.from([
    0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18,
    0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
  ]);
  assert.equal(crc32c(rfc), 0xd9963a56);
});

test("tcp crc32c: slice-by-8 equals the bitwise reference at every length and offset 0..40", () => {
  const b = Uint8Array.from({ length: 300 }, (_, i) => (i * 131 + 7) & 0xff);
  for (let start = 0; start < 9; start++) {
    for (let len = 0; len <= 40; len++) assert.equal(crc32c(b, start, start + len), slow(b.subarray(start, start + len)));
  }
  assert.equal(crc32c(b), slow(b));
});

test("tcp crc32c: streaming update over pieces equals one pass", () => {
  const b = Uint8Array.from({ length: 1000 }, (_, i) => (i * 37) & 0xff);
  let s = CRC32C_INIT;
  for (const [a, z] of [[0, 3], [3, 200], [200, 201], [201, 1000]]) s = crc32cUpdate(s, b, a, z);
  assert.equal(crc32cFinish(s), crc32c(b));
});

test("tcp crc32c: the WebAssembly kernel is in use and equals the bitwise reference around its length threshold and block size", () => {
  assert.equal(crc32cImpl, "wasm"); // both runtimes have WebAssembly: the fast path must not silently fall back
  const b = Uint8Array.from({ length: WASM_CRC_BLOCK * 2 + 100 }, (_, i) => (i * 2654435761) >>> 24);
  for (let start = 0; start < 17; start += 3) {
    for (let len = CRC32C_WASM_MIN - 2; len <= CRC32C_WASM_MIN + 33; len++) {
      assert.equal(crc32c(b, start, start + len), slow(b.subarray(start, start + len)), `${start}+${len}`);
    }
  }
  // Past one copied block (the kernel works through the data in blocks), from an odd offset.
  for (const len of [WASM_CRC_BLOCK - 1, WASM_CRC_BLOCK, WASM_CRC_BLOCK + 17, WASM_CRC_BLOCK * 2 + 50]) {
    const want = slow(b.subarray(5, 5 + len));
    assert.equal(crc32c(b, 5, 5 + len), want, `len ${len}`);
    assert.equal(crc32cFinish(crc32cJs(CRC32C_INIT, b, 5, 5 + len)), want, `js len ${len}`);
  }
  // Streaming through both kernels: short JS pieces and long wasm ones.
  let st = CRC32C_INIT;
  for (const [a, z] of [[0, 10], [10, 5000], [5000, 5003], [5003, 70000]]) st = crc32cUpdate(st, b, a, z);
  assert.equal(crc32cFinish(st), slow(b.subarray(0, 70000)));
});
