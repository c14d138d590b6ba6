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
export { type IoPassthruCommand, ioPassthru } from "./passthru.ts";
export { QueuePair, type QueuePairConfig, type QueueStats } from "../nvme/queue.ts";
export type { DmaBuffer } from "../nvme/transport.ts";
