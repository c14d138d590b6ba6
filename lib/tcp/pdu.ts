/**
 * NVMe/TCP PDU layouts and codecs (NVMe/TCP 1.0, as Linux and SPDK put it on
 * the wire): the common header, ICReq/ICResp, CapsuleCmd/CapsuleResp,
 * H2CData/C2HData, R2T, the TermReqs, digest flags and the HLEN/PDO/PLEN
 * rules, and the SGL descriptors a capsule's SQE carries. Every offset is a
 * named constant here; encoders write into caller-provided memory so the hot
 * path allocates nothing. All multi-byte fields are little-endian.
 * @module
 */
import { crc32c } from "./crc32c.ts";

/** PDU-Type values (common header byte 0). Type 0x08 is unused. */
export const PduType = {
  IC_REQ: 0x00,
  IC_RESP: 0x01,
  H2C_TERM_REQ: 0x02,
  C2H_TERM_REQ: 0x03,
  CAPSULE_CMD: 0x04,
  CAPSULE_RESP: 0x05,
  H2C_DATA: 0x06,
  C2H_DATA: 0x07,
  R2T: 0x09,
} as const;

/** Common header FLAGS bits. */
export const PduFlag = {
  /** A header digest follows the header. */
  HDGST: 0x01,
  /** A data digest follows the data. */
  DDGST: 0x02,
  /** Last data PDU of a command (H2CData/C2HData). */
  LAST_PDU: 0x04,
  /** C2HData only, with LAST_PDU: the command succeeded and no CapsuleResp follows. */
  SUCCESS: 0x08,
} as const;

/** Common header (CH) field offsets; the CH is 8 bytes. */
export const Ch = {
  TYPE: 0,
  FLAGS: 1,
  HLEN: 2,
  PDO: 3,
  PLEN: 4,
  SIZE: 8,
} as const;

/** Fixed HLEN of each PDU kind (CH + PDU-specific header, digest excluded). */
export const Hlen = {
  IC: 128,
  CAPSULE_CMD: 72,
  /** CapsuleResp, H2CData, C2HData, R2T and the TermReqs. */
  SHORT: 24,
} as const;

/** Bytes of a header or data digest (CRC32C). */
export const DIGEST_SIZE = 4;

/** ICReq/ICResp fields. ICReq carries HPDA and MAXR2T, ICResp CPDA and MAXH2CDATA at the same offsets. */
export const Ic = {
  PFV: 8,
  /** HPDA in ICReq, CPDA in ICResp: data alignment, 0's based dwords. */
  PDA: 10,
  DGST: 11,
  /** MAXR2T (0's based) in ICReq, MAXH2CDATA (bytes) in ICResp. */
  MAX: 12,
} as const;

/** ICReq/ICResp DGST bits. */
export const IcDigest = { HDGST: 0x01, DDGST: 0x02 } as const;

/** The only PDU format version (NVMe/TCP 1.0). */
export const PFV_1_0 = 0;

/** Smallest MAXH2CDATA a host accepts (Linux: NVME_TCP_MIN_MAXH2CDATA). */
export const MIN_MAXH2CDATA = 4096;

/** CapsuleCmd: the SQE follows the CH. CapsuleResp: the CQE follows the CH. */
export const Capsule = {
  SQE: 8,
  CQE: 8,
} as const;

/** CQE fields inside a CapsuleResp (offsets from the start of the PDU). */
export const RespOff = {
  DW0: 8,
  DW1: 12,
  SQHD: 16,
  SQID: 18,
  CID: 20,
  /** Status field << 1 | phase (phase is meaningless on TCP). */
  STATUS: 22,
} as const;

/** H2CData/C2HData header fields. */
export const DataOff = {
  CCCID: 8,
  /** H2CData only: the transfer tag from the R2T. */
  TTAG: 10,
  DATAO: 12,
  DATAL: 16,
} as const;

/** R2T header fields. */
export const R2tOff = {
  CCCID: 8,
  TTAG: 10,
  R2TO: 12,
  R2TL: 16,
} as const;

