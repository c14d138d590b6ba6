/**
 * CRC32C throughput (the NVMe/TCP digest) on this runtime: MB/s over 4 KiB
 * and 128 KiB buffers, best of 5 runs, of crc32c() as the digests use it
 * (the WebAssembly slice-by-16 kernel where available) and of the plain-JS
 * slice-by-8 fallback (`crc32c-js` lines).
 * Usage: deno run scripts/bench-crc32c.ts | bun scripts/bench-crc32c.ts
 * @module
 */
import { crc32c, crc32cImpl, crc32cJs } from "../lib/tcp/crc32c.ts";

const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
let sink = 0;
const kernels: [string, (b: Uint8Array) => number][] = [["crc32c", (b) => crc32c(b)], ["crc32c-js", (b) => crc32cJs(0xffffffff, b)]];
for (const [label, f] of kernels) {
  for (const size of [4096, 128 * 1024]) {
    const b = Uint8Array.from({ length: size }, (_, i) => (i * 2654435761) >>> 24);
    const total = 64 * 1024 * 1024;
    for (let i = 0; i < 200; i++) sink ^= f(b); // warm up the JIT
    let best = 0;
    for (let run = 0; run < 5; run++) {
      const t0 = performance.now();
      for (let done = 0; done < total; done += size) sink ^= f(b);
      const mbs = total / 1e6 / ((performance.now() - t0) / 1000);
      if (mbs > best) best = mbs;
    }
    console.log(`${label} ${runtime} ${size / 1024} KiB: ${best.toFixed(0)} MB/s${label === "crc32c" ? ` (${crc32cImpl})` : ""}`);
  }
}
if (sink === 0.5) console.log(sink);
