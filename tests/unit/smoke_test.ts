/**
 * The first thing a newcomer runs: the package's front door (mod.ts) opens the software
 * controller from a target string, identifies it, writes, reads back, verifies and closes.
 */
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { DeviceClosedError, NvmeCompareError, NVMeDev } from "../../mod.ts";

/** `blocks` blocks of `bs` bytes, each dword naming its block and the tag, so a misplaced block is caught. */
function pattern(lba: number, blocks: number, bs: number, tag: number): Uint8Array {
  const b = new Uint8Array(blocks * bs);
  const v = new DataView(b.buffer);
  for (let i = 0; i < b.length; i += 4) v.setUint32(i, ((lba + Math.floor(i / bs)) << 8 | tag) >>> 0, true);
  return b;
}

test("smoke: open sim: from mod.ts, identify, write/read/verify on both namespaces, close", async () => {
  const dev = await NVMeDev.open("sim:ns=1M:512,2M:4096", { ioQueues: 2 });
  const ns1 = dev.ns(1);
  try {
    assert.equal(dev.info.model, "tsnvme software NVMe controller");
    assert.equal(dev.info.vid, 0x1d1d);
    assert.equal(dev.info.ioQueues, 2);
    assert.deepEqual(dev.nsList(), [1, 2]);
    for (const [nsid, bs, count] of [[1, 512, 2048], [2, 4096, 512]]) {
      const ns = dev.ns(nsid);
      assert.equal(ns.blockSize, bs);
      assert.equal(ns.blockCount, count);
      const lbas = [0, 7, count - 8]; // first, unaligned, last blocks
      await Promise.all(lbas.map((l) => ns.write(l, pattern(l, 8, bs, nsid))));
      for (const l of lbas) {
        const got = new Uint8Array(8 * bs);
        await ns.read(l, got);
        assert.deepEqual(got, pattern(l, 8, bs, nsid), `ns ${nsid} LBA ${l}`);
        await ns.compare(l, pattern(l, 8, bs, nsid));
        await ns.verify(l, 8);
      }
      await assert.rejects(ns.compare(0, pattern(0, 1, bs, 0xee)), NvmeCompareError);
    }
  } finally {
    await dev.close();
  }
  await assert.rejects(ns1.read(0, new Uint8Array(512)), DeviceClosedError);
  assert.throws(() => dev.ns(1), DeviceClosedError);
});
