/**
 * The listener's side of the target's Workers (poll groups): starting them
 * (for a device target through `NVMeDev.startWorkers`, so each owns an IO
 * queue pair and a Worker that dies gives its queue back), telling them of
 * controllers as they come and go, handing each IO connection to one of them
 * after its Connect (round robin over the live ones), running the rare IO
 * commands they forward, and failing a dead Worker's connections so their
 * hosts reconnect.
 * @module
 */
import type { Libc } from "../ffi/types.ts";
import { shutdownFd } from "../sock/mod.ts";
import type { Digests } from "../tcp/pdu.ts";
import type { BlockBackend } from "./backend.ts";
import type { AdminReply, ControllerLimits, FabricsController, Subsystem } from "./controller.ts";
import type { DigestPolicy } from "./server.ts";
import type { TargetFault } from "./conn.ts";
import type { WorkerNamespace } from "./shared.ts";
import { SharedMedia } from "./shared.ts";
import { DevBackend, MediaBackend } from "./backend.ts";

/** A fault a Worker applies to the `nth` (default first) IO command it sees of `opcode` (any when absent); tests only. */
export interface WorkerFault {
  /**
   * What to do (see TargetFault); "stall": block the Worker's thread (as a
   * thread stuck in a call would be) until `gate` opens or `stallMs` pass,
   * then serve the command; "crash": the Worker's loop throws (an uncaught
   * error after it opened).
   */
  fault: TargetFault | "stall" | "crash";
  /** A stall's gate: two Int32 words, [0] nonzero opens it, [1] the Worker sets to 1 when it stalls. */
  gate?: SharedArrayBuffer;
  /** Longest a stall blocks (default: until the gate opens; 1000 ms without a gate). */
  stallMs?: number;
  /** Opcode matched (default: any). */
  opcode?: number;
  /** Which match (1-based, default 1). */
  nth?: number;
}

/** What a Worker starts with (internal). */
export interface WorkerInit {
  /** Limits. */
  limits: ControllerLimits;
  /** Digest policy. */
  digests: DigestPolicy;
  /** C2HData SUCCESS. */
  c2hSuccess: boolean;
  /** MAXH2CDATA. */
  maxH2cData: number;
  /** C2HData split. */
  c2hChunk: number;
  /** Subsystems and their namespaces as the Worker opens them. */
  subsystems: { nqn: string; namespaces: WorkerNamespace[] }[];
  /** The device behind "dev" namespaces (its queue arrives with the init). */
  device: { target: string; info: DeviceInfo; identifyData: Uint8Array } | null;
  /**
   * Three Int32 words: [0] messages posted to this Worker (bumped before each
   * post), [1] nonzero once the listener declared it dead ({@link PoolWorker.kill}),
   * [2] the Worker's sleeps ({@link SLEEPS}).
   */
  posted: SharedArrayBuffer;
  /** eventfd the listener writes after each post: wakes the Worker's poll. */
  wakeFd: number;
  /** Test faults. */
  faults: WorkerFault[];
  /** CPU the Worker pins its thread to (-1: none). */
  cpu: number;
  /** Demote the process's other threads to SCHED_IDLE at start and at each connection ({@link idleHelpers}). */
  idleHelpers: boolean;
}

/** Device info as the backends read it. */
export interface DeviceInfo {
  /** Serial. */
  serial: string;
  /** Model. */
  model: string;
  /** Firmware. */
  firmware: string;
  /** PCI vendor. */
  vid: number;
  /** PCI subsystem vendor. */
  ssvid: number;
  /** Largest transfer. */
  maxTransferBytes: number;
  /** Volatile write cache. */
  vwc: boolean;
  /** ONCS. */
  oncs: number;
}

