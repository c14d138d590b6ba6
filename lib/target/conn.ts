/**
 * One NVMe/TCP connection of the target (one queue): ICReq/ICResp, Fabrics
 * Connect and Property Get/Set, admin commands through the controller model,
 * and IO onto the namespace backends: reads into a backend buffer then out
 * as C2HData (SUCCESS when the host disabled SQ flow control), writes and
 * DSM from in-capsule data or R2T/H2CData into a backend buffer. Every
 * connection is served in the thread that accepted it, straight from the
 * socket's data events and the backend's completions; there is no manager
 * loop. PDUs produced in one turn are written to the socket together.
 * @module
 */
import { ProtocolError } from "../nvme/errors.ts";
import { IoOpc, Status, STATUS_DNR } from "../nvme/spec.ts";
import { CATTR_DISABLE_SQFLOW, ConnectData, decodeConnectData, FABRICS_OPCODE, FabricsSqe, FcType } from "../tcp/fabrics.ts";
import { PduParser } from "../tcp/parser.ts";
import {
  Capsule,
  Ch,
  DataOff,
  decodeIcReq,
  DIGEST_SIZE,
  type Digests,
  encodeIcResp,
  encodeTermReq,
  Fes,
  get16,
  get32,
  Hlen,
  PduFlag,
  PduType,
  PFV_1_0,
  put16,
  put32,
  R2tOff,
  RespOff,
  Sgl,
  writeCh,
} from "../tcp/pdu.ts";
import { crc32c } from "../tcp/crc32c.ts";
import type { BlockBackend, IoDone } from "./backend.ts";
import { DataDir, transferDirection } from "../sim/engine.ts";
import type { AdminReply, FabricsController } from "./controller.ts";
import { RwFlags } from "./spec.ts";
import { ConnectStatus } from "../nvme/fabrics.ts";
import type { ConnHost } from "./server.ts";
import type { TargetTrace } from "./trace.ts";

/**
 * What a test hook ({@link CommandHook}) makes the target do to a command, as
 * a broken network or target would: `drop` the connection before answering
 * (the host sees it lost), `term`inate it with a C2HTermReq, `ignore` the
 * command (never answered: a lost response, a lapsed keep-alive), flip a byte
 * of its read data's digest (`corrupt-ddgst`), or send its read data under
 * another command id (`wrong-cid`). `undefined`: serve it as usual.
 */
export type TargetFault = "drop" | "term" | "corrupt-ddgst" | "ignore" | "wrong-cid" | undefined;

/**
 * Called for every command capsule before the target handles it (its SQE is
 * valid only during the call): `qid` is -1 before Connect, and `conn.ctrl`
 * the controller once connected (tests see every controller and the wire
 * order of commands through it). The fault it returns is applied.
 */
export type CommandHook = (qid: number, sqe: Uint32Array, conn: TargetConn) => TargetFault;

/**
 * A command's context, one per command in flight, made once and reused
 * (with its completion callbacks, bound once) so Read and Write allocate
 * nothing per IO. Its index is the TTAG of its R2T.
 */
class Cmd {
  /** Index in the connection's table (the TTAG of its R2T). */
  readonly idx: number;
  /** Command id. */
  cid = 0;
  /** Read/Write: the namespace and where. */
  ns: BlockBackend | null = null;
  slba = 0;
  len = 0;
  fua = false;
  /** Host data received so far (R2T/H2CData). */
  got = 0;
  /** Waiting for H2CData. */
  h2c = false;
  /** The backend owns `buf` (an IO runs on it). */
  busy = false;
  /** A buffer of `bufNs`, kept across commands: the next command of that namespace and size uses it again. */
  buf: Uint8Array | null = null;
  bufNs: BlockBackend | null = null;
  /** The first `len` bytes of `buf` (cached while the length repeats). */
  view: Uint8Array | null = null;
  /** Not Read/Write: run the command on the gathered bytes, or give the buffer back. */
  run: ((data: Uint8Array) => void) | null = null;
  release: (() => void) | null = null;
  readonly readDone: IoDone;
  readonly writeDone: IoDone;

