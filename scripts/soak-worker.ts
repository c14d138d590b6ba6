/**
 * Soak Worker (scripts/soak.ts): owns one IO queue and keeps QD commands in
 * flight over its own region of the namespace, half writes, half reads. Each
 * block written carries (LBA, generation, tag, check); every read is checked
 * against what was last written to that block. A write that failed may or
 * may not have reached the media, so until the block's next write both the
 * old and the new generations are accepted (and the first read settles it).
 * A watchdog on a coarse clock (no clock read per IO) counts commands still
 * pending past their deadline.
 * @module
 */
import { receiveQueue } from "../lib/worker/mod.ts";

interface Scope {
  postMessage(m: unknown): void;
  addEventListener(t: "message", f: (e: MessageEvent) => void): void;
}
const scope = globalThis as unknown as Scope;

/** What the soak tells each Worker. */
interface Start {
  type: "start";
  index: number;
  nsid: number;
  lba0: number;
  slots: number;
  blocksPerSlot: number;
  qd: number;
  deadlineMs: number;
}

const NONE = 0xffff_ffff;
const stats = {
  ios: 0,
  reads: 0,
  writes: 0,
  bad: 0,
  overdue: 0,
  started: 0,
  settled: 0,
  inflight: 0,
  oldestMs: 0,
  errors: {} as Record<string, number>,
  firstBad: [] as string[],
};
let stop = false;
let coarse = 0;
let running: Promise<unknown> | null = null;
let cfg: Start | null = null;
/** Check a slot's blocks as read against what was last written there (set by start). */
let check: (slot: number, v: Uint32Array) => void = () => {};

// Messages can come before the queue is open: keep them until it is.
const early: MessageEvent[] = [];
let onMessage: ((e: MessageEvent) => void) | null = null;
scope.addEventListener("message", (e) => onMessage ? onMessage(e) : early.push(e));

const { queue } = await receiveQueue();

function stamp(v: Uint32Array, lba: number, gen: number, tag: number, bs: number, blocks: number): void {
  const w = bs >>> 2;
  for (let b = 0; b < blocks; b++) {
    const o = b * w, l = lba + b;
    v[o] = l;
    v[o + 1] = gen;
    v[o + 2] = tag;
    v[o + 3] = (l ^ gen ^ tag ^ 0x5a5a5a5a) >>> 0;
    v[o + w - 1] = gen; // the block's last word too: a torn block shows
  }
}

