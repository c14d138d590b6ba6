/**
 * Host queues in Workers over NVMe/TCP, against the loopback test target:
 * each Worker's queue is its own connection (Connect with the controller's
 * cntlid); data written from two Workers and the main thread is cross-checked
 * on every thread, with digests; a Worker's connection dropped mid-IO fails
 * that IO typed, the controller reconnects every queue (the Worker's with the
 * new cntlid) and the Worker's IO goes on.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { queueWorkerUrl, TestWorker } from "../workers/client.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { NvmfTarget } from "../../../lib/target/mod.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { memNamespaces, until } from "../util/target_util.ts";

const NQN = "nqn.2024-01.io.tsnvme:tcp-workers";
const HOST = { hostnqn: "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555556", hostid: "11111111-2222-4333-8444-555555555556" };
const BS = 512;

interface RunResult {
  ios: number;
  bad: number;
}

for (const digests of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }]) {
  test(`tcp workers: two Workers' queues, own connections, data cross-checked on every thread (digests ${digests.hdgst})`, async () => {
    const t = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: memNamespaces([8 << 20, BS]) }], maxIoQueues: 4, inCapsule: 4096 });
    const dev = await NVMeDev.open(`tcp://127.0.0.1:${t.port}/${NQN}`, { ...HOST, digests, katoMs: 0 });
    const tws: TestWorker[] = [];
    try {
      // startWorkers over TCP: each Worker receives a handle and opens its connection itself.
      const qws = await dev.startWorkers(queueWorkerUrl, 2);
      const [a, b] = qws.map((q) => q.qid);
      assert.ok(a > 1 && b > 1 && a !== b, `worker qids ${a}, ${b}`);
      for (const q of qws) await q.terminate();
      // Workers driven by request: two open handles from createQueue.
      const h1 = await dev.createQueue(), h2 = await dev.createQueue();
      const w1 = new TestWorker(), w2 = new TestWorker();
      tws.push(w1, w2);
      await new Promise((r) => setTimeout(r, 50));
      const open = (tw: TestWorker, h: typeof h1) => {
        const id = 1000 + h.qid;
        return new Promise<{ qid: number }>((res, rej) => {
          tw.w.addEventListener("message", (e: MessageEvent) => {
            const m = e.data as { type: string; id: number; result?: { qid: number }; error?: string };
            if (m.type === "result" && m.id === id) m.error ? rej(new Error(m.error)) : res(m.result!);
          });
          tw.w.postMessage({ type: "open", queue: h, id }, h.transfer);
        });
      };
      assert.deepEqual(await open(w1, h1), { qid: h1.qid });
      assert.deepEqual(await open(w2, h2), { qid: h2.qid });
      const [r1, r2] = await Promise.all([
        w1.call<RunResult>({ type: "run", nsid: 1, lba: 0, blocks: 512, rounds: 2, tag: 0x11, chunk: 64 }),
        w2.call<RunResult>({ type: "run", nsid: 1, lba: 4096, blocks: 512, rounds: 2, tag: 0x22, chunk: 8 }),
      ]);
      assert.equal(r1.bad, 0);
      assert.equal(r2.bad, 0);
      assert.ok(r1.ios > 0 && r2.ios > 0);
      // The main thread reads what the Workers wrote (last round: 99 over the first chunk), through its own queue.
      const ns = dev.ns(1);
      const back = new Uint8Array(64 * BS);
      await ns.read(0, back);
      const v = new Uint32Array(back.buffer);
      assert.equal(v[0], 0);
      assert.equal(v[1], 0x11, "worker 1's tag");
      assert.equal(v[2], 99);
      const back2 = new Uint8Array(8 * BS);
      await ns.read(4096 + 8, back2);
      const v2 = new Uint32Array(back2.buffer);
      assert.equal(v2[0], 4096 + 8);
      assert.equal(v2[1], 0x22, "worker 2's tag");
      assert.equal(v2[2], 1, "last round");
      // Main-thread writes are seen by a Worker.
      const mine = new Uint8Array(8 * BS);
      new Uint32Array(mine.buffer).set([8000, 0x33, 1, (8000 ^ 0x33 ^ 1) >>> 0]);
      await ns.write(8000, mine);
      assert.equal((await w1.call<{ closed: boolean }>({ type: "close" })).closed, true);
      assert.equal((await w2.call<{ closed: boolean }>({ type: "close" })).closed, true);
    } finally {
      for (const tw of tws) tw.w.terminate();
      await dev.close();
      await t.close();
    }
  });
}

test("tcp workers: a Worker's connection dropped mid-IO fails that IO typed; every queue reconnects; the Worker's IO goes on", async () => {
  let drop = 0;
  let workerQid = -1;
  const t = await NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: memNamespaces([8 << 20, BS]) }],
    maxIoQueues: 4,
    onCommand: (qid, s) => (drop > 0 && qid === workerQid && (s[0] & 0xff) === IoOpc.READ && drop-- > 0 ? "drop" : undefined),
  });
  const dev = await NVMeDev.open(`tcp://127.0.0.1:${t.port}/${NQN}`, { ...HOST, katoMs: 0, reconnectDelayMs: 50 });
  const tw = new TestWorker();
  try {
    const h = await dev.createQueue();
    workerQid = h.qid;
    const opened = new Promise<void>((res, rej) => {
      tw.w.addEventListener("message", (e: MessageEvent) => {
        const m = e.data as { type: string; id: number; error?: string };
        if (m.type === "result" && m.id === 999) m.error ? rej(new Error(m.error)) : res();
      });
    });
    await new Promise((r) => setTimeout(r, 50));
    tw.w.postMessage({ type: "open", queue: h, id: 999 }, h.transfer);
    await opened;
    const before = dev.controller.resets;
    drop = 1;
    // Reads in flight on the Worker's queue: the first read of the next ones drops its connection.
    const spun = tw.call<{ ok: number; codes: Record<string, number>; started: number; settled: number }>({ type: "spin", nsid: 1, lba: 0, inflight: 2 });
    await until(() => dev.controller.resets > before, "the controller reconnected", 30_000);
    assert.equal(drop, 0);
    await new Promise((r) => setTimeout(r, 300));
    await tw.call({ type: "stop" });
    const r = await spun;
    assert.ok((r.codes.ECONNLOST ?? 0) + (r.codes.ERESET ?? 0) >= 1, `in-flight reads failed typed: ${JSON.stringify(r.codes)}`);
    assert.ok(Object.keys(r.codes).every((c) => c === "ECONNLOST" || c === "ERESET"), JSON.stringify(r.codes));
    assert.ok(r.ok > 0, "reads completed after the reconnect");
    assert.equal(r.started, r.settled, "no read left pending");
    // After recovery the worker's queue serves IO again.
    const after = await tw.call<RunResult>({ type: "run", nsid: 1, lba: 100, blocks: 64, rounds: 1, tag: 0x44, chunk: 16 });
    assert.equal(after.bad, 0);
    // The main thread's queue too.
    const b = new Uint8Array(BS);
    await dev.ns(1).read(100, b);
    assert.equal(new Uint32Array(b.buffer)[1], 0x44);
    await tw.call({ type: "close" });
  } finally {
    tw.w.terminate();
    await dev.close();
    await t.close();
  }
});
