/**
 * Queues owned by Workers. In a Worker, {@link openQueue} (or
 * {@link receiveQueue} for Workers started by `NVMeDev.startWorkers`) turns a
 * {@link QueueHandle} into the same namespace API as on the main thread
 * (read, write, flush, write zeroes, DSM, compare, verify, copy) running on a
 * queue pair this Worker owns: SQEs, doorbells and completions are handled in
 * this thread, with no message to any other thread per IO, and DMA buffers
 * are allocated here. Recovery (controller reset, CSTS.CFS, removal, close) is
 * driven by the controller's thread over the handle's port.
 *
 * @example
 * ```ts ignore
 * // worker.ts, started with dev.startWorkers(new URL("./worker.ts", import.meta.url), 2)
 * import { receiveQueue } from "@tsnvme/tsnvme/worker";
 * const { queue } = await receiveQueue();
 * const ns = queue.ns(1);
 * const buf = queue.allocBuffer(4096);
 * await ns.read(0, buf);
 * await queue.close();
 * ```
 * @module
 */
import { loadLibc } from "../ffi/mod.ts";
import type { Libc } from "../ffi/types.ts";
import { BouncePool } from "../io/bounce.ts";
import { type IoHost, Namespace, type NamespaceInfo } from "../io/namespace.ts";
import { PageRuns } from "../nvme/pages.ts";
import {
  ConnectionLostError,
  DeviceClosedError,
  InvalidArgumentError,
  type NvmeError,
  NvmeError as NvmeErrorBase,
  OutOfResourcesError,
} from "../nvme/errors.ts";
import { sharedPcieRing } from "../nvme/pcie.ts";
import { QueuePair } from "../nvme/queue.ts";
import { type DmaBuffer, dmaBuffer, detachView, type SharedMemory } from "../nvme/transport.ts";
import { type ControlMsg, fromWire, HandleState, type QueueHandle, type TcpQueueSpec, toWire } from "./handle.ts";
import { TcpMemory } from "../tcp/memory.ts";
import { slotReadiness, SocketWaiter, TcpRing } from "../tcp/ring.ts";
import { FabricCommands } from "../nvme/fabrics.ts";
import { IrqWaiter } from "../irq/waiter.ts";
import { gateFor } from "../vfio/irq.ts";

export type { QueueHandle, TcpQueueSpec } from "./handle.ts";
export type { IrqWord } from "../irq/waiter.ts";
export type { SharedPcieRing } from "../nvme/pcie.ts";
export type { InterruptWord, SharedMemory } from "../nvme/transport.ts";

const PAGE = 4096;

/** Views over shared memory, built in this thread (each Worker needs its own dlopen). */
function viewOf(libc: Libc | null, m: SharedMemory, offset = 0, size = m.size): Uint8Array {
  if (m.addr !== null && libc) return new Uint8Array(libc.view(m.addr + BigInt(offset), size));
  if (m.sab) return new Uint8Array(m.sab, m.offset + offset, size);
  throw new OutOfResourcesError("shared memory has neither an address nor a SharedArrayBuffer");
}

/** Where a Worker queue's buffers come from: the PCIe arena, or a TCP queue's own memory. */
interface QueueMemory {
  alloc(size: number): DmaBuffer;
  release(b: DmaBuffer): void;
  dmaOf(v: Uint8Array): DmaBuffer | null;
  detachAll(): void;
}

/** A TCP queue's memory: plain buffers with synthetic IOVAs, this thread's own (no device reads it). */
class TcpArena implements QueueMemory {
  readonly mem: TcpMemory = new TcpMemory();
  alloc(size: number): DmaBuffer {
    return this.mem.allocDma(size);
  }
  release(b: DmaBuffer): void {
    this.mem.freeDma(b);
  }
  dmaOf(v: Uint8Array): DmaBuffer | null {
    return this.mem.dmaOf(v);
  }
  detachAll(): void {
    this.mem.close();
  }
}

/** A Worker's TCP queue: how to (re)open its connection and Connect it. */
class TcpLink {
  readonly spec: TcpQueueSpec;
  readonly #libc: Libc;
  readonly #mem: TcpMemory;
  readonly waiter: SocketWaiter = new SocketWaiter();
  readonly #h: QueueHandle;
  cntlid: number;

