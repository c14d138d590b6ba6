/**
 * Runtime detection and the libc backend. The only module that knows which
 * runtime it runs on; everything above it is runtime neutral.
 * @module
 */
import { SetupError } from "../nvme/errors.ts";
import type { Libc, RuntimeName } from "./types.ts";
export * from "./types.ts";
export { Errno, errnoName } from "./errno.ts";

/** The runtime running this code. Bun is checked first: a Deno shim under Bun must not fool us. */
export function detectRuntime(): RuntimeName {
  if (typeof (globalThis as { Bun?: unknown }).Bun !== "undefined") return "bun";
  if (typeof (globalThis as { Deno?: { dlopen?: unknown } }).Deno?.dlopen === "function") {
    return "deno";
  }
  throw new SetupError("no-ffi", "tsnvme runs on Deno or Bun (no FFI found in this runtime)");
}

/** The running runtime, its version and whether it may use FFI. */
export interface RuntimeDescription {
  /** Runtime name. */
  name: RuntimeName;
  /** Runtime version. */
  version: string;
  /** Whether FFI is allowed; only Deno can say no (a permission). */
  ffi: boolean;
}

/** Describe the running runtime without loading FFI, so a missing permission can be reported. Throws as {@link detectRuntime}. */
export function describeRuntime(): RuntimeDescription {
  const g = globalThis as {
    Bun?: { version: string };
    Deno?: { version: { deno: string }; permissions: { querySync(d: { name: string }): { state: string } } };
  };
  const name = detectRuntime();
  if (name === "bun") return { name, version: g.Bun!.version, ffi: true };
  return { name, version: g.Deno!.version.deno, ffi: g.Deno!.permissions.querySync({ name: "ffi" }).state === "granted" };
}

/**
 * Whether a thread named `comm` (/proc/PID/task/TID/comm) runs a JavaScript
 * Worker of this runtime (Deno: "worker-N"; Bun: "Worker") rather than the
 * main thread or one of the runtime's own helpers (JIT, GC, I/O pools).
 */
export function isWorkerThreadName(comm: string): boolean {
  return detectRuntime() === "bun" ? comm === "Worker" : /^worker-\d+$/.test(comm);
}

let cached: Promise<Libc> | undefined;

/** Load (once) the libc backend for the running runtime. */
export function loadLibc(): Promise<Libc> {
  cached ??= (async () => {
    if (detectRuntime() === "bun") return (await import("./bun.ts")).createLibc();
    return (await import("./deno.ts")).createLibc();
  })();
  return cached;
}

/** Let a timer not keep the process alive (Deno.unrefTimer; Node/Bun timer objects' unref()). */
export function unrefTimer(t: unknown): void {
  const d = (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno;
  if (typeof t === "number" && d?.unrefTimer) d.unrefTimer(t);
  else (t as { unref?: () => void })?.unref?.();
}
