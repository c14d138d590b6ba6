/**
 * A minimal NVMe/TCP target, for testing the host on loopback without the
 * kernel: ICReq/ICResp, Fabrics Connect and Property Get/Set with a CC/CSTS
 * model, Identify (controller, namespace, active list), Set Features
 * Number of Queues, Get Log Page (zeros), Keep Alive, and Read/Write/Flush/
 * Write Zeroes on namespaces backed by the software controller's media
 * (lib/sim). Writes come in-capsule or through R2T/H2CData, reads go out as
 * C2HData (optionally split, optionally with SUCCESS). A hook lets tests
 * break the connection in the ways a real target or network does.
 *
 * Not a product target (issue 9's second half): one JS thread, copies, no
 * discovery, no AER, no keep-alive enforcement.
 * @module
 */
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { ProtocolError } from "../nvme/errors.ts";
import { AdminOpc, IoOpc } from "../nvme/spec.ts";
import type { Media } from "../sim/media.ts";
import { CATTR_DISABLE_SQFLOW, CNTLID_DYNAMIC, ConnectData, decodeConnectData, DISCOVERY_NQN, FABRICS_OPCODE, FcType } from "./fabrics.ts";
import { AdrFam, encodeDiscoveryLog, LID_DISCOVERY, SubType, TREQ_DISABLE_SQFLOW, TRTYPE_TCP } from "./discovery.ts";
import { PduParser } from "./parser.ts";
import {
  buildPdu,
  Capsule,
  Ch,
  DataOff,
  decodeIcReq,
  decodeSgl,
  DIGEST_SIZE,
  type Digests,
  encodeIcResp,
  get16,
  get32,
  Hlen,
  PduType,
  PFV_1_0,
  put16,
  put32,
  writeCapsuleResp,
  writeDataPdu,
  writeR2t,
} from "./pdu.ts";

/** One namespace of the target. */
export interface TargetNamespace {
  /** Storage (e.g. lib/sim's MemMedia). */
  media: Media;
  /** Logical block size (power of two, ≥ 512). */
  lbaSize: number;
}

/** What a test hook may do to a command before the target handles it. */
export type TargetFault = "drop" | "term" | "corrupt-ddgst" | "ignore" | "wrong-cid" | undefined;

/** Target settings. */
export interface TcpTargetOptions {
  /** Address to listen on (tests: 127.0.0.1). */
  host?: string;
  /** Port (0: any free one; read {@link TcpTarget.port}). */
  port?: number;
  /** The subsystem NQN hosts connect to. */
  subnqn: string;
  /** Namespaces, NSID 1.. in order. */
  namespaces: TargetNamespace[];
  /** MAXH2CDATA advertised (default 128 KiB). */
  maxh2cdata?: number;
  /** In-capsule data bytes accepted on IO queues (default 8192; IOCCSZ = (64 + this) / 16). */
  inCapsule?: number;
  /** Largest transfer (default 128 KiB, reported as MDTS). */
  maxTransfer?: number;
  /** Split reads into C2HData PDUs of at most this many bytes (default: one PDU). */
  c2hChunk?: number;
  /** Send C2HData SUCCESS (no CapsuleResp) when the host disabled SQ flow control. */
  c2hSuccess?: boolean;
  /** IO queues granted by Set Features Number of Queues (default 4). */
  maxIoQueues?: number;
  /** Called for every Get Log Page before the target answers it (tests bump `genctr` here). */
  onLogRead?: (sqe: Uint32Array) => void;
  /** Called for every command capsule; a fault it returns is applied to that command. */
  onCommand?: (qid: number, sqe: Uint32Array) => TargetFault;
}

/** Generic status codes the target answers with (SCT 0; DNR set). */
const SC = { INVALID_OPCODE: 0x01, INVALID_FIELD: 0x02, INVALID_NS: 0x0b, SEQUENCE: 0x0c, SGL_LENGTH: 0x0f, LBA_RANGE: 0x80 } as const;
const DNR = 0x4000;
const CONNECT_INVALID = 0x100 | 0x82; // SCT 1, SC 82h

