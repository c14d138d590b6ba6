/**
 * The controller's side of a queue owned by another thread: reserves the
 * queue and its memory, creates it on the device, and drives it through
 * recovery (pause, reset, resume, fail) over a MessagePort.
 * @module
 */
import type { Controller, RemoteQueue } from "../nvme/controller.ts";
import { NotSupportedError } from "../admin/support.ts";
import { DeviceClosedError, type NvmeError } from "../nvme/errors.ts";
import type { NamespaceInfo } from "../io/namespace.ts";
import { type DmaBuffer, type InterruptWord, isFabric } from "../nvme/transport.ts";
import type { WaitMode } from "../irq/adaptive.ts";
import { type ControlMsg, fromWire, HandleState, type QueueHandle, type TcpQueueSpec, toWire } from "./handle.ts";
import type { IrqWord } from "../irq/waiter.ts";
import { type Libc, loadLibc } from "../ffi/mod.ts";

/** Options for creating a queue owned by a Worker. */
export interface QueueOptions {
  /** Ring entries (default: the device's IO queue depth, capped by CAP.MQES). */
  depth?: number;
  /** DMA memory the Worker may allocate buffers (and bounce buffers) from, bytes (default 8 MiB). */
  arenaBytes?: number;
}

/** Replies wait at most this long; a Worker that does not answer is treated as gone. */
const REPLY_MS = 2000;

/**
 * How long {@link QueueWorker.terminate} waits by default for the Worker to
 * let go of its queue before giving up on it (its memory is then kept).
 */
export const STOP_GRACE_MS = 5000;

/** A queue owned by a Worker, seen from the controller's thread. */
export class PortQueue implements RemoteQueue {
  /** Queue id. */
  readonly qid: number;
  /** Ring entries. */
  readonly depth: number;
  /** Submission ring. */
  readonly sq: DmaBuffer;
  /** Completion ring. */
  readonly cq: DmaBuffer;
  /** Every piece of memory this queue owns (rings, PRP pages, arena). */
  readonly memory: DmaBuffer[];
  readonly #port: MessagePort;
  readonly #ctrl: Controller;
  readonly #pending = new Map<number, (v: unknown) => void>();
  #next = 1;
  #released: Promise<void> | null = null;
  /** Called once the queue is released (frees what only the controller's side holds, e.g. a hub slot). */
  onReleased: (() => void) | null = null;
  #fd = -1;
  #libc: Libc | null = null;
  /**
   * A dup of the eventfd the owner sleeps on in poll(2) (-1: none; see
   * WorkerQueue.wakeOn), written after every message posted to it: an owner
   * blocked in a call takes no event-loop turn until something wakes it.
   */
  #wakeFd = -1;
  readonly #one = new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]);
  #stopped: (() => void) | null = null;

  /** Hold the dups of the owner's connections (fabrics) with this thread's libc. */
  holdConnections(libc: Libc): void {
    this.#libc = libc;
  }

