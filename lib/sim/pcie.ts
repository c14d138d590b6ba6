/**
 * The software controller's PCIe front end: what a device does on the bus.
 * It runs in a Worker and sees host memory as a device does: SQEs, PRPs and
 * data are reached by IOVA in one SharedArrayBuffer (through the IOMMU
 * model), doorbells and registers in another. It fetches SQEs, walks PRPs
 * into host-memory segments (zero copy for the media), posts CQEs with phase
 * and backlog, signals the MSI-X model's wake words, creates and deletes IO
 * queues, and applies the fault-injection rules that act on rings (drop,
 * delay, status, bogus completions, fatal, removal). Command semantics are
 * lib/sim/engine.ts's {@link ControllerModel}; the host side is SimTransport.
 * @module
 */
import { AdminOpc, CSTS, Reg, STATUS_DNR } from "../nvme/spec.ts";
import { IrqLayout } from "../irq/waiter.ts";
import { ControllerModel, isRw, type ModelNamespace, PENDING } from "./engine.ts";
import { SimCmb } from "./cmb.ts";
import { SimVirt } from "./virt.ts";
import { VirtCns } from "../nvme/virt.ts";
import { SimDbbuf } from "./dbbuf.ts";
import { IdCtrlOffset } from "../nvme/identify.ts";
import { Cns } from "../nvme/spec.ts";
import { SglStatus } from "../nvme/sgl.ts";
import { Ctl, type FaultRule, type HeldCommand, SIM_DEFAULTS, type SimNamespaceOptions, type SimOptions, type SimState, SimStatus as S } from "./options.ts";
import { SharedMemMedia } from "./media.ts";
import { PrpPort } from "./prp.ts";
import { simSgls } from "./sgl.ts";
import { FWD_N, H, MB_N, MbKind, Q, QueueTable } from "./qthread.ts";

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
  /** Controller memory buffer (BAR2), when SimOptions.cmbBytes asked for one. */
  cmb?: SharedArrayBuffer;
  /** Serial number to report. */
  serial: string;
  /** The queue threads' table (lib/sim/qthread.ts), when SimOptions.threads > 0. */
  qtab?: SharedArrayBuffer;
}

interface Sq {
  qid: number;
  /** Memory the ring is in: host memory, or the CMB. */
  mem: Uint32Array;
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

interface Held {
  qid: number;
  cid: number;
  cmd: Uint32Array;
  due: number;
  /** An Abort may end it (false: a "delay" rule with abortable false). */
  abortable: boolean;
}

interface Rule extends FaultRule {
  id: number;
}

const PAGE = 4096;
const TWO32 = 0x1_0000_0000;
/** The model's namespaces when none are given (ControllerModel's default), so threads can share their media. */
const DEFAULT_NAMESPACES: SimNamespaceOptions[] = [{ size: 16 << 20, blockSize: 512 }, { size: 16 << 20, blockSize: 4096 }];
/** How often the device thread republishes the namespace table to queue threads without a reason to, ms. */
const PUBLISH_MS = 20;

/** The PCIe software controller: front end plus {@link ControllerModel}. Driven by the worker loop calling {@link step}. */
export class SimDevice {
  /** Set once the device stopped for good (surprise removal). */
  stopped = false;
  /** The command semantics behind this front end. */
  readonly model: ControllerModel;
  readonly #maxQueues: number;
  readonly #maxQueueEntries: number;
  /** MSI-X model's wake words (SimOptions.irq), or null. */
  readonly #irq: Int32Array | null;
  /** Host memory as dwords (the SGL walker reads segments through it). */
  readonly host32: Uint32Array;
  readonly #hostSize: number;
  readonly #base: number;
  readonly #regs: Uint32Array;
  readonly #db: Uint32Array;
  /** The doorbells as Int32: a queue thread serving one queue sleeps on its SQ tail doorbell (lib/sim/qthread.ts). */
  readonly #db32: Int32Array;
  readonly #ctl: Int32Array;
  readonly #iommu: Uint8Array | null;
  readonly #port: PrpPort;
  readonly #dbbuf: SimDbbuf;
  readonly #dbbufOffered: boolean;
  readonly #cmb: SimCmb | null;
  readonly #virt: SimVirt | null;
  #cc = 0;
  #dw0 = 0;
  /** DW1 of the completion being posted (Zone Append's LBA, high half); 0 otherwise. */
  #dw1 = 0;
  readonly #sqs = new Map<number, Sq>();
  readonly #cqs = new Map<number, Cq>();
  #sqOrder: Sq[] = [];
  #held: Held[] = [];
  #rules: Rule[] = [];
  #nextRule = 1;
  #latencyMs: number;
  #latencyAdmin = false;
  /** Queue threads' table, or null when this thread serves every queue. */
  readonly #qt: QueueTable | null;
  readonly #threads: number;
  /** Media the queue threads serve too (by index). */
  readonly #shared: SharedMemMedia[] = [];
  /** Completions waiting for room in a queue's mailbox. */
  readonly #mbWait = new Map<number, number[][]>();
  #published = { run: -1, fast: -1, at: -Infinity, dirty: true };
  readonly #folded = [0, 0, 0, 0];

