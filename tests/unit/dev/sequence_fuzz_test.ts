/**
 * Sequence fuzzer: random interleavings of alloc, free, subarray, read, write,
 * flush, injected timeouts, controller resets and close against the software
 * controller (an IOMMU-like device that refuses and counts DMA to unmapped
 * memory), and the same over NVMe/TCP against the loopback target (lost
 * commands, dropped connections and reconnects in place of resets), from a
 * printed seed (TSNVME_FUZZ_SEED=N reproduces a run).
 *
 * Checked after every step: no crash, the device never touched unmapped
 * memory, and every buffer holds only what the user wrote into it or data of
 * a command the user aimed at it. At every close: no promise left pending,
 * every rejection typed, every view of freed or closed memory empty.
 */
import assert from "node:assert/strict";
import { rng, runtime, test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import type { Namespace } from "../../../lib/io/namespace.ts";
import { NvmeError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { AdminOpc, IoOpc } from "../../../lib/nvme/spec.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { NvmfTarget, type TargetFault } from "../../../lib/target/mod.ts";
import { memNamespaces } from "../util/target_util.ts";

const BS = 512;
const BLOCKS = 256;
const envSeed = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env
  .TSNVME_FUZZ_SEED;
const SEED = envSeed ? Number(envSeed) : (Math.random() * 2 ** 31) >>> 0;


/** A buffer as the user sees it, and what it must hold. */
interface Buf {
  id: number;
  view: Uint8Array;
  dma: boolean;
  shadow: Uint8Array;
  /**
   * 0: must equal shadow. 1: may hold anything a command aimed here put (a failed read, unknown
   * media). 2: reserved by an op in flight. 3: a read here timed out, so its data may still land
   * later (the user was told; it is the user's own buffer): stays until the buffer is freed.
   */
  unknown: Uint8Array;
  /** 1 where a read is in flight (content changes under us). */
  inflight: Uint8Array;
  /** In-flight ops using this buffer (a region is never shared by two). */
  ops: number;
  freed: boolean;
}

interface Op {
  p: Promise<unknown>;
  settled: boolean;
  what: string;
}

/** What the fuzzer drives: a device, its faults, and what it can say about stray DMA. */
interface Rig {
  dev: NVMeDev;
  /** The next IO command of `opcode` is lost: it times out. */
  loseNext(opcode: number): Promise<void>;
  /** Delay the next `count` IO commands (null: this rig cannot). */
  delay: ((ms: number, count: number) => Promise<void>) | null;
  /** Ways to make the controller recover: resets (sim) or reconnects (tcp). */
  recover: (() => Promise<void>)[];
  /** DMA the device made to unmapped memory. */
  staleDma(): number;
  /** Bytes still mapped after close. */
  mappedBytes(): number;
  /** Release what the rig holds beyond the device. */
  done(): Promise<void>;
  /**
   * A Worker reading on a queue of its own through the whole epoch (tcp: its own connection, across
   * every drop and reconnect), or null. `finish` after close: what its reads came to.
   */
  worker: { finish(): Promise<{ ok: number; codes: Record<string, number>; started: number; settled: number; detached: boolean }> } | null;
}

/**
 * `p`, or a rejection naming `what` after `ms`: a step that never settles fails the run where it
 * stuck instead of hanging it (a loaded CI run once hung here for 8+ minutes).
 */
async function bounded<T>(p: Promise<T>, what: string, ms = 60_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => timer = setTimeout(() => rej(new Error(`${what}: not settled within ${ms / 1000} s`)), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

async function simRig(): Promise<Rig> {
  const transport = await SimTransport.create({ namespaces: [{ size: BLOCKS * BS, blockSize: BS }], maxQueues: 2 });
  const dev = await NVMeDev.open("sim", { transport, ioQueues: 2, ioTimeoutMs: 80, adminTimeoutMs: 250 });
  return {
    dev,
    loseNext: async (opcode) => void await transport.faults.add({ action: "drop", queue: "io", opcode, count: 1 }),
    delay: async (ms, count) => void await transport.faults.add({ action: "delay", queue: "io", delayMs: ms, count }),
    recover: [
      async () => {
        // Lost command and lost Abort: the controller is reset to end it.
        await transport.faults.add({ action: "drop", queue: "io", count: 1 });
        await transport.faults.add({ action: "drop", queue: "admin", opcode: AdminOpc.ABORT, count: 1 });
      },
      () => transport.faults.fatal(), // CSTS.CFS: in-flight IO fails typed, controller reset
    ],
    staleDma: () => transport.staleDma,
    mappedBytes: () => transport.mappedBytes,
    done: async () => {},
    worker: null,
  };
}

async function tcpRig(): Promise<Rig> {
  const nqn = "nqn.2024-01.io.tsnvme:fuzz";
  const faults: { opcode: number; fault: TargetFault }[] = [];
  const target = await NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn, namespaces: memNamespaces([BLOCKS * BS, BS]) }],
    maxIoQueues: 3,
    onCommand: (qid, sqe) => {
      if (qid <= 0) return undefined;
      const i = faults.findIndex((f) => f.opcode < 0 || f.opcode === (sqe[0] & 0xff));
      return i < 0 ? undefined : faults.splice(i, 1)[0].fault;
    },
  });
  const dev = await NVMeDev.open(`tcp://127.0.0.1:${target.port}/${nqn}`, {
    hostnqn: "nqn.2014-08.org.nvmexpress:uuid:0f0e0d0c-0b0a-4908-8706-050403020100",
    hostid: "0f0e0d0c-0b0a-4908-8706-050403020100",
    ioQueues: 2,
    ioTimeoutMs: 80,
    adminTimeoutMs: 250,
    reconnectDelayMs: 20,
  });
  // A Worker's queue (qid 3, its own connection) reads all epoch long: faults, reconnects and the close reach it too.
  const h = await dev.createQueue();
  const w = new Worker(new URL(runtime === "bun" ? "../workers/queue_worker.ts" : "../workers/entry.js", import.meta.url), { type: "module" });
  const results = new Map<number, (v: unknown) => void>();
  // The Worker sets onmessage once its modules have loaded; a message posted before is lost. On a cold
  // module cache under load (a CI clone) that took longer than the 20 ms this once waited, the "open"
  // below was lost and the run hung for good: wait for the Worker's "loaded" instead.
  let loaded: () => void = () => {};
  const ready = new Promise<void>((r) => loaded = r);
  w.onmessage = (e: MessageEvent) => {
    const m = e.data as { type: string; id: number; result?: unknown; error?: string };
    if (m.type === "loaded") loaded();
    if (m.type === "result") results.get(m.id)?.(m.error ? { error: m.error } : m.result);
  };
  const call = (msg: Record<string, unknown>, id: number, transfer: Transferable[] = []) =>
    new Promise<unknown>((res) => {
      results.set(id, res);
      w.postMessage({ ...msg, id }, transfer);
    });
  await ready;
  const opened = await call({ type: "open", queue: h }, 1, h.transfer) as { qid?: number; error?: string };
  if (opened.error) throw new Error(`worker open: ${opened.error}`);
  const spin = call({ type: "spin", nsid: 1, lba: 0, inflight: 4 }, 2);
  return {
    dev,
    loseNext: (opcode) => {
      faults.push({ opcode, fault: "ignore" });
      return Promise.resolve();
    },
    delay: null,
    recover: [
      () => {
        faults.push({ opcode: -1, fault: "drop" }); // the next IO command's connection drops
        return Promise.resolve();
      },
      () => {
        target.dropAll(); // every connection drops now
        return Promise.resolve();
      },
    ],
    // No device reaches host memory over TCP: data lands only through the ring, which refuses freed buffers.
    staleDma: () => 0,
    mappedBytes: () => 0,
    done: async () => {
      w.terminate();
      await target.close();
    },
    worker: {
      finish: async () => {
        // Bounded: a Worker that never answers fails the epoch instead of hanging the run.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const late = new Promise<never>((_, rej) => {
          timer = setTimeout(() => rej(new Error("the Worker did not finish its reads within 30 s of stop")), 30_000);
        });
        try {
          await Promise.race([call({ type: "stop" }, 3), late]);
          return await Promise.race([spin, late]) as { ok: number; codes: Record<string, number>; started: number; settled: number; detached: boolean };
        } finally {
          clearTimeout(timer);
        }
      },
    },
  };
}

