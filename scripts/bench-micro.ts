/**
 * No-device microbenchmark: CPU nanoseconds per IO of the driver's own path
 * (command tracker + PCIe ring + pump) against an instant device in the same
 * thread, at batch 1, 8 and 32, through the Promise API (the queue pair's
 * `rw`, and `Namespace.read` on top of it: what an application calls), and
 * the callback path. Prints figures; asserts nothing.
 *
 *   deno run -A scripts/bench-micro.ts [--ms 400] [--runs 5] [--api promise,callback] [--batch 1,32] [--json]
 *   bun scripts/bench-micro.ts
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import type { NvmeError } from "../lib/nvme/errors.ts";
import { QueuePair } from "../lib/nvme/queue.ts";
import { dmaBuffer } from "../lib/nvme/transport.ts";
import { Namespace } from "../lib/io/namespace.ts";
import { CommandTrace } from "../lib/nvme/trace.ts";
import { InstantRing } from "../lib/cli/bench/instant.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    ms: { type: "string", default: "400" },
    runs: { type: "string", default: "5" },
    api: { type: "string", default: "promise,ns.read,callback,promise+trace" },
    batch: { type: "string", default: "1,8,32" },
    json: { type: "boolean" },
  },
});
const MS = Number(values.ms), RUNS = Number(values.runs);
const rt = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";

function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

function makeQp(trace = false): QueuePair {
  const qp = new QueuePair({ qid: 1, defaultTimeoutMs: 30_000, ring: new InstantRing() });
  if (trace) qp.trace = new CommandTrace({ capacity: 256 });
  return qp;
}

/** B coroutines, each awaiting its own IO in a loop. */
async function promiseRun(batch: number, trace = false): Promise<{ ns: number; ios: number }> {
  const qp = makeQp(trace);
  let ios = 0, stop = false;
  const worker = async () => {
    while (!stop) {
      await qp.rw(2, 1, ios & 1023, 7, 0x30_0000, 4096);
      ios++;
    }
  };
  const t0 = cpuNs();
  const ws = Array.from({ length: batch }, worker);
  await new Promise((r) => setTimeout(r, MS));
  stop = true;
  await Promise.all(ws);
  return { ns: (cpuNs() - t0) / ios, ios };
}

/** As {@link promiseRun}, through Namespace.read on a DMA buffer (validation, then the queue's own Promise). */
async function namespaceRun(batch: number): Promise<{ ns: number; ios: number }> {
  const qp = makeQp();
  const nsp = new Namespace({
    closedError: null,
    pickQueue: () => qp,
    maxTransferBytes: 1 << 20,
    dmaOf: (v) => owners.get(v.buffer) ?? null, // a WeakMap, as the transports keep theirs
    takeBounce: () => {
      throw new Error("no bounce in this benchmark");
    },
    giveBounce: () => {},
  }, { nsid: 1, blockSize: 4096, blockCount: 1024n, capacity: 1024n, utilization: 0n, metadataSize: 0, lbaFormat: 0 });
  const buf = dmaBuffer(new Uint8Array(4096 * batch), 0x30_0000, 4096 * batch);
  const owners = new WeakMap<ArrayBufferLike, typeof buf>([[buf.bytes.buffer, buf]]);
  let ios = 0, stop = false;
  const worker = async (_: unknown, i: number) => {
    const view = buf.bytes.subarray(i * 4096, (i + 1) * 4096);
    while (!stop) {
      await nsp.read(ios & 1023, view);
      ios++;
    }
  };
  const t0 = cpuNs();
  const ws = Array.from({ length: batch }, worker);
  await new Promise((r) => setTimeout(r, MS));
  stop = true;
  await Promise.all(ws);
  return { ns: (cpuNs() - t0) / ios, ios };
}

/** B commands kept in flight through the callback path; each completion submits the next. */
function callbackRun(batch: number): Promise<{ ns: number; ios: number }> {
  const qp = makeQp();
  let ios = 0, stop = false, inflight = 0;
  return new Promise((resolve) => {
    const t0 = cpuNs();
    const done = (err: NvmeError | null) => {
      if (err) throw err;
      ios++;
      inflight--;
      if (!stop) submit();
      else if (inflight === 0) resolve({ ns: (cpuNs() - t0) / ios, ios });
    };
    const submit = () => {
      if (qp.rwCallback(2, 1, ios & 1023, 7, 0x30_0000, 4096, 0, 30_000, null, done)) inflight++;
    };
    for (let i = 0; i < batch; i++) submit();
    setTimeout(() => stop = true, MS);
  });
}

const rows: { api: string; batch: number; nsPerIo: number; min: number; max: number; ios: number }[] = [];
const APIS = ["promise", "ns.read", "callback", "promise+trace"] as const;
const apis = values.api.split(",").map((a) => {
  const x = APIS.find((k) => k === a);
  if (x === undefined) throw new Error(`--api: one of ${APIS.join(", ")}, got ${a}`);
  return x;
});
const batches = values.batch.split(",").map(Number);
for (const api of apis) {
  for (const batch of batches) {
    const r: number[] = [];
    let ios = 0;
    for (let i = 0; i < RUNS + 1; i++) {
      const x = api === "callback"
        ? await callbackRun(batch)
        : api === "ns.read"
        ? await namespaceRun(batch)
        : await promiseRun(batch, api === "promise+trace");
      if (i > 0) r.push(x.ns); // the first run warms the JIT up
      ios += x.ios;
    }
    r.sort((a, b) => a - b);
    rows.push({ api, batch, nsPerIo: Math.round(r[r.length >> 1]), min: Math.round(r[0]), max: Math.round(r[r.length - 1]), ios });
  }
}
if (values.json) console.log(JSON.stringify({ runtime: rt, rows }));
else {
  console.log(`${rt}: CPU ns per IO against an instant device (median of ${RUNS} runs of ${MS} ms; min-max)`);
  console.log("api            batch  ns/IO   range");
  for (const x of rows) console.log(`${x.api.padEnd(14)} ${String(x.batch).padStart(5)} ${String(x.nsPerIo).padStart(6)}   ${x.min}-${x.max}`);
}
