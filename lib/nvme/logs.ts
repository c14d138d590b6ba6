/**
 * Log page layouts (NVMe Base 2.0, section 5.16.1): error information,
 * SMART / health, firmware slot, commands supported and effects, device
 * self-test and sanitize status, each named once here with a decoder (the
 * host: lib/admin) and an encoder (the software controller, lib/sim). The
 * decoded objects are keyed like nvme-cli 2.3's JSON; the presentation lives
 * in lib/cli/format/log.ts. As SPDK asserts `sizeof(struct
 * spdk_nvme_health_information_page) == 512`, each `*_BYTES` constant is the
 * size the offsets below fill.
 * @module
 */
import { InvalidArgumentError } from "./errors.ts";
import { decodeNsidList } from "./identify.ts";
import { getU128, setU128, Uint128, Uint64, viewOf } from "./wide.ts";

// ---------------------------------------------------------------------------
// SMART / Health Information (02h)

/** Size of the SMART / Health Information log. */
export const SMART_LOG_BYTES = 512;

/** Byte offsets in the SMART / Health Information log. */
export const SmartLogOffset = {
  CRITICAL_WARNING: 0,
  TEMPERATURE: 1,
  AVAIL_SPARE: 3,
  SPARE_THRESH: 4,
  PERCENT_USED: 5,
  ENDURANCE_GRP_CRITICAL_WARNING_SUMMARY: 6,
  DATA_UNITS_READ: 32,
  DATA_UNITS_WRITTEN: 48,
  HOST_READ_COMMANDS: 64,
  HOST_WRITE_COMMANDS: 80,
  CONTROLLER_BUSY_TIME: 96,
  POWER_CYCLES: 112,
  POWER_ON_HOURS: 128,
  UNSAFE_SHUTDOWNS: 144,
  MEDIA_ERRORS: 160,
  NUM_ERR_LOG_ENTRIES: 176,
  WARNING_TEMP_TIME: 192,
  CRITICAL_COMP_TIME: 196,
  /** Temperature sensor 1; sensor n at TEMP_SENSOR1 + 2 * (n - 1), 8 sensors. */
  TEMP_SENSOR1: 200,
  THM_TEMP1_TRANS_COUNT: 216,
  THM_TEMP2_TRANS_COUNT: 220,
  THM_TEMP1_TOTAL_TIME: 224,
  THM_TEMP2_TOTAL_TIME: 228,
} as const;

/** The 128-bit counters of the SMART log, by decoded key. */
const SMART_U128 = [
  ["data_units_read", SmartLogOffset.DATA_UNITS_READ],
  ["data_units_written", SmartLogOffset.DATA_UNITS_WRITTEN],
  ["host_read_commands", SmartLogOffset.HOST_READ_COMMANDS],
  ["host_write_commands", SmartLogOffset.HOST_WRITE_COMMANDS],
  ["controller_busy_time", SmartLogOffset.CONTROLLER_BUSY_TIME],
  ["power_cycles", SmartLogOffset.POWER_CYCLES],
  ["power_on_hours", SmartLogOffset.POWER_ON_HOURS],
  ["unsafe_shutdowns", SmartLogOffset.UNSAFE_SHUTDOWNS],
  ["media_errors", SmartLogOffset.MEDIA_ERRORS],
  ["num_err_log_entries", SmartLogOffset.NUM_ERR_LOG_ENTRIES],
] as const;

/** The 32-bit fields after the temperature sensors, by decoded key. */
const SMART_TAIL = [
  ["thm_temp1_trans_count", SmartLogOffset.THM_TEMP1_TRANS_COUNT],
  ["thm_temp2_trans_count", SmartLogOffset.THM_TEMP2_TRANS_COUNT],
  ["thm_temp1_total_time", SmartLogOffset.THM_TEMP1_TOTAL_TIME],
  ["thm_temp2_total_time", SmartLogOffset.THM_TEMP2_TOTAL_TIME],
] as const;

