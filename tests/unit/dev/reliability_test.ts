/**
 * The fault matrix: every fault the software controller can inject, against the
 * real driver. Each scenario fails if the driver hangs (a deadline races it), loses
 * a command (every promise must settle), or resolves the wrong one (every block
 * carries a pattern naming its LBA).
 */
import assert from "node:assert/strict";
import { runtime, test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import type { Namespace } from "../../../lib/io/namespace.ts";
import {
  ControllerFatalError,
  ControllerResetError,
  DeviceClosedError,
  DeviceGoneError,
  NvmeStatusError,
  NvmeTimeoutError,
} from "../../../lib/nvme/errors.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { type SimOptions, SimTransport } from "../../../lib/sim/transport.ts";
import type { BogusKind, FaultAction } from "../../../lib/sim/options.ts";

const BS = 512;
const BLOCKS = 4096;
/** Names of the scenarios, as registered (at load, so the check below depends on no test's order). */
const matrix: string[] = [];

/** Block `lba` holds its own number in every dword, so data from the wrong command is caught. */
function pattern(lba: number, blocks = 1): Uint8Array {
  const b = new Uint8Array(blocks * BS);
  const v = new Uint32Array(b.buffer);
  for (let i = 0; i < v.length; i++) v[i] = lba + Math.floor((i * 4) / BS);
  return b;
}

function checkPattern(b: Uint8Array, lba: number): void {
  const v = new Uint32Array(b.buffer, b.byteOffset, b.byteLength / 4);
  for (let i = 0; i < v.length; i++) {
    const want = lba + Math.floor((i * 4) / BS);
    if (v[i] !== want) assert.fail(`block data of LBA ${want} expected, found ${v[i]} (wrong command's data?)`);
  }
}

async function withDeadline<T>(what: string, ms: number, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, rej) => timer = setTimeout(() => rej(new Error(`${what}: HANG (> ${ms} ms)`)), ms));
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

/** Open a fresh simulated device with patterned data in its first 256 blocks. */
async function open(opts: Parameters<typeof NVMeDev.open>[1] = {}, sim: SimOptions = {}) {
  const transport = await SimTransport.create({ namespaces: [{ size: BLOCKS * BS, blockSize: 512 }], ...sim });
  const dev = await NVMeDev.open("sim", { transport, ...opts });
  const ns = dev.ns(1);
  await ns.write(0, (() => {
    const all = new Uint8Array(256 * BS);
    for (let l = 0; l < 256; l++) all.set(pattern(l), l * BS);
    return all;
  })());
  return { dev, ns, transport };
}

async function readOk(ns: Namespace, lba: number, blocks = 1): Promise<void> {
  const b = new Uint8Array(blocks * BS);
  await ns.read(lba, b);
  checkPattern(b, lba);
}

function scenario(name: string, body: () => Promise<string>): void {
  matrix.push(name);
  test(`fault: ${name}`, async () => {
    const detail = await withDeadline(name, 15_000, body());
    console.log(`fault matrix on ${runtime}: ${name}: pass (${detail})`);
  });
}

scenario("command never completes -> timeout, Abort really aborts, no reset", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 200 });
  try {
    await transport.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, lba: [10, 10], count: 1 });
    const others = [20, 21, 22].map((l) => readOk(ns, l));
    await assert.rejects(ns.read(10, new Uint8Array(BS)), NvmeTimeoutError);
    await Promise.all(others);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(dev.controller.resets, 0, "the Abort released the command: no reset needed");
    assert.equal(dev.queueStats()[0].late, 1, "the aborted command's completion arrived and was absorbed");
    await readOk(ns, 10);
    return "timeout typed, abort, slot reclaimed";
  } finally {
    await dev.close();
  }
});

scenario("command not aborted but done within another IO timeout -> no reset (Linux re-arms the timer)", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 500 });
  try {
    // The device answers the Abort "not aborted" and finishes the read on its own 400 ms after the
    // timeout: a reset after a short grace would be needless.
    await transport.faults.add({ action: "delay", queue: "io", opcode: IoOpc.READ, lba: [50, 50], delayMs: 900, abortable: false, count: 1 });
    await assert.rejects(ns.read(50, new Uint8Array(BS)), NvmeTimeoutError);
    for (let i = 0; i < 300 && dev.queueStats()[0].late === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(dev.queueStats()[0].late, 1, "the command's own completion arrived and was absorbed");
    assert.equal(transport.commandCount({ qid: 0, opcode: 0x08 }), 1, "one Abort");
    assert.equal(dev.controller.resets, 0);
    await readOk(ns, 50);
    return "not aborted, completed late, no reset";
  } finally {
    await dev.close();
  }
});

