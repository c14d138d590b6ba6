/**
 * The target with Workers (poll groups): the tsnvme host over loopback, IO
 * queues served by target Workers (digests, faults applied in a Worker, a
 * command other than Read/Write forwarded to the model), and a Worker killed
 * mid-IO: its hosts reconnect and the data they were told was written is
 * there.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { DevBackend, MediaBackend, NvmfTarget, type NvmfTargetOptions } from "../../../lib/target/mod.ts";
import { SharedMedia } from "../../../lib/target/shared.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { ConnectionLostError, ControllerResetError, NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { until } from "../util/target_util.ts";
import { smartLog } from "../../../lib/admin/log.ts";

const NQN = "nqn.2024-01.io.tsnvme:workers";
const HOST = { hostnqn: "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555", hostid: "11111111-2222-4333-8444-555555555555" };

function target(o: Partial<NvmfTargetOptions> = {}): Promise<NvmfTarget> {
  return NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: [new MediaBackend(new SharedMedia(4 << 20), 512), new MediaBackend(new SharedMedia(1 << 20), 4096)] }],
    maxTransfer: 64 * 1024,
    inCapsule: 4096,
    maxIoQueues: 4,
    workers: 2,
    ...o,
  });
}

const url = (t: NvmfTarget) => `tcp://127.0.0.1:${t.port}/${NQN}`;

/** A target exporting namespace 1 of `back` (a software controller) through two Workers, each on a queue pair of its own. */
function deviceTarget(back: NVMeDev, lines: string[]): Promise<NvmfTarget> {
  return NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: [new DevBackend(back, 1)] }],
    maxTransfer: 64 * 1024,
    inCapsule: 4096,
    maxIoQueues: 2,
    workers: 2,
    log: (l) => lines.push(l),
  });
}

type TargetRun = { back: NVMeDev; t: NvmfTarget; dev: NVMeDev; lines: string[] };

/**
 * A target with 2 Workers exporting namespace 1 of `back`, and a tsnvme host
 * connected to it with `hostOpts`; `body` runs with them, and both are
 * closed after it (`back` is the caller's).
 */
async function withTargetOn(back: NVMeDev, hostOpts: Parameters<typeof NVMeDev.open>[1], body: (c: TargetRun) => Promise<void>): Promise<void> {
  const lines: string[] = [];
  const t = await deviceTarget(back, lines);
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, ...hostOpts });
    try {
      await body({ back, t, dev, lines });
    } finally {
      await dev.close();
    }
  } finally {
    await t.close();
  }
}

/** {@link withTargetOn} a software controller (`sim:ns=4M:512`, opened with `backOpts`, closed after). */
async function withDeviceTarget(
  backOpts: Parameters<typeof NVMeDev.open>[1],
  hostOpts: Parameters<typeof NVMeDev.open>[1],
  body: (c: TargetRun) => Promise<void>,
): Promise<void> {
  const back = await NVMeDev.open("sim:ns=4M:512", backOpts);
  try {
    await withTargetOn(back, hostOpts, body);
  } finally {
    await back.close();
  }
}

/** Every acknowledged write reads back through `ns` (`label` prefixes a failure). */
async function assertAcked(ns: ReturnType<NVMeDev["ns"]>, acked: Map<number, number>, label = ""): Promise<void> {
  const r = new Uint8Array(4096);
  for (const [lba, v] of acked) {
    await ns.read(lba, r);
    assert.ok(r.every((x) => x === v), `${label}lba ${lba}: expected ${v}, read ${r[0]}`);
  }
}

/**
 * Four writers keeping IO in flight on `dev`'s namespace 1 until stopped: writer `k`'s `i`th write
 * goes where `at(k, i)` says. Each completed write is recorded with its pattern; one that failed
 * with its connection is forgotten (it may or may not have landed).
 */
