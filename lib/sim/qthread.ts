/**
 * The software controller's queue threads (SimOptions.threads): each IO queue
 * is served by a thread of its own, which polls that queue's SQ tail
 * doorbell, fetches, moves Read and Write data between host memory and
 * shared media ({@link SharedMemMedia}) itself and posts the completion and
 * its interrupt. Everything else (other opcodes, commands while fault rules
 * or latency are in force, namespaces on other media, errors) is forwarded to
 * the device thread (lib/sim/pcie.ts), which runs it through the controller
 * model as before and hands the completion back through a mailbox: only the
 * queue's own thread ever writes its CQ.
 *
 * Shared layout ({@link QueueTable}, one SharedArrayBuffer): a header the
 * device thread publishes (run, fast path allowed, page size, MDTS), per
 * namespace what the fast path may serve, per IO queue its rings and state,
 * a forward ring (queue thread to device) and a mailbox (device to queue
 * thread), and per thread its SMART counters. Queue states: 0 none, 1 live,
 * 2 stop asked, 3 stopped fetching, 4 finish (post the mailbox, then drop),
 * 5 drop (reset: nothing more is posted); the queue thread moves 2 to 3 and
 * 4 or 5 to 0, the device thread the rest.
 * @module
 */
import { Ctl } from "./options.ts";
import { IrqLayout } from "../irq/waiter.ts";
import { SharedMemMedia } from "./media.ts";
import { PrpPort } from "./prp.ts";

/** Header words. */
export const H = {
  /** Seqlock of the namespace table: odd while the device thread writes it. */
  GEN: 0,
  /** 1 while queues may run (enabled, ready, not fatal). */
  RUN: 1,
  /** 1 while no fault rule or latency is in force (the fast path is allowed). */
  FAST: 2,
  /** log2 of the memory page size (CC.MPS + 12). */
  PAGE_SHIFT: 3,
  /** MDTS in bytes, 0 when unlimited. */
  MDTS: 4,
  /** First of one wake word per queue thread. */
  WAKE: 16,
} as const;
const HEADER = 64;
/** Words per namespace entry: media index + 1 (0: not served by the fast path), block shift, blocks lo, blocks hi. */
const NS_WORDS = 4;
/** Words per queue entry. */
const Q_WORDS = 16;
/** Queue entry fields. */
export const Q = {
  /** SQ state (see the module doc). */
  STATE: 0,
  /** Thread serving the SQ: (CQ id - 1) % threads, so SQs sharing a CQ share a thread. */
  OWNER: 1,
  SQ_BASE: 2,
  SQ_SIZE: 3,
  CQID: 4,
  FWD_HEAD: 5,
  FWD_TAIL: 6,
  MB_HEAD: 7,
  MB_TAIL: 8,
  /** CQ fields, in the CQ id's entry. */
  CQ_BASE: 9,
  CQ_SIZE: 10,
  /** Interrupt vector, -1 when the CQ does not interrupt. */
  IV: 11,
  /** The CQ's tail and phase while no SQ of it is loaded (a thread keeps them while one is). */
  CQ_TAIL: 12,
  CQ_PHASE: 13,
  /** Bumped at each Create SQ: a thread still holding an earlier queue of this id (a stop it missed) reloads. */
  EPOCH: 14,
} as const;
/** Forwarded commands a queue may have waiting for the device thread. */
export const FWD_N = 256;
/** Completions the device thread may have waiting for a queue thread. */
export const MB_N = 512;
/** Mailbox entry kinds: a plain completion, or one of the bogus completions a fault rule asks for. */
export const MbKind = { PLAIN: 0, UNKNOWN_CID: 1, WRONG_SQID: 2, STALE_PHASE: 3, DUPLICATE: 4 } as const;

