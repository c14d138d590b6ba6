/**
 * A streaming NVMe/TCP PDU parser: fed the byte chunks a socket delivers (any
 * split, several PDUs or part of one per chunk), it hands each whole PDU to a
 * callback after checking its type for this side of the connection, HLEN,
 * PDO, PLEN, digest flags and both digests. Faults throw a
 * {@link ProtocolError} carrying the TermReq FES/FEI to answer with; the
 * parser is dead afterwards (NVMe/TCP errors are fatal to the connection).
 * @module
 */
import { ProtocolError } from "../nvme/errors.ts";
import { crc32c, crc32cFinish, crc32cUpdate, CRC32C_INIT } from "./crc32c.ts";
import {
  Ch,
  DataOff,
  DIGEST_SIZE,
  type Digests,
  expectedHlen,
  Fes,
  get32,
  Hlen,
  isDigestless,
  PduFlag,
  PduType,
  TERM_MAX_COPY,
} from "./pdu.ts";

/** Which end of the connection the parser reads for: a host reads C2H PDUs, a target H2C ones. */
export type PduRole = "host" | "target";

/**
 * Receives each whole PDU. `hdr` holds the HLEN header bytes (and the header
 * digest); `data` the data bytes (no pad, no digest) or null. Both views are
 * valid only during the call: the parser reuses their memory. `dataDigestOk`
 * is false only with {@link PduParserOptions.softDataDigest} when the data
 * digest did not match.
 */
export type PduHandler = (hdr: Uint8Array, data: Uint8Array | null, dataDigestOk: boolean) => void;

/**
 * Chooses where the data of an H2CData/C2HData PDU lands, called once its
 * header has passed the checks (`hdr` valid during the call only): a view of
 * at least `len` bytes receives the data straight from the socket chunks (one
 * copy, no staging buffer; the handler then gets that same view), or null for
 * the parser's own buffer. May throw a ProtocolError (e.g. a transfer the
 * receiver does not expect). A placer on the per-IO path may instead return
 * the receiving memory whole and set {@link PduParser.placeAt} to where the
 * data starts in it: no view is made per PDU, and the handler then gets that
 * whole memory as `data` (the data's length is {@link PduParser.dataLength}).
 */
export type DataPlacer = (hdr: Uint8Array, len: number) => Uint8Array | null;

/** Parser limits and the digests in force. */
export interface PduParserOptions {
  /** Whose PDUs are accepted. */
  role: PduRole;
  /** Most data bytes one PDU may carry (MAXH2CDATA, in-capsule size, or largest C2H transfer). */
  maxData: number;
  /** Digests in force from the first PDU on (normally set after IC with {@link PduParser.digests}). */
  digests?: Digests;
  /**
   * Deliver a PDU whose data digest is wrong (flagged) instead of failing the
   * connection: a Linux host fails only that command (Data Transfer Error).
   */
  softDataDigest?: boolean;
  /** The IC exchange already happened on this connection (another thread did it and handed the socket over). */
  afterIc?: boolean;
}

const S_CH = 0, S_HDR = 1, S_PAD = 2, S_DATA = 3, S_DDGST = 4;

/** Incremental PDU parser for one connection. */
export class PduParser {
  /** Digests negotiated; change them from the ICResp/ICReq callback, before the next PDU. */
  digests: Digests;
  /** Most data bytes one PDU may carry; may be changed between PDUs. */
  maxData: number;
  /** PDUs delivered. */
  pdus = 0;
  /** Where data PDUs' data should land (see {@link DataPlacer}); null: the parser's buffer. */
  placeData: DataPlacer | null = null;
  /**
   * Set by a {@link DataPlacer} that returns its memory whole: the data's offset in it (-1 before
   * each placement and once the PDU is delivered, or when the placer returned a view).
   */
  placeAt: number = -1;
  readonly #role: PduRole;
  readonly #soft: boolean;
  readonly #onPdu: PduHandler;
  readonly #hdr = new Uint8Array(Hlen.IC + DIGEST_SIZE);
  #data: Uint8Array;
  readonly #dd = new Uint8Array(DIGEST_SIZE);
  #state = S_CH;
  #have = 0; // bytes of the current part held
  #need = 0; // bytes of the current part expected
  #hd = 0;
  #ddLen = 0;
  #dataLen = 0;
  #dataView: Uint8Array | null = null; // zero-copy view into a chunk, when the data lay in one
  #place: Uint8Array | null = null; // the placer's destination for the current PDU's data
  #placeOff = 0; // where in #place the data starts (placeAt, or 0 for a view)
  // The last view made of a chunk's data range: a chunk laid out as the one before (QD1's steady
  // [C2HData header][data][CapsuleResp] in a reused receive buffer) reuses it, no view per PDU.
  #srcChunk: Uint8Array | null = null;
  #srcView: Uint8Array | null = null;
  #srcAt = 0;
  #crc = CRC32C_INIT; // running data digest, updated as pieces arrive
  #icSeen = false;
  #dead: ProtocolError | null = null;

