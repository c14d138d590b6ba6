/**
 * Is a trickled read's cost the engine's code aging? (issue 17): runs
 * scripts/trickle-probe.ts at 10 reads/s (in the guest: `scripts/guest.sh --
 * deno run -A scripts/trickle-flags.ts`) with engine flags against the
 * defaults, rounds alternating, and prints per case the CPU (schedstat, % of
 * a core over the window: total, main thread, the irq helper, the rest) and,
 * for the tracing cases, what the engine did per read inside the window:
 * compiles by tier, deoptimizations, bytecode flushes and GCs (V8's
 * `--trace-opt --trace-deopt --trace-gc --trace-flush-code`; JSC's
 * `reportCompileTimes` and `logGC`). Asserts nothing.
 *
 *   deno run -A scripts/trickle-flags.ts [TARGET] [--seconds 5] [--rounds 2] [--rate 10] [--burst 1]
 *     [--lead SEC] [--runtimes deno,bun] [--cases a,b,...] [--lib DIR]
 *
 * `--lib DIR`: the driver of another checkout (trickle-probe.ts --lib).
 *
 * With TSNVME_OUT set (the guest's writable folder), the tracing cases' whole
 * output is kept there as trickle-flags-RUNTIME-CASE-ROUND.txt.
 * @module
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "5" },
    rounds: { type: "string", default: "2" },
    rate: { type: "string", default: "10" },
    burst: { type: "string", default: "1" },
    lead: { type: "string", default: "0" },
    runtimes: { type: "string", default: "deno,bun" },
    lib: { type: "string" },
    cases: { type: "string" },
  },
});
const target = positionals[0] ?? process.env.TSNVME_PCI ?? "sim:latency=0.1";

/** A case: V8 flags (Deno) or environment (Bun); `trace`: count the engine's events in the window. */
interface Case {
  name: string;
  v8?: string[];
  env?: Record<string, string>;
  trace?: boolean;
}
const V8_TRACE = ["--trace-opt", "--trace-deopt", "--trace-gc", "--trace-flush-code"];
const JSC_TRACE = { BUN_JSC_reportCompileTimes: "1", BUN_JSC_logGC: "1" };
const CASES: Record<string, Case[]> = {
  deno: [
    { name: "default" },
    { name: "--no-flush-bytecode", v8: ["--no-flush-bytecode"] },
    { name: "--no-lazy-feedback-allocation", v8: ["--no-lazy-feedback-allocation"] },
    { name: "--no-memory-reducer", v8: ["--no-memory-reducer"] },
    { name: "trace", v8: V8_TRACE, trace: true },
  ],
  bun: [
    { name: "default" },
    { name: "useConcurrentJIT=0", env: { BUN_JSC_useConcurrentJIT: "0" } },
    { name: "useFTLJIT=0", env: { BUN_JSC_useFTLJIT: "0" } },
    { name: "BUN_GC_TIMER_DISABLE=1", env: { BUN_GC_TIMER_DISABLE: "1" } },
    { name: "useConcurrentGC=0", env: { BUN_JSC_useConcurrentGC: "0" } },
    { name: "trace", env: JSC_TRACE, trace: true },
  ],
};

/** Engine events per read between the probe's `mark start` and `mark end` lines (stdout and stderr). */
function events(rt: string, outs: string[]): Record<string, number> {
  const n: Record<string, number> = {};
  for (const out of outs) count(rt, out, n);
  return n;
}

