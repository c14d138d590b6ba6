/**
 * Interrupt-driven waiting: VFIO vectors with one eventfd each
 * ({@link VfioInterrupts}), one helper thread for all of them ({@link IrqHub}),
 * sockets' readiness ({@link IrqHub.addSocket}: EPOLLONESHOT, re-armed by
 * the waiter), a per-queue {@link IrqWaiter} usable from any thread, and the poll /
 * interrupt / adaptive decision of a completion pump ({@link IdlePolicy}).
 * @module
 */
export type { Libc, RuntimeName } from "../ffi/mod.ts";
export { Idle, type IdleAction, IdlePolicy, type IdlePolicyOptions, sleepOnIrq, type WaitMode } from "./adaptive.ts";
export { IrqHub, type IrqHubOptions } from "./hub.ts";
export { counterIndex, type IrqGate, IrqLayout, IrqWaiter, type IrqWord, kindIndex } from "./waiter.ts";
export { attachSocket, detachSocket, SOCKET_EVENTS, SocketGate, socketWaiter } from "./socket.ts";
export {
  type EnableInterruptsOptions,
  type IrqDevice,
  IrqIndex,
  type IrqInfo,
  irqInfo,
  type IrqKind,
  gateFor,
  MsixMaskGate,
  msixTable,
  VectorGate,
  type VectorGateSpec,
  VfioInterrupts,
} from "../vfio/irq.ts";
