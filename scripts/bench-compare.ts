/**
 * Inside one guest boot (scripts/bench.sh starts it), same device, same
 * workload: the kernel nvme driver with fio (io_uring with interrupts, and
 * polled: nvme.poll_queues=1 with --hipri), then tsnvme on Deno and on Bun in
 * each wait mode (poll, interrupt, adaptive) through the Promise API (`await
 * ns.read`), and in adaptive mode through the callback path too
 * (`ns.submitRead`, the next IO from the completion's callback, as SPDK's
 * perf issues; `--apis`): every tsnvme row names its API. Prints Markdown tables with
 * ratios to the kernel's figures of this boot: QD 1 latency and QD 32/128
 * IOPS, CPU per IO, idle CPU, IOPS under a CPU hog on the same vCPU, and
 * scaling with Workers. Asserts nothing.
 * @module
 */
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { parseArgs } from "node:util";
import { BENCH_COMPARE_OPTIONS } from "./bench-compare-options.ts";
import { runPeers } from "./bench-peers.ts";

const { values } = parseArgs({ args: process.argv.slice(2), options: BENCH_COMPARE_OPTIONS });
const pci = process.env.TSNVME_PCI!;
const pcis = (process.env.TSNVME_PCIS ?? pci).split(" ").filter(Boolean);
const depths = values.iodepth!.split(",").map(Number);
const modes = values.modes!.split(",");
const rts = ["deno", "bun"];
const bind = (d: "nvme" | "vfio") => execFileSync("scripts/guest-bind.sh", [d, pci], { stdio: ["ignore", "ignore", "inherit"] });
const have = (cmd: string) => spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
const md: string[] = [];
const out = (s = "") => {
  console.log(s);
  md.push(s);
};

interface Row {
  who: string;
  mode: string;
  qd: number;
  iops: number;
  mean: number;
  p50: number;
  p99: number;
  cpu: number;
  /** tsnvme: interrupts and pump sleeps per 1,000 IOs on the first IO queue (how often adaptive slept). */
  irqK?: number;
  sleepK?: number;
}

/** fio on /dev/nvme0n1; `cpus` pins it (taskset). */
function fio(qd: number, opts: { hipri?: boolean; runtime?: string; cpus?: string } = {}): Row {
  const args = [
    "--name=k", "--filename=/dev/nvme0n1", `--rw=${values.rw}`, `--bs=${values.bs}`, `--iodepth=${qd}`,
    "--ioengine=io_uring", "--direct=1", "--time_based", `--runtime=${opts.runtime ?? values.runtime}`,
    "--ramp_time=1", "--output-format=json", ...(opts.hipri ? ["--hipri"] : []),
  ];
  const [cmd, argv] = opts.cpus ? ["taskset", ["-c", opts.cpus, "fio", ...args]] : ["fio", args];
  const o = execFileSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 24 });
  const j = JSON.parse(o.slice(o.indexOf("{"))).jobs[0];
  const side = values.rw!.includes("read") ? j.read : j.write;
  const p = side.clat_ns.percentile ?? {};
  const ios = side.total_ios || 1;
  return {
    who: "kernel", mode: opts.hipri ? "polled (hipri)" : "interrupts", qd,
    iops: Math.round(side.iops), mean: side.clat_ns.mean / 1000,
    p50: (p["50.000000"] ?? 0) / 1000, p99: (p["99.000000"] ?? 0) / 1000,
    cpu: ((j.usr_cpu + j.sys_cpu) / 100) * (j.job_runtime * 1000) / ios,
  };
}

/** A tsnvme row's wait column: the mode and the API its IOs went through. */
const waitLabel = (mode: string, api: string) => `${mode}, ${api === "callback" ? "callback" : "Promise"} API`;