function count(rt: string, out: string, n: Record<string, number>): void {
  const add = (k: string) => n[k] = (n[k] ?? 0) + 1;
  const inside = (s: string) => {
    const a = s.indexOf("mark start"), b = s.indexOf("mark end");
    return a < 0 || b < a ? "" : s.slice(a, b);
  };
  const txt = inside(out);
  if (rt === "deno") {
    for (const m of txt.matchAll(/\[compiling method [^\n]*?\(target (\w+)\)( OSR)?/g)) add(`compile ${m[1]}${m[2] ?? ""}`);
    for (const m of txt.matchAll(/\[bailout \(kind: ([\w-]+)/g)) add(`deopt ${m[1]}`);
    for (const _ of txt.matchAll(/\[marking dependent code/g)) add("invalidate");
    for (const m of txt.matchAll(/ms: (Scavenge|Mark-Compact \(reduce\)|Mark-Compact|Minor Mark-Sweep|Mark-Sweep)/g)) add(`gc ${m[1]}`);
    for (const _ of txt.matchAll(/^[^\n]*flush[^\n]*$/gim)) add("flush");
  } else {
    for (const m of txt.matchAll(/Optimized [^\n]*? using (\w+)/g)) add(`compile ${m[1]}`);
    for (const _ of txt.matchAll(/\[GC<[^>]*>: starting/g)) add("gc");
    for (const _ of txt.matchAll(/[Jj]ettison/g)) add("jettison");
  }
}

const secs = values.seconds;
const rounds = Number(values.rounds);
const only = values.cases?.split(",");
console.log(
  `### trickle-probe at ${values.rate} reads/s (burst ${values.burst}), ${secs} s window after ${values.lead} s of reads, ${rounds} rounds alternating\n`,
);
console.log("| runtime | case | round | total % | main % | irq helper % | other threads % | reads | mean µs | sleeps/read | engine events per read |");
console.log("|---|---|---:|---:|---:|---:|---|---:|---:|---:|---|");
for (const rt of values.runtimes.split(",")) {
  const cases = CASES[rt].filter((c) => only === undefined || only.includes(c.name));
  for (let r = 1; r <= rounds; r++) {
    for (const c of cases) {
      const probe = ["scripts/trickle-probe.ts", target, "--seconds", secs, "--rate", values.rate, "--burst", values.burst, "--lead", values.lead, "--mark"];
      if (values.lib !== undefined) probe.push("--lib", values.lib);
      const argv = rt === "deno" ? ["run", "-A", ...(c.v8 ? [`--v8-flags=${c.v8.join(",")}`] : []), ...probe] : probe;
      // Line-buffered stdio: V8's traces go through libc's stdout, the window marks through the runtime's own writes.
      const res = spawnSync("stdbuf", ["-oL", "-eL", rt, ...argv], {
        encoding: "utf8",
        env: { ...process.env, ...c.env },
        maxBuffer: 1 << 28,
      });
      const json = res.stdout.split("\n").reverse().find((l) => l.startsWith("{\"runtime\""));
      if (res.status !== 0 || json === undefined) {
        console.log(`| ${rt} | ${c.name} | ${r} | failed: ${(res.stderr ?? "").trim().split("\n").slice(-1)[0]} |`);
        continue;
      }
      const j = JSON.parse(json) as {
        cpuPctSched: number;
        reads: number;
        meanLatencyUs: number | null;
        ioSleepsPerRead: number | null;
        perThread: Record<string, { pct: number; slices: number }>;
      };
      const t = j.perThread;
      const main = t[rt]?.pct ?? 0;
      const helper = (t["worker-N"] ?? t["Worker"])?.pct ?? 0;
      const other = Object.entries(t).filter(([k]) => k !== rt && k !== "worker-N" && k !== "Worker")
        .sort((a, b) => b[1].pct - a[1].pct).map(([k, v]) => `${k} ${v.pct}`).join(", ");
      let ev = "-";
      const keep = process.env.TSNVME_OUT;
      if (c.trace && keep) {
        const lib = values.lib === undefined ? "" : `-${values.lib.replace(/\W+/g, "_")}`;
        writeFileSync(`${keep}/trickle-flags-${rt}-${c.name.replace(/\W+/g, "_")}${lib}-${r}.txt`, res.stdout + "\n----- stderr\n" + res.stderr);
      }
      if (c.trace && j.reads > 0) {
        const e = events(rt, [res.stdout, res.stderr]);
        ev = Object.entries(e).map(([k, v]) => `${k} ${(v / j.reads).toFixed(2)}`).join(", ") || "none";
      }
      console.log(
        `| ${rt} | ${c.name} | ${r} | ${j.cpuPctSched} | ${main} | ${helper} | ${other || "-"} | ${j.reads} | ${j.meanLatencyUs ?? "-"} | ${
          j.ioSleepsPerRead ?? "-"
        } | ${ev} |`,
      );
    }
  }
}