/** Listener to Worker (internal). */
export type ToWorker =
  | { op: "ctrl"; cntlid: number; nqn: string; maxTransfer: number; activity: SharedArrayBuffer }
  | { op: "ctrl-gone"; cntlid: number }
  | { op: "conn"; id: number; fd: number; own: SharedArrayBuffer; qid: number; cntlid: number; sqsize: number; sqflowOff: boolean; cid: number; digests: Digests }
  | { op: "drop"; id: number }
  | { op: "reply"; key: number; r: AdminReply }
  | { op: "stop" };

/** Worker to listener (internal). */
export type FromWorker =
  | { op: "closed"; id: number }
  | { op: "exec"; key: number; cntlid: number; qid: number; sqe: Uint32Array; data: Uint8Array | null }
  | { op: "stopped" }
  | { op: "crashed"; message: string }
  | { op: "log"; message: string };

/** An IO queue served by a Worker, as the listener's controller bookkeeping sees it. */
export class RemoteQueue {
  /** Queue id. */
  readonly qid: number;
  /** Its controller. */
  readonly ctrl: FabricsController;
  /** Connection id (between the listener and the Worker). */
  readonly id: number;
  /** The socket's fd (the Worker owns it; the listener closes it only if the Worker died). */
  readonly fd: number;
  /**
   * Who closes {@link fd} (shared with the Worker): 0 open, 1 the Worker
   * closed it, 2 the listener took it after the Worker died. Exactly one
   * side wins the compare-exchange from 0: a Worker dying while it closes a
   * socket must not have the listener shut down or close that number again
   * once a new connection has reused it.
   */
  readonly own: Int32Array = new Int32Array(new SharedArrayBuffer(4));
  /** Commands in flight are the Worker's business; its traffic reaches keep-alive through the controller's activity counter. */
  readonly inflight = 0;
  readonly #w: PoolWorker;

  /** A queue handed to `w`. */
  constructor(w: PoolWorker, id: number, qid: number, ctrl: FabricsController, fd: number) {
    this.#w = w;
    this.id = id;
    this.qid = qid;
    this.ctrl = ctrl;
    this.fd = fd;
  }

  /** Index of the Worker serving it. */
  get worker(): number {
    return this.#w.index;
  }

  /** Close the connection (the Worker closes its socket; the host sees it go). */
  destroy(): void {
    this.#w.post({ op: "drop", id: this.id });
  }
}

/** What the pool needs from the target. */
export interface PoolHost {
  /** Live controllers. */
  readonly controllers: Map<number, FabricsController>;
  /** A Worker's connection ended (closed by either side, or its Worker died). */
  remoteClosed(q: RemoteQueue): void;
  /** Log sink. */
  readonly log?: (line: string) => void;
}

/** Word of {@link WorkerInit.posted} that tells a Worker it was declared dead. */
export const KILLED = 1;
/** Word of {@link WorkerInit.posted} the Worker bumps each time it waits with a timeout (it found nothing to do). */
export const SLEEPS = 2;

/**
 * How long {@link PoolWorker.kill} and {@link PoolWorker.stop} wait for the
 * Worker to say it stopped before the last resort. A Worker looks at its
 * kill word every pass (a pass is at most one 10 ms poll plus the commands
 * it read); this is many passes even on a loaded TCG guest.
 */
const END_GRACE_MS = 10_000;

/** How a Worker ended: it stopped itself, or it did not answer in time (its queue and sockets are then kept). */
export type WorkerEnd = "stopped" | "unresponsive";

/** One Worker of the pool. */
export class PoolWorker {
  /** Position in the pool. */
  readonly index: number;
  /** The Worker. */
  readonly worker: Worker;
  /** Connections it serves, by id. */
  readonly queues: Map<number, RemoteQueue> = new Map();
  /** False once it died or was stopped. */
  alive = true;
  readonly #pool: WorkerPool;
  readonly #posted: Int32Array;
  readonly #wakeFd: number;
  readonly #one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  readonly #terminate: () => Promise<void>;
  #ending: Promise<WorkerEnd> | null = null;
  /** Resolves when the Worker reports it stopped (after a stop request or a kill). */
  stopped: Promise<void> | null = null;

