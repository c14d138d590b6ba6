/**
 * Guest tier, interrupts: MSI-X of QEMU's emulated NVMe through VFIO. An IO
 * queue created with IEN and a vector, a read whose completion is found only
 * after its interrupt woke the waiter (nobody polls), the data checked, and
 * the per-vector counts of the IrqHub equal to the guest kernel's
 * vfio-msix lines in /proc/interrupts.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { test } from "../harness.ts";
import { loadLibc } from "../../lib/ffi/mod.ts";
import { IrqHub } from "../../lib/irq/hub.ts";
import type { IrqWaiter } from "../../lib/irq/waiter.ts";
import {
  createIoCqCmd,
  createIoSqCmd,
  deleteIoCqCmd,
  deleteIoSqCmd,
  getFeaturesCmd,
  setIrqCoalescingCmd,
  setRw,
} from "../../lib/nvme/command.ts";
import { Controller } from "../../lib/nvme/controller.ts";
import { NvmeStatusError } from "../../lib/nvme/errors.ts";
import { Fid, IoOpc } from "../../lib/nvme/spec.ts";
import { irqInfo, VfioInterrupts } from "../../lib/vfio/irq.ts";
import { VfioTransport } from "../../lib/vfio/transport.ts";
import { firstDiff, inGuest, PCI, procMsix, randomBytes, runtime } from "./util.ts";

const skip = { ignore: !inGuest };


/** What the kernel says about these fds and every epoll fd of the process (for a failure message). */
function fdReport(fds: readonly number[]): string {
  const out: string[] = [];
  const all = readdirSync("/proc/self/fd").map(Number);
  for (const fd of all) {
    let link = "";
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (!fds.includes(fd) && !link.includes("eventpoll")) continue;
    let info = "";
    try {
      info = readFileSync(`/proc/self/fdinfo/${fd}`, "utf8").trim().replace(/\n/g, "; ");
    } catch { /* gone */ }
    out.push(`fd ${fd} -> ${link}: ${info}`);
  }
  for (const fd of fds) if (!all.includes(fd)) out.push(`fd ${fd}: not open`);
  return out.join("\n");
}

/** Wait (bounded) until every hub counter equals the kernel's count, then assert they agree. */
async function countsAgree(irqs: IrqWaiter[], pci: string, fds: readonly number[]): Promise<Map<number, number>> {
  // Nothing is in flight, but either side may lag: the hub by a helper turn (sleep on that
  // waiter), the kernel by an MSI still being delivered to another vCPU (re-read shortly).
  let proc = procMsix(pci);
  for (let tries = 0; tries < 100 && irqs.some((w, v) => w.count !== (proc.get(v) ?? 0)); tries++) {
    const v = irqs.findIndex((w, v) => w.count < (proc.get(v) ?? 0));
    if (v >= 0) {
      irqs[v].arm();
      if (irqs[v].count < (proc.get(v) ?? 0)) await irqs[v].sleep(30_000);
    } else await new Promise((r) => setTimeout(r, 20));
    proc = procMsix(pci);
  }
  const ours = irqs.map((w) => w.count), kernel = irqs.map((_, v) => proc.get(v) ?? -1);
  if (ours.join() !== kernel.join()) {
    assert.fail(`hub counts ${ours} != /proc/interrupts vfio-msix counts ${kernel}\n${fdReport(fds)}`);
  }
  return proc;
}

