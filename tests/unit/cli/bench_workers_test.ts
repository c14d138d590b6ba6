/**
 * The Worker scaling bench: worker-count parsing, the instant device (every
 * command completes, through the real ring and queue pair), and one short
 * scaling pass on the instant device and on the software controller that
 * yields a row per count (figures are not asserted on: the machine is shared).
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { type InstantRing, instantQueuePair, instantRun } from "../../../lib/cli/bench/instant.ts";
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

test("bench workers: the instant device takes the guest's doorbell path (shadow doorbells, batched CQ head)", async () => {
  const qp = instantQueuePair();
  const ring = qp.queueRing as InstantRing;
  assert.equal(ring.batchCqDoorbell, true); // a polling queue pair batches it
  await instantRun(qp, 1, 10, 50, () => 0, "callback");
  const flushes = ring.flushes, ios = qp.stats.completed;
  assert.ok(ios > 100 && flushes > 0);
  // The device caught up at every doorbell, so its event index asks for each SQ tail by MMIO (as QEMU's at QD1)...
  assert.equal(ring.mmioDoorbells, flushes);
  // ...while the CQ head goes to the device about once per half ring, not per completion.
  assert.ok(ring.cqMmioDoorbells <= ios / 64 + 2, `${ring.cqMmioDoorbells} CQ MMIO writes for ${ios} completions`);
  assert.equal(qp.stats.completed, qp.stats.submitted);
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

test("bench workers: the instant device's callback path completes every command, nothing lost", async () => {
  const qp = instantQueuePair();
  const r = await instantRun(qp, 8, 10, 50, () => 0, "callback");
  assert.ok(r.ios > 0);
  const st = qp.stats;
  assert.equal(st.completed, st.submitted);
  assert.equal(st.bogus, 0);
  assert.equal(qp.inflight, 0, "every callback ran before the run resolved");
});

test("bench workers: a row says which API ran and which cores the Workers and the other threads took", async () => {
  const rows = await runScaling({ targets: ["instant"], counts: [1], qd: 4, ms: 150, warmMs: 100, api: "callback" });
  assert.equal(rows[0].api, "callback");
  assert.ok(rows[0].workerCores !== undefined && rows[0].workerCores >= 0, JSON.stringify(rows[0]));
  assert.ok(rows[0].otherCores !== undefined && rows[0].otherCores >= 0, JSON.stringify(rows[0]));
  assert.ok(scalingTable(rows).includes("| instant | 1 | callback |"));
});
