/**
 * SimTransport: the {@link Transport} of the software NVMe controller. Host
 * memory is one SharedArrayBuffer (IOVA = base + offset), registers and
 * doorbells another; the device model runs in a Worker and sees both the way
 * a PCIe device sees BAR0 and DMA memory.
 * @module
 */
import type { Libc } from "../ffi/types.ts";
import { detectRuntime } from "../ffi/mod.ts";
import { DeviceClosedError, OutOfResourcesError, SetupError } from "../nvme/errors.ts";
import {
  type DmaBuffer,
  dmaBuffer,
  detachView,
  type InterruptSource,
  type PciBar,
  type SharedMemory,
  type Transport,
} from "../nvme/transport.ts";
import { IrqLayout } from "../irq/waiter.ts";
import { PageRuns } from "../nvme/pages.ts";
import type { SimInit } from "./pcie.ts";
import { cmbRegisters } from "./cmb.ts";
import { Reg } from "../nvme/spec.ts";
import { type QThreadInit, QueueTable } from "./qthread.ts";
import { simSgls } from "./sgl.ts";
import {
  Ctl,
  ctlBytes,
  type FaultRule,
  parseSimSpec,
  regBytes,
  SIM_CMB_BAR,
  SIM_CMB_BUS,
  SIM_DEFAULTS,
  type SimOptions,
  type SimState,
} from "./options.ts";

export { parseSimSpec };
export type { FaultRule, SimOptions, SimState };

const PAGE = 4096;
let seq = 0;

/** Fault injection on a running simulated controller; every change is in force once its promise resolves. */
export class SimFaults {
  readonly #t: SimTransport;
  readonly #req: (op: string, arg?: unknown) => Promise<unknown>;

  /** Used by SimTransport. */
  constructor(t: SimTransport, req: (op: string, arg?: unknown) => Promise<unknown>) {
    this.#t = t;
    this.#req = req;
  }

