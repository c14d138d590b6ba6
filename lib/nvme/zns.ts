/**
 * Zoned Namespace Command Set layouts (NVMe ZNS 1.1): the I/O command set
 * specific Identify Controller and Namespace (CSI 02h), the Report Zones
 * header and zone descriptor, the Zone Management Send actions, the Zone
 * Management Receive options and the zone states, each named once here with
 * a decoder (the host: lib/io/zns.ts) and an encoder (the software
 * controller: lib/sim/zns.ts). Command builders for the three zoned
 * commands live here too, next to their dword layouts. Decoded keys follow
 * nvme-cli 2.3's JSON.
 * @module
 */
import { lo32, hi32, sqe, type Sqe } from "./command.ts";
import { viewOf } from "./wide.ts";

/** Command Set Identifier of the Zoned Namespace Command Set (CNS 05h/06h's CSI, NS descriptor CSI). */
export const CSI_ZNS = 0x02;

/** Zoned Namespace IO opcodes. */
export const ZnsOpc = {
  ZONE_MGMT_SEND: 0x79,
  ZONE_MGMT_RECV: 0x7a,
  ZONE_APPEND: 0x7d,
} as const;

/** Zone state errors (SCT 1 Command Specific, as status field values SCT << 8 | SC). */
export const ZnsStatus = {
  ZONE_BOUNDARY: 0x1b8,
  ZONE_FULL: 0x1b9,
  ZONE_READ_ONLY: 0x1ba,
  ZONE_OFFLINE: 0x1bb,
  ZONE_INVALID_WRITE: 0x1bc,
  TOO_MANY_ACTIVE: 0x1bd,
  TOO_MANY_OPEN: 0x1be,
  INVALID_TRANSITION: 0x1bf,
} as const;

/** Zone Send Action (Zone Management Send CDW13 bits 7:0). */
export const ZoneSendAction = {
  CLOSE: 0x01,
  FINISH: 0x02,
  OPEN: 0x03,
  RESET: 0x04,
  OFFLINE: 0x05,
  SET_DESC_EXT: 0x10,
  ZRWA_FLUSH: 0x11,
} as const;

/** Zone Receive Action (Zone Management Receive CDW13 bits 7:0). */
export const ZoneRecvAction = {
  REPORT: 0x00,
  EXTENDED_REPORT: 0x01,
} as const;

/** Zone states, the high nibble of a descriptor's ZS byte. */
export const ZoneState = {
  EMPTY: 0x1,
  IMPLICITLY_OPENED: 0x2,
  EXPLICITLY_OPENED: 0x3,
  CLOSED: 0x4,
  READ_ONLY: 0xd,
  FULL: 0xe,
  OFFLINE: 0xf,
} as const;

/** Zone Receive Action Specific Field: which zones Report Zones lists (CDW13 bits 15:8). */
export const ZoneReportFilter = {
  ALL: 0,
  EMPTY: 1,
  IMPLICITLY_OPENED: 2,
  EXPLICITLY_OPENED: 3,
  CLOSED: 4,
  FULL: 5,
  READ_ONLY: 6,
  OFFLINE: 7,
} as const;

/** The zone state each Report Zones filter (1-7) selects. */
export const FILTER_STATE: readonly number[] = [
  0,
  ZoneState.EMPTY,
  ZoneState.IMPLICITLY_OPENED,
  ZoneState.EXPLICITLY_OPENED,
  ZoneState.CLOSED,
  ZoneState.FULL,
  ZoneState.READ_ONLY,
  ZoneState.OFFLINE,
];

/** Zone type: sequential write required, the only one ZNS defines. */
export const ZONE_TYPE_SEQWRITE_REQ = 0x2;

/** Zone attribute bits (ZA). */
export const ZoneAttr = {
  /** Zone Finished by Controller. */
  ZFC: 0x01,
  /** Finish Zone Recommended. */
  FZR: 0x02,
  /** Reset Zone Recommended. */
  RZR: 0x04,
  /** Zone Random Write Area valid. */
  ZRWAV: 0x08,
  /** Zone Descriptor Extension Valid. */
  ZDEV: 0x80,
} as const;

/** Byte offsets in the ZNS Identify Controller data (CNS 06h, CSI 02h). */
export const ZnsIdCtrlOffset = {
  /** Zone Append Size Limit (a power of two of the minimum memory page size; 0: MDTS). */
  ZASL: 0,
} as const;