/** SMART / Health Information log, keyed like nvme-cli 2.3's JSON. */
export interface SmartLog {
  /** Critical warning bits. */
  critical_warning: number;
  /** Composite temperature in kelvin. */
  temperature: number;
  /** Available spare, percent. */
  avail_spare: number;
  /** Available spare threshold, percent. */
  spare_thresh: number;
  /** Percentage used. */
  percent_used: number;
  /** Endurance group critical warning summary. */
  endurance_grp_critical_warning_summary: number;
  /** Data units (1000 × 512 bytes) read. */
  data_units_read: Uint128;
  /** Data units written. */
  data_units_written: Uint128;
  /** Host read commands. */
  host_read_commands: Uint128;
  /** Host write commands. */
  host_write_commands: Uint128;
  /** Controller busy time, minutes. */
  controller_busy_time: Uint128;
  /** Power cycles. */
  power_cycles: Uint128;
  /** Power-on hours. */
  power_on_hours: Uint128;
  /** Unsafe shutdowns. */
  unsafe_shutdowns: Uint128;
  /** Media and data integrity errors. */
  media_errors: Uint128;
  /** Error information log entries over the controller's life. */
  num_err_log_entries: Uint128;
  /** Minutes above the warning composite temperature threshold. */
  warning_temp_time: number;
  /** Minutes above the critical composite temperature threshold. */
  critical_comp_time: number;
  /** Temperature sensors 1-8 in kelvin; nvme-cli lists only the non-zero ones. */
  [sensor: `temperature_sensor_${number}`]: number;
  /** Thermal management temperature 1 transition count. */
  thm_temp1_trans_count: number;
  /** Thermal management temperature 2 transition count. */
  thm_temp2_trans_count: number;
  /** Seconds in thermal management temperature 1. */
  thm_temp1_total_time: number;
  /** Seconds in thermal management temperature 2. */
  thm_temp2_total_time: number;
}

/** Decode a 512-byte SMART / Health Information log. */
export function parseSmartLog(data: Uint8Array): SmartLog {
  if (data.length < SMART_LOG_BYTES) throw new InvalidArgumentError(`SMART log is 512 bytes, got ${data.length}`);
  const dv = viewOf(data), O = SmartLogOffset;
  const s: Record<string, unknown> = {
    critical_warning: data[O.CRITICAL_WARNING],
    temperature: dv.getUint16(O.TEMPERATURE, true),
    avail_spare: data[O.AVAIL_SPARE],
    spare_thresh: data[O.SPARE_THRESH],
    percent_used: data[O.PERCENT_USED],
    endurance_grp_critical_warning_summary: data[O.ENDURANCE_GRP_CRITICAL_WARNING_SUMMARY],
  };
  for (const [k, off] of SMART_U128) s[k] = new Uint128(getU128(dv, off));
  s.warning_temp_time = dv.getUint32(O.WARNING_TEMP_TIME, true);
  s.critical_comp_time = dv.getUint32(O.CRITICAL_COMP_TIME, true);
  for (let c = 0; c < 8; c++) {
    const t = dv.getUint16(O.TEMP_SENSOR1 + 2 * c, true);
    if (t !== 0) s[`temperature_sensor_${c + 1}`] = t;
  }
  for (const [k, off] of SMART_TAIL) s[k] = dv.getUint32(off, true);
  return s as unknown as SmartLog;
}

/**
 * Encode a SMART / Health Information log (fields left out are zero): what a
 * controller model returns for Get Log Page 02h. {@link parseSmartLog} of the
 * result gives the fields back.
 */