  constructor(idx: number, conn: { readDone(c: Cmd, sf: number): void; writeDone(c: Cmd, sf: number): void }) {
    this.idx = idx;
    this.readDone = (sf) => conn.readDone(this, sf);
    this.writeDone = (sf) => conn.writeDone(this, sf);
  }

  /** A buffer of `len` bytes of `ns` (the kept one when it fits). */
  bind(ns: BlockBackend, len: number): Uint8Array {
    let b = this.buf;
    if (b === null || this.bufNs !== ns || b.length < len) {
      if (b !== null) this.bufNs!.free(b);
      b = this.buf = ns.alloc(len);
      this.bufNs = ns;
      this.view = null;
    }
    let v = this.view;
    if (v === null || v.length !== len) v = this.view = b.length === len ? b : b.subarray(0, len);
    return v;
  }

  /** Give the kept buffer back (the connection is gone and no IO runs on it). */
  drop(): void {
    if (this.buf !== null) this.bufNs!.free(this.buf);
    this.buf = this.view = null;
    this.bufNs = null;
  }
}

/**
 * The byte path of one connection, under the NVMe/TCP framing: node:net or
 * a socket the driver owns (and later TLS). TargetConn hands it whole PDUs
 * and is fed received bytes through {@link TargetConn.feed}.
 */
export interface ConnWire {
  /**
   * Send `b[0..n)`. Return true if the wire kept `b` (the connection then
   * writes into a new buffer), false if it is done with it when this returns.
   */
  send(b: Uint8Array, n: number): boolean;
  /** Send `last` (a TermReq) if given, then close. */
  end(last: Uint8Array | null): void;
  /** Close now. */
  destroy(): void;
}

/** A 1-, 2- or 4-byte little-endian field at byte `off` of an SQE held as dwords. */
function sqeField(sqe: Uint32Array, off: number, bytes: 1 | 2 | 4): number {
  const v = sqe[off >>> 2] >>> ((off & 3) * 8);
  return bytes === 4 ? v >>> 0 : v & (bytes === 2 ? 0xffff : 0xff);
}

const SGL_TRANSPORT = Sgl.TRANSPORT_DATA_BLOCK;
const SGL_INCAPSULE = Sgl.DATA_BLOCK_OFFSET;

/** A queue connected in another thread and handed over (see {@link TargetConn}'s constructor). */
export interface ResumedQueue {
  /** Queue id. */
  qid: number;
  /** Its controller (as this thread knows it). */
  ctrl: FabricsController;
  /** SQ size, 0's based. */
  sqsize: number;
  /** The host disabled SQ flow control. */
  sqflowOff: boolean;
  /** Command id of the Connect to answer. */
  cid: number;
  /** Digests negotiated in the IC exchange. */
  digests: Digests;
}

/** Initial size of a connection's output buffer (it grows to the largest batch). */
const STAGE_BYTES = 64 * 1024;
/** A batch this large is sent at once rather than at the end of the turn. */
const STAGE_FLUSH = 256 * 1024;

/** One queue's connection. */
export class TargetConn {
  /** Queue id after Connect (-1 before). */
  qid: number = -1;
  /** The controller this queue belongs to (after Connect). */
  ctrl: FabricsController | null = null;
  readonly #h: ConnHost;
  readonly #wire: ConnWire;
  readonly #parser: PduParser;
  #dg: Digests = { hdgst: false, ddgst: false };
  #hd = 0; // header digest bytes (0 or 4)
  #dd = 0; // data digest bytes (0 or 4)
  #sqflowOff = false;
  #sqsize = 128;
  #sqhd = 0;
  #closed = false;
  /** Command contexts by index (= R2T TTAG); `#free` holds the idle ones. */
  readonly #cmds: Cmd[] = [];
  readonly #free: Cmd[] = [];
  readonly #sqe = new Uint32Array(16);
  /** PDUs of this turn, sent together: one buffer, reused once the wire is done with it. */
  #stage = new Uint8Array(STAGE_BYTES);
  #len = 0;
  #flushQueued = false;
  #corruptNext = false;
  #wrongCidNext = false;
  #inflight = 0;
  /** The host's timing trace (TSNVME_TARGET_TRACE), or null: one check per IO stage when off. */
  readonly #tr: TargetTrace | null;
  readonly #ops = { readDone: (c: Cmd, sf: number) => this.#readDone(c, sf), writeDone: (c: Cmd, sf: number) => this.#writeDone(c, sf) };

