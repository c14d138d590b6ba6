/**
 * Guest tier, DMA safety through real VFIO and an emulated IOMMU: freed and
 * closed buffers are safe to touch, a free during IO is deferred until the
 * device is done, and no IOVA is reused while a command may still write it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "../harness.ts";
import { NVMeDev } from "../../lib/dev.ts";
import { InvalidArgumentError } from "../../lib/nvme/errors.ts";
import { inGuest, PCI, randomBytes, runtimeArgv } from "./util.ts";

const skip = { ignore: !inGuest };

test("touching a freed buffer, or any buffer after close, reads as empty instead of crashing (child process)", () => {
  const [cmd, argv] = runtimeArgv("tests/guest/dma_child.ts", [PCI]);
  const r = spawnSync(cmd, argv, { encoding: "utf8" });
  assert.equal(r.signal, null, `child died by ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.deepEqual(out, {
    ok: true,
    afterFree: { len: 0, first: "undefined", subLen: 0, sub0: "undefined" },
    afterClose: { len: 0, first: "undefined", subLen: 0, sub0: "undefined" },
  });
}, skip);

test("free during IO is deferred: the IOVA is not reused until the read ended; the next buffer keeps the user's bytes", async () => {
  await using dev = await NVMeDev.open(PCI);
  const ns = dev.ns(1);
  const t = dev.controller.transport;
  const size = 4 << 20; // several commands at MDTS: in flight long enough under TCG
  const data = randomBytes(size, 0x1234);
  const w = dev.allocBuffer(size);
  w.set(data);
  await ns.write(0, w);
  dev.freeBuffer(w);
  for (let round = 0; round < 3; round++) {
    const a = dev.allocBuffer(size);
    const iovaA = t.iovaOf(a);
    const read = ns.read(0, a); // posted synchronously: the commands are on the device now
    dev.freeBuffer(a);
    assert.equal(a.length, 0, "detached at once");
    // No await until the read has ended: the device still owns a's memory.
    const b = dev.allocBuffer(size);
    assert.notEqual(t.iovaOf(b), iovaA, "memory the device may still write is not handed out again");
    b.fill(0x5c);
    await read;
    await assert.rejects(ns.read(0, a), InvalidArgumentError, "IO on a freed buffer is refused");
    assert.ok(b.every((x) => x === 0x5c), "the device's data did not land in the new buffer");
    const c = dev.allocBuffer(size);
    assert.equal(t.iovaOf(c), iovaA, "once the read ended, its range is free for reuse");
    await ns.read(0, c);
    assert.deepEqual(c, data, "data intact");
    dev.freeBuffer(b);
    dev.freeBuffer(c);
  }
}, skip);

test("plain-memory IO through bounce buffers stays correct while DMA buffers are freed around it", async () => {
  await using dev = await NVMeDev.open(PCI);
  const ns = dev.ns(1);
  const data = randomBytes(1 << 20, 0x777);
  await ns.write(4096, data);
  const reads = Array.from({ length: 8 }, () => new Uint8Array(1 << 20));
  const ps = reads.map((r) => ns.read(4096, r));
  for (let i = 0; i < 16; i++) dev.freeBuffer(dev.allocBuffer(1 << 20));
  await Promise.all(ps);
  for (const r of reads) assert.deepEqual(r, data);
}, skip);
