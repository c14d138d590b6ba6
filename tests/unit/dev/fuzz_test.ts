/**
 * Input fuzzing of the public API: many thousands of random invalid calls, each
 * of which must be refused with a typed NvmeError, and none of which may put a
 * single command in front of the controller (the software controller counts).
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { NvmeError } from "../../../lib/nvme/errors.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";

const CALLS = 12_000;

/** xorshift32: reproducible from the printed seed. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

test(`fuzz: ${CALLS} random invalid API calls are refused with typed errors and reach no controller`, async () => {
  const seed = (Date.now() & 0x7fffffff) || 1;
  const r = rng(seed);
  const pick = <T>(a: readonly T[]): T => a[r() % a.length];
  const transport = await SimTransport.create({ namespaces: [{ size: 2048 * 512, blockSize: 512 }, { size: 256 * 4096, blockSize: 4096 }] });
  const dev = await NVMeDev.open("sim", { transport });
  const closedTransport = await SimTransport.create({});
  const closed = await NVMeDev.open("sim-closed", { transport: closedTransport });
  const closedNs = closed.ns(1);
  await closed.close();
  try {
    const ns1 = dev.ns(1), ns2 = dev.ns(2);
    const driverCount = () =>
      dev.controller.admin.stats.submitted + dev.queueStats().reduce((a, s) => a + s.submitted, 0);
    const deviceCount = () => transport.commandCount();
    const before = [driverCount(), deviceCount()];

    const badNumbers = [-1, -0.5, 1.5, NaN, Infinity, -Infinity, 2 ** 53, 2 ** 60, "1", null, undefined, {}, [], true];
    const badBuffers = [new Uint8Array(0), new Uint8Array(1), new Uint8Array(511), new Uint8Array(513), "abcd", 4096, null, {}, [1, 2]];
    const badOpts = [{ timeoutMs: 0 }, { timeoutMs: -1 }, { timeoutMs: NaN }, { timeoutMs: Infinity }, { timeoutMs: "5" }, null, 5];
    const badNsids = [0, -1, 1.5, NaN, "1", null, 3, 4, 100, 0xffffffff, 2 ** 32, undefined];
    const badOpenOptions = [
      { ioQueueDepth: NaN }, { ioQueueDepth: 1 }, { ioQueueDepth: 1.5 }, { ioQueueDepth: "8" }, { ioQueueDepth: 1e9 },
      { ioTimeoutMs: 0 }, { adminTimeoutMs: -5 }, { ioQueues: 0 }, { maxTransferBytes: 100 }, { pollSpinUs: -1 }, null, 7, [],
    ];
    const badTargets = [0, null, undefined, {}, "", "xyz", "/dev/nvme0", "0000:00:00.8", "00:1:0.0", "vfio:", "0000:00:04.0;x"];

    // Each generator returns a thunk making one invalid call.
    // deno-lint-ignore no-explicit-any
    const any = (v: unknown) => v as any;
    const kinds: (() => () => unknown)[] = [
      // Bad LBA, good buffer.
      () => {
        const ns = pick([ns1, ns2]);
        const lba = pick([...badNumbers, ns.blockCount, ns.blockCount + (r() % 1000), -1n, 2n ** 64n]);
        const b = new Uint8Array(ns.blockSize * (1 + (r() % 4)));
        return () => (r() & 1 ? ns.read(any(lba), b) : ns.write(any(lba), b));
      },
      // Range running past the end.
      () => {
        const ns = pick([ns1, ns2]);
        const n = 2 + (r() % 8);
        const lba = ns.blockCount - 1 - (r() % (n - 1));
        return () => ns.write(lba, new Uint8Array(n * ns.blockSize));
      },
      // Bad buffer (ns2 also refuses 512-byte multiples that are not 4096 multiples).
      () => {
        const ns = pick([ns1, ns2]);
        const b = ns === ns2 ? pick([...badBuffers, new Uint8Array(512), new Uint8Array(4096 + 512)]) : pick(badBuffers);
        return () => (r() & 1 ? ns.read(0, any(b)) : ns.write(0, any(b)));
      },
      // Bad per-call options.
      () => {
        const o = pick(badOpts);
        return () => (r() % 3 === 0 ? ns1.flush(any(o)) : ns1.read(0, new Uint8Array(512), any(o)));
      },
      // Bad or inactive namespace ids.
      () => {
        const id = pick(badNsids);
        return () => dev.ns(any(id));
      },
      // Bad DMA buffer requests.
      () => {
        const n = pick([0, -1, 1.5, NaN, "4096", null, 2 ** 60, Infinity]);
        return () => dev.allocBuffer(any(n));
      },
      () => {
        const b = pick([new Uint8Array(8), null, {}, "x"]);
        return () => dev.freeBuffer(any(b));
      },
      // Bad open() targets and options (never reach a device: refused before any transport).
      () => {
        const t = pick(badTargets);
        return () => NVMeDev.open(any(t));
      },
      () => {
        const o = pick(badOpenOptions);
        return () => NVMeDev.open("sim-bad", any(o));
      },
      // Anything on a closed device.
      () => {
        const f = pick([
          () => closedNs.read(0, new Uint8Array(512)),
          () => closedNs.write(1, new Uint8Array(512)),
          () => closedNs.flush(),
          () => closed.ns(1),
          () => closed.allocBuffer(4096),
          () => closed.nsList(),
        ]);
        return f;
      },
    ];

    const byCode = new Map<string, number>();
    for (let i = 0; i < CALLS; i++) {
      const call = pick(kinds)();
      let err: unknown = undefined;
      try {
        await call();
      } catch (e) {
        err = e;
      }
      if (!(err instanceof NvmeError)) {
        assert.fail(`call ${i} (seed ${seed}) was not refused with an NvmeError: ${String(err)} ${call.toString()}`);
      }
      byCode.set(err.code, (byCode.get(err.code) ?? 0) + 1);
    }
    assert.deepEqual([driverCount(), deviceCount()], before, `seed ${seed}: no command reached the controller`);
    console.log(`fuzz seed ${seed}: ${CALLS} calls refused: ${JSON.stringify(Object.fromEntries(byCode))}`);
    // The device still works afterwards.
    const b = dev.allocBuffer(512);
    await ns1.write(7, b);
    await ns1.read(7, b);
    assert.ok(deviceCount() > before[1]);
  } finally {
    await dev.close();
  }
});