/** H2CTermReq/C2HTermReq fields. FEI is read at offset 10 (6.1.192's __le16 feil/feiu). */
export const TermOff = {
  FES: 8,
  FEI: 10,
  /** Copy of the offending PDU header. */
  HDR: 24,
} as const;

/** Most header bytes a TermReq copies; so PLEN is 24..152. */
export const TERM_MAX_COPY = 128;

/** Fatal Error Status values of a TermReq. */
export const Fes = {
  INVALID_HEADER_FIELD: 1,
  PDU_SEQUENCE_ERROR: 2,
  HEADER_DIGEST_ERROR: 3,
  DATA_OUT_OF_RANGE: 4,
  DATA_LIMIT_EXCEEDED: 5,
  UNSUPPORTED_PARAMETER: 6,
} as const;

/**
 * SGL descriptor in an SQE's DPTR (bytes 24..39): address @24, length @32,
 * identifier @39 = type << 4 | subtype. In dwords: 6/7 address, 8 length,
 * the identifier is the top byte of dword 9.
 */
export const Sgl = {
  ADDR: 24,
  LEN: 32,
  ID: 39,
  DW_ADDR_LO: 6,
  DW_ADDR_HI: 7,
  DW_LEN: 8,
  DW_ID: 9,
  /** Data Block, Offset subtype: in-capsule data at offset ADDR (ICDOFF 0) from the capsule's data. */
  DATA_BLOCK_OFFSET: 0x01,
  /** Transport SGL Data Block, transport specific: data moves in H2CData/C2HData; length 0 = no data. */
  TRANSPORT_DATA_BLOCK: 0x5a,
} as const;

/** CDW0 bits 15:14 = 01b (PSDT: SGL, metadata contiguous); nvmet refuses commands without it. */
export const PSDT_SGL_CDW0 = 0x4000;

/** A decoded common header. */
export interface CommonHeader {
  /** PDU-Type. */
  type: number;
  /** FLAGS. */
  flags: number;
  /** HLEN. */
  hlen: number;
  /** PDO (0 without data). */
  pdo: number;
  /** PLEN. */
  plen: number;
}

/** Digest options a connection negotiated. */
export interface Digests {
  /** Header digest on every PDU but IC and TermReq. */
  hdgst: boolean;
  /** Data digest on every PDU that carries data. */
  ddgst: boolean;
}

/** Where the parts of a PDU lie. */
export interface PduLayout {
  /** Header bytes (HLEN). */
  hlen: number;
  /** Data offset (0 when no data). */
  pdo: number;
  /** Total length. */
  plen: number;
  /** FLAGS digest bits to set. */
  flags: number;
}

/** True for the PDU types that never carry digests (ICReq/ICResp, TermReqs). */
export function isDigestless(type: number): boolean {
  return type <= PduType.C2H_TERM_REQ;
}

/** HLEN a PDU type must have, or -1 for an unknown type. */
export function expectedHlen(type: number): number {
  switch (type) {
    case PduType.IC_REQ:
    case PduType.IC_RESP:
      return Hlen.IC;
    case PduType.CAPSULE_CMD:
      return Hlen.CAPSULE_CMD;
    case PduType.H2C_TERM_REQ:
    case PduType.C2H_TERM_REQ:
    case PduType.CAPSULE_RESP:
    case PduType.H2C_DATA:
    case PduType.C2H_DATA:
    case PduType.R2T:
      return Hlen.SHORT;
    default:
      return -1;
  }
}

/**
 * Data alignment in bytes for a 0's-based PDA (HPDA/CPDA) value: PDO is a
 * multiple of it, padded after the header (and its digest).
 */
export function pdaBytes(pda: number): number {
  return (pda + 1) * 4;
}

/**
 * HLEN, PDO, PLEN and digest flags of a PDU of `type` with `dataLen` data
 * bytes under `dg`, data aligned to `align` bytes (PDA; 4 = none). Written
 * into `into` when given (a caller on the per-IO path reuses one object).
 */
