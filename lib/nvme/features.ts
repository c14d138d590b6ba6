/**
 * The data buffers of features that carry one (NVMe Base 2.0, section
 * 5.27.1): Timestamp (0Eh) and Host Behavior Support (16h), each layout named
 * once here with a decoder (the host: lib/admin) and an encoder (Set Features
 * on the host, Get Features in the software controller).
 * @module
 */
import { viewOf } from "./wide.ts";

/** Size of the Timestamp feature's data. */
export const TIMESTAMP_BYTES = 8;

/** Byte offsets in the Timestamp feature's data. */
export const TimestampOffset = {
  /** Milliseconds since the Unix epoch, 48 bits. */
  TIMESTAMP: 0,
  /** Bit 0 Synch, bits 3:1 Timestamp Origin. */
  ATTRIBUTES: 6,
} as const;

/** The Timestamp feature, decoded. */
export interface TimestampData {
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  /** Synch: the controller may have stopped counting. */
  synch: boolean;
  /** Timestamp Origin: 0 reset, 1 set by Set Features. */
  origin: number;
}

/** Decode the Timestamp feature's 8 bytes. */
export function decodeTimestamp(d: Uint8Array): TimestampData {
  const dv = viewOf(d), O = TimestampOffset;
  const a = d[O.ATTRIBUTES];
  return {
    timestamp: dv.getUint32(O.TIMESTAMP, true) + dv.getUint16(O.TIMESTAMP + 4, true) * 0x1_0000_0000,
    synch: (a & 1) === 1,
    origin: (a >> 1) & 7,
  };
}

/** Encode the Timestamp feature's 8 bytes (Set Features sends only the time; attributes zero). */
export function encodeTimestamp(t: Partial<TimestampData> & { timestamp: number }, out: Uint8Array = new Uint8Array(TIMESTAMP_BYTES)): Uint8Array {
  const dv = viewOf(out), O = TimestampOffset;
  dv.setUint32(O.TIMESTAMP, t.timestamp % 0x1_0000_0000, true);
  dv.setUint16(O.TIMESTAMP + 4, Math.floor(t.timestamp / 0x1_0000_0000), true);
  out[O.ATTRIBUTES] = (t.synch ? 1 : 0) | ((t.origin ?? 0) & 7) << 1;
  return out;
}

/** Size of the Host Behavior Support feature's data. */
export const HOST_BEHAVIOR_BYTES = 512;

/** Byte offsets in the Host Behavior Support feature's data. */
export const HostBehaviorOffset = {
  /** Advanced Command Retry Enable. */
  ACRE: 0,
  /** Extended Telemetry Data Area 4 Supported. */
  ETDAS: 1,
  /** LBA Format Extension Enable. */
  LBAFEE: 2,
} as const;

/** The Host Behavior Support feature, decoded (each field one byte). */
export interface HostBehavior {
  /** Advanced Command Retry Enable. */
  acre: number;
  /** Extended Telemetry Data Area 4 Supported. */
  etdas: number;
  /** LBA Format Extension Enable. */
  lbafee: number;
}

/** Decode the Host Behavior Support feature's data. */
export function decodeHostBehavior(d: Uint8Array): HostBehavior {
  const O = HostBehaviorOffset;
  return { acre: d[O.ACRE], etdas: d[O.ETDAS], lbafee: d[O.LBAFEE] };
}

/** Encode the Host Behavior Support feature's 512 bytes. */
export function encodeHostBehavior(b: Partial<HostBehavior>, out: Uint8Array = new Uint8Array(HOST_BEHAVIOR_BYTES)): Uint8Array {
  const O = HostBehaviorOffset;
  out[O.ACRE] = b.acre ?? 0;
  out[O.ETDAS] = b.etdas ?? 0;
  out[O.LBAFEE] = b.lbafee ?? 0;
  return out;
}

/** Bytes of one LBA Range Type entry (feature 03h). */
export const LBA_RANGE_BYTES = 64;

/** Byte offsets in an LBA Range Type entry. */
export const LbaRangeOffset = {
  TYPE: 0,
  ATTRIBUTES: 1,
  SLBA: 16,
  NLB: 24,
  GUID: 32,
} as const;

/** One LBA Range Type entry, decoded. */
export interface LbaRange {
  /** Type (0 reserved, 1 filesystem, 2 RAID, 3 cache, 4 page/swap file). */
  type: number;
  /** Attributes (bit 0 may be overwritten, bit 1 hidden). */
  attributes: number;
  /** Starting LBA. */
  slba: bigint;
  /** Number of logical blocks (zero-based). */
  nlb: bigint;
  /** Unique identifier, 16 bytes. */
  guid: Uint8Array;
}

/** Decode up to `count` LBA Range Type entries (as many as `d` holds). */
export function decodeLbaRanges(d: Uint8Array, count: number): LbaRange[] {
  const dv = viewOf(d), O = LbaRangeOffset;
  const out: LbaRange[] = [];
  for (let i = 0; i < count && (i + 1) * LBA_RANGE_BYTES <= d.length; i++) {
    const e = i * LBA_RANGE_BYTES;
    out.push({
      type: d[e + O.TYPE],
      attributes: d[e + O.ATTRIBUTES],
      slba: dv.getBigUint64(e + O.SLBA, true),
      nlb: dv.getBigUint64(e + O.NLB, true),
      guid: d.subarray(e + O.GUID, e + O.GUID + 16),
    });
  }
  return out;
}

