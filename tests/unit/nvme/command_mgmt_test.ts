import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  asyncEventRequestCmd, compareCmd, copyCmd, deviceSelfTestCmd, dsmCmd, formatNvmCmd, fwCommitCmd, fwDownloadCmd,
  nsAttachCmd, nsCreateCmd, nsDeleteCmd, nsDescsCmd, sanitizeCmd, verifyCmd, writeZeroesCmd,
} from "../../../lib/nvme/command.ts";
import { AdminOpc, IoOpc } from "../../../lib/nvme/spec.ts";

test("write zeroes / compare / verify: read-write shape, DEAC bit 25, FUA bit 30", () => {
  const wz = writeZeroesCmd(2, 0x1_0000_0010, 65536, { deac: true, fua: true });
  assert.deepEqual([wz[0], wz[1], wz[10], wz[11]], [IoOpc.WRITE_ZEROES, 2, 0x10, 1]);
  assert.equal(wz[12], (0xffff | 1 << 25 | 1 << 30) >>> 0);
  assert.equal(writeZeroesCmd(1, 0, 1)[12], 0);
  const c = compareCmd(1, 5, 8);
  assert.deepEqual([c[0], c[10], c[12]], [IoOpc.COMPARE, 5, 7]);
  const v = verifyCmd(1, 7, 1);
  assert.deepEqual([v[0], v[10], v[12]], [IoOpc.VERIFY, 7, 0]);
});

test("dataset management: zero-based range count, attribute bits", () => {
  const d = dsmCmd(1, 256, { ad: true });
  assert.deepEqual([d[0], d[1], d[10], d[11]], [IoOpc.DATASET_MANAGEMENT, 1, 255, 4]);
  assert.equal(dsmCmd(1, 1, { idr: true, idw: true })[11], 3);
});

test("copy: SDLBA in CDW10-11, zero-based NR and descriptor format in CDW12", () => {
  const c = copyCmd(3, 0x2_0000_0001, 4, { format: 1 });
  assert.deepEqual([c[0], c[1], c[10], c[11], c[12]], [IoOpc.COPY, 3, 1, 2, 3 | 1 << 8]);
});

test("format: LBAF low/high bits, MSET, PI, PIL, SES", () => {
  const f = formatNvmCmd(1, { lbaf: 0x15, mset: true, pi: 3, pil: true, ses: 2 });
  assert.equal(f[0], AdminOpc.FORMAT_NVM);
  assert.equal(f[10], 0x5 | 1 << 4 | 3 << 5 | 1 << 8 | 2 << 9 | 1 << 12);
  assert.equal(formatNvmCmd(0xffffffff)[1], 0xffffffff);
});

test("self-test, firmware download/commit, sanitize", () => {
  assert.deepEqual([...deviceSelfTestCmd(0xffffffff, 0xf).subarray(0, 2)], [AdminOpc.DEVICE_SELF_TEST, 0xffffffff]);
  assert.equal(deviceSelfTestCmd(1, 2)[10], 2);
  const d = fwDownloadCmd(8192, 16384);
  assert.deepEqual([d[0], d[10], d[11]], [AdminOpc.FW_IMAGE_DOWNLOAD, 2047, 4096]);
  const c = fwCommitCmd(2, 3, 1);
  assert.deepEqual([c[0], c[10]], [AdminOpc.FW_COMMIT, (2 | 3 << 3 | 1 << 31) >>> 0]);
  const s = sanitizeCmd(3, { ause: true, owpass: 15, oipbp: true, nodas: true, ovrpat: 0xdeadbeef });
  assert.deepEqual([s[0], s[10], s[11]], [AdminOpc.SANITIZE, 3 | 1 << 3 | 15 << 4 | 1 << 8 | 1 << 9, 0xdeadbeef]);
  assert.equal(sanitizeCmd(2)[10], 2);
});

test("namespace management, attachment, AER, descriptors", () => {
  const c = nsCreateCmd(2);
  assert.deepEqual([c[0], c[1], c[10], c[11]], [AdminOpc.NS_MANAGEMENT, 0, 0, 2 << 24]);
  const d = nsDeleteCmd(5);
  assert.deepEqual([d[0], d[1], d[10]], [AdminOpc.NS_MANAGEMENT, 5, 1]);
  assert.deepEqual([nsAttachCmd(4, false)[10], nsAttachCmd(4, true)[10], nsAttachCmd(4, true)[0]], [0, 1, AdminOpc.NS_ATTACHMENT]);
  assert.equal(asyncEventRequestCmd()[0], AdminOpc.ASYNC_EVENT_REQUEST);
  const n = nsDescsCmd(9);
  assert.deepEqual([n[0], n[1], n[10]], [AdminOpc.IDENTIFY, 9, 3]);
});