function writers(dev: NVMeDev, at: (k: number, i: number) => { lba: number; v: number }): { acked: Map<number, number>; stop(): Promise<void> } {
  const ns = dev.ns(1);
  const acked = new Map<number, number>();
  let stopped = false;
  const all = Array.from({ length: 4 }, async (_, k) => {
    const b = dev.allocBuffer(4096);
    for (let i = 0; !stopped; i++) {
      const { lba, v } = at(k, i);
      b.fill(v);
      try {
        await ns.write(lba, b);
        acked.set(lba, v);
      } catch (e) {
        assert.ok(e instanceof ConnectionLostError, String(e));
        acked.delete(lba);
      }
    }
  });
  return {
    acked,
    stop: async () => {
      stopped = true;
      await Promise.all(all);
    },
  };
}

for (const digests of [false, true]) {
  test(`target workers: IO queues are served by two Workers, data crosses them, Flush goes to the model (digests ${digests})`, async () => {
    const t = await target();
    try {
      assert.equal(t.workers, 2);
      const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 4, digests: digests ? { hdgst: true, ddgst: true } : undefined });
      try {
        const where = t.queueWorkers(dev.controller.cntlid);
        assert.equal(where.size, 4);
        assert.deepEqual(new Set(where.values()), new Set([0, 1])); // round robin over both Workers
        const ns = dev.ns(1);
        const w = dev.allocBuffer(65536), r = dev.allocBuffer(65536);
        // Many IOs in flight: the host spreads them over its queues, so both Workers serve some.
        const ps: Promise<void>[] = [];
        for (let i = 0; i < 64; i++) {
          const b = dev.allocBuffer(4096).fill(i + 1);
          ps.push(ns.write(i * 8, b));
        }
        await Promise.all(ps);
        for (let i = 0; i < 64; i++) {
          const b = new Uint8Array(4096);
          await ns.read(i * 8, b);
          assert.ok(b.every((x) => x === i + 1), `block ${i * 8}`);
        }
        for (let i = 0; i < w.length; i++) w[i] = (i * 31) >>> 2;
        await ns.write(1000, w); // R2T (above the in-capsule size)
        await ns.flush(); // not Read/Write: forwarded to the model in the listener's thread
        await ns.read(1000, r);
        assert.deepEqual(r, w);
        await dev.ns(2).write(3, w.subarray(0, 8192));
        const r2 = new Uint8Array(8192);
        await dev.ns(2).read(3, r2);
        assert.deepEqual(r2, w.subarray(0, 8192));
      } finally {
        await dev.close();
      }
    } finally {
      await t.close();
    }
  });
}

test("target workers: faults applied in a Worker (bad data digest, dropped connection) fail typed; the host recovers", async () => {
  const t = await target({
    workerFaults: [{ fault: "corrupt-ddgst", opcode: IoOpc.READ, nth: 3 }, { fault: "drop", opcode: IoOpc.WRITE, nth: 5 }],
  });
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 1, digests: { hdgst: true, ddgst: true }, reconnectDelayMs: 50 });
    try {
      const ns = dev.ns(1);
      const b = dev.allocBuffer(4096).fill(0x5a);
      await ns.write(0, b);
      const r = new Uint8Array(4096);
      await ns.read(0, r);
      await ns.read(0, r);
      // The one Worker serving the queue corrupts the third read's digest.
      await assert.rejects(ns.read(0, r), (e: unknown) => e instanceof NvmeStatusError || e instanceof ConnectionLostError);
      for (let i = 0; i < 4; i++) await ns.write(8, b).catch(() => {}); // the fifth write of that Worker drops its connection
      await until(() => dev.controller.resets >= 1, "reconnect after the dropped connection", 10_000);
      await ns.read(0, r);
      assert.ok(r.every((x) => x === 0x5a));
    } finally {
      await dev.close();
    }
  } finally {
    await t.close();
  }
});

