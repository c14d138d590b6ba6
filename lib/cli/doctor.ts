/**
 * The doctor: checks that this host can run tsnvme (runtime, FFI, IOMMU, vfio
 * modules, locked memory, interrupt remapping, each controller's driver and
 * IOMMU group), each problem with the fix to type, and the report the setup
 * tool prints. It reads the host through lib/vfio and changes nothing.
 * @module
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import process from "node:process";
import { describeRuntime, Errno, errnoName, type Libc, loadLibc, O_CLOEXEC, O_RDWR, type RuntimeName } from "../ffi/mod.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { memlockLimit } from "../vfio/vfio.ts";
import { blockerList, classHex, groupBlockers, groupMembers, kernelNvme, listDir, listNvmeControllers, normalizePciAddress, NVME_CLASS, pciInfo, type PciInfo, readText } from "../vfio/sysfs.ts";
import { fsOpenProbe, type HostRoots, hostRoots, namespaceUsers, type OpenProbe, type SetupRoots } from "../vfio/setup.ts";
import { toolCommand } from "../commands.ts";

/** Re-exported so the options' types are part of this module's documented API. */
export type { Libc, OpenProbe, RuntimeName, SetupRoots };

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
  try {
    return describeRuntime();
  } catch {
    return { name: "unknown", version: process.version ?? "?", ffi: false };
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

/** The command line users should run for a setup step (as root), as a user of the published package types it. */
export function setupCommand(args: string): string {
  return toolCommand("setup", args, { sudo: true });
}

/** CPU vendor from /proc/cpuinfo, to pick the right IOMMU kernel argument in advice. */
function cpuVendor(proc: string): "intel" | "amd" | null {
  const info = readText(`${proc}/cpuinfo`) ?? "";
  if (/GenuineIntel/.test(info)) return "intel";
  if (/AuthenticAMD|HygonGenuine/.test(info)) return "amd";
  return null;
}

function capIpcLock(proc: string): boolean {
  const m = /^CapEff:\s*([0-9a-f]+)/m.exec(readText(`${proc}/self/status`) ?? "");
  if (m) return (BigInt(`0x${m[1]}`) & (1n << 14n)) !== 0n;
  return process.getuid?.() === 0;
}

/** RLIMIT_MEMLOCK from /proc when FFI is unavailable. */
function memlockFromProc(proc: string): number {
  const m = /^Max locked memory\s+(\S+)/m.exec(readText(`${proc}/self/limits`) ?? "");
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

function iommuCheck(r: HostRoots): Check {
  const groups = listDir(`${r.sys}/kernel/iommu_groups`);
  const cmdline = (readText(`${r.proc}/cmdline`) ?? "").trim();
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

function vfioModuleChecks(r: HostRoots): Check[] {
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

function containerCheck(r: HostRoots, probe: OpenProbe): Check {
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

function memlockCheck(r: HostRoots, opts: DoctorOptions, libc: Libc | null, user: string): Check {
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

function interruptRemapCheck(r: HostRoots, dmesg: () => string | null): Check {
  const unsafe = (readText(`${r.sys}/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts`) ?? "").trim();
  const unsafeFix = "or, trusting the device, allow it: echo 1 | sudo tee /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts";
  // Remapped interrupt chips are named IR-* on x86; an ARM GIC ITS isolates MSIs just as well.
  const irq = readText(`${r.proc}/interrupts`) ?? "";
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

function controllerChecks(info: PciInfo, r: HostRoots, probe: OpenProbe, user: string): Check[] {
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
  const r = hostRoots(opts);
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
        detail: `not an NVMe controller (class ${classHex(info.classCode)})`,
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
