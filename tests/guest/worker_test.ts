/**
 * Guest tier: queues owned by Workers on QEMU's NVMe through VFIO, and two
 * controllers driven at once from one process (one Worker each).
 */
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "../harness.ts";
import { NVMeDev } from "../../lib/dev.ts";
import { inGuest, PCI, procMsix, runtime } from "./util.ts";

const skip = { ignore: !inGuest };
const PCIS = (process.env.TSNVME_PCIS ?? "").split(" ").filter(Boolean);
const entry = new URL(runtime === "bun" ? "../unit/workers/queue_worker.ts" : "../unit/workers/entry.js", import.meta.url);

type RunResult = { ios: number; bad: number; stats: { submitted: number; completed: number } };

/** Request/response over a test Worker's messages. */
function rpc(w: Worker) {
  let id = 1;
  const pending = new Map<number, (m: { result?: unknown; error?: string }) => void>();
  const loaded = new Promise<void>((resolve) => {
    w.addEventListener("message", (e: MessageEvent) => {
      const m = e.data as { type: string; id: number; result?: unknown; error?: string };
      if (m.type === "loaded") resolve();
      if (m.type === "result") {
        pending.get(m.id)?.(m);
        pending.delete(m.id);
      }
    });
  });
  return {
    loaded,
    call<T>(msg: Record<string, unknown>, transfer: Transferable[] = []): Promise<T> {
      const i = id++;
      return new Promise<T>((res, rej) => {
        pending.set(i, (m) => m.error ? rej(new Error(m.error)) : res(m.result as T));
        w.postMessage({ ...msg, id: i }, transfer);
      });
    },
  };
}

test("two Workers, each owning an IO queue on QEMU's NVMe: concurrent IO, data cross-checked from the main thread", async () => {
  const dev = await NVMeDev.open(PCI);
  const ws = [0, 1].map(() => new Worker(entry, { type: "module" }));
  try {
    const rs = ws.map(rpc);
    const qids: number[] = [];
    for (const r of rs) {
      await r.loaded;
      const h = await dev.createQueue({ depth: 128 });
      qids.push((await r.call<{ qid: number }>({ type: "open", queue: h }, h.transfer)).qid);
    }
    assert.equal(new Set([1, ...qids]).size, 3, "each worker has its own queue id");
    const results = await Promise.all(rs.map((r, i) =>
      r.call<RunResult>({ type: "run", nsid: 1, lba: 20_000 + i * 4096, blocks: 1024, rounds: 2, tag: 0xb0 + i, chunk: 16 })
    ));
    for (const r of results) {
      assert.equal(r.bad, 0, "every block read back as written, in the worker");
      assert.equal(r.stats.completed, r.stats.submitted);
    }
    // The main thread reads what each worker wrote last (round 1), on its own queue.
    const buf = dev.allocBuffer(1024 * 512);
    for (let i = 0; i < 2; i++) {
      await dev.ns(1).read(20_000 + i * 4096, buf);
      const v = new Uint32Array(buf.buffer, buf.byteOffset, buf.byteLength / 4);
      for (let blk = 16; blk < 1024; blk++) {
        // Blocks past the first chunk still hold round 1's data (the DMA-buffer pass rewrote only the first 16).
        const o = (blk * 512) / 4;
        assert.equal(v[o], 20_000 + i * 4096 + blk);
        assert.equal(v[o + 1], 0xb0 + i);
        assert.equal(v[o + 2], 1);
      }
    }
    dev.freeBuffer(buf);
    await Promise.all(rs.map((r) => r.call({ type: "close" })));
  } finally {
    await dev.close();
    for (const w of ws) w.terminate();
  }
}, skip);

