import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NvmfTarget, type NvmfTargetOptions } from "../../../lib/target/mod.ts";
import { memNamespaces } from "../util/target_util.ts";
import { TcpQueue, type TcpQueueOptions } from "../../../lib/tcp/queue.ts";
import { iovaOffset, TCP_IOVA_SPAN, TcpMemory } from "../../../lib/tcp/memory.ts";
import { CATTR_DISABLE_SQFLOW, hostIdentity } from "../../../lib/tcp/fabrics.ts";
import { identifyControllerCmd, readCmd, writeCmd } from "../../../lib/nvme/command.ts";
import { IoOpc, Reg } from "../../../lib/nvme/spec.ts";
import { ConnectionLostError, NvmeStatusError, NvmeTimeoutError, ProtocolError } from "../../../lib/nvme/errors.ts";

const NQN = "nqn.2024-01.io.tsnvme:tcp-unit";
const ID = hostIdentity("8c1f2a9e-3b4d-4e5f-9a0b-1c2d3e4f5a6b");

/** One subsystem of one 4 MiB namespace; 128 KiB transfers, 8 KiB in-capsule, no C2HData SUCCESS unless asked. */
async function withTarget(
  o: Partial<NvmfTargetOptions>,
  fn: (t: NvmfTarget, base: Omit<TcpQueueOptions, "qid" | "depth">) => Promise<void>,
): Promise<void> {
  const t = await NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: memNamespaces([4 << 20, 512]) }],
    maxTransfer: 0x20000,
    inCapsule: 8192,
    c2hSuccess: false,
    ...o,
  });
  const memory = new TcpMemory();
  try {
    await fn(t, { host: "127.0.0.1", port: t.port, memory, subnqn: NQN, hostnqn: ID.hostnqn, hostid: ID.hostid, connectTimeoutMs: 5000, timeoutMs: 5000 });
  } finally {
    await t.close();
    memory.close();
  }
}

/** CC.EN on an admin queue (IOSQES 6, IOCQES 4): a controller takes IO Connects once ready, as nvmet does. */
async function enable(a: TcpQueue): Promise<TcpQueue> {
  await a.propertySet(Reg.CC, 0x460001);
  return a;
}

function pattern(n: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + (i >>> 9)) & 0xff);
}

test("tcp queue: admin Connect, Property Get/Set bring-up (CAP, CC, CC.EN, CSTS.RDY, VS), Identify via C2HData", async () => {
  await withTarget({}, async (t, base) => {
    const a = await TcpQueue.connect({ ...base, qid: 0, depth: 32, katoMs: 5000 });
    try {
      assert.equal(a.cntlid, 1);
      assert.equal(a.ring.icResp.maxh2cdata, 0x20000);
      const cap = await a.propertyGet(Reg.CAP, true);
      assert.equal(cap & 0xffffn, 127n);
      assert.equal((cap >> 37n) & 1n, 1n); // CSS NVM: lies in DW1
      await a.propertySet(Reg.CC, 0x460000);
      assert.equal(await a.propertyGet(Reg.CC, false), 0x460000n);
      await a.propertySet(Reg.CC, 0x460001);
      assert.equal((await a.propertyGet(Reg.CSTS, false)) & 1n, 1n);
      assert.equal(await a.propertyGet(Reg.VS, false), 0x10400n);
      // Concurrent property gets stay matched to their DW1.
      const [c1, vs, c2] = await Promise.all([a.propertyGet(Reg.CAP, true), a.propertyGet(Reg.VS, false), a.propertyGet(Reg.CAP, true)]);
      assert.deepEqual([c1, vs, c2], [cap, 0x10400n, cap]);
      const buf = base.memory.allocDma(4096);
      await a.qp.submit(identifyControllerCmd(), buf.iova, 4096);
      assert.equal(buf.bytes[78] | (buf.bytes[79] << 8), 1);
      assert.equal(new TextDecoder().decode(buf.bytes.subarray(768, 768 + NQN.length)), NQN);
      await assert.rejects(a.propertyGet(0x20, false), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 2);
      assert.equal(t.stats.connections, 1);
    } finally {
      a.close();
    }
  });
});

