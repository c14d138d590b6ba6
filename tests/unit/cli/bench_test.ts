/**
 * `bench` on the software controller: a pass per wait mode in one run, and
 * --svg writes the chart of every job.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "../../harness.ts";
import { spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { main, tailBreakdown } from "../../../lib/cli/bench/mod.ts";
import { BENCH_COMPARE_OPTIONS } from "../../../scripts/bench-compare-options.ts";

test("bench: --interrupts poll,adaptive runs both passes; --svg charts every job", async () => {
  const dir = mkdtempSync(join(tmpdir(), "tsnvme-bench-"));
  const log = console.log;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    const file = join(dir, "b.svg");
    const st = await main([
      "sim:ns=16M:512;mem=32M",
      "--iodepth",
      "1,4",
      "--runtime",
      "0.2",
      "--ramp",
      "0",
      "--interrupts",
      "poll,adaptive",
      "--json",
      "--svg",
      file,
    ]);
    assert.equal(st, 0);
    const rows = lines.map((l) => JSON.parse(l));
    assert.deepEqual(rows.map((r) => `${r.waitMode}/${r.iodepth}`), ["poll/1", "poll/4", "adaptive/1", "adaptive/4"]);
    const svg = readFileSync(file, "utf8");
    for (const r of rows) assert.ok(svg.includes(`<title>${r.runtime} ${r.waitMode} QD${r.iodepth}: ${r.iops}</title>`));
    assert.equal(await main(["sim", "--interrupts", "poll,sometimes"]), 2, "a bad mode in the list is refused");
  } finally {
    console.log = log;
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Runs `main` with console.log captured; the JSON lines it printed. */
async function benchJson(args: string[]): Promise<Record<string, number>[]> {
  const log = console.log;
  const lines: string[] = [];
  console.log = (...a: unknown[]) => lines.push(a.join(" "));
  try {
    assert.equal(await main(args), 0);
  } finally {
    console.log = log;
  }
  return lines.map((l) => JSON.parse(l));
}

test("bench: sleeps and interrupts count the measured window only, not the ramp", async () => {
  // Interrupt mode sleeps at most about once per IO (0.5-1 measured); a ramp three times the window
  // adds about three times the window's count (2.6x with a ramp twice it, before the fix).
  const args = ["--iodepth", "1", "--ramp", "0.6", "--runtime", "0.2", "--interrupts", "interrupt", "--json"];
  const [r] = await benchJson(["sim:ns=16M:512;mem=32M", ...args]);
  assert.ok(r.ios > 0);
  assert.ok(r.sleeps <= 1.5 * r.ios + 5, `${r.sleeps} sleeps for ${r.ios} measured IOs`);
  assert.ok(r.interrupts <= 1.5 * r.ios + 5, `${r.interrupts} interrupts for ${r.ios} measured IOs`);
});

test("bench --idle: the warm-up's sleeps are not the window's", async () => {
  const [r] = await benchJson(["sim:ns=16M:512;mem=32M", "--idle", "0.2", "--warm-ios", "50", "--interrupts", "interrupt", "--json"]);
  assert.equal(r.reads, 0);
  assert.ok(r.ioSleeps <= 1, `${r.ioSleeps} IO-queue sleeps in an idle window after 50 warm-up reads`);
});

test("bench --api callback --threads: the callback path's rows, MMIO doorbells and CPU by thread", async () => {
  const [p, c] = await benchJson(["sim:ns=16M:512;mem=32M", "--iodepth", "4", "--runtime", "0.2", "--ramp", "0", "--interrupts", "poll", "--json", "--threads"])
    .then(async (a) => [...a, ...await benchJson(["sim:ns=16M:512;mem=32M", "--iodepth", "4", "--runtime", "0.2", "--ramp", "0", "--interrupts", "poll", "--json", "--threads", "--api", "callback"])]);
  assert.equal(p.api as unknown, "promise");
  assert.equal(c.api as unknown, "callback");
  for (const r of [p, c]) {
    assert.ok(r.ios > 0 && r.latUs !== undefined);
    // The software controller's ring is a PcieRing: doorbells per IO are counted (shadow doorbells skip most).
    const db = r.doorbellsPerIo as unknown as { sq: number; cq: number };
    assert.ok(db.sq >= 0 && db.sq <= 1.01 && db.cq >= 0 && db.cq <= 1.01, JSON.stringify(db));
    const th = r.threads as unknown as Record<string, number>;
    if (process.platform === "linux") assert.ok(Object.keys(th).length >= 1 && Object.values(th).every((v) => v >= 0), JSON.stringify(th));
  }
  assert.equal(await main(["sim", "--api", "sometimes"]), 2, "a bad --api is refused");
});

test("bench: one IO in 8 is timed at every depth, QD1 included (no clock read on the other IOs)", async () => {
  const args = ["--iodepth", "1,4", "--runtime", "0.3", "--ramp", "0", "--interrupts", "poll", "--json", "--api", "callback"];
  for (const r of await benchJson(["sim:ns=16M:512;mem=32M", ...args])) {
    assert.ok(r.ios >= 16, `${r.ios} IOs`);
    // The last timed IO of a worker may end after the window: at most one per worker over ios/8.
    assert.ok(r.timedIos >= 1 && r.timedIos <= Math.ceil(r.ios / 8) + r.iodepth, `QD${r.iodepth}: ${r.timedIos} timed of ${r.ios}`);
    assert.ok(r.latUs !== undefined && (r as unknown as { latUs: { p50: number } }).latUs.p50 > 0);
  }
});

test("scripts/bench.sh: the help's defaults are bench-compare's, and the warm-up is 12 s as the README's command", () => {
  const sh = fileURLToPath(new URL("../../../scripts/bench.sh", import.meta.url));
  const help = spawnSync("bash", [sh, "--help"], { encoding: "utf8" }).stdout;
  assert.equal(BENCH_COMPARE_OPTIONS.ramp.default, "12");
  let checked = 0;
  for (const m of help.matchAll(/^ {2}--([a-z-]+) ([^ ]+) /gm)) {
    const opt = (BENCH_COMPARE_OPTIONS as Record<string, { default?: unknown }>)[m[1]];
    if (opt === undefined || typeof opt.default !== "string") continue;
    assert.equal(m[2], opt.default, `--${m[1]} in the help`);
    checked++;
  }
  assert.ok(checked >= 6, `${checked} defaults in the help`);
});

test("bench --tail: timed IOs over p95 broken down by what the pump did during them", async () => {
  const lat = new Float64Array([0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.04, 0.1, 0.2]);
  const tags = new Uint8Array(lat.length);
  tags[19] = 1; // a yield during the 100 µs IO
  tags[20] = 3; // a yield and a sleep during the 200 µs one
  const b = tailBreakdown(lat, tags);
  assert.equal(b.p95Us, 100);
  assert.deepEqual(b.slow.yield, { n: 0, meanUs: 0 }); // p95 itself is not over it
  assert.deepEqual(b.slow["yield+sleep"], { n: 1, meanUs: 200 });
  assert.equal(b.all.none.n, 19);
  assert.deepEqual(b.all.yield, { n: 1, meanUs: 100 });
  const [r] = await benchJson(["sim:ns=16M:512;mem=32M", "--iodepth", "1", "--runtime", "0.2", "--ramp", "0", "--interrupts", "poll", "--json", "--tail"]);
  const tail = r.tail as unknown as ReturnType<typeof tailBreakdown>;
  const n = Object.values(tail.all).reduce((a, x) => a + x.n, 0);
  assert.equal(n, r.timedIos, "every timed IO tagged");
});
