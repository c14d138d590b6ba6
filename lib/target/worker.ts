/**
 * A target Worker (a poll group, as SPDK's nvmf target has them): started by
 * the target's {@link WorkerPool}, it opens its namespaces in this thread
 * (for a device, an IO queue pair of its own from `createQueue()`), adopts
 * the IO connections the listener hands it after their Connect, and serves
 * their Read and Write straight onto that queue in one loop: poll(2) over
 * its sockets, recv, parse, submit, reap completions, send. Nothing crosses
 * threads per IO; the listener's thread hears of connections closing, and
 * runs the rare IO commands that are not Read or Write (Flush, Write Zeroes,
 * DSM...) on the controller's model. The loop blocks in poll when idle and
 * wakes for the listener's messages through an eventfd.
 * @module
 */
import { loadLibc } from "../ffi/mod.ts";
import type { Libc } from "../ffi/types.ts";
import { Socket } from "../sock/mod.ts";
import { openQueue, type QueueHandle, type WorkerQueue } from "../worker/mod.ts";
import { FileMedia } from "../sim/media.ts";
import { type BackingDevice, type BlockBackend, DevBackend, MediaBackend } from "./backend.ts";
import type { AdminReply, ControllerLimits, FabricsController, Subsystem } from "./controller.ts";
import type { ConnWire, TargetConn as TargetConnT, TargetFault } from "./conn.ts";
import { TargetConn } from "./conn.ts";
import { PollGroup, SockWire } from "./poll.ts";
import { SharedMedia, type WorkerNamespace } from "./shared.ts";
import { type ConnectRequest, type ConnHost, type DigestPolicy, type TargetStats, zeroStats } from "./server.ts";
import type { Reply } from "./nvm.ts";
import { type FromWorker, KILLED, SLEEPS, type ToWorker, type WorkerFault, type WorkerInit } from "./pool.ts";
import { envCount, envOf } from "../ffi/env.ts";
import { busyTurnsPerMacrotask, microtaskTurn, yieldMacrotask as yieldNow } from "../ffi/yield.ts";
import { Gap, TargetTrace, targetTraceOn } from "./trace.ts";
import { cpuSet, idleHelpers } from "./spec-parse.ts";
import { IrqIndex, VectorGate, type VectorGateSpec, type WaitMode } from "../irq/mod.ts";
import { type SteeredIrq, steerIrq } from "./steer.ts";
import { normalizePciAddress } from "../vfio/sysfs.ts";

interface Scope {
  addEventListener(type: "message", f: (e: MessageEvent) => void): void;
  postMessage(m: unknown): void;
  close(): void;
}
const scope = globalThis as unknown as Scope;


/**
 * Sleep timeout while something may still need the event loop (commands
 * received or on the device, a forwarded command's reply, a few sleeps after
 * a wake-up, the first seconds): the longest a port message or a timer then
 * waits. An idle Worker sleeps without one: the listener's messages, kills
 * and the device thread's posts to its queue's port wake it through its
 * eventfd. 100 ms: at 10 an idle Worker woke ~100 times a second, each wake
 * and turn 1-2 ms of a vCPU in the TCG guest, and at QD1 a host's IO
 * alternates between the Workers of its queues (issue 16).
 * TSNVME_TARGET_IDLE_MS overrides it (read once).
 */
const IDLE_MS = envCount("TSNVME_TARGET_IDLE_MS", 100, 1000);
/**
 * Passes between event-loop turns while busy (timers, the queue's own
 * housekeeping; messages get a turn as soon as they are posted).
 * TSNVME_TARGET_YIELD_PASSES overrides it (read once). A spinning (Deno)
 * Worker makes ~12 passes per QD1 IO and a turn costs 1-6 ms in the TCG
 * guest, yet 4096 did not help there: Deno with 2 Workers ran 61-115 IOPS
 * against 161-462 at 256 in two loaded boots (issue 16), so 256 stays.
 */
const PASSES_PER_YIELD = envCount("TSNVME_TARGET_YIELD_PASSES", 256);
/**
 * Busy turns per macrotask turn: the others are a microtask turn, enough for
 * the queue's own pump; timers (the queue's nap) wait at most this many busy
 * turns, and messages and idle timeouts still get a macrotask at once. The
 * runtime's {@link busyTurnsPerMacrotask} unless TSNVME_TARGET_MACRO_EVERY
 * says (read once; 1: every busy turn a macrotask).
 */