/** Everything a queue thread needs (structured-clonable). */
export interface QThreadInit {
  /** This thread's index, 0-based. */
  index: number;
  /** Host DMA memory. */
  host: SharedArrayBuffer;
  /** Registers and doorbells. */
  regs: SharedArrayBuffer;
  /** Control words and counters. */
  ctl: SharedArrayBuffer;
  /** IOMMU page table. */
  iommu?: SharedArrayBuffer;
  /** MSI-X wake words. */
  irq?: SharedArrayBuffer;
  /** The queue table. */
  qtab: SharedArrayBuffer;
  /** Shared media of the namespaces, by media index. */
  media: SharedArrayBuffer[];
  /** IO queues at most. */
  maxQueues: number;
  /** Namespaces at most. */
  maxNamespaces: number;
  /** Queue threads. */
  threads: number;
  /** IOVA of host memory offset 0. */
  iovaBase: number;
  /** SGLS the controller advertises (the fast path walks SGLs it allows; 0: PRPs only). */
  sgls: number;
}

/** Views of the queue table, laid out for `maxQueues` IO queues, `maxNamespaces` namespaces and `threads` threads. */
export class QueueTable {
  /** Header, namespace and queue words. */
  readonly i32: Int32Array;
  /** Forward rings: FWD_N SQEs of 16 dwords per queue. */
  readonly fwd: Uint32Array;
  /** Mailboxes: MB_N entries of (cid, sf, dw0, kind) per queue. */
  readonly mb: Uint32Array;
  /** Per thread: reads, bytes read, writes, bytes written (the thread's own SMART counts). */
  readonly counts: Float64Array;
  readonly #nsBase: number;
  readonly #qBase: number;

  /** Bytes of the table. */
  static bytes(maxQueues: number, maxNamespaces: number, threads: number): number {
    const words = HEADER + NS_WORDS * (maxNamespaces + 1) + Q_WORDS * (maxQueues + 1);
    const fwd = FWD_N * 16 * (maxQueues + 1), mb = MB_N * 4 * (maxQueues + 1);
    return Math.ceil((words + fwd + mb) / 2) * 8 + threads * 4 * 8;
  }

  /** Views over `sab`. */
  constructor(sab: SharedArrayBuffer, maxQueues: number, maxNamespaces: number, threads: number) {
    const words = HEADER + NS_WORDS * (maxNamespaces + 1) + Q_WORDS * (maxQueues + 1);
    const fwd = FWD_N * 16 * (maxQueues + 1), mb = MB_N * 4 * (maxQueues + 1);
    this.i32 = new Int32Array(sab, 0, words);
    this.fwd = new Uint32Array(sab, words * 4, fwd);
    this.mb = new Uint32Array(sab, (words + fwd) * 4, mb);
    this.counts = new Float64Array(sab, Math.ceil((words + fwd + mb) / 2) * 8, threads * 4);
    this.#nsBase = HEADER;
    this.#qBase = HEADER + NS_WORDS * (maxNamespaces + 1);
  }

  /** Index of namespace `nsid`'s entry in {@link i32}. */
  ns(nsid: number): number {
    return this.#nsBase + NS_WORDS * nsid;
  }

  /** Index of queue `qid`'s entry in {@link i32}. */
  q(qid: number): number {
    return this.#qBase + Q_WORDS * qid;
  }
}

interface LocalCq {
  cqid: number;
  base: number;
  size: number;
  tail: number;
  phase: number;
  iv: number;
  backlog: number[][];
  /** Loaded SQs posting to it. */
  refs: number;
}

interface LocalQ {
  qid: number;
  epoch: number;
  sqBase: number;
  sqSize: number;
  head: number;
  cq: LocalCq;
  /** Forwarded to the device thread and not mailed back yet (a mail is due: sleep briefly). */
  fwdOut: number;
}

const TWO32 = 0x1_0000_0000;
const PAGE = 4096;
/** Sleep on the doorbell, ms, when nothing is owed to the queue: the host's doorbell write or the device thread wakes it sooner. */
const DOORBELL_SLEEP_MS = 20;
/** The same while forwarded commands are out: a mail racing the sleep is picked up by then. */
const MAIL_SLEEP_MS = 1;
/** Otherwise (several queues, a full CQ, a stray tail): nap on the wake word as long as this. */
const NAP_MS = 0.25;

