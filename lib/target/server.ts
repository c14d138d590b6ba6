/**
 * The NVMe/TCP target: listens on an address, exports subsystems (each a
 * list of namespace backends and a host allow-list), serves a discovery
 * controller on the same port, creates a controller per admin Connect, binds
 * IO Connects to it, and enforces keep-alive (a host silent for KATO loses
 * its controller and every queue of it, as nvmet does; any command counts,
 * CTRATT.TBKAS). Sockets are the driver's own (lib/sock): this thread
 * accepts, does the IC exchange and reads each Connect; admin and discovery
 * queues stay here, and with Workers (the default: one per core) each IO
 * queue is handed to one of them, which serves it on a queue pair of its own.
 * @module
 */
import { loadLibc } from "../ffi/mod.ts";
import type { Libc } from "../ffi/types.ts";
import { Listener, type Socket } from "../sock/mod.ts";
import { GroupSleep, PollGroup, SockWire } from "./poll.ts";
import { RemoteQueue, type WorkerEnd, type WorkerFault, WorkerPool } from "./pool.ts";
import { CNTLID_DYNAMIC, ConnectData, DISCOVERY_NQN, FabricsSqe } from "../tcp/fabrics.ts";
import { AdrFam, type DiscoveryEntry, encodeDiscoveryLog, SubType, TREQ_DISABLE_SQFLOW, TRTYPE_TCP } from "../tcp/discovery.ts";
import type { BlockBackend } from "./backend.ts";
import { type CommandHook, TargetConn } from "./conn.ts";
import { type ControllerLimits, DiscoveryController, type FabricsController, type Subsystem } from "./controller.ts";
import { NvmController } from "./nvm.ts";
import { Status } from "../nvme/spec.ts";
import { envCount, envOf } from "../ffi/env.ts";
import { yieldMacrotask as yieldNow } from "../ffi/yield.ts";
import type { TargetTrace } from "./trace.ts";
import { ConnectStatus, connectIpo } from "../nvme/fabrics.ts";
import { MAX_CPU } from "./spec-parse.ts";

/** How the target answers digest requests in ICReq. */
export type DigestPolicy = "allow" | "require" | "none";

/** A subsystem to export. */
export interface SubsystemOptions {
  /** Subsystem NQN. */
  nqn: string;
  /** Namespaces, NSID 1.. in order. */
  namespaces: BlockBackend[];
  /** Host NQNs allowed (default: any host). */
  allowHosts?: string[];
  /** Serial number override. */
  serial?: string;
  /** Model number override. */
  model?: string;
}