  /** The owner is gone (terminated): cut its connection, so the target forgets the queue. */
  cutConnection(): void {
    if (this.#fd >= 0) this.#libc?.shutdown(this.#fd, 2);
  }
  /** Set when the owner stopped answering: its memory must never be unmapped under it. */
  unresponsive = false;

  /** Handle state word and posted-message count (see QueueHandle.state). */
  readonly state: Int32Array = new Int32Array(new SharedArrayBuffer(8));

  /** Wire a reserved queue to its port. */
  constructor(ctrl: Controller, qid: number, depth: number, memory: DmaBuffer[], port: MessagePort) {
    this.#ctrl = ctrl;
    this.qid = qid;
    this.depth = depth;
    this.sq = memory[0];
    this.cq = memory[1];
    this.memory = memory;
    this.#port = port;
    port.onmessage = (e: MessageEvent) => this.#onMessage(e.data as ControlMsg);
  }

  #onMessage(m: ControlMsg): void {
    if (m.op === "ack") {
      const f = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      f?.(m.value);
    } else if (m.op === "timeout") {
      this.#ctrl.remoteTimeout(this, m.cid, m.opcode);
    } else if (m.op === "stalled") {
      this.#ctrl.remoteStalled();
    } else if (m.op === "fd") {
      // A dup of the owner's connection: lets this thread cut it if the owner dies (terminate).
      if (this.#fd >= 0) this.#libc?.close(this.#fd);
      this.#fd = m.fd;
    } else if (m.op === "wake") {
      void loadLibc().then((libc) => {
        this.#libc ??= libc;
        if (this.#wakeFd >= 0) libc.close(this.#wakeFd);
        this.#wakeFd = -1;
        if (this.#released) libc.close(m.fd); // too late: released meanwhile
        else this.#wakeFd = m.fd;
      });
    } else if (m.op === "lost") {
      // A Worker's own connection broke: the controller reconnects every queue, as Linux does.
      void this.#ctrl.recover(fromWire(m.err)).catch(() => {});
    } else if (m.op === "stopped") {
      this.#stopped?.();
    } else if (m.op === "release") {
      // The owner let go (closed its queue): answer, then close this end at once. A message posted
      // just before close() still arrives, on Deno and Bun alike (20/20 each, checked in a Worker).
      void this.release().then(() => {
        this.#post({ op: "released", id: m.id });
        this.closePort();
      });
    }
  }

  #ask(m: ControlMsg & { id: number }): Promise<unknown> {
    // Released: the port is closing and its owner may be gone; no answer can come, so wait for none
    // (a reply timer here would outlive the device's close).
    if (this.#released) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(m.id);
        this.unresponsive = true;
        resolve(undefined);
      }, REPLY_MS);
      this.#pending.set(m.id, (v) => {
        clearTimeout(timer);
        resolve(v);
      });
      this.#post(m);
    });
  }

  /** Post to the owner, and wake it if it sleeps in poll(2) (see {@link #wakeFd}). */
  #post(m: ControlMsg): void {
    Atomics.add(this.state, 1, 1); // counted first: the owner may see the count before the message
    this.#port.postMessage(m);
    if (this.#wakeFd >= 0) this.#libc?.write(this.#wakeFd, this.#one);
  }

  pause(): void {
    this.#post({ op: "pause" });
  }

  /** True when no Worker opened the handle (and now none can); false when one did. */
  #unopened(revoke: boolean): boolean {
    if (revoke) return Atomics.compareExchange(this.state, 0, 0, 2) !== 1;
    return Atomics.load(this.state, 0) === 0;
  }

  async reset(err: NvmeError): Promise<void> {
    // Not opened yet: its rings are still zero, nothing to wait for.
    if (this.#unopened(false)) return;
    await this.#ask({ op: "reset", id: this.#next++, err: toWire(err) });
  }

  resume(): void {
    // Over a fabric the owner reconnects with the controller's (maybe new) cntlid.
    this.#post({ op: "resume", cntlid: this.#ctrl.cntlid });
  }

  async fail(err: NvmeError): Promise<boolean> {
    if (this.#released || this.#unopened(true)) return true;
    await this.#ask({ op: "fail", id: this.#next++, err: toWire(err) });
    return !this.unresponsive;
  }

  async holds(cid: number): Promise<boolean> {
    if (this.#unopened(false)) return false;
    const v = await this.#ask({ op: "holds", id: this.#next++, cid });
    return v !== false; // no answer: assume still held
  }

  /**
   * Ask the owner to let go of the queue before its Worker is terminated: the
   * state word says so at its next IO, a message at its next event-loop turn.
   * True once it answered "stopped" (its views are detached, its connection
   * closed) or never opened the queue; false after `graceMs` without an
   * answer (it may still run on the queue's memory: marked unresponsive, so
   * {@link release} keeps that memory mapped).
   */
  stopOwner(graceMs: number): Promise<boolean> {
    if (this.#released) return Promise.resolve(true);
    for (;;) {
      const st = Atomics.compareExchange(this.state, 0, HandleState.OPENED, HandleState.STOPPING);
      if (st === HandleState.OPENED || st === HandleState.STOPPING) break;
      if (st === HandleState.REVOKED) return Promise.resolve(true);
      // Not opened: revoke it (nobody can open it now), unless a Worker opened it meanwhile.
      if (Atomics.compareExchange(this.state, 0, HandleState.NEW, HandleState.REVOKED) === HandleState.NEW) return Promise.resolve(true);
    }
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => {
        this.#stopped = null;
        this.unresponsive = true;
        resolve(false);
      }, graceMs);
      this.#stopped = () => {
        clearTimeout(timer);
        this.#stopped = null;
        resolve(true);
      };
      this.#post({ op: "kill" });
    });
  }

  /**
   * Delete the queue on the device and free its memory once the device can no
   * longer write it. Idempotent.
   */
  release(): Promise<void> {
    this.#released ??= (async () => {
      await this.#ctrl.removeRemote(this, this.unresponsive ? [] : this.memory);
      if (this.#fd >= 0) this.#libc?.close(this.#fd);
      this.#fd = -1;
      if (this.#wakeFd >= 0) this.#libc?.close(this.#wakeFd);
      this.#wakeFd = -1;
      this.onReleased?.();
      this.#port.onmessage = null;
      for (const f of this.#pending.values()) f(undefined);
      this.#pending.clear();
    })();
    return this.#released;
  }

  /** Close the control port (after release). Idempotent. */
  closePort(): void {
    this.#port.close();
  }
}

