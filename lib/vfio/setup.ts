/**
 * Host setup for tsnvme: the doctor's checks and binding a controller to
 * vfio-pci and back. Runtime neutral (node: built-ins plus lib/ffi), and every
 * filesystem root is a parameter so tests can run against a fake sysfs tree.
 * @module
 */
import { spawnSync } from "node:child_process";
import { chownSync, closeSync, constants, existsSync, openSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { userInfo } from "node:os";
import process from "node:process";
import { detectRuntime, Errno, errnoName, type Libc, loadLibc, O_CLOEXEC, O_RDWR, type RuntimeName } from "../ffi/mod.ts";
import { DeviceBusyError, InvalidArgumentError, SetupError } from "../nvme/errors.ts";
import { memlockLimit } from "./vfio.ts";
import { groupMembers, kernelNvme, listNvmeControllers, normalizePciAddress, NVME_CLASS, pciInfo, type PciInfo } from "./sysfs.ts";
import { toolCommand } from "../commands.ts";

/** Re-exported so the options' libc type is part of this module's documented API. */
export type { Libc, RuntimeName };

/** Where the host's pseudo filesystems live; tests point these into a temp dir. */
export interface SetupRoots {
  /** sysfs mount point (default "/sys"). */
  sys?: string;
  /** devtmpfs mount point (default "/dev"). */
  dev?: string;
  /** procfs mount point (default "/proc"). */
  proc?: string;
  /** Configuration directory, for user lookups in passwd (default "/etc"). */
  etc?: string;
}

interface Roots {
  sys: string;
  dev: string;
  proc: string;
  etc: string;
  pci: string;
}

function roots(r: SetupRoots): Roots {
  const sys = r.sys ?? "/sys";
  return { sys, dev: r.dev ?? "/dev", proc: r.proc ?? "/proc", etc: r.etc ?? "/etc", pci: `${sys}/bus/pci/devices` };
}

/** Outcome of one doctor check; "FAIL" is upper case so it stands out in a terminal. */
export type CheckStatus = "ok" | "warn" | "FAIL";

/** One line of the doctor's report. */
export interface Check {
  /** Stable identifier, e.g. "iommu" or "driver", for scripts reading the JSON. */
  id: string;
  /** The outcome. */
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do about a FAIL or warn. */
  fix?: string;
  /** The PCI address a per-controller check is about. */
  device?: string;
}

/** Which runtime runs us, and whether it may use FFI (Deno gates it behind a permission). */
export interface RuntimeInfo {
  /** Runtime name. */
  name: "deno" | "bun" | "unknown";
  /** Runtime version. */
  version: string;
  /** Whether FFI is allowed; only Deno can say no. */
  ffi: boolean;
}

/** Describe the running runtime without loading FFI, so the doctor can report a missing permission. */
export function currentRuntime(): RuntimeInfo {
  const g = globalThis as {
    Bun?: { version: string };
    Deno?: { version: { deno: string }; permissions: { querySync(d: { name: string }): { state: string } } };
  };
  let name: RuntimeInfo["name"];
  try {
    name = detectRuntime();
  } catch {
    return { name: "unknown", version: process.version ?? "?", ffi: false };
  }
  if (name === "bun") return { name, version: g.Bun!.version, ffi: true };
  return { name, version: g.Deno!.version.deno, ffi: g.Deno!.permissions.querySync({ name: "ffi" }).state === "granted" };
}

/**
 * Try to open `path` read-write and close it again; 0 on success, else the errno.
 * Goes through libc when available because that is exactly what VfioDevice.open does.
 */
export type OpenProbe = (path: string) => number;

function fsOpenProbe(path: string): number {
  try {
    closeSync(openSync(path, constants.O_RDWR));
    return 0;
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    return (Errno as Record<string, number>)[code] ?? Errno.EIO;
  }
}

function libcOpenProbe(libc: Libc): OpenProbe {
  return (path) => {
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0) return libc.errno();
    libc.close(fd);
    return 0;
  };
}

/** Login name for fix texts; $USER is often unset under setpriv, sudo -u or services. */
function currentUser(): string {
  const env = process.env.USER ?? process.env.LOGNAME;
  if (env) return env;
  try {
    return userInfo().username;
  } catch {
    return "$USER";
  }
}

