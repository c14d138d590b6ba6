// SGL layouts and writers (lib/nvme/sgl.ts): the descriptor bytes, a data block in the SQE, chunk
// lists behind a Last Segment, chains of Segments when a segment is capped, bit buckets, PSDT.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  decodeSglDescriptor,
  Psdt,
  psdtOf,
  SGL_BIT_BUCKET,
  sglBitBucket,
  sglListDescriptors,
  sglMetadataSupported,
  SglsBit,
  sglSupported,
  SglType,
  withPsdt,
  writeSglChunks,
  writeSglData,
  writeSglDescriptor,
  writeSglMetadata,
} from "../../../lib/nvme/sgl.ts";

test("sgl: a descriptor's bytes (address, length, type in the high nibble of byte 15)", () => {
  const u32 = new Uint32Array(4);
  writeSglDescriptor(u32, 0, SglType.LAST_SEGMENT, 0x1_2345_6000, 48);
  const b = new Uint8Array(u32.buffer);
  assert.deepEqual([...b], [0x00, 0x60, 0x45, 0x23, 0x01, 0, 0, 0, 48, 0, 0, 0, 0, 0, 0, 0x30]);
  assert.deepEqual(decodeSglDescriptor(u32, 0), { type: SglType.LAST_SEGMENT, subtype: 0, address: 0x1_2345_6000, length: 48 });
});

test("sgl: SGLS support field, bit bucket bit, PSDT in CDW0", () => {
  assert.equal(sglSupported(0), false);
  assert.equal(sglSupported(1), true);
  assert.equal(sglSupported(2), true);
  assert.equal(sglSupported(3), false, "11b is reserved");
  assert.equal(sglBitBucket(1 | SglsBit.BIT_BUCKET), true);
  assert.equal(sglBitBucket(SglsBit.BIT_BUCKET), false, "no bit buckets without SGLs");
  const c = withPsdt(0xabcd_0002, Psdt.SGL_MPTR_CONTIGUOUS);
  assert.equal(c, 0xabcd_4002);
  assert.equal(psdtOf(c), 1);
  assert.equal(withPsdt(c, Psdt.PRP), 0xabcd_0002);
});

test("sgl: a contiguous buffer is one data block in DPTR", () => {
  const e = new Uint32Array(16);
  writeSglData(e, 0x1_0000_3004, 12288);
  assert.deepEqual(decodeSglDescriptor(e, 6), { type: SglType.DATA_BLOCK, subtype: 0, address: 0x1_0000_3004, length: 12288 });
});

test("sgl: chunks behind one Last Segment; a bit bucket; one chunk needs no list", () => {
  const e = new Uint32Array(16), list = new Uint32Array(64);
  writeSglChunks(e, [0x10_0000, 512, SGL_BIT_BUCKET, 1024, 0x20_0000, 512], 3, list, 0x9000);
  assert.deepEqual(decodeSglDescriptor(e, 6), { type: SglType.LAST_SEGMENT, subtype: 0, address: 0x9000, length: 48 });
  assert.deepEqual(decodeSglDescriptor(list, 0), { type: SglType.DATA_BLOCK, subtype: 0, address: 0x10_0000, length: 512 });
  assert.deepEqual(decodeSglDescriptor(list, 4), { type: SglType.BIT_BUCKET, subtype: 0, address: 0, length: 1024 });
  assert.deepEqual(decodeSglDescriptor(list, 8), { type: SglType.DATA_BLOCK, subtype: 0, address: 0x20_0000, length: 512 });
  writeSglChunks(e, [SGL_BIT_BUCKET, 4096], 1, null, 0);
  assert.equal(decodeSglDescriptor(e, 6).type, SglType.BIT_BUCKET);
});

