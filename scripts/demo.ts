/**
 * The main job: open an NVMe controller, identify it, write random data,
 * read it back and verify, and say what happened. Runs on Deno and Bun.
 *
 *   deno run -A scripts/demo.ts [pci-address]     (default: $TSNVME_PCI, else the first vfio-pci NVMe)
 * @module
 */
import process from "node:process";
import { NVMeDev } from "../lib/dev.ts";
import { listNvmeControllers } from "../lib/vfio/sysfs.ts";

const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
const addr = process.argv[2] ?? process.env.TSNVME_PCI ??
  listNvmeControllers().find((c) => c.driver === "vfio-pci")?.address;
if (!addr) {
  console.error("no NVMe controller bound to vfio-pci found; pass a PCI address (see README: binding a device)");
  process.exit(2);
}

const t0 = performance.now();
await using dev = await NVMeDev.open(addr);
const i = dev.info;
console.log(`[${runtime}] opened ${addr} in ${(performance.now() - t0).toFixed(0)} ms`);
console.log(`  model "${i.model}"  serial "${i.serial}"  firmware "${i.firmware}"  NVMe ${i.version}`);
console.log(
  `  vid 0x${i.vid.toString(16)}  mdts ${i.mdts} (${i.maxTransferBytes / 1024} KiB per command)  ` +
    `${i.ioQueues} IO queue(s) x ${i.ioQueueDepth} entries  page ${i.pageSize}`,
);
let failures = 0;
for (const nsid of dev.nsList()) {
  const ns = dev.ns(nsid);
  console.log(`  namespace ${nsid}: ${ns.blockCount} blocks of ${ns.blockSize} bytes (${(ns.sizeBytes / 2 ** 20).toFixed(0)} MiB)`);
  const bytes = Math.min(1024 * 1024, ns.sizeBytes);
  const blocks = bytes / ns.blockSize;
  const lba = Math.floor(Math.random() * (ns.blockCount - blocks + 1));
  const data = new Uint8Array(bytes);
  for (let off = 0; off < bytes; off += 65536) crypto.getRandomValues(data.subarray(off, off + 65536));
  const w0 = performance.now();
  await ns.write(lba, data);
  await ns.flush();
  const w1 = performance.now();
  const back = dev.allocBuffer(bytes);
  await ns.read(lba, back);
  const r1 = performance.now();
  let diff = -1;
  for (let k = 0; k < bytes; k++) {
    if (back[k] !== data[k]) {
      diff = k;
      break;
    }
  }
  if (diff >= 0) failures++;
  console.log(
    `    wrote ${bytes} random bytes at LBA ${lba} (${(w1 - w0).toFixed(1)} ms), read back (${(r1 - w1).toFixed(1)} ms): ` +
      (diff < 0 ? "verified identical" : `MISMATCH at byte ${diff}`),
  );
  dev.freeBuffer(back);
}
console.log(`  queue stats: ${JSON.stringify(dev.queueStats()[0])}`);
if (failures) {
  console.error(`${failures} namespace(s) failed verification`);
  process.exitCode = 1;
} else {
  console.log(`[${runtime}] done: all data verified`);
}
