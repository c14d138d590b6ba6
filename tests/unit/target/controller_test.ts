import assert from "node:assert/strict";
import * as net from "node:net";
import { Buffer } from "node:buffer";
import { test } from "../../harness.ts";
import { MemMedia } from "../../../lib/sim/media.ts";
import { MediaBackend, NvmfTarget, type NvmfTargetOptions } from "../../../lib/target/mod.ts";
import { TcpController } from "../../../lib/tcp/host.ts";
import { TcpQueue } from "../../../lib/tcp/queue.ts";
import { TcpMemory } from "../../../lib/tcp/memory.ts";
import { ADMIN_IN_CAPSULE } from "../../../lib/tcp/ring.ts";
import { connectCmd, connectData, DISCOVERY_NQN, hostIdentity } from "../../../lib/tcp/fabrics.ts";
import { SubType } from "../../../lib/tcp/discovery.ts";
import { encodeIcReq, PduType, writeCapsuleCmd, sealPdu, decodeTermReq, Fes, Ch, get32, setSglInCapsule } from "../../../lib/tcp/pdu.ts";
import { AdminOpc, Fid, IoOpc, LogId, Reg } from "../../../lib/nvme/spec.ts";
import { getLogPageCmd, identifyCmd, setFeaturesCmd, sqe } from "../../../lib/nvme/command.ts";
import { ConnectionLostError, NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { until } from "../util/target_util.ts";
import { FabricCommands } from "../../../lib/nvme/fabrics.ts";

const NQN_A = "nqn.2024-01.io.tsnvme:ctrl-a";
const NQN_B = "nqn.2024-01.io.tsnvme:ctrl-b";
const X = hostIdentity("31111111-2222-4333-8444-555555555555");
const Y = hostIdentity("41111111-2222-4333-8444-555555555555");
const ns = () => new MediaBackend(new MemMedia(1 << 20), 512);

function listen(o: Partial<NvmfTargetOptions> = {}): Promise<NvmfTarget> {
  return NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN_A, namespaces: [ns()], allowHosts: [X.hostnqn] }, { nqn: NQN_B, namespaces: [ns(), ns()] }],
    ...o,
  });
}

async function statusOf(p: Promise<unknown>): Promise<number> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof NvmeStatusError, String(e));
    return e.status.code;
  }
  return -1;
}

test("target discovery: the log lists the current discovery subsystem and only the subsystems the host may use", async () => {
  const t = await listen();
  try {
    const ex = await TcpController.discover({ host: "127.0.0.1", port: t.port, ...X });
    assert.deepEqual(ex.map((e) => [e.subtype, e.subnqn]), [[SubType.CURRENT_DISCOVERY, DISCOVERY_NQN], [SubType.NVM, NQN_A], [SubType.NVM, NQN_B]]);
    assert.equal(ex[1].trsvcid, String(t.port));
    assert.equal(ex[1].traddr, "127.0.0.1");
    const ey = await TcpController.discover({ host: "127.0.0.1", port: t.port, ...Y });
    assert.deepEqual(ey.map((e) => e.subnqn), [DISCOVERY_NQN, NQN_B]);
    // Discovery controllers serve no namespaces and no IO commands' logs.
    const d = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: DISCOVERY_NQN, ...Y, ioQueues: 0, katoMs: 0 });
    try {
      const b = d.memory.allocDma(4096);
      assert.equal(d.identify[111], 2); // CNTRLTYPE discovery
      assert.equal(await statusOf(d.admin.qp.submit(identifyCmd(0, 1), b.iova, 4096)), 0x02);
      assert.equal(await statusOf(d.admin.qp.submit(getLogPageCmd(LogId.SMART, 512, { nsid: 0 }), b.iova, 512)), 0x109);
    } finally {
      await d.shutdown();
    }
  } finally {
    await t.close();
  }
});

test("target allow-list: a host not on it is refused with Connect Invalid Host; an allowed one connects", async () => {
  const t = await listen();
  try {
    const e = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_A, ...Y, katoMs: 0 }).then(() => null, (e) => e);
    assert.ok(e instanceof NvmeStatusError, String(e));
    assert.equal(e.status.code, 0x184);
    assert.equal(e.dw0, (1 << 16) | 512); // IATTR data, IPO = HOSTNQN
    assert.equal(await statusOf(TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: "nqn.2024-01.io.tsnvme:nope", ...X, katoMs: 0 })), 0x182);
    const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_A, ...X, katoMs: 0 });
    await c.shutdown();
    // Changing the list takes effect for the next Connect.
    t.setAllowedHosts(NQN_A, [Y.hostnqn]);
    const c2 = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_A, ...Y, katoMs: 0 });
    await c2.shutdown();
    assert.ok(t.stats.connectRefused >= 2);
  } finally {
    await t.close();
  }
});

