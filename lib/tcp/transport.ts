/**
 * The NVMe/TCP transport as the generic controller sees it
 * ({@link FabricTransport}): it opens one TCP connection per queue (ICReq/
 * ICResp) and keeps the memory commands point into. Connect, Property Get/
 * Set, keep-alive and recovery are the generic controller's (lib/nvme).
 * @module
 */
import type { DmaBuffer, FabricQueueLimits, FabricRing, FabricTransport } from "../nvme/transport.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { TcpMemory } from "./memory.ts";
import type { Digests } from "./pdu.ts";
import { hubReadiness, SocketWaiter, TcpRing } from "./ring.ts";
import { IrqHub } from "../irq/hub.ts";
import { waitAsyncWakes } from "../ffi/wait.ts";
import type { IrqWord } from "../irq/waiter.ts";

/** Where the target is and who connects. */
export interface TcpTransportOptions {
  /** Target address (host name, IPv4, or IPv6 without brackets). */
  host: string;
  /** Target port (default 4420). */
  port?: number;
  /** Subsystem NQN. */
  subnqn: string;
  /** Host NQN (stable). */
  hostnqn: string;
  /** Host ID, 16 bytes (stable). */
  hostid: Uint8Array;
  /** Header/data digests to ask for. */
  digests?: Partial<Digests>;
  /** Keep-alive timeout sent in the admin Connect, ms (default 5000 as Linux; 0: none). */
  katoMs?: number;
  /** Bound on TCP connect plus ICResp, ms (default 10 000 as Linux). */
  connectTimeoutMs?: number;
  /**
   * Sleep on socket readiness through an epoll helper thread (default true):
   * the transport starts one {@link IrqHub} for its queues. False, or where
   * Atomics.waitAsync never wakes (Deno with V8's `--single-threaded`):
   * sleeping queues nap on 1 ms timers and poll their sockets.
   */
  epoll?: boolean;
}

/** NVMe over TCP, one connection per queue. */
export class TcpTransport implements FabricTransport {
  /** Marks the fabric shape. */
  readonly fabric = true as const;
  /** nvme-cli's transport type. */
  readonly trtype = "tcp";
  /** "tcp://host:port/subnqn". */
  readonly name: string;
  /** Target address. */
  readonly host: string;
  /** Target port. */
  readonly port: number;
  /** Subsystem NQN. */
  readonly subnqn: string;
  /** Host NQN. */
  readonly hostnqn: string;
  /** Host ID. */
  readonly hostid: Uint8Array;
  /** Keep-alive timeout, ms. */
  readonly katoMs: number;
  /** Digests asked for on every connection. */
  readonly digests: Digests;
  /** Memory every queue's commands point into. */
  readonly memory: TcpMemory = new TcpMemory();
  readonly #connectTimeoutMs: number;
  readonly #rings = new Set<TcpRing>();
  /** Each queue's current connection (a reconnect replaces it). */
  readonly #byQid = new Map<number, TcpRing>();
  /** Each queue's waiter, kept across reconnects (its queue pair holds it). */
  readonly #waiters = new Map<number, SocketWaiter>();
  readonly #epoll: boolean;
  #hub: Promise<IrqHub | null> | null = null;
  #hubClosed: Promise<void> = Promise.resolve();
  #closed = false;

  /** Describe the target; nothing is connected until the controller opens its admin queue. */
  constructor(o: TcpTransportOptions) {
    if (typeof o.host !== "string" || o.host === "") throw new InvalidArgumentError("tcp: host is required");
    if (!(o.hostid instanceof Uint8Array) || o.hostid.length !== 16) throw new InvalidArgumentError("tcp: hostid must be 16 bytes");
    this.host = o.host;
    this.port = o.port ?? 4420;
    this.subnqn = o.subnqn;
    this.hostnqn = o.hostnqn;
    this.hostid = o.hostid;
    this.katoMs = o.katoMs ?? 5000;
    this.digests = { hdgst: !!o.digests?.hdgst, ddgst: !!o.digests?.ddgst };
    this.#connectTimeoutMs = o.connectTimeoutMs ?? 10_000;
    this.#epoll = o.epoll ?? true;
    const h = this.host.includes(":") ? `[${this.host}]` : this.host;
    this.name = `tcp://${h}:${this.port}/${this.subnqn}`;
  }

