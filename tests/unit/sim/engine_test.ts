// The controller model (lib/sim/engine.ts) driven directly, without the PCIe front end: what an
// NVMe/TCP target relies on.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  BufferPort,
  ControllerModel,
  type DataPort,
  DataDir,
  type FrontEnd,
  type ModelOptions,
  PENDING,
  transferDirection,
} from "../../../lib/sim/engine.ts";
import { type AsyncMedia, type MediaDone, MemMedia } from "../../../lib/sim/media.ts";
import { AdminOpc, CC, Cns, CSTS, IoOpc, LogId } from "../../../lib/nvme/spec.ts";
import { decodeIdentifyController, decodeIdentifyNamespace } from "../../../lib/nvme/identify.ts";
import { SimStatus as S } from "../../../lib/sim/options.ts";

const DNR = 1 << 14;
const CC_ON = CC.EN | (6 << 16) | (4 << 20);

interface Done {
  qid: number;
  cid: number;
  sf: number;
  dw0: number;
}

/** A front end that records the model's callbacks. */
function front(extra: Partial<FrontEnd> = {}): FrontEnd & { done: Done[]; resets: number; cstsSeen: number[] } {
  const f = {
    done: [] as Done[],
    resets: 0,
    cstsSeen: [] as number[],
    complete(qid: number, cid: number, sf: number, dw0: number) {
      f.done.push({ qid, cid, sf, dw0 });
    },
    reset() {
      f.resets++;
    },
    csts(v: number) {
      f.cstsSeen.push(v);
    },
    ...extra,
  };
  return f;
}

function model(opts: Partial<ModelOptions> = {}, fe: FrontEnd = front()): ControllerModel {
  const m = new ControllerModel({ serial: "ENGINE1", readyDelayMs: 0, ...opts }, fe);
  m.setCc(CC_ON);
  return m;
}

function sqe(opc: number, cid: number, nsid = 0, cdw: Record<number, number> = {}): Uint32Array {
  const c = new Uint32Array(16);
  c[0] = (opc | (cid << 16)) >>> 0;
  c[1] = nsid;
  for (const [k, v] of Object.entries(cdw)) c[Number(k)] = v >>> 0;
  return c;
}

function rw(opc: number, cid: number, nsid: number, slba: number, blocks: number): Uint32Array {
  return sqe(opc, cid, nsid, { 10: slba, 11: 0, 12: blocks - 1 });
}

/** A port that splits the data over several buffers, as PRPs over scattered pages would. */
class SplitPort implements DataPort {
  readonly parts: Uint8Array[];
  #n = 0;
  constructor(sizes: number[]) {
    this.parts = sizes.map((n) => new Uint8Array(n));
  }
  map(_cmd: Uint32Array, len: number): number {
    let sum = 0;
    this.#n = 0;
    while (sum < len && this.#n < this.parts.length) sum += this.parts[this.#n++].length;
    return sum === len ? 0 : S.DATA_TRANSFER_ERROR;
  }
  get count(): number {
    return this.#n;
  }
  segment(i: number): Uint8Array {
    return this.parts[i];
  }
  fill(data: Uint8Array): this {
    let o = 0;
    for (const p of this.parts) {
      p.set(data.subarray(o, o + p.length));
      o += p.length;
    }
    return this;
  }
  joined(): Uint8Array {
    const out = new Uint8Array(this.parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of this.parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
  }
}

function bytes(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 8)) & 0xff;
  return b;
}

