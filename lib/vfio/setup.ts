/**
 * Binding an NVMe controller to vfio-pci and back, and the host facts that
 * binding and the doctor (lib/cli/doctor.ts) both read. Runtime neutral
 * (node: built-ins plus lib/ffi), and every filesystem root is a parameter so
 * tests can run against a fake sysfs tree.
 * @module
 */
import { spawnSync } from "node:child_process";
import { chownSync, closeSync, constants, existsSync, openSync, writeFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { Errno } from "../ffi/mod.ts";
import { DeviceBusyError, InvalidArgumentError, SetupError } from "../nvme/errors.ts";
import { blockerList, classHex, groupBlockers, kernelNvme, listDir, normalizePciAddress, NVME_CLASS, pciInfo, type PciInfo, readText } from "./sysfs.ts";
import { toolCommand } from "../commands.ts";

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

/** {@link SetupRoots} with every default filled in, and the PCI devices directory under sysfs. */
export interface HostRoots {
  /** sysfs mount point. */
  sys: string;
  /** devtmpfs mount point. */
  dev: string;
  /** procfs mount point. */
  proc: string;
  /** Configuration directory. */
  etc: string;
  /** `${sys}/bus/pci/devices`. */
  pci: string;
}

/** Fill in the default roots. */
export function hostRoots(r: SetupRoots): HostRoots {
  const sys = r.sys ?? "/sys";
  return { sys, dev: r.dev ?? "/dev", proc: r.proc ?? "/proc", etc: r.etc ?? "/etc", pci: `${sys}/bus/pci/devices` };
}

/**
 * Try to open `path` read-write and close it again; 0 on success, else the errno.
 * Goes through libc when available because that is exactly what VfioDevice.open does.
 */
export type OpenProbe = (path: string) => number;

/** The open(2) probe through node:fs, where libc is not loaded. */
export function fsOpenProbe(path: string): number {
  try {
    closeSync(openSync(path, constants.O_RDWR));
    return 0;
  } catch (e) {
    const code = (e as { code?: string }).code ?? "";
    return (Errno as Record<string, number>)[code] ?? Errno.EIO;
  }
}

/** Block devices of `ns` (the disk and its partitions) that are mounted, used as swap, or held by dm/md. */
export function namespaceUsers(ns: string[], r: HostRoots): string[] {
  if (ns.length === 0) return [];
  const out: string[] = [];
  const isOurs = (dev: string) => ns.some((n) => dev === n || new RegExp(`^${n}p\\d+$`).test(dev));
  for (const line of (readText(`${r.proc}/mounts`) ?? "").split("\n")) {
    const [src, target] = line.split(" ");
    if (src?.startsWith("/dev/") && isOurs(src.slice(5))) out.push(`${src} mounted on ${target}`);
  }
  for (const line of (readText(`${r.proc}/swaps`) ?? "").split("\n").slice(1)) {
    const src = line.split(/\s+/)[0];
    if (src?.startsWith("/dev/") && isOurs(src.slice(5))) out.push(`${src} is swap`);
  }
  for (const n of ns) {
    for (const part of [n, ...listDir(`${r.sys}/block/${n}`).filter((p) => p.startsWith(`${n}p`))]) {
      const dir = part === n ? `${r.sys}/block/${n}/holders` : `${r.sys}/block/${n}/${part}/holders`;
      for (const h of listDir(dir)) out.push(`/dev/${part} is held by ${h}`);
    }
  }
  return out;
}

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

function nvmeTarget(addr: string, r: HostRoots): PciInfo {
  const address = normalizePciAddress(addr);
  if (!address) throw new InvalidArgumentError(`not a PCI address: ${addr} (want e.g. 0000:01:00.0)`);
  const info = pciInfo(address, r.pci);
  if (!info) throw new SetupError("no-device", `no PCI device ${address} (see: ${toolCommand("setup", "list")})`);
  if (info.classCode !== NVME_CLASS) {
    throw new SetupError(
      "not-nvme",
      `${address} is not an NVMe controller (class ${classHex(info.classCode)}, want 0x010802); refusing to touch it`,
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
async function unbindDriver(address: string, driver: string, r: HostRoots, ms: number): Promise<void> {
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
    const line = (readText(`${etc}/passwd`) ?? "").split("\n").find((l) => l.split(":")[2] === user);
    return { uid, gid: line ? Number(line.split(":")[3]) : uid, name: line?.split(":")[0] ?? user };
  }
  for (const line of (readText(`${etc}/passwd`) ?? "").split("\n")) {
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
  const r = hostRoots(opts);
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
  const r = hostRoots(opts);
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
