/**
 * IO features: namespaces and their read/write/flush, usable on their own.
 * @module
 */
export { BOUNCE_MAX, type IoHost, type IoOptions, Namespace, type NamespaceInfo } from "./namespace.ts";
export { QueuePair, type QueuePairConfig, type QueueStats } from "../nvme/queue.ts";
export type { DmaBuffer } from "../nvme/transport.ts";