test("engine: Identify Controller and Namespace through a buffer port, with identity and CNTLID", () => {
  const fe = front({
    identify(cns, _nsid, d) {
      if (cns === Cns.CONTROLLER) d[1792] = 0x5a; // a fabrics front end patches its own fields
    },
  });
  const m = model({ cntlid: 7, mdts: 6, identity: { model: "Backing SSD", serial: "BACK42", vid: 0x8086 } }, fe);
  const port = new BufferPort(new Uint8Array(4096));
  assert.equal(m.transferLength(0, sqe(AdminOpc.IDENTIFY, 1, 0, { 10: Cns.CONTROLLER })), 4096);
  assert.equal(transferDirection(AdminOpc.IDENTIFY), DataDir.TO_HOST);
  assert.equal(m.execute(0, sqe(AdminOpc.IDENTIFY, 1, 0, { 10: Cns.CONTROLLER }), port), 0);
  const id = decodeIdentifyController(port.buf);
  assert.equal(id.serial, "BACK42");
  assert.equal(id.model, "Backing SSD");
  assert.equal(id.vid, 0x8086);
  assert.equal(id.cntlid, 7);
  assert.equal(id.mdts, 6);
  assert.equal(port.buf[1792], 0x5a);
  port.buf.fill(0xee);
  assert.equal(m.execute(0, sqe(AdminOpc.IDENTIFY, 2, 2, { 10: Cns.NAMESPACE }), port), 0);
  const ns = decodeIdentifyNamespace(port.buf);
  assert.equal(ns.blockSize, 4096);
  assert.equal(ns.nsze, BigInt((16 << 20) / 4096));
  // A port too small for the data: the transfer fails, with DNR, and the error is logged.
  const st = m.execute(0, sqe(AdminOpc.IDENTIFY, 3, 0, { 10: Cns.CONTROLLER }), new BufferPort(new Uint8Array(100)));
  assert.equal(st, S.DATA_TRANSFER_ERROR | DNR);
  const log = new BufferPort(new Uint8Array(64));
  assert.equal(m.execute(0, sqe(AdminOpc.GET_LOG_PAGE, 4, 0, { 10: LogId.ERROR | (15 << 16) }), log), 0);
  assert.equal(new DataView(log.buf.buffer).getUint16(10, true), 3, "the error log names cid 3");
});

test("engine: write then read through a split data port; compare, write zeroes, DSM, flush", () => {
  const m = model();
  const data = bytes(3 * 512, 1);
  const w = new SplitPort([512, 1024]);
  w.parts[0].set(data.subarray(0, 512));
  w.parts[1].set(data.subarray(512));
  const wr = rw(IoOpc.WRITE, 10, 1, 100, 3);
  assert.equal(m.transferLength(1, wr), 1536);
  assert.equal(transferDirection(IoOpc.WRITE), DataDir.TO_CONTROLLER);
  assert.equal(m.execute(1, wr, w), 0);
  const r = new SplitPort([1024, 512]);
  assert.equal(m.execute(1, rw(IoOpc.READ, 11, 1, 100, 3), r), 0);
  assert.deepEqual(r.joined(), data);
  // Compare against the same bytes succeeds; one byte off fails with Compare Failure.
  assert.equal(m.execute(1, rw(IoOpc.COMPARE, 12, 1, 100, 3), new BufferPort(data.slice())), 0);
  const bad = data.slice();
  bad[700] ^= 1;
  assert.equal(m.execute(1, rw(IoOpc.COMPARE, 13, 1, 100, 3), new BufferPort(bad)), S.COMPARE_FAILURE | DNR);
  assert.equal(m.execute(1, rw(IoOpc.WRITE_ZEROES, 14, 1, 101, 1), new BufferPort()), 0);
  const r2 = new BufferPort(new Uint8Array(1536));
  assert.equal(m.execute(1, rw(IoOpc.READ, 15, 1, 100, 3), r2), 0);
  assert.deepEqual(r2.buf.subarray(0, 512), data.subarray(0, 512));
  assert.ok(r2.buf.subarray(512, 1024).every((b) => b === 0));
  // DSM deallocate of block 100: one 16-byte range.
  const range = new Uint8Array(16);
  new DataView(range.buffer).setUint32(4, 1, true);
  new DataView(range.buffer).setUint32(8, 100, true);
  const dsm = sqe(IoOpc.DATASET_MANAGEMENT, 16, 1, { 10: 0, 11: 1 << 2 });
  assert.equal(m.transferLength(1, dsm), 16);
  assert.equal(m.execute(1, dsm, new BufferPort(range)), 0);
  assert.equal(m.execute(1, rw(IoOpc.READ, 17, 1, 100, 1), r2), 0);
  assert.ok(r2.buf.subarray(0, 512).every((b) => b === 0));
  assert.equal(m.execute(1, sqe(IoOpc.FLUSH, 18, 1), new BufferPort()), 0);
  // Out of range and unknown namespace fail before any transfer.
  assert.equal(m.execute(1, rw(IoOpc.READ, 19, 1, 32767, 2), r2), S.LBA_OUT_OF_RANGE | DNR);
  assert.equal(m.transferLength(1, rw(IoOpc.READ, 20, 9, 0, 1)), 0);
  assert.equal(m.execute(1, rw(IoOpc.READ, 20, 9, 0, 1), r2), S.INVALID_NAMESPACE | DNR);
});