const MACRO_EVERY = envCount("TSNVME_TARGET_MACRO_EVERY", busyTurnsPerMacrotask);
/**
 * Busy passes per look at the sockets while only the device has work (every
 * command received is on the queue): the passes between only reap the
 * queue, a load from memory, where a look is a poll(2) (5-20 µs in a TCG
 * guest; natively ~14 of them per QD1 IO on the software controller). A
 * look that found something makes the next pass look too (a stream of
 * capsules at depth). TSNVME_TARGET_LOOK_EVERY overrides it (1: every pass;
 * read once).
 */
const LOOK_EVERY = envCount("TSNVME_TARGET_LOOK_EVERY", 8);
/**
 * Passes an adaptive Worker keeps polling, without sleeping, after its last
 * event or completion (TSNVME_TARGET_IDLE_SPIN overrides it, read once): a
 * QD1 host's next capsule comes a round trip after the reply, sooner than a
 * sleeping thread is woken and scheduled. A pass is a zero-timeout poll of
 * the sockets or a reap, ~1 µs natively (a window of a few ms) and 5-20 µs in
 * a TCG guest. Measured in one quiet guest boot (issue 16, QD1, 1 Worker,
 * pinned): Deno 1,387 / 1,193 IOPS polling against 1,055 / 651 asleep, Bun
 * 1,523 / 1,792 against 1,028 / 1,164, nvmet 1,307; 200,000 passes did no better.
 */
const IDLE_SPIN = ((): number => {
  const e = envOf("TSNVME_TARGET_IDLE_SPIN"), v = Number(e);
  return e !== undefined && e !== "" && Number.isInteger(v) && v >= 0 ? v : 2000;
})();

/**
 * How a Worker waits for its sockets and its queue: the backing device's
 * wait mode (`interrupts` when it was opened), or TSNVME_TARGET_WAIT (read
 * once, for A/B). `adaptive` and `poll`: spin while anything is in flight and
 * for {@link IDLE_SPIN} passes after, then sleep in epoll_wait until a socket or
 * a message wakes it; its queue's vector stays masked. `interrupt`: sleep
 * whenever a pass finds nothing, on the sockets and on the queue's own vector,
 * which then signals an eventfd in the same epoll set; the thriftiest with
 * CPU, ~3.8 context switches per QD1 IO on its CPU against 0.01-0.4 polling.
 */
function waitModeOf(queue: WorkerQueue | null): WaitMode {
  const e = envOf("TSNVME_TARGET_WAIT");
  if (e === "adaptive" || e === "interrupt" || e === "poll") return e;
  return queue?.handle.waitMode ?? "adaptive";
}
/**
 * Whether the Worker's group waits in epoll_wait(2) over an epoll set of its
 * own rather than poll(2) over a pollfd array built per pass
 * (TSNVME_TARGET_EPOLL=0: poll; read once). With epoll the queue's vector
 * eventfd is edge-triggered, so a QD1 IO that sleeps for its completion
 * makes 4 syscalls, not 5 (no read of the eventfd), and the kernel does not
 * register and unregister a wait on each fd per sleep.
 */
const EPOLL = envOf("TSNVME_TARGET_EPOLL") !== "0";
/**
 * Whether a pinned Worker points its vector's IRQ at its own CPU
 * (TSNVME_TARGET_STEER=0: no; read once). Otherwise the kernel picks the CPU,
 * and an interrupt there wakes the Worker's CPU with an IPI.
 */
const STEER = envOf("TSNVME_TARGET_STEER") !== "0";
/** Consecutive timed-out sleeps that found completions after which the vector is deemed silent and the Worker spins again. */
const IRQ_MISSES = 3;

/**
 * The Worker's queue vector signalling an eventfd in this thread's poll set
 * instead of the irq helper's (VFIO_DEVICE_SET_IRQS on the vector the queue
 * owns alone): the kernel wakes this thread directly, one hop, as nvmet's
 * kworker is woken. Given back to the helper's eventfd when the Worker ends.
 */
