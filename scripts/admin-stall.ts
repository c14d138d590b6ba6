/**
 * The admin-queue stall of issue 17 (Bun, one vCPU): open a controller, run Identify
 * Controller/Namespace 20 times, close; N rounds. A command still waiting after 4 s dumps what the
 * host and the device show: admin stats, both rings (the JS view and the raw memory read through
 * FFI, which must agree), the pages' PFNs then and at allocation, the shadow doorbell / EventIdx
 * pages QEMU writes for the admin queue, the vector's interrupt count and MSI-X mask, then reaps
 * by hand. Commands fail after 8 s (adminTimeoutMs) so a stalled round ends.
 * Usage (in the guest): bun scripts/admin-stall.ts PCI [ROUNDS] [poll|adaptive|interrupt] [nodbbuf] [shift]
 * `nodbbuf`: no Doorbell Buffer Config; `shift`: each round's rings at IOVAs the last round did not use.
 * @module
 */
import process from "node:process";
import { spawnSync } from "node:child_process";
import { NVMeDev } from "../lib/dev.ts";
import { loadLibc } from "../lib/ffi/mod.ts";
import { VfioTransport } from "../lib/vfio/transport.ts";
import { identifyControllerCmd, identifyNamespaceCmd } from "../lib/nvme/command.ts";
import type { DmaBuffer, InterruptSource } from "../lib/nvme/transport.ts";

const pci = process.argv[2];
const N = Number(process.argv[3] ?? 20);
const mode = (process.argv[4] ?? "adaptive") as "poll" | "adaptive" | "interrupt";
const nodbbuf = process.argv.includes("nodbbuf");
const shift = process.argv.includes("shift");
const WD = 4000;
const rt = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
const log = (s: string) => process.stderr.write(`[${rt} diag ${(performance.now() / 1000).toFixed(2)}] ${s}\n`);
const libc = await loadLibc();
let stalls = 0, recovered = 0;
/** Identifies per round at a CLI's pace (50 ms apart), after the back-to-back ones. */
const SPACED = 10;
let spacedLat = 0, spacedCpu = 0;

function hex(v: number) {
  return (v >>> 0).toString(16);
}

function pfn(vaddr: bigint): string {
  const fd = libc.open("/proc/self/pagemap", 0);
  if (fd < 0) return "?";
  const b = new Uint8Array(8);
  libc.pread(fd, b, (vaddr / 4096n) * 8n);
  libc.close(fd);
  const v = new DataView(b.buffer).getBigUint64(0, true);
  return `${(v >> 63n) & 1n ? "present" : "absent"} pfn 0x${(v & ((1n << 55n) - 1n)).toString(16)}`;
}

interface Ctx {
  t: VfioTransport;
  bufs: DmaBuffer[];
  pfns: Map<DmaBuffer, string>;
  irq: { src: InterruptSource | null };
  health: { n: number };
  dev: NVMeDev | null;
}

