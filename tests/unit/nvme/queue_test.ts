import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { PcieRing } from "../../../lib/nvme/pcie.ts";
import { QueuePair } from "../../../lib/nvme/queue.ts";
import { ControllerResetError, DeviceClosedError, NvmeCompareError, NvmeStatusError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { readCmd } from "../../../lib/nvme/command.ts";
import type { CompletionSink, QueueRing } from "../../../lib/nvme/ring.ts";
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
  // A polling queue tells the CQ head when its pump goes idle (a few turns on), or at half the ring.
  for (let i = 0; i < 20 && dev.cqHeadDb !== 5; i++) await null;
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

/** A PCIe ring whose device answers on the host's `at`-th poll, as a device does while the host spins. */
class LateRing implements QueueRing {
  readonly depth: number;
  readonly maxTransfer: number;
  pollable = true;
  reaps = 0;
  readonly #r: PcieRing;
  readonly #dev: FakeQueueDevice;
  constructor(depth: number, readonly at: number) {
    const sq = fakeDma(depth * 64), cq = fakeDma(depth * 16), db = new Uint32Array(64);
    this.#r = new PcieRing({ qid: 1, depth, sq, cq, prp: null, prpPagesPerSlot: 0, pageSize: 4096, doorbells: db, doorbellStride: 4 });
    this.#dev = new FakeQueueDevice(1, depth, sq, cq, db);
    this.depth = depth;
    this.maxTransfer = this.#r.maxTransfer;
  }
  get flushes(): number {
    return this.#r.flushes;
  }
  entry(): Uint32Array {
    return this.#r.entry();
  }
  setData(e: Uint32Array, slot: number, iova: number, len: number): void {
    this.#r.setData(e, slot, iova, len);
  }
  clearData(e: Uint32Array): void {
    this.#r.clearData(e);
  }
  push(): void {
    this.#r.push();
  }
  flush(): boolean {
    return this.#r.flush();
  }
  reap(sink: CompletionSink): number {
    if (++this.reaps === this.at) this.#dev.serviceAll();
    return this.#r.reap(sink);
  }
  reset(): void {
    this.#r.reset();
  }
  close(): void {
    this.#r.close();
  }
}

test("pump: an empty poll spins on the CQ synchronously (bounded) and sees the completion in the same turn", async () => {
  const ring = new LateRing(8, 5);
  const qp = new QueuePair({ qid: 1, ring, defaultTimeoutMs: 30_000 });
  assert.equal(qp.spinPolls > 0, true);
  let done = false;
  const p = qp.rw(0x02, 1, 0, 0, 0x100000, 512).then(() => done = true);
  await null; // the flush microtask and the pump's first turn
  await null;
  assert.equal(qp.stats.completed, 1, `reaped within the first turn (${ring.reaps} polls)`);
  await p;
  assert.ok(done);

  // Without the spin the same completion takes one microtask turn per poll.
  const q2 = new QueuePair({ qid: 1, ring: new LateRing(8, 5), defaultTimeoutMs: 30_000, spinPolls: 0 });
  const p2 = q2.rw(0x02, 1, 0, 0, 0x100000, 512);
  await null;
  await null;
  assert.equal(q2.stats.completed, 0);
  await p2;
});

test("pump: a ring that is not memory-polled (a socket's) is never spun on", async () => {
  const ring = new LateRing(8, 5);
  ring.pollable = false;
  const qp = new QueuePair({ qid: 1, ring, defaultTimeoutMs: 30_000 });
  const p = qp.rw(0x02, 1, 0, 0, 0x100000, 512);
  await null;
  await null;
  assert.equal(qp.stats.completed, 0);
  await p;
});

test("pump: a completion's callback that submits gets its doorbell in the same turn, no flush microtask", async () => {
  const { qp, dev } = pair(8);
  let chained = 0;
  const cb = (err: unknown) => {
    assert.equal(err, null);
    if (++chained < 3) qp.rwCallback(0x02, 1, chained, 0, 0x100000, 512, 0, 30_000, null, cb);
  };
  assert.ok(qp.rwCallback(0x02, 1, 0, 0, 0x100000, 512, 0, 30_000, null, cb));
  await null;
  assert.equal(dev.sqTailDb, 1);
  const rung = qp.stats.sqDoorbells;
  dev.serviceAll();
  await null; // one pump turn: reap, the callback submits, doorbell
  assert.equal(dev.sqTailDb, 2, "rung by the pump in the turn that reaped");
  assert.equal(qp.stats.sqDoorbells, rung + 1);
  for (let i = 0; i < 20 && chained < 3; i++) {
    dev.serviceAll();
    await tick();
  }
  assert.equal(chained, 3);
});

test("pump: with only a command that may wait a day outstanding (an AER), a sleep has no health-check bound", async () => {
  const { qp } = pair(8, 0);
  qp.pollSpinUs = 0; // sleep at the first empty poll
  const bounds: number[] = [];
  let count = 0;
  const wake: (() => void)[] = [];
  qp.setWaitMode("adaptive", {
    arm() {},
    sleep(ms: number) {
      bounds.push(ms);
      return new Promise<boolean>((r) => wake.push(() => r(false)));
    },
    wake() {
      for (const w of wake.splice(0)) w();
    },
    get count() {
      return count;
    },
  });
  let health = 0;
  qp.onHealthCheck = () => health++;
  const aer = qp.submit(readCmd(1, 0, 0), 0, 0, 0x7fff_ffff);
  aer.catch(() => {});
  for (let i = 0; i < 50 && bounds.length === 0; i++) await tick();
  assert.equal(bounds.length, 1);
  assert.ok(bounds[0] > 24 * 3600_000, `slept until the request's deadline, not a health check (${bounds[0]} ms)`);
  assert.equal(health, 0);
  // A command with an ordinary deadline brings the health checks back (at the next sleep).
  const io = qp.submit(readCmd(1, 0, 0), 0, 0, 30_000);
  io.catch(() => {});
  count++;
  for (const w of wake.splice(0)) w();
  for (let i = 0; i < 50 && bounds.length < 2; i++) await tick();
  assert.ok(bounds.length >= 2);
  assert.ok(bounds[bounds.length - 1] <= qp.healthCheckMs, `bounded by the health check (${bounds[bounds.length - 1]} ms)`);
  qp.close();
  await assert.rejects(aer, DeviceClosedError);
});

test("pump: adaptive turns the vector off again even when a run ends right after a wake", async () => {
  const { qp, dev } = pair(8);
  qp.pollSpinUs = 0; // sleep at the first empty poll
  let disarms = 0, arms = 0;
  qp.setWaitMode("adaptive", {
    arm() {
      arms++;
      dev.serviceAll(); // the completion races the arm: the re-check reaps it, no sleep
    },
    sleep: () => Promise.resolve(false),
    wake() {},
    disarm() {
      disarms++;
    },
    count: 0,
  });
  assert.equal(disarms, 1, "adaptive starts with the vector off");
  await qp.rw(0x02, 1, 0, 0, 0x100000, 512);
  for (let i = 0; i < 10; i++) await tick();
  assert.equal(arms, 1);
  assert.equal(disarms, 2, "off again once the run ended");
});

test("pump: with only an AER left after a command, the queue sleeps at once instead of polling its window", async () => {
  const { qp, dev } = pair(8, 0);
  qp.pollSpinUs = 10_000_000; // a 10 s window: without the rule the pump would poll all of it
  let sleeps = 0, count = 0;
  const wake: ((v: boolean) => void)[] = [];
  qp.setWaitMode("adaptive", {
    arm() {},
    sleep() {
      sleeps++;
      return new Promise<boolean>((r) => wake.push(r));
    },
    wake() {
      for (const w of wake.splice(0)) w(false);
    },
    get count() {
      return count;
    },
  });
  const aer = qp.submit(readCmd(1, 0, 0), 0, 0, 0x7fff_ffff);
  aer.catch(() => {});
  for (let i = 0; i < 50 && sleeps === 0; i++) await tick();
  assert.equal(sleeps, 1, "an AER alone: asleep at once");
  const [aerSqe] = dev.fetch();
  // A command into the sleeping queue: the device answers it with an interrupt.
  const cmd = qp.submit(readCmd(1, 0, 0), 0, 0, 30_000);
  await tick();
  const [sqe] = dev.fetch();
  dev.complete(sqe[0] >>> 16);
  count++;
  for (const w of wake.splice(0)) w(true);
  await cmd;
  for (let i = 0; i < 50 && sleeps === 1; i++) await tick();
  assert.equal(sleeps, 2, "the AER alone again: asleep at once, no polling window");
  assert.equal(qp.inflight, 1);
  // The AER's own answer still lands.
  dev.complete(aerSqe[0] >>> 16, 0, 7);
  count++;
  for (const w of wake.splice(0)) w(true);
  assert.equal(await aer, 7);
  qp.close();
});
