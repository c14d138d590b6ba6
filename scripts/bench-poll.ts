/**
 * Native microbenchmark of the pump's two cheapest steps, per runtime: ns per
 * poll of device-written memory (a plain load + sink store, lib/ffi's
 * pollLoad32 on x86, against Atomics.load), and ns per event-loop yield
 * (setImmediate against a MessageChannel round trip, and lib/ffi's
 * yieldMacrotask), with a check that a loop of each yield still lets a timer
 * and a socket read run. Prints figures; asserts nothing.
 *
 *   deno run -A scripts/bench-poll.ts
 *   bun scripts/bench-poll.ts
 * @module
 */
import net from "node:net";
import { pollLoad32 } from "../lib/ffi/load.ts";
import { yieldMacrotask } from "../lib/ffi/yield.ts";

const g = globalThis as unknown as { Bun?: unknown; setImmediate(f: () => void): void };
const rt = g.Bun !== undefined ? "bun" : "deno";
const sink = new Uint32Array(1);
const polls: Record<string, (a: Uint32Array, i: number) => number> = {
  "Atomics.load": (a, i) => Atomics.load(a, i),
  "plain+sink": (a, i) => {
    const v = a[i];
    sink[0] = v;
    return v;
  },
  pollLoad32,
};
const cq = new Uint32Array(new SharedArrayBuffer(4096));
function spin(f: (a: Uint32Array, i: number) => number, n: number): number {
  let s = 0;
  for (let k = 0; k < n; k++) if (((f(cq, 23) >>> 16) & 1) === 1) s++;
  return s;
}
for (const [name, f] of Object.entries(polls)) {
  const r: string[] = [];
  for (let k = 0; k < 3; k++) {
    spin(f, 1e6);
    const t0 = performance.now();
    spin(f, 1e7);
    r.push(((performance.now() - t0) * 1e6 / 1e7).toFixed(2));
  }
  console.log(`${rt} poll ${name}: ${r.join(" / ")} ns`);
}

const ch = new MessageChannel();
let pending: (() => void) | null = null;
ch.port1.onmessage = () => {
  const r = pending!;
  pending = null;
  r();
};
const yields: Record<string, () => Promise<void>> = {
  setImmediate: () => new Promise<void>((r) => g.setImmediate(r)),
  MessageChannel: () =>
    new Promise<void>((r) => {
      pending = r;
      ch.port2.postMessage(null);
    }),
  yieldMacrotask,
};
async function cost(y: () => Promise<void>, n: number): Promise<number> {
  for (let i = 0; i < 1000; i++) await y();
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await y();
  return (performance.now() - t0) * 1e6 / n;
}
/** A loop of yields, as an idle pump's: do a timer and a socket read scheduled meanwhile run? */
async function fairness(y: () => Promise<void>): Promise<string> {
  const server = net.createServer((s) => void setTimeout(() => s.write("x"), 5));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  let timer = -1, sock = -1, n = 0;
  const t0 = performance.now();
  setTimeout(() => timer = performance.now() - t0, 0);
  const c = net.connect(port, "127.0.0.1");
  c.on("data", () => sock = performance.now() - t0);
  while ((timer < 0 || sock < 0) && performance.now() - t0 < 3000) {
    await y();
    n++;
  }
  c.destroy();
  server.close();
  const ms = (v: number) => v < 0 ? "NEVER (3 s)" : `${v.toFixed(1)} ms`;
  return `timer ${ms(timer)}, socket read ${ms(sock)}, ${n} yields`;
}
for (const [name, y] of Object.entries(yields)) {
  const r: string[] = [];
  for (let k = 0; k < 3; k++) r.push((await cost(y, 100_000)).toFixed(0));
  console.log(`${rt} yield ${name}: ${r.join(" / ")} ns; ${await fairness(y)}`);
}
ch.port1.close();