test("MSI-X through VFIO: a read on an IEN queue is completed by its interrupt; counts match /proc/interrupts", async () => {
  const libc = await loadLibc();
  const t = VfioTransport.open(libc, PCI);
  const hub = await IrqHub.start({ libc });
  let ctrl: Controller | null = null;
  try {
    const info = irqInfo(libc, t.device, "msix");
    console.log(`[${runtime}] MSI-X: ${info.count} vectors, eventfd ${info.eventfd}, noResize ${info.noResize}`);
    assert.ok(info.count >= 4 && info.eventfd, "QEMU's NVMe offers MSI-X vectors with eventfds");
    assert.equal(irqInfo(libc, t.device, "intx").count, 1);
    const irqs = VfioInterrupts.enable(libc, t.device, { vectors: 4 });
    assert.equal(irqs.kind, "msix");
    assert.equal(irqs.count, 4);
    const w = irqs.eventfds.map((fd) => hub.add(fd));
    assert.deepEqual([...procMsix(PCI).keys()].sort(), [0, 1, 2, 3], "the guest kernel shows 4 vfio-msix vectors");

    // IO queue 1 on vector 1 (Controller plumbing); admin completions signal vector 0.
    // The hand-built queue below rings MMIO doorbells: with shadow doorbells configured QEMU would read the shadow page.
    ctrl = await Controller.init(t, { ioQueues: 1, ioInterruptVectors: 4, pcie: { shadowDoorbells: false } });
    assert.equal(ctrl.ioVector(1), 1);
    await countsAgree(w, PCI, irqs.eventfds);
    assert.ok(w[0].count > 0, "admin completions raised vector 0");

    // A hand-built queue 2 on vector 2: nothing polls it, so only the interrupt can tell us it completed.
    const ncqa = (await ctrl.adminCommand(getFeaturesCmd(Fid.NUM_QUEUES)) >>> 16) + 1;
    assert.ok(ncqa >= 2, `controller allocated ${ncqa} IO CQs`);
    const depth = 16, qid = 2, vector = 2;
    const sq = ctrl.allocDma(depth * 64), cq = ctrl.allocDma(depth * 16);
    const data = ctrl.allocDma(4096);
    await ctrl.adminCommand(createIoCqCmd(qid, depth, true, vector), cq.iova, 0);
    await ctrl.adminCommand(createIoSqCmd(qid, depth, qid), sq.iova, 0);
    const sq32 = new Uint32Array(sq.bytes.buffer, sq.bytes.byteOffset, depth * 16);
    const cq32 = new Uint32Array(cq.bytes.buffer, cq.bytes.byteOffset, depth * 4);
    const db = t.doorbells(), stride = ctrl.cap.doorbellStride;
    let tail = 0, head = 0, cid = 1;
    const irq = w[vector];
    const run = async (opcode: number, lba: number): Promise<void> => {
      const e = sq32.subarray(tail * 16, tail * 16 + 16);
      setRw(e, opcode, 1, lba, 4096 / 512 - 1);
      e[0] = (opcode | (cid << 16)) >>> 0;
      e[6] = data.iova % 2 ** 32;
      e[7] = Math.floor(data.iova / 2 ** 32);
      e[8] = e[9] = 0;
      tail = (tail + 1) % depth;
      const before = irq.count;
      irq.arm();
      Atomics.store(sq32, 0, sq32[0]); // order the SQE before the doorbell
      db[(2 * qid * stride) / 4] = tail;
      assert.equal(await irq.sleep(30_000), true, "woken by the interrupt, not by the timeout");
      assert.ok(irq.count > before);
      const dw3 = Atomics.load(cq32, head * 4 + 3);
      assert.equal((dw3 >>> 16) & 1, 1, "the completion was posted before its interrupt");
      assert.equal(dw3 & 0xffff, cid, "command id");
      assert.equal(dw3 >>> 17, 0, "status success");
      head++;
      db[((2 * qid + 1) * stride) / 4] = head;
      cid++;
    };
    const lba = 120_000;
    const pattern = randomBytes(4096, 0x1234 + (runtime === "bun" ? 1 : 0));
    data.bytes.set(pattern);
    await run(IoOpc.WRITE, lba);
    data.bytes.fill(0);
    await run(IoOpc.READ, lba);
    assert.equal(firstDiff(data.bytes, pattern), -1, "read back what was written");

    // A waiter in a Worker, from the posted word, woken by the device's interrupt.
    const worker = new Worker(new URL("../unit/workers/irq_worker.js", import.meta.url), { type: "module" });
    try {
      const msg = (type: string) =>
        new Promise<Record<string, unknown>>((resolve) => worker.onmessage = (e) => e.data.type === type && resolve(e.data));
      await msg("loaded");
      const armed = msg("armed");
      worker.postMessage({ type: "wait", word: irq.word, timeoutMs: 30_000 });
      await armed;
      const woke = msg("woke");
      data.bytes.fill(0);
      await run(IoOpc.READ, lba);
      const r = await woke;
      assert.equal(r.woke, true, "the Worker's waiter woke on the MSI-X interrupt");
      assert.equal(firstDiff(data.bytes, pattern), -1);
    } finally {
      worker.terminate();
    }

    // The controller's own IO queue 1 (polled pump, IEN on vector 1): its interrupts are counted too.
    const v1 = w[1].count;
    for (let i = 0; i < 4; i++) await ctrl.io[0].rw(IoOpc.READ, 1, lba, 7, data.iova, 4096);
    const proc = await countsAgree(w, PCI, irqs.eventfds);
    assert.ok(w[1].count > v1, "IO queue 1's completions raised vector 1");
    assert.equal(w[3].count, 0, "no queue uses vector 3");
    console.log(`[${runtime}] vfio-msix counts per vector: ${[...proc.entries()].map(([v, n]) => `${v}:${n}`).join(" ")}`);

    await ctrl.adminCommand(deleteIoSqCmd(qid));
    await ctrl.adminCommand(deleteIoCqCmd(qid));
    await ctrl.shutdown();
    ctrl = null;
    for (const x of w) await hub.remove(x.word);
    t.close(); // disables the vectors (close hook) before the device fd closes
    assert.equal(procMsix(PCI).size, 0, "vectors released when the device closed");
  } finally {
    if (ctrl) await ctrl.shutdown().catch(() => {});
    t.close();
    await hub.close();
  }
}, skip);

test("Interrupt Coalescing Set Features reaches the controller; QEMU's refusal is a clear status error", async () => {
  const libc = await loadLibc();
  const t = VfioTransport.open(libc, PCI);
  try {
    const ctrl = await Controller.init(t, { ioQueues: 1 });
    try {
      const cur = await ctrl.adminCommand(getFeaturesCmd(Fid.IRQ_COALESCING));
      console.log(`[${runtime}] interrupt coalescing now: thr ${cur & 0xff}, time ${(cur >>> 8) & 0xff}`);
      try {
        await ctrl.adminCommand(setIrqCoalescingCmd(7, 1));
        console.log(`[${runtime}] interrupt coalescing set`);
      } catch (e) {
        assert.ok(e instanceof NvmeStatusError, String(e));
        assert.match(e.message, /opcode 0x09 failed/);
        console.log(`[${runtime}] interrupt coalescing refused: ${e.message}`);
      }
    } finally {
      await ctrl.shutdown();
    }
  } finally {
    t.close();
  }
}, skip);
