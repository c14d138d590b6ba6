/**
 * PCIe features measured with and without: SGLs against PRPs, shadow doorbells
 * on and off, SQs in the CMB or not, on one device (a PCI address bound to vfio-pci, or `sim:`). Each
 * case opens the device with those choices, runs random reads at a queue depth
 * for a while, and prints IOPS, MMIO SQ doorbell writes per flush and the
 * ratio to the first case. Figures are indicative (the machine may be busy);
 * asserts nothing.
 *
 *   deno run -A scripts/bench-pcie-features.ts [DEVICE] [--ms 3000] [--qd 32] [--bs 4096] [--json]
 *   bun scripts/bench-pcie-features.ts 0000:00:04.0
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { NVMeDev } from "../lib/dev.ts";
import type { PcieOptions, PcieRing } from "../lib/nvme/pcie.ts";
import { Reg } from "../lib/nvme/spec.ts";
import type { Transport } from "../lib/nvme/transport.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    ms: { type: "string", default: "3000" },
    qd: { type: "string", default: "32" },
    bs: { type: "string", default: "4096" },
    json: { type: "boolean" },
  },
});
const DEVICE = positionals[0] ?? "sim:";
const MS = Number(values.ms), QD = Number(values.qd), BS = Number(values.bs);
const rt = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";

const CASES: { name: string; pcie: PcieOptions }[] = [
  { name: "prp, mmio doorbells", pcie: { dataPointer: "prp", shadowDoorbells: false, cmbQueues: false } },
  { name: "sgl, mmio doorbells", pcie: { dataPointer: "sgl", shadowDoorbells: false, cmbQueues: false } },
  { name: "prp, shadow doorbells", pcie: { dataPointer: "prp", cmbQueues: false } },
  { name: "sgl, shadow doorbells", pcie: { dataPointer: "sgl", cmbQueues: false } },
  { name: "sgl, shadow, CMB SQs", pcie: { dataPointer: "sgl" } },
];

interface Row {
  case: string;
  iops: number;
  flushes: number;
  mmio: number;
  sgl: boolean;
  shadow: boolean;
  cmb: boolean;
}

async function run(pcie: PcieOptions, name: string): Promise<Row> {
  const dev = await NVMeDev.open(DEVICE, { pcie, ioQueueDepth: Math.max(QD * 2, 64) });
  try {
    const ns = dev.ns(dev.nsList()[0]);
    const per = BS / ns.blockSize, span = Math.max(1, Math.floor(Math.min(ns.blockCount, 1 << 20) / per) - 1);
    const bufs = Array.from({ length: QD }, () => dev.allocBuffer(BS));
    const ring = dev.controller.io[0].queueRing as PcieRing;
    const t = dev.controller.transport as Transport;
    const cmb = typeof t.readReg32 === "function" && (t.readReg32(Reg.CMBMSC) & 2) !== 0;
    const f0 = ring.flushes, m0 = ring.mmioDoorbells;
    let done = 0, x = 0x9e3779b9;
    const end = performance.now() + MS;
    const t0 = performance.now();
    const worker = async (i: number) => {
      while (performance.now() < end) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        await ns.read(((x >>> 0) % span) * per, bufs[i]);
        done++;
      }
    };
    await Promise.all(bufs.map((_, i) => worker(i)));
    const secs = (performance.now() - t0) / 1000;
    return { case: name, iops: done / secs, flushes: ring.flushes - f0, mmio: ring.mmioDoorbells - m0, sgl: ring.sgl, shadow: ring.shadowDoorbells, cmb };
  } finally {
    await dev.close();
  }
}

const rows: Row[] = [];
for (const c of CASES) {
  try {
    rows.push(await run(c.pcie, c.name));
  } catch (e) {
    console.error(`${c.name}: ${(e as Error).message}`);
  }
}
if (values.json) {
  console.log(JSON.stringify({ runtime: rt, device: DEVICE, qd: QD, bs: BS, ms: MS, rows }));
} else {
  console.log(`${rt} ${DEVICE} random ${BS}-byte reads, QD ${QD}, ${MS} ms per case (indicative)`);
  const base = rows[0]?.iops ?? 0;
  for (const r of rows) {
    const ratio = base ? (r.iops / base).toFixed(2) : "-";
    const perFlush = r.flushes ? (r.mmio / r.flushes).toFixed(2) : "-";
    console.log(
      `${r.case.padEnd(24)} ${r.iops.toFixed(0).padStart(8)} IOPS  x${ratio}  MMIO doorbells/flush ${perFlush}` +
        `  (sgl ${r.sgl}, shadow ${r.shadow}, cmb ${r.cmb})`,
    );
  }
}
