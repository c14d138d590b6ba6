/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * Test Worker: owns one IO queue (opened from a handle, or received from
 * NVMeDev.startWorkers) and runs IO on it when told to. Every block it writes
 * carries its LBA and this worker's tag, so misdirected data is caught.
 */
import { openQueue, receiveQueue, type WorkerQueue } from "../../../lib/worker/mod.ts";

interface Scope {
  onmessage: ((e: MessageEvent) => void) | null;
  postMessage(m: unknown): void;
}
const scope = globalThis as unknown as Scope;
let q: WorkerQueue | null = null;
let stop = false;

function fill(b: Uint8Array, lba: number, bs: number, tag: number, round: number): void {
  const v = new Uint32Array(b.buffer, b.byteOffset, b.byteLength >>> 2);
  for (let i = 0; i < v.length; i++) {
    const blk = lba + Math.floor((i * 4) / bs);
    v[i] = i % 4 === 0 ? blk : i % 4 === 1 ? tag : i % 4 === 2 ? round : (blk ^ tag ^ round) >>> 0;
  }
}

function check(b: Uint8Array, lba: number, bs: number, tag: number, round: number): boolean {
  const want = new Uint8Array(b.length);
  fill(want, lba, bs, tag, round);
  for (let i = 0; i < b.length; i++) if (b[i] !== want[i]) return false;
  return true;
}

const codeOf = (e: unknown) => (e as { code?: string })?.code ?? `untyped:${String(e)}`;

async function run(m: { nsid: number; lba: number; blocks: number; rounds: number; tag: number; chunk: number }) {
  const ns = q!.ns(m.nsid);
  const bs = ns.blockSize;
  const w = q!.allocBuffer(m.chunk * bs), r = q!.allocBuffer(m.chunk * bs);
  let ios = 0, bad = 0;
  for (let round = 0; round < m.rounds; round++) {
    const ps: Promise<void>[] = [];
    // Several commands in flight: chunks of this range, written then read back.
    for (let off = 0; off < m.blocks; off += m.chunk) {
      const n = Math.min(m.chunk, m.blocks - off);
      const wb = new Uint8Array(n * bs);
      fill(wb, m.lba + off, bs, m.tag, round);
      ps.push(ns.write(m.lba + off, wb));
    }
    await Promise.all(ps);
    for (let off = 0; off < m.blocks; off += m.chunk) {
      const n = Math.min(m.chunk, m.blocks - off);
      const view = r.subarray(0, n * bs);
      await ns.read(m.lba + off, view);
      if (!check(view, m.lba + off, bs, m.tag, round)) bad++;
      ios += 2;
    }
  }
  // DMA buffers too (zero-copy path).
  fill(w, m.lba, bs, m.tag, 99);
  await ns.write(m.lba, w);
  await ns.read(m.lba, r);
  if (!check(r, m.lba, bs, m.tag, 99)) bad++;
  q!.freeBuffer(w);
  q!.freeBuffer(r);
  return { ios, bad, stats: { ...q!.queue.stats } };
}

async function spin(m: { nsid: number; lba: number; inflight: number }) {
  const ns = q!.ns(m.nsid);
  const bs = ns.blockSize;
  const codes: Record<string, number> = {};
  let ok = 0, settled = 0, started = 0;
  const bufs = Array.from({ length: m.inflight }, () => q!.allocBuffer(bs));
  const one = async (i: number) => {
    while (!stop) {
      started++;
      try {
        await ns.read(m.lba + i, bufs[i]);
        ok++;
      } catch (e) {
        codes[codeOf(e)] = (codes[codeOf(e)] ?? 0) + 1;
        if (q!.closed) break;
        await new Promise((r) => setTimeout(r, 2));
      } finally {
        settled++;
      }
    }
  };
  scope.postMessage({ type: "spinning" });
  await Promise.all(bufs.map((_, i) => one(i)));
  const detached = bufs.every((b) => b.length === 0);
  return { ok, codes, started, settled, detached };
}

async function handle(m: Record<string, unknown>): Promise<unknown> {
  switch (m.type) {
    case "open":
      q = await openQueue(m.queue as never);
      return { qid: q.qid };
    case "run":
      return await run(m as never);
    case "spin":
      stop = false;
      return await spin(m as never);
    case "busy": {
      // A synchronous loop over this queue's DMA memory (as user code may run): no event-loop turn
      // for `ms`, so nothing posted to this thread (nor a Deno terminate()) is seen meanwhile.
      const b = q!.allocBuffer(4096), v = new Uint32Array(b.buffer, b.byteOffset, 1024);
      scope.postMessage({ type: "busy" });
      const end = Date.now() + (m.ms as number);
      for (let i = 0; Date.now() < end; i++) v[i & 1023] = i;
      return {};
    }
    case "stop":
      stop = true;
      return {};
    case "close":
      await q!.close();
      return { closed: q!.closed };
  }
  throw new Error(`unknown ${String(m.type)}`);
}

scope.onmessage = (e: MessageEvent) => {
  const m = e.data as Record<string, unknown> & { id: number };
  if (m?.type === "tsnvme-queue") return; // for receiveQueue's own listener
  if (m?.type === "crash") setTimeout(() => { throw new Error("worker crashed on purpose"); }, 0);
  handle(m).then(
    (result) => scope.postMessage({ type: "result", id: m.id, result }),
    (err) => scope.postMessage({ type: "result", id: m.id, error: codeOf(err) + ": " + String((err as Error)?.message ?? err) }),
  );
};
scope.postMessage({ type: "loaded" });
// Started by NVMeDev.startWorkers: the queue arrives by itself (for "open" workers this never resolves).
receiveQueue().then((r) => {
  q = r.queue;
  scope.postMessage({ type: "received", qid: q.qid, data: r.data });
});
