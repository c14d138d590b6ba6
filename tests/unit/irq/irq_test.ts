/** Interrupt groundwork without hardware: the idle policy, VFIO IRQ structs on a fake libc, the IrqHub on real eventfds. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK, type Libc, loadLibc } from "../../../lib/ffi/mod.ts";
import { Idle, IdlePolicy, sleepOnIrq } from "../../../lib/irq/adaptive.ts";
import { IrqHub } from "../../../lib/irq/hub.ts";
import { IrqWaiter } from "../../../lib/irq/waiter.ts";
import { InvalidArgumentError, SetupError } from "../../../lib/nvme/errors.ts";
import { gateFor, IrqIndex, MsixMaskGate, msixTable, VectorGate, VfioInterrupts } from "../../../lib/vfio/irq.ts";
import { VfioIoctl } from "../../../lib/vfio/vfio.ts";

// ---- IdlePolicy: a pure function of (completions, clock) ----

test("idle policy, poll mode: spin inside the window, then yield, then timer naps", () => {
  const p = new IdlePolicy({ mode: "poll", spinUs: 500 });
  assert.equal(p.next(3, 0), Idle.SPIN);
  assert.equal(p.next(0, 0.1), Idle.SPIN);
  assert.equal(p.next(0, 0.4), Idle.SPIN);
  assert.equal(p.next(0, 0.7), Idle.YIELD, "0.6 ms idle > 500 µs");
  p.resumed(0.7, false);
  assert.equal(p.next(0, 60), Idle.NAP, "idle > 50 ms");
  assert.equal(p.napMs(60), 1);
  assert.equal(p.napMs(1200), 10);
  p.resumed(61, false);
  assert.equal(p.next(1, 61), Idle.SPIN, "a completion restarts the window");
});

test("idle policy: yields to the event loop every yieldMs even while completions flow", () => {
  const p = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 2 });
  assert.equal(p.next(1, 10), Idle.SPIN);
  assert.equal(p.next(1, 11), Idle.SPIN);
  assert.equal(p.next(1, 12.5), Idle.YIELD);
  p.resumed(12.5, false);
  assert.equal(p.next(1, 13), Idle.SPIN);
});

test("idle policy: expensive yields are spaced further apart (~50x their cost, within yieldMs..maxYieldMs)", () => {
  const p = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 2, maxYieldMs: 20 });
  assert.equal(p.yieldEveryMs, 2);
  assert.equal(p.next(1, 0), Idle.SPIN);
  assert.equal(p.next(1, 2.5), Idle.YIELD);
  p.resumed(2.75, false); // a 0.25 ms yield (as setImmediate in a TCG guest): every 12.5 ms
  assert.equal(p.yieldEveryMs, 12.5);
  assert.equal(p.next(1, 15), Idle.SPIN);
  assert.equal(p.next(1, 15.5), Idle.YIELD);
  p.resumed(16.5, false); // 1 ms: capped at maxYieldMs
  assert.equal(p.yieldEveryMs, 20);
  assert.equal(p.next(1, 30), Idle.SPIN);
  assert.equal(p.next(1, 37), Idle.YIELD);
  p.resumed(37.001, false); // cheap again (a host): back to yieldMs
  assert.equal(p.yieldEveryMs, 2);
  p.resumed(40, true); // a sleep is no yield: nothing learned
  assert.equal(p.yieldEveryMs, 2);
  assert.throws(() => new IdlePolicy({ mode: "poll", maxYieldMs: -1 }), InvalidArgumentError);
});

test("idle policy, interrupt mode: sleep whenever a poll finds nothing", () => {
  const p = new IdlePolicy({ mode: "interrupt" });
  assert.equal(p.next(2, 0), Idle.SPIN, "reap again after completions");
  assert.equal(p.next(0, 0.001), Idle.SLEEP);
  p.resumed(5, true);
  assert.equal(p.next(0, 5.001), Idle.SLEEP);
});

test("idle policy, adaptive mode: poll for spinUs after the last completion, then sleep once", () => {
  const p = new IdlePolicy({ mode: "adaptive", spinUs: 200 });
  assert.equal(p.next(1, 0), Idle.SPIN);
  assert.equal(p.next(0, 0.05), Idle.SPIN);
  assert.equal(p.next(0, 0.1), Idle.SPIN);
  assert.equal(p.next(0, 0.26), Idle.SLEEP, "idle 210 µs");
  p.resumed(9, false); // timed out: still idle, sleep again without a new spin
  assert.equal(p.next(0, 9.001), Idle.SLEEP);
  p.resumed(10, true); // an interrupt: a new polling window
  assert.equal(p.next(0, 10.001), Idle.SPIN);
  assert.equal(p.next(4, 10.1), Idle.SPIN);
  assert.equal(p.next(0, 10.2), Idle.SPIN);
  assert.equal(p.next(0, 10.5), Idle.SLEEP);
  assert.equal(p.idleMs(10.5), 10.5 - 10.2);
});

test("idle policy, adaptive mode: a command submitted into a sleep is timed from its submission", () => {
  // An admin queue with an AER: it slept 100 ms, then a command went in and was answered 0.2 ms later.
  const mk = () => {
    const p = new IdlePolicy({ mode: "adaptive", spinUs: 500 });
    p.next(1, 0);
    p.next(0, 0.1);
    assert.equal(p.next(0, 0.7), Idle.SLEEP);
    return p;
  };
  const p = mk();
  p.submitted(100);
  p.resumed(100.2, true);
  assert.equal(p.windowUs, 500, "learned 0.2 ms, not the 100 ms gap");
  const q = mk();
  q.resumed(100.2, true); // without the stamp the gap counts (capped at maxSpinUs): the window grows
  assert.ok(q.windowUs > 500);
});

test("idle policy, adaptive mode: the window learns from a slow device, within [spinUs, maxSpinUs]", () => {
  const p = new IdlePolicy({ mode: "adaptive", spinUs: 500, maxSpinUs: 4000, yieldMs: 1000 });
  assert.equal(p.windowUs, 500);
  // A device that answers 1.5 ms after each burst: the first waits end in sleeps woken by the interrupt.
  let t = 0;
  for (let i = 0; i < 40; i++) {
    assert.equal(p.next(8, t), Idle.SPIN);
    assert.equal(p.next(0, t + 0.01), Idle.SPIN);
    const a = p.next(0, t + 0.01 + p.windowUs / 1000);
    if (a === Idle.SLEEP) p.resumed(t + 1.51, true);
    t += 1.51;
  }
  assert.ok(p.windowUs > 2500, `window ${p.windowUs} µs after waits of 1.5 ms: polled through`);
  assert.ok(p.windowUs <= 4000);
  assert.equal(p.next(8, t), Idle.SPIN);
  assert.equal(p.next(0, t + 0.01), Idle.SPIN);
  assert.equal(p.next(0, t + 1.5), Idle.SPIN, "1.5 ms without a completion: still polling");
  // The device is fast again: the window shrinks back to spinUs.
  t += 2;
  for (let i = 0; i < 60; i++) {
    p.next(1, t);
    p.next(0, t + 0.001);
    t += 0.05;
  }
  assert.equal(p.windowUs, 500);
  // Idleness is not slowness: a sleep that timed out teaches nothing.
  const q = new IdlePolicy({ mode: "adaptive", spinUs: 500 });
  q.next(1, 0);
  q.next(0, 0.1);
  assert.equal(q.next(0, 0.7), Idle.SLEEP);
  q.resumed(100, false);
  q.resumed(200, true);
  assert.equal(q.windowUs, 500);
  // Poll and interrupt modes keep spinUs.
  const r = new IdlePolicy({ mode: "poll", spinUs: 500 });
  r.next(1, 0);
  r.next(0, 0.1);
  r.next(5, 3);
  assert.equal(r.windowUs, 500);
  assert.throws(() => new IdlePolicy({ mode: "adaptive", maxSpinUs: -1 }), InvalidArgumentError);
});

test("idle policy rejects bad options", () => {
  assert.throws(() => new IdlePolicy({ mode: "sometimes" as "poll" }), InvalidArgumentError);
  assert.throws(() => new IdlePolicy({ mode: "poll", spinUs: -1 }), InvalidArgumentError);
  assert.throws(() => new IdlePolicy({ mode: "poll", yieldMs: NaN }), InvalidArgumentError);
});

// ---- VFIO interrupt structs, against a fake libc that plays VFIO ----

interface FakeVfio {
  libc: Libc;
  calls: { req: bigint; words: number[]; data: number[] }[];
  closed: number[];
}

function fakeVfio(counts: Record<number, number>, failSet: Set<number>): FakeVfio {
  const calls: FakeVfio["calls"] = [];
  const closed: number[] = [];
  let nextFd = 100, errno = 0;
  const libc = {
    runtime: "deno",
    eventfd: () => nextFd++,
    close: (fd: number) => (closed.push(fd), 0),
    errno: () => errno,
    ioctlPtr: (_fd: number, req: bigint, arg: Uint8Array) => {
      const v = new DataView(arg.buffer, arg.byteOffset, arg.byteLength);
      const words = [0, 1, 2, 3, 4].filter((i) => i * 4 + 4 <= arg.length).map((i) => v.getUint32(i * 4, true));
      const data: number[] = [];
      for (let o = 20; o + 4 <= arg.length && req === VfioIoctl.DEVICE_SET_IRQS; o += 4) data.push(v.getInt32(o, true));
      calls.push({ req, words, data });
      if (req === VfioIoctl.DEVICE_GET_IRQ_INFO) {
        const index = v.getUint32(8, true);
        v.setUint32(4, index === IrqIndex.INTX ? 0b111 : 0b1001, true); // INTx eventfd|maskable|automasked
        v.setUint32(12, counts[index] ?? 0, true);
        return 0;
      }
      if (req === VfioIoctl.DEVICE_SET_IRQS && (v.getUint32(4, true) & (1 << 2)) && failSet.has(v.getUint32(8, true))) {
        errno = 22;
        return -1;
      }
      return 0;
    },
  } as unknown as Libc;
  return { libc, calls, closed };
}

function fakeDevice() {
  const hooks: (() => void)[] = [];
  return { fd: 7, address: "0000:00:04.0", onClose: (h: () => void) => hooks.push(h), hooks };
}

test("VFIO interrupts: MSI-X first, one eventfd per vector, exact vfio_irq_set layout; disabled on close", () => {
  const f = fakeVfio({ [IrqIndex.MSIX]: 65, [IrqIndex.MSI]: 1, [IrqIndex.INTX]: 1 }, new Set());
  const dev = fakeDevice();
  const irqs = VfioInterrupts.enable(f.libc, dev, { vectors: 3 });
  assert.equal(irqs.kind, "msix");
  assert.equal(irqs.count, 3);
  assert.deepEqual([...irqs.eventfds], [100, 101, 102]);
  assert.equal(irqs.info.noResize, true);
  const info = f.calls[0];
  assert.equal(info.req, VfioIoctl.DEVICE_GET_IRQ_INFO);
  assert.deepEqual(info.words.slice(0, 1), [16], "argsz = sizeof(vfio_irq_info)");
  const set = f.calls[1];
  assert.equal(set.req, VfioIoctl.DEVICE_SET_IRQS);
  // argsz = 20 + 3 * 4; flags DATA_EVENTFD | ACTION_TRIGGER; index 2; start 0; count 3.
  assert.deepEqual(set.words, [32, (1 << 2) | (1 << 5), 2, 0, 3]);
  assert.deepEqual(set.data, [100, 101, 102]);
  assert.equal(dev.hooks.length, 1, "registered to be disabled when the device closes");
  dev.hooks[0]();
  const off = f.calls[2];
  assert.deepEqual(off.words, [20, (1 << 0) | (1 << 5), 2, 0, 0], "DATA_NONE | ACTION_TRIGGER, count 0");
  assert.deepEqual(f.closed, [100, 101, 102]);
  irqs.close();
  assert.equal(f.calls.length, 3, "close is idempotent");
});

test("VFIO interrupts: vectors clipped to what the device offers; MSI-X refused falls back to MSI", () => {
  const f = fakeVfio({ [IrqIndex.MSIX]: 4, [IrqIndex.MSI]: 1, [IrqIndex.INTX]: 1 }, new Set([IrqIndex.MSIX]));
  const irqs = VfioInterrupts.enable(f.libc, fakeDevice(), { vectors: 8 });
  assert.equal(irqs.kind, "msi");
  assert.equal(irqs.count, 1);
  assert.deepEqual(f.closed, [100, 101, 102, 103], "the refused MSI-X eventfds were closed");
});

test("VFIO interrupts: INTx is the last resort, and unmask sends ACTION_UNMASK", () => {
  const f = fakeVfio({ [IrqIndex.MSIX]: 0, [IrqIndex.MSI]: 0, [IrqIndex.INTX]: 1 }, new Set());
  const irqs = VfioInterrupts.enable(f.libc, fakeDevice(), { vectors: 2 });
  assert.equal(irqs.kind, "intx");
  assert.equal(irqs.info.automasked, true);
  irqs.unmask();
  const last = f.calls[f.calls.length - 1];
  assert.deepEqual(last.words, [20, (1 << 0) | (1 << 4), 0, 0, 1]);
});

test("VFIO interrupts: a typed SetupError naming every attempt when none works", () => {
  const f = fakeVfio({ [IrqIndex.MSIX]: 65, [IrqIndex.MSI]: 0, [IrqIndex.INTX]: 1 }, new Set([IrqIndex.MSIX, IrqIndex.INTX]));
  assert.throws(() => VfioInterrupts.enable(f.libc, fakeDevice(), { vectors: 2 }), (e: unknown) => {
    assert.ok(e instanceof SetupError);
    assert.equal(e.reason, "irq");
    assert.match(e.message, /MSI-X with 2 vector\(s\): VFIO_DEVICE_SET_IRQS failed: EINVAL/);
    assert.match(e.message, /MSI: not offered/);
    assert.match(e.message, /INTx with 1 vector\(s\)/);
    return true;
  });
  assert.throws(() => VfioInterrupts.enable(f.libc, fakeDevice(), { vectors: 0 }), SetupError);
});

// ---- IrqHub on real eventfds, written by a Worker playing the device ----

function spawn(): Promise<Worker> {
  const w = new Worker(new URL("../workers/irq_worker.js", import.meta.url), { type: "module" });
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => e.data.type === "loaded" && resolve(w);
    w.onerror = (e) => reject(new Error(e.message));
  });
}

/** Sleep on `w` until its count reaches `n`: no clock involved (the hub batches writes it reads together). */
async function until(w: IrqWaiter, n: number): Promise<void> {
  while (w.count < n) {
    w.arm();
    if (w.count >= n) return;
    await w.sleep();
  }
}