/** Byte offsets in the ZNS Identify Namespace data (CNS 05h, CSI 02h). */
export const ZnsIdNsOffset = {
  ZOC: 0,
  OZCS: 2,
  MAR: 4,
  MOR: 8,
  RRL: 12,
  FRL: 16,
  RRL1: 20,
  RRL2: 24,
  RRL3: 28,
  FRL1: 32,
  FRL2: 36,
  FRL3: 40,
  NUMZRWA: 44,
  ZRWAFG: 48,
  ZRWASZ: 50,
  ZRWACAP: 52,
  /** LBA Format Extensions: 64 entries of {@link LBAFE_BYTES}. */
  LBAFE: 2816,
  VS: 3840,
} as const;

/** Size of one LBA Format Extension entry. */
export const LBAFE_BYTES = 16;

/** Offsets inside an LBA Format Extension entry. */
export const LbafeOffset = {
  /** Zone Size in logical blocks (64-bit). */
  ZSZE: 0,
  /** Zone Descriptor Extension Size in 64-byte units. */
  ZDES: 8,
} as const;

/** Size of the Report Zones header. */
export const ZONE_REPORT_HEADER_BYTES = 64;
/** Size of one zone descriptor (without its extension). */
export const ZONE_DESC_BYTES = 64;

/** Byte offsets in the Report Zones header. */
export const ZoneReportOffset = {
  /** Number of Zones (64-bit): all matching zones, or with Partial Report those in this report. */
  NR_ZONES: 0,
} as const;

/** Byte offsets in a zone descriptor. */
export const ZoneDescOffset = {
  /** Zone Type, bits 3:0. */
  ZT: 0,
  /** Zone State, bits 7:4. */
  ZS: 1,
  ZA: 2,
  ZAI: 3,
  ZCAP: 8,
  ZSLBA: 16,
  WP: 24,
} as const;

/** ZNS Identify Controller, keyed like nvme-cli 2.3's JSON. */
export interface ZnsIdCtrl {
  /** Zone Append Size Limit. */
  zasl: number;
}

/** One LBA Format Extension. */
export interface ZnsLbaFormatExt {
  /** Zone size in logical blocks. */
  zsze: number;
  /** Zone descriptor extension size in 64-byte units. */
  zdes: number;
}

/** ZNS Identify Namespace, keyed like nvme-cli 2.3's JSON. */
export interface ZnsIdNs {
  /** Zone Operation Characteristics. */
  zoc: number;
  /** Optional Zoned Command Support. */
  ozcs: number;
  /** Maximum Active Resources, 0-based (0xffffffff: no limit). */
  mar: number;
  /** Maximum Open Resources, 0-based (0xffffffff: no limit). */
  mor: number;
  /** Reset Recommended Limit (seconds). */
  rrl: number;
  /** Finish Recommended Limit (seconds). */
  frl: number;
  /** Reset Recommended Limit 1. */
  rrl1: number;
  /** Reset Recommended Limit 2. */
  rrl2: number;
  /** Reset Recommended Limit 3. */
  rrl3: number;
  /** Finish Recommended Limit 1. */
  frl1: number;
  /** Finish Recommended Limit 2. */
  frl2: number;
  /** Finish Recommended Limit 3. */
  frl3: number;
  /** Number of ZRWA resources. */
  numzrwa: number;
  /** ZRWA flush granularity. */
  zrwafg: number;
  /** ZRWA size. */
  zrwasz: number;
  /** ZRWA capability. */
  zrwacap: number;
  /** LBA Format Extensions, one per LBA format (NLBAF + 1 of them when the caller says how many). */
  lbafe: ZnsLbaFormatExt[];
}

/** One zone descriptor. */
export interface ZoneDescriptor {
  /** Zone type (2: sequential write required). */
  zt: number;
  /** Zone state ({@link ZoneState}). */
  state: number;
  /** Zone attributes. */
  za: number;
  /** Zone attributes information. */
  zai: number;
  /** Zone capacity in logical blocks. */
  zcap: number;
  /** Zone start LBA. */
  zslba: number;
  /** Write pointer; -1 when the zone has none (all ones: QEMU reports that for full, read-only and offline zones). */
  wp: number;
  /** Zone descriptor extension bytes (extended report), else empty. */
  ext: Uint8Array;
}

/** A decoded Report Zones data structure. */
export interface ZoneReport {
  /** Number of Zones from the header. */
  nrZones: number;
  /** The descriptors the buffer holds (at most `nrZones`). */
  zones: ZoneDescriptor[];
}

/** A write pointer as a number: -1 for "not valid" (all ones, or beyond a safe integer). */
function wpOf(v: bigint): number {
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? -1 : Number(v);
}