  /** A parser calling `onPdu` for each whole PDU. */
  constructor(opts: PduParserOptions, onPdu: PduHandler) {
    this.#role = opts.role;
    this.#soft = !!opts.softDataDigest;
    this.#icSeen = !!opts.afterIc;
    this.maxData = opts.maxData;
    this.digests = opts.digests ?? { hdgst: false, ddgst: false };
    this.#onPdu = onPdu;
    this.#data = new Uint8Array(Math.min(opts.maxData, 64 * 1024) + DIGEST_SIZE);
  }

  /** The error that killed the parser, or null. */
  get error(): ProtocolError | null {
    return this.#dead;
  }

  /** Header bytes of the PDU being parsed or last parsed (what a TermReq copies back); reused memory. */
  get header(): Uint8Array {
    return this.#hdr.subarray(0, Math.min(Math.max(this.#hdr[Ch.HLEN], Ch.SIZE), Hlen.IC));
  }

  /** Data bytes of the PDU being parsed or just delivered. */
  get dataLength(): number {
    return this.#dataLen;
  }

  /** True between PDUs (no partial PDU held). */
  get idle(): boolean {
    return this.#state === S_CH && this.#have === 0;
  }

  /**
   * Consume the first `length` bytes of `chunk` (default all; a reused receive buffer needs no
   * subarray per read); calls the handler for each PDU it completes. Throws ProtocolError.
   * The caller may reuse `chunk`'s memory once this returns (a view of it may be kept for the next
   * call, only to be used again when that call passes the same `chunk`).
   */
  feed(chunk: Uint8Array, length: number = chunk.length): void {
    if (this.#dead) throw this.#dead;
    try {
      this.#feed(chunk, length);
    } catch (e) {
      if (e instanceof ProtocolError) this.#dead = e;
      throw e;
    }
  }

  /**
   * Bytes of the current data PDU's data still to come when they go to the
   * placer's memory and no data digest is running over them, else 0: the
   * caller may then read them straight into {@link dataWindow} (a socket recv
   * into the command's memory, no copy at all) and report with {@link dataReceived}.
   */
  get dataPending(): number {
    return this.#state === S_DATA && this.#place !== null && this.#ddLen === 0 && this.#dead === null
      ? this.#dataLen - this.#have
      : 0;
  }

  /** The placer's memory still to fill (valid while {@link dataPending} > 0; a new view per call). */
  dataWindow(): Uint8Array {
    return this.#place!.subarray(this.#placeOff + this.#have, this.#placeOff + this.#dataLen);
  }

  /** `n` bytes (at most {@link dataPending}) were written into {@link dataWindow} by the caller. */
  dataReceived(n: number): void {
    if (n <= 0 || n > this.dataPending) throw new RangeError(`dataReceived(${n}) with ${this.dataPending} pending`);
    this.#have += n;
    if (this.#have === this.#dataLen) {
      try {
        this.#afterData();
      } catch (e) {
        if (e instanceof ProtocolError) this.#dead = e;
        throw e;
      }
    }
  }

  #feed(b: Uint8Array, n: number): void {
    let i = 0;
    while (i < n) {
      switch (this.#state) {
        case S_CH: {
          const take = Math.min(Ch.SIZE - this.#have, n - i);
          for (let k = 0; k < take; k++) this.#hdr[this.#have + k] = b[i + k];
          this.#have += take;
          i += take;
          if (this.#have < Ch.SIZE) return;
          this.#checkCh();
          break;
        }
        case S_HDR: {
          const take = Math.min(this.#need - this.#have, n - i);
          for (let k = 0; k < take; k++) this.#hdr[this.#have + k] = b[i + k];
          this.#have += take;
          i += take;
          if (this.#have < this.#need) return;
          this.#checkHeader();
          break;
        }
        case S_PAD: {
          const take = Math.min(this.#need - this.#have, n - i);
          this.#have += take;
          i += take;
          if (this.#have < this.#need) return;
          this.#startData();
          break;
        }
        case S_DATA: {
          const place = this.#place;
          if (place !== null) {
            // Straight into the receiver's memory: the only host-side copy.
            const take = Math.min(this.#dataLen - this.#have, n - i);
            place.set(this.#slice(b, i, take), this.#placeOff + this.#have);
            if (this.#ddLen > 0) this.#crc = crc32cUpdate(this.#crc, b, i, i + take);
            this.#have += take;
            i += take;
            if (this.#have < this.#dataLen) return;
          } else if (this.#have === 0 && n - i >= this.#dataLen + this.#ddLen) {
            // Whole data (and its digest) in this chunk: hand a view, no copy. Never a view that
            // outlives this feed: a socket may reuse the chunk's memory for its next read.
            this.#dataView = b.subarray(i, i + this.#dataLen);
            if (this.#ddLen > 0) this.#crc = crc32cUpdate(this.#crc, b, i, i + this.#dataLen);
            i += this.#dataLen;
            this.#have = this.#dataLen;
          } else {
            const take = Math.min(this.#dataLen - this.#have, n - i);
            this.#data.set(this.#slice(b, i, take), this.#have);
            if (this.#ddLen > 0) this.#crc = crc32cUpdate(this.#crc, b, i, i + take);
            this.#have += take;
            i += take;
            if (this.#have < this.#dataLen) return;
          }
          this.#afterData();
          break;
        }
        case S_DDGST: {
          const take = Math.min(DIGEST_SIZE - this.#have, n - i);
          for (let k = 0; k < take; k++) this.#dd[this.#have + k] = b[i + k];
          this.#have += take;
          i += take;
          if (this.#have < DIGEST_SIZE) return;
          const data = this.#current();
          const want = crc32cFinish(this.#crc);
          const ok = get32(this.#dd, 0) === want;
          if (!ok && !this.#soft) {
            throw new ProtocolError("ddgst", `data digest mismatch (0x${get32(this.#dd, 0).toString(16)}, computed 0x${want.toString(16)})`);
          }
          this.#deliver(data, ok);
          break;
        }
      }
    }
  }

  /** `b[i, i + n)` as a view: `b` itself when whole, the last view when the same range of the same chunk. */
  #slice(b: Uint8Array, i: number, n: number): Uint8Array {
    if (n === b.length) return b;
    const v = this.#srcView;
    if (v !== null && this.#srcChunk === b && this.#srcAt === i && v.length === n) return v;
    this.#srcChunk = b;
    this.#srcAt = i;
    return this.#srcView = b.subarray(i, i + n);
  }

  #accepts(type: number): boolean {
    if (this.#role === "host") {
      return type === PduType.IC_RESP || type === PduType.C2H_TERM_REQ || type === PduType.CAPSULE_RESP ||
        type === PduType.C2H_DATA || type === PduType.R2T;
    }
    return type === PduType.IC_REQ || type === PduType.H2C_TERM_REQ || type === PduType.CAPSULE_CMD ||
      type === PduType.H2C_DATA;
  }

  #checkCh(): void {
    const h = this.#hdr;
    const type = h[Ch.TYPE], flags = h[Ch.FLAGS], hlen = h[Ch.HLEN], plen = get32(h, Ch.PLEN);
    if (!this.#accepts(type)) {
      throw new ProtocolError("type", `unexpected PDU type 0x${type.toString(16)} for a ${this.#role}`, Fes.INVALID_HEADER_FIELD, Ch.TYPE);
    }
    const isIc = type === PduType.IC_REQ || type === PduType.IC_RESP;
    if (isIc === this.#icSeen) {
      throw new ProtocolError("sequence", isIc ? "second ICReq/ICResp" : "PDU before ICReq/ICResp", Fes.PDU_SEQUENCE_ERROR);
    }
    if (hlen !== expectedHlen(type)) {
      throw new ProtocolError("hlen", `PDU type 0x${type.toString(16)} with HLEN ${hlen}`, Fes.INVALID_HEADER_FIELD, Ch.HLEN);
    }
    const digestless = isDigestless(type);
    this.#hd = !digestless && this.digests.hdgst ? DIGEST_SIZE : 0;
    if (!digestless && ((flags & PduFlag.HDGST) !== 0) !== this.digests.hdgst) {
      throw new ProtocolError("flags", `HDGSTF ${flags & PduFlag.HDGST ? "set" : "clear"} against the negotiated header digest`, Fes.INVALID_HEADER_FIELD, Ch.FLAGS);
    }
    if (digestless && (flags & (PduFlag.HDGST | PduFlag.DDGST)) !== 0) {
      throw new ProtocolError("flags", "digest flags on an IC or TermReq PDU", Fes.INVALID_HEADER_FIELD, Ch.FLAGS);
    }
    const term = type === PduType.H2C_TERM_REQ || type === PduType.C2H_TERM_REQ;
    const min = hlen + this.#hd;
    const max = term ? Hlen.SHORT + TERM_MAX_COPY : isIc ? Hlen.IC : min + 255 + this.maxData + DIGEST_SIZE;
    const carriesData = type === PduType.CAPSULE_CMD || type === PduType.H2C_DATA || type === PduType.C2H_DATA;
    if (carriesData && plen > max) {
      throw new ProtocolError("range", `PDU type 0x${type.toString(16)} with PLEN ${plen}: more data than ${this.maxData} bytes`, Fes.DATA_LIMIT_EXCEEDED);
    }
    if (plen < min || plen > max) {
      throw new ProtocolError("plen", `PDU type 0x${type.toString(16)} with PLEN ${plen} (allowed ${min}..${max})`, Fes.INVALID_HEADER_FIELD, Ch.PLEN);
    }
    this.#need = min;
    this.#state = S_HDR;
  }

  #checkHeader(): void {
    const h = this.#hdr;
    const type = h[Ch.TYPE], flags = h[Ch.FLAGS], hlen = h[Ch.HLEN], pdo = h[Ch.PDO], plen = get32(h, Ch.PLEN);
    if (this.#hd > 0) {
      const want = crc32c(h, 0, hlen);
      if (get32(h, hlen) !== want) {
        throw new ProtocolError("hdgst", `header digest mismatch (0x${get32(h, hlen).toString(16)}, computed 0x${want.toString(16)})`, Fes.HEADER_DIGEST_ERROR);
      }
    }
    const end = hlen + this.#hd;
    this.#dataLen = 0;
    this.#ddLen = 0;
    if (type === PduType.H2C_TERM_REQ || type === PduType.C2H_TERM_REQ) {
      this.#dataLen = plen - end; // the copied header
    } else if (type === PduType.CAPSULE_CMD || type === PduType.H2C_DATA || type === PduType.C2H_DATA) {
      if (plen > end) {
        if (pdo < end || pdo % 4 !== 0 || pdo >= plen) {
          throw new ProtocolError("pdo", `PDO ${pdo} (header ends at ${end}, PLEN ${plen})`, Fes.INVALID_HEADER_FIELD, Ch.PDO);
        }
        if (((flags & PduFlag.DDGST) !== 0) !== this.digests.ddgst) {
          throw new ProtocolError("flags", `DDGSTF ${flags & PduFlag.DDGST ? "set" : "clear"} against the negotiated data digest`, Fes.INVALID_HEADER_FIELD, Ch.FLAGS);
        }
        this.#ddLen = this.digests.ddgst ? DIGEST_SIZE : 0;
        this.#dataLen = plen - pdo - this.#ddLen;
        if (this.#dataLen <= 0) {
          throw new ProtocolError("plen", `PLEN ${plen} leaves no data after PDO ${pdo}`, Fes.INVALID_HEADER_FIELD, Ch.PLEN);
        }
        if (this.#dataLen > this.maxData) {
          throw new ProtocolError("range", `${this.#dataLen} data bytes in one PDU (limit ${this.maxData})`, Fes.DATA_LIMIT_EXCEEDED);
        }
      } else if ((flags & PduFlag.DDGST) !== 0) {
        throw new ProtocolError("flags", "DDGSTF on a PDU without data", Fes.INVALID_HEADER_FIELD, Ch.FLAGS);
      }
      if (type !== PduType.CAPSULE_CMD) {
        const datal = get32(h, DataOff.DATAL);
        if (datal === 0 || datal !== this.#dataLen) {
          throw new ProtocolError("plen", `DATAL ${datal} but ${this.#dataLen} data bytes in the PDU`, Fes.INVALID_HEADER_FIELD, DataOff.DATAL);
        }
        if ((flags & PduFlag.SUCCESS) !== 0 && ((flags & PduFlag.LAST_PDU) === 0 || type !== PduType.C2H_DATA)) {
          throw new ProtocolError("flags", "SUCCESS without LAST_PDU", Fes.INVALID_HEADER_FIELD, Ch.FLAGS);
        }
      }
    } else if (plen !== end) {
      throw new ProtocolError("plen", `PDU type 0x${type.toString(16)} with PLEN ${plen} (expected ${end})`, Fes.INVALID_HEADER_FIELD, Ch.PLEN);
    }
    if (this.#dataLen === 0) {
      this.#deliver(null);
      return;
    }
    const isTerm = type === PduType.H2C_TERM_REQ || type === PduType.C2H_TERM_REQ;
    this.#have = 0;
    this.#need = isTerm ? 0 : pdo - end;
    if (this.#need > 0) this.#state = S_PAD;
    else this.#startData();
  }

  #startData(): void {
    this.#dataView = null;
    this.#place = null;
    this.#placeOff = 0;
    this.#crc = CRC32C_INIT;
    const type = this.#hdr[Ch.TYPE];
    if (this.placeData !== null && (type === PduType.C2H_DATA || type === PduType.H2C_DATA)) {
      this.placeAt = -1;
      const v = this.placeData(this.#hdr, this.#dataLen);
      if (v !== null) {
        const at = this.placeAt >= 0 ? this.placeAt : 0;
        if (v.length < at + this.#dataLen) throw new RangeError(`data placement of ${v.length - at} bytes for ${this.#dataLen}`);
        this.#place = v;
        this.#placeOff = at;
      }
    }
    if (this.#place === null && this.#data.length < this.#dataLen) {
      this.#data = new Uint8Array(Math.max(this.#dataLen, this.#data.length * 2));
    }
    this.#have = 0;
    this.#state = S_DATA;
  }

  /** The current PDU's whole data: the placer's view, a view into the chunk, or the parser's buffer. */
  #current(): Uint8Array {
    if (this.#place !== null) return this.placeAt >= 0 ? this.#place : this.#place.subarray(0, this.#dataLen);
    return this.#dataView ?? this.#data.subarray(0, this.#dataLen);
  }

  #afterData(): void {
    this.#have = 0;
    if (this.#ddLen > 0) {
      this.#state = S_DDGST;
      return;
    }
    this.#deliver(this.#current());
  }

  #deliver(data: Uint8Array | null, ok = true): void {
    const type = this.#hdr[Ch.TYPE];
    this.#state = S_CH;
    this.#have = 0;
    this.#dataView = null;
    this.#place = null;
    if (type === PduType.IC_REQ || type === PduType.IC_RESP) this.#icSeen = true;
    this.pdus++;
    this.#onPdu(this.#hdr, data, ok);
    this.placeAt = -1;
  }
}
