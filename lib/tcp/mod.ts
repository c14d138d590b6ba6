/**
 * NVMe over TCP, host side: PDU codecs and CRC32C digests, a streaming PDU
 * parser, one queue per TCP connection over the generic queue pair, Fabrics
 * Connect and Property Get/Set, and a controller bring-up in Linux's order.
 * The target side is lib/target.
 *
 * @example
 * ```ts
 * import { hostIdentity, TcpController } from "./mod.ts";
 * import { MediaBackend, NvmfTarget } from "../target/mod.ts";
 * import { MemMedia } from "../sim/media.ts";
 * import { readCmd } from "../nvme/command.ts";
 *
 * const nqn = "nqn.2024-01.io.example:disk1";
 * const target = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn, namespaces: [new MediaBackend(new MemMedia(1 << 20), 512)] }] });
 * const id = hostIdentity("6c4f0d1e-2b3a-4c5d-8e9f-a0b1c2d3e4f5");
 * const ctrl = await TcpController.connect({ host: "127.0.0.1", port: target.port, subnqn: nqn, ...id, katoMs: 0 });
 * const buf = ctrl.memory.allocDma(4096);
 * await ctrl.io[0].qp.submit(readCmd(1, 0, 8), buf.iova, 4096);
 * await ctrl.shutdown();
 * await target.close();
 * ```
 * @module
 */
export { crc32c, crc32cFinish, crc32cUpdate, CRC32C_INIT } from "./crc32c.ts";
export * from "./pdu.ts";
export { type DataPlacer, PduParser, type PduHandler, type PduParserOptions, type PduRole } from "./parser.ts";
export * from "./fabrics.ts";
export { TCP_IOVA_SPAN, TCP_MAX_BUFFERS, TcpMemory } from "./memory.ts";
export {
  ADMIN_IN_CAPSULE,
  DEFAULT_SOCKET_SPIN_POLLS,
  DEFAULT_TCP_MAX_TRANSFER,
  hubReadiness,
  slotReadiness,
  type SocketReadiness,
  SocketWaiter,
  type TcpByteStream,
  TcpRing,
  type TcpRingOptions,
} from "./ring.ts";
export type { TcpQueueView } from "./host.ts";
export { TcpQueue, type TcpQueueOptions } from "./queue.ts";
export { TcpController, type TcpControllerOptions, type TcpNamespaceInfo } from "./host.ts";
export * from "./discovery.ts";
export * from "./target-string.ts";
export * from "./host-identity.ts";
export { ConnectionLostError, ProtocolError, type ProtocolReason } from "../nvme/errors.ts";
export { NvmeError } from "../nvme/errors.ts";
export type { Sqe } from "../nvme/command.ts";
export type { DmaBuffer, DmaMemory, FabricHost, FabricQueueLimits, FabricRing, FabricTransport } from "../nvme/transport.ts";
export { TcpTransport, type TcpTransportOptions } from "./transport.ts";
export type { QueuePair } from "../nvme/queue.ts";
export type { CompletionSink, QueueRing } from "../nvme/ring.ts";
export type { CommandTracker } from "../nvme/tracker.ts";
export type { NvmeErrorCode } from "../nvme/errors.ts";
export type { IoCallback, QueueStats, QueueWaiter, WaitMode } from "../nvme/queue.ts";
export { AGAIN, IoVec, Socket, SocketError } from "../sock/mod.ts";
export type { IrqHub } from "../irq/hub.ts";
export type { IrqWaiter, IrqWord } from "../irq/waiter.ts";
