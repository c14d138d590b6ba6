/**
 * A lower-level handle on one NVMe/TCP controller for tools and tests that
 * want the queues themselves: the generic {@link Controller} over a
 * {@link TcpTransport} (bring-up in Linux's order, keep-alive, reconnect: all
 * in lib/nvme), with each queue's {@link QueuePair} and {@link TcpRing} in
 * reach, and the discovery controller's log page. Most users want
 * `NVMeDev.open("tcp://...")` instead.
 * @module
 */
import { activeNsListCmd, getLogPageCmd, identifyNamespaceCmd } from "../nvme/command.ts";
import { Controller } from "../nvme/controller.ts";
import { ControllerFatalError, DeviceClosedError, InvalidArgumentError } from "../nvme/errors.ts";
import { DISCOVERY_NQN } from "../nvme/fabrics.ts";
import { decodeIdentifyNamespace, decodeNsidList } from "../nvme/identify.ts";
import type { QueuePair } from "../nvme/queue.ts";
import { Reg } from "../nvme/spec.ts";
import { decodeDiscoveryHeader, decodeDiscoveryLog, DISC_RECORD_SIZE, type DiscoveryEntry, LID_DISCOVERY } from "./discovery.ts";
import type { TcpMemory } from "./memory.ts";
import type { TcpRing } from "./ring.ts";
import { TcpTransport, type TcpTransportOptions } from "./transport.ts";

/** How to reach and set up a fabrics controller over TCP. */
export interface TcpControllerOptions extends Omit<TcpTransportOptions, "connectTimeoutMs"> {
  /** IO queues wanted (default 1; the target may grant fewer; a discovery controller has none). */
  ioQueues?: number;
  /** IO queue entries (default 128, clamped to CAP.MQES + 1 and MAXCMD). */
  queueDepth?: number;
  /** Largest transfer per command before the target's own limits (default 1 MiB). */
  maxTransfer?: number;
  /** Default command timeout in ms (default 30 s). */
  timeoutMs?: number;
  /** Longest wait between reconnect attempts, ms (default 10 000). */
  reconnectDelayMs?: number;
  /** Give up reconnecting after this long, ms (default 600 000). */
  ctrlLossTimeoutMs?: number;
}

/** A namespace as Identify Namespace describes it. */
export interface TcpNamespaceInfo {
  /** Namespace id. */
  nsid: number;
  /** Size in logical blocks. */
  blocks: number;
  /** Logical block size in bytes. */
  lbaSize: number;
}

/** One queue of the controller: the generic pair and its current connection. */
export interface TcpQueueView {
  /** The generic queue pair (Promise and callback APIs, timeouts). */
  readonly qp: QueuePair;
  /** The connection under it now (a reconnect replaces it). */
  readonly ring: TcpRing;
}

function view(qp: QueuePair, t: TcpTransport): TcpQueueView {
  return {
    qp,
    get ring() {
      return t.ringOf(qp.qid);
    },
  };
}

/** A connected, enabled NVMe/TCP controller with its admin and IO queues. */
export class TcpController {
  /** The generic controller. */
  readonly controller: Controller;
  /** The transport (connections, memory). */
  readonly transport: TcpTransport;
  /** Admin queue. */
  readonly admin: TcpQueueView;
  /** IO queues (qid 1..). */
  readonly io: TcpQueueView[];
  /** CAP property as read at connect. */
  readonly cap: bigint;
  /** VS property. */
  readonly vs: number;

  private constructor(c: Controller, t: TcpTransport, cap: bigint, vs: number) {
    this.controller = c;
    this.transport = t;
    this.admin = view(c.admin, t);
    this.io = c.io.map((q) => view(q, t));
    this.cap = cap;
    this.vs = vs;
  }

  /** Connect and enable the controller, then connect its IO queues. Everything closes again on failure. */
  static async connect(o: TcpControllerOptions): Promise<TcpController> {
    const t = new TcpTransport(o);
    try {
      const c = await Controller.init(t, {
        ioQueues: Math.max(1, o.ioQueues ?? 1),
        ioQueueDepth: o.queueDepth ?? 128,
        maxTransferBytes: o.maxTransfer ?? 1 << 20,
        ioTimeoutMs: o.timeoutMs ?? 30_000,
        adminTimeoutMs: o.timeoutMs ?? 30_000,
        reconnectDelayMs: o.reconnectDelayMs,
        ctrlLossTimeoutMs: o.ctrlLossTimeoutMs,
      });
      const cap = await c.readRegister(Reg.CAP, true);
      const vs = Number(await c.readRegister(Reg.VS));
      return new TcpController(c, t, cap, vs);
    } catch (e) {
      t.close();
      throw e;
    }
  }

