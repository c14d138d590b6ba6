/** Setup/doctor logic against fake sysfs/dev/proc trees in a temp dir. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import process from "node:process";
import { test } from "../../harness.ts";
import { Errno } from "../../../lib/ffi/mod.ts";
import { DeviceBusyError, InvalidArgumentError, SetupError } from "../../../lib/nvme/errors.ts";
import { bindVfio, unbindVfio } from "../../../lib/vfio/setup.ts";
import { listNvmeControllers } from "../../../lib/vfio/sysfs.ts";
import { type Check, doctor, type DoctorOptions, formatChecks } from "../../../lib/cli/doctor.ts";

interface FakeDevice {
  addr: string;
  cls?: number;
  vendor?: number;
  device?: number;
  driver?: string;
  group?: number;
  /** Kernel nvme controller name and model, when bound to nvme. */
  kernel?: { name: string; model: string; ns?: string[] };
}

interface FakeHost {
  devices: FakeDevice[];
  /** Kernel modules present under /sys/module. */
  modules?: string[];
  /** Drivers registered under /sys/bus/pci/drivers. */
  drivers?: string[];
  cmdline?: string;
  interrupts?: string;
  mounts?: string;
  /** /dev/vfio nodes (as plain files) besides "vfio". */
  vfioNodes?: number[];
  noContainer?: boolean;
}

function w(path: string, data: string) {
  mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true });
  writeFileSync(path, data);
}

/** Build /sys, /dev, /proc, /etc in a temp dir, shaped like the kernel's (symlinks included). */
function fakeHost(h: FakeHost) {
  const base = mkdtempSync(`${tmpdir()}/tsnvme-setup-`);
  const sys = `${base}/sys`, dev = `${base}/dev`, proc = `${base}/proc`, etc = `${base}/etc`;
  const pci = `${sys}/bus/pci/devices`;
  mkdirSync(pci, { recursive: true });
  mkdirSync(`${sys}/kernel/iommu_groups`, { recursive: true });
  w(`${sys}/bus/pci/drivers_probe`, "");
  const drivers = new Set(h.drivers ?? ["nvme", "vfio-pci"]);
  for (const d of h.devices) if (d.driver) drivers.add(d.driver);
  for (const d of drivers) {
    w(`${sys}/bus/pci/drivers/${d}/unbind`, "");
    w(`${sys}/bus/pci/drivers/${d}/bind`, "");
  }
  for (const m of h.modules ?? ["vfio", "vfio_pci", "vfio_iommu_type1"]) mkdirSync(`${sys}/module/${m}`, { recursive: true });
  if ((h.modules ?? ["vfio_iommu_type1"]).includes("vfio_iommu_type1")) {
    w(`${sys}/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts`, "N\n");
  }
  for (const d of h.devices) {
    const dir = `${pci}/${d.addr}`;
    mkdirSync(dir, { recursive: true });
    w(`${dir}/class`, `0x${(d.cls ?? 0x010802).toString(16).padStart(6, "0")}\n`);
    w(`${dir}/vendor`, `0x${(d.vendor ?? 0x1b36).toString(16).padStart(4, "0")}\n`);
    w(`${dir}/device`, `0x${(d.device ?? 0x0010).toString(16).padStart(4, "0")}\n`);
    w(`${dir}/driver_override`, "(null)\n");
    if (d.driver) symlinkSync(`../../../bus/pci/drivers/${d.driver}`, `${dir}/driver`);
    if (d.group !== undefined) {
      const g = `${sys}/kernel/iommu_groups/${d.group}/devices`;
      mkdirSync(g, { recursive: true });
      symlinkSync(`../../../../kernel/iommu_groups/${d.group}`, `${dir}/iommu_group`);
      symlinkSync(`../../../../bus/pci/devices/${d.addr}`, `${g}/${d.addr}`);
    }
    if (d.kernel) {
      w(`${dir}/nvme/${d.kernel.name}/model`, `${d.kernel.model}                    \n`);
      for (const ns of d.kernel.ns ?? []) mkdirSync(`${dir}/nvme/${d.kernel.name}/${ns}`, { recursive: true });
      w(`${dev}/${d.kernel.name}`, "");
    }
  }
  if (!h.noContainer) w(`${dev}/vfio/vfio`, "");
  for (const g of h.vfioNodes ?? []) w(`${dev}/vfio/${g}`, "");
  w(`${proc}/cmdline`, `${h.cmdline ?? "BOOT_IMAGE=/vmlinuz root=/dev/sda1 intel_iommu=on"}\n`);
  w(`${proc}/interrupts`, h.interrupts ?? " 24:  0  IR-PCI-MSI-0000:00:04.0  0-edge  nvme0q0\n");
  w(`${proc}/mounts`, h.mounts ?? "sysfs /sys sysfs rw 0 0\n");
  w(`${proc}/swaps`, "Filename\tType\tSize\tUsed\tPriority\n");
  w(`${proc}/cpuinfo`, "vendor_id\t: GenuineIntel\n");
  const uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0;
  w(`${etc}/passwd`, `root:x:0:0:root:/root:/bin/sh\nalice:x:${uid}:${gid}::/home/alice:/bin/sh\n`);
  return { base, sys, dev, proc, etc, pci, cleanup: () => rmSync(base, { recursive: true, force: true }) };
}

