/**
 * The software NVMe controller model. It runs in a Worker and sees host memory
 * as a device does: SQEs, PRPs and data are reached by IOVA in one
 * SharedArrayBuffer, doorbells and registers in another. The host side is
 * {@link SimTransport}; nothing here is visible to the driver but registers,
 * doorbells and memory.
 * @module
 */
import { AdminOpc, CC, Cns, CSTS, Fid, IoOpc, Reg } from "../nvme/spec.ts";
import { FileMedia, type Media, MemMedia } from "./media.ts";
import { IrqLayout } from "../irq/waiter.ts";
import {
  Ctl,
  type FaultRule,
  type HeldCommand,
  LogId,
  SIM_DEFAULTS,
  SimCns,
  type SimOptions,
  type SimState,
  SimStatus as S,
} from "./options.ts";

/** Everything the worker needs to build the device. */
export interface SimInit {
  /** Options (already defaulted by the host where it matters). */
  opts: SimOptions;
  /** Host DMA memory. */
  host: SharedArrayBuffer;
  /** Registers and doorbells. */
  regs: SharedArrayBuffer;
  /** Control words and counters. */
  ctl: SharedArrayBuffer;
  /** IOMMU page table: one byte per host page, 1 while the host has it mapped for DMA. */
  iommu?: SharedArrayBuffer;
  /** Serial number to report. */
  serial: string;
}

interface Sq {
  qid: number;
  base: number;
  size: number;
  cqid: number;
  head: number;
}

interface Cq {
  qid: number;
  base: number;
  size: number;
  tail: number;
  phase: number;
  sqs: number;
  backlog: number[][];
  /** Interrupt vector (IEN set), or undefined when the CQ does not interrupt. */
  iv?: number;
}

interface Ns {
  nsid: number;
  media: Media;
  lbaf: number;
  attached: boolean;
  nguid: Uint8Array;
}

interface Held {
  qid: number;
  cid: number;
  cmd: Uint32Array;
  due: number;
}

interface Rule extends FaultRule {
  id: number;
}

const LBAF_DS = [9, 12];
const PAGE = 4096;
const TWO32 = 0x1_0000_0000;
const DNR = 1 << 14;
const TEMP_K = 310;

function padAscii(dst: Uint8Array, off: number, len: number, s: string): void {
  for (let i = 0; i < len; i++) dst[off + i] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
}

function setU64(dv: DataView, off: number, v: number): void {
  dv.setUint32(off, v % TWO32, true);
  dv.setUint32(off + 4, Math.floor(v / TWO32), true);
}

/** A status with Do Not Retry set where retrying cannot help. */
function sfOf(status: number): number {
  if (status === 0 || status === S.ABORT_REQUESTED || status === S.SQ_DELETION || status === S.SANITIZE_IN_PROGRESS) {
    return status;
  }
  return status | DNR;
}

const FEATURE_DEFAULTS: Record<number, number> = {
  [Fid.ARBITRATION]: 0,
  [Fid.POWER_MGMT]: 0,
  [Fid.ERROR_RECOVERY]: 0,
  [Fid.VOLATILE_WC]: 1,
  [Fid.IRQ_COALESCING]: 0,
  [Fid.IRQ_CONFIG]: 0,
  [Fid.WRITE_ATOMICITY]: 0,
  [Fid.ASYNC_EVENT]: 0x3ff,
  [Fid.HOST_BEHAVIOR]: 0,
};

/** The controller model. Driven by the worker loop calling {@link step}. */
export class SimDevice {
  /** Set once the device stopped for good (surprise removal). */
  stopped = false;
  readonly #o: Required<Omit<SimOptions, "namespaces" | "capacityBytes" | "serial" | "irq">>;
  /** MSI-X model's wake words (SimOptions.irq), or null. */
  readonly #irq: Int32Array | null;
  readonly #serial: string;
  readonly #capacity: number;
  readonly #hostU8: Uint8Array;
  readonly #host32: Uint32Array;
  readonly #hostDv: DataView;
  readonly #hostSize: number;
  readonly #base: number;
  readonly #regs: Uint32Array;
  readonly #db: Uint32Array;
  readonly #ctl: Int32Array;
  #cc = 0;
  #csts = 0;
  #enabled = false;
  #fatal = false;
  #readyAt = -1;
  #pageSize = PAGE;
  readonly #sqs = new Map<number, Sq>();
  readonly #cqs = new Map<number, Cq>();
  #sqOrder: Sq[] = [];
  #ioQueuesCreated = false;
  #grantedQueues: number;
  readonly #ns = new Map<number, Ns>();
  #held: Held[] = [];
  #rules: Rule[] = [];
  #nextRule = 1;
  #latencyMs: number;
  #latencyAdmin = false;
  readonly #segs: number[] = [];
  readonly #iommu: Uint8Array | null;
  #dw0 = 0;
  // Features
  #feat = new Map<number, number>();
  #saved = new Map<number, number>();
  #tempThresh = new Map<number, number>();
  #timestampBase = 0;
  #timestampSetAt = 0;
  #timestampOrigin = 0;
  #hostBehavior: Uint8Array = new Uint8Array(512);
  // Async events
  #aers: { cid: number }[] = [];
  #events: number[] = [];
  #masked = new Set<number>();
  #criticalWarning = 0;
  // Logs and counters
  #errors: Uint8Array[] = [];
  #errorCount = 0;
  #smart = { unitsRead: 0, unitsWritten: 0, reads: 0, writes: 0, powerCycles: 0, unsafe: 0, mediaErrors: 0 };
  #changedNs: number[] = [];
  // Firmware
  #fwSlots: string[];
  #fwActive = 1;
  #fwNext = 0;
  #fwImage = new Uint8Array(0);
  #fwImageLen = 0;
  // Self-test
  #dst = { op: 0, nsid: 0, start: 0, end: 0 };
  #dstLog: Uint8Array[] = [];
  // Sanitize
  #san = { sstat: 0, sprog: 0xffff, cdw10: 0, start: 0, end: 0, running: false, action: 0, pattern: 0, passes: 0, invert: false };
  #sanDone = 0;

