/**
 * The software controller with queue threads (SimOptions.threads): each IO
 * queue is served by its own thread, which does Reads and Writes itself and
 * forwards the rest to the device thread. Data integrity across Workers and
 * threads, the model's commands mixed with the fast path on the same blocks,
 * SMART counting the threads' IO, fault rules (forwarded), CSTS.CFS and
 * resets, Format changing what the fast path serves, a deleted queue during
 * IO, file media, nothing left pending, and the host's doorbell write waking a
 * thread asleep on it.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { queueWorkerUrl, TestWorker } from "../workers/client.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { smartLog } from "../../../lib/admin/log.ts";
import { formatNvm } from "../../../lib/admin/manage.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { parseSimSpec, SimTransport } from "../../../lib/sim/transport.ts";
import type { SimOptions } from "../../../lib/sim/options.ts";

const BS = 512;

type RunResult = { ios: number; bad: number; stats: { submitted: number; completed: number } };
type SpinResult = { ok: number; codes: Record<string, number>; started: number; settled: number };

async function sim(o: SimOptions = {}, open: Parameters<typeof NVMeDev.open>[1] = {}) {
  const transport = await SimTransport.create({ namespaces: [{ size: 8192 * BS, blockSize: BS }], maxQueues: 4, threads: 2, ...o });
  const dev = await NVMeDev.open("sim", { transport, ...open });
  return { dev, transport };
}

const served = (t: SimTransport) => t.threadIo().reduce((a, x) => a + x.reads + x.writes, 0);

test("qthreads: threads=N parses; without it no thread serves IO", async () => {
  assert.equal(parseSimSpec("sim:ns=1M;threads=3").threads, 3);
  const { dev, transport } = await sim({ threads: 0 });
  try {
    await dev.ns(1).write(0, new Uint8Array(BS).fill(1));
    assert.deepEqual(transport.threadIo(), []);
  } finally {
    await dev.close();
  }
});

test("qthreads: two Workers and the main thread on their own queues, each served by a queue thread; every block intact", async () => {
  const { dev, transport } = await sim();
  const ws = [new TestWorker(), new TestWorker()];
  try {
    const qids = await Promise.all(ws.map(async (w) => w.open(await dev.createQueue({ depth: 64 }))));
    const main = (async () => {
      for (let i = 0; i < 20; i++) {
        const b = new Uint8Array(8 * BS).fill(i + 1);
        await dev.ns(1).write(4000 + i * 8, b);
        const r = new Uint8Array(8 * BS);
        await dev.ns(1).read(4000 + i * 8, r);
        assert.deepEqual(r, b);
      }
    })();
    const results = await Promise.all(ws.map((w, i) =>
      w.call<RunResult>({ type: "run", nsid: 1, lba: i * 1000, blocks: 512, rounds: 3, tag: 0xa0 + i, chunk: 8 })
    ));
    await main;
    for (const [i, r] of results.entries()) {
      assert.equal(r.bad, 0, `worker ${i}: every block read back as written`);
      assert.equal(r.stats.completed, r.stats.submitted);
      assert.ok(transport.commandCount({ qid: qids[i] }) >= r.ios);
    }
    // Queues 1-3 on threads 0, 1, 0: both threads served IO, and nearly all of it (the rest is flushes etc.).
    const io = transport.threadIo();
    assert.equal(io.length, 2);
    assert.ok(io[0].reads > 0 && io[1].reads > 0, JSON.stringify(io));
    const total = results.reduce((a, r) => a + r.ios, 0) + 40;
    assert.ok(served(transport) >= total, `${served(transport)} of ${total} served by the threads`);
    // What a Worker wrote through its thread, the main thread reads through another.
    const r = new Uint8Array(BS);
    await dev.ns(1).read(1000 + 5, r);
    const v = new Uint32Array(r.buffer);
    assert.equal(v[0], 1005);
    assert.equal(v[1], 0xa1);
    await Promise.all(ws.map((w) => w.call({ type: "close" })));
    assert.equal(transport.staleDma, 0);
  } finally {
    await dev.close();
    for (const w of ws) w.w.terminate();
  }
});

test("qthreads: the model's commands (Write Zeroes, Deallocate, Compare, Flush) and the fast path see the same media", async () => {
  const { dev, transport } = await sim();
  try {
    const ns = dev.ns(1);
    const b = new Uint8Array(4 * BS).fill(0x5a);
    await ns.write(100, b);
    await ns.compare(100, b); // forwarded: the model reads what the thread wrote
    await assert.rejects(ns.compare(100, new Uint8Array(4 * BS).fill(1)), /Compare Failure/);
    await ns.writeZeroes(101, 2);
    await ns.flush();
    const r = new Uint8Array(4 * BS);
    await ns.read(100, r); // served by the thread: sees the model's zeroes
    assert.deepEqual(r.subarray(0, BS), b.subarray(0, BS));
    assert.ok(r.subarray(BS, 3 * BS).every((x) => x === 0));
    assert.deepEqual(r.subarray(3 * BS), b.subarray(3 * BS));
    await ns.deallocate({ lba: 100, blocks: 1 });
    await ns.read(100, r.subarray(0, BS));
    assert.ok(r.subarray(0, BS).every((x) => x === 0));
    assert.equal(transport.commandCount({ opcode: IoOpc.WRITE_ZEROES }), 1);
  } finally {
    await dev.close();
  }
});

test("qthreads: SMART counts what the threads read and wrote", async () => {
  const { dev, transport } = await sim();
  try {
    const s0 = await smartLog(dev);
    const b = new Uint8Array(8 * BS);
    // The device thread publishes the namespace table to the queue threads at its next step; IO
    // before that is forwarded to the model (seen under load). Count from the first IO a thread served.
    let warm = 0;
    for (; warm < 200 && served(transport) === 0; warm++) await dev.ns(1).read(0, b.subarray(0, BS));
    const reads = BigInt(30 + warm);
    const before = served(transport);
    for (let i = 0; i < 10; i++) await dev.ns(1).write(i * 8, b);
    for (let i = 0; i < 30; i++) await dev.ns(1).read(i * 8, b);
    assert.ok(served(transport) - before >= 40, `${served(transport) - before} of 40 served by the threads`);
    // The device thread folds the threads' counts in within a step or two.
    let s1 = await smartLog(dev);
    for (let i = 0; i < 50 && s1.host_read_commands.value - s0.host_read_commands.value < reads; i++) {
      await new Promise((r) => setTimeout(r, 10));
      s1 = await smartLog(dev);
    }
    assert.equal(s1.host_read_commands.value - s0.host_read_commands.value, reads);
    assert.equal(s1.host_write_commands.value - s0.host_write_commands.value, 10n);
  } finally {
    await dev.close();
  }
});

test("qthreads: a fault rule sends commands to the device thread: lost read times out, the Abort releases it", async () => {
  const { dev, transport } = await sim({}, { ioTimeoutMs: 150 });
  try {
    const ns = dev.ns(1);
    await ns.read(0, new Uint8Array(BS)); // queue 1 exists and is served
    const before = served(transport);
    await transport.faults.add({ action: "drop", queue: 1, opcode: IoOpc.READ, count: 1 });
    await assert.rejects(ns.read(0, new Uint8Array(BS)), (e: { code?: string }) => e.code === "ETIMEDOUT");
    assert.equal(dev.controller.resets, 0);
    assert.equal(served(transport), before, "the thread served nothing while a rule was in force");
    // The rule is used up: the fast path is back.
    for (let i = 0; i < 100 && served(transport) === before; i++) await ns.read(0, new Uint8Array(BS));
    assert.ok(served(transport) > before);
  } finally {
    await dev.close();
  }
});

test("qthreads: CSTS.CFS during Worker IO -> reset, queues re-created on their threads, IO resumes, data kept", async () => {
  const { dev, transport } = await sim();
  const ws = [new TestWorker(), new TestWorker()];
  try {
    await dev.ns(1).write(7000, new Uint8Array(BS).fill(0x77));
    const qids = await Promise.all(ws.map(async (w) => w.open(await dev.createQueue())));
    const spins = ws.map((w) => w.call<SpinResult>({ type: "spin", nsid: 1, lba: 100, inflight: 8 }));
    await new Promise((r) => setTimeout(r, 100));
    await transport.faults.fatal();
    for (let i = 0; i < 300 && dev.controller.resets === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(dev.controller.resets, 1);
    // Each queue runs again (waited for, bounded: the machine may be loaded).
    const runsAgain = async (what: string) => {
      const counts = qids.map((q) => transport.commandCount({ qid: q }));
      const moved = () => qids.every((q, i) => transport.commandCount({ qid: q }) > counts[i] + 10);
      for (let i = 0; i < 500 && !moved(); i++) await new Promise((r) => setTimeout(r, 10));
      qids.forEach((q, i) => assert.ok(transport.commandCount({ qid: q }) > counts[i] + 10, `queue ${q} runs ${what}`));
    };
    await runsAgain("after the recovery reset");
    // A requested reset during IO, too.
    await dev.controller.reset();
    await runsAgain("after the requested reset");
    await Promise.all(ws.map((w) => w.call({ type: "stop" })));
    for (const s of await Promise.all(spins)) {
      assert.equal(s.started, s.settled, "no promise left pending");
      assert.ok(s.ok > 0);
      for (const c of Object.keys(s.codes)) assert.equal(c, "ERESET");
    }
    const r = new Uint8Array(BS);
    await dev.ns(1).read(7000, r);
    assert.ok(r.every((x) => x === 0x77));
  } finally {
    await dev.close();
    for (const w of ws) w.w.terminate();
  }
});

test("qthreads: a Worker's queue deleted during its IO is released; the other queue goes on", async () => {
  const { dev, transport } = await sim();
  try {
    const ws = await dev.startWorkers(queueWorkerUrl, 2);
    const spins = ws.map((w) =>
      new Promise<void>((resolve) => {
        w.worker.addEventListener("message", (e: MessageEvent) => {
          if ((e.data as { type: string }).type === "spinning") resolve();
        });
        w.worker.postMessage({ type: "spin", id: 1, nsid: 1, lba: 0, inflight: 8 });
      })
    );
    await Promise.all(spins);
    await new Promise((r) => setTimeout(r, 50));
    const other = ws[1].qid;
    await ws[0].terminate(); // deletes its queue while commands are in flight
    const n = transport.commandCount({ qid: other });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(transport.commandCount({ qid: other }) > n, "the other queue still runs");
    await ws[1].terminate();
    // The device and its threads are still sane: the main thread's queue works.
    await dev.ns(1).write(10, new Uint8Array(BS).fill(3));
    const r = new Uint8Array(BS);
    await dev.ns(1).read(10, r);
    assert.ok(r.every((x) => x === 3));
    assert.equal(transport.staleDma, 0);
  } finally {
    await dev.close();
  }
});

test("qthreads: Format to 4 KiB blocks: the threads serve the new geometry", async () => {
  const { dev, transport } = await sim();
  try {
    await dev.ns(1).write(0, new Uint8Array(BS).fill(9));
    await formatNvm(dev, 1, { lbaf: 1 });
    await dev.rescan();
    const ns = dev.ns(1);
    assert.equal(ns.blockSize, 4096);
    const b = new Uint8Array(4096).fill(0x42);
    await ns.write(ns.blockCount - 1, b);
    const r = new Uint8Array(4096);
    // Within PUBLISH_MS the threads may still forward; either way the data is right.
    await ns.read(ns.blockCount - 1, r);
    assert.deepEqual(r, b);
    await ns.read(0, r);
    assert.ok(r.every((x) => x === 0), "formatted");
    assert.ok(served(transport) > 0);
  } finally {
    await dev.close();
  }
});

test("qthreads: a file-backed namespace is run by the device thread for them", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tsnvme-qt-"));
  try {
    const { dev, transport } = await sim({ namespaces: [{ size: 1024 * BS, blockSize: BS, path: join(dir, "ns1") }] });
    try {
      const b = new Uint8Array(2 * BS).fill(0x33);
      await dev.ns(1).write(5, b);
      const r = new Uint8Array(2 * BS);
      await dev.ns(1).read(5, r);
      assert.deepEqual(r, b);
      assert.equal(served(transport), 0, "file media are the device thread's");
    } finally {
      await dev.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("qthreads: bogus completions a rule asks for come through the mailbox as on one thread", async () => {
  const { dev, transport } = await sim({}, { ioTimeoutMs: 150 });
  try {
    const ns = dev.ns(1);
    const buf = new Uint8Array(BS);
    for (const bogus of ["unknown-cid", "duplicate", "wrong-sqid"] as const) {
      const before = dev.queueStats()[0].bogus;
      await transport.faults.add({ action: "bogus", bogus, queue: 1, count: 1 });
      await ns.read(0, buf);
      await ns.read(0, buf); // a duplicate is reaped with the next completion at the latest
      assert.equal(dev.queueStats()[0].bogus, before + 1, bogus);
    }
    await transport.faults.add({ action: "bogus", bogus: "stale-phase", queue: 1, count: 1 });
    await assert.rejects(ns.read(0, buf), (e: { code?: string }) => e.code === "ETIMEDOUT");
  } finally {
    await dev.close();
  }
});

test("qthreads: a fault rule is in force for the next command once add() resolved, as on one thread", async () => {
  const { dev, transport } = await sim();
  try {
    const ns = dev.ns(1), buf = new Uint8Array(BS);
    for (let i = 0; i < 20; i++) {
      await ns.read(0, buf); // served by the thread
      await transport.faults.add({ action: "status", queue: 1, opcode: IoOpc.READ, status: 0x281, count: 1 });
      await assert.rejects(ns.read(0, buf), (e: { status?: { sct: number; sc: number } }) => e.status?.sct === 2 && e.status?.sc === 0x81);
    }
  } finally {
    await dev.close();
  }
});

test("qthreads: the host's doorbell write wakes a thread asleep on that doorbell (no timeout needed)", async () => {
  const { PcieRing } = await import("../../../lib/nvme/pcie.ts");
  const { dmaBuffer } = await import("../../../lib/nvme/transport.ts");
  // Doorbells in shared memory, as the software controller's: qid 1's SQ tail is dword 2.
  const regs = new SharedArrayBuffer(64);
  const ring = new PcieRing({
    qid: 1,
    depth: 16,
    sq: dmaBuffer(new Uint8Array(16 * 64), 0x1000, 16 * 64),
    cq: dmaBuffer(new Uint8Array(16 * 16), 0x2000, 16 * 16),
    prp: null,
    prpPagesPerSlot: 0,
    pageSize: 4096,
    doorbells: new Uint32Array(regs),
    doorbellStride: 4,
  });
  // A thread that sleeps on the doorbell word while it holds the value it saw, for far longer than the test takes.
  const src = `onmessage = (e) => {
    const db = new Int32Array(e.data.regs);
    const seen = Atomics.load(db, 2);
    postMessage("sleeping");
    postMessage(Atomics.wait(db, 2, seen, 20000));
  };`;
  const url = URL.createObjectURL(new Blob([src], { type: "application/javascript" }));
  const results: string[] = [];
  try {
    // A round is "not-equal" when the write came before the sleep began; "ok" only if the write woke it.
    for (let round = 0; round < 10 && !results.includes("ok") && !results.includes("timed-out"); round++) {
      const w = new Worker(url, { type: "module" });
      try {
        const r = await new Promise<string>((resolve) => {
          w.onmessage = (e: MessageEvent) => {
            if (e.data !== "sleeping") return resolve(e.data as string);
            setTimeout(() => {
              ring.entry();
              ring.push();
              ring.flush();
            }, 50);
          };
          w.postMessage({ regs });
        });
        results.push(r);
      } finally {
        w.terminate();
      }
    }
  } finally {
    URL.revokeObjectURL(url);
  }
  assert.ok(results.includes("ok"), `woken by the doorbell write: ${results.join(", ")}`);
  assert.ok(!results.includes("timed-out"), results.join(", "));
});