/** Target settings. */
export interface NvmfTargetOptions {
  /** Address to listen on (default 127.0.0.1). */
  host?: string;
  /** Port (default 4420; 0 picks a free one, see {@link NvmfTarget.port}). */
  port?: number;
  /** Subsystems exported. */
  subsystems: SubsystemOptions[];
  /** Digests: echo what the host asks (allow, default), insist on both (require), or grant none. */
  digests?: DigestPolicy;
  /** Largest transfer per command and MAXH2CDATA in bytes (default 256 KiB; capped by every backend). */
  maxTransfer?: number;
  /** In-capsule write data accepted on IO queues (default 16 KiB, as nvmet). */
  inCapsule?: number;
  /** IO queues per controller (default 8). */
  maxIoQueues?: number;
  /** Queue entries (default 128). */
  queueEntries?: number;
  /** C2HData SUCCESS (no CapsuleResp after read data) when the host disabled SQ flow control (default true). */
  c2hSuccess?: boolean;
  /**
   * Keep-alive check period in ms (tests). Default: no period; the check runs
   * at the earliest deadline (a controller's last traffic plus its KATO).
   */
  keepAliveCheckMs?: number;
  /** Called with one-line log messages (controller created, keep-alive expired...). */
  log?: (line: string) => void;
  /** MAXH2CDATA in bytes, at least 4096 (default: maxTransfer; smaller makes hosts split their writes' H2CData). */
  maxH2cData?: number;
  /** Split read data into C2HData PDUs of at most this many bytes (default 0: one PDU per command). */
  c2hChunk?: number;
  /** Test hook: called for every command capsule this thread serves; the fault it returns is applied (see {@link CommandHook}). */
  onCommand?: CommandHook;
  /**
   * Worker threads serving IO queues (default: one per core; 0: this thread
   * serves everything). Only subsystems whose namespaces a Worker can open go
   * to Workers: shared memory ({@link SharedMedia}), files, and namespaces of
   * one device that gives each Worker a queue pair of its own.
   */
  workers?: number;
  /**
   * CPUs the Workers pin their threads to, Worker i to `cpus[i % cpus.length]`
   * (default: none, the scheduler places them), as SPDK's reactors pin with
   * `-m`. Keeping a Worker off the CPUs its hosts' applications run on spares
   * it a switch of address space per IO on its CPU (under an emulator such as
   * QEMU's TCG, a flush of the vCPU's soft TLB each). CPU numbers 0..1023;
   * one the process may not run on makes the Workers fail to start (logged;
   * the listener's thread then serves the IO).
   */
  cpus?: number[];
  /**
   * Every thread of the process but its JavaScript Workers runs SCHED_IDLE
   * (the listener, the runtime's JIT and GC threads): for a process confined
   * to its Workers' CPUs, as the target CLI's --cpus confines it, where a
   * helper that wakes on a polling Worker's CPU otherwise takes it for a
   * scheduler slice (a QD1 IO then waits milliseconds). The listener then
   * runs while its Worker's CPU is idle (a polling Worker leaves it idle
   * between bursts); under sustained load it gets a small share. Default false.
   */
  idleHelpers?: boolean;
  /** Test faults the Workers apply to IO commands (the hook above cannot cross threads). */
  workerFaults?: WorkerFault[];
}

/** A queue as the controller bookkeeping sees it: served here, or by a Worker. */
type QueueRef = TargetConn | RemoteQueue;

/**
 * Passes the listener keeps polling after the last event when it serves IO
 * itself (no Workers), yielding to the event loop between them, before it
 * sleeps: IO bursts are caught without a wake-up each.
 */
const SPIN_PASSES = 200;
/**
 * The same while Workers serve the IO: the listener then has only accepts,
 * Connects and admin commands, and each pass costs ~0.5-1 ms of a vCPU in a
 * TCG guest (a setImmediate turn), taken from the Workers (issue 16: 200
 * passes after every keep-alive).
 */
const SPIN_PASSES_WORKERS = 2;
/** Longest pause between passes when it cannot sleep on its fds (no helper thread, or output waiting for room), ms. */
const IDLE_NAP_MS = 2;
/**
 * The same while Workers serve the IO (the first admin command after a
 * quiet spell may wait this long then): each wake-up costs ~1-2 ms of CPU in
 * a TCG guest.
 */
// TSNVME_TARGET_NAP_MS (read once): an experiment on the listener's wake-ups per second.
const IDLE_NAP_WORKERS_MS = envCount("TSNVME_TARGET_NAP_MS", 100, 1000);
/**
 * The listener sleeps on its fds through a helper thread (GroupSleep), unless
 * TSNVME_TARGET_LISTENER_SLEEP=0 (read once; the timer naps, for A/B).
 */
const LISTENER_SLEEPS = envOf("TSNVME_TARGET_LISTENER_SLEEP") !== "0";

/** How long a host may stay silent: its KATO rounded up to whole seconds, as nvmet does. */
function katoBound(katoMs: number): number {
  return Math.ceil(katoMs / 1000) * 1000;
}

/** Worker count by default: one per core. */
function defaultWorkers(): number {
  const n = (globalThis as { navigator?: { hardwareConcurrency?: number } }).navigator?.hardwareConcurrency;
  return typeof n === "number" && n > 0 ? n : 1;
}

