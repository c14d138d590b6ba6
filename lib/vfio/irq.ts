/**
 * Device interrupts through VFIO: one eventfd per vector, signalled by the
 * kernel's handler (linux/vfio.h VFIO_DEVICE_GET_IRQ_INFO / VFIO_DEVICE_SET_IRQS).
 * MSI-X is tried first (a vector per queue), then MSI, then INTx (one shared,
 * level-triggered line the kernel masks after each interrupt).
 * @module
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, errnoName, type Libc } from "../ffi/mod.ts";
import type { IrqGate } from "../irq/waiter.ts";
import { SetupError, SyscallError } from "../nvme/errors.ts";
import { VfioIoctl } from "./vfio.ts";

/** The part of a VfioDevice (lib/vfio/vfio.ts) interrupts need; a fake in unit tests. */
export interface IrqDevice {
  /** The VFIO device fd (-1 once closed). */
  readonly fd: number;
  /** PCI address, for messages. */
  readonly address: string;
  /** Run a hook when the device closes, while its fd is still open. */
  onClose(hook: () => void): void;
}

/** VFIO_PCI_*_IRQ_INDEX: which interrupt mechanism an index names. */
export const IrqIndex = { INTX: 0, MSI: 1, MSIX: 2 } as const;

/** An interrupt mechanism of a PCI function. */
export type IrqKind = "msix" | "msi" | "intx";

const INDEX_OF: Record<IrqKind, number> = { msix: IrqIndex.MSIX, msi: IrqIndex.MSI, intx: IrqIndex.INTX };
const NAME_OF: Record<IrqKind, string> = { msix: "MSI-X", msi: "MSI", intx: "INTx" };

// struct vfio_irq_info flags.
const INFO_EVENTFD = 1 << 0;
const INFO_MASKABLE = 1 << 1;
const INFO_AUTOMASKED = 1 << 2;
const INFO_NORESIZE = 1 << 3;
// struct vfio_irq_set flags.
const SET_DATA_NONE = 1 << 0;
const SET_DATA_EVENTFD = 1 << 2;
const SET_ACTION_UNMASK = 1 << 4;
const SET_ACTION_TRIGGER = 1 << 5;
const IRQ_SET_HEADER = 20; // argsz, flags, index, start, count; then data[]

/** What VFIO_DEVICE_GET_IRQ_INFO says about one interrupt index. */
export interface IrqInfo {
  /** The mechanism. */
  kind: IrqKind;
  /** VFIO index (see {@link IrqIndex}). */
  index: number;
  /** Vectors the device offers (0: not available, e.g. no MSI capability). */
  count: number;
  /** Can signal an eventfd (needed here). */
  eventfd: boolean;
  /** Can be masked through VFIO. */
  maskable: boolean;
  /** The kernel masks it after each interrupt (INTx): unmask after handling. */
  automasked: boolean;
  /** Vectors cannot be added once enabled: enable all needed at once. */
  noResize: boolean;
}

function dv(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}

/** VFIO_DEVICE_GET_IRQ_INFO for one mechanism of `dev`. */
export function irqInfo(libc: Libc, dev: IrqDevice, kind: IrqKind): IrqInfo {
  const b = new Uint8Array(16);
  const v = dv(b);
  v.setUint32(0, 16, true);
  v.setUint32(8, INDEX_OF[kind], true);
  if (libc.ioctlPtr(dev.fd, VfioIoctl.DEVICE_GET_IRQ_INFO, b) !== 0) {
    const e = libc.errno();
    throw new SyscallError(`VFIO_DEVICE_GET_IRQ_INFO (${NAME_OF[kind]})`, e, errnoName(e));
  }
  const flags = v.getUint32(4, true);
  return {
    kind,
    index: INDEX_OF[kind],
    count: v.getUint32(12, true),
    eventfd: (flags & INFO_EVENTFD) !== 0,
    maskable: (flags & INFO_MASKABLE) !== 0,
    automasked: (flags & INFO_AUTOMASKED) !== 0,
    noResize: (flags & INFO_NORESIZE) !== 0,
  };
}

/** Options of {@link VfioInterrupts.enable}. */
export interface EnableInterruptsOptions {
  /** Vectors wanted (at least 1); fewer are enabled when the device offers fewer. */
  vectors: number;
  /** Mechanisms to try, in order (default MSI-X, MSI, INTx). */
  kinds?: IrqKind[];
}

