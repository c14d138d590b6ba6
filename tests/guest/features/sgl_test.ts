/**
 * Features tier: SGLs against QEMU's NVMe (the default controller, nvme0: QEMU offers SGLs
 * there, so no --feature is needed; the test runs in any guest boot of this tier). tsnvme
 * writes through SGLs and reads back through PRPs and the reverse, the kernel nvme driver reads
 * the same LBAs, a hand-built SGL of several descriptors (bit buckets when offered) lands the
 * right bytes, and a bad SGL fails with QEMU's SGL status code as a typed error.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { setRw, sqe } from "../../../lib/nvme/command.ts";
import type { PcieRing } from "../../../lib/nvme/pcie.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { Psdt, SGL_BIT_BUCKET, sglBitBucket, SglStatus, SglType, withPsdt, writeSglChunks, writeSglDescriptor } from "../../../lib/nvme/sgl.ts";
import { bind, firstDiff, inGuest, nsBlockDev, PCI, randomBytes, readBlockDev, runtime, writeBlockDev } from "../util.ts";

const opts = { ignore: !inGuest };
const LBA = runtime === "bun" ? 20_000 : 10_000;
const BYTES = 256 * 1024;

test("sgl: SGL and PRP transfers give the same bytes, and the kernel reads them too", async () => {
  const seed = (Date.now() ^ 0x5617) >>> 0;
  console.log(`[${runtime}] sgl seed ${seed}`);
  const a = randomBytes(BYTES, seed), b = randomBytes(BYTES, seed + 1);
  let bs = 512;
  {
    await using dev = await NVMeDev.open(PCI);
    const ring = dev.controller.io[0].queueRing as PcieRing;
    assert.equal(dev.idCtrl.sgls & 3, 1, "QEMU offers SGLs");
    assert.equal(ring.sgl, true, "auto picks SGLs");
    bs = dev.ns(1).blockSize;
    await dev.ns(1).write(LBA, a);
    await dev.ns(1).write(LBA + BYTES / bs, b);
  }
  {
    await using dev = await NVMeDev.open(PCI, { pcie: { dataPointer: "prp" } });
    assert.equal((dev.controller.io[0].queueRing as PcieRing).sgl, false);
    const back = new Uint8Array(BYTES);
    await dev.ns(1).read(LBA, back);
    assert.equal(firstDiff(back, a), -1, "written with SGLs, read with PRPs");
    const c = randomBytes(BYTES, seed + 2);
    await dev.ns(1).write(LBA + BYTES / bs, c);
    b.set(c);
  }
  {
    await using dev = await NVMeDev.open(PCI, { pcie: { dataPointer: "sgl" } });
    const back = new Uint8Array(BYTES);
    await dev.ns(1).read(LBA + BYTES / bs, back);
    assert.equal(firstDiff(back, b), -1, "written with PRPs, read with SGLs");
  }
  bind("nvme");
  try {
    const blk = nsBlockDev(1);
    assert.equal(firstDiff(readBlockDev(blk, LBA * bs, BYTES), a), -1, "kernel reads the SGL write");
    assert.equal(firstDiff(readBlockDev(blk, LBA * bs + BYTES, BYTES), b), -1, "kernel reads the PRP write");
    const k = randomBytes(BYTES, seed + 3);
    writeBlockDev(blk, bs, LBA, k);
    a.set(k);
  } finally {
    bind("vfio");
  }
  await using dev = await NVMeDev.open(PCI);
  const back = new Uint8Array(BYTES);
  await dev.ns(1).read(LBA, back);
  assert.equal(firstDiff(back, a), -1, "kernel write read back through SGLs");
}, opts);

test("sgl: a hand-built SGL of several descriptors; a short SGL fails with Data SGL Length Invalid", async () => {
  await using dev = await NVMeDev.open(PCI);
  const ctrl = dev.controller, q = ctrl.io[0], ns = dev.ns(1), bs = ns.blockSize;
  const data = randomBytes(8 * bs, 77);
  await ns.write(LBA, data);
  const buf = ctrl.allocDma(16 * bs + 4096), list = ctrl.allocDma(4096);
  try {
    const l32 = new Uint32Array(list.bytes.buffer, list.bytes.byteOffset, 1024);
    const cmd = sqe(IoOpc.READ, 1);
    setRw(cmd, IoOpc.READ, 1, LBA, 7);
    cmd[0] = withPsdt(cmd[0], Psdt.SGL_MPTR_CONTIGUOUS);
    const bucket = sglBitBucket(dev.idCtrl.sgls);
    console.log(`[${runtime}] SGLS 0x${dev.idCtrl.sgls.toString(16)}, bit buckets ${bucket}`);
    // Block 0 to buf+0, blocks 1-2 to buf+8bs (or a bit bucket), 3-6 to buf+4bs, 7 to buf+bs: one Last
    // Segment (the driver's shape), then a Segment chaining to a Last Segment (3 descriptors a segment).
    // QEMU 10.0.2 refuses a Segment -> Segment -> Last Segment chain (Invalid SGL Segment Descriptor): not tried.
    const chunks = [buf.iova, bs, bucket ? SGL_BIT_BUCKET : buf.iova + 8 * bs, 2 * bs, buf.iova + 4 * bs, 4 * bs, buf.iova + bs, bs];
    for (const perSegment of [Infinity, 3]) {
      buf.bytes.fill(0);
      writeSglChunks(cmd, chunks, 4, l32, list.iova, perSegment);
      assert.equal(cmd[9] >>> 28, perSegment === 3 ? SglType.SEGMENT : SglType.LAST_SEGMENT);
      await q.submit(cmd);
      assert.deepEqual(buf.bytes.slice(0, bs), data.subarray(0, bs));
      assert.deepEqual(buf.bytes.slice(4 * bs, 8 * bs), data.subarray(3 * bs, 7 * bs));
      assert.deepEqual(buf.bytes.slice(bs, 2 * bs), data.subarray(7 * bs));
      if (!bucket) assert.deepEqual(buf.bytes.slice(8 * bs, 10 * bs), data.subarray(bs, 3 * bs));
    }
    writeSglDescriptor(cmd, 6, SglType.DATA_BLOCK, buf.iova, bs);
    await assert.rejects(q.submit(cmd), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError, String(e));
      assert.equal(e.status.sct, 0);
      assert.equal(e.status.sc, SglStatus.DATA_LENGTH_INVALID, e.message);
      return true;
    });
  } finally {
    ctrl.freeDma(buf);
    ctrl.freeDma(list);
  }
}, opts);
