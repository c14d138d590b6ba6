/**
 * Get Features / Set Features with decoded values for arbitration, power
 * management, temperature threshold, error recovery, volatile write cache,
 * number of queues, interrupt coalescing, async event configuration,
 * timestamp and host behavior.
 * @module
 */
import { getFeaturesCmd, setFeaturesCmd } from "../nvme/command.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { Fid } from "../nvme/spec.ts";
import type { AdminTarget } from "./log.ts";
import { hexDump } from "./hexdump.ts";

/** Features whose Set Features carries data, and its size. */
const DATA_LEN: Record<number, number> = {
  [Fid.TIMESTAMP]: 8,
  [Fid.HOST_BEHAVIOR]: 512,
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
    case Fid.TIMESTAMP: return 8;
    case 0x13: case Fid.HOST_BEHAVIOR: return 512;
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
      if (!data || data.length < 8) return {};
      const dv = new DataView(data.buffer, data.byteOffset, 8);
      const ms = dv.getUint32(0, true) + dv.getUint16(4, true) * 0x1_0000_0000;
      return { timestamp: ms, synch: (data[6] & 1) === 1, origin: (data[6] >> 1) & 7 };
    }
    case Fid.HOST_BEHAVIOR:
      if (!data || data.length < 3) return {};
      return { acre: data[0], etdas: data[1], lbafee: data[2] };
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
    const buf = dev.controller.allocDma(4096);
    try {
      buf.bytes.fill(0, 0, 4096);
      value = await dev.controller.adminCommand(cmd, buf.iova, len);
      data = buf.bytes.slice(0, len);
    } finally {
      dev.controller.freeDma(buf);
    }
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
  const buf = dev.controller.allocDma(4096);
  try {
    buf.bytes.fill(0, 0, 4096);
    buf.bytes.set(opts.data);
    return (await dev.controller.adminCommand(cmd, buf.iova, need || opts.data.length)) >>> 0;
  } finally {
    dev.controller.freeDma(buf);
  }
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
  const data = new Uint8Array(8);
  const dv = new DataView(data.buffer);
  dv.setUint32(0, ms % 0x1_0000_0000, true);
  dv.setUint16(4, Math.floor(ms / 0x1_0000_0000), true);
  return await setFeature(dev, Fid.TIMESTAMP, 0, { data });
}

/** Host Behavior Support: advanced command retry, extended telemetry, LBA format extension. */
export async function setHostBehavior(dev: AdminTarget, b: { acre?: boolean; etdas?: boolean; lbafee?: boolean }): Promise<number> {
  const data = new Uint8Array(512);
  data[0] = b.acre ? 1 : 0;
  data[1] = b.etdas ? 1 : 0;
  data[2] = b.lbafee ? 1 : 0;
  return await setFeature(dev, Fid.HOST_BEHAVIOR, 0, { data });
}

/** nvme-cli's `%#0*x`: "0x" + zero-padded digits to `width` characters, or plain zeros for 0. */
function cHexAlt(v: number, width: number): string {
  return v === 0 ? "0".repeat(width) : "0x" + v.toString(16).padStart(width - 2, "0");
}

const SEL_NAMES = ["Current", "Default", "Saved", "Supported capabilities"];

/**
 * What `nvme get-feature` prints: the value line (e.g. `get-feature:0x06
 * (Volatile Write Cache), Current value:0x00000001`), then for select 3 the
 * capabilities, with `human` nvme-cli's field decoding (`-H`), else the data
 * buffer as a hex dump when the feature has one.
 */
export function formatFeature(f: Feature, { human = false } = {}): string {
  let s = `get-feature:${cHexAlt(f.fid, f.fid ? 4 : 2)} (${featureName(f.fid)}), ${SEL_NAMES[f.sel] ?? "Reserved"} value:${
    cHexAlt(f.value, f.value ? 10 : 8)
  }\n`;
  if (f.sel === 3) {
    if (f.value & 1) s += "  Feature is saveable\n";
    if (f.value & 2) s += "  Feature is per-namespace\n";
    if (f.value & 4) s += "  Feature is changeable\n";
    return s;
  }
  if (human) return s + featureFieldsText(f.fid, f.value, f.data);
  return f.data ? s + hexDump(f.data) : s;
}