test("target connect: IO queues bind to their controller by cntlid and host; a second Connect, a bad cntlid or QID are refused", async () => {
  const t = await listen({ maxIoQueues: 2 });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_B, ...X, ioQueues: 2, katoMs: 0 });
  const mem = new TcpMemory();
  const base = { host: "127.0.0.1", port: t.port, memory: mem, subnqn: NQN_B, depth: 16, inCapsuleMax: ADMIN_IN_CAPSULE };
  try {
    const refused = (o: Partial<Parameters<typeof TcpQueue.connect>[0]>) =>
      statusOf(TcpQueue.connect({ ...base, ...X, qid: 1, cntlid: c.cntlid, ...o } as Parameters<typeof TcpQueue.connect>[0]));
    assert.equal(await refused({ qid: 1 }), 0x181); // queue 1 is connected already
    assert.equal(await refused({ qid: 3 }), 0x182); // beyond the granted queues
    assert.equal(await refused({ qid: 2, cntlid: c.cntlid + 100 }), 0x182); // no such controller
    assert.equal(await refused({ qid: 2, ...Y }), 0x182); // another host's controller
    // A second Connect on a connected queue.
    assert.equal(await statusOf(c.io[0].qp.submit(connectCmd({ qid: 1, entries: 16 }))), 0x181);
    // Closing an IO queue frees its slot; the controller stays.
    c.io[1].ring.close();
    await until(() => !t.controllers.get(c.cntlid)!.dead && true);
    const q2 = await TcpQueue.connect({ ...base, ...X, qid: 2, cntlid: c.cntlid });
    q2.close();
  } finally {
    c.close();
    mem.close();
    await t.close();
  }
});

test("target keep-alive: a host silent past KATO loses its controller and every queue; the host's recovery gets a new one", async () => {
  const lines: string[] = [];
  const t = await listen({ keepAliveCheckMs: 60_000, log: (l) => lines.push(l) });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_B, ...X, ioQueues: 1, katoMs: 2000, reconnectDelayMs: 50 });
  try {
    const ctl = t.controllers.get(c.cntlid)!;
    assert.equal(ctl.kato, 2000);
    const b = c.memory.allocDma(4096);
    b.bytes.fill(0x3c);
    await c.io[0].qp.rw(IoOpc.WRITE, 1, 0, 7, b.iova, 4096);
    assert.equal(t.checkKeepAlive(performance.now() + 1000), 0); // within KATO
    const seen = ctl.lastSeen;
    await c.admin.qp.submit(sqe(AdminOpc.KEEP_ALIVE));
    assert.ok(ctl.lastSeen >= seen);
    assert.equal(t.checkKeepAlive(ctl.lastSeen + 2500), 1); // silent past KATO
    assert.equal(t.stats.keepAliveExpired, 1);
    assert.ok(ctl.dead);
    assert.ok(!t.controllers.has(ctl.cntlid));
    assert.ok(lines.some((l) => l.includes("keep-alive timeout")), lines.join("\n"));
    // Every connection of it was closed: the host reconnects and gets a new controller; the data is there.
    await until(() => t.controllers.size === 1 && !t.controllers.has(ctl.cntlid), "reconnect");
    b.bytes.fill(0);
    await c.io[0].qp.rw(IoOpc.READ, 1, 0, 7, b.iova, 4096);
    assert.ok(b.bytes.subarray(0, 4096).every((x) => x === 0x3c));
    assert.equal(t.controllers.size, 1);
    assert.notEqual([...t.controllers.keys()][0], ctl.cntlid);
  } finally {
    c.close();
    await t.close();
  }
});