export function layout(type: number, dataLen: number, dg: Digests, align = 4, into?: PduLayout): PduLayout {
  const hlen = expectedHlen(type);
  const digests = !isDigestless(type);
  const hd = digests && dg.hdgst ? DIGEST_SIZE : 0;
  const dd = digests && dg.ddgst && dataLen > 0 ? DIGEST_SIZE : 0;
  const flags = (hd ? PduFlag.HDGST : 0) | (dd ? PduFlag.DDGST : 0);
  const pdo = dataLen === 0 ? 0 : Math.ceil((hlen + hd) / align) * align;
  const plen = dataLen === 0 ? hlen + hd : pdo + dataLen + dd;
  if (into === undefined) return { hlen, pdo, plen, flags };
  into.hlen = hlen;
  into.pdo = pdo;
  into.plen = plen;
  into.flags = flags;
  return into;
}

/** Write a common header at `off` of `b`. */
export function writeCh(b: Uint8Array, type: number, flags: number, hlen: number, pdo: number, plen: number, off = 0): void {
  b[off + Ch.TYPE] = type;
  b[off + Ch.FLAGS] = flags;
  b[off + Ch.HLEN] = hlen;
  b[off + Ch.PDO] = pdo;
  put32(b, off + Ch.PLEN, plen);
}

/** Read the common header at `off` of `b`. */
export function readCh(b: Uint8Array, off = 0): CommonHeader {
  return {
    type: b[off + Ch.TYPE],
    flags: b[off + Ch.FLAGS],
    hlen: b[off + Ch.HLEN],
    pdo: b[off + Ch.PDO],
    plen: get32(b, off + Ch.PLEN),
  };
}

/** Little-endian 16-bit read. */
export function get16(b: Uint8Array, off: number): number {
  return b[off] | (b[off + 1] << 8);
}

/** Little-endian 32-bit read (unsigned). */
export function get32(b: Uint8Array, off: number): number {
  return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
}

/** Little-endian 16-bit write. */
export function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
}

/** Little-endian 32-bit write. */
export function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v & 0xff;
  b[off + 1] = (v >>> 8) & 0xff;
  b[off + 2] = (v >>> 16) & 0xff;
  b[off + 3] = (v >>> 24) & 0xff;
}

// ---- ICReq / ICResp ------------------------------------------------------------------------

/** ICReq fields. */
export interface IcReq {
  /** PDU format version (0). */
  pfv: number;
  /** Host PDU data alignment (0's based dwords); Linux targets require 0. */
  hpda: number;
  /** Ask for header digests. */
  hdgst: boolean;
  /** Ask for data digests. */
  ddgst: boolean;
  /** Most outstanding R2Ts per command, 0's based. */
  maxr2t: number;
}

/** ICResp fields. */
export interface IcResp {
  /** PDU format version (0). */
  pfv: number;
  /** Controller PDU data alignment (0's based dwords); Linux hosts require 0. */
  cpda: number;
  /** Header digests granted. */
  hdgst: boolean;
  /** Data digests granted. */
  ddgst: boolean;
  /** Most data bytes in one H2CData PDU. */
  maxh2cdata: number;
}

function encodeIc(b: Uint8Array, type: number, pfv: number, pda: number, hd: boolean, dd: boolean, max: number): Uint8Array {
  b.fill(0, 0, Hlen.IC);
  writeCh(b, type, 0, Hlen.IC, 0, Hlen.IC);
  put16(b, Ic.PFV, pfv);
  b[Ic.PDA] = pda;
  b[Ic.DGST] = (hd ? IcDigest.HDGST : 0) | (dd ? IcDigest.DDGST : 0);
  put32(b, Ic.MAX, max);
  return b.subarray(0, Hlen.IC);
}

/** Encode an ICReq (128 bytes) into `b` (default: a new buffer); returns the PDU bytes. */
export function encodeIcReq(r: Partial<IcReq> = {}, b: Uint8Array = new Uint8Array(Hlen.IC)): Uint8Array {
  return encodeIc(b, PduType.IC_REQ, r.pfv ?? PFV_1_0, r.hpda ?? 0, !!r.hdgst, !!r.ddgst, r.maxr2t ?? 0);
}

