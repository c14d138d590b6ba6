import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { PcieRing } from "../../../lib/nvme/pcie.ts";
import { QueuePair } from "../../../lib/nvme/queue.ts";
import { ControllerResetError, DeviceClosedError, NvmeCompareError, NvmeStatusError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { readCmd } from "../../../lib/nvme/command.ts";
import { fakeDma, FakeQueueDevice } from "../util/fake.ts";

function pair(depth: number, qid = 1, timeoutMs = 30_000) {
  const sq = fakeDma(depth * 64), cq = fakeDma(depth * 16), prp = fakeDma((depth - 1) * 4096);
  const db = new Uint32Array(64);
  const ring = new PcieRing({ qid, depth, sq, cq, prp, prpPagesPerSlot: 1, pageSize: 4096, doorbells: db, doorbellStride: 4 });
  const qp = new QueuePair({ qid, ring, defaultTimeoutMs: timeoutMs });
  return { qp, dev: new FakeQueueDevice(qid, depth, sq, cq, db), db };
}

const tick = () => new Promise<void>((r) => setTimeout(r, 0));

test("doorbell is written once for a batch of submissions", async () => {
  const { qp, dev } = pair(16);
  const ps = [0, 1, 2, 3, 4].map((i) => qp.rw(0x02, 1, i, 0, 0x100000, 512));
  assert.equal(dev.sqTailDb, 0, "no doorbell before the microtask");
  await null;
  assert.equal(dev.sqTailDb, 5);
  assert.equal(qp.stats.sqDoorbells, 1);
  dev.serviceAll();
  await Promise.all(ps);
  assert.equal(qp.stats.completed, 5);
  assert.equal(dev.cqHeadDb, 5, "CQ head doorbell follows consumed entries");
});

test("rings wrap and the phase tag flips over many laps", async () => {
  const depth = 8;
  const { qp, dev } = pair(depth);
  let total = 0;
  for (let lap = 0; lap < 10; lap++) {
    const n = 1 + (lap % 7);
    const ps = Array.from({ length: n }, (_, i) => qp.rw(0x01, 1, lap * 100 + i, 0, 0x100000, 512));
    await null;
    assert.equal(dev.serviceAll(), n);
    const dw0s = await Promise.all(ps);
    assert.equal(dw0s.length, n);
    total += n;
  }
  assert.equal(qp.stats.completed, total);
  assert.equal(dev.cqTail, total % depth);
  assert.equal(dev.cqHeadDb, total % depth);
  // SQEs carry the LBAs in order across wraps.
  assert.deepEqual(dev.seen.slice(-2).map((c) => c[10]), [901, 902]);
});

test("no more than depth-1 commands in flight; extra ones wait for a free slot", async () => {
  const { qp, dev } = pair(4);
  const ps = Array.from({ length: 7 }, (_, i) => qp.rw(0x02, 1, i, 0, 0x100000, 512));
  await null;
  assert.equal(dev.fetch().length, 3);
  assert.equal(qp.inflight, 3);
  let done = 0;
  for (let round = 0; round < 10 && done < 7; round++) {
    for (const c of dev.seen.splice(0)) dev.complete(c[0] >>> 16);
    await tick();
    await tick();
    done = qp.stats.completed;
    dev.fetch();
  }
  await Promise.all(ps);
  assert.equal(qp.stats.completed, 7);
});

test("errors decode: status error, compare failure as its own type", async () => {
  const { qp, dev } = pair(8);
  const a = qp.rw(0x02, 1, 0, 0, 0x100000, 512);
  const b = qp.rw(0x05, 1, 0, 0, 0x100000, 512);
  await null;
  // Handlers first: both reject in one reaping pass.
  const checks = Promise.all([
    assert.rejects(a, (e: unknown) => e instanceof NvmeStatusError && e.status.name === "Unrecovered Read Error"),
    assert.rejects(b, (e: unknown) => e instanceof NvmeCompareError && e.code === "EMISCOMPARE" && e.status.dnr),
  ]);
  const [ca, cb] = dev.fetch();
  dev.complete(ca[0] >>> 16, (2 << 8) | 0x81);
  dev.complete(cb[0] >>> 16, (1 << 14) | (2 << 8) | 0x85);
  await checks;
});

test("bogus completions are counted and never resolve the wrong command", async () => {
  const { qp, dev } = pair(8);
  let settled = false;
  const p = qp.rw(0x02, 1, 0, 0, 0x100000, 512).finally(() => settled = true);
  await null;
  const [c] = dev.fetch();
  const cid = c[0] >>> 16;
  dev.complete(cid ^ 0x4000); // wrong generation
  dev.complete(cid, 0, 0, 7); // wrong SQ id
  dev.complete(5); // slot never used
  await tick();
  await tick();
  assert.equal(settled, false);
  assert.equal(qp.stats.bogus, 3);
  dev.complete(cid, 0, 0xabc);
  assert.equal(await p, 0xabc);
  // The same slot reused gets a new generation: the old cid is now stale.
  const p2 = qp.rw(0x02, 1, 0, 0, 0x100000, 512);
  await null;
  const [c2] = dev.fetch();
  assert.notEqual(c2[0] >>> 16, cid);
  dev.complete(cid);
  dev.complete(c2[0] >>> 16);
  await p2;
  assert.equal(qp.stats.bogus, 4);
});

test("a command that never completes times out; a late completion is absorbed", async () => {
  const { qp, dev } = pair(8, 1, 30);
  const t0 = performance.now();
  const p = qp.rw(0x02, 1, 0, 0, 0x100000, 512);
  await assert.rejects(p, (e: unknown) => e instanceof NvmeTimeoutError && e.timeoutMs === 30);
  assert.ok(performance.now() - t0 >= 29);
  assert.equal(qp.stats.timeouts, 1);
  const [c] = dev.fetch();
  dev.complete(c[0] >>> 16);
  const p2 = qp.rw(0x02, 1, 1, 0, 0x100000, 512, 0, 5000);
  await null;
  dev.serviceAll();
  await p2;
  assert.equal(qp.stats.late, 1);
});

test("closing fails in-flight commands and refuses new ones", async () => {
  const { qp } = pair(8);
  const p = qp.submit(readCmd(1, 0, 1), 0x100000, 512);
  qp.close();
  await assert.rejects(p, DeviceClosedError);
  await assert.rejects(qp.rw(0x02, 1, 0, 0, 0x100000, 512), DeviceClosedError);
});

test("PRPs land in the submitted entry, list in the slot's list page", async () => {
  const { qp, dev } = pair(8);
  const p = qp.rw(0x02, 1, 0, 63, 0x500000, 32768);
  await null;
  const [c] = dev.fetch();
  assert.equal(c[6], 0x500000);
  assert.notEqual(c[8], 0x501000, "PRP2 is a list pointer for 8 pages");
  dev.complete(c[0] >>> 16);
  await p;
});

test("reset during recovery: in-flight commands fail typed, held submissions run after resume", async () => {
  const { qp, dev } = pair(8);
  const inflight = [qp.rw(0x02, 1, 0, 0, 0x100000, 512), qp.rw(0x02, 1, 1, 0, 0x100000, 512)];
  await null;
  assert.equal(dev.fetch().length, 2);
  qp.pause();
  const held = qp.rw(0x02, 1, 9, 0, 0x100000, 512);
  await null;
  assert.equal(dev.fetch().length, 0, "nothing is submitted while paused");
  const err = new ControllerResetError("test reset");
  qp.reset(err);
  const settled = await Promise.allSettled(inflight);
  assert.deepEqual(settled.map((s) => s.status), ["rejected", "rejected"]);
  for (const s of settled) assert.ok((s as PromiseRejectedResult).reason instanceof ControllerResetError);
  // The "device" was reset too: fresh rings on both sides.
  const fresh = new FakeQueueDevice(1, 8, dev.sq, dev.cq, dev.db);
  assert.equal(new Uint32Array(dev.cq.bytes.buffer).some((v) => v !== 0), false, "CQ zeroed: no stale phase tags");
  qp.resume();
  await null;
  await null;
  const cmds = fresh.fetch();
  assert.equal(cmds.length, 1);
  assert.equal(cmds[0][10], 9, "the held command went out after resume");
  fresh.complete(cmds[0][0] >>> 16);
  await held;
  assert.equal(qp.inflight, 0);
});
