/**
 * One NVMe/TCP queue ready for commands: the connection and its ring
 * ({@link TcpRing}), the generic {@link QueuePair} over it, the Fabrics
 * Connect that binds it to a controller, Property Get/Set (the fabrics form
 * of register access, on the admin queue) and the keep-alive timer.
 * @module
 */
import { sqe } from "../nvme/command.ts";
import { InvalidArgumentError, type NvmeError } from "../nvme/errors.ts";
import { QueuePair } from "../nvme/queue.ts";
import { AdminOpc } from "../nvme/spec.ts";
import { CNTLID_DYNAMIC, connectCmd, connectData, propertyGetCmd, propertySetCmd } from "./fabrics.ts";
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
  readonly #mem: TcpMemory;
  #ka: ReturnType<typeof setInterval> | undefined;
  #propChain: Promise<unknown> = Promise.resolve();

  private constructor(ring: TcpRing, qp: QueuePair, cntlid: number, katoMs: number, mem: TcpMemory) {
    this.ring = ring;
    this.qp = qp;
    this.cntlid = cntlid;
    this.katoMs = katoMs;
    this.#mem = mem;
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
    const qp = new QueuePair({
      qid: opts.qid,
      depth: opts.depth,
      defaultTimeoutMs: opts.timeoutMs ?? 30_000,
      ring,
      // The PCIe fields are unused with a ring of another transport.
      sq: null as never,
      cq: null as never,
      prp: null,
      prpPagesPerSlot: 0,
      pageSize: 4096,
      doorbells: new Uint32Array(0),
      doorbellStride: 4,
    });
    // Completions only arrive through the event loop (socket data events): a pump spinning on
    // microtasks would hold them off, so it sleeps on arrivals whenever a poll finds nothing.
    qp.pollSpinUs = 0;
    qp.setWaitMode("interrupt", ring.waiter);
    ring.onLost = (err: NvmeError) => qp.fail(err);
    const katoMs = opts.qid === 0 ? opts.katoMs ?? 0 : 0;
    const data = opts.memory.allocDma(1024);
    try {
      data.bytes.set(connectData({ hostid: opts.hostid, cntlid: opts.cntlid ?? CNTLID_DYNAMIC, subnqn: opts.subnqn, hostnqn: opts.hostnqn }));
      const cmd = connectCmd({ qid: opts.qid, entries: opts.depth, katoMs, cattr: opts.cattr });
      const dw0 = await qp.submit(cmd, data.iova, 1024, opts.timeoutMs ?? 10_000, data);
      return new TcpQueue(ring, qp, dw0 & 0xffff, katoMs, opts.memory);
    } catch (e) {
      qp.close();
      ring.close();
      throw e;
    } finally {
      if (data.busy === 0) opts.memory.freeDma(data);
      else data.onIdle = (b) => opts.memory.freeDma(b);
    }
  }

  /**
   * Property Get (admin queue): the register at `offset`, 4 or 8 bytes. Calls
   * are serialized so DW1 of the 8-byte form is matched to its command.
   */
  propertyGet(offset: number, eightBytes: boolean): Promise<bigint> {
    const run = async (): Promise<bigint> => {
      const dw0 = await this.qp.submit(propertyGetCmd(offset, eightBytes));
      const lo = BigInt(dw0 >>> 0);
      return eightBytes ? lo | (BigInt(this.ring.propertyDw1 >>> 0) << 32n) : lo;
    };
    const p = this.#propChain.then(run, run);
    this.#propChain = p.catch(() => {});
    return p;
  }

  /** Property Set (admin queue): write `value` to the register at `offset` (nvmet takes only CC, 4 bytes). */
  async propertySet(offset: number, value: bigint | number, eightBytes = false): Promise<void> {
    await this.qp.submit(propertySetCmd(offset, BigInt(value), eightBytes));
  }

  /**
   * Send Keep Alive every `periodMs` (default KATO/2, as Linux) until
   * {@link close}. A failed Keep Alive is left to the caller's `onError`.
   */
  startKeepAlive(periodMs = this.katoMs / 2, onError: (e: unknown) => void = () => {}): void {
    if (!(periodMs > 0)) return;
    clearInterval(this.#ka);
    this.#ka = setInterval(() => {
      if (this.qp.closed) {
        clearInterval(this.#ka);
        return;
      }
      this.qp.submit(sqe(AdminOpc.KEEP_ALIVE), 0, 0, Math.max(periodMs, 1000)).catch(onError);
    }, periodMs);
  }

  /** The host memory this queue's commands use. */
  get memory(): TcpMemory {
    return this.#mem;
  }

  /** Fail what is in flight, stop keep-alive, close the connection. Idempotent. */
  close(): void {
    clearInterval(this.#ka);
    this.qp.close();
    this.ring.close();
  }
}
