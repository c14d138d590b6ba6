/**
 * scripts/bench-compare.ts's options and their defaults, apart so that a test
 * can hold scripts/bench.sh's help text to them (the script itself runs on
 * import).
 * @module
 */

/** parseArgs options of scripts/bench-compare.ts (scripts/bench.sh passes its arguments on). */
export const BENCH_COMPARE_OPTIONS = {
  bs: { type: "string", default: "4096" },
  iodepth: { type: "string", default: "1,32,128" },
  runtime: { type: "string", default: "4" },
  // tsnvme's warm-up per job: JIT compiles under TCG outlast a 2-3 s ramp (README, Performance).
  ramp: { type: "string", default: "12" },
  rw: { type: "string", default: "randread" },
  modes: { type: "string", default: "poll,interrupt,adaptive" },
  // Callback rows run in adaptive mode only (the default mode); the Promise API in every mode.
  apis: { type: "string", default: "promise,callback" },
  loads: { type: "string", default: "0,50,100" },
  "hog-runtime": { type: "string", default: "3" },
  "no-hog": { type: "boolean", default: false },
  "no-scaling": { type: "boolean", default: false },
  "no-peers": { type: "boolean", default: false },
  "idle-trickle": { type: "boolean", default: false },
  // The guest's second namespace has 4096-byte blocks (scripts/guest.sh --ns): libvfn's 4 KiB reads go there.
  "peer-ns4k": { type: "string", default: "2" },
  // Runs of the whole modes x depths table, every other one in reverse order; rows are the medians.
  rounds: { type: "string", default: "1" },
  out: { type: "string" },
} as const;
