/**
 * Idle CPU of an open device, in the guest (scripts/idle-cpu.sh boots one):
 * per runtime, a process that only sleeps (the floor), then tsnvme with an
 * async event request outstanding and no IO (cold: the process's first
 * seconds; warm: after 2,000 reads and 3 s to settle), and with 10 reads per
 * second. Prints a Markdown table, % of one core (getrusage and the
 * scheduler's own clock); asserts nothing.
 *
 * `--breakdown` adds a table from scripts/trickle-probe.ts: at 10 reads/s,
 * per thread group the CPU and time slices (wake-ups), and the IO queue's
 * sleeps and interrupts per read, over the window only, for the timer alone
 * (device open, no reads), adaptive, and interrupt (sleep at once) waits.
 *
 * `--base DIR` adds the adaptive case with the driver of another checkout
 * (e.g. /work/main) to the breakdown: an A/B in one boot. `--ab` (with
 * `--base`) prints instead of the table only the floor and 10 reads/s,
 * this checkout's driver and DIR's alternating, `--rounds N` times.
 *
 *   deno run -A scripts/idle-cpu.ts [--seconds 5] [--interrupts adaptive] [--breakdown [--base DIR]] [--no-table]
 *     [--ab --base DIR [--rounds 2]]
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    seconds: { type: "string", default: "5" },
    interrupts: { type: "string", default: "adaptive" },
    breakdown: { type: "boolean", default: false },
    "no-table": { type: "boolean", default: false },
    base: { type: "string" },
    ab: { type: "boolean", default: false },
    rounds: { type: "string", default: "2" },
  },
});
const pci = process.env.TSNVME_PCI ?? "";
const secs = Number(values.seconds);
const run = (rt: string, args: string[]) => {
  const argv = rt === "deno" ? ["run", "-A", ...args] : args;
  return spawnSync(rt, argv, { encoding: "utf8" });
};
// The floor: the same runtime, sleeping, measured the same two ways (getrusage over the window, and
// the scheduler's own clock from /proc/self/task/N/schedstat: getrusage is tick-sampled in a guest
// kernel, so a thread that wakes on a tick is charged a whole tick).
const schedSrc = `const sched=()=>{try{let n=0;for(const t of readdirSync("/proc/self/task"))` +
  `n+=Number(readFileSync("/proc/self/task/"+t+"/schedstat","utf8").split(" ")[0]);return n}catch{return -1}};`;
// The floor, optionally with a timer that wakes the process `wakes` times a second and does nothing
// (what the runtime's own wake-up costs, apart from the driver's work in the 10 reads/s case).
const floorSrcOf = (wakes: number) =>
  `import process from "node:process";import {readdirSync,readFileSync} from "node:fs";${schedSrc}` +
  (wakes > 0 ? `setInterval(()=>{},${1000 / wakes});` : "") +
  `const c=process.cpuUsage();const s=sched();const t=performance.now();` +
  `await new Promise(r=>setTimeout(r,${secs * 1000}));const u=process.cpuUsage(c);const ms=performance.now()-t;` +
  `console.log(JSON.stringify({idleCpuPct:(u.user+u.system)/1000/ms*100,idleCpuPctSched:s<0?null:(sched()-s)/1e6/ms*100}));process.exit(0)`;

type Pct = { ru: number; sched: number; sleepsPerRead?: number };
const failed: Pct = { ru: NaN, sched: NaN };
const pct = (j: { idleCpuPct: number; idleCpuPctSched: number | null; reads?: number; ioSleeps?: number }): Pct => ({
  ru: j.idleCpuPct,
  sched: j.idleCpuPctSched ?? NaN,
  sleepsPerRead: j.reads ? (j.ioSleeps ?? 0) / j.reads : undefined,
});
/** The runtime only sleeping (with `wakes` timer wake-ups a second). */
const floorOf = (rt: string, wakes: number): Pct => {
  const src = floorSrcOf(wakes);
  const r = rt === "deno"
    ? spawnSync("deno", ["eval", src], { encoding: "utf8" })
    : spawnSync("bun", ["-e", src], { encoding: "utf8" });
  return r.status === 0 ? pct(JSON.parse(r.stdout.trim().split("\n").pop()!)) : failed;
};
/** One idle job of lib/cli/bench (`dir`: the checkout whose driver runs it; default this one). */
const bench = (rt: string, extra: string[], dir = ""): Pct => {
  const mod = dir === "" ? "lib/cli/bench/mod.ts" : `${dir.replace(/\/$/, "")}/lib/cli/bench/mod.ts`;
  const r = run(rt, [mod, pci, "--json", `--idle=${secs}`, `--interrupts=${values.interrupts}`, ...extra]);
  if (r.status !== 0) {
    console.error(`${rt} ${extra.join(" ")} failed: ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`);
    return failed;
  }
  return pct(JSON.parse(r.stdout.trim().split("\n").pop()!));
};
const f2 = (n: number) => Number.isFinite(n) ? n.toFixed(2) : "failed";
const c = (p: Pct) => `${f2(p.ru)} / ${f2(p.sched)}`;
const d = (a: Pct, b: Pct) => `${f2(a.ru - b.ru)} / ${f2(a.sched - b.sched)}`;

if (values.ab) ab();
else if (!values["no-table"]) table();
if (values.breakdown) breakdown();

