import assert from "node:assert/strict";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";

test("sim: a file-backed namespace keeps its data across close and reopen (sim:ns=SIZE:BS@PATH)", async () => {
  const dir = mkdtempSync(`${tmpdir()}/tsnvme-sim-`);
  const path = `${dir}/ns1.img`;
  try {
    const data = new Uint8Array(64 * 1024);
    crypto.getRandomValues(data);
    {
      await using dev = await NVMeDev.open(`sim:ns=4M:4096@${path}`);
      assert.equal(dev.ns(1).blockSize, 4096);
      await dev.ns(1).write(100, data);
      await dev.ns(1).flush();
    }
    assert.equal(statSync(path).size, 4 * 1024 * 1024);
    await using again = await NVMeDev.open(`sim:ns=4M:4096@${path}`);
    const back = new Uint8Array(data.length);
    await again.ns(1).read(100, back);
    assert.deepEqual(back, data);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
