/**
 * The PCIe transport: a controller reached through VFIO. Registers are BAR0
 * loads/stores; DMA memory is anonymous memory mapped through the IOMMU at
 * IOVAs this transport hands out.
 * @module
 */
import type { Libc } from "../ffi/mod.ts";
import { DeviceClosedError, OutOfResourcesError, SetupError } from "../nvme/errors.ts";
import { IrqHub } from "../irq/hub.ts";
import { gateFor, msixTable, VfioInterrupts } from "./irq.ts";
import { Reg } from "../nvme/spec.ts";
import {
  type DmaBuffer,
  dmaBuffer,
  detachView,
  type InterruptSource,
  type InterruptWord,
  type PciBar,
  type SharedMemory,
  type Transport,
} from "../nvme/transport.ts";
import { type DmaMapping, type IovaRange, VfioDevice, type VfioOpenOptions } from "./vfio.ts";

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
    throw new OutOfResourcesError(`IOVA space exhausted allocating ${size} bytes of DMA memory`);
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
  readonly #owners = new WeakMap<ArrayBufferLike, { buf: DmaBuffer; mapping: DmaMapping }>();
  readonly #buffers = new Set<DmaBuffer>();
  readonly #bar: ArrayBuffer;
  /** Other BARs mapped (the CMB's), detached at close. */
  readonly #bars: ArrayBuffer[] = [];
  readonly #retained = new WeakSet<DmaBuffer>();
  #retainBar = false;
  #closed = false;

  private constructor(libc: Libc, dev: VfioDevice) {
    this.#libc = libc;
    this.device = dev;
    this.name = `vfio:${dev.address}`;
    const size = Number(dev.bar0.size);
    const bar = libc.view(dev.bar0Addr, size);
    this.#bar = bar;
    this.#regs = new Uint32Array(bar, 0, Reg.DOORBELL / 4);
    this.#doorbells = new Uint32Array(bar, Reg.DOORBELL, (size - Reg.DOORBELL) / 4);
    this.#iova = new IovaAllocator(dev.iovaRanges);
  }

  /** Open the controller at PCI `address` (must be bound to vfio-pci; a VF of a vfio-pci PF needs `vfToken`). */
  static open(libc: Libc, address: string, opts: VfioOpenOptions = {}): VfioTransport {
    return new VfioTransport(libc, VfioDevice.open(libc, address, opts));
  }

  readReg32(offset: number): number {
    // After close BAR0 is unmapped: read as a vanished device does.
    if (this.#closed) return 0xffff_ffff;
    // A real load each time: never cached by the JIT, never a locked access.
    return this.#libc.peek32(this.device.bar0Addr + BigInt(offset));
  }

  readReg64(offset: number): bigint {
    const lo = this.readReg32(offset), hi = this.readReg32(offset + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  writeReg32(offset: number, value: number): void {
    if (this.#closed) return;
    this.#regs[offset >>> 2] = value;
  }

  writeReg64(offset: number, value: bigint): void {
    if (this.#closed) return;
    this.#regs[offset >>> 2] = Number(value & 0xffff_ffffn);
    this.#regs[(offset >>> 2) + 1] = Number(value >> 32n);
  }

  doorbells(): Uint32Array {
    return this.#doorbells;
  }

  allocDma(size: number): DmaBuffer {
    if (this.#closed) throw new DeviceClosedError(`${this.name} is closed`);
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
    const buf = dmaBuffer(view, iova, bytes);
    this.#owners.set(view.buffer, { buf, mapping });
    this.#buffers.add(buf);
    return buf;
  }

  freeDma(buf: DmaBuffer): void {
    const o = this.#owners.get(buf.bytes.buffer);
    if (!o || o.buf !== buf || !this.#buffers.delete(buf)) return;
    this.#owners.delete(buf.bytes.buffer);
    // Detach first: a view over unmapped memory would crash the process on its next access.
    detachView(buf.bytes);
    // An IOVA the IOMMU may still translate is never handed out again (leaked, not reused).
    if (this.device.unmapDma(o.mapping, this.#retained.has(buf))) this.#iova.free(buf.iova, o.mapping.size);
  }

  iovaOf(view: Uint8Array): number {
    const o = this.#owners.get(view.buffer);
    return o ? o.buf.iova + view.byteOffset : -1;
  }

  shareDma(buf: DmaBuffer): SharedMemory {
    const o = this.#owners.get(buf.bytes.buffer);
    if (!o || o.buf !== buf) throw new DeviceClosedError("DMA buffer is not mapped");
    return { addr: o.mapping.vaddr, sab: null, offset: 0, size: buf.size, iova: buf.iova };
  }

  retain(buf: DmaBuffer): void {
    this.#retained.add(buf);
  }

  retainDoorbells(): void {
    this.#retainBar = true;
  }

  shareDoorbells(): SharedMemory {
    const size = Number(this.device.bar0.size) - Reg.DOORBELL;
    return { addr: this.device.bar0Addr + BigInt(Reg.DOORBELL), sab: null, offset: 0, size, iova: 0 };
  }

  dmaOf(view: Uint8Array): DmaBuffer | null {
    return this.#owners.get(view.buffer)?.buf ?? null;
  }

  /**
   * MSI-X (else MSI) vectors, one eventfd each, watched by one helper thread
   * (lib/irq's IrqHub). INTx is not used for queues: the kernel masks it after
   * every interrupt, which would need an unmask syscall per wake.
   */
  async enableInterrupts(vectors: number): Promise<InterruptSource> {
    if (this.#closed) throw new DeviceClosedError(`${this.name} is closed`);
    const irqs = VfioInterrupts.enable(this.#libc, this.device, { vectors, kinds: ["msix", "msi"] });
    let hub: IrqHub;
    try {
      hub = await IrqHub.start({ libc: this.#libc });
    } catch (e) {
      irqs.close();
      throw e instanceof SetupError ? e : new SetupError("irq", `interrupt helper: ${(e as Error).message}`);
    }
    let table: { bar: number; offset: number } | null = null;
    try {
      table = msixTable((o, n) => this.device.readConfig(o, n));
    } catch {
      // No table location: the ioctl gate still works.
    }
    // The table must lie inside the mapped BAR0, past the doorbells' start.
    if (table && (table.bar !== 0 || table.offset < Reg.DOORBELL || table.offset + 16 * irqs.count > Number(this.device.bar0.size))) {
      table = null;
    }
    const words: InterruptWord[] = irqs.eventfds.map((fd, v) => {
      const spec = irqs.gateSpec(v, table);
      return spec ? { ...hub.add(fd).word, gate: spec } : hub.add(fd).word;
    });
    const libc = this.#libc;
    let closing: Promise<void> | null = null;
    return {
      kind: irqs.kind,
      vectors: words.length,
      word: (v) => words[v],
      gate: (v) => {
        const spec = words[v]?.gate;
        return spec ? gateFor(spec, this.#doorbells, libc) : null;
      },
      close: () =>
        closing ??= (async () => {
          await hub.close();
          irqs.close();
        })(),
    };
  }

  resetDevice(): void {
    if (!this.#closed) this.device.reset();
  }

  /** Map BAR `index` (the CMB's) and give its bus address; null when it cannot be mapped. */
  mapBar(index: number): PciBar | null {
    if (this.#closed) return null;
    const m = this.device.mapBar(index);
    if (!m) return null;
    const ab = this.#libc.view(m.addr, Number(m.size));
    this.#bars.push(ab);
    return { bytes: new Uint8Array(ab), busAddress: m.busAddress };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const b of [...this.#buffers]) this.freeDma(b);
    // Queues keep views over BAR0 (doorbells); detach them before the BAR is unmapped.
    detachView(new Uint8Array(this.#bar));
    for (const b of this.#bars) detachView(new Uint8Array(b));
    this.device.close(this.#retainBar);
  }
}
