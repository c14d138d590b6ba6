// lib/ffi's pollLoad32, the load the pump polls a CQE's DW3 with: it never writes the polled
// memory (a read-only mapping survives a hot loop: Bun's Atomics.load is a locked RMW and faults
// there), and a synchronous spin with it sees a value another thread stores (a bare plain load is
// hoisted out of such a spin by Bun's JIT and would spin to the deadline).
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { pollLoad32, publish32, storeRelease32 } from "../../../lib/ffi/load.ts";
import { runReadOnlyChild } from "./readonly.ts";

test("pollLoad32: a hot loop over a read-only page does not write it", () => {
  const r = runReadOnlyChild("load");
  assert.equal(r.signal, null, `child died by ${r.signal}: ${r.out}`);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /survived 0/);
});

/** A pump-shaped spin: a ring object's reap in bounded inner spins, the clock read between them. */
class Cq {
  constructor(readonly cq: Uint32Array, readonly head: number) {}
  ready(): boolean {
    return ((pollLoad32(this.cq, (this.head << 2) + 3) >>> 16) & 1) === 1;
  }
}
function spin(cq: Cq, untilMs: number): boolean {
  for (;;) {
    for (let i = 256; i > 0; i--) if (cq.ready()) return true;
    if (performance.now() > untilMs) return false;
  }
}

test("pollLoad32: a synchronous spin sees a word another thread stores", async () => {
  const sab = new SharedArrayBuffer(4096);
  const cq = new Cq(new Uint32Array(sab), 5);
  // Warm the spin into the optimizing tiers on an empty slot first.
  for (let k = 0; k < 200; k++) assert.equal(spin(cq, performance.now() + 1), false);
  const w = new Worker(new URL("../workers/store_worker.js", import.meta.url), { type: "module" });
  try {
    await new Promise<void>((resolve, reject) => {
      w.onmessage = (e) => {
        if (e.data.type === "loaded") w.postMessage({ sab, index: 5 * 4 + 3, value: 1 << 16, delayMs: 200 });
        else if (e.data.type === "armed") resolve();
      };
      w.onerror = (e) => reject(new Error(e.message));
    });
    // Generous: the Worker's timer may run late on a loaded machine; a hoisted load never sees it.
    assert.equal(spin(cq, performance.now() + 60_000), true, "the spin never saw the store");
  } finally {
    w.terminate();
  }
});

test("publish32: the word keeps its value", () => {
  const a = new Uint32Array([7, 0xffff_ffff]);
  publish32(a, 1);
  assert.deepEqual([...a], [7, 0xffff_ffff]);
});

test("storeRelease32: the word takes the value; the last of a hot loop's stores lands", () => {
  const a = new Uint32Array([7, 0]);
  storeRelease32(a, 1, 0xffff_ffff);
  assert.deepEqual([...a], [7, 0xffff_ffff]);
  // A hot loop of them (optimized, the stores overwrite each other): the last one reaches shared memory.
  const sab = new SharedArrayBuffer(64), w32 = new Uint32Array(sab);
  const put = (n: number) => {
    for (let i = 1; i <= n; i++) storeRelease32(w32, 3, i);
  };
  for (let k = 0; k < 50; k++) put(1000);
  assert.equal(Atomics.load(w32, 3), 1000);
});
