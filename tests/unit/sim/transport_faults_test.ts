import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev, type OpenOptions } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { SimOptions } from "../../../lib/sim/options.ts";
import { abortCmd, readCmd } from "../../../lib/nvme/command.ts";
import { IoOpc, Reg } from "../../../lib/nvme/spec.ts";
import { DeviceGoneError, InvalidArgumentError, type NvmeStatusError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";

async function open(sim: SimOptions = {}, opts: OpenOptions = {}): Promise<{ dev: NVMeDev; t: SimTransport }> {
  const t = await SimTransport.create(sim);
  return { dev: await NVMeDev.open("sim", { ...opts, transport: t }), t };
}
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** Issue reads until one fails with something other than a timeout; returns that error's code. */
async function firstFailure(dev: NVMeDev): Promise<string> {
  for (let i = 0; i < 5; i++) {
    const e = await dev.ns(1).read(0, new Uint8Array(512)).then(() => null, (e) => e as { code: string });
    if (e && e.code !== "ETIMEDOUT") return e.code;
  }
  return "none";
}
const code = (e: unknown) => (e as NvmeStatusError).status?.code;

test("sim fault: dropped command times out; abort really aborts a held command", async () => {
  const { dev, t } = await open({}, { ioTimeoutMs: 150 });
  try {
    const ns = dev.ns(1);
    const buf = new Uint8Array(512);
    await t.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, count: 1 });
    await assert.rejects(ns.read(0, buf), (e) => e instanceof NvmeTimeoutError && e.code === "ETIMEDOUT");
    await ns.read(0, buf); // count-limited: the next one goes through
    // Abort: hold a read, find its cid in the device, abort it.
    await t.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, count: 1 });
    const q = dev.controller.io[0];
    const b = dev.allocBuffer(4096);
    const held = q.submit(readCmd(1, 0, 1), t.iovaOf(b), 512, 10_000);
    let st = await t.state();
    for (let i = 0; i < 100 && st.held.length === 0; i++) st = await t.state();
    assert.equal(st.held.length, 1);
    const { qid, cid } = st.held[0];
    // Handle the held command's rejection before it can happen: its completion may be reaped in
    // an earlier event-loop turn than the Abort's, and an unhandled rejection fails the file.
    const heldAborted = assert.rejects(held, (e) => code(e) === 0x007);
    const dw0 = await dev.controller.adminCommand(abortCmd(qid, cid));
    assert.equal(dw0 & 1, 0, "CDW0 bit 0 = 0: aborted");
    await heldAborted;
    assert.equal((await t.state()).held.length, 0);
    assert.equal((await dev.controller.adminCommand(abortCmd(1, cid))) & 1, 1, "nothing to abort");
  } finally {
    await dev.close();
  }
});

test("sim fault: late completion, slow device, failing status by LBA range, counters", async () => {
  const { dev, t } = await open({}, { ioTimeoutMs: 100 });
  try {
    const ns = dev.ns(1);
    const buf = new Uint8Array(512);
    await t.faults.add({ action: "delay", queue: "io", opcode: IoOpc.READ, delayMs: 250, count: 1 });
    await assert.rejects(ns.read(0, buf), NvmeTimeoutError);
    for (let i = 0; i < 100 && dev.queueStats()[0].late === 0; i++) {
      await sleep(10);
      await ns.read(1, buf); // keeps the queue polled so the late completion is reaped
    }
    assert.equal(dev.queueStats()[0].late, 1);
    await t.faults.add({ action: "delay", queue: "io", delayMs: 20, count: 1 });
    let t0 = performance.now();
    await ns.read(0, buf);
    assert.ok(performance.now() - t0 >= 19);
    await t.faults.setLatency(30);
    t0 = performance.now();
    await ns.read(0, buf);
    assert.ok(performance.now() - t0 >= 29, "slow device");
    await t.faults.clear();
    await t.faults.add({ action: "status", queue: "io", lba: [100, 109], status: 0x281, count: 2 });
    await ns.read(90, new Uint8Array(10 * 512)); // 90..99: untouched
    await assert.rejects(ns.read(105, buf), (e) => code(e) === 0x281 && (e as Error).message.includes("Unrecovered Read Error"));
    await assert.rejects(ns.write(95, new Uint8Array(6 * 512)), (e) => code(e) === 0x281);
    await ns.read(105, buf);
    const rule = await t.faults.add({ action: "status", queue: "io", nsid: 2, status: 0x280, dnr: true });
    await assert.rejects(dev.ns(2).write(0, new Uint8Array(4096)), (e) => code(e) === 0x280 && (e as NvmeStatusError).status.dnr);
    await t.faults.remove(rule);
    await dev.ns(2).write(0, new Uint8Array(4096));
    // Requests the driver refuses never reach the controller.
    const before = t.commandCount();
    await assert.rejects(ns.read(ns.blockCount, buf), InvalidArgumentError);
    await assert.rejects(ns.read(0, new Uint8Array(100)), InvalidArgumentError);
    assert.equal(t.commandCount(), before, "zero commands reached the controller");
    assert.ok(t.commandCount({ qid: 1, opcode: IoOpc.READ }) >= 5);
    assert.ok(t.commandCount({ qid: 0 }) >= 5, "bring-up admin commands counted");
  } finally {
    await dev.close();
  }
});