test("two controllers at once: one process, one Worker per controller, IO on both", async () => {
  assert.ok(PCIS.length >= 2, `the guest has two controllers (TSNVME_PCIS=${PCIS.join(" ")})`);
  const devs = await Promise.all(PCIS.slice(0, 2).map((a) => NVMeDev.open(a)));
  const ws = devs.map(() => new Worker(entry, { type: "module" }));
  try {
    assert.notEqual(devs[0].info.serial, devs[1].info.serial);
    const rs = ws.map(rpc);
    for (const [i, r] of rs.entries()) {
      await r.loaded;
      const h = await devs[i].createQueue();
      await r.call({ type: "open", queue: h }, h.transfer);
    }
    // Each worker drives its controller while the main thread drives both through their own queues.
    const main = Promise.all(devs.map(async (d, i) => {
      const b = new Uint8Array(4096).fill(0x40 + i);
      for (let k = 0; k < 16; k++) await d.ns(1).write(8000 + k * 8, b);
      const r = new Uint8Array(4096);
      await d.ns(1).read(8000, r);
      assert.deepEqual(r, b);
    }));
    const results = await Promise.all(rs.map((r, i) =>
      r.call<RunResult>({ type: "run", nsid: 1, lba: 100, blocks: 512, rounds: 2, tag: 0xc0 + i, chunk: 8 })
    ));
    await main;
    for (const r of results) assert.equal(r.bad, 0);
    // Same LBAs, different controllers: each holds its own worker's tag.
    for (const [i, d] of devs.entries()) {
      const b = new Uint8Array(512);
      await d.ns(1).read(200, b);
      assert.equal(new Uint32Array(b.buffer)[1], 0xc0 + i);
    }
    await Promise.all(rs.map((r) => r.call({ type: "close" })));
  } finally {
    await Promise.all(devs.map((d) => d.close()));
    for (const w of ws) w.terminate();
  }
}, skip);


test("NVMeDev.open uses MSI-X by default (adaptive); interrupt mode sleeps on it: the queue's count equals /proc/interrupts", async () => {
  {
    await using dflt = await NVMeDev.open(PCI);
    assert.match(dflt.info.interrupts, /^msix, \d+ vectors$/);
    assert.equal(dflt.info.waitMode, "adaptive");
    await dflt.ns(1).read(0, new Uint8Array(4096));
  }
  await using dev = await NVMeDev.open(PCI, { interrupts: "interrupt" });
  const q = dev.controller.io[0];
  const v = dev.controller.ioVector(q.qid);
  const before = procMsix(PCI).get(v) ?? 0;
  const irq0 = q.stats.interrupts;
  const buf = dev.allocBuffer(4096);
  for (let i = 0; i < 200; i++) await dev.ns(1).read(i * 8, buf);
  // Let the interrupts still in delivery land in both counts: the helper thread adds an eventfd's
  // count when it is scheduled and the queue reads it when it next arms, so on a loaded host the
  // two agree only after a while (seen: 193 vs 200 after a 50 ms wait). Each read adds one to both.
  let taken = 0, kernel = 0;
  for (let i = 0; i < 40; i++) {
    await new Promise((r) => setTimeout(r, 50));
    await dev.ns(1).read(0, buf);
    taken = q.stats.interrupts - irq0;
    kernel = (procMsix(PCI).get(v) ?? 0) - before;
    if (Math.abs(kernel - taken) <= 1) break;
  }
  // Some completions land before the pump sleeps (caught by the re-check after arming); how many depends
  // on how busy the host is (a loaded host: 4 sleeps in 200 reads once), so only "it slept" is asserted.
  assert.ok(q.stats.sleeps > 0, `the pump slept on the interrupt (${q.stats.sleeps} sleeps)`);
  assert.ok(taken >= 150, `interrupts were taken: ${taken}`);
  assert.ok(Math.abs(kernel - taken) <= 1, `queue counted ${taken}, /proc/interrupts vfio-msix[${v}] ${kernel}`);
}, skip);

test("a Worker's queue sleeps on its own MSI-X vector", async () => {
  await using dev = await NVMeDev.open(PCI, { interrupts: "interrupt" });
  const w = new Worker(entry, { type: "module" });
  try {
    const r = rpc(w);
    await r.loaded;
    const h = await dev.createQueue();
    assert.ok(h.irq !== null && h.waitMode === "interrupt");
    const v = dev.controller.ioVector(h.qid);
    const before = procMsix(PCI).get(v) ?? 0;
    await r.call({ type: "open", queue: h }, h.transfer);
    const res = await r.call<RunResult & { stats: { interrupts: number; sleeps: number } }>(
      { type: "run", nsid: 1, lba: 30_000, blocks: 64, rounds: 2, tag: 0xd0, chunk: 1 },
    );
    assert.equal(res.bad, 0);
    assert.ok(res.stats.sleeps > 0 && res.stats.interrupts > 0, JSON.stringify(res.stats));
    assert.ok((procMsix(PCI).get(v) ?? 0) - before >= res.stats.interrupts, "the kernel saw the worker's vector fire");
    await r.call({ type: "close" });
  } finally {
    w.terminate();
  }
}, skip);
