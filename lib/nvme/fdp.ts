/**
 * Flexible Data Placement layouts (NVMe Base 2.1, TP4146): the FDP
 * Configurations (20h), Reclaim Unit Handle Usage (21h), FDP Statistics
 * (22h) and FDP Events (23h) logs, the Reclaim Unit Handle Status that I/O
 * Management Receive returns, the FDP and FDP Events features, and the
 * placement directive fields of a write, each named once here with a decoder
 * (the host: lib/admin/fdp.ts, lib/io/fdp.ts) and an encoder (the software
 * controller: lib/sim/fdp.ts). Decoded keys follow nvme-cli 2.3's JSON.
 * @module
 */
import { lo32, sqe, type Sqe } from "./command.ts";
import { getU128, setU128, Uint128, Uint64, viewOf } from "./wide.ts";

/** FDP log page identifiers (read with LSI = endurance group). */
export const FdpLogId = {
  CONFIGS: 0x20,
  RUH_USAGE: 0x21,
  STATS: 0x22,
  EVENTS: 0x23,
} as const;

/** FDP feature identifiers. */
export const FdpFid = {
  /** Flexible Data Placement: CDW11 endurance group, CDW12 bit 0 enable, bits 15:8 configuration index. */
  FDP: 0x1d,
  /** FDP Events: CDW11 placement handle (15:0) and number of event types (23:16); CDW12 bit 0 enable. */
  FDP_EVENTS: 0x1e,
} as const;

/** I/O Management opcodes and their management operations. */
export const IoMgmt = {
  RECV_OPC: 0x12,
  SEND_OPC: 0x1d,
  /** Receive: Reclaim Unit Handle Status. */
  RUH_STATUS: 0x01,
  /** Send: Reclaim Unit Handle Update. */
  RUH_UPDATE: 0x01,
} as const;

/** Directive type of data placement (a write's CDW12 bits 23:20 DTYPE). */
export const DTYPE_PLACEMENT = 0x2;

/** A write's placement directive: CDW12 DTYPE and CDW13 DSPEC (the placement identifier). */
export const PlacementField = {
  DTYPE_SHIFT: 20,
  DTYPE_MASK: 0xf << 20,
  DSPEC_SHIFT: 16,
} as const;

/** CDW12 flags and CDW13 of a write that places its data with placement identifier `pid`. */
export function placementDwords(pid: number): { cdw12: number; cdw13: number } {
  return { cdw12: DTYPE_PLACEMENT << PlacementField.DTYPE_SHIFT, cdw13: ((pid & 0xffff) << PlacementField.DSPEC_SHIFT) >>> 0 };
}

/** The placement identifier a write names, or -1 without a placement directive. */
export function placementOf(cdw12: number, cdw13: number): number {
  return ((cdw12 >>> PlacementField.DTYPE_SHIFT) & 0xf) === DTYPE_PLACEMENT ? cdw13 >>> PlacementField.DSPEC_SHIFT : -1;
}

/** Reclaim unit handle types (RUHT). */
export const RuhType = {
  INITIALLY_ISOLATED: 0x1,
  PERSISTENTLY_ISOLATED: 0x2,
} as const;

/** Reclaim unit handle attributes in the usage log (RUHA). */
export const RuhAttr = {
  UNUSED: 0x0,
  HOST_SPECIFIED: 0x1,
  CONTROLLER_SPECIFIED: 0x2,
} as const;

/** FDP event types. */
export const FdpEventType = {
  RU_NOT_FULLY_WRITTEN: 0x00,
  RU_TIME_LIMIT_EXCEEDED: 0x01,
  CTRL_RESET_MODIFIED_RUH: 0x02,
  INVALID_PID: 0x03,
  MEDIA_REALLOCATED: 0x80,
  IMPLICIT_RUH_MODIFIED: 0x81,
} as const;

/** FDP event flags (FDPEF). */
export const FdpEventFlag = {
  /** Placement Identifier Valid. */
  PIV: 0x1,
  /** Namespace Identifier Valid. */
  NSIDV: 0x2,
  /** Location Valid (reclaim group and handle). */
  LV: 0x4,
} as const;

/** Sizes of the FDP structures. */
export const FdpBytes = {
  CONFIG_LOG_HEADER: 16,
  CONFIG_DESC_HEADER: 64,
  RUH_DESC: 4,
  RUH_USAGE_HEADER: 8,
  RUH_USAGE_DESC: 8,
  STATS_LOG: 64,
  EVENTS_HEADER: 64,
  EVENT: 64,
  RUH_STATUS_HEADER: 16,
  RUH_STATUS_DESC: 32,
} as const;

