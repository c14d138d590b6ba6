/**
 * Benchmark: random or sequential reads/writes through tsnvme at chosen queue
 * depths, printing IOPS, bandwidth and latency percentiles. Prints figures; it
 * asserts nothing.
 *
 *   deno run -A jsr:@tsnvme/tsnvme/bench [pci-address] [--rw randread] [--bs 4096] [--iodepth 1,32] [--runtime 5] [--json]
 *   ... --interrupts poll,interrupt --svg bench.svg   (one pass per wait mode; charts as SVG)
 *   deno run -A lib/cli/bench/mod.ts ...   (from a checkout; bun lib/cli/bench/mod.ts ... too)
 * @module
 */
import { writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { detectRuntime } from "../../ffi/mod.ts";
import { asyncEvents } from "../../admin/manage.ts";
import { NVMeDev } from "../../dev.ts";
import type { WaitMode } from "../../irq/adaptive.ts";
import { listNvmeControllers } from "../../vfio/sysfs.ts";
import { schedNsBetween, threadCpuPerIo, threadTimes } from "./cpu.ts";
import { benchSvg } from "./svg.ts";

/** Result of one benchmark job (one line of `--json` output). */
export interface BenchResult {
  /** Runtime that ran it: deno or bun. */
  runtime: string;
  /** Workload: randread, randwrite, read or write. */
  rw: string;
  /** Bytes per IO. */
  bs: number;
  /** Queue depth (IOs kept in flight). */
  iodepth: number;
  /** IOs per second over the measured window. */
  iops: number;
  /** MiB per second. */
  mibps: number;
  /** Completion latency in µs, of the timed IOs ({@link timedIos}: one in 8 at every depth). */
  latUs: { mean: number; p50: number; p99: number; max: number };
  /**
   * IOs whose latency was measured: one in 8, at every queue depth (a clock
   * read costs ~1 µs in a TCG guest: timing every IO at QD1 added two per IO
   * to the measured path). Absent in results made elsewhere.
   */
  timedIos?: number;
  /** IOs measured. */
  ios: number;
  /** Measured window in seconds. */
  seconds: number;
  /** How the queue waited: poll, interrupt or adaptive. */
  waitMode: string;
  /** Process CPU time per IO over the measured window, µs. */
  cpuUsPerIo: number;
  /** Interrupts the IO queue took during the measured window (not the ramp). */
  interrupts: number;
  /** Times the IO queue's pump slept on its interrupt during the measured window (not the ramp). */
  sleeps: number;
  /**
   * How each IO was issued: `promise` (`await ns.read`) or `callback`
   * (`ns.submitRead`, resubmitted from its callback). The bench always sets
   * it; results made elsewhere may leave it out (then `promise`).
   */
  api?: string;
  /**
   * MMIO doorbell writes per IO over the measured window, SQ tail and CQ head
   * (a PCIe ring; absent on other transports): each is a trap into the
   * hypervisor in a VM. Shadow doorbells skip some.
   */
  doorbellsPerIo?: { sq: number; cq: number };
  /**
   * Times the IO queue switched its vector's interrupts on or off per IO over
   * the measured window (MSI-X mask stores into the BAR, each a trap in a VM;
   * adaptive mode only; absent when the queue has no gate).
   */
  gateSwitchesPerIo?: number;
  /** With `--threads`: CPU µs per IO of each of this process's threads by name over the measured window. */
  threads?: Record<string, number>;
  /** With `--tail`: what the IO queue's pump did during the timed IOs, the slow ones apart ({@link TailBreakdown}). */
  tail?: TailBreakdown;
}

/**
 * `--tail`: the timed IOs tagged by what the IO queue's pump did between
 * their submission and completion (a yield to the event loop, a sleep on the
 * interrupt, both, or neither), for those slower than the 95th percentile and
 * for all of them: count and mean latency per tag. Read from the queue's
 * counters at each timed IO's ends (only with the flag).
 */
export interface TailBreakdown {
  /** The 95th percentile latency in µs: IOs above it are the slow ones. */
  p95Us: number;
  /** Per tag, the IOs above p95: count and mean µs. */
  slow: Record<TailTag, { n: number; meanUs: number }>;
  /** Per tag, every timed IO: count and mean µs. */
  all: Record<TailTag, { n: number; meanUs: number }>;
}

/** A timed IO's tag under `--tail`. */
export type TailTag = "none" | "yield" | "sleep" | "yield+sleep";

const TAIL_TAGS: TailTag[] = ["none", "yield", "sleep", "yield+sleep"];

/** Tail breakdown of `lat` (ms) tagged by `tags` (bit 1 yield, bit 2 sleep; index into {@link TAIL_TAGS}). */
export function tailBreakdown(lat: Float64Array, tags: Uint8Array): TailBreakdown {
  const sorted = lat.slice().sort();
  const p95 = sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(0.95 * sorted.length))] : 0;
  const mk = () => Object.fromEntries(TAIL_TAGS.map((t) => [t, { n: 0, meanUs: 0 }])) as Record<TailTag, { n: number; meanUs: number }>;
  const slow = mk(), all = mk();
  for (let i = 0; i < lat.length; i++) {
    const tag = TAIL_TAGS[tags[i] & 3];
    for (const b of lat[i] > p95 ? [slow, all] : [all]) {
      b[tag].n++;
      b[tag].meanUs += lat[i] * 1000;
    }
  }
  for (const b of [slow, all]) for (const t of TAIL_TAGS) if (b[t].n > 0) b[t].meanUs = +(b[t].meanUs / b[t].n).toFixed(1);
  return { p95Us: +(p95 * 1000).toFixed(1), slow, all };
}

