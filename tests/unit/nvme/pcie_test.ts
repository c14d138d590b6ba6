// PcieRing on plain SharedArrayBuffer memory, with this file playing the device: SQEs placed in
// order and wrapped, one SQ tail doorbell per batch, phase tags across laps, the CQ head doorbell,
// DW1 and the SQ id handed to the sink, PRPs from the slot's list page, reset and close.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { PcieRing } from "../../../lib/nvme/pcie.ts";
import { QueuePair } from "../../../lib/nvme/queue.ts";
import type { CompletionSink } from "../../../lib/nvme/ring.ts";
import { type NvmeError, SetupError } from "../../../lib/nvme/errors.ts";
import { Reg } from "../../../lib/nvme/spec.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { type DmaBuffer, dmaBuffer } from "../../../lib/nvme/transport.ts";
import { runReadOnlyChild } from "../ffi/readonly.ts";

const QID = 2, STRIDE = 8;
const SQ_DB = (2 * QID * STRIDE) / 4, CQ_DB = ((2 * QID + 1) * STRIDE) / 4;

function shared(size: number, iova: number): DmaBuffer {
  return dmaBuffer(new Uint8Array(new SharedArrayBuffer(size)), iova, size);
}

/** A ring of `depth` entries over shared memory, and the device's view of it. */
function setup(depth: number, prpPages = 0) {
  const sq = shared(depth * 64, 0x10_0000), cq = shared(depth * 16, 0x20_0000);
  const prp = prpPages > 0 ? shared((depth - 1) * prpPages * 4096, 0x30_0000) : null;
  const db = new Uint32Array(new SharedArrayBuffer(64 * 4));
  const ring = new PcieRing({ qid: QID, depth, sq, cq, prp, prpPagesPerSlot: prpPages, pageSize: 4096, doorbells: db, doorbellStride: STRIDE });
  const sq32 = new Uint32Array(sq.bytes.buffer), cq32 = new Uint32Array(cq.bytes.buffer);
  const dev = { head: 0, tail: 0, phase: 1 };
  /** The device consumes SQEs up to the doorbell; returns their CDW0s. */
  const fetch = (): number[] => {
    const out: number[] = [];
    while (dev.head !== db[SQ_DB]) {
      out.push(sq32[dev.head * 16]);
      dev.head = (dev.head + 1) % depth;
    }
    return out;
  };
  /** The device posts a completion. */
  const post = (cid: number, sf = 0, dw0 = 0, dw1 = 0, sqid = QID) => {
    const b = dev.tail * 4;
    cq32[b] = dw0;
    cq32[b + 1] = dw1;
    cq32[b + 2] = (dev.head | (sqid << 16)) >>> 0;
    Atomics.store(cq32, b + 3, ((cid & 0xffff) | (dev.phase << 16) | (sf << 17)) >>> 0);
    if (++dev.tail === depth) {
      dev.tail = 0;
      dev.phase ^= 1;
    }
  };
  return { ring, db, sq32, cq32, prp, fetch, post, dev };
}

/** A sink that records what the ring hands it. */
function recorder() {
  const got: number[][] = [];
  const sink: CompletionSink = {
    complete: (cid, sf, dw0, dw1, sqid) => void got.push([cid, sf, dw0, dw1, sqid]),
    active: 0,
    failAll: (_e: NvmeError) => {},
  };
  return { got, sink };
}

/** Place a command with cid `cid` (CDW0 = cid << 16 | opcode 2). */
function place(ring: PcieRing, cid: number): void {
  const e = ring.entry();
  e.fill(0);
  e[0] = ((cid << 16) | 2) >>> 0;
  ring.push();
}

test("pcie ring: one SQ tail doorbell per batch, none without new entries", () => {
  const { ring, db, fetch } = setup(8);
  place(ring, 1);
  place(ring, 2);
  place(ring, 3);
  assert.equal(db[SQ_DB], 0, "push alone rings nothing");
  assert.equal(ring.flush(), true);
  assert.equal(db[SQ_DB], 3);
  assert.equal(ring.flushes, 1);
  assert.equal(ring.flush(), false, "nothing new: no doorbell");
  assert.equal(ring.flushes, 1);
  assert.deepEqual(fetch().map((d) => d >>> 16), [1, 2, 3]);
});

