/**
 * The host side of tests/unit/workers/queue_worker.ts's request/response
 * protocol, for tests that give queues to Workers (worker/host, worker/tcp,
 * sim/qthread).
 */
import { runtime } from "../../harness.ts";
import type { QueueHandle } from "../../../lib/worker/handle.ts";

// Deno spawns the JavaScript entry so the Worker's module graph is not type-checked per spawn.
/** The test Worker's module, for `new Worker` or `NVMeDev.startWorkers`. */
export const queueWorkerUrl: URL = new URL(runtime === "bun" ? "./queue_worker.ts" : "./entry.js", import.meta.url);

/** A test Worker (a new one, or one a QueueWorker started) and a call helper over postMessage. */
export class TestWorker {
  readonly w: Worker;
  /** The Worker's module has loaded. */
  readonly loaded: Promise<void>;
  /** The Worker entered its synchronous spin (`spin` requests). */
  readonly spinning: Promise<void>;
  /** The Worker received its queue through receiveQueue() (QueueWorker-started Workers). */
  readonly received: Promise<{ qid: number }>;
  readonly #pending = new Map<number, { res: (v: unknown) => void; rej: (e: Error) => void }>();
  #id = 1;
  constructor(w?: Worker) {
    this.w = w ?? new Worker(queueWorkerUrl, { type: "module" });
    let loaded!: () => void, spin!: () => void, received!: (v: { qid: number }) => void;
    this.loaded = new Promise((r) => loaded = r);
    this.spinning = new Promise((r) => spin = r);
    this.received = new Promise((r) => received = r);
    this.w.addEventListener("message", (e: MessageEvent) => {
      const m = e.data as { type: string; id: number; qid?: number; result?: unknown; error?: string };
      if (m.type === "loaded") loaded();
      if (m.type === "spinning") spin();
      if (m.type === "received") received({ qid: m.qid! });
      if (m.type !== "result") return;
      const p = this.#pending.get(m.id);
      this.#pending.delete(m.id);
      if (m.error) p?.rej(new Error(m.error));
      else p?.res(m.result);
    });
  }
  /** Send a request (with `id` added) and wait for its result. */
  call<T>(msg: Record<string, unknown>, transfer: Transferable[] = []): Promise<T> {
    const id = this.#id++;
    return new Promise<T>((res, rej) => {
      this.#pending.set(id, { res: res as (v: unknown) => void, rej });
      this.w.postMessage({ ...msg, id }, transfer);
    });
  }
  /** Hand the Worker a queue handle; resolves with the qid it opened. */
  async open(h: QueueHandle): Promise<number> {
    await this.loaded;
    return (await this.call<{ qid: number }>({ type: "open", queue: h }, h.transfer)).qid;
  }
}
