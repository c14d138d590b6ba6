/**
 * Linux VFIO (type1 IOMMU): container, group, device, regions, DMA mapping.
 * Every setup failure becomes a SetupError that says what to do.
 * @module
 */
import {
  Errno,
  errnoName,
  type Libc,
  MAP_ANONYMOUS,
  MAP_FAILED,
  MAP_POPULATE,
  MAP_PRIVATE,
  MAP_SHARED,
  O_CLOEXEC,
  O_RDWR,
  PROT_READ,
  PROT_WRITE,
  RLIMIT_MEMLOCK,
} from "../ffi/mod.ts";
import { DeviceBusyError, SetupError, SyscallError } from "../nvme/errors.ts";
import { bindInstructions, groupMembers, NVME_CLASS, pciInfo } from "./sysfs.ts";
import { parseVfToken, physfnOf, sriovCapable, vfTokenBytes } from "./sriov.ts";
import { toolCommand } from "../commands.ts";
import { readFileSync } from "node:fs";

// _IO(';', 100 + n): VFIO's ioctls carry no size in the number.
const VFIO = (n: number) => BigInt((0x3b << 8) | (100 + n));
/** VFIO ioctl request numbers (linux/vfio.h). */
export const VfioIoctl = {
  GET_API_VERSION: VFIO(0),
  CHECK_EXTENSION: VFIO(1),
  SET_IOMMU: VFIO(2),
  GROUP_GET_STATUS: VFIO(3),
  GROUP_SET_CONTAINER: VFIO(4),
  GROUP_UNSET_CONTAINER: VFIO(5),
  GROUP_GET_DEVICE_FD: VFIO(6),
  DEVICE_GET_INFO: VFIO(7),
  DEVICE_GET_REGION_INFO: VFIO(8),
  DEVICE_GET_IRQ_INFO: VFIO(9),
  DEVICE_SET_IRQS: VFIO(10),
  DEVICE_RESET: VFIO(11),
  IOMMU_GET_INFO: VFIO(12),
  IOMMU_MAP_DMA: VFIO(13),
  IOMMU_UNMAP_DMA: VFIO(14),
  DEVICE_FEATURE: VFIO(17),
} as const;

/** VFIO_DEVICE_FEATURE flags and the feature that sets a PF's VF token (linux/vfio.h). */
const FEATURE_SET = 1 << 17;
const FEATURE_PCI_VF_TOKEN = 0;

/** Options of {@link VfioDevice.open}. */
export interface VfioOpenOptions {
  /**
   * The VF token (a UUID) shared between a PF bound to vfio-pci and the users of its VFs: required
   * to open such a VF, and to open the PF while its VFs are in use. Ignored for devices that take
   * no part in SR-IOV, as libvfn does.
   */
  vfToken?: string;
}

const VFIO_API_VERSION = 0;
const VFIO_TYPE1_IOMMU = 1n;
const VFIO_TYPE1v2_IOMMU = 3n;
const GROUP_FLAGS_VIABLE = 1;
/** Region index of BAR0. */
export const BAR0_REGION = 0;
/** Region index of PCI configuration space. */
export const CONFIG_REGION = 7;
const PCI_COMMAND = 0x04;
const PCI_COMMAND_MEMORY = 0x2;
const PCI_COMMAND_MASTER = 0x4;

/** A VFIO region (BAR or config space). */
export interface RegionInfo {
  /** Region index. */
  index: number;
  /** VFIO_REGION_INFO_FLAG_* bits (1 read, 2 write, 4 mmap). */
  flags: number;
  /** Size in bytes. */
  size: bigint;
  /** Offset of the region in the device fd. */
  offset: bigint;
}

/** A usable IOVA window reported by the IOMMU. */
export interface IovaRange {
  /** First usable IOVA. */
  start: number;
  /** Last usable IOVA (inclusive). */
  end: number;
}

/** One DMA mapping: host memory pinned and mapped at an IOVA. */
export interface DmaMapping {
  /** Host virtual address. */
  vaddr: bigint;
  /** Device address. */
  iova: number;
  /** Bytes (page multiple). */
  size: number;
}