  /**
   * Serve a connection for the target behind `host` over `wire` (whose owner
   * calls {@link feed} with received bytes and {@link wireClosed} when it
   * ends). `resumed`: the connection was handed over from another thread
   * after its IC exchange and Connect; it answers that Connect now.
   */
  constructor(host: ConnHost, wire: ConnWire, resumed?: ResumedQueue) {
    this.#h = host;
    this.#wire = wire;
    this.#tr = host.trace ?? null;
    const l = host.limits;
    const maxData = Math.max(l.maxTransfer, host.maxH2cData, l.inCapsule, 8192);
    this.#parser = new PduParser({ role: "target", maxData, afterIc: resumed !== undefined }, (hdr, data) => this.#onPdu(hdr, data));
    // H2CData lands straight in the command's DMA buffer: one copy, socket to DMA memory.
    this.#parser.placeData = (hdr, n) => this.#sink(hdr, n);
    if (resumed !== undefined) {
      this.#setDigests(resumed.digests);
      this.#inflight++;
      this.#bind(resumed.ctrl, resumed.qid, resumed.sqsize, resumed.sqflowOff, resumed.cid);
    }
  }

  /** Digests in force. */
  get digests(): Digests {
    return this.#dg;
  }

  /**
   * Stop serving without a word to the host or the target: the socket now
   * belongs to another thread (handed over after Connect). Buffers go back.
   */
  detach(): void {
    this.#closed = true;
    for (const c of this.#cmds) if (!c.busy) c.drop();
  }

  /** Bytes received from the wire (any split): the first `length` of `chunk` (default all). */
  feed(chunk: Uint8Array, length: number = chunk.length): void {
    if (this.#closed) return;
    try {
      this.#parser.feed(chunk, length);
    } catch (e) {
      if (e instanceof ProtocolError) this.#fatal(e.fes || Fes.INVALID_HEADER_FIELD, e.fei, this.#parser.header);
      else {
        this.#h.log?.(`connection error: ${(e as Error).stack ?? e}`);
        this.destroy();
      }
    }
  }

  /** The wire closed (the peer went, or {@link destroy}). */
  wireClosed(): void {
    this.#onClose();
  }

  /** Drop the connection now. */
  destroy(): void {
    this.#wire.destroy();
    this.#onClose();
  }

  /** Commands received but not yet completed. */
  get inflight(): number {
    return this.#inflight;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const c of this.#cmds) {
      if (c.h2c) {
        c.h2c = false;
        c.release?.();
        c.run = c.release = null;
      }
      if (!c.busy) c.drop(); // a buffer the backend still fills goes back when its IO ends
    }
    this.#h.connClosed(this);
  }

  // ---- command contexts ---------------------------------------------------------------------

  #take(cid: number): Cmd {
    let c = this.#free.pop();
    if (c === undefined) {
      c = new Cmd(this.#cmds.length, this.#ops);
      this.#cmds.push(c);
    }
    c.cid = cid;
    return c;
  }

  #put(c: Cmd): void {
    c.busy = false;
    if (c.run !== null) c.view = null; // a controller command's own buffer, not a view of `buf`
    c.run = c.release = null;
    if (this.#closed) c.drop();
    else this.#free.push(c);
  }

  // ---- output -------------------------------------------------------------------------------

  /** Room for `n` more bytes at the end of the batch; returns where they go. */
  #reserve(n: number): number {
    if (this.#len + n > this.#stage.length) {
      const b = new Uint8Array(Math.max(this.#stage.length * 2, this.#len + n));
      b.set(this.#stage.subarray(0, this.#len));
      this.#stage = b;
    }
    const at = this.#len;
    this.#len += n;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
    return at;
  }

  /** Send what this turn produced (also called when a batch grows large). */
  flush(): void {
    const n = this.#len;
    if (n === 0 || this.#closed) return;
    this.#len = 0;
    if (this.#wire.send(this.#stage, n)) this.#stage = new Uint8Array(Math.max(STAGE_BYTES, this.#stage.length));
    if (this.#tr !== null) this.#tr.sent();
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    this.flush();
  };

  #fatal(fes: number, fei: number, header: Uint8Array): void {
    this.#h.stats.termReqs++;
    this.flush();
    this.#wire.end(this.#closed ? null : encodeTermReq(PduType.C2H_TERM_REQ, { fes, fei, header }));
    this.#closed || this.#onClose();
  }

  /** Header digest over `b[at..at+hlen)` when negotiated; returns the header's end. */
  #seal(b: Uint8Array, at: number, hlen: number): number {
    if (this.#hd === 0) return at + hlen;
    put32(b, at + hlen, crc32c(b, at, at + hlen));
    return at + hlen + DIGEST_SIZE;
  }

  /** A CapsuleResp into the batch. */
  #emitResp(cid: number, sf: number, dw0: number, dw1: number): void {
    const plen = Hlen.SHORT + this.#hd;
    const at = this.#reserve(plen), b = this.#stage;
    writeCh(b, PduType.CAPSULE_RESP, this.#hd ? PduFlag.HDGST : 0, Hlen.SHORT, 0, plen, at);
    put32(b, at + RespOff.DW0, dw0);
    put32(b, at + RespOff.DW1, dw1);
    put16(b, at + RespOff.SQHD, this.#sqflowOff ? 0xffff : this.#sqhd);
    put16(b, at + RespOff.SQID, this.qid > 0 ? this.qid : 0);
    put16(b, at + RespOff.CID, cid);
    put16(b, at + RespOff.STATUS, (sf & 0x7fff) << 1);
    this.#seal(b, at, Hlen.SHORT);
  }

  /** A C2HData PDU of `src[o..o+n)` into the batch (the one copy of read data). */
  #emitData(cccid: number, src: Uint8Array, o: number, n: number, last: boolean, success: boolean): void {
    const pdo = Hlen.SHORT + this.#hd, plen = pdo + n + this.#dd;
    const at = this.#reserve(plen), b = this.#stage;
    const flags = (this.#hd ? PduFlag.HDGST : 0) | (this.#dd ? PduFlag.DDGST : 0) | (last ? PduFlag.LAST_PDU : 0) | (success ? PduFlag.SUCCESS : 0);
    writeCh(b, PduType.C2H_DATA, flags, Hlen.SHORT, pdo, plen, at);
    put16(b, at + DataOff.CCCID, cccid);
    put16(b, at + DataOff.TTAG, 0);
    put32(b, at + DataOff.DATAO, o);
    put32(b, at + DataOff.DATAL, n);
    put32(b, at + DataOff.DATAL + 4, 0);
    this.#seal(b, at, Hlen.SHORT);
    b.set(n === src.length ? src : src.subarray(o, o + n), at + pdo);
    if (this.#dd) put32(b, at + pdo + n, crc32c(b, at + pdo, at + pdo + n));
    if (this.#corruptNext) {
      this.#corruptNext = false;
      b[at + plen - 1] ^= 0xff;
    }
  }

  /** An R2T for all of a command's data. */
  #emitR2t(cccid: number, ttag: number, len: number): void {
    const plen = Hlen.SHORT + this.#hd;
    const at = this.#reserve(plen), b = this.#stage;
    writeCh(b, PduType.R2T, this.#hd ? PduFlag.HDGST : 0, Hlen.SHORT, 0, plen, at);
    put16(b, at + R2tOff.CCCID, cccid);
    put16(b, at + R2tOff.TTAG, ttag);
    put32(b, at + R2tOff.R2TO, 0);
    put32(b, at + R2tOff.R2TL, len);
    put32(b, at + R2tOff.R2TL + 4, 0);
    this.#seal(b, at, Hlen.SHORT);
  }

  #resp(cid: number, sf: number, dw0 = 0, dw1 = 0): void {
    if (this.#closed) return;
    this.#inflight--;
    if (++this.#sqhd >= this.#sqsize) this.#sqhd = 0;
    this.#emitResp(cid, sf, dw0, dw1);
    if (this.#len >= STAGE_FLUSH) this.flush();
  }

  /**
   * C2HData of `data` for command `cid`, then the completion (DW0/DW1)
   * unless SUCCESS says it all, both in this turn's batch: one copy of the
   * data. The data goes in one PDU unless the target splits it (c2hChunk).
   */
  #sendData(cid: number, data: Uint8Array, dw0 = 0, dw1 = 0): void {
    if (this.#closed) return;
    const h = this.#h;
    const success = this.#sqflowOff && h.c2hSuccess && dw0 === 0 && dw1 === 0;
    const chunk = h.c2hChunk > 0 ? h.c2hChunk : data.length;
    let cccid = cid;
    if (this.#wrongCidNext) {
      this.#wrongCidNext = false;
      cccid ^= 0x8000;
    }
    for (let o = 0;; o += chunk, cccid = cid) {
      const n = Math.min(chunk, data.length - o), last = o + n === data.length;
      this.#emitData(cccid, data, o, n, last, last && success);
      h.stats.c2hData++;
      if (last) break;
    }
    this.#inflight--;
    if (++this.#sqhd >= this.#sqsize) this.#sqhd = 0;
    if (!success) this.#emitResp(cid, 0, dw0, dw1);
    if (this.#len >= STAGE_FLUSH) this.flush();
  }

  #reply(cid: number, r: AdminReply): void {
    if (r.sf === 0 && r.data) this.#sendData(cid, r.data, r.dw0 ?? 0, r.dw1 ?? 0);
    else this.#resp(cid, r.sf, r.dw0 ?? 0, r.dw1 ?? 0);
  }

  // ---- input --------------------------------------------------------------------------------

  #onPdu(hdr: Uint8Array, data: Uint8Array | null): void {
    switch (hdr[Ch.TYPE]) {
      case PduType.IC_REQ:
        return this.#icReq(hdr);
      case PduType.CAPSULE_CMD: {
        const s = this.#sqe;
        for (let i = 0; i < 16; i++) s[i] = get32(hdr, Capsule.SQE + i * 4);
        return this.#command(s, data);
      }
      case PduType.H2C_DATA:
        return this.#h2cData(hdr, data!);
      case PduType.H2C_TERM_REQ:
        this.#h.stats.hostTermReqs++;
        this.destroy();
        return;
    }
  }

  #icReq(hdr: Uint8Array): void {
    const r = decodeIcReq(hdr);
    if (r.pfv !== PFV_1_0) throw new ProtocolError("pfv", "unsupported PFV", Fes.UNSUPPORTED_PARAMETER, 8);
    if (r.hpda !== 0) throw new ProtocolError("param", "unsupported HPDA", Fes.UNSUPPORTED_PARAMETER, 10);
    const pol = this.#h.digests;
    const want = r.hdgst || r.ddgst;
    if (pol === "require" && !(r.hdgst && r.ddgst)) throw new ProtocolError("param", "digests required", Fes.UNSUPPORTED_PARAMETER, 11);
    this.#setDigests(pol === "none" || !want ? { hdgst: false, ddgst: false } : { hdgst: r.hdgst, ddgst: r.ddgst });
    const at = this.#reserve(Hlen.IC);
    encodeIcResp({ maxh2cdata: this.#h.maxH2cData, hdgst: this.#dg.hdgst, ddgst: this.#dg.ddgst }, this.#stage.subarray(at, at + Hlen.IC));
  }

  #setDigests(dg: Digests): void {
    this.#dg = dg;
    this.#hd = dg.hdgst ? DIGEST_SIZE : 0;
    this.#dd = dg.ddgst ? DIGEST_SIZE : 0;
    this.#parser.digests = dg;
  }

  #command(sqe: Uint32Array, inCap: Uint8Array | null): void {
    const h = this.#h;
    h.stats.commands++;
    this.#inflight++;
    const cid = sqe[0] >>> 16;
    const hook = h.onCommand;
    if (hook !== undefined) {
      const f = hook(this.qid, sqe, this);
      if (f === "drop") return this.destroy();
      if (f === "term") return this.#fatal(Fes.PDU_SEQUENCE_ERROR, 0, new Uint8Array(0));
      if (f === "ignore") return;
      if (f === "corrupt-ddgst") this.#corruptNext = true;
      if (f === "wrong-cid") this.#wrongCidNext = true;
    }
    const opc = sqe[0] & 0xff;
    if (((sqe[0] >>> 14) & 3) !== 1) return this.#resp(cid, Status.INVALID_FIELD | STATUS_DNR); // PSDT must be SGL
    if (opc === FABRICS_OPCODE) return this.#fabrics(sqe, cid, inCap);
    const c = this.ctrl;
    if (c === null) return this.#resp(cid, Status.SEQUENCE_ERROR | STATUS_DNR);
    if (this.qid !== 0) {
      if (this.#tr !== null) this.#tr.capsule();
      c.activity[0]++; // traffic for keep-alive (CTRATT.TBKAS): a counter, not a clock read per IO
      if (!c.ready) return this.#resp(cid, Status.SEQUENCE_ERROR | STATUS_DNR);
      if (opc === IoOpc.READ || opc === IoOpc.WRITE) return this.#rw(sqe, cid, opc, inCap);
    } else c.lastSeen = performance.now();
    this.#viaController(c, sqe, cid, opc, inCap);
  }

  /** Everything but Read and Write: the controller (model) runs it; data moves here first or after. */
  #viaController(c: FabricsController, sqe: Uint32Array, cid: number, opc: number, inCap: Uint8Array | null): void {
    const qid = this.qid;
    const cmd = sqe.slice(); // the model may hold it until a later completion
    const reply = (r: AdminReply) => this.#reply(cid, r);
    const sglLen = sqe[Sgl.DW_LEN], sglId = sqe[Sgl.DW_ID] >>> 24;
    const dir = transferDirection(opc);
    if (dir === DataDir.TO_CONTROLLER && sglLen > 0) {
      const k = this.#take(cid);
      k.run = (data) => {
        this.#put(k);
        c.execute(qid, cmd, data, reply);
      };
      k.release = () => this.#put(k);
      k.len = sglLen;
      k.view = new Uint8Array(sglLen);
      return this.#dataOut(k, sglId, inCap);
    }
    if (dir === DataDir.TO_HOST) {
      const want = c.transferLength(qid, cmd);
      if (want > 0 && sglLen !== want) return this.#resp(cid, Status.SGL_LENGTH_INVALID | STATUS_DNR);
    }
    c.execute(qid, cmd, null, reply);
  }

  /** Read and Write straight onto the namespace's backend, in its buffers (DMA memory for a device). */
  #rw(sqe: Uint32Array, cid: number, opc: number, inCap: Uint8Array | null): void {
    const ns = this.ctrl!.subsystem!.namespaces[sqe[1] - 1];
    if (!ns) return this.#resp(cid, Status.INVALID_NAMESPACE | STATUS_DNR);
    const slba = sqe[10] + sqe[11] * 2 ** 32;
    const nlb = (sqe[12] & 0xffff) + 1, len = nlb * ns.blockSize;
    const sglLen = sqe[Sgl.DW_LEN], sglId = sqe[Sgl.DW_ID] >>> 24;
    if (slba + nlb > ns.blockCount) return this.#resp(cid, Status.LBA_OUT_OF_RANGE | STATUS_DNR);
    if (sglLen !== len) return this.#resp(cid, Status.SGL_LENGTH_INVALID | STATUS_DNR);
    if (len > this.ctrl!.maxTransfer) return this.#resp(cid, Status.INVALID_FIELD | STATUS_DNR);
    if (opc === IoOpc.READ && sglId !== SGL_TRANSPORT) return this.#resp(cid, Status.SGL_TYPE_INVALID | STATUS_DNR);
    const k = this.#take(cid);
    k.ns = ns;
    k.slba = slba;
    k.len = len;
    const view = k.bind(ns, len);
    if (opc === IoOpc.READ) {
      k.busy = true;
      ns.read(slba, view, k.readDone);
      if (this.#tr !== null) this.#tr.submitted();
      return;
    }
    k.fua = (sqe[12] & RwFlags.FUA) !== 0;
    this.#dataOut(k, sglId, inCap);
  }

  #readDone(k: Cmd, sf: number): void {
    if (this.#tr !== null) this.#tr.reaped();
    if (sf === 0) this.#sendData(k.cid, k.view!);
    else this.#resp(k.cid, sf);
    this.#put(k);
  }

  #writeDone(k: Cmd, sf: number): void {
    if (this.#tr !== null) this.#tr.reaped();
    this.#resp(k.cid, sf);
    this.#put(k);
  }

  /** The host's data is all in `k.view`: run the command. */
  #gathered(k: Cmd): void {
    if (k.run !== null) return k.run(k.view!);
    k.busy = true;
    k.ns!.write(k.slba, k.view!, k.fua, k.writeDone);
    if (this.#tr !== null) this.#tr.submitted();
  }

  /** Host data for a command: in-capsule now, or R2T for all of it (MAXH2CDATA covers MDTS), then run it. */
  #dataOut(k: Cmd, sglId: number, inCap: Uint8Array | null): void {
    if (sglId === SGL_INCAPSULE) {
      this.#h.stats.inCapsule++;
      if (inCap === null || inCap.length !== k.len) {
        this.#put(k);
        return this.#resp(k.cid, Status.SGL_LENGTH_INVALID | STATUS_DNR);
      }
      k.view!.set(inCap);
      return this.#gathered(k);
    }
    if (sglId !== SGL_TRANSPORT || inCap !== null) {
      this.#put(k);
      return this.#resp(k.cid, Status.SGL_TYPE_INVALID | STATUS_DNR);
    }
    k.got = 0;
    k.h2c = true;
    this.#h.stats.r2t++;
    this.#emitR2t(k.cid, k.idx, k.len);
  }

  /** The command an H2CData header names, if it waits for data. */
  #h2cCmd(hdr: Uint8Array): Cmd | undefined {
    const k = this.#cmds[get16(hdr, DataOff.TTAG)];
    return k !== undefined && k.h2c && k.cid === get16(hdr, DataOff.CCCID) ? k : undefined;
  }

  /** H2CData lands in its command's buffer (DMA memory for a device): one copy, socket to device memory. */
  #sink(hdr: Uint8Array, n: number): Uint8Array | null {
    if (hdr[Ch.TYPE] !== PduType.H2C_DATA) return null;
    const k = this.#h2cCmd(hdr);
    const datao = get32(hdr, DataOff.DATAO);
    if (k === undefined || datao !== k.got || datao + n > k.len) return null; // #h2cData refuses it
    return datao === 0 && n === k.len ? k.view : k.view!.subarray(datao, datao + n);
  }

  #h2cData(hdr: Uint8Array, data: Uint8Array): void {
    this.#h.stats.h2cData++;
    const datao = get32(hdr, DataOff.DATAO);
    const k = this.#h2cCmd(hdr);
    if (k === undefined) throw new ProtocolError("sequence", "H2CData with an unknown TTAG", Fes.INVALID_HEADER_FIELD, DataOff.TTAG);
    if (datao !== k.got || datao + data.length > k.len) throw new ProtocolError("range", "H2CData out of range", Fes.DATA_OUT_OF_RANGE);
    const v = k.view!;
    if (data.buffer !== v.buffer || data.byteOffset !== v.byteOffset + datao) v.set(data, datao);
    k.got += data.length;
    const last = (hdr[Ch.FLAGS] & PduFlag.LAST_PDU) !== 0;
    if (k.got === k.len) {
      if (!last) throw new ProtocolError("sequence", "H2CData completes the transfer without LAST_PDU", Fes.PDU_SEQUENCE_ERROR);
      k.h2c = false;
      this.#gathered(k);
    } else if (last) throw new ProtocolError("sequence", "LAST_PDU before the data was complete", Fes.PDU_SEQUENCE_ERROR);
  }

  // ---- fabrics ------------------------------------------------------------------------------

  #fabrics(sqe: Uint32Array, cid: number, data: Uint8Array | null): void {
    const fctype = sqe[1] & 0xff;
    if (fctype === FcType.CONNECT) return this.#connect(sqe, cid, data);
    const c = this.ctrl;
    if (c === null || this.qid !== 0) return this.#resp(cid, Status.INVALID_FIELD | STATUS_DNR);
    c.lastSeen = performance.now();
    const ofst = sqeField(sqe, FabricsSqe.OFST, 4), eight = (sqeField(sqe, FabricsSqe.ATTRIB, 1) & 1) === 1;
    if (fctype === FcType.PROPERTY_GET) {
      const r = c.propertyGet(ofst, eight);
      return this.#resp(cid, r.sf, r.dw0 ?? 0, r.dw1 ?? 0);
    }
    if (fctype === FcType.PROPERTY_SET) {
      const r = c.propertySet(ofst, sqeField(sqe, FabricsSqe.VALUE, 4), eight);
      return this.#resp(cid, r.sf);
    }
    return this.#resp(cid, Status.INVALID_OPCODE | STATUS_DNR);
  }

  #connect(sqe: Uint32Array, cid: number, data: Uint8Array | null): void {
    if (this.qid >= 0) return this.#resp(cid, ConnectStatus.BUSY | STATUS_DNR);
    if (sqeField(sqe, FabricsSqe.RECFMT, 2)) return this.#resp(cid, ConnectStatus.FORMAT | STATUS_DNR);
    if (!data || data.length !== ConnectData.SIZE) return this.#resp(cid, Status.SGL_LENGTH_INVALID | STATUS_DNR);
    const d = decodeConnectData(data);
    const qid = sqeField(sqe, FabricsSqe.QID, 2);
    const sqsize = sqeField(sqe, FabricsSqe.SQSIZE, 2);
    const cattr = sqeField(sqe, FabricsSqe.CATTR, 1);
    const kato = sqeField(sqe, FabricsSqe.KATO, 4);
    const h = this.#h;
    const sqflowOff = (cattr & CATTR_DISABLE_SQFLOW) !== 0;
    const r = h.connect({ qid, sqsize, kato, subnqn: d.subnqn, hostnqn: d.hostnqn, hostid: d.hostid, cntlid: d.cntlid, conn: this, cid, sqflowOff });
    if (r === null) return; // handed over: another thread answers
    if (!("cntlid" in r)) return this.#resp(cid, r.sf | STATUS_DNR, r.dw0);
    this.#bind(r, qid, sqsize, sqflowOff, cid);
  }

  #bind(c: FabricsController, qid: number, sqsize: number, sqflowOff: boolean, cid: number): void {
    this.ctrl = c;
    this.qid = qid;
    this.#sqsize = sqsize + 1;
    this.#sqflowOff = sqflowOff;
    this.#resp(cid, 0, c.cntlid);
  }
}
