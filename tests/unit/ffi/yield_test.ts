// lib/ffi's yieldMacrotask, the pump's yield when it is idle but not asleep: it must be a real turn
// of the event loop (a microtask loop would starve timers and sockets), and every concurrent
// yield (several queue pairs) must resume.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import net from "node:net";
import process from "node:process";
import { test } from "../../harness.ts";
import { yieldMacrotask } from "../../../lib/ffi/yield.ts";

test("yieldMacrotask: a loop of yields lets a timer and a socket read run", async () => {
  const server = net.createServer((s) => void setTimeout(() => s.write("x"), 5));
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as net.AddressInfo).port;
  let timer = false, read = false;
  setTimeout(() => timer = true, 0);
  const c = net.connect(port, "127.0.0.1");
  c.on("data", () => read = true);
  try {
    // Generous: the machine may be loaded; a microtask loop never sees either.
    const until = performance.now() + 30_000;
    while ((!timer || !read) && performance.now() < until) await yieldMacrotask();
    assert.equal(timer, true, "the timer never ran");
    assert.equal(read, true, "the socket read never ran");
  } finally {
    c.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test("yieldMacrotask: a due timer runs within a few yields of a busy loop (2 ms of work per yield)", async () => {
  // The pump's shape while it spins with commands in flight: milliseconds of work, then a yield.
  // Each yield is a turn of the event loop, so a timer that is due runs at the next one or two.
  // Bun's MessageChannel round trip (pump6's yield, reverted) let ~1,000 such yields pass first.
  let fired = false, late = 0;
  const due = performance.now() + 10;
  setTimeout(() => fired = true, 10);
  const until = performance.now() + 30_000;
  while (!fired && performance.now() < until) {
    const slice = performance.now() + 2;
    while (performance.now() < slice) { /* work */ }
    await yieldMacrotask();
    if (performance.now() > due + 1) late++;
  }
  assert.equal(fired, true, "the timer never ran in 30 s of yields");
  assert.ok(late <= 50, `${late} yields passed after the timer was due`);
});

test("yieldMacrotask: concurrent yields all resume, in order", async () => {
  const order: number[] = [];
  await Promise.all(Array.from({ length: 5 }, (_, i) => yieldMacrotask().then(() => order.push(i))));
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  // And again, after the first batch was delivered.
  await Promise.all([yieldMacrotask(), yieldMacrotask()]);
});

test("yieldMacrotask: a process that yielded exits when its work is done", () => {
  // The Bun path's MessagePort would keep the event loop alive for ever unless unref'd.
  const url = new URL("../../../lib/ffi/yield.ts", import.meta.url).href;
  const src = `const { yieldMacrotask } = await import(${JSON.stringify(url)}); await yieldMacrotask(); console.log("done");`;
  const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
  const args = isBun ? ["-e", src] : ["eval", src];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.signal, null, `the child was still running after 60 s: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /done/);
});

test("yieldMacrotask is the driver's one yield: no other lib file schedules its own setImmediate", () => {
  // A copy would miss what this module learned per runtime (and its TSNVME_YIELD A/B switch).
  const root = new URL("../../../lib/", import.meta.url);
  const own: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(new URL(rel, root), { withFileTypes: true })) {
      const p = rel + e.name;
      if (e.isDirectory()) walk(p + "/");
      else if (p.endsWith(".ts") && p !== "ffi/yield.ts" && /\.setImmediate\b|\bsetImmediate\s*\(/.test(readFileSync(new URL(p, root), "utf8"))) {
        own.push(p);
      }
    }
  };
  walk("");
  assert.deepEqual(own, [], `files with a setImmediate of their own: ${own.join(", ")}`);
});