/** tsnvme's bench in runtime `rt` and wait mode `mode` through `api`; one Row per depth. */
function tsnvme(rt: string, mode: string, qds: number[], opts: { runtime?: string; cpus?: string; api?: string } = {}): Row[] {
  const api = opts.api ?? "promise";
  const script = rt === "deno" ? ["run", "-A", "lib/cli/bench/mod.ts"] : ["lib/cli/bench/mod.ts"];
  const args = [...script, pci, "--json", `--rw=${values.rw}`, `--bs=${values.bs}`, `--iodepth=${qds.join(",")}`,
    `--runtime=${opts.runtime ?? values.runtime}`, `--ramp=${values.ramp}`, `--interrupts=${mode}`, `--api=${api}`];
  const [cmd, argv] = opts.cpus ? ["taskset", ["-c", opts.cpus, rt, ...args]] : [rt, args];
  const r = spawnSync(cmd, argv, { encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`${rt} ${mode} ${api} bench failed:\n${r.stderr}`);
    process.exitCode = 1;
    return [];
  }
  return r.stdout.trim().split("\n").map((l) => {
    const j = JSON.parse(l);
    const k = 1000 / Math.max(1, j.ios);
    return {
      who: `tsnvme ${rt}`, mode: waitLabel(mode, api), qd: j.iodepth, iops: j.iops, mean: j.latUs.mean, p50: j.latUs.p50, p99: j.latUs.p99, cpu: j.cpuUsPerIo,
      irqK: j.interrupts * k, sleepK: j.sleeps * k,
    };
  });
}

const f0 = (n: number) => n.toFixed(0);
const f1 = (n: number) => n.toFixed(1);

// ------------------------------------------------------------------ modes x depths
// Each unit measures one driver (or the peers) at every depth. With --rounds N the units run N
// times, every other round in reverse order (a boot's speed drifts by tens of percent over minutes
// under TCG, and a fixed order hands the drift to whoever runs last); each row is then the run
// with the median IOPS of its driver, mode and depth.
let polled = false;
const kernelRows = (): Row[] => {
  bind("nvme");
  const rs: Row[] = [];
  for (const qd of depths) rs.push(fio(qd));
  const pq = "/sys/module/nvme/parameters/poll_queues";
  try {
    writeFileSync(pq, "1");
    bind("vfio");
    bind("nvme"); // the probe after the parameter change gets a poll queue
    for (const qd of depths) rs.push(fio(qd, { hipri: true }));
    polled = true;
  } catch (e) {
    console.error(`kernel polled rows skipped: ${(e as Error).message}`);
  } finally {
    try {
      writeFileSync(pq, "0");
    } catch { /* parameter absent */ }
  }
  bind("vfio");
  return rs;
};
const peerNotes: string[] = [];
const apis = values.apis!.split(",");
const units: (() => Row[])[] = [kernelRows];
if (!values["no-peers"]) {
  units.push(() =>
    runPeers({
      pci, depths, bs: Number(values.bs), rw: values.rw!, seconds: Number(values.runtime), nsid4k: Number(values["peer-ns4k"]),
    }, peerNotes.length ? [] : peerNotes) // notes once, not once per round
  );
}
for (const rt of rts) {
  for (const mode of modes) if (apis.includes("promise")) units.push(() => tsnvme(rt, mode, depths));
  if (apis.includes("callback")) units.push(() => tsnvme(rt, "adaptive", depths, { api: "callback" }));
}
const rounds = Math.max(1, Number(values.rounds) | 0);
const runs: Row[][] = [];
for (let r = 0; r < rounds; r++) {
  const run: Row[] = [];
  for (const u of r % 2 === 0 ? units : [...units].reverse()) run.push(...u());
  runs.push(run);
}
const rowKey = (r: Row) => `${r.who}|${r.mode}|${r.qd}`;
const rows: Row[] = runs[0].map((first) => {
  const all = runs.map((run) => run.find((x) => rowKey(x) === rowKey(first))).filter((x): x is Row => x !== undefined);
  return all.sort((a, b) => a.iops - b.iops)[(all.length - 1) >> 1];
});