/** MemMedia whose operations complete when the test says so. */
class GatedMedia implements AsyncMedia {
  readonly async = true as const;
  readonly mem: MemMedia;
  readonly size: number;
  readonly gates: (() => void)[] = [];
  failNext = 0;
  constructor(size: number) {
    this.mem = new MemMedia(size);
    this.size = size;
  }
  #later(f: () => void, done: MediaDone): void {
    const fail = this.failNext;
    this.failNext = 0;
    this.gates.push(() => {
      if (!fail) f();
      done(fail);
    });
  }
  read(off: number, dst: Uint8Array, done: MediaDone): void {
    this.#later(() => this.mem.read(off, dst), done);
  }
  write(off: number, src: Uint8Array, done: MediaDone): void {
    this.#later(() => this.mem.write(off, src), done);
  }
  zero(off: number, len: number, done: MediaDone): void {
    this.#later(() => this.mem.zero(off, len), done);
  }
  flush(done: MediaDone): void {
    this.#later(() => {}, done);
  }
  close(): void {}
  open(): void {
    for (const g of this.gates.splice(0)) g();
  }
}

test("engine: async media complete through the front end, without a Promise; failures keep their status", () => {
  const fe = front();
  const media = new GatedMedia(1 << 20);
  const m = model({ namespaces: [{ media, blockSize: 512 }] }, fe);
  const data = bytes(4096, 3);
  const w = new SplitPort([1024, 3072]);
  w.parts[0].set(data.subarray(0, 1024));
  w.parts[1].set(data.subarray(1024));
  assert.equal(m.execute(1, rw(IoOpc.WRITE, 5, 1, 8, 8), w), PENDING);
  assert.equal(fe.done.length, 0, "nothing completes before the media does");
  media.open();
  assert.deepEqual(fe.done, [{ qid: 1, cid: 5, sf: 0, dw0: 0 }]);
  const r = new BufferPort(new Uint8Array(4096));
  assert.equal(m.execute(1, rw(IoOpc.READ, 6, 1, 8, 8), r), PENDING);
  media.open();
  assert.deepEqual(fe.done[1], { qid: 1, cid: 6, sf: 0, dw0: 0 });
  assert.deepEqual(r.buf, data);
  // Compare, flush and write zeroes go through the media too.
  assert.equal(m.execute(1, rw(IoOpc.COMPARE, 7, 1, 8, 8), new BufferPort(data.slice())), PENDING);
  assert.equal(m.execute(1, sqe(IoOpc.FLUSH, 8, 1), new BufferPort()), PENDING);
  media.open();
  assert.deepEqual(fe.done.slice(2).map((d) => [d.cid, d.sf]), [[7, 0], [8, 0]]);
  // The media's failure status comes back with DNR and lands in the error log.
  media.failNext = 0x281;
  assert.equal(m.execute(1, rw(IoOpc.READ, 9, 1, 0, 1), r), PENDING);
  media.open();
  assert.deepEqual(fe.done[4], { qid: 1, cid: 9, sf: 0x281 | DNR, dw0: 0 });
  media.failNext = S.WRITE_FAULT;
  assert.equal(m.execute(1, rw(IoOpc.WRITE, 10, 1, 0, 1), new BufferPort(new Uint8Array(512))), PENDING);
  media.open();
  assert.equal(fe.done[5].sf, S.WRITE_FAULT | DNR);
  const log = new BufferPort(new Uint8Array(128));
  assert.equal(m.execute(0, sqe(AdminOpc.GET_LOG_PAGE, 11, 0, { 10: LogId.ERROR | (31 << 16) }), log), 0);
  const dv = new DataView(log.buf.buffer);
  assert.deepEqual([dv.getUint16(10, true), dv.getUint16(64 + 10, true)], [10, 9], "newest first");
  // Sanitize refuses media that belong to another controller.
  assert.equal(m.execute(0, sqe(AdminOpc.SANITIZE, 12, 0, { 10: 2 }), new BufferPort()), S.INVALID_FIELD | DNR);
});

