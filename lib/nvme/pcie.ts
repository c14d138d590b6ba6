/**
 * NVMe over PCIe, as VFIO and the software controller reach it (registers
 * and doorbells): the rings of a queue pair ({@link PcieRing}: SQ/CQ in DMA
 * memory, phase tags, batched doorbell writes, PRP lists per command slot)
 * and the transport operations the generic controller calls
 * ({@link PcieOps}: CAP and the page size, AQA/ASQ/ACQ, CC.EN and CSTS.RDY,
 * Create/Delete IO CQ/SQ with their interrupt vector, PRP list sizing,
 * shutdown), as SPDK's nvme_pcie.c fills `spdk_nvme_transport_ops`. IO
 * queues carry data in SGLs when the controller offers them (lib/nvme/sgl.ts)
 * and ring shadow doorbells (Doorbell Buffer Config) when it offers those:
 * see {@link PcieOptions}.
 * @module
 */
import { type Sqe, sqe } from "./command.ts";
import type { ControllerOptions } from "./controller.ts";
import { ControllerFatalError, DeviceGoneError, InvalidArgumentError, type NvmeError, SetupError } from "./errors.ts";
import type { IdentifyController } from "./identify.ts";
import type { AdminStart, OpsHost, ReservedQueue, TransportOps } from "./ops.ts";
import { prpListPages, writePrps } from "./prp.ts";
import { PSDT_SHIFT, Psdt, sglSupported, writeSglChunks, writeSglData } from "./sgl.ts";
import { QueuePair, type SubmitOptions } from "./queue.ts";
import { AdminOpc, type Cap, CAP_CSS_IOCS, CC, CC_CSS_ALL, ccValue, CQE_SIZE, CSTS, decodeCap, NSSR_RESET, Reg, SQE_SIZE } from "./spec.ts";
import type { CompletionSink, QueueRing } from "./ring.ts";
import { type DmaBuffer, dmaBuffer, type SharedMemory, type Transport } from "./transport.ts";
import { envOf } from "../ffi/env.ts";
import { pollLoad32, publish32, storeRelease32 } from "../ffi/load.ts";

export type { CompletionSink, QueueRing };

// ---- the PCIe-only admin commands: IO queues in host memory ------------------------------

/** Create IO Completion Queue (physically contiguous). Interrupts on vector `iv` when `ien`. */
export function createIoCqCmd(qid: number, entries: number, ien = false, iv = 0): Sqe {
  const s = sqe(AdminOpc.CREATE_IO_CQ);
  s[10] = ((qid & 0xffff) | (((entries - 1) & 0xffff) << 16)) >>> 0;
  s[11] = (1 | (ien ? 2 : 0) | ((iv & 0xffff) << 16)) >>> 0;
  return s;
}

/** Create IO Submission Queue (physically contiguous) bound to completion queue `cqid`. */
export function createIoSqCmd(qid: number, entries: number, cqid: number, prio = 0): Sqe {
  const s = sqe(AdminOpc.CREATE_IO_SQ);
  s[10] = ((qid & 0xffff) | (((entries - 1) & 0xffff) << 16)) >>> 0;
  s[11] = (1 | ((prio & 3) << 1) | ((cqid & 0xffff) << 16)) >>> 0;
  return s;
}

/** Delete IO Submission Queue. */
export function deleteIoSqCmd(qid: number): Sqe {
  const s = sqe(AdminOpc.DELETE_IO_SQ);
  s[10] = qid & 0xffff;
  return s;
}

/**
 * Doorbell Buffer Config: the shadow doorbell page at `shadowIova` and the
 * event index page at `eventIdxIova` (each one memory page, page aligned).
 */
export function dbbufConfigCmd(shadowIova: number, eventIdxIova: number): Sqe {
  const s = sqe(AdminOpc.DOORBELL_BUFFER_CONFIG);
  s[6] = shadowIova >>> 0;
  s[7] = Math.floor(shadowIova / 0x1_0000_0000) >>> 0;
  s[8] = eventIdxIova >>> 0;
  s[9] = Math.floor(eventIdxIova / 0x1_0000_0000) >>> 0;
  return s;
}

/** OACS bit: the controller supports Doorbell Buffer Config. */
export const OACS_DBBUF: number = 1 << 8;

/**
 * Whether the controller must hear of a doorbell moving from `old` to `next`:
 * true when its event index lies in [old, next) (16-bit wrapping), as Linux's
 * nvme_dbbuf_need_event and the spec's shadow doorbell rule.
 */
export function dbbufNeedEvent(eventIdx: number, next: number, old: number): boolean {
  return ((next - eventIdx - 1) & 0xffff) < ((next - old) & 0xffff);
}

/** Shadow doorbells of one controller as a ring uses them: the two pages, as dword views. */
export interface ShadowDoorbells {
  /** Shadow doorbell page (the host writes SQ tails and CQ heads here, doorbell layout). */
  shadow: Uint32Array;
  /** Event index page (the controller writes here, doorbell layout). */
  eventIdx: Uint32Array;
}

/** PCIe-only choices for IO queues (ControllerOptions.pcie). */
export interface PcieOptions {
  /**
   * How IO commands point at their data: `auto` (default) SGLs when Identify
   * Controller's SGLS offers them, else PRPs; `prp` always PRPs; `sgl` SGLs or
   * SetupError when the controller has none. Admin commands always use PRPs
   * (the spec's rule for PCIe).
   */
  dataPointer?: "auto" | "prp" | "sgl";
  /**
   * Shadow doorbells (Doorbell Buffer Config): IO queues write SQ tails and CQ
   * heads to host memory and skip the MMIO write while the controller's event
   * index says it is still looking. Default: on when OACS offers it (off if
   * the command fails); `false` off; `true` on or SetupError.
   */
  shadowDoorbells?: boolean;
  /**
   * IO submission queues in the controller memory buffer when it offers SQS
   * (CMBSZ) and the transport maps its BAR: the controller fetches commands
   * from its own memory. Default on when offered; `false` off. Queues owned
   * by Workers stay in host memory.
   */
  cmbQueues?: boolean;
}