scenario("command never completes and the Abort is lost -> controller reset, queues re-created", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 200, adminTimeoutMs: 300 });
  try {
    await transport.faults.add({ action: "drop", queue: "admin", opcode: 0x08, count: 1 });
    await transport.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, lba: [11, 11], count: 1 });
    const bystander = ns.read(30, new Uint8Array(BS)).then(() => "ok", (e) => e);
    await assert.rejects(ns.read(11, new Uint8Array(BS)), NvmeTimeoutError);
    for (let i = 0; i < 200 && dev.controller.resets === 0; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(dev.controller.resets, 1);
    const b = await bystander;
    assert.ok(b === "ok" || b instanceof ControllerResetError, String(b));
    await readOk(ns, 11);
    await readOk(ns, 12, 8);
    return "abort lost, reset, IO resumes";
  } finally {
    await dev.close();
  }
});

scenario("command completes late -> within its timeout it succeeds, past it it times out", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 300 });
  try {
    await transport.faults.add({ action: "delay", queue: "io", opcode: IoOpc.READ, lba: [40, 40], delayMs: 100, count: 1 });
    await readOk(ns, 40);
    await transport.faults.add({ action: "delay", queue: "io", opcode: IoOpc.READ, lba: [41, 41], delayMs: 2000, count: 1 });
    const t0 = performance.now();
    await assert.rejects(ns.read(41, new Uint8Array(BS), { timeoutMs: 150 }), NvmeTimeoutError);
    assert.ok(performance.now() - t0 < 1500, "per-call timeout honoured");
    await readOk(ns, 41);
    return "late ok, per-call timeout";
  } finally {
    await dev.close();
  }
});

scenario("chosen LBAs fail with a chosen status; the rest succeed", async () => {
  const { dev, ns, transport } = await open();
  try {
    await transport.faults.add({ action: "status", queue: "io", opcode: IoOpc.READ, lba: [50, 51], status: 0x281, dnr: true });
    const rs = await Promise.allSettled([48, 49, 50, 51, 52].map((l) => readOk(ns, l)));
    assert.deepEqual(rs.map((r) => r.status), ["fulfilled", "fulfilled", "rejected", "rejected", "fulfilled"]);
    const e = (rs[2] as PromiseRejectedResult).reason;
    assert.ok(e instanceof NvmeStatusError);
    assert.equal(e.status.name, "Unrecovered Read Error");
    assert.equal(e.status.dnr, true);
    await transport.faults.add({ action: "status", queue: "admin", opcode: 0x06, status: 0x002, count: 1 });
    await assert.rejects(dev.controller.identifyNamespace(1), (x: unknown) => x instanceof NvmeStatusError && x.status.code === 2);
    return "status decoded per command";
  } finally {
    await dev.close();
  }
});

scenario("controller fatal (CSTS.CFS) -> in-flight fails typed, reset, recovery", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 5000 });
  try {
    await transport.faults.add({ action: "fatal", queue: "io", opcode: IoOpc.READ, lba: [60, 60], count: 1 });
    const r = await ns.read(60, new Uint8Array(BS)).then(() => null, (e) => e);
    assert.ok(r instanceof ControllerResetError || r instanceof ControllerFatalError, String(r));
    await readOk(ns, 60);
    assert.equal(dev.controller.resets, 1);
    assert.equal(dev.controller.failed, null);
    return "CFS seen by health check, reset, data intact";
  } finally {
    await dev.close();
  }
});

scenario("surprise removal -> pending and later calls fail fast with DeviceGoneError", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 30_000 });
  try {
    await transport.faults.setLatency(400);
    const pending = [70, 71, 72].map((l) => ns.read(l, new Uint8Array(BS)).then(() => "ok", (e) => e));
    await new Promise((r) => setTimeout(r, 50));
    transport.faults.surpriseRemoval();
    const t0 = performance.now();
    const rs = await Promise.all(pending);
    assert.ok(performance.now() - t0 < 2000, "fails fast, not after the 30 s timeout");
    for (const r of rs) assert.ok(r instanceof DeviceGoneError, String(r));
    await assert.rejects(ns.read(0, new Uint8Array(BS)), DeviceGoneError);
    await assert.rejects(ns.flush(), DeviceGoneError);
    return "pending + later calls: DeviceGoneError";
  } finally {
    await withDeadline("close after removal", 5000, dev.close());
  }
});

scenario("device disappears on a chosen command (remove rule) -> it and later calls fail with DeviceGoneError", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 30_000 });
  try {
    await transport.faults.add({ action: "remove", queue: "io", opcode: IoOpc.READ, lba: [75, 75], count: 1 });
    await readOk(ns, 74);
    const t0 = performance.now();
    await assert.rejects(ns.read(75, new Uint8Array(BS)), DeviceGoneError);
    assert.ok(performance.now() - t0 < 2000, "fails fast, not after the 30 s timeout");
    await assert.rejects(ns.read(74, new Uint8Array(BS)), DeviceGoneError);
    return "the command and later calls: DeviceGoneError";
  } finally {
    await withDeadline("close after removal", 5000, dev.close());
  }
});