/** Options of {@link doctor}. */
export interface DoctorOptions extends SetupRoots {
  /** Check only this controller (any PCI address form); default: every NVMe controller. */
  address?: string;
  /** Runtime facts; default {@link currentRuntime}. */
  runtime?: RuntimeInfo;
  /** libc for open/getrlimit; null means none (then node:fs and /proc stand in). Default: loaded if FFI is allowed. */
  libc?: Libc | null;
  /** Replaces the open(2) probe (tests simulate EBUSY/EACCES with it). */
  openProbe?: OpenProbe;
  /** RLIMIT_MEMLOCK soft limit in bytes (Infinity = unlimited); default read from the process. */
  memlock?: number;
  /** Whether we hold CAP_IPC_LOCK; default read from /proc/self/status. */
  capIpcLock?: boolean;
  /** Kernel log text, or null when unreadable; default runs dmesg. */
  dmesg?: () => string | null;
  /** User name used in fix texts; default $USER. */
  user?: string;
}

const MIN_MEMLOCK = 64 * 1024 * 1024;

function read(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

function ls(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

function hex6(n: number): string {
  return `0x${n.toString(16).padStart(6, "0")}`;
}

/** The command line users should run for a setup step (as root), as a user of the published package types it. */
export function setupCommand(args: string): string {
  return toolCommand("setup", args, { sudo: true });
}

/** Drivers that leave an IOMMU group viable for VFIO: vfio itself, stubs, and PCIe port services. */
function viableDriver(p: PciInfo): boolean {
  if (p.driver === null) return true;
  if (p.driver === "vfio-pci" || p.driver.endsWith("vfio_pci") || p.driver.endsWith("vfio-pci")) return true;
  if (p.driver === "pci-stub" || p.driver === "pcieport") return true;
  // Bridges never DMA on their own behalf; the kernel ignores their driver for viability.
  return (p.classCode >> 8) === 0x0604;
}

/** Devices of the group that keep it from being viable (other than `address`). */
function groupBlockers(group: number, address: string, sys: string): PciInfo[] {
  return groupMembers(group, sys).filter((m) => m.address !== address && !viableDriver(m));
}

function blockerList(b: PciInfo[]): string {
  return b.map((m) => `${m.address} (${m.driver})`).join(", ");
}

/** CPU vendor from /proc/cpuinfo, to pick the right IOMMU kernel argument in advice. */
function cpuVendor(proc: string): "intel" | "amd" | null {
  const info = read(`${proc}/cpuinfo`) ?? "";
  if (/GenuineIntel/.test(info)) return "intel";
  if (/AuthenticAMD|HygonGenuine/.test(info)) return "amd";
  return null;
}

function capIpcLock(proc: string): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(read(`${proc}/self/status`) ?? "");
  if (m) return (BigInt(`0x${m[1]}`) & (1n << 14n)) !== 0n;
  return process.getuid?.() === 0;
}

/** RLIMIT_MEMLOCK from /proc when FFI is unavailable. */
function memlockFromProc(proc: string): number {
  const m = /^Max locked memory\s+(\S+)/m.exec(read(`${proc}/self/limits`) ?? "");
  if (!m || m[1] === "unlimited") return Infinity;
  return Number(m[1]);
}

function defaultDmesg(): string | null {
  try {
    const r = spawnSync("dmesg", [], { encoding: "utf8", timeout: 5000, stdio: ["ignore", "pipe", "ignore"] });
    return r.status === 0 ? r.stdout : null;
  } catch {
    return null;
  }
}

function mib(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(n % (1024 * 1024) ? 1 : 0)} MiB` : `${Math.round(n / 1024)} KiB`;
}

/** The advice a non-root user needs to pin DMA memory; printed by `bind --user` and the memlock check. */
export function memlockAdvice(user: string): string {
  return `raise the locked-memory limit: \`ulimit -l unlimited\` in the shell that runs tsnvme (as root, or within ` +
    `the hard limit), or add the line \`${user} - memlock unlimited\` to /etc/security/limits.conf and log in again ` +
    `(systemd services: LimitMEMLOCK=infinity)`;
}

/** Block devices of `ns` (the disk and its partitions) that are mounted, used as swap, or held by dm/md. */
function namespaceUsers(ns: string[], r: Roots): string[] {
  if (ns.length === 0) return [];
  const out: string[] = [];
  const isOurs = (dev: string) => ns.some((n) => dev === n || new RegExp(`^${n}p\\d+$`).test(dev));
  for (const line of (read(`${r.proc}/mounts`) ?? "").split("\n")) {
    const [src, target] = line.split(" ");
    if (src?.startsWith("/dev/") && isOurs(src.slice(5))) out.push(`${src} mounted on ${target}`);
  }
  for (const line of (read(`${r.proc}/swaps`) ?? "").split("\n").slice(1)) {
    const src = line.split(/\s+/)[0];
    if (src?.startsWith("/dev/") && isOurs(src.slice(5))) out.push(`${src} is swap`);
  }
  for (const n of ns) {
    for (const part of [n, ...ls(`${r.sys}/block/${n}`).filter((p) => p.startsWith(`${n}p`))]) {
      const dir = part === n ? `${r.sys}/block/${n}/holders` : `${r.sys}/block/${n}/${part}/holders`;
      for (const h of ls(dir)) out.push(`/dev/${part} is held by ${h}`);
    }
  }
  return out;
}

