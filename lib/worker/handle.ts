/**
 * The queue handle a Worker receives, and the control protocol between the
 * thread that owns the controller and the thread that owns a queue. Nothing
 * crosses threads per IO: the owner places commands in its ring itself;
 * only pause / reset / resume / fail (recovery) and timeouts travel here.
 * @module
 */
import {
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
  /** The queue's PCIe rings (memory, doorbells, PRP pages), as this thread's PcieRing is built over them. */
  readonly ring: SharedPcieRing;
  /** Largest transfer per command. */
  readonly maxTransferBytes: number;
  /** Default IO timeout, ms. */
  readonly ioTimeoutMs: number;
  /** Polling window, µs. */
  readonly pollSpinUs: number;
  /** DMA memory the Worker allocates its buffers from. */
  readonly arena: SharedMemory;
  /** Active namespaces. */
  readonly namespaces: NamespaceInfo[];
  /** The queue's interrupt (its vector's wake word), or null when polled. */
  readonly irq: InterruptWord | null;
  /** How the queue waits: poll, interrupt or adaptive. */
  readonly waitMode: WaitMode;
  /** Control channel to the controller's thread. */
  readonly port: MessagePort;
  /**
   * One Int32 word shared with the controller's thread: 0 new, 1 opened by a
   * Worker, 2 revoked (closed before anyone opened it). Compare-and-swap on it
   * tells the controller whether any thread may hold views of the memory.
   */
  readonly state: SharedArrayBuffer;
  /** Transfer list for postMessage (the port). */
  readonly transfer: Transferable[];
}

/** Control messages (internal). */
export type ControlMsg =
  | { op: "pause" }
  | { op: "reset"; id: number; err: WireError }
  | { op: "resume" }
  | { op: "fail"; id: number; err: WireError }
  | { op: "holds"; id: number; cid: number }
  | { op: "released"; id: number }
  | { op: "ack"; id: number; value?: unknown }
  | { op: "timeout"; cid: number; opcode: number }
  | { op: "release"; id: number };

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
    default:
      return new NvmeError(w.code, w.message);
  }
}
