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
