// The software controller's SGL walker (lib/sim/sgl.ts) on its own, then end to end: IO through
// SGLs and PRPs gives the same bytes, hand-built multi-segment SGLs with bit buckets read the
// right bytes, and bad SGLs fail with the controller's SGL status codes as typed errors.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { walkMetadataSgl, walkSgl } from "../../../lib/sim/sgl.ts";
import {
  Psdt,
  SGL_BIT_BUCKET,
  sglMetadataSupported,
  SglsBit,
  SglStatus,
  SglType,
  withPsdt,
  writeSglChunks,
  writeSglData,
  writeSglDescriptor,
  writeSglMetadata,
} from "../../../lib/nvme/sgl.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { formatNvmCmd, setRw, sqe } from "../../../lib/nvme/command.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { SimOptions } from "../../../lib/sim/options.ts";
import { NvmeStatusError } from "../../../lib/nvme/errors.ts";
import type { ControllerOptions } from "../../../lib/nvme/controller.ts";

const SGLS = 1 | SglsBit.BIT_BUCKET;

/** Host memory of 64 KiB at IOVA 0x10000, identity-mapped. */
function host() {
  const host32 = new Uint32Array(16384);
  return { host32, off: (iova: number, len: number) => (iova >= 0x10000 && iova + len <= 0x20000 ? iova - 0x10000 : -1) };
}

function readCmd(): Uint32Array {
  const c = new Uint32Array(16);
  c[0] = withPsdt(IoOpc.READ, Psdt.SGL_MPTR_CONTIGUOUS);
  return c;
}

function walk(cmd: Uint32Array, len: number, h = host(), sgls = SGLS, admin = false): { st: number; pieces: number[][] } {
  const pieces: number[][] = [];
  const st = walkSgl(h, cmd, len, sgls, admin, (iova, n) => (pieces.push([iova, n]), true));
  return { st, pieces };
}

test("sim sgl: one data block; a Last Segment of data blocks and a bit bucket", () => {
  const c = readCmd();
  writeSglDescriptor(c, 6, SglType.DATA_BLOCK, 0x12000, 4096);
  assert.deepEqual(walk(c, 4096), { st: 0, pieces: [[0x12000, 4096]] });
  const h = host();
  const list = h.host32.subarray(0x1000 / 4);
  writeSglChunks(c, [0x13000, 512, SGL_BIT_BUCKET, 1024, 0x14000, 512], 3, list, 0x11000);
  assert.deepEqual(walk(c, 2048, h), { st: 0, pieces: [[0x13000, 512], [-1, 1024], [0x14000, 512]] });
});

test("sim sgl: Segment chains are followed; a write skips bit buckets", () => {
  const h = host(), c = readCmd();
  const chunks: number[] = [];
  for (let i = 0; i < 7; i++) chunks.push(0x14000 + i * 0x1000, 512);
  writeSglChunks(c, chunks, 7, h.host32.subarray(0x1000 / 4), 0x11000, 3);
  const r = walk(c, 7 * 512, h);
  assert.equal(r.st, 0);
  assert.deepEqual(r.pieces.map((p) => p[0]), chunks.filter((_, i) => i % 2 === 0));
  const w = readCmd();
  w[0] = withPsdt(IoOpc.WRITE, Psdt.SGL_MPTR_CONTIGUOUS);
  writeSglChunks(w, [0x13000, 512, SGL_BIT_BUCKET, 512, 0x14000, 512], 3, h.host32.subarray(0x1000 / 4), 0x11000);
  assert.deepEqual(walk(w, 1024, h), { st: 0, pieces: [[0x13000, 512], [0x14000, 512]] });
});

