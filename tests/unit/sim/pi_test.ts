/** The software controller's metadata and PI model: identify fields, format, statuses, injected errors. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { parseSimSpec, SimStatus, type SimOptions } from "../../../lib/sim/options.ts";
import { formatNvm } from "../../../lib/admin/manage.ts";
import { formatNvmCmd, identifyCmd, setRw, sqe } from "../../../lib/nvme/command.ts";
import { Cns, IoOpc } from "../../../lib/nvme/spec.ts";
import { Ctratt, elbafAt, IdNsOffset } from "../../../lib/nvme/identify.ts";
import { NvmePiError, type NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { Dpc, Mc, PiCmdDw, Prinfo, prinfoBits } from "../../../lib/nvme/pi.ts";

async function open(sim: SimOptions = { piFormats: true }): Promise<{ dev: NVMeDev; t: SimTransport }> {
  const t = await SimTransport.create({ namespaces: [{ size: 1 << 20, blockSize: 512 }], ...sim });
  return { dev: await NVMeDev.open("sim", { transport: t }), t };
}

const code = (e: unknown) => (e as NvmeStatusError).status.code;

test("sim/pi: `pi=1` offers formats 2-7 with metadata, MC, DPC, ELBAF guard sizes and CTRATT.ELBAS", async () => {
  assert.equal(parseSimSpec("sim:pi=1").piFormats, true);
  const { dev } = await open();
  try {
    const n = dev.idNs(1);
    assert.equal(n.nlbaf, 7);
    assert.deepEqual(n.lbafs.map((l) => [l.ds, l.ms]), [[9, 0], [12, 0], [9, 8], [12, 8], [12, 16], [9, 16], [12, 64], [12, 64]]);
    assert.equal(n.mc, Mc.EXTENDED | Mc.SEPARATE);
    assert.equal(n.dpc, 0x1f & (Dpc.TYPE1 | Dpc.TYPE2 | Dpc.TYPE3 | Dpc.FIRST | Dpc.LAST));
    assert.equal(n.dps, 0);
    assert.equal(dev.ns(1).pi, null);
    assert.ok(dev.idCtrl.ctratt & Ctratt.ELBAS);
    const nvm = await dev.controller.identify(identifyCmd(Cns.CSI_NS, 1, 0, 0));
    assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 7].map((i) => elbafAt(nvm, i).pif), [0, 0, 0, 0, 2, 2, 0, 2]);
    await formatNvm(dev, 1, { lbaf: 7, pi: 2, pil: true, mset: true });
    const m = dev.idNs(1);
    assert.equal(m.flbas, 0x17);
    assert.equal(m.dps, 2 | 8);
    const f = dev.ns(1).pi!;
    assert.deepEqual([f.type, f.guard, f.extended, f.first, f.piOffset, f.metadataSize], [2, 64, true, true, 0, 64]);
    assert.equal(dev.ns(1).blockCount, 256);
  } finally {
    await dev.close();
  }
});

test("sim/pi: format refusals; without `pi` the old two formats only", async () => {
  const { dev } = await open({});
  try {
    assert.equal(dev.idNs(1).nlbaf, 1);
    await assert.rejects(dev.controller.adminCommand(formatNvmCmd(1, { lbaf: 0, pi: 1 })), (e) => code(e) === SimStatus.INVALID_FORMAT);
    await assert.rejects(dev.controller.adminCommand(formatNvmCmd(1, { lbaf: 2 })), (e) => code(e) === SimStatus.INVALID_FORMAT);
  } finally {
    await dev.close();
  }
  const p = await open();
  try {
    await assert.rejects(p.dev.controller.adminCommand(formatNvmCmd(1, { lbaf: 1, pi: 1 })), (e) => code(e) === SimStatus.INVALID_FORMAT);
    await p.dev.controller.adminCommand(formatNvmCmd(1, { lbaf: 2, pi: 0 })); // metadata without PI
    await p.dev.rescan();
    const f = p.dev.ns(1).pi!;
    assert.deepEqual([f.type, f.metadataSize, f.extended], [0, 8, false]);
    const data = new Uint8Array(1024).fill(3), meta = new Uint8Array(16).fill(9);
    await p.dev.ns(1).write(4, data, { metadata: meta });
    const d2 = new Uint8Array(1024), m2 = new Uint8Array(16);
    await p.dev.ns(1).read(4, d2, { metadata: m2 });
    assert.deepEqual([d2, m2], [data, meta]);
    await assert.rejects(p.dev.ns(1).read(4, d2, { metadata: m2, pract: true }), /no protection information/);
  } finally {
    await p.dev.close();
  }
});

test("sim/pi: type 1 refuses a reference tag that is not the LBA (Invalid Protection Information); injected statuses are typed", async () => {
  const { dev, t } = await open();
  try {
    await formatNvm(dev, 1, { lbaf: 2, pi: 1, mset: true });
    const ns = dev.ns(1);
    await ns.write(10, new Uint8Array(512).fill(1));
    await assert.rejects(ns.read(10, new Uint8Array(520), { pract: false, refTag: 11 }), (e) => code(e) === SimStatus.INVALID_PROTECTION_INFO);
    await ns.read(10, new Uint8Array(520), { pract: false, refTag: 11, prchk: Prinfo.PRCHK_GUARD });
    // A raw command: PRINFO and the tags where the specification puts them.
    const q = dev.controller.io[0];
    const cmd = sqe(IoOpc.VERIFY, 1);
    setRw(cmd, IoOpc.VERIFY, 1, 10, 0, prinfoBits(Prinfo.PRCHK_REF));
    cmd[PiCmdDw.REFTAG_LO] = 10;
    await q.submit(cmd, 0, 0);
    for (const [status, check] of [[0x282, "guard"], [0x283, "app"], [0x284, "ref"]] as const) {
      const id = await t.faults.add({ action: "status", queue: "io", opcode: IoOpc.READ, status, count: 1 });
      await assert.rejects(ns.read(10, new Uint8Array(512)), (e) => e instanceof NvmePiError && e.check === check);
      await t.faults.remove(id);
    }
    assert.equal(await t.faults.corruptPi(1, 10, "app"), true);
    await assert.rejects(ns.read(10, new Uint8Array(512), { prchk: Prinfo.PRCHK_APP }), (e) => e instanceof NvmePiError && e.check === "app");
    assert.equal(await t.faults.corruptPi(2, 0, "guard"), false);
    assert.equal(await t.faults.corruptPi(1, 1 << 20, "guard"), false);
    assert.equal(dev.idNs(1).dps & 7, 1);
    assert.equal(dev.idNs(1).flbas & 0x10, 0x10);
    assert.equal(IdNsOffset.DPS, 29);
  } finally {
    await dev.close();
  }
});
