/**
 * Horizontal scaling: 1, 2 and N Workers (N = the machine's cores), each
 * owning an IO queue, reading at QD each at the same time. Targets: the
 * instant device (`instant`: each Worker builds its own queue pair and device
 * in its own thread, so nothing but the driver runs), the software controller
 * (a `sim:` target, the default) or PCI addresses bound to vfio-pci (one
 * Worker per controller with --multi). Prints aggregate IOPS, the ratio to one
 * Worker, CPU µs per IO of the Worker threads and of the whole process, and
 * an SVG chart with --svg. Asserts nothing.
 *
 *   deno run -A lib/cli/bench/workers.ts [instant | sim:... | PCI...] [--workers 1,2,N] [--qd 32] [--ms 3000]
 *        [--warm-ms 2000] [--api promise|callback] [--bs 4096] [--multi] [--json] [--svg FILE]
 * @module
 */
import { availableParallelism } from "node:os";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { detectRuntime } from "../../ffi/mod.ts";
import { NVMeDev } from "../../dev.ts";
import { processCpuMs } from "./cpu.ts";
import { scalingSvg } from "./svg.ts";

/** One line of the scaling table. */
export interface ScalingRow {
  /** deno or bun. */
  runtime: string;
  /** instant, a sim: target or PCI address(es). */
  target: string;
  /** Workers running at once, one queue each. */
  workers: number;
  /** promise or callback. */
  api: string;
  /** Queue depth per Worker. */
  qd: number;
  /** Aggregate IOs per second. */
  iops: number;
  /** Aggregate IOPS over one Worker's (the first row's IOPS per Worker). */
  scaling: number;
  /** CPU µs per IO of the Worker threads (their own schedstat). */
  cpuUsPerIo: number;
  /** CPU µs per IO of the whole process (every thread: Workers, device threads, main), over warm-up and window. */
  processCpuUsPerIo: number;
}

/** What {@link runScaling} runs. */
export interface ScalingOptions {
  /** "instant", a sim: target or PCI addresses (several with `multi`). */
  targets: string[];
  /** Worker counts, run one after the other. */
  counts: number[];
  /** Queue depth per Worker (default 32). */
  qd?: number;
  /** Measured window per Worker, ms (default 3000). */
  ms?: number;
  /** Warm-up before the window, ms (default 2000); covers the Workers' start-up skew. */
  warmMs?: number;
  /** Promise API or the callback path (default promise; instant: promise only). */
  api?: "promise" | "callback";
  /** Bytes per IO (default 4096). */
  bs?: number;
  /** Worker i drives controller i % targets. */
  multi?: boolean;
}

interface WorkerResult {
  ios: number;
  ms: number;
  cpuMs: number;
}

function resultOf(w: Worker, run: Record<string, unknown>): Promise<WorkerResult> {
  return new Promise((resolve) => {
    const on = (e: MessageEvent) => {
      if ((e.data as { type: string }).type !== "result") return;
      w.removeEventListener("message", on);
      resolve(e.data);
    };
    w.addEventListener("message", on);
    w.postMessage({ type: "run", ...run });
  });
}

async function instantWorkers(n: number): Promise<Worker[]> {
  // Deno type-checks a TypeScript worker at each spawn under `deno test`; the JS entry is not checked (as lib/sim does).
  const url = new URL(detectRuntime() === "bun" ? "./instant_worker.ts" : "./instant_worker_entry.js", import.meta.url);
  return await Promise.all(Array.from({ length: n }, () =>
    new Promise<Worker>((resolve) => {
      const w = new Worker(url, { type: "module" });
      const on = (e: MessageEvent) => {
        if ((e.data as { type: string }).type !== "bench-ready") return;
        w.removeEventListener("message", on);
        resolve(w);
      };
      w.addEventListener("message", on);
    })));
}