/** Byte offsets in the FDP Configurations log header. */
export const FdpConfigLogOffset = { N: 0, VERSION: 2, SIZE: 4 } as const;
/** Byte offsets in an FDP configuration descriptor. */
export const FdpConfigDescOffset = {
  SIZE: 0,
  FDPA: 2,
  VSS: 3,
  NRG: 4,
  NRUH: 8,
  MAXPIDS: 10,
  NNSS: 12,
  RUNS: 16,
  ERUTL: 24,
  /** The reclaim unit handle descriptors (RUHT in byte 0 of each). */
  RUHS: 64,
} as const;
/** Byte offsets in the Reclaim Unit Handle Usage log. */
export const RuhUsageOffset = { NRUH: 0, DESCS: 8 } as const;
/** Byte offsets in the FDP Statistics log (128-bit counters). */
export const FdpStatsOffset = { HBMW: 0, MBMW: 16, MBE: 32 } as const;
/** Byte offsets in the FDP Events log header and in an event. */
export const FdpEventsOffset = { N: 0, EVENTS: 64 } as const;
/** Byte offsets in one FDP event. */
export const FdpEventOffset = {
  TYPE: 0,
  FLAGS: 1,
  PID: 2,
  /** Timestamp: 48-bit milliseconds, then attributes. */
  TIMESTAMP: 4,
  NSID: 12,
  /** Type specific: Media Reallocated's flags (bit 0 LBA valid), NLBAM and LBA. */
  TS_FLAGS: 16,
  TS_NLBAM: 18,
  TS_LBA: 24,
  RGID: 32,
  RUHID: 34,
} as const;
/** Byte offsets in the Reclaim Unit Handle Status header and descriptors. */
export const RuhStatusOffset = {
  NRUHSD: 14,
  DESCS: 16,
  PID: 0,
  RUHID: 2,
  EARUTR: 4,
  RUAMW: 8,
} as const;

/** One FDP configuration. */
export interface FdpConfig {
  /** FDP attributes (bit 7 valid, bit 4 volatile write cache, bits 3:0 reclaim group identifier format). */
  fdpa: number;
  /** Vendor specific size. */
  vss: number;
  /** Number of reclaim groups. */
  nrg: number;
  /** Number of reclaim unit handles. */
  nruh: number;
  /** Maximum placement identifiers (0-based). */
  maxpids: number;
  /** Number of namespaces supported. */
  nnss: number;
  /** Reclaim unit nominal size in bytes. */
  runs: Uint64;
  /** Estimated reclaim unit time limit (seconds). */
  erutl: number;
  /** Reclaim unit handle types, one per handle. */
  ruhs: { ruht: number }[];
}

/** FDP Configurations log (20h). */
export interface FdpConfigLog {
  /** Number of configurations, 0-based. */
  n: number;
  /** Log version. */
  version: number;
  /** Log size in bytes. */
  size: number;
  /** The configurations. */
  configs: FdpConfig[];
}

/** Reclaim Unit Handle Usage log (21h). */
export interface RuhUsageLog {
  /** Number of reclaim unit handles. */
  nruh: number;
  /** Attributes per handle. */
  ruhus: { ruha: number }[];
}

/** FDP Statistics log (22h). */
export interface FdpStatsLog {
  /** Host bytes with metadata written. */
  hbmw: Uint128;
  /** Media bytes with metadata written. */
  mbmw: Uint128;
  /** Media bytes erased. */
  mbe: Uint128;
}

/** One FDP event. */
export interface FdpEvent {
  /** Event type ({@link FdpEventType}). */
  type: number;
  /** Event flags ({@link FdpEventFlag}). */
  fdpef: number;
  /** Placement identifier. */
  pid: number;
  /** Timestamp in ms (48 bits). */
  timestamp: number;
  /** Namespace. */
  nsid: number;
  /** Reclaim group (when Location Valid). */
  rgid: number;
  /** Reclaim unit handle (when Location Valid). */
  ruhid: number;
  /** Media Reallocated: number of LBAs moved. */
  nlbam?: number;
  /** Media Reallocated: the LBA, when valid. */
  lba?: number;
}

