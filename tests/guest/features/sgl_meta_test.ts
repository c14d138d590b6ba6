/**
 * Features tier, `--feature pi`: metadata described by an SGL (PSDT 10b, MPTR pointing at one SGL
 * descriptor) against QEMU's NVMe, which advertises it (SGLS bit 19). On the PI controller's ns1
 * (512+8 separate metadata, type 1, 16-bit guard), tsnvme writes blocks whose PI tuples sit in two
 * scattered pieces behind a Last Segment with every PI check on, so QEMU verifies each guard
 * against the bytes it gathered; the normal API reads the same data and metadata back; a read with
 * its metadata scattered the same way lands the same tuples; a metadata SGL shorter than the
 * metadata fails with an SGL length status as a typed error.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import process from "node:process";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { setRw, sqe } from "../../../lib/nvme/command.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { PiCmdDw, piGenerate, Prinfo, prinfoBits } from "../../../lib/nvme/pi.ts";
import { sglMetadataSupported, SglStatus, writeSglData, writeSglMetadata } from "../../../lib/nvme/sgl.ts";
import { firstDiff, inGuest, randomBytes, runtime } from "../util.ts";

const PI_PCI = "0000:00:12.0";
const on = inGuest && (process.env.TSNVME_FEATURES ?? "").split(",").includes("pi");
const LBA = runtime === "bun" ? 600 : 500, BLOCKS = 8;

test("sgl metadata: PSDT 10b writes with scattered PI that QEMU verifies, reads it back scattered, refuses a short metadata SGL", async () => {
  execFileSync("scripts/guest-bind.sh", ["vfio", PI_PCI], { stdio: ["ignore", "ignore", "inherit"] });
  await using dev = await NVMeDev.open(PI_PCI);
  assert.ok(sglMetadataSupported(dev.idCtrl.sgls), `QEMU offers metadata SGLs (SGLS 0x${dev.idCtrl.sgls.toString(16)})`);
  const ns = dev.ns(1), f = ns.pi!;
  assert.deepEqual([f.blockSize, f.metadataSize, f.extended, f.type, f.guard], [512, 8, false, 1, 16]);
  const ctrl = dev.controller, q = ctrl.io[0];
  const buf = ctrl.allocDma(BLOCKS * 512), md = ctrl.allocDma(4096), list = ctrl.allocDma(4096);
  try {
    const data = randomBytes(BLOCKS * 512, (Date.now() ^ 0x3e7a) >>> 0);
    const meta = new Uint8Array(BLOCKS * 8);
    for (let i = 0; i < BLOCKS; i++) piGenerate(f, data, i * 512, meta, i * 8, LBA + i, 0x5a5a);
    buf.bytes.set(data);
    // Tuples of blocks 0-3 at md+0, of blocks 4-7 at md+2048.
    md.bytes.fill(0);
    md.bytes.set(meta.subarray(0, 32), 0);
    md.bytes.set(meta.subarray(32), 2048);
    const l32 = new Uint32Array(list.bytes.buffer, list.bytes.byteOffset, 1024);
    const head = l32.subarray(512, 516), headIova = list.iova + 2048;
    const rw = (opc: number, pieces: number[]) => {
      const c = sqe(opc, 1);
      setRw(c, opc, 1, LBA, BLOCKS - 1, prinfoBits(Prinfo.PRCHK_ALL));
      c[PiCmdDw.REFTAG_LO] = LBA;
      c[PiCmdDw.APPTAG] = (0xffff << 16) | 0x5a5a;
      writeSglData(c, buf.iova, BLOCKS * 512);
      writeSglMetadata(c, head, headIova, pieces, pieces.length / 2, l32, list.iova);
      return c;
    };
    await q.submit(rw(IoOpc.WRITE, [md.iova, 32, md.iova + 2048, 32]));
    const back = dev.allocBuffer(BLOCKS * 512), mback = dev.allocBuffer(BLOCKS * 8);
    await ns.read(LBA, back, { metadata: mback, pract: false });
    assert.equal(firstDiff(back, data), -1, "data written through the metadata SGL command");
    assert.deepEqual(mback, meta, "the tuples QEMU stored are the scattered ones");
    ns.verifyPi(LBA, back, mback);
    // Read back with the tuples scattered to two other places.
    md.bytes.fill(0);
    buf.bytes.fill(0);
    await q.submit(rw(IoOpc.READ, [md.iova + 1024, 16, md.iova + 3072, 48]));
    assert.equal(firstDiff(buf.bytes.subarray(0, BLOCKS * 512), data), -1);
    assert.deepEqual(md.bytes.slice(1024, 1040), meta.subarray(0, 16));
    assert.deepEqual(md.bytes.slice(3072, 3120), meta.subarray(16));
    // A metadata SGL 8 bytes short.
    await assert.rejects(q.submit(rw(IoOpc.READ, [md.iova, 32, md.iova + 2048, 24])), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError, String(e));
      console.log(`[${runtime}] short metadata SGL: ${e.message}`);
      assert.equal(e.status.sct, 0);
      assert.ok(([SglStatus.DATA_LENGTH_INVALID, SglStatus.METADATA_LENGTH_INVALID] as number[]).includes(e.status.sc), e.message);
      return true;
    });
  } finally {
    ctrl.freeDma(buf);
    ctrl.freeDma(md);
    ctrl.freeDma(list);
  }
}, { ignore: !on, timeout: 300_000 });