/** One job's full figures, for the fio-layout JSON. */
export interface JobDetail {
  /** The summary figures. */
  result: BenchResult;
  /** Latency samples in ms, sorted ascending. */
  samples: Float64Array;
  /** CPU time of this process during the measured window, µs. */
  cpu: { user: number; system: number };
}

/** fio's default completion-latency percentiles (its `percentile_list`). */
const FIO_PERCENTILES = [1, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 95, 99, 99.5, 99.9, 99.95, 99.99];

/** C's ctime() text without the newline, as fio's "time" field. */
function ctime(d: Date): string {
  const p2 = (n: number) => String(n).padStart(2, "0");
  return `${["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d.getDay()]} ` +
    `${["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][d.getMonth()]} ` +
    `${String(d.getDate()).padStart(2)} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()}`;
}

/**
 * The jobs as fio's `--output-format=json` lays them out, so tools that read
 * fio's JSON read these. Latency is measured from the read/write call to its
 * completion, so it fills both `clat_ns` and `lat_ns`; submission latency is
 * not measured apart (`slat_ns` N 0, as fio reports a disabled statistic).
 * The direction not exercised is all zeros, as in fio.
 */
export function fioJson(jobs: JobDetail[], opts: { ramp: number; runtime: number }, now: Date = new Date()): string {
  const stats = (ns: Float64Array) => {
    if (ns.length === 0) return { min: 0, max: 0, mean: 0, stddev: 0, N: 0 };
    let sum = 0, sq = 0;
    for (const v of ns) sum += v;
    const mean = sum / ns.length;
    for (const v of ns) sq += (v - mean) ** 2;
    return { min: Math.round(ns[0]), max: Math.round(ns[ns.length - 1]), mean: +mean.toFixed(6), stddev: +Math.sqrt(sq / ns.length).toFixed(6), N: ns.length };
  };
  const zeroSide = () => ({
    io_bytes: 0, io_kbytes: 0, bw_bytes: 0, bw: 0, iops: 0, runtime: 0, total_ios: 0, short_ios: 0, drop_ios: 0,
    slat_ns: { min: 0, max: 0, mean: 0, stddev: 0, N: 0 },
    clat_ns: { min: 0, max: 0, mean: 0, stddev: 0, N: 0 },
    lat_ns: { min: 0, max: 0, mean: 0, stddev: 0, N: 0 },
  });
  return JSON.stringify({
    "fio version": "tsnvme-bench (fio 3 JSON layout)",
    timestamp: Math.floor(now.getTime() / 1000),
    timestamp_ms: now.getTime(),
    time: ctime(now),
    jobs: jobs.map(({ result: r, samples, cpu }, i) => {
      const ns = samples.map((ms) => ms * 1e6);
      const bytes = r.ios * r.bs;
      const percentile = Object.fromEntries(FIO_PERCENTILES.map((p) => [
        p.toFixed(6),
        ns.length ? Math.round(ns[Math.min(ns.length - 1, Math.ceil((p / 100) * ns.length) - 1)]) : 0,
      ]));
      const side = {
        io_bytes: bytes,
        io_kbytes: Math.floor(bytes / 1024),
        bw_bytes: Math.round(bytes / r.seconds),
        bw: Math.round(bytes / r.seconds / 1024),
        iops: +(r.ios / r.seconds).toFixed(6),
        runtime: Math.round(r.seconds * 1000),
        total_ios: r.ios,
        short_ios: 0,
        drop_ios: 0,
        slat_ns: { min: 0, max: 0, mean: 0, stddev: 0, N: 0 },
        clat_ns: { ...stats(ns), percentile },
        lat_ns: stats(ns),
      };
      const reading = r.rw.endsWith("read");
      return {
        jobname: `tsnvme-${r.runtime}-qd${r.iodepth}`,
        groupid: i,
        error: 0,
        "job options": {
          rw: r.rw,
          bs: String(r.bs),
          iodepth: String(r.iodepth),
          runtime: String(opts.runtime),
          ramp_time: String(opts.ramp),
          ioengine: `tsnvme-${r.runtime}`,
        },
        read: reading ? side : zeroSide(),
        write: reading ? zeroSide() : side,
        job_runtime: Math.round(r.seconds * 1000),
        usr_cpu: +((cpu.user / 1e6 / r.seconds) * 100).toFixed(6),
        sys_cpu: +((cpu.system / 1e6 / r.seconds) * 100).toFixed(6),
      };
    }),
  }, null, 2);
}