  /** Host memory page size reported to generic code. */
  get hostPageSize(): number {
    return this.memory.hostPageSize;
  }

  /** Open queue `qid`'s connection (TCP, ICReq/ICResp). */
  async openRing(qid: number, depth: number, limits: FabricQueueLimits): Promise<FabricRing> {
    if (this.#closed) throw new InvalidArgumentError("tcp transport is closed");
    // One helper thread for every queue of this controller; without it (it failed to start) queues nap.
    const hub = await this.#startHub();
    let waiter = this.#waiters.get(qid);
    if (!waiter) this.#waiters.set(qid, waiter = new SocketWaiter());
    const ring = await TcpRing.connect({
      readiness: hub ? hubReadiness(hub) : null,
      waiter,
      host: this.host,
      port: this.port,
      qid,
      depth,
      memory: this.memory,
      digests: this.digests,
      inCapsuleMax: limits.inCapsuleMax,
      maxTransfer: limits.maxTransfer,
      connectTimeoutMs: this.#connectTimeoutMs,
    });
    if (this.#closed) {
      ring.close();
      throw new InvalidArgumentError("tcp transport is closed");
    }
    for (const r of this.#rings) if (r.lost) this.#rings.delete(r);
    this.#rings.add(ring);
    this.#byQid.set(qid, ring);
    return ring;
  }

  /**
   * A hub slot for a queue another thread opens (a Worker's own connection),
   * or null when this transport sleeps without an epoll helper. Free it with
   * {@link releaseSocketSlot}.
   */
  async reserveSocketSlot(): Promise<IrqWord | null> {
    const hub = await this.#startHub();
    return hub ? hub.reserveSocket() : null;
  }

  /** Give back a slot from {@link reserveSocketSlot} (its socket deregistered if still there). */
  releaseSocketSlot(word: IrqWord): void {
    void this.#hub?.then((h) => h?.removeSocket(word));
  }

  /** The connection queue `qid` runs on now (the last {@link openRing} for it). */
  ringOf(qid: number): TcpRing {
    const r = this.#byQid.get(qid);
    if (!r) throw new InvalidArgumentError(`tcp: queue ${qid} has no connection`);
    return r;
  }

  /** Zeroed memory of at least `size` bytes. */
  allocDma(size: number): DmaBuffer {
    return this.memory.allocDma(size);
  }

  /** Free memory from {@link allocDma} (no device can reach it: no unmap to wait for). */
  freeDma(buf: DmaBuffer): void {
    this.memory.freeDma(buf);
  }

  /** Synthetic IOVA of `view`'s first byte, or -1. */
  iovaOf(view: Uint8Array): number {
    return this.memory.iovaOf(view);
  }

  /** The buffer `view` lies in, or null. */
  dmaOf(view: Uint8Array): DmaBuffer | null {
    return this.memory.dmaOf(view);
  }

  /** Close every connection and release the memory. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const r of this.#rings) r.close();
    this.#rings.clear();
    this.memory.close();
    const hub = this.#hub;
    if (hub) this.#hubClosed = hub.then((h) => h?.close());
  }

  #startHub(): Promise<IrqHub | null> {
    // Where waitAsync never wakes (Deno with V8's --single-threaded) a sleep on the hub would hang
    // for good: queues nap on timers instead.
    this.#hub ??= this.#epoll
      ? waitAsyncWakes().then((ok) => ok ? IrqHub.start() : null).catch(() => null)
      : Promise.resolve(null);
    return this.#hub;
  }

  /** Resolves once the epoll helper thread (if any) has stopped after {@link close}. */
  get stopped(): Promise<void> {
    return this.#hubClosed;
  }
}
