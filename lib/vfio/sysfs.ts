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
