/**
 * Horizontal scaling: random reads from 1..N Workers, each owning an IO queue
 * of the same controller (or one Worker per controller with --multi), through
 * the Promise API or the callback path. Prints IOPS, the ratio to one Worker,
 * and CPU µs per IO (each Worker's own thread time). Asserts nothing.
 *
 *   deno run -A lib/cli/bench/workers.ts [TARGET...] [--workers 1,2] [--qd 32] [--ms 3000] [--warm-ms 2000]
 *        [--api promise|callback] [--bs 4096] [--multi] [--json]
 * TARGET: a PCI address bound to vfio-pci, or a sim: target (default: the software controller).
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { detectRuntime } from "../../ffi/mod.ts";
import { NVMeDev } from "../../dev.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    workers: { type: "string", default: "1,2" },
    qd: { type: "string", default: "32" },
    ms: { type: "string", default: "3000" },
    "warm-ms": { type: "string", default: "2000" },
    api: { type: "string", default: "promise" },
    bs: { type: "string", default: "4096" },
    multi: { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const rt = detectRuntime();
const targets = positionals.length ? positionals : ["sim:ns=256M:512;queues=8;mem=128M"];
const counts = values.workers!.split(",").map(Number);
const qd = Number(values.qd), ms = Number(values.ms), warmMs = Number(values["warm-ms"]), bs = Number(values.bs);
const api = values.api as "promise" | "callback";
const entry = new URL("./worker.ts", import.meta.url);

const devs = await Promise.all(targets.map((t) => NVMeDev.open(t, { maxIoQueues: Math.max(...counts) + 1 })));

interface Row {
  runtime: string;
  target: string;
  workers: number;
  api: string;
  qd: number;
  iops: number;
  scaling: number;
  cpuUsPerIo: number;
}
const rows: Row[] = [];
let base = 0;
for (const n of counts) {
  // One Worker per queue; with --multi, Worker i drives controller i % targets.
  const ws = [];
  for (let i = 0; i < n; i++) {
    const dev = values.multi ? devs[i % devs.length] : devs[0];
    const [w] = await dev.startWorkers(entry, 1);
    ws.push(w);
  }
  const results = await Promise.all(ws.map((w) =>
    new Promise<{ ios: number; ms: number; cpuMs: number }>((resolve) => {
      const on = (e: MessageEvent) => {
        if ((e.data as { type: string }).type !== "result") return;
        w.worker.removeEventListener("message", on);
        resolve(e.data);
      };
      w.worker.addEventListener("message", on);
      w.worker.postMessage({ type: "run", nsid: 1, qd, ms, warmMs, bs, api });
    })
  ));
  const iops = results.reduce((a, r) => a + r.ios / (r.ms / 1000), 0);
  const ios = results.reduce((a, r) => a + r.ios, 0);
  const cpu = results.reduce((a, r) => a + r.cpuMs, 0);
  if (n === counts[0]) base = iops / n;
  rows.push({
    runtime: rt,
    target: values.multi ? targets.join("+") : targets[0],
    workers: n,
    api,
    qd,
    iops: Math.round(iops),
    scaling: +(iops / base).toFixed(2),
    cpuUsPerIo: +(cpu * 1000 / ios).toFixed(2),
  });
  for (const w of ws) w.worker.postMessage({ type: "close" });
  await new Promise((r) => setTimeout(r, 50));
  await Promise.all(ws.map((w) => w.terminate()));
}
await Promise.all(devs.map((d) => d.close()));

if (values.json) for (const r of rows) console.log(JSON.stringify(r));
else {
  console.log(`${rt}: 4 KiB random reads from Workers, QD ${qd} each, ${api} API, ${ms} ms after ${warmMs} ms warm-up`);
  console.log("| workers | target | IOPS | vs 1 worker | CPU µs/IO (worker threads) |");
  console.log("|---:|---|---:|---:|---:|");
  for (const r of rows) console.log(`| ${r.workers} | ${r.target} | ${r.iops} | ${r.scaling}x | ${r.cpuUsPerIo} |`);
}