function next(w: Worker, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    w.onmessage = (e) => e.data.type === type && resolve(e.data);
  });
}

async function withHub(fn: (hub: IrqHub, libc: Libc, efds: number[]) => Promise<void>, n = 1, slots = 256): Promise<void> {
  const libc = await loadLibc();
  const efds = Array.from({ length: n }, () => libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  const hub = await IrqHub.start({ libc, slots });
  try {
    await fn(hub, libc, efds);
  } finally {
    await hub.close();
    for (const fd of efds) libc.close(fd);
  }
}

test("hub: a sleeping waiter wakes when a Worker writes its eventfd; the count is the number of writes", async () => {
  await withHub(async (hub, _libc, [efd]) => {
    const irq = hub.add(efd);
    const dev = await spawn();
    try {
      irq.arm();
      const done = next(dev, "written");
      dev.postMessage({ type: "write", fds: [efd], times: 1, gapMs: 20 });
      assert.equal(await irq.sleep(), true);
      await done;
      await until(irq, 1);
      assert.equal(irq.count, 1);
      irq.arm();
      const five = next(dev, "written");
      dev.postMessage({ type: "write", fds: [efd], times: 5, gapMs: 1 });
      await five;
      await until(irq, 6);
      assert.equal(irq.count, 6, "every write counted once, however they were batched");
      assert.equal(hub.count(irq.word), 6);
    } finally {
      dev.terminate();
    }
  });
});

test("hub: no lost wake-up: an interrupt between arm and sleep makes sleep return at once", async () => {
  await withHub(async (hub, libc, [efd]) => {
    const irq = hub.add(efd);
    irq.arm();
    const one = new Uint8Array(8);
    one[0] = 1;
    libc.write(efd, one);
    // Without a timeout: were the wake lost, this test would hang (and fail on Bun's timeout).
    assert.equal(await irq.sleep(), true);
    assert.equal(irq.fired(), true);
  });
});

test("hub: sleep with a timeout and no interrupt resolves false", async () => {
  await withHub(async (hub, _libc, [efd]) => {
    const irq = hub.add(efd);
    irq.arm();
    assert.equal(await irq.sleep(5), false);
    assert.equal(await irq.sleep(0), false);
    assert.equal(irq.count, 0);
  });
});

test("hub: a sleep with a timeout ends at a Worker's interrupt, round after round, leaving no timer", async () => {
  // The sleep's timeout is our own timer; the wait itself has none (see IrqWaiter.sleep). 30 rounds
  // of a helper thread's notify ending a finite sleep; Deno's op sanitizer fails a leftover timer.
  await withHub(async (hub, _libc, [efd]) => {
    const irq = hub.add(efd);
    const dev = await spawn();
    try {
      for (let i = 1; i <= 30; i++) {
        irq.arm();
        const done = next(dev, "written");
        dev.postMessage({ type: "write", fds: [efd], times: 1, gapMs: 1 });
        assert.equal(await irq.sleep(60_000), true, `round ${i}: woken by the interrupt`);
        await done;
        await until(irq, i);
      }
      assert.equal(irq.count, 30);
    } finally {
      dev.terminate();
    }
  });
});

test("hub: wake() ends a sleep without counting an interrupt", async () => {
  await withHub(async (hub, _libc, [efd]) => {
    const irq = hub.add(efd);
    irq.arm();
    const sleeping = irq.sleep();
    new IrqWaiter(irq.word).wake();
    assert.equal(await sleeping, false);
    assert.equal(irq.count, 0);
  });
});

test("hub: sleepOnIrq reaps first and does not sleep when completions are already there", async () => {
  await withHub(async (hub, _libc, [efd]) => {
    const irq = hub.add(efd);
    let reaps = 0;
    assert.equal(await sleepOnIrq(irq, () => (reaps++, 1), 60_000), true);
    assert.equal(reaps, 1);
  });
});

test("hub: 32 eventfds, each waiter wakes only for its own", async () => {
  await withHub(async (hub, _libc, efds) => {
    const irqs = efds.map((fd) => hub.add(fd));
    const dev = await spawn();
    try {
      for (const i of irqs) i.arm();
      const odd = efds.filter((_, i) => i % 2 === 1);
      const done = next(dev, "written");
      dev.postMessage({ type: "write", fds: odd, times: 2, gapMs: 0 });
      await done;
      await Promise.all(irqs.filter((_, i) => i % 2 === 1).map((w) => w.sleep()));
      for (const [i, w] of irqs.entries()) if (i % 2 === 1) await until(w, 2);
      assert.deepEqual(irqs.map((w) => w.count), efds.map((_, i) => (i % 2 === 1 ? 2 : 0)));
      assert.equal(irqs.filter((w) => w.fired()).length, 16);
    } finally {
      dev.terminate();
    }
  }, 32);
});

test("hub: a waiter in a Worker, built from the posted word, wakes on the eventfd", async () => {
  await withHub(async (hub, libc, [efd]) => {
    const irq = hub.add(efd);
    const w = await spawn();
    try {
      const armed = next(w, "armed");
      w.postMessage({ type: "wait", word: irq.word });
      await armed;
      const woke = next(w, "woke");
      const one = new Uint8Array(8);
      one[0] = 1;
      libc.write(efd, one);
      const r = await woke;
      assert.equal(r.woke, true);
      assert.equal(r.count, 1);
    } finally {
      w.terminate();
    }
  });
});

test("hub: close wakes sleepers (false), later sleeps return at once, add is refused", async () => {
  const libc = await loadLibc();
  const efd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const hub = await IrqHub.start({ libc, slots: 4 });
  const irq = hub.add(efd);
  irq.arm();
  const sleeping = irq.sleep();
  await hub.close();
  assert.equal(await sleeping, false);
  assert.equal(irq.stopped, true);
  assert.equal(await new IrqWaiter(irq.word).sleep(), false);
  assert.throws(() => hub.add(efd), /closed/);
  await hub.close();
  libc.close(efd);
});

test("hub: a helper whose epoll_wait fails stops its waiters and reports why", async () => {
  const real = await loadLibc();
  const efd = real.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  // "epoll" fd that is an eventfd: epoll_ctl is faked, the helper's own epoll_wait gets EINVAL.
  const notEpoll = real.eventfd(0, EFD_CLOEXEC);
  const libc = { ...real, epollCreate1: () => notEpoll, epollCtl: () => 0 } as Libc;
  let hub: IrqHub | null = null;
  try {
    hub = await IrqHub.start({ libc });
  } catch (e) {
    // The helper may fail before start() returns: then start() itself rejects.
    assert.ok(e instanceof SetupError, String(e));
    assert.match(e.message, /EINVAL/);
  }
  if (hub) {
    const irq = hub.add(efd);
    irq.arm();
    assert.equal(await irq.sleep(), false, "a sleeper returns instead of hanging");
    assert.equal(irq.stopped, true);
    assert.match(hub.failure ?? "", /epoll_wait failed: EINVAL/);
    await hub.close();
  }
  real.close(efd);
});

test("hub: full and bad options are InvalidArgumentError; remove frees the slot", async () => {
  await assert.rejects(IrqHub.start({ slots: 1 }), InvalidArgumentError);
  await withHub(async (hub, libc, efds) => {
    const a = hub.add(efds[0]);
    const c = hub.add(efds[1]);
    hub.add(efds[2]);
    assert.throws(() => hub.add(efds[3]), /full/);
    await hub.remove(a.word);
    await hub.remove(a.word); // twice: a no-op
    const one = new Uint8Array(8);
    one[0] = 1;
    libc.write(efds[0], one);
    // A later write to a watched fd is seen in the same or a later helper turn than the removed one would be.
    c.arm();
    libc.write(efds[1], one);
    assert.equal(await c.sleep(), true);
    assert.equal(a.count, 0, "the removed eventfd is not read any more");
    const b = hub.add(efds[3]);
    assert.equal(b.word.slot, a.word.slot, "slot reused");
  }, 4, 4);
});

test("VectorGate: one SET_IRQS on its vector alone (eventfd to turn on, -1 to turn off), only on a change", () => {
  const f = fakeVfio({ [IrqIndex.MSIX]: 65 }, new Set());
  const irqs = VfioInterrupts.enable(f.libc, fakeDevice(), { vectors: 3 });
  const spec = irqs.gateSpec(2)!;
  assert.deepEqual(spec, { deviceFd: 7, index: IrqIndex.MSIX, vector: 2, eventfd: 102 });
  const gate = new VectorGate(f.libc, spec);
  assert.equal(gate.masked, true, "state unknown until the first change: not believed on");
  const n0 = f.calls.length;
  gate.mask();
  gate.mask();
  assert.equal(gate.masked, true);
  gate.unmask();
  gate.unmask();
  assert.equal(gate.masked, false);
  const sets = f.calls.slice(n0);
  assert.equal(sets.length, 2, "a repeated call is a no-op");
  // argsz 24; DATA_EVENTFD | ACTION_TRIGGER; MSI-X; start 2; count 1.
  assert.deepEqual(sets[0].words, [24, (1 << 2) | (1 << 5), 2, 2, 1]);
  assert.deepEqual(sets[0].data, [-1], "off: the eventfd detached");
  assert.deepEqual(sets[1].words, [24, (1 << 2) | (1 << 5), 2, 2, 1]);
  assert.deepEqual(sets[1].data, [102], "on: the vector's eventfd again");
  irqs.close();
  assert.equal(irqs.gateSpec(2), null, "no gate once closed");
});

test("VectorGate: a failed ioctl leaves the vector on for good; MSI and INTx have no gate", () => {
  const f = fakeVfio({ [IrqIndex.MSIX]: 65 }, new Set());
  const irqs = VfioInterrupts.enable(f.libc, fakeDevice(), { vectors: 2 });
  const gate = new VectorGate(f.libc, irqs.gateSpec(1)!);
  gate.unmask();
  const failing = { ...f.libc, ioctlPtr: () => -1, errno: () => 9 } as unknown as Libc;
  const bad = new VectorGate(failing, irqs.gateSpec(1)!);
  bad.unmask();
  assert.equal(bad.masked, false, "never believed off after a failed turn-on");
  assert.equal(bad.failed, 9);
  bad.mask();
  assert.equal(bad.masked, false, "mask is off for good after a failure: sleeps can always be woken");
  const m = fakeVfio({ [IrqIndex.MSIX]: 0, [IrqIndex.MSI]: 1 }, new Set());
  const msi = VfioInterrupts.enable(m.libc, fakeDevice(), { vectors: 1 });
  assert.equal(msi.kind, "msi");
  assert.equal(msi.gateSpec(0), null);
});

test("IrqWaiter with a gate: arm turns the vector on before the count snapshot, disarm turns it off", async () => {
  await withHub(async (hub, libc, [efd]) => {
    const log: string[] = [];
    let on = true; // as VfioInterrupts.enable leaves it; the gate makes repeated calls no-ops
    const gate = {
      get masked() {
        return !on;
      },
      mask: () => on && (on = false, log.push("mask")),
      unmask: () => !on && (on = true, log.push("unmask")),
    };
    const irq = new IrqWaiter(hub.add(efd).word, gate);
    assert.equal(irq.gated, true);
    irq.disarm();
    irq.arm();
    irq.arm(); // already on: no second call
    const one = new Uint8Array(8);
    one[0] = 1;
    libc.write(efd, one);
    assert.equal(await irq.sleep(), true);
    irq.disarm();
    irq.disarm();
    assert.deepEqual(log, ["mask", "unmask", "mask"]);
    assert.equal(new IrqWaiter(irq.word).gated, false);
  });
});

test("MSI-X table located from config space; MsixMaskGate stores Vector Control's mask bit, keeping the reserved bits", () => {
  // Config space: status with a capability list, MSI (05h) at 0x50 -> MSI-X (11h) at 0x70, table in BAR0 at 0x2000.
  const cfg = new Uint8Array(256);
  const dv = new DataView(cfg.buffer);
  dv.setUint16(0x06, 0x10, true);
  cfg[0x34] = 0x50;
  cfg[0x50] = 0x05;
  cfg[0x51] = 0x70;
  cfg[0x70] = 0x11;
  cfg[0x71] = 0;
  dv.setUint32(0x74, 0x2000 | 0, true);
  const read = (o: number, n: number) => cfg.slice(o, o + n);
  assert.deepEqual(msixTable(read), { bar: 0, offset: 0x2000 });
  dv.setUint16(0x06, 0, true);
  assert.equal(msixTable(read), null, "no capability list");

  const f = fakeVfio({ [IrqIndex.MSIX]: 65 }, new Set());
  const irqs = VfioInterrupts.enable(f.libc, fakeDevice(), { vectors: 3 });
  const spec = irqs.gateSpec(2, { bar: 0, offset: 0x2000 })!;
  assert.equal(spec.vectorControl, 0x2000 + 2 * 16 + 12 - 0x1000, "entry 2's Vector Control, from BAR0 + 0x1000");
  assert.equal(irqs.gateSpec(2, { bar: 2, offset: 0 })!.vectorControl, undefined, "a table in another BAR: no MMIO gate");
  const bar = new Uint32Array(0x3000 / 4); // BAR0 from 0x1000
  bar[spec.vectorControl! / 4] = 0xf0; // reserved bits set
  const n0 = f.calls.length;
  const gate = gateFor(spec, bar, f.libc);
  assert.ok(gate instanceof MsixMaskGate);
  gate.mask();
  assert.equal(bar[spec.vectorControl! / 4], 0xf1);
  gate.unmask();
  gate.unmask();
  assert.equal(bar[spec.vectorControl! / 4], 0xf0);
  assert.equal(gate.masked, false);
  assert.equal(f.calls.length, n0, "no ioctl");
  assert.ok(gateFor(irqs.gateSpec(2)!, bar, f.libc) instanceof VectorGate, "without a table location: the ioctl gate");
  assert.ok(gateFor(spec, null, f.libc) instanceof VectorGate, "without a BAR view: the ioctl gate");
});

test("idle policy, adaptive mode: time the pump did not run does not count toward the window", () => {
  const p = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 1000 });
  p.next(1, 0);
  assert.equal(p.next(0, 0.01), Idle.SPIN);
  // A 5 ms stall between two empty polls: not the device's time.
  p.stalled(4.99);
  assert.equal(p.next(0, 5), Idle.SPIN, "polls again after a stall instead of sleeping");
  assert.equal(p.next(0, 5.2), Idle.SPIN);
  assert.equal(p.next(0, 5.4), Idle.SPIN);
  assert.equal(p.next(0, 5.55), Idle.SLEEP, "sleeps once the window has been polled through");
  // A short gap (a normal turn) counts as waiting.
  const q = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 1000 });
  q.next(1, 0);
  q.next(0, 0.01);
  q.stalled(0.1);
  assert.equal(q.next(0, 0.6), Idle.SLEEP);
  // Poll mode ignores it.
  const r = new IdlePolicy({ mode: "poll", spinUs: 500, yieldMs: 1000, napAfterMs: 1e9 });
  r.next(1, 0);
  r.next(0, 0.01);
  r.stalled(4.99);
  assert.equal(r.next(0, 5), Idle.YIELD);
});

