/**
 * tsnvme: a userspace NVMe driver for Deno and Bun over Linux VFIO.
 *
 * Open a controller by PCI address ("0000:01:00.0", bound to vfio-pci) or, as
 * here, the software controller, which needs no hardware:
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:ns=16M:512");
 * assert.deepEqual(dev.nsList(), [1]);
 * const ns = dev.ns(1);
 * const buf = dev.allocBuffer(ns.blockSize * 8); // DMA memory: no copy
 * buf.fill(0xa5);
 * await ns.write(0, buf);
 * const back = new Uint8Array(buf.length);
 * await ns.read(0, back); // plain memory works too, through a bounce buffer
 * assert.deepEqual(back, buf);
 * ```
 *
 * This entry holds what an application uses: the device, its namespaces,
 * their options and results, the errors and the command trace. Admin
 * commands live in `@tsnvme/tsnvme/admin`; spec constants, command builders,
 * layouts, the controller, queue pairs and rings in `@tsnvme/tsnvme/raw`,
 * which also exports the types of the few raw doors this API leaves open
 * (`dev.controller`, `OpenOptions.transport`, a `QueueHandle`'s ring).
 * @module
 */
export {
  type ControllerInfo,
  NVMeDev,
  type OpenOptions,
  type QueueHandle,
  type QueueOptions,
  QueueWorker,
} from "./lib/dev.ts";
export {
  type BlockRange,
  type DsmOptions,
  type IoOptions,
  Namespace,
  type ProtectionOptions,
  type NamespaceInfo,
  type WriteZeroesOptions,
} from "./lib/io/namespace.ts";
// The device and its namespaces, with their options and results.
export type { ControllerOptions } from "./lib/nvme/controller.ts";
export type { DmaBuffer } from "./lib/nvme/transport.ts";
export type { IoCallback } from "./lib/nvme/tracker.ts";
export type { QueueStats } from "./lib/nvme/queue.ts";
export type { CommandStats } from "./lib/nvme/tracker.ts";
export type { WaitMode } from "./lib/nvme/idle.ts";
export type {
  IdCtrl,
  IdNs,
  LbaFormat,
  PowerState,
} from "./lib/nvme/identify.ts";
export { Uint128, Uint64 } from "./lib/nvme/wide.ts";
export type { DecodedStatus } from "./lib/nvme/spec.ts";
// Every error the driver throws.
export {
  AbortedError,
  type CommandContext,
  ConnectionLostError,
  ControllerFatalError,
  ControllerResetError,
  DeviceBusyError,
  DeviceClosedError,
  DeviceGoneError,
  InvalidArgumentError,
  NvmeCompareError,
  NvmeError,
  type NvmeErrorCode,
  NvmePiError,
  NvmeStatusError,
  NvmeTimeoutError,
  OutOfResourcesError,
  PiCheckError,
  ProtocolError,
  type ProtocolReason,
  SetupError,
  type SetupReason,
  SyscallError,
} from "./lib/nvme/errors.ts";
export { NotSupportedError } from "./lib/admin/support.ts";
// The command trace (OpenOptions.trace).
export {
  CommandTrace,
  type TraceEntry,
  type TraceOptions,
} from "./lib/nvme/trace.ts";