/** Encode an ICResp (128 bytes) into `b` (default: a new buffer); returns the PDU bytes. */
export function encodeIcResp(r: Partial<IcResp> & { maxh2cdata: number }, b: Uint8Array = new Uint8Array(Hlen.IC)): Uint8Array {
  return encodeIc(b, PduType.IC_RESP, r.pfv ?? PFV_1_0, r.cpda ?? 0, !!r.hdgst, !!r.ddgst, r.maxh2cdata);
}

/** Decode the ICReq fields of a whole ICReq PDU. */
export function decodeIcReq(b: Uint8Array): IcReq {
  return {
    pfv: get16(b, Ic.PFV),
    hpda: b[Ic.PDA],
    hdgst: (b[Ic.DGST] & IcDigest.HDGST) !== 0,
    ddgst: (b[Ic.DGST] & IcDigest.DDGST) !== 0,
    maxr2t: get32(b, Ic.MAX),
  };
}

/** Decode the ICResp fields of a whole ICResp PDU. */
export function decodeIcResp(b: Uint8Array): IcResp {
  return {
    pfv: get16(b, Ic.PFV),
    cpda: b[Ic.PDA],
    hdgst: (b[Ic.DGST] & IcDigest.HDGST) !== 0,
    ddgst: (b[Ic.DGST] & IcDigest.DDGST) !== 0,
    maxh2cdata: get32(b, Ic.MAX),
  };
}

// ---- CapsuleCmd / CapsuleResp ----------------------------------------------------------------

/**
 * Write a CapsuleCmd header into `b` at `off`: CH and the 64-byte SQE (`sqe`,
 * 16 dwords, copied as is), for `dataLen` in-capsule bytes. Returns the layout;
 * the caller puts the header digest at HLEN, the data at PDO and the data
 * digest at PDO + dataLen. The layout is written into `into` when given (no
 * object per command).
 */
export function writeCapsuleCmd(b: Uint8Array, sqe: Uint32Array, dataLen: number, dg: Digests, off = 0, into?: PduLayout): PduLayout {
  const l = layout(PduType.CAPSULE_CMD, dataLen, dg, 4, into);
  writeCh(b, PduType.CAPSULE_CMD, l.flags, l.hlen, l.pdo, l.plen, off);
  for (let i = 0; i < 16; i++) put32(b, off + Capsule.SQE + i * 4, sqe[i]);
  return l;
}

/** A completion queue entry as a CapsuleResp carries it. */
export interface Cqe {
  /** Command specific DW0. */
  dw0: number;
  /** DW1. */
  dw1: number;
  /** SQ head pointer (0xFFFF with SQ flow control disabled). */
  sqhd: number;
  /** SQ id. */
  sqid: number;
  /** Command id. */
  cid: number;
  /** Status field (15 bits, phase stripped). */
  sf: number;
}

/** Write a CapsuleResp header (CH + CQE) into `b`; returns the layout (digest at 24 if negotiated). */
export function writeCapsuleResp(b: Uint8Array, c: Cqe, dg: Digests): PduLayout {
  const l = layout(PduType.CAPSULE_RESP, 0, dg);
  writeCh(b, PduType.CAPSULE_RESP, l.flags, l.hlen, 0, l.plen);
  put32(b, RespOff.DW0, c.dw0);
  put32(b, RespOff.DW1, c.dw1);
  put16(b, RespOff.SQHD, c.sqhd);
  put16(b, RespOff.SQID, c.sqid);
  put16(b, RespOff.CID, c.cid);
  put16(b, RespOff.STATUS, (c.sf & 0x7fff) << 1);
  return l;
}

/** Decode the CQE of a CapsuleResp PDU. */
export function decodeCapsuleResp(b: Uint8Array): Cqe {
  return {
    dw0: get32(b, RespOff.DW0),
    dw1: get32(b, RespOff.DW1),
    sqhd: get16(b, RespOff.SQHD),
    sqid: get16(b, RespOff.SQID),
    cid: get16(b, RespOff.CID),
    sf: get16(b, RespOff.STATUS) >>> 1,
  };
}