out(`\n### ${values.rw} ${values.bs} B: wait modes against the kernel (one guest boot, TCG, ${values.runtime} s per job after ${values.ramp} s warm-up)\n`);
out("| driver | wait | QD | IOPS | vs kernel irq | vs kernel polled | mean µs | p50 µs | p99 µs | CPU µs/IO | irq, sleeps / 1k IO |");
out("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const k = rows.find((x) => x.who === "kernel" && x.mode === "interrupts" && x.qd === r.qd)!;
  const kp = rows.find((x) => x.who === "kernel" && x.mode !== "interrupts" && x.qd === r.qd);
  out(`| ${r.who} | ${r.mode} | ${r.qd} | ${r.iops} | ${(r.iops / k.iops).toFixed(2)}x | ${kp ? (r.iops / kp.iops).toFixed(2) + "x" : "-"} | ` +
    `${f0(r.mean)} | ${f0(r.p50)} | ${f0(r.p99)} | ${f1(r.cpu)} | ${r.irqK === undefined ? "-" : `${f0(r.irqK)}, ${f0(r.sleepK!)}`} |`);
}
if (!polled) out("\n(kernel polled rows missing: nvme.poll_queues could not be set)");
out("\n(Latency: fio and SPDK (perf -L) time every IO; tsnvme times one IO in 8 at every depth, its percentiles" +
  " come from those: a clock read costs ~0.3-1.2 µs in the TCG guest. tsnvme's callback rows issue the next IO from the" +
  " completion's callback, as spdk_nvme_perf; its Promise rows await ns.read.)");

// ------------------------------------------------------------------ ratios to the peers
{
  const spdk = rows.filter((r) => r.who.startsWith("SPDK"));
  const ts = rows.filter((r) => r.who.startsWith("tsnvme"));
  out(`\n### tsnvme / SPDK and tsnvme / kernel, IOPS ratios of this boot (SPDK and libvfn poll one core; > 1: tsnvme faster)\n`);
  out("| driver | wait | QD | IOPS | / SPDK | / libvfn | / kernel irq | / kernel polled |");
  out("|---|---|---:|---:|---:|---:|---:|---:|");
  const ratio = (a: number, b: Row | undefined) => b && b.iops > 0 ? (a / b.iops).toFixed(2) + "x" : "-";
  for (const r of [...rows.filter((x) => x.who === "libvfn perf"), ...ts]) {
    const at = (f: (x: Row) => boolean) => rows.find((x) => x.qd === r.qd && f(x));
    out(`| ${r.who} | ${r.mode} | ${r.qd} | ${r.iops} | ${ratio(r.iops, spdk.find((x) => x.qd === r.qd))} | ` +
      `${ratio(r.iops, at((x) => x.who === "libvfn perf"))} | ${ratio(r.iops, at((x) => x.who === "kernel" && x.mode === "interrupts"))} | ` +
      `${ratio(r.iops, at((x) => x.who === "kernel" && x.mode !== "interrupts"))} |`);
  }
  for (const n of peerNotes) out(`\n(${n})`);
}
if (rounds > 1) {
  out(`\n### IOPS by round (${rounds} rounds, every other one in reverse order; the tables above take each row's median)\n`);
  out(`| driver | wait | QD | ${runs.map((_, i) => `round ${i + 1}`).join(" | ")} |`);
  out(`|---|---|---:|${runs.map(() => "---:").join("|")}|`);
  for (const r of rows) out(`| ${r.who} | ${r.mode} | ${r.qd} | ${runs.map((run) => run.find((x) => rowKey(x) === rowKey(r))?.iops ?? "-").join(" | ")} |`);
}

// ------------------------------------------------------------------ idle CPU
out(`\n### Idle: device open, an async event request outstanding, no IO (process CPU over 3 s)\n`);
out("| runtime | wait | CPU % of one core |");
out("|---|---|---:|");
for (const rt of rts) {
  for (const mode of modes) {
    const script = rt === "deno" ? ["run", "-A", "lib/cli/bench/mod.ts"] : ["lib/cli/bench/mod.ts"];
    const r = spawnSync(rt, [...script, pci, "--idle=3", `--interrupts=${mode}`], { encoding: "utf8" });
    const j = r.status === 0 ? JSON.parse(r.stdout.trim().split("\n").pop()!) : null;
    out(`| ${rt} | ${mode} | ${j ? j.idleCpuPct.toFixed(2) : "failed"} |`);
  }
}
// A plain sleeping process for scale: the guest's own timer and clock noise.
{
  const r = spawnSync("deno", ["eval", `import process from "node:process";const c=process.cpuUsage();await new Promise(r=>setTimeout(r,3000));const u=process.cpuUsage(c);console.log(((u.user+u.system)/30000).toFixed(2))`], { encoding: "utf8" });
  out(`| deno | (a process that only sleeps 3 s: the guest's floor) | ${r.stdout.trim()} |`);
}

