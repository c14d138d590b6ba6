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
 * @module
 */
export { type ControllerInfo, NVMeDev, type OpenOptions, type QueueHandle, type QueueOptions, QueueWorker } from "./lib/dev.ts";
export {
  type BlockRange,
  type DsmOptions,
  type IoOptions,
  Namespace,
  type NamespaceInfo,
  type WriteZeroesOptions,
} from "./lib/io/namespace.ts";
export { Controller, type ControllerOptions, type RemoteQueue } from "./lib/nvme/controller.ts";
export * from "./lib/nvme/errors.ts";
export * from "./lib/nvme/spec.ts";
export * from "./lib/nvme/command.ts";
export {
  type DmaBuffer,
  type DmaMemory,
  type FabricHost,
  type FabricQueueLimits,
  type FabricRing,
  type FabricTransport,
  type InterruptGate,
  type InterruptSource,
  type InterruptWord,
  isFabric,
  type SharedMemory,
  type Transport,
} from "./lib/nvme/transport.ts";
export * from "./lib/nvme/fabrics.ts";
export {
  type CommandStats,
  type Completion,
  type IoCallback,
  QueuePair,
  type QueuePairConfig,
  type QueuePairOptions,
  type QueueStats,
  type QueueWaiter,
  type SubmitOptions,
} from "./lib/nvme/queue.ts";
export { type AdminStart, CtrlrState, type CtrlrStateName, type OpsHost, type ReservedQueue, type TransportOps } from "./lib/nvme/ops.ts";
export { PcieRing, type PcieRingConfig, type QueueRing, type SharedPcieRing } from "./lib/nvme/pcie.ts";
export { CommandTracker } from "./lib/nvme/tracker.ts";
export {
  decodeIdentifyController,
  decodeIdentifyNamespace,
  IDENTIFY_BYTES,
  IdCtrlOffset,
  type IdentifyController,
  type IdentifyNamespace,
  IdNsOffset,
} from "./lib/nvme/identify.ts";
export { CommandTrace, opcodeName, type TraceEntry, type TraceOptions } from "./lib/nvme/trace.ts";
export { listNvmeControllers, type NvmeController, type PciInfo } from "./lib/vfio/sysfs.ts";
export * from "./lib/admin/log.ts";
export * from "./lib/admin/features.ts";
export * from "./lib/admin/passthru.ts";
export { type IoPassthruCommand, ioPassthru } from "./lib/io/passthru.ts";
export * from "./lib/admin/manage.ts";
export { NotSupportedError } from "./lib/admin/support.ts";
export * from "./lib/sanitize/mod.ts";
export * from "./lib/firmware/mod.ts";