function runtimeChecks(rt: RuntimeInfo): Check[] {
  const out: Check[] = [];
  if (rt.name === "unknown") {
    out.push({ id: "runtime", status: "FAIL", detail: `not Deno or Bun (${rt.version})`, fix: "run with deno or bun" });
    return out;
  }
  const major = parseInt(rt.version, 10);
  const old = rt.name === "deno" ? major < 2 : rt.version.localeCompare("1.1", undefined, { numeric: true }) < 0;
  out.push(
    old
      ? { id: "runtime", status: "warn", detail: `${rt.name} ${rt.version} is old`, fix: `upgrade ${rt.name} (deno ≥ 2, bun ≥ 1.1)` }
      : { id: "runtime", status: "ok", detail: `${rt.name} ${rt.version}` },
  );
  if (rt.name === "deno" && !rt.ffi) {
    out.push({
      id: "ffi",
      status: "FAIL",
      detail: "no FFI permission: tsnvme calls libc (open, ioctl, mmap) through FFI",
      fix: "run Deno with --allow-ffi (or -A)",
    });
  }
  return out;
}

function iommuCheck(r: Roots): Check {
  const groups = ls(`${r.sys}/kernel/iommu_groups`);
  const cmdline = (read(`${r.proc}/cmdline`) ?? "").trim();
  const args = cmdline.split(/\s+/).filter((a) => /^(intel_iommu|amd_iommu|iommu)=/.test(a));
  const shown = args.length ? `kernel cmdline: ${args.join(" ")}` : "no IOMMU options on the kernel cmdline";
  if (groups.length > 0) {
    return { id: "iommu", status: "ok", detail: `${groups.length} IOMMU group${groups.length === 1 ? "" : "s"} (${shown})` };
  }
  const vendor = cpuVendor(r.proc);
  const arg = vendor === "amd" ? "amd_iommu=on" : vendor === "intel" ? "intel_iommu=on" : "intel_iommu=on (Intel) or amd_iommu=on (AMD)";
  const off = args.find((a) => /=off$/.test(a));
  const fix = off
    ? `the kernel cmdline has ${off}: remove it, add ${arg}, and reboot`
    : args.some((a) => /^(intel|amd)_iommu=on$/.test(a))
    ? "the kernel cmdline asks for the IOMMU but none came up: enable VT-d / AMD-Vi (IOMMU) in the firmware setup and reboot"
    : `enable VT-d / AMD-Vi (IOMMU) in the firmware setup, add ${arg} to the kernel cmdline ` +
      `(GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot`;
  return { id: "iommu", status: "FAIL", detail: `no IOMMU groups in ${r.sys}/kernel/iommu_groups (${shown})`, fix };
}

function vfioModuleChecks(r: Roots): Check[] {
  const out: Check[] = [];
  const pci = existsSync(`${r.sys}/module/vfio_pci`) || existsSync(`${r.sys}/bus/pci/drivers/vfio-pci`);
  const core = existsSync(`${r.sys}/module/vfio`) || existsSync(`${r.sys}/class/vfio`) || pci;
  if (pci) {
    out.push({ id: "vfio-modules", status: "ok", detail: "vfio and vfio-pci loaded" });
  } else {
    out.push({
      id: "vfio-modules",
      status: "FAIL",
      detail: core ? "vfio is loaded but vfio-pci is not" : "vfio and vfio-pci are not loaded",
      fix: "sudo modprobe vfio-pci (to load it at boot: echo vfio-pci | sudo tee /etc/modules-load.d/vfio-pci.conf)",
    });
  }
  if (pci && !existsSync(`${r.sys}/module/vfio_iommu_type1`) && !existsSync(`${r.sys}/module/iommufd`)) {
    out.push({
      id: "vfio-iommu-type1",
      status: "warn",
      detail: "vfio_iommu_type1 is not loaded: VFIO_SET_IOMMU will fail",
      fix: "sudo modprobe vfio_iommu_type1",
    });
  }
  return out;
}

function containerCheck(r: Roots, probe: OpenProbe): Check {
  const path = `${r.dev}/vfio/vfio`;
  const e = existsSync(path) ? probe(path) : Errno.ENOENT;
  if (e === 0) return { id: "vfio-container", status: "ok", detail: `${path} opens` };
  if (e === Errno.ENOENT) return { id: "vfio-container", status: "FAIL", detail: `${path} is missing`, fix: "sudo modprobe vfio-pci" };
  if (e === Errno.EACCES || e === Errno.EPERM) {
    return {
      id: "vfio-container",
      status: "FAIL",
      detail: `no permission to open ${path}`,
      fix: `it is normally mode 0666: sudo chmod 0666 ${path} (inside a container, pass the device through)`,
    };
  }
  return { id: "vfio-container", status: "FAIL", detail: `cannot open ${path}: ${errnoName(e)}`, fix: "see dmesg | tail" };
}

