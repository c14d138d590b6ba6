/**
 * Worker of scripts/irq-bench.ts. "writer": plays the device: sleeps 200-800 µs,
 * writes the eventfd, blocks until the waiter acks through a SAB word, records
 * the round trip. "waiter": an IrqWaiter in a Worker that acks each wake.
 */
import { loadLibc } from "../lib/ffi/mod.ts";
import { IrqWaiter, type IrqWord } from "../lib/irq/waiter.ts";

interface Scope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
}
const scope = globalThis as unknown as Scope;

scope.onmessage = async (e: MessageEvent) => {
  const m = e.data as { type: string; efd: number; ack: SharedArrayBuffer; n: number; warm: number; word: IrqWord };
  const ack = new Int32Array(m.ack);
  if (m.type === "writer") {
    const libc = await loadLibc();
    const one = new Uint8Array(8);
    one[0] = 1;
    const nap = new Int32Array(new SharedArrayBuffer(4));
    const rtt: number[] = [];
    for (let i = 0; i < m.warm + m.n; i++) {
      Atomics.wait(nap, 0, 0, 0.2 + Math.random() * 0.6);
      const seen = Atomics.load(ack, 0);
      const t0 = performance.now();
      libc.write(m.efd, one);
      if (Atomics.wait(ack, 0, seen, 1000) === "timed-out") {
        scope.postMessage({ type: "error", message: `no ack for wake ${i}` });
        return;
      }
      if (i >= m.warm) rtt.push((performance.now() - t0) * 1000);
    }
    Atomics.store(ack, 1, 1); // done
    scope.postMessage({ type: "done", rtt });
  } else if (m.type === "waiter") {
    const w = new IrqWaiter(m.word);
    scope.postMessage({ type: "ready" });
    while (Atomics.load(ack, 1) === 0 && !w.stopped) {
      w.arm();
      if (await w.sleep(200)) {
        Atomics.add(ack, 0, 1);
        Atomics.notify(ack, 0);
      }
    }
    scope.postMessage({ type: "finished" });
  }
};
scope.postMessage({ type: "loaded" });
