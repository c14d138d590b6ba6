/**
 * Benchmark Worker (lib/cli/bench/workers.ts): owns one IO queue and runs
 * random reads at a queue depth for a while, through the Promise API or the
 * callback path, then reports IOs, time and this thread's CPU.
 * @module
 */
import { receiveQueue } from "../../worker/mod.ts";
import { threadCpuMs } from "./cpu.ts";

interface Scope {
  postMessage(m: unknown): void;
  addEventListener(t: "message", f: (e: MessageEvent) => void): void;
}
const scope = globalThis as unknown as Scope;

interface Run {
  type: "run";
  nsid: number;
  qd: number;
  ms: number;
  warmMs: number;
  bs: number;
  api: "promise" | "callback";
}

const { queue } = await receiveQueue();

async function run(m: Run) {
  const ns = queue.ns(m.nsid);
  const blocks = m.bs / ns.blockSize;
  const span = Math.floor(ns.blockCount / blocks);
  let seed = (0x9e3779b9 ^ (queue.qid * 0x85ebca6b)) >>> 0;
  const next = () => {
    seed ^= seed << 13;
    seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    seed >>>= 0;
    return (seed % span) * blocks;
  };
  const bufs = Array.from({ length: m.qd }, () => queue.allocBuffer(m.bs));
  let ios = 0, measuring = false, stop = false;
  let finished: Promise<unknown>;
  if (m.api === "callback") {
    let inflight = 0;
    finished = new Promise<void>((resolve) => {
      const submit = (b: Uint8Array) => {
        const done = () => {
          inflight--;
          if (measuring) ios++;
          if (!stop) submit(b);
          else if (inflight === 0) resolve();
        };
        if (ns.submitRead(next(), b, done)) inflight++;
      };
      for (const b of bufs) submit(b);
    });
  } else {
    finished = Promise.all(bufs.map(async (b) => {
      while (!stop) {
        await ns.read(next(), b);
        if (measuring) ios++;
      }
    }));
  }
  await new Promise((r) => setTimeout(r, m.warmMs));
  measuring = true;
  const c0 = threadCpuMs(), t0 = performance.now();
  await new Promise((r) => setTimeout(r, m.ms));
  const ms = performance.now() - t0, cpuMs = threadCpuMs() - c0;
  measuring = false;
  stop = true;
  await finished;
  for (const b of bufs) queue.freeBuffer(b);
  return { qid: queue.qid, ios, ms, cpuMs };
}

scope.addEventListener("message", (e: MessageEvent) => {
  const m = e.data as Run | { type: "close" };
  if (m.type === "close") {
    void queue.close().then(() => scope.postMessage({ type: "closed" }));
  } else if (m.type === "run") {
    void run(m).then((r) => scope.postMessage({ type: "result", ...r }));
  }
});
scope.postMessage({ type: "bench-ready" });
