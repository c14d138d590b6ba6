/**
 * Where a trickle of reads spends its CPU (issue 17): opens a device with an
 * async event request outstanding, warms it with reads, then reads `--rate`
 * times a second for `--seconds` and prints one JSON line: the process's CPU
 * (getrusage and schedstat), per thread group the scheduler's CPU and time
 * slices (a slice ~ a wake-up), and the IO queues' sleeps and interrupts per
 * read, all over the window only. `--timer`: the timer alone at `--rate`, no reads.
 * Runs natively on the software controller (`sim:latency=0.1`) or on a PCI
 * device in the guest (scripts/idle-cpu.ts --breakdown runs it).
 *
 *   deno run -A scripts/trickle-probe.ts [TARGET] [--rate 10] [--seconds 5]
 *     [--interrupts adaptive] [--spin-us 500] [--spin-polls 256] [--warm-ios 2000] [--lib DIR]
 *     [--burst N] [--lead SEC] [--stream N] [--mark]
 *
 * `--lib DIR` loads the driver from another checkout (DIR/lib), to compare
 * two versions in one guest boot. `--burst N`: N reads one after another per
 * tick (what the first read of a wake-up costs against the next ones).
 * `--mark`: print `mark start LABEL` and `mark end LABEL ios=N` on stdout and
 * stderr around the window, to count an engine's trace lines (compiles, GCs)
 * in it (scripts/trickle-flags.ts) or to cut a host profile of QEMU at it
 * (scripts/qemu-threads.py). `--stream N`: after the window, N reads one
 * after another in a window of their own (marked too): a warm read's cost.
 * `--lead SEC`: the reads start SEC seconds before the window, so that what
 * only the first trickled reads of a process pay (a tier-up, a deopt) falls
 * outside it: the steady cost.
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import type { WaitMode } from "../lib/irq/adaptive.ts";
import { threadTimes } from "../lib/cli/bench/cpu.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    rate: { type: "string", default: "10" },
    seconds: { type: "string", default: "5" },
    interrupts: { type: "string", default: "adaptive" },
    "spin-us": { type: "string" },
    "spin-polls": { type: "string" },
    "warm-ios": { type: "string", default: "2000" },
    timer: { type: "boolean", default: false },
    lib: { type: "string" },
    burst: { type: "string", default: "1" },
    mark: { type: "boolean", default: false },
    stream: { type: "string", default: "0" },
    lead: { type: "string", default: "0" },
  },
});
const root = values.lib === undefined ? new URL("../", import.meta.url).href : `file://${values.lib.replace(/\/?$/, "/")}`;
const { NVMeDev } = await import(`${root}lib/dev.ts`) as typeof import("../lib/dev.ts");
const { asyncEvents } = await import(`${root}lib/admin/manage.ts`) as typeof import("../lib/admin/manage.ts");
const target = positionals[0] ?? process.env.TSNVME_PCI ?? "sim:latency=0.1";

const spinUs = values["spin-us"] === undefined ? undefined : Number(values["spin-us"]);
await using dev = await NVMeDev.open(target, { interrupts: values.interrupts as WaitMode, pollSpinUs: spinUs });
if (values["spin-polls"] !== undefined) { for (const q of dev.controller.io) q.spinPolls = Number(values["spin-polls"]); }
const ac = new AbortController();
const events = asyncEvents(dev, { signal: ac.signal });
const next = events.next();
const ns = dev.ns(1);
const buf = dev.allocBuffer(4096);
const span = Math.max(1, Math.floor(ns.blockCount * ns.blockSize / 4096) - 1);
const lba = (i: number) => (i * 7919 % span) * (4096 / ns.blockSize);
const warm = Number(values["warm-ios"]);
for (let i = 0; i < warm; i++) await ns.read(lba(i), buf);
await new Promise((r) => setTimeout(r, warm > 0 ? 3000 : 500));

const rate = Number(values.rate), burst = Math.max(1, Number(values.burst));
let reads = 0, done = 0, latMs = 0;
const rt = "Bun" in globalThis ? "bun" : "deno";
const label = `${rt}-${values.timer ? "timer" : "trickle"}-${rate}x${burst}`;
const mark = (line: string) => {
  if (!values.mark) return;
  console.log(`mark ${line}`);
  console.error(`mark ${line}`);
};
/** One tick's reads, one after another; latency is the tick's first read's. */
const tick = async () => {
  for (let k = 0; k < burst; k++) {
    const t = performance.now();
    await ns.read(lba(reads++), buf);
    if (k === 0) latMs += performance.now() - t;
    done++;
  }
};
const sum = () => dev.queueStats().reduce((a, q) => [a[0] + q.sleeps, a[1] + q.interrupts], [0, 0]);
const admin0 = dev.controller.admin.stats.sleeps;
const timer = rate > 0 && !values.timer
  ? setInterval(() => void tick(), 1000 / rate)
  : values.timer
  ? setInterval(() => {}, 1000 / (rate || 10))
  : null;