function dump(what: string, c: Ctx, t0: number): void {
  const t = c.t;
  stalls++;
  const csts = t.readReg32(0x1c);
  const asq = Number(t.readReg64(0x28)), acq = Number(t.readReg64(0x30));
  log(`STALL ${what}: ${(performance.now() - t0).toFixed(0)} ms, CSTS 0x${hex(csts)}, health checks ${c.health.n}, ASQ 0x${hex(asq)} ACQ 0x${hex(acq)}`);
  if (c.dev) {
    const s = c.dev.controller.admin.stats;
    log(`  admin stats ${JSON.stringify(s)} inflight ${c.dev.controller.admin.inflight}`);
  }
  log(`  bufs: ${c.bufs.map((b) => `0x${hex(b.iova)}+${b.size}`).join(" ")}`);
  const sq = c.bufs.find((b) => b.iova === asq), cq = c.bufs.find((b) => b.iova === acq);
  if (!sq || !cq) {
    log("  admin rings not found among the buffers");
    return;
  }
  const cq32 = new Uint32Array(cq.bytes.buffer, cq.bytes.byteOffset, 32 * 4);
  const sq32 = new Uint32Array(sq.bytes.buffer, sq.bytes.byteOffset, 32 * 16);
  const cqa = libc.addressOf(cq.bytes), sqa = libc.addressOf(sq.bytes);
  const cqes: string[] = [];
  for (let i = 0; i < 32; i++) {
    const d3 = cq32[i * 4 + 3], a3 = Atomics.load(cq32, i * 4 + 3), p3 = libc.peek32(cqa + BigInt(i * 16 + 12));
    if (d3 === 0 && p3 === 0) continue;
    const diff = d3 !== p3 || a3 !== p3 ? ` VIEW!=MEM(js ${hex(d3)} atomics ${hex(a3)} peek ${hex(p3)})` : "";
    cqes.push(`${i}:cid${p3 & 0xffff} p${(p3 >>> 16) & 1} sf${hex(p3 >>> 17)} sqhd${libc.peek32(cqa + BigInt(i * 16 + 8)) & 0xffff}${diff}`);
  }
  log(`  CQ: ${cqes.join(" ")}`);
  // The first slot whose DW3 (CID, phase, status) is zero, whole: a lost RMW race leaves the
  // device's DW0-DW2 (SQ head, SQ id) in place under a zeroed DW3.
  for (let i = 0; i < 32; i++) {
    if (libc.peek32(cqa + BigInt(i * 16 + 12)) !== 0) continue;
    const dw = [0, 1, 2, 3].map((k) => hex(libc.peek32(cqa + BigInt(i * 16 + k * 4))));
    log(`  CQ slot ${i} (first with DW3 = 0): DW0-DW3 ${dw.join(" ")}`);
    break;
  }
  // The same page read by the kernel (/proc/self/mem goes through the kernel's own mapping of the
  // physical page, not this process's): a CQE seen there and not above means the two views differ.
  const memFd = libc.open("/proc/self/mem", 0);
  if (memFd >= 0) {
    const page = new Uint8Array(4096);
    libc.pread(memFd, page, cqa);
    libc.close(memFd);
    const k32 = new Uint32Array(page.buffer);
    const kcqes: string[] = [];
    for (let i = 0; i < 32; i++) {
      const k3 = k32[i * 4 + 3];
      if (k3 !== 0) kcqes.push(`${i}:cid${k3 & 0xffff} p${(k3 >>> 16) & 1} sqhd${k32[i * 4 + 2] & 0xffff}`);
    }
    log(`  CQ through /proc/self/mem: ${kcqes.join(" ")}`);
    // Another process on this CPU switches the page tables (under TCG, a flush of the vCPU's
    // whole soft TLB): a CQE that appeared only now would have been hidden by a stale translation
    // (in 25 stalls it never did: all three views agreed).
    spawnSync("/bin/true");
    const after: string[] = [];
    for (let i = 0; i < 32; i++) {
      const p3 = libc.peek32(cqa + BigInt(i * 16 + 12));
      if (p3 !== 0) after.push(`${i}:cid${p3 & 0xffff}`);
    }
    log(`  CQ after a context switch: ${after.join(" ")}`);
  }
  const sqes: string[] = [];
  for (let i = 0; i < 32; i++) {
    const d0 = sq32[i * 16], p0 = libc.peek32(sqa + BigInt(i * 64));
    if (d0 === 0 && p0 === 0) continue;
    sqes.push(`${i}:opc${hex(p0 & 0xff)} cid${p0 >>> 16} nsid${sq32[i * 16 + 1]} cdw10 ${hex(sq32[i * 16 + 10])}${d0 !== p0 ? " VIEW!=MEM" : ""}`);
  }
  log(`  SQ: ${sqes.join(" ")}`);
  log(`  CQ page now ${pfn(cqa)} (at alloc: ${c.pfns.get(cq)}); SQ page now ${pfn(sqa)} (at alloc: ${c.pfns.get(sq)})`);
  for (const b of c.bufs) {
    const now = pfn(libc.addressOf(b.bytes));
    if (now !== c.pfns.get(b)) log(`  buffer 0x${hex(b.iova)} moved: ${c.pfns.get(b)} -> ${now}`);
  }
  for (const b of c.bufs.slice(-2)) {
    const u = new Uint32Array(b.bytes.buffer, b.bytes.byteOffset, 4);
    log(`  buf 0x${hex(b.iova)}: ${Array.from(u).map(hex).join(" ")}`);
  }
  if (c.irq.src) {
    const w = c.irq.src.word(0) as unknown as { sab: SharedArrayBuffer; slot: number; gate?: { vectorControl?: number } };
    const i32 = new Int32Array(w.sab);
    log(`  irq v0 count ${i32[4 + w.slot]}, helper state ${i32[1]} turns ${i32[3]}`);
    if (w.gate?.vectorControl !== undefined) log(`  MSI-X v0 vector control 0x${hex(t.doorbells()[w.gate.vectorControl / 4])}`);
  }
  if (c.dev) {
    const n = c.dev.controller.admin.processCompletions();
    log(`  processCompletions() by hand: ${n}`);
    if (n > 0) recovered++;
  }
}