/** FDP Events log (23h). */
export interface FdpEventsLog {
  /** Number of events. */
  n: number;
  /** The events. */
  events: FdpEvent[];
}

/** One reclaim unit handle's status. */
export interface RuhStatusDesc {
  /** Placement identifier. */
  pid: number;
  /** Reclaim unit handle identifier. */
  ruhid: number;
  /** Estimated active reclaim unit time remaining (seconds). */
  earutr: number;
  /** Reclaim unit available media writes (logical blocks). */
  ruamw: Uint64;
}

/** Reclaim Unit Handle Status (I/O Management Receive, operation 1). */
export interface RuhStatus {
  /** Number of descriptors. */
  nruhsd: number;
  /** The descriptors. */
  ruhss: RuhStatusDesc[];
}

/** Decode the FDP Configurations log. */
export function parseFdpConfigLog(d: Uint8Array): FdpConfigLog {
  const dv = viewOf(d), H = FdpConfigLogOffset, C = FdpConfigDescOffset;
  const n = dv.getUint16(H.N, true);
  const configs: FdpConfig[] = [];
  let p = FdpBytes.CONFIG_LOG_HEADER;
  for (let i = 0; i <= n && p + FdpBytes.CONFIG_DESC_HEADER <= d.length; i++) {
    const size = dv.getUint16(p + C.SIZE, true), nruh = dv.getUint16(p + C.NRUH, true);
    const ruhs: { ruht: number }[] = [];
    for (let j = 0; j < nruh && p + C.RUHS + j * FdpBytes.RUH_DESC < d.length; j++) ruhs.push({ ruht: d[p + C.RUHS + j * FdpBytes.RUH_DESC] });
    configs.push({
      fdpa: d[p + C.FDPA],
      vss: d[p + C.VSS],
      nrg: dv.getUint32(p + C.NRG, true),
      nruh,
      maxpids: dv.getUint16(p + C.MAXPIDS, true),
      nnss: dv.getUint32(p + C.NNSS, true),
      runs: new Uint64(dv.getBigUint64(p + C.RUNS, true)),
      erutl: dv.getUint32(p + C.ERUTL, true),
      ruhs,
    });
    if (size === 0) break;
    p += size;
  }
  return { n, version: d[H.VERSION], size: dv.getUint32(H.SIZE, true), configs };
}

/** Encode the FDP Configurations log (no vendor specific data). */
export function encodeFdpConfigLog(configs: readonly Omit<FdpConfig, "vss">[]): Uint8Array {
  const sizes = configs.map((c) => FdpBytes.CONFIG_DESC_HEADER + c.ruhs.length * FdpBytes.RUH_DESC);
  const total = FdpBytes.CONFIG_LOG_HEADER + sizes.reduce((a, b) => a + b, 0);
  const d = new Uint8Array(total), dv = viewOf(d), C = FdpConfigDescOffset;
  dv.setUint16(FdpConfigLogOffset.N, Math.max(0, configs.length - 1), true);
  dv.setUint32(FdpConfigLogOffset.SIZE, total, true);
  let p = FdpBytes.CONFIG_LOG_HEADER;
  configs.forEach((c, i) => {
    dv.setUint16(p + C.SIZE, sizes[i], true);
    d[p + C.FDPA] = c.fdpa;
    dv.setUint32(p + C.NRG, c.nrg, true);
    dv.setUint16(p + C.NRUH, c.ruhs.length, true);
    dv.setUint16(p + C.MAXPIDS, c.maxpids, true);
    dv.setUint32(p + C.NNSS, c.nnss, true);
    dv.setBigUint64(p + C.RUNS, c.runs.value, true);
    dv.setUint32(p + C.ERUTL, c.erutl, true);
    c.ruhs.forEach((r, j) => (d[p + C.RUHS + j * FdpBytes.RUH_DESC] = r.ruht));
    p += sizes[i];
  });
  return d;
}

/** Decode the Reclaim Unit Handle Usage log. */
export function parseRuhUsageLog(d: Uint8Array): RuhUsageLog {
  const nruh = viewOf(d).getUint16(RuhUsageOffset.NRUH, true);
  const ruhus: { ruha: number }[] = [];
  for (let i = 0; i < nruh && RuhUsageOffset.DESCS + i * FdpBytes.RUH_USAGE_DESC < d.length; i++) {
    ruhus.push({ ruha: d[RuhUsageOffset.DESCS + i * FdpBytes.RUH_USAGE_DESC] });
  }
  return { nruh, ruhus };
}

