import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { parseSimSpec, SimStatus } from "../../../lib/sim/options.ts";
import {
  createIoCqCmd,
  createIoSqCmd,
  deleteIoCqCmd,
  getFeaturesCmd,
  getLogPageCmd,
  identifyCmd,
  type Sqe,
  setFeaturesCmd,
  sqe,
} from "../../../lib/nvme/command.ts";
import { AdminOpc, Fid } from "../../../lib/nvme/spec.ts";
import { InvalidArgumentError, type NvmeStatusError } from "../../../lib/nvme/errors.ts";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const code = (e: unknown) => (e as NvmeStatusError).status?.code;

async function withDev(fn: (dev: NVMeDev, t: SimTransport, adm: (s: Sqe, len?: number) => Promise<[number, DataView]>) => Promise<void>, spec = "sim:sanitize=400;selftest=300") {
  const t = await SimTransport.create(spec);
  const dev = await NVMeDev.open("sim", { transport: t });
  const buf = dev.allocBuffer(8192);
  const adm = async (s: Sqe, len = 0): Promise<[number, DataView]> => {
    buf.fill(0);
    const dw0 = await dev.controller.adminCommand(s, len ? t.iovaOf(buf) : 0, len);
    return [dw0, new DataView(buf.buffer, buf.byteOffset, 8192)];
  };
  try {
    await fn(dev, t, adm);
  } finally {
    await dev.close();
  }
}

test("sim spec syntax", () => {
  assert.deepEqual(parseSimSpec("sim"), {});
  assert.deepEqual(parseSimSpec("sim:ns=64M:512,16M:4096@/tmp/x.img;queues=4;mdts=6"), {
    namespaces: [{ size: 64 << 20, blockSize: 512 }, { size: 16 << 20, blockSize: 4096, path: "/tmp/x.img" }],
    maxQueues: 4,
    mdts: 6,
  });
  assert.throws(() => parseSimSpec("sim:ns=1M:1000"), InvalidArgumentError);
  assert.throws(() => parseSimSpec("sim:bogus=1"), InvalidArgumentError);
  assert.throws(() => parseSimSpec("vfio:01:00.0"), InvalidArgumentError);
});

