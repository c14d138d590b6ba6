/**
 * The software NVMe controller: a device model in a worker that the driver
 * drives through the same Transport boundary as VFIO, with fault injection.
 * Three rooms: the PCIe front end (lib/sim/pcie.ts: registers, rings,
 * doorbells, PRPs), the controller model (lib/sim/engine.ts: command
 * semantics, reusable by other front ends such as an NVMe/TCP target) and
 * the media (lib/sim/media.ts, lib/sim/nsmedia.ts).
 * @module
 */
export { parseSimSpec, SimFaults, SimTransport } from "./transport.ts";
export type {
  BogusKind,
  FaultAction,
  FaultRule,
  HeldCommand,
  SimNamespaceOptions,
  SimOptions,
  SimState,
} from "./options.ts";
export {
  BufferPort,
  ControllerModel,
  DataDir,
  PENDING,
  transferDirection,
} from "./engine.ts";
export type { DataPort, FabricsIdentity, FrontEnd, ModelIdentity, ModelNamespace, ModelNamespaceState, ModelOptions } from "./engine.ts";
export { FileMedia, MemMedia } from "./media.ts";
export type { AnyMedia, AsyncMedia, Media, MediaDone } from "./media.ts";
export type {
  DmaBuffer,
  InterruptGate,
  InterruptSource,
  InterruptWord,
  SharedMemory,
  Transport,
} from "../nvme/transport.ts";
export { identityOf, modelOptionsOf, NamespaceMedia, namespaceOf } from "./nsmedia.ts";
export type { BackingDevice, BackingNamespace } from "./nsmedia.ts";
export { ZonedNamespace } from "./zns.ts";
export type { SimZonedOptions, ZonedIo } from "./zns.ts";
export { FdpSubsystem } from "./fdp.ts";
export type { SimFdpOptions } from "./fdp.ts";