/** 10 reads/s against the floor, this checkout's driver and --base's, alternating per round. */
function ab(): void {
  if (values.base === undefined) throw new Error("--ab needs --base DIR");
  console.log(`### 10 reads/s, this checkout against ${values.base}, % of one core over ${secs} s (getrusage / schedstat)\n`);
  console.log("| runtime | round | driver | floor | floor + 10 timer wakes/s | 10 reads/s, warm | 10/s − floor | sleeps per read |");
  console.log("|---|---:|---|---:|---:|---:|---:|---:|");
  for (let r = 1; r <= Number(values.rounds); r++) {
    for (const rt of ["deno", "bun"]) {
      const floor = floorOf(rt, 0), floorWakes = floorOf(rt, 10);
      const order: [string, string][] = [["this", ""], [values.base, values.base]];
      if (r % 2 === 0) order.reverse();
      for (const [name, dir] of order) {
        const t = bench(rt, ["--warm-ios=2000", "--trickle=10"], dir);
        const spr = t.sleepsPerRead === undefined ? "-" : t.sleepsPerRead.toFixed(2);
        console.log(`| ${rt} | ${r} | ${name} | ${c(floor)} | ${c(floorWakes)} | ${c(t)} | ${d(t, floor)} | ${spr} |`);
      }
    }
  }
}

function table(): void {
  console.log(`### Idle CPU, % of one core over ${secs} s (wait mode ${values.interrupts}; floor = the runtime only sleeping)\n`);
  console.log("Each cell: getrusage / schedstat (the scheduler's clock; getrusage charges whole ticks in a guest).\n");
  console.log(
    "| runtime | floor | floor + 10 timer wakes/s | idle, cold | idle, warm | 10 reads/s, warm | idle warm − floor | 10/s − floor | 10/s: IO-queue sleeps per read |",
  );
  console.log("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
  for (const rt of ["deno", "bun"]) {
    const floor = floorOf(rt, 0);
    const floorWakes = floorOf(rt, 10);
    const cold = bench(rt, []);
    const warm = bench(rt, ["--warm-ios=2000"]);
    const trickle = bench(rt, ["--warm-ios=2000", "--trickle=10"]);
    const spr = trickle.sleepsPerRead === undefined ? "-" : trickle.sleepsPerRead.toFixed(2);
    console.log(
      `| ${rt} | ${c(floor)} | ${c(floorWakes)} | ${c(cold)} | ${c(warm)} | ${c(trickle)} | ${d(warm, floor)} | ${
        d(trickle, floor)
      } | ${spr} |`,
    );
  }
}

/** Per-thread CPU of a trickle (scripts/trickle-probe.ts), over the window only. */
function breakdown(): void {
  console.log(`\n### 10 (and 100) reads/s: where the CPU goes (% of a core over ${secs} s, schedstat; slices = times a thread ran)\n`);
  console.log(
    "| runtime | case | total % | main % / slices | irq helper % / slices | other threads % | sleeps/read | irqs/read | mean µs |",
  );
  console.log("|---|---|---:|---:|---:|---:|---:|---:|---:|");
  const cases: [string, string[]][] = [
    ["timer alone (10/s, device open)", ["--timer"]],
    ["adaptive", ["--interrupts", "adaptive"]],
    ["interrupt (sleep at once)", ["--interrupts", "interrupt"]],
  ];
  if (values.base !== undefined) cases.push([`adaptive, ${values.base}'s driver`, ["--interrupts", "adaptive", "--lib", values.base]]);
  // 100 reads/s: the same against its own timer.
  cases.push(["timer alone (100/s, device open)", ["--timer", "--rate", "100"]], ["adaptive, 100 reads/s", ["--rate", "100"]]);
  if (values.base !== undefined) {
    cases.push([`adaptive, 100 reads/s, ${values.base}'s driver`, ["--rate", "100", "--lib", values.base]]);
  }
  for (const rt of ["deno", "bun"]) {
    for (const [name, extra] of cases) {
      const r = run(rt, ["scripts/trickle-probe.ts", pci, "--seconds", String(secs), ...extra]);
      if (r.status !== 0) {
        console.log(`| ${rt} | ${name} | failed: ${r.stderr.trim().split("\n").slice(-1)[0]} |`);
        continue;
      }
      const j = JSON.parse(r.stdout.trim().split("\n").pop()!) as {
        cpuPctSched: number;
        ioSleepsPerRead: number | null;
        interruptsPerRead: number | null;
        meanLatencyUs: number | null;
        perThread: Record<string, { pct: number; slices: number }>;
      };
      const t = j.perThread, main = t[rt] ?? { pct: 0, slices: 0 };
      // The irq helper is the process's only Worker in the probe (Deno names it worker-N, Bun "Worker").
      const helper = t["worker-N"] ?? t["Worker"] ?? { pct: 0, slices: 0 };
      const other = Object.entries(t).filter(([k]) => k !== rt && k !== "worker-N" && k !== "Worker")
        .map(([k, v]) => `${k} ${v.pct}`).join(", ");
      const n = (v: number | null) => v === null ? "-" : String(v);
      console.log(
        `| ${rt} | ${name} | ${j.cpuPctSched} | ${main.pct} / ${main.slices} | ${helper.pct} / ${helper.slices} | ${other || "-"} | ` +
          `${n(j.ioSleepsPerRead)} | ${n(j.interruptsPerRead)} | ${n(j.meanLatencyUs)} |`,
      );
    }
  }
}