/** Register offsets the target models. */
const REG = { CAP: 0x00, VS: 0x08, CC: 0x14, CSTS: 0x1c } as const;
const CAP = 127n | (1n << 16n) | (15n << 24n) | (1n << 37n); // MQES 127, CQR, TO 7.5 s, CSS NVM

/** A controller of the target (one per admin Connect). */
export interface TargetController {
  /** Controller id. */
  cntlid: number;
  /** Host NQN of the admin Connect (IO Connects must match it). */
  hostnqn: string;
  /** CC property. */
  cc: number;
  /** CSTS property. */
  csts: number;
  /** A discovery controller (Connect to the well-known discovery NQN). */
  discovery: boolean;
}

/** A listening NVMe/TCP target. */
export class TcpTarget {
  /** The port it listens on. */
  readonly port: number;
  /** Counters for tests. */
  readonly stats = { connections: 0, commands: 0, r2t: 0, h2cData: 0, c2hData: 0, inCapsule: 0, termReqs: 0, hostTermReqs: 0 };
  /** Controllers by cntlid. */
  readonly controllers: Map<number, TargetController> = new Map();
  readonly #srv: net.Server;
  readonly #opts: TcpTargetOptions;
  readonly #socks = new Set<net.Socket>();
  #nextCntlid = 1;

  private constructor(srv: net.Server, port: number, opts: TcpTargetOptions) {
    this.#srv = srv;
    this.port = port;
    this.#opts = opts;
  }

  /** Listen on `opts.host:opts.port` (default 127.0.0.1, any port). */
  static listen(opts: TcpTargetOptions): Promise<TcpTarget> {
    return new Promise((resolve, reject) => {
      let t: TcpTarget | null = null;
      const srv = net.createServer((sock) => {
        if (t !== null) t.#accept(sock);
        else sock.destroy();
      });
      srv.on("error", reject);
      srv.listen(opts.port ?? 0, opts.host ?? "127.0.0.1", () => {
        const a = srv.address();
        t = new TcpTarget(srv, typeof a === "object" && a ? a.port : 0, opts);
        resolve(t);
      });
    });
  }

