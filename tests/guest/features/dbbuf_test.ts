/**
 * Features tier: shadow doorbells against QEMU's NVMe (the default controller, nvme0; QEMU
 * implements Doorbell Buffer Config, so no --feature is needed). Data written and read with
 * shadow doorbells on is correct (checked by the kernel nvme driver on the same LBAs), on two
 * queues at once, after a controller reset too; the MMIO doorbell writes saved are printed.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import type { PcieRing } from "../../../lib/nvme/pcie.ts";
import { bind, firstDiff, inGuest, nsBlockDev, PCI, randomBytes, readBlockDev, runtime } from "../util.ts";

const opts = { ignore: !inGuest };
const LBA = runtime === "bun" ? 40_000 : 30_000;
const N = 64, SIZE = 4096;

async function io(dev: NVMeDev, base: number, seed: number): Promise<Uint8Array> {
  const ns = dev.ns(1), per = SIZE / ns.blockSize;
  const all = randomBytes(N * SIZE, seed);
  await Promise.all(Array.from({ length: N }, (_, i) => ns.write(base + i * per, all.subarray(i * SIZE, (i + 1) * SIZE))));
  const back = new Uint8Array(N * SIZE);
  await Promise.all(Array.from({ length: N }, (_, i) => ns.read(base + i * per, back.subarray(i * SIZE, (i + 1) * SIZE))));
  assert.equal(firstDiff(back, all), -1);
  return all;
}

test("dbbuf: data correct with shadow doorbells on (two queues, across a reset), the kernel agrees", async () => {
  const seed = (Date.now() ^ 0xdb) >>> 0;
  console.log(`[${runtime}] dbbuf seed ${seed}`);
  let expect: Uint8Array, expect2: Uint8Array, bs: number;
  {
    await using dev = await NVMeDev.open(PCI, { ioQueues: 2 });
    assert.equal(dev.idCtrl.oacs & 0x100, 0x100, "QEMU offers Doorbell Buffer Config");
    const rings = dev.controller.io.map((q) => q.queueRing as PcieRing);
    assert.ok(rings.every((r) => r.shadowDoorbells), "IO rings use shadow doorbells");
    bs = dev.ns(1).blockSize;
    expect = await io(dev, LBA, seed);
    await dev.controller.reset();
    assert.ok(rings.every((r) => r.shadowDoorbells));
    expect2 = await io(dev, LBA + (N * SIZE) / bs, seed + 1);
    for (const r of rings) console.log(`[${runtime}] q${r.qid}: ${r.flushes} SQ doorbells, ${r.mmioDoorbells} written over MMIO`);
    for (const r of rings) assert.ok(r.mmioDoorbells <= r.flushes);
  }
  {
    await using dev = await NVMeDev.open(PCI, { pcie: { shadowDoorbells: false } });
    const r = dev.controller.io[0].queueRing as PcieRing;
    assert.equal(r.shadowDoorbells, false);
    await io(dev, LBA + (2 * N * SIZE) / bs, seed + 2);
    assert.equal(r.mmioDoorbells, r.flushes);
  }
  bind("nvme");
  try {
    const blk = nsBlockDev(1);
    assert.equal(firstDiff(readBlockDev(blk, LBA * bs, N * SIZE), expect), -1);
    assert.equal(firstDiff(readBlockDev(blk, LBA * bs + N * SIZE, N * SIZE), expect2), -1);
  } finally {
    bind("vfio");
  }
}, opts);
