/**
 * The PCIe transport: a controller reached through VFIO. Registers are BAR0
 * loads/stores; DMA memory is anonymous memory mapped through the IOMMU at
 * IOVAs this transport hands out.
 * @module
 */
import type { Libc } from "../ffi/mod.ts";
import { Reg } from "../nvme/spec.ts";
import type { DmaBuffer, Transport } from "../nvme/transport.ts";
import { type DmaMapping, type IovaRange, VfioDevice } from "./vfio.ts";

const PAGE = 4096;

/**
 * Hands out page-aligned IOVAs from the IOMMU's usable windows. Freed ranges
 * are reused by exact size first (queues and bounce buffers recur), then bump.
 */
export class IovaAllocator {
  readonly #ranges: IovaRange[];
  #range = 0;
  #next: number;
  readonly #free = new Map<number, number[]>();

  /** Allocate inside `ranges`, skipping the first MiB (never hand out IOVA 0). */
  constructor(ranges: IovaRange[]) {
    this.#ranges = ranges.map((r) => ({ ...r })).sort((a, b) => a.start - b.start);
    this.#next = Math.max(this.#ranges[0]?.start ?? 0, 0x10_0000);
  }

  /** Reserve `size` bytes (a page multiple). */
  alloc(size: number): number {
    const reuse = this.#free.get(size);
    if (reuse?.length) return reuse.pop()!;
    while (this.#range < this.#ranges.length) {
      const r = this.#ranges[this.#range];
      const start = Math.ceil(Math.max(this.#next, r.start, 0x10_0000) / PAGE) * PAGE;
      if (start + size - 1 <= r.end) {
        this.#next = start + size;
        return start;
      }
      this.#range++;
    }
    throw new RangeError(`IOVA space exhausted (${size} bytes)`);
  }

  /** Return a range for reuse. */
  free(iova: number, size: number): void {
    let l = this.#free.get(size);
    if (!l) this.#free.set(size, l = []);
    l.push(iova);
  }
}

/** NVMe over PCIe through VFIO. */
export class VfioTransport implements Transport {
  /** "vfio:<address>". */
  readonly name: string;
  /** Host page size. */
  readonly hostPageSize = PAGE;
  /** The VFIO device. */
  readonly device: VfioDevice;
  readonly #libc: Libc;
  readonly #regs: Uint32Array;
  readonly #doorbells: Uint32Array;
  readonly #iova: IovaAllocator;
  readonly #owners = new WeakMap<ArrayBufferLike, { iova: number; mapping: DmaMapping }>();
  readonly #buffers = new Set<DmaBuffer>();

  private constructor(libc: Libc, dev: VfioDevice) {
    this.#libc = libc;
    this.device = dev;
    this.name = `vfio:${dev.address}`;
    const size = Number(dev.bar0.size);
    const bar = libc.view(dev.bar0Addr, size);
    this.#regs = new Uint32Array(bar, 0, Reg.DOORBELL / 4);
    this.#doorbells = new Uint32Array(bar, Reg.DOORBELL, (size - Reg.DOORBELL) / 4);
    this.#iova = new IovaAllocator(dev.iovaRanges);
  }

  /** Open the controller at PCI `address` (must be bound to vfio-pci). */
  static open(libc: Libc, address: string): VfioTransport {
    return new VfioTransport(libc, VfioDevice.open(libc, address));
  }

  readReg32(offset: number): number {
    // A real load each time: never cached by the JIT, never a locked access.
    return this.#libc.peek32(this.device.bar0Addr + BigInt(offset));
  }

  readReg64(offset: number): bigint {
    const lo = this.readReg32(offset), hi = this.readReg32(offset + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  writeReg32(offset: number, value: number): void {
    this.#regs[offset >>> 2] = value;
  }

  writeReg64(offset: number, value: bigint): void {
    this.#regs[offset >>> 2] = Number(value & 0xffff_ffffn);
    this.#regs[(offset >>> 2) + 1] = Number(value >> 32n);
  }

  doorbells(): Uint32Array {
    return this.#doorbells;
  }

  allocDma(size: number): DmaBuffer {
    const bytes = Math.ceil(Math.max(size, 1) / PAGE) * PAGE;
    const iova = this.#iova.alloc(bytes);
    let mapping: DmaMapping;
    try {
      mapping = this.device.mapDma(bytes, iova);
    } catch (e) {
      this.#iova.free(iova, bytes);
      throw e;
    }
    const view = new Uint8Array(this.#libc.view(mapping.vaddr, bytes));
    this.#owners.set(view.buffer, { iova, mapping });
    const buf: DmaBuffer = { bytes: view, iova, size: bytes };
    this.#buffers.add(buf);
    return buf;
  }

  freeDma(buf: DmaBuffer): void {
    const o = this.#owners.get(buf.bytes.buffer);
    if (!o || !this.#buffers.delete(buf)) return;
    this.#owners.delete(buf.bytes.buffer);
    this.device.unmapDma(o.mapping);
    this.#iova.free(o.iova, o.mapping.size);
  }

  iovaOf(view: Uint8Array): number {
    const o = this.#owners.get(view.buffer);
    return o ? o.iova + view.byteOffset : -1;
  }

  resetDevice(): void {
    this.device.reset();
  }

  close(): void {
    for (const b of [...this.#buffers]) this.freeDma(b);
    this.device.close();
  }
}
