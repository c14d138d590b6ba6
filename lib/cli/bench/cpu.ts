/**
 * CPU time for benchmarks: this thread's (from /proc/thread-self/schedstat, in
 * ns, so Workers are measured apart) and the whole process's.
 * @module
 */
import { readdirSync, readFileSync } from "node:fs";
import process from "node:process";

/** CPU time this thread has run, ms (Linux schedstat; 0 where unavailable). */
export function threadCpuMs(): number {
  try {
    return Number(readFileSync("/proc/thread-self/schedstat", "utf8").split(" ")[0]) / 1e6;
  } catch {
    return 0;
  }
}

/** CPU time of the whole process (every thread), ms. */
export function processCpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** Run time of each thread of this process now: thread id -> [name (comm), ns] (Linux schedstat; empty elsewhere). */
export function threadTimes(): Map<string, [string, number]> {
  const m = new Map<string, [string, number]>();
  try {
    for (const t of readdirSync("/proc/self/task")) {
      try {
        const comm = readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim();
        m.set(t, [comm, Number(readFileSync(`/proc/self/task/${t}/schedstat`, "utf8").split(" ")[0])]);
      } catch { /* the thread ended */ }
    }
  } catch { /* no /proc */ }
  return m;
}

/**
 * CPU µs per IO by thread name between two {@link threadTimes} snapshots
 * (threads of one name summed: a runtime's GC or JIT helpers), largest first.
 * The main thread is named after the runtime's executable.
 */
export function threadCpuPerIo(before: Map<string, [string, number]>, after: Map<string, [string, number]>, ios: number): Record<string, number> {
  const by = new Map<string, number>();
  for (const [tid, [comm, ns]] of after) {
    const d = ns - (before.get(tid)?.[1] ?? 0);
    if (d > 0) by.set(comm, (by.get(comm) ?? 0) + d);
  }
  const out: Record<string, number> = {};
  for (const [comm, ns] of [...by].sort((a, b) => b[1] - a[1])) out[comm] = +(ns / 1000 / Math.max(1, ios)).toFixed(2);
  return out;
}
