import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  abortCmd, createIoCqCmd, createIoSqCmd, flushCmd, getFeaturesCmd, getLogPageCmd, hi32, identifyCmd, lo32,
  readCmd, setNumQueuesCmd, writeCmd,
} from "../../../lib/nvme/command.ts";
import { ccValue, decodeCap, decodeStatus, decodeVersion, statusName } from "../../../lib/nvme/spec.ts";

test("read/write encode opcode, nsid, 64-bit SLBA and zero-based NLB", () => {
  const r = readCmd(3, 0x1_2345_6789, 8);
  assert.equal(r[0], 0x02);
  assert.equal(r[1], 3);
  assert.equal(r[10], 0x2345_6789);
  assert.equal(r[11], 0x1);
  assert.equal(r[12], 7);
  const w = writeCmd(1, 0, 65536);
  assert.equal(w[0], 0x01);
  assert.equal(w[12], 0xffff);
  assert.equal(flushCmd(0xffffffff)[1], 0xffffffff);
});

test("lo32/hi32 split exact integers below 2^53", () => {
  assert.equal(lo32(0x1f_ffff_ffff_fff0), 0xffff_fff0);
  assert.equal(hi32(0x1f_ffff_ffff_fff0), 0x1f_ffff);
  assert.equal(lo32(4096), 4096);
  assert.equal(hi32(4096), 0);
  // Around the 2^31 (sign) and 2^32 boundaries, and the largest exact integer.
  for (const v of [0, 2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 7, 2 ** 33 + 2 ** 31, 2 ** 53 - 1]) {
    assert.equal(lo32(v), v % 2 ** 32, `lo32(${v})`);
    assert.equal(hi32(v), Math.floor(v / 2 ** 32), `hi32(${v})`);
    assert.equal(hi32(v) * 2 ** 32 + lo32(v), v);
  }
});

test("admin builders place fields per the spec", () => {
  const id = identifyCmd(0x01, 0, 0x12);
  assert.equal(id[0], 0x06);
  assert.equal(id[10], 0x0012_0001);
  const cq = createIoCqCmd(3, 1024, true, 5);
  assert.equal(cq[0], 0x05);
  assert.equal(cq[10], (1023 << 16) | 3);
  assert.equal(cq[11], (5 << 16) | 0b11);
  const sq = createIoSqCmd(3, 1024, 3);
  assert.equal(sq[0], 0x01);
  assert.equal(sq[11], (3 << 16) | 1);
  const nq = setNumQueuesCmd(4, 4);
  assert.equal(nq[0], 0x09);
  assert.equal(nq[10], 0x07);
  assert.equal(nq[11], (3 << 16) | 3);
  const gf = getFeaturesCmd(0x06, { sel: 3 });
  assert.equal(gf[10], 0x306);
  const ab = abortCmd(2, 0xbeef);
  assert.equal(ab[10], (0xbeef << 16 | 2) >>> 0);
});

test("get log page splits NUMD into NUMDL/NUMDU and sets offset", () => {
  const c = getLogPageCmd(0x02, 512, { nsid: 0xffffffff });
  assert.equal(c[1], 0xffffffff);
  assert.equal(c[10], (127 << 16) | 0x02);
  assert.equal(c[11], 0);
  const big = getLogPageCmd(0x01, 0x40000 * 4 + 4, { offset: 0x1_0000_0010, rae: true, lsp: 1 });
  assert.equal(big[10] >>> 16, 0);
  assert.equal(big[11] & 0xffff, 0x4);
  assert.equal((big[10] >>> 15) & 1, 1);
  assert.equal((big[10] >>> 8) & 0x7f, 1);
  assert.equal(big[12], 0x10);
  assert.equal(big[13], 1);
});

test("CAP, VS and CC decode/encode", () => {
  // MQES 2047, CQR, TO 15 (7.5 s), DSTRD 0, CSS NVM, MPSMIN 0, MPSMAX 4
  const cap = (0x0040_0020n << 32n) | 0x0f01_07ffn;
  const d = decodeCap(cap);
  assert.equal(d.mqes, 2048);
  assert.equal(d.cqr, true);
  assert.equal(d.timeoutMs, 7500);
  assert.equal(d.doorbellStride, 4);
  assert.equal(d.css & 1, 1);
  assert.equal(d.mpsMin, 4096);
  assert.equal(d.mpsMax, 65536);
  assert.equal(decodeVersion(0x0001_0400), "1.4.0");
  assert.equal(ccValue(4096), 0x0046_0001);
  assert.equal(ccValue(8192), 0x0046_0081);
  assert.equal(ccValue(4096, 6, 4, 0b110), 0x0046_0061, "CC.CSS 110b: all IO command sets");
});

test("status decoding names SCT/SC and flags DNR/More", () => {
  const s = decodeStatus(0x4001); // DNR + Invalid Command Opcode
  assert.equal(s.sct, 0);
  assert.equal(s.sc, 1);
  assert.equal(s.dnr, true);
  assert.equal(s.more, false);
  assert.equal(s.name, "Invalid Command Opcode");
  const m = decodeStatus((1 << 13) | (2 << 8) | 0x81);
  assert.equal(m.code, 0x281);
  assert.equal(m.more, true);
  assert.equal(m.name, "Unrecovered Read Error");
  assert.equal(statusName(1, 0x06), "Invalid Firmware Slot");
  assert.equal(statusName(2, 0x85), "Compare Failure");
  assert.match(statusName(7, 0x10), /Vendor Specific/);
  assert.match(statusName(5, 0x10), /Unknown/);
});