function u32(b: Uint8Array, off: number, v?: number): number {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v !== undefined) dv.setUint32(off, v >>> 0, true);
  return dv.getUint32(off, true);
}

function u64(b: Uint8Array, off: number, v?: bigint): bigint {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (v !== undefined) dv.setBigUint64(off, v, true);
  return dv.getBigUint64(off, true);
}

/** Current RLIMIT_MEMLOCK soft limit in bytes (Infinity when unlimited). */
export function memlockLimit(libc: Libc): number {
  const b = new Uint8Array(16);
  if (libc.getrlimit(RLIMIT_MEMLOCK, b) !== 0) return Infinity;
  const cur = u64(b, 0);
  return cur >= 0x7fff_ffff_ffff_ffffn ? Infinity : Number(cur);
}

/** An opened VFIO device with its container and group, BAR0 mapped, bus mastering on. */
export class VfioDevice {
  /** PCI address. */
  readonly address: string;
  /** IOMMU group number. */
  readonly group: number;
  /** BAR0 region. */
  readonly bar0: RegionInfo;
  /** Host address of the BAR0 mapping. */
  readonly bar0Addr: bigint;
  /** Usable IOVA windows. */
  readonly iovaRanges: IovaRange[];
  readonly #libc: Libc;
  #container = -1;
  #groupFd = -1;
  #deviceFd = -1;
  #config: RegionInfo;
  readonly #mappings = new Set<DmaMapping>();
  readonly #closeHooks: (() => void)[] = [];