  /** Build the device over the shared areas; writes CAP and VS. */
  constructor(init: SimInit) {
    const o = init.opts;
    this.#maxQueues = o.maxQueues ?? SIM_DEFAULTS.maxQueues;
    this.#maxQueueEntries = o.maxQueueEntries ?? SIM_DEFAULTS.maxQueueEntries;
    this.#irq = o.irq ? new Int32Array(o.irq) : null;
    this.host32 = new Uint32Array(init.host);
    this.#hostSize = init.host.byteLength;
    this.#base = o.iovaBase ?? SIM_DEFAULTS.iovaBase;
    this.#regs = new Uint32Array(init.regs, 0, 0x1000 / 4);
    this.#db = new Uint32Array(init.regs, 0x1000, 2 * (this.#maxQueues + 1));
    this.#db32 = new Int32Array(init.regs, 0x1000, 2 * (this.#maxQueues + 1));
    this.#ctl = new Int32Array(init.ctl);
    this.#iommu = init.iommu ? new Uint8Array(init.iommu) : null;
    this.#latencyMs = o.latencyMs ?? SIM_DEFAULTS.latencyMs;
    this.#port = new PrpPort(this, new Uint8Array(init.host), new DataView(init.host));
    this.#port.sgls = simSgls(o.sgl);
    this.#dbbuf = new SimDbbuf(this.host32);
    this.#cmb = init.cmb ? new SimCmb(init.cmb, this.#regs) : null;
    this.#virt = o.sriovVfs ? new SimVirt(1, o.sriovVfs) : null;
    // Queue threads (SimOptions.threads) watch the MMIO doorbells only, so shadow doorbells are not offered with them.
    const dbbuf = this.#dbbufOffered = o.shadowDoorbells !== false && !(o.threads ?? 0);
    this.#threads = o.threads ?? 0;
    this.#qt = this.#threads > 0 && init.qtab
      ? new QueueTable(init.qtab, this.#maxQueues, o.maxNamespaces ?? SIM_DEFAULTS.maxNamespaces, this.#threads)
      : null;
    const { irq: _irq, memoryBytes: _m, iovaBase: _i, latencyMs: _l, sgl: _s, shadowDoorbells: _d, cmbBytes: _c, sriovVfs: _v, threads: _t, namespaces: nss, ...modelOpts } = o;
    let namespaces: (SimNamespaceOptions | ModelNamespace)[] | undefined = nss;
    if (this.#qt) {
      // Memory-backed namespaces live in shared memory, so queue threads read and write them too.
      namespaces = (nss ?? DEFAULT_NAMESPACES).map((n): SimNamespaceOptions | ModelNamespace => {
        if (n.path || n.zoned || n.fdpRuhs) return n; // zones and placement live in the model
        const bs = n.blockSize ?? 512;
        const media = new SharedMemMedia(Math.floor(n.size / bs) * bs);
        this.#shared.push(media);
        return { media, blockSize: bs };
      });
    }
    this.model = new ControllerModel({ ...modelOpts, namespaces, serial: init.serial }, {
      complete: (qid, cid, sf, dw0) => {
        const sq = this.#sqs.get(qid);
        if (sq) this.#postFor(sq, cid, sf, dw0);
      },
      enable: (cc) => this.#enable(cc),
      reset: () => this.#reset(),
      csts: (v) => Atomics.store(this.#regs, Reg.CSTS / 4, v),
      abort: (sqid, cid) => this.#abortHeld(sqid, cid),
      identify: (cns, _nsid, d) => {
        if (cns !== Cns.CONTROLLER) return;
        const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
        dv.setUint32(IdCtrlOffset.SGLS, this.#port.sgls, true);
        if (dbbuf) dv.setUint16(IdCtrlOffset.OACS, dv.getUint16(IdCtrlOffset.OACS, true) | 0x100, true);
        if (this.#virt) dv.setUint16(IdCtrlOffset.OACS, dv.getUint16(IdCtrlOffset.OACS, true) | 0x80, true);
      },
    });
    // CAP: MQES, CQR=1, AMS=0, TO (500 ms units), DSTRD=0, NSSRS=0, CSS=NVM, MPSMIN=MPSMAX=0 (4 KiB).
    const to = Math.max(1, Math.ceil((this.model.options.readyDelayMs + 500) / 500));
    this.#regs[Reg.CAP / 4] = ((this.#maxQueueEntries - 1) & 0xffff) | (1 << 16) | ((to & 0xff) << 24);
    this.#regs[Reg.CAP / 4 + 1] = ((1 << 5) | (this.#cmb ? SimCmb.CAP_HI_CMBS : 0)) >>> 0;
    Atomics.store(this.#regs, Reg.VS / 4, 0x00010400);
    if (this.#qt) {
      const mdts = this.model.options.mdts;
      this.#qt.i32[H.MDTS] = mdts === 0 || PAGE * 2 ** mdts > 0x7fff_ffff ? 0 : PAGE * 2 ** mdts;
      this.#qt.i32[H.PAGE_SHIFT] = 12;
    }
  }

  /** Shared media of the namespaces the queue threads serve (handed to them by the worker). */
  get sharedMedia(): SharedArrayBuffer[] {
    return this.#shared.map((m) => m.sab);
  }

  // ---- registers and the main loop --------------------------------------------------------

  /** Do one round of work; true when something happened (the loop keeps spinning). */
  step(): boolean {
    if (this.stopped) return false;
    if (Atomics.load(this.#ctl, Ctl.REMOVED)) {
      this.stopped = true;
      return false;
    }
    let did = false;
    const m = this.model;
    const cc = Atomics.load(this.#regs, Reg.CC / 4);
    if (cc !== this.#cc) {
      this.#cc = cc;
      m.setCc(cc);
      did = true;
    }
    this.#cmb?.step();
    const now = performance.now();
    did = m.tick(now) || did;
    if (this.#qt) this.#publish(now);
    if (!m.enabled || m.failed || !m.ready) return did;
    if (this.#held.length) did = this.#runDue(now) || did;
    for (const cq of this.#cqs.values()) if (cq.backlog.length) did = this.#flushBacklog(cq) || did;
    if (this.#qt) {
      if (this.#mbWait.size) did = this.#flushMail() || did;
      for (const sq of this.#sqs.values()) if (sq.qid !== 0) did = this.#drainForwarded(sq) || did;
    }
    for (let i = 0; i < this.#sqOrder.length; i++) {
      const sq = this.#sqOrder[i];
      let n = 0;
      while (n < 64 && !m.failed && !this.stopped) {
        const tail = this.#dbbuf.sqTail(sq.qid, Atomics.load(this.#db, 2 * sq.qid));
        if (tail === sq.head || tail >= sq.size) break;
        const cq = this.#cqs.get(sq.cqid);
        if (!cq || cq.backlog.length > cq.size) break;
        this.#fetch(sq);
        n++;
      }
      if (n) {
        did = true;
        this.#dbbuf.sqSeen(sq.qid, sq.head);
        if (sq.qid === 0) this.#published.dirty = true; // an admin command may have changed what the fast path may serve
      }
      if (this.#sqOrder[i] !== sq) i--; // the queue list changed under us (delete)
    }
    return did;
  }

  /** CC.EN 0 to 1: check the admin queue registers and set up the admin queue pair. */
  #enable(cc: number): boolean {
    const aqa = this.#regs[Reg.AQA / 4];
    const asqs = (aqa & 0xfff) + 1, acqs = ((aqa >>> 16) & 0xfff) + 1;
    const asq = this.#regs[Reg.ASQ / 4] + this.#regs[Reg.ASQ / 4 + 1] * TWO32;
    const acq = this.#regs[Reg.ACQ / 4] + this.#regs[Reg.ACQ / 4 + 1] * TWO32;
    this.#port.pageSize = PAGE << ((cc >>> 7) & 0xf);
    if (this.#qt) this.#qt.i32[H.PAGE_SHIFT] = 12 + ((cc >>> 7) & 0xf);
    const sqOff = this.off(asq, asqs * 64), cqOff = this.off(acq, acqs * 16);
    if (asqs < 2 || acqs < 2 || sqOff < 0 || cqOff < 0 || asq % PAGE || acq % PAGE) return false;
    this.#cqs.set(0, { qid: 0, base: cqOff, size: acqs, tail: 0, phase: 1, sqs: 1, backlog: [], iv: 0 });
    this.#sqs.set(0, { qid: 0, mem: this.host32, base: sqOff, size: asqs, cqid: 0, head: 0 });
    this.#sqOrder = [this.#sqs.get(0)!];
    return true;
  }

  /** CC.EN 1 to 0: every queue and held command goes. */
  #reset(): void {
    // Queue threads let their queues go, posting nothing more, before the doorbells change under them.
    if (this.#qt) {
      for (const sq of this.#sqs.values()) if (sq.qid !== 0) this.#stopQueue(sq.qid, false);
      this.#mbWait.clear();
    }
    // Doorbells are controller registers: a reset returns them to 0, or stale tails would replay old entries.
    for (let i = 0; i < this.#db.length; i++) Atomics.store(this.#db, i, 0);
    this.#dbbuf.reset();
    this.#sqs.clear();
    this.#cqs.clear();
    this.#sqOrder = [];
    this.#held = [];
  }

  /**
   * Offset in host memory of `len` bytes at `iova`, or -1 when outside it or
   * not mapped: like an IOMMU, DMA to memory the host has unmapped is refused
   * (and counted, so tests catch stale DMA) instead of touching it.
   */
  off(iova: number, len: number): number {
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

  // ---- queues ------------------------------------------------------------------------------

  #fetch(sq: Sq): void {
    const at = (sq.base >>> 2) + sq.head * 16;
    const cmd = sq.mem.slice(at, at + 16);
    if (++sq.head === sq.size) sq.head = 0;
    Atomics.add(this.#ctl, Ctl.COUNTS + sq.qid * 256 + (cmd[0] & 0xff), 1);
    this.#handle(sq, cmd);
  }

  /** A fetched command (or one a queue thread forwarded): fault rules, added latency, then the model. */
  #handle(sq: Sq, cmd: Uint32Array): void {
    const cid = cmd[0] >>> 16;
    const rule = this.#match(sq.qid, cmd);
    if (rule) {
      switch (rule.action) {
        case "drop":
          this.#held.push({ qid: sq.qid, cid, cmd, due: Infinity, abortable: true });
          return;
        case "delay":
          this.#held.push({ qid: sq.qid, cid, cmd, due: performance.now() + (rule.delayMs ?? 10), abortable: rule.abortable !== false });
          return;
        case "status": {
          const st = (rule.status ?? S.INTERNAL_ERROR) & 0x7ff;
          if ((st >>> 8) === 2) this.model.noteMediaError();
          this.#complete(sq, cid, st | (rule.dnr ? STATUS_DNR : 0), cmd);
          return;
        }
        case "fatal":
          this.model.fail();
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
      this.#held.push({ qid: sq.qid, cid, cmd, due: performance.now() + this.#latencyMs, abortable: true });
      return;
    }
    this.#exec(sq, cid, cmd);
  }

  /** Queue commands are the front end's; everything else is the model's. Sets #dw0. */
  #run(sq: Sq, cmd: Uint32Array): number {
    this.#port.admin = sq.qid === 0;
    if (sq.qid === 0 && this.#virt) {
      const st = this.#virtCommand(this.#virt, cmd);
      if (st >= 0) {
        if (st & 0x7ff) this.model.logError(0, cmd[0] >>> 16, st, cmd);
        return st;
      }
    }
    if (sq.qid === 0) {
      const st = this.#queueCommand(cmd);
      if (st >= 0) {
        if (st & 0x7ff) this.model.logError(0, cmd[0] >>> 16, st, cmd);
        this.#dw0 = 0;
        return st;
      }
    }
    const sf = this.model.execute(sq.qid, cmd, this.#port);
    this.#dw0 = this.model.dw0;
    return sf;
  }

  #exec(sq: Sq, cid: number, cmd: Uint32Array): void {
    const sf = this.#run(sq, cmd);
    if (sf === PENDING) return; // completes through the model's callback
    this.#dw1 = this.model.dw1;
    this.#postFor(sq, cid, sf, this.#dw0);
    this.#dw1 = 0;
  }

  #execBogus(sq: Sq, cid: number, cmd: Uint32Array, kind: string): void {
    const cq = this.#cqs.get(sq.cqid)!;
    const st = this.#run(sq, cmd);
    if (st === PENDING) return;
    const dw0 = this.#dw0;
    if (this.#qt && sq.qid !== 0) {
      const k = kind === "unknown-cid"
        ? MbKind.UNKNOWN_CID
        : kind === "wrong-sqid"
        ? MbKind.WRONG_SQID
        : kind === "stale-phase"
        ? MbKind.STALE_PHASE
        : kind === "duplicate"
        ? MbKind.DUPLICATE
        : MbKind.PLAIN;
      this.#mail(sq.qid, cid, st, dw0, k);
      return;
    }
    if (kind === "unknown-cid") this.#post(cq, 0, sq.head, sq.qid, cid ^ 0x8000, 0);
    if (kind === "wrong-sqid") this.#post(cq, 0, sq.head, (sq.qid + 1) & 0xffff, cid, 0);
    if (kind === "stale-phase") {
      cq.phase ^= 1;
      this.#post(cq, dw0, sq.head, sq.qid, cid, st);
      cq.phase ^= 1;
      return;
    }
    this.#post(cq, dw0, sq.head, sq.qid, cid, st);
    if (kind === "duplicate") this.#post(cq, dw0, sq.head, sq.qid, cid, st);
  }

  /** Complete a command the front end finishes itself (fault rules, deletion, abort): logged as an error when it is one. */
  #complete(sq: Sq, cid: number, sf: number, cmd: Uint32Array | null): void {
    if (sf & 0x7ff) this.model.logError(sq.qid, cid, sf, cmd);
    this.#postFor(sq, cid, sf, 0);
  }

  #postFor(sq: Sq, cid: number, sf: number, dw0: number): void {
    // An IO queue a thread serves: only that thread writes its CQ.
    if (this.#qt && sq.qid !== 0) return this.#mail(sq.qid, cid, sf, dw0, MbKind.PLAIN);
    const cq = this.#cqs.get(sq.cqid);
    if (cq) this.#post(cq, dw0, sq.head, sq.qid, cid, sf);
  }

  #post(cq: Cq, dw0: number, sqhd: number, sqid: number, cid: number, sf: number): void {
    const head = this.#dbbuf.cqHead(cq.qid, Atomics.load(this.#db, 2 * cq.qid + 1));
    if (cq.backlog.length || (cq.tail + 1) % cq.size === head) {
      cq.backlog.push([dw0, sqhd, sqid, cid, sf, this.#dw1]);
      return;
    }
    this.#write(cq, dw0, sqhd, sqid, cid, sf);
  }

  #write(cq: Cq, dw0: number, sqhd: number, sqid: number, cid: number, sf: number, dw1 = this.#dw1): void {
    const b = (cq.base >>> 2) + cq.tail * 4;
    const c = this.host32;
    c[b] = dw0 >>> 0;
    c[b + 1] = dw1 >>> 0;
    c[b + 2] = ((sqhd & 0xffff) | (sqid << 16)) >>> 0;
    // DW3 last and atomically: the host polls its phase bit (pollLoad32).
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
      const head = this.#dbbuf.cqHead(cq.qid, Atomics.load(this.#db, 2 * cq.qid + 1));
      if ((cq.tail + 1) % cq.size === head) break;
      const [dw0, sqhd, sqid, cid, sf, dw1] = cq.backlog.shift()!;
      this.#write(cq, dw0, sqhd, sqid, cid, sf, dw1);
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

  #abortHeld(sqid: number, cid: number): boolean {
    const i = this.#held.findIndex((h) => h.qid === sqid && h.cid === cid && h.abortable);
    if (i < 0) return false;
    const h = this.#held.splice(i, 1)[0];
    const sq = this.#sqs.get(sqid);
    if (sq) this.#complete(sq, cid, S.ABORT_REQUESTED, h.cmd);
    return true;
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
        if (qid === 0 || !isRw(opc)) continue;
        const slba = cmd[10] + cmd[11] * TWO32, last = slba + (cmd[12] & 0xffff);
        if (last < r.lba[0] || slba > r.lba[1]) continue;
      }
      if (r.count !== undefined && --r.count <= 0) this.#rules.splice(this.#rules.indexOf(r), 1);
      return r;
    }
    return null;
  }

  // ---- Create/Delete IO queues -------------------------------------------------------------

  /** SR-IOV admin commands (Identify CNS 14h/15h, Virtualization Management): status, or -1 when not one. Sets #dw0. */
  #virtCommand(v: SimVirt, cmd: Uint32Array): number {
    const opc = cmd[0] & 0xff;
    this.#dw0 = 0;
    if (opc === AdminOpc.VIRTUALIZATION_MGMT) {
      const out = [0];
      const st = v.manage(cmd[10], cmd[11], out);
      this.#dw0 = out[0];
      return st ? st | STATUS_DNR : 0;
    }
    const cns = cmd[10] & 0xff;
    if (opc !== AdminOpc.IDENTIFY || (cns !== VirtCns.PRIMARY_CTRL_CAPS && cns !== VirtCns.SECONDARY_CTRL_LIST)) return -1;
    const d = new Uint8Array(4096);
    if (cns === VirtCns.PRIMARY_CTRL_CAPS) v.primaryCaps(d);
    else v.secondaryList(d, cmd[10] >>> 16);
    const st = this.#port.map(cmd, 4096);
    if (st) return st | STATUS_DNR;
    for (let i = 0, p = 0; i < this.#port.count; i++) {
      const seg = this.#port.segment(i);
      seg.set(d.subarray(p, p + seg.length));
      p += seg.length;
    }
    return 0;
  }

  /** A queue command's status field, or -1 for commands that are not queue commands. */
  #queueCommand(cmd: Uint32Array): number {
    const opc = cmd[0] & 0xff;
    let st: number;
    switch (opc) {
      case AdminOpc.CREATE_IO_CQ:
        st = this.#createCq(cmd);
        break;
      case AdminOpc.CREATE_IO_SQ:
        st = this.#createSq(cmd);
        break;
      case AdminOpc.DELETE_IO_SQ:
        st = this.#deleteSq(cmd);
        break;
      case AdminOpc.DELETE_IO_CQ:
        st = this.#deleteCq(cmd);
        break;
      case AdminOpc.DOORBELL_BUFFER_CONFIG:
        if (!this.#dbbufOffered) return -1;
        st = this.#dbbuf.config(cmd, this.#port.pageSize, this.#db.byteLength, (iova, len) => this.off(iova, len));
        break;
      default:
        return -1;
    }
    return st ? st | STATUS_DNR : 0;
  }

  #createCq(cmd: Uint32Array): number {
    const qid = cmd[10] & 0xffff, size = (cmd[10] >>> 16) + 1;
    const pc = cmd[11] & 1, iv = cmd[11] >>> 16;
    if (size < 2 || size > this.#maxQueueEntries) return S.INVALID_QUEUE_SIZE;
    if (qid === 0 || qid > this.model.grantedQueues || this.#cqs.has(qid)) return S.INVALID_QID;
    if (!pc) return S.INVALID_FIELD;
    if (iv > this.#maxQueues) return S.INVALID_INTERRUPT_VECTOR;
    if (((this.#cc >>> 20) & 0xf) !== 4) return S.INVALID_FIELD;
    const prp1 = cmd[6] + cmd[7] * TWO32;
    if (prp1 % this.#port.pageSize) return S.PRP_OFFSET_INVALID;
    // CMBSZ offers SQs only: a CQ there is an invalid use of the CMB.
    this.#cmb?.step();
    if (this.#cmb?.contains(prp1, size * 16)) return SglStatus.INVALID_CMB_USE;
    const base = this.off(prp1, size * 16);
    if (base < 0) return S.DATA_TRANSFER_ERROR;
    Atomics.store(this.#db, 2 * qid + 1, 0);
    const iv0 = cmd[11] & 2 ? iv : undefined;
    this.#cqs.set(qid, { qid, base, size, tail: 0, phase: 1, sqs: 0, backlog: [], iv: iv0 });
    if (this.#qt) {
      const w = this.#qt.i32, e = this.#qt.q(qid);
      w[e + Q.CQ_BASE] = base;
      w[e + Q.CQ_SIZE] = size;
      w[e + Q.IV] = iv0 ?? -1;
      w[e + Q.CQ_TAIL] = 0;
      w[e + Q.CQ_PHASE] = 1;
    }
    this.model.noteIoQueueCreated();
    return 0;
  }

  #createSq(cmd: Uint32Array): number {
    const qid = cmd[10] & 0xffff, size = (cmd[10] >>> 16) + 1;
    const pc = cmd[11] & 1, cqid = cmd[11] >>> 16;
    if (size < 2 || size > this.#maxQueueEntries) return S.INVALID_QUEUE_SIZE;
    const cq = this.#cqs.get(cqid);
    if (cqid === 0 || !cq) return S.CQ_INVALID;
    if (qid === 0 || qid > this.model.grantedQueues || this.#sqs.has(qid)) return S.INVALID_QID;
    if (!pc) return S.INVALID_FIELD;
    if (((this.#cc >>> 16) & 0xf) !== 6) return S.INVALID_FIELD;
    const prp1 = cmd[6] + cmd[7] * TWO32;
    if (prp1 % this.#port.pageSize) return S.PRP_OFFSET_INVALID;
    this.#cmb?.step(); // CMBMSC may have been written just before this command
    const inCmb = this.#cmb?.offset(prp1, size * 64) ?? -1;
    if (inCmb === -2) return SglStatus.INVALID_CMB_USE; // starts in the CMB, runs past its end
    const base = inCmb >= 0 ? inCmb : this.off(prp1, size * 64);
    if (base < 0) return S.DATA_TRANSFER_ERROR;
    Atomics.store(this.#db, 2 * qid, 0);
    const sq = { qid, mem: inCmb >= 0 ? this.#cmb!.u32 : this.host32, base, size, cqid, head: 0 };
    this.#sqs.set(qid, sq);
    cq.sqs++;
    if (this.#qt) {
      // Its thread takes it from here: it watches the doorbell, this thread sees only what it forwards.
      const w = this.#qt.i32, e = this.#qt.q(qid);
      w[e + Q.OWNER] = (cqid - 1) % this.#threads;
      w[e + Q.SQ_BASE] = base;
      w[e + Q.SQ_SIZE] = size;
      w[e + Q.CQID] = cqid;
      w[e + Q.FWD_HEAD] = w[e + Q.FWD_TAIL] = w[e + Q.MB_HEAD] = w[e + Q.MB_TAIL] = 0;
      w[e + Q.EPOCH] = (w[e + Q.EPOCH] + 1) | 0;
      Atomics.store(w, e + Q.STATE, 1);
      // Its thread may sleep on the doorbell of another queue it serves: wake it there too.
      const owner = w[e + Q.OWNER];
      for (let k = 1; k <= this.#maxQueues; k++) {
        const f = this.#qt.q(k);
        if (Atomics.load(w, f + Q.STATE) !== 0 && w[f + Q.OWNER] === owner) Atomics.notify(this.#db32, 2 * k);
      }
      Atomics.notify(w, H.WAKE + owner);
    } else this.#sqOrder.push(sq);
    this.model.noteIoQueueCreated();
    return 0;
  }

  #deleteSq(cmd: Uint32Array): number {
    const qid = cmd[10] & 0xffff;
    const sq = this.#sqs.get(qid);
    if (qid === 0 || !sq) return S.INVALID_QID;
    // Its thread stops fetching; what it forwarded and this thread has not run yet is aborted by the deletion.
    if (this.#qt) this.#quiesce(sq);
    // Commands the device still holds for this queue complete as aborted by the deletion.
    for (const h of this.#held.filter((x) => x.qid === qid)) this.#complete(sq, h.cid, S.SQ_DELETION, null);
    this.#held = this.#held.filter((x) => x.qid !== qid);
    this.#sqs.delete(qid);
    this.#sqOrder = this.#sqOrder.filter((x) => x !== sq);
    this.#cqs.get(sq.cqid)!.sqs--;
    // Its thread posts what is in the mailbox, then lets the queue go.
    if (this.#qt) this.#stopQueue(qid, true);
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

  // ---- queue threads (SimOptions.threads) -------------------------------------------------------

  /** Tell queue threads whether queues run, whether the fast path is allowed and what it may serve. */
  #publish(now: number): void {
    const qt = this.#qt!, w = qt.i32, m = this.model, p = this.#published;
    const run = m.enabled && m.ready && !m.failed && !this.stopped ? 1 : 0;
    if (run !== p.run) {
      p.run = run;
      Atomics.store(w, H.RUN, run);
    }
    if (p.dirty || now - p.at > PUBLISH_MS) {
      p.dirty = false;
      p.at = now;
      const sanitizing = m.sanitizeStatus().sprog !== 0xffff;
      const states = new Map(m.namespaces().map((n) => [n.nsid, n]));
      Atomics.add(w, H.GEN, 1); // odd: being rewritten
      for (let nsid = 1; nsid <= m.options.maxNamespaces; nsid++) {
        const e = qt.ns(nsid), st = states.get(nsid), media = m.mediaOf(nsid);
        const idx = media instanceof SharedMemMedia && st?.attached && !sanitizing && m.plainRw(nsid) ? this.#shared.indexOf(media) : -1;
        w[e] = idx + 1;
        if (idx < 0) continue;
        w[e + 1] = Math.log2(st!.blockSize);
        w[e + 2] = st!.blocks % TWO32;
        w[e + 3] = Math.floor(st!.blocks / TWO32);
      }
      Atomics.add(w, H.GEN, 1);
    }
    const fast = this.#rules.length === 0 && this.#latencyMs === 0 ? 1 : 0;
    if (fast !== p.fast) {
      p.fast = fast;
      Atomics.store(w, H.FAST, fast);
    }
    // SMART: what the threads read and wrote themselves.
    const c = qt.counts, f = this.#folded;
    const t = [0, 0, 0, 0];
    for (let i = 0; i < this.#threads; i++) for (let k = 0; k < 4; k++) t[k] += c[4 * i + k];
    if (t[0] !== f[0] || t[2] !== f[2]) {
      m.countIo(t[0] - f[0], t[1] - f[1], t[2] - f[2], t[3] - f[3]);
      for (let k = 0; k < 4; k++) f[k] = t[k];
    }
  }

  /** Run what a queue thread forwarded: through the fault rules and the model, as if fetched here. */
  #drainForwarded(sq: Sq): boolean {
    const qt = this.#qt!, w = qt.i32, e = qt.q(sq.qid);
    let head = w[e + Q.FWD_HEAD];
    const tail = Atomics.load(w, e + Q.FWD_TAIL);
    let n = 0;
    while (head !== tail && n < 64 && !this.model.failed && !this.stopped) {
      if ((this.#mbWait.get(sq.qid)?.length ?? 0) > MB_N) break;
      const f = (sq.qid * FWD_N + (head % FWD_N)) * 16;
      const cmd = qt.fwd.slice(f, f + 16);
      head = (head + 1) | 0;
      Atomics.store(w, e + Q.FWD_HEAD, head);
      this.#handle(sq, cmd);
      n++;
    }
    return n > 0;
  }

  /** Hand a completion to the thread serving `qid` (kept here while its mailbox is full). */
  #mail(qid: number, cid: number, sf: number, dw0: number, kind: number): void {
    const wait = this.#mbWait.get(qid);
    if (wait) {
      wait.push([cid, sf, dw0, kind]);
      return;
    }
    if (!this.#mailNow(qid, cid, sf, dw0, kind)) this.#mbWait.set(qid, [[cid, sf, dw0, kind]]);
  }

  #mailNow(qid: number, cid: number, sf: number, dw0: number, kind: number): boolean {
    const qt = this.#qt!, w = qt.i32, e = qt.q(qid);
    const tail = w[e + Q.MB_TAIL];
    if (((tail - Atomics.load(w, e + Q.MB_HEAD)) | 0) >= MB_N) return false;
    const o = (qid * MB_N + (tail % MB_N)) * 4;
    qt.mb[o] = cid;
    qt.mb[o + 1] = sf;
    qt.mb[o + 2] = dw0 >>> 0;
    qt.mb[o + 3] = kind;
    Atomics.store(w, e + Q.MB_TAIL, (tail + 1) | 0);
    this.#wakeQueue(qid);
    return true;
  }

  #flushMail(): boolean {
    let did = false;
    for (const [qid, list] of this.#mbWait) {
      while (list.length && this.#mailNow(qid, list[0][0], list[0][1], list[0][2], list[0][3])) {
        list.shift();
        did = true;
      }
      if (!list.length) this.#mbWait.delete(qid);
    }
    return did;
  }

  /** Wake queue `qid`'s thread: on its wake word, or on the queue's doorbell where it sleeps serving that queue alone. */
  #wakeQueue(qid: number): void {
    const w = this.#qt!.i32;
    Atomics.notify(this.#db32, 2 * qid);
    Atomics.notify(w, H.WAKE + w[this.#qt!.q(qid) + Q.OWNER]);
  }

  /** Wait (bounded) until queue `qid`'s thread has moved its state to `want`. */
  #waitState(qid: number, want: number): boolean {
    const qt = this.#qt!, w = qt.i32, e = qt.q(qid);
    const end = performance.now() + 2000;
    for (;;) {
      const v = Atomics.load(w, e + Q.STATE);
      if (v === want) return true;
      if (performance.now() > end) return false; // the thread is gone: go on without it
      this.#wakeQueue(qid);
      Atomics.wait(w, e + Q.STATE, v, 5);
    }
  }

  /** Delete SQ, first half: its thread stops fetching; what it forwarded and is not run yet ends as aborted by the deletion. */
  #quiesce(sq: Sq): void {
    const qt = this.#qt!, w = qt.i32, e = qt.q(sq.qid);
    if (Atomics.load(w, e + Q.STATE) !== 1) return;
    Atomics.store(w, e + Q.STATE, 2);
    this.#waitState(sq.qid, 3);
    let head = w[e + Q.FWD_HEAD];
    const tail = Atomics.load(w, e + Q.FWD_TAIL);
    while (head !== tail) {
      const f = (sq.qid * FWD_N + (head % FWD_N)) * 16;
      const cmd = qt.fwd.slice(f, f + 16);
      head = (head + 1) | 0;
      this.#complete(sq, cmd[0] >>> 16, S.SQ_DELETION, null);
    }
    Atomics.store(w, e + Q.FWD_HEAD, head);
  }

  /**
   * Its thread lets queue `qid` go: after posting what is in its mailbox
   * (`post`, a deleted queue) or at once (a controller reset: nothing more is posted).
   */
  #stopQueue(qid: number, post: boolean): void {
    const qt = this.#qt!, w = qt.i32, e = qt.q(qid);
    const st = Atomics.load(w, e + Q.STATE);
    if (st === 0) return;
    if (st === 1) {
      Atomics.store(w, e + Q.STATE, 2);
      this.#waitState(qid, 3);
    }
    if (post) {
      // What still waits for mailbox room goes in as its thread drains it.
      const end = performance.now() + 2000;
      while (this.#mbWait.has(qid) && performance.now() < end) {
        this.#flushMail();
        if (this.#mbWait.has(qid)) Atomics.wait(w, e + Q.MB_HEAD, Atomics.load(w, e + Q.MB_HEAD), 1);
      }
    }
    this.#mbWait.delete(qid);
    Atomics.store(w, e + Q.STATE, post ? 4 : 5);
    this.#waitState(qid, 0);
    w[e + Q.FWD_HEAD] = w[e + Q.FWD_TAIL] = w[e + Q.MB_HEAD] = w[e + Q.MB_TAIL] = 0;
  }

  // ---- requests from the host side (fault injection, inspection) ----------------------------

  /** Handle a request from SimTransport; returns a structured-clonable result. */
  request(op: string, arg: unknown): unknown {
    const r = this.#request(op, arg);
    // Queue threads see a new rule or latency before the host hears back, so it is in force for what they fetch next.
    if (this.#qt) this.#publish(performance.now());
    return r;
  }

  #request(op: string, arg: unknown): unknown {
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
        this.model.fail();
        return null;
      case "smartWarning":
        this.model.setCriticalWarning(arg as number);
        return null;
      case "corruptPi": {
        const a = arg as { nsid: number; lba: number; field: "guard" | "app" | "ref" };
        return this.model.corruptPi(a.nsid, a.lba, a.field);
      }
      case "release": {
        // Let held (dropped) commands run now.
        for (const h of this.#held) h.due = 0;
        return null;
      }
      case "state":
        return this.#state();
      case "close":
        this.model.close();
        this.stopped = true;
        return null;
    }
    throw new TypeError(`unknown request ${op}`);
  }

  #state(): SimState {
    const m = this.model;
    const held: HeldCommand[] = this.#held.map((h) => ({ qid: h.qid, cid: h.cid, opcode: h.cmd[0] & 0xff, nsid: h.cmd[1] }));
    return {
      held,
      aers: m.pendingAers,
      faults: this.#rules.map((r) => ({ ...r })),
      namespaces: m.namespaces(),
      firmware: m.firmware(),
      sanitize: m.sanitizeStatus(),
      selfTest: m.selfTestStatus(),
      enabled: m.enabled,
      ready: (m.csts & CSTS.RDY) !== 0,
      fatal: (m.csts & CSTS.CFS) !== 0,
    };
  }
}
