/**
 * The queue handle a Worker receives, and the control protocol between the
 * thread that owns the controller and the thread that owns a queue. Nothing
 * crosses threads per IO: the owner places commands in its ring itself;
 * only pause / reset / resume / fail (recovery) and timeouts travel here.
 * @module
 */
import {
  ConnectionLostError,
  ControllerFatalError,
  ControllerResetError,
  DeviceClosedError,
  DeviceGoneError,
  NvmeError,
  type NvmeErrorCode,
} from "../nvme/errors.ts";
import type { NamespaceInfo } from "../io/namespace.ts";
import type { InterruptWord, SharedMemory } from "../nvme/transport.ts";
import type { SharedPcieRing } from "../nvme/pcie.ts";
import type { WaitMode } from "../irq/adaptive.ts";
import type { IrqWord } from "../irq/waiter.ts";

/**
 * Everything a Worker needs to own one IO queue pair of an open controller.
 * Structured-cloneable: post it with its port in the transfer list,
 * `worker.postMessage({ queue: h }, h.transfer)`, and open it there with
 * `openQueue(h)` from `@tsnvme/tsnvme/worker`.
 */
export interface QueueHandle {
  /** Protocol version. */
  readonly v: 1;
  /** Device name, e.g. "0000:01:00.0" (diagnostics). */
  readonly target: string;
  /** Queue id on the controller. */
  readonly qid: number;
  /** Ring entries. */
  readonly depth: number;
  /** The queue's PCIe rings (memory, doorbells, PRP pages), as this thread's PcieRing is built over them; null over TCP. */
  readonly ring: SharedPcieRing | null;
  /** Over TCP: the connection this queue opens itself (null on PCIe). */
  readonly tcp: TcpQueueSpec | null;
  /** Largest transfer per command. */
  readonly maxTransferBytes: number;
  /** Default IO timeout, ms. */
  readonly ioTimeoutMs: number;
  /** Polling window, µs. */
  readonly pollSpinUs: number;
  /** DMA memory the Worker allocates its buffers from (null over TCP: the Worker's own memory). */
  readonly arena: SharedMemory | null;
  /** Active namespaces. */
  readonly namespaces: NamespaceInfo[];
  /** The queue's interrupt (its vector's wake word), or null when polled. */
  readonly irq: InterruptWord | null;
  /** How the queue waits: poll, interrupt or adaptive. */
  readonly waitMode: WaitMode;
  /** Control channel to the controller's thread. */
  readonly port: MessagePort;
  /**
   * One Int32 word shared with the controller's thread ({@link HandleState}):
   * 0 new, 1 opened by a Worker, 2 revoked (closed before anyone opened it),
   * 3 stopping (its Worker is being terminated: the owner fails the queue and
   * lets go of its memory at its next IO or message). Compare-and-swap on it
   * tells the controller whether any thread may hold views of the memory.
   * A second word counts the messages the controller's thread has posted to
   * the port, so an owner that blocks in calls can tell one is on its way.
   */
  readonly state: SharedArrayBuffer;
  /** Transfer list for postMessage (the port). */
  readonly transfer: Transferable[];
}

/**
 * A TCP queue owned by a Worker: its own connection to the controller's
 * target (TCP, ICReq/ICResp, Connect with the controller's cntlid), opened
 * by the Worker and re-opened there after each controller reconnect.
 */
export interface TcpQueueSpec {
  /** Target address (an IP literal or a name). */
  readonly host: string;
  /** Target port. */
  readonly port: number;
  /** Subsystem NQN. */
  readonly subnqn: string;
  /** Host NQN. */
  readonly hostnqn: string;
  /** Host ID (16 bytes). */
  readonly hostid: Uint8Array;
  /** Digests to ask for. */
  readonly digests: { hdgst: boolean; ddgst: boolean };
  /** The controller's id now (a reconnect's resume brings the new one). */
  readonly cntlid: number;
  /** Largest write sent in-capsule. */
  readonly inCapsuleMax: number;
  /** Bound on TCP connect plus ICResp, ms. */
  readonly connectTimeoutMs: number;
  /** The epoll helper slot this queue's socket sleeps on, or null (naps). */
  readonly slot: IrqWord | null;
}

/** Control messages (internal). */
export type ControlMsg =
  | { op: "pause" }
  | { op: "reset"; id: number; err: WireError }
  | { op: "resume"; cntlid?: number }
  | { op: "lost"; err: WireError }
  | { op: "fd"; fd: number }
  | { op: "wake"; fd: number }
  | { op: "fail"; id: number; err: WireError }
  | { op: "holds"; id: number; cid: number }
  | { op: "released"; id: number }
  | { op: "ack"; id: number; value?: unknown }
  | { op: "timeout"; cid: number; opcode: number }
  | { op: "stalled" }
  | { op: "release"; id: number }
  | { op: "kill" }
  | { op: "stopped" };

/** {@link QueueHandle.state} values. */
export const HandleState = {
  /** Not opened yet. */
  NEW: 0,
  /** Opened by a Worker. */
  OPENED: 1,
  /** Closed before anyone opened it. */
  REVOKED: 2,
  /** Its Worker is being terminated: the owner stops using the queue and answers "stopped". */
  STOPPING: 3,
} as const;

/** An NvmeError as it crosses threads. */
export interface WireError {
  /** Kind. */
  code: NvmeErrorCode;
  /** Message. */
  message: string;
}

/** Flatten an error for postMessage. */
export function toWire(e: NvmeError): WireError {
  return { code: e.code, message: e.message };
}

/** Rebuild a typed error on the receiving thread. */
export function fromWire(w: WireError): NvmeError {
  switch (w.code) {
    case "ERESET":
      return new ControllerResetError(w.message);
    case "ECLOSED":
      return new DeviceClosedError(w.message);
    case "EFATAL":
      return new ControllerFatalError(w.message);
    case "EGONE":
      return new DeviceGoneError(w.message);
    case "ECONNLOST":
      return new ConnectionLostError(w.message);
    default:
      return new NvmeError(w.code, w.message);
  }
}
