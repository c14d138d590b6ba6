// Submission queues in the controller memory buffer on the software controller (lib/sim/cmb.ts
// behind lib/nvme/pcie.ts): CMBMSC set up as Linux does, SQEs land in the BAR and IO is served
// from there (several queues, across a reset), the option keeps them in host memory, and a CQ in a
// CMB that only offers SQs fails with Invalid Use of Controller Memory Buffer.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { SIM_CMB_BAR, SIM_CMB_BUS } from "../../../lib/sim/options.ts";
import { CAP_CMBS, CmbszBit, createIoCqCmd, decodeCmb } from "../../../lib/nvme/pcie.ts";
import { NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { IoOpc, Reg } from "../../../lib/nvme/spec.ts";
import { SglStatus } from "../../../lib/nvme/sgl.ts";
import type { ControllerOptions } from "../../../lib/nvme/controller.ts";

async function open(cmbBytes: number, opts: ControllerOptions = {}) {
  const t = await SimTransport.create({ cmbBytes, memoryBytes: 16 << 20 });
  return { t, dev: await NVMeDev.open("sim", { ioQueues: 2, ioQueueDepth: 64, ...opts, transport: t }) };
}

async function roundTrip(dev: NVMeDev, seed: number): Promise<void> {
  const ns = dev.ns(1);
  const bufs = Array.from({ length: 24 }, (_, i) => new Uint8Array(4096).fill((seed * 31 + i) & 0xff));
  await Promise.all(bufs.map((b, i) => ns.write(i * 8, b)));
  const back = bufs.map(() => new Uint8Array(4096));
  await Promise.all(back.map((b, i) => ns.read(i * 8, b)));
  back.forEach((b, i) => assert.deepEqual(b, bufs[i]));
}

test("sim cmb: CMBLOC/CMBSZ decode; the registers read zero until CMBMSC.CRE", async () => {
  assert.deepEqual(decodeCmb(2, (256 << 12) | 1), { bar: 2, offset: 0, size: 1 << 20, supports: CmbszBit.SQS });
  assert.deepEqual(decodeCmb((1 << 12) | 4, (3 << 12) | (1 << 8) | 0x1f), { bar: 4, offset: 65536, size: 3 * 65536, supports: 0x1f });
  assert.equal(decodeCmb(0, 0), null);
  const t = await SimTransport.create({ cmbBytes: 1 << 20 });
  try {
    assert.notEqual(t.readReg64(Reg.CAP) & CAP_CMBS, 0n);
    assert.equal(t.readReg32(Reg.CMBSZ), 0);
    t.writeReg32(Reg.CMBMSC, 1);
    assert.deepEqual(decodeCmb(t.readReg32(Reg.CMBLOC), t.readReg32(Reg.CMBSZ)), { bar: SIM_CMB_BAR, offset: 0, size: 1 << 20, supports: CmbszBit.SQS });
    assert.equal(t.mapBar(SIM_CMB_BAR)!.busAddress, SIM_CMB_BUS);
    assert.equal(t.mapBar(4), null);
  } finally {
    t.close();
  }
  const plain = await SimTransport.create({});
  assert.equal(plain.readReg64(Reg.CAP) & CAP_CMBS, 0n);
  assert.equal(plain.mapBar(SIM_CMB_BAR), null);
  plain.close();
});

test("sim cmb: IO submission queues live in the CMB and serve IO, across a reset", async () => {
  const { t, dev } = await open(1 << 20);
  try {
    const msc = t.readReg64(Reg.CMBMSC);
    assert.equal(msc & 3n, 3n, "CRE and CMSE");
    assert.equal(Number(msc & ~0xfffn), SIM_CMB_BUS, "the CMB decoded at its bus address");
    await roundTrip(dev, 1);
    const cmb = new Uint32Array(t.mapBar(SIM_CMB_BAR)!.bytes.buffer);
    // Queue 1's SQ is the first 64 entries of the CMB, queue 2's the next (page aligned).
    const opcodes = new Set<number>();
    for (let i = 0; i < 2 * 64; i++) if (cmb[i * 16] !== 0) opcodes.add(cmb[i * 16] & 0xff);
    assert.deepEqual([...opcodes].sort(), [IoOpc.WRITE, IoOpc.READ], "the SQEs are in the CMB");
    assert.equal(t.commandCount({ qid: 1 }) + t.commandCount({ qid: 2 }) >= 48, true);
    await dev.controller.reset();
    assert.equal(t.readReg64(Reg.CMBMSC) & 3n, 3n);
    await roundTrip(dev, 2);
  } finally {
    await dev.close();
    t.close();
  }
});

test("sim cmb: cmbQueues false keeps SQs in host memory; a CQ in an SQ-only CMB is an invalid use", async () => {
  const { t, dev } = await open(1 << 20, { pcie: { cmbQueues: false } });
  try {
    await roundTrip(dev, 3);
    assert.equal(t.readReg64(Reg.CMBMSC), 0n);
    assert.ok(new Uint32Array(t.mapBar(SIM_CMB_BAR)!.bytes.buffer).every((x) => x === 0), "nothing written to the CMB");
    // Enable the CMB by hand and ask for a completion queue in it.
    t.writeReg32(Reg.CMBMSC + 4, 0);
    t.writeReg32(Reg.CMBMSC, SIM_CMB_BUS + 3);
    const c = createIoCqCmd(5, 16);
    c[6] = SIM_CMB_BUS;
    await assert.rejects(dev.controller.adminCommand(c), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === SglStatus.INVALID_CMB_USE);
  } finally {
    await dev.close();
    t.close();
  }
});
