/**
 * Get Features / Set Features with decoded values for arbitration, power
 * management, temperature threshold, error recovery, volatile write cache,
 * number of queues, interrupt coalescing, async event configuration,
 * timestamp and host behavior.
 * @module
 */
import { getFeaturesCmd, setFeaturesCmd } from "../nvme/command.ts";
import { adminTransfer } from "../nvme/transfer.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { Fid } from "../nvme/spec.ts";
import { decodeHostBehavior, decodeTimestamp, encodeHostBehavior, encodeTimestamp, HOST_BEHAVIOR_BYTES, TIMESTAMP_BYTES } from "../nvme/features.ts";
import type { AdminTarget } from "./log.ts";

/** Features whose Set Features carries data, and its size. */
const DATA_LEN: Record<number, number> = {
  [Fid.TIMESTAMP]: TIMESTAMP_BYTES,
  [Fid.HOST_BEHAVIOR]: HOST_BEHAVIOR_BYTES,
};

/**
 * Bytes Get Features returns for a feature, as nvme-cli 2.3 asks for them
 * (read out of the nvme-cli binary): LBA range types, APST table, HMB
 * attributes, timestamp, PLM config, host behavior, host metadata, host id.
 */
function getDataLen(fid: number, cdw11: number): number {
  switch (fid) {
    case 0x03: case 0x0d: case 0x7d: case 0x7e: case 0x7f: return 4096;
    case 0x0c: return 256;
    case Fid.TIMESTAMP: return TIMESTAMP_BYTES;
    case 0x13: case Fid.HOST_BEHAVIOR: return HOST_BEHAVIOR_BYTES;
    case 0x81: return cdw11 & 1 ? 16 : 8; // EXHID: the 128-bit host identifier
    default: return 0;
  }
}

/** Feature names as nvme-cli's nvme_feature_to_string() spells them. */
const NAMES: Record<number, string> = {
  0x01: "Arbitration",
  0x02: "Power Management",
  0x03: "LBA Range Type",
  0x04: "Temperature Threshold",
  0x05: "Error Recovery",
  0x06: "Volatile Write Cache",
  0x07: "Number of Queues",
  0x08: "Interrupt Coalescing",
  0x09: "Interrupt Vector Configuration",
  0x0a: "Write Atomicity Normal",
  0x0b: "Async Event Configuration",
  0x0c: "Autonomous Power State Transition",
  0x0d: "Host Memory Buffer",
  0x0e: "Timestamp",
  0x0f: "Keep Alive Timer",
  0x10: "Host Controlled Thermal Management",
  0x11: "Non-Operational Power State Config",
  0x12: "Read Recovery Level",
  0x13: "Predictable Latency Mode Config",
  0x14: "Predictable Latency Mode Window",
  0x15: "LBA Status Interval",
  0x16: "Host Behavior",
  0x17: "Sanitize",
  0x18: "Endurance Event Group Configuration",
  0x19: "I/O Command Set Profile",
  0x1a: "Spinup Control",
  0x1d: "Flexible Direct Placement",
  0x1e: "Flexible Direct Placement Events",
  0x7d: "Enhanced Controller Metadata",
  0x7e: "Controller Metadata",
  0x7f: "Namespace Metadata",
  0x80: "Software Progress",
  0x81: "Host Identifier",
  0x82: "Reservation Notification Mask",
  0x83: "Reservation Persistence",
  0x84: "Namespace Write Protect",
};

/** nvme-cli's name of a feature. */
export function featureName(fid: number): string {
  return NAMES[fid] ?? (fid >= 0xc0 ? "Vendor Specific" : "Unknown");
}

/** A feature value as read by Get Features. */
export interface Feature {
  /** Feature identifier. */
  fid: number;
  /** Select used (0 current, 1 default, 2 saved, 3 supported capabilities). */
  sel: number;
  /** Completion DW0. */
  value: number;
  /** Data buffer for features that return one (timestamp, host behavior). */
  data?: Uint8Array;
  /** Decoded fields (for sel 3: saveable, namespaceSpecific, changeable). */
  fields: Record<string, number | boolean | string>;
}

/** Options for {@link getFeature}. */
export interface GetFeatureOptions {
  /** 0 current (default), 1 default, 2 saved, 3 supported capabilities. */
  sel?: number;
  /** Namespace for namespace-specific features. */
  nsid?: number;
  /** CDW11 (some features take a selector there, e.g. the temperature threshold sensor). */
  cdw11?: number;
}