  /** Build the device over the shared areas; writes CAP and VS. */
  constructor(init: SimInit) {
    const o = init.opts;
    this.#o = {
      memoryBytes: o.memoryBytes ?? SIM_DEFAULTS.memoryBytes,
      iovaBase: o.iovaBase ?? SIM_DEFAULTS.iovaBase,
      maxQueues: o.maxQueues ?? SIM_DEFAULTS.maxQueues,
      maxQueueEntries: o.maxQueueEntries ?? SIM_DEFAULTS.maxQueueEntries,
      mdts: o.mdts ?? SIM_DEFAULTS.mdts,
      maxNamespaces: o.maxNamespaces ?? SIM_DEFAULTS.maxNamespaces,
      fwSlots: Math.max(1, Math.min(7, o.fwSlots ?? SIM_DEFAULTS.fwSlots)),
      fwSlot1ReadOnly: o.fwSlot1ReadOnly ?? SIM_DEFAULTS.fwSlot1ReadOnly,
      fwug: o.fwug ?? SIM_DEFAULTS.fwug,
      sanicap: o.sanicap ?? SIM_DEFAULTS.sanicap,
      sanitizeMs: o.sanitizeMs ?? SIM_DEFAULTS.sanitizeMs,
      selfTestMs: o.selfTestMs ?? SIM_DEFAULTS.selfTestMs,
      readyDelayMs: o.readyDelayMs ?? SIM_DEFAULTS.readyDelayMs,
      latencyMs: o.latencyMs ?? SIM_DEFAULTS.latencyMs,
      vwc: o.vwc ?? SIM_DEFAULTS.vwc,
      model: o.model ?? SIM_DEFAULTS.model,
      firmware: o.firmware ?? SIM_DEFAULTS.firmware,
    };
    this.#serial = init.serial;
    this.#irq = o.irq ? new Int32Array(o.irq) : null;
    this.#hostU8 = new Uint8Array(init.host);
    this.#host32 = new Uint32Array(init.host);
    this.#hostDv = new DataView(init.host);
    this.#hostSize = init.host.byteLength;
    this.#base = this.#o.iovaBase;
    this.#regs = new Uint32Array(init.regs, 0, 0x1000 / 4);
    this.#db = new Uint32Array(init.regs, 0x1000, 2 * (this.#o.maxQueues + 1));
    this.#ctl = new Int32Array(init.ctl);
    this.#iommu = init.iommu ? new Uint8Array(init.iommu) : null;
    this.#grantedQueues = this.#o.maxQueues;
    this.#latencyMs = this.#o.latencyMs;
    this.#fwSlots = new Array(this.#o.fwSlots).fill("");
    this.#fwSlots[0] = this.#o.firmware;
    const nss = o.namespaces ?? [{ size: 16 << 20, blockSize: 512 }, { size: 16 << 20, blockSize: 4096 }];
    let used = 0;
    nss.forEach((n, i) => {
      const bs = n.blockSize ?? 512;
      const bytes = Math.floor(n.size / bs) * bs;
      used += bytes;
      this.#ns.set(i + 1, {
        nsid: i + 1,
        media: n.path ? new FileMedia(n.path, bytes) : new MemMedia(bytes),
        lbaf: bs === 4096 ? 1 : 0,
        attached: true,
        nguid: this.#nguid(i + 1),
      });
    });
    this.#capacity = o.capacityBytes ?? used + 64 * 1024 * 1024;
    this.#resetFeatures();
    // CAP: MQES, CQR=1, AMS=0, TO (500 ms units), DSTRD=0, NSSRS=0, CSS=NVM, MPSMIN=MPSMAX=0 (4 KiB).
    const to = Math.max(1, Math.ceil((this.#o.readyDelayMs + 500) / 500));
    this.#regs[Reg.CAP / 4] = ((this.#o.maxQueueEntries - 1) & 0xffff) | (1 << 16) | ((to & 0xff) << 24);
    this.#regs[Reg.CAP / 4 + 1] = (1 << 5) >>> 0;
    Atomics.store(this.#regs, Reg.VS / 4, 0x00010400);
  }

  #nguid(nsid: number): Uint8Array {
    const g = new Uint8Array(16);
    for (let i = 0; i < 8; i++) g[i] = this.#serial.charCodeAt(i % this.#serial.length) || 0x53;
    new DataView(g.buffer).setUint32(12, nsid, false);
    g[8] = 0x5e;
    return g;
  }

  #resetFeatures(): void {
    this.#feat.clear();
    for (const [k, v] of Object.entries(FEATURE_DEFAULTS)) {
      const fid = Number(k);
      this.#feat.set(fid, this.#saved.get(fid) ?? v);
    }
    if (!this.#o.vwc) this.#feat.set(Fid.VOLATILE_WC, 0);
    this.#tempThresh.clear();
  }

  // ---- registers and the main loop --------------------------------------------------------

  #setCsts(v: number): void {
    this.#csts = v >>> 0;
    Atomics.store(this.#regs, Reg.CSTS / 4, this.#csts);
  }

  /** Do one round of work; true when something happened (the loop keeps spinning). */
  step(): boolean {
    if (this.stopped) return false;
    if (Atomics.load(this.#ctl, Ctl.REMOVED)) {
      this.stopped = true;
      return false;
    }
    let did = false;
    const cc = Atomics.load(this.#regs, Reg.CC / 4);
    if (cc !== this.#cc) {
      this.#onCc(cc);
      did = true;
    }
    const now = performance.now();
    if (this.#readyAt >= 0 && now >= this.#readyAt) {
      this.#readyAt = -1;
      if (this.#enabled && !this.#fatal) this.#setCsts(this.#csts | CSTS.RDY);
      else if (!this.#enabled) this.#setCsts(this.#csts & ~CSTS.RDY);
      did = true;
    }
    this.#background(now);
    if (!this.#enabled || this.#fatal || !(this.#csts & CSTS.RDY)) return did;
    if (this.#held.length) did = this.#runDue(now) || did;
    for (const cq of this.#cqs.values()) if (cq.backlog.length) did = this.#flushBacklog(cq) || did;
    for (let i = 0; i < this.#sqOrder.length; i++) {
      const sq = this.#sqOrder[i];
      let n = 0;
      while (n < 64 && !this.#fatal && !this.stopped) {
        const tail = Atomics.load(this.#db, 2 * sq.qid);
        if (tail === sq.head || tail >= sq.size) break;
        const cq = this.#cqs.get(sq.cqid);
        if (!cq || cq.backlog.length > cq.size) break;
        this.#fetch(sq);
        n++;
      }
      if (n) did = true;
      if (this.#sqOrder[i] !== sq) i--; // the queue list changed under us (delete)
    }
    return did;
  }

  #onCc(cc: number): void {
    const prev = this.#cc;
    this.#cc = cc;
    const delay = this.#o.readyDelayMs;
    if ((cc & CC.EN) && !(prev & CC.EN)) {
      this.#enable(cc);
      if (this.#enabled) {
        if (delay > 0) this.#readyAt = performance.now() + delay;
        else this.#setCsts((this.#csts & ~CSTS.SHST_MASK) | CSTS.RDY);
      }
    } else if (!(cc & CC.EN) && (prev & CC.EN)) {
      if (!(prev & CC.SHN_MASK) && !(this.#csts & CSTS.SHST_COMPLETE)) this.#smart.unsafe++;
      this.#reset();
      const keep = this.#csts & CSTS.SHST_MASK;
      if (delay > 0) {
        this.#setCsts(keep | (this.#csts & CSTS.RDY));
        this.#readyAt = performance.now() + delay;
      } else this.#setCsts(keep);
    }
    if ((cc & CC.SHN_MASK) && !(prev & CC.SHN_MASK)) {
      // Everything is in memory: the shutdown is complete at once.
      this.#setCsts((this.#csts & ~CSTS.SHST_MASK) | CSTS.SHST_COMPLETE);
    }
  }

  #enable(cc: number): void {
    const mps = (cc >>> 7) & 0xf;
    const aqa = this.#regs[Reg.AQA / 4];
    const asqs = (aqa & 0xfff) + 1, acqs = ((aqa >>> 16) & 0xfff) + 1;
    const asq = this.#regs[Reg.ASQ / 4] + this.#regs[Reg.ASQ / 4 + 1] * TWO32;
    const acq = this.#regs[Reg.ACQ / 4] + this.#regs[Reg.ACQ / 4 + 1] * TWO32;
    const css = (cc >>> 4) & 7;
    this.#pageSize = PAGE << mps;
    const sqOff = this.#off(asq, asqs * 64), cqOff = this.#off(acq, acqs * 16);
    if (mps !== 0 || css !== 0 || asqs < 2 || acqs < 2 || sqOff < 0 || cqOff < 0 || asq % PAGE || acq % PAGE) {
      // A configuration no controller could run with: fatal, as real ones do.
      this.#goFatal();
      return;
    }
    this.#enabled = true;
    this.#fatal = false;
    this.#smart.powerCycles++;
    if (this.#fwNext) {
      this.#fwActive = this.#fwNext;
      this.#fwNext = 0;
    }
    this.#cqs.set(0, { qid: 0, base: cqOff, size: acqs, tail: 0, phase: 1, sqs: 1, backlog: [], iv: 0 });
    this.#sqs.set(0, { qid: 0, base: sqOff, size: asqs, cqid: 0, head: 0 });
    this.#sqOrder = [this.#sqs.get(0)!];
  }

  #reset(): void {
    // Doorbells are controller registers: a reset returns them to 0, or stale tails would replay old entries.
    for (let i = 0; i < this.#db.length; i++) Atomics.store(this.#db, i, 0);
    this.#enabled = false;
    this.#fatal = false;
    this.#sqs.clear();
    this.#cqs.clear();
    this.#sqOrder = [];
    this.#held = [];
    this.#aers = [];
    this.#masked.clear();
    this.#ioQueuesCreated = false;
    this.#grantedQueues = this.#o.maxQueues;
    this.#resetFeatures();
    if (this.#dst.op) this.#finishSelfTest(2);
  }

  #goFatal(): void {
    this.#fatal = true;
    this.#setCsts(this.#csts | CSTS.CFS);
  }

  /**
   * Offset in host memory of `len` bytes at `iova`, or -1 when outside it or
   * not mapped: like an IOMMU, DMA to memory the host has unmapped is refused
   * (and counted, so tests catch stale DMA) instead of touching it.
   */
  #off(iova: number, len: number): number {
    const o = iova - this.#base;
    if (!(o >= 0 && o + len <= this.#hostSize)) return -1;
    const m = this.#iommu;
    if (m !== null && len > 0) {
      for (let p = Math.floor(o / PAGE), last = Math.floor((o + len - 1) / PAGE); p <= last; p++) {
        if (m[p] === 0) {
          Atomics.add(this.#ctl, Ctl.STALE_DMA, 1);
          return -1;
        }
      }
    }
    return o;
  }

  // ---- background operations ---------------------------------------------------------------

  #background(now: number): void {
    const s = this.#san;
    if (s.running) {
      s.sprog = Math.min(0xffff, Math.floor(((now - s.start) / Math.max(1, s.end - s.start)) * 65536));
      if (now >= s.end) this.#finishSanitize();
    }
    if (this.#dst.op && now >= this.#dst.end) this.#finishSelfTest(0);
  }

  // ---- queues ------------------------------------------------------------------------------

  #fetch(sq: Sq): void {
    const at = (sq.base >>> 2) + sq.head * 16;
    const cmd = this.#host32.slice(at, at + 16);
    if (++sq.head === sq.size) sq.head = 0;
    const opc = cmd[0] & 0xff, cid = cmd[0] >>> 16;
    Atomics.add(this.#ctl, Ctl.COUNTS + sq.qid * 256 + opc, 1);
    const rule = this.#match(sq.qid, cmd);
    if (rule) {
      switch (rule.action) {
        case "drop":
          this.#held.push({ qid: sq.qid, cid, cmd, due: Infinity });
          return;
        case "delay":
          this.#held.push({ qid: sq.qid, cid, cmd, due: performance.now() + (rule.delayMs ?? 10) });
          return;
        case "status": {
          const st = (rule.status ?? S.INTERNAL_ERROR) & 0x7ff;
          if ((st >>> 8) === 2) this.#smart.mediaErrors++;
          this.#complete(sq, cid, st | (rule.dnr ? DNR : 0), 0, cmd);
          return;
        }
        case "fatal":
          this.#goFatal();
          return;
        case "remove":
          Atomics.store(this.#ctl, Ctl.REMOVED, 1);
          this.stopped = true;
          return;
        case "bogus":
          this.#execBogus(sq, cid, cmd, rule.bogus ?? "unknown-cid");
          return;
      }
    }
    if (this.#latencyMs > 0 && (sq.qid !== 0 || this.#latencyAdmin)) {
      this.#held.push({ qid: sq.qid, cid, cmd, due: performance.now() + this.#latencyMs });
      return;
    }
    this.#exec(sq, cid, cmd);
  }

  #exec(sq: Sq, cid: number, cmd: Uint32Array): void {
    this.#dw0 = 0;
    const st = sq.qid === 0 ? this.#admin(cmd, sq) : this.#io(cmd);
    if (st < 0) return; // retained (Asynchronous Event Request)
    this.#complete(sq, cid, sfOf(st), this.#dw0, cmd);
  }

  #execBogus(sq: Sq, cid: number, cmd: Uint32Array, kind: string): void {
    const cq = this.#cqs.get(sq.cqid)!;
    this.#dw0 = 0;
    const st = sfOf(sq.qid === 0 ? this.#admin(cmd, sq) : this.#io(cmd));
    if (kind === "unknown-cid") this.#post(cq, 0, sq.head, sq.qid, cid ^ 0x8000, 0);
    if (kind === "wrong-sqid") this.#post(cq, 0, sq.head, (sq.qid + 1) & 0xffff, cid, 0);
    if (kind === "stale-phase") {
      cq.phase ^= 1;
      this.#post(cq, this.#dw0, sq.head, sq.qid, cid, st);
      cq.phase ^= 1;
      return;
    }
    this.#post(cq, this.#dw0, sq.head, sq.qid, cid, st);
    if (kind === "duplicate") this.#post(cq, this.#dw0, sq.head, sq.qid, cid, st);
  }

  #complete(sq: Sq, cid: number, sf: number, dw0: number, cmd: Uint32Array | null): void {
    const cq = this.#cqs.get(sq.cqid);
    if (!cq) return;
    if (sf & 0x7ff) this.#logError(sq.qid, cid, sf, cmd);
    this.#post(cq, dw0, sq.head, sq.qid, cid, sf);
  }

  #post(cq: Cq, dw0: number, sqhd: number, sqid: number, cid: number, sf: number): void {
    const head = Atomics.load(this.#db, 2 * cq.qid + 1);
    if (cq.backlog.length || (cq.tail + 1) % cq.size === head) {
      cq.backlog.push([dw0, sqhd, sqid, cid, sf]);
      return;
    }
    this.#write(cq, dw0, sqhd, sqid, cid, sf);
  }

  #write(cq: Cq, dw0: number, sqhd: number, sqid: number, cid: number, sf: number): void {
    const b = (cq.base >>> 2) + cq.tail * 4;
    const c = this.#host32;
    c[b] = dw0 >>> 0;
    c[b + 1] = 0;
    c[b + 2] = ((sqhd & 0xffff) | (sqid << 16)) >>> 0;
    // DW3 last and atomically: the host polls its phase bit with Atomics.load.
    Atomics.store(c, b + 3, ((cid & 0xffff) | (cq.phase << 16) | ((sf & 0x7fff) << 17)) >>> 0);
    if (++cq.tail === cq.size) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
    // MSI-X model: the CQE is visible before its interrupt, as on PCIe.
    const irq = this.#irq;
    if (irq && cq.iv !== undefined && IrqLayout.HEADER + cq.iv < irq.length) {
      Atomics.add(irq, IrqLayout.HEADER + cq.iv, 1);
      Atomics.notify(irq, IrqLayout.HEADER + cq.iv);
    }
  }

  #flushBacklog(cq: Cq): boolean {
    let did = false;
    while (cq.backlog.length) {
      const head = Atomics.load(this.#db, 2 * cq.qid + 1);
      if ((cq.tail + 1) % cq.size === head) break;
      const [dw0, sqhd, sqid, cid, sf] = cq.backlog.shift()!;
      this.#write(cq, dw0, sqhd, sqid, cid, sf);
      did = true;
    }
    return did;
  }

  #runDue(now: number): boolean {
    let did = false;
    for (let i = 0; i < this.#held.length; i++) {
      const h = this.#held[i];
      if (h.due > now) continue;
      this.#held.splice(i--, 1);
      const sq = this.#sqs.get(h.qid);
      if (sq) this.#exec(sq, h.cid, h.cmd);
      did = true;
    }
    return did;
  }

  #match(qid: number, cmd: Uint32Array): Rule | null {
    if (!this.#rules.length) return null;
    const opc = cmd[0] & 0xff, nsid = cmd[1];
    for (const r of this.#rules) {
      if (r.queue !== undefined) {
        if (r.queue === "admin" ? qid !== 0 : r.queue === "io" ? qid === 0 : qid !== r.queue) continue;
      }
      if (r.opcode !== undefined && r.opcode !== opc) continue;
      if (r.nsid !== undefined && r.nsid !== nsid) continue;
      if (r.lba) {
        if (qid === 0 || !this.#isRw(opc)) continue;
        const slba = cmd[10] + cmd[11] * TWO32, last = slba + (cmd[12] & 0xffff);
        if (last < r.lba[0] || slba > r.lba[1]) continue;
      }
      if (r.count !== undefined && --r.count <= 0) this.#rules.splice(this.#rules.indexOf(r), 1);
      return r;
    }
    return null;
  }

  #isRw(opc: number): boolean {
    return opc === IoOpc.READ || opc === IoOpc.WRITE || opc === IoOpc.COMPARE || opc === IoOpc.WRITE_ZEROES ||
      opc === IoOpc.VERIFY || opc === IoOpc.WRITE_UNCORRECTABLE;
  }

  #logError(qid: number, cid: number, sf: number, cmd: Uint32Array | null): void {
    const e = new Uint8Array(64);
    const dv = new DataView(e.buffer);
    this.#errorCount++;
    setU64(dv, 0, this.#errorCount);
    dv.setUint16(8, qid, true);
    dv.setUint16(10, cid, true);
    dv.setUint16(12, (sf & 0x7fff) << 1, true);
    dv.setUint16(14, 0xffff, true);
    if (cmd && qid !== 0 && this.#isRw(cmd[0] & 0xff)) setU64(dv, 16, cmd[10] + cmd[11] * TWO32);
    dv.setUint32(24, cmd ? cmd[1] : 0, true);
    this.#errors.unshift(e);
    if (this.#errors.length > 16) this.#errors.length = 16;
  }

  // ---- data transfer (PRP) -----------------------------------------------------------------

  /** Map `len` bytes described by the command's PRPs into host memory segments (#segs). */
  #prp(cmd: Uint32Array, len: number): number {
    const segs = this.#segs;
    segs.length = 0;
    if (len === 0) return 0;
    const ps = this.#pageSize;
    const prp1 = cmd[6] + cmd[7] * TWO32, prp2 = cmd[8] + cmd[9] * TWO32;
    if (prp1 % 4) return S.PRP_OFFSET_INVALID;
    const first = Math.min(len, ps - (prp1 % ps));
    if (!this.#seg(prp1, first)) return S.DATA_TRANSFER_ERROR;
    let rem = len - first;
    if (rem === 0) return 0;
    if (rem <= ps) {
      if (prp2 % ps) return S.PRP_OFFSET_INVALID;
      return this.#seg(prp2, rem) ? 0 : S.DATA_TRANSFER_ERROR;
    }
    if (prp2 % 8) return S.PRP_OFFSET_INVALID;
    let list = this.#off(prp2, 8);
    if (list < 0) return S.DATA_TRANSFER_ERROR;
    let left = (ps - (prp2 % ps)) / 8;
    const dv = this.#hostDv;
    while (rem > 0) {
      const e = dv.getUint32(list, true) + dv.getUint32(list + 4, true) * TWO32;
      if (left === 1 && rem > ps) {
        // Last entry of a full list page: it points at the next list page.
        if (e % 8) return S.PRP_OFFSET_INVALID;
        list = this.#off(e, 8);
        if (list < 0) return S.DATA_TRANSFER_ERROR;
        left = (ps - (e % ps)) / 8;
        continue;
      }
      if (e % ps) return S.PRP_OFFSET_INVALID;
      const n = Math.min(ps, rem);
      if (!this.#seg(e, n)) return S.DATA_TRANSFER_ERROR;
      rem -= n;
      list += 8;
      left--;
    }
    return 0;
  }

  #seg(iova: number, len: number): boolean {
    const o = this.#off(iova, len);
    if (o < 0) return false;
    const s = this.#segs;
    const k = s.length;
    if (k && s[k - 2] + s[k - 1] === o) s[k - 1] += len;
    else s.push(o, len);
    return true;
  }

  /** Gather the mapped host bytes into a new array. */
  #gather(len: number): Uint8Array {
    const out = new Uint8Array(len);
    let p = 0;
    const s = this.#segs;
    for (let i = 0; i < s.length; i += 2) {
      out.set(this.#hostU8.subarray(s[i], s[i] + s[i + 1]), p);
      p += s[i + 1];
    }
    return out;
  }

  /** Scatter `src` into the mapped host bytes. */
  #scatter(src: Uint8Array): void {
    let p = 0;
    const s = this.#segs;
    for (let i = 0; i < s.length && p < src.length; i += 2) {
      const n = Math.min(s[i + 1], src.length - p);
      this.#hostU8.set(src.subarray(p, p + n), s[i]);
      p += n;
    }
  }

  /** Controller-to-host transfer of a data structure of `len` bytes (the command's own length). */
  #toHost(cmd: Uint32Array, data: Uint8Array, len: number): number {
    if (len > this.#mdtsBytes()) return S.INVALID_FIELD;
    const st = this.#prp(cmd, len);
    if (st) return st;
    const buf = data.length >= len ? data.subarray(0, len) : (() => {
      const b = new Uint8Array(len);
      b.set(data);
      return b;
    })();
    this.#scatter(buf);
    return 0;
  }

  #fromHost(cmd: Uint32Array, len: number): Uint8Array | number {
    const st = this.#prp(cmd, len);
    if (st) return st;
    return this.#gather(len);
  }

  #mdtsBytes(): number {
    return this.#o.mdts === 0 ? Infinity : PAGE * 2 ** this.#o.mdts;
  }

  // ---- admin commands ----------------------------------------------------------------------

  #admin(cmd: Uint32Array, sq: Sq): number {
    const opc = cmd[0] & 0xff;
    if (this.#san.running && !SANITIZE_ALLOWED.has(opc)) return S.SANITIZE_IN_PROGRESS;
    switch (opc) {
      case AdminOpc.IDENTIFY:
        return this.#identify(cmd);
      case AdminOpc.CREATE_IO_CQ:
        return this.#createCq(cmd);
      case AdminOpc.CREATE_IO_SQ:
        return this.#createSq(cmd);
      case AdminOpc.DELETE_IO_SQ:
        return this.#deleteSq(cmd);
      case AdminOpc.DELETE_IO_CQ:
        return this.#deleteCq(cmd);
      case AdminOpc.GET_LOG_PAGE:
        return this.#getLog(cmd);
      case AdminOpc.SET_FEATURES:
        return this.#setFeature(cmd);
      case AdminOpc.GET_FEATURES:
        return this.#getFeature(cmd);
      case AdminOpc.ASYNC_EVENT_REQUEST:
        if (this.#aers.length > 3) return S.AER_LIMIT_EXCEEDED;
        this.#aers.push({ cid: cmd[0] >>> 16 });
        this.#deliverEvents(sq);
        return -1;
      case AdminOpc.ABORT:
        return this.#abort(cmd);
      case AdminOpc.FORMAT_NVM:
        return this.#format(cmd);
      case AdminOpc.DEVICE_SELF_TEST:
        return this.#selfTest(cmd);
      case AdminOpc.FW_IMAGE_DOWNLOAD:
        return this.#fwDownload(cmd);
      case AdminOpc.FW_COMMIT:
        return this.#fwCommit(cmd);
      case AdminOpc.SANITIZE:
        return this.#sanitize(cmd);
      case AdminOpc.NS_MANAGEMENT:
        return this.#nsMgmt(cmd);
      case AdminOpc.NS_ATTACHMENT:
        return this.#nsAttach(cmd);
      case AdminOpc.KEEP_ALIVE:
        return 0;
      default:
        return S.INVALID_OPCODE;
    }
  }

  #identify(cmd: Uint32Array): number {
    const cns = cmd[10] & 0xff, nsid = cmd[1];
    const d = new Uint8Array(4096);
    const dv = new DataView(d.buffer);
    switch (cns) {
      case Cns.CONTROLLER:
        this.#idCtrl(d, dv);
        break;
      case Cns.NAMESPACE:
      case SimCns.ALLOCATED_NS: {
        if (nsid === 0xffffffff) {
          this.#idNs(d, dv, null);
          break;
        }
        if (nsid === 0 || nsid > this.#o.maxNamespaces) return S.INVALID_NAMESPACE;
        const ns = this.#ns.get(nsid);
        if (ns && (ns.attached || cns === SimCns.ALLOCATED_NS)) this.#idNs(d, dv, ns);
        break;
      }
      case Cns.ACTIVE_NS_LIST:
      case SimCns.ALLOCATED_NS_LIST: {
        if (nsid >= 0xfffffffe) return S.INVALID_NAMESPACE;
        let i = 0;
        for (const id of [...this.#ns.keys()].sort((a, b) => a - b)) {
          const ns = this.#ns.get(id)!;
          if (id <= nsid || (cns === Cns.ACTIVE_NS_LIST && !ns.attached)) continue;
          if (i < 1024) dv.setUint32(4 * i++, id, true);
        }
        break;
      }
      case Cns.NS_DESCRIPTORS: {
        const ns = this.#ns.get(nsid);
        if (!ns || !ns.attached) return S.INVALID_NAMESPACE;
        d.set([1, 8, 0, 0], 0);
        d.set(ns.nguid.subarray(8, 16), 4);
        d.set([2, 16, 0, 0], 12);
        d.set(ns.nguid, 16);
        d.set([3, 16, 0, 0], 32);
        d.set(ns.nguid, 36);
        d[36 + 6] = (d[36 + 6] & 0x0f) | 0x40;
        d[36 + 8] = (d[36 + 8] & 0x3f) | 0x80;
        d.set([4, 1, 0, 0, 0], 52);
        break;
      }
      case SimCns.CSI_CTRL:
        break;
      case SimCns.NS_CTRL_LIST: {
        const ns = this.#ns.get(nsid);
        if (ns?.attached) {
          dv.setUint16(0, 1, true);
          dv.setUint16(2, 1, true);
        }
        break;
      }
      case SimCns.CTRL_LIST:
        dv.setUint16(0, 1, true);
        dv.setUint16(2, 1, true);
        break;
      default:
        return S.INVALID_FIELD;
    }
    return this.#toHost(cmd, d, 4096);
  }

  #idCtrl(d: Uint8Array, dv: DataView): void {
    const o = this.#o;
    dv.setUint16(0, 0x1d1d, true);
    dv.setUint16(2, 0x1d1d, true);
    padAscii(d, 4, 20, this.#serial);
    padAscii(d, 24, 40, o.model);
    padAscii(d, 64, 8, this.#fwSlots[this.#fwActive - 1]);
    d[72] = 6;
    d.set([0x53, 0x4e, 0x54], 73);
    d[77] = o.mdts;
    dv.setUint16(78, 1, true);
    dv.setUint32(80, 0x00010400, true);
    dv.setUint32(88, 1_000_000, true);
    dv.setUint32(92, 0x300, true);
    d[111] = 1;
    dv.setUint16(256, 0x1e, true);
    d[258] = 3;
    d[259] = 3;
    d[260] = (o.fwSlot1ReadOnly ? 1 : 0) | (o.fwSlots << 1) | 0x10;
    d[261] = 0x0e;
    d[262] = 15;
    d[263] = 0;
    dv.setUint16(266, 343, true);
    dv.setUint16(268, 373, true);
    setU64(dv, 280, this.#capacity);
    setU64(dv, 296, this.#capacity - this.#usedBytes());
    dv.setUint16(316, 1, true);
    d[319] = o.fwug;
    dv.setUint32(328, o.sanicap & 7, true);
    d[512] = 0x66;
    d[513] = 0x44;
    dv.setUint16(514, 0, true);
    dv.setUint32(516, o.maxNamespaces, true);
    dv.setUint16(520, 0x1dd, true);
    d[524] = 0x04;
    d[525] = o.vwc ? 0x07 : 0x06;
    dv.setUint16(534, 1, true);
    dv.setUint32(540, o.maxNamespaces, true);
    padAscii(d, 768, 256, `nqn.2024-01.io.tsnvme:sim:${this.#serial}`);
    for (let i = 768 + 255; i >= 768 && d[i] === 0x20; i--) d[i] = 0;
    dv.setUint16(2048, 2500, true);
  }

  #idNs(d: Uint8Array, dv: DataView, ns: Ns | null): void {
    d[25] = LBAF_DS.length - 1;
    for (let i = 0; i < LBAF_DS.length; i++) {
      d[128 + 4 * i + 2] = LBAF_DS[i];
      d[128 + 4 * i + 3] = LBAF_DS[i] === 12 ? 0 : 2;
    }
    d[33] = 0x09;
    dv.setUint16(74, 128, true);
    dv.setUint32(76, 1024, true);
    d[80] = 7;
    if (!ns) return;
    const blocks = this.#blocks(ns);
    setU64(dv, 0, blocks);
    setU64(dv, 8, blocks);
    setU64(dv, 16, blocks);
    d[26] = ns.lbaf;
    setU64(dv, 48, ns.media.size);
    d.set(ns.nguid, 104);
    d.set(ns.nguid.subarray(8, 16), 120);
  }

  #blocks(ns: Ns): number {
    return Math.floor(ns.media.size / (1 << LBAF_DS[ns.lbaf]));
  }

  #usedBytes(): number {
    let u = 0;
    for (const ns of this.#ns.values()) u += ns.media.size;
    return u;
  }

  #createCq(cmd: Uint32Array): number {
    const qid = cmd[10] & 0xffff, size = (cmd[10] >>> 16) + 1;
    const pc = cmd[11] & 1, iv = cmd[11] >>> 16;
    if (size < 2 || size > this.#o.maxQueueEntries) return S.INVALID_QUEUE_SIZE;
    if (qid === 0 || qid > this.#grantedQueues || this.#cqs.has(qid)) return S.INVALID_QID;
    if (!pc) return S.INVALID_FIELD;
    if (iv > this.#o.maxQueues) return S.INVALID_INTERRUPT_VECTOR;
    if (((this.#cc >>> 20) & 0xf) !== 4) return S.INVALID_FIELD;
    const prp1 = cmd[6] + cmd[7] * TWO32;
    if (prp1 % this.#pageSize) return S.PRP_OFFSET_INVALID;
    const base = this.#off(prp1, size * 16);
    if (base < 0) return S.DATA_TRANSFER_ERROR;
    Atomics.store(this.#db, 2 * qid + 1, 0);
    const iv0 = cmd[11] & 2 ? iv : undefined;
    this.#cqs.set(qid, { qid, base, size, tail: 0, phase: 1, sqs: 0, backlog: [], iv: iv0 });
    this.#ioQueuesCreated = true;
    return 0;
  }

  #createSq(cmd: Uint32Array): number {
    const qid = cmd[10] & 0xffff, size = (cmd[10] >>> 16) + 1;
    const pc = cmd[11] & 1, cqid = cmd[11] >>> 16;
    if (size < 2 || size > this.#o.maxQueueEntries) return S.INVALID_QUEUE_SIZE;
    const cq = this.#cqs.get(cqid);
    if (cqid === 0 || !cq) return S.CQ_INVALID;
    if (qid === 0 || qid > this.#grantedQueues || this.#sqs.has(qid)) return S.INVALID_QID;
    if (!pc) return S.INVALID_FIELD;
    if (((this.#cc >>> 16) & 0xf) !== 6) return S.INVALID_FIELD;
    const prp1 = cmd[6] + cmd[7] * TWO32;
    if (prp1 % this.#pageSize) return S.PRP_OFFSET_INVALID;
    const base = this.#off(prp1, size * 64);
    if (base < 0) return S.DATA_TRANSFER_ERROR;
    Atomics.store(this.#db, 2 * qid, 0);
    const sq = { qid, base, size, cqid, head: 0 };
    this.#sqs.set(qid, sq);
    this.#sqOrder.push(sq);
    cq.sqs++;
    this.#ioQueuesCreated = true;
    return 0;
  }

  #deleteSq(cmd: Uint32Array): number {
    const qid = cmd[10] & 0xffff;
    const sq = this.#sqs.get(qid);
    if (qid === 0 || !sq) return S.INVALID_QID;
    // Commands the device still holds for this queue complete as aborted by the deletion.
    for (const h of this.#held.filter((x) => x.qid === qid)) this.#complete(sq, h.cid, S.SQ_DELETION, 0, null);
    this.#held = this.#held.filter((x) => x.qid !== qid);
    this.#sqs.delete(qid);
    this.#sqOrder = this.#sqOrder.filter((x) => x !== sq);
    this.#cqs.get(sq.cqid)!.sqs--;
    return 0;
  }

  #deleteCq(cmd: Uint32Array): number {
    const qid = cmd[10] & 0xffff;
    const cq = this.#cqs.get(qid);
    if (qid === 0 || !cq) return S.INVALID_QID;
    if (cq.sqs > 0) return S.INVALID_QUEUE_DELETION;
    this.#cqs.delete(qid);
    return 0;
  }

  #abort(cmd: Uint32Array): number {
    const sqid = cmd[10] & 0xffff, cid = cmd[10] >>> 16;
    this.#dw0 = 1;
    const i = this.#held.findIndex((h) => h.qid === sqid && h.cid === cid);
    if (i >= 0) {
      const h = this.#held.splice(i, 1)[0];
      const sq = this.#sqs.get(sqid);
      if (sq) this.#complete(sq, cid, S.ABORT_REQUESTED, 0, h.cmd);
      this.#dw0 = 0;
      return 0;
    }
    if (sqid === 0) {
      const j = this.#aers.findIndex((a) => a.cid === cid);
      if (j >= 0) {
        this.#aers.splice(j, 1);
        this.#complete(this.#sqs.get(0)!, cid, S.ABORT_REQUESTED, 0, null);
        this.#dw0 = 0;
      }
    }
    return 0;
  }

  // ---- async events ------------------------------------------------------------------------

  /** Queue an event (type, info, log page) and complete an outstanding AER if one waits. */
  #raise(type: number, info: number, lid: number): void {
    const dw0 = (type & 7) | ((info & 0xff) << 8) | ((lid & 0xff) << 16);
    if (!this.#events.includes(dw0)) this.#events.push(dw0);
    const sq = this.#sqs.get(0);
    if (sq && this.#enabled) this.#deliverEvents(sq);
  }

  #deliverEvents(sq: Sq): void {
    for (let i = 0; i < this.#events.length && this.#aers.length;) {
      const ev = this.#events[i], lid = (ev >>> 16) & 0xff;
      if (this.#masked.has(lid)) {
        i++;
        continue;
      }
      this.#events.splice(i, 1);
      this.#masked.add(lid);
      const a = this.#aers.shift()!;
      this.#complete(sq, a.cid, 0, ev, null);
    }
  }

  #smartEvent(): void {
    const cw = this.#criticalWarning | this.#tempWarning();
    const enabled = this.#feat.get(Fid.ASYNC_EVENT)! & 0xff;
    if (cw & enabled) this.#raise(1, cw & 2 ? 1 : cw & 1 ? 2 : 0, LogId.SMART);
  }

  #tempWarning(): number {
    const over = this.#tempThresh.get(0) ?? 343, under = this.#tempThresh.get(0x100000) ?? 0;
    return TEMP_K > over || TEMP_K < under ? 2 : 0;
  }

  // ---- log pages ---------------------------------------------------------------------------

  #getLog(cmd: Uint32Array): number {
    const lid = cmd[10] & 0xff, rae = (cmd[10] >>> 15) & 1;
    const numd = (cmd[10] >>> 16) + (cmd[11] & 0xffff) * 65536 + 1;
    const len = numd * 4;
    const off = cmd[12] + cmd[13] * TWO32;
    const nsid = cmd[1];
    if (off % 4) return S.INVALID_FIELD;
    let log: Uint8Array;
    switch (lid) {
      case LogId.ERROR:
        log = new Uint8Array(16 * 64);
        this.#errors.forEach((e, i) => log.set(e, i * 64));
        break;
      case LogId.SMART:
        if (nsid !== 0 && nsid !== 0xffffffff) return S.INVALID_FIELD;
        log = this.#smartLog();
        break;
      case LogId.FW_SLOT: {
        log = new Uint8Array(512);
        log[0] = this.#fwActive | (this.#fwNext << 4);
        this.#fwSlots.forEach((s, i) => padAscii(log, 8 + 8 * i, 8, s));
        for (let i = 0; i < this.#fwSlots.length; i++) if (!this.#fwSlots[i]) log.fill(0, 8 + 8 * i, 16 + 8 * i);
        break;
      }
      case LogId.CHANGED_NS: {
        log = new Uint8Array(4096);
        const dv = new DataView(log.buffer);
        this.#changedNs.slice(0, 1024).forEach((id, i) => dv.setUint32(i * 4, id, true));
        if (!rae) this.#changedNs = [];
        break;
      }
      case LogId.CMD_EFFECTS:
        log = this.#effectsLog();
        break;
      case LogId.SELF_TEST: {
        log = new Uint8Array(564);
        log[0] = this.#dst.op;
        log[1] = this.#dst.op ? this.#dstPercent() : 0;
        for (let i = 0; i < 20; i++) {
          if (i < this.#dstLog.length) log.set(this.#dstLog[i], 4 + 28 * i);
          else log[4 + 28 * i] = 0x0f;
        }
        break;
      }
      case LogId.SANITIZE: {
        log = new Uint8Array(512);
        const dv = new DataView(log.buffer);
        const s = this.#san;
        dv.setUint16(0, s.running ? s.sprog : 0xffff, true);
        dv.setUint16(2, s.sstat, true);
        dv.setUint32(4, s.cdw10, true);
        const est = Math.max(1, Math.ceil(this.#o.sanitizeMs / 1000));
        dv.setUint32(8, this.#o.sanicap & 4 ? est : 0xffffffff, true);
        dv.setUint32(12, this.#o.sanicap & 2 ? est : 0xffffffff, true);
        dv.setUint32(16, this.#o.sanicap & 1 ? est : 0xffffffff, true);
        break;
      }
      default:
        return S.INVALID_LOG_PAGE;
    }
    if (off > log.length) return S.INVALID_FIELD;
    const out = new Uint8Array(len);
    out.set(log.subarray(off, Math.min(log.length, off + len)));
    const st = this.#toHost(cmd, out, len);
    if (!st && !rae) this.#masked.delete(lid);
    if (!st && !rae) this.#deliverEvents(this.#sqs.get(0)!);
    return st;
  }

  #smartLog(): Uint8Array {
    const log = new Uint8Array(512);
    const dv = new DataView(log.buffer);
    const s = this.#smart;
    log[0] = this.#criticalWarning | this.#tempWarning();
    dv.setUint16(1, TEMP_K, true);
    log[3] = 100;
    log[4] = 10;
    log[5] = 0;
    setU64(dv, 32, Math.ceil(s.unitsRead / 1000));
    setU64(dv, 48, Math.ceil(s.unitsWritten / 1000));
    setU64(dv, 64, s.reads);
    setU64(dv, 80, s.writes);
    setU64(dv, 112, s.powerCycles);
    setU64(dv, 144, s.unsafe);
    setU64(dv, 160, s.mediaErrors);
    setU64(dv, 176, this.#errorCount);
    dv.setUint16(200, TEMP_K, true);
    return log;
  }

  #effectsLog(): Uint8Array {
    const log = new Uint8Array(4096);
    const dv = new DataView(log.buffer);
    const admin: [number, number][] = [
      [AdminOpc.DELETE_IO_SQ, 1], [AdminOpc.CREATE_IO_SQ, 1], [AdminOpc.GET_LOG_PAGE, 1],
      [AdminOpc.DELETE_IO_CQ, 1], [AdminOpc.CREATE_IO_CQ, 1], [AdminOpc.IDENTIFY, 1], [AdminOpc.ABORT, 1],
      [AdminOpc.SET_FEATURES, 1], [AdminOpc.GET_FEATURES, 1], [AdminOpc.ASYNC_EVENT_REQUEST, 1],
      [AdminOpc.NS_MANAGEMENT, 0x1 | 0x2 | 0x4 | 0x8], [AdminOpc.FW_COMMIT, 0x1 | 0x10],
      [AdminOpc.FW_IMAGE_DOWNLOAD, 1], [AdminOpc.DEVICE_SELF_TEST, 1], [AdminOpc.NS_ATTACHMENT, 0x1 | 0x4 | 0x8],
      [AdminOpc.KEEP_ALIVE, 1], [AdminOpc.FORMAT_NVM, 0x1 | 0x2 | 0x4 | 0x8], [AdminOpc.SANITIZE, 0x1 | 0x2 | 0x4 | 0x8],
    ];
    for (const [opc, e] of admin) dv.setUint32(opc * 4, e, true);
    const io: [number, number][] = [
      [IoOpc.FLUSH, 1 | 2], [IoOpc.WRITE, 1 | 2], [IoOpc.READ, 1], [IoOpc.COMPARE, 1],
      [IoOpc.WRITE_ZEROES, 1 | 2], [IoOpc.DATASET_MANAGEMENT, 1 | 2], [IoOpc.VERIFY, 1], [IoOpc.COPY, 1 | 2],
    ];
    for (const [opc, e] of io) dv.setUint32(1024 + opc * 4, e, true);
    return log;
  }

  // ---- features ----------------------------------------------------------------------------

  #setFeature(cmd: Uint32Array): number {
    const fid = cmd[10] & 0xff, sv = cmd[10] >>> 31, v = cmd[11];
    switch (fid) {
      case Fid.NUM_QUEUES: {
        const nsq = (v & 0xffff) + 1, ncq = (v >>> 16) + 1;
        if (nsq === 0x10000 || ncq === 0x10000) return S.INVALID_FIELD;
        if (this.#ioQueuesCreated) return S.COMMAND_SEQUENCE_ERROR;
        this.#grantedQueues = Math.min(this.#o.maxQueues, Math.max(nsq, ncq));
        const g = Math.min(this.#o.maxQueues, nsq) - 1, h = Math.min(this.#o.maxQueues, ncq) - 1;
        this.#grantedQueues = Math.max(g, h) + 1;
        this.#dw0 = (g | (h << 16)) >>> 0;
        return 0;
      }
      case Fid.POWER_MGMT:
        if ((v & 0x1f) > 0) return S.INVALID_FIELD;
        break;
      case Fid.VOLATILE_WC:
        if (!this.#o.vwc) return S.INVALID_FIELD;
        break;
      case Fid.TEMP_THRESHOLD: {
        const sel = (v >>> 16) & 0xf, thsel = (v >>> 20) & 3;
        if (thsel > 1 || sel > 8) return S.INVALID_FIELD;
        if (sel === 0) this.#tempThresh.set(thsel << 20, v & 0xffff);
        if (this.#tempWarning()) this.#smartEvent();
        return 0;
      }
      case Fid.TIMESTAMP: {
        const d = this.#fromHost(cmd, 8);
        if (typeof d === "number") return d;
        const dv = new DataView(d.buffer);
        this.#timestampBase = dv.getUint32(0, true) + (dv.getUint16(4, true) * TWO32);
        this.#timestampSetAt = performance.now();
        this.#timestampOrigin = 1;
        return 0;
      }
      case Fid.HOST_BEHAVIOR: {
        const d = this.#fromHost(cmd, 512);
        if (typeof d === "number") return d;
        this.#hostBehavior = d;
        return 0;
      }
      case Fid.ARBITRATION:
      case Fid.ERROR_RECOVERY:
      case Fid.IRQ_COALESCING:
      case Fid.IRQ_CONFIG:
      case Fid.WRITE_ATOMICITY:
      case Fid.ASYNC_EVENT:
        break;
      default:
        return S.INVALID_FIELD;
    }
    this.#feat.set(fid, v);
    if (sv) this.#saved.set(fid, v);
    return 0;
  }

  #getFeature(cmd: Uint32Array): number {
    const fid = cmd[10] & 0xff, sel = (cmd[10] >>> 8) & 7;
    if (sel > 3) return S.INVALID_FIELD;
    if (sel === 3) {
      if (fid === Fid.NUM_QUEUES || fid === Fid.TIMESTAMP || fid === Fid.HOST_BEHAVIOR) this.#dw0 = 0x4;
      else if (fid in FEATURE_DEFAULTS || fid === Fid.TEMP_THRESHOLD) this.#dw0 = 0x5;
      else return S.INVALID_FIELD;
      return 0;
    }
    switch (fid) {
      case Fid.NUM_QUEUES: {
        const g = this.#grantedQueues - 1;
        this.#dw0 = (g | (g << 16)) >>> 0;
        return 0;
      }
      case Fid.TEMP_THRESHOLD: {
        const thsel = (cmd[11] >>> 20) & 3;
        const def = thsel === 0 ? 343 : 0;
        this.#dw0 = sel === 1 ? def : (this.#tempThresh.get(thsel << 20) ?? def);
        return 0;
      }
      case Fid.TIMESTAMP: {
        const d = new Uint8Array(8);
        const dv = new DataView(d.buffer);
        const ts = this.#timestampOrigin
          ? this.#timestampBase + Math.floor(performance.now() - this.#timestampSetAt)
          : Math.floor(performance.now());
        dv.setUint32(0, ts % TWO32, true);
        dv.setUint16(4, Math.floor(ts / TWO32), true);
        d[6] = this.#timestampOrigin << 1;
        return this.#toHost(cmd, d, 8);
      }
      case Fid.HOST_BEHAVIOR:
        return this.#toHost(cmd, this.#hostBehavior, 512);
    }
    if (!(fid in FEATURE_DEFAULTS)) return S.INVALID_FIELD;
    const def = fid === Fid.VOLATILE_WC && !this.#o.vwc ? 0 : FEATURE_DEFAULTS[fid];
    this.#dw0 = sel === 0 ? this.#feat.get(fid)! : sel === 1 ? def : (this.#saved.get(fid) ?? def);
    return 0;
  }

  // ---- format, self-test, firmware, sanitize, namespace management --------------------------

  #format(cmd: Uint32Array): number {
    const v = cmd[10], lbaf = (v & 0xf) | ((v >>> 8) & 0x30), mset = (v >>> 4) & 1, pi = (v >>> 5) & 7;
    const ses = (v >>> 9) & 7, nsid = cmd[1];
    if (ses > 2) return S.INVALID_FIELD;
    if (lbaf >= LBAF_DS.length || mset || pi) return S.INVALID_FORMAT;
    const targets = nsid === 0xffffffff ? [...this.#ns.values()].filter((n) => n.attached) : [this.#ns.get(nsid)];
    if (!targets.length || targets.some((n) => !n || !n.attached)) return S.INVALID_NAMESPACE;
    for (const ns of targets as Ns[]) {
      ns.lbaf = lbaf;
      ns.media.zero(0, ns.media.size);
    }
    return 0;
  }

  #dstPercent(): number {
    const d = this.#dst;
    return Math.min(99, Math.floor(((performance.now() - d.start) / Math.max(1, d.end - d.start)) * 100));
  }

  #selfTest(cmd: Uint32Array): number {
    const stc = cmd[10] & 0xf, nsid = cmd[1];
    if (stc === 0xf) {
      if (this.#dst.op) this.#finishSelfTest(1);
      return 0;
    }
    if (stc !== 1 && stc !== 2) return S.INVALID_FIELD;
    if (nsid !== 0 && nsid !== 0xffffffff && !this.#ns.get(nsid)?.attached) return S.INVALID_NAMESPACE;
    if (this.#dst.op) return S.SELF_TEST_IN_PROGRESS;
    const now = performance.now();
    this.#dst = { op: stc, nsid, start: now, end: now + this.#o.selfTestMs * stc };
    return 0;
  }

  /** result: 0 no error, 1 aborted by a Device Self-test command, 2 aborted by a controller reset. */
  #finishSelfTest(result: number): void {
    const e = new Uint8Array(28);
    const dv = new DataView(e.buffer);
    e[0] = (this.#dst.op << 4) | result;
    e[2] = 0;
    dv.setUint32(12, this.#dst.nsid, true);
    this.#dstLog.unshift(e);
    if (this.#dstLog.length > 20) this.#dstLog.length = 20;
    this.#dst = { op: 0, nsid: 0, start: 0, end: 0 };
  }

  #fwDownload(cmd: Uint32Array): number {
    const numd = cmd[10] + 1, ofst = cmd[11];
    const len = numd * 4, off = ofst * 4;
    const g = this.#o.fwug;
    if (g !== 0 && g !== 0xff && (len % (g * 4096) || off % (g * 4096))) return S.INVALID_FIELD;
    if (off < this.#fwImageLen && off !== 0) return S.OVERLAPPING_RANGE;
    if (off > this.#fwImageLen) return S.INVALID_FIELD;
    if (len > this.#mdtsBytes()) return S.INVALID_FIELD;
    const d = this.#fromHost(cmd, len);
    if (typeof d === "number") return d;
    if (off === 0) this.#fwImageLen = 0;
    if (this.#fwImage.length < off + len) {
      const n = new Uint8Array(Math.max(off + len, this.#fwImage.length * 2));
      n.set(this.#fwImage.subarray(0, this.#fwImageLen));
      this.#fwImage = n;
    }
    this.#fwImage.set(d, off);
    this.#fwImageLen = off + len;
    return 0;
  }

  #fwCommit(cmd: Uint32Array): number {
    const fs = cmd[10] & 7, ca = (cmd[10] >>> 3) & 7;
    if (ca > 3) return S.INVALID_FIELD;
    let slot = fs;
    if (slot === 0) {
      if (ca >= 2) slot = this.#fwActive;
      else {
        slot = this.#fwSlots.findIndex((s, i) => !s && !(i === 0 && this.#o.fwSlot1ReadOnly)) + 1;
        if (slot === 0) slot = this.#fwActive === this.#o.fwSlots ? (this.#o.fwSlot1ReadOnly ? 2 : 1) : this.#fwActive + 1;
      }
    }
    if (slot > this.#o.fwSlots) return S.INVALID_FW_SLOT;
    // 0 and 1 commit the downloaded image, 3 does when one was downloaded; 2 (and 3 without one) activate what the slot holds.
    if (ca < 2 || (ca === 3 && this.#fwImageLen > 0)) {
      if (slot === 1 && this.#o.fwSlot1ReadOnly) return S.INVALID_FW_SLOT;
      if (this.#fwImageLen === 0) return S.INVALID_FW_IMAGE;
      let rev = "";
      for (let i = 0; i < 8 && i < this.#fwImageLen; i++) {
        const c = this.#fwImage[i];
        if (c < 0x20 || c > 0x7e) break;
        rev += String.fromCharCode(c);
      }
      this.#fwSlots[slot - 1] = rev.trim() || `SIM${slot}`;
      this.#fwImageLen = 0;
    } else if (!this.#fwSlots[slot - 1]) return S.INVALID_FW_IMAGE;
    if (ca === 1 || ca === 2) this.#fwNext = slot === this.#fwActive ? 0 : slot;
    if (ca === 3) {
      this.#fwActive = slot;
      this.#fwNext = 0;
      if (this.#feat.get(Fid.ASYNC_EVENT)! & 0x200) this.#raise(2, 1, LogId.FW_SLOT);
    }
    return 0;
  }

  #sanitize(cmd: Uint32Array): number {
    const v = cmd[10], act = v & 7;
    const cap = this.#o.sanicap;
    if (this.#san.running) return S.SANITIZE_IN_PROGRESS;
    if (act === 1) {
      if ((this.#san.sstat & 7) === 3) this.#san.sstat = 0;
      return 0;
    }
    const need = act === 2 ? 2 : act === 3 ? 4 : act === 4 ? 1 : 0;
    if (!need || !(cap & need)) return S.INVALID_FIELD;
    if (this.#dst.op) this.#finishSelfTest(2);
    const now = performance.now();
    const owpass = (v >>> 4) & 0xf;
    this.#san = {
      sstat: 2,
      sprog: 0,
      cdw10: v,
      start: now,
      end: now + this.#o.sanitizeMs,
      running: true,
      action: act,
      pattern: cmd[11],
      passes: owpass === 0 ? 16 : owpass,
      invert: ((v >>> 8) & 1) === 1,
    };
    return 0;
  }

  #finishSanitize(): void {
    const s = this.#san;
    for (const ns of this.#ns.values()) {
      if (s.action === 3) {
        // The last pass decides what stays: inverted on even-numbered passes when OIPBP is set.
        const inv = s.invert && s.passes % 2 === 0;
        ns.media.fillPattern(inv ? ~s.pattern >>> 0 : s.pattern >>> 0);
      } else ns.media.zero(0, ns.media.size);
    }
    s.running = false;
    s.sprog = 0xffff;
    s.sstat = 1 | (s.action === 3 ? (Math.min(31, s.passes) << 3) : 0) | 0x100;
    this.#sanDone++;
    this.#raise(6, 1, LogId.SANITIZE);
  }

  #nsMgmt(cmd: Uint32Array): number {
    const sel = cmd[10] & 0xf;
    if (sel === 0) {
      const d = this.#fromHost(cmd, 4096);
      if (typeof d === "number") return d;
      const dv = new DataView(d.buffer);
      const nsze = dv.getUint32(0, true) + dv.getUint32(4, true) * TWO32;
      const ncap = dv.getUint32(8, true) + dv.getUint32(12, true) * TWO32;
      const flbas = d[26], lbaf = (flbas & 0xf) | ((flbas >>> 1) & 0x30);
      if (lbaf >= LBAF_DS.length || (flbas & 0x10)) return S.INVALID_FORMAT;
      if (nsze === 0 || ncap > nsze) return S.INVALID_FIELD;
      if (ncap !== nsze) return S.THIN_PROVISIONING_NOT_SUPPORTED;
      const bytes = nsze * (1 << LBAF_DS[lbaf]);
      if (bytes > this.#capacity - this.#usedBytes()) return S.NS_INSUFFICIENT_CAPACITY;
      let nsid = 0;
      for (let i = 1; i <= this.#o.maxNamespaces; i++) {
        if (!this.#ns.has(i)) {
          nsid = i;
          break;
        }
      }
      if (!nsid) return S.NS_ID_UNAVAILABLE;
      this.#ns.set(nsid, { nsid, media: new MemMedia(bytes), lbaf, attached: false, nguid: this.#nguid(nsid) });
      this.#dw0 = nsid;
      return 0;
    }
    if (sel === 1) {
      const nsid = cmd[1];
      const ids = nsid === 0xffffffff ? [...this.#ns.keys()] : [nsid];
      if (nsid !== 0xffffffff && !this.#ns.has(nsid)) return S.INVALID_NAMESPACE;
      for (const id of ids) {
        const ns = this.#ns.get(id)!;
        ns.media.close();
        this.#ns.delete(id);
        if (ns.attached) this.#nsChanged(id);
      }
      return 0;
    }
    return S.INVALID_FIELD;
  }

  #nsAttach(cmd: Uint32Array): number {
    const sel = cmd[10] & 0xf, nsid = cmd[1];
    if (sel > 1) return S.INVALID_FIELD;
    const ns = this.#ns.get(nsid);
    if (!ns) return S.INVALID_NAMESPACE;
    const d = this.#fromHost(cmd, 4096);
    if (typeof d === "number") return d;
    const dv = new DataView(d.buffer);
    const n = dv.getUint16(0, true);
    let ours = false;
    for (let i = 0; i < n && i < 2047; i++) if (dv.getUint16(2 + 2 * i, true) === 1) ours = true;
    if (!ours) return S.CONTROLLER_LIST_INVALID;
    if (sel === 0 && ns.attached) return S.NS_ALREADY_ATTACHED;
    if (sel === 1 && !ns.attached) return S.NS_NOT_ATTACHED;
    ns.attached = sel === 0;
    this.#nsChanged(nsid);
    return 0;
  }

  #nsChanged(nsid: number): void {
    if (!this.#changedNs.includes(nsid)) this.#changedNs.push(nsid);
    if (this.#feat.get(Fid.ASYNC_EVENT)! & 0x100) this.#raise(2, 0, LogId.CHANGED_NS);
  }

  // ---- IO commands -------------------------------------------------------------------------

  #io(cmd: Uint32Array): number {
    const opc = cmd[0] & 0xff, nsid = cmd[1];
    if (this.#san.running) return S.SANITIZE_IN_PROGRESS;
    if (opc === IoOpc.FLUSH) {
      if (nsid === 0xffffffff) return 0;
      return this.#ns.get(nsid)?.attached ? 0 : S.INVALID_NAMESPACE;
    }
    const ns = this.#ns.get(nsid);
    if (!IO_OPCODES.has(opc)) return S.INVALID_OPCODE;
    if (!ns || !ns.attached) return S.INVALID_NAMESPACE;
    const bs = 1 << LBAF_DS[ns.lbaf], blocks = this.#blocks(ns);
    const slba = cmd[10] + cmd[11] * TWO32, nlb = (cmd[12] & 0xffff) + 1;
    switch (opc) {
      case IoOpc.READ:
      case IoOpc.WRITE:
      case IoOpc.COMPARE: {
        if (slba + nlb > blocks) return S.LBA_OUT_OF_RANGE;
        const len = nlb * bs;
        if (len > this.#mdtsBytes()) return S.INVALID_FIELD;
        const st = this.#prp(cmd, len);
        if (st) return st;
        if (opc === IoOpc.WRITE) {
          this.#mediaWrite(ns, slba * bs);
          this.#smart.writes++;
          this.#smart.unitsWritten += len / 512;
          this.#san.sstat &= ~0x100;
          return 0;
        }
        if (opc === IoOpc.READ) {
          this.#mediaRead(ns, slba * bs);
          this.#smart.reads++;
          this.#smart.unitsRead += len / 512;
          return 0;
        }
        const host = this.#gather(len), media = new Uint8Array(len);
        ns.media.read(slba * bs, media);
        for (let i = 0; i < len; i++) if (host[i] !== media[i]) return S.COMPARE_FAILURE;
        return 0;
      }
      case IoOpc.WRITE_ZEROES:
        if (slba + nlb > blocks) return S.LBA_OUT_OF_RANGE;
        ns.media.zero(slba * bs, nlb * bs);
        return 0;
      case IoOpc.VERIFY:
        return slba + nlb > blocks ? S.LBA_OUT_OF_RANGE : 0;
      case IoOpc.DATASET_MANAGEMENT: {
        const nr = (cmd[10] & 0xff) + 1, ad = (cmd[11] >>> 2) & 1;
        const d = this.#fromHost(cmd, nr * 16);
        if (typeof d === "number") return d;
        const dv = new DataView(d.buffer);
        const ranges: [number, number][] = [];
        for (let i = 0; i < nr; i++) {
          const n = dv.getUint32(i * 16 + 4, true);
          const s = dv.getUint32(i * 16 + 8, true) + dv.getUint32(i * 16 + 12, true) * TWO32;
          if (s + n > blocks) return S.LBA_OUT_OF_RANGE;
          ranges.push([s, n]);
        }
        if (ad) for (const [s, n] of ranges) ns.media.zero(s * bs, n * bs);
        return 0;
      }
      case IoOpc.COPY: {
        const nr = (cmd[12] & 0xff) + 1, fmt = (cmd[12] >>> 8) & 0xf;
        if (fmt !== 0) return S.INVALID_FIELD;
        if (nr > 8) return S.COMMAND_SIZE_LIMIT_EXCEEDED;
        const d = this.#fromHost(cmd, nr * 32);
        if (typeof d === "number") return d;
        const dv = new DataView(d.buffer);
        const parts: Uint8Array[] = [];
        let total = 0;
        for (let i = 0; i < nr; i++) {
          const s = dv.getUint32(i * 32 + 8, true) + dv.getUint32(i * 32 + 12, true) * TWO32;
          const n = dv.getUint16(i * 32 + 16, true) + 1;
          if (n > 128) return S.COMMAND_SIZE_LIMIT_EXCEEDED;
          if (s + n > blocks) return S.LBA_OUT_OF_RANGE;
          total += n;
          if (total > 1024) return S.COMMAND_SIZE_LIMIT_EXCEEDED;
          const b = new Uint8Array(n * bs);
          ns.media.read(s * bs, b);
          parts.push(b);
        }
        if (slba + total > blocks) return S.LBA_OUT_OF_RANGE;
        let p = slba * bs;
        for (const b of parts) {
          ns.media.write(p, b);
          p += b.length;
        }
        return 0;
      }
    }
    return S.INVALID_OPCODE;
  }

  #mediaRead(ns: Ns, off: number): void {
    const s = this.#segs;
    for (let i = 0; i < s.length; i += 2) {
      ns.media.read(off, this.#hostU8.subarray(s[i], s[i] + s[i + 1]));
      off += s[i + 1];
    }
  }

  #mediaWrite(ns: Ns, off: number): void {
    const s = this.#segs;
    for (let i = 0; i < s.length; i += 2) {
      ns.media.write(off, this.#hostU8.subarray(s[i], s[i] + s[i + 1]));
      off += s[i + 1];
    }
  }

  // ---- requests from the host side (fault injection, inspection) ----------------------------

  /** Handle a request from SimTransport; returns a structured-clonable result. */
  request(op: string, arg: unknown): unknown {
    switch (op) {
      case "addFault": {
        const r = { ...(arg as FaultRule), id: this.#nextRule++ };
        this.#rules.push(r);
        return r.id;
      }
      case "removeFault":
        this.#rules = this.#rules.filter((r) => r.id !== arg);
        return null;
      case "clearFaults":
        this.#rules = [];
        this.#latencyMs = 0;
        return null;
      case "latency": {
        const a = arg as { ms: number; admin?: boolean };
        this.#latencyMs = a.ms;
        this.#latencyAdmin = a.admin ?? false;
        return null;
      }
      case "fatal":
        this.#goFatal();
        return null;
      case "smartWarning":
        this.#criticalWarning = (arg as number) & 0xff;
        this.#smartEvent();
        return null;
      case "release": {
        // Let held (dropped) commands run now.
        for (const h of this.#held) h.due = 0;
        return null;
      }
      case "state":
        return this.#state();
      case "close":
        for (const ns of this.#ns.values()) ns.media.close();
        this.stopped = true;
        return null;
    }
    throw new TypeError(`unknown request ${op}`);
  }

  #state(): SimState {
    const held: HeldCommand[] = this.#held.map((h) => ({ qid: h.qid, cid: h.cid, opcode: h.cmd[0] & 0xff, nsid: h.cmd[1] }));
    return {
      held,
      aers: this.#aers.length,
      faults: this.#rules.map((r) => ({ ...r })),
      namespaces: [...this.#ns.values()].sort((a, b) => a.nsid - b.nsid).map((n) => ({
        nsid: n.nsid,
        blocks: this.#blocks(n),
        blockSize: 1 << LBAF_DS[n.lbaf],
        attached: n.attached,
      })),
      firmware: { active: this.#fwActive, next: this.#fwNext, slots: [...this.#fwSlots] },
      sanitize: { sstat: this.#san.sstat, sprog: this.#san.running ? this.#san.sprog : 0xffff },
      selfTest: { op: this.#dst.op, percent: this.#dst.op ? this.#dstPercent() : 0 },
      enabled: this.#enabled,
      ready: (this.#csts & CSTS.RDY) !== 0,
      fatal: (this.#csts & CSTS.CFS) !== 0,
    };
  }
}

const SANITIZE_ALLOWED = new Set<number>([
  AdminOpc.DELETE_IO_SQ, AdminOpc.CREATE_IO_SQ, AdminOpc.GET_LOG_PAGE, AdminOpc.DELETE_IO_CQ, AdminOpc.CREATE_IO_CQ,
  AdminOpc.IDENTIFY, AdminOpc.ABORT, AdminOpc.SET_FEATURES, AdminOpc.GET_FEATURES, AdminOpc.ASYNC_EVENT_REQUEST,
  AdminOpc.KEEP_ALIVE, AdminOpc.SANITIZE,
]);

const IO_OPCODES = new Set<number>([
  IoOpc.READ, IoOpc.WRITE, IoOpc.COMPARE, IoOpc.WRITE_ZEROES, IoOpc.VERIFY, IoOpc.DATASET_MANAGEMENT, IoOpc.COPY,
]);
