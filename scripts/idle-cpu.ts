/**
 * Idle CPU of an open device, in the guest (scripts/idle-cpu.sh boots one):
 * per runtime, a process that only sleeps (the floor), then tsnvme with an
 * async event request outstanding and no IO (cold: the process's first
 * seconds; warm: after 2,000 reads and 3 s to settle), and with 10 reads per
 * second. Prints a Markdown table, % of one core (getrusage and the
 * scheduler's own clock); asserts nothing.
 *
 *   deno run -A scripts/idle-cpu.ts [--seconds 5] [--interrupts adaptive]
 * @module
 */
import { spawnSync } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: { seconds: { type: "string", default: "5" }, interrupts: { type: "string", default: "adaptive" } },
});
const pci = process.env.TSNVME_PCI ?? "";
const secs = Number(values.seconds);
const run = (rt: string, args: string[]) => {
  const argv = rt === "deno" ? ["run", "-A", ...args] : args;
  return spawnSync(rt, argv, { encoding: "utf8" });
};
// The floor: the same runtime, sleeping, measured the same way (getrusage over the window).
const floorSrc = `import process from "node:process";const c=process.cpuUsage();const t=performance.now();` +
  `await new Promise(r=>setTimeout(r,${secs * 1000}));const u=process.cpuUsage(c);` +
  `console.log(JSON.stringify({idleCpuPct:(u.user+u.system)/1000/(performance.now()-t)*100}))`;

console.log(`### Idle CPU, % of one core over ${secs} s (wait mode ${values.interrupts}; floor = the runtime only sleeping)\n`);
console.log("| runtime | floor | idle, cold | idle, warm | 10 reads/s, warm | idle warm − floor | 10/s − floor |");
console.log("|---|---:|---:|---:|---:|---:|---:|");
for (const rt of ["deno", "bun"]) {
  const floorRun = rt === "deno"
    ? spawnSync("deno", ["eval", floorSrc], { encoding: "utf8" })
    : spawnSync("bun", ["-e", floorSrc], { encoding: "utf8" });
  const floor = floorRun.status === 0 ? JSON.parse(floorRun.stdout.trim()).idleCpuPct as number : NaN;
  const bench = (extra: string[]) => {
    const r = run(rt, ["lib/cli/bench/mod.ts", pci, "--json", `--idle=${secs}`, `--interrupts=${values.interrupts}`, ...extra]);
    if (r.status !== 0) {
      console.error(`${rt} ${extra.join(" ")} failed: ${r.stderr.trim().split("\n").slice(-2).join(" | ")}`);
      return NaN;
    }
    return JSON.parse(r.stdout.trim().split("\n").pop()!).idleCpuPct as number;
  };
  const cold = bench([]);
  const warm = bench(["--warm-ios=2000"]);
  const trickle = bench(["--warm-ios=2000", "--trickle=10"]);
  const f2 = (n: number) => Number.isFinite(n) ? n.toFixed(2) : "failed";
  console.log(`| ${rt} | ${f2(floor)} | ${f2(cold)} | ${f2(warm)} | ${f2(trickle)} | ${f2(warm - floor)} | ${f2(trickle - floor)} |`);
}