function memlockCheck(r: Roots, opts: DoctorOptions, libc: Libc | null, user: string): Check {
  const limit = opts.memlock ?? (libc ? memlockLimit(libc) : memlockFromProc(r.proc));
  const shown = limit === Infinity ? "unlimited" : mib(limit);
  if (opts.capIpcLock ?? capIpcLock(r.proc)) {
    return { id: "memlock", status: "ok", detail: `RLIMIT_MEMLOCK ${shown}; moot: we hold CAP_IPC_LOCK (root)` };
  }
  if (limit >= MIN_MEMLOCK) return { id: "memlock", status: "ok", detail: `RLIMIT_MEMLOCK ${shown}` };
  return {
    id: "memlock",
    status: "warn",
    detail: `RLIMIT_MEMLOCK is ${shown}, below ${mib(MIN_MEMLOCK)}: VFIO pins every DMA buffer against it, so opening a device will fail`,
    fix: memlockAdvice(user),
  };
}

function interruptRemapCheck(r: Roots, dmesg: () => string | null): Check {
  const unsafe = (read(`${r.sys}/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts`) ?? "").trim();
  const unsafeFix = "or, trusting the device, allow it: echo 1 | sudo tee /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
  // Remapped interrupt chips are named IR-* on x86; an ARM GIC ITS isolates MSIs just as well.
  const irq = read(`${r.proc}/interrupts`) ?? "";
  if (/\bIR-[\w-]+/.test(irq) || /\bITS-(?:PCI-)?MSI/.test(irq)) {
    return { id: "interrupt-remapping", status: "ok", detail: "interrupt remapping is on (remapped chips in /proc/interrupts)" };
  }
  const log = dmesg() ?? "";
  if (/Enabled IRQ remapping|Interrupt remapping enabled|IRQ remapping.*enabled/i.test(log)) {
    return { id: "interrupt-remapping", status: "ok", detail: "interrupt remapping is on (kernel log)" };
  }
  if (unsafe === "Y" || unsafe === "1") {
    return {
      id: "interrupt-remapping",
      status: "warn",
      detail: "allow_unsafe_interrupts=Y: VFIO works without interrupt remapping, but a device could forge MSIs",
      fix: "enable interrupt remapping (x2APIC / IOMMU IR in the firmware setup) and reset allow_unsafe_interrupts to N",
    };
  }
  if (/IRQ remapping (?:was )?not enabled|Not enabling interrupt remapping|Failed to enable irq remapping|x2apic.*without IR/i.test(log)) {
    return {
      id: "interrupt-remapping",
      status: "FAIL",
      detail: "the kernel log says interrupt remapping is off: VFIO will refuse the IOMMU (VFIO_SET_IOMMU: EPERM)",
      fix: `enable interrupt remapping (x2APIC / IOMMU IR in the firmware setup), ${unsafeFix}`,
    };
  }
  return {
    id: "interrupt-remapping",
    status: "warn",
    detail: `cannot tell whether interrupt remapping is on (no IR-* interrupt chips, kernel log ${log ? "silent" : "unreadable"})`,
    fix: `if opening fails with "VFIO_SET_IOMMU refused (EPERM)", enable interrupt remapping, ${unsafeFix}`,
  };
}

