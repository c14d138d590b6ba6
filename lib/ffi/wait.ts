/**
 * Whether this runtime's Atomics.waitAsync wakes at all: everything that
 * sleeps on lib/irq's wake words depends on it. Deno started with V8's
 * `--single-threaded` (`--v8-flags=--single-threaded`, Deno 2.9.6) never
 * resolves a waitAsync promise: Atomics.notify reports the waiter woken, from
 * this thread or another, yet the promise stays pending, so a queue sleeping
 * on it would hang for good. Checked once per thread.
 * @module
 */

type WaitAsync = (a: Int32Array, i: number, v: number) => { async: boolean; value: unknown };

let probe: Promise<boolean> | null = null;

/**
 * True when Atomics.waitAsync resolves after a notify (it does in normal
 * runs of Deno and Bun, within one event-loop turn); false where it is
 * missing or never resolves (Deno with V8's `--single-threaded`). Costs one
 * wait and notify on this thread (one event-loop turn); `boundMs` only when
 * it fails (default 3,000: far above a turn, even in a loaded TCG guest,
 * since a false answer would quietly turn interrupts off).
 */
export function waitAsyncWakes(boundMs = 3000): Promise<boolean> {
  probe ??= (async () => {
    const wa = (Atomics as unknown as { waitAsync?: WaitAsync }).waitAsync;
    if (typeof wa !== "function") return false;
    const i32 = new Int32Array(new SharedArrayBuffer(4));
    const r = wa(i32, 0, 0);
    if (!r.async) return true;
    Atomics.notify(i32, 0);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const bound = new Promise<boolean>((res) => timer = setTimeout(() => res(false), boundMs));
    try {
      return await Promise.race([(r.value as Promise<unknown>).then(() => true), bound]);
    } finally {
      clearTimeout(timer);
    }
  })();
  return probe;
}
