/**
 * The target's cost per IO, natively: lib/cli/nvmf-target.ts in a child
 * process (1 Worker by default) serving the software controller, read by a
 * tsnvme host in this process over loopback, 4 KiB random reads at each
 * queue depth. Prints IOPS and the target process's CPU per IO by thread
 * (/proc/PID/task/TID/stat; the Worker is the busiest "worker" thread), and
 * with `--strace` the target's syscalls per IO (strace -c -f over the run).
 *
 * Usage: deno run -A scripts/target-cpu.ts [--rt deno|bun] [--secs N] [--qd 1,32]
 *          [--workers N] [--strace] [--env A=1,B=2] [--base DIR] [--rounds N]
 *   --ns     the target's namespace (default sim:ns=64M:512; mem:64M:512: no device queue)
 *   --env    variables for the target (comma-joined), e.g. an A/B switch
 *   --rt-flags  flags for the target's runtime (e.g. "--v8-flags=--prof")
 *   --perf   perf record -g of the target during each measured run (/tmp/target-cpu-qdN.perf;
 *            with --rt-flags "--v8-flags=--perf-basic-prof" on Deno for JS names)
 *   --base   another checkout whose target runs alternately with this one (A/B, rounds)
 * @module
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { hostIdentity, TcpController } from "../lib/tcp/mod.ts";
import { IoOpc } from "../lib/nvme/spec.ts";

const argv = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const opt = (name: string, dflt: string): string => {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : dflt;
};
const RT = opt("--rt", "deno");
const SECS = Number(opt("--secs", "3"));
const QDS = opt("--qd", "1,32").split(",").map(Number);
const WORKERS = opt("--workers", "1");
const STRACE = argv.includes("--strace");
const ENV = opt("--env", "");
const BASE = opt("--base", "");
const ROUNDS = Number(opt("--rounds", "1"));
const RTFLAGS = opt("--rt-flags", "").split(" ").filter(Boolean);
const PERF = argv.includes("--perf");
const NS = opt("--ns", "sim:ns=64M:512");
const NQN = "nqn.2024-01.io.tsnvme:cpu";
const HZ = 100;
const here = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** utime+stime ticks and name of every thread of `pid`. */
function threads(pid: number): Map<string, { name: string; ticks: number }> {
  const out = new Map<string, { name: string; ticks: number }>();
  for (const t of readdirSync(`/proc/${pid}/task`)) {
    try {
      const st = readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8");
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      out.set(t, { name: readFileSync(`/proc/${pid}/task/${t}/comm`, "utf8").trim(), ticks: Number(f[11]) + Number(f[12]) });
    } catch { /* gone */ }
  }
  return out;
}

async function startTarget(dir: string, port: number, env: Record<string, string>): Promise<{ pid: number; stop(): Promise<void> }> {
  const ready = `/tmp/target-cpu-${process.pid}.ready`;
  rmSync(ready, { force: true });
  const cli = `${dir}/lib/cli/nvmf-target.ts`;
  const cmd = RT === "deno" ? ["deno", ["run", "-A", "--no-check", ...RTFLAGS, cli]] as const : ["bun", [...RTFLAGS, cli]] as const;
  const p = spawn(cmd[0], [...cmd[1], "--workers", WORKERS, "--port", String(port), "--nqn", NQN, "--ns", NS, "--ready-file", ready, "-q"], {
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "inherit"],
  });
  for (let i = 0; i < 300 && !existsSync(ready); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(ready)) throw new Error("target did not start");
  return {
    pid: p.pid!,
    stop: () => new Promise<void>((r) => (p.once("exit", () => r()), p.kill("SIGTERM"))),
  };
}

async function run(label: string, dir: string, port: number): Promise<void> {
  const env: Record<string, string> = {};
  for (const kv of ENV.split(",").filter(Boolean)) env[kv.slice(0, kv.indexOf("="))] = kv.slice(kv.indexOf("=") + 1);
  const t = await startTarget(dir, port, env);
  try {
    const c = await TcpController.connect({ host: "127.0.0.1", port, subnqn: NQN, ...hostIdentity("00000000-0000-4000-8000-000000000002"), katoMs: 0 });
    const q = c.io[0].qp;
    const buf = c.memory.allocDma(4096 * 64);
    for (const qd of QDS) {
      const go = async (secs: number) => {
        let ios = 0, rnd = 12345;
        const end = performance.now() + secs * 1000;
        await Promise.all(Array.from({ length: qd }, async (_, i) => {
          while (performance.now() < end) {
            rnd = (rnd * 1103515245 + 12345) >>> 0;
            await q.rw(IoOpc.READ, 1, (rnd % 16384) * 8, 7, buf.iova + i * 4096, 4096);
            ios++;
          }
        }));
        return ios;
      };
      await go(1); // warm-up
      const st = STRACE
        ? spawn("strace", ["-c", "-f", "-p", String(t.pid), "-o", `/tmp/target-cpu-${process.pid}.strace`])
        : PERF
        ? spawn("perf", ["record", "-F", "2000", "-g", "-p", String(t.pid), "-o", `/tmp/target-cpu-qd${qd}.perf`], { stdio: "ignore" })
        : null;
      if (st) await new Promise((r) => setTimeout(r, 300));
      const a = threads(t.pid), t0 = performance.now();
      const ios = await go(SECS);
      const s = (performance.now() - t0) / 1000, b = threads(t.pid);
      const rows: [string, number][] = [];
      let all = 0;
      for (const [tid, v] of b) {
        const d = v.ticks - (a.get(tid)?.ticks ?? 0);
        all += d;
        if (d > 0) rows.push([`${v.name}`, d / HZ * 1e6 / ios]);
      }
      rows.sort((x, y) => y[1] - x[1]);
      let sys = "";
      if (st && PERF) {
        st.kill("SIGINT");
        await new Promise((r) => st.once("exit", r));
      } else if (st) {
        st.kill("SIGINT");
        await new Promise((r) => st.once("exit", r));
        const txt = readFileSync(`/tmp/target-cpu-${process.pid}.strace`, "utf8");
        const calls = [...txt.matchAll(/^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$/gm)].map((m) => [m[2], Number(m[1])] as const)
          .filter(([n]) => n !== "total").sort((x, y) => y[1] - x[1]);
        const tot = calls.reduce((n, [, k]) => n + k, 0);
        // strace slows the target: its IOs are counted again from the run's own rate.
        sys = `; syscalls/IO ${(tot / ios).toFixed(2)} (${calls.slice(0, 5).map(([n, k]) => `${n} ${(k / ios).toFixed(2)}`).join(", ")})`;
      }
      console.log(`${label} ${RT} qd${qd}: ${(ios / s).toFixed(0)} IOPS; target CPU ${(all / HZ * 1e6 / ios).toFixed(1)} us/IO (${rows.slice(0, 4).map(([n, v]) => `${n} ${v.toFixed(1)}`).join(", ")})${sys}`);
    }
    c.memory.freeDma(buf);
    await c.shutdown();
  } finally {
    await t.stop();
  }
}

const dirs: [string, string][] = BASE ? [["base", BASE], ["new", here]] : [["new", here]];
for (let r = 0; r < ROUNDS; r++) for (const [label, dir] of dirs) await run(label, dir, 4470 + r);
// strace -c reports after detaching; nothing else keeps the process alive.
spawnSync("true");