function controllerChecks(info: PciInfo, r: Roots, probe: OpenProbe, user: string): Check[] {
  const a = info.address;
  const out: Check[] = [];
  const c = (status: CheckStatus, id: string, detail: string, fix?: string) =>
    out.push(fix === undefined ? { id, status, detail, device: a } : { id, status, detail, fix, device: a });
  const ids = `${info.vendor.toString(16).padStart(4, "0")}:${info.device.toString(16).padStart(4, "0")}`;
  if (info.driver === "vfio-pci") {
    c("ok", "driver", `${ids} bound to vfio-pci`);
  } else if (info.driver === "nvme") {
    const k = kernelNvme(a, r.pci);
    const users = namespaceUsers(k?.namespaces ?? [], r);
    const what = k ? ` as /dev/${k.name}${k.model ? ` (${k.model})` : ""}` : "";
    c(
      "FAIL",
      "driver",
      `${ids} bound to the kernel nvme driver${what}; tsnvme needs vfio-pci` + (users.length ? `; in use: ${users.join(", ")}` : ""),
      (users.length ? "stop using it (unmount, swapoff) first, then: " : "") + setupCommand(`bind ${a}`),
    );
  } else {
    c(
      "FAIL",
      "driver",
      `${ids} ${info.driver ? `bound to ${info.driver}` : "not bound to any driver"}; tsnvme needs vfio-pci`,
      setupCommand(`bind ${a}`),
    );
  }
  if (info.iommuGroup === null) {
    c("FAIL", "iommu-group", "no IOMMU group", "turn the IOMMU on (see the iommu check) and reboot");
    return out;
  }
  const g = info.iommuGroup;
  const members = groupMembers(g, r.sys);
  c("ok", "iommu-group", `IOMMU group ${g} (${members.length || 1} device${members.length > 1 ? "s" : ""})`);
  const blockers = groupBlockers(g, a, r.sys);
  if (blockers.length) {
    c(
      "FAIL",
      "group-viable",
      `IOMMU group ${g} is not viable: ${blockerList(blockers)} ${blockers.length === 1 ? "is" : "are"} bound to other drivers`,
      "every device of the group must be bound to vfio-pci or to no driver: unbind them " +
        `(echo ADDR | sudo tee /sys/bus/pci/devices/ADDR/driver/unbind), or move the controller to a slot with its own group`,
    );
  } else {
    c("ok", "group-viable", members.length > 1 ? "every other device of the group is on vfio-pci or unbound" : "the controller is alone in its group");
  }
  if (info.driver === "vfio-pci") {
    const path = `${r.dev}/vfio/${g}`;
    const e = existsSync(path) ? probe(path) : Errno.ENOENT;
    if (e === 0) c("ok", "vfio-group", `${path} opens`);
    else if (e === Errno.EBUSY) c("warn", "vfio-group", `${path} is in use by another process`, "close the other tsnvme/VFIO user first");
    else if (e === Errno.EACCES || e === Errno.EPERM) {
      c("FAIL", "vfio-group", `no permission to open ${path}`, `sudo chown ${user} ${path}, or: ${setupCommand(`bind ${a} --user ${user}`)}`);
    } else if (e === Errno.ENOENT) c("FAIL", "vfio-group", `${path} is missing`, `rebind: ${setupCommand(`bind ${a}`)}`);
    else c("FAIL", "vfio-group", `cannot open ${path}: ${errnoName(e)}`, "see dmesg | tail");
  }
  return out;
}

/**
 * Check everything tsnvme needs on this host. Never throws for a host problem:
 * each one is a FAIL or warn line carrying its fix. A malformed address throws
 * InvalidArgumentError, since that is the caller's mistake, not the host's.
 */
export async function doctor(opts: DoctorOptions = {}): Promise<Check[]> {
  const r = roots(opts);
  const rt = opts.runtime ?? currentRuntime();
  const user = opts.user ?? currentUser();
  let libc: Libc | null = null;
  const checks: Check[] = runtimeChecks(rt);
  if (opts.libc !== undefined) libc = opts.libc;
  else if (rt.ffi) {
    try {
      libc = await loadLibc();
      checks.push({
        id: "ffi",
        status: "ok",
        detail: `libc loaded through ${rt.name === "deno" ? "Deno.dlopen (FFI permission granted)" : "bun:ffi"}`,
      });
    } catch (e) {
      checks.push({ id: "ffi", status: "FAIL", detail: `cannot load libc: ${(e as Error).message}`, fix: "tsnvme needs glibc's libc.so.6" });
    }
  }
  const probe = opts.openProbe ?? (libc ? libcOpenProbe(libc) : fsOpenProbe);
  let address: string | undefined;
  if (opts.address !== undefined) {
    const n = normalizePciAddress(opts.address);
    if (!n) throw new InvalidArgumentError(`not a PCI address: ${opts.address} (want e.g. 0000:01:00.0)`);
    address = n;
  }

  checks.push(
    iommuCheck(r),
    ...vfioModuleChecks(r),
    containerCheck(r, probe),
    interruptRemapCheck(r, opts.dmesg ?? defaultDmesg),
    memlockCheck(r, opts, libc, user),
  );

  if (address) {
    const info = pciInfo(address, r.pci);
    if (!info) {
      checks.push({ id: "device", status: "FAIL", detail: "no such PCI device", fix: `see: ${toolCommand("setup", "list")}`, device: address });
    } else if (info.classCode !== NVME_CLASS) {
      checks.push({
        id: "device",
        status: "FAIL",
        detail: `not an NVMe controller (class ${hex6(info.classCode)})`,
        fix: `pick an NVMe controller: ${toolCommand("setup", "list")}`,
        device: address,
      });
    } else {
      checks.push(...controllerChecks(info, r, probe, user));
    }
    return checks;
  }
  const ctrls = listNvmeControllers(r.pci);
  if (ctrls.length === 0) {
    checks.push({ id: "device", status: "FAIL", detail: "no NVMe controller (PCI class 0x010802) found", fix: "check lspci -nn" });
    return checks;
  }
  const per = ctrls.map((c) => controllerChecks(c, r, probe, user));
  // Without an address the question is whether tsnvme can use some controller; the
  // others (often the boot disk) are expected to stay with the kernel.
  const ready = per.some((cs) => cs.every((c) => c.status !== "FAIL"));
  for (const cs of per) {
    for (const c of cs) {
      if (ready && c.status === "FAIL") c.status = "warn";
      checks.push(c);
    }
  }
  return checks;
}

