/**
 * Soak: QD32 per Worker over Workers (one IO queue each) for a given time on
 * the software controller (default) or a controller bound to vfio-pci, with a
 * fault injected every --fault-every seconds, in turn:
 *   timeout     one command on a Worker's queue is lost: it times out there and the controller's Abort releases it
 *   abort-lost  a lost command and its lost Abort: the controller resets
 *   fatal       controller fatal status (CSTS.CFS): the controller resets
 *   reset       a requested controller reset during IO
 * (a PCI target gets resets only: a real controller takes no fault rules).
 * It checks all the time: every block read carries what was last written to
 * it (and every block once more at the end), no command pending past its
 * deadline, every promise settled, and prints RSS, open fds and mapped IOVA
 * over time; fds and mapped IOVA must end where they were after warm-up.
 * Exit status 0 when every check held, 1 otherwise. --self-test also plants
 * one wrong block after the run (as misdirected DMA would) and checks that
 * the final pass catches it, so the checker is seen to fail.
 *
 *   deno run -A scripts/soak.ts [TARGET] [--seconds 3600] [--workers 2] [--qd 32] [--fault-every 60] [--sample 10] [--self-test] [--json]
 *   bun scripts/soak.ts ...
 * TARGET: a sim: target (default sim:ns=64M:512;queues=8;mem=128M) or a PCI address.
 * @module
 */
import { readdirSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { NVMeDev } from "../lib/dev.ts";
import { detectRuntime } from "../lib/ffi/mod.ts";
import { AdminOpc } from "../lib/nvme/spec.ts";
import { SimTransport } from "../lib/sim/transport.ts";

const { values, positionals } = parseArgs({
  args: process.argv.slice(2),
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "3600" },
    workers: { type: "string", default: "2" },
    qd: { type: "string", default: "32" },
    "fault-every": { type: "string", default: "60" },
    sample: { type: "string", default: "10" },
    "io-timeout-ms": { type: "string", default: "1000" },
    "deadline-ms": { type: "string", default: "20000" },
    slots: { type: "string", default: "2048" },
    "self-test": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
const target = positionals[0] ?? "sim:ns=64M:512;queues=8;mem=128M";
const seconds = Number(values.seconds), W = Number(values.workers), qd = Number(values.qd);
const faultEvery = Number(values["fault-every"]), sampleS = Number(values.sample);
const ioTimeoutMs = Number(values["io-timeout-ms"]), deadlineMs = Number(values["deadline-ms"]);
const slots = Number(values.slots), blocksPerSlot = 8;
const rt = detectRuntime();

interface Stats {
  ios: number;
  reads: number;
  writes: number;
  bad: number;
  overdue: number;
  started: number;
  settled: number;
  inflight: number;
  oldestMs: number;
  errors: Record<string, number>;
  firstBad: string[];
  qid: number;
}

function fds(): number {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return -1;
  }
}

const dev = await NVMeDev.open(target, { maxIoQueues: W + 1, ioTimeoutMs, adminTimeoutMs: 2 * ioTimeoutMs });
const sim = dev.controller.transport instanceof SimTransport ? dev.controller.transport : null;
/** Mapped IOVA: the software controller counts it; other transports do not say (-1). */
const mapped = () => sim ? sim.mappedBytes : ((dev.controller.transport as { mappedBytes?: number }).mappedBytes ?? -1);
const ns = dev.ns(1);
const perWorker = slots * blocksPerSlot;
if (perWorker * W > ns.blockCount) {
  console.error(`soak: namespace 1 has ${ns.blockCount} blocks; ${W} Workers x ${slots} slots x ${blocksPerSlot} blocks do not fit`);
  process.exit(2);
}

const entry = new URL("./soak-worker.ts", import.meta.url);
const ws = await dev.startWorkers(entry, W, { depth: Math.max(64, qd * 2) });
const qids = ws.map((w) => w.qid);

function ask(w: Worker, type: string, reply: string): Promise<Stats & Record<string, unknown>> {
  return new Promise((resolve) => {
    const on = (e: MessageEvent) => {
      if ((e.data as { type: string }).type !== reply) return;
      w.removeEventListener("message", on);
      resolve(e.data);
    };
    w.addEventListener("message", on);
    w.postMessage({ type });
  });
}

ws.forEach((w, i) =>
  w.worker.postMessage({ type: "start", index: i, nsid: 1, lba0: i * perWorker, slots, blocksPerSlot, qd, deadlineMs })
);

const kinds = sim ? ["timeout", "abort-lost", "fatal", "reset"] as const : ["reset"] as const;
const injected: string[] = [];
async function inject(k: number): Promise<string> {
  const kind = kinds[k % kinds.length];
  const qid = qids[k % qids.length];
  switch (kind) {
    case "timeout":
      await sim!.faults.add({ action: "drop", queue: qid, count: 1 });
      break;
    case "abort-lost":
      await sim!.faults.add({ action: "drop", queue: "admin", opcode: AdminOpc.ABORT, count: 1 });
      await sim!.faults.add({ action: "drop", queue: qid, count: 1 });
      break;
    case "fatal":
      await sim!.faults.fatal();
      break;
    case "reset":
      await dev.controller.reset();
      break;
  }
  return kind === "timeout" || kind === "abort-lost" ? `${kind}@q${qid}` : kind;
}

const t0 = performance.now();
const samples: { t: number; iops: number; rss: number; fds: number; mapped: number }[] = [];
let lastIos = 0, lastT = 0, nextFault = faultEvery, k = 0;
let ok = true;
const header = "   t s      IOPS   errors  bad overdue inflight oldest-ms  resets    RSS MiB  fds  mapped KiB  fault";
if (!values.json) {
  console.log(`soak ${rt}: ${target}, ${W} Workers x QD${qd}, ${seconds} s, a fault every ${faultEvery} s (${kinds.join(", ")})`);
  console.log(header);
}
for (;;) {
  const elapsed = (performance.now() - t0) / 1000;
  if (elapsed >= seconds) break;
  const wait = Math.min(sampleS, seconds - elapsed, Math.max(0.05, nextFault - elapsed));
  await new Promise((r) => setTimeout(r, wait * 1000));
  const t = (performance.now() - t0) / 1000;
  let fault = "";
  if (t >= nextFault && t < seconds) {
    try {
      fault = await inject(k++);
    } catch (e) {
      fault = `inject failed: ${(e as Error).message}`;
      ok = false;
    }
    injected.push(fault);
    nextFault += faultEvery;
  }
  if (!fault && t - lastT < sampleS - 0.01 && t < seconds) continue;
  const st = await Promise.all(ws.map((w) => ask(w.worker, "sample", "stats")));
  const ios = st.reduce((a, s) => a + s.ios, 0);
  const errs = st.reduce((a, s) => a + Object.values(s.errors).reduce((x, y) => x + y, 0), 0);
  const row = {
    t: +t.toFixed(1),
    iops: Math.round((ios - lastIos) / Math.max(0.001, t - lastT)),
    errors: errs,
    bad: st.reduce((a, s) => a + s.bad, 0),
    overdue: st.reduce((a, s) => a + s.overdue, 0),
    inflight: st.reduce((a, s) => a + s.inflight, 0),
    oldestMs: Math.max(...st.map((s) => s.oldestMs)),
    resets: dev.controller.resets,
    rss: process.memoryUsage().rss,
    fds: fds(),
    mapped: mapped(),
    fault,
  };
  lastIos = ios;
  lastT = t;
  samples.push({ t: row.t, iops: row.iops, rss: row.rss, fds: row.fds, mapped: row.mapped });
  if (values.json) console.log(JSON.stringify(row));
  else {
    console.log(
      `${row.t.toFixed(1).padStart(7)} ${String(row.iops).padStart(9)} ${String(row.errors).padStart(8)} ${String(row.bad).padStart(4)} ` +
        `${String(row.overdue).padStart(7)} ${String(row.inflight).padStart(8)} ${String(row.oldestMs).padStart(9)} ${
          String(row.resets).padStart(7)
        } ${(row.rss / 2 ** 20).toFixed(1).padStart(10)} ${String(row.fds).padStart(4)} ${
          String(row.mapped < 0 ? "n/a" : Math.round(row.mapped / 1024)).padStart(11)
        }  ${fault}`,
    );
  }
}

// Stop and let every command settle; then check every block once more.
await Promise.all(ws.map((w) => ask(w.worker, "stop", "halted")));
let planted = false;
if (values["self-test"]) {
  // A block of Worker 0's region that no write of its own explains: the final pass must report it.
  const b = dev.allocBuffer(ns.blockSize);
  new Uint32Array(b.buffer, b.byteOffset, 4).set([0, 0xdead, 0x50ac_0000, 0]);
  await ns.write(0, b);
  dev.freeBuffer(b);
  planted = true;
}
const finals = await Promise.all(ws.map((w) => ask(w.worker, "verify", "final")));
await Promise.all(ws.map((w) => ask(w.worker, "close", "closed")));
await Promise.all(ws.map((w) => w.terminate()));
const failedCtl = dev.controller.failed;
await dev.close();

const sum = (f: (s: Stats & Record<string, unknown>) => number) => finals.reduce((a, s) => a + f(s), 0);
const errors: Record<string, number> = {};
for (const f of finals) for (const [c, n] of Object.entries(f.errors)) errors[c] = (errors[c] ?? 0) + n;
const badAll = sum((s) => s.bad), overdue = sum((s) => s.overdue);
// The planted block is one bad block (with its LBA in the report); anything else is real.
const caught = planted && finals[0].firstBad.some((b) => b.startsWith("lba 0:"));
const bad = badAll - (caught ? 1 : 0);
const started = sum((s) => s.started), settled = sum((s) => s.settled);
// Flat: fds and mapped IOVA after the run as after warm-up (the first sample); RSS is shown, not judged (JIT, GC).
const first = samples[0], last = samples[samples.length - 1];
const fdsFlat = !first || first.fds === last.fds;
const mappedFlat = !first || first.mapped === last.mapped;
const untyped = Object.keys(errors).filter((c) => c.startsWith("untyped") || c.startsWith("final:"));
const checks: [string, boolean][] = [
  ["every block read carries what was last written to it", bad === 0],
  ["no command pending past its deadline", overdue === 0],
  ["every promise settled", started === settled],
  ["every failure typed", untyped.length === 0],
  ["controller still up", !failedCtl],
  ["open fds flat", fdsFlat],
  ["mapped IOVA flat", mappedFlat],
  ["faults injected as asked", !injected.some((f) => f.startsWith("inject failed"))],
];
if (planted) checks.push(["self-test: a planted wrong block is caught", caught]);
for (const [, pass] of checks) ok &&= pass;
const summary = {
  runtime: rt,
  target,
  workers: W,
  qd,
  seconds,
  ios: sum((s) => s.ios),
  iops: Math.round(sum((s) => s.ios) / seconds),
  verifiedSlots: sum((s) => s.verified as number),
  faults: injected,
  resets: dev.controller.resets,
  errors,
  bad,
  firstBad: finals.flatMap((f) => f.firstBad),
  overdue,
  started,
  settled,
  rssMiB: first ? [+(first.rss / 2 ** 20).toFixed(1), +(last.rss / 2 ** 20).toFixed(1)] : [],
  fds: first ? [first.fds, last.fds] : [],
  mappedKiB: first ? [first.mapped / 1024, last.mapped / 1024] : [],
  ok,
};
if (values.json) console.log(JSON.stringify(summary));
else {
  console.log(
    `soak ${rt}: ${summary.ios} IOs (${summary.iops} IOPS), ${summary.verifiedSlots} slots verified at the end, faults: ${
      injected.join(", ") || "none"
    }, ${summary.resets} recovery resets`,
  );
  console.log(`  failures by code: ${JSON.stringify(errors)}`);
  console.log(`  RSS MiB ${summary.rssMiB.join(" -> ")}, fds ${summary.fds.join(" -> ")}, mapped KiB ${summary.mappedKiB.join(" -> ")}`);
  for (const [name, pass] of checks) console.log(`  ${pass ? "ok  " : "FAIL"} ${name}`);
  for (const b of summary.firstBad) console.log(`  bad: ${b}${caught && b.startsWith("lba 0:") ? " (planted by --self-test)" : ""}`);
}
process.exit(ok ? 0 : 1);