test("sim sgl: bad SGLs get the controller's status codes", () => {
  const c = readCmd();
  writeSglDescriptor(c, 6, SglType.DATA_BLOCK, 0x12000, 1024);
  assert.equal(walk(c, 4096).st, SglStatus.DATA_LENGTH_INVALID, "data block shorter than the transfer");
  writeSglDescriptor(c, 6, SglType.DATA_BLOCK, 0x12000, 8192);
  assert.equal(walk(c, 4096).st, SglStatus.DATA_LENGTH_INVALID, "longer, and SGLS does not allow excess");
  assert.equal(walk(c, 4096, host(), SGLS | SglsBit.EXCESS_LENGTH).st, 0, "longer is fine when SGLS allows excess");
  writeSglDescriptor(c, 6, SglType.KEYED_DATA_BLOCK, 0x12000, 4096);
  assert.equal(walk(c, 4096).st, SglStatus.DESCRIPTOR_TYPE_INVALID, "keyed data block on PCIe");
  writeSglDescriptor(c, 6, SglType.DATA_BLOCK, 0x12000, 4096, 1);
  assert.equal(walk(c, 4096).st, SglStatus.DESCRIPTOR_TYPE_INVALID, "offset sub type");
  writeSglDescriptor(c, 6, SglType.BIT_BUCKET, 0, 4096);
  assert.equal(walk(c, 4096, host(), 1).st, SglStatus.DESCRIPTOR_TYPE_INVALID, "bit bucket not advertised");
  writeSglDescriptor(c, 6, SglType.LAST_SEGMENT, 0x11000, 20);
  assert.equal(walk(c, 4096).st, SglStatus.INVALID_SEGMENT_DESCRIPTOR, "segment length not a multiple of 16");
  writeSglDescriptor(c, 6, SglType.LAST_SEGMENT, 0x11000, 0);
  assert.equal(walk(c, 4096).st, SglStatus.INVALID_SEGMENT_DESCRIPTOR, "empty segment");
  writeSglDescriptor(c, 6, SglType.LAST_SEGMENT, 0x90000, 32);
  assert.equal(walk(c, 4096).st, 0x04, "segment outside host memory: Data Transfer Error");
  // A Last Segment whose segment points further.
  let h = host();
  writeSglDescriptor(c, 6, SglType.LAST_SEGMENT, 0x11000, 32);
  writeSglDescriptor(h.host32, 0x1000 / 4, SglType.DATA_BLOCK, 0x12000, 512);
  writeSglDescriptor(h.host32, 0x1000 / 4 + 4, SglType.SEGMENT, 0x11100, 16);
  assert.equal(walk(c, 1024, h).st, SglStatus.INVALID_SEGMENT_DESCRIPTOR);
  // A segment descriptor that is not its segment's last.
  h = host();
  writeSglDescriptor(h.host32, 0x1000 / 4, SglType.SEGMENT, 0x11100, 16);
  writeSglDescriptor(h.host32, 0x1000 / 4 + 4, SglType.DATA_BLOCK, 0x12000, 512);
  assert.equal(walk(c, 512, h).st, SglStatus.INVALID_DESCRIPTOR_COUNT);
  // A segment that points at itself ends.
  h = host();
  writeSglDescriptor(c, 6, SglType.SEGMENT, 0x11000, 16);
  writeSglDescriptor(h.host32, 0x1000 / 4, SglType.SEGMENT, 0x11000, 16);
  assert.equal(walk(c, 512, h).st, SglStatus.INVALID_DESCRIPTOR_COUNT);
  // SGLs not offered, on the admin queue, or PSDT 10b: Invalid Field.
  writeSglDescriptor(c, 6, SglType.DATA_BLOCK, 0x12000, 4096);
  assert.equal(walk(c, 4096, host(), 0).st, 0x02);
  assert.equal(walk(c, 4096, host(), SGLS, true).st, 0x02);
  c[0] = withPsdt(IoOpc.READ, Psdt.SGL_MPTR_SGL);
  assert.equal(walk(c, 4096).st, 0x02);
});

async function open(sim: SimOptions, opts: ControllerOptions = {}) {
  const t = await SimTransport.create({ memoryBytes: 16 << 20, ...sim });
  return { dev: await NVMeDev.open("sim", { ...opts, transport: t }), t };
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >>> 9)) & 0xff;
  return b;
}

test("sim sgl: IO through SGLs by default, PRPs when forced or not offered: the same bytes", async () => {
  const data = pattern(64 * 1024, 3);
  const { dev, t } = await open({});
  try {
    assert.equal(dev.idCtrl.sgls & 3, 1);
    assert.equal(dev.controller.io[0].queueRing.constructor.name, "PcieRing");
    assert.equal((dev.controller.io[0].queueRing as unknown as { sgl: boolean }).sgl, true);
    await dev.ns(1).write(8, data);
    const back = new Uint8Array(data.length);
    await dev.ns(1).read(8, back);
    assert.deepEqual(back, data);
  } finally {
    await dev.close();
    t.close();
  }
  for (const [sim, opts] of [[{ sgl: false }, {}], [{}, { pcie: { dataPointer: "prp" } }]] as [SimOptions, ControllerOptions][]) {
    const o = await open(sim, opts);
    try {
      assert.equal((o.dev.controller.io[0].queueRing as unknown as { sgl: boolean }).sgl, false);
      await o.dev.ns(1).write(8, data);
      const back = new Uint8Array(data.length);
      await o.dev.ns(1).read(8, back);
      assert.deepEqual(back, data);
    } finally {
      await o.dev.close();
      o.t.close();
    }
  }
  const t2 = await SimTransport.create({ sgl: false });
  await assert.rejects(NVMeDev.open("sim", { transport: t2, pcie: { dataPointer: "sgl" } }), /SGLs were asked for/);
  t2.close();
  await assert.rejects(NVMeDev.open("sim", { pcie: { dataPointer: "both" as "sgl" } }), /pcie.dataPointer/);
});

