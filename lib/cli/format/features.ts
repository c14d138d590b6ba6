/**
 * nvme-cli 2.3's presentation of a feature read with `nvme get-feature`: the
 * value line, the capabilities of select 3, the data buffer's hex dump and
 * the `-H` decoding of each feature's fields.
 * @module
 */
import { type Feature, featureName } from "../../admin/features.ts";
import { Fid } from "../../nvme/spec.ts";
import {
  APST_BYTES,
  decodeApst,
  decodeHmbAttributes,
  decodeHostBehavior,
  decodeHostIdLow,
  decodeHostMetadata,
  decodeLbaRanges,
  decodePlmConfig,
  decodeTimestamp,
  HMB_ATTR_BYTES,
  PLM_CONFIG_BYTES,
  TIMESTAMP_BYTES,
} from "../../nvme/features.ts";
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
  const { count, elements } = decodeHostMetadata(buf);
  let s = `\tNum Metadata Element Descriptors: ${count}\n`;
  elements.forEach(({ type, rev, len, value: val }, i) => {
    const end = val.indexOf(0);
    const text = String.fromCharCode(...(end < 0 ? val : val.subarray(0, end)));
    const names = fid === 0x7f ? NS_METADATA : CTRL_METADATA;
    const name = names[type - 1] ?? (fid === 0x7f ? "Unknown Namespace Type" : "Unknown Controller Type");
    s += `\tElement[${String(i).padEnd(3)}]:\n\t\tType\t    : 0x${type.toString(16).padStart(2, "0")} (${name})\n` +
      `\t\tRevision : ${rev}\n\t\tLength   : ${len}\n\t\tValue    : ${text}\n`;
  });
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
        const lbaType = (t: number) =>
          ["Reserved", "Filesystem", "RAID", "Cache", "Page / Swap file"][t] ?? (t <= 0x7f ? "Reserved" : "Vendor Specific");
        for (const { type, attributes: at, slba, nlb, guid } of decodeLbaRanges(buf, (r & 0x3f) + 1)) {
          s += `\ttype       : ${x(type)} - ${lbaType(type)}\n` +
            `\tattributes : ${x(at)} - ${at & 1 ? "LBA range may be overwritten" : "LBA range should not be overwritten"}, ${
              at & 2 ? "LBA range should be hidden from the OS/EFI/BIOS" : "LBA range should be visible from the OS/EFI/BIOS"
            }\n` +
            `\tslba       : ${x64(slba)}\n\tnlb        : ${x64(nlb)}\n` +
            `\tguid       : ${[...guid].map((b) => b.toString(16).padStart(2, "0")).join("")}\n`;
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
      if (buf && buf.length >= APST_BYTES) {
        s += "\tAuto PST Entries\t.................\n";
        decodeApst(buf).forEach(({ itpt, itps }, i) => {
          s += `\tEntry[${String(i).padStart(2)}]   \n\t.................\n` +
            `\tIdle Time Prior to Transition (ITPT): ${itpt} ms\n` +
            `\tIdle Transition Power State   (ITPS): ${itps}\n\t.................\n`;
        });
      }
      return s;
    }
    case 0x0d: {
      let s = `\tEnable Host Memory (EHM): ${ed(b(0))}\n`;
      if (buf && buf.length >= HMB_ATTR_BYTES) {
        const h = decodeHmbAttributes(buf);
        s += `\tHost Memory Descriptor List Entry Count (HMDLEC): ${h.hmdlec}\n` +
          `\tHost Memory Descriptor List Address     (HMDLAU): 0x${h.hmdlau.toString(16)}\n` +
          `\tHost Memory Descriptor List Address     (HMDLAL): 0x${h.hmdlal.toString(16)}\n` +
          `\tHost Memory Buffer Size                  (HSIZE): ${h.hsize}\n`;
      }
      return s;
    }
    case Fid.TIMESTAMP: {
      if (!buf || buf.length < TIMESTAMP_BYTES) return "";
      const t = decodeTimestamp(buf), ms = t.timestamp;
      return `\tThe timestamp is : ${ms} (${cTime(Math.floor(ms / 1000) * 1000)})\n\t${
        t.origin & 1
          ? "The Timestamp field was initialized with a Timestamp value using a Set Features command."
          : "The Timestamp field was initialized to ‘0’ by a Controller Level Reset."
      }\n\t${
        t.synch
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
      if (buf && buf.length >= PLM_CONFIG_BYTES) {
        const p = decodePlmConfig(buf);
        s += `\tEnable Event          :${p.ee.toString(16).padStart(4, "0")}\n` +
          `\tDTWIN Reads Threshold :${p.dtwinrt}\n\tDTWIN Writes Threshold:${p.dtwinwt}\n` +
          `\tDTWIN Time Threshold  :${p.dtwintt}\n`;
      }
      return s;
    }
    case Fid.HOST_BEHAVIOR:
      return buf ? `\tHost Behavior Support: ${tf(decodeHostBehavior(buf).acre & 1)}\n` : "";
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
        ? `\tHost Identifier (HOSTID):  ${decodeHostIdLow(buf)}\n`
        : "";
    default:
      return "";
  }
}