class OwnVector {
  /** The eventfd the vector signals. */
  readonly fd: number;
  /** Interrupts read from it (edges seen, when edge-triggered in an epoll group). */
  count = 0;
  readonly #libc: Libc;
  readonly #spec: VectorGateSpec;
  readonly #buf = new Uint8Array(8);
  readonly #dv = new DataView(this.#buf.buffer);
  #attached = false;
  /** The vector's IRQ, when steered to the Worker's CPU (put back on release). */
  steered: SteeredIrq | null = null;

  private constructor(libc: Libc, spec: VectorGateSpec, fd: number) {
    this.#libc = libc;
    this.#spec = spec;
    this.fd = fd;
  }

  /** Take the vector `spec` names, or null (no such vector, or VFIO refused). */
  static take(libc: Libc, spec: VectorGateSpec | undefined): OwnVector | null {
    if (spec === undefined) return null;
    const fd = libc.eventfd(0, 0x800 | 0x80000); // EFD_NONBLOCK | EFD_CLOEXEC
    if (fd < 0) return null;
    const v = new OwnVector(libc, spec, fd);
    const g = new VectorGate(libc, { ...spec, eventfd: fd });
    g.unmask();
    if (g.failed !== 0) {
      libc.close(fd);
      return null;
    }
    v.#attached = true;
    return v;
  }