type Host = ReturnType<typeof fakeHost>;

function doctorOpts(f: Host, extra: DoctorOptions = {}): DoctorOptions {
  return {
    sys: f.sys,
    dev: f.dev,
    proc: f.proc,
    etc: f.etc,
    runtime: { name: "deno", version: "2.9.6", ffi: true },
    libc: null,
    memlock: Infinity,
    capIpcLock: false,
    dmesg: () => null,
    user: "alice",
    ...extra,
  };
}

function find(checks: Check[], id: string, device?: string): Check {
  const c = checks.find((c) => c.id === id && (device === undefined || c.device === device));
  assert.ok(c, `no ${id} check in:\n${formatChecks(checks)}`);
  return c;
}

const A = "0000:00:04.0";

test("doctor: a healthy host passes every check", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "vfio-pci", group: 3 }], vfioNodes: [3] });
  try {
    const checks = await doctor(doctorOpts(f));
    assert.deepEqual(checks.filter((c) => c.status !== "ok"), [], formatChecks(checks));
    assert.match(find(checks, "iommu").detail, /1 IOMMU group .*intel_iommu=on/);
    assert.equal(find(checks, "vfio-group", A).status, "ok");
    assert.equal(find(checks, "interrupt-remapping").status, "ok");
  } finally {
    f.cleanup();
  }
});

test("doctor: a controller bound to the kernel nvme driver FAILs with the bind command as fix", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "nvme", group: 3, kernel: { name: "nvme0", model: "QEMU NVMe Ctrl" } }] });
  try {
    const checks = await doctor(doctorOpts(f, { address: "00:04.0" }));
    const c = find(checks, "driver", A);
    assert.equal(c.status, "FAIL");
    assert.match(c.detail, /kernel nvme driver as \/dev\/nvme0 \(QEMU NVMe Ctrl\)/);
    assert.equal(c.fix, "sudo deno run -A jsr:@tsnvme/tsnvme/setup bind 0000:00:04.0");
    assert.ok(!checks.some((c) => c.id === "vfio-group"), "no /dev/vfio check while not on vfio-pci");
    assert.match(formatChecks(checks), /^FAIL {2}0000:00:04\.0 driver .*\n +fix: sudo deno run -A jsr:@tsnvme\/tsnvme\/setup bind 0000:00:04\.0$/m);
  } finally {
    f.cleanup();
  }
});

test("doctor: mounted namespaces are named in the driver check", async () => {
  const f = fakeHost({
    devices: [{ addr: A, driver: "nvme", group: 3, kernel: { name: "nvme0", model: "M", ns: ["nvme0n1"] } }],
    mounts: "/dev/nvme0n1p2 /data ext4 rw 0 0\n",
  });
  try {
    const c = find(await doctor(doctorOpts(f, { address: A })), "driver", A);
    assert.match(c.detail, /\/dev\/nvme0n1p2 mounted on \/data/);
    assert.match(c.fix!, /unmount/);
  } finally {
    f.cleanup();
  }
});

