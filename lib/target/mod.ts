/**
 * NVMe over TCP target: serve namespaces of any {@link NVMeDev} (a VFIO
 * controller or the software controller), lib/sim media or a file to NVMe/TCP
 * hosts such as Linux's `nvme connect -t tcp`. One listener carries the NVM
 * subsystems and a discovery controller; each admin Connect gets a
 * controller (properties, Identify with the backing controller's identity,
 * logs, features, AER, keep-alive enforcement), IO Connects add queues to
 * it, and IO maps onto the backends' queues with DMA buffers. Sockets are
 * the driver's own (lib/sock); IO queues are served by Worker threads (poll
 * groups, one per core by default), each on a queue pair of its own.
 *
 * @example
 * ```ts
 * import { MediaBackend, NvmfTarget } from "./mod.ts";
 * import { MemMedia } from "../sim/media.ts";
 *
 * const target = await NvmfTarget.listen({
 *   port: 0,
 *   subsystems: [{ nqn: "nqn.2024-01.io.example:disk1", namespaces: [new MediaBackend(new MemMedia(1 << 20), 512)] }],
 * });
 * console.log(`listening on ${target.address}:${target.port}`);
 * await target.close();
 * ```
 * @module
 */
export { type BackingDevice, type BackingNamespace, type BlockBackend, BufferPool, DevBackend, type DevBackendOptions, type IoDone, MediaBackend } from "./backend.ts";
export { type AdminReply, type ControllerLimits, DiscoveryController, type FabricsController, type Subsystem } from "./controller.ts";
export { NvmController, type Reply } from "./nvm.ts";
export { identityFromIdCtrl, NamespaceMedia } from "../sim/nsmedia.ts";
export { type CommandHook, type ConnWire, type ResumedQueue, TargetConn, type TargetFault } from "./conn.ts";
export type { Digests } from "../tcp/pdu.ts";
export { RemoteQueue, type WorkerEnd, type WorkerFault } from "./pool.ts";
export { SharedMedia, type WorkerNamespace } from "./shared.ts";
export { type ConnectRequest, type ConnHost, type DigestPolicy, NvmfTarget, type NvmfTargetOptions, type SubsystemOptions, type TargetStats } from "./server.ts";
export { MAX_CPU, type NamespaceOpenOptions, type NamespaceSpec, type OpenedNamespaces, openNamespaces, parseCpuList, parseNamespaceSpec, pinProcess } from "./spec-parse.ts";
export * from "./spec.ts";
export { Gap, TargetTrace, targetTraceOn } from "./trace.ts";
export type { AnyMedia, AsyncMedia, Media, MediaDone } from "../sim/media.ts";
export type { ControllerModel, DataPort, FabricsIdentity, ModelIdentity, ModelNamespace, ModelNamespaceState, ModelOptions } from "../sim/engine.ts";
export type { SimNamespaceOptions, SimOptions } from "../sim/options.ts";