for (const kind of ["unknown-cid", "duplicate", "wrong-sqid"] as const) {
  scenario(`bogus completion (${kind}) is ignored and counted, never resolves the wrong command`, async () => {
    const { dev, ns, transport } = await open();
    try {
      await transport.faults.add({ action: "bogus", bogus: kind, queue: "io", opcode: IoOpc.READ, count: 3 });
      await Promise.all([80, 81, 82, 83, 84, 85].map((l) => readOk(ns, l)));
      const st = dev.queueStats()[0];
      assert.ok(st.bogus >= 3, `bogus counted: ${st.bogus}`);
      assert.equal(st.submitted, st.completed);
      return `${st.bogus} bogus ignored`;
    } finally {
      await dev.close();
    }
  });
}

scenario("stale-phase completion (host never sees it) -> timeout, reset, recovery", async () => {
  // Only the faulted read has a short timeout: under CPU load the set-up write and the read after
  // recovery may take longer than 200 ms, and a timeout of theirs failed the test (or reset once more).
  const { dev, ns, transport } = await open();
  try {
    await transport.faults.add({ action: "bogus", bogus: "stale-phase", queue: "io", opcode: IoOpc.READ, lba: [90, 90], count: 1 });
    const r = await ns.read(90, new Uint8Array(BS), { timeoutMs: 200 }).then(() => null, (e) => e);
    assert.ok(r instanceof NvmeTimeoutError, String(r));
    // Abort, its 50 ms grace, then the reset: bounded well inside the scenario's 15 s deadline.
    for (let i = 0; i < 1000 && dev.controller.resets === 0; i++) await new Promise((res) => setTimeout(res, 10));
    assert.equal(dev.controller.resets, 1, "the stuck completion queue needed a reset");
    await readOk(ns, 90);
    return "timeout, reset, IO resumes";
  } finally {
    await dev.close();
  }
});

scenario("slow device: everything completes under the timeout, nothing lost", async () => {
  const { dev, ns, transport } = await open();
  try {
    await transport.faults.setLatency(20);
    const t0 = performance.now();
    await Promise.all(Array.from({ length: 64 }, (_, i) => readOk(ns, i * 2)));
    const ms = performance.now() - t0;
    await transport.faults.setLatency(0);
    const st = dev.queueStats()[0];
    assert.equal(st.timeouts, 0);
    return `64 reads at 20 ms latency in ${ms.toFixed(0)} ms`;
  } finally {
    await dev.close();
  }
});

scenario("close during IO -> in-flight fail with DeviceClosedError, then the controller is shut down", async () => {
  const { dev, ns, transport } = await open();
  await transport.faults.setLatency(100);
  const pending = Array.from({ length: 16 }, (_, i) => ns.read(i, new Uint8Array(BS)).then(() => "ok", (e) => e));
  await new Promise((r) => setTimeout(r, 20));
  await dev.close();
  const rs = await Promise.all(pending);
  for (const r of rs) assert.ok(r === "ok" || r instanceof DeviceClosedError, String(r));
  assert.ok(rs.some((r) => r instanceof DeviceClosedError), "some were still in flight");
  await assert.rejects(ns.read(0, new Uint8Array(BS)), DeviceClosedError);
  return `${rs.filter((r) => r !== "ok").length}/16 failed typed`;
});

// Which scenario covers each fault the software controller can inject. The Records make a new
// FaultAction or BogusKind fail type-checking until it is mapped here to a scenario.
const COVERS: Record<FaultAction, string> = {
  drop: "command never completes -> timeout, Abort really aborts, no reset",
  delay: "command completes late -> within its timeout it succeeds, past it it times out",
  status: "chosen LBAs fail with a chosen status; the rest succeed",
  bogus: "stale-phase completion (host never sees it) -> timeout, reset, recovery",
  fatal: "controller fatal (CSTS.CFS) -> in-flight fails typed, reset, recovery",
  remove: "device disappears on a chosen command (remove rule) -> it and later calls fail with DeviceGoneError",
};
const BOGUS: Record<BogusKind, string> = {
  "unknown-cid": "bogus completion (unknown-cid) is ignored and counted, never resolves the wrong command",
  duplicate: "bogus completion (duplicate) is ignored and counted, never resolves the wrong command",
  "wrong-sqid": "bogus completion (wrong-sqid) is ignored and counted, never resolves the wrong command",
  "stale-phase": COVERS.bogus,
};

test("fault matrix: every fault action and bogus completion kind has a scenario", () => {
  const missing = [...Object.values(COVERS), ...Object.values(BOGUS)].filter((n) => !matrix.includes(n));
  assert.deepEqual(missing, [], "scenarios named in COVERS/BOGUS but not registered");
  assert.equal(new Set(matrix).size, matrix.length, "scenario names are unique");
  assert.equal(matrix.length, 14);
});