function start(m: Start): void {
  cfg = m;
  const ns = queue.ns(m.nsid);
  const bs = ns.blockSize, bytes = bs * m.blocksPerSlot, w = bs >>> 2;
  const tag = (0x50ac_0000 | m.index) >>> 0;
  const gen = new Uint32Array(m.slots), alt = new Uint32Array(m.slots).fill(NONE);
  let nextGen = 1;
  const startedAt = new Float64Array(m.qd).fill(-1);
  const flagged = new Uint8Array(m.qd);
  const t0 = performance.now();
  const tick = setInterval(() => {
    coarse = performance.now() - t0;
    let oldest = 0, n = 0;
    for (let k = 0; k < m.qd; k++) {
      if (startedAt[k] < 0) continue;
      n++;
      const age = coarse - startedAt[k];
      if (age > oldest) oldest = age;
      if (age > m.deadlineMs && !flagged[k]) {
        flagged[k] = 1;
        stats.overdue++;
      }
    }
    stats.inflight = n;
    stats.oldestMs = Math.round(oldest);
  }, 100);

  check = (slot: number, v: Uint32Array): void => {
    const lba = m.lba0 + slot * m.blocksPerSlot;
    let settledTo = NONE;
    for (let b = 0; b < m.blocksPerSlot; b++) {
      const o = b * w, l = lba + b, g = v[o + 1];
      let ok: boolean;
      if (g === 0 && v[o] === 0) ok = gen[slot] === 0; // never written (or only by writes that failed)
      else {
        ok = v[o] === l && v[o + 2] === tag && v[o + 3] === ((l ^ g ^ tag ^ 0x5a5a5a5a) >>> 0) && v[o + w - 1] === g &&
          (g === gen[slot] || (alt[slot] !== NONE && g >= alt[slot]));
      }
      if (!ok) {
        stats.bad++;
        if (stats.firstBad.length < 5) {
          stats.firstBad.push(`lba ${l}: read [${v[o]}, gen ${g}, tag ${v[o + 2].toString(16)}], want gen ${gen[slot]} or ${alt[slot]}`);
        }
        return;
      }
      if (g !== gen[slot]) settledTo = g;
    }
    if (alt[slot] !== NONE) {
      // The first read after a failed write tells which one the media holds.
      if (settledTo !== NONE) gen[slot] = settledTo;
      alt[slot] = NONE;
    }
  };

  const one = async (k: number): Promise<void> => {
    const buf = queue.allocBuffer(bytes);
    const v = new Uint32Array(buf.buffer, buf.byteOffset, bytes >>> 2);
    let seed = (0x9e3779b9 ^ (k * 0x85ebca6b) ^ (m.index << 20)) >>> 0;
    // Coroutine k owns the slots congruent to k: no two commands of this Worker touch a block at once.
    const mine = Math.ceil((m.slots - k) / m.qd);
    try {
      while (!stop) {
        seed ^= seed << 13;
        seed >>>= 0;
        seed ^= seed >>> 17;
        seed ^= seed << 5;
        seed >>>= 0;
        const slot = k + (seed % mine) * m.qd;
        const lba = m.lba0 + slot * m.blocksPerSlot;
        const write = (seed & 0x100) !== 0;
        startedAt[k] = coarse;
        flagged[k] = 0;
        stats.started++;
        try {
          if (write) {
            const g = nextGen++;
            stamp(v, lba, g, tag, bs, m.blocksPerSlot);
            try {
              await ns.write(lba, buf);
              gen[slot] = g;
              alt[slot] = NONE;
            } catch (e) {
              // Maybe on the media, maybe not: from the first failed write on, any of this slot's later
              // generations is accepted until a read or the next successful write settles it.
              if (alt[slot] === NONE) alt[slot] = g;
              throw e;
            }
            stats.writes++;
          } else {
            v.fill(0xeeee_eeee);
            await ns.read(lba, buf);
            check(slot, v);
            stats.reads++;
          }
          stats.ios++;
        } catch (e) {
          const c = (e as { code?: string })?.code ?? `untyped:${String(e)}`;
          stats.errors[c] = (stats.errors[c] ?? 0) + 1;
          if (c === "EDEAD" || c === "ENODEV" || c === "ECLOSED") stop = true;
        } finally {
          stats.settled++;
          startedAt[k] = -1;
        }
      }
    } finally {
      queue.freeBuffer(buf);
    }
  };
  running = Promise.all(Array.from({ length: m.qd }, (_, k) => one(k))).finally(() => clearInterval(tick));
}

/** After the run: read every slot once more and check it as during the run; resolves to the slots read. */
async function verifyAll(): Promise<number> {
  const m = cfg!;
  const ns = queue.ns(m.nsid);
  const bytes = ns.blockSize * m.blocksPerSlot;
  const buf = queue.allocBuffer(bytes);
  const v = new Uint32Array(buf.buffer, buf.byteOffset, bytes >>> 2);
  let n = 0;
  try {
    for (let slot = 0; slot < m.slots; slot++) {
      v.fill(0xeeee_eeee);
      await ns.read(m.lba0 + slot * m.blocksPerSlot, buf);
      check(slot, v);
      n++;
    }
  } finally {
    queue.freeBuffer(buf);
  }
  return n;
}

onMessage = (e: MessageEvent) => {
  const m = e.data as Start | { type: "sample" | "stop" | "verify" | "close" };
  if (m.type === "start") start(m);
  else if (m.type === "sample") scope.postMessage({ type: "stats", ...stats, qid: queue.qid });
  else if (m.type === "stop") {
    stop = true;
    void running!.then(() => scope.postMessage({ type: "halted" }));
  } else if (m.type === "verify") {
    void (async () => {
      let verified = 0;
      try {
        verified = await verifyAll();
      } catch (err) {
        const c = (err as { code?: string })?.code ?? "untyped";
        stats.errors[`final:${c}`] = (stats.errors[`final:${c}`] ?? 0) + 1;
      }
      scope.postMessage({ type: "final", ...stats, verified, qid: queue.qid, queueStats: { ...queue.queue.stats } });
    })();
  } else if (m.type === "close") {
    void queue.close().then(() => scope.postMessage({ type: "closed" }));
  }
};
for (const e of early.splice(0)) onMessage(e);
