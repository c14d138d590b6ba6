import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { MemMedia } from "../../../lib/sim/media.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { DevBackend, MediaBackend, NvmfTarget } from "../../../lib/target/mod.ts";
import { TcpController } from "../../../lib/tcp/host.ts";
import { hostIdentity } from "../../../lib/tcp/fabrics.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { IdCtrlOffset } from "../../../lib/nvme/identify.ts";

import { NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { until } from "../util/target_util.ts";
import { dsmCmd, flushCmd, sqe } from "../../../lib/nvme/command.ts";

const NQN = "nqn.2024-01.io.tsnvme:target-test";
const ID = hostIdentity("21111111-2222-4333-8444-555555555555");
const ascii = (b: Uint8Array, o: number, n: number) => String.fromCharCode(...b.subarray(o, o + n)).trimEnd();

function pattern(b: Uint8Array, seed: number): void {
  for (let i = 0; i < b.length; i++) b[i] = (i * 31 + seed * 7 + (i >>> 9)) & 0xff;
}

for (const digests of [false, true]) {
  test(`target: host bring-up, in-capsule and R2T writes, reads across queues, a software controller namespace behind it (digests ${digests ? "on" : "off"})`, async () => {
    const dev = await NVMeDev.open("sim:ns=4M:512,1M:4096", { interrupts: "poll" });
    const t = await NvmfTarget.listen({
      port: 0,
      subsystems: [{ nqn: NQN, namespaces: [new DevBackend(dev, 1), new MediaBackend(new MemMedia(1 << 20), 4096, "mem")] }],
      maxIoQueues: 3,
      inCapsule: 4096,
      maxTransfer: 64 * 1024,
    });
    const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...ID, ioQueues: 4, digests: { hdgst: digests, ddgst: digests } });
    try {
      assert.equal(c.io.length, 3);
      assert.equal(c.maxTransfer, 64 * 1024);
      assert.equal(c.inCapsuleMax, 4096);
      // Identity passes through from the backing controller; the limits are the target's.
      assert.equal(ascii(c.identify, IdCtrlOffset.MN, 40), dev.info.model);
      assert.equal(ascii(c.identify, IdCtrlOffset.SN, 20), dev.info.serial);
      assert.equal(c.identify[IdCtrlOffset.MDTS], 4);
      assert.equal(ascii(c.identify, IdCtrlOffset.SUBNQN, 64).replace(/\0+$/, ""), NQN);
      assert.deepEqual(await c.namespaceIds(), [1, 2]);
      assert.deepEqual(await c.namespace(1), { nsid: 1, blocks: 8192, lbaSize: 512 });
      assert.deepEqual(await c.namespace(2), { nsid: 2, blocks: 256, lbaSize: 4096 });
      const w = c.memory.allocDma(64 * 1024), r = c.memory.allocDma(64 * 1024);
      pattern(w.bytes, 1);
      await c.io[0].qp.rw(IoOpc.WRITE, 1, 100, 127, w.iova, 65536); // R2T
      await c.io[1].qp.rw(IoOpc.WRITE, 1, 300, 7, w.iova, 4096); // in-capsule
      await c.io[2].qp.rw(IoOpc.READ, 1, 100, 127, r.iova, 65536);
      assert.deepEqual(r.bytes, w.bytes);
      await c.io[0].qp.rw(IoOpc.READ, 1, 300, 7, r.iova, 4096);
      assert.deepEqual(r.bytes.subarray(0, 4096), w.bytes.subarray(0, 4096));
      // The data went to the software controller's namespace itself.
      const direct = new Uint8Array(65536);
      await dev.ns(1).read(100, direct);
      assert.deepEqual(direct, w.bytes);
      // Namespace 2 (memory, 4 KiB blocks).
      await c.io[1].qp.rw(IoOpc.WRITE, 2, 5, 15, w.iova, 65536);
      await c.io[2].qp.rw(IoOpc.READ, 2, 5, 15, r.iova, 65536);
      assert.deepEqual(r.bytes, w.bytes);
      assert.ok(t.stats.r2t >= 2 && t.stats.inCapsule >= 1, JSON.stringify(t.stats));
      await c.io[0].qp.submit(flushCmd(1));
      await c.shutdown();
      await until(() => t.controllers.size === 0); // the admin socket's close takes the controller
    } finally {
      c.close();
      await t.close();
      await dev.close();
    }
  });
}

