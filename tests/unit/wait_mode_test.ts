/**
 * Poll, interrupt and adaptive queues through the facade, on the software
 * controller's MSI-X model: data intact in each mode, interrupts counted per
 * queue, timeouts still fire while a queue sleeps, and an idle device with an
 * async event request outstanding sleeps on its interrupt instead of polling.
 */
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import { asyncEvents } from "../../lib/admin/manage.ts";
import { NVMeDev } from "../../lib/dev.ts";
import { InvalidArgumentError, NvmeTimeoutError } from "../../lib/nvme/errors.ts";
import { IoOpc } from "../../lib/nvme/spec.ts";
import { SimTransport } from "../../lib/sim/transport.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const mode of ["poll", "interrupt", "adaptive"] as const) {
  test(`wait mode ${mode}: data intact at QD 1 and 32; interrupts counted only when used`, async () => {
    await using dev = await NVMeDev.open("sim:ns=4M:512;queues=2", { ioQueues: 2, interrupts: mode });
    assert.equal(dev.info.waitMode, mode);
    const ns = dev.ns(1);
    const data = new Uint8Array(64 * 512);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + 3) & 0xff;
    await ns.write(0, data);
    for (let i = 0; i < 16; i++) {
      const r = new Uint8Array(512);
      await ns.read(i, r);
      assert.deepEqual(r, data.subarray(i * 512, i * 512 + 512));
    }
    const bufs = Array.from({ length: 32 }, () => dev.allocBuffer(512));
    await Promise.all(bufs.map((b, i) => ns.read(i, b)));
    bufs.forEach((b, i) => assert.deepEqual(b, data.subarray(i * 512, i * 512 + 512)));
    const st = dev.queueStats();
    const irqs = st.reduce((a, s) => a + s.interrupts, 0);
    if (mode === "poll") assert.equal(irqs, 0);
    // Adaptive may never sleep while IO is this fast; interrupt mode sleeps whenever nothing is ready.
    if (mode === "interrupt") {
      assert.ok(irqs > 0, `interrupts were taken (${JSON.stringify(st)})`);
      assert.ok(st.reduce((a, s) => a + s.sleeps, 0) > 0);
    }
  });
}

test("interrupt mode: a lost command still times out while its queue sleeps; Abort releases it", async () => {
  const transport = await SimTransport.create({ namespaces: [{ size: 1 << 20, blockSize: 512 }] });
  await using dev = await NVMeDev.open("sim", { transport, interrupts: "interrupt", ioTimeoutMs: 150 });
  await transport.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, count: 1 });
  await assert.rejects(dev.ns(1).read(0, new Uint8Array(512)), NvmeTimeoutError);
  await sleep(100);
  assert.equal(dev.controller.resets, 0);
  await dev.ns(1).read(0, new Uint8Array(512));
});

test("adaptive: idle with an async event request outstanding, the admin queue sleeps on its interrupt", async () => {
  for (const mode of ["adaptive", "poll"] as const) {
    await using dev = await NVMeDev.open("sim:ns=1M:512", { interrupts: mode });
    const ac = new AbortController();
    const it = asyncEvents(dev, { signal: ac.signal });
    const next = it.next();
    await sleep(50);
    const before = { ...dev.controller.admin.stats };
    await sleep(600);
    const after = dev.controller.admin.stats;
    if (mode === "adaptive") {
      // One sleep per 100 ms bound (timeouts and health checks), not a poll loop.
      const n = after.sleeps - before.sleeps;
      assert.ok(n >= 2 && n <= 12, `slept ${n} times in 600 ms`);
    } else {
      assert.equal(after.sleeps, 0, "poll mode never sleeps on an interrupt");
    }
    ac.abort();
    await next;
  }
});

test("wait modes: bad mode refused before anything is opened; 'interrupt' without interrupts is a setup error", async () => {
  await assert.rejects(NVMeDev.open("sim", { interrupts: "sometimes" as never }), InvalidArgumentError);
  const transport = await SimTransport.create({});
  (transport as { enableInterrupts?: unknown }).enableInterrupts = undefined;
  await assert.rejects(NVMeDev.open("sim", { transport, interrupts: "interrupt" }), (e) => (e as { reason?: string }).reason === "irq");
  const t2 = await SimTransport.create({});
  (t2 as { enableInterrupts?: unknown }).enableInterrupts = undefined;
  await using dev = await NVMeDev.open("sim", { transport: t2 });
  assert.equal(dev.info.interrupts, "none", "the default falls back to polling");
});
