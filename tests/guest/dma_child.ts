/**
 * Child for the guest DMA tests: the two crash reproductions of issue 7 through
 * VFIO. Touching a freed buffer, or any buffer after close, used to kill the
 * process (SIGSEGV); now every view reads as empty. Prints JSON.
 */
import process from "node:process";
import { NVMeDev } from "../../lib/dev.ts";

const dev = await NVMeDev.open(process.argv[2] ?? process.env.TSNVME_PCI!);
const a = dev.allocBuffer(8192);
const sub = a.subarray(4096);
a.fill(0xaa);
dev.freeBuffer(a);
const afterFree = { len: a.length, first: String(a[0]), subLen: sub.length, sub0: String(sub[0]) };
const b = dev.allocBuffer(65536);
const bsub = b.subarray(100, 200);
await dev.ns(1).read(0, b);
await dev.close();
const afterClose = { len: b.length, first: String(b[0]), subLen: bsub.length, sub0: String(bsub[100]) };
console.log(JSON.stringify({ ok: true, afterFree, afterClose }));