test("engine: an Asynchronous Event Request completes later, when the event happens; Abort finds it", () => {
  const fe = front();
  const m = model({}, fe);
  assert.equal(m.execute(0, sqe(AdminOpc.ASYNC_EVENT_REQUEST, 40), new BufferPort()), PENDING);
  assert.equal(m.execute(0, sqe(AdminOpc.ASYNC_EVENT_REQUEST, 41), new BufferPort()), PENDING);
  assert.equal(m.pendingAers, 2);
  assert.equal(fe.done.length, 0);
  m.setCriticalWarning(1 << 1); // temperature: SMART/health event, info 1
  assert.deepEqual(fe.done, [{ qid: 0, cid: 40, sf: 0, dw0: 1 | (1 << 8) | (LogId.SMART << 16) }]);
  // Abort of the other AER: the Abort succeeds (dw0 bit 0 clear) and the AER completes as aborted.
  assert.equal(m.execute(0, sqe(AdminOpc.ABORT, 42, 0, { 10: 0 | (41 << 16) }), new BufferPort()), 0);
  assert.equal(m.dw0 & 1, 0);
  assert.deepEqual(fe.done[1], { qid: 0, cid: 41, sf: S.ABORT_REQUESTED, dw0: 0 });
  assert.equal(m.pendingAers, 0);
  // Abort of something the model does not hold asks the front end; not found: dw0 bit 0 set.
  const asked: [number, number][] = [];
  const fe2 = front({ abort: (sqid, cid) => (asked.push([sqid, cid]), cid === 5) });
  const m2 = model({}, fe2);
  assert.equal(m2.execute(0, sqe(AdminOpc.ABORT, 1, 0, { 10: 1 | (5 << 16) }), new BufferPort()), 0);
  assert.equal(m2.dw0 & 1, 0);
  assert.equal(m2.execute(0, sqe(AdminOpc.ABORT, 2, 0, { 10: 1 | (6 << 16) }), new BufferPort()), 0);
  assert.equal(m2.dw0 & 1, 1);
  assert.deepEqual(asked, [[1, 5], [1, 6]]);
});

test("engine: CC/CSTS state machine: enable, shutdown, reset, unsafe shutdowns, refused enable is fatal", () => {
  const fe = front();
  const m = new ControllerModel({ serial: "ENGINE2" }, fe);
  assert.equal(m.ready, false);
  m.setCc(CC_ON);
  assert.equal(m.csts & CSTS.RDY, CSTS.RDY);
  assert.equal(fe.cstsSeen.at(-1), m.csts, "the front end hears every CSTS change");
  m.setCc(CC_ON | CC.SHN_NORMAL);
  assert.equal(m.csts & CSTS.SHST_MASK, CSTS.SHST_COMPLETE);
  m.setCc(0);
  assert.equal(fe.resets, 1);
  assert.equal(m.ready, false);
  assert.equal(m.csts & CSTS.SHST_MASK, CSTS.SHST_COMPLETE, "SHST stays until the next enable");
  m.setCc(CC_ON);
  assert.equal(m.csts, CSTS.RDY, "enable clears SHST");
  m.setCc(0); // no shutdown: unsafe
  m.setCc(CC_ON);
  const smart = new BufferPort(new Uint8Array(512));
  assert.equal(m.execute(0, sqe(AdminOpc.GET_LOG_PAGE, 1, 0xffffffff, { 10: LogId.SMART | (127 << 16) }), smart), 0);
  const dv = new DataView(smart.buf.buffer);
  assert.equal(dv.getUint32(112, true), 3, "three power cycles");
  assert.equal(dv.getUint32(144, true), 1, "one unsafe shutdown");
  // A front end that refuses the configuration makes the controller fatal; clearing EN recovers.
  const m2 = new ControllerModel({ serial: "ENGINE3" }, front({ enable: () => false }));
  m2.setCc(CC_ON);
  assert.equal(m2.failed, true);
  assert.equal(m2.csts & (CSTS.CFS | CSTS.RDY), CSTS.CFS);
  m2.setCc(0);
  assert.equal(m2.failed, false);
  // A ready delay: RDY follows EN only once tick passes it.
  const m3 = new ControllerModel({ serial: "ENGINE4", readyDelayMs: 50 }, front());
  m3.setCc(CC_ON, 1000);
  assert.equal(m3.ready, false);
  m3.tick(1049);
  assert.equal(m3.ready, false);
  assert.equal(m3.tick(1050), true);
  assert.equal(m3.ready, true);
});

