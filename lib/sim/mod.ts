/**
 * The software NVMe controller: a device model in a worker that the driver
 * drives through the same Transport boundary as VFIO, with fault injection.
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
export type { DmaBuffer, InterruptGate, InterruptSource, InterruptWord, Transport } from "../nvme/transport.ts";