test("sgl: capped segments chain through Segment descriptors to a Last Segment", () => {
  assert.equal(sglListDescriptors(1), 0);
  assert.equal(sglListDescriptors(5), 5);
  assert.equal(sglListDescriptors(5, 3), 6);
  assert.equal(sglListDescriptors(4, 3), 5);
  assert.equal(sglListDescriptors(3, 2), 4);
  const e = new Uint32Array(16), list = new Uint32Array(6 * 4);
  const chunks: number[] = [];
  for (let i = 0; i < 5; i++) chunks.push(0x100_0000 + i * 0x1000, 4096);
  writeSglChunks(e, chunks, 5, list, 0x8000, 3);
  const d = (i: number) => decodeSglDescriptor(list, i * 4);
  assert.deepEqual(decodeSglDescriptor(e, 6), { type: SglType.SEGMENT, subtype: 0, address: 0x8000, length: 48 });
  assert.equal(d(0).address, 0x100_0000);
  assert.equal(d(1).address, 0x100_1000);
  assert.deepEqual(d(2), { type: SglType.LAST_SEGMENT, subtype: 0, address: 0x8000 + 3 * 16, length: 48 });
  assert.deepEqual([d(3).address, d(4).address, d(5).address], [0x100_2000, 0x100_3000, 0x100_4000]);
  assert.ok([d(3), d(4), d(5)].every((x) => x.type === SglType.DATA_BLOCK && x.length === 4096));
});

test("sgl: list memory too small, no chunks, a segment of one are refused", () => {
  const e = new Uint32Array(16);
  assert.throws(() => writeSglChunks(e, [1, 2, 3, 4], 2, null, 0), /needs 2 descriptors/);
  assert.throws(() => writeSglChunks(e, [1, 2, 3, 4], 2, new Uint32Array(4), 0), /needs 2 descriptors/);
  assert.throws(() => writeSglChunks(e, [], 0, null, 0), /at least one chunk/);
  assert.throws(() => sglListDescriptors(3, 1), /at least 2/);
});

test("sgl: metadata as an SGL (PSDT 10b): MPTR points at one descriptor, a data block or a segment into the list", () => {
  assert.equal(sglMetadataSupported(1 | SglsBit.MPTR_SGL), true);
  assert.equal(sglMetadataSupported(1), false, "SGLS bit 19 clear");
  assert.equal(sglMetadataSupported(SglsBit.MPTR_SGL), false, "no SGL support at all");
  const sqe = new Uint32Array(16), head = new Uint32Array(4), list = new Uint32Array(16);
  sqe[0] = 0x02; // read
  writeSglMetadata(sqe, head, 0x2_0000_1000, [0x5000, 64], 1);
  assert.equal(psdtOf(sqe[0]), Psdt.SGL_MPTR_SGL);
  assert.equal(sqe[0] & 0xff, 0x02, "opcode kept");
  assert.deepEqual([sqe[4], sqe[5]], [0x1000, 2], "MPTR holds the descriptor's IOVA");
  assert.deepEqual(decodeSglDescriptor(head, 0), { type: SglType.DATA_BLOCK, subtype: 0, address: 0x5000, length: 64 });
  writeSglMetadata(sqe, head, 0x9000, [0x5000, 32, 0x7000, 32, 0x8000, 16], 3, list, 0xa000);
  assert.deepEqual(decodeSglDescriptor(head, 0), { type: SglType.LAST_SEGMENT, subtype: 0, address: 0xa000, length: 48 });
  assert.deepEqual([0, 1, 2].map((i) => decodeSglDescriptor(list, i * 4)), [
    { type: SglType.DATA_BLOCK, subtype: 0, address: 0x5000, length: 32 },
    { type: SglType.DATA_BLOCK, subtype: 0, address: 0x7000, length: 32 },
    { type: SglType.DATA_BLOCK, subtype: 0, address: 0x8000, length: 16 },
  ]);
  assert.throws(() => writeSglMetadata(sqe, head, 0x9000, [SGL_BIT_BUCKET, 64], 1), /bit bucket/);
  assert.throws(() => writeSglMetadata(sqe, head, 0x9002, [0x5000, 64], 1), /dword aligned/);
  assert.throws(() => writeSglMetadata(sqe, new Uint32Array(2), 0x9000, [0x5000, 64], 1), /16 bytes/);
  assert.throws(() => writeSglMetadata(sqe, head, 0x9000, [0x5000, 32, 0x7000, 32], 2), /needs 2 descriptors/);
});