// ------------------------------------------------------------------ idle and a trickle of reads
if (values["idle-trickle"]) {
  const r = spawnSync("deno", ["run", "-A", "scripts/idle-cpu.ts", "--seconds", "3"], { encoding: "utf8" });
  out("");
  out(r.status === 0 ? r.stdout.trim() : `(idle-cpu.ts failed: ${r.stderr.trim().split("\n").slice(-2).join(" | ")})`);
}

// ------------------------------------------------------------------ CPU hog on the same vCPU
if (!values["no-hog"] && have("stress-ng") && have("taskset")) {
  const loads = values.loads!.split(",").map(Number);
  const hogRows: { load: number; who: string; mode: string; iops: number }[] = [];
  for (const load of loads) {
    const hog = load > 0
      ? spawn("taskset", ["-c", "0", "stress-ng", "--cpu", "1", "--cpu-load", String(load), "--timeout", "600"], { stdio: "ignore" })
      : null;
    await new Promise((r) => setTimeout(r, 500));
    bind("nvme");
    hogRows.push({ load, who: "kernel", mode: "interrupts", iops: fio(32, { runtime: values["hog-runtime"], cpus: "0" }).iops });
    bind("vfio");
    for (const rt of rts) {
      for (const mode of modes) {
        const [r] = tsnvme(rt, mode, [32], { runtime: values["hog-runtime"], cpus: "0" });
        if (r) hogRows.push({ load, who: `tsnvme ${rt}`, mode: r.mode, iops: r.iops });
      }
    }
    hog?.kill();
  }
  out(`\n### Under a CPU hog on the same vCPU (stress-ng --cpu 1 --cpu-load L; driver and hog pinned to CPU 0), QD 32 IOPS\n`);
  out(`| driver | wait | ${loads.map((l) => `L=${l}`).join(" | ")} |`);
  out(`|---|---|${loads.map(() => "---:").join("|")}|`);
  const keys = [...new Set(hogRows.map((r) => `${r.who}|${r.mode}`))];
  for (const k of keys) {
    const [who, mode] = k.split("|");
    out(`| ${who} | ${mode} | ${loads.map((l) => hogRows.find((r) => r.load === l && `${r.who}|${r.mode}` === k)?.iops ?? "-").join(" | ")} |`);
  }
} else if (!values["no-hog"]) out("\n(CPU hog table skipped: stress-ng or taskset missing)");

// ------------------------------------------------------------------ scaling with Workers
if (!values["no-scaling"]) {
  out(`\n### Workers, each owning an IO queue (QD 32 each, adaptive, Promise API)\n`);
  for (const [what, targets, extra] of [
    ["one controller", [pci], []],
    ["two controllers, one Worker each", pcis.slice(0, 2), ["--multi"]],
  ] as const) {
    if (targets.length < (extra.length ? 2 : 1)) continue;
    for (const rt of rts) {
      const script = rt === "deno" ? ["run", "-A", "lib/cli/bench/workers.ts"] : ["lib/cli/bench/workers.ts"];
      const r = spawnSync(rt, [...script, ...targets, "--workers", "1,2", "--ms", "3000", "--warm-ms", "3000", "--json", ...extra], { encoding: "utf8" });
      if (r.status !== 0) {
        out(`${rt} ${what}: failed ${r.stderr.split("\n").slice(-3).join(" ")}`);
        continue;
      }
      for (const l of r.stdout.trim().split("\n")) {
        const j = JSON.parse(l);
        out(`- ${rt}, ${what}: ${j.workers} worker(s) ${j.iops} IOPS (${j.scaling}x of one), ${j.cpuUsPerIo} µs CPU/IO`);
      }
    }
  }
}
if (values.out) writeFileSync(values.out, md.join("\n") + "\n");