/** A write pointer field as the wire holds it: -1 is all ones. */
export function wpField(wp: number): bigint {
  return wp < 0 ? 0xffff_ffff_ffff_ffffn : BigInt(wp);
}

function u64(dv: DataView, off: number): number {
  return Number(dv.getBigUint64(off, true));
}

/** Decode ZNS Identify Controller data. */
export function parseZnsIdCtrl(d: Uint8Array): ZnsIdCtrl {
  return { zasl: d[ZnsIdCtrlOffset.ZASL] };
}

/** Encode ZNS Identify Controller data (4096 bytes). */
export function encodeZnsIdCtrl(c: ZnsIdCtrl, d: Uint8Array = new Uint8Array(4096)): Uint8Array {
  d[ZnsIdCtrlOffset.ZASL] = c.zasl;
  return d;
}

/** Decode ZNS Identify Namespace data; `nlbaf` (0-based, from Identify Namespace) says how many extensions to read (default all 64). */
export function parseZnsIdNs(d: Uint8Array, nlbaf = 63): ZnsIdNs {
  const dv = viewOf(d), O = ZnsIdNsOffset;
  const lbafe: ZnsLbaFormatExt[] = [];
  for (let i = 0; i <= nlbaf; i++) {
    const o = O.LBAFE + i * LBAFE_BYTES;
    lbafe.push({ zsze: u64(dv, o + LbafeOffset.ZSZE), zdes: d[o + LbafeOffset.ZDES] });
  }
  return {
    zoc: dv.getUint16(O.ZOC, true),
    ozcs: dv.getUint16(O.OZCS, true),
    mar: dv.getUint32(O.MAR, true),
    mor: dv.getUint32(O.MOR, true),
    rrl: dv.getUint32(O.RRL, true),
    frl: dv.getUint32(O.FRL, true),
    rrl1: dv.getUint32(O.RRL1, true),
    rrl2: dv.getUint32(O.RRL2, true),
    rrl3: dv.getUint32(O.RRL3, true),
    frl1: dv.getUint32(O.FRL1, true),
    frl2: dv.getUint32(O.FRL2, true),
    frl3: dv.getUint32(O.FRL3, true),
    numzrwa: dv.getUint32(O.NUMZRWA, true),
    zrwafg: dv.getUint16(O.ZRWAFG, true),
    zrwasz: dv.getUint16(O.ZRWASZ, true),
    zrwacap: d[O.ZRWACAP],
    lbafe,
  };
}

/** Encode ZNS Identify Namespace data (4096 bytes); fields not given are zero. */
export function encodeZnsIdNs(n: Partial<ZnsIdNs>, d: Uint8Array = new Uint8Array(4096)): Uint8Array {
  const dv = viewOf(d), O = ZnsIdNsOffset;
  dv.setUint16(O.ZOC, n.zoc ?? 0, true);
  dv.setUint16(O.OZCS, n.ozcs ?? 0, true);
  dv.setUint32(O.MAR, n.mar ?? 0, true);
  dv.setUint32(O.MOR, n.mor ?? 0, true);
  for (const [k, off] of [["rrl", O.RRL], ["frl", O.FRL], ["rrl1", O.RRL1], ["rrl2", O.RRL2], ["rrl3", O.RRL3], ["frl1", O.FRL1], ["frl2", O.FRL2], ["frl3", O.FRL3], ["numzrwa", O.NUMZRWA]] as const) {
    dv.setUint32(off, n[k] ?? 0, true);
  }
  dv.setUint16(O.ZRWAFG, n.zrwafg ?? 0, true);
  dv.setUint16(O.ZRWASZ, n.zrwasz ?? 0, true);
  d[O.ZRWACAP] = n.zrwacap ?? 0;
  (n.lbafe ?? []).forEach((e, i) => {
    const o = O.LBAFE + i * LBAFE_BYTES;
    dv.setBigUint64(o + LbafeOffset.ZSZE, BigInt(e.zsze), true);
    d[o + LbafeOffset.ZDES] = e.zdes;
  });
  return d;
}

/**
 * Decode a Report Zones buffer: the header, then as many descriptors as
 * the buffer and the header's count allow. `extBytes` is the descriptor
 * extension size of an extended report (ZDES × 64), 0 for a plain one.
 */
