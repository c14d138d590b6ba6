import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  Dps,
  FLBAS_EXTENDED,
  piAppTag,
  piCheck,
  piCheckOf,
  piFormatOf,
  piGenerate,
  piGuard,
  Pif,
  piRefAt,
  piRefTag,
  PiStatus,
  piStripped,
  Prinfo,
  prinfoBits,
  prinfoOf,
} from "../../../lib/nvme/pi.ts";
import { NvmePiError, statusError } from "../../../lib/nvme/errors.ts";
import { crc16T10dif, crc64Nvme } from "../../../lib/util/crc.ts";

test("nvme/pi: PRINFO sits in CDW12 bits 29:26", () => {
  assert.equal(prinfoBits(Prinfo.PRACT | Prinfo.PRCHK_GUARD), (1 << 29) | (1 << 28));
  assert.equal(prinfoBits(Prinfo.PRCHK_REF), 1 << 26);
  assert.equal(prinfoOf(0xffff | prinfoBits(0xb)), 0xb);
});

test("nvme/pi: formats decode once: tuple size, offset, layout", () => {
  const a = piFormatOf(512, 8, FLBAS_EXTENDED, 1);
  assert.deepEqual(a, { blockSize: 512, metadataSize: 8, extended: true, type: 1, first: false, guard: 16, piOffset: 0, tupleBytes: 8 });
  const b = piFormatOf(4096, 64, 0, 2, Pif.GUARD64);
  assert.equal(b.piOffset, 48);
  assert.equal(b.tupleBytes, 16);
  assert.equal(piFormatOf(4096, 64, 0, 2 | Dps.FIRST, Pif.GUARD64).piOffset, 0);
  assert.equal(piFormatOf(4096, 64, 0, 0).type, 0);
  assert.equal(piStripped(a, true), true);
  assert.equal(piStripped(b, true), false);
  assert.equal(piStripped(a, false), false);
});

test("nvme/pi: the 16-bit tuple is guard, app, ref big-endian; the guard covers metadata before a trailing tuple", () => {
  const f = piFormatOf(512, 16, 0, 1); // 8 bytes of metadata, then the tuple
  const data = new Uint8Array(512).map((_, i) => i * 3);
  const meta = new Uint8Array(16).fill(0xaa);
  piGenerate(f, data, 0, meta, 0, 0x01020304, 0xbeef);
  const g = crc16T10dif(meta.subarray(0, 8), crc16T10dif(data));
  assert.deepEqual([...meta.subarray(8)], [g >> 8, g & 0xff, 0xbe, 0xef, 1, 2, 3, 4]);
  assert.equal(piGuard(f, meta, 0), g);
  assert.equal(piAppTag(f, meta, 0), 0xbeef);
  assert.equal(piRefTag(f, meta, 0), 0x01020304);
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_ALL, 0x01020304, 0xbeef, 0xffff), 0);
  meta[3] ^= 1; // inside the guarded metadata
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_GUARD, 0x01020304, 0xbeef, 0xffff), PiStatus.GUARD);
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_REF, 0x01020304, 0xbeef, 0xffff), 0);
  meta[3] ^= 1;
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_APP, 0, 0xbe00, 0xffff), PiStatus.APP);
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_APP, 0, 0xbe00, 0xff00), 0);
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_REF, 5, 0, 0xffff), PiStatus.REF);
});

test("nvme/pi: the 64-bit tuple is a CRC64 guard, app, 48-bit ref", () => {
  const f = piFormatOf(4096, 16, 0, 2, Pif.GUARD64);
  const data = new Uint8Array(4096).map((_, i) => i ^ 0x5c);
  const meta = new Uint8Array(16);
  const ref = 0xabcd_1234_5678;
  piGenerate(f, data, 0, meta, 0, ref, 0x7777);
  assert.equal(piGuard(f, meta, 0), crc64Nvme(data));
  assert.equal(piAppTag(f, meta, 0), 0x7777);
  assert.equal(piRefTag(f, meta, 0), ref);
  assert.deepEqual([...meta.subarray(10)], [0xab, 0xcd, 0x12, 0x34, 0x56, 0x78]);
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_ALL, ref, 0x7777, 0xffff), 0);
  data[4095] ^= 0x80;
  assert.equal(piCheck(f, data, 0, meta, 0, Prinfo.PRCHK_ALL, ref, 0x7777, 0xffff), PiStatus.GUARD);
  assert.equal(piRefAt(f, 2 ** 48 - 1, 1), 0, "48-bit reference tags wrap");
});

test("nvme/pi: escapes: app tag FFFFh (types 1, 2); with an all-ones ref tag too (type 3)", () => {
  const data = new Uint8Array(512);
  const meta = new Uint8Array(8).fill(0xff);
  for (const type of [1, 2]) assert.equal(piCheck(piFormatOf(512, 8, 0, type), data, 0, meta, 0, 7, 3, 0, 0xffff), 0);
  const t3 = piFormatOf(512, 8, 0, 3);
  assert.equal(piCheck(t3, data, 0, meta, 0, 7, 3, 0, 0xffff), 0);
  meta[7] = 0xfe;
  assert.equal(piCheck(t3, data, 0, meta, 0, Prinfo.PRCHK_GUARD, 3, 0, 0xffff), PiStatus.GUARD);
  assert.equal(piRefAt(t3, 9, 5), 9, "type 3 keeps the reference tag");
});

test("nvme/pi: status 0x282-0x284 become NvmePiError naming the check", () => {
  for (const [sf, check] of [[0x282, "guard"], [0x283, "app"], [0x284, "ref"]] as const) {
    assert.equal(piCheckOf(sf | 0x4000), check);
    const e = statusError(sf | 0x4000, 0, { qid: 1, cid: 2, opcode: 2 });
    assert.ok(e instanceof NvmePiError);
    assert.equal(e.check, check);
    assert.equal(e.code, "EPI");
    assert.equal(e.status.sct, 2);
  }
  assert.equal(piCheckOf(0x281), null);
  assert.ok(!(statusError(0x281, 0, { qid: 1, cid: 2, opcode: 2 }) instanceof NvmePiError));
});
