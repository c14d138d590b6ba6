/**
 * The load for polling memory that a device (DMA) or another thread writes:
 * re-executed on every call, never a write. Which instruction does that
 * depends on the engine, so the choice lives here with the other runtime
 * knowledge.
 * @module
 */

// Stores of polled values: a typed-array store the JIT cannot prove apart from the polled array.
const sink = new Uint32Array(1);

/**
 * JavaScriptCore (Bun): `Atomics.load` compiles to `lock xadd [m], 0` (B3 AtomicXchgAdd), a locked
 * read-modify-write. Under QEMU TCG with one vCPU that runs as a plain load and store, so a CQE the
 * device DMAs in between is erased; on hardware it takes the CQ's cache line from the device on
 * every poll; on a read-only mapping it faults. A plain load instead, followed by a store of the
 * value to `sink`: JSC's abstract heap gives all typed-array elements one location, so the store
 * keeps the load in the loop (a bare plain load is hoisted out of a spin) and keeps the caller's
 * later loads (the CQE's other dwords) after it; x86's TSO keeps that order in hardware.
 */
function loadJsc(a: Uint32Array, i: number): number {
  const v = a[i];
  sink[0] = v;
  return v;
}

/** V8 (Deno), and JSC off x86: `Atomics.load` reads only (a plain `mov` on x86, an acquire elsewhere). */
function loadAtomic(a: Uint32Array, i: number): number {
  return Atomics.load(a, i);
}

const g = globalThis as { Bun?: unknown; process?: { arch?: string } };

/**
 * Read `a[i]`, where a device or another thread writes `a`, so that a spin
 * loop sees each new value: never hoisted out of a loop, never a write to
 * the polled memory (safe on read-only mappings and against DMA), and the
 * caller's later loads are not moved before it. A few ns per call.
 */
export const pollLoad32: (a: Uint32Array, i: number) => number = g.Bun !== undefined && g.process?.arch === "x64"
  ? loadJsc
  : loadAtomic;