/**
 * One queue thread: serves the IO queues the device thread gives it. Driven
 * by lib/sim/worker.ts's loop calling {@link step}.
 */
export class QueueThread {
  /** Set once the device is gone for good (surprise removal). */
  stopped = false;
  readonly #index: number;
  readonly #t: QueueTable;
  readonly #host32: Uint32Array;
  /** Host memory as dwords (the PRP/SGL port reads lists through it). */
  get host32(): Uint32Array {
    return this.#host32;
  }
  readonly #hostSize: number;
  readonly #base: number;
  readonly #db: Uint32Array;
  /** The doorbells as Int32, to sleep on one (Atomics.wait takes Int32 views only). */
  readonly #db32: Int32Array;
  readonly #ctl: Int32Array;
  readonly #iommu: Uint8Array | null;
  readonly #irq: Int32Array | null;
  readonly #media: SharedMemMedia[];
  readonly #port: PrpPort;
  readonly #maxQueues: number;
  readonly #maxNs: number;
  readonly #qs: (LocalQ | null)[];
  readonly #cqs: (LocalCq | null)[];
  readonly #cmd = new Uint32Array(16);
  /** This thread's SMART counts in the table (reads, bytes read, writes, bytes written); only this thread writes them. */
  readonly #counts: Float64Array;

  /** Build the thread's views over the shared areas. */
  constructor(init: QThreadInit) {
    this.#index = init.index;
    this.#t = new QueueTable(init.qtab, init.maxQueues, init.maxNamespaces, init.threads);
    this.#host32 = new Uint32Array(init.host);
    this.#hostSize = init.host.byteLength;
    this.#base = init.iovaBase;
    this.#db = new Uint32Array(init.regs, 0x1000, 2 * (init.maxQueues + 1));
    this.#db32 = new Int32Array(init.regs, 0x1000, 2 * (init.maxQueues + 1));
    this.#ctl = new Int32Array(init.ctl);
    this.#iommu = init.iommu ? new Uint8Array(init.iommu) : null;
    this.#irq = init.irq ? new Int32Array(init.irq) : null;
    this.#media = init.media.map((m) => new SharedMemMedia(m));
    this.#port = new PrpPort(this, new Uint8Array(init.host), new DataView(init.host));
    this.#port.sgls = init.sgls;
    this.#maxQueues = init.maxQueues;
    this.#maxNs = init.maxNamespaces;
    this.#counts = this.#t.counts.subarray(4 * init.index, 4 * init.index + 4);
    this.#qs = new Array(init.maxQueues + 1).fill(null);
    this.#cqs = new Array(init.maxQueues + 1).fill(null);
  }

  /** The word this thread sleeps on; the device thread notifies it. */
  get wakeIndex(): number {
    return H.WAKE + this.#index;
  }

  /** The queue table's words (the worker loop sleeps on {@link wakeIndex} there). */
  get words(): Int32Array {
    return this.#t.i32;
  }

