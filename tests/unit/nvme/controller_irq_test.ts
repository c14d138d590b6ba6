/** Controller plumbing for interrupts: IEN/IV on Create IO CQ, the vector map, coalescing commands. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { createIoCqCmd, setIrqCoalescingCmd, setIrqVectorConfigCmd } from "../../../lib/nvme/command.ts";
import { InvalidArgumentError } from "../../../lib/nvme/errors.ts";
import { AdminOpc, Fid } from "../../../lib/nvme/spec.ts";

test("Create IO CQ carries PC, IEN and the vector in CDW11", () => {
  const c = createIoCqCmd(3, 256, true, 5);
  assert.equal(c[0] & 0xff, AdminOpc.CREATE_IO_CQ);
  assert.equal(c[10], (3 | (255 << 16)) >>> 0);
  assert.equal(c[11], (1 | 2 | (5 << 16)) >>> 0);
  assert.equal(createIoCqCmd(3, 256)[11], 1, "polled: PC only");
});

test("interrupt coalescing and vector configuration Set Features encode CDW10/CDW11", () => {
  const c = setIrqCoalescingCmd(7, 2);
  assert.equal(c[0] & 0xff, AdminOpc.SET_FEATURES);
  assert.equal(c[10], Fid.IRQ_COALESCING);
  assert.equal(c[11], 7 | (2 << 8));
  const v = setIrqVectorConfigCmd(4, true);
  assert.equal(v[10], Fid.IRQ_CONFIG);
  assert.equal(v[11], 4 | (1 << 16));
  assert.equal(setIrqVectorConfigCmd(4, false)[11], 4);
});

test("controller: IO CQs created with interrupts on vectors 1..N-1 round robin; IO still works", async () => {
  await using dev = await NVMeDev.open("sim:ns=1M:512;queues=4", { ioQueues: 4, ioInterruptVectors: 3 });
  const c = dev.controller;
  assert.equal(c.io.length, 4);
  assert.deepEqual(c.io.map((q) => c.ioVector(q.qid)), [1, 2, 1, 2]);
  const buf = dev.allocBuffer(4096);
  buf.fill(0x5a);
  await dev.ns(1).write(0, buf);
  buf.fill(0);
  await dev.ns(1).read(0, buf);
  assert.equal(buf[4095], 0x5a);
});

test("controller: one vector (MSI/INTx) is shared with the admin queue; polled queues have none", async () => {
  await using one = await NVMeDev.open("sim:ns=1M:512;queues=2", { ioQueues: 2, ioInterruptVectors: 1 });
  assert.deepEqual(one.controller.io.map((q) => one.controller.ioVector(q.qid)), [0, 0]);
  await using none = await NVMeDev.open("sim:ns=1M:512;queues=2", { ioQueues: 2, interrupts: "poll" });
  assert.deepEqual(none.controller.io.map((q) => none.controller.ioVector(q.qid)), [-1, -1]);
  assert.equal(none.info.interrupts, "none");
  // The default is adaptive on every vector the device has: admin 0, IO queues 1 and 2.
  await using dflt = await NVMeDev.open("sim:ns=1M:512;queues=2", { ioQueues: 2 });
  assert.deepEqual(dflt.controller.io.map((q) => dflt.controller.ioVector(q.qid)), [1, 2]);
  assert.equal(dflt.info.waitMode, "adaptive");
  assert.equal(dflt.info.interrupts, "sim, 3 vectors");
  await assert.rejects(NVMeDev.open("sim:ns=1M:512", { ioInterruptVectors: 1.5 }), InvalidArgumentError);
});
