/**
 * Features tier (scripts/guest.sh --feature sriov): QEMU's NVMe with SR-IOV (controller
 * TSNVMESRIOV1, PF at 0000:00:14.0, up to 2 VFs with 8 flexible VQ and 4 VI resources). From the
 * PF's process: the primary gives up its flexible resources (effective after the function level
 * reset VFIO does at open), the VFs are enabled with a VF token and bound to vfio-pci, their
 * secondary controllers get resources and go online; each VF opens only with the token, identifies
 * as its secondary controller and serves IO through its own queues; the PF reads the same blocks
 * (the namespace is shared); then the secondaries go offline and the VFs are disabled.
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SetupError } from "../../../lib/nvme/errors.ts";
import { disableVfs, enableVfs, offlineSecondary, onlineSecondary, primaryCtrlCaps, secondaryCtrlList, VirtAction, virtMgmt, VirtResource } from "../../../lib/admin/virt.ts";
import { newVfToken, sriovInfo } from "../../../lib/vfio/sriov.ts";
import { VfioTransport } from "../../../lib/vfio/transport.ts";
import { loadLibc } from "../../../lib/ffi/mod.ts";
import { Reg } from "../../../lib/nvme/spec.ts";
import { firstDiff, inGuest, randomBytes, runtime } from "../util.ts";

const PF = "0000:00:14.0";
const on = inGuest && (process.env.TSNVME_FEATURES ?? "").split(",").includes("sriov");
const opts = { ignore: !on };
const LBA = runtime === "bun" ? 8192 : 0;

test("sriov: VFs enabled with a VF token, their secondaries online, each VF opened through VFIO serves IO", async () => {
  const seed = (Date.now() ^ 0x5e1) >>> 0;
  console.log(`[${runtime}] sriov seed ${seed}`);
  {
    // QEMU's primary starts with every flexible resource; give them up (applied at the next FLR).
    await using pf = await NVMeDev.open(PF);
    const caps = await primaryCtrlCaps(pf);
    console.log(`[${runtime}] primary caps ${JSON.stringify(caps)}`);
    assert.equal(caps.crt & 3, 3, "VQ and VI resources");
    assert.equal(caps.vqfrt, 8);
    assert.equal(caps.vifrt, 4);
    await virtMgmt(pf, { act: VirtAction.PRIMARY_FLEXIBLE, rt: VirtResource.VQ, cntlid: caps.cntlid, nr: 0 });
    await virtMgmt(pf, { act: VirtAction.PRIMARY_FLEXIBLE, rt: VirtResource.VI, cntlid: caps.cntlid, nr: 0 });
  }
  await using pf = await NVMeDev.open(PF);
  const caps = await primaryCtrlCaps(pf);
  assert.deepEqual([caps.vqrfap, caps.virfap], [0, 0], "the primary holds no flexible resources after the reset");
  let sec = await secondaryCtrlList(pf);
  assert.deepEqual(sec.map((s) => [s.vfn, s.scs]), [[1, 0], [2, 0]]);

  const { token, vfs } = await enableVfs(pf, 2);
  console.log(`[${runtime}] VFs ${JSON.stringify(vfs)}`);
  assert.deepEqual(vfs.map((v) => [v.vfn, v.address, v.driver]), [[1, "0000:00:14.1", "vfio-pci"], [2, "0000:00:14.2", "vfio-pci"]]);
  assert.equal(sriovInfo(PF)?.numVfs, 2);
  const transports: VfioTransport[] = [];
  try {
    await assert.rejects(NVMeDev.open(vfs[0].address), (e) => e instanceof SetupError && e.reason === "vf-token", "no token");
    await assert.rejects(NVMeDev.open(vfs[0].address, { vfToken: newVfToken() }), (e) => e instanceof SetupError && e.reason === "vf-token", "wrong token");
    // libvfn's order: each VF's VFIO device is opened (VFIO resets the function) before its
    // secondary goes online; the controller is then brought up over that transport.
    const libc = await loadLibc();
    for (const v of vfs) transports.push(VfioTransport.open(libc, v.address, { vfToken: token }));
    for (const v of vfs) {
      assert.ok(v.scid !== null, `VF ${v.vfn} has a secondary controller`);
      assert.deepEqual(await onlineSecondary(pf, v.scid!), { nvq: caps.vqfrsm, nvi: caps.vifrsm });
    }
    sec = await secondaryCtrlList(pf);
    assert.deepEqual(sec.map((s) => [s.scs, s.nvq, s.nvi]), [[1, caps.vqfrsm, caps.vifrsm], [1, caps.vqfrsm, caps.vifrsm]]);
    for (const t of transports) {
      console.log(`[${runtime}] ${t.name}: CAP 0x${t.readReg64(Reg.CAP).toString(16)}, CSTS 0x${t.readReg32(Reg.CSTS).toString(16)}`);
    }

    const written: Uint8Array[] = [];
    for (const [i, v] of vfs.entries()) {
      await using vf = await NVMeDev.open(v.address, { transport: transports[i] });
      console.log(`[${runtime}] VF ${v.address}: cntlid ${vf.info.cntlid}, ${vf.info.ioQueues} IO queues, ${vf.info.interrupts}`);
      assert.equal(vf.info.cntlid, v.scid, "the VF's controller is its secondary controller");
      assert.deepEqual(vf.nsList(), [1], "the shared namespace is attached to the VF");
      const ns = vf.ns(1);
      const data = randomBytes(64 * 1024, seed + i);
      const lba = LBA + i * 1024;
      await ns.write(lba, data);
      const back = new Uint8Array(data.length);
      await ns.read(lba, back);
      assert.equal(firstDiff(back, data), -1, "VF reads what it wrote");
      written.push(data);
    }
    // The PF sees the VFs' writes: same namespace.
    for (const [i, data] of written.entries()) {
      const back = new Uint8Array(data.length);
      await pf.ns(1).read(LBA + i * 1024, back);
      assert.equal(firstDiff(back, data), -1, `PF reads VF ${i + 1}'s blocks`);
    }
    for (const v of vfs) await offlineSecondary(pf, v.scid!);
    sec = await secondaryCtrlList(pf);
    assert.deepEqual(sec.map((s) => [s.scs, s.nvq, s.nvi]), [[0, 0, 0], [0, 0, 0]], "offline returns the resources");
  } finally {
    for (const t of transports) t.close(); // idempotent; a VF left open would block the disable
    await disableVfs(pf);
  }
  assert.equal(sriovInfo(PF)?.numVfs, 0);
  assert.deepEqual(sriovInfo(PF)?.vfs, []);
}, opts);
