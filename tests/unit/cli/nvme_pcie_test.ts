// The CLI's PCIe choices (--sgl, --prp, --no-dbbuf; nvme-cli has none): accepted by every device
// command, passed to the driver (--sgl on a controller without SGLs fails at open), exclusive.
import assert from "node:assert/strict";
import process from "node:process";
import { test } from "../../harness.ts";
import { main } from "../../../lib/cli/nvme.ts";

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const o = process.stdout.write, e = process.stderr.write;
  let out = "", err = "";
  process.stdout.write = ((s: string) => (out += s, true)) as typeof o;
  process.stderr.write = ((s: string) => (err += s, true)) as typeof e;
  try {
    return { code: await main(argv), out, err };
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
}

test("cli: --sgl, --prp and --no-dbbuf open the device with those choices; --sgl with --prp is a usage error", async () => {
  for (const flag of ["--sgl", "--prp", "--no-dbbuf"]) {
    const r = await run(["read", "sim:", "-n", "1", "-s", "0", "-c", "7", "-z", "4096", flag]);
    assert.equal(r.code, 0, `${flag}: ${r.err}`);
  }
  const both = await run(["read", "sim:", "-n", "1", "-s", "0", "-c", "0", "-z", "512", "--sgl", "--prp"]);
  assert.equal(both.code, 2);
  assert.match(both.err, /--sgl and --prp exclude each other/);
  const help = await run(["--help"]);
  assert.match(help.out, /--sgl or --prp/);
});
