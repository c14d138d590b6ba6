import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NvmfTarget } from "../../../lib/target/mod.ts";
import { TcpController } from "../../../lib/tcp/host.ts";
import { hostIdentity } from "../../../lib/tcp/fabrics.ts";
import { AdminOpc, IoOpc } from "../../../lib/nvme/spec.ts";
import { ConnectionLostError, DeviceClosedError } from "../../../lib/nvme/errors.ts";
import { LINUX_BRING_UP, memNamespaces, recordControllers, wireLabel } from "../util/target_util.ts";

const NQN = "nqn.2024-01.io.tsnvme:tcp-host";
const ID = hostIdentity("11111111-2222-4333-8444-555555555555");

test("tcp host: bring-up in Linux's order, two IO queues, limits from Identify, data across queues, shutdown", async () => {
  const seen: string[] = [];
  const rec = recordControllers((qid, s) => {
    seen.push(wireLabel(qid, s));
    return undefined;
  });
  const t = await NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: memNamespaces([2 << 20, 512], [1 << 20, 4096]) }],
    maxTransfer: 64 * 1024,
    inCapsule: 4096,
    maxIoQueues: 2,
    onCommand: rec.onCommand,
  });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...ID, ioQueues: 4, digests: { hdgst: true, ddgst: true } });
  try {
    // Connect, CAP, CC, CC, CAP, CC|EN, CSTS, VS, Identify, Set Features 7, then the IO Connects.
    assert.deepEqual(seen.slice(0, 12), [
      ...LINUX_BRING_UP,
      "q-1 fabrics 1",
      "q-1 fabrics 1",
    ]);
    assert.equal(c.io.length, 2); // target grants 2 of 4
    assert.equal(c.maxTransfer, 64 * 1024);
    assert.equal(c.inCapsuleMax, 4096);
    assert.equal(c.vs, 0x10400);
    assert.deepEqual(await c.namespaceIds(), [1, 2]);
    assert.deepEqual(await c.namespace(2), { nsid: 2, blocks: 256, lbaSize: 4096 });
    const w = c.memory.allocDma(64 * 1024), r = c.memory.allocDma(64 * 1024);
    for (let i = 0; i < w.size; i++) w.bytes[i] = (i * 151) >>> 3;
    // Written through queue 1 (R2T: above the 4 KiB in-capsule size), read back through queue 2.
    await c.io[0].qp.rw(IoOpc.WRITE, 2, 3, 15, w.iova, 65536);
    await c.io[1].qp.rw(IoOpc.READ, 2, 3, 15, r.iova, 65536);
    assert.deepEqual(r.bytes, w.bytes);
    assert.equal(c.io[0].ring.counters.r2t, 1);
    const before = seen.length;
    await c.shutdown();
    assert.deepEqual(seen.slice(before), ["q0 fabrics 0 @14", "q0 fabrics 4 @1c"]);
    assert.equal(rec.controllers.get(c.cntlid)!.csts & 0xc, 0x8); // SHST complete
    await assert.rejects(c.io[0].qp.rw(IoOpc.READ, 1, 0, 0, r.iova, 512), DeviceClosedError);
  } finally {
    c.close();
    await t.close();
  }
});

test("tcp host: a dropped connection fails IO in flight with ECONNLOST; other queues go on", async () => {
  let drop = false;
  const t = await NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: memNamespaces([1 << 20, 512]) }],
    maxIoQueues: 2,
    onCommand: (qid, s) => (drop && qid === 2 && (s[0] & 0xff) === IoOpc.WRITE ? "drop" : undefined),
  });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...ID, ioQueues: 2, katoMs: 0 });
  try {
    const b = c.memory.allocDma(4096);
    drop = true;
    const p = Array.from({ length: 8 }, (_, i) => c.io[1].qp.rw(IoOpc.WRITE, 1, i * 8, 7, b.iova, 4096));
    for (const x of p) await assert.rejects(x, (e: unknown) => e instanceof ConnectionLostError && e.code === "ECONNLOST");
    await c.io[0].qp.rw(IoOpc.WRITE, 1, 0, 7, b.iova, 4096);
    assert.equal(c.io[0].qp.inflight, 0);
  } finally {
    c.close();
    await t.close();
  }
});

test("tcp host: discovery log (current discovery + NVM entry), re-read while GENCTR moves", async () => {
  let bumps = 2;
  const rec = recordControllers((_q, s) => {
    if ((s[0] & 0xff) === AdminOpc.GET_LOG_PAGE && bumps > 0) {
      bumps--;
      t.genctr++;
    }
    return undefined;
  });
  const t: NvmfTarget = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: memNamespaces([1 << 20, 512]) }], onCommand: rec.onCommand });
  try {
    const e = await TcpController.discover({ host: "127.0.0.1", port: t.port, ...ID });
    assert.equal(e.length, 2);
    assert.deepEqual(e.map((x) => [x.subtype, x.subnqn, x.trtype, x.adrfam, x.traddr, x.trsvcid, x.cntlid]), [
      [3, "nqn.2014-08.org.nvmexpress.discovery", 3, 1, "127.0.0.1", String(t.port), 0xffff],
      [2, NQN, 3, 1, "127.0.0.1", String(t.port), 0xffff],
    ]);
    assert.equal(t.genctr, 3n); // two bumps seen, then a stable read
    // A discovery controller has no IO queues to connect.
    const disc = [...rec.controllers.values()].filter((c) => c.discovery);
    assert.equal(disc.length, 1);
  } finally {
    await t.close();
  }
});
