// Runs readonly_child.ts (polling read-only pages) in a child process of the runtime running the test.
import { spawnSync } from "node:child_process";
import { runtime } from "../../harness.ts";

const CHILD = new URL("./readonly_child.ts", import.meta.url).pathname;

/** Run readonly_child.ts in `mode` ("load" or "ring"); a poll that writes kills it with SIGSEGV. */
export function runReadOnlyChild(mode: string): { status: number | null; signal: string | null; out: string } {
  const args = runtime === "bun" ? [CHILD, mode] : ["run", "-A", "--no-check", CHILD, mode];
  const r = spawnSync(process.execPath, args, { encoding: "utf8", timeout: 300_000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}