// ---- H2CData / C2HData / R2T ----------------------------------------------------------------------

/** Header fields of a data PDU (H2CData or C2HData). */
export interface DataHeader {
  /** CID of the command the data belongs to. */
  cccid: number;
  /** Transfer tag (H2CData; 0 in C2HData). */
  ttag: number;
  /** Offset into the command's data. */
  datao: number;
  /** Data bytes in this PDU. */
  datal: number;
  /** LAST_PDU flag. */
  last: boolean;
  /** SUCCESS flag (C2HData). */
  success: boolean;
}

/**
 * Write an H2CData or C2HData header into `b` for `h.datal` bytes; returns the
 * layout. `align` is the receiver's PDA in bytes (CPDA for H2C, HPDA for C2H).
 */
export function writeDataPdu(b: Uint8Array, type: number, h: DataHeader, dg: Digests, align = 4): PduLayout {
  const l = layout(type, h.datal, dg, align);
  const flags = l.flags | (h.last ? PduFlag.LAST_PDU : 0) | (h.success ? PduFlag.SUCCESS : 0);
  writeCh(b, type, flags, l.hlen, l.pdo, l.plen);
  put16(b, DataOff.CCCID, h.cccid);
  put16(b, DataOff.TTAG, h.ttag);
  put32(b, DataOff.DATAO, h.datao);
  put32(b, DataOff.DATAL, h.datal);
  put32(b, 20, 0);
  b.fill(0, Hlen.SHORT, l.pdo > 0 ? l.pdo : Hlen.SHORT); // digest slot and pad
  l.flags = flags;
  return l;
}

/** Decode the header of a data PDU. */
export function decodeDataPdu(b: Uint8Array): DataHeader {
  return {
    cccid: get16(b, DataOff.CCCID),
    ttag: get16(b, DataOff.TTAG),
    datao: get32(b, DataOff.DATAO),
    datal: get32(b, DataOff.DATAL),
    last: (b[Ch.FLAGS] & PduFlag.LAST_PDU) !== 0,
    success: (b[Ch.FLAGS] & PduFlag.SUCCESS) !== 0,
  };
}

/** R2T fields. */
export interface R2t {
  /** CID of the write command. */
  cccid: number;
  /** Transfer tag the host echoes in its H2CData. */
  ttag: number;
  /** Offset of the data asked for. */
  r2to: number;
  /** Bytes asked for. */
  r2tl: number;
}

/** Write an R2T PDU header into `b`; returns the layout. */
export function writeR2t(b: Uint8Array, r: R2t, dg: Digests): PduLayout {
  const l = layout(PduType.R2T, 0, dg);
  writeCh(b, PduType.R2T, l.flags, l.hlen, 0, l.plen);
  put16(b, R2tOff.CCCID, r.cccid);
  put16(b, R2tOff.TTAG, r.ttag);
  put32(b, R2tOff.R2TO, r.r2to);
  put32(b, R2tOff.R2TL, r.r2tl);
  put32(b, 20, 0);
  return l;
}

/** Decode an R2T PDU. */
export function decodeR2t(b: Uint8Array): R2t {
  return {
    cccid: get16(b, R2tOff.CCCID),
    ttag: get16(b, R2tOff.TTAG),
    r2to: get32(b, R2tOff.R2TO),
    r2tl: get32(b, R2tOff.R2TL),
  };
}

// ---- TermReq --------------------------------------------------------------------------------------

/** TermReq fields. */
export interface TermReq {
  /** Fatal Error Status ({@link Fes}). */
  fes: number;
  /** Fatal Error Information (field offset for FES 1 and 6). */
  fei: number;
  /** Copy of the offending PDU header (up to 128 bytes). */
  header: Uint8Array;
}

