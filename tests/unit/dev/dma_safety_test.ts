/**
 * DMA memory that no sequence of public calls can misuse, on the software
 * controller (which refuses and counts DMA to unmapped memory, as an IOMMU
 * would): freed and closed buffers read as empty instead of crashing, a free
 * during IO is deferred until the device is done, IOVAs are quarantined until
 * no command can write them, bounce buffers wait for their command.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { InvalidArgumentError, NvmeStatusError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { readCmd } from "../../../lib/nvme/command.ts";
import { AdminOpc, IoOpc } from "../../../lib/nvme/spec.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";

const BS = 512;

async function open(opts: Parameters<typeof NVMeDev.open>[1] = {}) {
  const transport = await SimTransport.create({ namespaces: [{ size: 1024 * BS, blockSize: BS }] });
  const dev = await NVMeDev.open("sim", { transport, ...opts });
  return { dev, ns: dev.ns(1), transport };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("dma: freed buffers and their subarrays read as empty; IO on them is refused before the device sees it", async () => {
  const { dev, ns, transport } = await open();
  try {
    const a = dev.allocBuffer(8192);
    const sub = a.subarray(512, 1024);
    a[0] = 7;
    dev.freeBuffer(a);
    assert.equal(a.length, 0);
    assert.equal(a[0], undefined);
    assert.equal(sub.length, 0);
    assert.equal(sub[0], undefined);
    const before = transport.commandCount({ qid: 1 });
    await assert.rejects(ns.read(0, a), (e) => e instanceof InvalidArgumentError && /freed/.test(e.message));
    await assert.rejects(ns.write(0, sub), InvalidArgumentError);
    assert.throws(() => dev.freeBuffer(a), (e) => e instanceof InvalidArgumentError && /already freed/.test(e.message));
    assert.equal(transport.commandCount({ qid: 1 }), before, "nothing reached the device");
  } finally {
    await dev.close();
  }
});

test("dma: a view read through, then freed, is refused (the namespace's last-view cache does not outlive it)", async () => {
  const { dev, ns, transport } = await open();
  try {
    const a = dev.allocBuffer(8192);
    await ns.read(0, a);
    await ns.read(16, a);
    dev.freeBuffer(a);
    const before = transport.commandCount({ qid: 1 });
    await assert.rejects(ns.read(0, a), (e) => e instanceof InvalidArgumentError && /freed/.test(e.message));
    assert.throws(() => ns.submitRead(0, a, () => {}), (e) => e instanceof InvalidArgumentError && /freed/.test(e.message));
    assert.equal(transport.commandCount({ qid: 1 }), before, "nothing reached the device");
  } finally {
    await dev.close();
  }
});

test("dma: every allocBuffer view reads as empty after close (no dangling memory)", async () => {
  const { dev, transport } = await open();
  const a = dev.allocBuffer(4096), b = dev.allocBuffer(65536).subarray(100);
  a.fill(1);
  await dev.close();
  assert.equal(a.length, 0);
  assert.equal(a[0], undefined);
  assert.equal(b.length, 0);
  assert.equal(transport.mappedBytes, 0);
});

test("dma: a buffer freed during a read is not reused until the read ends; the next buffer keeps the user's bytes", async () => {
  const { dev, ns, transport } = await open();
  try {
    const data = new Uint8Array(4096).fill(0xd7);
    await ns.write(0, data);
    await transport.faults.setLatency(150);
    const a = dev.allocBuffer(4096);
    const iovaA = transport.iovaOf(a);
    const read = ns.read(0, a);
    await sleep(20); // the read is in flight on the device
    dev.freeBuffer(a); // deferred: a is detached now, its memory still mapped
    assert.equal(a.length, 0);
    const b = dev.allocBuffer(4096);
    assert.notEqual(transport.iovaOf(b), iovaA, "the IOVA of memory the device may still write is not handed out");
    b.fill(0x11);
    await read; // the device wrote into a's (still mapped) memory, not into b
    assert.ok(b.every((x) => x === 0x11), "the new buffer holds only the user's bytes");
    await transport.faults.setLatency(0);
    const c = dev.allocBuffer(4096);
    assert.equal(transport.iovaOf(c), iovaA, "once the read ended, the range is free again");
    assert.equal(transport.staleDma, 0);
  } finally {
    await dev.close();
  }
});

test("dma: a timed-out command whose Abort is lost keeps its buffer mapped until the reset that ends it", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 150, adminTimeoutMs: 300 });
  try {
    await transport.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, count: 1 });
    await transport.faults.add({ action: "drop", queue: "admin", opcode: AdminOpc.ABORT, count: 1 });
    const a = dev.allocBuffer(4096);
    const iovaA = transport.iovaOf(a);
    const mapped = transport.mappedBytes;
    await assert.rejects(ns.read(0, a), NvmeTimeoutError);
    dev.freeBuffer(a);
    assert.equal(a.length, 0);
    assert.equal(transport.mappedBytes, mapped, "still mapped: the device holds the command");
    const b = dev.allocBuffer(4096);
    assert.notEqual(transport.iovaOf(b), iovaA);
    dev.freeBuffer(b);
    // The lost Abort is followed by a controller reset, which ends the command.
    for (let i = 0; i < 300 && dev.controller.resets === 0; i++) await sleep(10);
    assert.equal(dev.controller.resets, 1);
    assert.equal(transport.mappedBytes, mapped - 4096, "the freed buffer is unmapped once the reset ended the command");
    assert.equal(transport.staleDma, 0);
  } finally {
    await dev.close();
  }
});

test("dma: a bounce buffer of a timed-out read returns to the pool only once its command has ended", async () => {
  const { dev, ns, transport } = await open({ ioTimeoutMs: 150, adminTimeoutMs: 300 });
  try {
    await ns.write(0, new Uint8Array(BS).fill(0x5a));
    await transport.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, lba: [0, 0], count: 1 });
    await transport.faults.add({ action: "drop", queue: "admin", opcode: AdminOpc.ABORT, count: 1 });
    const plain = new Uint8Array(BS);
    await assert.rejects(ns.read(0, plain), NvmeTimeoutError);
    // A write through a bounce buffer right now must not share the held read's buffer.
    const mine = new Uint8Array(BS).fill(0x33);
    await ns.write(5, mine);
    const back = new Uint8Array(BS);
    await ns.read(5, back);
    assert.deepEqual(back, mine);
    for (let i = 0; i < 300 && dev.controller.resets === 0; i++) await sleep(10);
    assert.equal(dev.controller.resets, 1);
    await ns.read(0, plain);
    assert.ok(plain.every((x) => x === 0x5a));
    assert.equal(transport.staleDma, 0);
  } finally {
    await dev.close();
  }
});

test("dma: admin data buffers freed after an admin timeout stay mapped until the reset", async () => {
  const { dev, transport } = await open({ adminTimeoutMs: 150 });
  try {
    await transport.faults.add({ action: "drop", queue: "admin", opcode: AdminOpc.IDENTIFY, count: 1 });
    const buf = dev.allocBuffer(4096);
    const iova = transport.iovaOf(buf);
    const cmd = new Uint32Array(16);
    cmd[0] = AdminOpc.IDENTIFY;
    cmd[10] = 1;
    const mapped = transport.mappedBytes;
    await assert.rejects(dev.controller.adminCommand(cmd, iova, 4096), NvmeTimeoutError);
    // The admin timeout resets the controller at once; until that reset has disabled it, the
    // command may still write the buffer, so the unmap waits for it.
    const busy = dev.controller.dmaAt(iova)!.busy > 0;
    dev.freeBuffer(buf);
    // (Not busy: the reset had already disabled the device and ended the command; freed at once.)
    if (busy) assert.equal(transport.mappedBytes, mapped, "deferred while the command may still write it");
    for (let i = 0; i < 300 && dev.controller.resets === 0; i++) await sleep(10);
    assert.equal(dev.controller.resets, 1);
    assert.equal(transport.mappedBytes, mapped - 4096);
    // A raw command naming memory that is not (or no longer) DMA memory is refused.
    await assert.rejects(dev.controller.adminCommand(cmd, iova, 4096), InvalidArgumentError);
  } finally {
    await dev.close();
  }
});

test("sim IOMMU: DMA to an IOVA that is no longer mapped fails with Data Transfer Error and is counted", async () => {
  const { dev, transport } = await open();
  try {
    const b = dev.allocBuffer(4096);
    const iova = transport.iovaOf(b);
    dev.freeBuffer(b);
    // Bypass every driver check: a raw submission on the IO queue with the stale address.
    const q = dev.controller.io[0];
    await assert.rejects(
      q.submit(readCmd(1, 0, 1), iova, BS),
      (e) => e instanceof NvmeStatusError && e.status.sct === 0 && e.status.sc === 0x04,
    );
    assert.equal(transport.staleDma, 1);
  } finally {
    await dev.close();
  }
});
