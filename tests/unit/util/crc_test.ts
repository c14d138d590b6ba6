import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { crc16T10dif, crc64Nvme, crc64NvmeFinal, crc64NvmeState, crc64NvmeUpdate } from "../../../lib/util/crc.ts";

const check = new TextEncoder().encode("123456789");

/** Bit-at-a-time references, straight from the polynomials. */
function refT10dif(b: Uint8Array): number {
  let c = 0;
  for (const x of b) {
    c ^= x << 8;
    for (let k = 0; k < 8; k++) c = c & 0x8000 ? ((c << 1) ^ 0x8bb7) & 0xffff : (c << 1) & 0xffff;
  }
  return c;
}

function refCrc64(b: Uint8Array): bigint {
  const P = 0x9a6c9329ac4bc9b5n, M = (1n << 64n) - 1n;
  let c = M;
  for (const x of b) {
    c ^= BigInt(x);
    for (let k = 0; k < 8; k++) c = c & 1n ? (c >> 1n) ^ P : c >> 1n;
  }
  return c ^ M;
}

test("util/crc: check values (CRC-T10DIF 0xD0DB, CRC64-NVME 0xAE8B14860A799888)", () => {
  assert.equal(crc16T10dif(check), 0xd0db);
  assert.equal(crc64Nvme(check), 0xae8b14860a799888n);
  assert.equal(crc16T10dif(new Uint8Array(0)), 0);
  assert.equal(crc64Nvme(new Uint8Array(0)), 0n);
});

test("util/crc: table-driven equals bit-at-a-time at every length and offset, and chains", () => {
  const b = new Uint8Array(600);
  for (let i = 0; i < b.length; i++) b[i] = (i * 131 + 7) & 0xff;
  for (let n = 0; n < 40; n++) {
    for (const off of [0, 1, 3]) {
      const s = b.subarray(off, off + n);
      assert.equal(crc16T10dif(b, 0, off, off + n), refT10dif(s), `t10dif len ${n} off ${off}`);
      assert.equal(crc64Nvme(s), refCrc64(s), `crc64 len ${n} off ${off}`);
    }
  }
  assert.equal(crc16T10dif(b, crc16T10dif(b, 0, 0, 257), 257), refT10dif(b));
  const st = crc64NvmeState();
  crc64NvmeUpdate(st, b, 0, 100);
  crc64NvmeUpdate(st, b, 100);
  crc64NvmeFinal(st);
  assert.equal((BigInt(st[1]) << 32n) | BigInt(st[0]), refCrc64(b));
  // 4 KiB of zeros: the guard of an all-zero block.
  const z = new Uint8Array(4096);
  assert.equal(crc16T10dif(z), 0);
  assert.equal(crc64Nvme(z), refCrc64(z));
});