export function encodeSmartLog(s: Partial<SmartLog>, out: Uint8Array = new Uint8Array(SMART_LOG_BYTES)): Uint8Array {
  if (out.length < SMART_LOG_BYTES) throw new InvalidArgumentError(`SMART log is 512 bytes, got ${out.length}`);
  const dv = viewOf(out), O = SmartLogOffset;
  out[O.CRITICAL_WARNING] = s.critical_warning ?? 0;
  dv.setUint16(O.TEMPERATURE, s.temperature ?? 0, true);
  out[O.AVAIL_SPARE] = s.avail_spare ?? 0;
  out[O.SPARE_THRESH] = s.spare_thresh ?? 0;
  out[O.PERCENT_USED] = s.percent_used ?? 0;
  out[O.ENDURANCE_GRP_CRITICAL_WARNING_SUMMARY] = s.endurance_grp_critical_warning_summary ?? 0;
  for (const [k, off] of SMART_U128) setU128(dv, off, s[k]?.value ?? 0n);
  dv.setUint32(O.WARNING_TEMP_TIME, s.warning_temp_time ?? 0, true);
  dv.setUint32(O.CRITICAL_COMP_TIME, s.critical_comp_time ?? 0, true);
  for (let c = 0; c < 8; c++) dv.setUint16(O.TEMP_SENSOR1 + 2 * c, s[`temperature_sensor_${c + 1}`] ?? 0, true);
  for (const [k, off] of SMART_TAIL) dv.setUint32(off, s[k] ?? 0, true);
  return out;
}

// ---------------------------------------------------------------------------
// Error Information (01h)

/** One Error Information log entry, keyed like nvme-cli 2.3's JSON. */
export interface ErrorLogEntry {
  /** Error count (0: entry unused). */
  error_count: Uint64;
  /** Submission queue id of the failed command. */
  sqid: number;
  /** Command id of the failed command. */
  cmdid: number;
  /** Status field (without the phase tag). */
  status_field: number;
  /** Phase tag. */
  phase_tag: number;
  /** Parameter error location. */
  parm_error_location: number;
  /** First failing LBA. */
  lba: Uint64;
  /** Namespace. */
  nsid: number;
  /** Vendor specific information available (log page id). */
  vs: number;
  /** Transport type. */
  trtype: number;
  /** Command specific information. */
  cs: Uint64;
  /** Transport type specific information. */
  trtype_spec_info: number;
}

/** Size of one error log entry. */
export const ERROR_LOG_ENTRY_SIZE = 64;

/** Byte offsets in an error log entry. */
export const ErrorLogOffset = {
  ERROR_COUNT: 0,
  SQID: 8,
  CMDID: 10,
  STATUS: 12,
  PARM_ERROR_LOCATION: 14,
  LBA: 16,
  NSID: 24,
  VS: 28,
  TRTYPE: 29,
  CS: 32,
  TRTYPE_SPEC_INFO: 40,
} as const;

/** Decode error log entries (64 bytes each). */
export function parseErrorLog(data: Uint8Array): ErrorLogEntry[] {
  const dv = viewOf(data), E = ErrorLogOffset;
  const out: ErrorLogEntry[] = [];
  for (let o = 0; o + ERROR_LOG_ENTRY_SIZE <= data.length; o += ERROR_LOG_ENTRY_SIZE) {
    const sf = dv.getUint16(o + E.STATUS, true);
    out.push({
      error_count: new Uint64(dv.getBigUint64(o + E.ERROR_COUNT, true)),
      sqid: dv.getUint16(o + E.SQID, true),
      cmdid: dv.getUint16(o + E.CMDID, true),
      status_field: sf >> 1,
      phase_tag: sf & 1,
      parm_error_location: dv.getUint16(o + E.PARM_ERROR_LOCATION, true),
      lba: new Uint64(dv.getBigUint64(o + E.LBA, true)),
      nsid: dv.getUint32(o + E.NSID, true),
      vs: data[o + E.VS],
      trtype: data[o + E.TRTYPE],
      cs: new Uint64(dv.getBigUint64(o + E.CS, true)),
      trtype_spec_info: dv.getUint16(o + E.TRTYPE_SPEC_INFO, true),
    });
  }
  return out;
}

