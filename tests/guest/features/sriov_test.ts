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
 * Then, with the VFs disabled, the PF on the kernel nvme driver: nvme-cli's primary-ctrl-caps,
 * list-secondary and virt-mgmt, and tsnvme's CLI on vfio-pci with the same commands: equal JSON and text.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SetupError } from "../../../lib/nvme/errors.ts";
import { disableVfs, enableVfs, offlineSecondary, onlineSecondary, primaryCtrlCaps, secondaryCtrlList, VirtAction, virtMgmt, VirtResource } from "../../../lib/admin/virt.ts";
import { newVfToken, sriovInfo } from "../../../lib/vfio/sriov.ts";
import { VfioTransport } from "../../../lib/vfio/transport.ts";
import { loadLibc } from "../../../lib/ffi/mod.ts";
import { decodeCap, Reg } from "../../../lib/nvme/spec.ts";
import { nvme, ours } from "./cli.ts";
import { formatVirtMgmt, primaryCtrlCapsToJson, secondaryListToJson } from "../../../lib/cli/virt.ts";
import { bind, firstDiff, inGuest, randomBytes, runtime } from "../util.ts";

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

const bindPf = (driver: "vfio" | "nvme") => bind(driver, PF);

// Queries with no side effect: each CLI run opens the PF afresh (VFIO's function reset takes every
// secondary offline, as the kernel's controller reset does), so these see the same state on both.
const QUERIES: Record<string, string[]> = {
  capsj: ["primary-ctrl-caps", "-o", "json"],
  caps: ["primary-ctrl-caps"],
  capsh: ["primary-ctrl-caps", "-H"],
  listj: ["list-secondary", "-o", "json"],
  list: ["list-secondary"],
  list1j: ["list-secondary", "-e", "1", "-o", "json"],
  list1: ["list-secondary", "-e", "1"],
};

test("sriov: primary-ctrl-caps, list-secondary and virt-mgmt equal nvme-cli's on the kernel driver (VFs disabled)", async () => {
  const log = (s: string) => console.log(`[${runtime}] ${s}`);
  // After the test above: VFs disabled, secondaries offline, the primary holding no flexible
  // resources, so the secondaries can be assigned some without VFs.
  assert.equal(sriovInfo(PF)?.numVfs, 0);
  const k: Record<string, string> = {};
  let scid = 0;
  bindPf("nvme");
  try {
    const ctrl = `/dev/${readdirSync(`/sys/bus/pci/devices/${PF}/nvme`)[0]}`;
    for (const [key, a] of Object.entries(QUERIES)) k[key] = nvme([a[0], ctrl, ...a.slice(1)]);
    scid = JSON.parse(k.listj)["secondary-controllers"][1]["secondary-controller-identifier"];
    k.listc = nvme(["list-secondary", ctrl, "-c", String(scid)]);
    // With resources assigned (no reset in between on the kernel driver: one open PF on ours too).
    k.vq = nvme(["virt-mgmt", ctrl, "-c", String(scid), "-a", "8", "-r", "0", "-n", "2"]);
    k.vi = nvme(["virt-mgmt", ctrl, "-c", String(scid), "-a", "8", "-r", "1", "-n", "1"]);
    k.assignedj = nvme(["list-secondary", ctrl, "-o", "json"]);
    k.capsAssignedj = nvme(["primary-ctrl-caps", ctrl, "-o", "json"]);
    k.off = nvme(["virt-mgmt", ctrl, "-c", String(scid), "-a", "7"]);
    k.offj = nvme(["list-secondary", ctrl, "-o", "json"]);
  } finally {
    bindPf("vfio");
  }
  for (const [key, v] of Object.entries(k)) log(`nvme-cli ${key}: ${v.trim().replace(/\s+/g, " ")}`);
  const caps = JSON.parse(k.capsj);
  assert.deepEqual([caps.crt, caps.vqfrt, caps.vifrt, caps.vqrfap, caps.virfap], [3, 8, 4, 0, 0], "QEMU's primary, flexible resources given up");
  assert.deepEqual(JSON.parse(k.assignedj)["secondary-controllers"][1]["num-virtual-queues"], 2, "the kernel-side assignment took");
  for (const [key, a] of Object.entries(QUERIES)) {
    const got = await ours([a[0], PF, ...a.slice(1)]);
    if (key.endsWith("j")) assert.deepEqual(JSON.parse(got), JSON.parse(k[key]), `${a.join(" ")} JSON`);
    else assert.equal(got, k[key], `${a.join(" ")} text`);
  }
  assert.equal(await ours(["list-secondary", PF, "-c", String(scid)]), k.listc, "list-secondary -c text");
  assert.equal(await ours(["virt-mgmt", PF, "-c", String(scid), "-a", "8", "-r", "0", "-n", "2"]), k.vq, "virt-mgmt assign VQ text");
  {
    // The same sequence on one open PF (a CLI run's close resets the PF), through the CLI's formatters.
    await using pf = await NVMeDev.open(PF);
    await offlineSecondary(pf, scid);
    assert.equal(formatVirtMgmt(await virtMgmt(pf, { act: VirtAction.SECONDARY_ASSIGN, rt: VirtResource.VQ, cntlid: scid, nr: 2 })), k.vq);
    assert.equal(formatVirtMgmt(await virtMgmt(pf, { act: VirtAction.SECONDARY_ASSIGN, rt: VirtResource.VI, cntlid: scid, nr: 1 })), k.vi);
    assert.deepEqual(JSON.parse(secondaryListToJson(await secondaryCtrlList(pf))), JSON.parse(k.assignedj), "list-secondary JSON, resources assigned");
    assert.deepEqual(JSON.parse(primaryCtrlCapsToJson(await primaryCtrlCaps(pf))), JSON.parse(k.capsAssignedj), "primary-ctrl-caps JSON, resources assigned");
    assert.equal(formatVirtMgmt(await virtMgmt(pf, { act: VirtAction.SECONDARY_OFFLINE, cntlid: scid })), k.off);
    assert.deepEqual(JSON.parse(secondaryListToJson(await secondaryCtrlList(pf))), JSON.parse(k.offj), "list-secondary JSON, offline again");
  }
  // Left as found: VFs disabled, every secondary offline with no resources.
  assert.deepEqual(JSON.parse(await ours(["list-secondary", PF, "-o", "json"])), JSON.parse(k.listj));
}, opts);