test("idle policy, adaptive mode: a run after the queue sat empty polls a share of that time, then sleeps (a trickle)", () => {
  const p = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 1000 });
  assert.equal(p.spinShare, 0.001);
  // A stream first: the pump never stops, so its window is the whole 500 µs.
  p.restart();
  p.next(1, 0);
  assert.equal(p.next(0, 0.1), Idle.SPIN);
  assert.equal(p.next(0, 0.5), Idle.SPIN);
  assert.equal(p.next(0, 0.61), Idle.SLEEP);
  p.resumed(1, true);
  // The queue empties at 1 ms; the next read comes 100 ms later (10 reads a second): 100 µs of polling, then sleep.
  p.emptied(1);
  p.restart();
  assert.equal(p.next(0, 101), Idle.SPIN, "a very short spin first");
  assert.equal(p.runWindowUs, 100);
  assert.equal(p.next(0, 101.05), Idle.SPIN);
  assert.equal(p.next(0, 101.11), Idle.SLEEP, "sleeps after 110 µs, not the 500 µs window");
  p.resumed(102, true); // the interrupt: the read is done
  assert.equal(p.windowUs, 500, "a trickle's sleep teaches the window nothing");
  // 100 reads a second or more: sleep at the second poll.
  p.emptied(102);
  p.restart();
  assert.equal(p.next(0, 112), Idle.SPIN);
  assert.equal(p.runWindowUs, 10);
  assert.equal(p.next(0, 112.011), Idle.SLEEP);
  // The same run then turns into a stream (completions, more commands): the whole window again.
  p.resumed(113, true);
  assert.equal(p.next(1, 113.01), Idle.SPIN);
  assert.equal(p.runWindowUs, 500);
  assert.equal(p.next(0, 113.02), Idle.SPIN);
  assert.equal(p.next(0, 113.4), Idle.SPIN);
  assert.equal(p.next(0, 113.53), Idle.SLEEP);
});

