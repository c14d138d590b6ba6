// SR-IOV virtualization management (lib/admin/virt.ts over lib/nvme/virt.ts) against the software
// controller's model (lib/sim/virt.ts): primary capabilities, the secondary list, assignment,
// online/offline, and the spec's refusals as typed status errors.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { NvmeStatusError, InvalidArgumentError, SetupError } from "../../../lib/nvme/errors.ts";
import { disableVfs, enableVfs, offlineSecondary, onlineSecondary, primaryCtrlCaps, secondaryCtrlList, VirtAction, virtMgmt, VirtResource } from "../../../lib/admin/virt.ts";
import { encodeSecondaryCtrlList, parsePrimaryCtrlCaps, parseSecondaryCtrlList, virtMgmtCmd } from "../../../lib/nvme/virt.ts";

test("virt layouts: secondary list round trip, primary caps offsets, the command's dwords", () => {
  const d = new Uint8Array(4096);
  const list = [{ scid: 2, pcid: 1, scs: 1, vfn: 1, nvq: 4, nvi: 2 }, { scid: 3, pcid: 1, scs: 0, vfn: 2, nvq: 0, nvi: 0 }];
  encodeSecondaryCtrlList(list, d);
  assert.equal(d[0], 2);
  assert.deepEqual([d[32], d[34], d[36], d[40], d[42], d[44]], [2, 1, 1, 1, 4, 2], "SCID, PCID, SCS, VFN, NVQ, NVI offsets");
  assert.deepEqual(parseSecondaryCtrlList(d), list);
  const p = new Uint8Array(4096);
  p[0] = 1;
  p[4] = 3;
  p[32] = 16;
  p[46] = 1;
  p[64] = 8;
  assert.deepEqual([parsePrimaryCtrlCaps(p).cntlid, parsePrimaryCtrlCaps(p).crt, parsePrimaryCtrlCaps(p).vqfrt, parsePrimaryCtrlCaps(p).vqgran, parsePrimaryCtrlCaps(p).vifrt], [1, 3, 16, 1, 8]);
  const c = virtMgmtCmd(VirtAction.SECONDARY_ASSIGN, VirtResource.VI, 5, 2);
  assert.equal(c[0] & 0xff, 0x1c);
  assert.equal(c[10], (8 | (1 << 8) | (5 << 16)) >>> 0);
  assert.equal(c[11], 2);
});

test("sim sr-iov: caps and secondaries; assign, online, offline; refusals typed", async () => {
  const t = await SimTransport.create({ sriovVfs: 3 });
  await using dev = await NVMeDev.open("sim", { transport: t });
  assert.equal(dev.idCtrl.oacs & 0x80, 0x80, "OACS: Virtualization Management");
  const caps = await primaryCtrlCaps(dev);
  assert.equal(caps.cntlid, dev.idCtrl.cntlid);
  assert.equal(caps.crt, 3);
  assert.equal(caps.vqfrt, 16);
  assert.equal(caps.vqrfa, 0);
  let sec = await secondaryCtrlList(dev);
  assert.deepEqual(sec.map((s) => [s.scid, s.vfn, s.scs, s.nvq, s.nvi]), [[2, 1, 0, 0, 0], [3, 2, 0, 0, 0], [4, 3, 0, 0, 0]]);
  assert.deepEqual((await secondaryCtrlList(dev, 3)).map((s) => s.scid), [3, 4], "from a controller id up");
  const code = (sc: number) => (e: unknown) => e instanceof NvmeStatusError && e.status.sct === 1 && e.status.sc === sc;
  await assert.rejects(virtMgmt(dev, { act: VirtAction.SECONDARY_ONLINE, cntlid: 2 }), code(0x20), "online without resources");
  assert.equal(await virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, rt: VirtResource.VQ, cntlid: 2, nr: 4 }), 4);
  assert.equal(await virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, rt: VirtResource.VI, cntlid: 2, nr: 2 }), 2);
  await assert.rejects(virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, rt: VirtResource.VQ, cntlid: 3, nr: 5 }), code(0x21), "above the secondary maximum");
  await assert.rejects(virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, cntlid: 9, nr: 1 }), code(0x1f), "no such secondary");
  await virtMgmt(dev, { act: VirtAction.SECONDARY_ONLINE, cntlid: 2 });
  await assert.rejects(virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, cntlid: 2, nr: 1 }), code(0x20), "assign while online");
  sec = await secondaryCtrlList(dev);
  assert.deepEqual([sec[0].scs, sec[0].nvq, sec[0].nvi], [1, 4, 2]);
  assert.equal((await primaryCtrlCaps(dev)).vqrfa, 4);
  await virtMgmt(dev, { act: VirtAction.SECONDARY_OFFLINE, cntlid: 2 });
  assert.equal((await secondaryCtrlList(dev))[0].scs, 0);
  assert.equal(await virtMgmt(dev, { act: VirtAction.PRIMARY_FLEXIBLE, cntlid: caps.cntlid, nr: 12 }), 12);
  assert.equal((await primaryCtrlCaps(dev)).vqrfap, 12);
  await assert.rejects(virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, cntlid: 3, nr: 1 }), code(0x21), "the primary kept the rest");
  await assert.rejects(virtMgmt(dev, { act: 3, cntlid: 2 }), InvalidArgumentError);
  t.close();
});