test("pcie ring: SQ tail wraps and the phase tag flips over many laps", () => {
  const depth = 4;
  const { ring, db, fetch, post } = setup(depth);
  const { got, sink } = recorder();
  let cid = 0;
  for (let lap = 0; lap < 9; lap++) {
    const n = 1 + (lap % 3); // at most depth - 1 in flight
    for (let i = 0; i < n; i++) place(ring, ++cid);
    ring.flush();
    const cdw0s = fetch();
    assert.equal(cdw0s.length, n);
    for (const d of cdw0s) post(d >>> 16, 0, d >>> 16);
    assert.equal(ring.reap(sink), n);
    assert.equal(ring.reap(sink), 0, "an entry of the last lap does not read as new");
  }
  assert.deepEqual(got.map((c) => c[0]), Array.from({ length: cid }, (_, i) => i + 1));
  assert.equal(db[SQ_DB], cid % depth);
  assert.equal(db[CQ_DB], cid % depth);
});

test("pcie ring: the CQ head doorbell follows what was reaped, and only when something was", () => {
  const { ring, db, post } = setup(8);
  const { sink } = recorder();
  db[CQ_DB] = 77; // a marker: an empty reap must not write
  assert.equal(ring.reap(sink), 0);
  assert.equal(db[CQ_DB], 77);
  post(1);
  post(2);
  assert.equal(ring.reap(sink), 2);
  assert.equal(db[CQ_DB], 2);
  ring.close();
  post(3);
  assert.equal(ring.reap(sink), 1, "a closed ring still reaps");
  assert.equal(db[CQ_DB], 2, "but writes no doorbell");
  place(ring, 4);
  assert.equal(ring.flush(), false);
  assert.equal(db[SQ_DB], 0);
});

test("pcie ring: completions carry status, DW0, DW1 and the SQ id", () => {
  const { ring, post } = setup(8);
  const { got, sink } = recorder();
  post(5, 0x0002, 0xdeadbeef, 0x12345678, QID);
  post(6, 0, 1, 2, 9);
  ring.reap(sink);
  assert.deepEqual(got, [[5, 0x0002, 0xdeadbeef, 0x12345678, QID], [6, 0, 1, 2, 9]]);
});

test("pcie ring: PRP1/PRP2 and the slot's PRP list", () => {
  const { ring, prp } = setup(8, 1);
  const e = ring.entry();
  ring.setData(e, 0, 0x40_0000, 4096);
  assert.equal(e[6], 0x40_0000);
  assert.equal(e[8], 0, "one page: no PRP2");
  ring.setData(e, 0, 0x40_0000, 8192);
  assert.equal(e[8], 0x40_1000, "two pages: PRP2 is the second page");
  ring.setData(e, 2, 0x40_0000, 4 * 4096);
  assert.equal(e[8], prp!.iova + 2 * 4096, "more: PRP2 points at slot 2's list page");
  const list = new Uint32Array(prp!.bytes.buffer, 2 * 4096, 6);
  assert.deepEqual([...list], [0x40_1000, 0, 0x40_2000, 0, 0x40_3000, 0]);
  ring.clearData(e);
  assert.deepEqual([...e.subarray(6, 10)], [0, 0, 0, 0]);
  assert.equal(ring.maxTransfer, (511 + 1) * 4096);
  assert.throws(() => setup(8).ring.setData(e, 0, 0x40_0000, 3 * 4096), /PRP list/);
});

test("pcie ring: reset zeroes the rings so stale phase tags do not read as completions", () => {
  const { ring, post, cq32, dev } = setup(4);
  const { got, sink } = recorder();
  post(1);
  post(2);
  ring.reap(sink);
  post(3); // left unreaped, then the device is disabled
  ring.reset();
  assert.ok(cq32.every((v) => v === 0));
  assert.equal(ring.reap(sink), 0);
  dev.head = dev.tail = 0;
  dev.phase = 1;
  place(ring, 9);
  assert.equal(ring.entry(), ring.entry(), "entry() is stable until push");
  post(9);
  assert.equal(ring.reap(sink), 1);
  assert.deepEqual(got.map((c) => c[0]), [1, 2, 9]);
});