test("target keep-alive: the timer itself expires a host that sends nothing (KATO 1 s)", async () => {
  const t = await listen({ keepAliveCheckMs: 100 });
  const mem = new TcpMemory();
  const q = await TcpQueue.connect({ host: "127.0.0.1", port: t.port, memory: mem, subnqn: NQN_B, ...X, qid: 0, depth: 16, katoMs: 1000, inCapsuleMax: ADMIN_IN_CAPSULE });
  try {
    assert.equal(t.controllers.size, 1);
    await until(() => t.stats.keepAliveExpired === 1, "keep-alive expiry");
    await assert.rejects(q.propertyGet(Reg.CSTS, false), ConnectionLostError);
  } finally {
    q.close();
    mem.close();
    await t.close();
  }
});

test("target keep-alive: no check on a period; a silent host is failed at its deadline (KATO 1 s)", async () => {
  const t = await listen(); // the default: the timer is set for the earliest deadline
  const mem = new TcpMemory();
  const quiet = await TcpQueue.connect({ host: "127.0.0.1", port: t.port, memory: mem, subnqn: NQN_B, ...X, qid: 0, depth: 16, katoMs: 30_000, inCapsuleMax: ADMIN_IN_CAPSULE });
  try {
    // KATO 30 s: nothing to check for 30 s. A 1 s period (the old default for any KATO of 4 s or
    // more) would have fired once by now.
    await new Promise((r) => setTimeout(r, 1300));
    assert.equal(t.keepAliveWakes, 0);
    assert.equal(t.controllers.size, 1);
    // A second host, KATO 1 s, that sends nothing: the timer moves to its deadline and fails it.
    const t0 = performance.now();
    const silent = await TcpQueue.connect({ host: "127.0.0.1", port: t.port, memory: mem, subnqn: NQN_B, ...X, qid: 0, depth: 16, katoMs: 1000, inCapsuleMax: ADMIN_IN_CAPSULE });
    await until(() => t.stats.keepAliveExpired === 1, "keep-alive expiry");
    const took = performance.now() - t0;
    assert.ok(took >= 900 && took < 2500, `expired after ${took.toFixed(0)} ms`);
    assert.ok(t.keepAliveWakes <= 2, `${t.keepAliveWakes} wake-ups`);
    await assert.rejects(silent.propertyGet(Reg.CSTS, false), ConnectionLostError);
    silent.close();
    assert.equal(t.controllers.size, 1); // the quiet host's controller is within its KATO
  } finally {
    quiet.close();
    mem.close();
    await t.close();
  }
});

test("target AER: held by the controller model until an enabled event, then completed; the limit is 4", async () => {
  const t = await listen();
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_B, ...X, katoMs: 0 });
  try {
    const ctl = t.controllers.get(c.cntlid)!;
    assert.ok(!ctl.discovery);
    await c.admin.qp.submit(setFeaturesCmd(Fid.ASYNC_EVENT, 0xff)); // SMART critical warnings
    let got: number | null = null;
    const p = c.admin.qp.submit(sqe(AdminOpc.ASYNC_EVENT_REQUEST), 0, 0, 60_000).then((dw0) => (got = dw0));
    await until(() => ctl.heldAers === 1);
    await c.admin.qp.submit(sqe(AdminOpc.KEEP_ALIVE)); // other commands pass the held AER
    assert.equal(got, null);
    ctl.model.setCriticalWarning(1); // spare below threshold
    await p;
    assert.equal(got, 0x1 | (2 << 8) | (LogId.SMART << 16)); // SMART event, spare, log 02h
    const b = c.memory.allocDma(4096);
    await c.admin.qp.submit(getLogPageCmd(LogId.SMART, 512, { nsid: 0xffffffff }), b.iova, 512);
    assert.equal(b.bytes[0] & 1, 1);
    const held = Array.from({ length: 4 }, () => c.admin.qp.submit(sqe(AdminOpc.ASYNC_EVENT_REQUEST), 0, 0, 60_000).catch(() => 0));
    await until(() => ctl.heldAers === 4);
    assert.equal(await statusOf(c.admin.qp.submit(sqe(AdminOpc.ASYNC_EVENT_REQUEST))), 0x105);
    c.close();
    await Promise.all(held);
  } finally {
    c.close();
    await t.close();
  }
});

