import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { decodeIdentifyController } from "../../../lib/nvme/identify.ts";
import { getLogPage, type AdminTarget, errorLog } from "../../../lib/admin/log.ts";
import { getFeature, setFeature, setTimestamp, setVolatileWriteCache } from "../../../lib/admin/features.ts";
import { asyncEvents, attachNamespace, createNamespace, deviceSelfTest, formatNvm } from "../../../lib/admin/manage.ts";
import { NotSupportedError } from "../../../lib/admin/support.ts";
import { sanitize, sanitizeCommand, decodeSanicap, waitSanitize, SanitizeFailedError } from "../../../lib/sanitize/mod.ts";
import { commitCommand, commitFirmware, decodeFirmwareCaps, downloadFirmware, planDownload } from "../../../lib/firmware/mod.ts";
import { InvalidArgumentError, NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { type IoHost, Namespace } from "../../../lib/io/namespace.ts";
import type { QueuePair } from "../../../lib/nvme/queue.ts";
import { fakeDma } from "../util/fake.ts";

/** A controller double: records admin commands, answers from `reply`. */
function fakeDev(id: Partial<Record<number, number>> = {}, reply: (cmd: Uint32Array, iova: number, len: number) => number = () => 0) {
  const identifyData = new Uint8Array(4096);
  identifyData[77] = 5; // MDTS 128 KiB
  identifyData[256] = 0x02; // OACS: format
  identifyData[259] = 3; // AERL
  identifyData[262] = 3; // ELPE: 4 entries
  identifyData[78] = 7; // cntlid
  for (const [k, v] of Object.entries(id)) identifyData[Number(k)] = v!;
  const sent: { cmd: Uint32Array; iova: number; len: number }[] = [];
  const mem = new Map<number, Uint8Array>();
  const controller = {
    identifyData,
    id: decodeIdentifyController(identifyData),
    pageSize: 4096,
    cap: { mpsMin: 4096, css: 0x41 },
    adminCommand(cmd: Uint32Array, iova = 0, len = 0) {
      sent.push({ cmd: cmd.slice(), iova, len });
      try {
        return Promise.resolve(reply(cmd, iova, len));
      } catch (e) {
        return Promise.reject(e);
      }
    },
    identify(cmd: Uint32Array, bytes = 4096) {
      sent.push({ cmd: cmd.slice(), iova: -1, len: bytes });
      return Promise.resolve(new Uint8Array(bytes));
    },
    identifyNamespace() {
      const d = new Uint8Array(4096);
      d[25] = 1; // two LBA formats
      return Promise.resolve(d);
    },
    allocDma(size: number) {
      const b = fakeDma(size);
      mem.set(b.iova, b.bytes);
      return b;
    },
    freeDma() {},
  };
  return { dev: { controller } as unknown as AdminTarget, sent, mem };
}

const refusedBeforeSending = async (p: () => Promise<unknown>, cls: unknown, sent: unknown[]) => {
  await assert.rejects(p, cls as never);
  assert.equal(sent.length, 0, "nothing reached the device");
};

test("sanitize: SANICAP 0 refuses every action with NotSupportedError before sending", async () => {
  const { dev, sent } = fakeDev();
  for (const k of ["block-erase", "crypto-erase", "overwrite", "exit-failure"] as const) {
    await refusedBeforeSending(() => sanitize(dev, k), (e: unknown) => e instanceof NotSupportedError && e.code === "EUNSUPPORTED", sent);
  }
});

test("sanitize: per-capability refusals, option ranges, encoding", async () => {
  const caps = decodeSanicap(0x2000_0002); // block erase only, NDI
  assert.throws(() => sanitizeCommand(caps, "crypto-erase"), (e: unknown) => e instanceof NotSupportedError && e.capability === "SANICAP.CES");
  assert.throws(() => sanitizeCommand(caps, "block-erase", { noDeallocate: true }), NotSupportedError);
  const ow = decodeSanicap(4);
  assert.throws(() => sanitizeCommand(ow, "overwrite", { passes: 17 }), InvalidArgumentError);
  assert.throws(() => sanitizeCommand(ow, "overwrite", { pattern: -1 }), InvalidArgumentError);
  assert.throws(() => sanitizeCommand(decodeSanicap(2), "block-erase", { pattern: 1 }), InvalidArgumentError);
  assert.throws(() => sanitizeCommand(ow, "bogus" as never), InvalidArgumentError);
  const c = sanitizeCommand(ow, "overwrite", { passes: 16, pattern: 0xa5a5a5a5, invert: true, allowUnrestrictedExit: true });
  assert.equal(c[10], 3 | 1 << 3 | 0 << 4 | 1 << 8);
  assert.equal(c[11], 0xa5a5a5a5);
  assert.equal(sanitizeCommand(caps, "exit-failure")[10], 1);
  const { dev, sent } = fakeDev({ 328: 2 });
  await sanitize(dev, "block-erase", { noDeallocate: true });
  assert.equal(sent[0].cmd[10], 2 | 1 << 9);
});

test("waitSanitize follows SPROG until done and reports failure as SanitizeFailedError", async () => {
  const logs = [[0x4000, 2], [0xc000, 2], [0, 1]];
  const { dev } = fakeDev();
  let i = 0;
  (dev.controller as unknown as { identify: () => Promise<Uint8Array> }).identify = () => {
    const d = new Uint8Array(512);
    const [sprog, sstat] = logs[Math.min(i++, logs.length - 1)];
    new DataView(d.buffer).setUint16(0, sprog, true);
    new DataView(d.buffer).setUint16(2, sstat, true);
    return Promise.resolve(d);
  };
  const seen: number[] = [];
  const done = await waitSanitize(dev, { intervalMs: 1, onProgress: (p) => seen.push(p.fraction) });
  assert.deepEqual(seen, [0.25, 0.75]);
  assert.equal(done.status, 1);
  logs.splice(0, 3, [0, 3]);
  i = 0;
  await assert.rejects(waitSanitize(dev, { intervalMs: 1 }), SanitizeFailedError);
});

test("firmware: FRMW/FWUG refusals before sending, chunking within MDTS at the granularity", async () => {
  const qemu = decodeFirmwareCaps(3, 0); // slot 1 read-only, one slot
  assert.deepEqual(qemu, { slot1ReadOnly: true, slots: 1, activateWithoutReset: false, granularity: 4 });
  assert.throws(() => commitCommand(qemu, { slot: 1, action: "replace" }), NotSupportedError);
  assert.throws(() => commitCommand(qemu, { slot: 0, action: 1 }), NotSupportedError);
  assert.throws(() => commitCommand(qemu, { slot: 2, action: "activate" }), NotSupportedError);
  assert.throws(() => commitCommand(decodeFirmwareCaps(0x4, 0), { slot: 2, action: 3 }), NotSupportedError);
  assert.throws(() => commitCommand(qemu, { action: 4 }), InvalidArgumentError);
  assert.throws(() => commitCommand(qemu, { action: 2, bpid: 2 }), InvalidArgumentError);
  assert.equal(commitCommand(qemu, { slot: 1, action: "activate" })[10], 1 | 2 << 3);
  assert.equal(commitCommand(decodeFirmwareCaps(0, 0), { action: 7, bpid: 1 })[10], (7 << 3 | 1 << 31) >>> 0);
  assert.throws(() => planDownload(decodeFirmwareCaps(0, 0), 65536, 4096), NotSupportedError);
  const g = decodeFirmwareCaps(0x4, 2); // 8 KiB granularity
  assert.deepEqual(planDownload(g, 128 * 1024, 24576, { chunkBytes: 16384 }), [[0, 16384], [16384, 8192]]);
  assert.throws(() => planDownload(g, 128 * 1024, 20480), /granularity 8192 bytes \(FWUG\); pad it/);
  assert.deepEqual(planDownload(g, 16384, 40960), [[0, 16384], [16384, 16384], [32768, 8192]]);
  assert.throws(() => planDownload(g, 65536, 4098), /multiple of 4/);
  assert.throws(() => planDownload(g, 65536, 8192, { chunkBytes: 4096 }), /granularity/);
  assert.throws(() => planDownload(g, 16384, 8192, { chunkBytes: 32768 }), /MDTS/);
  assert.throws(() => planDownload(g, 65536, 8192, { offset: 4096 }), /granularity/);
  const { dev, sent } = fakeDev({ 260: 3 });
  await refusedBeforeSending(() => downloadFirmware(dev, new Uint8Array(6)), InvalidArgumentError, sent);
  await refusedBeforeSending(() => commitFirmware(dev, { slot: 1, action: "replace-and-activate" }), NotSupportedError, sent);
});

test("firmware download: chunks carry offset/size and go out with their own address and length", async () => {
  const { dev, sent } = fakeDev({ 260: 4 });
  const image = new Uint8Array(40960).map((_, i) => i & 0xff);
  const prog: number[] = [];
  await downloadFirmware(dev, image, { chunkBytes: 16384, onProgress: (s) => prog.push(s) });
  assert.deepEqual(prog, [16384, 32768, 40960]);
  assert.deepEqual(sent.map((s) => [s.cmd[0] & 0xff, s.cmd[10], s.cmd[11]]), [[0x11, 4095, 0], [0x11, 4095, 4096], [0x11, 2047, 8192]]);
  // The admin queue builds PRP lists itself (it has list pages like the IO queues): each chunk is
  // handed over as (IOVA, length), page aligned in the staging buffer.
  assert.deepEqual(sent.map((s) => s.len), [16384, 16384, 8192]);
  for (const s of sent) assert.equal(s.iova % 4096, 0);
});

test("firmware commit: 'activation requires reset' statuses are successes with resetRequired", async () => {
  const { dev } = fakeDev({ 260: 4 }, () => {
    throw new NvmeStatusError(0x110 | 0x4000, 0, { qid: 0, cid: 1, opcode: 0x10 });
  });
  assert.deepEqual(await commitFirmware(dev, { slot: 2, action: "replace-and-activate" }), { resetRequired: "nvm-subsystem", dw0: 0 });
});

test("format / self-test / namespace management / features: validation before sending, encoding", async () => {
  const { dev, sent } = fakeDev();
  await refusedBeforeSending(() => formatNvm(dev, 0), InvalidArgumentError, sent);
  await refusedBeforeSending(() => formatNvm(dev, 1, { ses: 3 }), InvalidArgumentError, sent);
  await refusedBeforeSending(() => formatNvm(dev, 1, { ses: 2 }), InvalidArgumentError, sent); // FNA: no crypto erase
  await assert.rejects(formatNvm(dev, 1, { lbaf: 2 }), /LBA format 2 does not exist/);
  assert.equal(sent.length, 0);
  await formatNvm(dev, 1, { lbaf: 1, ses: 1 });
  assert.equal(sent[0].cmd[10], 1 | 1 << 9);
  const noFormat = fakeDev({ 256: 0 });
  await refusedBeforeSending(() => formatNvm(noFormat.dev, 1), InvalidArgumentError, noFormat.sent);
  sent.length = 0;
  await refusedBeforeSending(() => deviceSelfTest(dev, 3 as never), InvalidArgumentError, sent);
  await refusedBeforeSending(() => createNamespace(dev, { nsze: 0 }), InvalidArgumentError, sent);
  await refusedBeforeSending(() => createNamespace(dev, { nsze: 10, ncap: 11 }), InvalidArgumentError, sent);
  await refusedBeforeSending(() => attachNamespace(dev, 0), InvalidArgumentError, sent);
  await refusedBeforeSending(() => getFeature(dev, 0x100), InvalidArgumentError, sent);
  await refusedBeforeSending(() => getFeature(dev, 6, { sel: 4 }), InvalidArgumentError, sent);
  await refusedBeforeSending(() => setFeature(dev, 0x0e, 0), InvalidArgumentError, sent); // timestamp needs data
  await refusedBeforeSending(() => setVolatileWriteCache(dev, true), InvalidArgumentError, sent); // VWC absent
  await refusedBeforeSending(() => getLogPage(dev, 2, 6), InvalidArgumentError, sent);
  await refusedBeforeSending(() => errorLog(dev, 5), InvalidArgumentError, sent); // ELPE + 1 = 4
  await deviceSelfTest(dev, "short", 1);
  assert.deepEqual([sent[0].cmd[0] & 0xff, sent[0].cmd[1], sent[0].cmd[10]], [0x14, 1, 1]);
  await attachNamespace(dev, 3);
  assert.deepEqual([sent[1].cmd[0] & 0xff, sent[1].cmd[1], sent[1].cmd[10], sent[1].len], [0x15, 3, 0, 4096]);
  await setTimestamp(dev, 0x1_0000_0005);
  assert.deepEqual([sent[2].cmd[0] & 0xff, sent[2].cmd[10], sent[2].len], [0x09, 0x0e, 8]);
  const created = fakeDev({}, () => 9);
  assert.equal(await createNamespace(created.dev, { nsze: 100n, flbas: 0x11 }), 9);
});

test("async events: one request outstanding, each completion decoded and yielded, stop on break", async () => {
  let n = 0;
  const { dev, sent } = fakeDev({}, () => [0x00010001, 0x00040202][n++] ?? 0);
  const got: number[] = [];
  for await (const e of asyncEvents(dev)) {
    got.push(e.type, e.info, e.logPage);
    if (got.length === 6) break;
  }
  assert.deepEqual(got, [1, 0, 1, 2, 2, 4]);
  assert.equal(sent.length, 2);
  const ac = new AbortController();
  ac.abort();
  const it = asyncEvents(fakeDev({}, () => 1).dev, { signal: ac.signal });
  assert.equal((await it.next()).done, true);
});

function ioHost() {
  const calls: unknown[][] = [];
  const bounce: Uint8Array[] = [];
  const qp = {
    defaultTimeoutMs: 1000,
    rw(...a: unknown[]) {
      calls.push(["rw", ...a]);
      return Promise.resolve(0);
    },
    submit(cmd: Uint32Array, iova: number, len: number) {
      calls.push(["submit", cmd.slice(), iova, len, bounce[bounce.length - 1].slice(0, len)]);
      return Promise.resolve(0);
    },
  } as unknown as QueuePair;
  const host: IoHost = {
    closedError: null,
    pickQueue: () => qp,
    maxTransferBytes: 128 * 1024,
    dmaOf: () => null,
    takeBounce: (size: number) => {
      const b = fakeDma(Math.max(size, 4096));
      bounce.push(b.bytes);
      return b;
    },
    giveBounce: () => {},
  };
  const ns = new Namespace(host, {
    nsid: 1, blockSize: 512, blockCount: 200000n, capacity: 200000n, utilization: 0n, metadataSize: 0, lbaFormat: 0,
    mssrl: 128, mcl: 256, msrc: 3,
  });
  return { ns, calls };
}

test("namespace write zeroes / verify / dsm / copy: validation before sending, splitting and range encoding", async () => {
  const { ns, calls } = ioHost();
  const bad: [string, () => Promise<void>][] = [
    ["zero blocks", () => ns.writeZeroes(0, 0)],
    ["past the end", () => ns.writeZeroes(199999, 2)],
    ["negative lba", () => ns.verify(-1, 1)],
    ["fractional count", () => ns.verify(0, 1.5)],
    ["no ranges", () => ns.deallocate([])],
    ["257 ranges", () => ns.deallocate(Array.from({ length: 257 }, (_, i) => ({ lba: i, blocks: 1 })))],
    ["range past end", () => ns.deallocate({ lba: 199990, blocks: 11 })],
    ["not a range", () => ns.deallocate([null as never])],
    ["copy over MSRC", () => ns.copy([{ lba: 0, blocks: 1 }, { lba: 1, blocks: 1 }, { lba: 2, blocks: 1 }, { lba: 3, blocks: 1 }], 100)],
    ["copy range over MSSRL", () => ns.copy({ lba: 0, blocks: 129 }, 1000)],
    ["copy over MCL", () => ns.copy([{ lba: 0, blocks: 128 }, { lba: 200, blocks: 128 }, { lba: 400, blocks: 1 }], 1000)],
    ["copy destination past end", () => ns.copy({ lba: 0, blocks: 10 }, 199995)],
    ["compare bad length", () => ns.compare(0, new Uint8Array(100))],
    ["bad timeout", () => ns.writeZeroes(0, 1, { timeoutMs: -1 })],
  ];
  for (const [what, f] of bad) await assert.rejects(f, InvalidArgumentError, what);
  assert.equal(calls.length, 0, "nothing reached the queue");

  await ns.writeZeroes(10, 65536 + 5, { deallocate: true });
  assert.deepEqual(calls.map((c) => c.slice(0, 5)), [["rw", 0x08, 1, 10, 65535], ["rw", 0x08, 1, 65546, 4]]);
  assert.equal(calls[0][7], 1 << 25);
  calls.length = 0;
  await ns.verify(0, 8);
  assert.deepEqual(calls[0].slice(0, 5), ["rw", 0x0c, 1, 0, 7]);
  calls.length = 0;
  await ns.deallocate([{ lba: 5, blocks: 3 }, { lba: 0x1_0000, blocks: 100 }]);
  const [, cmd, , len, data] = calls[0] as [string, Uint32Array, number, number, Uint8Array];
  assert.deepEqual([cmd[0] & 0xff, cmd[10], cmd[11], len], [0x09, 1, 4, 32]);
  const dv = new DataView(data.buffer);
  assert.deepEqual([dv.getUint32(4, true), Number(dv.getBigUint64(8, true)), dv.getUint32(20, true), Number(dv.getBigUint64(24, true))], [3, 5, 100, 0x10000]);
  calls.length = 0;
  await ns.copy([{ lba: 7, blocks: 2 }, { lba: 100, blocks: 128 }], 5000);
  const [, c2, , l2, d2] = calls[0] as [string, Uint32Array, number, number, Uint8Array];
  assert.deepEqual([c2[0] & 0xff, c2[10], c2[12], l2], [0x19, 5000, 1, 64]);
  const v2 = new DataView(d2.buffer);
  assert.deepEqual([Number(v2.getBigUint64(8, true)), v2.getUint16(16, true), Number(v2.getBigUint64(40, true)), v2.getUint16(48, true)], [7, 1, 100, 127]);
});