test("target workers: a Worker killed mid-IO fails its connections; the host reconnects to the other and fsync'd data is intact", async () => {
  const t = await target();
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 2, reconnectDelayMs: 50 });
    try {
      const ns = dev.ns(1);
      // Writers keep IO in flight on both queues.
      const w = writers(dev, (k, i) => ({ lba: (k * 200 + (i % 100)) * 8, v: ((k * 37 + i) % 250) + 1 }));
      const acked = w.acked;
      await until(() => acked.size >= 20, "writes under way", 10_000);
      // It ends itself at its next pass (never terminated in the middle of an FFI call), then its queue goes.
      assert.equal(await t.killWorker(0), "stopped");
      assert.equal(t.workers, 1);
      await until(() => dev.controller.resets >= 1 && acked.size >= 60, "reconnect and more writes", 15_000);
      await w.stop();
      await ns.flush();
      // Every queue now lives on the surviving Worker.
      for (const w of t.queueWorkers(dev.controller.cntlid).values()) assert.equal(w, 1);
      await assertAcked(ns, acked);
    } finally {
      await dev.close();
    }
  } finally {
    await t.close();
  }
});

test("target workers: a software controller behind two Workers, each on a queue pair of its own, writes land on the device", async () => {
  await withDeviceTarget({ interrupts: "poll" }, { ioQueues: 2 }, async ({ back, t, dev, lines }) => {
    assert.equal(t.workers, 2, lines.join("\n"));
    assert.deepEqual(new Set(t.queueWorkers(dev.controller.cntlid).values()), new Set([0, 1]));
    const ns = dev.ns(1);
    const w = dev.allocBuffer(65536);
    for (let i = 0; i < w.length; i++) w[i] = (i * 7) >>> 3;
    await Promise.all([ns.write(0, w), ns.write(128, w), ns.write(256, w.subarray(0, 4096))]);
    await ns.flush();
    // Read back through the backing device itself: the Workers' queue pairs wrote it.
    const r = back.allocBuffer(65536);
    await back.ns(1).read(128, r);
    assert.deepEqual(r, w);
  });
});

test("target workers: a Worker stuck in a call when killed: its host reconnects meanwhile, nothing of it is freed under it", async () => {
  // Worker 0 blocks inside its 3rd Write (as a thread stuck in a synchronous call) until the gate opens.
  const gate = new Int32Array(new SharedArrayBuffer(8));
  const lines: string[] = [];
  const t = await target({ workers: 1, workerFaults: [{ fault: "stall", opcode: IoOpc.WRITE, nth: 3, gate: gate.buffer as SharedArrayBuffer }], log: (l) => lines.push(l) });
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 1, reconnectDelayMs: 50 });
    try {
      const ns = dev.ns(1);
      const acked = new Map<number, number>();
      // A lost Write may still land when its Worker comes back: its blocks are never written again,
      // so it cannot overwrite one acknowledged later. Other blocks are reused when the writer wraps
      // (a fast runtime goes round the 4 MiB namespace before the test stops it).
      const lostLbas = new Set<number>();
      let stop = false, lost = 0, acks = 0;
      const writer = (async () => {
        const b = dev.allocBuffer(4096);
        for (let i = 0, lba = 0; !stop; i++, lba = (lba + 8) % 8192) {
          if (lostLbas.has(lba)) continue;
          const v = (i % 250) + 1;
          b.fill(v);
          try {
            await ns.write(lba, b);
            acked.set(lba, v);
            acks++;
          } catch (e) {
            assert.ok(e instanceof ConnectionLostError, String(e));
            lostLbas.add(lba);
            acked.delete(lba);
            lost++;
          }
        }
      })();
      await until(() => Atomics.load(gate, 1) === 1, "the Worker stalled", 10_000);
      // It cannot answer: the kill gives up waiting (its queue and sockets stay), but its connection already failed.
      assert.equal(await t.killWorker(0, 200), "unresponsive");
      assert.equal(t.workers, 0);
      // Still stuck (the gate is shut): the host reconnected and writes again, now served by the listener.
      const before = acks;
      await until(() => dev.controller.resets >= 1 && acks >= before + 20, "reconnect and writes while the Worker is stuck", 15_000);
      assert.ok(lost >= 1, "the stuck Write failed as a lost connection");
      Atomics.store(gate, 0, 1);
      Atomics.notify(gate, 0);
      await until(() => acks >= before + 40, "writes after the Worker came back", 15_000);
      stop = true;
      await writer;
      await ns.flush();
      await assertAcked(ns, acked);
    } finally {
      await dev.close();
    }
  } finally {
    Atomics.store(gate, 0, 1);
    Atomics.notify(gate, 0);
    await t.close();
  }
  assert.ok(lines.some((l) => /did not stop within 200 ms/.test(l)), lines.join("\n"));
});