test("idle policy: the trickle cap is adaptive mode's only, and spinShare 0 turns it off", () => {
  for (const mode of ["poll", "interrupt"] as const) {
    const p = new IdlePolicy({ mode, spinUs: 500, yieldMs: 1000, napAfterMs: 1e9 });
    p.emptied(0);
    p.restart();
    p.next(0, 100);
    assert.equal(p.runWindowUs, 500, mode);
  }
  const q = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 1000, spinShare: 0 });
  q.emptied(0);
  q.restart();
  assert.equal(q.next(0, 100), Idle.SPIN);
  assert.equal(q.next(0, 100.4), Idle.SPIN, "no cap: the whole window");
  assert.equal(q.next(0, 100.51), Idle.SLEEP);
  // A run with no emptied() before it (the queue's first) is not capped either.
  const r = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 1000 });
  r.restart();
  assert.equal(r.next(0, 1000), Idle.SPIN);
  assert.equal(r.runWindowUs, 500);
  assert.throws(() => new IdlePolicy({ mode: "adaptive", spinShare: -1 }), InvalidArgumentError);
});

test("idle policy, adaptive mode: in a trickle's capped run a gap between polls still counts (the spin's own time)", () => {
  const p = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 1000 });
  p.emptied(0);
  p.restart();
  assert.equal(p.next(0, 100), Idle.SPIN);
  // 300 µs between two empty polls: over half the 500 µs window, which a stream would discount as a stall.
  p.stalled(0.3);
  assert.equal(p.next(0, 100.3), Idle.SLEEP, "the 100 µs cap ran out: sleep, do not poll on");
  // In a stream the same gap is a stall (unchanged).
  const q = new IdlePolicy({ mode: "adaptive", spinUs: 500, yieldMs: 1000 });
  q.next(1, 0);
  q.next(0, 0.01);
  q.stalled(0.3);
  assert.equal(q.next(0, 0.31), Idle.SPIN);
});
