/**
 * PCI facts from sysfs: driver binding, IOMMU group, class. Runtime neutral
 * (node:fs works in Deno and Bun).
 * @module
 */
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";

/** Root of PCI devices in sysfs (overridable for tests). */
export const SYSFS_PCI = "/sys/bus/pci/devices";

/** PCI class code of an NVM Express controller (mass storage, NVM, NVMe). */
export const NVME_CLASS = 0x010802;

/** Normalise "01:00.0" to "0000:01:00.0"; reject anything that is not a PCI address. */
export function normalizePciAddress(addr: string): string | null {
  const m = /^(?:([0-9a-fA-F]{4}):)?([0-9a-fA-F]{2}):([0-9a-fA-F]{2})\.([0-7])$/.exec(addr.trim());
  if (!m) return null;
  return `${(m[1] ?? "0000").toLowerCase()}:${m[2].toLowerCase()}:${m[3].toLowerCase()}.${m[4]}`;
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

/** All PCI functions whose class is NVMe. */
export function listNvmeControllers(root = SYSFS_PCI): PciInfo[] {
  let names: string[] = [];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  return names.sort().map((a) => pciInfo(a, root)).filter((p): p is PciInfo => p !== null && p.classCode === NVME_CLASS);
}

/** Devices sharing IOMMU group `group`, with their drivers. */
export function groupMembers(group: number): PciInfo[] {
  try {
    return readdirSync(`/sys/kernel/iommu_groups/${group}/devices`).sort().map((a) => pciInfo(a)).filter((
      p,
    ): p is PciInfo => p !== null);
  } catch {
    return [];
  }
}

/** Shell commands that bind `address` to vfio-pci (printed in setup errors). */
export function bindInstructions(address: string): string {
  return [
    `  sudo modprobe vfio-pci`,
    `  echo vfio-pci | sudo tee /sys/bus/pci/devices/${address}/driver_override`,
    `  echo ${address} | sudo tee /sys/bus/pci/devices/${address}/driver/unbind   # if bound`,
    `  echo ${address} | sudo tee /sys/bus/pci/drivers_probe`,
    `or: deno run -A scripts/setup.ts bind ${address}`,
  ].join("\n");
}