test("engine: transfer lengths known before data moves (TCP R2T/C2HData sizing)", () => {
  const m = model();
  assert.equal(m.transferLength(1, rw(IoOpc.READ, 1, 2, 0, 2)), 8192);
  assert.equal(m.transferLength(1, rw(IoOpc.WRITE_ZEROES, 1, 1, 0, 8)), 0);
  assert.equal(m.transferLength(0, sqe(AdminOpc.GET_LOG_PAGE, 1, 0, { 10: LogId.SMART | (127 << 16) })), 512);
  assert.equal(m.transferLength(0, sqe(AdminOpc.KEEP_ALIVE, 1)), 0);
  assert.equal(transferDirection(AdminOpc.KEEP_ALIVE), DataDir.NONE);
  assert.equal(transferDirection(IoOpc.READ), DataDir.TO_HOST);
  assert.equal(transferDirection(AdminOpc.SET_FEATURES), DataDir.TO_CONTROLLER);
});

test("engine: a fabrics model reports the fabrics Identify fields, serves the fabrics admin set and keeps KATO", () => {
  const m = model({ cntlid: 2, fabrics: { inCapsule: 8192, maxcmd: 128, sgls: 0x100005 }, identity: { subnqn: "nqn.2024-01.io.example:disk1" } });
  const p = new BufferPort(new Uint8Array(4096));
  assert.equal(m.execute(0, sqe(AdminOpc.IDENTIFY, 1, 0, { 10: Cns.CONTROLLER }), p), 0);
  const dv = new DataView(p.buf.buffer);
  assert.equal(dv.getUint32(1792, true), (64 + 8192) / 16, "IOCCSZ");
  assert.equal(dv.getUint32(1796, true), 1, "IORCSZ");
  assert.equal(dv.getUint32(536, true), 0x100005, "SGLS");
  assert.equal(dv.getUint16(514, true), 128, "MAXCMD");
  assert.equal(dv.getUint16(256, true), 0, "OACS: no format, firmware, namespace management");
  assert.equal(p.buf[111], 1, "an I/O controller");
  assert.equal(new TextDecoder().decode(p.buf.subarray(768, 768 + 28)), "nqn.2024-01.io.example:disk1");
  assert.equal(p.buf[768 + 28], 0);
  assert.equal(m.execute(0, sqe(AdminOpc.FORMAT_NVM, 2, 1), new BufferPort()), S.INVALID_OPCODE | DNR);
  assert.equal(m.execute(0, sqe(AdminOpc.NS_MANAGEMENT, 3, 0), new BufferPort()), S.INVALID_OPCODE | DNR);
  // Keep Alive Timer: Connect sets it, Set/Get Features reach it.
  m.setKeepAlive(5000);
  assert.equal(m.execute(0, sqe(AdminOpc.GET_FEATURES, 4, 0, { 10: 0x0f }), new BufferPort()), 0);
  assert.equal(m.dw0, 5000);
  assert.equal(m.execute(0, sqe(AdminOpc.SET_FEATURES, 5, 0, { 10: 0x0f, 11: 15000 }), new BufferPort()), 0);
  assert.equal(m.keepAliveMs, 15000);
  // The front end allocates data buffers from the namespace's media where it has DMA memory.
  assert.ok(m.mediaOf(1));
  assert.equal(m.mediaOf(9), undefined);
  // A PCIe-profile model keeps the full admin set.
  const full = model();
  assert.equal(full.execute(0, sqe(AdminOpc.IDENTIFY, 1, 0, { 10: Cns.CONTROLLER }), p), 0);
  assert.equal(new DataView(p.buf.buffer).getUint16(256, true) & 0x1e, 0x1e);
});