/**
 * Reserve a queue on `ctrl`, create it on the device and describe it for a
 * Worker. The returned handle's port must go in the postMessage transfer list.
 */
export async function createQueueHandle(
  ctrl: Controller,
  target: string,
  namespaces: NamespaceInfo[],
  opts: QueueOptions = {},
  irqOf: (qid: number) => { word: InterruptWord; mode: WaitMode } | null = () => null,
): Promise<{ handle: QueueHandle; queue: PortQueue }> {
  const t = ctrl.transport;
  if (isFabric(t)) return await createFabricHandle(ctrl, target, namespaces, opts, irqOf);
  if (!t.shareDma || !ctrl.canShareQueues) {
    throw new NotSupportedError("transport", `${t.name} cannot share queues with Workers`);
  }
  const r = ctrl.reserveQueue(opts.depth);
  const arena = ctrl.allocDma(opts.arenaBytes ?? 8 * 1024 * 1024);
  const memory = [r.sq, r.cq, ...(r.prp ? [r.prp] : []), arena];
  const ch = new MessageChannel();
  const q = new PortQueue(ctrl, r.qid, r.depth, memory, ch.port1);
  try {
    await ctrl.addRemote(q);
  } catch (e) {
    await ctrl.removeRemote(q, memory);
    ch.port1.close();
    throw e;
  }
  const handle: QueueHandle = {
    v: 1,
    target,
    qid: r.qid,
    depth: r.depth,
    ring: ctrl.shareQueue(r),
    maxTransferBytes: ctrl.maxTransferBytes,
    ioTimeoutMs: ctrl.options.ioTimeoutMs,
    pollSpinUs: ctrl.options.pollSpinUs,
    arena: t.shareDma(arena),
    tcp: null,
    namespaces,
    irq: irqOf(r.qid)?.word ?? null,
    waitMode: irqOf(r.qid)?.mode ?? "poll",
    port: ch.port2,
    state: q.state.buffer as SharedArrayBuffer,
    transfer: [ch.port2],
  };
  return { handle, queue: q };
}

/** What a fabric transport offers Workers' queues (lib/tcp's TcpTransport). */
interface FabricShare {
  readonly host: string;
  readonly port: number;
  readonly digests: { hdgst: boolean; ddgst: boolean };
  reserveSocketSlot?(): Promise<IrqWord | null>;
  releaseSocketSlot?(w: IrqWord): void;
}

/**
 * A queue for a Worker over a fabric: a qid reserved on the controller and
 * what the Worker needs to open its own connection (lib/tcp) and Connect it
 * to the controller; nothing is created here (Connect is the creation).
 */
