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
import { Buffer } from "node:buffer";
import type * as net from "node:net";
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
  sealPdu,
  Sgl,
  writeCapsuleResp,
  writeDataPdu,
  writeR2t,
} from "../tcp/pdu.ts";
import { DataDir, transferDirection } from "../sim/engine.ts";
import type { AdminReply, FabricsController } from "./controller.ts";
import { RwFlags } from "./spec.ts";
import { ConnectStatus } from "../nvme/fabrics.ts";
import type { ConnHost } from "./server.ts";

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

/** A command whose host data is being gathered (in-capsule, or R2T then H2CData). */
interface DataOut {
  cid: number;
  buf: Uint8Array;
  len: number;
  got: number;
  /** Run the command on the gathered bytes (a view of `buf`). */
  run: (data: Uint8Array) => void;
  /** Give `buf` back (the connection closed first). */
  release: () => void;
}

/** A 1-, 2- or 4-byte little-endian field at byte `off` of an SQE held as dwords. */
function sqeField(sqe: Uint32Array, off: number, bytes: 1 | 2 | 4): number {
  const v = sqe[off >>> 2] >>> ((off & 3) * 8);
  return bytes === 4 ? v >>> 0 : v & (bytes === 2 ? 0xffff : 0xff);
}

/** PDUs written in one turn are concatenated up to this size; larger ones are written as they are. */
const COALESCE_MAX = 16 * 1024;

const SGL_TRANSPORT = Sgl.TRANSPORT_DATA_BLOCK;
const SGL_INCAPSULE = Sgl.DATA_BLOCK_OFFSET;

/** One queue's connection. */
export class TargetConn {
  /** Queue id after Connect (-1 before). */
  qid: number = -1;
  /** The controller this queue belongs to (after Connect). */
  ctrl: FabricsController | null = null;
  readonly #h: ConnHost;
  readonly #sock: net.Socket;
  readonly #parser: PduParser;
  #dg: Digests = { hdgst: false, ddgst: false };
  #sqflowOff = false;
  #sqsize = 128;
  #sqhd = 0;
  #closed = false;
  readonly #outs = new Map<number, DataOut>(); // by TTAG
  #ttag = 0;
  readonly #hdr = new Uint8Array(Hlen.CAPSULE_CMD + DIGEST_SIZE);
  readonly #sqe = new Uint32Array(16);
  #out: Uint8Array[] = [];
  #outBytes = 0;
  #flushQueued = false;
  #corruptNext = false;
  #wrongCidNext = false;
  #inflight = 0;