test("sim sgl: a hand-built multi-segment SGL with a bit bucket reads the right bytes; bad SGLs fail typed", async () => {
  const { dev, t } = await open({});
  const ctrl = dev.controller, q = ctrl.io[0];
  const buf = ctrl.allocDma(4 * 4096), list = ctrl.allocDma(4096);
  try {
    const data = pattern(8 * 512, 9);
    await dev.ns(1).write(100, data);
    // Read 8 blocks: block 0 to buf+0, blocks 1-2 discarded, 3-6 to buf+8192, 7 to buf+512.
    const cmd = sqe(IoOpc.READ, 1);
    setRw(cmd, IoOpc.READ, 1, 100, 7);
    cmd[0] = withPsdt(cmd[0], Psdt.SGL_MPTR_CONTIGUOUS);
    const l32 = new Uint32Array(list.bytes.buffer, list.bytes.byteOffset, 1024);
    writeSglChunks(cmd, [buf.iova, 512, SGL_BIT_BUCKET, 1024, buf.iova + 8192, 2048, buf.iova + 512, 512], 4, l32, list.iova, 2);
    await q.submit(cmd);
    assert.deepEqual(buf.bytes.slice(0, 512), data.subarray(0, 512));
    assert.deepEqual(buf.bytes.slice(8192, 8192 + 2048), data.subarray(3 * 512, 7 * 512));
    assert.deepEqual(buf.bytes.slice(512, 1024), data.subarray(7 * 512));
    // Too short an SGL: Data SGL Length Invalid, as a status error naming it.
    writeSglDescriptor(cmd, 6, SglType.DATA_BLOCK, buf.iova, 1024);
    await assert.rejects(q.submit(cmd), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status.sct, 0);
      assert.equal(e.status.sc, SglStatus.DATA_LENGTH_INVALID);
      assert.match(e.message, /Data SGL Length Invalid/);
      return true;
    });
    writeSglDescriptor(cmd, 6, SglType.TRANSPORT_DATA_BLOCK, buf.iova, 4096);
    await assert.rejects(q.submit(cmd), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === SglStatus.DESCRIPTOR_TYPE_INVALID);
    // An SGL on the admin queue: Invalid Field.
    const id = sqe(0x06);
    id[10] = 1;
    id[0] = withPsdt(id[0], Psdt.SGL_MPTR_CONTIGUOUS);
    writeSglDescriptor(id, 6, SglType.DATA_BLOCK, buf.iova, 4096);
    await assert.rejects(ctrl.admin.submit(id), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x02);
  } finally {
    ctrl.freeDma(buf);
    ctrl.freeDma(list);
    await dev.close();
    t.close();
  }
});

