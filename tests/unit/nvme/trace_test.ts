/**
 * The command trace: a known command sequence decodes exactly (queue, cid,
 * opcode name, nsid, LBA range or CDWs, status name), the ring keeps the last
 * N, and timeouts and resets carry the commands that led to them.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { ControllerResetError, NvmeStatusError, NvmeTimeoutError } from "../../../lib/nvme/errors.ts";
import { AdminOpc, IoOpc } from "../../../lib/nvme/spec.ts";
import { CommandTrace } from "../../../lib/nvme/trace.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";

test("trace: a known sequence decodes exactly, line by line", async () => {
  const lines: string[] = [];
  const trace = new CommandTrace({ capacity: 8, log: (l) => lines.push(l) });
  await using dev = await NVMeDev.open("sim:ns=1M:512", { trace, interrupts: "poll" });
  assert.equal(dev.trace, trace);
  const ns = dev.ns(1);
  await ns.write(8, new Uint8Array(1024));
  await ns.read(8, new Uint8Array(512));
  await ns.flush();
  await dev.controller.identify(new Uint32Array([AdminOpc.IDENTIFY, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]));
  const norm = (l: string) => l.replace(/latency=[\d.]+us/, "latency=Xus");
  const io = lines.filter((l) => l.includes("qid=1 ")).map(norm).slice(0, 6);
  assert.deepEqual(io, [
    "nvme_setup_cmd: qid=1 cid=0 nsid=1 opcode=WRITE(0x01) slba=8 len=2",
    "nvme_complete_rq: qid=1 cid=0 opcode=WRITE status=Successful Completion (0x0000) result=0x00000000 latency=Xus",
    "nvme_setup_cmd: qid=1 cid=1024 nsid=1 opcode=READ(0x02) slba=8 len=1",
    "nvme_complete_rq: qid=1 cid=1024 opcode=READ status=Successful Completion (0x0000) result=0x00000000 latency=Xus",
    "nvme_setup_cmd: qid=1 cid=2048 nsid=1 opcode=FLUSH(0x00) cdw10=00000000,00000000,00000000,00000000,00000000,00000000",
    "nvme_complete_rq: qid=1 cid=2048 opcode=FLUSH status=Successful Completion (0x0000) result=0x00000000 latency=Xus",
  ]);
  const admin = lines.filter((l) => l.includes("qid=0 ")).map(norm);
  assert.deepEqual(admin.slice(-2).map((l) => l.replace(/cid=\d+/, "cid=N")), [
    "nvme_setup_cmd: qid=0 cid=N nsid=0 opcode=IDENTIFY(0x06) cdw10=00000001,00000000,00000000,00000000,00000000,00000000",
    "nvme_complete_rq: qid=0 cid=N opcode=IDENTIFY status=Successful Completion (0x0000) result=0x00000000 latency=Xus",
  ]);
  // The ring keeps the last 8, oldest first, decoded.
  for (let i = 0; i < 6; i++) await ns.read(100 + i, new Uint8Array(512));
  const last = trace.last();
  assert.equal(last.length, 8);
  assert.deepEqual(last.map((e) => e.name).slice(-7), ["IDENTIFY", "READ", "READ", "READ", "READ", "READ", "READ"]);
  assert.equal(last[7].slba, 105);
  assert.equal(last[7].blocks, 1);
  assert.equal(last[7].status, "Successful Completion");
  assert.ok(last[7].latencyUs >= 0);
  const w = trace.last(20).find((e) => e.name === "WRITE")!;
  assert.equal(w, undefined, "the write fell out of the 8-entry ring");
});

test("trace: a status error is named; a timed-out command and a reset carry the commands before them", async () => {
  const transport = await SimTransport.create({ namespaces: [{ size: 1 << 20, blockSize: 512 }] });
  await using dev = await NVMeDev.open("sim", { transport, trace: { capacity: 32 }, ioTimeoutMs: 150, adminTimeoutMs: 300 });
  const ns = dev.ns(1);
  await transport.faults.add({ action: "status", queue: "io", opcode: IoOpc.READ, lba: [5, 5], status: 0x281, count: 1 });
  await assert.rejects(ns.read(5, new Uint8Array(512)), NvmeStatusError);
  assert.equal(dev.trace!.last(1)[0].status, "Unrecovered Read Error");
  await transport.faults.add({ action: "drop", queue: "io", opcode: IoOpc.READ, count: 1 });
  await transport.faults.add({ action: "drop", queue: "admin", opcode: AdminOpc.ABORT, count: 1 });
  const reset = ns.read(9, new Uint8Array(512)).catch((e) => e);
  const err = await reset;
  assert.ok(err instanceof NvmeTimeoutError);
  const t = err.trace!;
  assert.equal(t[t.length - 1].name, "READ");
  assert.equal(t[t.length - 1].slba, 9);
  assert.equal(t[t.length - 1].status, "Timed Out");
  // The lost Abort leads to a reset; commands in flight then fail with ControllerResetError + trace.
  const inflight = transport.faults.setLatency(400).then(() => ns.read(1, new Uint8Array(512)).catch((e) => e));
  for (let i = 0; i < 300 && dev.controller.resets === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(dev.controller.resets, 1);
  const r = await inflight;
  if (r instanceof ControllerResetError) assert.ok(r.trace!.some((e) => e.name === "ABORT"));
  await transport.faults.setLatency(0);
});