test("target AER: a discovery controller is told when a subsystem is added", async () => {
  const t = await listen();
  const d = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: DISCOVERY_NQN, ...Y, ioQueues: 0, katoMs: 0 });
  try {
    await d.admin.qp.submit(setFeaturesCmd(Fid.ASYNC_EVENT, 1 << 31));
    const p = d.admin.qp.submit(sqe(AdminOpc.ASYNC_EVENT_REQUEST), 0, 0, 60_000);
    await until(() => t.controllers.get(d.cntlid)!.heldAers === 1);
    t.addSubsystem({ nqn: "nqn.2024-01.io.tsnvme:late", namespaces: [ns()] });
    assert.equal(await p, 0x2 | (0xf0 << 8) | (0x70 << 16));
    const e = await d.discoveryLog();
    assert.deepEqual(e.map((x) => x.subnqn), [DISCOVERY_NQN, NQN_B, "nqn.2024-01.io.tsnvme:late"]);
  } finally {
    await d.shutdown();
    await t.close();
  }
});

test("target properties: CC.EN sets RDY, clearing it resets the model and drops the IO queues; only CC is writable", async () => {
  const t = await listen();
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_B, ...X, ioQueues: 1, katoMs: 0, ctrlLossTimeoutMs: 0 });
  try {
    const ctl = t.controllers.get(c.cntlid)!;
    assert.equal(Number(await new FabricCommands(c.admin.qp).propertyGet(Reg.CSTS, false)) & 1, 1);
    assert.equal(c.cap & 0xffffn, 127n);
    await assert.rejects(new FabricCommands(c.admin.qp).propertySet(Reg.CSTS, 0), NvmeStatusError);
    await assert.rejects(new FabricCommands(c.admin.qp).propertyGet(Reg.VS, true), NvmeStatusError);
    const before = t.stats.connections;
    await new FabricCommands(c.admin.qp).propertySet(Reg.CC, 0x460000);
    assert.ok(!ctl.ready);
    // The IO queue's connection is closed by the target (the host then gives up: loss timeout 0).
    const b = c.memory.allocDma(512);
    await assert.rejects(c.io[0].qp.rw(IoOpc.READ, 1, 0, 0, b.iova, 512), ConnectionLostError);
    assert.equal(t.stats.connections, before);
  } finally {
    c.close();
    await t.close();
  }
});

/** A raw connection for protocol faults the host library never makes. */
async function raw(port: number, digests: boolean): Promise<{ sock: net.Socket; next: () => Promise<Uint8Array>; closed: Promise<void> }> {
  const sock = net.connect(port, "127.0.0.1");
  await new Promise<void>((r) => sock.once("connect", () => r()));
  let buf = new Uint8Array(0);
  const waiters: (() => void)[] = [];
  sock.on("data", (d: Uint8Array) => {
    const n = new Uint8Array(buf.length + d.length);
    n.set(buf);
    n.set(d, buf.length);
    buf = n;
    waiters.splice(0).forEach((w) => w());
  });
  const closed = new Promise<void>((r) => sock.once("close", () => r()));
  closed.then(() => waiters.splice(0).forEach((w) => w()));
  const next = async () => {
    for (;;) {
      if (buf.length >= 8 && buf.length >= get32(buf, Ch.PLEN)) {
        const p = buf.slice(0, get32(buf, Ch.PLEN));
        buf = buf.slice(p.length);
        return p;
      }
      if (sock.destroyed) throw new Error("closed");
      await new Promise<void>((r) => waiters.push(r));
    }
  };
  sock.write(Buffer.from(encodeIcReq({ hdgst: digests, ddgst: digests })));
  const ic = await next();
  assert.equal(ic[Ch.TYPE], PduType.IC_RESP);
  return { sock, next, closed };
}