test("target workers: Workers on queue pairs of their own killed under IO, round after round: each ends itself, then its queue is released", async () => {
  const back = await NVMeDev.open("sim:ns=4M:512", { interrupts: "poll" });
  try {
    for (let round = 0; round < 3; round++) {
      await withTargetOn(back, { ioQueues: 2, reconnectDelayMs: 50 }, async ({ t, dev, lines }) => {
        assert.equal(t.workers, 2, lines.join("\n"));
        const ns = dev.ns(1);
        const w = writers(dev, (k, i) => ({ lba: (k * 100 + (i % 50)) * 8, v: ((round * 50 + k * 37 + i) % 250) + 1 }));
        const acked = w.acked;
        await until(() => acked.size >= 20, "writes under way", 10_000);
        assert.equal(await t.killWorker(round % 2), "stopped", lines.join("\n"));
        await until(() => dev.controller.resets >= 1 && acked.size >= 60, "reconnect and more writes", 15_000);
        await w.stop();
        await ns.flush();
        // Read back through the backing device itself.
        await assertAcked(back.ns(1), acked, `round ${round}, `);
      });
    }
  } finally {
    await back.close();
  }
});

test("target workers: a Worker whose loop throws after it opened is a crash the pool handles: its host reconnects, its queue is released", async () => {
  const back = await NVMeDev.open("sim:ns=4M:512", { interrupts: "poll" });
  const lines: string[] = [];
  try {
    // Its 10th Write makes the Worker's loop throw (outside any connection's error handling).
    const t = await NvmfTarget.listen({
      port: 0,
      subsystems: [{ nqn: NQN, namespaces: [new DevBackend(back, 1)] }],
      maxTransfer: 64 * 1024,
      inCapsule: 4096,
      maxIoQueues: 2,
      workers: 1,
      workerFaults: [{ fault: "crash", opcode: IoOpc.WRITE, nth: 10 }],
      log: (l) => lines.push(l),
    });
    try {
      const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 1, reconnectDelayMs: 50 });
      try {
        const ns = dev.ns(1);
        const w = writers(dev, (k, i) => ({ lba: (k * 100 + (i % 50)) * 8, v: ((k * 37 + i) % 250) + 1 }));
        await until(() => t.workers === 0, "the Worker's crash noticed", 15_000);
        // Its connection failed: the host reconnected (now served by the listener) and writes on.
        await until(() => dev.controller.resets >= 1 && w.acked.size >= 40, "reconnect and writes after the crash", 15_000);
        await w.stop();
        await ns.flush();
        // The crash ended as an answered kill: its sockets closed and its queue released.
        assert.equal(await t.killWorker(0, 2000), "stopped", lines.join("\n"));
        await assertAcked(back.ns(1), w.acked);
      } finally {
        await dev.close();
      }
    } finally {
      await t.close();
    }
  } finally {
    await back.close();
  }
  assert.ok(lines.some((l) => /worker 0 crashed: .*test fault/.test(l)), lines.join("\n"));
});