/** Encode an H2CTermReq or C2HTermReq (never digests); returns a new buffer. */
export function encodeTermReq(type: number, t: TermReq): Uint8Array {
  const copy = Math.min(t.header.length, TERM_MAX_COPY);
  const b = new Uint8Array(Hlen.SHORT + copy);
  writeCh(b, type, 0, Hlen.SHORT, copy > 0 ? Hlen.SHORT : 0, b.length);
  put16(b, TermOff.FES, t.fes);
  put32(b, TermOff.FEI, t.fei);
  b.set(t.header.subarray(0, copy), TermOff.HDR);
  return b;
}

/** Decode a whole TermReq PDU. */
export function decodeTermReq(b: Uint8Array): TermReq {
  const plen = get32(b, Ch.PLEN);
  return { fes: get16(b, TermOff.FES), fei: get32(b, TermOff.FEI), header: b.slice(TermOff.HDR, plen) };
}

// ---- SGL descriptors -----------------------------------------------------------------------------

/** Point `sqe`'s DPTR at `len` bytes of in-capsule data at offset `offset` (ICDOFF; 0 on Linux/SPDK). */
export function setSglInCapsule(sqe: Uint32Array, len: number, offset = 0): void {
  sqe[Sgl.DW_ADDR_LO] = offset >>> 0;
  sqe[Sgl.DW_ADDR_HI] = 0;
  sqe[Sgl.DW_LEN] = len >>> 0;
  sqe[Sgl.DW_ID] = Sgl.DATA_BLOCK_OFFSET << 24;
}

/** Point `sqe`'s DPTR at `len` bytes moved by the transport (R2T/H2CData or C2HData); 0 = no data. */
export function setSglTransport(sqe: Uint32Array, len: number): void {
  sqe[Sgl.DW_ADDR_LO] = 0;
  sqe[Sgl.DW_ADDR_HI] = 0;
  sqe[Sgl.DW_LEN] = len >>> 0;
  sqe[Sgl.DW_ID] = (Sgl.TRANSPORT_DATA_BLOCK << 24) >>> 0;
}

/** A decoded SGL descriptor. */
export interface SglDesc {
  /** Address (offset for in-capsule data). */
  addr: number;
  /** Length in bytes. */
  len: number;
  /** Descriptor type (high nibble of the identifier). */
  type: number;
  /** Subtype (low nibble). */
  subtype: number;
}

/** Decode the SGL descriptor in `sqe`'s DPTR. */
export function decodeSgl(sqe: Uint32Array): SglDesc {
  const id = sqe[Sgl.DW_ID] >>> 24;
  return { addr: sqe[Sgl.DW_ADDR_LO] + sqe[Sgl.DW_ADDR_HI] * 2 ** 32, len: sqe[Sgl.DW_LEN], type: id >>> 4, subtype: id & 0xf };
}

// ---- Digests ------------------------------------------------------------------------------------

/**
 * Complete a PDU whose header `l` describes, starting at `off` of `b` (room for `l.plen` bytes
 * when `data` is copied in, else the header part): the header digest at HLEN
 * if flagged, zero pad up to PDO, and when `data` is given, the data at PDO and
 * its digest after it if flagged. Returns the bytes written (the whole PDU
 * with data, or the header part up to PDO for data sent separately).
 */
export function sealPdu(b: Uint8Array, l: PduLayout, data: Uint8Array | null, off = 0): number {
  let end = off + l.hlen;
  if (l.flags & PduFlag.HDGST) {
    put32(b, end, crc32c(b, off, end));
    end += DIGEST_SIZE;
  }
  if (l.pdo === 0) return end - off;
  b.fill(0, end, off + l.pdo);
  if (data === null) return l.pdo;
  b.set(data, off + l.pdo);
  end = off + l.pdo + data.length;
  if (l.flags & PduFlag.DDGST) {
    put32(b, end, crc32c(data));
    end += DIGEST_SIZE;
  }
  return end - off;
}

/** Whole PDU bytes from a header written into `hdr` by one of the writers, and its data. */
export function buildPdu(hdr: Uint8Array, l: PduLayout, data: Uint8Array | null): Uint8Array {
  const b = new Uint8Array(l.plen);
  b.set(hdr.subarray(0, l.hlen));
  sealPdu(b, l, data);
  return b;
}
