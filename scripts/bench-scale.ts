/**
 * Worker scaling in one run: 1, 2 and N Workers (N = cores) on (a) an instant
 * device per Worker, in its own thread (nothing but the driver runs: on 2
 * cores, 2 Workers near 2x one says nothing in the driver is shared), (b) the
 * software controller with a thread per IO queue (threads=N) and (c) the
 * software controller's one device thread serving every queue (threads=0),
 * for contrast. Prints the table and the ratios; --svg writes the chart.
 * Asserts nothing: run it on a quiet machine for figures.
 *
 *   deno run -A scripts/bench-scale.ts [--workers 1,2,N] [--qd 32] [--ms 3000] [--warm-ms 2000] [--sim SPEC] [--no-sim] [--svg FILE] [--json]
 *   bun scripts/bench-scale.ts ...
 * @module
 */
import { writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import process from "node:process";
import { parseArgs } from "node:util";
import { parseCounts, runScaling, type ScalingRow, scalingTable } from "../lib/cli/bench/workers.ts";
import { scalingSvg } from "../lib/cli/bench/svg.ts";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    workers: { type: "string", default: "1,2,N" },
    qd: { type: "string", default: "32" },
    ms: { type: "string", default: "3000" },
    "warm-ms": { type: "string", default: "2000" },
    sim: { type: "string", default: "sim:ns=256M:512;queues=8;mem=128M" },
    "no-single": { type: "boolean", default: false },
    "no-sim": { type: "boolean", default: false },
    svg: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const counts = parseCounts(values.workers!);
const common = { counts, qd: Number(values.qd), ms: Number(values.ms), warmMs: Number(values["warm-ms"]) };
const rows: ScalingRow[] = [...await runScaling({ targets: ["instant"], ...common })];
if (!values["no-sim"]) {
  rows.push(...await runScaling({ targets: [`${values.sim};threads=${availableParallelism()}`], ...common }));
  if (!values["no-single"]) rows.push(...await runScaling({ targets: [`${values.sim};threads=0`], ...common }));
}
if (values.json) for (const r of rows) console.log(JSON.stringify(r));
else {
  console.log(`QD ${common.qd} per Worker, ${common.ms} ms after ${common.warmMs} ms warm-up; load ${(await loadavg())}`);
  console.log(scalingTable(rows));
  const two = rows.find((r) => r.target === "instant" && r.workers === 2);
  if (two) console.log(`instant device: 2 Workers give ${two.scaling}x one (goal: >= 1.9x on 2 free cores)`);
  for (const r of rows.filter((x) => x.target !== "instant" && x.workers > 1)) {
    const one = rows.find((x) => x.target === r.target && x.workers === 1)!;
    console.log(
      `${r.target}: ${r.workers} Workers ${r.scaling}x one; CPU µs/IO (process) ${one.processCpuUsPerIo} -> ${r.processCpuUsPerIo} ` +
        `(goal: not growing with Workers)`,
    );
  }
}
if (values.svg) writeFileSync(values.svg, scalingSvg(rows, `tsnvme Worker scaling (bench-scale.ts), ${new Date().toISOString()}`));
process.exit(0);

async function loadavg(): Promise<string> {
  try {
    return (await import("node:fs")).readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}
