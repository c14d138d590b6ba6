/** Raw admin and IO passthrough against the software controller. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { SimOptions } from "../../../lib/sim/options.ts";
import { adminPassthru } from "../../../lib/admin/passthru.ts";
import { getLogPage } from "../../../lib/admin/log.ts";
import { ioPassthru } from "../../../lib/io/passthru.ts";
import { DeviceClosedError, InvalidArgumentError } from "../../../lib/nvme/errors.ts";
import { AdminOpc, IoOpc, LogId } from "../../../lib/nvme/spec.ts";

async function withSim(sim: SimOptions, f: (dev: NVMeDev, t: SimTransport) => Promise<void>): Promise<void> {
  const t = await SimTransport.create(sim);
  const dev = await NVMeDev.open("sim", { transport: t });
  try {
    await f(dev, t);
  } finally {
    await dev.close();
  }
}

test("admin passthru: Identify Controller and Namespace return the bytes the identify API returns", async () => {
  await withSim({}, async (dev) => {
    const c = await adminPassthru(dev, { opcode: AdminOpc.IDENTIFY, cdw10: 1, dataLen: 4096 });
    assert.equal(c.status, 0);
    assert.equal(c.statusInfo, null);
    assert.deepEqual(c.data, dev.controller.identifyData);
    const n = await adminPassthru(dev, { opcode: AdminOpc.IDENTIFY, nsid: 1, cdw10: 0, dataLen: 4096, direction: "read" });
    assert.deepEqual(n.data, await dev.controller.identifyNamespace(1));
  });
});

test("admin passthru: Get Log Page SMART equals getLogPage; Get Features returns DW0", async () => {
  await withSim({}, async (dev) => {
    const numd = 512 / 4 - 1;
    const r = await adminPassthru(dev, { opcode: AdminOpc.GET_LOG_PAGE, nsid: 0xffffffff, cdw10: LogId.SMART | (numd << 16), dataLen: 512 });
    assert.equal(r.status, 0);
    const api = await getLogPage(dev, LogId.SMART, 512);
    // The temperature and power-on counters can tick between two reads; the critical warning and temperature bytes cannot.
    assert.deepEqual(r.data!.subarray(0, 3), api.subarray(0, 3));
    const nq = await adminPassthru(dev, { opcode: AdminOpc.GET_FEATURES, cdw10: 0x07 });
    // Number of Queues: zero-based counts allocated, at least the IO queues the driver made.
    assert.equal(nq.status, 0);
    assert.ok((nq.result & 0xffff) + 1 >= dev.controller.io.length, `dw0 ${nq.result.toString(16)}`);
    assert.ok((nq.result >>> 16) + 1 >= dev.controller.io.length, `dw0 ${nq.result.toString(16)}`);
    assert.equal(nq.data, null);
  });
});

test("admin passthru: a failed status resolves with the status field, decoded", async () => {
  await withSim({}, async (dev) => {
    const r = await adminPassthru(dev, { opcode: 0xc1 });
    assert.equal(r.status & 0x7ff, 0x001); // Invalid Command Opcode
    assert.equal(r.statusInfo?.name, "Invalid Command Opcode");
    assert.equal(r.data, null);
    const bad = await adminPassthru(dev, { opcode: AdminOpc.IDENTIFY, cdw10: 0x7f, dataLen: 4096 });
    assert.equal(bad.status & 0x7ff, 0x002); // Invalid Field in Command
  });
});

test("io passthru: write then read through raw commands matches the namespace API", async () => {
  await withSim({}, async (dev) => {
    const ns = dev.ns(1);
    const data = new Uint8Array(2 * ns.blockSize).map((_, i) => (i * 7 + 3) & 0xff);
    // Write (01h): SLBA 5 in CDW10/11, NLB 0-based in CDW12.
    const w = await ioPassthru(dev, { opcode: IoOpc.WRITE, nsid: 1, cdw10: 5, cdw12: 1, dataLen: data.length, data });
    assert.equal(w.status, 0);
    assert.equal(w.data, null);
    const back = new Uint8Array(data.length);
    await ns.read(5, back);
    assert.deepEqual(back, data);
    const r = await ioPassthru(dev, { opcode: IoOpc.READ, nsid: 1, cdw10: 5, cdw12: 1, dataLen: data.length });
    assert.deepEqual(r.data, data);
    const f = await ioPassthru(dev, { opcode: IoOpc.FLUSH, nsid: 1 });
    assert.equal(f.status, 0);
    const oob = await ioPassthru(dev, { opcode: IoOpc.READ, nsid: 1, cdw10: ns.blockCount, dataLen: ns.blockSize });
    assert.equal(oob.status & 0x7ff, 0x080); // LBA Out of Range
  });
});

test("passthru: bad input is refused with InvalidArgumentError and no command reaches the controller", async () => {
  await withSim({}, async (dev, t) => {
    const before = t.commandCount();
    const max = dev.controller.maxTransferBytes;
    const bad: [string, () => Promise<unknown>][] = [
      ["opcode 256", () => adminPassthru(dev, { opcode: 256 })],
      ["opcode -1", () => adminPassthru(dev, { opcode: -1 })],
      ["opcode string", () => adminPassthru(dev, { opcode: "6" as unknown as number })],
      ["cdw10 2^32", () => adminPassthru(dev, { opcode: 6, cdw10: 2 ** 32 })],
      ["cdw2 1.5", () => adminPassthru(dev, { opcode: 6, cdw2: 1.5 })],
      ["nsid -1", () => adminPassthru(dev, { opcode: 6, nsid: -1 })],
      ["dataLen > MDTS", () => adminPassthru(dev, { opcode: 6, dataLen: max + 4 })],
      ["dataLen without direction", () => adminPassthru(dev, { opcode: 0xc0, dataLen: 64 })],
      ["direction without data", () => adminPassthru(dev, { opcode: 6, direction: "read" })],
      ["data bigger than dataLen", () => adminPassthru(dev, { opcode: 0x81, dataLen: 4, data: new Uint8Array(8) })],
      ["data on a read", () => adminPassthru(dev, { opcode: 6, dataLen: 4096, data: new Uint8Array(8) })],
      ["timeout 0", () => adminPassthru(dev, { opcode: 6, timeoutMs: 0 })],
      ["prefill 256", () => adminPassthru(dev, { opcode: 6, dataLen: 4096, prefill: 256 })],
      ["create IO SQ", () => adminPassthru(dev, { opcode: AdminOpc.CREATE_IO_SQ })],
      ["delete IO CQ", () => adminPassthru(dev, { opcode: AdminOpc.DELETE_IO_CQ, cdw10: 1 })],
      ["AER", () => adminPassthru(dev, { opcode: AdminOpc.ASYNC_EVENT_REQUEST })],
      ["io queue 0", () => ioPassthru(dev, { opcode: 2, nsid: 1, queue: 0 })],
      ["io queue past the last", () => ioPassthru(dev, { opcode: 2, nsid: 1, queue: dev.controller.io.length + 1 })],
      ["null command", () => adminPassthru(dev, null as unknown as { opcode: number })],
    ];
    for (const [what, f] of bad) await assert.rejects(f(), InvalidArgumentError, what);
    assert.equal(t.commandCount(), before);
  });
});

test("passthru after close rejects with DeviceClosedError", async () => {
  const t = await SimTransport.create({});
  const dev = await NVMeDev.open("sim", { transport: t });
  await dev.close();
  await assert.rejects(adminPassthru(dev, { opcode: 6, cdw10: 1, dataLen: 4096 }), DeviceClosedError);
  await assert.rejects(ioPassthru(dev, { opcode: 2, nsid: 1, dataLen: 512 }), DeviceClosedError);
});

test("getLogPage in pieces bigger than 4096 bytes (a DMA buffer) returns what 4096-byte pieces return", async () => {
  await withSim({}, async (dev) => {
    const a = await getLogPage(dev, LogId.CMD_EFFECTS, 4096);
    assert.deepEqual(await getLogPage(dev, LogId.CMD_EFFECTS, 4096, { pieceBytes: 8192 }), a);
    assert.deepEqual(await getLogPage(dev, LogId.CMD_EFFECTS, 4096, { pieceBytes: 1024 }), a);
    await assert.rejects(getLogPage(dev, LogId.CMD_EFFECTS, 4096, { pieceBytes: 6 }), InvalidArgumentError);
    await assert.rejects(getLogPage(dev, LogId.CMD_EFFECTS, 4096, { pieceBytes: dev.controller.maxTransferBytes + 4 }), InvalidArgumentError);
    await assert.rejects(getLogPage(dev, LogId.CMD_EFFECTS, 4096, { lsp: 128 }), InvalidArgumentError);
  });
});

test("admin passthru Format NVM: the device's namespaces follow the new block size", async () => {
  await withSim({}, async (dev) => {
    assert.equal(dev.ns(1).blockSize, 512);
    // Format NVM (80h), namespace 1, LBA format 1 (4096-byte blocks on the software controller).
    const r = await adminPassthru(dev, { opcode: AdminOpc.FORMAT_NVM, nsid: 1, cdw10: 1 });
    assert.equal(r.status, 0);
    assert.equal(dev.ns(1).blockSize, 4096);
    const b = new Uint8Array(4096).fill(9);
    await dev.ns(1).write(0, b);
  });
});
