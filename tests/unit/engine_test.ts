// The controller model (lib/sim/engine.ts) driven directly, without the PCIe front end: what an
// NVMe/TCP target relies on.
import assert from "node:assert/strict";
import { test } from "../harness.ts";
import {
  BufferPort,
  ControllerModel,
  type DataPort,
  DataDir,
  type FrontEnd,
  type ModelOptions,
  PENDING,
  transferDirection,
} from "../../lib/sim/engine.ts";
import { type AsyncMedia, MemMedia } from "../../lib/sim/media.ts";
import { AdminOpc, CC, Cns, CSTS, IoOpc, LogId } from "../../lib/nvme/spec.ts";
import { decodeIdentifyController, decodeIdentifyNamespace } from "../../lib/nvme/identify.ts";
import { SimStatus as S } from "../../lib/sim/options.ts";

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

/** MemMedia behind a Promise that resolves when the test says so. */
class GatedMedia implements AsyncMedia {
  readonly async = true as const;
  readonly mem: MemMedia;
  readonly size: number;
  readonly gates: (() => void)[] = [];
  failNext: unknown = null;
  constructor(size: number) {
    this.mem = new MemMedia(size);
    this.size = size;
  }
  #later(f: () => void): Promise<void> {
    const fail = this.failNext;
    this.failNext = null;
    return new Promise<void>((res, rej) => {
      this.gates.push(() => {
        if (fail) rej(fail);
        else {
          f();
          res();
        }
      });
    });
  }
  read(off: number, dst: Uint8Array): Promise<void> {
    return this.#later(() => this.mem.read(off, dst));
  }
  write(off: number, src: Uint8Array): Promise<void> {
    return this.#later(() => this.mem.write(off, src));
  }
  zero(off: number, len: number): Promise<void> {
    return this.#later(() => this.mem.zero(off, len));
  }
  flush(): Promise<void> {
    return this.#later(() => {});
  }
  close(): void {}
  open(): void {
    for (const g of this.gates.splice(0)) g();
  }
}

const settle = () => new Promise<void>((r) => setTimeout(r, 0));

test("engine: async media completes through the front end; failures map to the backing status", async () => {
  const fe = front();
  const media = new GatedMedia(1 << 20);
  const m = model({ namespaces: [{ media, blockSize: 512 }] }, fe);
  const data = bytes(4096, 3);
  const w = new SplitPort([1024, 3072]);
  w.parts[0].set(data.subarray(0, 1024));
  w.parts[1].set(data.subarray(1024));
  assert.equal(m.execute(1, rw(IoOpc.WRITE, 5, 1, 8, 8), w), PENDING);
  await settle();
  assert.equal(fe.done.length, 0, "nothing completes before the media does");
  media.open();
  await settle();
  assert.deepEqual(fe.done, [{ qid: 1, cid: 5, sf: 0, dw0: 0 }]);
  const r = new BufferPort(new Uint8Array(4096));
  assert.equal(m.execute(1, rw(IoOpc.READ, 6, 1, 8, 8), r), PENDING);
  media.open();
  await settle();
  assert.deepEqual(fe.done[1], { qid: 1, cid: 6, sf: 0, dw0: 0 });
  assert.deepEqual(r.buf, data);
  // Compare, flush and write zeroes go through the media too.
  assert.equal(m.execute(1, rw(IoOpc.COMPARE, 7, 1, 8, 8), new BufferPort(data.slice())), PENDING);
  assert.equal(m.execute(1, sqe(IoOpc.FLUSH, 8, 1), new BufferPort()), PENDING);
  media.open();
  await settle();
  assert.deepEqual(fe.done.slice(2).map((d) => [d.cid, d.sf]), [[7, 0], [8, 0]]);
  // The backing controller's media error comes back as that status, with DNR, and lands in the error log.
  media.failNext = Object.assign(new Error("unrecovered"), { status: { sct: 2, sc: 0x81 } });
  assert.equal(m.execute(1, rw(IoOpc.READ, 9, 1, 0, 1), r), PENDING);
  media.open();
  await settle();
  assert.deepEqual(fe.done[4], { qid: 1, cid: 9, sf: 0x281 | DNR, dw0: 0 });
  media.failNext = new Error("no status");
  assert.equal(m.execute(1, rw(IoOpc.WRITE, 10, 1, 0, 1), new BufferPort(new Uint8Array(512))), PENDING);
  media.open();
  await settle();
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
