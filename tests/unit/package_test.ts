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
  assert.deepEqual(["./cli", "./setup", "./bench"].map((k) => deno.exports[k]), ["./scripts/nvme.ts", "./scripts/setup.ts", "./scripts/bench.ts"]);
});

test("the tool entry points export main() and do nothing when imported", async () => {
  for (const k of ["./cli", "./setup", "./bench"]) {
    const mod = await import(join(root, deno.exports[k]));
    assert.equal(typeof mod.main, "function", k);
  }
  const bench = await import(join(root, "scripts/bench.ts"));
  assert.equal(await bench.main(["--rw", "nope", "sim:"]), 2, "bad options exit 2 before opening anything");
});