test("target faults: a bad header digest or an H2CData nobody asked for ends the connection with a C2HTermReq", async () => {
  const t = await listen();
  try {
    const a = await raw(t.port, true);
    const pdu = new Uint8Array(72 + 4 + 1024 + 4);
    const cmd = connectCmd({ qid: 0, entries: 32 });
    setSglInCapsule(cmd, 1024);
    cmd[0] |= 0x4000;
    const l = writeCapsuleCmd(pdu, cmd, 1024, { hdgst: true, ddgst: true });
    sealPdu(pdu, l, connectData({ ...X, cntlid: 0xffff, subnqn: NQN_B }));
    pdu[72] ^= 1; // break the header digest
    a.sock.write(Buffer.from(pdu));
    const term = await a.next();
    assert.equal(term[Ch.TYPE], PduType.C2H_TERM_REQ);
    assert.equal(decodeTermReq(term).fes, Fes.HEADER_DIGEST_ERROR);
    await a.closed;

    const b = await raw(t.port, false);
    const h2c = new Uint8Array(24 + 512);
    h2c[Ch.TYPE] = PduType.H2C_DATA;
    h2c[Ch.FLAGS] = 0x04;
    h2c[Ch.HLEN] = 24;
    h2c[Ch.PDO] = 24;
    new DataView(h2c.buffer).setUint32(4, h2c.length, true);
    new DataView(h2c.buffer).setUint16(10, 77, true); // TTAG no R2T gave out
    new DataView(h2c.buffer).setUint32(16, 512, true);
    b.sock.write(Buffer.from(h2c));
    const term2 = await b.next();
    assert.equal(term2[Ch.TYPE], PduType.C2H_TERM_REQ);
    assert.equal(decodeTermReq(term2).fes, Fes.INVALID_HEADER_FIELD);
    await b.closed;
    assert.equal(t.stats.termReqs, 2);
  } finally {
    await t.close();
  }
});

test("target faults: the onCommand hook can drop a connection or corrupt read data; the host sees each", async () => {
  let fault: "drop" | "corrupt-ddgst" | undefined;
  const t = await listen({ onCommand: (qid, s) => (qid > 0 && (s[0] & 0xff) === IoOpc.READ ? fault : undefined) });
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_B, ...X, ioQueues: 2, katoMs: 0, digests: { hdgst: true, ddgst: true } });
  try {
    const b = c.memory.allocDma(4096);
    fault = "corrupt-ddgst";
    await assert.rejects( // a bad data digest fails the read with Data Transfer Error
      c.io[0].qp.rw(IoOpc.READ, 1, 0, 7, b.iova, 4096),
      (e: unknown) => e instanceof NvmeStatusError && e.status.sct === 0 && e.status.sc === 0x04,
    );
    fault = "drop";
    await assert.rejects(c.io[1].qp.rw(IoOpc.READ, 1, 0, 7, b.iova, 4096), ConnectionLostError);
    fault = undefined;
    // The admin queue and the controller are unaffected by an IO queue's loss.
    const id = c.memory.allocDma(4096);
    await c.admin.qp.submit(identifyCmd(1), id.iova, 4096);
    assert.equal(t.controllers.size, 1);
  } finally {
    c.close();
    await t.close();
  }
});

test("target admin: host data in-capsule reaches the model (Set Features Timestamp); commands fabrics refuse get Invalid Opcode", async () => {
  const t = await listen();
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN_B, ...X, katoMs: 0 });
  try {
    const b = c.memory.allocDma(4096);
    const ts = 1_700_000_000_000;
    new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint32(0, ts % 2 ** 32, true);
    new DataView(b.bytes.buffer, b.bytes.byteOffset).setUint16(4, Math.floor(ts / 2 ** 32), true);
    await c.admin.qp.submit(setFeaturesCmd(0x0e, 0), b.iova, 8);
    b.bytes.fill(0, 0, 8);
    const get = sqe(AdminOpc.GET_FEATURES);
    get[10] = 0x0e;
    await c.admin.qp.submit(get, b.iova, 8);
    const back = new DataView(b.bytes.buffer, b.bytes.byteOffset).getUint32(0, true) + new DataView(b.bytes.buffer, b.bytes.byteOffset).getUint16(4, true) * 2 ** 32;
    assert.ok(back >= ts && back < ts + 60_000, String(back));
    for (const opc of [AdminOpc.FORMAT_NVM, AdminOpc.NS_MANAGEMENT, AdminOpc.CREATE_IO_SQ, AdminOpc.SANITIZE, AdminOpc.FW_COMMIT]) {
      assert.equal(await statusOf(c.admin.qp.submit(sqe(opc))), 0x01, `opcode ${opc}`);
    }
    // Identify says so too: no OACS bits, the fabrics fields set.
    await c.admin.qp.submit(identifyCmd(1), b.iova, 4096);
    assert.equal(b.bytes[256] | b.bytes[257], 0);
    assert.equal(b.bytes[111], 1);
    assert.equal(new DataView(b.bytes.buffer, b.bytes.byteOffset).getUint32(1792, true), (64 + 16384) / 16);
  } finally {
    c.close();
    await t.close();
  }
});
