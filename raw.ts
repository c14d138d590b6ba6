/**
 * The driver's building blocks, apart from the application API in
 * `@tsnvme/tsnvme`: spec constants, command builders, the Identify, log-page
 * and feature layouts, the controller sequence, queue pairs, rings, the
 * command tracker, the transport seams and the fabrics commands. Use them to
 * send a command the API does not wrap, write a transport, or test one.
 *
 * A raw Identify Controller, built here and sent on the admin queue of a
 * device opened through the application API:
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { Cns, decodeIdentifyController, IDENTIFY_BYTES, identifyCmd } from "@tsnvme/tsnvme/raw";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:");
 * const buf = dev.controller.allocDma(IDENTIFY_BYTES);
 * try {
 *   await dev.controller.adminCommand(identifyCmd(Cns.CONTROLLER), buf.iova, IDENTIFY_BYTES);
 *   assert.equal(decodeIdentifyController(buf.bytes).serial, dev.info.serial);
 * } finally {
 *   dev.controller.freeDma(buf);
 * }
 * ```
 * @module
 */
export * from "./lib/nvme/spec.ts";
export * from "./lib/nvme/command.ts";
export * from "./lib/nvme/identify.ts";
export * from "./lib/nvme/logs.ts";
export * from "./lib/nvme/features.ts";
export * from "./lib/nvme/fabrics.ts";
export {
  COPY_RANGE_BYTES,
  CopyRangeOffset,
  decodeCopyRanges,
  decodeDsmRanges,
  DSM_RANGE_BYTES,
  DsmRangeOffset,
  encodeCopyRanges,
  encodeDsmRanges,
  // Named apart from features.ts's LbaRange (the LBA Range Type feature's entry).
  type LbaRange as LbaExtent,
} from "./lib/nvme/ranges.ts";
export { getU128, setU128, Uint128, Uint64, viewOf } from "./lib/nvme/wide.ts";
// End-to-end protection information: tuple layouts, PRINFO bits, per-block generate and check; the guard CRCs.
export * from "./lib/nvme/pi.ts";
export {
  type Crc64State,
  crc16T10dif,
  crc64Nvme,
  crc64NvmeFinal,
  crc64NvmeInit,
  crc64NvmeState,
  crc64NvmeUpdate,
} from "./lib/util/crc.ts";
export { statusError, statusFieldOf } from "./lib/nvme/errors.ts";
export { Controller, type RemoteQueue } from "./lib/nvme/controller.ts";
export {
  type AdminStart,
  CtrlrState,
  type CtrlrStateName,
  type OpsHost,
  type ReservedQueue,
  type TransportOps,
} from "./lib/nvme/ops.ts";
export {
  type Completion,
  QueuePair,
  type QueuePairConfig,
  type QueuePairOptions,
  type QueueStats,
  type QueueWaiter,
  type SubmitOptions,
} from "./lib/nvme/queue.ts";
export type { CompletionSink, QueueRing } from "./lib/nvme/ring.ts";
export {
  PcieOps,
  PcieRing,
  type PcieRingConfig,
  prpPagesFor,
  type SharedPcieRing,
  sharedPcieRing,
} from "./lib/nvme/pcie.ts";
export { type CommandStats, CommandTracker } from "./lib/nvme/tracker.ts";
export {
  Idle,
  type IdleAction,
  IdlePolicy,
  type IdlePolicyOptions,
  type WaitMode,
} from "./lib/nvme/idle.ts";
export {
  type AdminPort,
  adminTransfer,
  dmaTransfer,
  type TransferOptions,
  type TransferResult,
} from "./lib/nvme/transfer.ts";
export {
  type CheckedPassthru,
  checkPassthru,
  opcodeDirection,
  type PassthruCommand,
  type PassthruDirection,
  type PassthruResult,
  sendPassthru,
} from "./lib/nvme/passthru.ts";
export {
  detachView,
  dmaBuffer,
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
export { commandName, opcodeName } from "./lib/nvme/trace.ts";
// Also in the application API; here too, so every type this entry's API names is exported from it.
export type { DmaBuffer } from "./lib/nvme/transport.ts";
export type { IoCallback } from "./lib/nvme/tracker.ts";
export type { ControllerOptions } from "./lib/nvme/controller.ts";
export { type CommandContext, NvmeError, type NvmeErrorCode, NvmeStatusError } from "./lib/nvme/errors.ts";
export { CommandTrace, type TraceEntry } from "./lib/nvme/trace.ts";
export {
  listNvmeControllers,
  type NvmeController,
  type PciInfo,
} from "./lib/vfio/sysfs.ts";
export {
  dbbufConfigCmd,
  dbbufNeedEvent,
  OACS_DBBUF,
  type PcieOptions,
  type ShadowDoorbells,
  validatePcieOptions,
} from "./lib/nvme/pcie.ts";
export * from "./lib/nvme/sgl.ts";
export type { PciBar } from "./lib/nvme/transport.ts";
export {
  CAP_CMBS,
  type CmbInfo,
  Cmbmsc,
  CmbszBit,
  decodeCmb,
} from "./lib/nvme/pcie.ts";
export * from "./lib/nvme/virt.ts";