/** Encode the Reclaim Unit Handle Usage log. */
export function encodeRuhUsageLog(ruha: readonly number[]): Uint8Array {
  const d = new Uint8Array(FdpBytes.RUH_USAGE_HEADER + ruha.length * FdpBytes.RUH_USAGE_DESC);
  viewOf(d).setUint16(RuhUsageOffset.NRUH, ruha.length, true);
  ruha.forEach((a, i) => (d[RuhUsageOffset.DESCS + i * FdpBytes.RUH_USAGE_DESC] = a));
  return d;
}

/** Decode the FDP Statistics log. */
export function parseFdpStatsLog(d: Uint8Array): FdpStatsLog {
  const dv = viewOf(d), O = FdpStatsOffset;
  return { hbmw: new Uint128(getU128(dv, O.HBMW)), mbmw: new Uint128(getU128(dv, O.MBMW)), mbe: new Uint128(getU128(dv, O.MBE)) };
}

/** Encode the FDP Statistics log. */
export function encodeFdpStatsLog(s: { hbmw: bigint; mbmw: bigint; mbe: bigint }): Uint8Array {
  const d = new Uint8Array(FdpBytes.STATS_LOG), dv = viewOf(d), O = FdpStatsOffset;
  setU128(dv, O.HBMW, s.hbmw);
  setU128(dv, O.MBMW, s.mbmw);
  setU128(dv, O.MBE, s.mbe);
  return d;
}

function getU48(dv: DataView, off: number): number {
  return dv.getUint32(off, true) + dv.getUint16(off + 4, true) * 0x1_0000_0000;
}

/** Decode the FDP Events log. */
export function parseFdpEventsLog(d: Uint8Array): FdpEventsLog {
  const dv = viewOf(d), E = FdpEventOffset;
  const n = dv.getUint32(FdpEventsOffset.N, true);
  const events: FdpEvent[] = [];
  for (let i = 0; i < n; i++) {
    const o = FdpEventsOffset.EVENTS + i * FdpBytes.EVENT;
    if (o + FdpBytes.EVENT > d.length) break;
    const ev: FdpEvent = {
      type: d[o + E.TYPE],
      fdpef: d[o + E.FLAGS],
      pid: dv.getUint16(o + E.PID, true),
      timestamp: getU48(dv, o + E.TIMESTAMP),
      nsid: dv.getUint32(o + E.NSID, true),
      rgid: dv.getUint16(o + E.RGID, true),
      ruhid: d[o + E.RUHID],
    };
    if (ev.type === FdpEventType.MEDIA_REALLOCATED) {
      ev.nlbam = dv.getUint16(o + E.TS_NLBAM, true);
      if (d[o + E.TS_FLAGS] & 1) ev.lba = Number(dv.getBigUint64(o + E.TS_LBA, true));
    }
    events.push(ev);
  }
  return { n, events };
}

/** Encode the FDP Events log (`bytes` long, at most 63 events). */
export function encodeFdpEventsLog(events: readonly FdpEvent[], bytes = FdpBytes.EVENTS_HEADER + 63 * FdpBytes.EVENT): Uint8Array {
  const d = new Uint8Array(bytes), dv = viewOf(d), E = FdpEventOffset;
  const fit = Math.min(events.length, Math.floor((bytes - FdpBytes.EVENTS_HEADER) / FdpBytes.EVENT));
  dv.setUint32(FdpEventsOffset.N, fit, true);
  for (let i = 0; i < fit; i++) {
    const o = FdpEventsOffset.EVENTS + i * FdpBytes.EVENT, e = events[i];
    d[o + E.TYPE] = e.type;
    d[o + E.FLAGS] = e.fdpef;
    dv.setUint16(o + E.PID, e.pid, true);
    dv.setUint32(o + E.TIMESTAMP, lo32(e.timestamp), true);
    dv.setUint16(o + E.TIMESTAMP + 4, Math.floor(e.timestamp / 0x1_0000_0000) & 0xffff, true);
    dv.setUint32(o + E.NSID, e.nsid, true);
    dv.setUint16(o + E.RGID, e.rgid, true);
    d[o + E.RUHID] = e.ruhid;
    if (e.type === FdpEventType.MEDIA_REALLOCATED) {
      dv.setUint16(o + E.TS_NLBAM, e.nlbam ?? 0, true);
      if (e.lba !== undefined) {
        d[o + E.TS_FLAGS] = 1;
        dv.setBigUint64(o + E.TS_LBA, BigInt(e.lba), true);
      }
    }
  }
  return d;
}