/** Counters. */
export interface TargetStats {
  /** TCP connections accepted. */
  connections: number;
  /** Command capsules received. */
  commands: number;
  /** R2T PDUs sent. */
  r2t: number;
  /** H2CData PDUs received. */
  h2cData: number;
  /** C2HData PDUs sent. */
  c2hData: number;
  /** Commands with in-capsule data. */
  inCapsule: number;
  /** C2HTermReqs sent. */
  termReqs: number;
  /** H2CTermReqs received. */
  hostTermReqs: number;
  /** Controllers failed by keep-alive expiry. */
  keepAliveExpired: number;
  /** Connect commands refused. */
  connectRefused: number;
}

/** Counters all at zero: the listener's and each poll-group Worker's start here. */
export function zeroStats(): TargetStats {
  return {
    connections: 0,
    commands: 0,
    r2t: 0,
    h2cData: 0,
    c2hData: 0,
    inCapsule: 0,
    termReqs: 0,
    hostTermReqs: 0,
    keepAliveExpired: 0,
    connectRefused: 0,
  };
}

/** Connect fields the target checks. */
export interface ConnectRequest {
  /** Queue id. */
  qid: number;
  /** SQ size, 0's based. */
  sqsize: number;
  /** Keep-alive timeout, ms. */
  kato: number;
  /** Subsystem NQN. */
  subnqn: string;
  /** Host NQN. */
  hostnqn: string;
  /** Host identifier. */
  hostid: Uint8Array;
  /** Controller id asked for. */
  cntlid: number;
  /** The connection asking. */
  conn: TargetConn;
  /** Command id of the Connect. */
  cid: number;
  /** The host disabled SQ flow control. */
  sqflowOff: boolean;
}

/** What a connection needs from its target. */
export interface ConnHost {
  /** Limits. */
  readonly limits: ControllerLimits;
  /** Digest policy. */
  readonly digests: DigestPolicy;
  /** SUCCESS on C2HData when allowed. */
  readonly c2hSuccess: boolean;
  /** MAXH2CDATA granted in ICResp. */
  readonly maxH2cData: number;
  /** Largest C2HData PDU payload (0: no split). */
  readonly c2hChunk: number;
  /** Counters. */
  readonly stats: TargetStats;
  /** Test hook. */
  readonly onCommand?: CommandHook;
  /** Log sink. */
  readonly log?: (line: string) => void;
  /** Timing trace of the IO path (lib/target/trace.ts; TSNVME_TARGET_TRACE), if on. */
  readonly trace?: TargetTrace | null;
  /** Bind a Connect to a controller, refuse it (status and DW0), or take the connection to another thread (null: say nothing more). */
  connect(r: ConnectRequest): FabricsController | { sf: number; dw0: number } | null;
  /** A connection closed. */
  connClosed(conn: TargetConn): void;
}

/** A listening NVMe/TCP target. */
export class NvmfTarget implements ConnHost {
  /** Port listened on. */
  readonly port: number;
  /** Address listened on. */
  readonly address: string;
  /** Counters. */
  readonly stats: TargetStats = zeroStats();
  /** Live controllers by cntlid. */
  readonly controllers: Map<number, FabricsController> = new Map();
  /** Limits. */
  readonly limits: ControllerLimits;
  /** Digest policy. */
  readonly digests: DigestPolicy;
  /** C2HData SUCCESS allowed. */
  readonly c2hSuccess: boolean;
  /** MAXH2CDATA granted in ICResp. */
  readonly maxH2cData: number;
  /** Largest C2HData PDU payload (0: no split). */
  readonly c2hChunk: number;
  /** Test hook. */
  readonly onCommand?: CommandHook;
  /** Log sink. */
  readonly log?: (line: string) => void;
  /** Discovery log generation counter (bumped when the allow-lists or subsystems change). */
  genctr = 1n;
  readonly #libc: Libc;
  readonly #listener: Listener;
  readonly #group: PollGroup;
  readonly #wires = new Map<TargetConn, SockWire>();
  #pool: WorkerPool | null = null;
  #sleep: GroupSleep | null = null;
  #passes = 0;
  #loop: Promise<void> = Promise.resolve();
  readonly #subs = new Map<string, Subsystem>();
  /** Every exported namespace's backend: IO one held for a device reset is retried each pass. */
  readonly #backends: BlockBackend[] = [];
  readonly #conns = new Set<TargetConn>();
  readonly #queues = new Map<FabricsController, Map<number, QueueRef>>();
  readonly #checkMs: number | undefined;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #keepAliveWakes = 0;
  #nextCntlid = 1;
  #closing = false;

