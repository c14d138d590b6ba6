// Deno with V8's --single-threaded never resolves an Atomics.waitAsync promise, so a queue sleeping
// on an interrupt or socket word hung for good (the TCP host, and NVMeDev.open of a PCIe-shaped
// device in its default adaptive mode). lib/ffi/wait.ts checks; the TCP transport then naps on
// timers, NVMeDev.open polls by default and refuses an explicit interrupt mode with a SetupError.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { runtime, test } from "../../harness.ts";
import { waitAsyncWakes } from "../../../lib/ffi/wait.ts";

const child = new URL("./single_threaded_child.ts", import.meta.url).pathname;

test("waitAsyncWakes: true in a normal run", async () => {
  assert.equal(await waitAsyncWakes(), true);
});

test("under Deno's --v8-flags=--single-threaded: TCP and sim IO complete (no hang); interrupt mode is refused", () => {
  const args = runtime === "deno" ? ["run", "-A", "--no-check", "--v8-flags=--single-threaded", child] : [child];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.signal, null, `the child hung (killed after 60 s): ${r.stdout}${r.stderr}`);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, runtime === "deno" ? /waitAsync false/ : /waitAsync true/);
  assert.match(r.stdout, /tcp ok/);
  assert.match(r.stdout, runtime === "deno" ? /sim ok poll/ : /sim ok adaptive/);
  assert.match(r.stdout, runtime === "deno" ? /interrupt mode: irq/ : /interrupt mode: none/);
});