test("doctor: another device of the group on e1000e makes the group non-viable", async () => {
  const f = fakeHost({
    devices: [
      { addr: A, driver: "vfio-pci", group: 7 },
      { addr: "0000:00:1f.6", cls: 0x020000, vendor: 0x8086, device: 0x15bb, driver: "e1000e", group: 7 },
      { addr: "0000:00:1c.0", cls: 0x060400, driver: "pcieport", group: 7 },
    ],
    vfioNodes: [7],
  });
  try {
    const checks = await doctor(doctorOpts(f));
    const c = find(checks, "group-viable", A);
    assert.equal(c.status, "FAIL");
    assert.match(c.detail, /group 7 is not viable: 0000:00:1f\.6 \(e1000e\) is bound/);
    assert.doesNotMatch(c.detail, /1c\.0/, "bridges on pcieport do not break viability");
    assert.match(c.fix!, /unbind/);
    assert.match(find(checks, "iommu-group", A).detail, /group 7 \(3 devices\)/);
  } finally {
    f.cleanup();
  }
});

test("doctor: no IOMMU groups FAILs with the kernel argument to add", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "nvme" }], cmdline: "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet" });
  try {
    const checks = await doctor(doctorOpts(f));
    const c = find(checks, "iommu");
    assert.equal(c.status, "FAIL");
    assert.match(c.detail, /no IOMMU groups/);
    assert.match(c.fix!, /intel_iommu=on/);
    assert.equal(find(checks, "iommu-group", A).status, "FAIL");
  } finally {
    f.cleanup();
  }
});

test("doctor: missing vfio modules and /dev/vfio/vfio FAIL with modprobe", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "nvme", group: 1 }], modules: [], drivers: ["nvme"], noContainer: true });
  try {
    const checks = await doctor(doctorOpts(f));
    assert.equal(find(checks, "vfio-modules").status, "FAIL");
    assert.match(find(checks, "vfio-modules").fix!, /modprobe vfio-pci/);
    assert.equal(find(checks, "vfio-container").status, "FAIL");
  } finally {
    f.cleanup();
  }
});

test("doctor: EBUSY on the group is a warning, EACCES a FAIL with chown advice", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "vfio-pci", group: 3 }], vfioNodes: [3] });
  try {
    const busy = await doctor(doctorOpts(f, { openProbe: (p) => (p.endsWith("/3") ? Errno.EBUSY : 0) }));
    assert.equal(find(busy, "vfio-group", A).status, "warn");
    assert.match(find(busy, "vfio-group", A).detail, /in use by another process/);
    assert.ok(!busy.some((c) => c.status === "FAIL"));
    const denied = await doctor(doctorOpts(f, { openProbe: (p) => (p.endsWith("/3") ? Errno.EACCES : 0) }));
    assert.equal(find(denied, "vfio-group", A).status, "FAIL");
    assert.match(find(denied, "vfio-group", A).fix!, /chown alice .*\/vfio\/3/);
  } finally {
    f.cleanup();
  }
});

test("doctor: memlock below 64 MiB warns unless we hold CAP_IPC_LOCK", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "vfio-pci", group: 3 }], vfioNodes: [3] });
  try {
    const low = find(await doctor(doctorOpts(f, { memlock: 8 << 20 })), "memlock");
    assert.equal(low.status, "warn");
    assert.match(low.fix!, /ulimit -l unlimited.*alice - memlock unlimited/);
    assert.equal(find(await doctor(doctorOpts(f, { memlock: 8 << 20, capIpcLock: true })), "memlock").status, "ok");
  } finally {
    f.cleanup();
  }
});

test("doctor: interrupt remapping unknown warns, unsafe interrupts warn, Deno without FFI FAILs", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "vfio-pci", group: 3 }], vfioNodes: [3], interrupts: " 24: 0 PCI-MSI nvme\n" });
  try {
    const checks = await doctor(doctorOpts(f, { runtime: { name: "deno", version: "2.9.6", ffi: false } }));
    assert.equal(find(checks, "interrupt-remapping").status, "warn");
    assert.equal(find(checks, "ffi").status, "FAIL");
    assert.match(find(checks, "ffi").fix!, /--allow-ffi/);
    writeFileSync(`${f.sys}/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts`, "Y\n");
    const unsafe = find(await doctor(doctorOpts(f)), "interrupt-remapping");
    assert.equal(unsafe.status, "warn");
    assert.match(unsafe.detail, /allow_unsafe_interrupts=Y/);
  } finally {
    f.cleanup();
  }
});

