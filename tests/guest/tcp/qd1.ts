/**
 * QD1 4 KiB random reads through the tsnvme TCP host against any NVMe/TCP
 * target, for quick iteration on the host's per-IO path: IOPS, p50/p99 µs,
 * this process's CPU µs per IO and the IO queue's pump counters (sleeps,
 * wakes), per wait mode. Prints figures, asserts nothing.
 * Usage: qd1.ts HOST PORT NQN [SECONDS] [MODES, comma-separated: interrupt,adaptive,poll, each optionally
 * :N polls before a sleep and @QD reads in flight (default 1)]
 * (inside the guest against nvmet: tests/guest/tcp/nvmet.sh --qd1 SECONDS).
 * @module
 */
import { DEFAULT_SOCKET_SPIN_POLLS, hostIdentity, TcpController } from "../../../lib/tcp/mod.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import type { WaitMode } from "../../../lib/nvme/idle.ts";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";

/** Per thread name: CPU ticks (utime + stime) and context switches (voluntary, involuntary), from /proc/self/task. */
function threadStats(): Map<string, [number, number, number]> {
  const m = new Map<string, [number, number, number]>();
  for (const t of readdirSync("/proc/self/task")) {
    try {
      const st = readFileSync(`/proc/self/task/${t}/stat`, "utf8");
      const name = st.slice(st.indexOf("(") + 1, st.lastIndexOf(")"));
      const f = st.slice(st.lastIndexOf(")") + 2).split(" ");
      const sw = readFileSync(`/proc/self/task/${t}/status`, "utf8");
      const v = Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(sw)?.[1] ?? 0);
      const nv = Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(sw)?.[1] ?? 0);
      const e = m.get(name) ?? [0, 0, 0];
      m.set(name, [e[0] + Number(f[11]) + Number(f[12]), e[1] + v, e[2] + nv]);
    } catch { /* thread gone */ }
  }
  return m;
}

/** Whole-process counters: minor faults, and the system's TLB-shootdown, reschedule and call-function IPIs (all CPUs). */
function procCounters(): Record<string, number> {
  const r: Record<string, number> = { minflt: 0, TLB: 0, RES: 0, CAL: 0 };
  try {
    const st = readFileSync("/proc/self/stat", "utf8");
    r.minflt = Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[7]);
  } catch { /* no procfs */ }
  try {
    for (const line of readFileSync("/proc/interrupts", "utf8").split("\n")) {
      const m = /^\s*(TLB|RES|CAL):((?:\s+\d+)+)/.exec(line);
      if (m) r[m[1]] = m[2].trim().split(/\s+/).reduce((a, b) => a + Number(b), 0);
    }
  } catch { /* no procfs */ }
  return r;
}

