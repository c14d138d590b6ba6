/**
 * What the guest's CLI tests share to compare tsnvme's CLI with nvme-cli on the kernel driver:
 * nvme-cli's output, and lib/cli/nvme.ts's `main` run in this process (moving a controller between
 * drivers is ../util.ts's `bind`).
 * @module
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import process from "node:process";
import { main } from "../../../lib/cli/nvme.ts";

/** nvme-cli's stdout; throws on a non-zero exit. */
export function nvme(args: string[]): string {
  return execFileSync("nvme", args, { encoding: "utf8", maxBuffer: 1 << 24 });
}

/** tsnvme's CLI in this process with stdout and stderr captured. */
export async function cli(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = process.stdout.write, e = process.stderr.write;
  let out = "", err = "";
  process.stdout.write = ((s: string) => (out += s, true)) as typeof o;
  process.stderr.write = ((s: string) => (err += s, true)) as typeof e;
  try {
    return { code: await main(args), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

/** {@link cli}'s stdout; fails the test on a non-zero exit, naming the command and its stderr. */
export async function ours(args: string[]): Promise<string> {
  const r = await cli(args);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
  return r.out;
}