  constructor(h: QueueHandle, libc: Libc, mem: TcpMemory) {
    this.#h = h;
    this.spec = h.tcp!;
    this.#libc = libc;
    this.#mem = mem;
    this.cntlid = this.spec.cntlid;
  }

  /** TCP, ICReq/ICResp. */
  connect(): Promise<TcpRing> {
    const sp = this.spec, h = this.#h;
    return TcpRing.connect({
      host: sp.host,
      port: sp.port,
      qid: h.qid,
      depth: h.depth,
      memory: this.#mem,
      digests: sp.digests,
      inCapsuleMax: sp.inCapsuleMax,
      maxTransfer: h.maxTransferBytes,
      connectTimeoutMs: sp.connectTimeoutMs,
      readiness: sp.slot ? slotReadiness(this.#libc, sp.slot) : null,
      waiter: this.waiter,
      libc: this.#libc,
    });
  }

  /** Fabrics Connect of `qp` to the controller. */
  async bind(qp: QueuePair, held: boolean): Promise<void> {
    const sp = this.spec, m = this.#mem;
    const src = { subnqn: sp.subnqn, hostnqn: sp.hostnqn, hostid: sp.hostid, katoMs: 0, allocDma: (n: number) => m.allocDma(n), freeDma: (b: DmaBuffer) => m.freeDma(b) };
    await new FabricCommands(qp, held ? { held: true } : {}).connect(src, this.cntlid);
  }
}

/** Page-granular first-fit allocator over the queue's arena; views are detachable when FFI builds them. */
class Arena implements QueueMemory {
  readonly #libc: Libc | null;
  readonly #m: SharedMemory;
  readonly #runs: PageRuns;
  readonly #owners = new WeakMap<ArrayBufferLike, DmaBuffer>();
  readonly live = new Set<DmaBuffer>();

  constructor(libc: Libc | null, m: SharedMemory) {
    this.#libc = libc;
    this.#m = m;
    this.#runs = new PageRuns(Math.floor(m.size / PAGE));
  }