/** Render doctor checks as text, one line per check plus indented fix lines. */
export function formatChecks(checks: Check[]): string {
  const label = (c: Check) => (c.device ? `${c.device} ${c.id}` : c.id);
  const w = Math.max(...checks.map((c) => label(c).length));
  let s = "";
  for (const c of checks) {
    s += `${c.status.padEnd(4)}  ${label(c).padEnd(w)}  ${c.detail}\n`;
    if (c.fix && c.status !== "ok") s += c.fix.split("\n").map((l, i) => `${" ".repeat(w + 8)}${i ? "     " : "fix: "}${l}\n`).join("");
  }
  return s;
}

// ---------------------------------------------------------------- bind / unbind

/** Runs `modprobe NAME`; returns null on success, else why it failed. */
export type Modprobe = (module: string) => string | null;

function defaultModprobe(module: string): string | null {
  try {
    const r = spawnSync("modprobe", [module], { encoding: "utf8", timeout: 30_000, stdio: ["ignore", "ignore", "pipe"] });
    if (r.error) return r.error.message;
    return r.status === 0 ? null : (r.stderr.trim() || `exit status ${r.status}`);
  } catch (e) {
    return (e as Error).message;
  }
}

/** Options shared by {@link bindVfio} and {@link unbindVfio}. */
export interface BindOptions extends SetupRoots {
  /** Wait for the driver's device nodes; false skips it (a fake sysfs never rebinds). Default true. */
  wait?: boolean;
  /** How long to wait for the rebind and for a blocking unbind, in ms (default 10 000). */
  timeoutMs?: number;
  /** Replaces `modprobe` (tests). */
  modprobe?: Modprobe;
  /** Replaces the open(2) probe used to see whether a VFIO group is in use. */
  openProbe?: OpenProbe;
  /** Progress lines, as they happen. */
  log?: (line: string) => void;
}

/** Options of {@link bindVfio}. */
export interface BindVfioOptions extends BindOptions {
  /** Give /dev/vfio/<group> to this user (name or uid) so it can open the device without root. */
  user?: string;
  /** Bind even if the kernel nvme driver's namespaces are mounted or otherwise in use. */
  force?: boolean;
}

/** What {@link bindVfio} did. */
export interface BindResult {
  /** Normalised PCI address. */
  address: string;
  /** IOMMU group. */
  group: number;
  /** Driver the controller was bound to before, or null. */
  previousDriver: string | null;
  /** The VFIO group device, e.g. /dev/vfio/3. */
  groupPath: string;
  /** Problems that did not stop the bind (e.g. a non-viable group). */
  warnings: string[];
  /** Owner given with `user`, as "name (uid N)". */
  owner?: string;
}

/** What {@link unbindVfio} did. */
export interface UnbindResult {
  /** Normalised PCI address. */
  address: string;
  /** Driver the controller was bound to before, or null. */
  previousDriver: string | null;
  /** Kernel controller name (nvme0) once the nvme driver took it; null if not waited for. */
  controller: string | null;
  /** Problems that did not stop the unbind. */
  warnings: string[];
}

function nvmeTarget(addr: string, r: Roots): PciInfo {
  const address = normalizePciAddress(addr);
  if (!address) throw new InvalidArgumentError(`not a PCI address: ${addr} (want e.g. 0000:01:00.0)`);
  const info = pciInfo(address, r.pci);
  if (!info) throw new SetupError("no-device", `no PCI device ${address} (see: ${toolCommand("setup", "list")})`);
  if (info.classCode !== NVME_CLASS) {
    throw new SetupError(
      "not-nvme",
      `${address} is not an NVMe controller (class ${hex6(info.classCode)}, want 0x010802); refusing to touch it`,
    );
  }
  return info;
}

function sysWrite(path: string, data: string): void {
  try {
    writeFileSync(path, data);
  } catch (e) {
    throw writeError(path, e);
  }
}

function writeError(path: string, e: unknown): SetupError {
  const code = (e as { code?: string }).code;
  if (code === "EACCES" || code === "EPERM" || (e as Error).name === "PermissionDenied") {
    return new SetupError("permission", `cannot write ${path}: permission denied (run as root)`, { cause: e });
  }
  return new SetupError("vfio", `cannot write ${path}: ${(e as Error).message}`, { cause: e });
}

