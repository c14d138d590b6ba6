/**
 * The cheapest yield to the event loop that still lets timers and IO run (a
 * macrotask, not a microtask), per runtime: which one that is depends on the
 * engine's event loop, so the choice lives here with the other runtime
 * knowledge. Figures: scripts/bench-poll.ts.
 * @module
 */

const g = globalThis as unknown as {
  Bun?: unknown;
  setImmediate?: (f: () => void) => void;
};

/**
 * Bun: a MessageChannel round trip, ~1.0-1.4 µs natively against 2.2-3.7 for
 * setImmediate, and a loop of them still lets a timer and a socket read run.
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

/**
 * Let the event loop run once (timers, IO, other tasks), then resume: a few
 * µs natively. Deno: setImmediate (~1.1 µs; a MessageChannel loop there is
 * slower and starves socket reads). Bun: a MessageChannel round trip.
 * Elsewhere setTimeout(0), which may cost milliseconds.
 */
export const yieldMacrotask: () => Promise<void> = g.Bun !== undefined && typeof MessageChannel === "function"
  ? channelYield()
  : typeof g.setImmediate === "function"
  ? () => new Promise<void>((r) => g.setImmediate!(r))
  : () => new Promise<void>((r) => setTimeout(r, 0));
