/**
 * CPU time for benchmarks: this thread's (from /proc/thread-self/schedstat, in
 * ns, so Workers are measured apart) and the whole process's.
 * @module
 */
import { readFileSync } from "node:fs";
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
