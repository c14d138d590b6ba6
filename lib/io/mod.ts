/**
 * IO features: namespaces and their read/write/flush, write zeroes, dataset
 * management, compare, verify and copy, usable on their own.
 * @module
 */
export {
  type BlockRange,
  BOUNCE_MAX,
  type DsmOptions,
  type IoHost,
  type IoOptions,
  Namespace,
  type NamespaceInfo,
  type WriteZeroesOptions,
} from "./namespace.ts";
export { type IoCallback, QueuePair, type QueuePairConfig, type QueueStats, type QueueWaiter } from "../nvme/queue.ts";
export { PcieRing, type PcieRingConfig, type QueueRing } from "../nvme/pcie.ts";
export { CommandTracker } from "../nvme/tracker.ts";
export { type IoPassthruCommand, ioPassthru } from "./passthru.ts";
export { bounceClass, BouncePool } from "./bounce.ts";
export type { DmaBuffer } from "../nvme/transport.ts";
export * from "./zns.ts";
export * from "./fdp.ts";