test("sim admin: queues, logs, features, async events", () => {
  return withDev(async (dev, t, adm) => {
    const st = (p: Promise<unknown>, c: number) => assert.rejects(p, (e) => code(e) === c);
    // Queue creation errors.
    const cq = dev.allocBuffer(4096);
    const withBase = (s: Sqe) => (s[6] = t.iovaOf(cq) % 2 ** 32, s[7] = Math.floor(t.iovaOf(cq) / 2 ** 32), s);
    await st(adm(withBase(createIoCqCmd(0, 16))), SimStatus.INVALID_QID);
    await st(adm(withBase(createIoCqCmd(1, 16))), SimStatus.INVALID_QID); // exists
    await st(adm(withBase(createIoCqCmd(5, 1))), SimStatus.INVALID_QUEUE_SIZE);
    await st(adm(withBase(createIoCqCmd(5, 4096))), SimStatus.INVALID_QUEUE_SIZE);
    await st(adm(withBase(createIoSqCmd(5, 16, 7))), SimStatus.CQ_INVALID);
    await st(adm(deleteIoCqCmd(1)), SimStatus.INVALID_QUEUE_DELETION);
    await st(adm(deleteIoCqCmd(6)), SimStatus.INVALID_QID);
    await st(adm(sqe(0x7f)), SimStatus.INVALID_OPCODE);
    await st(adm(identifyCmd(0x55), 4096), SimStatus.INVALID_FIELD);
    await st(adm(identifyCmd(0, 99), 4096), SimStatus.INVALID_NAMESPACE);
    // Logs with offsets.
    let [, v] = await adm(getLogPageCmd(0x02, 512), 512);
    assert.equal(v.getUint16(1, true), 310, "composite temperature");
    assert.ok(v.getUint32(112, true) >= 1, "power cycles");
    [, v] = await adm(getLogPageCmd(0x02, 8, { offset: 112 }), 8);
    assert.ok(v.getUint32(0, true) >= 1, "offset honoured");
    await st(adm(getLogPageCmd(0x02, 8, { offset: 2 }), 8), SimStatus.INVALID_FIELD);
    await st(adm(getLogPageCmd(0x02, 512, { nsid: 1 }), 512), SimStatus.INVALID_FIELD);
    await st(adm(getLogPageCmd(0x77, 512), 512), SimStatus.INVALID_LOG_PAGE);
    [, v] = await adm(getLogPageCmd(0x05, 4096), 4096);
    assert.equal(v.getUint32(AdminOpc.SANITIZE * 4, true) & 1, 1);
    assert.equal(v.getUint32(1024 + 0x19 * 4, true) & 1, 1, "copy supported");
    [, v] = await adm(getLogPageCmd(0x01, 64), 64);
    assert.ok(v.getBigUint64(0, true) >= 1n, "error log has the failures above");
    // Features.
    await adm(setFeaturesCmd(Fid.TEMP_THRESHOLD, 350));
    assert.equal((await adm(getFeaturesCmd(Fid.TEMP_THRESHOLD)))[0], 350);
    assert.equal((await adm(getFeaturesCmd(Fid.TEMP_THRESHOLD, { sel: 1 })))[0], 343);
    await adm(setFeaturesCmd(Fid.VOLATILE_WC, 0));
    assert.equal((await adm(getFeaturesCmd(Fid.VOLATILE_WC)))[0], 0);
    await adm(setFeaturesCmd(Fid.ARBITRATION, 3, { save: true }));
    assert.equal((await adm(getFeaturesCmd(Fid.ARBITRATION, { sel: 2 })))[0], 3);
    // The driver asks for 16 IO queues at start-up (queues on demand); the sim grants its 8 (0-based 7).
    assert.equal((await adm(getFeaturesCmd(Fid.NUM_QUEUES)))[0], 0x0007_0007);
    await st(adm(setFeaturesCmd(Fid.NUM_QUEUES, 0x00030003)), SimStatus.COMMAND_SEQUENCE_ERROR);
    await st(adm(setFeaturesCmd(Fid.POWER_MGMT, 3)), SimStatus.INVALID_FIELD);
    await st(adm(getFeaturesCmd(0x7e)), SimStatus.INVALID_FIELD);
    const ts = sqe(AdminOpc.SET_FEATURES);
    ts[10] = Fid.TIMESTAMP;
    const buf = dev.allocBuffer(4096);
    new DataView(buf.buffer, buf.byteOffset).setUint32(0, 1_000_000, true);
    await dev.controller.adminCommand(ts, t.iovaOf(buf), 8);
    [, v] = await adm(getFeaturesCmd(Fid.TIMESTAMP), 8);
    assert.ok(v.getUint32(0, true) >= 1_000_000 && v.getUint32(0, true) < 1_010_000);
    // Async events: SMART critical warning completes an outstanding AER.
    const aer = dev.controller.adminCommand(sqe(AdminOpc.ASYNC_EVENT_REQUEST), 0, 0, 10_000);
    await t.faults.smartWarning(0x04);
    const ev = await aer;
    assert.equal(ev & 7, 1, "SMART / health event");
    assert.equal((ev >>> 16) & 0xff, 0x02, "log page 02h");
    [, v] = await adm(getLogPageCmd(0x02, 512), 512);
    assert.equal(v.getUint8(0), 0x04);
  });
});

