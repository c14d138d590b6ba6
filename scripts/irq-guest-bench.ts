/**
 * Real MSI-X inside the QEMU guest (not a test; prints figures). A queue the
 * script drives itself (qid 2, IEN, vector 2) runs QD1 4 KiB reads with a pump
 * in each wait mode (IdlePolicy + sleepOnIrq); then idle CPU with nothing in
 * flight and a waiter asleep, and with an Asynchronous Event Request
 * outstanding on today's polled admin queue, for comparison.
 *
 * Usage (guest): scripts/guest.sh -- deno run -A scripts/irq-guest-bench.ts [ios]
 *                scripts/guest.sh -- bun scripts/irq-guest-bench.ts [ios]
 */
import process from "node:process";
import { loadLibc } from "../lib/ffi/mod.ts";
import { Idle, IdlePolicy, sleepOnIrq, type WaitMode } from "../lib/irq/adaptive.ts";
import { IrqHub } from "../lib/irq/hub.ts";
import { asyncEventRequestCmd, createIoCqCmd, createIoSqCmd, deleteIoCqCmd, deleteIoSqCmd, setRw } from "../lib/nvme/command.ts";
import { Controller } from "../lib/nvme/controller.ts";
import { IoOpc } from "../lib/nvme/spec.ts";
import { VfioInterrupts } from "../lib/vfio/irq.ts";
import { VfioTransport } from "../lib/vfio/transport.ts";

const PCI = process.env.TSNVME_PCI ?? "0000:00:04.0";
const IOS = Number(process.argv.find((a, i) => i >= 2 && /^\d+$/.test(a)) ?? 2000);
const libc = await loadLibc();
const rt = libc.runtime;
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p / 100 * a.length))];
const setImm = (globalThis as { setImmediate?: (f: () => void) => void }).setImmediate!;

const t = VfioTransport.open(libc, PCI);
const irqs = VfioInterrupts.enable(libc, t.device, { vectors: 3 });
const hub = await IrqHub.start({ libc });
const w = irqs.eventfds.map((fd) => hub.add(fd));
const ctrl = await Controller.init(t, { ioQueues: 1, ioInterruptVectors: 3 });
console.log(`${rt} ${navigator.userAgent}: ${irqs.kind} x${irqs.count}, ${IOS} QD1 4 KiB reads per mode`);

const depth = 64, qid = 2;
const sq = ctrl.allocDma(depth * 64), cq = ctrl.allocDma(depth * 16), data = ctrl.allocDma(4096);
await ctrl.adminCommand(createIoCqCmd(qid, depth, true, 2), cq.iova, 0);
await ctrl.adminCommand(createIoSqCmd(qid, depth, qid), sq.iova, 0);
const sq32 = new Uint32Array(sq.bytes.buffer, sq.bytes.byteOffset, depth * 16);
const cq32 = new Uint32Array(cq.bytes.buffer, cq.bytes.byteOffset, depth * 4);
const db = t.doorbells(), stride = ctrl.cap.doorbellStride;
let tail = 0, head = 0, phase = 1, cid = 0;
const reap = (): number => {
  let n = 0;
  while (((Atomics.load(cq32, head * 4 + 3) >>> 16) & 1) === phase) {
    n++;
    if (++head === depth) {
      head = 0;
      phase ^= 1;
    }
  }
  if (n) db[((2 * qid + 1) * stride) / 4] = head;
  return n;
};
const submit = (lba: number): void => {
  const e = sq32.subarray(tail * 16, tail * 16 + 16);
  setRw(e, IoOpc.READ, 1, lba, 7);
  e[0] = (IoOpc.READ | ((++cid & 0xffff) << 16)) >>> 0;
  e[6] = data.iova % 2 ** 32;
  e[7] = Math.floor(data.iova / 2 ** 32);
  tail = (tail + 1) % depth;
  db[(2 * qid * stride) / 4] = tail;
};

async function run(mode: WaitMode, spinUs: number, print = true): Promise<void> {
  const policy = new IdlePolicy({ mode, spinUs });
  const acts = [0, 0, 0, 0];
  const lat: number[] = [];
  const irq0 = w[2].count, c0 = cpuUs(), t0 = performance.now();
  for (let i = 0; i < IOS; i++) {
    const s = performance.now();
    submit((i * 8) % 100_000);
    let done = 0;
    for (;;) {
      done += reap();
      if (done) break;
      const a = policy.next(0, performance.now());
      acts[a]++;
      if (a === Idle.SPIN) await null;
      else if (a === Idle.YIELD) await new Promise<void>((r) => setImm(r));
      else if (a === Idle.NAP) await new Promise((r) => setTimeout(r, policy.napMs(performance.now())));
      else await sleepOnIrq(w[2], () => (done += reap()), 5000);
      if (a !== Idle.SPIN) policy.resumed(performance.now(), a === Idle.SLEEP);
    }
    policy.next(done, performance.now());
    lat.push((performance.now() - s) * 1000);
  }
  const wall = performance.now() - t0, cpu = cpuUs() - c0;
  if (!print) return;
  console.log(
    `${rt} ${mode.padEnd(9)} spin ${String(spinUs).padStart(3)} µs: ${(IOS / wall * 1000).toFixed(0)} IOPS, ` +
      `latency p50 ${pct(lat, 50).toFixed(0)} p99 ${pct(lat, 99).toFixed(0)} µs, CPU ${(cpu / IOS).toFixed(0)} µs/IO ` +
      `(${(cpu / 10 / wall).toFixed(0)} % of a core), interrupts ${w[2].count - irq0}, sleeps ${acts[Idle.SLEEP]}, ` +
      `spins ${acts[Idle.SPIN]}, yields ${acts[Idle.YIELD]}`,
  );
}

async function idle(what: string, wait: () => Promise<unknown>): Promise<void> {
  const c0 = cpuUs(), t0 = performance.now();
  await wait();
  const wall = performance.now() - t0;
  console.log(`${rt} idle ${what}: ${((cpuUs() - c0) / 10 / wall).toFixed(2)} % of a core over ${wall.toFixed(0)} ms`);
}

try {
  // Warm-up: JIT tiers settle slowly under TCG.
  for (const m of ["poll", "interrupt", "adaptive"] as const) await run(m, 50, false);
  await run("poll", 500);
  await run("interrupt", 0);
  await run("adaptive", 500);
  await run("adaptive", 50);
  await new Promise((r) => setTimeout(r, 1000)); // let GC and JIT threads finish
  await idle("baseline (a plain 3 s timer, for scale)", () => new Promise((r) => setTimeout(r, 3000)));
  w[2].arm();
  await idle("(a waiter asleep on vector 2, nothing in flight)", () => w[2].sleep(3000));
  const aer = ctrl.adminCommand(asyncEventRequestCmd(), 0, 0, 3_600_000).catch(() => {});
  await idle("(AER outstanding on today's polled admin queue)", () => new Promise((r) => setTimeout(r, 3000)));
  await ctrl.adminCommand(deleteIoSqCmd(qid));
  await ctrl.adminCommand(deleteIoCqCmd(qid));
  await ctrl.shutdown();
  await aer;
} finally {
  t.close();
  await hub.close();
}
