// A trickle's first read after a stream deoptimized the pump's code in V8: IdlePolicy's #emptiedAt started
// as a small integer and became a double at the first pump stop, which changed the policy's map. Its clock
// fields now hold doubles from construction. V8's map is seen only with --allow-natives-syntax, so the
// check runs in a child process (JSC's structure, which numbers never change, is checked the same way).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import process from "node:process";
import { runtime, test } from "../../harness.ts";

const child = new URL("./idle_shape_child.ts", import.meta.url).pathname;

test("IdlePolicy keeps its map through a stream, a stop, a trickled run and a yield (no field changes representation)", () => {
  const args = runtime === "deno" ? ["run", "-A", "--no-check", "--v8-flags=--allow-natives-syntax", child] : [child];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /same map: adaptive true, poll true/);
});
