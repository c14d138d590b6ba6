/**
 * An opt-in timing trace of a target Worker's IO path, to find where the time
 * of an IO goes (issue 16: QD1 through the target took milliseconds while the
 * device answers in ~90 µs). Set `TSNVME_TARGET_TRACE=1` in the target's
 * environment; it is read once, when this module loads. Off, the hooks cost a
 * null check per IO and read no clock. On, each stage of an IO is stamped
 * (capsule parsed, handed to the queue, doorbell rung, completion reaped,
 * response sent) and each gap goes into a log2 histogram in preallocated
 * arrays, as do the Worker loop's event-loop yields and idle poll timeouts.
 * The histograms are printed to stderr after a second without IO and when
 * the Worker stops. Gaps are exact at queue depth 1; deeper, each gap is
 * taken from the oldest event of the stage before that is not matched yet.
 * @module
 */

import { envOf } from "../ffi/env.ts";

/** True when `TSNVME_TARGET_TRACE` is set (and not "0") in the environment. */
export const targetTraceOn: boolean = (() => {
  const v = envOf("TSNVME_TARGET_TRACE");
  return !!v && v !== "0";
})();

/** log2 buckets in µs: bucket i holds [2^i, 2^(i+1)) µs (bucket 0 also below 1 µs). */
const BUCKETS = 24;

/** The gaps and spans traced, in print order. */
export const Gap = {
  /** Poll returned readable -> the capsule parsed (the Worker's reading and parsing). */
  READABLE_TO_CAPSULE: 0,
  /** Capsule parsed -> handed to the backend's queue. */
  CAPSULE_TO_SUBMIT: 1,
  /** Handed to the queue -> its doorbell rung by the Worker loop. */
  SUBMIT_TO_DOORBELL: 2,
  /** Doorbell -> completion reaped (the device, plus how late the loop looks). */
  DOORBELL_TO_REAP: 3,
  /** Completion reaped -> the response's send returned. */
  REAP_TO_SENT: 4,
  /** Response sent -> the next capsule parsed (the host's turn, plus the Worker noticing). */
  SENT_TO_CAPSULE: 5,
  /** Capsule parsed -> response sent: the target's share of one IO. */
  CAPSULE_TO_SENT: 6,
  /** Worker loop: an event-loop yield taken for a message. */
  YIELD_MESSAGE: 7,
  /** Worker loop: an event-loop yield taken after an idle poll timed out. */
  YIELD_IDLE: 8,
  /** Worker loop: an event-loop yield taken after PASSES_PER_YIELD passes. */
  YIELD_PASSES: 9,
  /** Worker loop: a busy pass (poll with timeout 0, reap, send). */
  BUSY_PASS: 10,
  /** Worker loop: an idle poll that timed out (nothing came). */
  IDLE_TIMEOUT: 11,
  /** Worker loop: an idle poll that ended with an event. */
  IDLE_WOKEN: 12,
} as const;
const NAMES = [
  "readable->capsule",
  "capsule->submit",
  "submit->doorbell",
  "doorbell->reaped",
  "reaped->sent",
  "sent->next capsule",
  "capsule->sent (target)",
  "yield (message)",
  "yield (idle timeout)",
  "yield (passes)",
  "busy pass",
  "idle poll timed out",
  "idle poll woken",
];
const GAPS = NAMES.length;

/** The trace of one Worker (or listener) thread; see the module doc. */
export class TargetTrace {
  readonly #hist = new Uint32Array(GAPS * BUCKETS);
  readonly #sum = new Float64Array(GAPS);
  readonly #max = new Float64Array(GAPS);
  #readable = 0;
  #capsule = 0;
  #unrung = 0;
  #rung = 0;
  #unsent = 0;
  #sent = 0;
  #ios = 0;
  #lastIo = 0;
  /** Completions reaped while the Worker loop was not in its own processCompletions (the queue's pump). */
  #pumpReaped = 0;
  #loopReaped = 0;
  /** Set by the Worker loop around its processCompletions. */
  inLoopReap = false;
  readonly #label: string;
  readonly #out: (line: string) => void;

  /** A trace printing to `out` (default stderr), its lines prefixed with `label`. */
  constructor(label: string, out?: (line: string) => void) {
    this.#label = label;
    this.#out = out ?? ((l) => console.error(l));
  }

