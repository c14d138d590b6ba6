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

/** Each thread of this process: thread id -> [name (comm), ns run, time slices run] (Linux schedstat; empty elsewhere). */
export type ThreadTimes = Map<string, [string, number, number]>;

/** Run time of each thread of this process now ({@link ThreadTimes}). */
export function threadTimes(): ThreadTimes {
  const m: ThreadTimes = new Map();
  try {
    for (const t of readdirSync("/proc/self/task")) {
      try {
        const comm = readFileSync(`/proc/self/task/${t}/comm`, "utf8").trim();
        const [ns, , slices] = readFileSync(`/proc/self/task/${t}/schedstat`, "utf8").split(" ").map(Number);
        m.set(t, [comm, ns, slices]);
      } catch { /* the thread ended */ }
    }
  } catch { /* no /proc */ }
  return m;
}

/**
 * ns this process's threads ran between two {@link threadTimes} snapshots (the scheduler's own
 * clock), or -1 off Linux. Per thread: a thread that ended in between (a runtime's idle blocking
 * thread) drops out; summed over the process it made the total go negative.
 */
export function schedNsBetween(before: ThreadTimes, after: ThreadTimes): number {
  if (after.size === 0) return -1;
  let ns = 0;
  for (const [tid, [, n]] of after) ns += n - (before.get(tid)?.[1] ?? 0);
  return ns;
}

/**
 * CPU µs per IO by thread name between two {@link threadTimes} snapshots
 * (threads of one name summed: a runtime's GC or JIT helpers), largest first.
 * The main thread is named after the runtime's executable.
 */
export function threadCpuPerIo(before: ThreadTimes, after: ThreadTimes, ios: number): Record<string, number> {
  const by = new Map<string, number>();
  for (const [tid, [comm, ns]] of after) {
    const d = ns - (before.get(tid)?.[1] ?? 0);
    if (d > 0) by.set(comm, (by.get(comm) ?? 0) + d);
  }
  const out: Record<string, number> = {};
  for (const [comm, ns] of [...by].sort((a, b) => b[1] - a[1])) out[comm] = +(ns / 1000 / Math.max(1, ios)).toFixed(2);
  return out;
}