test("sim fault: bogus completions are ignored by the driver; a stale phase tag hides the completion", async () => {
  const { dev, t } = await open({}, { ioTimeoutMs: 150 });
  try {
    const ns = dev.ns(1);
    const buf = new Uint8Array(512);
    for (const bogus of ["unknown-cid", "duplicate", "wrong-sqid"] as const) {
      const before = dev.queueStats()[0].bogus;
      await t.faults.add({ action: "bogus", bogus, queue: 1, count: 1 });
      await ns.read(0, buf);
      await ns.read(0, buf); // a duplicate is reaped with the next completion at the latest
      assert.equal(dev.queueStats()[0].bogus, before + 1, bogus);
    }
    await t.faults.add({ action: "bogus", bogus: "stale-phase", queue: 1, count: 1 });
    await assert.rejects(ns.read(0, buf), NvmeTimeoutError);
  } finally {
    await dev.close();
  }
});

test("sim fault: controller fatal status fails the queues with ControllerFatalError", async () => {
  const { dev, t } = await open({}, { ioTimeoutMs: 100 });
  try {
    await t.faults.fatal();
    assert.equal(t.readReg32(Reg.CSTS) & 2, 2, "CSTS.CFS");
    // The driver finds CFS by a health check or after a timeout; it may fail the queues, or reset
    // the controller, after which IO succeeds again.
    const first = await firstFailure(dev);
    assert.ok(["EFATAL", "ERESET"].includes(first) || dev.controller.resets >= 1, `${first}, ${dev.controller.resets} resets`);
  } finally {
    await dev.close();
  }
  const { dev: d2, t: t2 } = await open({}, { ioTimeoutMs: 100 });
  try {
    await t2.faults.add({ action: "fatal", queue: "io", opcode: IoOpc.WRITE });
    const err = await d2.ns(1).write(0, new Uint8Array(512)).then(() => null, (e) => e);
    assert.ok(err instanceof NvmeTimeoutError || err?.code === "EFATAL" || err?.code === "ERESET", String(err));
    assert.equal(t2.commandCount({ qid: 1, opcode: IoOpc.WRITE }), 1);
  } finally {
    await d2.close();
  }
});

test("sim fault: surprise removal reads all ones at once; IO fails with DeviceGoneError", async () => {
  const { dev, t } = await open({}, { ioTimeoutMs: 100 });
  try {
    t.faults.surpriseRemoval();
    assert.equal(t.readReg32(Reg.CSTS), 0xffff_ffff);
    assert.equal(t.readReg64(Reg.CAP), 0xffff_ffff_ffff_ffffn);
    assert.equal(await firstFailure(dev), "EGONE");
  } finally {
    await dev.close();
  }
  // A removal on a chosen command.
  const { dev: d2, t: t2 } = await open({}, { ioTimeoutMs: 100 });
  try {
    await t2.faults.add({ action: "remove", queue: "io", opcode: IoOpc.FLUSH });
    await assert.rejects(d2.ns(1).flush(), (e) => e instanceof NvmeTimeoutError || e instanceof DeviceGoneError);
    assert.equal(t2.removed, true);
    assert.equal(t2.readReg32(Reg.VS), 0xffff_ffff);
  } finally {
    await d2.close();
  }
});
