/**
 * A small SVG chart writer for the benchmark tables (no dependencies, no
 * browser): grouped bar charts with axis, ticks, value labels and a legend,
 * stacked into one document. {@link benchSvg} charts `bench` results (IOPS by
 * queue depth and wait mode, latency percentiles, CPU per IO),
 * {@link scalingSvg} the Worker scaling table; {@link chartsSvg} takes any
 * rows (e.g. bench-tcp's).
 * @module
 */
import type { BenchResult } from "./mod.ts";
import type { ScalingRow } from "./workers.ts";

/** One bar series: a value (or null: no bar) per category. */
export interface Series {
  /** Legend text. */
  name: string;
  /** One value per category. */
  values: (number | null)[];
}

/** A grouped bar chart. */
export interface BarChart {
  /** Title above the chart. */
  title: string;
  /** Unit of the y axis. */
  yLabel: string;
  /** Groups along the x axis. */
  categories: string[];
  /** Bars in each group, in legend order. */
  series: Series[];
}

const W = 720, H = 300, PAD_L = 78, PAD_R = 16, PAD_T = 34, PAD_B = 58;
const COLOURS = [
  "#4e79a7",
  "#f28e2b",
  "#59a14f",
  "#e15759",
  "#76b7b2",
  "#edc948",
  "#b07aa1",
  "#9c755f",
];

/** Text safe inside an SVG element or attribute. */
export function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** A round axis maximum and its tick step for data up to `max`. */
export function niceScale(max: number): { top: number; step: number } {
  if (!(max > 0) || !Number.isFinite(max)) return { top: 1, step: 0.25 };
  const raw = max / 5, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw)!;
  return { top: Math.ceil(max / step) * step, step };
}

/** Short number text: 1234567 -> 1.23M, 0.5 -> 0.5. */
export function short(v: number): string {
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  if (a >= 100) return String(Math.round(v));
  return String(+v.toPrecision(3));
}

/** One chart as an SVG group at vertical offset `y`. */
export function barChartGroup(c: BarChart, y = 0): string {
  const plotW = W - PAD_L - PAD_R, plotH = H - PAD_T - PAD_B;
  let max = 0;
  for (const s of c.series) {
    for (
      const v of s.values
    ) if (v !== null && Number.isFinite(v) && v > max) max = v;
  }
  const { top, step } = niceScale(max);
  const out: string[] = [`<g transform="translate(0,${y})">`];
  out.push(
    `<text x="${W / 2}" y="20" text-anchor="middle" font-size="15" font-weight="bold">${esc(c.title)}</text>`,
  );
  // Grid and y ticks.
  for (let t = 0; t <= top + step / 2; t += step) {
    const ty = PAD_T + plotH - (t / top) * plotH;
    out.push(
      `<line x1="${PAD_L}" y1="${ty.toFixed(1)}" x2="${W - PAD_R}" y2="${ty.toFixed(1)}" stroke="#ddd"/>`,
    );
    out.push(
      `<text x="${PAD_L - 6}" y="${(ty + 4).toFixed(1)}" text-anchor="end" font-size="11">${esc(short(t))}</text>`,
    );
  }
  out.push(
    `<text transform="translate(16,${PAD_T + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12">${esc(c.yLabel)}</text>`,
  );
  const nCat = Math.max(1, c.categories.length),
    nSer = Math.max(1, c.series.length);
  const groupW = plotW / nCat, barW = Math.min(48, (groupW * 0.8) / nSer);
  c.categories.forEach((cat, i) => {
    const gx = PAD_L + i * groupW + (groupW - barW * nSer) / 2;
    c.series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null || v === undefined || !Number.isFinite(v)) return;
      const h = (Math.max(0, v) / top) * plotH,
        x = gx + j * barW,
        by = PAD_T + plotH - h;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${by.toFixed(1)}" width="${(barW - 2).toFixed(1)}" height="${h.toFixed(1)}" ` +
          `fill="${COLOURS[j % COLOURS.length]}"><title>${esc(`${s.name} ${cat}: ${v}`)}</title></rect>`,
      );
      out.push(
        `<text x="${(x + barW / 2 - 1).toFixed(1)}" y="${(by - 3).toFixed(1)}" text-anchor="middle" font-size="10">${esc(short(v))}</text>`,
      );
    });
    out.push(
      `<text x="${(PAD_L + i * groupW + groupW / 2).toFixed(1)}" y="${PAD_T + plotH + 16}" text-anchor="middle" font-size="12">${
        esc(cat)
      }</text>`,
    );
  });
  out.push(
    `<line x1="${PAD_L}" y1="${PAD_T + plotH}" x2="${W - PAD_R}" y2="${PAD_T + plotH}" stroke="#333"/>`,
  );
  // Legend under the axis.
  let lx = PAD_L;
  c.series.forEach((s, j) => {
    const ly = H - 18;
    out.push(
      `<rect x="${lx}" y="${ly - 10}" width="12" height="12" fill="${COLOURS[j % COLOURS.length]}"/>`,
    );
    out.push(
      `<text x="${lx + 16}" y="${ly}" font-size="12">${esc(s.name)}</text>`,
    );
    lx += 28 + s.name.length * 7;
  });
  out.push("</g>");
  return out.join("\n");
}