/**
 * Ask the kernel to probe drivers for `address`. Only a refusal to write is fatal: a failed
 * probe shows up in the caller's wait, with the driver state.
 */
function probe(address: string, sys: string, log: (line: string) => void): void {
  try {
    writeFileSync(`${sys}/bus/pci/drivers_probe`, address);
  } catch (e) {
    if ((e as { code?: string }).code === "EACCES") throw writeError(`${sys}/bus/pci/drivers_probe`, e);
    log(`${address}: drivers_probe: ${(e as Error).message}`);
  }
  log(`${address}: probing`);
}

/** Unbinding blocks in the kernel while a process holds a vfio device: bound it, so we report instead of hanging. */
async function unbindDriver(address: string, driver: string, r: Roots, ms: number): Promise<void> {
  const path = `${r.sys}/bus/pci/drivers/${driver}/unbind`;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new DeviceBusyError(`unbinding ${address} from ${driver} did not finish in ${ms / 1000} s: is a process still using it?`)),
      ms,
    );
  });
  try {
    await Promise.race([writeFile(path, address).catch((e) => Promise.reject(writeError(path, e))), expired]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitFor<T>(ms: number, f: () => T | null): Promise<T | null> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== null || Date.now() >= end) return v;
    await new Promise((res) => setTimeout(res, 50));
  }
}