/** A struct vfio_irq_set for `count` vectors from `start` (data.length of them when data is given). */
function irqSetBuffer(flags: number, index: number, start: number, data: Int32Array | null, count = data?.length ?? 0): Uint8Array {
  const size = IRQ_SET_HEADER + (data ? data.length * 4 : 0);
  const b = new Uint8Array(size);
  const v = dv(b);
  v.setUint32(0, size, true);
  v.setUint32(4, flags, true);
  v.setUint32(8, index, true);
  v.setUint32(12, start, true);
  v.setUint32(16, count, true);
  if (data) for (let i = 0; i < data.length; i++) v.setInt32(IRQ_SET_HEADER + i * 4, data[i], true);
  return b;
}

/** VFIO_DEVICE_SET_IRQS with an explicit data payload; returns 0 or the errno. */
function setIrqs(libc: Libc, fd: number, flags: number, index: number, start: number, data: Int32Array | null, count: number): number {
  const b = irqSetBuffer(flags, index, start, data, count);
  return libc.ioctlPtr(fd, VfioIoctl.DEVICE_SET_IRQS, b) === 0 ? 0 : libc.errno();
}

/**
 * Where one vector's eventfd trigger lives: plain numbers, so a Worker that
 * owns the vector's queue rebuilds a {@link VectorGate} with its own libc
 * (fds are process wide).
 */
export interface VectorGateSpec {
  /** The VFIO device fd. */
  readonly deviceFd: number;
  /** VFIO interrupt index (MSI-X or MSI). */
  readonly index: number;
  /** The vector. */
  readonly vector: number;
  /** The eventfd the vector signals when on. */
  readonly eventfd: number;
  /**
   * Byte offset of the vector's MSI-X Vector Control word from BAR0 offset
   * 0x1000 (the doorbell area every queue's thread maps), when the MSI-X
   * table lies in BAR0: then {@link MsixMaskGate} switches it with one MMIO
   * store instead of an ioctl.
   */
  readonly vectorControl?: number;
}

/**
 * Find the MSI-X table in PCI config space (capability 11h): BAR index and
 * byte offset, or null when the function has no MSI-X capability.
 */
export function msixTable(readConfig: (offset: number, len: number) => Uint8Array): { bar: number; offset: number } | null {
  const status = new DataView(readConfig(0x06, 2).buffer).getUint16(0, true);
  if ((status & 0x10) === 0) return null;
  let ptr = readConfig(0x34, 1)[0] & 0xfc;
  for (let hops = 0; ptr >= 0x40 && hops < 48; hops++) {
    const cap = readConfig(ptr, 2);
    if (cap[0] === 0x11) {
      const t = new DataView(readConfig(ptr + 4, 4).buffer).getUint32(0, true);
      return { bar: t & 7, offset: t & ~7 };
    }
    ptr = cap[1] & 0xfc;
  }
  return null;
}

/**
 * The cheapest gate for `spec` on this thread: the MSI-X mask bit through
 * `doorbells` (this thread's Uint32Array over BAR0 from 0x1000) when the spec
 * locates it, else the VFIO_DEVICE_SET_IRQS gate.
 */
export function gateFor(spec: VectorGateSpec, doorbells: Uint32Array | null, libc: Libc): IrqGate {
  const off = spec.vectorControl;
  if (doorbells && off !== undefined && off % 4 === 0 && off + 4 <= doorbells.byteLength) {
    return new MsixMaskGate(new Uint32Array(doorbells.buffer, doorbells.byteOffset + off, 1));
  }
  return new VectorGate(libc, spec);
}

/**
 * Switches one MSI-X vector with its table entry's mask bit (Vector Control
 * bit 0), one store into the mapped BAR: masked, the device sets the
 * vector's pending bit instead of signalling, and unmasking delivers it. The
 * kernel keeps its own copy of the bit and writes it only when it sets the
 * vector up or frees it (VFIO_DEVICE_SET_IRQS), so a store here is never
 * undone behind the queue's back while the device is open; VFIO maps the
 * table only where interrupt remapping confines what the device can signal.
 * Measured in the QEMU guest (scripts/irq-gate-bench.ts), the ioctl gate
 * ({@link VectorGate}) cost 16-32 µs (p99 0.3-0.8 ms) per switch, this one
 * 3-6 µs. Owned by one thread.
 */
export class MsixMaskGate implements IrqGate {
  readonly #ctl: Uint32Array;
  readonly #bits: number;
  #state = 0;
  /** Mask and unmask stores made (each an MMIO write into the BAR: a trap in a VM). */
  switches = 0;

