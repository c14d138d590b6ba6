/**
 * Poll, interrupt and adaptive queues through the facade, on the software
 * controller's MSI-X model: data intact in each mode, interrupts counted per
 * queue, timeouts still fire while a queue sleeps, and an idle device with an
 * async event request outstanding sleeps on its interrupt instead of polling.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { asyncEvents } from "../../../lib/admin/manage.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { InvalidArgumentError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { IrqWaiter } from "../../../lib/irq/waiter.ts";

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
      // Asleep on its interrupt, not a poll loop; and with nothing but the request outstanding (no
      // deadline within a day) no wake-up of its own: no health check, no 100 ms bound (issue 17).
      const n = after.sleeps - before.sleeps;
      assert.ok(after.sleeps >= 1, "the admin queue slept");
      assert.ok(n <= 1, `slept ${n} times in 600 ms`);
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

/** A gate per vector that records its changes, added to the sim's MSI-X model (which has none). */
async function gatedSim(spec: string) {
  const transport = await SimTransport.create(spec);
  const gates = new Map<number, { on: boolean; log: string[] }>();
  const enable = transport.enableInterrupts.bind(transport);
  transport.enableInterrupts = async (n: number) => {
    const src = await enable(n);
    return {
      ...src,
      word: src.word,
      close: src.close,
      gate: (v: number) => {
        const g = { on: true, log: [] as string[] };
        gates.set(v, g);
        return {
          get masked() {
            return !g.on;
          },
          mask: () => g.on && (g.on = false, g.log.push("mask")),
          unmask: () => !g.on && (g.on = true, g.log.push("unmask")),
        };
      },
    };
  };
  return { transport, gates };
}

test("adaptive with gates: vectors off while polling, on for every sleep, off again once completions come", async () => {
  const { transport, gates } = await gatedSim("sim:ns=1M:512");
  // Every vector is the sleep's: catch a sleep taken with its vector off.
  const sleep0 = IrqWaiter.prototype.sleep;
  let sleptOff = 0, slept = 0;
  IrqWaiter.prototype.sleep = function (this: IrqWaiter, ms?: number) {
    slept++;
    if (gates.get(this.word.slot)?.on === false) sleptOff++;
    return sleep0.call(this, ms);
  };
  try {
    // pollSpinUs 0: the pump sleeps at its first empty poll, so each read runs a whole gate cycle.
    await using dev = await NVMeDev.open("sim", { transport, interrupts: "adaptive", pollSpinUs: 0 });
    const io = gates.get(dev.controller.ioVector(1))!;
    assert.ok(gates.get(0), "the admin queue's vector has a gate");
    assert.equal(io.on, false, "adaptive starts polling with its vector off");
    const data = new Uint8Array(512);
    for (let i = 0; i < 40; i++) await dev.ns(1).read(i, data);
    const st = dev.queueStats()[0];
    assert.ok(st.sleeps > 0, "the IO queue slept");
    assert.ok(io.log.filter((x) => x === "unmask").length > 0, "on for a sleep");
    assert.ok(io.log.filter((x) => x === "mask").length >= 2, `off again after a wake: ${io.log.join(" ")}`);
    for (let i = 1; i < io.log.length; i++) assert.notEqual(io.log[i], io.log[i - 1], "mask and unmask alternate");
    assert.equal(sleptOff, 0, `no sleep with its vector off (${slept} sleeps)`);
  } finally {
    IrqWaiter.prototype.sleep = sleep0;
  }
});

test("gates: interrupt mode never turns a vector off; a vector shared by queues gets no gate", async () => {
  {
    const { transport, gates } = await gatedSim("sim:ns=1M:512");
    await using dev = await NVMeDev.open("sim", { transport, interrupts: "interrupt" });
    for (let i = 0; i < 10; i++) await dev.ns(1).read(i, new Uint8Array(512));
    assert.ok(dev.queueStats()[0].sleeps > 0);
    for (const g of gates.values()) assert.equal(g.log.includes("mask"), false);
  }
  {
    // 2 vectors for 4 IO queues: vector 1 is shared by all of them, vector 0 is the admin queue's alone.
    const { transport, gates } = await gatedSim("sim:ns=1M:512;queues=4");
    await using dev = await NVMeDev.open("sim", { transport, interrupts: "adaptive", ioQueues: 4, maxIoQueues: 4, ioInterruptVectors: 2 });
    assert.equal(dev.controller.vectorExclusive(0), true);
    assert.equal(dev.controller.vectorExclusive(1), false);
    assert.deepEqual([...gates.keys()], [0]);
    const bufs = Array.from({ length: 8 }, () => dev.allocBuffer(512));
    await Promise.all(bufs.map((b, i) => dev.ns(1).read(i, b)));
  }
});
