/**
 * What an interrupt gate costs inside the QEMU guest (not a test; prints
 * figures): VectorGate mask/unmask of one MSI-X vector (one
 * VFIO_DEVICE_SET_IRQS each), and whether a completion posted while the
 * vector was masked fires once it is unmasked (the pending bit).
 *
 * Usage (guest): scripts/guest.sh -- deno run -A scripts/irq-gate-bench.ts [pairs]
 *                scripts/guest.sh -- bun scripts/irq-gate-bench.ts [pairs]
 */
import process from "node:process";
import { loadLibc } from "../lib/ffi/mod.ts";
import { IrqHub } from "../lib/irq/hub.ts";
import { Controller } from "../lib/nvme/controller.ts";
import { IoOpc } from "../lib/nvme/spec.ts";
import { gateFor, VectorGate, VfioInterrupts, msixTable } from "../lib/vfio/irq.ts";
import { VfioTransport } from "../lib/vfio/transport.ts";

const PCI = process.env.TSNVME_PCI ?? "0000:00:04.0";
const PAIRS = Number(process.argv.find((a, i) => i >= 2 && /^\d+$/.test(a)) ?? 200);
const libc = await loadLibc();
const cpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const pct = (a: number[], p: number) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(p / 100 * a.length))];

const t = VfioTransport.open(libc, PCI);
const hub = await IrqHub.start({ libc });
const irqs = VfioInterrupts.enable(libc, t.device, { vectors: 2 });
const waiters = irqs.eventfds.map((fd) => hub.add(fd));
const ctrl = await Controller.init(t, { ioQueues: 1, ioInterruptVectors: 2 });
try {
  const table = msixTable((o, n) => t.device.readConfig(o, n));
  console.log(`[${libc.runtime}] MSI-X table: ${JSON.stringify(table)}`);
  const ioctlGate = new VectorGate(libc, irqs.gateSpec(1)!);
  const mmioGate = gateFor(irqs.gateSpec(1, table)!, t.doorbells(), libc);
  for (const [name, g] of [["ioctl (SET_IRQS)", ioctlGate], ["MSI-X mask bit", mmioGate]] as const) {
    const mask: number[] = [], unmask: number[] = [];
    const c0 = cpuUs();
    for (let i = 0; i < PAIRS; i++) {
      let t0 = performance.now();
      g.mask();
      mask.push((performance.now() - t0) * 1000);
      t0 = performance.now();
      g.unmask();
      unmask.push((performance.now() - t0) * 1000);
    }
    const cpu = (cpuUs() - c0) / PAIRS;
    const f = (a: number[]) => `p50 ${pct(a, 50).toFixed(1)} p99 ${pct(a, 99).toFixed(1)} µs`;
    console.log(`[${libc.runtime}] ${name}: mask ${f(mask)}; unmask ${f(unmask)}; CPU per pair ${cpu.toFixed(1)} µs`);
  }
  const gate = mmioGate;

  // Completions while masked: counted not at all, then (pending bit) once at unmask.
  const q = ctrl.io[0], w = waiters[1];
  const data = ctrl.allocDma(4096);
  gate.mask();
  const before = w.count;
  for (let i = 0; i < 20; i++) await q.rw(IoOpc.READ, 1, i * 8, 7, data.iova, 4096);
  await new Promise((r) => setTimeout(r, 50));
  const masked = w.count - before;
  gate.unmask();
  await new Promise((r) => setTimeout(r, 50));
  const atUnmask = w.count - before - masked;
  for (let i = 0; i < 20; i++) await q.rw(IoOpc.READ, 1, i * 8, 7, data.iova, 4096);
  await new Promise((r) => setTimeout(r, 50));
  const open = w.count - before - masked - atUnmask;
  console.log(`[${libc.runtime}] 20 reads masked: ${masked} interrupts; at unmask: ${atUnmask}; 20 reads unmasked: ${open}`);
} finally {
  await ctrl.shutdown();
  for (const w of waiters) await hub.remove(w.word);
  t.close();
  await hub.close();
}
