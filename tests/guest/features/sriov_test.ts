/**
 * Features tier (scripts/guest.sh --feature sriov): QEMU's NVMe with SR-IOV (controller
 * TSNVMESRIOV1, PF at 0000:00:14.0, up to 2 VFs with 8 flexible VQ and 4 VI resources). From the
 * PF's process: the primary gives up its flexible resources (effective after the function level
 * reset VFIO does at open), the VFs are enabled with a VF token and bound to vfio-pci, their
 * secondary controllers get resources and go online; each VF opens only with the token, identifies
 * as its secondary controller and serves IO through its own queues; the PF reads the same blocks
 * (the namespace is shared); then the secondaries go offline and the VFs are disabled.
 * VF 1 follows libvfn's order (VFIO device opened, then the secondary onlined), VF 2 the other one
 * (onlined, then opened); both must serve IO. Each step logs what the VF's BAR and config show.
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import process from "node:process";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SetupError } from "../../../lib/nvme/errors.ts";
import { disableVfs, enableVfs, offlineSecondary, onlineSecondary, primaryCtrlCaps, secondaryCtrlList, VirtAction, virtMgmt, VirtResource } from "../../../lib/admin/virt.ts";
import { newVfToken, sriovInfo } from "../../../lib/vfio/sriov.ts";
import { VfioTransport } from "../../../lib/vfio/transport.ts";
import { loadLibc } from "../../../lib/ffi/mod.ts";
import { decodeCap, Reg } from "../../../lib/nvme/spec.ts";
import { firstDiff, inGuest, randomBytes, runtime } from "../util.ts";

const PF = "0000:00:14.0";
const on = inGuest && (process.env.TSNVME_FEATURES ?? "").split(",").includes("sriov");
const opts = { ignore: !on };
const LBA = runtime === "bun" ? 8192 : 0;

/** PCI config space as sysfs has it (the device's own, not VFIO's virtualized view). */
function config(address: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(`/sys/bus/pci/devices/${address}/config`));
  } catch {
    return new Uint8Array(0);
  }
}

function capOffset(c: Uint8Array, id: number): number {
  for (let p = c[0x34] ?? 0, n = 0; p && n < 48; p = c[p + 1], n++) if (c[p] === id) return p;
  return 0;
}

function extCapOffset(c: Uint8Array, id: number): number {
  const dv = new DataView(c.buffer, c.byteOffset, c.byteLength);
  for (let p = 0x100, n = 0; p && p + 4 <= c.length && n < 64; n++) {
    const h = dv.getUint32(p, true);
    if ((h & 0xffff) === id) return p;
    p = h >>> 20;
  }
  return 0;
}

/** What a VF looks like now: config (command, PM state, MSI-X size), sysfs power state, and BAR0's CAP/CSTS when open. */
function vfState(address: string, t?: VfioTransport): { line: string; css: number } {
  const c = config(address);
  const cmd = c.length > 5 ? c[4] | (c[5] << 8) : -1;
  const pm = capOffset(c, 0x01), mx = capOffset(c, 0x11);
  const d = pm ? c[pm + 4] & 3 : -1;
  const msix = mx ? ((c[mx + 2] | (c[mx + 3] << 8)) & 0x7ff) + 1 : 0;
  let ps = "?";
  try {
    ps = readFileSync(`/sys/bus/pci/devices/${address}/power_state`, "utf8").trim();
  } catch { /* older kernels */ }
  let line = `cmd 0x${cmd.toString(16)} D${d} (${ps}) msix ${msix}`;
  let css = -1;
  if (t) {
    const cap = t.readReg64(Reg.CAP);
    css = decodeCap(cap).css;
    line += ` CAP 0x${cap.toString(16)} CSTS 0x${t.readReg32(Reg.CSTS).toString(16)}`;
  }
  return { line, css };
}

/** BAR0's range as sysfs has it (the kernel's view of where the BAR is). */
function resource0(address: string): string {
  try {
    return readFileSync(`/sys/bus/pci/devices/${address}/resource`, "utf8").split("\n")[0];
  } catch {
    return "?";
  }
}

