/**
 * NVMeDev: the facade users open. It ties a transport, the generic controller,
 * namespaces and DMA buffer management together.
 * @module
 */
import { elbafAt, type IdCtrl, type IdNs, identifyNamespaceOf, parseIdNs } from "./nvme/identify.ts";
import { piFormatOf } from "./nvme/pi.ts";
import { identifyCmd } from "./nvme/command.ts";
import { Cns } from "./nvme/spec.ts";
import { envOf } from "./ffi/env.ts";
import { waitAsyncWakes } from "./ffi/wait.ts";
import { loadLibc } from "./ffi/mod.ts";
import { BouncePool } from "./io/bounce.ts";
import { type IoHost, Namespace, type NamespaceInfo } from "./io/namespace.ts";
import { Controller, type ControllerOptions, validateControllerOptions } from "./nvme/controller.ts";
import { DeviceBusyError, DeviceClosedError, InvalidArgumentError, type NvmeError, SetupError } from "./nvme/errors.ts";
import type { QueuePair, QueueStats } from "./nvme/queue.ts";
import { type DmaBuffer, type FabricTransport, type InterruptSource, isFabric, type Transport } from "./nvme/transport.ts";
import type { WaitMode } from "./irq/adaptive.ts";
import { IrqWaiter } from "./irq/waiter.ts";
import process from "node:process";
import { CommandTrace, type TraceOptions } from "./nvme/trace.ts";
import { normalizePciAddress } from "./vfio/sysfs.ts";
import type { QueueHandle } from "./worker/handle.ts";
import { createQueueHandle, type PortQueue, type QueueOptions, QueueWorker } from "./worker/host.ts";

export type { QueueHandle, QueueOptions };
export { QueueWorker };

/** Options for {@link NVMeDev.open}. */
export interface OpenOptions extends ControllerOptions {
  /** Open over an already-built transport instead of resolving `target` (tests, other transports). */
  transport?: Transport | FabricTransport;
  /**
   * `tcp://` targets: the host NQN sent in every Connect. Default as nvme-cli:
   * /etc/nvme/hostnqn, else one derived from the machine's UUID (stable).
   */
  hostnqn?: string;
  /** `tcp://` targets: the host ID, a UUID string. Default: /etc/nvme/hostid, else the host NQN's UUID. */
  hostid?: string;
  /** `tcp://` targets: ask for header (`hdgst`) and data (`ddgst`) CRC32C digests (nvme-cli -g / -G). */
  digests?: { hdgst?: boolean; ddgst?: boolean };
  /** `tcp://` targets: keep-alive timeout sent in Connect, ms (default 5000 as Linux; 0: none). */
  katoMs?: number;
  /**
   * PCIe targets: the VF token (a UUID) that a VF of a PF bound to vfio-pci is opened with, as the
   * PF's owner set it (lib/admin/virt.ts `enableVfs`); libvfn's VFTOKEN.
   */
  vfToken?: string;
  /**
   * How queues wait for completions. `adaptive` (default): poll while
   * completions come fast, sleep on the queue's interrupt (MSI-X) once idle,
   * so an idle device costs no CPU; `interrupt`: sleep on the interrupt
   * whenever nothing is ready; `poll`: never use interrupts. When the default
   * cannot enable interrupts it falls back to `poll` (see `info.interrupts`);
   * an explicit `adaptive`/`interrupt` then fails with SetupError("irq").
   * Over a fabric (tcp://) the socket plays the interrupt: the default there
   * is `interrupt` (sleep until data arrives); `adaptive` polls the socket
   * for pollSpinUs after each completion first, `poll` never sleeps on it.
   */
  interrupts?: WaitMode;
  /**
   * Trace every command and its completion (lib/nvme/trace.ts): `true` keeps
   * the last 64 and logs each line to stderr, or give options / your own
   * CommandTrace. The environment variable TSNVME_TRACE=1 (or =N, keeping N)
   * turns it on too. The last commands are attached to NvmeTimeoutError and
   * ControllerResetError (`err.trace`). Off by default, at no cost.
   */
  trace?: boolean | TraceOptions | CommandTrace;
}