test("sim admin: format, self-test, firmware download and commit", () => {
  return withDev(async (dev, t, adm) => {
    const st = (p: Promise<unknown>, c: number) => assert.rejects(p, (e) => code(e) === c);
    await dev.ns(1).write(0, new Uint8Array(512).fill(7));
    const fmt = (nsid: number, cdw10: number) => (s => (s[10] = cdw10, s))(sqe(AdminOpc.FORMAT_NVM, nsid));
    await st(adm(fmt(1, 5)), SimStatus.INVALID_FORMAT);
    await adm(fmt(1, 1)); // LBA format 1: 4096-byte blocks, media erased
    await dev.rescan();
    assert.equal(dev.ns(1).blockSize, 4096);
    const b = new Uint8Array(4096);
    await dev.ns(1).read(0, b);
    assert.ok(b.every((x) => x === 0));
    // Self-test: short runs with progress, extended aborted.
    const dst = (stc: number, nsid = 0xffffffff) => (s => (s[10] = stc, s))(sqe(AdminOpc.DEVICE_SELF_TEST, nsid));
    await adm(dst(1));
    await st(adm(dst(2)), SimStatus.SELF_TEST_IN_PROGRESS);
    let [, v] = await adm(getLogPageCmd(0x06, 564), 564);
    assert.equal(v.getUint8(0), 1, "short test running");
    // Windows of a few hundred ms: "still running" holds on a loaded machine; then poll until done.
    for (let i = 0; i < 500 && v.getUint8(0) !== 0; i++) {
      await sleep(10);
      [, v] = await adm(getLogPageCmd(0x06, 564), 564);
    }
    assert.equal(v.getUint8(0), 0);
    assert.equal(v.getUint8(4), 0x10, "short, no error");
    await adm(dst(2));
    await adm(dst(0xf));
    [, v] = await adm(getLogPageCmd(0x06, 564), 564);
    assert.equal(v.getUint8(4), 0x21, "extended, aborted by a self-test command");
    // Firmware: download in FWUG units, commit to slot 2, activate on reset.
    const img = dev.allocBuffer(8192);
    img.set(new TextEncoder().encode("2.0-SIM "));
    const dl = (off: number, len: number, iova: number) => {
      const s = sqe(AdminOpc.FW_IMAGE_DOWNLOAD);
      s[10] = len / 4 - 1;
      s[11] = off / 4;
      return dev.controller.adminCommand(s, iova, len);
    };
    await st(dl(0, 1024, t.iovaOf(img)), SimStatus.INVALID_FIELD); // not a FWUG multiple
    await dl(0, 4096, t.iovaOf(img));
    await dl(4096, 4096, t.iovaOf(img) + 4096);
    const commit = (fs: number, ca: number) => (s => (s[10] = fs | (ca << 3), s))(sqe(AdminOpc.FW_COMMIT));
    await st(adm(commit(1, 1)), SimStatus.INVALID_FW_SLOT); // read-only slot 1
    await st(adm(commit(5, 1)), SimStatus.INVALID_FW_SLOT);
    await adm(commit(2, 1));
    [, v] = await adm(getLogPageCmd(0x03, 512), 512);
    assert.equal(v.getUint8(0), 0x21, "active 1, next 2");
    assert.equal(new TextDecoder().decode(new Uint8Array(v.buffer, v.byteOffset + 16, 7)), "2.0-SIM");
    await st(adm(commit(3, 2)), SimStatus.INVALID_FW_IMAGE); // empty slot
    await st(adm(commit(3, 0)), SimStatus.INVALID_FW_IMAGE); // image consumed by the last commit
    assert.deepEqual((await t.state()).firmware, { active: 1, next: 2, slots: ["1.0", "2.0-SIM", ""] });
    await adm(commit(1, 3)); // activate slot 1 at once
    assert.equal((await t.state()).firmware.active, 1);
  });
});