for (const dg of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }, { hdgst: true, ddgst: false }]) {
  test(`tcp queue: IO writes in-capsule and via R2T/H2CData, reads via split C2HData, QD 32 (digests h=${dg.hdgst} d=${dg.ddgst})`, async () => {
    await withTarget({ maxH2cData: 8192, inCapsule: 8192, c2hChunk: 16384 }, async (t, base) => {
      const a = await enable(await TcpQueue.connect({ ...base, qid: 0, depth: 32, digests: dg }));
      const q = await TcpQueue.connect({ ...base, qid: 1, depth: 64, cntlid: a.cntlid, digests: dg, inCapsuleMax: 8192 });
      try {
        assert.equal(q.cntlid, a.cntlid);
        const mem = base.memory;
        const small = mem.allocDma(4096), big = mem.allocDma(65536), back = mem.allocDma(65536);
        small.bytes.set(pattern(4096, 1));
        big.bytes.set(pattern(65536, 2));
        await q.qp.submit(writeCmd(1, 0, 8), small.iova, 4096);
        await q.qp.submit(writeCmd(1, 100, 128), big.iova, 65536);
        assert.equal(q.ring.counters.inCapsule, 2); // the Connect data and the 4 KiB write
        assert.equal(q.ring.counters.r2t, 1);
        assert.equal(t.stats.h2cData, 8); // 64 KiB in 8 KiB H2CData PDUs
        await q.qp.submit(readCmd(1, 100, 128), back.iova, 65536);
        assert.deepEqual(back.bytes, big.bytes);
        assert.equal(t.stats.c2hData, 4);
        await q.qp.rw(IoOpc.READ, 1, 0, 7, back.iova + 512, 4096);
        assert.deepEqual(back.bytes.subarray(512, 4608), small.bytes);
        // 32 in flight, mixed sizes, each at its own LBA range and buffer offset.
        const io = mem.allocDma(32 * 16384), rd = mem.allocDma(32 * 16384);
        io.bytes.set(pattern(32 * 16384, 3));
        const n = (i: number) => 1 + (i * 5) % 32; // 1..32 blocks
        await Promise.all(Array.from({ length: 32 }, (_, i) => q.qp.rw(IoOpc.WRITE, 1, 1000 + i * 32, n(i) - 1, io.iova + i * 16384, n(i) * 512)));
        await Promise.all(Array.from({ length: 32 }, (_, i) => q.qp.rw(IoOpc.READ, 1, 1000 + i * 32, n(i) - 1, rd.iova + i * 16384, n(i) * 512)));
        for (let i = 0; i < 32; i++) {
          const o = i * 16384, len = n(i) * 512;
          assert.deepEqual(rd.bytes.subarray(o, o + len), io.bytes.subarray(o, o + len), `io ${i}`);
        }
        // Status errors come back typed: LBA out of range.
        await assert.rejects(q.qp.rw(IoOpc.READ, 1, (4 << 20) / 512, 0, rd.iova, 512), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x80);
        assert.equal(q.qp.inflight, 0);
      } finally {
        q.close();
        a.close();
      }
    });
  });
}

test("tcp queue: C2HData SUCCESS completes a read without CapsuleResp (SQ flow control disabled)", async () => {
  await withTarget({ c2hSuccess: true }, async (_t, base) => {
    const a = await enable(await TcpQueue.connect({ ...base, qid: 0, depth: 8 }));
    const q = await TcpQueue.connect({ ...base, qid: 1, depth: 8, cntlid: a.cntlid, cattr: CATTR_DISABLE_SQFLOW });
    try {
      const b = base.memory.allocDma(8192);
      b.bytes.set(pattern(8192, 4));
      await q.qp.submit(writeCmd(1, 8, 16), b.iova, 8192);
      const r = base.memory.allocDma(8192);
      for (let i = 0; i < 4; i++) await q.qp.submit(readCmd(1, 8, 16), r.iova, 8192);
      assert.deepEqual(r.bytes, b.bytes);
      assert.equal(q.qp.stats.completed, 6); // Connect, write, 4 reads
    } finally {
      q.close();
      a.close();
    }
  });
});

test("tcp queue: Connect refused with its status (wrong NQN, IO queue for an unknown cntlid), no listener", async () => {
  await withTarget({}, async (t, base) => {
    await assert.rejects(TcpQueue.connect({ ...base, subnqn: "nqn.2024-01.io.tsnvme:nope", qid: 0, depth: 8 }), (e: unknown) =>
      e instanceof NvmeStatusError && e.status.sct === 1 && e.status.sc === 0x82 && e.dw0 === ((1 << 16) | 256));
    await assert.rejects(TcpQueue.connect({ ...base, qid: 1, depth: 8, cntlid: 77 }), NvmeStatusError);
    const port = t.port;
    await t.close();
    await assert.rejects(TcpQueue.connect({ ...base, port, qid: 0, depth: 8 }), (e: unknown) => e instanceof ConnectionLostError && e.code === "ECONNLOST");
  });
});

