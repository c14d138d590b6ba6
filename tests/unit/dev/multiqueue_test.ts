import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";

test("several IO queue pairs: commands spread over all of them, data intact", async () => {
  await using dev = await NVMeDev.open("sim:ns=8M:512;queues=4", { ioQueues: 4, ioQueueDepth: 64 });
  assert.equal(dev.info.ioQueues, 4);
  const ns = dev.ns(1);
  const n = 200;
  const bufs = Array.from({ length: n }, (_, i) => {
    const b = new Uint8Array(4096);
    new Uint32Array(b.buffer).fill(i * 7 + 1);
    return b;
  });
  await Promise.all(bufs.map((b, i) => ns.write(i * 8, b)));
  const back = Array.from({ length: n }, () => new Uint8Array(4096));
  await Promise.all(back.map((b, i) => ns.read(i * 8, b)));
  for (let i = 0; i < n; i++) assert.deepEqual(back[i], bufs[i], `block run ${i}`);
  const st = dev.queueStats();
  assert.equal(st.length, 4);
  for (const s of st) {
    assert.ok(s.submitted >= n / 4 - 1, `queue used: ${JSON.stringify(s)}`);
    assert.equal(s.submitted, s.completed);
  }
});

test("the controller grants fewer queues than asked: the driver uses what it got", async () => {
  await using dev = await NVMeDev.open("sim:ns=1M:512;queues=2", { ioQueues: 8 });
  assert.equal(dev.info.ioQueues, 2);
  const ns = dev.ns(1);
  const bufs = Array.from({ length: 16 }, (_, i) => new Uint8Array(512).fill(i + 1));
  await Promise.all(bufs.map((b, i) => ns.write(i, b)));
  const back = Array.from({ length: 16 }, () => new Uint8Array(512));
  await Promise.all(back.map((b, i) => ns.read(i, b)));
  for (let i = 0; i < 16; i++) assert.deepEqual(back[i], bufs[i], `block ${i}`);
  const st = dev.queueStats();
  assert.equal(st.length, 2, "one queue pair per granted queue");
  for (const s of st) {
    assert.ok(s.submitted > 0, `both granted queues carry IO: ${JSON.stringify(s)}`);
    assert.equal(s.submitted, s.completed);
  }
});