test("sim without sr-iov: the commands are refused", async () => {
  const t = await SimTransport.create({});
  await using dev = await NVMeDev.open("sim", { transport: t });
  assert.equal(dev.idCtrl.oacs & 0x80, 0);
  await assert.rejects(virtMgmt(dev, { act: VirtAction.SECONDARY_OFFLINE, cntlid: 2 }), (e: unknown) => e instanceof NvmeStatusError && e.unsupported);
  await assert.rejects(primaryCtrlCaps(dev), NvmeStatusError);
  t.close();
});

test("sim sr-iov: onlineSecondary assigns the per-secondary maximum (or what is asked) and onlines; VFs need VFIO", async () => {
  const t = await SimTransport.create({ sriovVfs: 2 });
  await using dev = await NVMeDev.open("sim", { transport: t });
  const caps = await primaryCtrlCaps(dev);
  assert.deepEqual(await onlineSecondary(dev, 2), { nvq: caps.vqfrsm, nvi: caps.vifrsm });
  assert.deepEqual(await onlineSecondary(dev, 3, { nvq: 2, nvi: 1 }), { nvq: 2, nvi: 1 });
  let sec = await secondaryCtrlList(dev);
  assert.deepEqual(sec.map((s) => [s.scid, s.scs, s.nvq, s.nvi]), [[2, 1, caps.vqfrsm, caps.vifrsm], [3, 1, 2, 1]]);
  // Online again: offline first, so the reassignment is accepted.
  assert.deepEqual(await onlineSecondary(dev, 3, { nvq: 3, nvi: 1 }), { nvq: 3, nvi: 1 });
  await offlineSecondary(dev, 2);
  sec = await secondaryCtrlList(dev);
  assert.deepEqual(sec.map((s) => s.scs), [0, 1]);
  const code = (sc: number) => (e: unknown) => e instanceof NvmeStatusError && e.status.sct === 1 && e.status.sc === sc;
  await assert.rejects(onlineSecondary(dev, 2, { nvq: 1, nvi: 1 }), code(0x20), "online refuses fewer than 2 VQ");
  await assert.rejects(onlineSecondary(dev, 7), code(0x1f), "no such secondary");
  await assert.rejects(enableVfs(dev, 1), (e) => e instanceof SetupError && e.reason === "sriov" && /VFIO/.test(e.message));
  await assert.rejects(disableVfs(dev), (e) => e instanceof SetupError && e.reason === "sriov");
});