  /** Clear the eventfd (poll found it readable). */
  read(): void {
    if (this.#libc.read(this.fd, this.#buf) === 8) this.count += Number(this.#dv.getBigUint64(0, true));
  }

  /** The vector back to the helper's eventfd, this one closed. Idempotent. */
  release(): void {
    if (!this.#attached) return;
    this.#attached = false;
    this.steered?.restore();
    this.steered = null;
    new VectorGate(this.#libc, this.#spec).unmask();
    this.#libc.close(this.fd);
  }
}

/** A controller as this Worker knows it: its id, subsystem (this thread's backends) and traffic counter. */
class WorkerController {
  readonly discovery = false as const;
  readonly cntlid: number;
  readonly subsystem: Subsystem;
  readonly maxTransfer: number;
  activity: Int32Array;
  activitySeen = 0;
  lastSeen = 0;
  kato = 0;
  dead = false;
  readonly ready = true; // its IO queues exist only while it is enabled: the listener drops them on CC.EN = 0
  readonly ioQueues = 0xffff;
  readonly #w: TargetWorker;

  constructor(w: TargetWorker, cntlid: number, subsystem: Subsystem, maxTransfer: number, activity: SharedArrayBuffer) {
    this.#w = w;
    this.cntlid = cntlid;
    this.subsystem = subsystem;
    this.maxTransfer = maxTransfer;
    this.activity = new Int32Array(activity);
  }

  /** IO commands other than Read/Write run on the model, in the listener's thread. */
  execute(qid: number, sqe: Uint32Array, data: Uint8Array | null, reply: Reply): void {
    this.#w.forward(this.cntlid, qid, sqe, data, reply);
  }

  /** No IO command but Read moves data to the host; Read never comes here. */
  transferLength(): number {
    return 0;
  }

  dropPending(): void {}
}

/** The Worker's state: its group, backends, controllers and connections. */
class TargetWorker implements ConnHost {
  readonly limits: ControllerLimits;
  readonly digests: DigestPolicy;
  readonly c2hSuccess: boolean;
  readonly maxH2cData: number;
  readonly c2hChunk: number;
  readonly stats: TargetStats = zeroStats();
  readonly onCommand?: (qid: number, sqe: Uint32Array, conn: TargetConnT) => TargetFault;
  /** The IO path's timing trace (TSNVME_TARGET_TRACE), or null. */
  readonly trace: TargetTrace | null;
  readonly #libc: Libc;
  readonly #group: PollGroup;
  readonly #subs = new Map<string, Subsystem>();
  /** Every namespace's backend (IO held for a device reset is retried after each event-loop turn). */
  readonly #backends: BlockBackend[] = [];
  readonly #ctrls = new Map<number, WorkerController>();
  readonly #conns = new Map<number, TargetConn>();
  /** The same connections as a list: the loop sums their commands every pass (no iterator). */
  #connList: TargetConn[] = [];
  readonly #ids = new Map<TargetConn, number>();
  readonly #replies = new Map<number, Reply>();
  readonly #queue: WorkerQueue | null;
  readonly #posted: Int32Array;
  readonly #wakeFd: number;
  readonly #wakeBuf = new Uint8Array(8);
  /** The queue's vector, when this thread sleeps on it (else null: it spins while IO is on the device). */
  #vector: OwnVector | null = null;
  /** Passes it polls after its last event or completion before sleeping (0 in interrupt mode). */
  readonly #idleSpin: number;
  /** The wake eventfd fired since the last event-loop turn (a message may wait on a port). */
  #kicked = false;
  /** Set by the "crash" test fault: the loop throws at its next step. */
  crashNext = false;
  #received = 0;
  #nextKey = 1;
  #stopping = false;
  readonly #idleHelpers: boolean;

  constructor(libc: Libc, init: WorkerInit, queue: WorkerQueue | null) {
    this.#libc = libc;
    this.#queue = queue;
    if (init.cpu >= 0) {
      // pid 0: this thread only (the Worker's), not the listener's process.
      if (libc.schedSetaffinity(0, cpuSet([init.cpu])) !== 0) throw new Error(`cannot pin the Worker to CPU ${init.cpu} (errno ${libc.errno()})`);
    }
    this.#idleHelpers = init.idleHelpers;
    if (this.#idleHelpers) idleHelpers(libc);
    this.limits = init.limits;
    this.digests = init.digests;
    this.c2hSuccess = init.c2hSuccess;
    this.maxH2cData = init.maxH2cData;
    this.c2hChunk = init.c2hChunk;
    this.#posted = new Int32Array(init.posted);
    this.#wakeFd = init.wakeFd;
    this.trace = targetTraceOn ? new TargetTrace(`target worker (wake fd ${init.wakeFd})`) : null;
    this.onCommand = init.faults.length > 0 ? faultHook(init.faults, this) : undefined;
    const dev = queue ? deviceOf(queue, init) : null;
    for (const s of init.subsystems) {
      const namespaces = s.namespaces.map((n) => backendOf(n, dev));
      this.#subs.set(s.nqn, { nqn: s.nqn, namespaces, allowHosts: null });
      this.#backends.push(...namespaces);
    }
    this.#group = new PollGroup(libc, { epoll: EPOLL });
    this.#group.trace = this.trace;
    // The listener's messages are counted in the shared word, not by the eventfd: its edges need no
    // read. An edge also marks the next turn due: the device's thread writes it after posting to the
    // queue's port (wakeOn), whose messages only turns deliver (on Deno not always the first: the
    // queue counts them, see controlPending).
    const kick = () => {
      this.#kicked = true;
    };
    this.#group.addExtra({ fd: this.#wakeFd, onReadable: () => (void libc.read(this.#wakeFd, this.#wakeBuf), kick()), onEdge: kick });
    queue?.wakeOn(this.#wakeFd);
    // This loop rings, reaps and waits for the queue (spinning, or asleep on its own vector). The
    // queue's own pump runs only in this loop's event-loop turns: it must never arm the vector
    // (natively 0.3 interrupts and irq-helper wake-ups per QD1 IO in the TCG guest that nobody
    // waited for) nor mask it.
    if (queue !== null) queue.queue.setWaitMode("poll");
    const mode = waitModeOf(queue);
    this.#idleSpin = mode === "interrupt" ? 0 : IDLE_SPIN;
    if (queue !== null && mode === "interrupt") {
      const v = OwnVector.take(libc, queue.handle.irq?.gate);
      if (v !== null) {
        this.#vector = v;
        if (init.cpu >= 0 && STEER && init.device !== null) {
          const gate = queue.handle.irq!.gate!;
          const r = steerIrq(normalizePciAddress(init.device.target) ?? init.device.target, gate.vector, init.cpu, gate.index === IrqIndex.MSIX);
          if (typeof r === "string") scope.postMessage({ op: "log", message: `its vector stays where the kernel put it: ${r}` } satisfies FromWorker);
          else v.steered = r;
        }
        this.#group.addExtra({ fd: v.fd, onReadable: () => v.read(), onEdge: () => v.count++ });
      }
    }
  }

  /** A message from the device's thread to this Worker's queue is on its way (only a turn delivers it). */
  #controlPending(): boolean {
    return this.#queue !== null && this.#queue.controlPending;
  }

  /** Give the vector back to the irq helper and close the group's epoll set (the Worker is ending). Idempotent. */
  releaseFds(): void {
    this.#vector?.release();
    this.#group.close();
  }

  /** Bind a Connect: never here (the listener did it). */
  connect(_r: ConnectRequest): null {
    return null;
  }

  connClosed(conn: TargetConn): void {
    const id = this.#ids.get(conn);
    if (id === undefined) return;
    this.#ids.delete(conn);
    this.#conns.delete(id);
    this.#connList = [...this.#conns.values()];
    scope.postMessage({ op: "closed", id } satisfies FromWorker);
  }

  forward(cntlid: number, qid: number, sqe: Uint32Array, data: Uint8Array | null, reply: Reply): void {
    const key = this.#nextKey++;
    this.#replies.set(key, reply);
    scope.postMessage({ op: "exec", key, cntlid, qid, sqe: sqe.slice(), data: data ? data.slice() : null } satisfies FromWorker);
  }

  onMessage(m: ToWorker): void {
    this.#received++;
    switch (m.op) {
      case "ctrl": {
        const s = this.#subs.get(m.nqn);
        if (s) this.#ctrls.set(m.cntlid, new WorkerController(this, m.cntlid, s, m.maxTransfer, m.activity));
        break;
      }
      case "ctrl-gone": {
        const c = this.#ctrls.get(m.cntlid);
        this.#ctrls.delete(m.cntlid);
        if (c) for (const conn of [...this.#conns.values()]) if (conn.ctrl === (c as unknown as FabricsController)) conn.destroy();
        break;
      }
      case "conn": {
        const c = this.#ctrls.get(m.cntlid);
        const sock = Socket.adopt(this.#libc, m.fd);
        const w = new SockWire(sock, new Int32Array(m.own));
        if (c === undefined) {
          // Its controller went while the connection was on its way: the host reconnects.
          w.destroy();
          scope.postMessage({ op: "closed", id: m.id } satisfies FromWorker);
          break;
        }
        this.stats.connections++;
        const conn = new TargetConn(this, w as ConnWire, {
          qid: m.qid,
          ctrl: c as unknown as FabricsController, // the IO half of a controller: see WorkerController
          sqsize: m.sqsize,
          sqflowOff: m.sqflowOff,
          cid: m.cid,
          digests: m.digests,
        });
        this.#conns.set(m.id, conn);
        this.#connList = [...this.#conns.values()];
        // A host's IO starts: threads the runtime started since (a JIT or GC helper) yield too.
        if (this.#idleHelpers) idleHelpers(this.#libc);
        this.#ids.set(conn, m.id);
        this.#group.add(w, conn);
        break;
      }
      case "drop":
        this.#conns.get(m.id)?.destroy();
        break;
      case "reply": {
        const r = this.#replies.get(m.key);
        this.#replies.delete(m.key);
        r?.(m.r as AdminReply);
        break;
      }
      case "stop":
        this.#stopping = true;
        break;
    }
  }

  /** Commands received and not yet answered, over every connection. */
  #inflight(): number {
    let n = 0;
    const cs = this.#connList;
    for (let i = 0; i < cs.length; i++) n += cs[i].inflight;
    return n;
  }

  /** The poll loop: serve, reap the queue's completions, send; sleep in poll when idle; look at messages when woken. */
  async run(): Promise<void> {
    let passes = 0; // passes that looked at the sockets since the last event-loop turn
    let unlooked = 0; // busy passes since the last look at the sockets
    let found = false; // the last look had events
    let quiet = 0; // passes since the last event or completion
    let misses = 0; // sleeps with commands on the device that timed out without an interrupt
    let busyTurns = 0; // busy turns since the last macrotask
    let bounded = 20; // idle sleeps still bounded by IDLE_MS
    const tr = this.trace;
    while (!this.#stopping) {
      if (Atomics.load(this.#posted, KILLED) !== 0) return this.#vanish();
      if (this.crashNext) throw new Error("test fault: the Worker's loop threw");
      const inflight = this.#inflight();
      const busy = inflight > 0;
      // With its own vector the Worker sleeps while its commands are on the device; the interrupt,
      // a socket or the wake eventfd ends the sleep. Without one it spins while anything is in flight.
      const sleepy = this.#vector !== null;
      const spin = (busy && !sleepy) || quiet < this.#idleSpin;
      // Spinning while everything received is on the device: most passes only reap (no syscall).
      const onDevice = spin && busy && this.#queue !== null && this.#queue.queue.inflight >= inflight;
      const look = !onDevice || found || ++unlooked >= LOOK_EVERY;
      const t0 = tr !== null ? performance.now() : 0;
      let events = 0;
      // Idle (nothing received, nothing on the device, no reply awaited): sleep until an fd wakes it.
      const idle = !busy && this.#replies.size === 0 && (this.#queue === null || this.#queue.queue.inflight === 0);
      // For a few sleeps after a kick, and in the first seconds (before the device's thread has the
      // eventfd), a timeout still bounds how long a port message may wait.
      const wait = spin ? 0 : idle && tr === null && bounded === 0 ? -1 : IDLE_MS;
      if (look) {
        unlooked = 0;
        passes++;
        if (wait !== 0) Atomics.add(this.#posted, SLEEPS, 1);
        events = this.#group.pass(wait);
        found = events > 0;
      }
      if (tr !== null) {
        tr.span(spin ? Gap.BUSY_PASS : events === 0 ? Gap.IDLE_TIMEOUT : Gap.IDLE_WOKEN, t0);
      }
      let reaped = 0;
      if (this.#queue !== null) {
        const q = this.#queue.queue;
        // The queue rings its doorbell from a microtask, and this loop runs many passes between
        // turns: ring what the pass submitted now, or each command waits for the next yield.
        q.ring();
        if (tr !== null) {
          tr.doorbell();
          tr.inLoopReap = true;
        }
        const devBusy = q.inflight > 0;
        reaped = q.processCompletions();
        const woke = reaped; // found after the wait
        if (tr !== null) tr.inLoopReap = false;
        if (reaped > 0) {
          q.ring(); // what the completions' callbacks submitted (R2T-less writes, retries)
          if (tr !== null) tr.doorbell();
          this.#group.flush();
        }
        if (!(sleepy && !spin && wait !== 0 && events === 0 && devBusy && woke > 0)) {
          if (reaped > 0) misses = 0;
        } else if (++misses >= IRQ_MISSES) {
          // Slept its whole timeout while the device had completed: the vector does not reach this thread.
          const v = this.#vector!;
          this.#group.removeExtra(v.fd);
          v.release();
          this.#vector = null;
        }
      }
      quiet = (busy && !sleepy) || events > 0 || reaped > 0 ? 0 : quiet + 1;
      // The event loop gets a turn for messages (woken through the eventfd), after an idle timeout,
      // and every so many passes; never per IO.
      const timedOut = look && wait !== 0 && events === 0;
      if (timedOut && bounded > 0) bounded--;
      const message = this.#received < Atomics.load(this.#posted, 0) || this.#kicked || this.#controlPending();
      // A busy turn waits (up to 8 times as long) for the queue to be empty: its own pump, run in
      // the turn's microtasks, then ends at once instead of spinning on the device's commands.
      const due = passes >= PASSES_PER_YIELD && (this.#queue === null || this.#queue.queue.inflight === 0 || passes >= 8 * PASSES_PER_YIELD);
      if (due && !message && !timedOut && ++busyTurns < MACRO_EVERY) {
        passes = 0;
        await microtaskTurn;
      } else if (message || timedOut || due) {
        passes = 0;
        busyTurns = 0;
        if (this.#kicked) bounded = Math.max(bounded, 3);
        this.#kicked = false;
        const y0 = tr !== null ? performance.now() : 0;
        await yieldNow();
        // Messages posted before the wake-up are delivered within a few turns.
        for (let i = 0; i < 1000 && (this.#received < Atomics.load(this.#posted, 0) || this.#controlPending()); i++) await yieldNow();
        // A turn may have resumed the queue after a reset: IO the backend held for it goes now.
        for (let i = 0; i < this.#backends.length; i++) this.#backends[i].retryWaiting?.();
        if (tr !== null) {
          tr.span(message ? Gap.YIELD_MESSAGE : timedOut ? Gap.YIELD_IDLE : Gap.YIELD_PASSES, y0);
          if (timedOut) tr.idle(y0);
        }
      }
    }
    tr?.report();
    this.#group.closeAll();
    this.releaseFds();
    await this.#queue?.close();
    scope.postMessage({ op: "stopped" } satisfies FromWorker);
    scope.close();
  }

  /**
   * Declared dead by the listener (PoolWorker.kill): end as a crash would.
   * The listener has already taken and shut down every socket, and releases
   * the queue once told; nothing is answered, closed or reaped here. The
   * thread ends in the same synchronous step as the message, so nothing of
   * it (the queue's own pump included) runs after the listener hears it.
   */
  #vanish(): void {
    this.releaseFds(); // the sockets are the listener's now
    scope.postMessage({ op: "stopped" } satisfies FromWorker);
    scope.close();
  }
}

/** The Worker's device: its own queue pair, described as the backends expect. */
function deviceOf(q: WorkerQueue, init: WorkerInit): BackingDevice {
  const d = init.device!;
  return {
    target: d.target,
    info: d.info,
    controller: { identifyData: d.identifyData },
    get closed() {
      return q.closed;
    },
    ns: (nsid) => q.ns(nsid),
    nsList: () => q.nsList(),
    allocBuffer: (n) => q.allocBuffer(n),
    freeBuffer: (b) => q.freeBuffer(b),
    close: () => q.close(),
  };
}

function backendOf(n: WorkerNamespace, dev: BackingDevice | null): BlockBackend {
  switch (n.kind) {
    case "shared":
      return new MediaBackend(new SharedMedia(n.sab), n.blockSize, n.name, n.maxTransfer);
    case "file":
      return new MediaBackend(new FileMedia(n.path, n.size), n.blockSize, n.name, n.maxTransfer);
    case "dev":
      if (dev === null) throw new Error("a device namespace without the Worker's queue");
      return new DevBackend(dev, n.nsid);
  }
}

/** The test faults a Worker applies: each rule once, to the nth matching IO command it sees. */
function faultHook(rules: WorkerFault[], w: TargetWorker): (qid: number, sqe: Uint32Array) => TargetFault {
  const seen = rules.map(() => 0);
  return (_qid, sqe) => {
    const opc = sqe[0] & 0xff;
    for (let i = 0; i < rules.length; i++) {
      const r = rules[i];
      if (r.opcode !== undefined && r.opcode !== opc) continue;
      if (++seen[i] !== (r.nth ?? 1)) continue;
      if (r.fault === "crash") {
        w.crashNext = true; // thrown by the loop itself, outside the connection's error handling
        return undefined;
      }
      if (r.fault !== "stall") return r.fault;
      // The thread blocks as in a long synchronous call: no pass, no event-loop turn.
      const g = new Int32Array(r.gate ?? new SharedArrayBuffer(8));
      Atomics.store(g, 1, 1);
      Atomics.wait(g, 0, 0, r.stallMs ?? (r.gate ? Infinity : 1000));
    }
    return undefined;
  };
}

let worker: TargetWorker | null = null;
scope.addEventListener("message", (e: MessageEvent) => {
  const m = e.data as { type?: string; queue?: QueueHandle | null; data?: WorkerInit } & ToWorker;
  if (m?.type === "tsnvme-queue") {
    void (async () => {
      try {
        const libc = await loadLibc();
        const q = m.queue ? await openQueue(m.queue) : null;
        worker = new TargetWorker(libc, m.data!, q);
        scope.postMessage({ type: "tsnvme-opened" });
      } catch (err) {
        scope.postMessage({ type: "tsnvme-open-failed", message: String((err as Error)?.stack ?? err) });
        return;
      }
      try {
        await worker.run();
      } catch (err) {
        // After it opened, nobody listens for the start protocol's failure: the pool hears a crash,
        // fails its connections and releases its queue. Nothing here runs after the message.
        worker.releaseFds();
        scope.postMessage({ op: "crashed", message: String((err as Error)?.stack ?? err) } satisfies FromWorker);
        scope.close();
      }
    })();
    return;
  }
  if (worker !== null && typeof m?.op === "string") worker.onMessage(m);
});
scope.postMessage({ type: "tsnvme-ready" });