test("tcp queue: faults: connection dropped mid-command, C2HTermReq, C2HData for no read fail in-flight IO typed; a bad data digest fails its command", async () => {
  let fault: "drop" | "term" | "corrupt-ddgst" | "wrong-cid" | undefined;
  await withTarget({ onCommand: (qid, sqe) => (qid === 1 && (sqe[0] & 0xff) === IoOpc.READ ? fault : undefined) }, async (t, base) => {
    const a = await enable(await TcpQueue.connect({ ...base, qid: 0, depth: 8 }));
    const r = base.memory.allocDma(4096);
    try {
      const cases: [typeof fault, (e: unknown) => boolean][] = [
        ["drop", (e) => e instanceof ConnectionLostError],
        ["term", (e) => e instanceof ProtocolError && e.reason === "term"],
        // C2HData for a command id that has no read in flight: refused, never copied anywhere.
        ["wrong-cid", (e) => e instanceof ProtocolError && e.reason === "sequence" && e.fes === 1],
        // Without a data digest the data is placed straight into the read's memory: the same check runs first.
        ["wrong-cid", (e) => e instanceof ProtocolError && e.reason === "sequence" && e.fes === 1],
      ];
      for (const [k, [f, check]] of cases.entries()) {
        const q = await TcpQueue.connect({ ...base, qid: 1, depth: 8, cntlid: a.cntlid, digests: { ddgst: k < 3 } });
        fault = f;
        const p = [q.qp.submit(readCmd(1, 0, 8), r.iova, 4096), q.qp.submit(readCmd(1, 8, 8), r.iova, 4096)];
        for (const x of p) await assert.rejects(x, check, String(f));
        assert.ok(check(q.ring.lost), `${f}: ring lost with ${q.ring.lost}`);
        await assert.rejects(q.qp.submit(readCmd(1, 0, 1), r.iova, 512), check); // the queue stays failed
        q.close();
        fault = undefined;
      }
      // A bad data digest fails only its command (Data Transfer Error), as Linux does; the queue goes on.
      const q = await TcpQueue.connect({ ...base, qid: 1, depth: 8, cntlid: a.cntlid, digests: { hdgst: true, ddgst: true } });
      r.bytes.fill(0x33);
      fault = "corrupt-ddgst";
      await assert.rejects(q.qp.submit(readCmd(1, 0, 8), r.iova, 4096), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 4);
      fault = undefined;
      assert.ok(r.bytes.every((v) => v === 0x33), "data that failed its digest is not copied");
      await q.qp.submit(readCmd(1, 0, 8), r.iova, 4096);
      assert.equal(q.ring.lost, null);
      q.close();
      assert.ok(t.stats.termReqs >= 1);
      // The host said why it ended each wrong-cid connection (bad digest has no FES: no TermReq).
      for (let i = 0; i < 50 && t.stats.hostTermReqs < 2; i++) await new Promise((r) => setTimeout(r, 10));
      assert.equal(t.stats.hostTermReqs, 2);
      // The admin queue on its own connection is untouched.
      assert.equal((await a.propertyGet(Reg.VS, false)), 0x10400n);
    } finally {
      a.close();
    }
  });
});

test("tcp queue: a command the target never answers times out typed; the queue goes on", async () => {
  let ignore = true;
  await withTarget({ onCommand: (qid, s) => (ignore && qid === 1 && (s[0] & 0xff) === IoOpc.READ ? "ignore" : undefined) }, async (_t, base) => {
    const a = await enable(await TcpQueue.connect({ ...base, qid: 0, depth: 8 }));
    const q = await TcpQueue.connect({ ...base, qid: 1, depth: 8, cntlid: a.cntlid });
    try {
      const r = base.memory.allocDma(4096);
      const t0 = performance.now();
      await assert.rejects(q.qp.submit(readCmd(1, 0, 8), r.iova, 4096, 150), NvmeTimeoutError);
      const ms = performance.now() - t0;
      assert.ok(ms >= 140 && ms < 2000, `timed out after ${ms} ms`);
      assert.equal(q.qp.stats.timeouts, 1);
      ignore = false;
      await q.qp.submit(writeCmd(1, 0, 8), r.iova, 4096);
      await q.qp.submit(readCmd(1, 0, 8), r.iova, 4096);
    } finally {
      q.close();
      a.close();
    }
  });
});

test("tcp queue: keep-alive runs at the requested period and stops on close", async () => {
  await withTarget({}, async (t, base) => {
    const a = await TcpQueue.connect({ ...base, qid: 0, depth: 8, katoMs: 200 });
    const before = t.stats.commands;
    a.startKeepAlive();
    await new Promise((r) => setTimeout(r, 560));
    const sent = t.stats.commands - before;
    assert.ok(sent >= 3 && sent <= 6, `keep-alives sent: ${sent}`);
    a.close();
    const after = t.stats.commands;
    await new Promise((r) => setTimeout(r, 250));
    // One keep-alive sent just before close may reach the target after it; one still running would
    // have sent two more by now.
    assert.ok(t.stats.commands <= after + 1, `keep-alives after close: ${t.stats.commands - after}`);
  });
});

test("tcp memory: synthetic IOVAs resolve to their buffer; freed ids are reused", () => {
  const m = new TcpMemory();
  const a = m.allocDma(100), b = m.allocDma(8192);
  assert.equal(a.size, 4096);
  assert.equal(m.bytesAt(b.iova + 5000), b.bytes);
  assert.equal(m.iovaOf(b.bytes.subarray(10)), b.iova + 10);
  assert.equal(m.dmaOf(a.bytes), a);
  m.freeDma(a);
  assert.equal(m.bytesAt(a.iova), null);
  assert.equal(m.allocDma(4096).iova, a.iova);
  // The offset part of an IOVA, up to the last byte of the highest buffer number.
  for (const [id, off] of [[1, 0], [2, 5000], [7, TCP_IOVA_SPAN - 1], [0x1f_ffff, 123456789]]) {
    assert.equal(iovaOffset(id * TCP_IOVA_SPAN + off), off);
  }
  assert.equal(iovaOffset(b.iova + 5000), 5000);
  m.close();
});