/** Run the scaling table: for each count, that many Workers at once; one row per count. */
export async function runScaling(o: ScalingOptions): Promise<ScalingRow[]> {
  const rt = detectRuntime();
  const qd = o.qd ?? 32, ms = o.ms ?? 3000, warmMs = o.warmMs ?? 2000, bs = o.bs ?? 4096, api = o.api ?? "promise";
  const instant = o.targets[0] === "instant";
  const devs = instant ? [] : await Promise.all(o.targets.map((t) => NVMeDev.open(t, { maxIoQueues: Math.max(...o.counts) + 1 })));
  const rows: ScalingRow[] = [];
  let base = 0;
  try {
    for (const n of o.counts) {
      let results: WorkerResult[];
      const p0 = processCpuMs();
      if (instant) {
        const ws = await instantWorkers(n);
        results = await Promise.all(ws.map((w) => resultOf(w, { qd, ms, warmMs })));
        for (const w of ws) w.terminate();
      } else {
        const entry = new URL("./worker.ts", import.meta.url);
        const ws = [];
        for (let i = 0; i < n; i++) {
          const dev = o.multi ? devs[i % devs.length] : devs[0];
          const [w] = await dev.startWorkers(entry, 1);
          ws.push(w);
        }
        results = await Promise.all(ws.map((w) => resultOf(w.worker, { nsid: 1, qd, ms, warmMs, bs, api })));
        for (const w of ws) w.worker.postMessage({ type: "close" });
        await new Promise((r) => setTimeout(r, 50));
        await Promise.all(ws.map((w) => w.terminate()));
      }
      const pCpu = processCpuMs() - p0;
      const iops = results.reduce((a, r) => a + r.ios / (r.ms / 1000), 0);
      const ios = results.reduce((a, r) => a + r.ios, 0);
      const cpu = results.reduce((a, r) => a + r.cpuMs, 0);
      if (rows.length === 0) base = iops / n;
      rows.push({
        runtime: rt,
        target: instant ? "instant" : o.multi ? o.targets.join("+") : o.targets[0],
        workers: n,
        api: instant ? "promise" : api,
        qd,
        iops: Math.round(iops),
        scaling: +(iops / base).toFixed(2),
        cpuUsPerIo: +(cpu * 1000 / ios).toFixed(2),
        // Process CPU spans warm-up and start-up too, when IOs are not counted: scale it to the window.
        processCpuUsPerIo: +(pCpu * 1000 * (ms / (warmMs + ms)) / ios).toFixed(2),
      });
    }
  } finally {
    await Promise.all(devs.map((d) => d.close()));
  }
  return rows;
}

/** The scaling rows as a Markdown table. */
export function scalingTable(rows: ScalingRow[]): string {
  const out = [
    "| runtime | target | workers | IOPS | vs 1 worker | CPU µs/IO (worker threads) | CPU µs/IO (process) |",
    "|---|---|---:|---:|---:|---:|---:|",
  ];
  for (const r of rows) {
    out.push(`| ${r.runtime} | ${r.target} | ${r.workers} | ${r.iops} | ${r.scaling}x | ${r.cpuUsPerIo} | ${r.processCpuUsPerIo} |`);
  }
  return out.join("\n");
}

/** Parse a --workers list: numbers, and N for the machine's cores; duplicates dropped. */
export function parseCounts(s: string, cores: number = availableParallelism()): number[] {
  const out: number[] = [];
  for (const p of s.split(",")) {
    const n = p.trim().toUpperCase() === "N" ? cores : Number(p);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`bad worker count ${p}`);
    if (!out.includes(n)) out.push(n);
  }
  return out;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: process.argv.slice(2),
    allowPositionals: true,
    options: {
      workers: { type: "string", default: "1,2,N" },
      qd: { type: "string", default: "32" },
      ms: { type: "string", default: "3000" },
      "warm-ms": { type: "string", default: "2000" },
      api: { type: "string", default: "promise" },
      bs: { type: "string", default: "4096" },
      multi: { type: "boolean", default: false },
      json: { type: "boolean", default: false },
      svg: { type: "string" },
    },
  });
  const targets = positionals.length ? positionals : ["sim:ns=256M:512;queues=8;mem=128M"];
  const o: ScalingOptions = {
    targets,
    counts: parseCounts(values.workers!),
    qd: Number(values.qd),
    ms: Number(values.ms),
    warmMs: Number(values["warm-ms"]),
    api: values.api as "promise" | "callback",
    bs: Number(values.bs),
    multi: values.multi,
  };
  const rows = await runScaling(o);
  if (values.json) { for (const r of rows) console.log(JSON.stringify(r)); }
  else {
    const what = targets[0] === "instant" ? "reads against an instant device per Worker (no data moves)" : `${o.bs} B random reads`;
    console.log(`${rows[0]?.runtime}: ${what}, QD ${o.qd} each, ${o.api} API, ${o.ms} ms after ${o.warmMs} ms warm-up`);
    console.log(scalingTable(rows));
  }
  if (values.svg) writeFileSync(values.svg, scalingSvg(rows, `tsnvme Worker scaling, ${new Date().toISOString()}`));
  // A device thread or a benchmark Worker may still hold the loop.
  process.exit(0);
}