  /**
   * Offset in host memory of `len` bytes at `iova`, or -1 when outside it or
   * not mapped. Not counted as stale DMA here: such a command is forwarded,
   * and the device thread counts and fails it.
   */
  off(iova: number, len: number): number {
    const o = iova - this.#base;
    if (!(o >= 0 && o + len <= this.#hostSize)) return -1;
    const m = this.#iommu;
    if (m !== null && len > 0) {
      for (let p = Math.floor(o / PAGE), last = Math.floor((o + len - 1) / PAGE); p <= last; p++) if (m[p] === 0) return -1;
    }
    return o;
  }

  /** One round over this thread's queues; true when something happened. */
  step(): boolean {
    if (this.stopped) return false;
    if (Atomics.load(this.#ctl, Ctl.REMOVED)) {
      this.stopped = true;
      return false;
    }
    const w = this.#t.i32;
    const run = Atomics.load(w, H.RUN) === 1;
    let did = false;
    let live = 0, only: LocalQ | null = null;
    for (let qid = 1; qid <= this.#maxQueues; qid++) {
      const e = this.#t.q(qid);
      if (w[e + Q.OWNER] !== this.#index) continue;
      const state = Atomics.load(w, e + Q.STATE);
      let q = this.#qs[qid];
      switch (state) {
        case 0:
          if (q) this.#unload(q);
          continue;
        case 1:
          if (q && q.epoch !== w[e + Q.EPOCH]) {
            this.#unload(q, true);
            q = null;
          }
          if (!q) q = this.#qs[qid] = this.#load(qid, e);
          live++;
          only = q;
          if (!run) continue;
          did = this.#drain(q, e) || did;
          did = this.#fetch(q, e) || did;
          continue;
        case 3:
          live++;
          if (q && run) did = this.#drain(q, e) || did;
          continue;
        case 2:
          this.#setState(e, 3);
          did = true;
          continue;
        case 4:
          if (q) {
            this.#drain(q, e);
            this.#unload(q);
          }
          this.#setState(e, 0);
          did = true;
          continue;
        case 5:
          if (q) this.#unload(q, true);
          this.#setState(e, 0);
          did = true;
          continue;
      }
    }
    this.#sleepOn = live === 1 && run ? only : null;
    return did;
  }

  /** The one live queue this thread serves, as of the last {@link step} (null: none, several, or not running). */
  #sleepOn: LocalQ | null = null;

  /**
   * Nothing to do for a while: sleep. Serving one queue, on its SQ tail
   * doorbell while it still reads as the head (the host's doorbell write
   * notifies it, and the device thread notifies it with a mail or a state
   * change), up to {@link DOORBELL_SLEEP_MS}; otherwise a short nap on this
   * thread's wake word. So an idle queue thread costs no core, and a busy one
   * sleeps between the host's batches instead of spinning against the host's
   * Worker for the same cores.
   */
  idle(): void {
    const q = this.#sleepOn;
    if (q !== null && q.cq.backlog.length === 0 && this.#qs[q.qid] === q) {
      const i = 2 * q.qid, head = q.head;
      if (Atomics.load(this.#db32, i) === head) {
        Atomics.wait(this.#db32, i, head, q.fwdOut > 0 ? MAIL_SLEEP_MS : DOORBELL_SLEEP_MS);
        return;
      }
    }
    Atomics.wait(this.#t.i32, this.wakeIndex, 0, NAP_MS);
  }

  #setState(e: number, v: number): void {
    Atomics.store(this.#t.i32, e + Q.STATE, v);
    Atomics.notify(this.#t.i32, e + Q.STATE);
    Atomics.notify(this.#ctl, Ctl.WAKE);
  }

  #load(qid: number, e: number): LocalQ {
    const w = this.#t.i32;
    const cqid = w[e + Q.CQID];
    let cq = this.#cqs[cqid];
    if (!cq) {
      const c = this.#t.q(cqid);
      cq = this.#cqs[cqid] = {
        cqid,
        base: w[c + Q.CQ_BASE] >>> 0,
        size: w[c + Q.CQ_SIZE],
        tail: w[c + Q.CQ_TAIL],
        phase: w[c + Q.CQ_PHASE],
        iv: w[c + Q.IV],
        backlog: [],
        refs: 0,
      };
    }
    cq.refs++;
    return { qid, epoch: w[e + Q.EPOCH], sqBase: w[e + Q.SQ_BASE] >>> 0, sqSize: w[e + Q.SQ_SIZE], head: 0, cq, fwdOut: 0 };
  }

  /** Let a queue go; its CQ's position goes back to the table when no SQ of it is left here. */
  #unload(q: LocalQ, reset = false): void {
    this.#qs[q.qid] = null;
    const cq = q.cq;
    if (--cq.refs > 0) return;
    this.#cqs[cq.cqid] = null;
    if (reset) return;
    const c = this.#t.q(cq.cqid);
    this.#t.i32[c + Q.CQ_TAIL] = cq.tail;
    this.#t.i32[c + Q.CQ_PHASE] = cq.phase;
  }

  /** Post what the device thread completed for this queue. */
  #drain(q: LocalQ, e: number): boolean {
    const w = this.#t.i32, mb = this.#t.mb;
    let did = false;
    if (q.cq.backlog.length) did = this.#flushBacklog(q);
    let head = Atomics.load(w, e + Q.MB_HEAD);
    const tail = Atomics.load(w, e + Q.MB_TAIL);
    if (head === tail) return did;
    const base = q.qid * MB_N * 4;
    q.fwdOut = Math.max(0, q.fwdOut - ((tail - head) | 0));
    while (head !== tail) {
      const o = base + (head % MB_N) * 4;
      const cid = mb[o], sf = mb[o + 1], dw0 = mb[o + 2], kind = mb[o + 3];
      head = (head + 1) | 0;
      switch (kind) {
        case MbKind.UNKNOWN_CID:
          this.#post(q, 0, q.qid, cid ^ 0x8000, 0);
          this.#post(q, dw0, q.qid, cid, sf);
          break;
        case MbKind.WRONG_SQID:
          this.#post(q, 0, (q.qid + 1) & 0xffff, cid, 0);
          this.#post(q, dw0, q.qid, cid, sf);
          break;
        case MbKind.STALE_PHASE:
          q.cq.phase ^= 1;
          this.#write(q, dw0, q.qid, cid, sf);
          q.cq.phase ^= 1;
          break;
        case MbKind.DUPLICATE:
          this.#post(q, dw0, q.qid, cid, sf);
          this.#post(q, dw0, q.qid, cid, sf);
          break;
        default:
          this.#post(q, dw0, q.qid, cid, sf);
      }
    }
    Atomics.store(w, e + Q.MB_HEAD, head);
    return true;
  }

  /** Fetch up to 64 commands: serve Reads and Writes the fast path may take, forward the rest. */
  #fetch(q: LocalQ, e: number): boolean {
    const w = this.#t.i32;
    const host = this.#host32;
    let n = 0;
    while (n < 64) {
      const tail = Atomics.load(this.#db, 2 * q.qid);
      if (tail === q.head || tail >= q.sqSize) break;
      if (q.cq.backlog.length > q.cq.size) break;
      const fwdHead = Atomics.load(w, e + Q.FWD_HEAD), fwdTail = w[e + Q.FWD_TAIL];
      if (((fwdTail - fwdHead) | 0) >= FWD_N) break; // the device thread is behind: leave the rest in the SQ
      const at = (q.sqBase >>> 2) + q.head * 16;
      if (++q.head === q.sqSize) q.head = 0;
      const dw0 = host[at], opc = dw0 & 0xff;
      Atomics.add(this.#ctl, Ctl.COUNTS + q.qid * 256 + opc, 1);
      n++;
      // FAST is read per command: a fault rule is in force for every command fetched after add() resolved.
      if ((opc === 1 || opc === 2) && Atomics.load(w, H.FAST) === 1 && this.#rw(q, at, opc)) continue;
      // Forward: the device thread runs it through the model and mails the completion back.
      const f = (q.qid * FWD_N + (fwdTail % FWD_N)) * 16;
      this.#t.fwd.set(host.subarray(at, at + 16), f);
      Atomics.store(w, e + Q.FWD_TAIL, (fwdTail + 1) | 0);
      q.fwdOut++;
      Atomics.notify(this.#ctl, Ctl.WAKE);
    }
    return n > 0;
  }

  /** A Read or Write on shared media, when nothing about it needs the model; false: forward it. */
  #rw(q: LocalQ, at: number, opc: number): boolean {
    const h = this.#host32, w = this.#t.i32;
    const dw0 = h[at];
    // Fused, a metadata SGL (PSDT 10b) or a metadata pointer: the model's. A data SGL the port
    // walks (an invalid one fails the walk and goes to the model for its status).
    if ((dw0 & 0x8300) !== 0 || h[at + 4] !== 0 || h[at + 5] !== 0) return false;
    const nsid = h[at + 1];
    if (nsid < 1 || nsid > this.#maxNs) return false;
    const cdw12 = h[at + 12];
    if ((cdw12 & 0x3fff_0000) !== 0) return false; // protection information, directives...: the model's
    // The namespace entry under its seqlock: odd or changed while read means it is being rewritten.
    const gen = Atomics.load(w, H.GEN);
    if (gen & 1) return false;
    const ne = this.#t.ns(nsid);
    const mi = w[ne] - 1, shift = w[ne + 1], blocks = (w[ne + 2] >>> 0) + (w[ne + 3] >>> 0) * TWO32;
    if (Atomics.load(w, H.GEN) !== gen) return false;
    if (mi < 0 || mi >= this.#media.length) return false;
    const slba = h[at + 10] + h[at + 11] * TWO32, nlb = (cdw12 & 0xffff) + 1;
    if (slba + nlb > blocks) return false;
    const len = nlb * 2 ** shift;
    const mdts = w[H.MDTS];
    if (mdts > 0 && len > mdts) return false;
    const cmd = this.#cmd;
    cmd.set(h.subarray(at, at + 16));
    const port = this.#port;
    port.pageSize = 2 ** w[H.PAGE_SHIFT];
    if (port.map(cmd, len) !== 0) return false;
    const m = this.#media[mi];
    let off = slba * 2 ** shift;
    if (opc === 1) {
      for (let i = 0, k = port.count; i < k; i++) {
        const s = port.segment(i);
        m.write(off, s);
        off += s.length;
      }
      this.#counts[2]++;
      this.#counts[3] += len;
    } else {
      for (let i = 0, k = port.count; i < k; i++) {
        const s = port.segment(i);
        m.read(off, s);
        off += s.length;
      }
      this.#counts[0]++;
      this.#counts[1] += len;
    }
    this.#post(q, 0, q.qid, dw0 >>> 16, 0);
    return true;
  }

  #post(q: LocalQ, dw0: number, sqid: number, cid: number, sf: number): void {
    const cq = q.cq;
    const head = Atomics.load(this.#db, 2 * cq.cqid + 1);
    if (cq.backlog.length || (cq.tail + 1) % cq.size === head) {
      cq.backlog.push([dw0, q.head, sqid, cid, sf]);
      return;
    }
    this.#write(q, dw0, sqid, cid, sf);
  }

  #flushBacklog(q: LocalQ): boolean {
    const cq = q.cq;
    let did = false;
    while (cq.backlog.length) {
      const head = Atomics.load(this.#db, 2 * cq.cqid + 1);
      if ((cq.tail + 1) % cq.size === head) break;
      const [dw0, sqhd, sqid, cid, sf] = cq.backlog.shift()!;
      this.#writeCq(cq, dw0, sqhd, sqid, cid, sf);
      did = true;
    }
    return did;
  }

  #write(q: LocalQ, dw0: number, sqid: number, cid: number, sf: number): void {
    this.#writeCq(q.cq, dw0, q.head, sqid, cid, sf);
  }

  #writeCq(cq: LocalCq, dw0: number, sqhd: number, sqid: number, cid: number, sf: number): void {
    const b = (cq.base >>> 2) + cq.tail * 4;
    const c = this.#host32;
    c[b] = dw0 >>> 0;
    c[b + 1] = 0;
    c[b + 2] = ((sqhd & 0xffff) | (sqid << 16)) >>> 0;
    // DW3 last and atomically: the host polls its phase bit (pollLoad32).
    Atomics.store(c, b + 3, ((cid & 0xffff) | (cq.phase << 16) | ((sf & 0x7fff) << 17)) >>> 0);
    if (++cq.tail === cq.size) {
      cq.tail = 0;
      cq.phase ^= 1;
    }
    // MSI-X model: the CQE is visible before its interrupt, as on PCIe.
    const irq = this.#irq;
    if (irq && cq.iv >= 0 && IrqLayout.HEADER + cq.iv < irq.length) {
      Atomics.add(irq, IrqLayout.HEADER + cq.iv, 1);
      Atomics.notify(irq, IrqLayout.HEADER + cq.iv);
    }
  }
}