  /** Worker `index` of `pool`, woken through `wakeFd`, counting posts in `posted` (both given to it at start). */
  constructor(pool: WorkerPool, index: number, worker: Worker, wakeFd: number, posted: SharedArrayBuffer, terminate: () => Promise<void>) {
    this.#pool = pool;
    this.index = index;
    this.worker = worker;
    this.#wakeFd = wakeFd;
    this.#posted = new Int32Array(posted);
    this.#terminate = terminate;
  }

  /** Times it waited for work with a timeout (epoll_wait), since it started; wraps at 2^32. */
  get sleeps(): number {
    return Atomics.load(this.#posted, SLEEPS) >>> 0;
  }

  /** Post and wake the Worker's poll. */
  post(m: ToWorker): void {
    if (!this.alive) return;
    Atomics.add(this.#posted, 0, 1);
    this.worker.postMessage(m);
    this.#pool.libc.write(this.#wakeFd, this.#one);
  }

  /**
   * Stop it as if it crashed (tests): its connections fail at once (the
   * hosts reconnect), the Worker drops everything at its next pass without
   * answering anything and ends itself, then its queue is released.
   * `graceMs`: how long to wait for it (default 10 s) before the last resort.
   */
  kill(graceMs: number = END_GRACE_MS): Promise<WorkerEnd> {
    if (this.#ending !== null) return this.#ending;
    this.alive = false;
    // The listener takes every socket first (shut down: the hosts see the connections die even if
    // the Worker is slow); the Worker, told next, finds them taken and never touches them again.
    const fds = this.#pool.failConnections(this);
    Atomics.store(this.#posted, KILLED, 1);
    this.#pool.libc.write(this.#wakeFd, this.#one);
    return (this.#ending = this.#end(fds, graceMs));
  }

  /** It died of an uncaught error (its thread runs no more JS): terminate, release its queue, fail its connections. */
  crashed(): Promise<WorkerEnd> {
    if (this.#ending !== null) return this.#ending;
    this.alive = false;
    const released = this.#terminate();
    this.#pool.closeLater(this.#pool.failConnections(this));
    return (this.#ending = released.then(() => "stopped" as const));
  }

  /** Ask it to close its connections and its queue, then end it. */
  stop(graceMs: number = END_GRACE_MS): Promise<WorkerEnd> {
    if (this.#ending !== null) return this.#ending;
    this.post({ op: "stop" });
    this.alive = false;
    return (this.#ending = (async () => {
      const end = await this.#end([], graceMs);
      this.#pool.closeLater(this.#pool.failConnections(this));
      return end;
    })());
  }

  /**
   * Wait for the Worker's "stopped", then close `fds` and release its queue.
   * The last resort is `worker.terminate()` alone: a Deno Worker in a
   * synchronous loop (its poll(2) FFI calls) is terminated only at its next
   * event-loop turn, so a thread that did not answer may still be running
   * on its queue's memory and sockets; unmapping that memory under it is a
   * SIGSEGV of the whole process (reproduced). Its queue and fds are kept
   * until it does answer, if ever.
   */
  async #end(fds: number[], graceMs: number): Promise<WorkerEnd> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const answered = await Promise.race([
      this.stopped!.then(() => true),
      new Promise<boolean>((r) => (timer = setTimeout(() => r(false), graceMs))),
    ]);
    clearTimeout(timer);
    const release = async () => {
      this.#pool.closeNow(fds);
      await this.#terminate();
    };
    if (answered) {
      await release();
      return "stopped";
    }
    this.#pool.log?.(`worker ${this.index} did not stop within ${graceMs} ms: terminated; its queue and sockets are kept until it stops`);
    this.worker.terminate();
    void this.stopped!.then(async () => {
      await release();
      this.#pool.log?.(`worker ${this.index} stopped late: its queue and sockets released`);
    });
    return "unresponsive";
  }
}

/** The namespaces of `s` as a Worker opens them, or null if one cannot be served outside this thread. */
function workerNamespaces(s: Subsystem, dev: unknown): WorkerNamespace[] | null {
  const out: WorkerNamespace[] = [];
  for (const n of s.namespaces) {
    const w = workerNamespaceOf(n, dev);
    if (w === null) return null;
    out.push(w);
  }
  return out;
}

function workerNamespaceOf(n: BlockBackend, dev: unknown): WorkerNamespace | null {
  if (n instanceof MediaBackend && n.media instanceof SharedMedia) {
    return { kind: "shared", sab: n.media.sab, blockSize: n.blockSize, name: n.name, maxTransfer: n.maxTransfer };
  }
  if (n instanceof MediaBackend && n.file !== null) {
    return { kind: "file", path: n.file, size: n.media.size, blockSize: n.blockSize, name: n.name, maxTransfer: n.maxTransfer };
  }
  if (n instanceof DevBackend && n.device === dev) return { kind: "dev", nsid: n.nsid };
  return null;
}

/** A device that can give Workers queues (an NVMeDev). */
interface QueueDevice {
  readonly target: string;
  readonly info: DeviceInfo;
  readonly controller: { readonly identifyData: Uint8Array };
  startWorkers(url: URL, n: number, opts: { data?: unknown; depth?: number }): Promise<{ worker: Worker; terminate(opts?: { exited?: boolean }): Promise<void> }[]>;
}

/** The target's Workers. */
export class WorkerPool {
  /** This thread's libc. */
  readonly libc: Libc;
  /** The Workers. */
  readonly workers: PoolWorker[] = [];
  readonly #host: PoolHost;
  readonly #nqns: Set<string>;
  #next = 0;
  #nextId = 1;
  readonly #wakeFds: number[] = [];
  readonly #toClose: number[] = [];
  #closeTimer: ReturnType<typeof setTimeout> | null = null;

  private constructor(libc: Libc, host: PoolHost, nqns: Set<string>) {
    this.libc = libc;
    this.#host = host;
    this.#nqns = nqns;
  }

  /**
   * Start `n` Workers for the subsystems whose namespaces can all be served
   * from a Worker (shared memory, files, one device with queues to give);
   * null when none can (the listener's thread then serves all IO).
   */
  static async start(
    libc: Libc,
    host: PoolHost,
    n: number,
    subsystems: Subsystem[],
    o: { limits: ControllerLimits; digests: DigestPolicy; c2hSuccess: boolean; maxH2cData: number; c2hChunk: number; faults: WorkerFault[]; cpus: number[]; idleHelpers: boolean },
  ): Promise<WorkerPool | null> {
    const devs = new Set<unknown>();
    for (const s of subsystems) for (const b of s.namespaces) if (b instanceof DevBackend) devs.add(b.device);
    if (devs.size > 1) {
      host.log?.(`workers: ${devs.size} devices; a Worker owns one queue pair, so IO stays in the listener's thread`);
      return null;
    }
    const dev = devs.size === 1 ? [...devs][0] as QueueDevice : null;
    const subs: WorkerInit["subsystems"] = [];
    for (const s of subsystems) {
      const ns = workerNamespaces(s, dev);
      if (ns !== null) subs.push({ nqn: s.nqn, namespaces: ns });
      else host.log?.(`workers: subsystem ${s.nqn} has namespaces a Worker cannot open; its IO stays in the listener's thread`);
    }
    if (subs.length === 0) return null;
    const pool = new WorkerPool(libc, host, new Set(subs.map((s) => s.nqn)));
    const url = new URL("./worker-entry.js", import.meta.url);
    const inits: WorkerInit[] = [];
    for (let i = 0; i < n; i++) {
      const fd = libc.eventfd(0, 0x800 | 0x80000); // EFD_NONBLOCK | EFD_CLOEXEC
      if (fd < 0) throw new Error(`eventfd failed (errno ${libc.errno()})`);
      pool.#wakeFds.push(fd);
      const { cpus, ...rest } = o;
      inits.push({
        ...rest,
        cpu: cpus.length > 0 ? cpus[i % cpus.length] : -1,
        subsystems: subs,
        device: dev ? { target: dev.target, info: plainInfo(dev.info), identifyData: dev.controller.identifyData.slice() } : null,
        posted: new SharedArrayBuffer(12),
        wakeFd: fd,
      });
    }
    try {
      if (dev !== null) {
        // One queue pair each; a Worker that dies releases its queue (QueueWorker).
        for (let i = 0; i < n; i++) {
          const [qw] = await dev.startWorkers(url, 1, { data: inits[i] });
          pool.#add(i, qw.worker, inits[i], () => qw.terminate({ exited: true })); // called once it stopped or died
        }
      } else {
        for (let i = 0; i < n; i++) {
          const w = new Worker(url, { type: "module" });
          await startPlain(w, inits[i]);
          pool.#add(i, w, inits[i], () => Promise.resolve(w.terminate()));
        }
      }
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  #add(i: number, w: Worker, init: WorkerInit, terminate: () => Promise<void>): void {
    const pw = new PoolWorker(this, i, w, init.wakeFd, init.posted, terminate);
    let resolveStopped!: () => void;
    pw.stopped = new Promise<void>((r) => (resolveStopped = r));
    w.addEventListener("message", (e: MessageEvent) => {
      const m = e.data as FromWorker;
      if (m?.op === "closed") {
        const q = pw.queues.get(m.id);
        if (q) {
          pw.queues.delete(m.id);
          this.#host.remoteClosed(q);
        }
      } else if (m?.op === "exec") this.#exec(pw, m);
      else if (m?.op === "stopped") resolveStopped();
      else if (m?.op === "log") this.#host.log?.(`worker ${i}: ${m.message}`);
      else if (m?.op === "crashed") {
        // Its loop threw and the thread ended itself (nothing of it runs after this message): as a
        // kill that was answered, its connections fail (the hosts reconnect) and its queue goes.
        this.#host.log?.(`worker ${i} crashed: ${m.message}`);
        resolveStopped();
        void pw.kill();
      }
    });
    w.addEventListener("error", (e: Event) => {
      (e as ErrorEvent).preventDefault?.();
      this.#host.log?.(`worker ${i} died: ${(e as ErrorEvent).message ?? e}`);
      void pw.crashed();
    });
    this.workers.push(pw);
  }

  #exec(pw: PoolWorker, m: Extract<FromWorker, { op: "exec" }>): void {
    const c = this.#host.controllers.get(m.cntlid);
    const reply = (r: AdminReply) => pw.post({ op: "reply", key: m.key, r });
    if (c === undefined || c.dead) return reply({ sf: 0x4000 | 0x0c }); // DNR | Command Sequence Error: it is gone
    c.execute(m.qid, m.sqe, m.data, reply);
  }

  /** True if IO queues of subsystem `nqn` go to Workers. */
  serves(nqn: string): boolean {
    return this.#nqns.has(nqn) && this.workers.some((w) => w.alive);
  }

  /** A controller exists: every Worker learns it (its traffic counter becomes shared memory). */
  controllerAdded(c: FabricsController): void {
    if (c.discovery || !this.#nqns.has(c.subsystem.nqn)) return;
    const sab = new SharedArrayBuffer(4);
    const a = new Int32Array(sab);
    a[0] = c.activity[0];
    c.activity = a;
    for (const w of this.workers) w.post({ op: "ctrl", cntlid: c.cntlid, nqn: c.subsystem.nqn, maxTransfer: c.maxTransfer, activity: sab });
  }

  /** A controller is gone: its Worker queues close. */
  controllerGone(c: FabricsController): void {
    if (c.discovery) return;
    for (const w of this.workers) w.post({ op: "ctrl-gone", cntlid: c.cntlid });
  }

  /** Hand an IO connection (its fd, already released from this thread) to the next live Worker. */
  handOff(fd: number, qid: number, ctrl: FabricsController, sqsize: number, sqflowOff: boolean, cid: number, digests: Digests): RemoteQueue {
    const live = this.workers.filter((w) => w.alive);
    const w = live[this.#next++ % live.length];
    const id = this.#nextId++;
    const q = new RemoteQueue(w, id, qid, ctrl, fd);
    w.queues.set(id, q);
    w.post({ op: "conn", id, fd, own: q.own.buffer as SharedArrayBuffer, qid, cntlid: ctrl.cntlid, sqsize, sqflowOff, cid, digests: { hdgst: digests.hdgst, ddgst: digests.ddgst } });
    return q;
  }

  /** Log sink. */
  get log(): ((line: string) => void) | undefined {
    return this.#host.log;
  }

  /**
   * A Worker is gone: the sockets it had not closed are taken from it and
   * shut down (the hosts reconnect), its connections end. Returns their fds,
   * for the caller to close once the Worker can no longer use the numbers.
   */
  failConnections(w: PoolWorker): number[] {
    const qs = [...w.queues.values()];
    w.queues.clear();
    const fds: number[] = [];
    for (const q of qs) {
      // Only the sockets the Worker had not closed: a number it closed may already be a new connection's.
      if (Atomics.compareExchange(q.own, 0, 0, 2) !== 0) continue;
      try {
        shutdownFd(this.libc, q.fd);
      } catch { /* already down */ }
      fds.push(q.fd);
    }
    for (const q of qs) this.#host.remoteClosed(q);
    return fds;
  }

  /** Close `fds` a little later: a Worker thread still unwinding from poll must not see the numbers reused. */
  closeLater(fds: number[]): void {
    if (fds.length === 0) return;
    this.#toClose.push(...fds);
    this.#closeTimer ??= setTimeout(() => this.#closeFds(), 100);
  }

  /** Close `fds` now (their Worker has stopped). */
  closeNow(fds: number[]): void {
    for (const fd of fds) this.libc.close(fd);
  }

  #closeFds(): void {
    if (this.#closeTimer !== null) clearTimeout(this.#closeTimer);
    this.#closeTimer = null;
    for (const fd of this.#toClose.splice(0)) this.libc.close(fd);
  }

  /** Stop every Worker (each closes its connections and gives its queue back). */
  async close(): Promise<void> {
    const ends = await Promise.all(this.workers.map((w) => w.stop()));
    this.#closeFds();
    // A Worker that never answered may still poll its wake fd: that number must not be reused under it.
    this.#wakeFds.forEach((fd, i) => ends[i] !== "unresponsive" && this.libc.close(fd));
    this.#wakeFds.length = 0;
  }
}

function plainInfo(i: DeviceInfo): DeviceInfo {
  return {
    serial: i.serial,
    model: i.model,
    firmware: i.firmware,
    vid: i.vid,
    ssvid: i.ssvid,
    maxTransferBytes: i.maxTransferBytes,
    vwc: i.vwc,
    oncs: i.oncs,
  };
}

/** The start protocol of a Worker without a device queue (the same messages NVMeDev.startWorkers uses). */
function startPlain(w: Worker, init: WorkerInit): Promise<void> {
  return new Promise((resolve, reject) => {
    const onMsg = (e: MessageEvent) => {
      const m = e.data as { type?: string; message?: string };
      if (m?.type === "tsnvme-ready") w.postMessage({ type: "tsnvme-queue", queue: null, data: init });
      else if (m?.type === "tsnvme-opened") {
        w.removeEventListener("message", onMsg);
        resolve();
      } else if (m?.type === "tsnvme-open-failed") {
        w.removeEventListener("message", onMsg);
        reject(new Error(`target worker failed to start: ${m.message}`));
      }
    };
    w.addEventListener("message", onMsg);
    w.addEventListener("error", (e) => reject(new Error(`target worker failed to start: ${(e as ErrorEvent).message}`)), { once: true });
  });
}