export function parseZoneReport(d: Uint8Array, extBytes = 0): ZoneReport {
  const dv = viewOf(d);
  const nrZones = u64(dv, ZoneReportOffset.NR_ZONES);
  const step = ZONE_DESC_BYTES + extBytes;
  const fit = Math.floor((d.length - ZONE_REPORT_HEADER_BYTES) / step);
  const zones: ZoneDescriptor[] = [];
  for (let i = 0; i < Math.min(fit, nrZones); i++) {
    const o = ZONE_REPORT_HEADER_BYTES + i * step, O = ZoneDescOffset;
    zones.push({
      zt: d[o + O.ZT] & 0xf,
      state: d[o + O.ZS] >> 4,
      za: d[o + O.ZA],
      zai: d[o + O.ZAI],
      zcap: u64(dv, o + O.ZCAP),
      zslba: u64(dv, o + O.ZSLBA),
      wp: wpOf(dv.getBigUint64(o + O.WP, true)),
      ext: d.slice(o + ZONE_DESC_BYTES, o + step),
    });
  }
  return { nrZones, zones };
}

/** Encode a Report Zones buffer of `bytes` bytes: header count `nrZones` and the descriptors that fit. */
export function encodeZoneReport(nrZones: number, zones: readonly Omit<ZoneDescriptor, "ext">[], bytes: number): Uint8Array {
  const d = new Uint8Array(bytes), dv = viewOf(d);
  if (bytes >= 8) dv.setBigUint64(ZoneReportOffset.NR_ZONES, BigInt(nrZones), true);
  for (let i = 0; i < zones.length; i++) {
    const o = ZONE_REPORT_HEADER_BYTES + i * ZONE_DESC_BYTES, O = ZoneDescOffset, z = zones[i];
    if (o + ZONE_DESC_BYTES > bytes) break;
    d[o + O.ZT] = z.zt;
    d[o + O.ZS] = z.state << 4;
    d[o + O.ZA] = z.za;
    d[o + O.ZAI] = z.zai;
    dv.setBigUint64(o + O.ZCAP, BigInt(z.zcap), true);
    dv.setBigUint64(o + O.ZSLBA, BigInt(z.zslba), true);
    dv.setBigUint64(o + O.WP, wpField(z.wp), true);
  }
  return d;
}

/** nvme-cli's name of a zone state (report-zones). */
export function zoneStateName(state: number): string {
  switch (state) {
    case ZoneState.EMPTY: return "EMPTY";
    case ZoneState.IMPLICITLY_OPENED: return "IMP_OPENED";
    case ZoneState.EXPLICITLY_OPENED: return "EXP_OPENED";
    case ZoneState.CLOSED: return "CLOSED";
    case ZoneState.READ_ONLY: return "READONLY";
    case ZoneState.FULL: return "FULL";
    case ZoneState.OFFLINE: return "OFFLINE";
  }
  return "Unknown State";
}

/** Zone Management Send: action `zsa` on the zone starting at `slba`, or on every zone with `selectAll`. */
export function zoneMgmtSendCmd(nsid: number, slba: number, zsa: number, opts: { selectAll?: boolean; zsaso?: boolean } = {}): Sqe {
  const s = sqe(ZnsOpc.ZONE_MGMT_SEND, nsid);
  s[10] = lo32(slba);
  s[11] = hi32(slba);
  s[13] = ((zsa & 0xff) | (opts.selectAll ? 1 << 8 : 0) | (opts.zsaso ? 1 << 9 : 0)) >>> 0;
  return s;
}

/** Zone Management Receive of `bytes` (a multiple of 4) from `slba`: action, filter (ZRASF), partial report. */
export function zoneMgmtRecvCmd(
  nsid: number,
  slba: number,
  bytes: number,
  opts: { zra?: number; zrasf?: number; partial?: boolean } = {},
): Sqe {
  const s = sqe(ZnsOpc.ZONE_MGMT_RECV, nsid);
  s[10] = lo32(slba);
  s[11] = hi32(slba);
  s[12] = ((bytes >>> 2) - 1) >>> 0;
  s[13] = (((opts.zra ?? 0) & 0xff) | ((opts.zrasf ?? 0) & 0xff) << 8 | (opts.partial ? 1 << 16 : 0)) >>> 0;
  return s;
}

/** Zone Append of `nlb` blocks (one-based) to the zone starting at `zslba`; the completion's DW0/DW1 carry the LBA written. */
export function zoneAppendCmd(nsid: number, zslba: number, nlb: number): Sqe {
  const s = sqe(ZnsOpc.ZONE_APPEND, nsid);
  s[10] = lo32(zslba);
  s[11] = hi32(zslba);
  s[12] = (nlb - 1) & 0xffff;
  return s;
}