test("doctor: without an address, the boot disk on nvme only warns when another controller is ready", async () => {
  const B = "0000:01:00.0";
  const f = fakeHost({
    devices: [{ addr: A, driver: "vfio-pci", group: 3 }, { addr: B, driver: "nvme", group: 4, kernel: { name: "nvme0", model: "Boot" } }],
    vfioNodes: [3],
  });
  try {
    const checks = await doctor(doctorOpts(f));
    assert.equal(find(checks, "driver", B).status, "warn");
    assert.ok(!checks.some((c) => c.status === "FAIL"), formatChecks(checks));
    // Named explicitly, the same controller is a FAIL.
    assert.equal(find(await doctor(doctorOpts(f, { address: B })), "driver", B).status, "FAIL");
  } finally {
    f.cleanup();
  }
});

test("doctor: a non-NVMe or missing address is a FAIL; a malformed one throws", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "vfio-pci", group: 3 }, { addr: "0000:00:1f.6", cls: 0x020000, driver: "e1000e" }] });
  try {
    assert.match(find(await doctor(doctorOpts(f, { address: "0000:00:1f.6" })), "device").detail, /not an NVMe controller \(class 0x020000\)/);
    assert.equal(find(await doctor(doctorOpts(f, { address: "0000:09:00.0" })), "device").status, "FAIL");
    await assert.rejects(doctor(doctorOpts(f, { address: "nope" })), InvalidArgumentError);
  } finally {
    f.cleanup();
  }
});

test("bind refuses a device that is not an NVMe controller and writes nothing", async () => {
  const E = "0000:00:1f.6";
  const f = fakeHost({ devices: [{ addr: E, cls: 0x020000, driver: "e1000e", group: 5 }] });
  try {
    await assert.rejects(bindVfio(E, { sys: f.sys, dev: f.dev, proc: f.proc, wait: false }), (e: unknown) => {
      assert.ok(e instanceof SetupError);
      assert.equal(e.reason, "not-nvme");
      assert.match(e.message, /not an NVMe controller \(class 0x020000/);
      return true;
    });
    assert.equal(readFileSync(`${f.pci}/${E}/driver_override`, "utf8"), "(null)\n");
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers_probe`, "utf8"), "");
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers/e1000e/unbind`, "utf8"), "");
  } finally {
    f.cleanup();
  }
});

test("bind writes driver_override, unbinds nvme and probes the address", async () => {
  const f = fakeHost({
    devices: [
      { addr: A, driver: "nvme", group: 3, kernel: { name: "nvme0", model: "QEMU" } },
      { addr: "0000:00:04.1", cls: 0x020000, driver: "e1000e", group: 3 },
    ],
  });
  const lines: string[] = [];
  try {
    const r = await bindVfio("00:04.0", { sys: f.sys, dev: f.dev, proc: f.proc, wait: false, log: (l) => lines.push(l) });
    assert.equal(readFileSync(`${f.pci}/${A}/driver_override`, "utf8"), "vfio-pci");
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers/nvme/unbind`, "utf8"), A);
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers_probe`, "utf8"), A);
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers/e1000e/unbind`, "utf8"), "", "never touches other devices");
    assert.equal(r.group, 3);
    assert.equal(r.previousDriver, "nvme");
    assert.equal(r.groupPath, `${f.dev}/vfio/3`);
    assert.equal(r.warnings.length, 1);
    assert.match(r.warnings[0], /group 3 also holds 0000:00:04\.1 \(e1000e\)/);
    assert.ok(lines.some((l) => /unbound from nvme/.test(l)), lines.join("\n"));
  } finally {
    f.cleanup();
  }
});

test("bind loads vfio-pci when its driver directory is missing, and fails clearly if that does not help", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "nvme", group: 3 }], drivers: ["nvme"], modules: [] });
  const loaded: string[] = [];
  try {
    await assert.rejects(
      bindVfio(A, { sys: f.sys, dev: f.dev, proc: f.proc, wait: false, modprobe: (m) => (loaded.push(m), "Module vfio-pci not found") }),
      (e: unknown) => e instanceof SetupError && e.reason === "no-vfio" && /not found/.test(e.message),
    );
    assert.deepEqual(loaded, ["vfio-pci"]);
    assert.equal(readFileSync(`${f.pci}/${A}/driver_override`, "utf8"), "(null)\n");
    const r = await bindVfio(A, {
      sys: f.sys,
      dev: f.dev,
      proc: f.proc,
      wait: false,
      modprobe: () => (mkdirSync(`${f.sys}/bus/pci/drivers/vfio-pci`), null),
    });
    assert.equal(r.previousDriver, "nvme");
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers_probe`, "utf8"), A);
  } finally {
    f.cleanup();
  }
});

