/**
 * CRC32C throughput (the NVMe/TCP digest) on this runtime: MB/s of the
 * slice-by-8 implementation over 4 KiB and 128 KiB buffers, best of 5 runs.
 * Usage: deno run scripts/bench-crc32c.ts | bun scripts/bench-crc32c.ts
 * @module
 */
import { crc32c } from "../lib/tcp/crc32c.ts";

const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
let sink = 0;
for (const size of [4096, 128 * 1024]) {
  const b = Uint8Array.from({ length: size }, (_, i) => (i * 2654435761) >>> 24);
  const total = 64 * 1024 * 1024;
  for (let i = 0; i < 200; i++) sink ^= crc32c(b); // warm up the JIT
  let best = 0;
  for (let run = 0; run < 5; run++) {
    const t0 = performance.now();
    for (let done = 0; done < total; done += size) sink ^= crc32c(b);
    const mbs = total / 1e6 / ((performance.now() - t0) / 1000);
    if (mbs > best) best = mbs;
  }
  console.log(`crc32c ${runtime} ${size / 1024} KiB: ${best.toFixed(0)} MB/s`);
}
if (sink === 0.5) console.log(sink);
