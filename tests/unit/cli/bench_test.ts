/**
 * `bench` on the software controller: a pass per wait mode in one run, and
 * --svg writes the chart of every job.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { main } from "../../../lib/cli/bench/mod.ts";

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
