/**
 * Benchmark Worker of the instant device (lib/cli/bench/instant.ts): builds
 * its own queue pair and device in this thread, keeps QD reads in flight for a
 * while and reports IOs, time and this thread's CPU. Nothing is shared with
 * any other thread.
 * @module
 */
import { instantQueuePair, instantRun } from "./instant.ts";
import { threadCpuMs } from "./cpu.ts";

interface Scope {
  postMessage(m: unknown): void;
  addEventListener(t: "message", f: (e: MessageEvent) => void): void;
}
const scope = globalThis as unknown as Scope;

scope.addEventListener("message", (e: MessageEvent) => {
  const m = e.data as { type: string; qd: number; ms: number; warmMs: number };
  if (m.type !== "run") return;
  const qp = instantQueuePair();
  void instantRun(qp, m.qd, m.warmMs, m.ms, threadCpuMs).then((r) => scope.postMessage({ type: "result", ...r }));
});
scope.postMessage({ type: "bench-ready" });