/** Decode the fields of a feature value (and data). */
export function decodeFeature(fid: number, v: number, data?: Uint8Array): Record<string, number | boolean | string> {
  switch (fid) {
    case Fid.ARBITRATION:
      return { ab: v & 7, lpw: (v >>> 8) & 0xff, mpw: (v >>> 16) & 0xff, hpw: v >>> 24 };
    case Fid.POWER_MGMT:
      return { ps: v & 0x1f, wh: (v >>> 5) & 7 };
    case Fid.TEMP_THRESHOLD:
      return { tmpth: v & 0xffff, tmpthCelsius: (v & 0xffff) - 273, tmpsel: (v >>> 16) & 0xf, thsel: (v >>> 20) & 3 };
    case Fid.ERROR_RECOVERY:
      return { tler: v & 0xffff, dulbe: ((v >>> 16) & 1) === 1 };
    case Fid.VOLATILE_WC:
      return { wce: (v & 1) === 1 };
    case Fid.NUM_QUEUES:
      return { nsqa: (v & 0xffff) + 1, ncqa: (v >>> 16) + 1 };
    case Fid.IRQ_COALESCING:
      return { thr: v & 0xff, time: (v >>> 8) & 0xff };
    case Fid.ASYNC_EVENT:
      return {
        smart: v & 0xff,
        nsAttributeNotices: ((v >>> 8) & 1) === 1,
        fwActivationNotices: ((v >>> 9) & 1) === 1,
        telemetryLogNotices: ((v >>> 10) & 1) === 1,
        anaChangeNotices: ((v >>> 11) & 1) === 1,
      };
    case Fid.TIMESTAMP: {
      if (!data || data.length < TIMESTAMP_BYTES) return {};
      const t = decodeTimestamp(data);
      return { timestamp: t.timestamp, synch: t.synch, origin: t.origin };
    }
    case Fid.HOST_BEHAVIOR: {
      if (!data || data.length < 3) return {};
      const b = decodeHostBehavior(data);
      return { acre: b.acre, etdas: b.etdas, lbafee: b.lbafee };
    }
    default:
      return {};
  }
}

/** Read a feature; decoded fields in `.fields`. */
export async function getFeature(dev: AdminTarget, fid: number, opts: GetFeatureOptions = {}): Promise<Feature> {
  if (!Number.isInteger(fid) || fid < 0 || fid > 0xff) throw new InvalidArgumentError(`feature id must be 0-255, got ${fid}`);
  const sel = opts.sel ?? 0;
  if (![0, 1, 2, 3].includes(sel)) throw new InvalidArgumentError(`select must be 0-3, got ${sel}`);
  const cmd = getFeaturesCmd(fid, { nsid: opts.nsid, sel, cdw11: opts.cdw11 });
  const len = sel === 3 ? 0 : getDataLen(fid, opts.cdw11 ?? 0);
  let value: number, data: Uint8Array | undefined;
  if (len) {
    // Not the controller's identify(): it returns the data but drops DW0, which carries the value.
    const r = await adminTransfer(dev.controller, cmd, { bytes: len, allocBytes: 4096 });
    value = r.dw0;
    data = r.data!;
  } else {
    value = await dev.controller.adminCommand(cmd);
  }
  const fields = sel === 3
    ? { saveable: (value & 1) === 1, namespaceSpecific: (value & 2) === 2, changeable: (value & 4) === 4 }
    : decodeFeature(fid, value >>> 0, data);
  return { fid, sel, value: value >>> 0, data, fields };
}

/** Options for {@link setFeature}. */
export interface SetFeatureOptions {
  /** Save across power cycles (SV). */
  save?: boolean;
  /** Namespace for namespace-specific features. */
  nsid?: number;
  /** CDW12. */
  cdw12?: number;
  /** Data buffer for features that take one (timestamp, host behavior). */
  data?: Uint8Array;
}

/** Set a feature to `cdw11`; resolves to completion DW0. */
export async function setFeature(dev: AdminTarget, fid: number, cdw11: number, opts: SetFeatureOptions = {}): Promise<number> {
  if (!Number.isInteger(fid) || fid < 0 || fid > 0xff) throw new InvalidArgumentError(`feature id must be 0-255, got ${fid}`);
  if (!Number.isInteger(cdw11) || cdw11 < 0 || cdw11 > 0xffffffff) {
    throw new InvalidArgumentError(`feature value must be a 32-bit unsigned integer, got ${cdw11}`);
  }
  const cmd = setFeaturesCmd(fid, cdw11, { nsid: opts.nsid, save: opts.save, cdw12: opts.cdw12 });
  const need = DATA_LEN[fid] ?? 0;
  if (need && (!opts.data || opts.data.length < need)) {
    throw new InvalidArgumentError(`feature 0x${fid.toString(16)} (${featureName(fid)}) needs ${need} bytes of data`);
  }
  if (!opts.data || opts.data.length === 0) return (await dev.controller.adminCommand(cmd)) >>> 0;
  if (opts.data.length > 4096) throw new InvalidArgumentError("feature data is at most 4096 bytes");
  const r = await adminTransfer(dev.controller, cmd, { bytes: need || opts.data.length, input: opts.data, allocBytes: 4096 });
  return r.dw0 >>> 0;
}

