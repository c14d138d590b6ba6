// Shadow doorbells end to end on the software controller (lib/sim/dbbuf.ts behind lib/nvme/pcie.ts):
// Doorbell Buffer Config is sent when OACS offers it, IO queues then take their tails from the
// shadow page (a wrong MMIO tail is ignored), data stays correct, a reset configures the pages
// again, the option turns it off, and bad configurations fail typed.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { SimOptions } from "../../../lib/sim/options.ts";
import type { ControllerOptions } from "../../../lib/nvme/controller.ts";
import { dbbufConfigCmd, type PcieRing } from "../../../lib/nvme/pcie.ts";
import { NvmeStatusError, SetupError } from "../../../lib/nvme/errors.ts";
import { AdminOpc } from "../../../lib/nvme/spec.ts";

async function open(sim: SimOptions = {}, opts: ControllerOptions = {}) {
  const t = await SimTransport.create({ memoryBytes: 16 << 20, ...sim });
  return { dev: await NVMeDev.open("sim", { ...opts, transport: t }), t };
}

const ringOf = (dev: NVMeDev) => dev.controller.io[0].queueRing as PcieRing;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function roundTrip(dev: NVMeDev, seed: number): Promise<void> {
  const ns = dev.ns(1);
  const bufs = Array.from({ length: 16 }, (_, i) => new Uint8Array(4096).fill((seed + i) & 0xff));
  await Promise.all(bufs.map((b, i) => ns.write(i * 8, b)));
  const back = bufs.map(() => new Uint8Array(4096));
  await Promise.all(back.map((b, i) => ns.read(i * 8, b)));
  back.forEach((b, i) => assert.deepEqual(b, bufs[i]));
}

test("sim dbbuf: configured when offered; IO tails come from the shadow page, a stray MMIO tail is ignored", async () => {
  const { dev, t } = await open();
  try {
    assert.equal(dev.idCtrl.oacs & 0x100, 0x100);
    assert.equal(t.commandCount({ qid: 0, opcode: AdminOpc.DOORBELL_BUFFER_CONFIG }), 1);
    const ring = ringOf(dev);
    assert.equal(ring.shadowDoorbells, true);
    await roundTrip(dev, 1);
    assert.ok(ring.mmioDoorbells <= ring.flushes);
    const before = t.commandCount({ qid: 1 });
    // A tail in the MMIO doorbell that the host never published: a device that used it would fetch 3 stale entries.
    const db = t.doorbells();
    db[2] = (db[2] + 3) % ring.depth;
    await sleep(50);
    await roundTrip(dev, 2);
    assert.equal(t.commandCount({ qid: 1 }) - before, 32, "only the 32 commands published in the shadow page ran");
  } finally {
    await dev.close();
    t.close();
  }
});

test("sim dbbuf: the same stray MMIO tail is obeyed without shadow doorbells (the test above can fail)", async () => {
  const { dev, t } = await open({}, { pcie: { shadowDoorbells: false } });
  try {
    assert.equal(t.commandCount({ qid: 0, opcode: AdminOpc.DOORBELL_BUFFER_CONFIG }), 0);
    const ring = ringOf(dev);
    assert.equal(ring.shadowDoorbells, false);
    await roundTrip(dev, 3);
    assert.equal(ring.mmioDoorbells, ring.flushes, "every flush writes MMIO");
    const before = t.commandCount({ qid: 1 });
    const db = t.doorbells();
    db[2] = (db[2] + 3) % ring.depth;
    // The device fetches (and counts) the three entries one at a time: wait for all three, not the
    // first (under CPU load its thread can be preempted between them), then a while longer for any
    // more it would wrongly fetch.
    for (let i = 0; i < 3000 && t.commandCount({ qid: 1 }) - before < 3; i++) await sleep(10);
    await sleep(50);
    assert.equal(t.commandCount({ qid: 1 }) - before, 3);
  } finally {
    await dev.close().catch(() => {});
    t.close();
  }
});

test("sim dbbuf: a controller reset configures the pages again and IO stays correct", async () => {
  const { dev, t } = await open();
  try {
    await roundTrip(dev, 4);
    await dev.controller.reset();
    assert.equal(t.commandCount({ qid: 0, opcode: AdminOpc.DOORBELL_BUFFER_CONFIG }), 2);
    assert.equal(ringOf(dev).shadowDoorbells, true);
    await roundTrip(dev, 5);
  } finally {
    await dev.close();
    t.close();
  }
});

test("sim dbbuf: not offered: MMIO only, and asking for it fails; bad pages fail Invalid Field", async () => {
  const { dev, t } = await open({ shadowDoorbells: false });
  try {
    assert.equal(dev.idCtrl.oacs & 0x100, 0);
    assert.equal(ringOf(dev).shadowDoorbells, false);
    await roundTrip(dev, 6);
    await assert.rejects(dev.controller.adminCommand(dbbufConfigCmd(0x1000_0000, 0x1000_1000)), (e: unknown) => e instanceof NvmeStatusError && e.unsupported);
  } finally {
    await dev.close();
    t.close();
  }
  const t2 = await SimTransport.create({ shadowDoorbells: false });
  await assert.rejects(NVMeDev.open("sim", { transport: t2, pcie: { shadowDoorbells: true } }), (e: unknown) => e instanceof SetupError && /Doorbell Buffer Config/.test(e.message));
  t2.close();
  const o = await open();
  try {
    const page = o.dev.controller.allocDma(4096);
    await assert.rejects(o.dev.controller.adminCommand(dbbufConfigCmd(page.iova + 8, page.iova)), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x02);
    await assert.rejects(o.dev.controller.adminCommand(dbbufConfigCmd(0x7000_0000_0000, page.iova)), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x04);
    o.dev.controller.freeDma(page);
  } finally {
    await o.dev.close();
    o.t.close();
  }
});