test("sim admin: sanitize (block, crypto, overwrite) and namespace management", () => {
  return withDev(async (dev, t, adm) => {
    const st = (p: Promise<unknown>, c: number) => assert.rejects(p, (e) => code(e) === c);
    const san = (cdw10: number, cdw11 = 0) => (s => (s[10] = cdw10, s[11] = cdw11, s))(sqe(AdminOpc.SANITIZE));
    const waitDone = async () => {
      for (let i = 0; i < 500; i++) {
        const [, v] = await adm(getLogPageCmd(0x81, 512), 512);
        if ((v.getUint16(2, true) & 7) !== 2) return v;
        await sleep(10);
      }
      throw new Error("sanitize did not finish");
    };
    for (const [action, cdw10, cdw11, expect] of [
      ["block", 2, 0, 0],
      ["crypto", 4, 0, 0],
      ["overwrite", 3 | (2 << 4) | (1 << 8), 0xa5a5a5a5, 0x5a],
    ] as const) {
      await dev.ns(1).write(0, new Uint8Array(512).fill(9));
      await adm(san(cdw10, cdw11));
      await st(dev.ns(1).read(0, new Uint8Array(512)), SimStatus.SANITIZE_IN_PROGRESS);
      await st(adm(san(2)), SimStatus.SANITIZE_IN_PROGRESS);
      const [, v] = await adm(getLogPageCmd(0x81, 512), 512);
      assert.equal(v.getUint16(2, true) & 7, 2, `${action} in progress`);
      assert.ok(v.getUint16(0, true) < 0xffff, "SPROG");
      const done = await waitDone();
      assert.equal(done.getUint16(2, true) & 7, 1, `${action} completed`);
      assert.equal(done.getUint32(4, true), cdw10, "SCDW10");
      const r = new Uint8Array(512);
      await dev.ns(1).read(0, r);
      assert.ok(r.every((x) => x === expect), `${action}: media erased`);
    }
    // SANICAP honoured.
    await withDevInner();
    // Namespace management: create, attach, IO, detach, delete.
    const data = dev.allocBuffer(4096);
    const dv = new DataView(data.buffer, data.byteOffset, 4096);
    dv.setUint32(0, 2048, true);
    dv.setUint32(8, 2048, true);
    data[26] = 1;
    const mk = sqe(AdminOpc.NS_MANAGEMENT);
    const nsid = await dev.controller.adminCommand(mk, t.iovaOf(data), 4096);
    assert.equal(nsid, 3);
    const ctrls = dev.allocBuffer(4096);
    new DataView(ctrls.buffer, ctrls.byteOffset).setUint32(0, 0x0001_0001, true); // one id: 1
    const att = (sel: number, id: number) => (s => (s[10] = sel, s))(sqe(AdminOpc.NS_ATTACHMENT, id));
    await dev.controller.adminCommand(att(0, nsid), t.iovaOf(ctrls), 4096);
    await assert.rejects(dev.controller.adminCommand(att(0, nsid), t.iovaOf(ctrls), 4096), (e) => code(e) === SimStatus.NS_ALREADY_ATTACHED);
    await dev.rescan();
    assert.deepEqual(dev.nsList(), [1, 2, 3]);
    assert.equal(dev.ns(3).blockSize, 4096);
    await dev.ns(3).write(5, new Uint8Array(4096).fill(1));
    await dev.controller.adminCommand(att(1, nsid), t.iovaOf(ctrls), 4096);
    await dev.rescan();
    assert.deepEqual(dev.nsList(), [1, 2]);
    const del = sqe(AdminOpc.NS_MANAGEMENT, nsid);
    del[10] = 1;
    await adm(del);
    await st(adm(del), SimStatus.INVALID_NAMESPACE);
    dv.setUint32(0, 0x7fffffff, true);
    dv.setUint32(8, 0x7fffffff, true);
    await assert.rejects(dev.controller.adminCommand(mk, t.iovaOf(data), 4096), (e) => code(e) === SimStatus.NS_INSUFFICIENT_CAPACITY);
  });
});

async function withDevInner(): Promise<void> {
  await withDev(async (_dev, _t, adm) => {
    const s = sqe(AdminOpc.SANITIZE);
    s[10] = 4;
    await assert.rejects(adm(s), (e) => code(e) === SimStatus.INVALID_FIELD);
  }, "sim:sanicap=2");
}