  /** Add `us` to gap `g`. */
  add(g: number, us: number): void {
    let b = 0;
    for (let v = us; v >= 2 && b < BUCKETS - 1; v /= 2) b++;
    this.#hist[g * BUCKETS + b]++;
    this.#sum[g] += us;
    if (us > this.#max[g]) this.#max[g] = us;
  }

  /** The Worker's poll returned with events. */
  readable(now: number): void {
    this.#readable = now;
  }

  /** An IO capsule was parsed. */
  capsule(): void {
    const now = performance.now();
    if (this.#readable > 0) this.add(Gap.READABLE_TO_CAPSULE, (now - this.#readable) * 1000);
    if (this.#sent > this.#capsule) this.add(Gap.SENT_TO_CAPSULE, (now - this.#sent) * 1000);
    this.#capsule = now;
    this.#lastIo = now;
    this.#ios++;
  }

  /** The command went to the backend's queue (or completed inline, for memory). */
  submitted(): void {
    const now = performance.now();
    this.add(Gap.CAPSULE_TO_SUBMIT, (now - this.#capsule) * 1000);
    if (this.#unrung === 0) this.#unrung = now;
  }

  /** The Worker rang the queue's doorbell. */
  doorbell(): void {
    if (this.#unrung === 0) return;
    const now = performance.now();
    this.add(Gap.SUBMIT_TO_DOORBELL, (now - this.#unrung) * 1000);
    this.#unrung = 0;
    this.#rung = now;
  }

  /** A completion reached the connection. */
  reaped(): void {
    const now = performance.now();
    if (this.#rung > 0) this.add(Gap.DOORBELL_TO_REAP, (now - this.#rung) * 1000);
    if (this.#unsent === 0) this.#unsent = now;
    if (this.inLoopReap) this.#loopReaped++;
    else this.#pumpReaped++;
  }

  /** A batch of responses went to the socket. */
  sent(): void {
    if (this.#unsent === 0) return;
    const now = performance.now();
    this.add(Gap.REAP_TO_SENT, (now - this.#unsent) * 1000);
    this.add(Gap.CAPSULE_TO_SENT, (now - this.#capsule) * 1000);
    this.#unsent = 0;
    this.#sent = now;
  }

  /** Time since `since` (ms) into `g`. */
  span(g: number, since: number): void {
    this.add(g, (performance.now() - since) * 1000);
  }

  /** The loop idled: print and reset once a second has passed without IO. */
  idle(now: number): void {
    if (this.#ios > 0 && now - this.#lastIo > 1000) this.report();
  }

  /** Print the histograms (and reset them). */
  report(): void {
    const o = this.#out, L = this.#label;
    o(`${L}: ${this.#ios} IO capsules; completions reaped by the Worker loop ${this.#loopReaped}, elsewhere (queue pump) ${this.#pumpReaped}`);
    o(`${L}: ${"gap".padEnd(24)} ${"n".padStart(7)} ${"mean".padStart(8)} ${"p50".padStart(7)} ${"p90".padStart(7)} ${"p99".padStart(7)} ${"max".padStart(8)}  (µs; p = bucket upper bound)  buckets <2,<4,<8..µs`);
    for (let g = 0; g < GAPS; g++) {
      const h = this.#hist.subarray(g * BUCKETS, (g + 1) * BUCKETS);
      let n = 0;
      for (let i = 0; i < BUCKETS; i++) n += h[i];
      if (n === 0) continue;
      const q = (f: number) => {
        let c = 0;
        for (let i = 0; i < BUCKETS; i++) if ((c += h[i]) >= f * n) return 2 ** (i + 1);
        return Infinity;
      };
      let last = BUCKETS - 1;
      while (last > 0 && h[last] === 0) last--;
      o(
        `${L}: ${NAMES[g].padEnd(24)} ${String(n).padStart(7)} ${(this.#sum[g] / n).toFixed(0).padStart(8)} ${String(q(0.5)).padStart(7)} ${
          String(q(0.9)).padStart(7)
        } ${String(q(0.99)).padStart(7)} ${this.#max[g].toFixed(0).padStart(8)}  ${Array.from(h.subarray(0, last + 1)).join(",")}`,
      );
    }
    this.#hist.fill(0);
    this.#sum.fill(0);
    this.#max.fill(0);
    this.#ios = this.#loopReaped = this.#pumpReaped = 0;
  }
}
