/**
 * nvme-cli 2.3's presentation of a feature read with `nvme get-feature`: the
 * value line, the capabilities of select 3, the data buffer's hex dump and
 * the `-H` decoding of each feature's fields.
 * @module
 */
import { type Feature, featureName } from "../../admin/features.ts";
import { Fid } from "../../nvme/spec.ts";
import { hexDump } from "./hexdump.ts";

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
