/**
 * The NVMe/TCP half of a queue pair: one TCP connection (node:net, on Deno
 * and Bun), the ICReq/ICResp exchange, and a {@link QueueRing} that sends each
 * submitted SQE as a CapsuleCmd (writes up to the in-capsule limit ride in
 * it; larger ones wait for R2T and go out as H2CData), copies C2HData into
 * the command's memory and hands CapsuleResp completions to the tracker.
 *
 * Per IO: no clock read; SQEs and headers are staged in one reusable buffer
 * and sent once per batch (the only allocation is the copy node:net keeps
 * until the kernel has it); write data larger than the in-capsule limit goes
 * out from the command's memory. On Deno the socket reads into one reused
 * buffer (node:net `onread`; Bun reads faster through data events). Without
 * a data digest C2HData is copied once, from the socket's chunk into the
 * command's memory; with one it goes via the parser's staging buffer, so
 * data that failed its digest never lands.
 * @module
 */
import { Buffer } from "node:buffer";
import * as net from "node:net";
import { ConnectionLostError, InvalidArgumentError, type NvmeError, ProtocolError } from "../nvme/errors.ts";
import type { FabricRing } from "../nvme/transport.ts";
import { detectRuntime } from "../ffi/mod.ts";
import type { CompletionSink } from "../nvme/ring.ts";
import { crc32c } from "./crc32c.ts";
import { dataDirection, FABRICS_OPCODE } from "./fabrics.ts";
import type { TcpMemory } from "./memory.ts";
import { PduParser } from "./parser.ts";
import {
  Ch,
  DataOff,
  decodeIcResp,
  decodeTermReq,
  DIGEST_SIZE,
  type Digests,
  encodeIcReq,
  encodeTermReq,
  Fes,
  get16,
  get32,
  Hlen,
  type IcResp,
  MIN_MAXH2CDATA,
  pdaBytes,
  PduFlag,
  PduType,
  PFV_1_0,
  PSDT_SGL_CDW0,
  put32,
  R2tOff,
  RespOff,
  sealPdu,
  setSglInCapsule,
  setSglTransport,
  writeCapsuleCmd,
  writeDataPdu,
} from "./pdu.ts";

/** Where and how to open one queue's connection. */
export interface TcpRingOptions {
  /** Target address (a host name or IP). */
  host: string;
  /** Target port (4420 by convention; 8009 for discovery). */
  port: number;
  /** Queue id this connection will carry (0 = admin). */
  qid: number;
  /** Submission queue entries (the queue pair keeps depth - 1 in flight). */
  depth: number;
  /** Host memory the queue's commands point into. */
  memory: TcpMemory;
  /** Digests to ask for (the target must grant exactly these). */
  digests?: Partial<Digests>;
  /** Largest write sent in-capsule (admin: 8 KiB as Linux; IO: IOCCSZ × 16 − 64 from Identify). */
  inCapsuleMax?: number;
  /** Largest transfer of one command (cap it by MDTS and the target's limits). */
  maxTransfer?: number;
  /** Bound on TCP connect plus ICResp, in ms (Linux: 10 s). */
  connectTimeoutMs?: number;
}

/** In-capsule limit Linux uses on the admin queue and for Fabrics commands. */
export const ADMIN_IN_CAPSULE = 8192;
/** Default largest transfer per command: SPDK's default target limit, below nvmet's 4 MiB. */
export const DEFAULT_TCP_MAX_TRANSFER = 128 * 1024;

const DIR_H2C = 1, DIR_C2H = 2;
/** Status field of Data Transfer Error (SCT 0, SC 04h): what a command whose data failed its digest ends with. */
const SF_DATA_TRANSFER_ERROR = 0x04;
const STAGE_INITIAL = 64 * 1024;
/** Socket receive buffer per connection: 256 KiB reads took Deno's loopback reads from ~1 to ~2.3 GB/s (64 KiB chunks before). */
const RECV_BUFFER = 256 * 1024;

