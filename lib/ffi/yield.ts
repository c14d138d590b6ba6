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

const immediate = (): Promise<void> => new Promise<void>((r) => g.setImmediate!(r));

/**
 * A MessageChannel round trip (Bun's yield), with every
 * {@link CHANNEL_EVERY}th yield a setImmediate: with milliseconds of work
 * between yields (the pump's shape), Bun delivered ~1,000 channel messages
 * before a due timer ran; a setImmediate in between lets it run. One message
 * per batch: every yield requested before it arrives resumes on it. The port
 * is unref'd so that it never keeps the process alive by itself.
 */
function channelYield(): () => Promise<void> {
  const ch = new MessageChannel();
  let waiting: (() => void)[] = [];
  let spare: (() => void)[] = [];
  const runBatch = () => {
    const run = waiting;
    waiting = spare;
    spare = run;
    for (let i = 0; i < run.length; i++) run[i]();
    run.length = 0;
  };
  ch.port1.onmessage = runBatch;
  (ch.port1 as unknown as { unref?: () => void }).unref?.();
  let batches = 0;
  const resolveInto = (r: () => void) => {
    if (waiting.push(r) !== 1) return;
    if (++batches % CHANNEL_EVERY === 0 && g.setImmediate) g.setImmediate(runBatch);
    else ch.port2.postMessage(null);
  };
  return () => new Promise<void>(resolveInto);
}

/** Channel yields per setImmediate on Bun (see {@link channelYield}). */
const CHANNEL_EVERY = 4;

/** `TSNVME_YIELD` (channel | immediate), for A/B runs; unset or unreadable (Deno without --allow-env): the runtime's default. */
function yieldChoice(): string | undefined {
  try {
    return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.TSNVME_YIELD;
  } catch {
    return undefined;
  }
}

/**
 * Let the event loop run once (timers, IO, other tasks), then resume: a few
 * µs natively. Deno: setImmediate (~1.1 µs; a MessageChannel loop there is
 * slower and starves socket reads). Bun: MessageChannel round trips (0.9-1.4
 * µs against 2.2-3.7 for setImmediate; in a TCG guest, QD1 IOPS 1325 / 3289
 * against 606 / 1485 in adaptive mode, two alternating rounds), every fourth
 * a setImmediate so that due timers run. Elsewhere setTimeout(0), which may
 * cost milliseconds. TSNVME_YIELD=channel or =immediate forces either (A/B
 * runs; the channel then takes every fourth turn through setImmediate too).
 */
export const yieldMacrotask: () => Promise<void> = (() => {
  const forced = yieldChoice();
  const hasImmediate = typeof g.setImmediate === "function";
  const hasChannel = typeof MessageChannel === "function";
  if (forced === "immediate" && hasImmediate) return immediate;
  if ((forced === "channel" || (forced === undefined && g.Bun !== undefined)) && hasChannel) return channelYield();
  if (hasImmediate) return immediate;
  return () => new Promise<void>((r) => setTimeout(r, 0));
})();