/** Size of the Autonomous Power State Transition table (feature 0Ch): 32 entries of 8 bytes. */
export const APST_BYTES = 256;

/** One APST entry, decoded. */
export interface ApstEntry {
  /** Idle Time Prior to Transition, ms (bits 31:8). */
  itpt: number;
  /** Idle Transition Power State (bits 7:3). */
  itps: number;
}

/** Decode the 32 entries of the APST table. */
export function decodeApst(d: Uint8Array): ApstEntry[] {
  const dv = viewOf(d);
  const out: ApstEntry[] = [];
  for (let i = 0; i < 32; i++) {
    const lo = dv.getUint32(i * 8, true);
    out.push({ itpt: (lo >>> 8) & 0xffffff, itps: (lo >>> 3) & 0x1f });
  }
  return out;
}

/** Size of the Host Memory Buffer attributes (feature 0Dh) nvme-cli shows. */
export const HMB_ATTR_BYTES = 16;

/** Byte offsets in the Host Memory Buffer attributes. */
export const HmbAttrOffset = {
  HSIZE: 0,
  HMDLAL: 4,
  HMDLAU: 8,
  HMDLEC: 12,
} as const;

/** Host Memory Buffer attributes, decoded. */
export interface HmbAttributes {
  /** Host memory buffer size, in memory page size units. */
  hsize: number;
  /** Descriptor list address, low. */
  hmdlal: number;
  /** Descriptor list address, high. */
  hmdlau: number;
  /** Descriptor list entry count. */
  hmdlec: number;
}

/** Decode the Host Memory Buffer attributes. */
export function decodeHmbAttributes(d: Uint8Array): HmbAttributes {
  const dv = viewOf(d), O = HmbAttrOffset;
  return {
    hsize: dv.getUint32(O.HSIZE, true),
    hmdlal: dv.getUint32(O.HMDLAL, true),
    hmdlau: dv.getUint32(O.HMDLAU, true),
    hmdlec: dv.getUint32(O.HMDLEC, true),
  };
}

/** Size of the Predictable Latency Mode Config fields nvme-cli shows (feature 13h). */
export const PLM_CONFIG_BYTES = 56;

/** Byte offsets in the Predictable Latency Mode Config data. */
export const PlmConfigOffset = {
  EE: 0,
  DTWINRT: 32,
  DTWINWT: 40,
  DTWINTT: 48,
} as const;

/** Predictable Latency Mode Config, decoded. */
export interface PlmConfig {
  /** Enable Event. */
  ee: number;
  /** DTWIN Reads Threshold. */
  dtwinrt: bigint;
  /** DTWIN Writes Threshold. */
  dtwinwt: bigint;
  /** DTWIN Time Threshold. */
  dtwintt: bigint;
}

/** Decode the Predictable Latency Mode Config data. */
export function decodePlmConfig(d: Uint8Array): PlmConfig {
  const dv = viewOf(d), O = PlmConfigOffset;
  return {
    ee: dv.getUint16(O.EE, true),
    dtwinrt: dv.getBigUint64(O.DTWINRT, true),
    dtwinwt: dv.getBigUint64(O.DTWINWT, true),
    dtwintt: dv.getBigUint64(O.DTWINTT, true),
  };
}

/** One Host Metadata element (features 7Dh-7Fh), decoded. */
export interface MetadataElement {
  /** Element type. */
  type: number;
  /** Element revision. */
  rev: number;
  /** Element length (the value may be cut short by the buffer). */
  len: number;
  /** The value's bytes. */
  value: Uint8Array;
}

/** Byte offsets in the Host Metadata data: a count, then elements of a 4-byte header and their value. */
export const HostMetadataOffset = {
  /** Number of Metadata Element Descriptors. */
  NUMBER: 0,
  /** The first element. */
  ELEMENT0: 2,
} as const;

/** Decode the Host Metadata data: its element count and the elements the buffer holds. */
export function decodeHostMetadata(d: Uint8Array): { count: number; elements: MetadataElement[] } {
  const count = d[HostMetadataOffset.NUMBER];
  const elements: MetadataElement[] = [];
  let off = HostMetadataOffset.ELEMENT0;
  for (let i = 0; i < count && off + 4 <= d.length; i++) {
    const len = d[off + 2] | (d[off + 3] << 8);
    elements.push({ type: d[off], rev: d[off + 1], len, value: d.subarray(off + 4, Math.min(d.length, off + 4 + len)) });
    off += 4 + len;
  }
  return { count, elements };
}

/** The first 64 bits of a Host Identifier (feature 81h), little-endian. */
export function decodeHostIdLow(d: Uint8Array): bigint {
  return viewOf(d).getBigUint64(0, true);
}