function traceFrom(opt: OpenOptions["trace"]): CommandTrace | null {
  if (opt instanceof CommandTrace) return opt;
  if (opt && typeof opt === "object") return new CommandTrace(opt);
  const stderr = (l: string) => process.stderr.write(l + "\n");
  if (opt === true) return new CommandTrace({ log: stderr });
  if (opt === false) return null;
  const env = envOf("TSNVME_TRACE");
  if (!env || env === "0") return null;
  const n = Number(env);
  return new CommandTrace({ capacity: Number.isInteger(n) && n > 1 ? n : 64, log: stderr });
}

/** Controller identity and limits, decoded. */
export interface ControllerInfo {
  /** Serial number (trimmed). */
  serial: string;
  /** Model number (trimmed). */
  model: string;
  /** Firmware revision (trimmed). */
  firmware: string;
  /** PCI vendor id. */
  vid: number;
  /** PCI subsystem vendor id. */
  ssvid: number;
  /** Controller id. */
  cntlid: number;
  /** NVMe version reported by the VS register, e.g. "1.4.0". */
  version: string;
  /** Maximum Data Transfer Size as reported (a power of two of the minimum page size; 0 = no limit). */
  mdts: number;
  /** Bytes per command the driver uses (MDTS, capped). */
  maxTransferBytes: number;
  /** Number of namespaces the controller supports (NN). */
  nn: number;
  /** Optional NVM Command Support bits (ONCS). */
  oncs: number;
  /** Volatile write cache present. */
  vwc: boolean;
  /** Memory page size in use. */
  pageSize: number;
  /** IO queue pairs created. */
  ioQueues: number;
  /** Entries per IO queue. */
  ioQueueDepth: number;
  /** Interrupt mechanism and vectors in use ("msix, 17 vectors"), or "none" (polled). */
  interrupts: string;
  /** How queues wait: poll, interrupt or adaptive. */
  waitMode: WaitMode;
}

const openTargets = new Set<string>();

/** Check the fabric options before anything connects. */
function validateFabricOptions(o: OpenOptions): void {
  for (const k of ["hostnqn", "hostid"] as const) {
    if (o[k] !== undefined && typeof o[k] !== "string") throw new InvalidArgumentError(`${k} must be a string`);
  }
  if (o.katoMs !== undefined && !(typeof o.katoMs === "number" && o.katoMs >= 0 && o.katoMs <= 0xffff_ffff)) {
    throw new InvalidArgumentError(`katoMs must be a number of ms in 0..2^32-1, got ${String(o.katoMs)}`);
  }
  const d = o.digests;
  if (d !== undefined && (d === null || typeof d !== "object" || Object.keys(d).some((k) => k !== "hdgst" && k !== "ddgst"))) {
    throw new InvalidArgumentError(`digests must be { hdgst?: boolean, ddgst?: boolean }`);
  }
}

function isDetached(v: Uint8Array): boolean {
  return (v.buffer as ArrayBuffer & { detached?: boolean }).detached === true;
}


/** An open NVMe controller. Get one with {@link NVMeDev.open}; close it with {@link NVMeDev.close} or `await using`. */
export class NVMeDev implements AsyncDisposable {
  /** What was opened, e.g. "0000:01:00.0". */
  readonly target: string;
  /** The generic controller (admin queue, IO queues, raw admin commands). */
  readonly controller: Controller;
  /** Identify Controller, decoded with nvme-cli's field names. */
  readonly idCtrl: IdCtrl;
  /** Identity and limits. */
  readonly info: ControllerInfo;
  readonly #namespaces = new Map<number, Namespace>();
  readonly #idNs = new Map<number, IdNs>();
  readonly #bounce: BouncePool;
  readonly #userBuffers = new Map<ArrayBufferLike, DmaBuffer>();
  #closedError: NvmeError | null = null;
  #closing: Promise<void> | null = null;
  #rr = 0;
  readonly #host: IoHost;
  readonly #remote = new Set<PortQueue>();
  readonly #irq: InterruptSource | null;
  readonly #waitMode: WaitMode;

  /** The command trace, when on (see OpenOptions.trace). */
  readonly trace: CommandTrace | null;