/**
 * Read with onread (one reused buffer) rather than data events. Measured in
 * the TCG guest on nvmet, 128 KiB QD8 reads: Deno's data events (a fresh
 * 64 KiB Buffer each) 79 MB/s, onread 106-128; Bun's data events (reads up
 * to 512 KiB) 108-117, onread 85-91, so Bun keeps its data events. The
 * runtime is asked of lib/ffi, the one place that knows it.
 */
const ONREAD: boolean = /* @__PURE__ */ (() => {
  try {
    return detectRuntime() === "deno";
  } catch {
    return true; // neither Deno nor Bun: onread is plain node:net
  }
})();

/** Period of the tick that bounds a sleep (deadlines and health checks are noticed within it). */
const WAITER_TICK_MS = 50;

/**
 * A QueueWaiter over socket arrivals: the pump of a TCP queue sleeps until a
 * completion lands (the socket's data event plays the interrupt's part).
 * Sleeps are bounded by one interval tick shared by all of them, not by a
 * timer per sleep, so a busy queue arms no timer per IO; the tick stops
 * itself once a tick finds no sleeper.
 */
export class ArrivalWaiter {
  /** Arrivals so far. */
  count = 0;
  #armed = 0;
  #wake: ((v: boolean) => void) | null = null;
  #ticker: ReturnType<typeof setInterval> | undefined;
  #slept = false;
  readonly #tick = (): void => {
    if (this.#wake === null && !this.#slept) {
      clearInterval(this.#ticker);
      this.#ticker = undefined;
      return;
    }
    this.#slept = false;
    this.#fire(false);
  };

  /** Snapshot the arrival count before the last check that precedes {@link sleep}. */
  arm(): void {
    this.#armed = this.count;
  }

