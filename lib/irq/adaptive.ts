/**
 * The SLEEP step of a completion pump's idle policy: arm, reap once more,
 * sleep on the interrupt ({@link sleepOnIrq}). The policy itself (poll /
 * interrupt / adaptive, {@link IdlePolicy}) is the queue pair's and lives in
 * lib/nvme/idle.ts, so lib/nvme does not import lib/irq; its names are
 * re-exported here for lib/irq's users.
 * @module
 */
import type { IrqWaiter } from "./waiter.ts";

export { Idle, type IdleAction, IdlePolicy, type IdlePolicyOptions, type WaitMode } from "../nvme/idle.ts";

/**
 * The SLEEP step, with no lost wake-up: arm (snapshot the interrupt count),
 * reap once more (a completion posted between the pump's last poll and the
 * arm is caught here, and its interrupt makes the sleep return at once),
 * then sleep until an interrupt or `timeoutMs` (the next command deadline or
 * health check). Resolves true if completions or an interrupt ended it.
 */
export async function sleepOnIrq(irq: IrqWaiter, reap: () => number, timeoutMs: number): Promise<boolean> {
  irq.arm();
  if (reap() > 0) return true;
  return await irq.sleep(timeoutMs);
}