  /** Add a rule; resolves to its id once the device applies it to the next commands it fetches. */
  async add(rule: FaultRule): Promise<number> {
    return (await this.#req("addFault", rule)) as number;
  }

  /** Remove one rule. */
  async remove(id: number): Promise<void> {
    await this.#req("removeFault", id);
  }

  /** Remove every rule and any added latency. */
  async clear(): Promise<void> {
    await this.#req("clearFaults");
  }

  /** Add `ms` of latency to every IO command (and admin commands when `admin`); 0 turns it off. */
  async setLatency(ms: number, opts: { admin?: boolean } = {}): Promise<void> {
    await this.#req("latency", { ms, admin: opts.admin ?? false });
  }

  /** Controller fatal: CSTS.CFS becomes 1 and the device stops processing until a reset. */
  async fatal(): Promise<void> {
    await this.#req("fatal");
  }

  /** Set the SMART critical warning bits; raises an asynchronous event when enabled. */
  async smartWarning(bits: number): Promise<void> {
    await this.#req("smartWarning", bits);
  }

  /**
   * Corrupt block `lba`'s stored protection information on namespace `nsid`
   * (one bit of its guard, application tag or reference tag), so the next
   * read that checks it fails that check. False when the block has no PI.
   */
  async corruptPi(nsid: number, lba: number, field: "guard" | "app" | "ref"): Promise<boolean> {
    return (await this.#req("corruptPi", { nsid, lba, field })) as boolean;
  }

  /** Surprise removal, at once: every register reads all ones and the device stops. */
  surpriseRemoval(): void {
    this.#t.markRemoved();
  }
}

/** The software controller seen through the Transport boundary. Build one with {@link SimTransport.create}. */
export class SimTransport implements Transport {
  /** Unique per transport, e.g. "sim#1". */
  readonly name: string;
  /** Host page size. */
  readonly hostPageSize: number = PAGE;
  /** IOVA of host memory offset 0. */
  readonly iovaBase: number;
  /** Fault injection. */
  readonly faults: SimFaults;
  readonly #worker: Worker;
  /** Queue threads (SimOptions.threads), each a Worker. */
  readonly #qworkers: Worker[];
  readonly #qtab: QueueTable | null;
  readonly #mem: SharedArrayBuffer;
  readonly #regs: Uint32Array;
  readonly #regsSab: SharedArrayBuffer;
  readonly #db: Uint32Array;
  readonly #ctl: Int32Array;
  readonly #iommu: Uint8Array;
  readonly #libc: Libc | null;
  readonly #memAddr: bigint;
  readonly #owners = new WeakMap<ArrayBufferLike, DmaBuffer>();
  readonly #buffers = new Set<DmaBuffer>();
  readonly #maxQueues: number;
  readonly #irq: SharedArrayBuffer;
  readonly #pending = new Map<number, { res: (v: unknown) => void; rej: (e: unknown) => void }>();
  #nextReq = 1;
  #closed = false;
  readonly #runs: PageRuns;

  private constructor(
    name: string,
    worker: Worker,
    mem: SharedArrayBuffer,
    regs: SharedArrayBuffer,
    ctl: SharedArrayBuffer,
    iommu: SharedArrayBuffer,
    o: SimOptions,
    libc: Libc | null,
    qworkers: Worker[],
    qtab: SharedArrayBuffer | undefined,
  ) {
    this.name = name;
    this.#worker = worker;
    this.#qworkers = qworkers;
    const threads = o.threads ?? 0;
    this.#qtab = threads > 0 && qtab
      ? new QueueTable(qtab, o.maxQueues ?? SIM_DEFAULTS.maxQueues, o.maxNamespaces ?? SIM_DEFAULTS.maxNamespaces, threads)
      : null;
    this.#mem = mem;
    this.#iommu = new Uint8Array(iommu);
    this.#irq = o.irq!;
    this.#libc = libc;
    this.#memAddr = libc ? libc.addressOf(new Uint8Array(mem)) : 0n;
    this.iovaBase = o.iovaBase ?? SIM_DEFAULTS.iovaBase;
    this.#maxQueues = o.maxQueues ?? SIM_DEFAULTS.maxQueues;
    this.#regsSab = regs;
    this.#regs = new Uint32Array(regs, 0, 0x1000 / 4);
    this.#db = new Uint32Array(regs, 0x1000, 2 * (this.#maxQueues + 1));
    this.#ctl = new Int32Array(ctl);
    this.#runs = new PageRuns(mem.byteLength / PAGE);
    this.faults = new SimFaults(this, (op, arg) => this.#request(op, arg));
    worker.onmessage = (e: MessageEvent) => {
      const m = e.data as { type: string; id: number; result?: unknown; error?: string };
      if (m.type !== "res") return;
      const p = this.#pending.get(m.id);
      if (!p) return;
      this.#pending.delete(m.id);
      if (m.error !== undefined) p.rej(new SetupError("sim", `sim: ${m.error}`));
      else p.res(m.result);
    };
  }

  /** Start a simulated controller (a `sim:` target string or options) and wait until it is up. */
  static async create(opts: SimOptions | string = {}): Promise<SimTransport> {
    const o0 = typeof opts === "string" ? parseSimSpec(opts) : opts;
    // The MSI-X model's wake words: one per vector, the admin queue's and one per IO queue.
    const o: SimOptions = {
      ...o0,
      irq: o0.irq ?? new SharedArrayBuffer((IrqLayout.HEADER + (o0.maxQueues ?? SIM_DEFAULTS.maxQueues) + 1) * 4),
    };
    const memBytes = Math.ceil((o.memoryBytes ?? SIM_DEFAULTS.memoryBytes) / PAGE) * PAGE;
    const maxQueues = o.maxQueues ?? SIM_DEFAULTS.maxQueues;
    const mem = new SharedArrayBuffer(memBytes);
    const regs = new SharedArrayBuffer(regBytes(maxQueues));
    const ctl = new SharedArrayBuffer(ctlBytes(maxQueues));
    const iommu = new SharedArrayBuffer(memBytes / PAGE);
    // Queue threads fetch SQ entries from host memory; SQs in the CMB would be invisible to them.
    if (o.cmbBytes && o.threads) throw new SetupError("sim", "sim: threads=N and cmb=SIZE cannot be combined (queue threads do not read SQs in the CMB)");
    const cmb = o.cmbBytes ? new SharedArrayBuffer(Math.ceil(o.cmbBytes / PAGE) * PAGE) : undefined;
    const n = ++seq;
    // With FFI, DMA views are foreign ArrayBuffers over the shared memory, so freeing one can
    // detach it as on VFIO; without FFI (Deno lacking --allow-ffi) they are plain shared views.
    let libc: Libc | null = null;
    try {
      libc = await (await import("../ffi/mod.ts")).loadLibc();
    } catch {
      libc = null;
    }
    // Bun drops messages sent before a module worker's top-level await ends, so it starts worker.ts itself.
    const entry = new URL(detectRuntime() === "bun" ? "./worker.ts" : "./worker_entry.js", import.meta.url);
    const threads = o.threads ?? 0;
    const maxNamespaces = o.maxNamespaces ?? SIM_DEFAULTS.maxNamespaces;
    const qtab = threads > 0 ? new SharedArrayBuffer(QueueTable.bytes(maxQueues, maxNamespaces, threads)) : undefined;
    const init: SimInit = { opts: o, host: mem, regs, ctl, iommu, cmb, serial: o.serial ?? `SIM${String(n).padStart(8, "0")}`, qtab };
    const workers: Worker[] = [];
    try {
      const device = await startWorker(entry, { type: "init", init }, "device", workers);
      // Queue threads: each gets the shared areas and the namespaces' shared media the device made.
      for (let index = 0; index < threads; index++) {
        const qinit: QThreadInit = {
          index,
          host: mem,
          regs,
          ctl,
          iommu,
          irq: o.irq,
          qtab: qtab!,
          media: device.media ?? [],
          maxQueues,
          maxNamespaces,
          threads,
          iovaBase: o.iovaBase ?? SIM_DEFAULTS.iovaBase,
          sgls: simSgls(o.sgl),
        };
        await startWorker(entry, { type: "init-q", qinit }, `queue thread ${index}`, workers);
      }
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    const t = new SimTransport(`sim#${n}`, workers[0], mem, regs, ctl, iommu, o, libc, workers.slice(1), qtab);
    t.#cmb = cmb ?? null;
    return t;
  }

  #cmb: SharedArrayBuffer | null = null;

  /** BAR2 is the controller memory buffer when SimOptions.cmbBytes asked for one (at bus address {@link SIM_CMB_BUS}). */
  mapBar(index: number): PciBar | null {
    if (index !== SIM_CMB_BAR || this.#cmb === null || this.#closed) return null;
    return { bytes: new Uint8Array(this.#cmb), busAddress: SIM_CMB_BUS };
  }

  #request(op: string, arg?: unknown): Promise<unknown> {
    if (this.#closed) return Promise.reject(new DeviceClosedError("sim transport is closed"));
    const id = this.#nextReq++;
    return new Promise((res, rej) => {
      this.#pending.set(id, { res, rej });
      this.#worker.postMessage({ type: "req", id, op, arg });
    });
  }

  /** Snapshot of the device: held commands, namespaces, firmware, sanitize and self-test state. */
  state(): Promise<SimState> {
    return this.#request("state") as Promise<SimState>;
  }

  /** Let every command held by a "drop" fault run now. */
  async releaseHeld(): Promise<void> {
    await this.#request("release");
  }

  /** Commands the device has fetched, optionally only those of queue `qid` and/or `opcode`. */
  commandCount(filter: { qid?: number; opcode?: number } = {}): number {
    let n = 0;
    for (let q = 0; q <= this.#maxQueues; q++) {
      if (filter.qid !== undefined && filter.qid !== q) continue;
      for (let o = 0; o < 256; o++) {
        if (filter.opcode !== undefined && filter.opcode !== o) continue;
        n += Atomics.load(this.#ctl, Ctl.COUNTS + q * 256 + o);
      }
    }
    return n;
  }

  /** The MSI-X model: the device raises vector v's wake word per CQE on an IEN CQ (vector 0: admin). */
  enableInterrupts(vectors: number): Promise<InterruptSource> {
    const sab = this.#irq;
    const n = Math.min(vectors, sab.byteLength / 4 - IrqLayout.HEADER);
    return Promise.resolve({
      kind: "sim",
      vectors: n,
      word: (v: number) => ({ sab, slot: v }),
      close: () => {
        // Waiters sleeping on the words return (the STOP word is what a hub shutdown sets).
        const i32 = new Int32Array(sab);
        Atomics.store(i32, IrqLayout.STOP, 1);
        for (let v = 0; v < n; v++) Atomics.notify(i32, IrqLayout.HEADER + v);
        return Promise.resolve();
      },
    });
  }

  /**
   * Reads and writes each queue thread served itself (SimOptions.threads; empty without):
   * what the device thread ran for them (forwarded commands) is not in here.
   */
  threadIo(): { reads: number; writes: number }[] {
    const t = this.#qtab;
    if (!t) return [];
    const out = [];
    for (let i = 0; i < t.counts.length / 4; i++) out.push({ reads: t.counts[4 * i], writes: t.counts[4 * i + 2] });
    return out;
  }

  /** DMA attempts the device made to host memory that was no longer mapped (should stay 0). */
  get staleDma(): number {
    return Atomics.load(this.#ctl, Ctl.STALE_DMA);
  }

  /** Bytes of host memory currently mapped for DMA. */
  get mappedBytes(): number {
    let n = 0;
    for (const b of this.#buffers) n += b.size;
    return n;
  }

  /** Used by {@link SimFaults.surpriseRemoval}. */
  markRemoved(): void {
    Atomics.store(this.#ctl, Ctl.REMOVED, 1);
    Atomics.notify(this.#ctl, Ctl.WAKE);
  }

  /** True after surprise removal. */
  get removed(): boolean {
    return Atomics.load(this.#ctl, Ctl.REMOVED) !== 0;
  }

  /** Read a 32-bit register (all ones once removed, as a vanished PCIe device reads). */
  readReg32(offset: number): number {
    if (this.#closed || Atomics.load(this.#ctl, Ctl.REMOVED)) return 0xffff_ffff;
    return Atomics.load(this.#regs, offset >>> 2);
  }

  /** Read a 64-bit register as two 32-bit reads, low first. */
  readReg64(offset: number): bigint {
    const lo = this.readReg32(offset), hi = this.readReg32(offset + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Write a 32-bit register and wake the device. Read-only registers ignore writes. */
  writeReg32(offset: number, value: number): void {
    if (this.#closed || this.removed) return;
    if (offset < 0x0c || offset === 0x1c || offset === Reg.CMBLOC || offset === Reg.CMBSZ) return; // read-only
    Atomics.store(this.#regs, offset >>> 2, value >>> 0);
    if (offset === Reg.CMBMSC && this.#cmb) {
      const { cmbloc, cmbsz } = cmbRegisters(value, this.#cmb.byteLength);
      Atomics.store(this.#regs, Reg.CMBLOC >>> 2, cmbloc);
      Atomics.store(this.#regs, Reg.CMBSZ >>> 2, cmbsz);
    }
    Atomics.notify(this.#ctl, Ctl.WAKE);
  }

  /** Write a 64-bit register as two 32-bit writes, low first. */
  writeReg64(offset: number, value: bigint): void {
    this.writeReg32(offset, Number(value & 0xffff_ffffn));
    this.writeReg32(offset + 4, Number((value >> 32n) & 0xffff_ffffn));
  }

  /** The doorbell array (offset 0x1000 onward, stride 4). */
  doorbells(): Uint32Array {
    return this.#db;
  }

  /** Allocate zeroed, page-aligned host memory (first fit) and map it for the device. */
  allocDma(size: number): DmaBuffer {
    if (this.#closed) throw new DeviceClosedError("sim transport is closed");
    const pages = Math.max(1, Math.ceil(size / PAGE));
    const start = this.#runs.take(pages);
    if (start >= 0) {
      const len = pages * PAGE;
      const bytes = this.#libc
        ? new Uint8Array(this.#libc.view(this.#memAddr + BigInt(start * PAGE), len))
        : new Uint8Array(this.#mem, start * PAGE, len);
      bytes.fill(0);
      const buf = dmaBuffer(bytes, this.iovaBase + start * PAGE, len);
      if (this.#libc) this.#owners.set(bytes.buffer, buf);
      this.#buffers.add(buf);
      this.#iommu.fill(1, start, start + pages);
      return buf;
    }
    throw new OutOfResourcesError(
      `sim: out of DMA memory allocating ${size} bytes (host memory is ${this.#mem.byteLength} bytes; raise memoryBytes)`,
    );
  }

  /** Unmap memory from the device, detach its views and return it to the allocator (coalescing neighbours). */
  freeDma(buf: DmaBuffer): void {
    if (!this.#buffers.delete(buf)) return;
    this.#owners.delete(buf.bytes.buffer);
    const start = (buf.iova - this.iovaBase) / PAGE, pages = buf.size / PAGE;
    this.#iommu.fill(0, start, start + pages);
    detachView(buf.bytes);
    this.#runs.give(start, pages);
  }

  /** IOVA of a view into host memory, else -1. */
  iovaOf(view: Uint8Array): number {
    if (this.#libc) {
      const b = this.#owners.get(view.buffer);
      return b ? b.iova + view.byteOffset : -1;
    }
    return view.buffer === this.#mem ? this.iovaBase + view.byteOffset : -1;
  }

  /** How a Worker reaches `buf`: the shared host memory (and its address when FFI is there). */
  shareDma(buf: DmaBuffer): SharedMemory {
    if (!this.#buffers.has(buf)) throw new DeviceClosedError("DMA buffer is not mapped");
    const off = buf.iova - this.iovaBase;
    return { addr: this.#libc ? this.#memAddr + BigInt(off) : null, sab: this.#mem, offset: off, size: buf.size, iova: buf.iova };
  }

  /** The doorbells live in the shared register area. */
  shareDoorbells(): SharedMemory {
    return { addr: null, sab: this.#regsSab, offset: 0x1000, size: this.#db.byteLength, iova: 0 };
  }

  /** The DMA buffer a view lies in; null without FFI (IO from such views is bounced). */
  dmaOf(view: Uint8Array): DmaBuffer | null {
    return this.#owners.get(view.buffer) ?? null;
  }

  /** Stop the device and its worker. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#worker.terminate();
    for (const w of this.#qworkers) w.terminate();
    // The device has stopped: detach every view before the memory can go away.
    for (const b of this.#buffers) detachView(b.bytes);
    this.#buffers.clear();
    for (const p of this.#pending.values()) p.rej(new DeviceClosedError("sim transport is closed"));
    this.#pending.clear();
  }
}

/** Start one of the controller's Workers with `msg` once it has loaded; resolves to its "ready" message. */
async function startWorker(
  entry: URL,
  msg: Record<string, unknown>,
  what: string,
  started: Worker[],
): Promise<{ media?: SharedArrayBuffer[] }> {
  const worker = new Worker(entry, { type: "module" });
  started.push(worker);
  const ready = new Promise<{ media?: SharedArrayBuffer[] }>((res, rej) => {
    worker.onmessage = (e: MessageEvent) => {
      const m = e.data as { type: string; error?: string; media?: SharedArrayBuffer[] };
      if (m.type === "loaded") worker.postMessage(msg);
      if (m.type !== "ready") return;
      if (m.error) rej(new SetupError("sim", `sim: ${what} failed to start: ${m.error}`));
      else res(m);
    };
    worker.onerror = (e: Event) => {
      (e as ErrorEvent).preventDefault?.();
      rej(new SetupError("sim", `sim: ${what} worker failed: ${(e as ErrorEvent).message ?? e}`));
    };
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, rej) => {
    timer = setTimeout(() => rej(new SetupError("sim", `sim: the ${what} worker did not start within 10 s`)), 10_000);
  });
  try {
    return await Promise.race([ready, timeout]);
  } finally {
    clearTimeout(timer);
    worker.onerror = null;
  }
}