function lookupUser(user: string, etc: string): { uid: number; gid: number; name: string } {
  if (/^\d+$/.test(user)) {
    const uid = Number(user);
    const line = (read(`${etc}/passwd`) ?? "").split("\n").find((l) => l.split(":")[2] === user);
    return { uid, gid: line ? Number(line.split(":")[3]) : uid, name: line?.split(":")[0] ?? user };
  }
  for (const line of (read(`${etc}/passwd`) ?? "").split("\n")) {
    const f = line.split(":");
    if (f[0] === user && f.length >= 4) return { uid: Number(f[2]), gid: Number(f[3]), name: user };
  }
  // Directory users (LDAP, sssd) are not in passwd; id(1) asks NSS.
  const id = (flag: string) => spawnSync("id", [flag, user], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
  const u = id("-u"), g = id("-g");
  if (u.status === 0 && g.status === 0) return { uid: Number(u.stdout.trim()), gid: Number(g.stdout.trim()), name: user };
  throw new InvalidArgumentError(`no such user: ${user}`);
}

/**
 * Hand an NVMe controller to vfio-pci. Refuses anything that is not an NVMe
 * controller, and a controller whose namespaces are mounted (unless `force`).
 */
export async function bindVfio(addr: string, opts: BindVfioOptions = {}): Promise<BindResult> {
  const r = roots(opts);
  const log = opts.log ?? (() => {});
  const ms = opts.timeoutMs ?? 10_000;
  const info = nvmeTarget(addr, r);
  const a = info.address;
  if (info.iommuGroup === null) {
    throw new SetupError(
      "no-iommu",
      `${a} has no IOMMU group: enable the IOMMU (firmware VT-d/AMD-Vi, kernel args intel_iommu=on or amd_iommu=on) and reboot`,
    );
  }
  const group = info.iommuGroup;
  const owner = opts.user !== undefined ? lookupUser(opts.user, r.etc) : undefined;
  const warnings: string[] = [];
  const warn = (w: string) => {
    warnings.push(w);
    log(`warning: ${w}`);
  };

  if (info.driver === "nvme" && !opts.force) {
    const k = kernelNvme(a, r.pci);
    const users = namespaceUsers(k?.namespaces ?? [], r);
    if (users.length) {
      throw new DeviceBusyError(
        `${a} (/dev/${k!.name}) is in use: ${users.join(", ")}. Stop using it first (or pass --force to pull it anyway)`,
      );
    }
  }
  const blockers = groupBlockers(group, a, r.sys);
  if (blockers.length) {
    warn(
      `IOMMU group ${group} also holds ${blockerList(blockers)}; the group will not be viable until ` +
        `${blockers.length === 1 ? "it is" : "they are"} unbound or bound to vfio-pci`,
    );
  }

  if (!existsSync(`${r.sys}/bus/pci/drivers/vfio-pci`)) {
    log("loading vfio-pci (modprobe vfio-pci)");
    const why = (opts.modprobe ?? defaultModprobe)("vfio-pci");
    if (why !== null) warn(`modprobe vfio-pci failed: ${why}`);
    if (!existsSync(`${r.sys}/bus/pci/drivers/vfio-pci`)) {
      throw new SetupError("no-vfio", `the vfio-pci driver is not available${why ? ` (modprobe vfio-pci: ${why})` : ""}`);
    }
  }

  const dev = `${r.pci}/${a}`;
  // driver_override makes vfio-pci the only driver that may claim it, now and on later probes.
  sysWrite(`${dev}/driver_override`, "vfio-pci");
  log(`${a}: driver_override = vfio-pci`);
  if (info.driver && info.driver !== "vfio-pci") {
    await unbindDriver(a, info.driver, r, ms);
    log(`${a}: unbound from ${info.driver}`);
  }
  if (info.driver !== "vfio-pci") {
    probe(a, r.sys, log);
  }
  const groupPath = `${r.dev}/vfio/${group}`;
  if (opts.wait ?? true) {
    const ok = await waitFor(ms, () => (pciInfo(a, r.pci)?.driver === "vfio-pci" && existsSync(groupPath) ? true : null));
    if (!ok) {
      const now = pciInfo(a, r.pci)?.driver;
      throw new SetupError(
        "not-bound",
        now === "vfio-pci"
          ? `${a} is bound to vfio-pci but ${groupPath} did not appear within ${ms / 1000} s`
          : `vfio-pci did not take ${a} within ${ms / 1000} s (now ${now ? `bound to ${now}` : "unbound"}; see dmesg | tail)`,
      );
    }
  }
  let ownerText: string | undefined;
  if (owner) {
    try {
      chownSync(groupPath, owner.uid, owner.gid);
    } catch (e) {
      throw new SetupError("permission", `cannot chown ${groupPath} to ${owner.name}: ${(e as Error).message}`, { cause: e });
    }
    ownerText = `${owner.name} (uid ${owner.uid})`;
    log(`${groupPath}: owner ${ownerText}`);
  }
  return { address: a, group, previousDriver: info.driver, groupPath, warnings, ...(ownerText ? { owner: ownerText } : {}) };
}

/** Give an NVMe controller back to the kernel nvme driver. */
export async function unbindVfio(addr: string, opts: BindOptions = {}): Promise<UnbindResult> {
  const r = roots(opts);
  const log = opts.log ?? (() => {});
  const ms = opts.timeoutMs ?? 10_000;
  const info = nvmeTarget(addr, r);
  const a = info.address;
  const warnings: string[] = [];
  const warn = (w: string) => {
    warnings.push(w);
    log(`warning: ${w}`);
  };
  const dev = `${r.pci}/${a}`;

  if (info.driver === "vfio-pci" && info.iommuGroup !== null) {
    // Unbinding would block in the kernel until the user lets go; say so up front.
    const e = (opts.openProbe ?? fsOpenProbe)(`${r.dev}/vfio/${info.iommuGroup}`);
    if (e === Errno.EBUSY) {
      throw new DeviceBusyError(`${a} is in use (${r.dev}/vfio/${info.iommuGroup} is held by another process); close it first`);
    }
  }
  if (!existsSync(`${r.sys}/bus/pci/drivers/nvme`)) {
    log("loading nvme (modprobe nvme)");
    const why = (opts.modprobe ?? defaultModprobe)("nvme");
    if (why !== null) warn(`modprobe nvme failed: ${why}`);
  }
  // An empty override lets the normal ID match pick the driver again.
  sysWrite(`${dev}/driver_override`, "\n");
  log(`${a}: driver_override cleared`);
  if (info.driver === "nvme") {
    log(`${a}: already bound to nvme`);
  } else {
    if (info.driver) {
      await unbindDriver(a, info.driver, r, ms);
      log(`${a}: unbound from ${info.driver}`);
    }
    probe(a, r.sys, log);
  }
  let controller: string | null = null;
  if (opts.wait ?? true) {
    controller = await waitFor(ms, () => {
      const k = kernelNvme(a, r.pci);
      return k && existsSync(`${r.dev}/${k.name}`) ? k.name : null;
    });
    if (!controller) {
      const now = pciInfo(a, r.pci)?.driver;
      throw new SetupError(
        "not-bound",
        `the nvme driver did not bring up ${a} within ${ms / 1000} s (now ${now ? `bound to ${now}` : "unbound"}; see dmesg | tail)`,
      );
    }
  }
  return { address: a, previousDriver: info.driver, controller, warnings };
}

/** One row of {@link listControllers}. */
export interface ControllerRow extends PciInfo {
  /** /dev name and model while the kernel nvme driver owns it. */
  kernel: { name: string; model: string | null } | null;
}

/** Every NVMe controller with what the kernel made of it. */
export function listControllers(opts: SetupRoots = {}): ControllerRow[] {
  const r = roots(opts);
  return listNvmeControllers(r.pci).map((c) => {
    const k = c.driver === "nvme" ? kernelNvme(c.address, r.pci) : null;
    return { ...c, kernel: k ? { name: k.name, model: k.model } : null };
  });
}