for (const [kind, STEPS, EPOCHS] of [["sim", 10_000, 8], ["tcp", 10_000, 8]] as const) {
test(`sequence fuzz (${kind}): ${STEPS} steps of alloc/free/subarray/IO/timeouts/resets/close (seed ${SEED})`, async () => {
  console.log(`sequence fuzz seed ${SEED} (TSNVME_FUZZ_SEED=${SEED} reproduces)`);
  const r = rng(SEED);
  const pick = <T>(a: T[]): T => a[Math.floor(r() * a.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));
  const counts: Record<string, number> = {};
  const violations: string[] = [];
  const fail = (m: string) => {
    violations.push(m);
    throw new Error(`seed ${SEED}: ${m}`);
  };
  let step = 0;
  const stepsPerEpoch = Math.ceil(STEPS / EPOCHS);
  let nextId = 1;

  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const rig = await bounded(kind === "sim" ? simRig() : tcpRig(), `epoch ${epoch}: rig setup`);
    const dev = rig.dev;
    const ns: Namespace = dev.ns(1);
    const disk = new Uint8Array(BLOCKS * BS);
    const diskUnknown = new Uint8Array(BLOCKS * BS);
    const blockBusy = new Uint8Array(BLOCKS);
    const bufs: Buf[] = [];
    const ops: Op[] = [];
    const allViews: { v: Uint8Array; dma: boolean }[] = [];
    let resetsCaused = 0;

    const track = (what: string, p: Promise<unknown>, done: (err: unknown) => void) => {
      const op: Op = { p, settled: false, what };
      ops.push(op);
      p.then(
        () => {
          op.settled = true;
          done(null);
        },
        (e) => {
          op.settled = true;
          if (!(e instanceof NvmeError)) violations.push(`${what} rejected with a non-NvmeError: ${e}`);
          done(e ?? new Error("rejected"));
        },
      );
    };

    const liveFree = () => bufs.filter((b) => !b.freed);
    const check = (where: string) => {
      if (rig.staleDma() !== 0) fail(`step ${step} (${where}): device DMA to unmapped memory (${rig.staleDma()})`);
      for (const b of bufs) {
        if (b.freed) {
          if (b.dma && b.view.length !== 0) fail(`step ${step}: freed buffer #${b.id} still has length ${b.view.length}`);
          continue;
        }
        const v = b.view, s = b.shadow, u = b.unknown, f = b.inflight;
        for (let i = 0; i < v.length; i++) {
          if (v[i] !== s[i] && u[i] === 0 && f[i] === 0) {
            fail(`step ${step} (${where}): buffer #${b.id} byte ${i} is ${v[i]}, expected ${s[i]} (stale or stray DMA?)`);
          }
        }
      }
    };

    const freeBlocks = (n: number): number => {
      for (let tries = 0; tries < 8; tries++) {
        const l = int(0, BLOCKS - n);
        let ok = true;
        for (let i = l; i < l + n; i++) if (blockBusy[i]) ok = false;
        if (ok) return l;
      }
      return -1;
    };

    const region = (b: Buf): [number, number] | null => {
      // A block-multiple region whose bytes no other op uses; dword-aligned start (odd starts are bounced).
      const maxBlocks = Math.floor(b.view.length / BS);
      if (maxBlocks < 1) return null;
      const n = int(1, Math.min(maxBlocks, 8));
      const slack = b.view.length - n * BS;
      const off = slack > 0 ? Math.min(slack, int(0, slack >> 2) * 4) : 0;
      for (let i = off; i < off + n * BS; i++) if (b.inflight[i] || b.unknown[i] === 2) return null;
      return [off, n];
    };

    const io = (kind: "read" | "write") => {
      const cands = liveFree().filter((b) => b.ops === 0 || r() < 0.3);
      if (!cands.length) return;
      const b = pick(cands);
      const reg = region(b);
      if (!reg) return;
      const [off, n] = reg;
      const lba = freeBlocks(n);
      if (lba < 0) return;
      // Sometimes through a subarray (same memory, other view object).
      const view = r() < 0.5 ? b.view.subarray(off, off + n * BS) : b.view.subarray(off).subarray(0, n * BS);
      for (let i = lba; i < lba + n; i++) blockBusy[i] = 1;
      b.ops++;
      const lo = off, hi = off + n * BS, dlo = lba * BS, dhi = (lba + n) * BS;
      if (kind === "read") {
        b.inflight.fill(1, lo, hi);
        b.unknown.fill(2, lo, hi); // reserved for this op
        track(`read #${b.id}`, ns.read(lba, view), (err) => {
          for (let i = lba; i < lba + n; i++) blockBusy[i] = 0;
          b.ops--;
          if (b.freed) return;
          b.inflight.fill(0, lo, hi);
          const late = err instanceof NvmeTimeoutError && b.dma;
          for (let i = lo, d = dlo; i < hi; i++, d++) {
            if (err === null) {
              b.shadow[i] = disk[d];
              b.unknown[i] = b.unknown[i] === 3 ? 3 : diskUnknown[d] ? 1 : 0;
            } else {
              // A failed read may have landed part of the data; one that timed out may still land it.
              b.unknown[i] = late || b.unknown[i] === 3 ? 3 : 1;
            }
          }
        });
      } else {
        const data = b.shadow.slice(lo, hi), unk = b.unknown.slice(lo, hi);
        b.unknown.fill(2, lo, hi); // the user does not touch it while the write runs
        track(`write #${b.id}`, ns.write(lba, view), (err) => {
          for (let i = lba; i < lba + n; i++) blockBusy[i] = 0;
          b.ops--;
          if (!b.freed) b.unknown.set(unk, lo);
          for (let i = 0, d = dlo; d < dhi; i++, d++) {
            if (diskUnknown[d] === 3) continue;
            if (err === null) {
              disk[d] = data[i];
              diskUnknown[d] = unk[i] ? 1 : 0;
            } else {
              // Old, new or a mix; a timed-out write may still be carried out later, over newer data.
              diskUnknown[d] = err instanceof NvmeTimeoutError ? 3 : 1;
            }
          }
        });
      }
      counts[kind] = (counts[kind] ?? 0) + 1;
    };

    const actions: [number, () => Promise<void> | void][] = [
      [12, () => {
        if (liveFree().length >= 10) return;
        const size = pick([512, 1024, 4096, 8192, 16384]);
        const dma = r() < 0.8;
        const view = dma ? dev.allocBuffer(size) : new Uint8Array(size);
        if (view.length !== size || view.some((x) => x !== 0)) fail(`step ${step}: new buffer not zeroed (${size})`);
        const b: Buf = {
          id: nextId++,
          view,
          dma,
          shadow: new Uint8Array(size),
          unknown: new Uint8Array(size),
          inflight: new Uint8Array(size),
          ops: 0,
          freed: false,
        };
        bufs.push(b);
        allViews.push({ v: view, dma });
        counts.alloc = (counts.alloc ?? 0) + 1;
      }],
      [8, () => {
        const c = liveFree().filter((b) => b.dma);
        if (!c.length) return;
        const b = pick(c);
        // A free during IO is deferred: never throws for a live buffer, whatever is in flight.
        dev.freeBuffer(r() < 0.5 ? b.view : b.view.subarray(int(0, b.view.length - 1)));
        b.freed = true;
        if (b.view.length !== 0) fail(`step ${step}: freed buffer still readable`);
        counts[b.ops ? "free-during-io" : "free"] = (counts[b.ops ? "free-during-io" : "free"] ?? 0) + 1;
      }],
      [14, () => {
        const c = liveFree();
        if (!c.length) return;
        const b = pick(c);
        const off = int(0, b.view.length - 1), len = int(1, Math.min(2048, b.view.length - off));
        for (let i = off; i < off + len; i++) if (b.inflight[i] || b.unknown[i] === 2) return;
        const v = (int(1, 255)) & 0xff;
        b.view.fill(v, off, off + len);
        b.shadow.fill(v, off, off + len);
        for (let i = off; i < off + len; i++) if (b.unknown[i] !== 3) b.unknown[i] = 0;
        counts.fill = (counts.fill ?? 0) + 1;
      }],
      [22, () => io("read")],
      [22, () => io("write")],
      [3, () => {
        track("flush", ns.flush(), () => {});
        counts.flush = (counts.flush ?? 0) + 1;
      }],
      [3, async () => {
        // The next IO command is lost: timeout, then Abort (which the sim honours).
        await rig.loseNext(r() < 0.5 ? IoOpc.READ : IoOpc.WRITE);
        counts.timeout = (counts.timeout ?? 0) + 1;
      }],
      [2, async () => {
        if (!rig.delay) return;
        await rig.delay(int(5, 60), int(1, 4));
        counts.delay = (counts.delay ?? 0) + 1;
      }],
      ...rig.recover.map((f, i): [number, () => Promise<void>] => [1, async () => {
        // At most twice per device: more than 3 resets a minute gives a PCIe controller up by design.
        if (resetsCaused >= 2) return;
        resetsCaused++;
        await f();
        counts[`recover-${i}`] = (counts[`recover-${i}`] ?? 0) + 1;
      }]),
      [12, async () => {
        await new Promise((res) => setTimeout(res, int(0, 3)));
      }],
    ];
    const total = actions.reduce((a, [w]) => a + w, 0);

    const epochEnd = Math.min(STEPS, (epoch + 1) * stepsPerEpoch);
    for (; step < epochEnd; step++) {
      let x = r() * total;
      let act = actions[0][1];
      for (const [w, f] of actions) {
        if ((x -= w) < 0) {
          act = f;
          break;
        }
      }
      await bounded(Promise.resolve(act()), `step ${step}`);
      await null;
      check("after step");
    }

    // Close with IO in flight: every promise settles, typed; every DMA view is empty afterwards.
    {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const closed = await Promise.race([
        dev.close().then(() => true),
        new Promise<false>((r) => timer = setTimeout(() => r(false), 30_000)),
      ]);
      clearTimeout(timer);
      if (!closed) fail(`epoch ${epoch}: close did not return within 30 s`);
    }
    const deadline = Date.now() + 10_000;
    while (ops.some((o) => !o.settled) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 5));
    const pending = ops.filter((o) => !o.settled);
    if (pending.length) fail(`epoch ${epoch}: ${pending.length} promises left pending after close (${pending[0].what})`);
    for (const { v, dma } of allViews) if (dma && v.length !== 0) fail(`epoch ${epoch}: a DMA view survived close`);
    if (rig.staleDma() !== 0) fail(`epoch ${epoch}: stale DMA ${rig.staleDma()}`);
    if (rig.mappedBytes() !== 0) fail(`epoch ${epoch}: ${rig.mappedBytes()} bytes still mapped after close`);
    if (rig.worker) {
      // The Worker's reads: all settled, every failure typed, its buffers detached once the device closed.
      const wr = await rig.worker.finish();
      if (wr.started !== wr.settled) fail(`epoch ${epoch}: worker reads left pending (${wr.settled} of ${wr.started})`);
      const untyped = Object.keys(wr.codes).filter((c) => c.startsWith("untyped"));
      if (untyped.length) fail(`epoch ${epoch}: worker reads failed untyped: ${untyped.join(", ")}`);
      if (!wr.detached) fail(`epoch ${epoch}: worker buffers not detached after close`);
      counts.workerReads = (counts.workerReads ?? 0) + wr.ok;
    }
    await bounded(rig.done(), `epoch ${epoch}: target close`);
    counts.close = (counts.close ?? 0) + 1;
    counts.ops = (counts.ops ?? 0) + ops.length;
  }
  console.log(`sequence fuzz: ${step} steps, ${violations.length} violations;`, JSON.stringify(counts));
  assert.equal(violations.length, 0, violations.join("\n"));
  assert.ok(step >= STEPS);
}, { timeout: 240_000 });
}