test("bind refuses a controller whose namespace is mounted, unless forced", async () => {
  const f = fakeHost({
    devices: [{ addr: A, driver: "nvme", group: 3, kernel: { name: "nvme0", model: "M", ns: ["nvme0n1"] } }],
    mounts: "/dev/nvme0n1 / ext4 rw 0 0\n",
  });
  try {
    await assert.rejects(bindVfio(A, { sys: f.sys, dev: f.dev, proc: f.proc, wait: false }), DeviceBusyError);
    assert.equal(readFileSync(`${f.pci}/${A}/driver_override`, "utf8"), "(null)\n");
    await bindVfio(A, { sys: f.sys, dev: f.dev, proc: f.proc, wait: false, force: true });
    assert.equal(readFileSync(`${f.pci}/${A}/driver_override`, "utf8"), "vfio-pci");
  } finally {
    f.cleanup();
  }
});

test("bind --user chowns /dev/vfio/<group>", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "vfio-pci", group: 3 }], vfioNodes: [3] });
  try {
    const r = await bindVfio(A, { sys: f.sys, dev: f.dev, proc: f.proc, etc: f.etc, wait: false, user: "alice" });
    assert.match(r.owner!, /^alice \(uid \d+\)$/);
    assert.equal(statSync(`${f.dev}/vfio/3`).uid, process.getuid?.() ?? 0);
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers_probe`, "utf8"), "", "already on vfio-pci: no reprobe");
    await assert.rejects(bindVfio(A, { sys: f.sys, dev: f.dev, etc: f.etc, wait: false, user: "no-such-user-xyz" }), InvalidArgumentError);
  } finally {
    f.cleanup();
  }
});

test("bind waits for the group device and reports when vfio-pci never takes the controller", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "nvme", group: 3 }] });
  try {
    await assert.rejects(
      bindVfio(A, { sys: f.sys, dev: f.dev, proc: f.proc, timeoutMs: 200 }),
      (e: unknown) => e instanceof SetupError && e.reason === "not-bound" && /did not take/.test(e.message),
    );
  } finally {
    f.cleanup();
  }
});

test("unbind clears driver_override, unbinds vfio-pci and probes", async () => {
  const f = fakeHost({ devices: [{ addr: A, driver: "vfio-pci", group: 3 }], vfioNodes: [3] });
  try {
    const r = await unbindVfio(A, { sys: f.sys, dev: f.dev, proc: f.proc, wait: false });
    assert.equal(readFileSync(`${f.pci}/${A}/driver_override`, "utf8"), "\n");
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers/vfio-pci/unbind`, "utf8"), A);
    assert.equal(readFileSync(`${f.sys}/bus/pci/drivers_probe`, "utf8"), A);
    assert.equal(r.previousDriver, "vfio-pci");
    await assert.rejects(
      unbindVfio(A, { sys: f.sys, dev: f.dev, wait: false, openProbe: () => Errno.EBUSY }),
      (e: unknown) => e instanceof DeviceBusyError && /in use/.test(e.message),
    );
    const E = "0000:00:1f.6";
    mkdirSync(`${f.pci}/${E}`);
    writeFileSync(`${f.pci}/${E}/class`, "0x020000\n");
    await assert.rejects(unbindVfio(E, { sys: f.sys, dev: f.dev, wait: false }), (e: unknown) => e instanceof SetupError && e.reason === "not-nvme");
  } finally {
    f.cleanup();
  }
});

test("list shows the kernel's /dev name and model for nvme-bound controllers", () => {
  const f = fakeHost({
    devices: [
      { addr: A, driver: "vfio-pci", group: 3 },
      { addr: "0000:01:00.0", driver: "nvme", group: 4, vendor: 0x144d, device: 0xa808, kernel: { name: "nvme1", model: "Samsung SSD 970" } },
      { addr: "0000:00:1f.6", cls: 0x020000, driver: "e1000e" },
    ],
  });
  try {
    const rows = listNvmeControllers(`${f.sys}/bus/pci/devices`);
    assert.deepEqual(rows.map((r) => [r.address, r.driver, r.iommuGroup, r.kernel]), [
      [A, "vfio-pci", 3, null],
      ["0000:01:00.0", "nvme", 4, { name: "nvme1", model: "Samsung SSD 970" }],
    ]);
  } finally {
    f.cleanup();
  }
});
