/**
 * PCI facts from sysfs: driver binding, IOMMU group, class. Runtime neutral
 * (node:fs works in Deno and Bun).
 * @module
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { toolCommand } from "../commands.ts";

/** Root of PCI devices in sysfs (overridable for tests). */
export const SYSFS_PCI = "/sys/bus/pci/devices";

/** PCI class code of an NVM Express controller (mass storage, NVM, NVMe). */
export const NVME_CLASS = 0x010802;

/** A PCI class code as setup messages print it, e.g. 0x010802. */
export function classHex(code: number): string {
  return `0x${code.toString(16).padStart(6, "0")}`;
}

/** Normalise "01:00.0" to "0000:01:00.0"; reject anything that is not a PCI address. */
export function normalizePciAddress(addr: string): string | null {
  const m = /^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(addr.trim());
  if (!m) return null;
  return `${(m[1] ?? "0000").toLowerCase()}:${m[2].toLowerCase()}:${m[3].toLowerCase()}.${m[4]}`;
}

/** A pseudo file's text, or null when it cannot be read (absent, no permission). */
export function readText(path: string): string | null {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return null;
  }
}

/** A directory's entries, sorted; empty when it cannot be read. */
export function listDir(path: string): string[] {
  try {
    return readdirSync(path).sort();
  } catch {
    return [];
  }
}

function readHex(path: string): number | null {
  try {
    return parseInt(readFileSync(path, "utf8").trim(), 16);
  } catch {
    return null;
  }
}

/** What sysfs says about one PCI function. */
export interface PciInfo {
  /** Full address, e.g. 0000:01:00.0. */
  address: string;
  /** Vendor id. */
  vendor: number;
  /** Device id. */
  device: number;
  /** 24-bit class code. */
  classCode: number;
  /** Bound driver name, or null when unbound. */
  driver: string | null;
  /** IOMMU group number, or null when the device has no IOMMU group. */
  iommuGroup: number | null;
}

/** Read PCI facts for `address`, or null if no such device exists. */
export function pciInfo(address: string, root = SYSFS_PCI): PciInfo | null {
  const dir = `${root}/${address}`;
  if (!existsSync(dir)) return null;
  let driver: string | null = null;
  let iommuGroup: number | null = null;
  try {
    driver = readlinkSync(`${dir}/driver`).split("/").pop() ?? null;
  } catch { /* unbound */ }
  try {
    iommuGroup = parseInt(readlinkSync(`${dir}/iommu_group`).split("/").pop()!, 10);
  } catch { /* no IOMMU */ }
  return {
    address,
    vendor: readHex(`${dir}/vendor`) ?? 0,
    device: readHex(`${dir}/device`) ?? 0,
    classCode: readHex(`${dir}/class`) ?? 0,
    driver,
    iommuGroup,
  };
}

/** An NVMe controller as sysfs shows it: {@link listNvmeControllers}' row. */
export interface NvmeController extends PciInfo {
  /** /dev name and model while the kernel nvme driver owns it. */
  kernel: { name: string; model: string | null } | null;
}

/**
 * Every PCI function whose class is NVMe, with what the kernel made of it: the one lister
 * behind `nvme list`, `setup list`, the doctor and the tools' default device.
 */
export function listNvmeControllers(root = SYSFS_PCI): NvmeController[] {
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names.sort().map((a) => pciInfo(a, root)).filter((p): p is PciInfo => p !== null && p.classCode === NVME_CLASS).map((c) => {
    const k = c.driver === "nvme" ? kernelNvme(c.address, root) : null;
    return { ...c, kernel: k ? { name: k.name, model: k.model } : null };
  });
}

/** Devices sharing IOMMU group `group`, with their drivers. `sysRoot` is where sysfs is mounted (tests pass a fake tree). */
export function groupMembers(group: number, sysRoot = "/sys"): PciInfo[] {
  const pci = sysRoot === "/sys" ? SYSFS_PCI : `${sysRoot}/bus/pci/devices`;
  try {
    return readdirSync(`${sysRoot}/kernel/iommu_groups/${group}/devices`).sort().map((a) => pciInfo(a, pci)).filter((
      p,
    ): p is PciInfo => p !== null);
  } catch {
    return [];
  }
}

/** Drivers that leave an IOMMU group viable for VFIO: vfio itself, stubs, and PCIe port services. */
function viableDriver(p: PciInfo): boolean {
  if (p.driver === null) return true;
  if (p.driver === "vfio-pci" || p.driver.endsWith("vfio_pci") || p.driver.endsWith("vfio-pci")) return true;
  if (p.driver === "pci-stub" || p.driver === "pcieport") return true;
  // Bridges never DMA on their own behalf; the kernel ignores their driver for viability.
  return (p.classCode >> 8) === 0x0604;
}

/** Devices of the group that keep it from being viable (other than `address`). `sysRoot` as in {@link groupMembers}. */
export function groupBlockers(group: number, address: string, sysRoot: string): PciInfo[] {
  return groupMembers(group, sysRoot).filter((m) => m.address !== address && !viableDriver(m));
}

/** How setup messages name the devices that block a group: `ADDR (driver), ...`. */
export function blockerList(b: PciInfo[]): string {
  return b.map((m) => `${m.address} (${m.driver})`).join(", ");
}

/** The kernel nvme driver's view of a controller it owns (only while bound to nvme). */
export interface KernelNvme {
  /** Character device name, e.g. "nvme0" (/dev/nvme0). */
  name: string;
  /** Model string reported by the controller, trimmed, or null if unreadable. */
  model: string | null;
  /**
   * Namespace block devices, e.g. ["nvme0n1"]. Multipath path nodes (nvme0c0n1) are
   * reported as their head (nvme0n1), since that is what gets mounted.
   */
  namespaces: string[];
}

/** What the kernel nvme driver made of `address`, or null when it does not own it. */
export function kernelNvme(address: string, root = SYSFS_PCI): KernelNvme | null {
  const dir = `${root}/${address}/nvme`;
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^nvme\d+$/.test(n)).sort();
  } catch {
    return null;
  }
  if (names.length === 0) return null;
  const name = names[0];
  let model: string | null = null;
  try {
    model = readFileSync(`${dir}/${name}/model`, "utf8").trim();
  } catch { /* older kernels or a dying controller */ }
  const namespaces = new Set<string>();
  try {
    for (const n of readdirSync(`${dir}/${name}`).sort()) {
      const m = /^nvme(\d+)(?:c\d+)?n(\d+)$/.exec(n);
      if (m) namespaces.add(`nvme${m[1]}n${m[2]}`);
    }
  } catch { /* no namespaces */ }
  return { name, model, namespaces: [...namespaces] };
}

/** Shell commands that bind `address` to vfio-pci (printed in setup errors). */
export function bindInstructions(address: string): string {
  return [
    `  sudo modprobe vfio-pci`,
    `  echo vfio-pci | sudo tee /sys/bus/pci/devices/${address}/driver_override`,
    `  echo ${address} | sudo tee /sys/bus/pci/devices/${address}/driver/unbind   # if bound`,
    `  echo ${address} | sudo tee /sys/bus/pci/drivers_probe`,
    `or: ${toolCommand("setup", `bind ${address}`, { sudo: true })}`,
  ].join("\n");
}
