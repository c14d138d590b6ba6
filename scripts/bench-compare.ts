/**
 * Inside one guest boot (scripts/bench.sh starts it): fio on the kernel nvme
 * driver, then tsnvme on Deno and on Bun, same device, same workload; prints a
 * Markdown table with each figure's ratio to the kernel's.
 * @module
 */
import { execFileSync, spawnSync } from "node:child_process";
import process from "node:process";
import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    bs: { type: "string", default: "4096" },
    iodepth: { type: "string", default: "1,32" },
    runtime: { type: "string", default: "5" },
    rw: { type: "string", default: "randread" },
  },
});
const pci = process.env.TSNVME_PCI!;
const depths = values.iodepth!.split(",").map(Number);
const bind = (d: "nvme" | "vfio") => execFileSync("scripts/guest-bind.sh", [d, pci], { stdio: ["ignore", "ignore", "inherit"] });

interface Row {
  who: string;
  qd: number;
  iops: number;
  p50: number;
  p99: number;
}
const rows: Row[] = [];

bind("nvme");
for (const engine of ["io_uring", "libaio"]) {
  for (const qd of depths) {
    const out = execFileSync("fio", [
      "--name=k",
      "--filename=/dev/nvme0n1",
      `--rw=${values.rw}`,
      `--bs=${values.bs}`,
      `--iodepth=${qd}`,
      `--ioengine=${engine}`,
      "--direct=1",
      "--time_based",
      `--runtime=${values.runtime}`,
      "--ramp_time=0.5",
      "--output-format=json",
    ], { encoding: "utf8", maxBuffer: 1 << 24 });
    const j = JSON.parse(out.slice(out.indexOf("{"))).jobs[0];
    const side = values.rw!.includes("read") ? j.read : j.write;
    const p = side.clat_ns.percentile ?? {};
    rows.push({
      who: `kernel fio ${engine}`,
      qd,
      iops: Math.round(side.iops),
      p50: (p["50.000000"] ?? 0) / 1000,
      p99: (p["99.000000"] ?? 0) / 1000,
    });
  }
}
bind("vfio");
for (const rt of ["deno", "bun"]) {
  const argv = rt === "deno" ? ["run", "-A", "scripts/bench.ts"] : ["scripts/bench.ts"];
  const r = spawnSync(rt, [
    ...argv,
    pci,
    "--json",
    `--rw=${values.rw}`,
    `--bs=${values.bs}`,
    `--iodepth=${values.iodepth}`,
    `--runtime=${values.runtime}`,
  ], { encoding: "utf8" });
  if (r.status !== 0) {
    console.error(`${rt} bench failed:\n${r.stderr}`);
    process.exitCode = 1;
    continue;
  }
  for (const line of r.stdout.trim().split("\n")) {
    const j = JSON.parse(line);
    rows.push({ who: `tsnvme ${rt}`, qd: j.iodepth, iops: j.iops, p50: j.latUs.p50, p99: j.latUs.p99 });
  }
}

console.log(`\n${values.rw} ${values.bs} B, ${values.runtime} s per job, QEMU ${"emulated"} NVMe under TCG, same guest boot\n`);
console.log("| driver | QD | IOPS | vs kernel io_uring | p50 µs | p99 µs |");
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  const base = rows.find((x) => x.who === "kernel fio io_uring" && x.qd === r.qd)!;
  console.log(
    `| ${r.who} | ${r.qd} | ${r.iops} | ${(r.iops / base.iops).toFixed(2)}x | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} |`,
  );
}