  private constructor(libc: Libc, listener: Listener, address: string, port: number, o: NvmfTargetOptions) {
    this.#libc = libc;
    this.#listener = listener;
    this.#group = new PollGroup(libc);
    this.address = address;
    this.port = port;
    this.digests = o.digests ?? "allow";
    this.c2hSuccess = o.c2hSuccess ?? true;
    this.c2hChunk = o.c2hChunk ?? 0;
    this.onCommand = o.onCommand;
    this.log = o.log;
    this.#checkMs = o.keepAliveCheckMs;
    this.limits = {
      maxTransfer: o.maxTransfer ?? 256 * 1024,
      inCapsule: o.inCapsule ?? 16384,
      maxIoQueues: o.maxIoQueues ?? 8,
      queueEntries: o.queueEntries ?? 128,
    };
    this.maxH2cData = o.maxH2cData ?? this.limits.maxTransfer;
    for (const s of o.subsystems) this.addSubsystem(s);
    this.genctr = 1n; // the subsystems a target starts with are its first log, not a change to it
  }

  /** Validate the options, listen, and resolve once the port is open. */
  static listen(o: NvmfTargetOptions): Promise<NvmfTarget> {
    const mt = o.maxTransfer ?? 256 * 1024;
    if (!Number.isInteger(mt) || mt < 4096 || mt % 4096 !== 0 || (mt & (mt - 1)) !== 0) {
      return Promise.reject(new RangeError(`maxTransfer must be a power of two of at least 4096, got ${mt}`));
    }
    const ic = o.inCapsule ?? 16384;
    if (!Number.isInteger(ic) || ic < 0 || ic % 16 !== 0) return Promise.reject(new RangeError(`inCapsule must be a multiple of 16, got ${ic}`));
    const qe = o.queueEntries ?? 128;
    if (!Number.isInteger(qe) || qe < 2 || qe > 65536) return Promise.reject(new RangeError(`queueEntries must be 2..65536, got ${qe}`));
    const nq = o.maxIoQueues ?? 8;
    if (!Number.isInteger(nq) || nq < 1 || nq > 65535) return Promise.reject(new RangeError(`maxIoQueues must be 1..65535, got ${nq}`));
    const h2c = o.maxH2cData ?? mt;
    if (!Number.isInteger(h2c) || h2c < 4096 || h2c % 4 !== 0) return Promise.reject(new RangeError(`maxH2cData must be a multiple of 4 of at least 4096, got ${h2c}`));
    const chunk = o.c2hChunk ?? 0;
    if (!Number.isInteger(chunk) || chunk < 0) return Promise.reject(new RangeError(`c2hChunk must be a whole number of bytes, got ${chunk}`));
    const nw = o.workers ?? defaultWorkers();
    if (!Number.isInteger(nw) || nw < 0) return Promise.reject(new RangeError(`workers must be a whole number, got ${nw}`));
    const cpus = o.cpus;
    if (cpus !== undefined && (cpus.length === 0 || cpus.some((c) => !Number.isInteger(c) || c < 0 || c > MAX_CPU))) {
      return Promise.reject(new RangeError(`cpus must be a non-empty list of CPU numbers 0..${MAX_CPU}, got ${JSON.stringify(cpus)}`));
    }
    return NvmfTarget.#start(o, nw);
  }

