/**
 * Queues owned by Workers, against the software controller: data integrity
 * with several Workers and the main thread at once (every block carries its
 * LBA and its writer's tag), and the fault matrix across threads: timeout +
 * Abort, lost Abort -> reset, CSTS.CFS, surprise removal, close during IO, a
 * terminated Worker's queue released. No promise is left pending on any thread.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { queueWorkerUrl, TestWorker } from "../workers/client.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { AdminOpc, IoOpc, Reg } from "../../../lib/nvme/spec.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";

const BS = 512;

async function sim(queues = 4, opts: Parameters<typeof NVMeDev.open>[1] = {}) {
  const transport = await SimTransport.create({ namespaces: [{ size: 8192 * BS, blockSize: BS }], maxQueues: queues });
  const dev = await NVMeDev.open("sim", { transport, ...opts });
  return { dev, transport };
}

type RunResult = { ios: number; bad: number; stats: { submitted: number; completed: number } };
type SpinResult = { ok: number; codes: Record<string, number>; started: number; settled: number; detached: boolean };

test("workers: two Workers and the main thread do IO at once on their own queues; every block is intact", async () => {
  const { dev, transport } = await sim();
  const ws = [new TestWorker(), new TestWorker()];
  try {
    const qids = await Promise.all(ws.map(async (w) => w.open(await dev.createQueue({ depth: 64 }))));
    assert.deepEqual(qids.sort(), [2, 3], "queue 1 is the main thread's; workers got their own ids");
    const before = transport.commandCount({ qid: 1 });
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
      assert.ok(r.ios >= 384);
      assert.equal(r.stats.completed, r.stats.submitted);
      // The worker's commands went to its own queue, not the main thread's.
      assert.ok(transport.commandCount({ qid: qids[i] }) >= r.ios);
    }
    assert.equal(transport.commandCount({ qid: 1 }) - before, 40, "main-thread IO stayed on queue 1");
    // Cross-check from the main thread: worker 1's last round is on the media.
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

test("workers: a lost command on a worker's queue times out there, the controller's Abort releases it, no reset", async () => {
  // A timeout far above the instant device's answer: with 150 ms a loaded CI machine once timed out a
  // second, answered command too (two codes); only the dropped one may time out.
  const { dev, transport } = await sim(4, { ioTimeoutMs: 1000 });
  const w = new TestWorker();
  try {
    const qid = await w.open(await dev.createQueue());
    await transport.faults.add({ action: "drop", queue: qid, opcode: IoOpc.READ, count: 1 });
    const spin = w.call<SpinResult>({ type: "spin", nsid: 1, lba: 0, inflight: 4 });
    await w.spinning;
    await new Promise((r) => setTimeout(r, 2500));
    await w.call({ type: "stop" });
    const s = await spin;
    assert.equal(s.codes.ETIMEDOUT, 1, JSON.stringify(s));
    assert.equal(Object.keys(s.codes).length, 1, JSON.stringify(s));
    assert.ok(s.ok > 0);
    assert.equal(s.started, s.settled, "no promise left pending in the worker");
    assert.equal(dev.controller.resets, 0, "the Abort sent from the controller's thread released the command");
    assert.equal(transport.commandCount({ qid: 0, opcode: AdminOpc.ABORT }), 1);
  } finally {
    await dev.close();
    w.w.terminate();
  }
});

test("workers: a worker's command the Abort misses but that completes within another IO timeout -> no reset", async () => {
  const { dev, transport } = await sim(4, { ioTimeoutMs: 500 });
  const w = new TestWorker();
  try {
    const qid = await w.open(await dev.createQueue());
    // "Not aborted", then done 400 ms after the timeout: the controller's thread must wait for the
    // owner to see it (Linux re-arms the IO timer), not reset after a short grace.
    await transport.faults.add({ action: "delay", queue: qid, opcode: IoOpc.READ, delayMs: 900, abortable: false, count: 1 });
    const spin = w.call<SpinResult>({ type: "spin", nsid: 1, lba: 0, inflight: 4 });
    await w.spinning;
    for (let i = 0; i < 300 && transport.commandCount({ qid: 0, opcode: AdminOpc.ABORT }) === 0; i++) await new Promise((r) => setTimeout(r, 10));
    await new Promise((r) => setTimeout(r, 1500));
    await w.call({ type: "stop" });
    const s = await spin;
    assert.deepEqual(s.codes, { ETIMEDOUT: 1 }, JSON.stringify(s));
    assert.equal(s.started, s.settled);
    assert.equal(transport.commandCount({ qid: 0, opcode: AdminOpc.ABORT }), 1);
    assert.equal(dev.controller.resets, 0, "the command was released by its own completion");
  } finally {
    await dev.close();
    w.w.terminate();
  }
});

test("workers: lost command and lost Abort -> controller reset crosses threads; the worker's IO resumes", async () => {
  const { dev, transport } = await sim(4, { ioTimeoutMs: 150, adminTimeoutMs: 300 });
  const w = new TestWorker();
  try {
    const qid = await w.open(await dev.createQueue());
    await transport.faults.add({ action: "drop", queue: qid, opcode: IoOpc.READ, count: 1 });
    await transport.faults.add({ action: "drop", queue: "admin", opcode: AdminOpc.ABORT, count: 1 });
    const spin = w.call<SpinResult>({ type: "spin", nsid: 1, lba: 0, inflight: 4 });
    await w.spinning;
    for (let i = 0; i < 300 && dev.controller.resets === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(dev.controller.resets, 1);
    const okBefore = transport.commandCount({ qid });
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(transport.commandCount({ qid }) > okBefore, "the worker's queue was re-created and runs again");
    await w.call({ type: "stop" });
    const s = await spin;
    assert.equal(s.started, s.settled);
    for (const c of Object.keys(s.codes)) assert.ok(c === "ETIMEDOUT" || c === "ERESET", c);
  } finally {
    await dev.close();
    w.w.terminate();
  }
});

test("workers: the controller's thread reads CSTS only when a Worker's queue stalls (no timer while Workers do IO or idle)", async () => {
  const { dev, transport } = await sim();
  const w = new TestWorker();
  let csts = 0;
  const read = transport.readReg32.bind(transport);
  transport.readReg32 = (offset: number) => {
    if (offset === Reg.CSTS) csts++;
    return read(offset);
  };
  try {
    await w.open(await dev.createQueue());
    const t0 = performance.now();
    const r = await w.call<RunResult>({ type: "run", nsid: 1, lba: 0, blocks: 512, rounds: 20, chunk: 8, tag: 0x5a });
    const busyMs = performance.now() - t0;
    assert.equal(r.bad, 0);
    const busy = csts;
    await new Promise((res) => setTimeout(res, 600));
    const idle = csts - busy;
    // A 100 ms timer on this thread read CSTS ~10 times a second for as long as the Worker held its queue.
    assert.ok(busy <= 1 + busyMs / 1000, `${busy} CSTS reads in ${busyMs.toFixed(0)} ms of Worker IO`);
    assert.equal(idle, 0, `${idle} CSTS reads while the Worker's queue was idle`);
    await w.call({ type: "close" });
  } finally {
    await dev.close();
    w.w.terminate();
  }
});

test("workers: CSTS.CFS during worker IO -> typed failures there, reset, IO resumes on every queue", async () => {
  const { dev, transport } = await sim();
  const ws = [new TestWorker(), new TestWorker()];
  try {
    const qids = await Promise.all(ws.map(async (w) => w.open(await dev.createQueue())));
    const spins = ws.map((w) => w.call<SpinResult>({ type: "spin", nsid: 1, lba: 100, inflight: 8 }));
    await Promise.all(ws.map((w) => w.spinning));
    await new Promise((r) => setTimeout(r, 50));
    await transport.faults.fatal();
    for (let i = 0; i < 300 && dev.controller.resets === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(dev.controller.resets, 1, "noticed by the controller's thread while only workers did IO");
    const counts = qids.map((q) => transport.commandCount({ qid: q }));
    await new Promise((r) => setTimeout(r, 200));
    qids.forEach((q, i) => assert.ok(transport.commandCount({ qid: q }) > counts[i], `queue ${q} runs again`));
    await Promise.all(ws.map((w) => w.call({ type: "stop" })));
    for (const s of await Promise.all(spins)) {
      assert.equal(s.started, s.settled);
      assert.ok(s.ok > 0);
      for (const c of Object.keys(s.codes)) assert.equal(c, "ERESET");
    }
    await dev.ns(1).read(0, new Uint8Array(BS));
  } finally {
    await dev.close();
    for (const w of ws) w.w.terminate();
  }
});

test("workers: surprise removal fails the worker's IO fast with DeviceGoneError", async () => {
  const { dev, transport } = await sim(4, { ioTimeoutMs: 30_000 });
  const w = new TestWorker();
  try {
    await w.open(await dev.createQueue());
    const spin = w.call<SpinResult>({ type: "spin", nsid: 1, lba: 0, inflight: 4 });
    await w.spinning;
    const t0 = performance.now();
    transport.faults.surpriseRemoval();
    const s = await spin;
    assert.ok(performance.now() - t0 < 3000, "not after a 30 s timeout");
    assert.ok(s.codes.EGONE > 0, JSON.stringify(s));
    assert.equal(s.started, s.settled);
    assert.ok(s.detached, "the worker let go of its DMA views");
  } finally {
    await dev.close();
    w.w.terminate();
  }
});

test("workers: close right after a worker's timeout report: the Abort's held-check neither outlives close nor reaches the released worker", async () => {
  const { dev, transport } = await sim(4, { ioTimeoutMs: 100 });
  const w = new TestWorker();
  // A check sent to the worker after its queue was released reached freed rings there (an uncaught error).
  const errors: string[] = [];
  w.w.addEventListener("error", (e: ErrorEvent) => {
    errors.push(e.message);
    e.preventDefault();
  });
  try {
    const qid = await w.open(await dev.createQueue());
    await transport.faults.add({ action: "drop", queue: qid, opcode: IoOpc.READ, count: 1 });
    const spin = w.call<SpinResult>({ type: "spin", nsid: 1, lba: 0, inflight: 4 });
    await w.spinning;
    // The controller sent its Abort: its check whether the worker still holds the command comes next.
    const until = Date.now() + 10_000;
    while (transport.commandCount({ qid: 0, opcode: AdminOpc.ABORT }) === 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 1));
    }
    assert.equal(transport.commandCount({ qid: 0, opcode: AdminOpc.ABORT }), 1);
    await dev.close();
    const s = await spin;
    assert.equal(s.started, s.settled);
    // Time for a stray check to reach the worker (the Abort's held-check waited 50 ms).
    await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(errors, []);
  } finally {
    w.w.terminate();
  }
});

test("workers: close during worker IO -> DeviceClosedError there, every worker view detached before unmapping", async () => {
  const { dev, transport } = await sim();
  const w = new TestWorker();
  try {
    await w.open(await dev.createQueue());
    const spin = w.call<SpinResult>({ type: "spin", nsid: 1, lba: 0, inflight: 8 });
    await w.spinning;
    await new Promise((r) => setTimeout(r, 30));
    await dev.close();
    const s = await spin;
    assert.ok(s.codes.ECLOSED > 0, JSON.stringify(s));
    assert.equal(s.started, s.settled);
    assert.ok(s.detached);
    assert.equal(transport.mappedBytes, 0);
  } finally {
    w.w.terminate();
  }
});

test("workers: startWorkers hands each its queue; terminate() deletes the queue and unmaps its memory", async () => {
  const { dev, transport } = await sim();
  try {
    const mapped = transport.mappedBytes;
    const qws = await dev.startWorkers(queueWorkerUrl, 2, { arenaBytes: 1 << 20, data: { hello: 1 } });
    const tws = qws.map((q) => new TestWorker(q.worker));
    assert.deepEqual(qws.map((q) => q.qid).sort(), [2, 3]);
    assert.ok(transport.mappedBytes > mapped);
    const r = await tws[0].call<RunResult>({ type: "run", nsid: 1, lba: 2000, blocks: 64, rounds: 1, tag: 7, chunk: 8 });
    assert.equal(r.bad, 0);
    const creates = transport.commandCount({ qid: 0, opcode: AdminOpc.DELETE_IO_SQ });
    await Promise.all(qws.map((q) => q.terminate()));
    assert.equal(transport.commandCount({ qid: 0, opcode: AdminOpc.DELETE_IO_SQ }) - creates, 2, "both queues deleted");
    assert.equal(transport.mappedBytes, mapped, "their memory unmapped");
    // The ids are free again.
    const h = await dev.createQueue();
    assert.equal(h.qid, 2);
    h.port.close(); // the handle's end of the control port is the caller's to close (never posted here)
  } finally {
    await dev.close();
  }
});

test("workers: a released queue leaves the device's list at once (terminate, or its Worker closing it), not at close", async () => {
  const { dev } = await sim();
  try {
    const qws = await dev.startWorkers(queueWorkerUrl, 2, { arenaBytes: 1 << 20 });
    assert.equal(dev.workerQueues, 2);
    await qws[0].terminate();
    assert.equal(dev.workerQueues, 1, "terminate() released it");
    // The Worker closes its queue itself: its close() returns once the controller's side answered.
    const tw = new TestWorker(qws[1].worker);
    assert.deepEqual(await tw.call<{ closed: boolean }>({ type: "close" }), { closed: true });
    assert.equal(dev.workerQueues, 0, "its Worker released it");
    // Its qid is free again, and the new queue is listed.
    const h = await dev.createQueue();
    assert.equal(dev.workerQueues, 1);
    h.port.close();
    await qws[1].terminate();
  } finally {
    await dev.close();
  }
  assert.equal(dev.workerQueues, 0);
});

test("workers: a started Worker that dies of an uncaught error releases its queue", async () => {
  const { dev, transport } = await sim();
  try {
    const mapped = transport.mappedBytes;
    const [qw] = await dev.startWorkers(queueWorkerUrl, 1, { arenaBytes: 1 << 20 });
    const tw = new TestWorker(qw.worker);
    assert.ok(transport.mappedBytes > mapped);
    qw.worker.addEventListener("error", (e) => (e as ErrorEvent).preventDefault?.());
    tw.w.postMessage({ type: "crash" });
    for (let i = 0; i < 300 && transport.mappedBytes > mapped; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(transport.mappedBytes, mapped, "queue deleted and its memory unmapped");
    const h = await dev.createQueue();
    assert.equal(h.qid, 2, "its queue id is free again");
    h.port.close(); // the handle's end of the control port is the caller's to close (never posted here)
  } finally {
    await dev.close();
  }
});

/** Take back every free page of the sim's memory, marked 0xab; count the pages written after `ms`. */
async function writtenAfter(transport: SimTransport, ms: number): Promise<number> {
  const bufs = [];
  try {
    for (;;) bufs.push(transport.allocDma(4096));
  } catch { /* all taken */ }
  for (const b of bufs) b.bytes.fill(0xab);
  await new Promise((r) => setTimeout(r, ms));
  let dirty = 0;
  for (const b of bufs) if (b.bytes.some((x) => x !== 0xab)) dirty++;
  for (const b of bufs) transport.freeDma(b);
  return dirty;
}

