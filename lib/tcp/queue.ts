/**
 * One bare NVMe/TCP queue, for tools and tests that work below the
 * controller: its connection ({@link TcpRing}), the generic
 * {@link QueuePair}, Fabrics Connect, Property Get/Set and a keep-alive timer,
 * all through lib/nvme/fabrics.ts as the controller uses them.
 * @module
 */
import { InvalidArgumentError } from "../nvme/errors.ts";
import { CNTLID_DYNAMIC } from "../nvme/fabrics.ts";
import { connectPair, FabricCommands, keepAliveTimer } from "../nvme/fabrics.ts";
import type { QueuePair } from "../nvme/queue.ts";
import type { TcpMemory } from "./memory.ts";
import { TcpRing, type TcpRingOptions } from "./ring.ts";

/** Everything one queue's connection needs. */
export interface TcpQueueOptions extends TcpRingOptions {
  /** Subsystem NQN to connect to. */
  subnqn: string;
  /** Host NQN (keep it stable: allow-lists and duplicate checks key on it). */
  hostnqn: string;
  /** 16-byte host ID (stable, as the NQN). */
  hostid: Uint8Array;
  /** Controller id: omit on the admin queue (dynamic), the admin Connect's result on IO queues. */
  cntlid?: number;
  /** Keep-alive timeout sent in the admin Connect, in ms (Linux: 5000; 0 = none). */
  katoMs?: number;
  /** Default command timeout, in ms. */
  timeoutMs?: number;
  /** Connect attributes (CATTR). */
  cattr?: number;
}

/** A connected NVMe/TCP queue: submit through {@link TcpQueue.qp}. */
export class TcpQueue {
  /** The generic queue pair (Promise and callback APIs, timeouts). */
  readonly qp: QueuePair;
  /** The connection. */
  readonly ring: TcpRing;
  /** Controller id the target assigned (admin Connect) or confirmed (IO Connect). */
  readonly cntlid: number;
  /** Keep-alive timeout in force, in ms (admin queue). */
  readonly katoMs: number;
  /** The host memory this queue's commands use. */
  readonly memory: TcpMemory;
  #stopKa: (() => void) | null = null;

  private constructor(ring: TcpRing, qp: QueuePair, cntlid: number, katoMs: number, mem: TcpMemory) {
    this.ring = ring;
    this.qp = qp;
    this.cntlid = cntlid;
    this.katoMs = katoMs;
    this.memory = mem;
  }

  /**
   * Connect: TCP, ICReq/ICResp, then Fabrics Connect (qid, SQSIZE =
   * depth − 1, KATO on the admin queue, cntlid 0xFFFF on admin). Rejects with
   * the Connect status (NvmeStatusError), a ConnectionLostError or a
   * ProtocolError; the socket is closed on failure.
   */
  static async connect(opts: TcpQueueOptions): Promise<TcpQueue> {
    if (opts.qid !== 0 && opts.cntlid === undefined) throw new InvalidArgumentError("an IO queue Connect needs the admin queue's cntlid");
    const ring = await TcpRing.connect(opts);
    const katoMs = opts.qid === 0 ? opts.katoMs ?? 0 : 0;
    const m = opts.memory;
    const host = { subnqn: opts.subnqn, hostnqn: opts.hostnqn, hostid: opts.hostid, katoMs, allocDma: (n: number) => m.allocDma(n), freeDma: m.freeDma.bind(m) };
    try {
      const [qp, cntlid] = await connectPair(ring, opts.qid, opts.timeoutMs ?? 30_000, host, opts.cntlid ?? CNTLID_DYNAMIC, opts.cattr ?? 0);
      return new TcpQueue(ring, qp, cntlid, katoMs, opts.memory);
    } catch (e) {
      ring.close();
      throw e;
    }
  }

  /**
   * Property Get (admin queue): the register at `offset`, 4 or 8 bytes.
   */
  propertyGet(offset: number, eightBytes: boolean): Promise<bigint> {
    return new FabricCommands(this.qp).propertyGet(offset, eightBytes);
  }

  /** Property Set (admin queue): write `value` to the register at `offset` (nvmet takes only CC, 4 bytes). */
  async propertySet(offset: number, value: bigint | number, eightBytes = false): Promise<void> {
    await new FabricCommands(this.qp).propertySet(offset, value, eightBytes);
  }

  /**
   * Send Keep Alive every `periodMs` (default KATO/2, as Linux) until
   * {@link close}. A failed Keep Alive is left to the caller's `onError`.
   */
  startKeepAlive(periodMs: number = this.katoMs / 2, onError: (e: unknown) => void = () => {}): void {
    if (!(periodMs > 0)) return;
    this.#stopKa?.();
    this.#stopKa = keepAliveTimer(this.qp, periodMs, () => {
      if (this.qp.closed) this.#stopKa?.();
      return this.qp.closed;
    }, onError);
  }

  /** Fail what is in flight, stop keep-alive, close the connection. Idempotent. */
  close(): void {
    this.#stopKa?.();
    this.#stopKa = null;
    this.qp.close();
    this.ring.close();
  }
}