  static async #start(o: NvmfTargetOptions, nw: number): Promise<NvmfTarget> {
    const libc = await loadLibc();
    const host = o.host ?? "127.0.0.1";
    const l = await Listener.listen({ host, port: o.port ?? 4420, libc });
    let t: NvmfTarget;
    try {
      t = new NvmfTarget(libc, l, host, l.port, o);
    } catch (e) {
      l.close();
      throw e;
    }
    if (LISTENER_SLEEPS) {
      t.#sleep = await GroupSleep.start(libc);
      if (t.#sleep !== null) {
        t.#sleep.add(l.fd);
        t.#group.sleep = t.#sleep;
      } else t.log?.("listener: no helper thread to sleep on its sockets; it naps on timers");
    }
    if (nw > 0) {
      try {
        t.#pool = await WorkerPool.start(libc, t, nw, t.subsystems, {
          limits: t.limits,
          digests: t.digests,
          c2hSuccess: t.c2hSuccess,
          maxH2cData: t.maxH2cData,
          c2hChunk: t.c2hChunk,
          faults: o.workerFaults ?? [],
          cpus: o.cpus ?? [],
          idleHelpers: o.idleHelpers ?? false,
        });
      } catch (e) {
        t.log?.(`workers: could not start (${(e as Error).message}); IO is served in the listener's thread`);
      }
    }
    t.#loop = t.#run();
    return t;
  }

  /** Workers serving IO queues (0: this thread serves them). */
  get workers(): number {
    return this.#pool?.workers.filter((w) => w.alive).length ?? 0;
  }

  /**
   * Times the Workers waited for work with a timeout (epoll_wait), summed over
   * every Worker started: each is a sleep and a wake-up. A Worker that polls
   * (the backing device's `adaptive` or `poll` wait mode) keeps this far below
   * one per IO for a host that keeps IO flowing; in `interrupt` mode it is one
   * or more per IO.
   */
  get workerSleeps(): number {
    let n = 0;
    for (const w of this.#pool?.workers ?? []) n += w.sleeps;
    return n;
  }

  /**
   * Stop Worker `i` as a crash would (tests): its connections fail at once
   * and their hosts reconnect to the others; resolves once the Worker ended
   * itself and its queue was released ("stopped"), or after `graceMs`
   * (default 10 s) without an answer ("unresponsive").
   */
  killWorker(i: number, graceMs?: number): Promise<WorkerEnd> {
    const w = this.#pool?.workers[i];
    if (!w) return Promise.reject(new RangeError(`no worker ${i}`));
    return w.kill(graceMs);
  }

  /** True if Worker `i` exists and runs. */
  workerAlive(i: number): boolean {
    return this.#pool?.workers[i]?.alive ?? false;
  }

  /** Which Worker serves each IO queue of controller `cntlid` (qid → Worker index; -1: this thread). */
  queueWorkers(cntlid: number): Map<number, number> {
    const out = new Map<number, number>();
    const c = this.controllers.get(cntlid);
    for (const [qid, q] of (c && this.#queues.get(c)) ?? []) if (qid !== 0) out.set(qid, q instanceof RemoteQueue ? q.worker : -1);
    return out;
  }

  /**
   * Passes of the listener's loop so far (each accepts and polls its
   * connections once). Diagnostics and tests: an idle listener makes none.
   */
  get listenerPasses(): number {
    return this.#passes;
  }

  /** One pass: accept what waits, serve the listener's connections; the number of events. */
  #serve(): number {
    this.#passes++;
    let n = 0;
    try {
      for (let s = this.#listener.accept(); s !== null; s = this.#listener.accept()) {
        n++;
        this.#accept(s);
      }
    } catch (e) {
      this.log?.(`accept: ${(e as Error).message}`);
    }
    // The device's queue may have resumed after a reset since the last pass (no completion says so).
    for (let i = 0; i < this.#backends.length; i++) this.#backends[i].retryWaiting?.();
    return n + this.#group.pass(0);
  }

  /**
   * The listener's loop: a pass (accept, poll its connections), a few more
   * after activity, then sleep until one of its fds has something (through
   * the helper thread of {@link GroupSleep}); without one, timer naps that
   * double up to a cap.
   */
  async #run(): Promise<void> {
    let idle = 0;
    while (!this.#closing) {
      idle = this.#serve() > 0 ? 0 : idle + 1;
      const workers = this.#pool !== null && this.#pool.workers.some((w) => w.alive);
      const spin = workers ? SPIN_PASSES_WORKERS : SPIN_PASSES;
      if (idle < spin) {
        await yieldNow();
        continue;
      }
      const sl = this.#sleep;
      if (sl !== null && !this.#group.blocked) {
        // Arm, look once more (what came before the arm), then sleep: nothing is missed.
        sl.arm();
        if (this.#serve() > 0) {
          idle = 0;
          await yieldNow();
          continue;
        }
        await sl.sleep();
        idle = 0;
        continue;
      }
      const cap = workers ? IDLE_NAP_WORKERS_MS : IDLE_NAP_MS;
      // Naps double up to the cap (1, 2, 4... ms): a ramp of 1 ms steps took ~100 wake-ups after
      // each keep-alive to reach a 20 ms cap, each wake-up 1-2 ms of a vCPU under TCG.
      await new Promise((r) => setTimeout(r, Math.min(cap, 2 ** Math.min(idle - spin, 10))));
    }
  }

  /** Export another subsystem (discovery controllers with change notices enabled are told). */
  addSubsystem(s: SubsystemOptions): void {
    if (typeof s.nqn !== "string" || s.nqn.length === 0 || s.nqn.length > 223) throw new RangeError(`bad subsystem NQN ${JSON.stringify(s.nqn)}`);
    if (s.nqn === DISCOVERY_NQN || this.#subs.has(s.nqn)) throw new RangeError(`subsystem ${s.nqn} exists`);
    this.#backends.push(...s.namespaces);
    this.#subs.set(s.nqn, {
      nqn: s.nqn,
      namespaces: [...s.namespaces],
      allowHosts: s.allowHosts ? new Set(s.allowHosts) : null,
      serial: s.serial,
      model: s.model,
    });
    this.#discoveryChanged();
  }

  /** Replace a subsystem's allow-list (null: any host). Controllers already connected stay. */
  setAllowedHosts(nqn: string, hosts: string[] | null): void {
    const s = this.#subs.get(nqn);
    if (!s) throw new RangeError(`no subsystem ${nqn}`);
    s.allowHosts = hosts ? new Set(hosts) : null;
    this.#discoveryChanged();
  }

  /** True if `nqn` is exported. */
  hasSubsystem(nqn: string): boolean {
    return this.#subs.has(nqn);
  }

  #discoveryChanged(): void {
    this.genctr++;
    for (const c of this.controllers.values()) if (c.discovery) c.discoveryChanged();
  }

  #accept(sock: Socket): void {
    this.stats.connections++;
    if (this.#closing) return sock.close();
    const w = new SockWire(sock);
    const c = new TargetConn(this, w);
    this.#conns.add(c);
    this.#wires.set(c, w);
    this.#group.add(w, c);
  }

  /** The discovery log a host sees: the current discovery subsystem, then the subsystems it may use. */
  discoveryLog(hostnqn: string): Uint8Array {
    const a = this.address === "0.0.0.0" || this.address === "::" ? "127.0.0.1" : this.address;
    const e = {
      trtype: TRTYPE_TCP,
      adrfam: a.includes(":") ? AdrFam.IPV6 : AdrFam.IPV4,
      treq: TREQ_DISABLE_SQFLOW,
      portid: 1,
      cntlid: CNTLID_DYNAMIC,
      asqsz: 32,
      trsvcid: String(this.port),
      traddr: a,
    };
    const entries: DiscoveryEntry[] = [{ ...e, subtype: SubType.CURRENT_DISCOVERY, subnqn: DISCOVERY_NQN }];
    for (const s of this.#subs.values()) {
      if (s.allowHosts === null || s.allowHosts.has(hostnqn)) entries.push({ ...e, subtype: SubType.NVM, subnqn: s.nqn });
    }
    return encodeDiscoveryLog(this.genctr, entries);
  }

  /** Bind a Connect: a new controller on qid 0, else the existing controller it names. */
  connect(r: ConnectRequest): FabricsController | { sf: number; dw0: number } | null {
    const refuse = (sf: number, dw0 = 0) => {
      this.stats.connectRefused++;
      this.log?.(`connect refused: qid ${r.qid} host ${r.hostnqn} subsystem ${r.subnqn} status 0x${sf.toString(16)}`);
      return { sf, dw0 };
    };
    const disc = r.subnqn === DISCOVERY_NQN;
    const sub = disc ? null : this.#subs.get(r.subnqn);
    if (sub === undefined) return refuse(ConnectStatus.INVALID, connectIpo(true, ConnectData.SUBNQN));
    if (sub !== null && sub.allowHosts !== null && !sub.allowHosts.has(r.hostnqn)) {
      return refuse(ConnectStatus.INVALID_HOST, connectIpo(true, ConnectData.HOSTNQN));
    }
    if (r.sqsize === 0 || r.sqsize >= this.limits.queueEntries) return refuse(ConnectStatus.INVALID, connectIpo(false, FabricsSqe.SQSIZE));
    if (r.qid === 0) {
      if (r.cntlid !== CNTLID_DYNAMIC) return refuse(ConnectStatus.INVALID, connectIpo(true, ConnectData.CNTLID));
      let id = this.#nextCntlid;
      while (this.controllers.has(id)) id = id >= 0xffef ? 1 : id + 1;
      this.#nextCntlid = id >= 0xffef ? 1 : id + 1;
      const c: FabricsController = sub === null
        ? new DiscoveryController(id, r.hostnqn, r.hostid, r.kato, this.limits, (h) => this.discoveryLog(h))
        : new NvmController(id, sub, r.hostnqn, r.hostid, r.kato, this.limits, () => this.#resetController(c));
      this.controllers.set(id, c);
      this.#queues.set(c, new Map<number, QueueRef>([[0, r.conn]]));
      this.#pool?.controllerAdded(c);
      this.log?.(`controller ${id}: ${disc ? "discovery" : sub!.nqn} for ${r.hostnqn}, kato ${c.kato} ms`);
      this.#armKeepAlive();
      return c;
    }
    const c = this.controllers.get(r.cntlid);
    if (c === undefined || c.dead || c.discovery || c.subsystem !== sub || c.hostnqn !== r.hostnqn) {
      return refuse(ConnectStatus.INVALID, connectIpo(true, ConnectData.CNTLID));
    }
    if (r.qid > c.ioQueues) return refuse(ConnectStatus.INVALID, connectIpo(false, FabricsSqe.QID));
    if (!c.ready) return refuse(Status.SEQUENCE_ERROR);
    const qs = this.#queues.get(c)!;
    if (qs.has(r.qid)) return refuse(ConnectStatus.BUSY);
    c.model.noteIoQueueCreated();
    c.lastSeen = performance.now();
    const w = this.#wires.get(r.conn);
    if (this.#pool !== null && w !== undefined && this.#pool.serves(sub!.nqn)) {
      // A Worker answers this Connect and serves the queue from now on.
      this.#wires.delete(r.conn);
      this.#conns.delete(r.conn);
      const digests = r.conn.digests;
      r.conn.detach();
      const fd = w.release();
      qs.set(r.qid, this.#pool.handOff(fd, r.qid, c, r.sqsize, r.sqflowOff, r.cid, digests));
      return null;
    }
    qs.set(r.qid, r.conn);
    return c;
  }

  /** CC.EN cleared: drop the IO queues (the host reconnects them after enabling again). */
  #resetController(c: FabricsController): void {
    const qs = this.#queues.get(c);
    if (!qs) return;
    for (const [qid, q] of qs) if (qid !== 0) q.destroy();
  }

  /** A connection closed: its queue goes; an admin queue takes its controller with it. */
  connClosed(conn: TargetConn): void {
    this.#conns.delete(conn);
    this.#wires.delete(conn);
    const c = conn.ctrl;
    if (c === null) return;
    const qs = this.#queues.get(c);
    if (qs?.get(conn.qid) === conn) qs.delete(conn.qid);
    if (conn.qid === 0) this.#dropController(c, "admin queue closed");
  }

  /** A Worker's queue ended (closed by either side, or its Worker died). */
  remoteClosed(q: RemoteQueue): void {
    const qs = this.#queues.get(q.ctrl);
    if (qs?.get(q.qid) === q) qs.delete(q.qid);
  }

  #dropController(c: FabricsController, why: string): void {
    if (c.dead) return;
    c.dead = true;
    c.dropPending();
    this.#pool?.controllerGone(c);
    this.controllers.delete(c.cntlid);
    const qs = this.#queues.get(c);
    this.#queues.delete(c);
    this.log?.(`controller ${c.cntlid}: gone (${why})`);
    if (qs) for (const q of qs.values()) q.destroy();
    if (this.controllers.size === 0 && this.#timer !== null) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
  }

  /**
   * Check again at the earliest deadline (a controller's last traffic seen
   * plus its KATO), as nvmet's keep-alive work re-arms on traffic: an idle
   * target wakes about once per KATO, not on a period (every wake-up costs a
   * TCG guest 1-6 ms of vCPU). Traffic counted by Workers is seen at the
   * check, so a host that stops is failed within 2 KATO (nvmet: the same).
   */
  #armKeepAlive(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    if (this.#closing) return;
    let next = Infinity;
    for (const c of this.controllers.values()) if (c.kato > 0) next = Math.min(next, c.lastSeen + katoBound(c.kato));
    if (next === Infinity) return;
    const delay = this.#checkMs ?? Math.max(50, Math.ceil(next - performance.now()) + 1);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#keepAliveWakes++;
      this.checkKeepAlive();
      this.#armKeepAlive();
    }, delay);
  }

  /** Times the keep-alive timer has fired (an idle target's wake-ups). */
  get keepAliveWakes(): number {
    return this.#keepAliveWakes;
  }

  /**
   * Fail every controller whose host has been silent for longer than its
   * KATO (nvmet rounds KATO up to whole seconds; so does this). Runs on a
   * timer; callable directly (tests).
   */
  checkKeepAlive(now: number = performance.now()): number {
    let n = 0;
    for (const c of [...this.controllers.values()]) {
      if (c.kato <= 0) continue;
      const a = c.activity[0];
      // IO counted since the last check, or commands still running on the backend: traffic now.
      const busy = [...(this.#queues.get(c)?.values() ?? [])].some((q) => q.inflight > 0 && q.qid !== 0);
      if (a !== c.activitySeen || busy) {
        c.activitySeen = a;
        c.lastSeen = Math.max(c.lastSeen, performance.now());
      }
      if (busy) continue;
      if (now - c.lastSeen > katoBound(c.kato)) {
        this.stats.keepAliveExpired++;
        n++;
        this.#dropController(c, `keep-alive timeout (${c.kato} ms)`);
      }
    }
    return n;
  }

  /** Drop every connection (a network failure as hosts see it), Workers' too. */
  dropAll(): void {
    for (const qs of this.#queues.values()) for (const q of [...qs.values()]) if (q instanceof RemoteQueue) q.destroy();
    for (const c of [...this.#conns]) c.destroy();
  }

  /** Stop listening, drop every connection and controller, stop the Workers. Backends stay open (their owner closes them). */
  async close(): Promise<void> {
    if (this.#closing) return this.#loop;
    this.#closing = true;
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    this.#listener.close();
    this.#sleep?.wake();
    this.dropAll();
    for (const c of [...this.controllers.values()]) this.#dropController(c, "target closed");
    await this.#pool?.close();
    this.#group.closeAll();
    await this.#loop;
    await this.#sleep?.close();
  }

  /** Subsystems exported (the backends of each). */
  get subsystems(): Subsystem[] {
    return [...this.#subs.values()];
  }
}