function field(v: number, bits: number, what: string): number {
  if (!Number.isInteger(v) || v < 0 || v >= 2 ** bits) throw new InvalidArgumentError(`${what} must be 0-${2 ** bits - 1}, got ${v}`);
  return v;
}

/** Arbitration: burst (log2, 7 = no limit) and low/medium/high priority weights (zero-based). */
export async function setArbitration(dev: AdminTarget, a: { ab: number; lpw?: number; mpw?: number; hpw?: number }): Promise<number> {
  const v = field(a.ab, 3, "ab") | field(a.lpw ?? 0, 8, "lpw") << 8 | field(a.mpw ?? 0, 8, "mpw") << 16 |
    field(a.hpw ?? 0, 8, "hpw") << 24;
  return await setFeature(dev, Fid.ARBITRATION, v >>> 0);
}

/** Power Management: power state and workload hint. */
export async function setPowerManagement(dev: AdminTarget, ps: number, wh = 0): Promise<number> {
  return await setFeature(dev, Fid.POWER_MGMT, field(ps, 5, "ps") | field(wh, 3, "wh") << 5);
}

/** Temperature Threshold in kelvin for sensor `tmpsel` (0 composite); `under` sets the under-temperature threshold. */
export async function setTemperatureThreshold(dev: AdminTarget, kelvin: number, opts: { tmpsel?: number; under?: boolean } = {}): Promise<number> {
  const v = field(kelvin, 16, "threshold") | field(opts.tmpsel ?? 0, 4, "tmpsel") << 16 | (opts.under ? 1 << 20 : 0);
  return await setFeature(dev, Fid.TEMP_THRESHOLD, v >>> 0);
}

/** Error Recovery: time limited error recovery (100 ms units), deallocated or unwritten block error enable. */
export async function setErrorRecovery(dev: AdminTarget, tler: number, dulbe = false, nsid?: number): Promise<number> {
  return await setFeature(dev, Fid.ERROR_RECOVERY, (field(tler, 16, "tler") | (dulbe ? 1 << 16 : 0)) >>> 0, { nsid });
}

/** Volatile Write Cache on or off (refused before sending when Identify says there is none). */
export async function setVolatileWriteCache(dev: AdminTarget, enable: boolean): Promise<number> {
  if (!dev.controller.id.vwc) {
    throw new InvalidArgumentError("the controller has no volatile write cache (Identify VWC bit 0 is 0)");
  }
  return await setFeature(dev, Fid.VOLATILE_WC, enable ? 1 : 0);
}

/** Number of Queues: request IO submission/completion queue counts (one-based); DW0 has what was granted. */
export async function setNumberOfQueues(dev: AdminTarget, nsq: number, ncq: number): Promise<number> {
  return await setFeature(dev, Fid.NUM_QUEUES, ((field(nsq - 1, 16, "nsq - 1")) | field(ncq - 1, 16, "ncq - 1") << 16) >>> 0);
}

/** Interrupt Coalescing: aggregation threshold (zero-based) and time (100 µs units). */
export async function setInterruptCoalescing(dev: AdminTarget, thr: number, time: number): Promise<number> {
  return await setFeature(dev, Fid.IRQ_COALESCING, field(thr, 8, "thr") | field(time, 8, "time") << 8);
}

/** Asynchronous Event Configuration: the raw CDW11 bit mask (SMART warnings in bits 7:0, notices above). */
export async function setAsyncEventConfig(dev: AdminTarget, mask: number): Promise<number> {
  return await setFeature(dev, Fid.ASYNC_EVENT, field(mask, 32, "mask") >>> 0);
}

/** Timestamp: milliseconds since the Unix epoch (default now). */
export async function setTimestamp(dev: AdminTarget, ms: number = Date.now()): Promise<number> {
  field(ms, 48, "timestamp");
  return await setFeature(dev, Fid.TIMESTAMP, 0, { data: encodeTimestamp({ timestamp: ms }) });
}

/** Host Behavior Support: advanced command retry, extended telemetry, LBA format extension. */
export async function setHostBehavior(dev: AdminTarget, b: { acre?: boolean; etdas?: boolean; lbafee?: boolean }): Promise<number> {
  const data = encodeHostBehavior({ acre: b.acre ? 1 : 0, etdas: b.etdas ? 1 : 0, lbafee: b.lbafee ? 1 : 0 });
  return await setFeature(dev, Fid.HOST_BEHAVIOR, 0, { data });
}