/** CAP.CMBS (bit 57): the controller memory buffer is set up through CMBMSC (NVMe 1.4). */
export const CAP_CMBS: bigint = 1n << 57n;

/** CMBMSC bits: capabilities registers enabled (CMBLOC/CMBSZ read non-zero), memory space enabled at CBA. */
export const Cmbmsc = { CRE: 1, CMSE: 2 } as const;

/** CMBSZ support bits: what the controller memory buffer may hold. */
export const CmbszBit = { SQS: 1 << 0, CQS: 1 << 1, LISTS: 1 << 2, RDS: 1 << 3, WDS: 1 << 4 } as const;

/** The controller memory buffer as CMBLOC and CMBSZ describe it. */
export interface CmbInfo {
  /** BAR holding it (BIR). */
  bar: number;
  /** Offset in that BAR, bytes. */
  offset: number;
  /** Size, bytes. */
  size: number;
  /** Support bits ({@link CmbszBit}). */
  supports: number;
}

/** Decode CMBLOC and CMBSZ; null when CMBSZ is 0 (no CMB, or CMBMSC.CRE not set). */
export function decodeCmb(cmbloc: number, cmbsz: number): CmbInfo | null {
  if (cmbsz === 0) return null;
  const unit = 4096 * 16 ** ((cmbsz >>> 8) & 0xf);
  return { bar: cmbloc & 7, offset: (cmbloc >>> 12) * unit, size: (cmbsz >>> 12) * unit, supports: cmbsz & 0x1f };
}

/** Check {@link PcieOptions}; throws InvalidArgumentError. */
export function validatePcieOptions(o: unknown): void {
  if (o === undefined) return;
  if (o === null || typeof o !== "object" || Array.isArray(o)) throw new InvalidArgumentError("option pcie must be an object");
  const p = o as Record<string, unknown>;
  if (p.dataPointer !== undefined && p.dataPointer !== "auto" && p.dataPointer !== "prp" && p.dataPointer !== "sgl") {
    throw new InvalidArgumentError(`option pcie.dataPointer must be auto, prp or sgl, got ${String(p.dataPointer)}`);
  }
  if (p.cmbQueues !== undefined && typeof p.cmbQueues !== "boolean") {
    throw new InvalidArgumentError(`option pcie.cmbQueues must be a boolean, got ${String(p.cmbQueues)}`);
  }
  if (p.shadowDoorbells !== undefined && typeof p.shadowDoorbells !== "boolean") {
    throw new InvalidArgumentError(`option pcie.shadowDoorbells must be a boolean, got ${String(p.shadowDoorbells)}`);
  }
}

/** Delete IO Completion Queue. */
export function deleteIoCqCmd(qid: number): Sqe {
  const s = sqe(AdminOpc.DELETE_IO_CQ);
  s[10] = qid & 0xffff;
  return s;
}

// ---- rings ----------------------------------------------------------------------------------

/** TSNVME_CQ_DOORBELL=each: a CQ head doorbell per reap (A/B runs); else batched while polling. */
const CQ_BATCH_DEFAULT: boolean = envOf("TSNVME_CQ_DOORBELL") !== "each";

/** Memory and doorbells one PCIe queue pair needs. */
export interface PcieRingConfig {
  /** Queue id (0 = admin). */
  qid: number;
  /** Entries in each ring. */
  depth: number;
  /** Submission ring (depth * 64 bytes). */
  sq: DmaBuffer;
  /** Completion ring (depth * 16 bytes). */
  cq: DmaBuffer;
  /** PRP list pages for each command slot, or null when no transfer needs a list. */
  prp: DmaBuffer | null;
  /** PRP list pages reserved per command slot. */
  prpPagesPerSlot: number;
  /** Memory page size the controller was enabled with (CC.MPS). */
  pageSize: number;
  /** Doorbell array (from offset 0x1000). */
  doorbells: Uint32Array;
  /** Doorbell stride in bytes (CAP.DSTRD). */
  doorbellStride: number;
  /** Data in SGLs instead of PRPs (the slot's list memory holds SGL segments then). */
  sgl?: boolean;
  /** Shadow doorbells (IO queues after Doorbell Buffer Config), or null/absent for MMIO only. */
  dbbuf?: ShadowDoorbells | null;
}

/** SQ/CQ rings and doorbells of one NVMe-over-PCIe queue pair. */
export class PcieRing implements QueueRing {
  /** Entries in each ring. */
  readonly depth: number;
  /** Largest transfer one command can carry with this pair's PRP list pages. */
  readonly maxTransfer: number;
  /** Completions land in host memory: the pump may poll them synchronously. */
  readonly pollable: boolean = true;
  readonly #qid: number;
  readonly #sq32: Uint32Array;
  readonly #cq32: Uint32Array;
  readonly #entries: Uint32Array[];
  readonly #prpViews: (Uint32Array | null)[];
  readonly #prpIova: number[];
  readonly #db: Uint32Array;
  /** The doorbells as Int32 when they are shared memory (a software controller): a write also wakes a thread sleeping on it. */
  readonly #dbWake: Int32Array | null;
  readonly #sqDb: number;
  readonly #cqDb: number;
  readonly #pageSize: number;
  readonly #sgl: boolean;
  readonly #shadow: Uint32Array | null;
  readonly #eventIdx: Uint32Array | null;
  /** The entry being placed carries an SGL: push() sets PSDT (the queue rewrites CDW0 after setData). */
  #sglPending = false;
  #mmio = 0;
  #cqMmio = 0;
  /** Commands pushed and not yet reaped (on the device, or completed and not seen): CQ entries they may still take. */
  #outstanding = 0;
  /** The CQ head as the device was last told it (MMIO, or the shadow doorbell's event check). */
  #cqTold = 0;
  /** Completion queue head doorbells wait while the queue polls: see {@link batchCqDoorbell}. */
  #cqBatch = false;
  #sqTail = 0;
  #sqTailRung = 0;
  #cqHead = 0;
  #phase = 1;
  #closed = false;
  #flushes = 0;