const sendAe = (b: number) => (b ? "Send async event" : "Do not send async event");
/** C's `%#x` / `%#"PRIx64`: "0x" and hex digits, "0" for zero. */
const x = (v: number) => (v ? "0x" + v.toString(16) : "0");
const x64 = (v: bigint) => (v ? "0x" + v.toString(16) : "0");
const tf = (b: number) => (b ? "True" : "False");
const ed = (b: number) => (b ? "Enabled" : "Disabled");

/** C's `%c %Z` in the C locale: "Tue Dec  1 07:40:00 2026 UTC", local time. */
function cTime(ms: number): string {
  const d = new Date(ms);
  const day = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"][d.getDay()];
  const mon = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"][d.getMonth()];
  const p2 = (n: number) => String(n).padStart(2, "0");
  const zone = new Intl.DateTimeFormat("en-US", { timeZoneName: "short" }).formatToParts(d).find((p) => p.type === "timeZoneName")?.value ?? "";
  return `${day} ${mon} ${String(d.getDate()).padStart(2)} ${p2(d.getHours())}:${p2(d.getMinutes())}:${p2(d.getSeconds())} ${d.getFullYear()} ${zone}`;
}

const CTRL_METADATA = [
  "Operating System Controller Name", "Operating System Driver Name", "Operating System Driver Version",
  "Pre-boot Controller Name", "Pre-boot Driver Name", "Pre-boot Driver Version", "System Processor Model",
  "Chipset Driver Name", "Chipset Driver Version", "Operating System Name and Build", "System Product Name",
  "Firmware Version", "Operating System Driver Filename", "Display Driver Name", "Display Driver Version",
  "Host-Determined Failure Record",
];
const NS_METADATA = [
  "Operating System Namespace Name", "Pre-boot Namespace Name", "Operating System Namespace Name Qualifier 1",
  "Operating System Namespace Name Qualifier 2",
];

/** nvme-cli's host metadata listing: descriptor count, then type, revision, length and value of each. */
function hostMetadataText(fid: number, buf: Uint8Array): string {
  const n = buf[0];
  let s = `\tNum Metadata Element Descriptors: ${n}\n`;
  let off = 2;
  for (let i = 0; i < n && off + 4 <= buf.length; i++) {
    const type = buf[off], rev = buf[off + 1], len = buf[off + 2] | (buf[off + 3] << 8);
    const val = buf.subarray(off + 4, Math.min(buf.length, off + 4 + len));
    const end = val.indexOf(0);
    const text = String.fromCharCode(...(end < 0 ? val : val.subarray(0, end)));
    const names = fid === 0x7f ? NS_METADATA : CTRL_METADATA;
    const name = names[type - 1] ?? (fid === 0x7f ? "Unknown Namespace Type" : "Unknown Controller Type");
    s += `\tElement[${String(i).padEnd(3)}]:\n\t\tType\t    : 0x${type.toString(16).padStart(2, "0")} (${name})\n` +
      `\t\tRevision : ${rev}\n\t\tLength   : ${len}\n\t\tValue    : ${text}\n`;
    off += 4 + len;
  }
  return s;
}

/**
 * nvme-cli 2.3's `-H` lines for a feature value (nvme_feature_show_fields).
 * For host metadata (7Dh-7Fh) an element's value is shown up to its first
 * NUL or its length; past that nvme-cli prints whatever its stack held.
 */
