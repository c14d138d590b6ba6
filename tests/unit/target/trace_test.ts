import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { Gap, TargetTrace, targetTraceOn } from "../../../lib/target/trace.ts";

/** Spin until the clock moved at least `ms` (the stamps need distinct times). */
function busyWait(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

/** The row of `name` in a report: [n, mean, p50, p90, p99, max]. */
function row(lines: string[], name: string): number[] {
  const l = lines.find((x) => x.includes(`: ${name} `));
  assert.ok(l, `no row ${name} in\n${lines.join("\n")}`);
  return l.slice(l.indexOf(name) + name.length).trim().split(/\s+/).slice(0, 6).map(Number);
}

test("target trace: off unless TSNVME_TARGET_TRACE is set", () => {
  const env = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.TSNVME_TARGET_TRACE;
  assert.equal(targetTraceOn, !!env && env !== "0");
});

test("target trace: each stage of an IO lands in its gap, who reaped is counted, a report resets", () => {
  const lines: string[] = [];
  const t = new TargetTrace("t", (l) => lines.push(l));
  for (let i = 0; i < 2; i++) {
    t.readable(performance.now());
    t.capsule();
    t.submitted();
    busyWait(2);
    t.doorbell();
    busyWait(3);
    t.inLoopReap = i === 0; // the first by the Worker loop, the second by the queue's pump
    t.reaped();
    t.inLoopReap = false;
    t.sent();
  }
  t.add(Gap.YIELD_PASSES, 5000);
  t.report();
  assert.match(lines[0], /2 IO capsules; completions reaped by the Worker loop 1, elsewhere \(queue pump\) 1/);
  for (const g of ["readable->capsule", "capsule->submit", "submit->doorbell", "doorbell->reaped", "reaped->sent", "capsule->sent (target)"]) {
    assert.equal(row(lines, g)[0], 2, g);
  }
  assert.equal(row(lines, "sent->next capsule")[0], 1); // only the second IO had a response before it
  assert.ok(row(lines, "submit->doorbell")[1] >= 2000, "2 ms between submit and doorbell");
  assert.ok(row(lines, "doorbell->reaped")[1] >= 3000, "3 ms between doorbell and reap");
  assert.ok(row(lines, "capsule->sent (target)")[1] >= 5000);
  const y = row(lines, "yield (passes)");
  assert.deepEqual([y[0], y[1], y[2], y[5]], [1, 5000, 8192, 5000]); // 5000 µs falls in [4096, 8192)
  assert.ok(!lines.some((l) => l.includes("idle poll")), "gaps with no sample are left out");
  lines.length = 0;
  t.report();
  assert.match(lines[0], /: 0 IO capsules/);
  assert.equal(lines.length, 2, "nothing left after the reset");
});
