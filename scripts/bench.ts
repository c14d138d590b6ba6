/**
 * Benchmark: random or sequential reads/writes through tsnvme at chosen queue
 * depths, printing IOPS, bandwidth and latency percentiles. Prints figures; it
 * asserts nothing.
 *
 *   deno run -A scripts/bench.ts [pci-address] [--rw randread] [--bs 4096] [--iodepth 1,32] [--runtime 5] [--namespace-id 1] [--json]
 * @module
 */
import process from "node:process";
import { parseArgs } from "node:util";
import { NVMeDev } from "../lib/dev.ts";
import { listNvmeControllers } from "../lib/vfio/sysfs.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    rw: { type: "string", default: "randread" },
    bs: { type: "string", default: "4096" },
    iodepth: { type: "string", default: "1,32" },
    runtime: { type: "string", default: "5" },
    ramp: { type: "string", default: "0.5" },
    "namespace-id": { type: "string", short: "n", default: "1" },
    json: { type: "boolean", default: false },
    "spin-us": { type: "string", default: "500" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("usage: bench.ts [pci-address] [--rw randread|randwrite|read|write] [--bs BYTES] [--iodepth 1,32] " +
    "[--runtime SEC] [--ramp SEC] [--namespace-id N] [--spin-us US] [--json]");
  process.exit(0);
}
const rtName = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
const addr = positionals[0] ?? process.env.TSNVME_PCI ??
  listNvmeControllers().find((c) => c.driver === "vfio-pci")?.address;
if (!addr) {
  console.error("no NVMe controller bound to vfio-pci found; pass a PCI address");
  process.exit(2);
}
const rw = values.rw!;
if (!["randread", "randwrite", "read", "write"].includes(rw)) {
  console.error(`--rw must be randread, randwrite, read or write`);
  process.exit(2);
}
const bs = Number(values.bs);
const depths = values.iodepth!.split(",").map(Number);
const seconds = Number(values.runtime);
const ramp = Number(values.ramp);

/** Result of one benchmark job. */
export interface BenchResult {
  runtime: string;
  rw: string;
  bs: number;
  iodepth: number;
  iops: number;
  mibps: number;
  latUs: { mean: number; p50: number; p99: number; max: number };
  ios: number;
  seconds: number;
}

await using dev = await NVMeDev.open(addr, { pollSpinUs: Number(values["spin-us"]) });
const ns = dev.ns(Number(values["namespace-id"]));
if (bs % ns.blockSize !== 0) {
  console.error(`--bs must be a multiple of the block size ${ns.blockSize}`);
  process.exit(2);
}
const blocksPerIo = bs / ns.blockSize;
const span = Math.floor(ns.blockCount / blocksPerIo);
const isRead = rw.endsWith("read");
const isRandom = rw.startsWith("rand");

const MAX_SAMPLES = 1 << 21;
const lat = new Float64Array(MAX_SAMPLES);

async function job(qd: number): Promise<BenchResult> {
  const bufs = Array.from({ length: qd }, () => dev.allocBuffer(bs));
  for (const b of bufs) crypto.getRandomValues(b.subarray(0, Math.min(bs, 65536)));
  let seed = 0x9e3779b9 ^ qd;
  let seq = 0;
  let n = 0;
  let measuring = false;
  let stop = false;
  const nextLba = (): number => {
    if (!isRandom) {
      const l = seq;
      seq = (seq + 1) % span;
      return l * blocksPerIo;
    }
    seed ^= seed << 13;
    seed >>>= 0;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    seed >>>= 0;
    return (seed % span) * blocksPerIo;
  };
  const worker = async (buf: Uint8Array): Promise<void> => {
    while (!stop) {
      const t = performance.now();
      if (isRead) await ns.read(nextLba(), buf);
      else await ns.write(nextLba(), buf);
      if (measuring) {
        if (n < MAX_SAMPLES) lat[n] = performance.now() - t;
        n++;
      }
    }
  };
  const workers = bufs.map(worker);
  await new Promise((r) => setTimeout(r, ramp * 1000));
  measuring = true;
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  measuring = false;
  const elapsed = (performance.now() - t0) / 1000;
  stop = true;
  await Promise.all(workers);
  for (const b of bufs) dev.freeBuffer(b);
  const samples = lat.subarray(0, Math.min(n, MAX_SAMPLES)).sort();
  const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] * 1000;
  let sum = 0;
  for (const v of samples) sum += v;
  return {
    runtime: rtName,
    rw,
    bs,
    iodepth: qd,
    iops: Math.round(n / elapsed),
    mibps: +((n * bs) / elapsed / 2 ** 20).toFixed(1),
    latUs: {
      mean: +(sum / samples.length * 1000).toFixed(1),
      p50: +pct(0.5).toFixed(1),
      p99: +pct(0.99).toFixed(1),
      max: +(samples[samples.length - 1] * 1000).toFixed(1),
    },
    ios: n,
    seconds: +elapsed.toFixed(2),
  };
}

for (const qd of depths) {
  const r = await job(qd);
  if (values.json) console.log(JSON.stringify(r));
  else {
    console.log(
      `tsnvme/${r.runtime} ${r.rw} bs=${r.bs} qd=${String(r.iodepth).padEnd(3)} ${String(r.iops).padStart(8)} IOPS ` +
        `${String(r.mibps).padStart(7)} MiB/s  lat us mean ${r.latUs.mean} p50 ${r.latUs.p50} p99 ${r.latUs.p99} max ${r.latUs.max}`,
    );
  }
}
const st = dev.queueStats()[0];
if (!values.json) {
  console.log(`queue: ${st.submitted} commands, ${st.sqDoorbells} SQ doorbells (${(st.submitted / st.sqDoorbells).toFixed(2)} per ring)`);
}
