import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev, type OpenOptions } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { SimOptions } from "../../../lib/sim/options.ts";
import { flushCmd, setRw, type Sqe, sqe } from "../../../lib/nvme/command.ts";
import { IoOpc, Reg } from "../../../lib/nvme/spec.ts";
import { NvmeCompareError, type NvmeStatusError } from "../../../lib/nvme/errors.ts";

async function open(sim: SimOptions = {}, opts: OpenOptions = {}): Promise<{ dev: NVMeDev; t: SimTransport }> {
  const t = await SimTransport.create(sim);
  return { dev: await NVMeDev.open("sim", { ...opts, transport: t }), t };
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

test("sim: bring-up, identify parses, namespaces, shutdown", async () => {
  const { dev, t } = await open({ serial: "SIMTEST1", ioQueues: undefined } as SimOptions, { ioQueues: 2 });
  try {
    assert.equal(dev.info.vid, 0x1d1d);
    assert.equal(dev.info.serial, "SIMTEST1");
    assert.equal(dev.info.model, "tsnvme software NVMe controller");
    assert.equal(dev.info.firmware, "1.0");
    assert.equal(dev.info.version, "1.4.0");
    assert.equal(dev.info.mdts, 5);
    assert.equal(dev.info.maxTransferBytes, 128 * 1024);
    assert.equal(dev.info.ioQueues, 2);
    assert.equal(dev.idCtrl.oacs & 0x1e, 0x1e);
    assert.equal(dev.idCtrl.oncs & 0x1dd, 0x1dd);
    assert.equal(dev.idCtrl.sanicap & 7, 7);
    assert.equal(dev.idCtrl.frmw, 0x17);
    assert.deepEqual(dev.nsList(), [1, 2]);
    assert.equal(dev.ns(1).blockSize, 512);
    assert.equal(dev.ns(1).blockCount, 32768);
    assert.equal(dev.ns(2).blockSize, 4096);
    assert.equal(dev.ns(2).blockCount, 4096);
    assert.equal(dev.idNs(2).nlbaf, 1);
    const st = await t.state();
    assert.equal(st.ready, true);
  } finally {
    await dev.close();
  }
  assert.equal(t.readReg32(Reg.CSTS), 0xffff_ffff, "a closed transport reads all ones");
  t.close();
});

test("sim: shutdown sets SHST complete and clears RDY", async () => {
  const { dev, t } = await open();
  // Shut down by hand to watch the registers before the transport closes.
  await dev.controller.shutdown();
  assert.equal(t.readReg32(Reg.CSTS) & 0xc, 0x8, "SHST = complete");
  for (let i = 0; i < 200 && (t.readReg32(Reg.CSTS) & 1); i++) await new Promise((r) => setTimeout(r, 1));
  assert.equal(t.readReg32(Reg.CSTS) & 1, 0, "RDY follows EN=0");
  await dev.close();
});

for (const nsid of [1, 2]) {
  test(`sim: data integrity on ns ${nsid} with PRP lists and MDTS splits`, async () => {
    const { dev, t } = await open();
    try {
      const ns = dev.ns(nsid);
      const bs = ns.blockSize;
      // DMA buffer at a page offset (PRP1 offset), 1 MiB: 8 commands of 128 KiB each with PRP lists.
      const big = dev.allocBuffer(1024 * 1024 + 4096);
      const view = big.subarray(bs === 512 ? 512 : 0, (bs === 512 ? 512 : 0) + 1024 * 1024);
      const data = pattern(view.length, nsid * 7);
      view.set(data);
      const before = t.commandCount({ qid: 1, opcode: IoOpc.WRITE });
      await ns.write(8, view);
      assert.equal(t.commandCount({ qid: 1, opcode: IoOpc.WRITE }) - before, 8, "MDTS split into 8 commands");
      view.fill(0);
      await ns.read(8, view);
      assert.deepEqual(view, data);
      // Plain (non-DMA) buffers go through bounce buffers.
      const plain = pattern(3 * bs, 99);
      await ns.write(ns.blockCount - 3, plain);
      const back = new Uint8Array(3 * bs);
      await ns.read(ns.blockCount - 3, back);
      assert.deepEqual(back, plain);
      // Two-page transfer: PRP2 is a data pointer, not a list.
      const two = dev.allocBuffer(8192);
      two.set(pattern(8192, 5));
      await ns.write(0, two);
      const two2 = new Uint8Array(8192);
      await ns.read(0, two2);
      assert.deepEqual(two2, two);
      await ns.flush();
    } finally {
      await dev.close();
    }
  });
}

test("sim: IO commands: compare, write zeroes, deallocate, verify, copy, out of range, bad namespace", async () => {
  const { dev } = await open();
  try {
    const q = dev.controller.io[0];
    const ns = dev.ns(1);
    const buf = dev.allocBuffer(8 * 512);
    const iova = dev.controller.transport.iovaOf(buf);
    const data = pattern(8 * 512, 3);
    buf.set(data);
    await ns.write(100, buf);
    const cmd = (opc: number, slba: number, nlb: number): Sqe => {
      const s = sqe(opc, 1);
      setRw(s, opc, 1, slba, nlb - 1);
      return s;
    };
    await q.submit(cmd(IoOpc.COMPARE, 100, 8), iova, 8 * 512);
    buf[17] ^= 1;
    await assert.rejects(q.submit(cmd(IoOpc.COMPARE, 100, 8), iova, 8 * 512), (e) => e instanceof NvmeCompareError);
    await q.submit(cmd(IoOpc.VERIFY, 100, 8));
    // Copy blocks 100..103 and 106..107 to 200.
    const ranges = dev.allocBuffer(4096);
    const rv = new DataView(ranges.buffer, ranges.byteOffset, 64);
    rv.setUint32(8, 100, true);
    rv.setUint16(16, 3, true);
    rv.setUint32(32 + 8, 106, true);
    rv.setUint16(32 + 16, 1, true);
    const copy = sqe(IoOpc.COPY, 1);
    copy[10] = 200;
    copy[12] = 1; // two ranges, format 0
    await q.submit(copy, dev.controller.transport.iovaOf(ranges), 64);
    const out = new Uint8Array(6 * 512);
    await ns.read(200, out);
    assert.deepEqual(out.subarray(0, 4 * 512), data.subarray(0, 4 * 512));
    assert.deepEqual(out.subarray(4 * 512), data.subarray(6 * 512, 8 * 512));
    // Write zeroes on 100..101, deallocate 102..103: both read back as zeroes.
    await q.submit(cmd(IoOpc.WRITE_ZEROES, 100, 2));
    const dsm = dev.allocBuffer(4096);
    const dv = new DataView(dsm.buffer, dsm.byteOffset, 16);
    dv.setUint32(4, 2, true);
    dv.setUint32(8, 102, true);
    const d = sqe(IoOpc.DATASET_MANAGEMENT, 1);
    d[11] = 4; // AD
    await q.submit(d, dev.controller.transport.iovaOf(dsm), 16);
    const z = new Uint8Array(8 * 512);
    await ns.read(100, z);
    assert.ok(z.subarray(0, 4 * 512).every((b) => b === 0));
    assert.deepEqual(z.subarray(4 * 512), data.subarray(4 * 512));
    // Errors: LBA out of range, invalid namespace, invalid opcode.
    const code = (e: unknown) => (e as NvmeStatusError).status.code;
    await assert.rejects(q.submit(cmd(IoOpc.VERIFY, ns.blockCount - 1, 2)), (e) => code(e) === 0x80);
    const bad = sqe(IoOpc.READ, 9);
    setRw(bad, IoOpc.READ, 9, 0, 0);
    await assert.rejects(q.submit(bad, iova, 512), (e) => code(e) === 0x0b);
    await assert.rejects(q.submit(sqe(0x7e, 1)), (e) => (e as NvmeStatusError).unsupported);
    await q.submit(flushCmd(0xffffffff));
  } finally {
    await dev.close();
  }
});