  private constructor(target: string, ctrl: Controller, irq: InterruptSource | null, mode: WaitMode, trace: CommandTrace | null, explicit = false) {
    this.#irq = irq;
    // A fabric queue sleeps on readiness of its connection: the interrupt's part.
    this.#waitMode = ctrl.fabric ? (mode === "adaptive" && !explicit ? ctrl.admin.waitMode : mode) : irq ? mode : "poll";
    if (ctrl.fabric && this.#waitMode !== ctrl.admin.waitMode) {
      // The socket is polled by recv in the pump: give the IO queues a spin window (the admin queue keeps sleeping).
      for (const q of ctrl.io) {
        q.pollSpinUs = ctrl.options.pollSpinUs;
        q.setWaitMode(this.#waitMode);
      }
    }
    this.#bounce = new BouncePool((n) => ctrl.allocDma(n), (b) => ctrl.freeDma(b));
    this.target = target;
    this.controller = ctrl;
    this.idCtrl = ctrl.idCtrl;
    const s = ctrl.id;
    this.info = {
      serial: s.serial,
      model: s.model,
      firmware: s.firmware,
      vid: s.vid,
      ssvid: s.ssvid,
      cntlid: s.cntlid,
      version: ctrl.version,
      mdts: s.mdts,
      maxTransferBytes: ctrl.maxTransferBytes,
      nn: s.nn,
      oncs: s.oncs,
      vwc: s.vwc,
      pageSize: ctrl.pageSize,
      ioQueues: ctrl.io.length,
      ioQueueDepth: ctrl.io[0]?.depth ?? 0,
      interrupts: irq ? `${irq.kind}, ${irq.vectors} vector${irq.vectors === 1 ? "" : "s"}` : "none",
      waitMode: this.#waitMode,
    };
    this.trace = trace;
    if (trace) for (const q of [ctrl.admin, ...ctrl.io]) q.trace = trace;
    if (irq) {
      // A vector only one queue uses gets a gate: in adaptive mode the queue turns it off while it polls.
      const waiter = (v: number) => new IrqWaiter(irq.word(v), ctrl.vectorExclusive(v) ? irq.gate?.(v) ?? null : null);
      ctrl.admin.setWaitMode(mode, waiter(0));
      for (const q of ctrl.io) q.setWaitMode(mode, waiter(ctrl.ioVector(q.qid)));
    }
    // deno-lint-ignore no-this-alias
    const dev = this;
    this.#host = {
      get closedError() {
        return dev.#closedError;
      },
      pickQueue: () => {
        const io = ctrl.io;
        if (io.length === 1) return io[0];
        this.#rr = (this.#rr + 1) % io.length;
        return io[this.#rr];
      },
      maxTransferBytes: ctrl.maxTransferBytes,
      dmaOf: (v) => ctrl.transport.dmaOf(v),
      takeBounce: (size) => this.#bounce.take(size),
      giveBounce: (b) => this.#bounce.give(b),
    };
  }

  /**
   * Open a controller. `target` is a PCI address ("0000:01:00.0" or "01:00.0",
   * optionally prefixed "vfio:") of a controller bound to vfio-pci, "sim:..."
   * for the software controller (syntax: lib/sim/options.ts parseSimSpec), or
   * "tcp://HOST[:PORT]/SUBNQN" for an NVMe/TCP target (port 4420 by default;
   * IPv6 in brackets; host identity, digests and keep-alive in `options`).
   * Over TCP a lost connection fails in-flight commands with
   * ConnectionLostError and reconnects (`reconnectDelayMs`,
   * `ctrlLossTimeoutMs`); queues owned by Workers need a PCIe controller.
   *
   * @example
   * ```ts ignore
   * await using dev = await NVMeDev.open("tcp://192.168.1.20:4420/nqn.2024-01.io.example:disk1", {
   *   ioQueues: 4,
   *   digests: { hdgst: true, ddgst: true },
   * });
   * console.log(dev.info.model, dev.nsList());
   * ```
   */
  static async open(target: string, options: OpenOptions = {}): Promise<NVMeDev> {
    if (typeof target !== "string") throw new InvalidArgumentError("target must be a string such as 0000:01:00.0");
    validateControllerOptions(options);
    const im = options?.interrupts;
    if (im !== undefined && im !== "poll" && im !== "interrupt" && im !== "adaptive") {
      throw new InvalidArgumentError(`interrupts must be "adaptive", "interrupt" or "poll", got ${String(im)}`);
    }
    let transport = options?.transport;
    let key: string;
    if (!transport && /^tcp:\/\//i.test(target)) {
      const { parseTcpTarget } = await import("./tcp/target-string.ts");
      const { resolveHostIdentity } = await import("./tcp/host-identity.ts");
      const { TcpTransport } = await import("./tcp/transport.ts");
      const a = parseTcpTarget(target);
      validateFabricOptions(options);
      const id = resolveHostIdentity({ hostnqn: options.hostnqn, hostid: options.hostid });
      transport = new TcpTransport({ ...a, hostnqn: id.hostnqn, hostid: id.hostid, digests: options.digests, katoMs: options.katoMs });
    }
    if (!transport && /^sim(:|$)/.test(target)) {
      // The software controller: same driver, no hardware (see lib/sim).
      const { SimTransport } = await import("./sim/transport.ts");
      transport = await SimTransport.create(target);
    }
    if (transport) {
      key = transport.name;
    } else {
      const addr = normalizePciAddress(target.replace(/^vfio:/, ""));
      if (!addr) throw new InvalidArgumentError(`not a PCI address: ${JSON.stringify(target)} (expected e.g. 0000:01:00.0)`);
      key = `vfio:${addr}`;
    }
    if (openTargets.has(key)) throw new DeviceBusyError(`${key} is already open in this process`);
    openTargets.add(key);
    try {
      if (!transport) {
        let libc;
        try {
          libc = await loadLibc();
        } catch (e) {
          throw new SetupError("no-ffi", (e as Error).message, { cause: e });
        }
        const { VfioTransport } = await import("./vfio/transport.ts");
        transport = VfioTransport.open(libc, key.slice(5), { vfToken: options.vfToken });
      }
      let mode = options.interrupts ?? "adaptive";
      let irq: InterruptSource | null = null;
      if (isFabric(transport)) {
        // No vectors: completions arrive on the connections.
      } else if (mode !== "poll" && transport.enableInterrupts && !await waitAsyncWakes()) {
        // A sleep on a vector's word would never end (Deno with V8's --single-threaded): poll, or say why not.
        if (options.interrupts !== undefined) {
          transport.close();
          throw new SetupError(
            "irq",
            `Atomics.waitAsync never wakes in this runtime (Deno with V8's --single-threaded?), so no queue can sleep on an interrupt; open it with interrupts: "poll"`,
          );
        }
        mode = "poll";
      } else if (mode !== "poll" && transport.enableInterrupts && options.ioInterruptVectors !== 0) {
        // Vector 0 for the admin queue, one per IO queue the controller may grant.
        const want = options.ioInterruptVectors ?? Math.max(options.maxIoQueues ?? 16, options.ioQueues ?? 1) + 1;
        try {
          irq = await transport.enableInterrupts(want);
        } catch (e) {
          if (options.interrupts !== undefined) {
            transport.close();
            throw e;
          }
        }
      } else if (mode !== "poll" && options.interrupts !== undefined) {
        transport.close();
        throw new SetupError("irq", `${transport.name} has no interrupts; open it with interrupts: "poll"`);
      }
      let ctrl: Controller;
      try {
        ctrl = await Controller.init(transport, { ...options, ioInterruptVectors: irq?.vectors ?? 0 });
      } catch (e) {
        await irq?.close();
        transport.close();
        throw e;
      }
      const dev = new NVMeDev(key.replace(/^vfio:/, ""), ctrl, irq, mode, traceFrom(options.trace), options.interrupts !== undefined);
      try {
        await dev.rescan();
      } catch (e) {
        await dev.close();
        throw e;
      }
      return dev;
    } catch (e) {
      openTargets.delete(key);
      throw e;
    }
  }

  /** Re-read the active namespace list and each namespace's geometry. */
  async rescan(): Promise<void> {
    this.#checkOpen();
    // A discovery controller has a log page, no namespaces.
    const ids = this.controller.isDiscovery ? [] : await this.controller.activeNamespaces();
    this.#namespaces.clear();
    this.#idNs.clear();
    for (const nsid of ids) {
      const id = parseIdNs(await this.controller.identifyNamespace(nsid));
      const s = identifyNamespaceOf(id);
      if (s.nsze === 0n) continue;
      const info: NamespaceInfo = {
        nsid,
        blockSize: s.blockSize,
        blockCount: s.nsze,
        capacity: s.ncap,
        utilization: s.nuse,
        metadataSize: s.metadataSize,
        lbaFormat: s.lbaFormat,
        mssrl: s.mssrl,
        mcl: s.mcl,
        msrc: s.msrc,
        pi: s.metadataSize ? piFormatOf(s.blockSize, s.metadataSize, s.flbas, s.dps, await this.#pif(nsid, s.lbaFormat, s.dps)) : undefined,
      };
      this.#idNs.set(nsid, id);
      this.#namespaces.set(nsid, new Namespace(this.#host, info));
    }
  }

  /** The guard format (ELBAF PIF) of a PI namespace's LBA format: 0 (16-bit) when the controller has no NVM command set Identify Namespace. */
  async #pif(nsid: number, lbaf: number, dps: number): Promise<number> {
    if ((dps & 7) === 0) return 0;
    try {
      return elbafAt(await this.controller.identify(identifyCmd(Cns.CSI_NS, nsid, 0, 0)), lbaf).pif;
    } catch {
      return 0;
    }
  }

  /** Active namespace ids, ascending. */
  nsList(): number[] {
    this.#checkOpen();
    return [...this.#namespaces.keys()];
  }

  /** The active namespace `nsid`; throws InvalidArgumentError for an inactive or invalid id. */
  ns(nsid: number): Namespace {
    this.#checkOpen();
    if (!Number.isInteger(nsid) || nsid < 1 || nsid > 0xfffffffe) {
      throw new InvalidArgumentError(`namespace id must be an integer from 1 to 0xfffffffe, got ${String(nsid)}`);
    }
    const ns = this.#namespaces.get(nsid);
    if (!ns) throw new InvalidArgumentError(`namespace ${nsid} is not active (active: ${this.nsList().join(", ") || "none"})`);
    return ns;
  }

  /** Identify Namespace for an active namespace, decoded with nvme-cli's field names. */
  idNs(nsid: number): IdNs {
    this.ns(nsid);
    return this.#idNs.get(nsid)!;
  }

  /**
   * Allocate `bytes` of DMA-capable memory. IO on (views of) it goes straight
   * to the device with no copy. Free it with {@link freeBuffer}, or let close() do it.
   *
   * @example
   * ```ts
   * import { NVMeDev } from "@tsnvme/tsnvme";
   * await using dev = await NVMeDev.open("sim:ns=1M:512");
   * const buf = dev.allocBuffer(4096);
   * await dev.ns(1).read(0, buf);
   * dev.freeBuffer(buf);
   * console.log(buf.length); // 0: freed memory is detached, never dangling
   * ```
   */
  allocBuffer(bytes: number): Uint8Array {
    this.#checkOpen();
    if (!Number.isSafeInteger(bytes) || bytes <= 0) {
      throw new InvalidArgumentError(`buffer size must be a positive integer, got ${String(bytes)}`);
    }
    const b = this.controller.allocDma(bytes);
    this.#userBuffers.set(b.bytes.buffer, b);
    return b.bytes.subarray(0, bytes);
  }

  /**
   * Release memory from {@link allocBuffer} (any view of it, `subarray()`s
   * included). The rule is **defer**: every view of the buffer is detached at
   * once (length 0, reads `undefined`, IO on it is refused), but if a command
   * on it has not ended yet, the memory stays mapped and its IOVA out of use
   * until the device can no longer write it: the command completed, was
   * aborted, or a controller reset ended it. Never throws for a live buffer.
   */
  freeBuffer(buf: Uint8Array): void {
    if (!(buf instanceof Uint8Array)) throw new InvalidArgumentError("freeBuffer takes a Uint8Array from allocBuffer()");
    const b = this.#userBuffers.get(buf.buffer);
    if (!b) {
      throw new InvalidArgumentError(
        isDetached(buf) ? "buffer was already freed" : "buffer was not allocated by this device's allocBuffer()",
      );
    }
    this.#userBuffers.delete(buf.buffer);
    this.controller.freeDma(b);
  }

  /**
   * Create an IO queue pair for another thread to own: reserved on the
   * controller (queue ids up to what it granted, see `maxIoQueues`), created on
   * the device, with an arena of DMA memory for that thread's buffers. Post the
   * handle to a Worker with its transfer list and open it there with
   * `openQueue` from `@tsnvme/tsnvme/worker`; IO then runs in that Worker with
   * no message per IO. Controller resets, CSTS.CFS, removal and close reach
   * the queue wherever it lives.
   *
   * @example
   * ```ts ignore
   * const h = await dev.createQueue({ depth: 256 });
   * const w = new Worker(new URL("./io-worker.ts", import.meta.url), { type: "module" });
   * w.postMessage({ queue: h }, h.transfer);
   * // io-worker.ts: self.onmessage = async (e) => { const q = await openQueue(e.data.queue); ... }
   * ```
   */
  async createQueue(opts: QueueOptions = {}): Promise<QueueHandle> {
    this.#checkOpen();
    if (opts === null || typeof opts !== "object") throw new InvalidArgumentError("options must be an object");
    for (const k of ["depth", "arenaBytes"] as const) {
      const v = opts[k];
      if (v !== undefined && (!Number.isSafeInteger(v) || v < (k === "depth" ? 2 : 4096))) {
        throw new InvalidArgumentError(`${k} must be an integer of at least ${k === "depth" ? 2 : 4096}, got ${String(v)}`);
      }
    }
    const infos = [...this.#namespaces.values()].map((n) => n.info);
    const irq = this.#irq;
    const ctrl = this.controller;
    const { handle, queue } = await createQueueHandle(ctrl, this.target, infos, opts, (qid) => {
      if (!irq) return null;
      const v = ctrl.ioVector(qid), w = irq.word(v);
      // The gate's spec goes only to the queue that owns its vector alone.
      return { word: ctrl.vectorExclusive(v) ? w : { sab: w.sab, slot: w.slot }, mode: this.#waitMode };
    });
    // Listed until released (by its Worker, QueueWorker.terminate, or close): a device that hands
    // out and takes back queues for hours keeps only the live ones.
    const onReleased = queue.onReleased;
    queue.onReleased = () => {
      onReleased?.();
      this.#remote.delete(queue);
    };
    this.#remote.add(queue);
    return handle;
  }

  /**
   * Start `n` Workers running `url`, each owning an IO queue of its own. The
   * Worker module takes its queue with `receiveQueue()` from
   * `@tsnvme/tsnvme/worker` (resolving to `{ queue, data }`).
   * `terminate()` on a returned QueueWorker stops it and releases its queue
   * (deleted on the device, memory unmapped once the device can no longer
   * write it).
   */
  async startWorkers(url: string | URL, n: number, opts: QueueOptions & { data?: unknown } = {}): Promise<QueueWorker[]> {
    this.#checkOpen();
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`worker count must be a positive integer, got ${String(n)}`);
    const ws: QueueWorker[] = [];
    for (let i = 0; i < n; i++) {
      const w = new Worker(url, { type: "module" });
      ws.push(new QueueWorker(w, () => this.createQueue(opts).then((handle) => ({ handle, queue: this.#portOf(handle) })), opts.data));
    }
    try {
      await Promise.all(ws.map((w) => w.ready));
    } catch (e) {
      await Promise.all(ws.map((w) => w.terminate()));
      throw e;
    }
    return ws;
  }

  #portOf(h: QueueHandle): PortQueue {
    // The newest with that qid (a released one is no longer listed, and its qid may be handed out again).
    let found: PortQueue | null = null;
    for (const q of this.#remote) if (q.qid === h.qid) found = q;
    if (found) return found;
    throw new InvalidArgumentError(`queue ${h.qid} is not this device's`);
  }

  /** IO queues handed to other threads (createQueue, startWorkers) and not yet released. */
  get workerQueues(): number {
    return this.#remote.size;
  }

  /** Counters of each IO queue pair (submitted, completed, doorbells, timeouts...). */
  queueStats(): QueueStats[] {
    return this.controller.io.map((q: QueuePair) => ({ ...q.stats }));
  }

  /** True once close() has begun. */
  get closed(): boolean {
    return this.#closedError !== null;
  }

  /**
   * Shut the controller down (CC.SHN) and release every host resource. IO still
   * in flight fails with DeviceClosedError. Idempotent.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closedError = new DeviceClosedError(`device ${this.target} is closed`);
    this.#closing = (async () => {
      try {
        await this.controller.shutdown(new DeviceClosedError(`device ${this.target} was closed while IO was in flight`));
      } finally {
        // Unmaps (and first detaches) every buffer: user views read as empty, none dangle.
        for (const q of this.#remote) {
          await q.release();
          q.closePort();
        }
        this.#remote.clear();
        await this.#irq?.close();
        this.controller.transport.close();
        this.#userBuffers.clear();
        this.#bounce.close();
        openTargets.delete(this.controller.transport.name);
      }
    })();
    return this.#closing;
  }

  /** `await using dev = await NVMeDev.open(...)` closes the device at scope exit. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #checkOpen(): void {
    if (this.#closedError) throw this.#closedError;
  }

}