  /**
   * Until an arrival newer than the arm, or about `timeoutMs` (rounded to the
   * tick, at most {@link WAITER_TICK_MS} × 2); true on an arrival.
   */
  sleep(_timeoutMs: number): Promise<boolean> {
    if (this.count !== this.#armed) return Promise.resolve(true);
    this.#slept = true;
    if (this.#ticker === undefined) this.#ticker = setInterval(this.#tick, WAITER_TICK_MS);
    return new Promise<boolean>((r) => {
      this.#wake = r;
    });
  }

  /** End a sleep now and stop the tick (queue closing). */
  wake(): void {
    this.#fire(false);
    clearInterval(this.#ticker);
    this.#ticker = undefined;
  }

  /** One more arrival (called by the ring). */
  arrived(): void {
    this.count++;
    if (this.#wake !== null) this.#fire(true);
  }

  #fire(v: boolean): void {
    const w = this.#wake;
    if (w === null) return;
    this.#wake = null;
    w(v);
  }
}

/** One NVMe/TCP connection carrying one queue; a {@link FabricRing} for {@link QueuePair}. */
export class TcpRing implements FabricRing {
  /** Submission queue entries. */
  readonly depth: number;
  /** Largest transfer one command can carry. */
  readonly maxTransfer: number;
  /** Queue id. */
  readonly qid: number;
  /** What the target granted in its ICResp. */
  readonly icResp: IcResp;
  /** Digests in force. */
  readonly digests: Digests;
  /** Largest write sent in-capsule. */
  readonly inCapsuleMax: number;
  /** Sleep-until-arrival for the queue pair's pump (wait mode "interrupt"). */
  readonly waiter: ArrivalWaiter = new ArrivalWaiter();
  /** Called once when the connection fails or closes, with the error in-flight commands get. */
  onLost: ((err: NvmeError) => void) | null = null;
  /** PDUs sent and received, R2Ts answered (diagnostics). */
  readonly counters = { pdusOut: 0, pdusIn: 0, r2t: 0, c2hData: 0, inCapsule: 0 };

  readonly #sock: net.Socket;
  readonly #parser: PduParser;
  readonly #mem: TcpMemory;
  readonly #sqe = new Uint32Array(16);
  readonly #hdr = new Uint8Array(Hlen.IC + DIGEST_SIZE + 128);
  #stage = new Uint8Array(STAGE_INITIAL);
  #staged = 0;
  // The command being built between setData/clearData and push.
  #pSlot = -1;
  #pIova = 0;
  #pLen = 0;
  // Per command id: slot + 1 of a command with data (0 = none); per slot: its memory and progress.
  readonly #cidSlot = new Int32Array(0x10000);
  readonly #slotIova: Float64Array;
  readonly #slotLen: Uint32Array;
  readonly #slotDir: Uint8Array;
  readonly #slotDone: Uint32Array;
  readonly #slotCid: Int32Array;
  readonly #slotBad: Uint8Array;
  // Completions received, not yet reaped: cid, sf, dw0, dw1 per entry.
  readonly #cq: Uint32Array;
  #cqHead = 0;
  #cqCount = 0;
  readonly #h2cAlign: number;
  #flushes = 0;
  #lost: NvmeError | null = null;

  private constructor(sock: net.Socket, parser: PduParser, opts: TcpRingOptions, ic: IcResp, dg: Digests, slots: number) {
    this.#sock = sock;
    this.#parser = parser;
    this.#mem = opts.memory;
    this.qid = opts.qid;
    this.depth = opts.depth;
    this.icResp = ic;
    this.digests = dg;
    this.inCapsuleMax = opts.inCapsuleMax ?? ADMIN_IN_CAPSULE;
    this.maxTransfer = opts.maxTransfer ?? DEFAULT_TCP_MAX_TRANSFER;
    this.#h2cAlign = pdaBytes(ic.cpda);
    this.#slotIova = new Float64Array(slots);
    this.#slotLen = new Uint32Array(slots);
    this.#slotDir = new Uint8Array(slots);
    this.#slotDone = new Uint32Array(slots);
    this.#slotCid = new Int32Array(slots).fill(-1);
    this.#slotBad = new Uint8Array(slots);
    this.#cq = new Uint32Array(Math.max(slots, 1) * 2 * 4);
    // C2H data may be as large as one command; a target sends at most that in one PDU.
    parser.maxData = Math.max(this.maxTransfer, this.inCapsuleMax, 4096);
    // C2H data lands straight in the command's memory; with a data digest it is staged until the digest
    // checked out, so data that failed it never reaches the command's buffer.
    if (!dg.ddgst) parser.placeData = (hdr, n) => this.#c2hPlace(hdr, n);
  }

  /**
   * Open a TCP connection, exchange ICReq/ICResp and return the ring. Fails
   * with a ConnectionLostError (refused, closed, timed out) or a
   * ProtocolError (bad ICResp, digests other than asked).
   */
  static connect(opts: TcpRingOptions): Promise<TcpRing> {
    if (!(opts.depth >= 2 && opts.depth <= 0x10000)) return Promise.reject(new InvalidArgumentError(`queue depth ${opts.depth}`));
    const want: Digests = { hdgst: !!opts.digests?.hdgst, ddgst: !!opts.digests?.ddgst };
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    return new Promise<TcpRing>((resolve, reject) => {
      let ring: TcpRing | null = null;
      let settled = false;
      const fail = (err: NvmeError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        sock.destroy();
        reject(err);
      };
      const parser = new PduParser({ role: "host", maxData: 4096, softDataDigest: true }, (hdr, data, ok) => {
        if (ring !== null) {
          ring.#onPdu(hdr, data, ok);
          return;
        }
        if (hdr[Ch.TYPE] !== PduType.IC_RESP) throw new ProtocolError("sequence", "expected ICResp", Fes.PDU_SEQUENCE_ERROR);
        const ic = decodeIcResp(hdr);
        if (ic.pfv !== PFV_1_0) throw new ProtocolError("pfv", `ICResp PFV ${ic.pfv}`, Fes.INVALID_HEADER_FIELD, 8);
        if (ic.hdgst !== want.hdgst || ic.ddgst !== want.ddgst) {
          throw new ProtocolError("param", `digests granted (h ${ic.hdgst}, d ${ic.ddgst}) differ from those asked`, Fes.UNSUPPORTED_PARAMETER, 11);
        }
        if (ic.maxh2cdata < MIN_MAXH2CDATA || ic.maxh2cdata % 4 !== 0) {
          throw new ProtocolError("param", `ICResp MAXH2CDATA ${ic.maxh2cdata}`, Fes.INVALID_HEADER_FIELD, 12);
        }
        if (ic.cpda > 31) throw new ProtocolError("param", `ICResp CPDA ${ic.cpda}`, Fes.INVALID_HEADER_FIELD, 10);
        parser.digests = want;
        ring = new TcpRing(sock, parser, opts, ic, want, opts.depth - 1);
        settled = true;
        clearTimeout(timer);
        resolve(ring);
      });
      const onChunk = (chunk: Uint8Array): void => {
        try {
          parser.feed(chunk);
        } catch (e) {
          const err = e instanceof ProtocolError || e instanceof ConnectionLostError
            ? e
            : new ProtocolError("sequence", `PDU handling failed: ${e}`);
          if (ring !== null) ring.#fatal(err as NvmeError);
          else fail(err as NvmeError);
        }
      };
      // onread: the socket reads into one reused buffer (no allocation per read, and reads as large as
      // the buffer instead of node:net's 64 KiB chunks on Deno); the parser keeps no view of it past feed().
      const sock = ONREAD
        ? net.connect({
          host: opts.host,
          port: opts.port,
          onread: { buffer: Buffer.allocUnsafe(RECV_BUFFER), callback: (n: number, buf: Uint8Array) => (onChunk(buf.subarray(0, n)), true) },
        })
        : net.connect({ host: opts.host, port: opts.port });
      if (!ONREAD) sock.on("data", onChunk);
      sock.setNoDelay(true);
      const timer = setTimeout(
        () => fail(new ConnectionLostError(`${opts.host}:${opts.port}: no ICResp within ${timeoutMs} ms`)),
        timeoutMs,
      );
      sock.on("connect", () => {
        sock.write(encodeIcReq({ hdgst: want.hdgst, ddgst: want.ddgst }));
      });
      sock.on("error", (e: Error) => {
        const err = new ConnectionLostError(`${opts.host}:${opts.port}: ${e.message}`, { cause: e });
        if (ring !== null) ring.#fatal(err);
        else fail(err);
      });
      sock.on("close", () => {
        const err = new ConnectionLostError(`${opts.host}:${opts.port}: connection closed`);
        if (ring !== null) ring.#fatal(err);
        else fail(err);
      });
    });
  }

  /** The error that ended the connection, or null while it is up. */
  get lost(): NvmeError | null {
    return this.#lost;
  }

  entry(): Uint32Array {
    return this.#sqe;
  }

  setData(_e: Uint32Array, slot: number, iova: number, len: number): void {
    this.#pSlot = slot;
    this.#pIova = iova;
    this.#pLen = len;
  }

  clearData(_e: Uint32Array): void {
    this.#pLen = 0;
  }

  push(): void {
    const e = this.#sqe;
    // PSDT 01b on every command: no PRPs exist on TCP, and nvmet refuses anything else.
    e[0] = ((e[0] & ~0xc000) | PSDT_SGL_CDW0) >>> 0;
    const cid = e[0] >>> 16;
    const len = this.#pLen;
    this.#pLen = 0;
    if (this.#lost) return; // reap fails it
    let inCapsule = 0;
    if (len === 0) {
      setSglTransport(e, 0);
    } else {
      const slot = this.#pSlot;
      const dir = dataDirection(e[0], e[1]) === DIR_C2H ? DIR_C2H : DIR_H2C;
      this.#slotIova[slot] = this.#pIova;
      this.#slotLen[slot] = len;
      this.#slotDir[slot] = dir;
      this.#slotDone[slot] = 0;
      this.#slotCid[slot] = cid;
      this.#slotBad[slot] = 0;
      this.#cidSlot[cid] = slot + 1;
      // Fabrics commands (Connect's 1024 bytes) ride in-capsule up to 8 KiB on any queue, as Linux sends them.
      const capMax = (e[0] & 0xff) === FABRICS_OPCODE ? Math.max(this.inCapsuleMax, ADMIN_IN_CAPSULE) : this.inCapsuleMax;
      if (dir === DIR_H2C && len <= capMax) {
        inCapsule = len;
        setSglInCapsule(e, len);
        this.counters.inCapsule++;
      } else setSglTransport(e, len);
    }
    const need = Hlen.CAPSULE_CMD + 2 * DIGEST_SIZE + inCapsule;
    if (this.#staged + need > this.#stage.length) this.#growOrFlush(need);
    const at = this.#staged, b = this.#stage;
    const l = writeCapsuleCmd(b, e, inCapsule, this.digests, at);
    if (inCapsule > 0) {
      const mem = this.#mem.bytesAt(this.#pIova);
      const off = this.#pIova % 0x1_0000_0000;
      if (mem === null || off + inCapsule > mem.length) {
        this.#fatal(new InvalidArgumentError(`command data at IOVA 0x${this.#pIova.toString(16)} is not TCP memory`));
        return;
      }
      this.#staged = at + sealPdu(b, l, mem.subarray(off, off + inCapsule), at);
    } else this.#staged = at + sealPdu(b, l, null, at);
    this.counters.pdusOut++;
  }

  flush(): boolean {
    if (this.#staged === 0 || this.#lost) return false;
    // node:net holds what it is given until the kernel took it: hand it a copy, keep the stage.
    this.#sock.write(Buffer.from(this.#stage.subarray(0, this.#staged)));
    this.#staged = 0;
    this.#flushes++;
    return true;
  }

  /** Capsule batches written to the socket. */
  get flushes(): number {
    return this.#flushes;
  }

  reap(sink: CompletionSink): number {
    if (this.#lost !== null) {
      if (sink.active > 0 || this.#cqCount > 0) {
        this.#cqCount = 0;
        sink.failAll(this.#lost, true); // the connection is gone: nothing can write the commands' memory now
      }
      return 0;
    }
    let n = 0;
    const cq = this.#cq, cap = cq.length >> 2;
    while (this.#cqCount > 0) {
      const i = this.#cqHead << 2;
      if (++this.#cqHead === cap) this.#cqHead = 0;
      this.#cqCount--;
      n++;
      sink.complete(cq[i], cq[i + 1], cq[i + 2], cq[i + 3], this.qid);
    }
    return n;
  }

  reset(): void {
    // A TCP queue is rebuilt by reconnecting, not by zeroing rings.
    this.#staged = 0;
    this.#cqCount = 0;
  }

  close(): void {
    if (this.#lost === null) this.#lost = new ConnectionLostError(`queue ${this.qid}: closed`);
    this.waiter.wake();
    this.#sock.destroy();
  }

  /** Tell the target we end the connection for `fes`/`fei` (H2CTermReq with `header`), then close. */
  terminate(fes: number, fei: number, header: Uint8Array = new Uint8Array(0)): void {
    if (this.#lost === null) {
      this.#sock.end(encodeTermReq(PduType.H2C_TERM_REQ, { fes, fei, header }));
      this.#fatal(new ProtocolError("term", `host terminated the connection (FES ${fes})`, fes, fei));
    }
  }

  #growOrFlush(need: number): void {
    if (need > this.#stage.length / 2) {
      const n = new Uint8Array(Math.max(need * 2, this.#stage.length * 2));
      n.set(this.#stage.subarray(0, this.#staged));
      this.#stage = n;
    } else this.flush();
  }

  #fatal(err: NvmeError): void {
    if (this.#lost !== null) return;
    this.#lost = err;
    if (err instanceof ProtocolError && err.fes !== 0 && err.reason !== "term" && !this.#sock.destroyed) {
      // The peer broke the protocol: say why before closing (TermReq never carries digests).
      try {
        this.#sock.end(encodeTermReq(PduType.H2C_TERM_REQ, { fes: err.fes, fei: err.fei, header: this.#parser.header }));
      } catch { /* socket already failing */ }
    }
    this.#sock.destroy();
    this.waiter.arrived();
    this.onLost?.(err);
  }

  #onPdu(hdr: Uint8Array, data: Uint8Array | null, ddgstOk: boolean): void {
    this.counters.pdusIn++;
    switch (hdr[Ch.TYPE]) {
      case PduType.CAPSULE_RESP: {
        const cid = get16(hdr, RespOff.CID);
        let sf = get16(hdr, RespOff.STATUS) >>> 1;
        if (sf === 0 && this.#badData(cid)) sf = SF_DATA_TRANSFER_ERROR;
        this.#cidSlot[cid] = 0;
        this.#queueCqe(cid, sf, get32(hdr, RespOff.DW0), get32(hdr, RespOff.DW1));
        return;
      }
      case PduType.C2H_DATA:
        this.#onC2hData(hdr, data!, ddgstOk);
        return;
      case PduType.R2T:
        this.#onR2t(hdr);
        return;
      case PduType.C2H_TERM_REQ: {
        const t = decodeTermReq(hdr.subarray(0, Hlen.SHORT));
        throw new ProtocolError("term", `target terminated the connection: FES ${t.fes}, FEI ${t.fei}`, 0, t.fei);
      }
      default:
        throw new ProtocolError("sequence", `unexpected PDU type 0x${hdr[Ch.TYPE].toString(16)}`, Fes.PDU_SEQUENCE_ERROR);
    }
  }

  #queueCqe(cid: number, sf: number, dw0: number, dw1: number): void {
    const cq = this.#cq, cap = cq.length >> 2;
    if (this.#cqCount === cap) throw new ProtocolError("sequence", "more completions than commands", Fes.PDU_SEQUENCE_ERROR);
    const i = ((this.#cqHead + this.#cqCount) % cap) << 2;
    cq[i] = cid;
    cq[i + 1] = sf;
    cq[i + 2] = dw0;
    cq[i + 3] = dw1;
    this.#cqCount++;
    this.waiter.arrived();
  }

  #slotFor(cid: number, dir: number, what: string): number {
    const s = this.#cidSlot[cid] - 1;
    // The slot must still carry this cid: data for an earlier command in the slot never lands in a later one's memory.
    if (s < 0 || this.#slotCid[s] !== cid || this.#slotDir[s] !== dir) {
      throw new ProtocolError("sequence", `${what} for command ${cid}, which has no such transfer`, Fes.INVALID_HEADER_FIELD, DataOff.CCCID);
    }
    return s;
  }

  /** True if command `cid` received data with a wrong digest. */
  #badData(cid: number): boolean {
    const s = this.#cidSlot[cid] - 1;
    return s >= 0 && this.#slotCid[s] === cid && this.#slotBad[s] === 1;
  }

  /** Slot of the C2HData in `hdr` carrying `n` bytes, checked against the command's read. */
  #c2hSlot(hdr: Uint8Array, n: number): number {
    const cid = get16(hdr, DataOff.CCCID);
    const s = this.#slotFor(cid, DIR_C2H, "C2HData");
    const datao = get32(hdr, DataOff.DATAO);
    if (datao !== this.#slotDone[s] || datao + n > this.#slotLen[s]) {
      throw new ProtocolError("range", `C2HData at ${datao}+${n} for a ${this.#slotLen[s]}-byte read (${this.#slotDone[s]} received)`, Fes.DATA_OUT_OF_RANGE);
    }
    return s;
  }

  /** The parser's {@link DataPlacer}: where in the read's memory a C2HData's data goes. */
  #c2hPlace(hdr: Uint8Array, n: number): Uint8Array | null {
    if (hdr[Ch.TYPE] !== PduType.C2H_DATA) return null;
    const s = this.#c2hSlot(hdr, n);
    const iova = this.#slotIova[s];
    const mem = this.#mem.bytesAt(iova);
    if (mem === null) throw new ConnectionLostError(`read buffer of command ${get16(hdr, DataOff.CCCID)} was freed`);
    const at = (iova % 0x1_0000_0000) + get32(hdr, DataOff.DATAO);
    return mem.subarray(at, at + n);
  }

  #onC2hData(hdr: Uint8Array, data: Uint8Array, ddgstOk: boolean): void {
    const cid = get16(hdr, DataOff.CCCID), n = data.length;
    const s = this.#c2hSlot(hdr, n);
    const datao = get32(hdr, DataOff.DATAO);
    const iova = this.#slotIova[s];
    const mem = this.#mem.bytesAt(iova);
    if (mem === null) throw new ConnectionLostError(`read buffer of command ${cid} was freed`);
    const at = (iova % 0x1_0000_0000) + datao;
    // Data that failed its digest is not copied; the command fails with Data Transfer Error, as on Linux.
    if (!ddgstOk) this.#slotBad[s] = 1;
    else if (data.buffer !== mem.buffer || data.byteOffset !== mem.byteOffset + at) mem.set(data, at); // not placed already
    this.#slotDone[s] = datao + n;
    this.counters.c2hData++;
    const flags = hdr[Ch.FLAGS];
    if (flags & PduFlag.SUCCESS) {
      if (datao + n !== this.#slotLen[s]) throw new ProtocolError("sequence", "C2HData SUCCESS before all data", Fes.PDU_SEQUENCE_ERROR);
      const sf = this.#slotBad[s] ? SF_DATA_TRANSFER_ERROR : 0;
      this.#cidSlot[cid] = 0;
      this.#queueCqe(cid, sf, 0, 0); // no CapsuleResp follows
    }
  }

  #onR2t(hdr: Uint8Array): void {
    const cid = get16(hdr, R2tOff.CCCID);
    const s = this.#slotFor(cid, DIR_H2C, "R2T");
    const ttag = get16(hdr, R2tOff.TTAG), r2to = get32(hdr, R2tOff.R2TO), r2tl = get32(hdr, R2tOff.R2TL);
    if (r2tl === 0 || r2to + r2tl > this.#slotLen[s] || r2to < this.#slotDone[s]) {
      throw new ProtocolError("range", `R2T ${r2to}+${r2tl} for a ${this.#slotLen[s]}-byte write`, Fes.DATA_OUT_OF_RANGE);
    }
    this.counters.r2t++;
    const iova = this.#slotIova[s];
    const mem = this.#mem.bytesAt(iova);
    if (mem === null) throw new ConnectionLostError(`write buffer of command ${cid} was freed`);
    const base = iova % 0x1_0000_0000;
    const max = this.#parserMaxH2c();
    this.flush(); // keep capsule order ahead of data order
    const sock = this.#sock, h = this.#hdr, dg = this.digests;
    sock.cork(); // header, data and digest of each H2CData leave in one writev
    for (let o = r2to; o < r2to + r2tl;) {
      const n = Math.min(max, r2to + r2tl - o);
      const last = o + n === r2to + r2tl;
      const l = writeDataPdu(h, PduType.H2C_DATA, { cccid: cid, ttag, datao: o, datal: n, last, success: false }, dg, this.#h2cAlign);
      const headLen = sealPdu(h, l, null);
      const view = mem.subarray(base + o, base + o + n);
      // The command's memory stays busy until its completion, which follows the target's receipt: no copy.
      sock.write(Buffer.from(h.subarray(0, headLen)));
      sock.write(view);
      if (l.flags & PduFlag.DDGST) {
        const d = Buffer.alloc(DIGEST_SIZE);
        put32(d, 0, crc32c(view));
        sock.write(d);
      }
      this.counters.pdusOut++;
      o += n;
    }
    sock.uncork();
    this.#slotDone[s] = r2to + r2tl;
  }

  #parserMaxH2c(): number {
    return Math.min(this.icResp.maxh2cdata, 0x7fff_ffff);
  }
}