test("workers: terminate() of a Worker in a synchronous loop over its queue's memory frees that memory only once the Worker let go", async () => {
  // A Deno Worker inside a synchronous loop runs on after worker.terminate(); memory released under
  // it is written (on VFIO: unmapped, and the process dies of SIGSEGV).
  const { dev, transport } = await sim();
  try {
    const mapped = transport.mappedBytes;
    for (let round = 0; round < 3; round++) {
      const [qw] = await dev.startWorkers(queueWorkerUrl, 1, { arenaBytes: 64 << 10 });
      const tw = new TestWorker(qw.worker);
      const busy = new Promise<void>((r) => qw.worker.addEventListener("message", (e) => (e as MessageEvent).data?.type === "busy" && r()));
      void tw.call({ type: "busy", ms: 600 }).catch(() => {});
      await busy;
      await qw.terminate();
      assert.equal(transport.mappedBytes, mapped, `round ${round}: its memory unmapped`);
      assert.equal(await writtenAfter(transport, 900), 0, `round ${round}: nothing written into released memory`);
    }
  } finally {
    await dev.close();
  }
});

test("workers: terminate() of a Worker busy with IO stops its queue first; its IO fails with DeviceClosedError", async () => {
  const { dev, transport } = await sim();
  try {
    const mapped = transport.mappedBytes;
    const [qw] = await dev.startWorkers(queueWorkerUrl, 1, { arenaBytes: 64 << 10 });
    const tw = new TestWorker(qw.worker);
    const spin = tw.call<SpinResult>({ type: "spin", nsid: 1, lba: 0, inflight: 8 });
    await tw.spinning;
    await new Promise((r) => setTimeout(r, 100));
    // The Worker answers "stopped" (kill word at its next IO or the message), so it is still
    // running when terminate() returns to us only if it was asked; watch its last word.
    let last: SpinResult | null = null;
    void spin.then((r) => (last = r), () => {});
    await qw.terminate();
    assert.equal(transport.mappedBytes, mapped, "queue deleted and its memory unmapped");
    assert.equal(await writtenAfter(transport, 300), 0, "nothing written into released memory");
    if (last !== null) assert.ok((last as SpinResult).codes.ECLOSED > 0, "its IO failed closed");
  } finally {
    await dev.close();
  }
});

