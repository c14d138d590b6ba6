/** The ublk tool's argument handling (no device: the guest tier runs it for real). */
import process from "node:process";
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { UsageError } from "../../../lib/cli/cli.ts";
import { main, parseUblkTarget } from "../../../lib/cli/ublk.ts";

test("ublk tool: a PCI address with an optional namespace", () => {
  assert.deepEqual(parseUblkTarget("0000:01:00.0:1"), { target: "0000:01:00.0", nsid: 1 });
  assert.deepEqual(parseUblkTarget("0000:01:00.0:3"), { target: "0000:01:00.0", nsid: 3 });
  assert.deepEqual(parseUblkTarget("01:00.0"), { target: "01:00.0", nsid: 1 });
  assert.deepEqual(parseUblkTarget("vfio:0000:00:04.0:2"), { target: "0000:00:04.0", nsid: 2 });
  assert.throws(() => parseUblkTarget("sim:"), UsageError);
  assert.throws(() => parseUblkTarget("0000:01:00.0:0"), UsageError);
  assert.throws(() => parseUblkTarget("/dev/nvme0n1"), UsageError);
});

test("ublk tool: usage errors exit 2 before anything is opened", async () => {
  const err = process.stderr.write;
  process.stderr.write = () => true;
  try {
    assert.equal(await main(["add"]), 2);
    assert.equal(await main(["add", "nonsense"]), 2);
    assert.equal(await main(["add", "0000:01:00.0", "--queues", "0"]), 2);
    assert.equal(await main(["del", "x"]), 2);
    assert.equal(await main(["bogus"]), 2);
  } finally {
    process.stderr.write = err;
  }
});