test("pcie ring under a queue pair: the SQ never holds more than depth - 1 commands", async () => {
  const depth = 4;
  const { ring, db, fetch, post } = setup(depth);
  const qp = new QueuePair({ qid: QID, ring, defaultTimeoutMs: 30_000 });
  const ps = Array.from({ length: 6 }, (_, i) => qp.rw(0x02, 1, i, 0, 0, 0));
  await null;
  await null;
  const first = fetch();
  assert.equal(first.length, depth - 1, "SQ full at depth - 1");
  assert.equal(qp.freeSlots, 0);
  for (const d of first) post(d >>> 16);
  qp.processCompletions();
  await new Promise((r) => setTimeout(r, 0));
  const second = fetch();
  assert.equal(second.length, 3);
  for (const d of second) post(d >>> 16);
  await Promise.all(ps);
  assert.equal(qp.stats.completed, 6);
  assert.equal(qp.stats.sqDoorbells, ring.flushes);
  assert.ok(qp.stats.sqDoorbells >= 2);
  assert.equal(db[SQ_DB], 6 % depth);
  qp.close();
});

test("pcie ring: with SGLs, a data block in DPTR and PSDT set on push (the queue rewrites CDW0 after setData)", () => {
  const sq = shared(8 * 64, 0x10_0000), cq = shared(8 * 16, 0x20_0000), prp = shared(7 * 4096, 0x30_0000);
  const db = new Uint32Array(new SharedArrayBuffer(64 * 4));
  const ring = new PcieRing({ qid: QID, depth: 8, sq, cq, prp, prpPagesPerSlot: 1, pageSize: 4096, doorbells: db, doorbellStride: STRIDE, sgl: true });
  assert.equal(ring.sgl, true);
  const e = ring.entry();
  ring.setData(e, 0, 0x40_0004, 3 * 4096);
  e[0] = (7 << 16) | 2; // what QueuePair's post writes
  ring.push();
  assert.equal(e[0], ((7 << 16) | 0x4000 | 2) >>> 0, "PSDT 01b");
  assert.deepEqual([...e.subarray(6, 10)], [0x40_0004, 0, 3 * 4096, 0], "one data block, no list");
  const e2 = ring.entry();
  e2[0] = 2;
  ring.push();
  assert.equal(e2[0], 2, "a command without setData keeps PSDT 00b");
  const e3 = ring.entry();
  ring.setDataChunks(e3, 2, [0x50_0000, 512, -1, 512], 2);
  assert.equal(e3[6], prp.iova + 2 * 4096, "Last Segment in slot 2's list memory");
  assert.equal(e3[9] >>> 28, 3);
  assert.throws(() => setup(8, 1).ring.setDataChunks(e3, 0, [1, 2, 3, 4], 2), /needs SGLs/);
});