  /** Serve `sock` for the target behind `host`. */
  constructor(host: ConnHost, sock: net.Socket) {
    this.#h = host;
    this.#sock = sock;
    const l = host.limits;
    const maxData = Math.max(l.maxTransfer, host.maxH2cData, l.inCapsule, 8192);
    this.#parser = new PduParser({ role: "target", maxData }, (hdr, data) => this.#onPdu(hdr, data));
    // H2CData lands straight in the command's DMA buffer: one copy, socket to DMA memory.
    this.#parser.placeData = (hdr, n) => this.#sink(hdr, n);
    sock.on("data", (chunk: Uint8Array) => {
      if (this.#closed) return;
      try {
        this.#parser.feed(chunk);
      } catch (e) {
        if (e instanceof ProtocolError) this.#fatal(e.fes || Fes.INVALID_HEADER_FIELD, e.fei, this.#parser.header);
        else {
          host.log?.(`connection error: ${(e as Error).stack ?? e}`);
          this.destroy();
        }
      }
    });
    sock.on("close", () => this.#onClose());
    sock.on("error", () => {});
  }

  /** Drop the connection now. */
  destroy(): void {
    if (!this.#sock.destroyed) this.#sock.destroy();
    this.#onClose();
  }

  /** Commands received but not yet completed. */
  get inflight(): number {
    return this.#inflight;
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const o of this.#outs.values()) o.release();
    this.#outs.clear();
    this.#h.connClosed(this);
  }

  // ---- output -------------------------------------------------------------------------------

  #push(b: Uint8Array): void {
    if (this.#closed) return;
    this.#out.push(b);
    this.#outBytes += b.length;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
  }

  readonly #flush = (): void => {
    this.#flushQueued = false;
    const out = this.#out;
    if (out.length === 0 || this.#closed) return;
    const total = this.#outBytes;
    this.#out = [];
    this.#outBytes = 0;
    const sock = this.#sock;
    if (out.length === 1 || total <= COALESCE_MAX) {
      const b = out.length === 1 ? out[0] : Buffer.concat(out, total);
      sock.write(b instanceof Buffer ? b : Buffer.from(b.buffer, b.byteOffset, b.length));
      return;
    }
    // Large data: no second copy; runs of small PDUs still go out together.
    let run: Uint8Array[] = [], runBytes = 0;
    const flushRun = () => {
      if (run.length === 0) return;
      const b = run.length === 1 ? run[0] : Buffer.concat(run, runBytes);
      sock.write(Buffer.from(b.buffer, b.byteOffset, b.length));
      run = [];
      runBytes = 0;
    };
    for (const b of out) {
      if (b.length > COALESCE_MAX) {
        flushRun();
        sock.write(Buffer.from(b.buffer, b.byteOffset, b.length));
      } else {
        run.push(b);
        runBytes += b.length;
      }
    }
    flushRun();
  };

  #fatal(fes: number, fei: number, header: Uint8Array): void {
    this.#h.stats.termReqs++;
    this.#flush();
    if (!this.#sock.destroyed) this.#sock.end(Buffer.from(encodeTermReq(PduType.C2H_TERM_REQ, { fes, fei, header })));
    this.#closed || this.#onClose();
  }

  #resp(cid: number, sf: number, dw0 = 0, dw1 = 0): void {
    if (this.#closed) return;
    this.#inflight--;
    if (++this.#sqhd >= this.#sqsize) this.#sqhd = 0;
    const b = new Uint8Array(Hlen.SHORT + DIGEST_SIZE);
    const l = writeCapsuleResp(b, { dw0, dw1, sqhd: this.#sqflowOff ? 0xffff : this.#sqhd, sqid: Math.max(this.qid, 0), cid, sf }, this.#dg);
    sealPdu(b, l, null);
    this.#push(l.plen === b.length ? b : b.subarray(0, l.plen));
  }

  /**
   * C2HData of `data` for command `cid`, then the completion (DW0/DW1)
   * unless SUCCESS says it all: one buffer for the last PDU and the
   * completion, one copy of the data. The data goes in one PDU unless the
   * target splits it (c2hChunk).
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
    const hdr = this.#hdr;
    const respLen = success ? 0 : Hlen.SHORT + (this.#dg.hdgst ? DIGEST_SIZE : 0);
    for (let o = 0;; o += chunk, cccid = cid) {
      const n = Math.min(chunk, data.length - o), last = o + n === data.length;
      const l = writeDataPdu(hdr, PduType.C2H_DATA, { cccid, ttag: 0, datao: o, datal: n, last, success: last && success }, this.#dg);
      const pdu = new Uint8Array(l.plen + (last ? respLen : 0));
      pdu.set(hdr.subarray(0, l.hlen));
      sealPdu(pdu, l, n === data.length ? data : data.subarray(o, o + n));
      if (this.#corruptNext) {
        this.#corruptNext = false;
        pdu[l.plen - 1] ^= 0xff;
      }
      h.stats.c2hData++;
      if (!last) {
        this.#push(pdu);
        continue;
      }
      this.#inflight--;
      if (++this.#sqhd >= this.#sqsize) this.#sqhd = 0;
      if (!success) {
        const r = pdu.subarray(l.plen);
        const rl = writeCapsuleResp(r, { dw0, dw1, sqhd: this.#sqflowOff ? 0xffff : this.#sqhd, sqid: Math.max(this.qid, 0), cid, sf: 0 }, this.#dg);
        sealPdu(r, rl, null);
      }
      this.#push(pdu);
      return;
    }
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
    this.#dg = pol === "none" || !want ? { hdgst: false, ddgst: false } : { hdgst: r.hdgst, ddgst: r.ddgst };
    this.#parser.digests = this.#dg;
    this.#push(encodeIcResp({ maxh2cdata: this.#h.maxH2cData, hdgst: this.#dg.hdgst, ddgst: this.#dg.ddgst }));
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
    c.lastSeen = performance.now();
    if (this.qid !== 0) {
      if (!c.ready) return this.#resp(cid, Status.SEQUENCE_ERROR | STATUS_DNR);
      if (opc === IoOpc.READ || opc === IoOpc.WRITE) return this.#rw(sqe, cid, opc, inCap);
    }
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
      const buf = new Uint8Array(sglLen);
      return this.#dataOut(cid, buf, sglLen, sglId, inCap, (data) => c.execute(qid, cmd, data, reply), () => {});
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
    const buf = ns.alloc(len);
    const view = buf.length === len ? buf : buf.subarray(0, len);
    if (opc === IoOpc.READ) {
      if (sglId !== SGL_TRANSPORT) {
        ns.free(buf);
        return this.#resp(cid, Status.SGL_TYPE_INVALID | STATUS_DNR);
      }
      ns.read(slba, view, (sf) => {
        if (sf === 0) this.#sendData(cid, view);
        else this.#resp(cid, sf);
        ns.free(buf);
      });
      return;
    }
    const fua = (sqe[12] & RwFlags.FUA) !== 0;
    this.#dataOut(cid, buf, len, sglId, inCap, (data) =>
      ns.write(slba, data, fua, (sf) => {
        ns.free(buf);
        this.#resp(cid, sf);
      }), () => ns.free(buf));
  }

  /** Host data for a command: in-capsule now, or R2T for all of it (MAXH2CDATA covers MDTS), then `run`. */
  #dataOut(cid: number, buf: Uint8Array, len: number, sglId: number, inCap: Uint8Array | null, run: (d: Uint8Array) => void, release: () => void): void {
    const view = buf.length === len ? buf : buf.subarray(0, len);
    if (sglId === SGL_INCAPSULE) {
      this.#h.stats.inCapsule++;
      if (inCap === null || inCap.length !== len) {
        release();
        return this.#resp(cid, Status.SGL_LENGTH_INVALID | STATUS_DNR);
      }
      view.set(inCap);
      return run(view);
    }
    if (sglId !== SGL_TRANSPORT || inCap !== null) {
      release();
      return this.#resp(cid, Status.SGL_TYPE_INVALID | STATUS_DNR);
    }
    let ttag = this.#ttag = (this.#ttag + 1) & 0xffff;
    while (this.#outs.has(ttag)) ttag = this.#ttag = (this.#ttag + 1) & 0xffff;
    this.#outs.set(ttag, { cid, buf: view, len, got: 0, run, release });
    this.#h.stats.r2t++;
    const b = new Uint8Array(Hlen.SHORT + DIGEST_SIZE);
    const l = writeR2t(b, { cccid: cid, ttag, r2to: 0, r2tl: len }, this.#dg);
    sealPdu(b, l, null);
    this.#push(b.subarray(0, l.plen));
  }

  /** H2CData lands in its command's buffer (DMA memory for a device): one copy, socket to device memory. */
  #sink(hdr: Uint8Array, n: number): Uint8Array | null {
    if (hdr[Ch.TYPE] !== PduType.H2C_DATA) return null;
    const o = this.#outs.get(get16(hdr, DataOff.TTAG));
    const datao = get32(hdr, DataOff.DATAO);
    if (o === undefined || o.cid !== get16(hdr, DataOff.CCCID) || datao !== o.got || datao + n > o.len) return null; // #h2cData refuses it
    return o.buf.subarray(datao, datao + n);
  }

  #h2cData(hdr: Uint8Array, data: Uint8Array): void {
    this.#h.stats.h2cData++;
    const ttag = get16(hdr, DataOff.TTAG), datao = get32(hdr, DataOff.DATAO);
    const o = this.#outs.get(ttag);
    if (o === undefined || o.cid !== get16(hdr, DataOff.CCCID)) {
      throw new ProtocolError("sequence", "H2CData with an unknown TTAG", Fes.INVALID_HEADER_FIELD, DataOff.TTAG);
    }
    if (datao !== o.got || datao + data.length > o.len) throw new ProtocolError("range", "H2CData out of range", Fes.DATA_OUT_OF_RANGE);
    if (data.buffer !== o.buf.buffer || data.byteOffset !== o.buf.byteOffset + datao) o.buf.set(data, datao);
    o.got += data.length;
    const last = (hdr[Ch.FLAGS] & PduFlag.LAST_PDU) !== 0;
    if (o.got === o.len) {
      if (!last) throw new ProtocolError("sequence", "H2CData completes the transfer without LAST_PDU", Fes.PDU_SEQUENCE_ERROR);
      this.#outs.delete(ttag);
      o.run(o.buf);
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
    const r = h.connect({ qid, sqsize, kato, subnqn: d.subnqn, hostnqn: d.hostnqn, hostid: d.hostid, cntlid: d.cntlid, conn: this });
    if (!("cntlid" in r)) return this.#resp(cid, r.sf | STATUS_DNR, r.dw0);
    this.ctrl = r;
    this.qid = qid;
    this.#sqsize = sqsize + 1;
    this.#sqflowOff = (cattr & CATTR_DISABLE_SQFLOW) !== 0;
    this.#resp(cid, 0, r.cntlid);
  }
}