test("workers: a Worker that does not let go within graceMs is terminated, its queue deleted, its memory kept", async () => {
  const { dev, transport } = await sim();
  try {
    const mapped = transport.mappedBytes;
    const [qw] = await dev.startWorkers(queueWorkerUrl, 1, { arenaBytes: 64 << 10 });
    const tw = new TestWorker(qw.worker);
    const busy = new Promise<void>((r) => qw.worker.addEventListener("message", (e) => (e as MessageEvent).data?.type === "busy" && r()));
    void tw.call({ type: "busy", ms: 1500 }).catch(() => {});
    await busy;
    const deletes = transport.commandCount({ qid: 0, opcode: AdminOpc.DELETE_IO_SQ });
    await qw.terminate({ graceMs: 100 });
    assert.equal(transport.commandCount({ qid: 0, opcode: AdminOpc.DELETE_IO_SQ }) - deletes, 1, "queue deleted");
    assert.ok(transport.mappedBytes > mapped, "its memory stays mapped (the Worker may still run on it)");
    assert.equal(await writtenAfter(transport, 300), 0, "no memory it could touch was handed out again");
    const h = await dev.createQueue();
    assert.equal(h.qid, 2, "its queue id is free again");
    h.port.close();
  } finally {
    await dev.close();
  }
});