test("sim sgl: a metadata SGL (PSDT 10b) is walked from the descriptor at MPTR; bad ones get Metadata SGL Length Invalid or Descriptor Type Invalid", () => {
  const h = host(), c = readCmd();
  const sgls = SGLS | SglsBit.MPTR_SGL;
  c[0] = withPsdt(IoOpc.READ, Psdt.SGL_MPTR_SGL);
  writeSglDescriptor(c, 6, SglType.DATA_BLOCK, 0x12000, 4096);
  assert.equal(walk(c, 4096, h, sgls).st, 0, "data through PSDT 10b when SGLS offers metadata SGLs");
  assert.equal(walk(c, 4096, h, SGLS).st, 0x02, "and Invalid Field when it does not");
  const head = h.host32.subarray(0x2000 / 4, 0x2000 / 4 + 4), list = h.host32.subarray(0x3000 / 4);
  const meta = (len: number, s = sgls) => {
    const pieces: number[][] = [];
    const st = walkMetadataSgl(h, c, len, s, (iova, n) => (pieces.push([iova, n]), true));
    return { st, pieces };
  };
  writeSglMetadata(c, head, 0x12000, [0x14000, 64], 1);
  assert.deepEqual(meta(64), { st: 0, pieces: [[0x14000, 64]] });
  writeSglMetadata(c, head, 0x12000, [0x14000, 32, 0x15000, 16, 0x15100, 16], 3, list, 0x13000);
  assert.deepEqual(meta(64), { st: 0, pieces: [[0x14000, 32], [0x15000, 16], [0x15100, 16]] });
  assert.equal(meta(80).st, SglStatus.METADATA_LENGTH_INVALID, "SGL shorter than the metadata");
  assert.equal(meta(48).st, SglStatus.METADATA_LENGTH_INVALID, "longer, and SGLS does not allow excess");
  assert.equal(meta(64, SGLS).st, 0x02, "SGLS without bit 19");
  writeSglDescriptor(head, 0, SglType.BIT_BUCKET, 0, 64);
  assert.equal(meta(64).st, SglStatus.DESCRIPTOR_TYPE_INVALID, "a bit bucket for metadata");
  c[4] = 0x90000;
  assert.equal(meta(64).st, 0x04, "MPTR outside host memory: Data Transfer Error");
  c[0] = withPsdt(IoOpc.READ, Psdt.SGL_MPTR_CONTIGUOUS);
  assert.equal(meta(64).st, 0x02, "PSDT 01b has no metadata SGL");
});

test("sim sgl: separate metadata through a metadata SGL (PSDT 10b), contiguous and scattered, reads and writes the right bytes", async () => {
  const t = await SimTransport.create({ memoryBytes: 16 << 20, piFormats: true, namespaces: [{ size: 1 << 20, blockSize: 512 }] });
  const dev = await NVMeDev.open("sim", { transport: t });
  const ctrl = dev.controller, q = ctrl.io[0];
  const buf = ctrl.allocDma(4096), md = ctrl.allocDma(4096), list = ctrl.allocDma(4096);
  try {
    assert.ok(sglMetadataSupported(dev.idCtrl.sgls), "the software controller offers metadata SGLs");
    await ctrl.adminCommand(formatNvmCmd(1, { lbaf: 2, pi: 0 })); // 512 + 8 bytes of separate metadata
    await dev.rescan();
    const data = pattern(4 * 512, 5), meta = pattern(32, 6);
    await dev.ns(1).write(40, data, { metadata: meta });
    const l32 = new Uint32Array(list.bytes.buffer, list.bytes.byteOffset, 1024);
    const head = l32.subarray(1000, 1004), headIova = list.iova + 4000;
    // Read the 4 blocks; their metadata in two pieces: blocks 0-1 at md+0, blocks 2-3 at md+1024.
    const cmd = sqe(IoOpc.READ, 1);
    setRw(cmd, IoOpc.READ, 1, 40, 3);
    writeSglData(cmd, buf.iova, 4 * 512);
    writeSglMetadata(cmd, head, headIova, [md.iova, 16, md.iova + 1024, 16], 2, l32, list.iova);
    await q.submit(cmd);
    assert.deepEqual(buf.bytes.slice(0, 2048), data);
    assert.deepEqual(md.bytes.slice(0, 16), meta.subarray(0, 16));
    assert.deepEqual(md.bytes.slice(1024, 1040), meta.subarray(16));
    // Write new metadata from one contiguous data block; the API reads it back.
    const meta2 = pattern(32, 8);
    md.bytes.set(meta2, 2048);
    const w = sqe(IoOpc.WRITE, 1);
    setRw(w, IoOpc.WRITE, 1, 40, 3);
    writeSglData(w, buf.iova, 4 * 512);
    writeSglMetadata(w, head, headIova, [md.iova + 2048, 32], 1);
    await q.submit(w);
    const d2 = new Uint8Array(2048), m2 = new Uint8Array(32);
    await dev.ns(1).read(40, d2, { metadata: m2 });
    assert.deepEqual([d2, m2], [data, meta2]);
    // A metadata SGL shorter than the metadata: Metadata SGL Length Invalid, typed.
    writeSglMetadata(w, head, headIova, [md.iova, 24], 1);
    await assert.rejects(q.submit(w), (e: unknown) => {
      assert.ok(e instanceof NvmeStatusError);
      assert.equal(e.status.sc, SglStatus.METADATA_LENGTH_INVALID);
      assert.match(e.message, /Metadata SGL Length Invalid/);
      return true;
    });
  } finally {
    ctrl.freeDma(buf);
    ctrl.freeDma(md);
    ctrl.freeDma(list);
    await dev.close();
    t.close();
  }
});