test("pcie ring: shadow doorbells skip the MMIO write while the event index is behind", async () => {
  const { dbbufNeedEvent } = await import("../../../lib/nvme/pcie.ts");
  // Linux's nvme_dbbuf_need_event: the event index in [old, new).
  assert.equal(dbbufNeedEvent(5, 6, 5), true);
  assert.equal(dbbufNeedEvent(4, 6, 5), false);
  assert.equal(dbbufNeedEvent(7, 9, 5), true);
  assert.equal(dbbufNeedEvent(0xffff, 2, 0xfffe), true, "wraps at 16 bits");
  const sq = shared(8 * 64, 0x10_0000), cq = shared(8 * 16, 0x20_0000);
  const db = new Uint32Array(new SharedArrayBuffer(64 * 4));
  const shadow = new Uint32Array(new SharedArrayBuffer(4096)), eventIdx = new Uint32Array(new SharedArrayBuffer(4096));
  shadow[SQ_DB] = 9;
  eventIdx[SQ_DB] = 9; // stale values of an earlier queue with this id
  const ring = new PcieRing({ qid: QID, depth: 8, sq, cq, prp: null, prpPagesPerSlot: 0, pageSize: 4096, doorbells: db, doorbellStride: STRIDE, dbbuf: { shadow, eventIdx } });
  assert.equal(shadow[SQ_DB], 0, "a new ring starts its shadow and event index at 0");
  assert.equal(ring.shadowDoorbells, true);
  place(ring, 1);
  ring.flush();
  assert.equal(shadow[SQ_DB], 1);
  assert.equal(db[SQ_DB], 1, "event index 0 is in [0, 1): MMIO written");
  place(ring, 2);
  place(ring, 3);
  ring.flush();
  assert.equal(shadow[SQ_DB], 3);
  assert.equal(db[SQ_DB], 1, "the controller has not looked past 0: no MMIO");
  assert.equal(ring.flushes, 2);
  assert.equal(ring.mmioDoorbells, 1);
  eventIdx[SQ_DB] = 3; // the controller caught up
  place(ring, 4);
  ring.flush();
  assert.equal(db[SQ_DB], 4);
  assert.equal(ring.mmioDoorbells, 2);
  // CQ head: the same rule on the CQ's doorbell.
  const cq32 = new Uint32Array(cq.bytes.buffer);
  Atomics.store(cq32, 3, (1 | (1 << 16)) >>> 0);
  const { sink } = recorder();
  ring.reap(sink);
  assert.equal(shadow[CQ_DB], 1);
  assert.equal(db[CQ_DB], 1, "CQ event index 0 in [0, 1)");
  Atomics.store(cq32, 7, (2 | (1 << 16)) >>> 0);
  ring.reap(sink);
  assert.equal(shadow[CQ_DB], 2);
  assert.equal(db[CQ_DB], 1, "CQ event index still 0: no MMIO");
  // The admin queue never uses shadow doorbells.
  const admin = new PcieRing({ qid: 0, depth: 8, sq, cq, prp: null, prpPagesPerSlot: 0, pageSize: 4096, doorbells: db, doorbellStride: STRIDE, dbbuf: { shadow, eventIdx } });
  assert.equal(admin.shadowDoorbells, false);
});

test("pcie bring-up: a BAR0 that reads all zeros (an offline VF) is a typed setup error saying so", async () => {
  const transport = await SimTransport.create({});
  const read = transport.readReg64.bind(transport);
  transport.readReg64 = (o: number) => o === Reg.CAP ? 0n : read(o);
  try {
    await assert.rejects(NVMeDev.open("sim", { transport }), (e) => {
      assert.ok(e instanceof SetupError, String(e));
      assert.equal(e.reason, "bar-zeros");
      assert.match(e.message, /BAR0 reads all zeros \(CAP = 0\).*secondary controller is offline/);
      assert.doesNotMatch(e.message, /CAP\.CSS/);
      return true;
    });
  } finally {
    transport.close();
  }
});

test("pcie ring: reap and shadow-doorbell flushes only read the CQ and the event index", () => {
  // The device owns those pages: a poll that writes them (Bun's Atomics.load) erases a CQE the
  // device DMAs in between under one-vCPU TCG. Read-only pages in a child make any write fatal.
  const r = runReadOnlyChild("ring");
  assert.equal(r.signal, null, `child died by ${r.signal}: ${r.out}`);
  assert.equal(r.status, 0, r.out);
  assert.match(r.out, /survived 0/);
});

test("pcie ring: a batched CQ head doorbell waits until reported plus outstanding entries reach half the ring", () => {
  const depth = 8;
  const { ring, db, fetch, post, dev } = setup(depth);
  const { got, sink } = recorder();
  ring.batchCqDoorbell = true;
  db[CQ_DB] = 0;
  const seen: number[] = [];
  for (let cid = 1; cid <= 20; cid++) {
    place(ring, cid);
    ring.flush();
    for (const d of fetch()) post(d >>> 16);
    // The device never sees a CQ it could fill: its tail past the head it was told stays below depth - 1.
    assert.ok((dev.tail - db[CQ_DB] + depth) % depth < depth - 1);
    assert.equal(ring.reap(sink), 1);
    seen.push(db[CQ_DB]);
  }
  assert.equal(got.length, 20);
  // Told at 4, 8 (0), 12 (4), 16 (0), 20 (4): every depth / 2 completions at queue depth 1.
  assert.deepEqual(seen, [0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4, 4, 4, 4, 0, 0, 0, 0, 4]);
  assert.equal(ring.cqMmioDoorbells, 5);
  // Outstanding commands count: with 3 in flight one more completion reaches half the ring.
  for (let cid = 21; cid <= 24; cid++) place(ring, cid);
  ring.flush();
  const cdw0s = fetch();
  post(cdw0s[0] >>> 16);
  ring.reap(sink);
  assert.equal(db[CQ_DB], 5, "1 unreported + 3 outstanding = 4: told");
  for (const d of cdw0s.slice(1)) post(d >>> 16);
  ring.reap(sink);
  assert.equal(db[CQ_DB], 5, "3 unreported, none outstanding: not yet");
  ring.flushCq();
  assert.equal(db[CQ_DB], 0, "flushCq tells the device the head (24 % 8)");
  ring.flushCq();
  assert.equal(ring.cqMmioDoorbells, 7, "nothing new: no second write");
  // Off again: a doorbell per reap, as Linux and SPDK write it.
  ring.batchCqDoorbell = false;
  place(ring, 25);
  ring.flush();
  for (const d of fetch()) post(d >>> 16);
  ring.reap(sink);
  assert.equal(db[CQ_DB], 1);
});

