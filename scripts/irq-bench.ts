/**
 * Interrupt wake latency and idle CPU, printed (not a test). A Worker plays
 * the device: it writes an eventfd every 200-800 µs and blocks until the waiter
 * acks through a SharedArrayBuffer word; the round trip (write → helper's
 * epoll_wait → Atomics.notify → waiter's waitAsync → ack → writer's
 * Atomics.wait) is an upper bound of the wake latency.
 * Idle CPU: process CPU time (all threads) while a waiter sleeps with no event.
 *
 * Usage: deno run -A scripts/irq-bench.ts [wakes]   |   bun scripts/irq-bench.ts [wakes]
 */
import { readFileSync } from "node:fs";
import process from "node:process";
import { EFD_CLOEXEC, EFD_NONBLOCK, loadLibc } from "../lib/ffi/mod.ts";
import { IrqHub } from "../lib/irq/hub.ts";

const N = Number(process.argv.find((a, i) => i >= 2 && /^\d+$/.test(a)) ?? 2000);
const WARM = 200;
const libc = await loadLibc();
const rt = libc.runtime;

function spawn(): Promise<Worker> {
  const w = new Worker(new URL("./irq-bench-worker.ts", import.meta.url), { type: "module" });
  return new Promise((resolve) => {
    w.onmessage = (e) => e.data.type === "loaded" && resolve(w);
  });
}

function on(w: Worker, type: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    w.onmessage = (e) => {
      if (e.data.type === type) resolve(e.data);
      else if (e.data.type === "error") reject(new Error(e.data.message));
    };
  });
}

function pct(a: number[], p: number): number {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(p / 100 * s.length))];
}

/** Process CPU time in ms, all threads: /proc/self/stat utime + stime (clock ticks of 10 ms). */
function procCpuMs(): number {
  const f = readFileSync("/proc/self/stat", "utf8");
  const rest = f.slice(f.lastIndexOf(")") + 2).split(" ");
  return (Number(rest[11]) + Number(rest[12])) * 10;
}

/** getrusage(RUSAGE_SELF) through the runtime: user + system µs of all threads. */
function cpuUs(): number {
  const u = process.cpuUsage();
  return u.user + u.system;
}

function report(name: string, rtt: number[]): void {
  console.log(
    `${rt} ${name}: wakes ${rtt.length}, round trip µs p50 ${pct(rtt, 50).toFixed(1)} p90 ${pct(rtt, 90).toFixed(1)} ` +
      `p99 ${pct(rtt, 99).toFixed(1)} max ${Math.max(...rtt).toFixed(0)}`,
  );
}

const load = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
console.log(`${rt} ${navigator.userAgent}; loadavg ${load()}; ${N} wakes after ${WARM} warm-up`);

const hub = await IrqHub.start({ libc });
try {
  // 1. Waiter on the main thread.
  {
    const efd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const irq = hub.add(efd);
    const ack = new Int32Array(new SharedArrayBuffer(8));
    const dev = await spawn();
    const done = on(dev, "done");
    dev.postMessage({ type: "writer", efd, ack: ack.buffer, n: N, warm: WARM });
    let finished = false;
    void done.then(() => finished = true);
    while (!finished) {
      irq.arm();
      if (await irq.sleep(100)) {
        Atomics.add(ack, 0, 1);
        Atomics.notify(ack, 0);
      }
    }
    report("hub, waiter on main", (await done).rtt as number[]);
    dev.terminate();
    await hub.remove(irq.word);
    libc.close(efd);
  }
  // 2. Waiter in a Worker.
  {
    const efd = libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    const irq = hub.add(efd);
    const ack = new Int32Array(new SharedArrayBuffer(8));
    const waiter = await spawn();
    const ready = on(waiter, "ready");
    waiter.postMessage({ type: "waiter", word: irq.word, ack: ack.buffer });
    await ready;
    const dev = await spawn();
    const done = on(dev, "done");
    dev.postMessage({ type: "writer", efd, ack: ack.buffer, n: N, warm: WARM });
    report("hub, waiter in a Worker", (await done).rtt as number[]);
    await on(waiter, "finished");
    dev.terminate();
    waiter.terminate();
    await hub.remove(irq.word);
    libc.close(efd);
  }
  // 3. Deno only: the waiter issues a nonblocking FFI read itself (one OS thread per pending wait).
  if (libc.readAsync) {
    const efd = libc.eventfd(0, EFD_CLOEXEC); // blocking fd: the read waits on an FFI thread
    const ack = new Int32Array(new SharedArrayBuffer(8));
    const buf = new Uint8Array(8);
    const dev = await spawn();
    const done = on(dev, "done");
    dev.postMessage({ type: "writer", efd, ack: ack.buffer, n: N, warm: WARM });
    for (let i = 0; i < N + WARM; i++) {
      await libc.readAsync(efd, buf);
      Atomics.add(ack, 0, 1);
      Atomics.notify(ack, 0);
    }
    report("direct nonblocking FFI read (no hub)", (await done).rtt as number[]);
    dev.terminate();
    libc.close(efd);
  }
  // 4. Idle: 16 registered vectors, one waiter sleeping, nothing fires.
  {
    const efds = Array.from({ length: 16 }, () => libc.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    const irqs = efds.map((fd) => hub.add(fd));
    for (const w of irqs) w.arm();
    const ms = 3000;
    const c0 = cpuUs(), p0 = procCpuMs(), t0 = performance.now();
    const woke = await Promise.all(irqs.map((w) => w.sleep(ms)));
    const wall = performance.now() - t0, c1 = cpuUs(), p1 = procCpuMs();
    console.log(
      `${rt} idle, 16 waiters asleep ${wall.toFixed(0)} ms (woke: ${woke.filter(Boolean).length}): process CPU ` +
        `${((c1 - c0) / 10 / wall).toFixed(3)} % of a core (getrusage), ${((p1 - p0) / wall * 100).toFixed(2)} % (/proc, 10 ms ticks)`,
    );
    for (const w of irqs) await hub.remove(w.word);
    for (const fd of efds) libc.close(fd);
  }
} finally {
  await hub.close();
}
console.log(`${rt} loadavg after: ${load()}`);