/** Encode one error log entry (fields left out are zero); {@link parseErrorLog} gives it back. */
export function encodeErrorLogEntry(e: Partial<ErrorLogEntry>, out: Uint8Array = new Uint8Array(ERROR_LOG_ENTRY_SIZE)): Uint8Array {
  const dv = viewOf(out), E = ErrorLogOffset;
  dv.setBigUint64(E.ERROR_COUNT, e.error_count?.value ?? 0n, true);
  dv.setUint16(E.SQID, e.sqid ?? 0, true);
  dv.setUint16(E.CMDID, e.cmdid ?? 0, true);
  dv.setUint16(E.STATUS, (((e.status_field ?? 0) & 0x7fff) << 1) | ((e.phase_tag ?? 0) & 1), true);
  dv.setUint16(E.PARM_ERROR_LOCATION, e.parm_error_location ?? 0, true);
  dv.setBigUint64(E.LBA, e.lba?.value ?? 0n, true);
  dv.setUint32(E.NSID, e.nsid ?? 0, true);
  out[E.VS] = e.vs ?? 0;
  out[E.TRTYPE] = e.trtype ?? 0;
  dv.setBigUint64(E.CS, e.cs?.value ?? 0n, true);
  dv.setUint16(E.TRTYPE_SPEC_INFO, e.trtype_spec_info ?? 0, true);
  return out;
}

// ---------------------------------------------------------------------------
// Firmware Slot Information (03h)

/** Size of the Firmware Slot Information log. */
export const FW_SLOT_LOG_BYTES = 512;

/** Byte offsets in the Firmware Slot Information log. */
export const FwSlotLogOffset = {
  AFI: 0,
  /** Firmware revision of slot 1; slot n at FRS1 + 8 * (n - 1), 7 slots of 8 bytes. */
  FRS1: 8,
} as const;

/** Firmware Slot Information log. */
export interface FwSlotLog {
  /** Active Firmware Info: bits 2:0 active slot, bits 6:4 slot activated at the next reset. */
  afi: number;
  /** Active slot (1-7). */
  activeSlot: number;
  /** Slot activated at the next reset (0: none). */
  nextSlot: number;
  /** Firmware revision per slot 1-7 ("" when empty). */
  frs: string[];
  /** Raw 8-byte revisions as little-endian integers, per slot. */
  frsRaw: bigint[];
}

/** Decode a 512-byte Firmware Slot Information log. */
export function parseFwLog(data: Uint8Array): FwSlotLog {
  if (data.length < 64) throw new InvalidArgumentError(`firmware slot log is 512 bytes, got ${data.length}`);
  const dv = viewOf(data), O = FwSlotLogOffset;
  const frs: string[] = [], frsRaw: bigint[] = [];
  for (let i = 0; i < 7; i++) {
    const o = O.FRS1 + i * 8;
    let s = "";
    for (let j = 0; j < 8 && data[o + j] !== 0; j++) s += String.fromCharCode(data[o + j]);
    frs.push(s);
    frsRaw.push(dv.getBigUint64(o, true));
  }
  const afi = data[O.AFI];
  return { afi, activeSlot: afi & 7, nextSlot: (afi >> 4) & 7, frs, frsRaw };
}

/**
 * Encode a Firmware Slot Information log from the active firmware info and
 * up to 7 slot revisions: ASCII, space-padded to 8 bytes; an empty slot reads zero.
 */
