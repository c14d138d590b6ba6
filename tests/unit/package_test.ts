/** The JSR package: every export loads without side effects, and every file it reaches is published. */
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, normalize, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { test } from "../harness.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const deno = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as {
  exports: Record<string, string>;
  publish: { include: string[] };
};

/** Local files reachable from `file` through static and literal dynamic imports. */
function reach(file: string, seen = new Set<string>()): Set<string> {
  if (seen.has(file)) return seen;
  seen.add(file);
  const src = readFileSync(join(root, file), "utf8");
  for (const m of src.matchAll(/(?:from|import)\s*\(?\s*["'](\.{1,2}\/[^"']+)["']/g)) {
    reach(relative(root, normalize(join(root, dirname(file), m[1]))), seen);
  }
  return seen;
}

const published = (f: string) => deno.publish.include.some((p) => (p.endsWith("/") ? f.startsWith(p) : f === p));

test("every export and every file it imports is in the published set", () => {
  for (const [name, path] of Object.entries(deno.exports)) {
    const file = normalize(path);
    assert.ok(existsSync(join(root, file)), `${name}: ${file} exists`);
    for (const f of reach(file)) assert.ok(published(f), `${name} reaches ${f}, which publish.include leaves out`);
  }
  assert.deepEqual(["./cli", "./setup", "./bench"].map((k) => deno.exports[k]), ["./lib/cli/nvme.ts", "./lib/cli/setup.ts", "./lib/cli/bench/mod.ts"]);
  assert.deepEqual(["./raw", "./format"].map((k) => deno.exports[k]), ["./raw.ts", "./lib/cli/format/mod.ts"]);
});

/** Names a facade exports, read from its explicit `export { ... }` and `export type { ... }` lists. */
function exportedNames(file: string): string[] {
  const src = readFileSync(join(root, file), "utf8").replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const names: string[] = [];
  for (const m of src.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const item of m[1].split(",")) {
      const words = item.trim().split(/\s+/).filter((w) => w && w !== "type");
      if (words.length) names.push(words[words.length - 1]);
    }
  }
  return names;
}

test("mod.ts is the application API: an explicit list of fewer than 60 names", async () => {
  const src = readFileSync(join(root, "mod.ts"), "utf8");
  assert.doesNotMatch(src, /export\s*\*/, "no export * in mod.ts: the list says what is public");
  const names = exportedNames("mod.ts");
  assert.equal(new Set(names).size, names.length, "each name once");
  assert.ok(names.length < 60, `mod.ts exports ${names.length} names`);
  for (const n of ["NVMeDev", "Namespace", "OpenOptions", "IoOptions", "NvmeError", "NvmeStatusError", "CommandTrace", "TraceEntry"]) {
    assert.ok(names.includes(n), `mod.ts exports ${n}`);
  }
  const mod = await import(join(root, "mod.ts"));
  for (const k of Object.keys(mod)) assert.ok(names.includes(k), `${k} is in mod.ts's list`);
  for (const n of ["NVMeDev", "Namespace", "QueueWorker", "CommandTrace", "NvmeError", "DeviceClosedError"]) {
    assert.equal(typeof mod[n], "function", n);
  }
  for (const n of ["Controller", "QueuePair", "PcieRing", "CommandTracker", "identifyCmd", "AdminOpc", "Status"]) {
    assert.ok(!(n in mod), `${n} is raw, not in mod.ts`);
  }
});

test("the raw entry holds the building blocks", async () => {
  const src = readFileSync(join(root, "raw.ts"), "utf8");
  for (const m of src.matchAll(/export\s*\*\s*from\s*"([^"]+)"/g)) {
    assert.match(m[1], /^\.\/lib\/nvme\/[a-z]+\.ts$/, "export * only of a lib/nvme layout or builder module");
  }
  const raw = await import(join(root, "raw.ts"));
  for (const n of ["Controller", "QueuePair", "PcieRing", "CommandTracker", "identifyCmd", "readCmd", "decodeIdentifyController", "parseSmartLog", "connectCmd", "listNvmeControllers"]) {
    assert.equal(typeof raw[n], "function", n);
  }
  assert.equal(raw.AdminOpc.IDENTIFY, 0x06);
  assert.equal(raw.Cns.CONTROLLER, 0x01);
  const cmd = raw.identifyCmd(raw.Cns.CONTROLLER);
  assert.equal(cmd[0] & 0xff, raw.AdminOpc.IDENTIFY);
});

test("the tool entry points export main() and do nothing when imported", async () => {
  for (const k of ["./cli", "./setup", "./bench"]) {
    const mod = await import(join(root, deno.exports[k]));
    assert.equal(typeof mod.main, "function", k);
  }
  const bench = await import(join(root, "lib/cli/bench/mod.ts"));
  assert.equal(await bench.main(["--rw", "nope", "sim:"]), 2, "bad options exit 2 before opening anything");
});

test("bench --output-format json: fio's layout, with the figures of the jobs", async () => {
  const { fioJson } = await import(join(root, "lib/cli/bench/mod.ts"));
  const samples = new Float64Array(1000).map((_, i) => (i + 1) / 1000); // 1 µs .. 1 ms
  const result = {
    runtime: "deno", rw: "randread", bs: 4096, iodepth: 4, iops: 500, mibps: 2,
    latUs: { mean: 500.5, p50: 500, p99: 990, max: 1000 }, ios: 1000, seconds: 2,
  };
  const j = JSON.parse(fioJson([{ result, samples, cpu: { user: 500_000, system: 250_000 } }], { ramp: 0.5, runtime: 2 }, new Date(0)));
  assert.equal(j.timestamp, 0);
  const job = j.jobs[0];
  assert.equal(job["job options"].iodepth, "4");
  assert.equal(job.read.iops, 500);
  assert.equal(job.read.total_ios, 1000);
  assert.equal(job.read.io_bytes, 4096000);
  assert.equal(job.read.bw, 2000); // KiB/s
  assert.equal(job.read.runtime, 2000);
  assert.equal(job.read.clat_ns.N, 1000);
  assert.equal(job.read.clat_ns.min, 1000);
  assert.equal(job.read.clat_ns.max, 1_000_000);
  assert.equal(job.read.clat_ns.percentile["50.000000"], 500_000);
  assert.equal(job.read.clat_ns.percentile["99.000000"], 990_000);
  assert.equal(Object.keys(job.read.clat_ns.percentile).length, 17);
  assert.equal(job.write.iops, 0);
  assert.equal(job.usr_cpu, 25);
  assert.equal(job.sys_cpu, 12.5);
});