test("target workers: the listener sleeps between events: a quiet connected host costs it no pass, and an admin command after the quiet spell is answered", async () => {
  const t = await target({ workers: 1 });
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 1, katoMs: 0 });
    try {
      const b = dev.allocBuffer(4096);
      await dev.ns(1).read(0, b); // IO goes to the Worker: nothing for the listener
      await new Promise((r) => setTimeout(r, 300));
      const p0 = t.listenerPasses;
      await new Promise((r) => setTimeout(r, 1000));
      // Timer naps (capped at 100 ms with Workers) made ~10 passes a second here.
      const quiet = t.listenerPasses - p0;
      assert.ok(quiet <= 2, `listener passes in a quiet second: ${quiet}`);
      const log = await smartLog(dev);
      assert.equal(typeof log.temperature, "number");
      assert.ok(t.listenerPasses > p0 + quiet, "the admin command woke the listener");
    } finally {
      await dev.close();
    }
  } finally {
    await t.close();
  }
});

test("target workers: an adaptive Worker polls between a QD1 host's IOs (far fewer sleeps than IOs); an interrupt-mode one sleeps between them", async () => {
  const reads = async (t: NvmfTarget, n: number): Promise<number> => {
    const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 1, katoMs: 0 });
    try {
      const ns = dev.ns(1), b = dev.allocBuffer(4096);
      for (let i = 0; i < 20; i++) await ns.read(i, b); // connected and warm
      const s0 = t.workerSleeps;
      for (let i = 0; i < n; i++) await ns.read(i % 64, b);
      return t.workerSleeps - s0;
    } finally {
      await dev.close();
    }
  };
  // No device behind the Worker: it waits adaptively.
  const t = await target({ workers: 1 });
  try {
    const slept = await reads(t, 400);
    assert.ok(slept < 200, `an adaptive Worker slept ${slept} times in 400 QD1 reads`);
  } finally {
    await t.close();
  }
  // A device opened with interrupts: "interrupt": its Workers sleep whenever a pass finds nothing.
  const back = await NVMeDev.open("sim:ns=4M:512", { interrupts: "interrupt" });
  try {
    const t2 = await deviceTarget(back, []);
    try {
      const slept = await reads(t2, 100);
      assert.ok(slept >= 50, `an interrupt-mode Worker slept ${slept} times in 100 QD1 reads`);
    } finally {
      await t2.close();
    }
  } finally {
    await back.close();
  }
});

test("target workers: an idle Worker sleeps until something wakes it (no timed wake-ups); a reset of its device reaches its queue at once and IO resumes", async () => {
  await withDeviceTarget({}, { ioQueues: 1, katoMs: 0 }, async ({ back, t, dev, lines }) => {
    const ns = dev.ns(1), b = dev.allocBuffer(4096);
    b.fill(0x5a);
    await ns.write(8, b);
    // Past the first seconds, when an idle Worker's sleeps are still bounded (20 of 100 ms each).
    await new Promise((r) => setTimeout(r, 3500));
    const s0 = t.workerSleeps;
    await new Promise((r) => setTimeout(r, 1000));
    // Two Workers: with 100 ms timeouts they slept ~20 times in a quiet second.
    const slept = t.workerSleeps - s0;
    assert.ok(slept <= 4, `idle Workers slept ${slept} times in a quiet second`);
    // A controller reset of the backing device asks each Worker's queue to reset and waits for
    // the answer (2 s at most, then the queue is deemed unresponsive): idle Workers answer at once.
    const t0 = performance.now();
    await back.controller.recover(new ControllerResetError("test: reset under idle target Workers"));
    const took = performance.now() - t0;
    assert.ok(took < 1500, `the reset took ${took.toFixed(0)} ms (idle Workers did not answer)`);
    // The first read after it reaches the Worker at once: IO its backend held while the queue was
    // held for the reset goes once the queue resumes (it waited for the host's 30 s timeout before).
    const r = dev.allocBuffer(4096), t1 = performance.now();
    await ns.read(8, r);
    const readMs = performance.now() - t1;
    assert.ok(r.every((x) => x === 0x5a), "the data written before the reset");
    assert.ok(readMs < 5000, `the first read after the reset took ${readMs.toFixed(0)} ms; log: ${lines.join(" | ")}`);
    assert.ok(!lines.some((l) => /unresponsive/i.test(l)), lines.join("\n"));
  });
});