test("engine: a namespace change reaches an outstanding AER and the Changed Namespace List", () => {
  const fe = front();
  const m = model({}, fe);
  assert.equal(m.execute(0, sqe(AdminOpc.ASYNC_EVENT_REQUEST, 9), new BufferPort()), PENDING);
  m.notifyNamespaceChanged(2);
  assert.deepEqual(fe.done, [{ qid: 0, cid: 9, sf: 0, dw0: 2 | (LogId.CHANGED_NS << 16) }]);
  const log = new BufferPort(new Uint8Array(4096));
  assert.equal(m.execute(0, sqe(AdminOpc.GET_LOG_PAGE, 10, 0, { 10: LogId.CHANGED_NS | (1023 << 16) }), log), 0);
  assert.deepEqual([...new Uint32Array(log.buf.buffer, 0, 2)], [2, 0]);
});

test("engine: a fabrics model through Linux 6.1's bring-up order (shared/notes/nvme-tcp.md section 5) passes the initiator's checks", () => {
  const fe = front();
  const m = new ControllerModel({
    serial: "FAB1",
    cntlid: 2,
    fabrics: { inCapsule: 8192, maxcmd: 128, sgls: 0x100005 },
    identity: { subnqn: "nqn.2024-01.io.example:disk1" },
    namespaces: [{ size: 8 << 20, blockSize: 512 }],
  }, fe);
  // Connect carried KATO 5000; CC without EN, then with EN; CSTS.RDY follows.
  m.setKeepAlive(5000);
  m.setCc(0x460000);
  assert.equal(m.ready, false);
  m.setCc(0x460001);
  assert.equal(m.csts & CSTS.RDY, CSTS.RDY);
  // Identify CNS 1: cntlid as Connect returned, KAS != 0, SGLS bit 0, ICDOFF 0, IOCCSZ, MAXCMD, VER >= 1.3, LPA bit 1.
  const id = new BufferPort(new Uint8Array(4096));
  const run = (cmd: Uint32Array, port: BufferPort = new BufferPort()) => {
    const len = m.transferLength(0, cmd);
    if (transferDirection(cmd[0] & 0xff) === DataDir.TO_HOST) port.buf = new Uint8Array(len); // C2HData of that size
    return m.execute(0, cmd, port);
  };
  assert.equal(run(sqe(AdminOpc.IDENTIFY, 0x1000, 0, { 10: Cns.CONTROLLER }), id), 0);
  const dv = new DataView(id.buf.buffer);
  assert.equal(dv.getUint16(78, true), 2);
  assert.notEqual(dv.getUint16(320, true), 0);
  assert.equal(dv.getUint32(536, true) & 3, 1);
  assert.equal(dv.getUint16(1800, true), 0);
  assert.equal(dv.getUint32(1792, true) * 16, 64 + 8192);
  assert.equal(dv.getUint16(514, true), 128);
  assert.ok(dv.getUint32(80, true) >= 0x10300);
  assert.equal(id.buf[261] & 2, 2, "LPA: commands supported and effects log");
  assert.equal(run(sqe(AdminOpc.GET_LOG_PAGE, 0x1001, 0, { 10: LogId.CMD_EFFECTS | (1023 << 16) })), 0);
  // ONCS advertises Timestamp: Linux sets it, 8 bytes in-capsule.
  const ts = new Uint8Array(8);
  new DataView(ts.buffer).setUint32(0, 123456, true);
  assert.equal(run(sqe(AdminOpc.SET_FEATURES, 0x1002, 0, { 10: 0x0e }), new BufferPort(ts)), 0);
  assert.equal(run(sqe(AdminOpc.GET_LOG_PAGE, 0x1003, 0xffffffff, { 10: LogId.SMART | (127 << 16) })), 0);
  // Set Features Number of Queues: granted counts in dw0; IO Connects follow.
  assert.equal(run(sqe(AdminOpc.SET_FEATURES, 0x1004, 0, { 10: 0x07, 11: 0x10001 })), 0);
  assert.equal(m.dw0, 0x10001);
  m.noteIoQueueCreated();
  assert.equal(run(sqe(AdminOpc.SET_FEATURES, 0x1005, 0, { 10: 0x07, 11: 0x30003 })), S.COMMAND_SEQUENCE_ERROR | DNR);
  // AEN: Set Features 0x0B, then an AER that stays held.
  assert.equal(run(sqe(AdminOpc.SET_FEATURES, 0x1006, 0, { 10: 0x0b, 11: 0x300 })), 0);
  assert.equal(run(sqe(AdminOpc.ASYNC_EVENT_REQUEST, 0x1007)), PENDING);
  // Namespace scan: CNS 6, 2, 3, 0.
  const p = new BufferPort();
  assert.equal(run(sqe(AdminOpc.IDENTIFY, 0x1008, 0, { 10: 0x06 }), p), 0);
  assert.equal(run(sqe(AdminOpc.IDENTIFY, 0x1009, 0, { 10: Cns.ACTIVE_NS_LIST }), p), 0);
  assert.deepEqual([...new Uint32Array(p.buf.buffer, 0, 2)], [1, 0]);
  assert.equal(run(sqe(AdminOpc.IDENTIFY, 0x100a, 1, { 10: Cns.NS_DESCRIPTORS }), p), 0);
  assert.equal(p.buf[0], 1, "a namespace identifier descriptor (EUI-64)");
  assert.equal(run(sqe(AdminOpc.IDENTIFY, 0x100b, 1, { 10: Cns.NAMESPACE }), p), 0);
  assert.equal(decodeIdentifyNamespace(p.buf).blockSize, 512);
  assert.equal(run(sqe(AdminOpc.KEEP_ALIVE, 0x100c)), 0);
  assert.equal(run(sqe(AdminOpc.GET_FEATURES, 0x100d, 0, { 10: 0x0f })), 0);
  assert.equal(m.dw0, 5000);
  // Teardown: CC with SHN = 01b, CSTS.SHST complete.
  m.setCc(0x464001);
  assert.equal(m.csts & CSTS.SHST_MASK, CSTS.SHST_COMPLETE);
  assert.equal(fe.done.length, 0, "the AER is still held");
});