test("target: many IOs in flight on every queue keep their data apart", async () => {
  const dev = await NVMeDev.open("sim:ns=8M:512", { interrupts: "poll", ioQueues: 2, ioQueueDepth: 16 });
  const t = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: [new DevBackend(dev, 1)] }], maxIoQueues: 4 });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...ID, ioQueues: 4, queueDepth: 64, katoMs: 0 });
  try {
    const n = 128, size = 8192;
    const bufs = Array.from({ length: n }, (_, i) => {
      const b = c.memory.allocDma(size);
      pattern(b.bytes, i + 3);
      return b;
    });
    // More commands than the device has slots (2 x 16): the backlog drains as completions come.
    await Promise.all(bufs.map((b, i) => c.io[i % 4].qp.rw(IoOpc.WRITE, 1, i * 16, 15, b.iova, size)));
    const back = Array.from({ length: n }, () => c.memory.allocDma(size));
    await Promise.all(back.map((b, i) => c.io[(i + 1) % 4].qp.rw(IoOpc.READ, 1, i * 16, 15, b.iova, size)));
    for (let i = 0; i < n; i++) assert.deepEqual(back[i].bytes.subarray(0, size), bufs[i].bytes.subarray(0, size), `IO ${i}`);
  } finally {
    c.close();
    await t.close();
    await dev.close();
  }
});

test("target: out-of-range, bad namespace, bad SGL length and unknown opcodes get their status", async () => {
  const t = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: [new MediaBackend(new MemMedia(1 << 20), 512)] }] });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...ID, katoMs: 0 });
  try {
    const b = c.memory.allocDma(8192);
    const sc = async (p: Promise<unknown>) => {
      try {
        await p;
        return -1;
      } catch (e) {
        assert.ok(e instanceof NvmeStatusError, String(e));
        return e.status.code;
      }
    };
    assert.equal(await sc(c.io[0].qp.rw(IoOpc.READ, 1, 2047, 1, b.iova, 1024)), 0x80); // LBA out of range
    assert.equal(await sc(c.io[0].qp.rw(IoOpc.READ, 2, 0, 0, b.iova, 512)), 0x0b); // invalid namespace
    assert.equal(await sc(c.io[0].qp.rw(IoOpc.READ, 1, 0, 1, b.iova, 512)), 0x0f); // SGL length 512 for 2 blocks
    assert.equal(await sc(c.io[0].qp.submit(sqe(0x7e, 1))), 0x01);
    assert.equal(await sc(c.admin.qp.submit(sqe(0x0d))), 0x01); // namespace management: not on fabrics
  } finally {
    c.close();
    await t.close();
  }
});

test("target: write zeroes and deallocate (DSM) reach the media", async () => {
  const media = new MemMedia(1 << 20);
  const t = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: [new MediaBackend(media, 512)] }] });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...ID, katoMs: 0 });
  try {
    const b = c.memory.allocDma(65536);
    b.bytes.fill(0xa5);
    await c.io[0].qp.rw(IoOpc.WRITE, 1, 0, 127, b.iova, 65536);
    await c.io[0].qp.rw(IoOpc.WRITE_ZEROES, 1, 8, 7, 0, 0);
    const d = c.memory.allocDma(4096);
    d.bytes.fill(0);
    const dv = new DataView(d.bytes.buffer, d.bytes.byteOffset, 32);
    dv.setUint32(4, 4, true);
    dv.setBigUint64(8, 40n, true);
    dv.setUint32(16 + 4, 2, true);
    dv.setBigUint64(16 + 8, 100n, true);
    await c.io[0].qp.submit(dsmCmd(1, 2, { ad: true }), d.iova, 32);
    const m = new Uint8Array(65536);
    media.read(0, m);
    const zero = (from: number, n: number) => m.subarray(from * 512, (from + n) * 512).every((x) => x === 0);
    assert.ok(zero(8, 8) && zero(40, 4) && zero(100, 2));
    assert.equal(m[7 * 512], 0xa5);
    assert.equal(m[16 * 512], 0xa5);
    assert.equal(m[44 * 512], 0xa5);
    assert.equal(m[102 * 512], 0xa5);
  } finally {
    c.close();
    await t.close();
  }
});