async function createFabricHandle(
  ctrl: Controller,
  target: string,
  namespaces: NamespaceInfo[],
  opts: QueueOptions,
  irqOf: (qid: number) => { word: InterruptWord; mode: WaitMode } | null,
): Promise<{ handle: QueueHandle; queue: PortQueue }> {
  const t = ctrl.transport as unknown as FabricShare & { trtype: string; subnqn: string; hostnqn: string; hostid: Uint8Array; name: string };
  if (isFabric(ctrl.transport) && t.trtype !== "tcp") {
    throw new NotSupportedError("transport", `${t.name} cannot share queues with Workers`);
  }
  const depth = opts.depth ?? ctrl.io[0]?.depth ?? ctrl.options.ioQueueDepth;
  const r = ctrl.reserveQueue(depth);
  const ch = new MessageChannel();
  const q = new PortQueue(ctrl, r.qid, r.depth, [r.sq, r.cq], ch.port1);
  let slot: IrqWord | null = null;
  try {
    slot = (await t.reserveSocketSlot?.()) ?? null;
    await ctrl.addRemote(q);
  } catch (e) {
    if (slot) t.releaseSocketSlot?.(slot);
    await ctrl.removeRemote(q, q.memory);
    ch.port1.close();
    throw e;
  }
  if (slot) q.onReleased = () => t.releaseSocketSlot?.(slot!);
  q.holdConnections(await loadLibc());
  const tcp: TcpQueueSpec = {
    host: t.host,
    port: t.port,
    subnqn: t.subnqn,
    hostnqn: t.hostnqn,
    hostid: t.hostid,
    digests: t.digests,
    cntlid: ctrl.cntlid,
    inCapsuleMax: ctrl.inCapsuleBytes,
    connectTimeoutMs: 10_000,
    slot,
  };
  const handle: QueueHandle = {
    v: 1,
    target,
    qid: r.qid,
    depth: r.depth,
    ring: null,
    tcp,
    maxTransferBytes: ctrl.maxTransferBytes,
    ioTimeoutMs: ctrl.options.ioTimeoutMs,
    pollSpinUs: ctrl.options.pollSpinUs,
    arena: null,
    namespaces,
    irq: null,
    // As the controller's own IO queues wait (the socket is the interrupt).
    waitMode: irqOf(r.qid)?.mode ?? ctrl.io[0]?.waitMode ?? "interrupt",
    port: ch.port2,
    state: q.state.buffer as SharedArrayBuffer,
    transfer: [ch.port2],
  };
  return { handle, queue: q };
}

/** A Worker started by tsnvme with a queue of its own (see NVMeDev.startWorkers). */
export class QueueWorker {
  /** The Worker. */
  readonly worker: Worker;
  /** Resolves once the Worker has opened its queue. */
  readonly ready: Promise<void>;
  #queue: PortQueue | null = null;
  #terminated = false;

  /** Used by NVMeDev.startWorkers. */
  constructor(worker: Worker, makeQueue: () => Promise<{ handle: QueueHandle; queue: PortQueue }>, data: unknown) {
    this.worker = worker;
    this.ready = new Promise<void>((resolve, reject) => {
      worker.addEventListener("message", (e: MessageEvent) => {
        const m = e.data as { type?: string; message?: string };
        if (m?.type === "tsnvme-opened") resolve();
        if (m?.type === "tsnvme-open-failed") reject(new DeviceClosedError(`worker could not open its queue: ${m.message}`));
        if (m?.type !== "tsnvme-ready" || this.#queue || this.#terminated) return;
        makeQueue().then(({ handle, queue }) => {
          if (this.#terminated) {
            // Terminated while its queue was being made: nobody will open it.
            handle.port.close();
            void queue.fail(new DeviceClosedError("worker terminated")).then(() => queue.release()).then(() => queue.closePort());
            return;
          }
          this.#queue = queue;
          worker.postMessage({ type: "tsnvme-queue", queue: handle, data }, handle.transfer);
        }, reject);
      });
      worker.addEventListener("error", (e: Event) => {
        reject(new DeviceClosedError(`worker failed before taking its queue: ${(e as ErrorEvent).message ?? e}`));
        // A Worker that died of an uncaught error holds its queue no more: release it.
        void this.terminate({ exited: true });
      });
    });
    this.ready.catch(() => {});
  }

  /** Queue id this Worker owns (after {@link ready}). */
  get qid(): number {
    return this.#queue?.qid ?? 0;
  }

  /**
   * Stop the Worker and release its queue: deleted on the device, its memory
   * unmapped once the device can no longer write it and the Worker no longer
   * touches it. The Worker is first asked to let go of the queue (its IO then
   * fails with DeviceClosedError), because `worker.terminate()` does not stop
   * a Deno Worker inside a synchronous loop at once: unmapping under it would
   * crash the process. A Worker that does not answer within `graceMs` (default
   * {@link STOP_GRACE_MS}) is terminated and its queue deleted, but its memory
   * stays mapped until the device closes. `exited: true` says the caller knows
   * the Worker runs no more JS (it closed itself, or died): no asking.
   */
  async terminate(opts: { graceMs?: number; exited?: boolean } = {}): Promise<void> {
    if (this.#terminated) return;
    this.#terminated = true;
    const q = this.#queue;
    // Asked before the connection is cut: the Worker closes it itself, reporting no loss.
    if (q && !opts.exited) await q.stopOwner(opts.graceMs ?? STOP_GRACE_MS);
    this.worker.terminate();
    if (q) {
      q.cutConnection();
      await q.release();
      q.closePort();
    }
  }
}
