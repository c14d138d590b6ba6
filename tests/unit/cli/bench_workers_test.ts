/**
 * The Worker scaling bench: worker-count parsing, the instant device (every
 * command completes, through the real ring and queue pair), and one short
 * scaling pass on the instant device and on the software controller that
 * yields a row per count (figures are not asserted on: the machine is shared).
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { instantQueuePair, instantRun } from "../../../lib/cli/bench/instant.ts";
import { parseCounts, runScaling, scalingTable } from "../../../lib/cli/bench/workers.ts";

test("bench workers: counts parse, N is the cores, duplicates go", () => {
  assert.deepEqual(parseCounts("1,2,N", 2), [1, 2]);
  assert.deepEqual(parseCounts("1,2,N", 8), [1, 2, 8]);
  assert.throws(() => parseCounts("0"), RangeError);
  assert.throws(() => parseCounts("x"), RangeError);
});

test("bench workers: the instant device completes every command the queue pair submits", async () => {
  const qp = instantQueuePair();
  const r = await instantRun(qp, 8, 10, 50, () => 0);
  assert.ok(r.ios > 0);
  const st = qp.stats;
  assert.equal(st.completed, st.submitted);
  assert.equal(st.bogus, 0);
  assert.equal(st.timeouts, 0);
});

test("bench workers: one short pass, instant device per Worker, 1 and 2 Workers", async () => {
  const rows = await runScaling({ targets: ["instant"], counts: [1, 2], qd: 4, ms: 150, warmMs: 100 });
  assert.deepEqual(rows.map((r) => r.workers), [1, 2]);
  for (const r of rows) {
    assert.equal(r.target, "instant");
    assert.ok(r.iops > 0 && r.cpuUsPerIo >= 0);
  }
  assert.equal(rows[0].scaling, 1);
  assert.ok(scalingTable(rows).includes("| instant | 2 |"));
});

test("bench workers: one short pass on the software controller", async () => {
  // Windows long enough that a loaded machine still completes IO in them (nothing is timed).
  const rows = await runScaling({ targets: ["sim:ns=16M:512;queues=4;mem=32M"], counts: [1, 2], qd: 4, ms: 600, warmMs: 600 });
  assert.deepEqual(rows.map((r) => r.workers), [1, 2]);
  for (const r of rows) assert.ok(r.iops > 0, JSON.stringify(r));
});
