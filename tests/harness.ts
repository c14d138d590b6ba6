/**
 * One test API for both runtimes: Deno.test under Deno, bun:test under Bun.
 * Test files import `test` from here and use node:assert/strict.
 */
import { loadLibc } from "../lib/ffi/mod.ts";

type Fn = () => void | Promise<void>;

/** Options accepted by {@link test}. */
export interface TestOptions {
  /** Skip the test (reported as ignored/skipped). */
  ignore?: boolean;
  /** Per-test timeout in ms (Bun only; Deno has none). */
  timeout?: number;
  /**
   * Deno's op sanitizer (on by default): fail if the test leaves timers or async ops
   * pending. Turn off only where the test cannot meet it, with a comment saying why.
   */
  sanitizeOps?: boolean;
  /** Deno's resource sanitizer (on by default): fail if the test leaves files, sockets or workers open. */
  sanitizeResources?: boolean;
}

const isBun = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined";
// A variable specifier keeps Deno from trying to resolve the bun: scheme.
const bunSpec = "bun:test";
// deno-lint-ignore no-explicit-any
const bunTest: any = isBun ? (await import(bunSpec)).test : undefined;

// The driver loads libc once per process and keeps it (lib/ffi caches it). Loading it here,
// before any test starts, keeps Deno's resource sanitizer from charging that one dlopen to
// whichever test happens to run first; without FFI permission the tests that need it fail alone.
if (!isBun) await loadLibc().catch(() => {});

/** Register a test on whichever runtime is running. */
export function test(name: string, fn: Fn, opts: TestOptions = {}): void {
  if (isBun) {
    if (opts.ignore) bunTest.skip(name, fn);
    else bunTest(name, fn, opts.timeout ?? 120_000);
    return;
  }
  Deno.test({
    name,
    fn,
    ignore: opts.ignore ?? false,
    sanitizeOps: opts.sanitizeOps ?? true,
    sanitizeResources: opts.sanitizeResources ?? true,
  });
}

/** Name of the runtime running the tests. */
export const runtime: "deno" | "bun" = isBun ? "bun" : "deno";

/** A small seeded PRNG (mulberry32), so a failing random test can be replayed from its printed seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