const USAGE = "usage: bench [pci-address] [--rw randread|randwrite|read|write] [--bs BYTES] [--iodepth 1,32] " +
  "[--runtime SEC] [--ramp SEC] [--namespace-id N] [--spin-us US] [--spin-polls N] [--interrupts adaptive|interrupt|poll[,...]]\n" +
  "  [--api promise|callback] [--threads] [--tail]\n" +
  "  [--idle SEC [--warm-ios N] [--trickle IOPS]] [--json] [--output-format normal|json] [--svg FILE]\n" +
  "  --interrupts a,b       one pass per wait mode, each on a freshly opened device\n" +
  "  --svg FILE             also write IOPS by queue depth and wait mode, latency percentiles and CPU per IO as an SVG chart\n" +
  "  --idle SEC             no IO: an async event request outstanding, report the process's CPU use\n" +
  "  --warm-ios N           with --idle: N reads first (JIT warm-up), then 3 s to settle\n" +
  "  --trickle IOPS         with --idle: that many 4 KiB reads per second during the window\n" +
  "  --spin-polls N         synchronous CQ polls after an empty poll before the pump yields a turn\n" +
  "  --api promise          each IO an awaited ns.read/ns.write (default); callback: ns.submitRead/submitWrite,\n" +
  "                         the next IO issued from the completion's callback, as SPDK's perf does\n" +
  "  --threads              also print CPU µs per IO of each thread of this process (main, JIT, GC) over the window\n" +
  "  --tail                 also tag each timed IO by what the pump did meanwhile (yield, sleep) and break down those over p95\n" +
  "  --json                 one BenchResult object a line\n" +
  "  --output-format json   one document in fio's --output-format=json layout (jobs[].read.iops, clat_ns.percentile...)";

const MAX_SAMPLES = 1 << 21;

