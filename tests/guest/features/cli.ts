/**
 * What the guest's CLI tests share to compare tsnvme's CLI with nvme-cli on the kernel driver:
 * nvme-cli's output, and lib/cli/nvme.ts's `main` run in this process (tests/cli.ts's runner;
 * moving a controller between drivers is ../util.ts's `bind`).
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { type CliRun, runCli } from "../../cli.ts";

/** nvme-cli's stdout; throws on a non-zero exit. */
export function nvme(args: string[]): string {
  return execFileSync("nvme", args, { encoding: "utf8", maxBuffer: 1 << 24 });
}

/** tsnvme's CLI in this process with stdout and stderr captured (../../cli.ts). */
export const cli: (args: string[]) => Promise<CliRun> = runCli;

/** {@link cli}'s stdout; fails the test on a non-zero exit, naming the command and its stderr. */
export async function ours(args: string[]): Promise<string> {
  const r = await cli(args);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
  return r.out;
}
