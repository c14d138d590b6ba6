/**
 * Worker entry of the software controller: builds the {@link SimDevice} (lib/sim/pcie.ts), or
 * one of its queue threads ({@link QueueThread}, lib/sim/qthread.ts), and runs it. The loop
 * spins while there is work, then sleeps: the device thread in sub-millisecond Atomics.wait
 * slices on its wake word, a queue thread (after a far shorter spin) on its queue's doorbell
 * until the host rings it ({@link QueueThread.idle}). It yields to the event loop every couple
 * of ms so fault-injection requests (postMessage) get through.
 * @module
 */
import { yieldMacrotask } from "../ffi/yield.ts";
import { SimDevice, type SimInit } from "./pcie.ts";
import { Ctl } from "./options.ts";
import { QueueThread, type QThreadInit } from "./qthread.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
}
const scope = globalThis as unknown as WorkerScope;

const SLICE_MS = 2;
const SPIN_MS = 1;
const NAP_MS = 0.25;
/**
 * A queue thread's spin before it sleeps on the doorbell: long enough to catch a host that
 * resubmits at once, short enough that it does not hold a core the host's Worker needs.
 */
const Q_SPIN_MS = 0.05;

let dev: SimDevice | null = null;

async function run(
  d: { step(): boolean; readonly stopped: boolean; idle?(): void },
  wake: Int32Array,
  word: number,
): Promise<void> {
  let lastWork = performance.now();
  const spin = d.idle ? Q_SPIN_MS : SPIN_MS;
  while (!d.stopped) {
    const sliceEnd = performance.now() + SLICE_MS;
    for (;;) {
      const did = d.step();
      const now = performance.now();
      if (did) lastWork = now;
      else if (now - lastWork > spin) {
        if (d.idle) d.idle();
        else Atomics.wait(wake, word, 0, NAP_MS);
      }
      if (now >= sliceEnd || d.stopped) break;
    }
    await yieldMacrotask();
  }
}

scope.onmessage = (e: MessageEvent) => {
  const m = e.data as { type: string; id?: number; op?: string; arg?: unknown; init?: SimInit; qinit?: QThreadInit };
  if (m.type === "init-q") {
    let q: QueueThread;
    try {
      q = new QueueThread(m.qinit!);
    } catch (err) {
      scope.postMessage({ type: "ready", error: String((err as Error)?.message ?? err) });
      return;
    }
    scope.postMessage({ type: "ready" });
    void run(q, q.words, q.wakeIndex);
    return;
  }
  if (m.type === "init") {
    try {
      dev = new SimDevice(m.init!);
    } catch (err) {
      scope.postMessage({ type: "ready", error: String((err as Error)?.message ?? err) });
      return;
    }
    scope.postMessage({ type: "ready", media: dev.sharedMedia });
    void run(dev, new Int32Array(m.init!.ctl), Ctl.WAKE);
    return;
  }
  if (m.type === "req") {
    try {
      const result = dev!.request(m.op!, m.arg);
      scope.postMessage({ type: "res", id: m.id, result });
    } catch (err) {
      scope.postMessage({ type: "res", id: m.id, error: String((err as Error)?.message ?? err) });
    }
  }
};

// Tell the host the handler is installed: a message posted earlier may be lost while the entry module loads.
scope.postMessage({ type: "loaded" });