  /** Stop listening and drop every connection. */
  close(): Promise<void> {
    for (const s of this.#socks) s.destroy();
    return new Promise((r) => this.#srv.close(() => r()));
  }

  /** Drop every open connection now (a network failure, as the host sees it). */
  dropAll(): void {
    for (const s of this.#socks) s.destroy();
  }

  #accept(sock: net.Socket): void {
    this.stats.connections++;
    this.#socks.add(sock);
    sock.setNoDelay(true);
    sock.on("close", () => this.#socks.delete(sock));
    sock.on("error", () => {});
    new Conn(this, sock, this.#opts);
  }

  /** Bumped whenever the discovery log changes (tests change it to exercise a host's GENCTR retry). */
  genctr = 1n;

  /** A new controller for an admin Connect (a discovery controller for the discovery NQN). */
  newController(hostnqn: string, discovery: boolean): TargetController {
    const c = { cntlid: this.#nextCntlid++, hostnqn, cc: 0, csts: 0, discovery };
    this.controllers.set(c.cntlid, c);
    return c;
  }
}

interface PendingWrite {
  sqe: Uint32Array;
  buf: Uint8Array;
  got: number;
  ttag: number;
}

/** One connection's state (one queue). */
class Conn {
  readonly #t: TcpTarget;
  readonly #sock: net.Socket;
  readonly #o: TcpTargetOptions;
  readonly #parser: PduParser;
  #dg: Digests = { hdgst: false, ddgst: false };
  #qid = -1;
  #ctrl: TargetController | null = null;
  #sqflowOff = false;
  #sqhd = 0;
  #corruptNext = false;
  #wrongCidNext = false;
  readonly #writes = new Map<number, PendingWrite>(); // by ttag
  #nextTtag = 1;
  readonly #h = new Uint8Array(Hlen.IC + DIGEST_SIZE + 128);

  constructor(t: TcpTarget, sock: net.Socket, o: TcpTargetOptions) {
    this.#t = t;
    this.#sock = sock;
    this.#o = o;
    const maxData = Math.max(o.maxh2cdata ?? 0x20000, o.inCapsule ?? 8192, 8192);
    this.#parser = new PduParser({ role: "target", maxData }, (hdr, data) => this.#onPdu(hdr, data));
    sock.on("data", (chunk: Uint8Array) => {
      try {
        this.#parser.feed(chunk);
      } catch (e) {
        if (e instanceof ProtocolError) this.#term(e.fes || 1, e.fei, new Uint8Array(0));
        else sock.destroy();
      }
    });
  }

  #send(b: Uint8Array): void {
    if (!this.#sock.destroyed) this.#sock.write(Buffer.from(b));
  }

  #term(fes: number, fei: number, header: Uint8Array): void {
    this.#t.stats.termReqs++;
    const b = new Uint8Array(Hlen.SHORT + header.length);
    b[Ch.TYPE] = PduType.C2H_TERM_REQ;
    b[Ch.HLEN] = Hlen.SHORT;
    b[Ch.PDO] = header.length ? Hlen.SHORT : 0;
    put32(b, Ch.PLEN, b.length);
    put16(b, 8, fes);
    put32(b, 10, fei);
    b.set(header, Hlen.SHORT);
    this.#sock.end(Buffer.from(b));
  }

  #onPdu(hdr: Uint8Array, data: Uint8Array | null): void {
    switch (hdr[Ch.TYPE]) {
      case PduType.IC_REQ: {
        const r = decodeIcReq(hdr);
        if (r.pfv !== PFV_1_0 || r.hpda !== 0) throw new ProtocolError("param", "bad ICReq", 6, r.pfv ? 8 : 10);
        this.#dg = { hdgst: r.hdgst, ddgst: r.ddgst };
        this.#parser.digests = this.#dg;
        this.#send(encodeIcResp({ maxh2cdata: this.#o.maxh2cdata ?? 0x20000, hdgst: r.hdgst, ddgst: r.ddgst }));
        return;
      }
      case PduType.CAPSULE_CMD: {
        const sqe = new Uint32Array(16);
        for (let i = 0; i < 16; i++) sqe[i] = get32(hdr, Capsule.SQE + i * 4);
        this.#onCommand(sqe, data ? data.slice() : null);
        return;
      }
      case PduType.H2C_DATA: {
        this.#t.stats.h2cData++;
        const ttag = get16(hdr, DataOff.TTAG), datao = get32(hdr, DataOff.DATAO);
        const w = this.#writes.get(ttag);
        if (!w || w.sqe[0] >>> 16 !== get16(hdr, DataOff.CCCID)) throw new ProtocolError("sequence", "H2CData with unknown TTAG", 1, DataOff.TTAG);
        if (datao !== w.got || datao + data!.length > w.buf.length) throw new ProtocolError("range", "H2CData out of range", 4);
        w.buf.set(data!, datao);
        w.got += data!.length;
        if (w.got === w.buf.length) {
          this.#writes.delete(ttag);
          this.#finishWrite(w.sqe, w.buf);
        }
        return;
      }
      case PduType.H2C_TERM_REQ:
        this.#t.stats.hostTermReqs++;
        this.#sock.destroy();
        return;
    }
  }

  #resp(sqe: Uint32Array, sf: number, dw0 = 0, dw1 = 0): void {
    const h = this.#h;
    if (++this.#sqhd > 127) this.#sqhd = 0;
    const l = writeCapsuleResp(h, { dw0, dw1, sqhd: this.#sqflowOff ? 0xffff : this.#sqhd, sqid: Math.max(this.#qid, 0), cid: sqe[0] >>> 16, sf }, this.#dg);
    this.#send(buildPdu(h, l, null));
  }

  #sendRead(sqe: Uint32Array, data: Uint8Array): void {
    const chunk = this.#o.c2hChunk ?? data.length;
    const success = !!this.#o.c2hSuccess && this.#sqflowOff;
    for (let o = 0; o < data.length; o += chunk) {
      const n = Math.min(chunk, data.length - o);
      const last = o + n === data.length;
      const cccid = this.#wrongCidNext ? (sqe[0] >>> 16) ^ 0x8000 : sqe[0] >>> 16;
      this.#wrongCidNext = false;
      const l = writeDataPdu(this.#h, PduType.C2H_DATA, { cccid, ttag: 0, datao: o, datal: n, last, success: last && success }, this.#dg);
      const pdu = buildPdu(this.#h, l, data.subarray(o, o + n));
      if (this.#corruptNext) {
        this.#corruptNext = false;
        pdu[pdu.length - 1] ^= 0xff;
      }
      this.#t.stats.c2hData++;
      this.#send(pdu);
    }
    if (!success) this.#resp(sqe, 0);
  }

  #onCommand(sqe: Uint32Array, inCapsule: Uint8Array | null): void {
    this.#t.stats.commands++;
    const fault = this.#o.onCommand?.(this.#qid, sqe);
    if (fault === "drop") {
      this.#sock.destroy();
      return;
    }
    if (fault === "term") {
      this.#term(2, 0, new Uint8Array(0));
      return;
    }
    if (fault === "ignore") return;
    if (fault === "corrupt-ddgst") this.#corruptNext = true;
    if (fault === "wrong-cid") this.#wrongCidNext = true;
    const opc = sqe[0] & 0xff, psdt = (sqe[0] >>> 14) & 3;
    if (psdt !== 1) return this.#resp(sqe, SC.INVALID_FIELD | DNR);
    if (opc === FABRICS_OPCODE) return this.#fabrics(sqe, inCapsule);
    if (this.#ctrl === null) return this.#resp(sqe, SC.SEQUENCE | DNR); // nothing before Connect
    const sgl = decodeSgl(sqe);
    if (inCapsule !== null) this.#t.stats.inCapsule++;
    if (this.#qid === 0) return this.#admin(sqe, sgl.len);
    const ns = this.#o.namespaces[sqe[1] - 1];
    if (opc === IoOpc.FLUSH) return this.#resp(sqe, 0);
    if (!ns) return this.#resp(sqe, SC.INVALID_NS | DNR);
    const slba = sqe[10] + sqe[11] * 2 ** 32, nlb = (sqe[12] & 0xffff) + 1;
    const len = nlb * ns.lbaSize;
    if ((slba + nlb) * ns.lbaSize > ns.media.size) return this.#resp(sqe, SC.LBA_RANGE | DNR);
    switch (opc) {
      case IoOpc.READ: {
        if (sgl.len !== len) return this.#resp(sqe, SC.SGL_LENGTH | DNR);
        const b = new Uint8Array(len);
        ns.media.read(slba * ns.lbaSize, b);
        return this.#sendRead(sqe, b);
      }
      case IoOpc.WRITE: {
        if (sgl.len !== len) return this.#resp(sqe, SC.SGL_LENGTH | DNR);
        if (inCapsule !== null) {
          if (inCapsule.length !== len) return this.#resp(sqe, SC.SGL_LENGTH | DNR);
          return this.#finishWrite(sqe, inCapsule);
        }
        const ttag = this.#nextTtag++ & 0xffff || this.#nextTtag++;
        this.#writes.set(ttag, { sqe, buf: new Uint8Array(len), got: 0, ttag });
        this.#t.stats.r2t++;
        this.#send(buildPdu(this.#h, writeR2t(this.#h, { cccid: sqe[0] >>> 16, ttag, r2to: 0, r2tl: len }, this.#dg), null));
        return;
      }
      case IoOpc.WRITE_ZEROES:
        ns.media.zero(slba * ns.lbaSize, len);
        return this.#resp(sqe, 0);
      default:
        return this.#resp(sqe, SC.INVALID_OPCODE | DNR);
    }
  }

  #finishWrite(sqe: Uint32Array, data: Uint8Array): void {
    const ns = this.#o.namespaces[sqe[1] - 1];
    ns.media.write((sqe[10] + sqe[11] * 2 ** 32) * ns.lbaSize, data);
    this.#resp(sqe, 0);
  }

  #fabrics(sqe: Uint32Array, data: Uint8Array | null): void {
    const fctype = sqe[1] & 0xff;
    if (fctype === FcType.CONNECT) {
      if (this.#qid >= 0) return this.#resp(sqe, SC.SEQUENCE | DNR); // a second Connect on this queue
      if (!data || data.length !== ConnectData.SIZE || sqe[10] & 0xffff) return this.#resp(sqe, CONNECT_INVALID | DNR);
      const d = decodeConnectData(data);
      const qid = sqe[10] >>> 16, sqsize = sqe[11] & 0xffff;
      const disc = d.subnqn === DISCOVERY_NQN;
      if (!disc && d.subnqn !== this.#o.subnqn) return this.#resp(sqe, CONNECT_INVALID | DNR, (1 << 16) | ConnectData.SUBNQN);
      if (sqsize === 0 || sqsize > 127) return this.#resp(sqe, CONNECT_INVALID | DNR, 44);
      if (qid === 0) {
        if (d.cntlid !== CNTLID_DYNAMIC) return this.#resp(sqe, CONNECT_INVALID | DNR, (1 << 16) | ConnectData.CNTLID);
        this.#ctrl = this.#t.newController(d.hostnqn, disc);
      } else {
        const c = this.#t.controllers.get(d.cntlid);
        if (!c || c.discovery || c.hostnqn !== d.hostnqn || qid > (this.#o.maxIoQueues ?? 4)) {
          return this.#resp(sqe, CONNECT_INVALID | DNR, (1 << 16) | ConnectData.CNTLID);
        }
        this.#ctrl = c;
      }
      this.#qid = qid;
      this.#sqflowOff = ((sqe[11] >>> 16) & CATTR_DISABLE_SQFLOW) !== 0;
      return this.#resp(sqe, 0, this.#ctrl.cntlid);
    }
    const c = this.#ctrl;
    if (c === null || this.#qid !== 0) return this.#resp(sqe, SC.INVALID_FIELD | DNR);
    const ofst = sqe[11], eight = (sqe[10] & 1) === 1;
    if (fctype === FcType.PROPERTY_GET) {
      if (ofst === REG.CAP && eight) return this.#resp(sqe, 0, Number(CAP & 0xffffffffn), Number(CAP >> 32n));
      if (eight) return this.#resp(sqe, SC.INVALID_FIELD | DNR);
      if (ofst === REG.VS) return this.#resp(sqe, 0, 0x10400);
      if (ofst === REG.CC) return this.#resp(sqe, 0, c.cc);
      if (ofst === REG.CSTS) return this.#resp(sqe, 0, c.csts);
      return this.#resp(sqe, SC.INVALID_FIELD | DNR);
    }
    if (fctype === FcType.PROPERTY_SET) {
      if (ofst !== REG.CC || eight) return this.#resp(sqe, SC.INVALID_FIELD | DNR);
      const v = sqe[12];
      c.cc = v;
      c.csts = (v & 1 ? 1 : 0) | (((v >>> 14) & 3) !== 0 ? 2 << 2 : 0); // RDY follows EN; SHN completes at once
      return this.#resp(sqe, 0);
    }
    return this.#resp(sqe, SC.INVALID_OPCODE | DNR);
  }

  #admin(sqe: Uint32Array, sglLen: number): void {
    const opc = sqe[0] & 0xff;
    switch (opc) {
      case AdminOpc.IDENTIFY: {
        if (sglLen !== 4096) return this.#resp(sqe, SC.SGL_LENGTH | DNR);
        const b = this.#identify(sqe[10] & 0xff, sqe[1]);
        if (b === null) return this.#resp(sqe, SC.INVALID_FIELD | DNR);
        return this.#sendRead(sqe, b);
      }
      case AdminOpc.GET_LOG_PAGE: {
        const numd = ((sqe[10] >>> 16) | ((sqe[11] & 0xffff) << 16)) + 1;
        if (sglLen !== numd * 4) return this.#resp(sqe, SC.SGL_LENGTH | DNR);
        const out = new Uint8Array(numd * 4);
        if ((sqe[10] & 0xff) === LID_DISCOVERY && this.#ctrl!.discovery) {
          const lpo = sqe[12] + sqe[13] * 2 ** 32;
          if (lpo % 4 !== 0) return this.#resp(sqe, SC.INVALID_FIELD | DNR);
          out.set(this.#discoveryLog().subarray(lpo, lpo + out.length));
        }
        this.#o.onLogRead?.(sqe);
        return this.#sendRead(sqe, out);
      }
      case AdminOpc.SET_FEATURES:
        if ((sqe[10] & 0xff) === 0x07) {
          const n = (this.#o.maxIoQueues ?? 4) - 1;
          return this.#resp(sqe, 0, n | (n << 16));
        }
        return this.#resp(sqe, SC.INVALID_FIELD | DNR);
      case AdminOpc.KEEP_ALIVE:
        return this.#resp(sqe, 0);
      default:
        return this.#resp(sqe, SC.INVALID_OPCODE | DNR);
    }
  }

  #discoveryLog(): Uint8Array {
    const a = this.#sock.localAddress ?? "127.0.0.1", port = String(this.#sock.localPort ?? 4420);
    const e = { trtype: TRTYPE_TCP, adrfam: a.includes(":") ? AdrFam.IPV6 : AdrFam.IPV4, treq: TREQ_DISABLE_SQFLOW, portid: 1, cntlid: CNTLID_DYNAMIC, asqsz: 32, trsvcid: port, traddr: a };
    return encodeDiscoveryLog(this.#t.genctr, [
      { ...e, subtype: SubType.CURRENT_DISCOVERY, subnqn: DISCOVERY_NQN },
      { ...e, subtype: SubType.NVM, subnqn: this.#o.subnqn },
    ]);
  }

  #identify(cns: number, nsid: number): Uint8Array | null {
    const b = new Uint8Array(4096);
    const ascii = (off: number, len: number, s: string) => {
      for (let i = 0; i < len; i++) b[off + i] = i < s.length ? s.charCodeAt(i) : 0x20;
    };
    if (cns === 1) {
      put16(b, 0, 0x1b36);
      ascii(4, 20, "TSNVMETCP0001");
      ascii(24, 40, "tsnvme test target");
      ascii(64, 8, "0.1");
      const mt = this.#o.maxTransfer ?? 0x20000;
      b[77] = Math.log2(mt / 4096);
      put16(b, 78, this.#ctrl!.cntlid);
      put32(b, 80, 0x10400);
      b[111] = this.#ctrl!.discovery ? 2 : 1; // CNTRLTYPE: discovery or I/O controller
      put16(b, 320, 10); // KAS: 1 s units of 100 ms
      b[512] = 0x66;
      b[513] = 0x44;
      put16(b, 514, 128); // MAXCMD
      put32(b, 516, this.#o.namespaces.length);
      b[525] = 1; // VWC
      put32(b, 536, 1 | (1 << 2)); // SGLS: supported, keyed
      b.set(new TextEncoder().encode(this.#o.subnqn), 768);
      put32(b, 1792, (64 + (this.#o.inCapsule ?? 8192)) / 16); // IOCCSZ
      put32(b, 1796, 1); // IORCSZ
      b[1803] = 1; // MSDBD
      return b;
    }
    if (cns === 0) {
      const ns = this.#o.namespaces[nsid - 1];
      if (!ns) return b; // inactive namespace: zeros
      const nlb = Math.floor(ns.media.size / ns.lbaSize);
      put32(b, 0, nlb % 2 ** 32);
      put32(b, 4, Math.floor(nlb / 2 ** 32));
      b.copyWithin(8, 0, 8);
      b.copyWithin(16, 0, 8);
      b[130] = Math.log2(ns.lbaSize);
      return b;
    }
    if (cns === 2) {
      let k = 0;
      for (let id = nsid + 1; id <= this.#o.namespaces.length; id++) put32(b, 4 * k++, id);
      return b;
    }
    return null;
  }
}
