/**
 * Summarize a V8 trace (`--trace-opt --trace-deopt`, optionally
 * `--trace-generalization --trace-file-names`) of tests/guest/tcp/qd1.ts run
 * with QD1_MARKS=1, split at its "pass N starts" lines: per pass, compiles by
 * tier and the functions compiled most, deoptimizations and code
 * invalidations with V8's reasons, aborted jobs, and the map generalizations
 * in files of this checkout (`--trace-generalization`). Is the JIT still busy
 * during a measured pass, and why? Prints figures, asserts nothing.
 *
 * Usage: deno run -A scripts/v8-trace-summary.ts LOG [PASS-FILTER]   (bun works too)
 * @module
 */
import { readFileSync } from "node:fs";

const argv = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const [file, only] = argv;
if (!file) throw new Error("usage: v8-trace-summary.ts LOG [PASS-FILTER]");
const txt = readFileSync(file, "latin1");

// Pass markers (qd1.ts prints them on the same stdout, sometimes in the middle of a V8 line).
const marks: [number, string][] = [[0, "setup"]];
for (const m of txt.matchAll(/qd1 \w+(?: ([\w:@,]+: pass \d+) starts|: \d+ IOs in all)/g)) marks.push([m.index!, m[1] ?? "end (shutdown)"]);
const segOf = (at: number) => marks.reduce((s, [p, n]) => (p <= at ? n : s), "setup");

const FN = String.raw`<JSFunction ((?:[^<>(]|<[^>]*>)*?) ?\(sfi = \w+\)>`;
const short = (f: string) => f.replace(/<file:\/\/[^>]*\/([^/>]+)>/g, "[$1]").trim() || "(anonymous)";
type Ev = { at: number; kind: "compile" | "deopt" | "invalidate" | "abort" | "generalize"; what: string; fn: string };
const ev: Ev[] = [];
for (const m of txt.matchAll(new RegExp(String.raw`\[compiling method 0x\w+ ${FN} \(target (\w+)\)( OSR)?`, "g"))) {
  ev.push({ at: m.index!, kind: "compile", what: m[2] + (m[3] ? " OSR" : ""), fn: short(m[1]) });
}
for (const m of txt.matchAll(new RegExp(String.raw`\[bailout \(kind: ([\w-]+), reason: (.*?)\): begin\. deoptimizing 0x\w+ ${FN}, 0x\w+ <Code (\w+)`, "g"))) {
  ev.push({ at: m.index!, kind: "deopt", what: `${m[1]} ${m[4]}: ${m[2]}`, fn: short(m[3]) });
}
for (const m of txt.matchAll(/\[marking dependent code 0x\w+ <Code (\w+)> \(0x\w+ <SharedFunctionInfo ?([^>]*)>\) \(opt id \d+\) for deoptimization, reason: ([^\]]*)\]/g)) {
  ev.push({ at: m.index!, kind: "invalidate", what: `${m[1]}: ${m[3]}`, fn: m[2] || "(anonymous)" });
}
for (const m of txt.matchAll(new RegExp(String.raw`\[aborted compiling 0x\w+ ${FN} \(target (\w+)\) because: ([^\]]*)\]`, "g"))) {
  ev.push({ at: m.index!, kind: "abort", what: `${m[2]}: ${m[3]}`, fn: short(m[1]) });
}
// Only fields of our own files that change (not a first store: representation None): the runtime's bootstrap makes thousands.
const ours = /file:\/\/\S*?\/((?:lib|tests|scripts)\/)/;
for (const m of txt.matchAll(/\[generalizing\]([^\n[]*?) \(([^)]*)\) \[([^\]\n]*)\]/g)) {
  if (ours.test(m[3]) && m[2] !== "field type generalization" && !/^[^:]*:v\{None/.test(m[1])) {
    ev.push({ at: m.index!, kind: "generalize", what: m[1], fn: m[3].replace(ours, "$1").replace(/^~?/, "") });
  }
}

const top = <T>(xs: T[], n: number): [T, number][] => {
  const c = new Map<T, number>();
  for (const x of xs) c.set(x, (c.get(x) ?? 0) + 1);
  return [...c].sort((a, b) => b[1] - a[1]).slice(0, n);
};
for (const seg of [...new Set(marks.map(([, n]) => n))]) {
  if (only && !seg.includes(only)) continue;
  const es = ev.filter((e) => segOf(e.at) === seg);
  const of = (k: Ev["kind"]) => es.filter((e) => e.kind === k);
  const comp = of("compile");
  console.log(`== ${seg}: compiles ${comp.length}, deopts ${of("deopt").length}, invalidations ${of("invalidate").length}, aborted ${of("abort").length}, generalizations (ours) ${of("generalize").length}`);
  if (comp.length) {
    console.log(`   by tier: ${top(comp.map((e) => e.what), 6).map(([k, v]) => `${k} ${v}`).join(", ")}`);
    console.log(`   most compiled: ${top(comp.map((e) => e.fn), 10).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  }
  for (const k of ["deopt", "invalidate", "abort", "generalize"] as const) {
    for (const [key, v] of top(of(k).map((e) => `${e.fn}: ${e.what}`), 12)) console.log(`   ${k} ${v}x ${key}`);
  }
}