/** Run the benchmark with `argv` (without the runtime and script); resolves to the exit status. */
export async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
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
        interrupts: { type: "string", default: "adaptive" },
        idle: { type: "string" },
        "warm-ios": { type: "string", default: "0" },
        trickle: { type: "string", default: "0" },
        "spin-polls": { type: "string" },
        api: { type: "string", default: "promise" },
        threads: { type: "boolean", default: false },
        tail: { type: "boolean", default: false },
        "output-format": { type: "string", default: "normal" },
        svg: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    console.error(`bench: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const rtName = detectRuntime();
  const addr = positionals[0] ?? process.env.TSNVME_PCI ??
    listNvmeControllers().find((c) => c.driver === "vfio-pci")?.address;
  if (!addr) {
    console.error("no NVMe controller bound to vfio-pci found; pass a PCI address");
    return 2;
  }
  const outFormat = values["output-format"];
  if (outFormat !== "normal" && outFormat !== "json") {
    console.error(`bench: --output-format must be normal or json\n${USAGE}`);
    return 2;
  }
  const rw = values.rw!;
  if (!["randread", "randwrite", "read", "write"].includes(rw)) {
    console.error(`--rw must be randread, randwrite, read or write\n${USAGE}`);
    return 2;
  }
  const bs = Number(values.bs);
  const depths = values.iodepth!.split(",").map(Number);
  const seconds = Number(values.runtime);
  const ramp = Number(values.ramp);
  const warmIos = Number(values["warm-ios"]), trickle = Number(values.trickle);
  const spinPolls = values["spin-polls"] === undefined ? undefined : Number(values["spin-polls"]);
  const nums = [bs, seconds, ramp, Number(values["spin-us"]), Number(values["namespace-id"]), warmIos, trickle, spinPolls ?? 0, ...depths];
  if (nums.some((n) => !Number.isFinite(n) || n < 0) || !(bs > 0) || depths.some((d) => !Number.isInteger(d) || d < 1)) {
    console.error(`bench: bad number in the options\n${USAGE}`);
    return 2;
  }

  const api = values.api!;
  if (api !== "promise" && api !== "callback") {
    console.error(`bench: --api must be promise or callback\n${USAGE}`);
    return 2;
  }
  const modes = values.interrupts!.split(",") as WaitMode[];
  if (modes.some((m) => !["adaptive", "interrupt", "poll"].includes(m))) {
    console.error(`bench: --interrupts must be adaptive, interrupt or poll (or a list of them)\n${USAGE}`);
    return 2;
  }
  const done: JobDetail[] = [];
  for (const mode of modes) {
    const st = await pass(mode);
    if (st !== 0 || values.idle !== undefined) return st;
  }
  if (outFormat === "json") console.log(fioJson(done, { ramp, runtime: seconds }));
  if (values.svg) {
    writeFileSync(values.svg, benchSvg(done.map((d) => d.result), `tsnvme bench ${addr}, ${new Date().toISOString()}`));
  }
  return 0;

  /** One pass over the depths in one wait mode, on a freshly opened device. */
  async function pass(mode: WaitMode): Promise<number> {
    await using dev = await NVMeDev.open(addr!, { pollSpinUs: Number(values["spin-us"]), interrupts: mode });
    if (spinPolls !== undefined) for (const q of dev.controller.io) q.spinPolls = spinPolls;
    if (values.idle !== undefined) {
      // Idle: what an open device costs with an async event request outstanding and no IO (or a trickle).
      const ac = new AbortController();
      const it = asyncEvents(dev, { signal: ac.signal });
      const next = it.next();
      const ns = dev.ns(Number(values["namespace-id"]));
      const buf = dev.allocBuffer(4096);
      const span = Math.max(1, Math.floor(ns.blockCount * ns.blockSize / 4096) - 1);
      for (let i = 0; i < warmIos; i++) await ns.read((i * 7919 % span) * (4096 / ns.blockSize), buf);
      await new Promise((r) => setTimeout(r, warmIos > 0 ? 3000 : 500));
      let reads = 0;
      const timer = trickle > 0
        ? setInterval(() => void ns.read((reads++ * 7919 % span) * (4096 / ns.blockSize), buf), 1000 / trickle)
        : null;
      // Sleeps over the window only, as the CPU and the reads: the warm-up's reads slept too.
      const sleeps = () => [dev.controller.admin.stats.sleeps, dev.queueStats().reduce((a, q) => a + q.sleeps, 0)];
      const sl0 = sleeps();
      const c0 = process.cpuUsage(), s0 = threadTimes(), t0 = performance.now();
      await new Promise((r) => setTimeout(r, Number(values.idle) * 1000));
      const c = process.cpuUsage(c0), sched = schedNsBetween(s0, threadTimes()), ms = performance.now() - t0;
      const sl = sleeps();
      if (timer !== null) clearInterval(timer);
      await new Promise((r) => setTimeout(r, 100));
      dev.freeBuffer(buf);
      ac.abort();
      await next;
      const pct = +(((c.user + c.system) / 1000) / ms * 100).toFixed(2);
      // getrusage is tick-sampled in a guest kernel: a thread that wakes on the tick is charged whole ticks.
      const schedPct = sched < 0 ? null : +(sched / 1e6 / ms * 100).toFixed(2);
      console.log(JSON.stringify({
        runtime: rtName,
        waitMode: dev.info.waitMode,
        idleCpuPct: pct,
        idleCpuPctSched: schedPct,
        warmIos,
        trickle,
        reads,
        adminSleeps: sl[0] - sl0[0],
        ioSleeps: sl[1] - sl0[1],
        seconds: +(ms / 1000).toFixed(2),
      }));
      return 0;
    }
    const ns = dev.ns(Number(values["namespace-id"]));
    if (bs % ns.blockSize !== 0) {
      console.error(`--bs must be a multiple of the block size ${ns.blockSize}`);
      return 2;
    }
    const blocksPerIo = bs / ns.blockSize;
    const span = Math.floor(ns.blockCount / blocksPerIo);
    const spanMask = span > 0 && span <= 2 ** 31 && (span & (span - 1)) === 0 ? span - 1 : -1;
    const isRead = rw.endsWith("read");
    const isRandom = rw.startsWith("rand");
    const lat = new Float64Array(MAX_SAMPLES);
    // --tail: each timed IO's tag, from the IO queue's yield and sleep counters at its two ends.
    const tail = values.tail === true;
    const tags = new Uint8Array(tail ? MAX_SAMPLES : 0);
    const pumpMark = (): number => {
      const st = dev.controller.io[0].stats;
      return st.yields * 65536 + st.sleeps;
    };
    const tagOf = (m0: number): number => {
      const m1 = pumpMark();
      return (Math.floor(m1 / 65536) !== Math.floor(m0 / 65536) ? 1 : 0) | (m1 % 65536 !== m0 % 65536 ? 2 : 0);
    };
    /** The first IO queue's MMIO doorbell writes so far, SQ and CQ, or null (not a PCIe ring). */
    const mmio = (): [number, number] | null => {
      const r = dev.controller.io[0].queueRing as Partial<{ mmioDoorbells: number; cqMmioDoorbells: number }>;
      return typeof r.mmioDoorbells === "number" && typeof r.cqMmioDoorbells === "number" ? [r.mmioDoorbells, r.cqMmioDoorbells] : null;
    };

    async function job(qd: number): Promise<JobDetail> {
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
        // A mask when the span allows (the same LBAs): a uint32 above 2^31 is a double in V8, and its
        // remainder a floating-point helper call under TCG, per IO (SPDK's perf pays an integer one).
        return (spanMask >= 0 ? seed & spanMask : seed % span) * blocksPerIo;
      };
      // One IO in 8 is timed, at every depth: a clock read costs ~1 µs in a TCG guest (Deno), and
      // two per IO at QD1 were on the measured path; percentiles come from the timed IOs.
      const everyMask = 7; // by mask: no division per IO
      let timed = 0;
      const worker = async (buf: Uint8Array): Promise<void> => {
        let k = 0;
        while (!stop) {
          if ((++k & everyMask) !== 0) {
            if (isRead) await ns.read(nextLba(), buf);
            else await ns.write(nextLba(), buf);
            if (measuring) n++;
            continue;
          }
          const m0 = tail ? pumpMark() : 0;
          const t = performance.now();
          if (isRead) await ns.read(nextLba(), buf);
          else await ns.write(nextLba(), buf);
          if (measuring) {
            if (timed < MAX_SAMPLES) {
              lat[timed] = performance.now() - t;
              if (tail) tags[timed] = tagOf(m0);
              timed++;
            }
            n++;
          }
        }
      };
      // The callback path: no Promise per IO; the completion's callback issues the next IO.
      const cbWorker = (buf: Uint8Array) =>
        new Promise<void>((resolve, reject) => {
          let k = 0, t = -1, m0 = 0;
          const issue = (): void => {
            if (stop) return resolve();
            if ((++k & everyMask) === 0) {
              if (tail) m0 = pumpMark();
              t = performance.now();
            } else t = -1;
            const ok = isRead ? ns.submitRead(nextLba(), buf, done) : ns.submitWrite(nextLba(), buf, done);
            if (!ok) reject(new Error("bench: no free queue slot for a callback IO"));
          };
          const done = (err: Error | null): void => {
            if (err !== null) return reject(err);
            if (measuring) {
              if (t >= 0 && timed < MAX_SAMPLES) {
                lat[timed] = performance.now() - t;
                if (tail) tags[timed] = tagOf(m0);
                timed++;
              }
              n++;
            }
            try {
              issue();
            } catch (e) {
              reject(e);
            }
          };
          issue();
        });
      const q = dev.controller.io[0];
      const workers = bufs.map(api === "callback" ? cbWorker : worker);
      await new Promise((r) => setTimeout(r, ramp * 1000));
      // Interrupts and sleeps over the measured window only, as the IOs (the ramp's are not counted).
      const irq0 = q.stats.interrupts, sleeps0 = q.stats.sleeps, gate0 = q.stats.gateSwitches;
      const db0 = mmio(), th0 = values.threads ? threadTimes() : null;
      measuring = true;
      const t0 = performance.now();
      const cpu0 = process.cpuUsage();
      await new Promise((r) => setTimeout(r, seconds * 1000));
      measuring = false;
      const elapsed = (performance.now() - t0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      const irqs = q.stats.interrupts - irq0, sleeps = q.stats.sleeps - sleeps0, gates = q.stats.gateSwitches - gate0;
      const db1 = mmio(), th1 = th0 === null ? null : threadTimes();
      stop = true;
      await Promise.all(workers);
      for (const b of bufs) dev.freeBuffer(b);
      const tailResult = tail ? tailBreakdown(lat.subarray(0, timed), tags.subarray(0, timed)) : null;
      const samples = lat.subarray(0, timed).sort();
      const pct = (p: number) => samples[Math.min(samples.length - 1, Math.floor(p * samples.length))] * 1000;
      let sum = 0;
      for (const v of samples) sum += v;
      const result: BenchResult = {
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
        timedIos: timed,
        seconds: +elapsed.toFixed(2),
        waitMode: dev.info.waitMode,
        cpuUsPerIo: +((cpu.user + cpu.system) / n).toFixed(2),
        interrupts: irqs,
        sleeps,
        api,
      };
      if (db0 !== null && db1 !== null) {
        result.doorbellsPerIo = { sq: +((db1[0] - db0[0]) / n).toFixed(3), cq: +((db1[1] - db0[1]) / n).toFixed(3) };
      }
      if (gates > 0 || dev.info.waitMode === "adaptive") result.gateSwitchesPerIo = +(gates / n).toFixed(4);
      if (th0 !== null && th1 !== null) result.threads = threadCpuPerIo(th0, th1, n);
      if (tailResult !== null) result.tail = tailResult;
      return { result, samples: samples.slice(), cpu };
    }

    for (const qd of depths) {
      const d = await job(qd);
      done.push(d);
      const r = d.result;
      if (outFormat === "json") continue;
      if (values.json) console.log(JSON.stringify(r));
      else {
        console.log(
          `tsnvme/${r.runtime} ${r.rw} bs=${r.bs} qd=${String(r.iodepth).padEnd(3)} ${String(r.iops).padStart(8)} IOPS ` +
            `${String(r.mibps).padStart(7)} MiB/s  lat us (1 IO in 8 timed) mean ${r.latUs.mean} p50 ${r.latUs.p50} p99 ${r.latUs.p99} max ${r.latUs.max}` +
            `  (${r.waitMode}, ${r.api} API, CPU ${r.cpuUsPerIo} us/IO` +
            (r.doorbellsPerIo ? `, MMIO doorbells/IO sq ${r.doorbellsPerIo.sq} cq ${r.doorbellsPerIo.cq}` : "") +
            (r.gateSwitchesPerIo !== undefined ? `, irq gate switches/IO ${r.gateSwitchesPerIo}` : "") + ")",
        );
        if (r.tail) {
          const f = (b: TailBreakdown["slow"]) => TAIL_TAGS.map((t) => `${t} ${b[t].n} (${b[t].meanUs} us)`).join(", ");
          console.log(`  tail: p95 ${r.tail.p95Us} us; over p95 by what the pump did: ${f(r.tail.slow)}; all timed: ${f(r.tail.all)}`);
        }
        if (r.threads) {
          console.log(`  threads, CPU us/IO: ${Object.entries(r.threads).map(([k, v]) => `${k} ${v}`).join(", ")}`);
        }
      }
    }
    if (outFormat === "json") return 0;
    const st = dev.queueStats()[0];
    if (!values.json) {
      console.log(`queue: ${st.submitted} commands, ${st.sqDoorbells} SQ doorbells (${(st.submitted / st.sqDoorbells).toFixed(2)} per ring)`);
    }
    return 0;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
