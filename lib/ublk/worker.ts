/**
 * The Worker that serves one ublk queue (started by UblkDevice through
 * NVMeDev.startWorkers): it takes its NVMe queue pair, waits for the queue
 * index and CPUs, fetches every tag, reports ready, and serves until the
 * device goes away. Not imported by applications.
 * @module
 */
import { loadLibc } from "../ffi/mod.ts";
import { receiveQueue } from "../worker/mod.ts";
import { UblkQueue, type UblkQueueConfig } from "./queue.ts";

/** Messages from the controller's thread to this Worker. */
export type UblkWorkerIn = { type: "ublk-go"; cfg: UblkQueueConfig } | { type: "ublk-quit" };
/** Messages from this Worker. */
export type UblkWorkerOut =
  | { type: "ublk-ready"; qId: number }
  | { type: "ublk-done"; qId: number; stats: UblkQueue["stats"] }
  | { type: "ublk-error"; qId: number; message: string };

interface Scope {
  addEventListener(t: "message", f: (e: MessageEvent) => void): void;
  postMessage(m: UblkWorkerOut): void;
}
const scope = globalThis as unknown as Scope;

let q: UblkQueue | null = null;
let quit = false;
// Listen before any await: a message posted before the listener exists is lost.
const go = new Promise<UblkQueueConfig>((resolve) => {
  scope.addEventListener("message", (e: MessageEvent) => {
    const m = e.data as UblkWorkerIn;
    if (m?.type === "ublk-go") resolve(m.cfg);
    if (m?.type === "ublk-quit") {
      quit = true;
      q?.quit();
    }
  });
});
const opened = receiveQueue();

let qId = -1;
try {
  const { queue } = await opened;
  const cfg = await go;
  qId = cfg.qId;
  const libc = await loadLibc();
  q = await UblkQueue.open(libc, queue, cfg);
  if (quit) q.quit();
  scope.postMessage({ type: "ublk-ready", qId });
  await q.run();
  q.close();
  scope.postMessage({ type: "ublk-done", qId, stats: q.stats });
} catch (e) {
  q?.close();
  scope.postMessage({ type: "ublk-error", qId, message: String((e as Error)?.stack ?? e) });
}