  /** Memory every queue's commands point into (allocate data buffers here). */
  get memory(): TcpMemory {
    return this.transport.memory;
  }

  /** Controller id (Connect's; it changes on reconnect). */
  get cntlid(): number {
    return this.controller.cntlid;
  }

  /** Identify Controller data (4096 bytes). */
  get identify(): Uint8Array {
    return this.controller.identifyData;
  }

  /** Largest transfer per command (MDTS, the target's limit and the option). */
  get maxTransfer(): number {
    return this.controller.maxTransferBytes;
  }

  /** Largest write sent in-capsule on IO queues (IOCCSZ × 16 − 64). */
  get inCapsuleMax(): number {
    return this.controller.inCapsuleBytes;
  }

  /**
   * Connect to the discovery controller at `o.host:o.port` (default 8009; no
   * IO queues, no keep-alive), read its log page and disconnect.
   */
  static async discover(o: Omit<TcpControllerOptions, "subnqn" | "ioQueues">): Promise<DiscoveryEntry[]> {
    const c = await TcpController.connect({ port: 8009, ...o, subnqn: DISCOVERY_NQN, katoMs: 0 });
    try {
      return await c.discoveryLog();
    } finally {
      await c.shutdown().catch(() => c.close());
    }
  }

  /**
   * The discovery log (Get Log Page 70h): header, then header and entries
   * from offset 0 in pieces of at most maxTransfer, then the header again;
   * read again while the generation counter moved (at most `tries` times).
   */
  async discoveryLog(tries = 10): Promise<DiscoveryEntry[]> {
    return decodeDiscoveryLog(await this.discoveryLogBytes(tries));
  }

  /** The same log undecoded, header and records (for tools that print every field, as nvme-cli does). */
  async discoveryLogBytes(tries = 10): Promise<Uint8Array> {
    for (let t = 0; t < tries; t++) {
      const h1 = decodeDiscoveryHeader(await this.#log(LID_DISCOVERY, 0, DISC_RECORD_SIZE));
      const all = await this.#log(LID_DISCOVERY, 0, DISC_RECORD_SIZE * (h1.numrec + 1));
      const h2 = decodeDiscoveryHeader(await this.#log(LID_DISCOVERY, 0, DISC_RECORD_SIZE));
      const mid = decodeDiscoveryHeader(all);
      if (h1.genctr === mid.genctr && mid.genctr === h2.genctr && mid.numrec === h1.numrec) return all;
    }
    throw new ControllerFatalError(`discovery log kept changing over ${tries} reads`);
  }

  async #log(lid: number, offset: number, bytes: number): Promise<Uint8Array> {
    const out = new Uint8Array(bytes);
    const step = Math.max(4096, Math.floor(this.maxTransfer / 4096) * 4096);
    const c = this.controller;
    const b = c.allocDma(Math.min(bytes, step));
    try {
      for (let o = 0; o < bytes; o += step) {
        const n = Math.min(step, bytes - o);
        await c.adminCommand(getLogPageCmd(lid, n, { nsid: 0, offset: offset + o }), b.iova, n);
        out.set(b.bytes.subarray(0, n), o);
      }
      return out;
    } finally {
      c.freeDma(b);
    }
  }

  /** Identify Namespace `nsid`: size and block size. */
  async namespace(nsid: number): Promise<TcpNamespaceInfo> {
    const d = decodeIdentifyNamespace(await this.controller.identify(identifyNamespaceCmd(nsid)));
    if (d.nsze === 0n) throw new InvalidArgumentError(`namespace ${nsid} is not active`);
    return { nsid, blocks: Number(d.nsze), lbaSize: d.blockSize };
  }

  /** Active namespace ids (Identify CNS 02h, first 1024). */
  async namespaceIds(): Promise<number[]> {
    return decodeNsidList(await this.controller.identify(activeNsListCmd(0)));
  }

  /** Normal shutdown: close the IO queues, CC.SHN = normal, wait for CSTS.SHST complete (bounded), close. */
  async shutdown(): Promise<void> {
    try {
      await this.controller.shutdown();
    } finally {
      this.transport.close();
    }
  }

  /** Close every connection now (in-flight commands fail). Idempotent. */
  close(): void {
    for (const q of this.io) q.qp.close();
    this.admin.qp.close();
    // With the queues closed this sends nothing; it stops the keep-alive timer and any reconnect.
    void this.controller.shutdown(new DeviceClosedError()).catch(() => {});
    this.transport.close();
  }
}
