/**
 * NVMeDev.open("tcp://...") against the project's loopback test target: the
 * facade, Namespace and admin modules unchanged over a fabric; reconnect after
 * a lost connection, the loss timeout, keep-alive and its lapse, bad input.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { NvmfTarget, type NvmfTargetOptions, type TargetFault } from "../../../lib/target/mod.ts";
import { AdminOpc, IoOpc } from "../../../lib/nvme/spec.ts";
import { ConnectionLostError, InvalidArgumentError, NvmeError, NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { getLogPage, smartLog } from "../../../lib/admin/log.ts";
import { LINUX_BRING_UP, memNamespaces, recordControllers, until, wireLabel } from "../util/target_util.ts";
import { formatNvm } from "../../../lib/admin/manage.ts";
import { sqe } from "../../../lib/nvme/command.ts";
import { decodeDiscoveryLog, LID_DISCOVERY } from "../../../lib/tcp/discovery.ts";

const NQN = "nqn.2024-01.io.tsnvme:tcp-dev";
const HOST = { hostnqn: "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-4333-8444-555555555555", hostid: "11111111-2222-4333-8444-555555555555" };

function target(o: Partial<NvmfTargetOptions> = {}): Promise<NvmfTarget> {
  return NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: memNamespaces([4 << 20, 512], [1 << 20, 4096]) }],
    maxTransfer: 64 * 1024,
    inCapsule: 4096,
    maxIoQueues: 2,
    ...o,
  });
}

const url = (t: NvmfTarget, nqn = NQN) => `tcp://127.0.0.1:${t.port}/${nqn}`;

test("tcp dev: NVMeDev.open tcp:// in Linux's order; Namespace IO and admin modules unchanged; refused commands get their status", async () => {
  const seen: string[] = [];
  const rec = recordControllers((qid, s) => {
    seen.push(wireLabel(qid, s));
    return undefined;
  });
  const t = await target({ onCommand: rec.onCommand });
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 2, digests: { hdgst: true, ddgst: true } });
    try {
      assert.deepEqual(seen.slice(0, 10), LINUX_BRING_UP);
      assert.equal(dev.target, url(t));
      assert.equal(dev.info.ioQueues, 2);
      assert.equal(dev.info.cntlid, dev.controller.cntlid);
      assert.equal(dev.info.maxTransferBytes, 64 * 1024);
      assert.equal(dev.info.waitMode, "interrupt");
      assert.ok(dev.controller.fabric);
      assert.deepEqual(dev.nsList(), [1, 2]);
      const ns = dev.ns(1);
      assert.equal(ns.blockSize, 512);
      // DMA buffer (no copy), then plain memory through a bounce buffer, across both queues.
      const buf = dev.allocBuffer(128 * 1024);
      for (let i = 0; i < buf.length; i++) buf[i] = (i * 7 + 3) & 0xff;
      await ns.write(8, buf);
      const back = new Uint8Array(128 * 1024);
      await Promise.all([ns.read(8, back.subarray(0, 65536)), ns.read(8 + 128, back.subarray(65536))]);
      assert.deepEqual(back, buf);
      await ns.writeZeroes(8, 16);
      await ns.flush();
      const z = new Uint8Array(8192);
      await ns.read(8, z);
      assert.ok(z.every((b) => b === 0));
      const ns2 = dev.ns(2);
      assert.equal(ns2.blockSize, 4096);
      const b2 = dev.allocBuffer(4096).fill(0x5a);
      await ns2.write(3, b2);
      const r2 = new Uint8Array(4096);
      await ns2.read(3, r2);
      assert.deepEqual(r2, b2);
      // Admin modules run unchanged: a log page through the generic path.
      const smart = await smartLog(dev);
      assert.equal(typeof smart.temperature, "number");
      assert.equal((await getLogPage(dev, 2, 512)).length, 512);
      // A command the fabrics target does not implement fails with its status, typed, no hang.
      await assert.rejects(formatNvm(dev, 1), InvalidArgumentError); // OACS says no: refused before sending
      await assert.rejects(dev.controller.adminCommand(sqe(AdminOpc.DEVICE_SELF_TEST)), NvmeStatusError);
      // Register view: properties.
      assert.equal(Number(await dev.controller.readRegister(0x1c)) & 1, 1);
      // Queues for Workers are connections of their own (tests/unit/worker/tcp_test.ts); this target's two are in use.
      await assert.rejects(dev.createQueue(), (e: unknown) => e instanceof NvmeError && /granted 2 IO queues/.test(e.message));
    } finally {
      await dev.close();
    }
    // Shutdown: the IO connections go, then CC.SHN and CSTS until SHST complete.
    const shn = seen.lastIndexOf("q0 fabrics 0 @14");
    assert.ok(shn > 10);
    assert.ok(seen.slice(shn + 1).length >= 1 && seen.slice(shn + 1).every((x) => x === "q0 fabrics 4 @1c"), seen.slice(shn).join(", "));
    const ctrl = [...rec.controllers.values()].pop()!;
    assert.equal(ctrl.csts & 0xc, 0x8, "CSTS.SHST complete");
  } finally {
    await t.close();
  }
});

test("tcp dev: a lost connection fails in-flight IO with ConnectionLostError, reconnects, and IO goes on", async () => {
  let hold = false;
  const t = await target({ onCommand: (_q, s): TargetFault => (hold && (s[0] & 0xff) === IoOpc.READ ? "ignore" : undefined) });
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, ioQueues: 2, reconnectDelayMs: 50 });
    try {
      const ns = dev.ns(1);
      const buf = dev.allocBuffer(4096).fill(0x11);
      await ns.write(0, buf);
      const cntlid = dev.controller.cntlid, conns = t.stats.connections;
      hold = true;
      const r = new Uint8Array(4096);
      const inflight = [ns.read(0, r), ns.read(0, r), dev.ns(2).read(0, new Uint8Array(4096))];
      const settled = Promise.allSettled(inflight);
      await new Promise((r) => setTimeout(r, 30));
      hold = false;
      t.dropAll();
      const res = await settled;
      for (const x of res) {
        assert.equal(x.status, "rejected");
        assert.ok((x as PromiseRejectedResult).reason instanceof ConnectionLostError, String((x as PromiseRejectedResult).reason));
      }
      // Submitted during the reconnect: waits, then runs on the new connections.
      const after = new Uint8Array(4096);
      await ns.read(0, after);
      assert.deepEqual(after, buf);
      assert.equal(dev.controller.resets, 1);
      assert.notEqual(dev.controller.cntlid, cntlid);
      assert.equal(t.stats.connections, conns + 3); // admin + 2 IO queues again
      await ns.write(0, buf.fill(0x22));
      await ns.read(0, after);
      assert.deepEqual(after, buf);
    } finally {
      await dev.close();
    }
  } finally {
    await t.close();
  }
});

test("tcp dev: a target that stays away is given up after ctrlLossTimeoutMs; every waiting IO fails typed", async () => {
  const t = await target();
  const dev = await NVMeDev.open(url(t), { ...HOST, reconnectDelayMs: 20, ctrlLossTimeoutMs: 300 });
  try {
    const ns = dev.ns(1);
    await ns.write(0, dev.allocBuffer(4096));
    await t.close(); // stop listening and drop every connection
    const t0 = performance.now();
    await assert.rejects(ns.read(0, new Uint8Array(4096)), (e: unknown) => e instanceof ConnectionLostError);
    await until(() => dev.controller.failed !== null, "give-up", 3000);
    assert.ok(dev.controller.failed instanceof ConnectionLostError);
    assert.match(dev.controller.failed!.message, /gave up reconnecting/);
    assert.ok(performance.now() - t0 < 3000);
    await assert.rejects(ns.read(0, new Uint8Array(512)), ConnectionLostError);
  } finally {
    await dev.close();
  }
});

test("tcp dev: Keep Alive every KATO/2; a lapsed Keep Alive is an admin timeout and leads to a reconnect", async () => {
  let kas = 0, ignoreKa = false;
  const t = await target({
    onCommand: (qid, s): TargetFault => {
      if (qid === 0 && (s[0] & 0xff) === AdminOpc.KEEP_ALIVE) {
        kas++;
        if (ignoreKa) {
          ignoreKa = false;
          return "ignore";
        }
      }
      return undefined;
    },
  });
  try {
    const dev = await NVMeDev.open(url(t), { ...HOST, katoMs: 100, reconnectDelayMs: 20 });
    try {
      await until(() => kas >= 2, "two keep-alives", 3000);
      ignoreKa = true;
      await until(() => dev.controller.resets === 1, "the reconnect after a lapsed keep-alive", 5000);
      const ns = dev.ns(1);
      const b = dev.allocBuffer(512).fill(9);
      await ns.write(1, b);
      const r = new Uint8Array(512);
      await ns.read(1, r);
      assert.deepEqual(r, b);
      const before = kas;
      await until(() => kas > before, "keep-alive after the reconnect", 3000);
    } finally {
      await dev.close();
    }
  } finally {
    await t.close();
  }
});

test("tcp dev: bad targets and options fail clearly before or at connect", async () => {
  await assert.rejects(NVMeDev.open("tcp://127.0.0.1:4420"), InvalidArgumentError); // no NQN
  await assert.rejects(NVMeDev.open("tcp://::1/nqn.2024-01.io.x:y"), InvalidArgumentError); // unbracketed IPv6
  await assert.rejects(NVMeDev.open("tcp://127.0.0.1:99999/nqn.2024-01.io.x:y"), InvalidArgumentError);
  await assert.rejects(NVMeDev.open(`tcp://127.0.0.1:1/${NQN}`, { ...HOST, digests: { header: true } as never }), InvalidArgumentError);
  await assert.rejects(NVMeDev.open(`tcp://127.0.0.1:1/${NQN}`, { ...HOST, hostid: "not-a-uuid" }), InvalidArgumentError);
  await assert.rejects(NVMeDev.open(`tcp://127.0.0.1:1/${NQN}`, { ...HOST, katoMs: -1 }), InvalidArgumentError);
  const t = await target();
  try {
    // Nobody listens on the port: the connection is refused.
    const closed = await target();
    const port = closed.port;
    await closed.close();
    await assert.rejects(NVMeDev.open(`tcp://127.0.0.1:${port}/${NQN}`, HOST), ConnectionLostError);
    // A subsystem the target does not have: Connect's status.
    await assert.rejects(NVMeDev.open(url(t, "nqn.2024-01.io.tsnvme:nope"), HOST), NvmeStatusError);
    // The same target twice in one process is refused; after close it opens again.
    const a = await NVMeDev.open(url(t), HOST);
    await assert.rejects(NVMeDev.open(url(t), HOST), (e: unknown) => e instanceof NvmeError && e.code === "EBUSY");
    await a.close();
    const b = await NVMeDev.open(url(t), HOST);
    await b.close();
  } finally {
    await t.close();
  }
});

test("tcp dev: a discovery controller opens through NVMeDev (no namespaces, no IO queues); its log page reads", async () => {
  const t = await target();
  try {
    const dev = await NVMeDev.open(`tcp://127.0.0.1:${t.port}/nqn.2014-08.org.nvmexpress.discovery`, { ...HOST, katoMs: 0 });
    try {
      assert.ok(dev.controller.isDiscovery);
      assert.deepEqual(dev.nsList(), []);
      assert.equal(dev.controller.io.length, 0);
      const entries = decodeDiscoveryLog(await getLogPage(dev, LID_DISCOVERY, 4096));
      assert.ok(entries.some((e) => e.subnqn === NQN), JSON.stringify(entries.map((e) => e.subnqn)));
    } finally {
      await dev.close();
    }
  } finally {
    await t.close();
  }
});