export function encodeFwLog(f: { afi: number; frs: readonly string[] }, out: Uint8Array = new Uint8Array(FW_SLOT_LOG_BYTES)): Uint8Array {
  const O = FwSlotLogOffset;
  out[O.AFI] = f.afi;
  for (let i = 0; i < 7; i++) {
    const s = f.frs[i] ?? "", o = O.FRS1 + 8 * i;
    for (let j = 0; j < 8; j++) out[o + j] = s ? (j < s.length ? s.charCodeAt(j) & 0x7f : 0x20) : 0;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Commands Supported and Effects (05h)

/** Size of the Commands Supported and Effects log. */
export const EFFECTS_LOG_BYTES = 4096;

/** Byte offsets in the Commands Supported and Effects log: 256 32-bit entries each. */
export const EffectsLogOffset = {
  /** Admin command effects, by opcode. */
  ACS: 0,
  /** IO command effects, by opcode. */
  IOCS: 1024,
} as const;

/** Commands Supported and Effects log of one command set. */
export interface EffectsLog {
  /** Command set identifier the page was read for. */
  csi: number;
  /** Admin command effects by opcode (256 entries; bit 0 CSUPP). */
  acs: number[];
  /** IO command effects by opcode (256 entries). */
  iocs: number[];
}

/** Decode a 4096-byte Commands Supported and Effects log. */
export function parseEffectsLog(data: Uint8Array, csi = 0): EffectsLog {
  if (data.length < 2048) throw new InvalidArgumentError(`effects log is 4096 bytes, got ${data.length}`);
  const dv = viewOf(data), O = EffectsLogOffset;
  const acs: number[] = [], iocs: number[] = [];
  for (let i = 0; i < 256; i++) {
    acs.push(dv.getUint32(O.ACS + i * 4, true));
    iocs.push(dv.getUint32(O.IOCS + i * 4, true));
  }
  return { csi, acs, iocs };
}

/** Encode a Commands Supported and Effects log (entries left out, or sparse, are zero). */
export function encodeEffectsLog(e: Pick<EffectsLog, "acs" | "iocs">, out: Uint8Array = new Uint8Array(EFFECTS_LOG_BYTES)): Uint8Array {
  const dv = viewOf(out), O = EffectsLogOffset;
  for (let i = 0; i < 256; i++) {
    dv.setUint32(O.ACS + i * 4, e.acs[i] ?? 0, true);
    dv.setUint32(O.IOCS + i * 4, e.iocs[i] ?? 0, true);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Device Self-test (06h)

/** Size of the Device Self-test log. */
export const SELF_TEST_LOG_BYTES = 564;

/** Byte offsets in the Device Self-test log. */
export const SelfTestLogOffset = {
  CURRENT_OPERATION: 0,
  COMPLETION: 1,
  /** Result 0 (newest); result i at RESULT0 + i * SELF_TEST_RESULT_BYTES, 20 results. */
  RESULT0: 4,
} as const;

/** Bytes of one self-test result. */
export const SELF_TEST_RESULT_BYTES = 28;

/** Byte offsets in a self-test result. */
export const SelfTestResultOffset = {
  /** DSTS: result in bits 3:0, self-test code in bits 7:4. */
  STATUS: 0,
  SEGMENT: 1,
  VDI: 2,
  POH: 4,
  NSID: 12,
  FLBA: 16,
  SCT: 24,
  SC: 25,
  VS: 26,
} as const;

/** One self-test result. */
export interface SelfTestResult {
  /** Result (bits 3:0 of DSTS): 0 no error, 1 aborted by command, ... 0xf unused entry. */
  result: number;
  /** Self-test code that ran (bits 7:4 of DSTS). */
  code: number;
  /** Segment number where the test failed. */
  segment: number;
  /** Valid Diagnostic Information bits (NSID, FLBA, SCT, SC). */
  vdi: number;
  /** Power-on hours when it completed. */
  poh: bigint;
  /** Namespace (valid when vdi bit 0). */
  nsid: number;
  /** Failing LBA (valid when vdi bit 1). */
  flba: bigint;
  /** Status code type (valid when vdi bit 2). */
  sct: number;
  /** Status code (valid when vdi bit 3). */
  sc: number;
  /** Vendor specific. */
  vs: number;
}

/** Device Self-test log. */
export interface SelfTestLog {
  /** Self-test in progress (0: none, 1 short, 2 extended). */
  currentOperation: number;
  /** Percent complete of the running test. */
  completion: number;
  /** Newest first, 20 entries. */
  results: SelfTestResult[];
}

/** Decode a 564-byte Device Self-test log. */
export function parseSelfTestLog(data: Uint8Array): SelfTestLog {
  if (data.length < SELF_TEST_LOG_BYTES) throw new InvalidArgumentError(`self-test log is 564 bytes, got ${data.length}`);
  const dv = viewOf(data), O = SelfTestLogOffset, R = SelfTestResultOffset;
  const results: SelfTestResult[] = [];
  for (let i = 0; i < 20; i++) {
    const o = O.RESULT0 + i * SELF_TEST_RESULT_BYTES;
    results.push({
      result: data[o + R.STATUS] & 0xf,
      code: data[o + R.STATUS] >> 4,
      segment: data[o + R.SEGMENT],
      vdi: data[o + R.VDI],
      poh: dv.getBigUint64(o + R.POH, true),
      nsid: dv.getUint32(o + R.NSID, true),
      flba: dv.getBigUint64(o + R.FLBA, true),
      sct: data[o + R.SCT],
      sc: data[o + R.SC],
      vs: dv.getUint16(o + R.VS, true),
    });
  }
  return { currentOperation: data[O.CURRENT_OPERATION], completion: data[O.COMPLETION], results };
}

/**
 * Encode a Device Self-test log: the results given (newest first, fields left
 * out zero), then unused entries (result 0xf) up to 20.
 */
export function encodeSelfTestLog(
  l: { currentOperation: number; completion: number; results: readonly Partial<SelfTestResult>[] },
  out: Uint8Array = new Uint8Array(SELF_TEST_LOG_BYTES),
): Uint8Array {
  const dv = viewOf(out), O = SelfTestLogOffset, R = SelfTestResultOffset;
  out[O.CURRENT_OPERATION] = l.currentOperation;
  out[O.COMPLETION] = l.completion;
  for (let i = 0; i < 20; i++) {
    const o = O.RESULT0 + i * SELF_TEST_RESULT_BYTES, r = l.results[i];
    out.fill(0, o, o + SELF_TEST_RESULT_BYTES);
    if (!r) {
      out[o + R.STATUS] = 0x0f;
      continue;
    }
    out[o + R.STATUS] = ((r.code ?? 0) << 4) | ((r.result ?? 0) & 0xf);
    out[o + R.SEGMENT] = r.segment ?? 0;
    out[o + R.VDI] = r.vdi ?? 0;
    dv.setBigUint64(o + R.POH, r.poh ?? 0n, true);
    dv.setUint32(o + R.NSID, r.nsid ?? 0, true);
    dv.setBigUint64(o + R.FLBA, r.flba ?? 0n, true);
    out[o + R.SCT] = r.sct ?? 0;
    out[o + R.SC] = r.sc ?? 0;
    dv.setUint16(o + R.VS, r.vs ?? 0, true);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Sanitize Status (81h)

/** Size of the Sanitize Status log. */
export const SANITIZE_LOG_BYTES = 512;

/** Byte offsets in the Sanitize Status log. */
export const SanitizeLogOffset = {
  SPROG: 0,
  SSTAT: 2,
  SCDW10: 4,
  ETO: 8,
  ETBE: 12,
  ETCE: 16,
  ETOND: 20,
  ETBEND: 24,
  ETCEND: 28,
} as const;

/** Sanitize Status log. */
export interface SanitizeLog {
  /** Progress of the running sanitize, in 1/65536 units. */
  sprog: number;
  /** Sanitize Status (SSTAT) raw. */
  sstat: number;
  /** SSTAT bits 2:0: 0 never, 1 completed, 2 in progress, 3 failed, 4 completed without deallocate. */
  status: number;
  /** Overwrite passes completed (SSTAT bits 7:3). */
  passes: number;
  /** Global Data Erased (SSTAT bit 8). */
  globalErased: boolean;
  /** CDW10 of the sanitize command that started the last operation. */
  scdw10: number;
  /** Estimated seconds: overwrite, block erase, crypto erase, then each without deallocate (0xffffffff: unknown). */
  eto: number;
  /** Estimated time for block erase. */
  etbe: number;
  /** Estimated time for crypto erase. */
  etce: number;
  /** Estimated time for overwrite with no-deallocate. */
  etond: number;
  /** Estimated time for block erase with no-deallocate. */
  etbend: number;
  /** Estimated time for crypto erase with no-deallocate. */
  etcend: number;
}

/** SSTAT status values. */
export const SanitizeStatus = {
  NEVER: 0,
  COMPLETED: 1,
  IN_PROGRESS: 2,
  FAILED: 3,
  COMPLETED_NO_DEALLOC: 4,
} as const;

/** Decode a 512-byte Sanitize Status log. */
export function parseSanitizeLog(data: Uint8Array): SanitizeLog {
  if (data.length < 32) throw new InvalidArgumentError(`sanitize log is 512 bytes, got ${data.length}`);
  const dv = viewOf(data), O = SanitizeLogOffset;
  const sstat = dv.getUint16(O.SSTAT, true);
  return {
    sprog: dv.getUint16(O.SPROG, true),
    sstat,
    status: sstat & 7,
    passes: (sstat >> 3) & 0x1f,
    globalErased: (sstat & 0x100) !== 0,
    scdw10: dv.getUint32(O.SCDW10, true),
    eto: dv.getUint32(O.ETO, true),
    etbe: dv.getUint32(O.ETBE, true),
    etce: dv.getUint32(O.ETCE, true),
    etond: dv.getUint32(O.ETOND, true),
    etbend: dv.getUint32(O.ETBEND, true),
    etcend: dv.getUint32(O.ETCEND, true),
  };
}

/** Encode a Sanitize Status log from its raw fields (SSTAT as is; fields left out are zero). */
export function encodeSanitizeLog(
  l: Partial<Pick<SanitizeLog, "sprog" | "sstat" | "scdw10" | "eto" | "etbe" | "etce" | "etond" | "etbend" | "etcend">>,
  out: Uint8Array = new Uint8Array(SANITIZE_LOG_BYTES),
): Uint8Array {
  const dv = viewOf(out), O = SanitizeLogOffset;
  dv.setUint16(O.SPROG, l.sprog ?? 0, true);
  dv.setUint16(O.SSTAT, l.sstat ?? 0, true);
  dv.setUint32(O.SCDW10, l.scdw10 ?? 0, true);
  dv.setUint32(O.ETO, l.eto ?? 0, true);
  dv.setUint32(O.ETBE, l.etbe ?? 0, true);
  dv.setUint32(O.ETCE, l.etce ?? 0, true);
  dv.setUint32(O.ETOND, l.etond ?? 0, true);
  dv.setUint32(O.ETBEND, l.etbend ?? 0, true);
  dv.setUint32(O.ETCEND, l.etcend ?? 0, true);
  return out;
}

// ---------------------------------------------------------------------------
// Changed Namespace List (04h)

/** Size of the Changed Namespace List log. */
export const CHANGED_NS_LOG_BYTES = 4096;

/** The first entry of a Changed Namespace List that overflowed (more than 1024 changed). */
export const CHANGED_NS_OVERFLOW = 0xffffffff;

/** Decode a Changed Namespace List: the namespace ids, or null when more than 1024 changed ("read them all"). */
export function parseChangedNsList(data: Uint8Array): number[] | null {
  if (data.length >= 4 && viewOf(data).getUint32(0, true) === CHANGED_NS_OVERFLOW) return null;
  return decodeNsidList(data);
}