  /**
   * Wrap the rings described by `cfg` (the controller must know them before
   * use), with PRP list pages for `slots` command slots (default depth - 1).
   */
  constructor(cfg: PcieRingConfig, slots: number = cfg.depth - 1) {
    this.depth = cfg.depth;
    this.#qid = cfg.qid;
    this.#pageSize = cfg.pageSize;
    this.#sgl = cfg.sgl ?? false;
    // Shadow doorbells serve IO queues only (as Linux): the admin queue always rings MMIO.
    this.#shadow = cfg.qid > 0 && cfg.dbbuf ? cfg.dbbuf.shadow : null;
    this.#eventIdx = cfg.qid > 0 && cfg.dbbuf ? cfg.dbbuf.eventIdx : null;
    const sqb = cfg.sq.bytes, cqb = cfg.cq.bytes;
    if (sqb.byteLength < cfg.depth * SQE_SIZE || cqb.byteLength < cfg.depth * CQE_SIZE) {
      throw new InvalidArgumentError("queue memory smaller than depth");
    }
    this.#sq32 = new Uint32Array(sqb.buffer, sqb.byteOffset, cfg.depth * 16);
    this.#cq32 = new Uint32Array(cqb.buffer, cqb.byteOffset, cfg.depth * 4);
    this.#entries = [];
    for (let i = 0; i < cfg.depth; i++) this.#entries.push(this.#sq32.subarray(i * 16, i * 16 + 16));
    this.#prpViews = [];
    this.#prpIova = [];
    const slotBytes = cfg.prpPagesPerSlot * cfg.pageSize;
    for (let s = 0; s < slots; s++) {
      if (cfg.prp && slotBytes > 0) {
        const b = cfg.prp.bytes;
        this.#prpViews.push(new Uint32Array(b.buffer, b.byteOffset + s * slotBytes, slotBytes / 4));
        this.#prpIova.push(cfg.prp.iova + s * slotBytes);
      } else {
        this.#prpViews.push(null);
        this.#prpIova.push(0);
      }
    }
    this.#db = cfg.doorbells;
    const dbb = cfg.doorbells.buffer;
    this.#dbWake = typeof SharedArrayBuffer !== "undefined" && dbb instanceof SharedArrayBuffer
      ? new Int32Array(dbb, cfg.doorbells.byteOffset, cfg.doorbells.length)
      : null;
    this.#sqDb = (2 * cfg.qid * cfg.doorbellStride) / 4;
    this.#cqDb = ((2 * cfg.qid + 1) * cfg.doorbellStride) / 4;
    this.#zeroShadow();
    const per = cfg.pageSize / 8;
    const p = cfg.prpPagesPerSlot;
    // Holds for any dword-aligned start: a partial first page only adds room.
    this.maxTransfer = (p === 0 ? 1 : p * (per - 1) + 1) * cfg.pageSize;
  }

  entry(): Uint32Array {
    return this.#entries[this.#sqTail];
  }

