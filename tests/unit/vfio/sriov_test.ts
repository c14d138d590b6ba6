// SR-IOV through sysfs (lib/vfio/sriov.ts) against a fake sysfs tree: what a PF offers, its VFs by
// number, enabling and disabling them (vfio-pci's enable_sriov switched on), waiting for the VFs to
// come up bound, and the VF token's form.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "../../harness.ts";
import { InvalidArgumentError, SetupError } from "../../../lib/nvme/errors.ts";
import { newVfToken, parseVfToken, physfnOf, setNumVfs, sriovCapable, sriovInfo, vfTokenBytes } from "../../../lib/vfio/sriov.ts";

const PF = "0000:00:14.0";

function w(path: string, data: string) {
  mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  writeFileSync(path, data);
}

/** A fake /sys and /dev: PF bound to `pfDriver` with `vfs` VFs present (bound to vfio-pci, group 10+n). */
function fake(o: { pfDriver?: string; total?: number; vfs?: number; enableSriov?: "Y" | "N" | null; vfioNodes?: boolean }) {
  const base = mkdtempSync(`${tmpdir()}/tsnvme-sriov-`);
  const sys = `${base}/sys`, dev = `${base}/dev`, pci = `${sys}/bus/pci/devices`;
  const dev1 = (addr: string, driver: string | null, group: number) => {
    w(`${pci}/${addr}/class`, "0x010802\n");
    if (driver) {
      mkdirSync(`${sys}/bus/pci/drivers/${driver}`, { recursive: true });
      symlinkSync(`../../../bus/pci/drivers/${driver}`, `${pci}/${addr}/driver`);
    }
    mkdirSync(`${sys}/kernel/iommu_groups/${group}`, { recursive: true });
    symlinkSync(`../../../../kernel/iommu_groups/${group}`, `${pci}/${addr}/iommu_group`);
  };
  dev1(PF, o.pfDriver ?? "vfio-pci", 3);
  w(`${pci}/${PF}/sriov_totalvfs`, `${o.total ?? 2}\n`);
  w(`${pci}/${PF}/sriov_numvfs`, `${o.vfs ?? 0}\n`);
  // Listed out of order on purpose: virtfn10 sorts before virtfn2 as text.
  for (let i = (o.vfs ?? 0) - 1; i >= 0; i--) {
    const a = `0000:00:14.${i + 1}`;
    dev1(a, "vfio-pci", 10 + i);
    symlinkSync(`../${a}`, `${pci}/${PF}/virtfn${i}`);
    symlinkSync(`../${PF}`, `${pci}/${a}/physfn`);
    if (o.vfioNodes !== false) w(`${dev}/vfio/${10 + i}`, "");
  }
  if (o.enableSriov !== null) w(`${sys}/module/vfio_pci/parameters/enable_sriov`, `${o.enableSriov ?? "N"}\n`);
  return { sys, dev, pci, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

test("sriov sysfs: a PF's VFs by number (virtfn0 is VF 1), drivers and groups; VFs know their PF", () => {
  const f = fake({ vfs: 2 });
  try {
    const info = sriovInfo(PF, f.pci)!;
    assert.deepEqual([info.totalVfs, info.numVfs], [2, 2]);
    assert.deepEqual(info.vfs, [
      { vfn: 1, address: "0000:00:14.1", driver: "vfio-pci", iommuGroup: 10 },
      { vfn: 2, address: "0000:00:14.2", driver: "vfio-pci", iommuGroup: 11 },
    ]);
    assert.equal(physfnOf("0000:00:14.2", f.pci), PF);
    assert.equal(physfnOf(PF, f.pci), null);
    assert.ok(sriovCapable(PF, f.pci) && sriovCapable("0000:00:14.1", f.pci));
    assert.equal(sriovInfo("0000:00:14.1", f.pci), null, "a VF is not a PF");
  } finally {
    f.cleanup();
  }
});

test("sriov sysfs: enabling switches on vfio-pci's enable_sriov and writes sriov_numvfs; a changed count goes through 0", async () => {
  const f = fake({ vfs: 0, enableSriov: "N" });
  try {
    assert.deepEqual(await setNumVfs(PF, 2, { sys: f.sys, dev: f.dev, wait: false }), []);
    assert.equal(readFileSync(`${f.sys}/module/vfio_pci/parameters/enable_sriov`, "utf8"), "1");
    assert.equal(readFileSync(`${f.pci}/${PF}/sriov_numvfs`, "utf8"), "2");
    await setNumVfs(PF, 1, { sys: f.sys, dev: f.dev, wait: false });
    assert.equal(readFileSync(`${f.pci}/${PF}/sriov_numvfs`, "utf8"), "1");
    await setNumVfs(PF, 0, { sys: f.sys, dev: f.dev });
    assert.equal(readFileSync(`${f.pci}/${PF}/sriov_numvfs`, "utf8"), "0");
    await assert.rejects(setNumVfs(PF, 3, { sys: f.sys, dev: f.dev }), InvalidArgumentError, "above sriov_totalvfs");
    await assert.rejects(setNumVfs(PF, -1, { sys: f.sys, dev: f.dev }), InvalidArgumentError);
    await assert.rejects(
      setNumVfs("0000:00:15.0", 1, { sys: f.sys, dev: f.dev }),
      (e) => e instanceof SetupError && e.reason === "sriov" && /no SR-IOV/.test(e.message),
    );
  } finally {
    f.cleanup();
  }
});

test("sriov sysfs: vfio-pci without enable_sriov is refused with advice; another PF driver needs none", async () => {
  const f = fake({ vfs: 0, enableSriov: null });
  try {
    await assert.rejects(
      setNumVfs(PF, 1, { sys: f.sys, dev: f.dev, wait: false }),
      (e) => e instanceof SetupError && e.reason === "sriov" && /enable_sriov=1/.test(e.message),
    );
    assert.equal(readFileSync(`${f.pci}/${PF}/sriov_numvfs`, "utf8"), "0\n", "nothing written");
  } finally {
    f.cleanup();
  }
  const g = fake({ vfs: 0, enableSriov: null, pfDriver: "nvme" });
  try {
    await setNumVfs(PF, 1, { sys: g.sys, dev: g.dev, wait: false });
    assert.equal(readFileSync(`${g.pci}/${PF}/sriov_numvfs`, "utf8"), "1");
    assert.equal(existsSync(`${g.sys}/module/vfio_pci/parameters/enable_sriov`), false);
  } finally {
    g.cleanup();
  }
});

test("sriov sysfs: the wait returns the VFs once bound with their VFIO nodes, else times out naming them", async () => {
  const f = fake({ vfs: 2, enableSriov: "Y" });
  try {
    const vfs = await setNumVfs(PF, 2, { sys: f.sys, dev: f.dev });
    assert.deepEqual(vfs.map((v) => [v.vfn, v.address]), [[1, "0000:00:14.1"], [2, "0000:00:14.2"]]);
  } finally {
    f.cleanup();
  }
  const g = fake({ vfs: 2, enableSriov: "Y", vfioNodes: false });
  try {
    await assert.rejects(
      setNumVfs(PF, 2, { sys: g.sys, dev: g.dev, timeoutMs: 200 }),
      (e) => e instanceof SetupError && e.reason === "sriov" && /0000:00:14\.1 \(driver: vfio-pci\)/.test(e.message),
    );
  } finally {
    g.cleanup();
  }
});

test("sriov VF token: a UUID, lower-cased, its bytes in string order; anything else refused", () => {
  const t = "BD8D9D2B-5A5F-4F5A-A211-F591514BA1F3";
  assert.equal(parseVfToken(t), t.toLowerCase());
  assert.deepEqual([...vfTokenBytes(t)].slice(0, 4), [0xbd, 0x8d, 0x9d, 0x2b]);
  assert.deepEqual([...vfTokenBytes(t)].slice(12), [0x51, 0x4b, 0xa1, 0xf3]);
  for (const bad of ["", "bd8d9d2b5a5f4f5aa211f591514ba1f3", "bd8d9d2b-5a5f-4f5a-a211-f591514ba1fz", "x"]) {
    assert.throws(() => parseVfToken(bad), InvalidArgumentError, bad);
  }
  const a = newVfToken(), b = newVfToken();
  assert.equal(parseVfToken(a), a);
  assert.notEqual(a, b);
});