/** Charts stacked into one SVG document, with a caption line at the bottom. */
export function chartsSvg(charts: BarChart[], caption = ""): string {
  const h = charts.length * H + (caption ? 24 : 0);
  const body = charts.map((c, i) => barChartGroup(c, i * H)).join("\n");
  const cap = caption ? `\n<text x="8" y="${h - 8}" font-size="11" fill="#555">${esc(caption)}</text>` : "";
  return `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${h}" viewBox="0 0 ${W} ${h}" font-family="sans-serif">\n` +
    `<rect width="${W}" height="${h}" fill="#fff"/>\n${body}${cap}\n</svg>\n`;
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)];
}

/**
 * `bench` results as charts: IOPS by queue depth, one bar per runtime and
 * wait mode; latency p50/p99/max per job; CPU µs per IO per job.
 */
export function benchSvg(results: BenchResult[], caption = ""): string {
  const key = (r: BenchResult) => `${r.runtime} ${r.waitMode}`;
  const qds = uniq(results.map((r) => `QD${r.iodepth}`));
  const keys = uniq(results.map(key));
  const at = (k: string, q: string, f: (r: BenchResult) => number) => {
    const r = results.find((x) => key(x) === k && `QD${x.iodepth}` === q);
    return r ? f(r) : null;
  };
  const rw = uniq(results.map((r) => `${r.rw} ${r.bs} B`)).join(", ");
  const jobs = results.map((r) => `${key(r)} QD${r.iodepth}`);
  return chartsSvg([
    {
      title: `IOPS by queue depth and wait mode (${rw})`,
      yLabel: "IOPS",
      categories: qds,
      series: keys.map((k) => ({
        name: k,
        values: qds.map((q) => at(k, q, (r) => r.iops)),
      })),
    },
    {
      title: "Completion latency percentiles",
      yLabel: "µs",
      categories: jobs,
      series: [
        { name: "p50", values: results.map((r) => r.latUs.p50) },
        { name: "p99", values: results.map((r) => r.latUs.p99) },
      ],
    },
    {
      title: "CPU per IO (process)",
      yLabel: "µs",
      categories: qds,
      series: keys.map((k) => ({
        name: k,
        values: qds.map((q) => at(k, q, (r) => r.cpuUsPerIo)),
      })),
    },
  ], caption);
}

/** A target as a legend or title shows it: a sim: spec by its thread count, the rest as is. */
export function targetLabel(t: string): string {
  if (!t.startsWith("sim")) return t;
  const m = /(?:^|[:;])threads=(\d+)/.exec(t);
  return m ? `sim threads=${m[1]}` : "sim";
}

/**
 * The Worker scaling table as charts, per target (their IOPS differ by orders
 * of magnitude): aggregate IOPS and CPU µs per IO of the Worker threads by
 * Worker count, one bar per runtime.
 */
export function scalingSvg(rows: ScalingRow[], caption = ""): string {
  const label = (n: number) => `${n} worker${n === 1 ? "" : "s"}`;
  const counts = uniq(rows.map((r) => label(r.workers)));
  const runtimes = uniq(rows.map((r) => r.runtime));
  const qd = uniq(rows.map((r) => String(r.qd))).join("/");
  const charts: BarChart[] = [];
  for (const t of uniq(rows.map((r) => r.target))) {
    const mine = rows.filter((r) => r.target === t);
    const series = (f: (r: ScalingRow) => number) =>
      runtimes.map((rt) => ({
        name: rt,
        values: counts.map((c) => {
          const r = mine.find((x) => x.runtime === rt && label(x.workers) === c);
          return r ? f(r) : null;
        }),
      }));
    charts.push(
      { title: `${targetLabel(t)}: aggregate IOPS, one queue per Worker, QD${qd} each`, yLabel: "IOPS", categories: counts, series: series((r) => r.iops) },
      { title: `${targetLabel(t)}: CPU per IO (Worker threads)`, yLabel: "µs", categories: counts, series: series((r) => r.cpuUsPerIo) },
    );
  }
  return chartsSvg(charts, caption);
}

/**
 * Chart JSON lines (`bench --json`, `workers.ts --json`, `bench-scale.ts --json`), e.g. one
 * file per runtime into one chart: `deno run -A lib/cli/bench/svg.ts OUT.svg ROWS.jsonl...`.
 */
async function cli(args: string[]): Promise<number> {
  const [out, ...inputs] = args;
  if (!out || !inputs.length) {
    console.error("usage: svg.ts OUT.svg ROWS.jsonl... (bench --json or scaling --json lines)");
    return 2;
  }
  const { readFileSync, writeFileSync } = await import("node:fs");
  const rows: Record<string, unknown>[] = [];
  for (const f of inputs) {
    for (const l of readFileSync(f, "utf8").split("\n")) if (l.trim().startsWith("{")) rows.push(JSON.parse(l));
  }
  const scaling = rows.filter((r) => "workers" in r) as unknown as ScalingRow[];
  const bench = rows.filter((r) => "iodepth" in r) as unknown as BenchResult[];
  writeFileSync(out, scaling.length ? scalingSvg(scaling, inputs.join(" ")) : benchSvg(bench, inputs.join(" ")));
  return 0;
}

if (import.meta.main) {
  const { default: process } = await import("node:process");
  process.exitCode = await cli(process.argv.slice(2));
}
