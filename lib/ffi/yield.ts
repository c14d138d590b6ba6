/**
 * The cheapest yield to the event loop that still lets timers and IO run (a
 * macrotask, not a microtask), per runtime: which one that is depends on the
 * engine's event loop, so the choice lives here with the other runtime
 * knowledge. Figures: scripts/bench-poll.ts.
 * @module
 */

import { envOf } from "./env.ts";

const g = globalThis as unknown as {
  setImmediate?: (f: () => void) => void;
};
const onBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";

/**
 * A MessageChannel round trip (pump6's yield on Bun; now only with
 * TSNVME_YIELD=channel): cheaper per yield, but see {@link yieldMacrotask}.
 * One message per batch: every yield requested before it arrives resumes on
 * it. The port is unref'd so that it never keeps the process alive by itself.
 */
function channelYield(): () => Promise<void> {
  const ch = new MessageChannel();
  let waiting: (() => void)[] = [];
  let spare: (() => void)[] = [];
  ch.port1.onmessage = () => {
    const run = waiting;
    waiting = spare;
    spare = run;
    for (let i = 0; i < run.length; i++) run[i]();
    run.length = 0;
  };
  (ch.port1 as unknown as { unref?: () => void }).unref?.();
  const resolveInto = (r: () => void) => {
    if (waiting.push(r) === 1) ch.port2.postMessage(null);
  };
  return () => new Promise<void>(resolveInto);
}

const immediate = (): Promise<void> => new Promise<void>((r) => g.setImmediate!(r));

/**
 * Let the event loop run once (timers, IO, other tasks), then resume: a few
 * µs natively. setImmediate on Deno (~1.1 µs; a MessageChannel loop there is
 * slower and starves socket reads) and on Bun (2.2-3.7 µs: a MessageChannel
 * round trip costs 0.9-1.4, but with milliseconds of work between yields, the
 * pump's shape, Bun ran ~1,000 of them before a due timer). Elsewhere
 * setTimeout(0), which may cost milliseconds. TSNVME_YIELD=channel or
 * =immediate forces either (A/B runs).
 */
export const yieldMacrotask: () => Promise<void> = (() => {
  // TSNVME_YIELD (channel | immediate), for A/B runs; unset or unreadable: the default.
  const forced = envOf("TSNVME_YIELD");
  const hasImmediate = typeof g.setImmediate === "function";
  const hasChannel = typeof MessageChannel === "function";
  if (forced === "immediate" && hasImmediate) return immediate;
  if (forced === "channel" && hasChannel) return channelYield();
  if (hasImmediate) return immediate;
  return () => new Promise<void>((r) => setTimeout(r, 0));
})();

/**
 * What to `await` for one microtask turn and nothing else (the pump's turn):
 * on V8 (Deno) a promise resolved once, since `await null` allocates a
 * promise per turn and awaiting an already resolved native promise does not
 * (8-13 ns less per turn natively, and less for the garbage collector); on
 * JSC (Bun) `null`, 2-3 ns cheaper there. Either resumes after exactly one
 * microtask turn, in the same order.
 */
export const microtaskTurn: Promise<void> | null = onBun ? null : Promise.resolve();

/**
 * How many busy event-loop turns a polling loop should take per macrotask
 * ({@link yieldMacrotask}); the rest are one {@link microtaskTurn}, which
 * runs Promise callbacks but not timers or port messages. Deno: 64, since a
 * Deno Worker's macrotask turn cost ~1.3 ms in the TCG guest (1.1 µs
 * natively), and with 63 of 64 busy turns microtask-only the NVMe/TCP
 * target's QD1 rose in two rotated same-boot A/Bs (issue 16: 1,610 / 1,437
 * IOPS against 1,303 / 1,213; ahead in 5 of 6 paired rounds). Bun: 1 (every
 * busy turn a macrotask, ~0.4 ms there): the same A/Bs had it at 1,570 /
 * 1,542 against 1,629 / 1,871.
 */
export const busyTurnsPerMacrotask: number = onBun ? 1 : 64;
