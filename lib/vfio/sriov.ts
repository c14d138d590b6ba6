/**
 * SR-IOV virtual functions through sysfs: what a physical function offers
 * (sriov_totalvfs, sriov_numvfs, virtfnN), enabling and disabling VFs, and the
 * VF token (a UUID) that vfio-pci makes every VF user present while the PF is
 * bound to vfio-pci (Linux drivers/vfio/pci/vfio_pci_core.c). Runtime neutral
 * (node:fs); every root is a parameter so tests run against a fake sysfs.
 * @module
 */
import { existsSync, readlinkSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { DeviceBusyError, InvalidArgumentError, SetupError } from "../nvme/errors.ts";
import { listDir, pciInfo, readText, SYSFS_PCI } from "./sysfs.ts";

/** One virtual function of a PF. */
export interface VfInfo {
  /** Virtual function number, 1-based (sysfs virtfn0 is VF 1, as the secondary controller list counts). */
  vfn: number;
  /** PCI address of the VF. */
  address: string;
  /** Driver bound to the VF, or null. */
  driver: string | null;
  /** IOMMU group of the VF, or null. */
  iommuGroup: number | null;
}

/** What sysfs says about a physical function's SR-IOV capability. */
export interface SriovInfo {
  /** PCI address of the PF. */
  address: string;
  /** VFs the device supports (sriov_totalvfs). */
  totalVfs: number;
  /** VFs enabled now (sriov_numvfs). */
  numVfs: number;
  /** The enabled VFs, by VF number. */
  vfs: VfInfo[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A VF token in the form vfio-pci parses (lower-case UUID); throws InvalidArgumentError otherwise. */
export function parseVfToken(token: string): string {
  if (typeof token !== "string" || !UUID.test(token.trim())) {
    throw new InvalidArgumentError(`a VF token is a UUID such as bd8d9d2b-5a5f-4f5a-a211-f591514ba1f3, got ${JSON.stringify(token)}`);
  }
  return token.trim().toLowerCase();
}

/** A fresh random VF token. */
export function newVfToken(): string {
  return crypto.randomUUID();
}

/** The 16 bytes of a VF token, in string order (Linux uuid_parse). */
export function vfTokenBytes(token: string): Uint8Array {
  const hex = parseVfToken(token).replaceAll("-", "");
  return Uint8Array.from({ length: 16 }, (_, i) => parseInt(hex.slice(i * 2, i * 2 + 2), 16));
}

/** The SR-IOV state of `address`, or null when it is not a PF (no SR-IOV capability). */
export function sriovInfo(address: string, root: string = SYSFS_PCI): SriovInfo | null {
  const dir = `${root}/${address}`;
  const total = readText(`${dir}/sriov_totalvfs`);
  if (total === null) return null;
  const vfs: VfInfo[] = [];
  for (const e of listDir(dir)) {
    const m = /^virtfn(\d+)$/.exec(e);
    if (!m) continue;
    let vf: string;
    try {
      vf = readlinkSync(`${dir}/${e}`).split("/").pop()!;
    } catch {
      continue;
    }
    const info = pciInfo(vf, root);
    vfs.push({ vfn: Number(m[1]) + 1, address: vf, driver: info?.driver ?? null, iommuGroup: info?.iommuGroup ?? null });
  }
  vfs.sort((a, b) => a.vfn - b.vfn);
  return { address, totalVfs: Number(total.trim()) || 0, numVfs: Number((readText(`${dir}/sriov_numvfs`) ?? "0").trim()) || 0, vfs };
}

/** The PF of VF `address`, or null when `address` is not a VF. */
export function physfnOf(address: string, root: string = SYSFS_PCI): string | null {
  try {
    return readlinkSync(`${root}/${address}/physfn`).split("/").pop() ?? null;
  } catch {
    return null;
  }
}

/** True when `address` takes part in SR-IOV (a PF or a VF): only then does vfio-pci accept a VF token. */
export function sriovCapable(address: string, root: string = SYSFS_PCI): boolean {
  return existsSync(`${root}/${address}/sriov_totalvfs`) || existsSync(`${root}/${address}/physfn`);
}

/** Options of {@link setNumVfs}. */
export interface NumVfsOptions {
  /** sysfs mount point (default "/sys"). */
  sys?: string;
  /** devtmpfs mount point, for /dev/vfio/<group> (default "/dev"). */
  dev?: string;
  /** Wait for the VFs to appear, bound, with their VFIO group nodes (default true). */
  wait?: boolean;
  /** How long the write and the wait may take, ms (default 20 000). */
  timeoutMs?: number;
}

async function writeBounded(path: string, data: string, ms: number, what: string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeviceBusyError(`${what} did not finish in ${ms / 1000} s: is a VF still open?`)), ms);
  });
  try {
    await Promise.race([writeFile(path, data), expired]);
  } catch (e) {
    if (e instanceof DeviceBusyError) throw e;
    const code = (e as { code?: string }).code;
    if (code === "EACCES" || code === "EPERM") throw new SetupError("permission", `cannot write ${path}: permission denied (run as root)`, { cause: e });
    throw new SetupError("sriov", `${what}: ${(e as Error).message}`, { cause: e });
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Enable `n` VFs of the PF at `address` (0 disables them) by writing sriov_numvfs, and wait until
 * each VF is bound to a driver and, when that is vfio-pci, has its /dev/vfio/<group> node. When the
 * PF is bound to vfio-pci, the VFs bind to vfio-pci on their own (vfio-pci sets their
 * driver_override), and vfio-pci must allow SR-IOV: its `enable_sriov` parameter is switched on
 * here when it is off and writable. Disabling blocks in the kernel while a VF is open, so it is
 * bounded by `timeoutMs` and then fails with DeviceBusyError.
 */
export async function setNumVfs(address: string, n: number, o: NumVfsOptions = {}): Promise<VfInfo[]> {
  const sys = o.sys ?? "/sys", dev = o.dev ?? "/dev", root = `${sys}/bus/pci/devices`, ms = o.timeoutMs ?? 20_000;
  const info = sriovInfo(address, root);
  if (!info) throw new SetupError("sriov", `${address} has no SR-IOV capability (no sriov_totalvfs in sysfs)`);
  if (!Number.isInteger(n) || n < 0 || n > info.totalVfs) {
    throw new InvalidArgumentError(`number of VFs must be 0-${info.totalVfs} (sriov_totalvfs of ${address}), got ${n}`);
  }
  const pfDriver = pciInfo(address, root)?.driver ?? null;
  if (n > 0 && pfDriver === "vfio-pci") {
    const param = `${sys}/module/vfio_pci/parameters/enable_sriov`;
    if ((readText(param) ?? "N").trim() !== "Y") {
      try {
        await writeFile(param, "1");
      } catch (e) {
        throw new SetupError(
          "sriov",
          `vfio-pci does not allow SR-IOV: load it with enable_sriov=1 (modprobe vfio-pci enable_sriov=1), or: echo 1 > ${param}`,
          { cause: e },
        );
      }
    }
  }
  const path = `${root}/${address}/sriov_numvfs`;
  if (info.numVfs !== n) {
    // The kernel takes a new count only from 0.
    if (info.numVfs !== 0 && n !== 0) await writeBounded(path, "0", ms, `disabling the VFs of ${address}`);
    await writeBounded(path, String(n), ms, `${n ? "enabling" : "disabling"} ${n || info.numVfs} VFs of ${address}`);
  }
  if (o.wait === false || n === 0) return sriovInfo(address, root)?.vfs ?? [];
  const deadline = Date.now() + ms;
  for (;;) {
    const vfs = sriovInfo(address, root)?.vfs ?? [];
    const ready = vfs.length === n &&
      vfs.every((v) => v.driver !== null && (v.driver !== "vfio-pci" || (v.iommuGroup !== null && existsSync(`${dev}/vfio/${v.iommuGroup}`))));
    if (ready) return vfs;
    if (Date.now() > deadline) {
      const state = vfs.map((v) => `${v.address} (driver: ${v.driver ?? "none"})`).join(", ") || "none";
      throw new SetupError("sriov", `${n} VFs of ${address} did not come up bound within ${ms / 1000} s; VFs: ${state}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