export function featureFieldsText(fid: number, result: number, buf?: Uint8Array): string {
  const r = result >>> 0;
  const b = (n: number) => (r >>> n) & 1;
  switch (fid) {
    case Fid.ARBITRATION:
      return `\tHigh Priority Weight   (HPW): ${(r >>> 24) + 1}\n\tMedium Priority Weight (MPW): ${((r >>> 16) & 0xff) + 1}\n` +
        `\tLow Priority Weight    (LPW): ${((r >>> 8) & 0xff) + 1}\n\tArbitration Burst       (AB): ${(r & 7) === 7 ? "No limit" : 1 << (r & 7)}\n`;
    case Fid.POWER_MGMT: {
      const wh = (r & 0xe0) >> 5;
      const hint = ["No Workload", "Extended Idle Period with a Burst of Random Writes", "Heavy Sequential Writes"][wh] ?? "Reserved";
      return `\tWorkload Hint (WH): ${wh} - ${hint}\n\tPower State   (PS): ${r & 0x1f}\n`;
    }
    case 0x03: {
      let s = `\tNumber of LBA Ranges (NUM): ${(r & 0x3f) + 1}\n`;
      if (buf) {
        const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
        const lbaType = (t: number) =>
          ["Reserved", "Filesystem", "RAID", "Cache", "Page / Swap file"][t] ?? (t <= 0x7f ? "Reserved" : "Vendor Specific");
        for (let i = 0; i <= (r & 0x3f) && (i + 1) * 64 <= buf.length; i++) {
          const e = i * 64, type = buf[e], at = buf[e + 1];
          s += `\ttype       : ${x(type)} - ${lbaType(type)}\n` +
            `\tattributes : ${x(at)} - ${at & 1 ? "LBA range may be overwritten" : "LBA range should not be overwritten"}, ${
              at & 2 ? "LBA range should be hidden from the OS/EFI/BIOS" : "LBA range should be visible from the OS/EFI/BIOS"
            }\n` +
            `\tslba       : ${x64(dv.getBigUint64(e + 16, true))}\n\tnlb        : ${x64(dv.getBigUint64(e + 24, true))}\n` +
            `\tguid       : ${[...buf.subarray(e + 32, e + 48)].map((b) => b.toString(16).padStart(2, "0")).join("")}\n`;
        }
      }
      return s;
    }
    case Fid.TEMP_THRESHOLD: {
      const thsel = (r >>> 20) & 3, tmpsel = (r >>> 16) & 0xf, t = r & 0xffff;
      const type = ["Over Temperature Threshold", "Under Temperature Threshold"][thsel] ?? "Reserved";
      const sel = tmpsel === 0 ? "Composite Temperature" : tmpsel <= 8 ? `Temperature Sensor ${tmpsel}` : "Reserved";
      return `\tThreshold Type Select         (THSEL): ${thsel} - ${type}\n` +
        `\tThreshold Temperature Select (TMPSEL): ${tmpsel} - ${sel}\n` +
        `\tTemperature Threshold         (TMPTH): ${t - 273}°C (${t} Kelvin)\n`;
    }
    case Fid.ERROR_RECOVERY:
      return `\tDeallocated or Unwritten Logical Block Error Enable (DULBE): ${ed(b(16))}\n` +
        `\tTime Limited Error Recovery                          (TLER): ${(r & 0xffff) * 100} ms\n`;
    case Fid.VOLATILE_WC:
      return `\tVolatile Write Cache Enable (WCE): ${ed(b(0))}\n`;
    case Fid.NUM_QUEUES:
      return `\tNumber of IO Completion Queues Allocated (NCQA): ${(r >>> 16) + 1}\n` +
        `\tNumber of IO Submission Queues Allocated (NSQA): ${(r & 0xffff) + 1}\n`;
    case Fid.IRQ_COALESCING:
      return `\tAggregation Time     (TIME): ${((r >>> 8) & 0xff) * 100} usec\n\tAggregation Threshold (THR): ${(r & 0xff) + 1}\n`;
    case Fid.IRQ_CONFIG:
      return `\tCoalescing Disable (CD): ${tf(b(16))}\n\tInterrupt Vector   (IV): ${r & 0xffff}\n`;
    case Fid.WRITE_ATOMICITY:
      return `\tDisable Normal (DN): ${tf(b(0))}\n`;
    case Fid.ASYNC_EVENT:
      return `\tDiscovery Log Page Change Notices                         : ${sendAe(b(31))}\n` +
        `\tEndurance Group Event Aggregate Log Change Notices        : ${sendAe(b(14))}\n` +
        `\tLBA Status Information Notices                            : ${sendAe(b(13))}\n` +
        `\tPredictable Latency Event Aggregate Log Change Notices    : ${sendAe(b(12))}\n` +
        `\tAsymmetric Namespace Access Change Notices                : ${sendAe(b(11))}\n` +
        `\tTelemetry Log Notices                                     : ${sendAe(b(10))}\n` +
        `\tFirmware Activation Notices                               : ${sendAe(b(9))}\n` +
        `\tNamespace Attribute Notices                               : ${sendAe(b(8))}\n` +
        `\tSMART / Health Critical Warnings                          : ${sendAe(r & 0xff)}\n`;
    case 0x0c: {
      let s = `\tAutonomous Power State Transition Enable (APSTE): ${ed(b(0))}\n`;
      if (buf && buf.length >= 256) {
        const dv = new DataView(buf.buffer, buf.byteOffset, 256);
        s += "\tAuto PST Entries\t.................\n";
        for (let i = 0; i < 32; i++) {
          const lo = dv.getUint32(i * 8, true);
          s += `\tEntry[${String(i).padStart(2)}]   \n\t.................\n` +
            `\tIdle Time Prior to Transition (ITPT): ${(lo >>> 8) & 0xffffff} ms\n` +
            `\tIdle Transition Power State   (ITPS): ${(lo >>> 3) & 0x1f}\n\t.................\n`;
        }
      }
      return s;
    }
    case 0x0d: {
      let s = `\tEnable Host Memory (EHM): ${ed(b(0))}\n`;
      if (buf && buf.length >= 16) {
        const dv = new DataView(buf.buffer, buf.byteOffset, 16);
        s += `\tHost Memory Descriptor List Entry Count (HMDLEC): ${dv.getUint32(12, true)}\n` +
          `\tHost Memory Descriptor List Address     (HMDLAU): 0x${dv.getUint32(8, true).toString(16)}\n` +
          `\tHost Memory Descriptor List Address     (HMDLAL): 0x${dv.getUint32(4, true).toString(16)}\n` +
          `\tHost Memory Buffer Size                  (HSIZE): ${dv.getUint32(0, true)}\n`;
      }
      return s;
    }
    case Fid.TIMESTAMP: {
      if (!buf || buf.length < 8) return "";
      const ms = buf[0] + buf[1] * 2 ** 8 + buf[2] * 2 ** 16 + buf[3] * 2 ** 24 + buf[4] * 2 ** 32 + buf[5] * 2 ** 40;
      return `\tThe timestamp is : ${ms} (${cTime(Math.floor(ms / 1000) * 1000)})\n\t${
        buf[6] & 2
          ? "The Timestamp field was initialized with a Timestamp value using a Set Features command."
          : "The Timestamp field was initialized to ‘0’ by a Controller Level Reset."
      }\n\t${
        buf[6] & 1
          ? "The controller may have stopped counting during vendor specific intervals after the Timestamp value was initialized"
          : "The controller counted time in milliseconds continuously since the Timestamp value was initialized."
      }\n`;
    }
    case 0x0f:
      return `\tKeep Alive Timeout (KATO) in milliseconds: ${r}\n`;
    case 0x10:
      return `\tThermal Management Temperature 1 (TMT1) : ${r >>> 16} Kelvin (${(r >>> 16) - 273}°C)\n` +
        `\tThermal Management Temperature 2 (TMT2) : ${r & 0xffff} Kelvin (${(r & 0xffff) - 273}°C)\n`;
    case 0x11:
      return `\tNon-Operational Power State Permissive Mode Enable (NOPPME): ${tf(b(0))}\n`;
    case 0x12:
      return `\tRead Recovery Level (RRL): ${r & 0xf}\n`;
    case 0x13: {
      let s = `\tPredictable Latency Window Enabled: ${tf(b(0))}\n`;
      if (buf && buf.length >= 56) {
        const dv = new DataView(buf.buffer, buf.byteOffset, 56);
        s += `\tEnable Event          :${dv.getUint16(0, true).toString(16).padStart(4, "0")}\n` +
          `\tDTWIN Reads Threshold :${dv.getBigUint64(32, true)}\n\tDTWIN Writes Threshold:${dv.getBigUint64(40, true)}\n` +
          `\tDTWIN Time Threshold  :${dv.getBigUint64(48, true)}\n`;
      }
      return s;
    }
    case Fid.HOST_BEHAVIOR:
      return buf ? `\tHost Behavior Support: ${tf(buf[0] & 1)}\n` : "";
    case 0x17:
      return `\tNo-Deallocate Response Mode (NODRM) : ${r & 1}\n`;
    case 0x18:
      return `\tEndurance Group Identifier (ENDGID): ${r & 0xffff}\n\tEndurance Group Critical Warnings  : ${(r >>> 16) & 0xff}\n`;
    case 0x19:
      return `\tI/O Command Set Profile: ${tf(b(0))}\n`;
    case 0x1a:
      return `\tSpinup control feature Enabled: ${tf(b(0))}\n`;
    case 0x7d:
    case 0x7e:
    case 0x7f:
      return buf ? hostMetadataText(fid, buf) : "";
    case 0x80:
      return `\tPre-boot Software Load Count (PBSLC): ${r & 0xff}\n`;
    case 0x81:
      // The first 8 bytes, little-endian, even for a 128-bit identifier: what nvme-cli prints.
      return buf && buf.length >= 8
        ? `\tHost Identifier (HOSTID):  ${new DataView(buf.buffer, buf.byteOffset, 8).getBigUint64(0, true)}\n`
        : "";
    default:
      return "";
  }
}
