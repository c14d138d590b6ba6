// CommandTracker on its own: slots and command ids with a generation, completions matched (or
// counted as bogus/late and dropped), timeouts, failAll, pause and the wait for a free slot.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { CommandTracker } from "../../../lib/nvme/tracker.ts";
import { ControllerResetError, NvmeStatusError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { dmaBuffer } from "../../../lib/nvme/transport.ts";

const QID = 3;

/** Begin a command on a fresh slot; returns its slot, cid and settled outcome. */
function start(t: CommandTracker, opcode = 0x02, timeoutMs = 1000, ref = null as ReturnType<typeof dmaBuffer> | null) {
  const slot = t.take();
  assert.ok(slot >= 0, "a slot is free");
  const cid = t.begin(slot, opcode, 1, timeoutMs, ref);
  const out: { dw0?: number; err?: unknown } = {};
  const p = t.promise(slot).then((dw0) => (out.dw0 = dw0), (err) => (out.err = err));
  return { slot, cid, out, p };
}

test("tracker: a cid carries its slot and a generation that moves on each reuse", async () => {
  const t = new CommandTracker(QID, 4);
  const a = start(t);
  assert.equal(a.cid & 3, a.slot, "low bits are the slot");
  t.complete(a.cid, 0, 7, 0, QID);
  await a.p;
  assert.equal(a.out.dw0, 7);
  // Slots are handed out last-freed first: the same slot comes back with a new generation.
  const b = start(t);
  assert.equal(b.slot, a.slot);
  assert.notEqual(b.cid, a.cid, "a reused slot gets a new cid");
  assert.equal(b.cid >>> 2, (a.cid >>> 2) + 1);
  t.complete(b.cid, 0, 0, 0, QID);
  await b.p;
  assert.equal(t.stats.completed, 2);
  assert.equal(t.stats.submitted, 2);
});

test("tracker: the generation wraps within 16 bits", () => {
  const t = new CommandTracker(QID, 1); // 1 slot bit: 15 generation bits
  let last = -1;
  for (let i = 0; i < (1 << 15) + 2; i++) {
    const slot = t.take();
    const cid = t.begin(slot, 0x02, 1, 1000, null);
    assert.ok(cid >= 0 && cid <= 0xffff);
    assert.notEqual(cid, last);
    last = cid;
    t.callback(slot, () => {});
    t.complete(cid, 0, 0, 0, QID);
  }
  assert.equal(t.stats.completed, (1 << 15) + 2);
  assert.equal(t.stats.bogus, 0);
});

test("tracker: bogus completions are counted and never resolve another command", async () => {
  const t = new CommandTracker(QID, 4);
  const a = start(t);
  const stale = a.cid;
  t.complete(a.cid, 0, 1, 0, QID);
  await a.p;
  const b = start(t); // same slot, next generation
  t.complete(stale, 0, 99, 0, QID); // stale generation
  t.complete(b.cid, 0, 99, 0, QID + 1); // another SQ's
  t.complete(b.cid ^ 2, 0, 99, 0, QID); // a free slot
  t.complete(0xffff, 0, 99, 0, QID); // nothing like it
  await null;
  assert.equal(t.stats.bogus, 4);
  assert.equal(b.out.dw0, undefined, "still waiting");
  assert.ok(t.holds(b.cid));
  assert.ok(!t.holds(stale));
  t.complete(b.cid, 0, 5, 0, QID);
  await b.p;
  assert.equal(b.out.dw0, 5);
  assert.equal(t.active, 0);
});

test("tracker: a failed status rejects with the command's context", async () => {
  const t = new CommandTracker(QID, 4);
  const a = start(t, 0x01);
  t.complete(a.cid, 0x0002, 0, 0, QID); // SCT 0, SC 2: invalid field
  await a.p;
  assert.ok(a.out.err instanceof NvmeStatusError);
  const e = a.out.err as NvmeStatusError;
  assert.equal(e.command.qid, QID);
  assert.equal(e.command.cid, a.cid);
  assert.equal(e.command.opcode, 0x01);
});

test("tracker: the callback path gets DW0 and DW1", () => {
  const t = new CommandTracker(QID, 4);
  const slot = t.take();
  const got: unknown[] = [];
  t.callback(slot, (err, dw0, dw1) => got.push(err, dw0, dw1));
  const cid = t.begin(slot, 0x7f, 0, 1000, null);
  t.complete(cid, 0, 0x1111, 0x2222, QID);
  assert.deepEqual(got, [null, 0x1111, 0x2222]);
});

test("tracker: deadlines are stamped by the first scan, then expire; the late completion is counted", async () => {
  const t = new CommandTracker(QID, 4);
  const ref = dmaBuffer(new Uint8Array(16), 0x1000, 16);
  const seen: number[] = [];
  t.onTimeout = (cid) => seen.push(cid);
  const a = start(t, 0x02, 100, ref);
  assert.equal(ref.busy, 1);
  assert.equal(t.checkTimeouts(1000), 0, "first scan only stamps");
  assert.equal(t.nextDeadline(), 1100);
  assert.equal(t.checkTimeouts(1099), 0);
  assert.equal(t.checkTimeouts(1100), 1);
  await a.p;
  assert.ok(a.out.err instanceof NvmeTimeoutError);
  assert.deepEqual(seen, [a.cid]);
  assert.equal(t.stats.timeouts, 1);
  assert.equal(t.active, 0);
  assert.equal(t.nextDeadline(), Infinity);
  // The slot stays taken (its memory busy) until the device answers.
  assert.ok(t.holds(a.cid));
  assert.equal(ref.busy, 1, "memory of a timed-out command stays busy");
  assert.equal(t.free, 3);
  t.complete(a.cid, 0, 0, 0, QID);
  assert.equal(t.stats.late, 1);
  assert.equal(t.stats.completed, 0);
  assert.equal(ref.busy, 0);
  assert.equal(t.free, 4);
});

test("tracker: failAll rejects everything; memory is released only when the device stopped", async () => {
  for (const stopped of [true, false]) {
    const t = new CommandTracker(QID, 4);
    const ref = dmaBuffer(new Uint8Array(16), 0x1000, 16);
    let idle = 0;
    ref.onIdle = () => idle++;
    const a = start(t, 0x02, 100, ref), b = start(t, 0x01, 100_000);
    t.checkTimeouts(0);
    t.checkTimeouts(200); // a times out, b does not
    const err = new ControllerResetError("test");
    t.failAll(err, stopped);
    await Promise.all([a.p, b.p]);
    assert.ok(a.out.err instanceof NvmeTimeoutError);
    assert.equal(b.out.err, err);
    assert.equal(t.active, 0);
    assert.equal(t.free, 4, "every slot free again");
    assert.ok(!t.holds(a.cid) && !t.holds(b.cid));
    assert.equal(idle, stopped ? 1 : 0, `onIdle ran: ${stopped}`);
    assert.equal(ref.busy, stopped ? 0 : 1);
  }
});

test("tracker: paused, take() refuses but takeHeld() does not; waiters run on resume", async () => {
  const t = new CommandTracker(QID, 2);
  t.pause();
  assert.equal(t.take(), -1);
  assert.equal(t.free, 0);
  let ran = 0;
  const q = t.queued(null, () => Promise.resolve(++ran));
  const slot = t.takeHeld();
  assert.ok(slot >= 0);
  await null;
  assert.equal(ran, 0);
  t.resume();
  assert.equal(await q, 1);
  assert.equal(t.free, 1, "the held slot is still taken");
});

test("tracker: a full tracker queues the submission until a completion frees a slot", async () => {
  const t = new CommandTracker(QID, 2);
  const ref = dmaBuffer(new Uint8Array(16), 0x1000, 16);
  const a = start(t), b = start(t);
  assert.equal(t.take(), -1);
  let retried = false;
  const q = t.queued(ref, () => {
    retried = true;
    return Promise.resolve(0);
  });
  assert.equal(ref.busy, 1, "waiting memory counts as busy");
  await null;
  assert.ok(!retried);
  t.complete(a.cid, 0, 0, 0, QID);
  await q;
  assert.ok(retried);
  assert.equal(ref.busy, 0);
  t.complete(b.cid, 0, 0, 0, QID);
  await Promise.all([a.p, b.p]);
});