/** Decode a Reclaim Unit Handle Status buffer (as many descriptors as it holds). */
export function parseRuhStatus(d: Uint8Array): RuhStatus {
  const dv = viewOf(d), O = RuhStatusOffset;
  const nruhsd = dv.getUint16(O.NRUHSD, true);
  const ruhss: RuhStatusDesc[] = [];
  for (let i = 0; i < nruhsd; i++) {
    const o = O.DESCS + i * FdpBytes.RUH_STATUS_DESC;
    if (o + FdpBytes.RUH_STATUS_DESC > d.length) break;
    ruhss.push({
      pid: dv.getUint16(o + O.PID, true),
      ruhid: dv.getUint16(o + O.RUHID, true),
      earutr: dv.getUint32(o + O.EARUTR, true),
      ruamw: new Uint64(dv.getBigUint64(o + O.RUAMW, true)),
    });
  }
  return { nruhsd, ruhss };
}

/** Encode a Reclaim Unit Handle Status buffer of `bytes` bytes. */
export function encodeRuhStatus(descs: readonly { pid: number; ruhid: number; earutr: number; ruamw: bigint }[], bytes: number): Uint8Array {
  const d = new Uint8Array(bytes), dv = viewOf(d), O = RuhStatusOffset;
  if (bytes >= FdpBytes.RUH_STATUS_HEADER) dv.setUint16(O.NRUHSD, descs.length, true);
  descs.forEach((r, i) => {
    const o = O.DESCS + i * FdpBytes.RUH_STATUS_DESC;
    if (o + FdpBytes.RUH_STATUS_DESC > bytes) return;
    dv.setUint16(o + O.PID, r.pid, true);
    dv.setUint16(o + O.RUHID, r.ruhid, true);
    dv.setUint32(o + O.EARUTR, r.earutr, true);
    dv.setBigUint64(o + O.RUAMW, r.ruamw, true);
  });
  return d;
}

/** I/O Management Receive, Reclaim Unit Handle Status, `bytes` (a multiple of 4) of it. */
export function ruhStatusCmd(nsid: number, bytes: number): Sqe {
  const s = sqe(IoMgmt.RECV_OPC, nsid);
  s[10] = IoMgmt.RUH_STATUS;
  s[11] = ((bytes >>> 2) - 1) >>> 0;
  return s;
}

/** I/O Management Send, Reclaim Unit Handle Update of `count` placement identifiers (the data: 16-bit each). */
export function ruhUpdateCmd(nsid: number, count: number): Sqe {
  const s = sqe(IoMgmt.SEND_OPC, nsid);
  s[10] = (IoMgmt.RUH_UPDATE | (((count - 1) & 0xffff) << 16)) >>> 0;
  return s;
}

/** The data of a Reclaim Unit Handle Update: the placement identifiers, 16 bits each (padded to 4 bytes). */
export function encodePidList(pids: readonly number[]): Uint8Array {
  const d = new Uint8Array(Math.ceil((pids.length * 2) / 4) * 4), dv = viewOf(d);
  pids.forEach((p, i) => dv.setUint16(i * 2, p, true));
  return d;
}

/** Decode `count` placement identifiers. */
export function decodePidList(d: Uint8Array, count: number): number[] {
  const dv = viewOf(d), out: number[] = [];
  for (let i = 0; i < count; i++) out.push(dv.getUint16(i * 2, true));
  return out;
}

/** nvme-cli's name of an FDP event type. */
export function fdpEventName(type: number): string {
  switch (type) {
    case FdpEventType.RU_NOT_FULLY_WRITTEN: return "Reclaim Unit Not Fully Written";
    case FdpEventType.RU_TIME_LIMIT_EXCEEDED: return "Reclaim Unit Active Time Limit Exceeded";
    case FdpEventType.CTRL_RESET_MODIFIED_RUH: return "Controller Level Reset Modified Reclaim Unit Handles";
    case FdpEventType.INVALID_PID: return "Invalid Placement Identifier";
    case FdpEventType.MEDIA_REALLOCATED: return "Media Reallocated";
    case FdpEventType.IMPLICIT_RUH_MODIFIED: return "Implicitly Modified Reclaim Unit Handle";
  }
  return "Unknown";
}