  /** A gate over the vector's Vector Control word, a one-element view into the mapped BAR. */
  constructor(vectorControl: Uint32Array) {
    this.#ctl = vectorControl;
    // Bits 31:1 are reserved and must be preserved: read them once.
    this.#bits = vectorControl[0] & ~1;
  }

  /** True unless the vector is known to be on. */
  get masked(): boolean {
    return this.#state !== 1;
  }

  /** Vector off: set the mask bit (a no-op when known off). */
  mask(): void {
    if (this.#state === 2) return;
    this.#ctl[0] = this.#bits | 1;
    this.#state = 2;
    this.switches++;
  }

  /** Vector on: clear the mask bit (a no-op when known on); an interrupt pending meanwhile fires now. */
  unmask(): void {
    if (this.#state === 1) return;
    this.#ctl[0] = this.#bits;
    this.#state = 1;
    this.switches++;
  }
}

/**
 * Turns one vector's interrupts off and on through VFIO_DEVICE_SET_IRQS on
 * that vector alone: off detaches its eventfd (vfio-pci frees the handler,
 * and the kernel masks the MSI-X entry: the device sets its pending bit
 * instead of signalling), on attaches it again (a pending interrupt then
 * fires at once). One ioctl per change, on buffers built here: the queue
 * changes state once per busy or idle period, never per IO. A failed ioctl
 * leaves the vector on and the gate open for good: sleeps still end, and
 * polling only pays the interrupts again. Owned by one thread.
 */
export class VectorGate implements IrqGate {
  /** What this gate switches. */
  readonly spec: VectorGateSpec;
  /** Errno of the ioctl that failed (-1 when errno said nothing), or 0: the gate then stays open (vector on). */
  failed = 0;
  readonly #libc: Libc;
  readonly #on: Uint8Array;
  readonly #off: Uint8Array;
  /** 0: not known (another gate, e.g. a Worker's before, may have left it off), 1 on, 2 off. */
  #state = 0;
  /** SET_IRQS ioctls made (each a syscall). */
  switches = 0;

  /** A gate for the vector `spec` names; its state is learnt from the first change. */
  constructor(libc: Libc, spec: VectorGateSpec) {
    this.#libc = libc;
    this.spec = spec;
    this.#on = irqSetBuffer(SET_DATA_EVENTFD | SET_ACTION_TRIGGER, spec.index, spec.vector, Int32Array.of(spec.eventfd));
    this.#off = irqSetBuffer(SET_DATA_EVENTFD | SET_ACTION_TRIGGER, spec.index, spec.vector, Int32Array.of(-1));
  }

  /** True unless the vector is known to be on. */
  get masked(): boolean {
    return this.#state !== 1;
  }

  /** Vector off (detach its eventfd); a no-op when known off or after a failure. */
  mask(): void {
    if (this.#state === 2 || this.failed !== 0) return;
    this.switches++;
    if (this.#libc.ioctlPtr(this.spec.deviceFd, VfioIoctl.DEVICE_SET_IRQS, this.#off) !== 0) {
      this.failed = this.#libc.errno() || -1;
      return;
    }
    this.#state = 2;
  }

  /** Vector on (attach its eventfd again); a no-op when known on. */
  unmask(): void {
    if (this.#state === 1) return;
    this.switches++;
    if (this.#libc.ioctlPtr(this.spec.deviceFd, VfioIoctl.DEVICE_SET_IRQS, this.#on) !== 0) {
      this.failed = this.#libc.errno() || -1;
    }
    // Failed or not, it is never believed off again: mask() is off for good after a failure.
    this.#state = 1;
  }
}

/**
 * Interrupt vectors of a VFIO device, each signalling its own eventfd
 * (EFD_NONBLOCK: readers drain it after poll/epoll says it is readable).
 * Disabled, and the eventfds closed, by {@link close} or when the device closes.
 */
export class VfioInterrupts {
  /** The mechanism in use. */
  readonly kind: IrqKind;
  /** Its VFIO index. */
  readonly index: number;
  /** One eventfd per vector; vector i signals eventfds[i]. */
  readonly eventfds: readonly number[];
  /** What the device reported for the mechanism in use. */
  readonly info: IrqInfo;
  readonly #libc: Libc;
  readonly #dev: IrqDevice;
  #closed = false;

  private constructor(libc: Libc, dev: IrqDevice, info: IrqInfo, eventfds: number[]) {
    this.#libc = libc;
    this.#dev = dev;
    this.info = info;
    this.kind = info.kind;
    this.index = info.index;
    this.eventfds = Object.freeze(eventfds);
  }

  /** Vectors enabled. */
  get count(): number {
    return this.eventfds.length;
  }

  /**
   * Enable up to `opts.vectors` vectors of the first mechanism that works
   * (default order MSI-X, MSI, INTx). Throws SetupError("irq") naming every
   * attempt when none does.
   */
  static enable(libc: Libc, dev: IrqDevice, opts: EnableInterruptsOptions): VfioInterrupts {
    if (!Number.isInteger(opts.vectors) || opts.vectors < 1 || opts.vectors > 2048) {
      throw new SetupError("irq", `interrupt vectors must be an integer from 1 to 2048, got ${opts.vectors}`);
    }
    if (dev.fd < 0) throw new SetupError("irq", `${dev.address} is closed`);
    const tried: string[] = [];
    for (const kind of opts.kinds ?? ["msix", "msi", "intx"]) {
      let info: IrqInfo;
      try {
        info = irqInfo(libc, dev, kind);
      } catch (e) {
        tried.push(`${NAME_OF[kind]}: ${(e as Error).message}`);
        continue;
      }
      if (info.count === 0) {
        tried.push(`${NAME_OF[kind]}: not offered by the device`);
        continue;
      }
      if (!info.eventfd) {
        tried.push(`${NAME_OF[kind]}: VFIO cannot signal an eventfd for it`);
        continue;
      }
      const n = Math.min(opts.vectors, info.count);
      const fds: number[] = [];
      let err = 0;
      for (let i = 0; i < n && err === 0; i++) {
        const fd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (fd < 0) err = libc.errno();
        else fds.push(fd);
      }
      if (err !== 0) {
        for (const fd of fds) libc.close(fd);
        throw new SyscallError("eventfd", err, errnoName(err));
      }
      err = setIrqs(libc, dev.fd, SET_DATA_EVENTFD | SET_ACTION_TRIGGER, info.index, 0, Int32Array.from(fds), n);
      if (err !== 0) {
        for (const fd of fds) libc.close(fd);
        tried.push(`${NAME_OF[kind]} with ${n} vector(s): VFIO_DEVICE_SET_IRQS failed: ${errnoName(err)}`);
        continue;
      }
      const irqs = new VfioInterrupts(libc, dev, info, fds);
      dev.onClose(() => irqs.close());
      return irqs;
    }
    throw new SetupError(
      "irq",
      `no interrupt mechanism of ${dev.address} could be enabled through VFIO:\n  ${tried.join("\n  ")}\n` +
        "Polled queues still work (open without interrupts).",
    );
  }

  /**
   * INTx only: let the line fire again. The kernel masks INTx after each
   * interrupt; call this after the completions that raised it were reaped
   * (CQ head doorbell written), or the level-triggered line fires at once again.
   */
  unmask(): void {
    if (this.#closed || this.kind !== "intx") return;
    const err = setIrqs(this.#libc, this.#dev.fd, SET_DATA_NONE | SET_ACTION_UNMASK, this.index, 0, null, 1);
    if (err !== 0) throw new SyscallError("VFIO_DEVICE_SET_IRQS (unmask INTx)", err, errnoName(err));
  }

  /**
   * What a gate for vector `v` needs (with `table`, the MSI-X table from
   * {@link msixTable}, also where its mask bit lies), or null where gating does
   * not apply: MSI-X only (an MSI vector without per-vector masking would
   * still interrupt with no handler; INTx is masked by the kernel anyway).
   */
  gateSpec(v: number, table: { bar: number; offset: number } | null = null): VectorGateSpec | null {
    if (this.#closed || this.kind !== "msix" || !(v >= 0 && v < this.eventfds.length)) return null;
    const spec = { deviceFd: this.#dev.fd, index: this.index, vector: v, eventfd: this.eventfds[v] };
    // Vector Control of entry v, from the doorbell area's start (BAR0 + 0x1000).
    const ctl = table && table.bar === 0 ? table.offset + 16 * v + 12 - 0x1000 : -1;
    return ctl >= 0 ? { ...spec, vectorControl: ctl } : spec;
  }

  /** Disable the vectors (DATA_NONE | ACTION_TRIGGER, count 0) and close the eventfds. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#dev.fd >= 0) setIrqs(this.#libc, this.#dev.fd, SET_DATA_NONE | SET_ACTION_TRIGGER, this.index, 0, null, 0);
    for (const fd of this.eventfds) this.#libc.close(fd);
  }
}