const argv = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const [host, portArg, nqn, secArg, modeArg] = argv;
const rt = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
const proc = (globalThis as unknown as { process: { cpuUsage(): { user: number; system: number } } }).process;
const secs = Number(secArg ?? 3);
/** QD1_MARK=FILE: created when the first measured pass starts (nvmet.sh's probe attaches then). */
const env = (globalThis as unknown as { process: { env: Record<string, string | undefined> } }).process.env;
const mark = env.QD1_MARK;
// QD1_PASSES=N measured passes per mode (default 1), to see whether a slow state outlasts the warm-up;
// QD1_WARM=SEC the warm-up pass (default SECONDS/2, at least 1). QD1_MARKS=1 prints a line as each
// pass starts, to split a V8 trace (--trace-opt etc., on the same stdout) by pass.
const passes = Math.max(1, Number(env.QD1_PASSES ?? 1)), warm = env.QD1_WARM, marks = env.QD1_MARKS === "1";
// QD1_WINDOWS=LABEL: "mark start|end qd1 RUNTIME LABEL MODE ios=N" around each measured pass, for
// scripts/qemu-threads.py's report (host-side CPU of QEMU's threads per window).
const windows = env.QD1_WINDOWS;
// V8 (Deno) puts its code under a memory protection key where the CPU has PKU. Under TCG every
// PKRU write (V8's own, and the kernel's at each switch to or from a thread whose PKRU differs)
// flushes the vCPU's whole TLB, so say whether this process has one (and how many mappings).
// Mappings are not the whole story: V8's default platform allocates its key (write-disabled) when
// it starts, --no-memory-protection-keys or not, so every Deno thread's PKRU is 0x55555558 against
// the kernel's 0x55555554 and each switch to or from one writes PKRU (Bun's threads keep the default).
// scripts/qemu-probes.py counts those writes from the host.
{
  let keyed = 0, pku = false;
  try {
    for (const m of readFileSync("/proc/self/smaps", "utf8").matchAll(/^ProtectionKey:\s+(\d+)/gm)) {
      pku = true;
      if (m[1] !== "0") keyed++;
    }
  } catch { /* no smaps */ }
  console.log(`qd1 ${rt}: ${pku ? `memory protection keys: ${keyed} mappings under a key` : "no memory protection keys"}${marks ? ` at ${(Date.now() / 1000).toFixed(1)}` : ""}`);
}
const c = await TcpController.connect({ host, port: Number(portArg), subnqn: nqn, ...hostIdentity("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"), ioQueues: 1 });
try {
  const ns = await c.namespace(1);
  const q = c.io[0].qp;
  const buf = c.memory.allocDma(4096 * 32);
  const nlb = 4096 / ns.lbaSize;
  const lat = new Float64Array(1 << 20);
  let total = 0;
  for (const mode of (modeArg ?? "interrupt,adaptive").split(",") as WaitMode[]) {
    // MODE[:N]: the wait mode, with N polls of the socket before each sleep (default: the ring's).
    // MODE[:N][@QD]: and QD reads in flight (default 1).
    const [mp, qdArg] = mode.split("@"), qd = Number(qdArg ?? 1);
    const [m, polls] = mp.split(":");
    c.io[0].ring.waiter.spinPolls = polls === undefined ? DEFAULT_SOCKET_SPIN_POLLS : Number(polls);
    q.pollSpinUs = m === "interrupt" ? 0 : 500;
    q.setWaitMode(m as WaitMode);
    for (let pass = 0; pass <= passes; pass++) { // pass 0 warms the JIT (slow to settle under TCG)
      const dur = pass === 0 ? (warm !== undefined ? Number(warm) : Math.max(1, secs / 2)) : secs;
      if (marks) console.log(`qd1 ${rt} ${mode}: pass ${pass} starts (${dur} s) at ${(Date.now() / 1000).toFixed(1)}`);
      let ios = 0, rnd = 7;
      const s0 = { ...q.stats }, spun0 = c.io[0].ring.waiter.spun;
      const c0 = proc.cpuUsage(), th0 = threadStats(), p0 = procCounters();
      const t0 = performance.now(), end = t0 + dur * 1000;
      if (pass === 1 && mark) writeFileSync(mark, ""); // an outside probe may attach now
      if (pass > 0 && windows) console.log(`mark start qd1 ${rt} ${windows} ${mode} ${pass}`);
      await Promise.all(Array.from({ length: qd }, async (_, i) => {
        for (let t = t0; t < end;) {
          rnd = (rnd * 1103515245 + 12345) >>> 0;
          await q.rw(IoOpc.READ, 1, (rnd % Math.floor(ns.blocks / nlb)) * nlb, nlb - 1, buf.iova + i * 4096, 4096);
          const t1 = performance.now();
          if (ios < lat.length) lat[ios] = t1 - t;
          t = t1;
          ios++;
        }
      }));
      if (pass === 0) {
        if (marks || passes > 1) console.log(`qd1 ${rt} ${mode} [warm-up]: ${(ios / ((performance.now() - t0) / 1000)).toFixed(0)} IOPS`);
        total += ios;
        continue;
      }
      const s = (performance.now() - t0) / 1000, c1 = proc.cpuUsage(), st = q.stats;
      if (windows) console.log(`mark end qd1 ${rt} ${windows} ${mode} ${pass} ios=${ios}`);
      const l = lat.slice(0, Math.min(ios, lat.length)).sort();
      const pct = (p: number) => (l[Math.min(l.length - 1, Math.floor(l.length * p))] * 1000).toFixed(0);
      const per = (k: "sleeps" | "interrupts") => ((st[k] - s0[k]) / ios).toFixed(2);
      console.log(
        `qd1 ${rt} ${mode}${passes > 1 ? ` [pass ${pass}]` : ""}: ${(ios / s).toFixed(0)} IOPS p50=${pct(0.5)}us p99=${pct(0.99)}us ` +
          `cpu=${((c1.user - c0.user + c1.system - c0.system) / ios).toFixed(1)}us/io sleeps/io=${per("sleeps")} wakes/io=${per("interrupts")} spun/io=${((c.io[0].ring.waiter.spun - spun0) / ios).toFixed(2)}`,
      );
      const th1 = threadStats(), p1 = procCounters(), parts: string[] = [];
      for (const [k, v] of th1) {
        const o = th0.get(k) ?? [0, 0, 0], dt = v[0] - o[0], cs = v[1] - o[1] + v[2] - o[2];
        if (dt > 0 || cs > 0) parts.push(`${k}=${(dt / s).toFixed(0)}%/${(cs / ios).toFixed(2)}cs`);
      }
      console.log(`  threads (cpu % of one core / context switches per IO): ${parts.join(" ")}`);
      total += ios;
      console.log(`  per IO: ${Object.keys(p1).map((k) => `${k}=${((p1[k] - p0[k]) / ios).toFixed(3)}`).join(" ")}`);
    }
  }
  console.log(`qd1 ${rt}: ${total} IOs in all${marks ? ` at ${(Date.now() / 1000).toFixed(1)}` : ""}`);
  c.memory.freeDma(buf);
  await c.shutdown();
} catch (e) {
  console.log(`qd1 ${rt}: failed: ${e}`);
  c.close();
}