const lead = Number(values.lead);
if (lead > 0) await new Promise((r) => setTimeout(r, lead * 1000));
reads = done = latMs = 0;
const [sl0, ir0] = sum();
mark(`start ${label}`);
const th0 = threadTimes();
const c0 = process.cpuUsage(), t0 = performance.now();
await new Promise((r) => setTimeout(r, Number(values.seconds) * 1000));
const c = process.cpuUsage(c0), ms = performance.now() - t0;
const th1 = threadTimes();
mark(`end ${label} ios=${values.timer ? Math.round(Number(values.seconds) * (rate || 10)) : done}`);
const [sl1, ir1] = sum();
const adminSleeps = dev.controller.admin.stats.sleeps - admin0;
if (timer !== null) clearInterval(timer);
await new Promise((r) => setTimeout(r, 100));
const streamed = Number(values.stream);
let streamCpuPct: number | null = null;
if (streamed > 0) {
  mark(`start ${rt}-stream`);
  const s0 = process.cpuUsage(), w0 = performance.now();
  for (let i = 0; i < streamed; i++) await ns.read(lba(i), buf);
  const u = process.cpuUsage(s0);
  mark(`end ${rt}-stream ios=${streamed}`);
  streamCpuPct = +(((u.user + u.system) / 1000) / (performance.now() - w0) * 100).toFixed(2);
}
dev.freeBuffer(buf);
ac.abort();
await next;

// Per thread over the window, summed by name: a thread that ended in it (a runtime's idle blocking
// thread) drops out instead of making its group's figure negative.
const byName = new Map<string, [number, number]>();
for (const [tid, [comm, ns1, s1]] of th1) {
  const name = comm.replace(/[0-9]+$/, "N"); // a runtime's numbered helpers as one group
  const [, ns0, s0] = th0.get(tid) ?? [comm, 0, 0];
  const a = byName.get(name) ?? [0, 0];
  a[0] += ns1 - ns0;
  a[1] += s1 - s0;
  byName.set(name, a);
}
const perThread: Record<string, { pct: number; slices: number }> = {};
let sched = 0;
for (const [name, [ns, slices]] of byName) {
  sched += ns;
  if (ns > 0) perThread[name] = { pct: +(ns / 1e6 / ms * 100).toFixed(2), slices };
}
console.log(JSON.stringify({
  runtime: rt,
  target,
  waitMode: dev.info.waitMode,
  rate,
  reads: done,
  cpuPct: +(((c.user + c.system) / 1000) / ms * 100).toFixed(2),
  cpuPctSched: +(sched / 1e6 / ms * 100).toFixed(2),
  ioSleepsPerRead: done ? +((sl1 - sl0) / done).toFixed(2) : null,
  interruptsPerRead: done ? +((ir1 - ir0) / done).toFixed(2) : null,
  meanLatencyUs: done ? Math.round(latMs / (done / burst) * 1000) : null,
  burst,
  adminSleeps,
  streamCpuPct,
  perThread,
}));