  setData(e: Uint32Array, slot: number, iova: number, len: number): void {
    if (this.#sgl) {
      writeSglData(e, iova, len);
      this.#sglPending = true;
    } else {
      writePrps(e, iova, len, this.#pageSize, this.#prpViews[slot], this.#prpIova[slot]);
    }
  }

  /**
   * Point the entry at `n` chunks (pairs in `chunks`: IOVA, length; an IOVA
   * of SGL_BIT_BUCKET discards read bytes) as an SGL in the slot's list
   * memory, segments of at most `perSegment` descriptors. Needs a ring made
   * with `sgl` (throws otherwise) and a slot whose list memory holds them.
   */
  setDataChunks(e: Uint32Array, slot: number, chunks: ArrayLike<number>, n: number, perSegment: number = Infinity): void {
    if (!this.#sgl) throw new InvalidArgumentError("scattered data needs SGLs (the controller offers none, or PRPs were chosen)");
    writeSglChunks(e, chunks, n, this.#prpViews[slot], this.#prpIova[slot], perSegment);
    this.#sglPending = true;
  }

  /** True when this ring carries data in SGLs. */
  get sgl(): boolean {
    return this.#sgl;
  }

  clearData(e: Uint32Array): void {
    e[6] = e[7] = e[8] = e[9] = 0;
  }

  push(): void {
    if (this.#sglPending) {
      const e = this.#entries[this.#sqTail];
      e[0] = (e[0] | (Psdt.SGL_MPTR_CONTIGUOUS << PSDT_SHIFT)) >>> 0;
      this.#sglPending = false;
    }
    if (++this.#sqTail === this.depth) this.#sqTail = 0;
    this.#outstanding++;
  }

  flush(): boolean {
    if (this.#sqTail === this.#sqTailRung || this.#closed) return false;
    // The SQE writes before the doorbell (a fence on weak CPUs, nothing on x86).
    publish32(this.#sq32, this.#sqTail * 16);
    const tail = this.#sqTail;
    if (this.#shadow === null || this.#ringShadow(this.#sqDb, tail)) {
      this.#db[this.#sqDb] = tail;
      // What an MMIO write does to a real device: a software queue thread asleep on this doorbell wakes.
      if (this.#dbWake !== null) Atomics.notify(this.#dbWake, this.#sqDb, 1);
      this.#mmio++;
    }
    this.#sqTailRung = tail;
    this.#flushes++;
    return true;
  }

  /**
   * Shadow doorbell `idx` moves to `value`: true when the controller's event
   * index asks for the MMIO write too (Linux's nvme_dbbuf_update_and_check_event).
   */
  #ringShadow(idx: number, value: number): boolean {
    const sh = this.#shadow!;
    const old = sh[idx];
    // Seq-cst store then load: the shadow value is visible before the event index is read.
    Atomics.store(sh, idx, value);
    // The controller writes the event index: read it without a write (see pollLoad32).
    return dbbufNeedEvent(pollLoad32(this.#eventIdx!, idx), value, old);
  }

  #zeroShadow(): void {
    if (this.#shadow === null) return;
    // A queue id used before (deleted, reset) must not start from its old tail and event index.
    this.#shadow[this.#sqDb] = this.#shadow[this.#cqDb] = 0;
    this.#eventIdx![this.#sqDb] = this.#eventIdx![this.#cqDb] = 0;
  }

  get flushes(): number {
    return this.#flushes;
  }

  /** SQ tail doorbells written over MMIO (fewer than {@link flushes} when shadow doorbells let the ring skip them). */
  get mmioDoorbells(): number {
    return this.#mmio;
  }

  /** True when this ring writes shadow doorbells. */
  get shadowDoorbells(): boolean {
    return this.#shadow !== null;
  }

  reap(sink: CompletionSink): number {
    const cq = this.#cq32;
    let head = this.#cqHead;
    let phase = this.#phase;
    let n = 0;
    for (;;) {
      const base = head << 2;
      // Not a plain load (Bun's JIT hoists it out of the spin) nor Bun's Atomics.load (it writes).
      const dw3 = pollLoad32(cq, base + 3);
      if (((dw3 >>> 16) & 1) !== phase) break;
      const dw0 = cq[base];
      const dw1 = cq[base + 1];
      const dw2 = cq[base + 2];
      if (++head === this.depth) {
        head = 0;
        phase ^= 1;
      }
      n++;
      sink.complete(dw3 & 0xffff, dw3 >>> 17, dw0, dw1, dw2 >>> 16);
    }
    if (n > 0) {
      this.#cqHead = head;
      this.#phase = phase;
      const out = this.#outstanding - n;
      this.#outstanding = out > 0 ? out : 0;
      if (this.#closed) return n;
      if (!this.#cqBatch) {
        this.#tellCqHead(head);
        return n;
      }
      // The device may post at most depth - 1 entries past the head it was told: tell it once
      // entries not yet reported plus those still to come reach half the ring, so it never fills.
      // With shadow doorbells the device also reads the head we store here before each post: after
      // the entries' loads (a release store), with no event-index check after it.
      if (this.#shadow !== null) storeRelease32(this.#shadow, this.#cqDb, head);
      let unreported = head - this.#cqTold; // no remainder: a division per reap, a helper call under TCG
      if (unreported < 0) unreported += this.depth;
      if (unreported + this.#outstanding >= this.depth >>> 1) this.#tellCqHead(head);
    }
    return n;
  }

  /** The CQ head to the device now (an MMIO write, unless the shadow doorbell's event index says it needs none). */
  #tellCqHead(head: number): void {
    const old = this.#cqTold;
    this.#cqTold = head;
    if (this.#shadow !== null) {
      Atomics.store(this.#shadow, this.#cqDb, head);
      if (!dbbufNeedEvent(pollLoad32(this.#eventIdx!, this.#cqDb), head, old)) return;
    }
    this.#db[this.#cqDb] = head;
    this.#cqMmio++;
  }

  /**
   * Tell the device the CQ head if it moved since it was last told: before
   * the queue sleeps on its interrupt, and when its pump goes idle.
   */
  flushCq(): void {
    if (!this.#closed && this.#cqHead !== this.#cqTold) this.#tellCqHead(this.#cqHead);
  }

  /**
   * Batch the CQ head doorbell: tell the device the head once entries not yet
   * reported plus those still outstanding reach half the ring, and at
   * {@link flushCq}, instead of after every reap (false, the default for a
   * bare ring; Linux and SPDK write it per reap). A queue pair turns it on
   * while it polls (not in interrupt mode), unless TSNVME_CQ_DOORBELL=each.
   * Each MMIO write traps to the hypervisor in a VM: at queue depth 1 this was
   * one of the two per IO. The device never sees a full CQ, so nothing waits.
   */
  set batchCqDoorbell(on: boolean) {
    this.#cqBatch = on && CQ_BATCH_DEFAULT;
    if (!this.#cqBatch) this.flushCq();
  }

  get batchCqDoorbell(): boolean {
    return this.#cqBatch;
  }

  /** CQ head doorbells written over MMIO. */
  get cqMmioDoorbells(): number {
    return this.#cqMmio;
  }

  reset(): void {
    // Stale phase tags from the last lap would read as fresh completions.
    this.#cq32.fill(0);
    this.#sq32.fill(0);
    this.#sqTail = this.#sqTailRung = this.#cqHead = this.#cqTold = this.#outstanding = 0;
    this.#phase = 1;
    this.#sglPending = false;
    this.#zeroShadow();
  }

  close(): void {
    this.#closed = true;
  }

  /** Queue id (for diagnostics). */
  get qid(): number {
    return this.#qid;
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * A PCIe queue pair's rings as another thread of this process reaches them
 * (a Worker that owns the queue): structured-cloneable, see
 * {@link PcieOps.shareRing} and {@link sharedPcieRing}.
 */
export interface SharedPcieRing {
  /** Queue id. */
  qid: number;
  /** Entries in each ring. */
  depth: number;
  /** Memory page size the controller was enabled with (CC.MPS). */
  pageSize: number;
  /** Doorbell stride in bytes (CAP.DSTRD). */
  doorbellStride: number;
  /** PRP list pages per command slot. */
  prpPages: number;
  /** Submission ring. */
  sq: SharedMemory;
  /** Completion ring. */
  cq: SharedMemory;
  /** PRP list pages, or null. */
  prp: SharedMemory | null;
  /** The doorbell area (offset 0x1000 onward). */
  doorbells: SharedMemory;
  /** Data in SGLs (see PcieRingConfig.sgl). */
  sgl?: boolean;
  /** Shadow doorbell and event index pages, or null. */
  dbbuf?: { shadow: SharedMemory; eventIdx: SharedMemory } | null;
}

/**
 * The ring of a {@link SharedPcieRing} on this thread, its memory mapped by
 * `view`; also returns the doorbell area's view (a vector gate writes the
 * MSI-X table through the same mapping) and every view made.
 */
export function sharedPcieRing(s: SharedPcieRing, view: (m: SharedMemory) => Uint8Array): { ring: PcieRing; doorbells: Uint32Array; views: Uint8Array[] } {
  const sq = view(s.sq), cq = view(s.cq), db = view(s.doorbells);
  const prp = s.prp ? view(s.prp) : null;
  const doorbells = new Uint32Array(db.buffer, db.byteOffset, db.byteLength >>> 2);
  const sh = s.dbbuf ? view(s.dbbuf.shadow) : null, ei = s.dbbuf ? view(s.dbbuf.eventIdx) : null;
  const u32 = (b: Uint8Array) => new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
  const ring = new PcieRing({
    qid: s.qid,
    depth: s.depth,
    sq: dmaBuffer(sq, s.sq.iova, s.sq.size),
    cq: dmaBuffer(cq, s.cq.iova, s.cq.size),
    prp: prp && s.prp ? dmaBuffer(prp, s.prp.iova, s.prp.size) : null,
    prpPagesPerSlot: s.prpPages,
    pageSize: s.pageSize,
    doorbells,
    doorbellStride: s.doorbellStride,
    sgl: s.sgl ?? false,
    dbbuf: sh && ei ? { shadow: u32(sh), eventIdx: u32(ei) } : null,
  });
  return { ring, doorbells, views: [sq, cq, db, ...(prp ? [prp] : []), ...(sh && ei ? [sh, ei] : [])] };
}

/**
 * PRP list pages one command slot needs for `bytes`, counted for the worst
 * dword-aligned start (4 bytes before a page boundary: the most pages touched).
 */
export function prpPagesFor(bytes: number, pageSize: number): number {
  return prpListPages(pageSize - 4, bytes, pageSize);
}

/** The PCIe transport operations over one memory-mapped {@link Transport}, for one controller. */
export class PcieOps implements TransportOps {
  /** Not a fabric. */
  readonly fabric = false;
  /** No capsules on PCIe. */
  readonly inCapsuleBytes = 0;
  /** The memory-mapped transport. */
  readonly memory: Transport;
  readonly #opts: Required<ControllerOptions>;
  #host: OpsHost | null = null;
  #cap: Cap | null = null;
  #pageSize = 0;
  /** Rings of each queue the controller created from this thread, by qid (0: admin). */
  readonly #rings = new Map<number, [sq: DmaBuffer, cq: DmaBuffer]>();
  /** IO queues carry data in SGLs (decided once identified). */
  #sgl = false;
  /** Shadow doorbell pages (allocated once identified, when used), and whether the controller has them since its last enable. */
  #dbbuf: { shadow: DmaBuffer; eventIdx: DmaBuffer; views: ShadowDoorbells } | null = null;
  #dbbufSent = false;
  /** Doorbell Buffer Config is still to be tried (auto mode: dropped when the controller refuses it). */
  #dbbufWanted = false;
  /** The CMB once set up for SQs: its memory, bus address, the CMBMSC value, and the next free byte. */
  #cmb: { bytes: Uint8Array; bus: number; cmbmsc: number; next: number } | null = null;
  #cmbTried = false;
  readonly #cmbBufs = new WeakSet<DmaBuffer>();

  /** Operations on `t` with the controller's options. */
  constructor(t: Transport, opts: Required<ControllerOptions>) {
    this.memory = t;
    this.#opts = opts;
  }

  get #ctx(): { host: OpsHost; cap: Cap } {
    return { host: this.#host!, cap: this.#cap! };
  }

  /** CAP, the page size, then CC.EN = 0 and CSTS.RDY = 0. */
  async connectAdmin(): Promise<AdminStart> {
    const t = this.memory;
    const capRaw = t.readReg64(Reg.CAP);
    if (capRaw === 0xffff_ffff_ffff_ffffn) throw new DeviceGoneError("CAP reads all ones: the device is not responding");
    // No controller has CAP = 0 (MQES 0 is invalid, CSS has a bit): BAR0 is not backed by one.
    if (capRaw === 0n) {
      throw new SetupError(
        "bar-zeros",
        `${t.name}: BAR0 reads all zeros (CAP = 0): no controller answers there; an SR-IOV VF whose secondary controller is offline (bring it online from the PF: virt-mgmt, onlineSecondary), or a BAR the platform does not decode`,
      );
    }
    const cap = decodeCap(capRaw);
    if ((cap.css & 1) === 0) {
      throw new SetupError("unsupported-controller", "controller does not support the NVM command set (CAP.CSS)");
    }
    let pageSize = Math.min(Math.max(t.hostPageSize, cap.mpsMin), cap.mpsMax);
    if (pageSize % t.hostPageSize !== 0) pageSize = cap.mpsMin;
    if (cap.mpsMin > t.hostPageSize) {
      throw new SetupError(
        "unsupported-controller",
        `controller's minimum page size ${cap.mpsMin} exceeds the host page size ${t.hostPageSize}`,
      );
    }
    this.#cap = cap;
    this.#pageSize = pageSize;
    await this.#disable();
    return { cap, pageSize, cntlid: 0 };
  }

  /** Admin rings in the controller's memory, with PRP list pages up to the transfer cap (firmware images, large logs). */
  adminQueue(host: OpsHost): QueuePair {
    this.#host = host;
    const depth = Math.min(this.#opts.adminQueueDepth, this.#cap!.mqes, 4096);
    return this.#makePair(0, depth, prpPagesFor(this.#opts.maxTransferBytes, this.#pageSize), this.#opts.adminTimeoutMs);
  }

  /** AQA/ASQ/ACQ, CC (page size, entry sizes, command sets, EN), then CSTS.RDY. */
  async enable(opts: SubmitOptions): Promise<void> {
    const t = this.memory;
    const { host, cap } = this.#ctx;
    const depth = host.admin.depth;
    const [sq, cq] = this.#rings.get(0)!;
    t.writeReg32(Reg.AQA, (((depth - 1) << 16) | (depth - 1)) >>> 0);
    t.writeReg64(Reg.ASQ, BigInt(sq.iova));
    t.writeReg64(Reg.ACQ, BigInt(cq.iova));
    // As Linux does: with CAP.CSS "IO command sets", enable all of them (zoned too), not only NVM.
    t.writeReg32(Reg.CC, ccValue(this.#pageSize, 6, 4, cap.css & CAP_CSS_IOCS ? CC_CSS_ALL : 0));
    await this.#waitReady(true);
    // A CMB set up through CMBMSC is set up again (a function reset clears it); a legacy one needs nothing.
    if (this.#cmb && this.#cmb.cmbmsc !== 0) this.#writeCmbmsc(this.#cmb.cmbmsc);
    // A reset forgets the doorbell buffers: zero them (queues restart from 0) and configure them again.
    if (this.#dbbuf && this.#dbbufSent) {
      this.#dbbufSent = false;
      await this.#sendDbbuf(opts);
    }
  }

  /**
   * SGLs or PRPs for IO queues (SGLS and {@link PcieOptions.dataPointer}), and
   * the shadow doorbell pages when OACS offers them; the transfer cap stands
   * (PRP capacity is sized from it).
   */
  identified(id: IdentifyController, maxTransferBytes: number): number {
    const o = this.#opts.pcie ?? {};
    const dp = o.dataPointer ?? "auto";
    if (dp === "sgl" && !sglSupported(id.sgls)) {
      throw new SetupError("unsupported-controller", "SGLs were asked for (pcie.dataPointer) but the controller offers none (SGLS)");
    }
    this.#sgl = dp !== "prp" && sglSupported(id.sgls);
    const offered = (id.oacs & OACS_DBBUF) !== 0;
    if (o.shadowDoorbells === true && !offered) {
      throw new SetupError("unsupported-controller", "shadow doorbells were asked for but the controller lacks Doorbell Buffer Config (OACS)");
    }
    if (offered && o.shadowDoorbells !== false && this.#dbbuf === null) {
      const host = this.#host!;
      const shadow = host.allocDma(this.#pageSize), eventIdx = host.allocDma(this.#pageSize);
      const u32 = (b: DmaBuffer) => new Uint32Array(b.bytes.buffer, b.bytes.byteOffset, this.#pageSize >>> 2);
      this.#dbbuf = { shadow, eventIdx, views: { shadow: u32(shadow), eventIdx: u32(eventIdx) } };
      this.#dbbufWanted = true;
    }
    return maxTransferBytes;
  }

  /** Whether IO queues carry data in SGLs. */
  get sgl(): boolean {
    return this.#sgl;
  }

  /** Bytes of the CMB holding IO submission queues (0: none there). */
  get cmbQueueBytes(): number {
    return this.#cmb?.next ?? 0;
  }

  /** CMBMSC as Linux writes it: high dword first, the low one (with CRE/CMSE) last. */
  #writeCmbmsc(v: number): void {
    const t = this.memory;
    t.writeReg32(Reg.CMBMSC + 4, Math.floor(v / 0x1_0000_0000) >>> 0);
    t.writeReg32(Reg.CMBMSC, v >>> 0);
  }

  /** Once: find the CMB (CMBMSC.CRE, CMBLOC/CMBSZ), map its BAR and enable it at its bus address when it takes SQs. */
  #setupCmb(): void {
    if (this.#cmbTried) return;
    this.#cmbTried = true;
    const t = this.memory;
    if (this.#opts.pcie?.cmbQueues === false || !t.mapBar) return;
    const cmbs = (t.readReg64(Reg.CAP) & CAP_CMBS) !== 0n;
    if (cmbs) t.writeReg32(Reg.CMBMSC, Cmbmsc.CRE);
    const info = decodeCmb(t.readReg32(Reg.CMBLOC), t.readReg32(Reg.CMBSZ));
    if (!info || (info.supports & CmbszBit.SQS) === 0) return;
    const bar = t.mapBar(info.bar);
    if (!bar || info.offset >= bar.bytes.byteLength) return;
    const size = Math.min(info.size, bar.bytes.byteLength - info.offset);
    const bus = bar.busAddress + info.offset;
    const cmbmsc = cmbs ? (bus - (bus % 4096)) + Cmbmsc.CRE + Cmbmsc.CMSE : 0;
    if (cmbs) this.#writeCmbmsc(cmbmsc);
    this.#cmb = { bytes: bar.bytes.subarray(info.offset, info.offset + size), bus, cmbmsc, next: 0 };
  }

  /** `size` bytes of the CMB for a submission queue (page aligned), or null when it is full or absent. */
  #cmbSq(size: number): DmaBuffer | null {
    const c = this.#cmb;
    if (!c) return null;
    const len = Math.ceil(size / this.#pageSize) * this.#pageSize;
    if (c.next + len > c.bytes.byteLength) return null;
    const b = dmaBuffer(c.bytes.subarray(c.next, c.next + len), c.bus + c.next, len);
    c.next += len;
    this.#cmbBufs.add(b);
    return b;
  }

  /** Whether IO queues ring shadow doorbells (the controller accepted Doorbell Buffer Config). */
  get shadowDoorbells(): boolean {
    return this.#dbbufSent;
  }

  /** Doorbell Buffer Config once after identify; in auto mode a refusal turns shadow doorbells off. */
  async #ensureDbbuf(opts?: SubmitOptions): Promise<void> {
    if (!this.#dbbufWanted) return;
    this.#dbbufWanted = false;
    try {
      await this.#sendDbbuf(opts);
    } catch (e) {
      if (this.#opts.pcie?.shadowDoorbells === true) throw e;
      // The two pages stay with the controller's memory (freed at close).
      this.#dbbuf = null;
    }
  }

  async #sendDbbuf(opts?: SubmitOptions): Promise<void> {
    const d = this.#dbbuf!;
    d.shadow.bytes.fill(0, 0, this.#pageSize);
    d.eventIdx.bytes.fill(0, 0, this.#pageSize);
    await this.#host!.adminCommand(dbbufConfigCmd(d.shadow.iova, d.eventIdx.iova), 0, 0, undefined, opts);
    this.#dbbufSent = true;
  }

  /** As many as may be wanted later (queues made on demand, e.g. one per Worker). */
  ioQueuesToRequest(): number {
    return Math.max(1, this.#opts.maxIoQueues);
  }

  /** Rings and PRP pages for `qid`, then Create IO CQ and SQ. */
  async createIoQueue(qid: number): Promise<QueuePair> {
    const { host, cap } = this.#ctx;
    const depth = Math.max(2, Math.min(this.#opts.ioQueueDepth, cap.mqes, 65536));
    // Before the ring is made: it writes shadow doorbells only when the controller took the buffers.
    await this.#ensureDbbuf();
    this.#setupCmb();
    const qp = this.#makePair(qid, depth, prpPagesFor(host.maxTransferBytes, this.#pageSize), this.#opts.ioTimeoutMs);
    const [sq, cq] = this.#rings.get(qid)!;
    await this.createRemoteQueue(qid, depth, sq, cq);
    return qp;
  }

  /** Create IO CQ/SQ again on the memory the pair already owns. */
  async restoreIoQueue(q: QueuePair, opts: SubmitOptions): Promise<void> {
    const [sq, cq] = this.#rings.get(q.qid)!;
    await this.createRemoteQueue(q.qid, q.depth, sq, cq, opts);
  }

  /** Create CQ then SQ `qid` on rings `sq`/`cq`, with the queue's interrupt vector when there are any. */
  async createRemoteQueue(qid: number, depth: number, sq: DmaBuffer, cq: DmaBuffer, opts?: SubmitOptions): Promise<void> {
    const host = this.#host!;
    const iv = host.ioVector(qid);
    const d = this.#dbbuf;
    if (d && this.#dbbufSent) {
      // A qid used before keeps its old shadow tail and event index; the ring that will own it may
      // live in a Worker and clear them only later, so clear them before the controller can look.
      const words = this.#cap!.doorbellStride / 4;
      for (const i of [2 * qid * words, (2 * qid + 1) * words]) {
        Atomics.store(d.views.shadow, i, 0);
        Atomics.store(d.views.eventIdx, i, 0);
      }
    }
    await host.adminCommand(createIoCqCmd(qid, depth, iv >= 0, Math.max(iv, 0)), cq.iova, 0, undefined, opts);
    try {
      const c = createIoSqCmd(qid, depth, qid);
      if (this.#cmbBufs.has(sq)) {
        // In the CMB: a bus address, not host DMA memory the controller object knows; PRP1 carries it as is.
        c[6] = sq.iova >>> 0;
        c[7] = Math.floor(sq.iova / 0x1_0000_0000) >>> 0;
        await host.adminCommand(c, 0, 0, undefined, opts);
      } else {
        await host.adminCommand(c, sq.iova, 0, undefined, opts);
      }
    } catch (e) {
      await host.adminCommand(deleteIoCqCmd(qid), 0, 0, 5000, opts).catch(() => {});
      throw e;
    }
  }

  /** Delete IO SQ, then CQ. */
  async deleteIoQueue(qid: number): Promise<void> {
    const host = this.#host!;
    await host.adminCommand(deleteIoSqCmd(qid), 0, 0, 5000);
    await host.adminCommand(deleteIoCqCmd(qid), 0, 0, 5000);
  }

  /** Rings of `depth` entries (capped by CAP.MQES) and PRP list pages for every slot. */
  reserveQueue(depth: number): ReservedQueue {
    const { host, cap } = this.#ctx;
    const d = Math.max(2, Math.min(depth, cap.mqes, 65536));
    const prpPages = prpPagesFor(host.maxTransferBytes, this.#pageSize);
    const sq = host.allocDma(d * SQE_SIZE), cq = host.allocDma(d * CQE_SIZE);
    const prp = prpPages > 0 ? host.allocDma((d - 1) * prpPages * this.#pageSize) : null;
    return { depth: d, sq, cq, prp, prpPages };
  }

  /** True when another thread can own a queue (the transport shares DMA memory and the doorbell area). */
  get canShare(): boolean {
    return typeof this.memory.shareDma === "function" && typeof this.memory.shareDoorbells === "function";
  }

  /** How another thread reaches queue `qid`'s rings reserved with {@link reserveQueue}. */
  shareRing(qid: number, r: ReservedQueue): SharedPcieRing {
    const t = this.memory;
    if (!t.shareDma || !t.shareDoorbells) throw new InvalidArgumentError(`${t.name} cannot share queues with other threads`);
    return {
      qid,
      depth: r.depth,
      pageSize: this.#pageSize,
      doorbellStride: this.#cap!.doorbellStride,
      prpPages: r.prpPages,
      sq: t.shareDma(r.sq),
      cq: t.shareDma(r.cq),
      prp: r.prp ? t.shareDma(r.prp) : null,
      doorbells: t.shareDoorbells(),
      sgl: this.#sgl,
      dbbuf: this.#dbbuf && this.#dbbufSent ? { shadow: t.shareDma(this.#dbbuf.shadow), eventIdx: t.shareDma(this.#dbbuf.eventIdx) } : null,
    };
  }

  /** Keep `memory` and the doorbell page mapped for a thread that may still touch them. */
  retain(memory: DmaBuffer[]): void {
    const t = this.memory;
    for (const b of memory) t.retain?.(b);
    t.retainDoorbells?.();
  }

  /** MMIO. */
  readRegister(offset: number, eightBytes: boolean): Promise<bigint> {
    const t = this.memory;
    return Promise.resolve(eightBytes ? t.readReg64(offset) : BigInt(t.readReg32(offset) >>> 0));
  }

  /** CSTS all ones: gone; CSTS.CFS: fatal. */
  checkHealth(): void {
    const csts = this.memory.readReg32(Reg.CSTS);
    if (csts === 0xffff_ffff) throw new DeviceGoneError();
    if (csts & CSTS.CFS) throw new ControllerFatalError("controller fatal status (CSTS.CFS)");
  }

  /** NSSR when asked, CC.EN = 0 (a function reset first when fatal, or when it will not stop), then the rings are zeroed. */
  async teardown(queues: QueuePair[], err: NvmeError, nssr: boolean): Promise<void> {
    const t = this.memory;
    if (nssr) t.writeReg32(Reg.NSSR, NSSR_RESET);
    const csts = t.readReg32(Reg.CSTS);
    if (csts === 0xffff_ffff) throw new DeviceGoneError();
    // A fatal controller may need more than CC.EN=0: reset the function when the transport can.
    if (csts & CSTS.CFS && t.resetDevice) t.resetDevice();
    try {
      await this.#disable();
    } catch (e) {
      if (!t.resetDevice || e instanceof DeviceGoneError) throw e;
      t.resetDevice();
      await this.#disable();
    }
    for (const q of queues) q.reset(err);
  }

  /** The controller stays reachable through its registers. */
  reconnectAdmin(_opts: SubmitOptions): Promise<number | null> {
    return Promise.resolve(null);
  }

  /** Nothing to watch: PCIe has no connections. */
  recovered(_queues: QueuePair[]): void {}

  /** No keep-alive on PCIe. */
  keepAlive(_on: boolean): void {}

  /** CC.SHN normal, CSTS.SHST complete (bounded by RTD3E, 5-60 s), CC.EN = 0. */
  async shutdown(rtd3eUs: number): Promise<void> {
    const t = this.memory;
    const cc = t.readReg32(Reg.CC);
    t.writeReg32(Reg.CC, ((cc & ~CC.SHN_MASK) | CC.SHN_NORMAL) >>> 0);
    const deadline = performance.now() + Math.min(Math.max(rtd3eUs / 1000, 5000), 60_000);
    while ((t.readReg32(Reg.CSTS) & CSTS.SHST_MASK) !== CSTS.SHST_COMPLETE) {
      if (performance.now() > deadline) break;
      await sleep(1);
    }
    t.writeReg32(Reg.CC, t.readReg32(Reg.CC) & ~CC.EN);
  }

  async #disable(): Promise<void> {
    const t = this.memory;
    const cc = t.readReg32(Reg.CC);
    if (cc & CC.EN) t.writeReg32(Reg.CC, cc & ~CC.EN);
    await this.#waitReady(false);
  }

  async #waitReady(ready: boolean): Promise<void> {
    const t = this.memory, cap = this.#cap!;
    const deadline = performance.now() + Math.max(cap.timeoutMs, 500);
    for (;;) {
      const csts = t.readReg32(Reg.CSTS);
      if (csts === 0xffff_ffff) throw new DeviceGoneError("CSTS reads all ones: the device is not responding");
      if (ready && csts & CSTS.CFS) throw new ControllerFatalError("controller fatal status (CSTS.CFS) during enable");
      if (((csts & CSTS.RDY) !== 0) === ready) return;
      if (performance.now() > deadline) {
        throw new ControllerFatalError(
          `controller did not become ${ready ? "ready" : "disabled"} within CAP.TO (${cap.timeoutMs} ms)`,
        );
      }
      await sleep(1);
    }
  }

  /** Rings (and PRP pages) in the controller's memory and a pair over them; the device does not know them yet. */
  #makePair(qid: number, depth: number, prpPages: number, timeoutMs: number): QueuePair {
    const host = this.#host!;
    const sq = (qid > 0 ? this.#cmbSq(depth * SQE_SIZE) : null) ?? host.allocDma(depth * SQE_SIZE);
    const cq = host.allocDma(depth * CQE_SIZE);
    const prp = prpPages > 0 ? host.allocDma((depth - 1) * prpPages * this.#pageSize) : null;
    this.#rings.set(qid, [sq, cq]);
    const ring = new PcieRing({
      qid,
      depth,
      sq,
      cq,
      prp,
      prpPagesPerSlot: prpPages,
      pageSize: this.#pageSize,
      doorbells: this.memory.doorbells(),
      doorbellStride: this.#cap!.doorbellStride,
      sgl: qid > 0 && this.#sgl,
      dbbuf: qid > 0 && this.#dbbuf && this.#dbbufSent ? this.#dbbuf.views : null,
    });
    return new QueuePair({ qid, ring, defaultTimeoutMs: timeoutMs, pollSpinUs: this.#opts.pollSpinUs });
  }
}
