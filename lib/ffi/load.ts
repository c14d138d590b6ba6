/**
 * The load for polling memory that a device (DMA) or another thread writes:
 * re-executed on every call, never a write; and the ordering a producer needs
 * before it rings a doorbell. Which instruction does that depends on the
 * engine and the CPU, so the choice lives here with the other runtime
 * knowledge.
 * @module
 */

// Stores of polled values: a typed-array store the JIT cannot prove apart from the polled array.
const sink = new Uint32Array(1);

/**
 * x86, both engines. JavaScriptCore (Bun): `Atomics.load` compiles to `lock xadd [m], 0` (B3
 * AtomicXchgAdd), a locked read-modify-write. Under QEMU TCG with one vCPU that runs as a plain load
 * and store, so a CQE the device DMAs in between is erased; on hardware it takes the CQ's cache line
 * from the device on every poll; on a read-only mapping it faults. V8 (Deno): `Atomics.load` is a
 * builtin call, 6-13 ns per poll against 2.6-4.4 for this (scripts/bench-poll.ts). So a plain load,
 * followed by a store of the value to `sink`: JSC's abstract heap gives all typed-array elements one
 * location, so the store keeps the load in the loop (a bare plain load is hoisted out of a spin by
 * JSC; V8's TurboFan and Maglev keep even a bare one, tests/unit/ffi/load_test.ts) and keeps the
 * caller's later loads (the CQE's other dwords) after it; x86's TSO keeps that order in hardware.
 */
function loadPlain(a: Uint32Array, i: number): number {
  const v = a[i];
  sink[0] = v;
  return v;
}

/** Off x86: an acquire load that never writes, where a plain load would let later loads pass it. */
function loadAtomic(a: Uint32Array, i: number): number {
  return Atomics.load(a, i);
}

const g = globalThis as { process?: { arch?: string } };

/**
 * Read `a[i]`, where a device or another thread writes `a`, so that a spin
 * loop sees each new value: never hoisted out of a loop, never a write to
 * the polled memory (safe on read-only mappings and against DMA), and the
 * caller's later loads are not moved before it. A few ns per call.
 */
export const pollLoad32: (a: Uint32Array, i: number) => number = g.process?.arch === "x64" ? loadPlain : loadAtomic;

/**
 * x86: nothing to do. Stores are not reordered with other stores (TSO), and neither JIT moves a
 * typed-array store past a later one that may alias it (V8 keeps stores on its effect chain, JSC
 * gives all typed-array elements one abstract heap), nor past a call. The `Atomics.store` this
 * replaces was a builtin call on V8 (AtomicsStore + ToInteger, 6-12% of bench-micro's callback
 * path) and a locked `xchg` on JSC, once per doorbell.
 */
function publishTso(_a: Uint32Array, _i: number): void {}

/** Off x86: a sequentially consistent store of the word's own value, a full fence. */
function publishFence(a: Uint32Array, i: number): void {
  Atomics.store(a, i, a[i]);
}

/**
 * Make every store made so far to memory a device or another thread reads
 * (a submission entry, `a[i]` among them) visible before any later store (the
 * doorbell that tells it to look). `a[i]` keeps its value.
 */
export const publish32: (a: Uint32Array, i: number) => void = g.process?.arch === "x64" ? publishTso : publishFence;

/** x86: a plain store. TSO keeps it after this thread's earlier loads and stores. */
function storeTso(a: Uint32Array, i: number, v: number): void {
  a[i] = v;
}

/** Off x86: a sequentially consistent store, so earlier loads and stores are not moved after it. */
function storeFence(a: Uint32Array, i: number, v: number): void {
  Atomics.store(a, i, v);
}

/**
 * Store `v` to `a[i]`, memory a device or another thread reads, after every
 * load and store this thread made before it (a release store): a shadow CQ
 * head the device reads only after the entries before it were read. No fence
 * against later loads: where a later load must see the store first (a shadow
 * doorbell, then its event index), use `Atomics.store`. On x86 a plain store,
 * where `Atomics.store` is a builtin call on V8 and a locked `xchg` on JSC.
 */
export const storeRelease32: (a: Uint32Array, i: number, v: number) => void = g.process?.arch === "x64" ? storeTso : storeFence;