  alloc(size: number): DmaBuffer {
    const pages = Math.max(1, Math.ceil(size / PAGE));
    const start = this.#runs.take(pages);
    if (start >= 0) {
      const bytes = viewOf(this.#libc, this.#m, start * PAGE, pages * PAGE);
      bytes.fill(0);
      const b = dmaBuffer(bytes, this.#m.iova + start * PAGE, pages * PAGE);
      if (this.#libc && this.#m.addr !== null) this.#owners.set(bytes.buffer, b);
      this.live.add(b);
      return b;
    }
    throw new OutOfResourcesError(
      `the queue's DMA arena (${this.#m.size} bytes) has no ${size} bytes free; give createQueue a larger arenaBytes`,
    );
  }

  /** Back to the free list (the caller made sure no command refers to it). */
  release(b: DmaBuffer): void {
    if (!this.live.delete(b)) return;
    this.#owners.delete(b.bytes.buffer);
    detachView(b.bytes);
    this.#runs.give((b.iova - this.#m.iova) / PAGE, b.size / PAGE);
  }

  dmaOf(v: Uint8Array): DmaBuffer | null {
    return this.#owners.get(v.buffer) ?? null;
  }

  /** Detach every view (the memory is about to go). */
  detachAll(): void {
    for (const b of this.live) detachView(b.bytes);
    this.live.clear();
  }
}

/** An IO queue pair owned by this thread, with the namespace API on top. Get one with {@link openQueue}. */
export class WorkerQueue implements AsyncDisposable {
  /** The handle it was opened from. */
  readonly handle: QueueHandle;
  /** The queue pair (raw submissions, the callback path, counters). */
  readonly queue: QueuePair;
  readonly #arena: QueueMemory;
  readonly #ns = new Map<number, Namespace>();
  readonly #bounce: BouncePool;
  readonly #user = new Map<ArrayBufferLike, DmaBuffer>();
  readonly #views: Uint8Array[];
  readonly #port: MessagePort;
  #closedError: NvmeError | null = null;
  #closing: Promise<void> | null = null;
  readonly #pending = new Map<number, () => void>();
  #next = 1;

  readonly #tcp: TcpLink | null;
  readonly #libc: Libc | null;
  readonly #state: Int32Array;
  /** Messages from the controller's thread handled (see {@link controlPending}). */
  #controlSeen = 0;
  #stopped = false;

  private constructor(h: QueueHandle, libc: Libc | null, tcp: { qp: QueuePair; link: TcpLink; arena: TcpArena } | null) {
    this.handle = h;
    this.#libc = libc;
    this.#state = new Int32Array(h.state);
    if (tcp) {
      this.#views = [];
      this.queue = tcp.qp;
      this.#arena = tcp.arena;
      this.#tcp = tcp.link;
    } else {
      const { ring, doorbells, views } = sharedPcieRing(h.ring!, (m) => viewOf(libc, m));
      this.#views = views;
      this.queue = new QueuePair({ qid: h.qid, ring, defaultTimeoutMs: h.ioTimeoutMs, pollSpinUs: h.pollSpinUs });
      this.#arena = new Arena(libc, h.arena!);
      this.#tcp = null;
      if (h.irq) {
        // The vector's gate (when the handle carries one) needs this thread's FFI.
        const gate = h.irq.gate && libc ? gateFor(h.irq.gate, doorbells, libc) : null;
        this.queue.setWaitMode(h.waitMode, new IrqWaiter(h.irq, gate));
      }
    }
    this.#bounce = new BouncePool((n) => this.#arena.alloc(n), (b) => this.#arena.release(b), 4);
    this.#port = h.port;
    this.queue.onTimeout = (_q, cid, opcode) => this.#port.postMessage({ op: "timeout", cid, opcode } satisfies ControlMsg);
    // A stall on a memory-mapped controller (nothing completed for a health interval): the
    // controller's thread reads CSTS, so it needs no timer of its own while queues run here.
    if (!tcp) this.queue.onHealthCheck = () => this.#port.postMessage({ op: "stalled" } satisfies ControlMsg);
    this.#port.onmessage = (e: MessageEvent) => this.#control(e.data as ControlMsg);
    // deno-lint-ignore no-this-alias
    const self = this;
    const host: IoHost = {
      get closedError() {
        return self.#closedError;
      },
      pickQueue: () => {
        // The controller's thread is terminating this Worker: stop before touching the queue.
        if (Atomics.load(this.#state, 0) === HandleState.STOPPING) this.#stop();
        return this.queue;
      },
      maxTransferBytes: h.maxTransferBytes,
      dmaOf: (v) => this.#arena.dmaOf(v),
      takeBounce: (size) => this.#bounce.take(size),
      giveBounce: (b) => this.#bounce.give(b),
    };
    for (const info of h.namespaces) this.#ns.set(info.nsid, new Namespace(host, info));
  }

  /** Build the queue from `handle` in this thread. */
  static async open(handle: QueueHandle): Promise<WorkerQueue> {
    if (!handle || handle.v !== 1 || !(handle.port instanceof MessagePort) || !(handle.state instanceof SharedArrayBuffer)) {
      throw new InvalidArgumentError("not a queue handle (post it with its transfer list: postMessage(x, h.transfer))");
    }
    // Claim it: after this the controller waits for this thread before unmapping anything.
    const st = Atomics.compareExchange(new Int32Array(handle.state), 0, 0, 1);
    if (st === 1) throw new InvalidArgumentError(`queue ${handle.qid} is already open in a thread`);
    if (st === 2) throw new DeviceClosedError(`queue ${handle.qid} of ${handle.target} was closed before it was opened`);
    let libc: Libc | null = null;
    try {
      libc = await loadLibc();
    } catch (e) {
      if (handle.tcp || handle.ring?.sq.sab === null) throw e;
    }
    if (!handle.tcp) return new WorkerQueue(handle, libc, null);
    // Over TCP the queue is this thread's own connection, Connected to the controller's cntlid.
    const arena = new TcpArena();
    const link = new TcpLink(handle, libc!, arena.mem);
    let qp: QueuePair | null = null;
    try {
      const ring = await link.connect();
      qp = new QueuePair({ qid: handle.qid, ring, defaultTimeoutMs: handle.ioTimeoutMs, pollSpinUs: handle.pollSpinUs });
      qp.setWaitMode(handle.waitMode, link.waiter);
      await link.bind(qp, false);
    } catch (e) {
      qp?.close();
      arena.detachAll();
      // Nobody will open it now: let the controller's side release the qid.
      handle.port.postMessage({ op: "release", id: 0 } satisfies ControlMsg);
      throw e;
    }
    const wq = new WorkerQueue(handle, libc, { qp, link, arena });
    wq.#watch(qp.queueRing as TcpRing);
    return wq;
  }

  /**
   * For an owner that sleeps in poll(2) or epoll_wait(2) rather than in its
   * event loop: the controller's thread writes `eventfd` (a dup it owns and
   * closes at release) after every message it posts to this queue, so the
   * owner wakes and takes the event-loop turn that delivers it. False when
   * the fd cannot be duplicated.
   */
  wakeOn(eventfd: number): boolean {
    const d = this.#libc?.dup(eventfd) ?? -1;
    if (d < 0) return false;
    this.#port.postMessage({ op: "wake", fd: d } satisfies ControlMsg);
    return true;
  }

  /** A loss of this thread's connection: fail it here and have the controller reconnect every queue. */
  #watch(ring: TcpRing): void {
    // The controller's thread holds a dup of the connection, to cut it should this thread die.
    const d = this.#libc!.dup(ring.fd);
    if (d >= 0) this.#port.postMessage({ op: "fd", fd: d } satisfies ControlMsg);
    ring.onLost = (e) => {
      if (this.#closedError) return;
      this.queue.pause();
      this.#port.postMessage({ op: "lost", err: toWire(e) } satisfies ControlMsg);
    };
  }

  /** After a controller reconnect: a new connection under the held queue, Connect, then let submissions through. */
  async #reconnect(cntlid: number | undefined): Promise<void> {
    const link = this.#tcp!;
    if (cntlid !== undefined) link.cntlid = cntlid;
    try {
      const ring = await link.connect();
      if (this.#closedError) {
        ring.close();
        return;
      }
      this.queue.replaceRing(ring);
      this.#watch(ring);
      await link.bind(this.queue, true);
      this.queue.resume();
    } catch (e) {
      if (this.#closedError) return;
      const err = e instanceof NvmeErrorBase ? e : new ConnectionLostError(String(e));
      this.#port.postMessage({ op: "lost", err: toWire(err) } satisfies ControlMsg);
    }
  }

  /**
   * True while a message the controller's thread posted to this queue has not
   * reached it: an owner that blocks in calls (a target Worker in poll(2))
   * must give its event loop turns until it has. A load, no call.
   */
  get controlPending(): boolean {
    return Atomics.load(this.#state, 1) !== this.#controlSeen;
  }

  #control(m: ControlMsg): void {
    this.#controlSeen++;
    switch (m.op) {
      case "pause":
        this.queue.pause();
        break;
      case "reset":
        this.queue.reset(fromWire(m.err));
        // A TCP queue's connection died with the controller's: a new one comes with resume.
        if (this.#tcp) this.queue.queueRing.close();
        this.#port.postMessage({ op: "ack", id: m.id } satisfies ControlMsg);
        break;
      case "resume":
        if (this.#tcp) void this.#reconnect(m.cntlid);
        else this.queue.resume();
        break;
      case "fail":
        this.#failLocal(fromWire(m.err));
        this.#port.postMessage({ op: "ack", id: m.id } satisfies ControlMsg);
        break;
      case "holds":
        this.queue.processCompletions();
        this.#port.postMessage({ op: "ack", id: m.id, value: this.queue.holds(m.cid) } satisfies ControlMsg);
        break;
      case "kill":
        this.#stop();
        break;
      case "released": {
        const f = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        f?.();
        break;
      }
    }
  }

  /** The controller is closing or gone: fail everything and let go of every view before it unmaps them. */
  /**
   * Asked to stop (the Worker is being terminated, QueueWorker.terminate): fail
   * the queue, detach every view of its memory, close its connection, and say
   * so. After "stopped" nothing of this thread touches the queue's memory, so
   * the controller may unmap it even while this thread still runs (a Deno
   * Worker inside a synchronous loop outlives its terminate()).
   */
  #stop(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    const err = new DeviceClosedError(`queue ${this.qid} of ${this.handle.target}: its Worker is being terminated`);
    this.#closedError ??= err; // first: a connection closed here reports no loss to the controller
    if (this.#tcp) this.queue.queueRing.close();
    this.#failLocal(err);
    this.#port.postMessage({ op: "stopped" } satisfies ControlMsg);
  }

  #failLocal(err: NvmeError): void {
    this.#closedError ??= err;
    this.queue.fail(err);
    this.#arena.detachAll();
    this.#bounce.close();
    this.#user.clear();
    for (const v of this.#views) detachView(v);
  }

  /** Queue id. */
  get qid(): number {
    return this.handle.qid;
  }

  /** True once closed or failed. */
  get closed(): boolean {
    return this.#closedError !== null;
  }

  /** Active namespace ids. */
  nsList(): number[] {
    return [...this.#ns.keys()];
  }

  /** Namespace `nsid` on this queue. */
  ns(nsid: number): Namespace {
    if (this.#closedError) throw this.#closedError;
    const n = this.#ns.get(nsid);
    if (!n) throw new InvalidArgumentError(`namespace ${String(nsid)} is not active (active: ${this.nsList().join(", ") || "none"})`);
    return n;
  }

  /** DMA memory from this queue's arena; the same lifetime rules as NVMeDev.allocBuffer. */
  allocBuffer(bytes: number): Uint8Array {
    if (this.#closedError) throw this.#closedError;
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new InvalidArgumentError(`buffer size must be a positive integer, got ${String(bytes)}`);
    }
    const b = this.#arena.alloc(bytes);
    this.#user.set(b.bytes.buffer, b);
    return b.bytes.subarray(0, bytes);
  }

  /** Free memory from {@link allocBuffer}: detached at once, reused once no command can write it. */
  freeBuffer(buf: Uint8Array): void {
    if (!(buf instanceof Uint8Array)) throw new InvalidArgumentError("freeBuffer takes a Uint8Array from allocBuffer()");
    const b = this.#user.get(buf.buffer);
    if (!b) throw new InvalidArgumentError("buffer was not allocated by this queue's allocBuffer() (or was freed)");
    this.#user.delete(buf.buffer);
    detachView(b.bytes);
    if (b.busy > 0) b.onIdle = this.#release;
    else this.#arena.release(b);
  }

  readonly #release = (b: DmaBuffer): void => this.#arena.release(b);

  /**
   * Give the queue back: in-flight commands fail with DeviceClosedError, every
   * view is detached, and the controller's thread deletes the queue on the
   * device and unmaps its memory. Idempotent.
   */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#failLocal(new DeviceClosedError(`queue ${this.qid} of ${this.handle.target} is closed`));
      const id = this.#next++;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 10_000);
        this.#pending.set(id, () => {
          clearTimeout(timer);
          resolve();
        });
        this.#port.postMessage({ op: "release", id } satisfies ControlMsg);
      });
      this.#port.onmessage = null;
      this.#port.close();
    })();
    return this.#closing;
  }

  /** `await using q = await openQueue(h)` closes it at scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Open a queue handle (posted by the controller's thread) in this Worker. */
export function openQueue(handle: QueueHandle): Promise<WorkerQueue> {
  return WorkerQueue.open(handle);
}

interface WorkerScope {
  addEventListener(type: "message", f: (e: MessageEvent) => void): void;
  removeEventListener(type: "message", f: (e: MessageEvent) => void): void;
  postMessage(m: unknown): void;
}

/**
 * In a Worker started by `NVMeDev.startWorkers`: announce readiness, wait for
 * this Worker's queue and open it. Resolves to the queue and the `data` given
 * to startWorkers.
 */
export function receiveQueue(): Promise<{ queue: WorkerQueue; data: unknown }> {
  const scope = globalThis as unknown as WorkerScope;
  return new Promise((resolve, reject) => {
    const onMsg = (e: MessageEvent) => {
      const m = e.data as { type?: string; queue?: QueueHandle; data?: unknown };
      if (m?.type !== "tsnvme-queue") return;
      scope.removeEventListener("message", onMsg);
      WorkerQueue.open(m.queue!).then((queue) => {
        scope.postMessage({ type: "tsnvme-opened" });
        resolve({ queue, data: m.data });
      }, (e) => {
        scope.postMessage({ type: "tsnvme-open-failed", message: String((e as Error)?.message ?? e) });
        reject(e);
      });
    };
    scope.addEventListener("message", onMsg);
    scope.postMessage({ type: "tsnvme-ready" });
  });
}

/** The info of a namespace as it travels in a handle. */
export type { NamespaceInfo };