  private constructor(
    libc: Libc,
    address: string,
    group: number,
    fds: [number, number, number],
    bar0: RegionInfo,
    bar0Addr: bigint,
    config: RegionInfo,
    iovaRanges: IovaRange[],
  ) {
    this.#libc = libc;
    this.address = address;
    this.group = group;
    [this.#container, this.#groupFd, this.#deviceFd] = fds;
    this.bar0 = bar0;
    this.bar0Addr = bar0Addr;
    this.#config = config;
    this.iovaRanges = iovaRanges;
  }

  /** Open `address` through VFIO. Throws SetupError / DeviceBusyError with advice. */
  static open(libc: Libc, address: string, opts: VfioOpenOptions = {}): VfioDevice {
    const token = opts.vfToken === undefined ? null : parseVfToken(opts.vfToken);
    const info = pciInfo(address);
    if (!info) {
      throw new SetupError("no-device", `no PCI device ${address} (see lspci -D, or: ${toolCommand("cli", "list")})`);
    }
    if (info.classCode !== NVME_CLASS) {
      throw new SetupError(
        "not-nvme",
        `${address} is not an NVMe controller (class 0x${info.classCode.toString(16).padStart(6, "0")})`,
      );
    }
    if (info.iommuGroup === null) {
      throw new SetupError(
        "no-iommu",
        `${address} has no IOMMU group: enable the IOMMU (BIOS VT-d/AMD-Vi, kernel args intel_iommu=on or amd_iommu=on) and reboot`,
      );
    }
    if (info.driver !== "vfio-pci") {
      throw new SetupError(
        "not-bound",
        `${address} is ${info.driver ? `bound to ${info.driver}` : "not bound to any driver"}, not vfio-pci. Bind it:\n` +
          bindInstructions(address),
      );
    }
    const group = info.iommuGroup;
    const flags = O_RDWR | O_CLOEXEC;
    const fail = (call: string): never => {
      throw new SyscallError(call, libc.errno(), errnoName(libc.errno()));
    };
    const container = libc.open("/dev/vfio/vfio", flags);
    if (container < 0) {
      const e = libc.errno();
      if (e === Errno.ENOENT) throw new SetupError("no-vfio", "/dev/vfio/vfio missing: load the module (sudo modprobe vfio-pci)");
      if (e === Errno.EACCES || e === Errno.EPERM) {
        throw new SetupError("permission", "no permission on /dev/vfio/vfio (it is normally mode 0666; check your container/sandbox)");
      }
      fail("open /dev/vfio/vfio");
    }
    const cleanup: (() => void)[] = [() => libc.close(container)];
    try {
      if (libc.ioctlInt(container, VfioIoctl.GET_API_VERSION, 0n) !== VFIO_API_VERSION) {
        throw new SetupError("vfio", "unknown VFIO API version");
      }
      const type = libc.ioctlInt(container, VfioIoctl.CHECK_EXTENSION, VFIO_TYPE1v2_IOMMU) === 1
        ? VFIO_TYPE1v2_IOMMU
        : libc.ioctlInt(container, VfioIoctl.CHECK_EXTENSION, VFIO_TYPE1_IOMMU) === 1
        ? VFIO_TYPE1_IOMMU
        : 0n;
      if (type === 0n) throw new SetupError("iommu-type", "VFIO type1 IOMMU is not supported by this kernel");
      const groupPath = `/dev/vfio/${group}`;
      const groupFd = libc.open(groupPath, flags);
      if (groupFd < 0) {
        const e = libc.errno();
        if (e === Errno.EBUSY) {
          throw new DeviceBusyError(`${address} is already open (IOMMU group ${group} is in use by this or another process)`);
        }
        if (e === Errno.EACCES || e === Errno.EPERM) {
          const user = (globalThis as { process?: { env?: Record<string, string> } }).process?.env?.USER ?? "$USER";
          throw new SetupError(
            "permission",
            `no permission on ${groupPath}: run as root, or give your user the group:\n  sudo chown ${user} ${groupPath}\n` +
              `and raise the locked-memory limit (ulimit -l, /etc/security/limits.conf)`,
          );
        }
        if (e === Errno.ENOENT) throw new SetupError("no-vfio", `${groupPath} missing: is ${address} bound to vfio-pci?`);
        fail(`open ${groupPath}`);
      }
      cleanup.push(() => libc.close(groupFd));
      const st = new Uint8Array(8);
      u32(st, 0, 8);
      if (libc.ioctlPtr(groupFd, VfioIoctl.GROUP_GET_STATUS, st) !== 0) fail("VFIO_GROUP_GET_STATUS");
      if ((u32(st, 4) & GROUP_FLAGS_VIABLE) === 0) {
        const members = groupMembers(group).filter((m) => m.address !== address);
        const list = members.map((m) => `  ${m.address} (driver: ${m.driver ?? "none"})`).join("\n");
        throw new SetupError(
          "group-not-viable",
          `IOMMU group ${group} is not viable: every device in it must be bound to vfio-pci (or no driver):\n${list}`,
        );
      }
      const cfd = new Int32Array([container]);
      if (libc.ioctlPtr(groupFd, VfioIoctl.GROUP_SET_CONTAINER, new Uint8Array(cfd.buffer)) !== 0) {
        fail("VFIO_GROUP_SET_CONTAINER");
      }
      if (libc.ioctlInt(container, VfioIoctl.SET_IOMMU, type) !== 0) {
        const e = libc.errno();
        if (e === Errno.EPERM) {
          throw new SetupError(
            "iommu-type",
            "VFIO_SET_IOMMU refused (EPERM): the IOMMU lacks interrupt remapping. Enable it, or (unsafe) " +
              "echo 1 > /sys/module/vfio_iommu_type1/parameters/allow_unsafe_interrupts",
          );
        }
        fail("VFIO_SET_IOMMU");
      }
      // vfio-pci takes the token after the name: "<bdf> vf_token=<uuid>".
      const withToken = token !== null && sriovCapable(address);
      const name = new TextEncoder().encode(address + (withToken ? ` vf_token=${token}` : "") + "\0");
      const deviceFd = libc.ioctlPtr(groupFd, VfioIoctl.GROUP_GET_DEVICE_FD, name);
      if (deviceFd < 0) {
        const e = libc.errno();
        if (e === Errno.EBUSY) throw new DeviceBusyError(`${address} is already open`);
        const pf = physfnOf(address);
        if (e === Errno.EACCES && pf) {
          throw new SetupError(
            "vf-token",
            withToken
              ? `vfio-pci refused the VF token for ${address}: it is not the one set by the owner of its PF ${pf}`
              : `${address} is a VF of ${pf}, which is bound to vfio-pci: open it with the PF owner's VF token (vfToken)`,
          );
        }
        if (e === Errno.EACCES && withToken) {
          throw new SetupError("vf-token", `${address} has VFs in use under another VF token: open it with that token`);
        }
        if (e === Errno.EACCES) {
          throw new SetupError("vf-token", `${address} has VFs in use: open it with their VF token (vfToken)`);
        }
        if (e === Errno.EINVAL && withToken && pf) {
          throw new SetupError("vf-token", `a VF token was given for ${address}, but its PF ${pf} is not bound to vfio-pci`);
        }
        fail("VFIO_GROUP_GET_DEVICE_FD");
      }
      cleanup.push(() => libc.close(deviceFd));
      const region = (index: number): RegionInfo => {
        const b = new Uint8Array(32);
        u32(b, 0, 32);
        u32(b, 8, index);
        if (libc.ioctlPtr(deviceFd, VfioIoctl.DEVICE_GET_REGION_INFO, b) !== 0) fail("VFIO_DEVICE_GET_REGION_INFO");
        return { index, flags: u32(b, 4), size: u64(b, 16), offset: u64(b, 24) };
      };
      const bar0 = region(BAR0_REGION);
      const config = region(CONFIG_REGION);
      if ((bar0.flags & 4) === 0 || bar0.size < 0x2000n) {
        throw new SetupError("unsupported-controller", `BAR0 of ${address} cannot be mapped (flags ${bar0.flags}, size ${bar0.size})`);
      }
      const bar0Addr = libc.mmap(0n, bar0.size, PROT_READ | PROT_WRITE, MAP_SHARED, deviceFd, bar0.offset);
      if (bar0Addr === MAP_FAILED) fail("mmap BAR0");
      const dev = new VfioDevice(libc, address, group, [container, groupFd, deviceFd], bar0, bar0Addr, config, iovaRanges(libc, container));
      cleanup.length = 0;
      dev.#enableBusMaster();
      return dev;
    } catch (e) {
      for (const f of cleanup.reverse()) f();
      throw e;
    }
  }

  /**
   * Map BAR `index` (1-5; BAR0 is always mapped) for reads and writes, and give
   * its bus address from sysfs (what the device decodes, e.g. for the CMB);
   * null when the BAR is absent or not mappable. Unmapped at close.
   */
  mapBar(index: number): { addr: bigint; size: bigint; busAddress: number } | null {
    if (this.#deviceFd < 0 || index < 1 || index > 5) return null;
    const libc = this.#libc;
    const b = new Uint8Array(32);
    u32(b, 0, 32);
    u32(b, 8, index);
    if (libc.ioctlPtr(this.#deviceFd, VfioIoctl.DEVICE_GET_REGION_INFO, b) !== 0) return null;
    const flags = u32(b, 4), size = u64(b, 16), offset = u64(b, 24);
    if ((flags & 4) === 0 || size === 0n) return null;
    let busAddress: number;
    try {
      const line = readFileSync(`/sys/bus/pci/devices/${this.address}/resource`, "utf8").split("\n")[index] ?? "";
      busAddress = Number(BigInt(line.trim().split(/\s+/)[0] ?? "0"));
    } catch {
      return null;
    }
    if (!busAddress) return null;
    const addr = libc.mmap(0n, size, PROT_READ | PROT_WRITE, MAP_SHARED, this.#deviceFd, offset);
    if (addr === MAP_FAILED) return null;
    this.#closeHooks.push(() => libc.munmap(addr, size));
    return { addr, size, busAddress };
  }

  /**
   * Set the VF token of this PF (VFIO_DEVICE_FEATURE PCI_VF_TOKEN): from now on its VFs open only
   * with it. Fails with SetupError("vf-token") when the device is not an SR-IOV PF bound to vfio-pci.
   */
  setVfToken(token: string): void {
    const b = new Uint8Array(24);
    u32(b, 0, 24);
    u32(b, 4, FEATURE_SET | FEATURE_PCI_VF_TOKEN);
    b.set(vfTokenBytes(token), 8);
    if (this.#libc.ioctlPtr(this.#deviceFd, VfioIoctl.DEVICE_FEATURE, b) !== 0) {
      const e = this.#libc.errno();
      if (e === Errno.ENOTTY || e === Errno.EINVAL) {
        throw new SetupError("vf-token", `${this.address} takes no VF token (${errnoName(e)}): it is not an SR-IOV PF, or the kernel predates VF tokens`);
      }
      throw new SyscallError("VFIO_DEVICE_FEATURE PCI_VF_TOKEN", e, errnoName(e));
    }
  }

  /** The VFIO device fd, for device ioctls made by other modules (interrupts: lib/vfio/irq.ts); -1 once closed. */
  get fd(): number {
    return this.#deviceFd;
  }

  /** Run `hook` at the start of {@link close}, while the device fd is still open (e.g. to disable interrupts). */
  onClose(hook: () => void): void {
    this.#closeHooks.push(hook);
  }

  /** Read `len` bytes of PCI configuration space at `offset`. */
  readConfig(offset: number, len: number): Uint8Array {
    const b = new Uint8Array(len);
    const n = this.#libc.pread(this.#deviceFd, b, this.#config.offset + BigInt(offset));
    if (n !== len) throw new SyscallError("pread PCI config", this.#libc.errno(), errnoName(this.#libc.errno()));
    return b;
  }

  /** Write bytes into PCI configuration space at `offset`. */
  writeConfig(offset: number, data: Uint8Array): void {
    const n = this.#libc.pwrite(this.#deviceFd, data, this.#config.offset + BigInt(offset));
    if (n !== data.length) throw new SyscallError("pwrite PCI config", this.#libc.errno(), errnoName(this.#libc.errno()));
  }

  /**
   * Function level reset (VFIO_DEVICE_RESET). VFIO restores the saved config
   * space, so memory space and bus mastering are switched on again afterwards.
   */
  reset(): void {
    if (this.#libc.ioctlInt(this.#deviceFd, VfioIoctl.DEVICE_RESET, 0n) !== 0) {
      throw new SyscallError("VFIO_DEVICE_RESET", this.#libc.errno(), errnoName(this.#libc.errno()));
    }
    this.#enableBusMaster();
  }

  #enableBusMaster(): void {
    const cmd = this.readConfig(PCI_COMMAND, 2);
    const v = cmd[0] | (cmd[1] << 8);
    const nv = v | PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER;
    if (nv !== v) this.writeConfig(PCI_COMMAND, new Uint8Array([nv & 0xff, nv >> 8]));
  }

  /** Allocate `size` bytes (page multiple) of anonymous memory and map it at `iova`. */
  mapDma(size: number, iova: number): DmaMapping {
    const libc = this.#libc;
    const vaddr = libc.mmap(0n, BigInt(size), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0n);
    if (vaddr === MAP_FAILED) {
      throw new SyscallError(`mmap ${size} bytes of DMA memory`, libc.errno(), errnoName(libc.errno()));
    }
    const m = new Uint8Array(32);
    u32(m, 0, 32);
    u32(m, 4, 3); // READ | WRITE
    u64(m, 8, vaddr);
    u64(m, 16, BigInt(iova));
    u64(m, 24, BigInt(size));
    if (libc.ioctlPtr(this.#container, VfioIoctl.IOMMU_MAP_DMA, m) !== 0) {
      const e = libc.errno();
      libc.munmap(vaddr, BigInt(size));
      if (e === Errno.ENOMEM || e === Errno.EPERM) {
        const lim = memlockLimit(libc);
        throw new SetupError(
          "memlock",
          `cannot pin ${size} bytes of DMA memory (${errnoName(e)}): the locked-memory limit is ` +
            `${lim === Infinity ? "unlimited" : `${lim} bytes`}. Raise it: ulimit -l unlimited (or a memlock line in ` +
            `/etc/security/limits.conf, or LimitMEMLOCK= for a systemd service)`,
        );
      }
      throw new SyscallError("VFIO_IOMMU_MAP_DMA", e, errnoName(e));
    }
    const mapping = { vaddr, iova, size };
    this.#mappings.add(mapping);
    return mapping;
  }

  /**
   * Remove `mp` from the IOMMU and unmap it (`keepHost`: leave the process mapping for a thread
   * still viewing it). False when the IOMMU did not drop the whole range: the device may still
   * reach it, so the caller must not hand its IOVA out again (the pages stay pinned by VFIO, so
   * unmapping the process's view cannot let the device write memory someone else reuses).
   */
  unmapDma(mp: DmaMapping, keepHost = false): boolean {
    if (!this.#mappings.delete(mp)) return true;
    const m = new Uint8Array(24);
    u32(m, 0, 24);
    u64(m, 8, BigInt(mp.iova));
    u64(m, 16, BigInt(mp.size));
    // The kernel writes back how many bytes it unmapped into the size field.
    const ok = this.#libc.ioctlPtr(this.#container, VfioIoctl.IOMMU_UNMAP_DMA, m) === 0 && u64(m, 16) === BigInt(mp.size);
    if (!keepHost) this.#libc.munmap(mp.vaddr, BigInt(mp.size));
    return ok;
  }

  /** Unmap everything and close the device, group and container (`keepBar`: leave BAR0 mapped). Idempotent. */
  close(keepBar = false): void {
    if (this.#deviceFd < 0) return;
    for (const hook of this.#closeHooks.splice(0).reverse()) {
      try {
        hook();
      } catch { /* closing must go on */ }
    }
    for (const mp of [...this.#mappings]) this.unmapDma(mp);
    try {
      // Stop the device from mastering the bus once nothing is mapped for it.
      const cmd = this.readConfig(PCI_COMMAND, 2);
      const v = (cmd[0] | (cmd[1] << 8)) & ~PCI_COMMAND_MASTER;
      this.writeConfig(PCI_COMMAND, new Uint8Array([v & 0xff, v >> 8]));
    } catch { /* device may be gone */ }
    if (!keepBar) this.#libc.munmap(this.bar0Addr, this.bar0.size);
    this.#libc.close(this.#deviceFd);
    this.#libc.ioctlInt(this.#groupFd, VfioIoctl.GROUP_UNSET_CONTAINER, 0n);
    this.#libc.close(this.#groupFd);
    this.#libc.close(this.#container);
    this.#deviceFd = this.#groupFd = this.#container = -1;
  }
}

/** Usable IOVA windows from VFIO_IOMMU_GET_INFO (falls back to 4 GiB..512 GiB). */
function iovaRanges(libc: Libc, container: number): IovaRange[] {
  const fallback = [{ start: 0x1_0000_0000, end: 0x7f_ffff_ffff }];
  let b = new Uint8Array(24);
  u32(b, 0, 24);
  if (libc.ioctlPtr(container, VfioIoctl.IOMMU_GET_INFO, b) !== 0) return fallback;
  const need = u32(b, 0);
  if ((u32(b, 4) & 2) === 0 || need <= 24) return fallback;
  b = new Uint8Array(need);
  u32(b, 0, need);
  if (libc.ioctlPtr(container, VfioIoctl.IOMMU_GET_INFO, b) !== 0) return fallback;
  let off = u32(b, 16);
  while (off !== 0 && off + 8 <= b.length) {
    const id = b[off] | (b[off + 1] << 8);
    const next = u32(b, off + 4);
    if (id === 1) { // VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE
      const n = u32(b, off + 8);
      const out: IovaRange[] = [];
      for (let i = 0; i < n; i++) {
        const s = u64(b, off + 16 + i * 16), e = u64(b, off + 24 + i * 16);
        // Keep IOVAs below 2^52 so they stay exact as JS numbers on the hot path.
        const end = e > 0xf_ffff_ffff_ffffn ? 0xf_ffff_ffff_ffff : Number(e);
        if (s <= 0xf_ffff_ffff_ffffn) out.push({ start: Number(s), end });
      }
      if (out.length) return out;
    }
    off = next;
  }
  return fallback;
}