/** The host bridge windows and the SR-IOV controller's ranges from /proc/iomem. */
function iomemPci(): string {
  try {
    return readFileSync("/proc/iomem", "utf8").split("\n").filter((l) => /PCI Bus|00:14\.|vfio/.test(l)).map((l) => l.trim()).join("; ");
  } catch {
    return "?";
  }
}

function pfSriov(): string {
  const c = config(PF);
  const o = extCapOffset(c, 0x10);
  if (!o) return "no SR-IOV capability in config";
  return `SR-IOV ctrl 0x${(c[o + 8] | (c[o + 9] << 8)).toString(16)} numvfs ${c[o + 0x10] | (c[o + 0x11] << 8)}`;
}

test("sriov: VFs enabled with a VF token, their secondaries online, each VF opened through VFIO serves IO", async () => {
  const seed = (Date.now() ^ 0x5e1) >>> 0;
  const log = (s: string) => console.log(`[${runtime}] ${s}`);
  log(`sriov seed ${seed}`);
  {
    // QEMU's primary starts with every flexible resource; give them up (applied at the next FLR).
    await using pf = await NVMeDev.open(PF);
    const caps = await primaryCtrlCaps(pf);
    log(`primary caps ${JSON.stringify(caps)}`);
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
  log(`VFs ${JSON.stringify(vfs)}; PF ${pfSriov()}`);
  for (const a of [PF, ...vfs.map((v) => v.address)]) log(`${a} resource0 ${resource0(a)}`);
  log(`iomem windows: ${iomemPci()}`);
  assert.deepEqual(vfs.map((v) => [v.vfn, v.address, v.driver]), [[1, "0000:00:14.1", "vfio-pci"], [2, "0000:00:14.2", "vfio-pci"]]);
  assert.equal(sriovInfo(PF)?.numVfs, 2);
  const libc = await loadLibc();
  const transports: VfioTransport[] = [];
  const failures: string[] = [];
  try {
    await assert.rejects(NVMeDev.open(vfs[0].address), (e) => e instanceof SetupError && e.reason === "vf-token", "no token");
    await assert.rejects(NVMeDev.open(vfs[0].address, { vfToken: newVfToken() }), (e) => e instanceof SetupError && e.reason === "vf-token", "wrong token");
    for (const v of vfs) assert.ok(v.scid !== null, `VF ${v.vfn} has a secondary controller`);

    const written: Uint8Array[] = [];
    for (const [i, v] of vfs.entries()) {
      const tag = `VF ${v.vfn} (${v.address}, scid ${v.scid})`;
      log(`${tag} closed: ${vfState(v.address).line}`);
      let t: VfioTransport | undefined;
      if (i === 0) {
        // libvfn's order: the VF's VFIO device is opened (VFIO resets the function) first.
        t = VfioTransport.open(libc, v.address, { vfToken: token });
        transports.push(t);
        log(`${tag} opened, offline: ${vfState(v.address, t).line}`);
      }
      assert.deepEqual(await onlineSecondary(pf, v.scid!), { nvq: caps.vqfrsm, nvi: caps.vifrsm });
      log(`${tag} online: ${vfState(v.address, t).line}; PF ${pfSriov()}`);
      if (!t) {
        t = VfioTransport.open(libc, v.address, { vfToken: token });
        transports.push(t);
      }
      const st = vfState(v.address, t);
      log(`${tag} open and online: ${st.line}; resource0 ${resource0(v.address)}`);
      // All zeros from a VF whose secondary is online: the BAR is not where the kernel put it (see the sriov arm of scripts/guest.sh).
      if ((st.css & 1) === 0) log(`${tag}: BAR0 reads zeros; host bridge windows: ${iomemPci()}`);
      const s = (await secondaryCtrlList(pf)).find((x) => x.scid === v.scid);
      log(`${tag} secondary entry ${JSON.stringify(s)}`);
      try {
        await using vf = await NVMeDev.open(v.address, { transport: t });
        log(`${tag}: cntlid ${vf.info.cntlid}, ${vf.info.ioQueues} IO queues, ${vf.info.interrupts}`);
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
      } catch (e) {
        log(`${tag} failed: ${(e as Error).stack}`);
        failures.push(`${tag}: ${(e as Error).message}`);
      }
    }
    assert.deepEqual(failures, [], "every VF serves IO");
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
