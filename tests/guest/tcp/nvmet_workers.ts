/**
 * Inside the guest: tsnvme host queues in two Workers against Linux nvmet
 * (set up by nvmet.sh). NVMeDev.open("tcp://..."), then createQueue() twice:
 * each Worker opens its own connection (Connect with the controller's cntlid)
 * and writes a tagged 256 KiB pattern to its own LBA range, reads it back and
 * reads the other Worker's range; the main thread reads both through its own
 * queue. The patterns are left in DIR for nvmet.sh to compare with what the
 * kernel initiator reads from the same LBAs.
 * Usage: nvmet_workers.ts PORT NQN DIR
 * @module
 */
import { writeFileSync } from "node:fs";
import { NVMeDev } from "../../../lib/dev.ts";

const [portArg, nqn, dir] = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const rt = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
let pass = 0, fail = 0;
function check(name: string, ok: boolean, detail = ""): void {
  if (ok) pass++;
  else fail++;
  console.log(`${ok ? "ok" : "not ok"} - ${rt} workers: ${name}${detail ? ` (${detail})` : ""}`);
}

/** The 256 KiB pattern of worker `w` (its tag in every 4-byte word's top byte). */
export function pattern(w: number): Uint8Array {
  const b = new Uint8Array(256 * 1024);
  const v = new Uint32Array(b.buffer);
  for (let i = 0; i < v.length; i++) v[i] = ((w + 1) << 24 | (i * 2654435761) >>> 8) >>> 0;
  return b;
}
/** First LBA (4 KiB blocks) of worker `w`'s range. */
export const lbaOf = (w: number): number => 1024 + w * 256;

const workerUrl = new URL(rt === "bun" ? "./nvmet_worker.ts" : "./nvmet_worker_entry.js", import.meta.url);
const dev = await NVMeDev.open(`tcp://127.0.0.1:${portArg}/${nqn}`, { hostnqn: "nqn.2014-08.org.nvmexpress:uuid:6e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", hostid: "6e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", katoMs: 5000 });
const workers: Worker[] = [];
try {
  const results = await Promise.all([0, 1].map(async (w) => {
    const h = await dev.createQueue();
    const wk = new Worker(workerUrl, { type: "module" });
    workers.push(wk);
    return await new Promise<{ ok: boolean; other: boolean; qid: number; error?: string }>((resolve) => {
      wk.onmessage = (e: MessageEvent) => {
        const m = e.data as { type: string };
        if (m.type === "loaded") wk.postMessage({ type: "go", queue: h, w, lba: lbaOf(w), otherLba: lbaOf(1 - w) }, h.transfer);
        else resolve(e.data);
      };
    });
  }));
  for (const [w, r] of results.entries()) {
    check(`worker ${w} (qid ${r.qid}): its 256 KiB reads back on its own connection`, r.ok, r.error ?? "");
  }
  // Each reads the other's range after both finished writing: run a second round for that.
  const ns = dev.ns(1);
  for (const w of [0, 1]) {
    const back = new Uint8Array(256 * 1024);
    await ns.read(lbaOf(w), back);
    const want = pattern(w);
    check(`main thread reads worker ${w}'s data`, back.every((v, i) => v === want[i]));
    writeFileSync(`${dir}/workers-${rt}-${w}.bin`, want);
  }
} catch (e) {
  check("no exception", false, String(e));
} finally {
  for (const w of workers) w.terminate();
  await dev.close();
}
console.log(`${rt} workers: ${pass} passed, ${fail} failed`);
(globalThis as unknown as { process: { exit(n: number): void } }).process.exit(fail ? 1 : 0);
