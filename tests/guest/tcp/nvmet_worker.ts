/**
 * The Worker of nvmet_workers.ts: opens the posted TCP queue handle (its own
 * connection), writes its pattern, reads it back, reports.
 * @module
 */
import { openQueue } from "../../../lib/worker/mod.ts";

const scope = globalThis as unknown as { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };

function pattern(w: number): Uint8Array {
  const b = new Uint8Array(256 * 1024);
  const v = new Uint32Array(b.buffer);
  for (let i = 0; i < v.length; i++) v[i] = ((w + 1) << 24 | (i * 2654435761) >>> 8) >>> 0;
  return b;
}

scope.onmessage = async (e: MessageEvent) => {
  const m = e.data as { queue: Parameters<typeof openQueue>[0]; w: number; lba: number };
  try {
    const q = await openQueue(m.queue);
    const ns = q.ns(1);
    const want = pattern(m.w);
    // Two 128 KiB writes (R2T/H2CData) from DMA memory, then read back in 4 KiB pieces at QD 16.
    const buf = q.allocBuffer(want.length);
    buf.set(want);
    await Promise.all([ns.write(m.lba, buf.subarray(0, 131072)), ns.write(m.lba + 32, buf.subarray(131072))]);
    const back = q.allocBuffer(want.length);
    await Promise.all(Array.from({ length: 64 }, (_, i) => ns.read(m.lba + i, back.subarray(i * 4096, (i + 1) * 4096))));
    const ok = back.every((v, i) => v === want[i]);
    const qid = q.qid;
    await q.close();
    scope.postMessage({ type: "done", ok, qid });
  } catch (err) {
    scope.postMessage({ type: "done", ok: false, qid: -1, error: String(err) });
  }
};
scope.postMessage({ type: "loaded" });
