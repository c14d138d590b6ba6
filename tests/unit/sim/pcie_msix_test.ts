/**
 * The software controller's MSI-X model drives the interrupt paths without
 * hardware: CQEs on IEN queues raise their vector's wake word, and a pump
 * run by IdlePolicy + sleepOnIrq completes IO that nothing else polls.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { Idle, type IdleAction, IdlePolicy, sleepOnIrq, type WaitMode } from "../../../lib/irq/adaptive.ts";
import { IrqLayout, IrqWaiter } from "../../../lib/irq/waiter.ts";
import { createIoCqCmd, createIoSqCmd, deleteIoCqCmd, deleteIoSqCmd, setRw } from "../../../lib/nvme/command.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { Transport } from "../../../lib/nvme/transport.ts";

const VECTORS = 4;

async function openWithIrq(ioQueues = 1): Promise<{ dev: NVMeDev; w: IrqWaiter[] }> {
  const irq = new SharedArrayBuffer((IrqLayout.HEADER + VECTORS) * 4);
  const transport = await SimTransport.create({ irq, maxQueues: 4, namespaces: [{ size: 1 << 20, blockSize: 512 }] });
  // handQueue rings MMIO doorbells itself: a controller with shadow doorbells configured would read the shadow page.
  const dev = await NVMeDev.open("sim", { transport, ioQueues, ioInterruptVectors: VECTORS, pcie: { shadowDoorbells: false } });
  return { dev, w: Array.from({ length: VECTORS }, (_, slot) => new IrqWaiter({ sab: irq, slot })) };
}

test("sim MSI-X: admin completions raise vector 0, IO queue 1 raises vector 1, one per CQE; polled CQs stay silent", async () => {
  const { dev, w } = await openWithIrq();
  await using _ = dev;
  const c = dev.controller;
  assert.equal(w[0].count, c.admin.stats.completed, "one vector-0 interrupt per admin completion");
  const buf = dev.allocBuffer(4096);
  for (let i = 0; i < 5; i++) await dev.ns(1).read(i * 8, buf);
  assert.equal(w[1].count, c.io[0].stats.completed);
  assert.equal(w[1].count, 5);
  assert.equal(w[2].count + w[3].count, 0);
});

/**
 * A queue the test drives itself (qid 2, vector 2), so nothing but this pump
 * reaps it: the controller's own qid 2 (never used for IO here) is deleted and
 * re-created on the test's memory; shutdown deletes it as usual.
 */
async function handQueue(dev: NVMeDev, ien: boolean) {
  const c = dev.controller;
  const depth = 8, qid = 2;
  await c.adminCommand(deleteIoSqCmd(qid));
  await c.adminCommand(deleteIoCqCmd(qid));
  const sq = c.allocDma(depth * 64), cq = c.allocDma(depth * 16), data = c.allocDma(4096);
  await c.adminCommand(createIoCqCmd(qid, depth, ien, 2), cq.iova, 0);
  await c.adminCommand(createIoSqCmd(qid, depth, qid), sq.iova, 0);
  const sq32 = new Uint32Array(sq.bytes.buffer, sq.bytes.byteOffset, depth * 16);
  const cq32 = new Uint32Array(cq.bytes.buffer, cq.bytes.byteOffset, depth * 4);
  const db = (c.transport as Transport).doorbells(), stride = c.cap.doorbellStride;
  let tail = 0, head = 0, phase = 1, cid = 0;
  return {
    data,
    submit(opcode: number, lba: number): void {
      const e = sq32.subarray(tail * 16, tail * 16 + 16);
      setRw(e, opcode, 1, lba, 7);
      e[0] = (opcode | (++cid << 16)) >>> 0;
      e[6] = data.iova % 2 ** 32;
      e[7] = Math.floor(data.iova / 2 ** 32);
      tail = (tail + 1) % depth;
      db[(2 * qid * stride) / 4] = tail;
    },
    reap(): number {
      let n = 0;
      while (((Atomics.load(cq32, head * 4 + 3) >>> 16) & 1) === phase) {
        assert.equal(Atomics.load(cq32, head * 4 + 3) >>> 17, 0, "status success");
        n++;
        if (++head === depth) {
          head = 0;
          phase ^= 1;
        }
      }
      if (n) db[((2 * qid + 1) * stride) / 4] = head;
      return n;
    },
  };
}

/** One IO at a time through a pump shaped as the queue code will be; counts the policy's actions. */
async function pumpRun(mode: WaitMode, ios: number): Promise<{ actions: number[]; irqs: number }> {
  const { dev, w } = await openWithIrq(2);
  await using _ = dev;
  const q = await handQueue(dev, true);
  const policy = new IdlePolicy({ mode, spinUs: 50 });
  const actions = [0, 0, 0, 0];
  const setImm = (globalThis as { setImmediate?: (f: () => void) => void }).setImmediate!;
  for (let i = 0; i < ios; i++) {
    q.data.bytes.fill(i & 0xff);
    q.submit(IoOpc.WRITE, i * 8);
    let done = 0;
    while (done === 0) {
      const n = q.reap();
      done += n;
      if (done) break;
      const a: IdleAction = policy.next(n, performance.now());
      actions[a]++;
      if (a === Idle.SPIN) await null;
      else if (a === Idle.YIELD) {
        await new Promise<void>((r) => setImm(r));
        policy.resumed(performance.now(), false);
      } else if (a === Idle.NAP) {
        await new Promise((r) => setTimeout(r, policy.napMs(performance.now())));
        policy.resumed(performance.now(), false);
      } else {
        const woke = await sleepOnIrq(w[2], () => (done += q.reap()), 10_000);
        policy.resumed(performance.now(), woke);
      }
    }
    policy.next(done, performance.now());
  }
  return { actions, irqs: w[2].count };
}

test("sim MSI-X: interrupt mode completes IO nobody polls, sleeping on the vector; one interrupt per CQE", async () => {
  const r = await pumpRun("interrupt", 20);
  assert.equal(r.irqs, 20);
  assert.ok(r.actions[Idle.SLEEP] > 0, "slept on the interrupt");
  assert.equal(r.actions[Idle.NAP], 0);
});

test("sim MSI-X: adaptive mode spins first, then sleeps; poll mode never arms the interrupt", async () => {
  const a = await pumpRun("adaptive", 10);
  assert.ok(a.actions[Idle.SPIN] > 0 || a.actions[Idle.YIELD] > 0, "polled before arming");
  const p = await pumpRun("poll", 10);
  assert.equal(p.actions[Idle.SLEEP], 0);
  assert.equal(p.irqs, 10, "the device interrupts whether or not anyone sleeps on it");
});

test("sim MSI-X: a CQ created without IEN raises nothing", async () => {
  const { dev, w } = await openWithIrq(2);
  await using _ = dev;
  const q = await handQueue(dev, false);
  q.submit(IoOpc.READ, 0);
  while (q.reap() === 0) await new Promise((r) => setTimeout(r, 1));
  assert.equal(w[2].count, 0);
});