test("engine: async media may complete by Promise instead of the callback; a rejection keeps its NVMe status", async () => {
  let wake: (() => void) | null = null;
  const fe = front();
  const record = fe.complete;
  fe.complete = (qid, cid, sf, dw0) => {
    record(qid, cid, sf, dw0);
    wake?.();
  };
  const mem = new MemMedia(1 << 20);
  let fail: unknown = null;
  const later = (f: () => void) =>
    new Promise<void>((res, rej) =>
      setTimeout(() => {
        const e = fail;
        fail = null;
        if (e) rej(e);
        else {
          f();
          res();
        }
      }, 0)
    );
  const media: AsyncMedia = {
    async: true,
    size: mem.size,
    read: (off, dst) => later(() => mem.read(off, dst)),
    write: (off, src) => later(() => mem.write(off, src)),
    zero: (off, len) => later(() => mem.zero(off, len)),
    flush: () => later(() => {}),
    close: () => {},
  };
  const m = model({ namespaces: [{ media, blockSize: 512 }] }, fe);
  const wait = async (n: number) => {
    while (fe.done.length < n) await new Promise<void>((r) => (wake = r));
  };
  const data = bytes(1024, 9);
  assert.equal(m.execute(1, rw(IoOpc.WRITE, 1, 1, 4, 2), new SplitPort([512, 512]).fill(data)), PENDING);
  await wait(1);
  const r = new BufferPort(new Uint8Array(1024));
  assert.equal(m.execute(1, rw(IoOpc.READ, 2, 1, 4, 2), r), PENDING);
  await wait(2);
  assert.deepEqual(fe.done.map((d) => [d.cid, d.sf]), [[1, 0], [2, 0]]);
  assert.deepEqual(r.buf, data);
  fail = Object.assign(new Error("backing media error"), { status: { sct: 2, sc: 0x81 } });
  assert.equal(m.execute(1, rw(IoOpc.READ, 3, 1, 0, 1), r), PENDING);
  await wait(3);
  fail = new Error("no status");
  assert.equal(m.execute(1, sqe(IoOpc.FLUSH, 4, 1), new BufferPort()), PENDING);
  await wait(4);
  assert.deepEqual(fe.done.slice(2).map((d) => [d.cid, d.sf]), [[3, 0x281 | DNR], [4, S.WRITE_FAULT | DNR]]);
});
