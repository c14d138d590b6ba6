/**
 * The SVG chart writer: scales, escaping, one bar per value, a document that
 * XML tools accept (checked with xmllint when it is installed), and the
 * bench / scaling wrappers' series.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { barChartGroup, benchSvg, chartsSvg, esc, niceScale, scalingSvg, short, targetLabel } from "../../../lib/cli/bench/svg.ts";
import type { BenchResult } from "../../../lib/cli/bench/mod.ts";
import type { ScalingRow } from "../../../lib/cli/bench/workers.ts";

/** Tags opened and closed in order (a small well-formedness check that needs no tool). */
function balanced(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    if (m[3] === "/") continue;
    if (m[1] === "/") {
      if (stack.pop() !== m[2]) return false;
    } else stack.push(m[2]);
  }
  return stack.length === 0;
}

function xmllint(svg: string): boolean | null {
  const dir = mkdtempSync(join(tmpdir(), "tsnvme-svg-"));
  try {
    writeFileSync(join(dir, "a.svg"), svg);
    const r = spawnSync("xmllint", ["--noout", join(dir, "a.svg")]);
    if (r.error) return null; // not installed
    return r.status === 0;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const result = (runtime: string, waitMode: string, iodepth: number, iops: number): BenchResult => ({
  runtime,
  rw: "randread",
  bs: 4096,
  iodepth,
  iops,
  mibps: iops * 4096 / 2 ** 20,
  latUs: { mean: 10, p50: 9, p99: 40, max: 99 },
  ios: iops,
  seconds: 1,
  waitMode,
  cpuUsPerIo: 1.5,
  interrupts: 0,
  sleeps: 0,
});

test("svg: round axis tops and steps", () => {
  assert.deepEqual(niceScale(93), { top: 100, step: 20 });
  assert.deepEqual(niceScale(6_035_209), { top: 8_000_000, step: 2_000_000 });
  assert.deepEqual(niceScale(0.9), { top: 1, step: 0.2 });
  assert.deepEqual(niceScale(0), { top: 1, step: 0.25 });
  assert.equal(short(6_035_209), "6.04M");
  assert.equal(short(89_523), "89.5k");
  assert.equal(short(0.19), "0.19");
});

test("svg: text is escaped; one bar per value, none for null", () => {
  assert.equal(esc(`a<b & "c">`), "a&lt;b &amp; &quot;c&quot;&gt;");
  const g = barChartGroup({
    title: "x < y",
    yLabel: "IOPS",
    categories: ["QD1", "QD32"],
    series: [{ name: "deno <poll>", values: [1, 2] }, { name: "bun", values: [3, null] }],
  });
  assert.equal(g.match(/<rect [^>]*fill="#/g)?.length, 3 + 2, "3 bars and 2 legend swatches");
  assert.ok(g.includes("x &lt; y") && g.includes("deno &lt;poll&gt;"));
  assert.ok(!g.includes("<poll>"));
});

test("svg: bench results chart IOPS by depth and wait mode, latency and CPU; the document is well-formed", () => {
  const svg = benchSvg([
    result("deno", "poll", 1, 60_000),
    result("deno", "poll", 32, 90_000),
    result("deno", "adaptive", 1, 800),
    result("deno", "adaptive", 32, 17_000),
  ], "caption & more");
  assert.ok(balanced(svg));
  assert.ok(svg.startsWith("<?xml"));
  for (const s of ["deno poll", "deno adaptive", "QD1", "QD32", "p50", "p99", "CPU per IO", "caption &amp; more"]) {
    assert.ok(svg.includes(s), s);
  }
  assert.ok(svg.includes("<title>deno adaptive QD32: 17000</title>"));
  assert.notEqual(xmllint(svg), false, "xmllint accepts it");
});

test("svg: the scaling table charts IOPS and CPU per IO by Worker count", () => {
  const row = (workers: number, iops: number): ScalingRow => ({
    runtime: "bun",
    target: "instant",
    workers,
    api: "promise",
    qd: 32,
    iops,
    scaling: iops / 1000,
    cpuUsPerIo: 0.2,
    processCpuUsPerIo: 0.25,
  });
  const sim = { ...row(1, 20), target: "sim:ns=256M:512;queues=8;threads=2" };
  const svg = scalingSvg([row(1, 1000), row(2, 1900), sim]);
  assert.ok(balanced(svg));
  assert.ok(svg.includes("1 worker<") && svg.includes("2 workers<"));
  assert.ok(svg.includes("<title>bun 2 workers: 1900</title>"));
  // One panel pair per target, so the software controller's bars are not crushed by the instant device's.
  assert.ok(svg.includes("instant: aggregate IOPS") && svg.includes("sim threads=2: aggregate IOPS"));
  assert.ok(svg.includes("<title>bun 1 worker: 20</title>"));
  assert.equal(targetLabel("sim:ns=1M;threads=4"), "sim threads=4");
  assert.equal(targetLabel("sim:ns=1M"), "sim");
  assert.equal(targetLabel("0000:01:00.0"), "0000:01:00.0");
  assert.notEqual(xmllint(svg), false);
  assert.ok(balanced(chartsSvg([])));
});