async function guard<T>(what: string, c: Ctx, p: Promise<T>): Promise<T> {
  const t0 = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const wd = new Promise<void>((r) => timer = setTimeout(r, WD));
  const tagged = p.then(() => "done", () => "done");
  if (await Promise.race([tagged, wd]) !== "done") dump(what, c, t0);
  clearTimeout(timer);
  return await p;
}

for (let i = 0; i < N; i++) {
  const t = VfioTransport.open(libc, pci);
  const c: Ctx = { t, bufs: [], pfns: new Map(), irq: { src: null }, health: { n: 0 }, dev: null };
  const alloc = t.allocDma.bind(t);
  t.allocDma = (n: number) => {
    const b = alloc(n);
    c.bufs.push(b);
    c.pfns.set(b, pfn(libc.addressOf(b.bytes)));
    return b;
  };
  // IOVA shift: a dummy buffer of a round-dependent size first, so no IOVA of this round's rings was used by the last one.
  if (shift) c.bufs.push(t.allocDma(4096 * (1 + 33 * (i % 5))));
  const en = t.enableInterrupts.bind(t);
  t.enableInterrupts = async (v: number) => (c.irq.src = await en(v));
  const health = c.health;
  const t0 = performance.now();
  const opts = { transport: t, interrupts: mode, adminTimeoutMs: 8000, ...(nodbbuf ? { pcie: { shadowDoorbells: false } } : {}) };
  let dev: NVMeDev;
  try {
    dev = await guard(`open #${i}`, c, NVMeDev.open(pci, opts));
    c.dev = dev;
  } catch (e) {
    log(`open #${i} failed: ${(e as Error).message}`);
    continue;
  }
  const qp = dev.controller.admin;
  const hc = qp.onHealthCheck;
  qp.onHealthCheck = () => {
    health.n++;
    hc?.();
  };
  const topen = performance.now() - t0;
  try {
    for (let j = 0; j < 20; j++) {
      await guard(`identify #${i}.${j}`, c, dev.controller.identify(j & 1 ? identifyNamespaceCmd(1) : identifyControllerCmd()));
    }
  } catch (e) {
    log(`identify failed: ${(e as Error).message}`);
  }
  // A CLI's pace: single commands 50 ms apart, only the AER in flight between them (the queue's
  // idle path). Mean latency and the process's CPU over that stretch.
  const cpu0 = process.cpuUsage(), tg = performance.now();
  let lat = 0;
  try {
    for (let j = 0; j < SPACED; j++) {
      await new Promise((r) => setTimeout(r, 50));
      const a = performance.now();
      await guard(`spaced identify #${i}.${j}`, c, dev.controller.identify(identifyControllerCmd()));
      lat += performance.now() - a;
    }
  } catch (e) {
    log(`spaced identify failed: ${(e as Error).message}`);
  }
  const cpu = process.cpuUsage(cpu0), wall = performance.now() - tg;
  const pct = (100 * (cpu.user + cpu.system)) / 1000 / wall;
  spacedLat += lat / SPACED;
  spacedCpu += pct;
  const s = qp.stats;
  log(`#${i}: spaced identify ${(lat / SPACED).toFixed(2)} ms mean, CPU ${pct.toFixed(1)}% of a core over ${wall.toFixed(0)} ms`);
  log(`#${i}: open ${topen.toFixed(0)} ms, then ${((performance.now() - t0 - topen)).toFixed(0)} ms for 20 identifies; admin submitted ${s.submitted} irq ${s.interrupts} sleeps ${s.sleeps}`);
  await dev.close();
}
log(`spaced identifies: ${(spacedLat / N).toFixed(2)} ms mean, CPU ${(spacedCpu / N).toFixed(1)}% (mean over rounds)`);
log(`done: ${N} rounds (${mode}${nodbbuf ? ", no dbbuf" : ""}${shift ? ", IOVA shift" : ""}), ${stalls} stalls, ${recovered} completions found by hand`);
process.exit(stalls ? 1 : 0);