test("pcie ring: with shadow doorbells a batched CQ head is stored on every reap, MMIO only when told and the event index asks", () => {
  const sq = shared(8 * 64, 0x10_0000), cq = shared(8 * 16, 0x20_0000);
  const db = new Uint32Array(new SharedArrayBuffer(64 * 4));
  const shadow = new Uint32Array(new SharedArrayBuffer(4096)), eventIdx = new Uint32Array(new SharedArrayBuffer(4096));
  const ring = new PcieRing({ qid: QID, depth: 8, sq, cq, prp: null, prpPagesPerSlot: 0, pageSize: 4096, doorbells: db, doorbellStride: STRIDE, dbbuf: { shadow, eventIdx } });
  ring.batchCqDoorbell = true;
  const cq32 = new Uint32Array(cq.bytes.buffer);
  const { sink } = recorder();
  for (let i = 0; i < 4; i++) {
    Atomics.store(cq32, i * 4 + 3, ((i + 1) | (1 << 16)) >>> 0);
    ring.reap(sink);
    assert.equal(shadow[CQ_DB], i + 1, "the shadow head follows every reap");
    // QEMU's event index trails: the head it had when it posted.
    eventIdx[CQ_DB] = i;
  }
  assert.equal(db[CQ_DB], 4, "told at half the ring; the event index (3) lies in [0, 4): MMIO");
  assert.equal(ring.cqMmioDoorbells, 1);
  Atomics.store(cq32, 4 * 4 + 3, (5 | (1 << 16)) >>> 0);
  ring.reap(sink);
  eventIdx[CQ_DB] = 3; // the controller has not looked since
  ring.flushCq();
  assert.equal(shadow[CQ_DB], 5);
  assert.equal(db[CQ_DB], 4, "event index 3 is not in [4, 5): no MMIO");
});

test("pcie ring under a queue pair: CQ head doorbells batched while polling, per reap in interrupt mode, told when the pump goes idle", async () => {
  const depth = 8;
  const { ring, db, fetch, post } = setup(depth);
  const qp = new QueuePair({ qid: QID, ring, defaultTimeoutMs: 30_000 });
  assert.equal(ring.batchCqDoorbell, true, "a queue pair polls by default");
  const serve = async (p: Promise<number>) => {
    for (let i = 0; i < 100; i++) {
      const d = fetch();
      for (const x of d) post(x >>> 16);
      if (d.length > 0) break;
      await new Promise((r) => setTimeout(r, 0));
    }
    await p;
  };
  for (let i = 0; i < 3; i++) await serve(qp.rw(0x02, 1, i, 0, 0, 0));
  // The pump lingers a few turns with nothing in flight, then leaves: the device is told then.
  for (let i = 0; i < 20 && db[CQ_DB] !== 3; i++) await new Promise((r) => setTimeout(r, 0));
  assert.equal(db[CQ_DB], 3, "told the head when the pump went idle");
  assert.ok(ring.cqMmioDoorbells < 3, `fewer CQ doorbells than completions (${ring.cqMmioDoorbells})`);
  const waiter = { arm() {}, sleep: () => new Promise<boolean>(() => {}), wake() {}, count: 0 };
  qp.setWaitMode("interrupt", waiter);
  assert.equal(ring.batchCqDoorbell, false);
  qp.setWaitMode("adaptive", waiter);
  assert.equal(ring.batchCqDoorbell, true);
  qp.close();
});
