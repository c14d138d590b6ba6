/**
 * IO features: namespaces and their read/write/flush, write zeroes, dataset
 * management, compare, verify and copy, usable on their own; metadata and
 * end-to-end protection information (PRACT/PRCHK, host-side generate and verify).
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
  type ProtectionOptions,
  type WriteZeroesOptions,
} from "./namespace.ts";
export { defaultPrchk, generatePi, type PiTags, type PiVerifyOptions, verifyPi } from "./pi.ts";
export { type PiCheck, type PiFormat, PiType, Prinfo } from "../nvme/pi.ts";
export { type IoCallback, QueuePair, type QueuePairConfig, type QueueStats, type QueueWaiter } from "../nvme/queue.ts";
export { PcieRing, type PcieRingConfig, type QueueRing } from "../nvme/pcie.ts";
export { CommandTracker } from "../nvme/tracker.ts";
export { type IoPassthruCommand, ioPassthru } from "./passthru.ts";
export { bounceClass, BouncePool } from "./bounce.ts";
export type { DmaBuffer } from "../nvme/transport.ts";
