/**
 * Get Log Page: error information, SMART / health, firmware slot, commands
 * supported and effects, changed namespace list, device self-test and
 * sanitize status, decoded with nvme-cli 2.3's JSON keys. The `*ToJson`
 * writers reproduce `nvme <log> <dev> -o json` byte for byte (nvme-print.c
 * json_* functions: `json_object_add_value_int`/`_uint` are int32,
 * `_uint64` a number, `_uint128` a string of digits).
 * @module
 */
import { getLogPageCmd } from "../nvme/command.ts";
import type { Controller } from "../nvme/controller.ts";
import { InvalidArgumentError, NvmeStatusError } from "../nvme/errors.ts";
import { LogId } from "../nvme/spec.ts";
import { toNvmeCliJson, Uint128, Uint64 } from "./identify.ts";

/** Anything that carries an initialised controller, e.g. an NVMeDev. */
export interface AdminTarget {
  /** The generic controller: admin queue, identify data, DMA memory. */
  readonly controller: Controller;
}

const dvOf = (d: Uint8Array): DataView => new DataView(d.buffer, d.byteOffset, d.byteLength);
const u128 = (dv: DataView, off: number): bigint =>
  (dv.getBigUint64(off + 8, true) << 64n) | dv.getBigUint64(off, true);

/** Options for {@link getLogPage}. */
export interface LogPageOptions {
  /** Namespace (default 0xffffffff: the controller as a whole). */
  nsid?: number;
  /** Log Specific field. */
  lsp?: number;
  /** Retain Asynchronous Event: reading does not clear a pending event. */
  rae?: boolean;
  /** Command set identifier (CDW14 CSI). */
  csi?: number;
  /** Byte offset into the log (must be a multiple of 4). */
  offset?: number;
  /** Log Specific Identifier (CDW11 bits 31:16). */
  lsi?: number;
  /** UUID index (CDW14 bits 6:0), 0: none. */
  uuidIndex?: number;
  /** Offset Type: the offset is an index into the log's entries, not bytes (the log defines the unit). */
  ot?: boolean;
  /**
   * Bytes per Get Log Page command (default 4096, through the controller's
   * scratch buffer; more takes a DMA buffer). At most the controller's transfer
   * limit. `nvme get-log` sends one command for the whole length.
   */
  pieceBytes?: number;
  /** Command timeout in ms. */
  timeoutMs?: number;
}

/**
 * Read `bytes` of log page `lid`. Pieces of at most 4096 bytes go through the
 * controller's scratch buffer, so no DMA memory is allocated.
 */
export async function getLogPage(dev: AdminTarget, lid: number, bytes: number, opts: LogPageOptions = {}): Promise<Uint8Array> {
  if (!Number.isInteger(lid) || lid < 0 || lid > 0xff) throw new InvalidArgumentError(`log page id must be 0-255, got ${lid}`);
  if (!Number.isSafeInteger(bytes) || bytes < 4 || bytes % 4 !== 0) {
    throw new InvalidArgumentError(`log page length must be a positive multiple of 4, got ${bytes}`);
  }
  const base = opts.offset ?? 0;
  if (!Number.isSafeInteger(base) || base < 0 || (!opts.ot && base % 4 !== 0)) {
    throw new InvalidArgumentError(`log page offset must be a non-negative multiple of 4, got ${base}`);
  }
  const piece = opts.pieceBytes ?? 4096;
  const maxPiece = Math.max(4096, dev.controller.maxTransferBytes);
  if (!Number.isSafeInteger(piece) || piece < 4 || piece % 4 !== 0 || piece > maxPiece) {
    throw new InvalidArgumentError(`pieceBytes must be a multiple of 4 from 4 to ${maxPiece}, got ${String(piece)}`);
  }
  if (opts.ot && bytes > piece) throw new InvalidArgumentError("with an index offset (ot) the log is read in one piece");
  const field = (v: number | undefined, max: number, what: string) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > max)) {
      throw new InvalidArgumentError(`${what} must be an integer from 0 to ${max}, got ${String(v)}`);
    }
  };
  field(opts.nsid, 0xffffffff, "nsid");
  field(opts.lsp, 0x7f, "lsp");
  field(opts.lsi, 0xffff, "lsi");
  field(opts.uuidIndex, 0x7f, "uuid index");
  field(opts.csi, 0xff, "csi");
  const out = new Uint8Array(bytes);
  const buf = piece > 4096 ? dev.controller.allocDma(Math.min(piece, bytes)) : null;
  let done = false;
  try {
    for (let off = 0; off < bytes; off += piece) {
      const n = Math.min(piece, bytes - off);
      // As libnvme: retain the asynchronous event until the last piece has been read.
      const rae = off + n < bytes ? true : opts.rae;
      const cmd = getLogPageCmd(lid, n, {
        nsid: opts.nsid,
        lsp: opts.lsp,
        rae,
        csi: opts.csi,
        lsi: opts.lsi,
        uuidIndex: opts.uuidIndex,
        ot: opts.ot,
        offset: base + off,
      });
      if (buf) {
        buf.bytes.fill(0, 0, n);
        await dev.controller.adminCommand(cmd, buf.iova, n, opts.timeoutMs);
        out.set(buf.bytes.subarray(0, n), off);
      } else {
        out.set(await dev.controller.identify(cmd, n, opts.timeoutMs), off);
      }
    }
    done = true;
  } catch (e) {
    // Only a command that completed (with a status) leaves the buffer free for reuse.
    if (e instanceof NvmeStatusError) done = true;
    throw e;
  } finally {
    if (buf && done) dev.controller.freeDma(buf);
  }
  return out;
}

// ---------------------------------------------------------------------------
// SMART / Health Information (02h)

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
  if (data.length < 512) throw new InvalidArgumentError(`SMART log is 512 bytes, got ${data.length}`);
  const dv = dvOf(data);
  const big = (o: number) => new Uint128(u128(dv, o));
  const s: Record<string, unknown> = {
    critical_warning: data[0],
    temperature: dv.getUint16(1, true),
    avail_spare: data[3],
    spare_thresh: data[4],
    percent_used: data[5],
    endurance_grp_critical_warning_summary: data[6],
    data_units_read: big(32),
    data_units_written: big(48),
    host_read_commands: big(64),
    host_write_commands: big(80),
    controller_busy_time: big(96),
    power_cycles: big(112),
    power_on_hours: big(128),
    unsafe_shutdowns: big(144),
    media_errors: big(160),
    num_err_log_entries: big(176),
    warning_temp_time: dv.getUint32(192, true),
    critical_comp_time: dv.getUint32(196, true),
  };
  for (let c = 0; c < 8; c++) {
    const t = dv.getUint16(200 + 2 * c, true);
    if (t !== 0) s[`temperature_sensor_${c + 1}`] = t;
  }
  s.thm_temp1_trans_count = dv.getUint32(216, true);
  s.thm_temp2_trans_count = dv.getUint32(220, true);
  s.thm_temp1_total_time = dv.getUint32(224, true);
  s.thm_temp2_total_time = dv.getUint32(228, true);
  return s as unknown as SmartLog;
}

/** Read the SMART / Health Information log (default: controller-wide, NSID 0xffffffff). */
export async function smartLog(dev: AdminTarget, nsid = 0xffffffff): Promise<SmartLog> {
  return parseSmartLog(await getLogPage(dev, LogId.SMART, 512, { nsid }));
}

/** `nvme smart-log <dev> -o json` text. */
export function smartLogToJson(s: SmartLog): string {
  return toNvmeCliJson(s, { narrow: "all" });
}

const kelvinC = (k: number) => `${k - 273}°C (${k} Kelvin)`;
const percent = (v: number) => `${v}%`;

/** Readable text like `nvme smart-log <dev>`. */
export function formatSmartLog(s: SmartLog, devname: string, nsid = 0xffffffff, opts: { human?: boolean } = {}): string {
  const du = (v: Uint128) => {
    const bytes = v.value * 512000n;
    const units = ["B", "KB", "MB", "GB", "TB", "PB", "EB"];
    let x = Number(bytes), i = 0;
    while (x >= 1000 && i < units.length - 1) {
      x /= 1000;
      i++;
    }
    return `${v} (${x.toFixed(2)} ${units[i]})`;
  };
  const L = [
    `Smart Log for NVME device:${devname} namespace-id:${nsid.toString(16)}`,
    `critical_warning\t\t\t: ${s.critical_warning ? "0x" + s.critical_warning.toString(16) : "0"}`,
    // -H: each critical warning bit on its own line, as nvme-cli prints them.
    ...(opts.human
      ? [
        "Available Spare[0]             ",
        "Temp. Threshold[1]             ",
        "NVM subsystem Reliability[2]   ",
        "Read-only[3]                   ",
        "Volatile mem. backup failed[4] ",
        "Persistent Mem. RO[5]          ",
      ].map((name, bit) => `      ${name}: ${(s.critical_warning >> bit) & 1}`)
      : []),
    `temperature\t\t\t\t: ${kelvinC(s.temperature)}`,
    `available_spare\t\t\t\t: ${percent(s.avail_spare)}`,
    `available_spare_threshold\t\t: ${percent(s.spare_thresh)}`,
    `percentage_used\t\t\t\t: ${percent(s.percent_used)}`,
    `endurance group critical warning summary: ${
      s.endurance_grp_critical_warning_summary ? "0x" + s.endurance_grp_critical_warning_summary.toString(16) : "0"
    }`,
    `Data Units Read\t\t\t\t: ${du(s.data_units_read)}`,
    `Data Units Written\t\t\t: ${du(s.data_units_written)}`,
    `host_read_commands\t\t\t: ${s.host_read_commands}`,
    `host_write_commands\t\t\t: ${s.host_write_commands}`,
    `controller_busy_time\t\t\t: ${s.controller_busy_time}`,
    `power_cycles\t\t\t\t: ${s.power_cycles}`,
    `power_on_hours\t\t\t\t: ${s.power_on_hours}`,
    `unsafe_shutdowns\t\t\t: ${s.unsafe_shutdowns}`,
    `media_errors\t\t\t\t: ${s.media_errors}`,
    `num_err_log_entries\t\t\t: ${s.num_err_log_entries}`,
    `Warning Temperature Time\t\t: ${s.warning_temp_time}`,
    `Critical Composite Temperature Time\t: ${s.critical_comp_time}`,
  ];
  for (let c = 1; c <= 8; c++) {
    const t = s[`temperature_sensor_${c}`];
    if (t) L.push(`Temperature Sensor ${c}           : ${kelvinC(t)}`);
  }
  L.push(
    `Thermal Management T1 Trans Count\t: ${s.thm_temp1_trans_count}`,
    `Thermal Management T2 Trans Count\t: ${s.thm_temp2_trans_count}`,
    `Thermal Management T1 Total Time\t: ${s.thm_temp1_total_time}`,
    `Thermal Management T2 Total Time\t: ${s.thm_temp2_total_time}`,
  );
  return L.join("\n") + "\n";
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

/** Decode error log entries (64 bytes each). */
export function parseErrorLog(data: Uint8Array): ErrorLogEntry[] {
  const dv = dvOf(data);
  const out: ErrorLogEntry[] = [];
  for (let o = 0; o + 64 <= data.length; o += 64) {
    const sf = dv.getUint16(o + 12, true);
    out.push({
      error_count: new Uint64(dv.getBigUint64(o, true)),
      sqid: dv.getUint16(o + 8, true),
      cmdid: dv.getUint16(o + 10, true),
      status_field: sf >> 1,
      phase_tag: sf & 1,
      parm_error_location: dv.getUint16(o + 14, true),
      lba: new Uint64(dv.getBigUint64(o + 16, true)),
      nsid: dv.getUint32(o + 24, true),
      vs: data[o + 28],
      trtype: data[o + 29],
      cs: new Uint64(dv.getBigUint64(o + 32, true)),
      trtype_spec_info: dv.getUint16(o + 40, true),
    });
  }
  return out;
}

/**
 * Read `entries` error log entries (default, as nvme-cli: min(64, ELPE + 1)).
 */
export async function errorLog(dev: AdminTarget, entries?: number): Promise<ErrorLogEntry[]> {
  const elpe = dev.controller.id.errorLogEntries;
  const n = entries ?? Math.min(64, elpe);
  if (!Number.isInteger(n) || n < 1 || n > elpe) {
    throw new InvalidArgumentError(`error log entries must be 1-${elpe} (ELPE + 1), got ${String(entries)}`);
  }
  return parseErrorLog(await getLogPage(dev, LogId.ERROR, n * 64));
}

/** `nvme error-log <dev> -o json` text. */
export function errorLogToJson(entries: ErrorLogEntry[]): string {
  return toNvmeCliJson({ errors: entries }, { narrow: "all" });
}

/** Readable text like `nvme error-log <dev>`. */
export function formatErrorLog(entries: ErrorLogEntry[], devname: string): string {
  const L = ["Error Log Entries for device:" + devname + " entries:" + entries.length];
  L.push(".................");
  entries.forEach((e, i) => {
    L.push(
      ` Entry[${String(i).padStart(2)}]   `,
      ".................",
      `error_count\t: ${e.error_count}`,
      `sqid\t\t: ${e.sqid}`,
      `cmdid\t\t: 0x${e.cmdid.toString(16)}`,
      `status_field\t: 0x${e.status_field.toString(16)}`,
      `phase_tag\t: 0x${e.phase_tag.toString(16)}`,
      `parm_err_loc\t: 0x${e.parm_error_location.toString(16)}`,
      `lba\t\t: 0x${e.lba.value.toString(16)}`,
      `nsid\t\t: 0x${e.nsid.toString(16)}`,
      `vs\t\t: 0x${e.vs.toString(16)}`,
      `trtype\t\t: ${e.trtype}`,
      `cs\t\t: 0x${e.cs.value.toString(16)}`,
      `trtype_spec_info: 0x${e.trtype_spec_info.toString(16)}`,
      ".................",
    );
  });
  return L.join("\n") + "\n";
}

// ---------------------------------------------------------------------------
// Firmware Slot Information (03h)

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
  const dv = dvOf(data);
  const frs: string[] = [], frsRaw: bigint[] = [];
  for (let i = 0; i < 7; i++) {
    const o = 8 + i * 8;
    let s = "";
    for (let j = 0; j < 8 && data[o + j] !== 0; j++) s += String.fromCharCode(data[o + j]);
    frs.push(s);
    frsRaw.push(dv.getBigUint64(o, true));
  }
  return { afi: data[0], activeSlot: data[0] & 7, nextSlot: (data[0] >> 4) & 7, frs, frsRaw };
}

/** Read the Firmware Slot Information log. */
export async function fwLog(dev: AdminTarget): Promise<FwSlotLog> {
  return parseFwLog(await getLogPage(dev, LogId.FW_SLOT, 512));
}

/** nvme-cli's util_fw_to_string(): 8 characters, non-printables as ".". */
function fwString(raw: bigint): string {
  let s = "";
  for (let i = 0; i < 8; i++) {
    const c = Number((raw >> BigInt(8 * i)) & 0xffn);
    s += c >= 0x21 && c <= 0x7e ? String.fromCharCode(c) : ".";
  }
  return s;
}

function fwEntries(f: FwSlotLog): [number, string][] {
  const out: [number, string][] = [];
  for (let i = 0; i < 7; i++) {
    if ((f.frsRaw[i] & 0xffn) !== 0n) out.push([i + 1, `${f.frsRaw[i]} (${fwString(f.frsRaw[i])})`]);
  }
  return out;
}

/** `nvme fw-log <dev> -o json` text; `devname` is the top-level key (nvme-cli: "nvme0"). */
export function fwLogToJson(f: FwSlotLog, devname: string): string {
  const o: Record<string, number | string> = { "Active Firmware Slot (afi)": f.afi };
  for (const [slot, v] of fwEntries(f)) o[`Firmware Rev Slot ${slot}`] = v;
  return toNvmeCliJson({ [devname]: o }, { narrow: "all" });
}

/** Readable text like `nvme fw-log <dev>`. */
export function formatFwLog(f: FwSlotLog, devname: string): string {
  const L = [`Firmware Log for device:${devname}`, `afi  : ${f.afi ? "0x" + f.afi.toString(16) : "0"}`];
  for (const [slot] of fwEntries(f)) {
    const raw = f.frsRaw[slot - 1];
    L.push(`frs${slot} : 0x${raw.toString(16)} (${fwString(raw)})`);
  }
  return L.join("\n") + "\n";
}

// ---------------------------------------------------------------------------
// Commands Supported and Effects (05h)

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
  const dv = dvOf(data);
  const acs: number[] = [], iocs: number[] = [];
  for (let i = 0; i < 256; i++) {
    acs.push(dv.getUint32(i * 4, true));
    iocs.push(dv.getUint32(1024 + i * 4, true));
  }
  return { csi, acs, iocs };
}

/** Read the Commands Supported and Effects log for command set `csi`. */
export async function effectsLog(dev: AdminTarget, csi = 0): Promise<EffectsLog> {
  return parseEffectsLog(await getLogPage(dev, LogId.CMD_EFFECTS, 4096, { csi }), csi);
}

/**
 * The pages `nvme effects-log <dev>` reads without --csi: NVM when CAP.CSS
 * has the NVM bit, then Zoned Namespace (CSI 2) when it has the
 * "IO command sets" bit.
 */
export async function effectsLogs(dev: AdminTarget): Promise<EffectsLog[]> {
  const css = dev.controller.cap.css;
  const out: EffectsLog[] = [];
  if (css & 1) out.push(await effectsLog(dev, 0));
  if (css & 0x40) out.push(await effectsLog(dev, 2));
  return out;
}

const ADMIN_NAMES: Record<number, string> = {
  0x00: "Delete I/O Submission Queue",
  0x01: "Create I/O Submission Queue",
  0x02: "Get Log Page",
  0x04: "Delete I/O Completion Queue",
  0x05: "Create I/O Completion Queue",
  0x06: "Identify",
  0x08: "Abort",
  0x09: "Set Features",
  0x0a: "Get Features",
  0x0c: "Asynchronous Event Request",
  0x0d: "Namespace Management",
  0x10: "Firmware Commit",
  0x11: "Firmware Image Download",
  0x14: "Device Self-test",
  0x15: "Namespace Attachment",
  0x18: "Keep Alive",
  0x19: "Directive Send",
  0x1a: "Directive Receive",
  0x1c: "Virtualization Management",
  0x1d: "NVMe-MI Send",
  0x1e: "NVMe-MI Receive",
  0x7c: "Doorbell Buffer Config",
  0x80: "Format NVM",
  0x81: "Security Send",
  0x82: "Security Receive",
  0x84: "Sanitize",
  0x86: "Get LBA Status",
};

const IO_NAMES: Record<number, string> = {
  0x00: "Flush",
  0x01: "Write",
  0x02: "Read",
  0x04: "Write Uncorrectable",
  0x05: "Compare",
  0x08: "Write Zeroes",
  0x09: "Dataset Management",
  0x0d: "Reservation Register",
  0x0e: "Reservation Report",
  0x11: "Reservation Acquire",
  0x15: "Reservation Release",
  0x0c: "Verify",
  0x19: "Copy",
  0x79: "Zone Management Send",
  0x7a: "Zone Management Receive",
  0x7d: "Zone Append",
};

/** nvme-cli's nvme_cmd_to_string(). */
export function commandName(admin: boolean, opcode: number): string {
  return (admin ? ADMIN_NAMES : IO_NAMES)[opcode] ?? "Unknown";
}

/** `nvme effects-log <dev> -o json` text: an array with one object per page. */
export function effectsLogToJson(pages: EffectsLog[]): string {
  const list = pages.map((p) => {
    const acs: Record<string, number> = {}, iocs: Record<string, number> = {};
    p.acs.forEach((e, op) => {
      if (e & 1) acs[`ACS_${op} (${commandName(true, op)})`] = e;
    });
    p.iocs.forEach((e, op) => {
      if (e & 1) iocs[`IOCS_${op} (${commandName(false, op)})`] = e;
    });
    return { command_set_identifier: p.csi, admin_cmd_set: acs, io_cmd_set: iocs };
  });
  return toNvmeCliJson(list, { narrow: "all" });
}

/** Readable text like `nvme effects-log <dev>`. */
export function formatEffectsLog(pages: EffectsLog[]): string {
  const L: string[] = [];
  const row = (kind: string, op: number, e: number, admin: boolean) =>
    `${kind}${String(op).padEnd(3)} [${commandName(admin, op).padStart(32)}] ${e.toString(16).padStart(8, "0")}`;
  for (const p of pages) {
    L.push(`${p.csi === 0 ? "NVM" : p.csi === 2 ? "ZNS" : "CSI " + p.csi} Command Set Log Page`, "-".repeat(43), "Admin Command Set");
    p.acs.forEach((e, op) => e & 1 && L.push(row("ACS", op, e, true)));
    L.push("", "I/O Command Set");
    p.iocs.forEach((e, op) => e & 1 && L.push(row("IOCS", op, e, false)));
    L.push("");
  }
  return L.join("\n") + "\n";
}

// ---------------------------------------------------------------------------
// Changed Namespace List (04h)

/** Read the Changed Namespace List (null when more than 1024 changed: "read them all"). */
export async function changedNsList(dev: AdminTarget): Promise<number[] | null> {
  const d = dvOf(await getLogPage(dev, LogId.CHANGED_NS, 4096));
  if (d.getUint32(0, true) === 0xffffffff) return null;
  const out: number[] = [];
  for (let i = 0; i < 1024; i++) {
    const id = d.getUint32(i * 4, true);
    if (id === 0) break;
    out.push(id);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Device Self-test (06h)

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
  if (data.length < 564) throw new InvalidArgumentError(`self-test log is 564 bytes, got ${data.length}`);
  const dv = dvOf(data);
  const results: SelfTestResult[] = [];
  for (let i = 0; i < 20; i++) {
    const o = 4 + i * 28;
    results.push({
      result: data[o] & 0xf,
      code: data[o] >> 4,
      segment: data[o + 1],
      vdi: data[o + 2],
      poh: dv.getBigUint64(o + 4, true),
      nsid: dv.getUint32(o + 12, true),
      flba: dv.getBigUint64(o + 16, true),
      sct: data[o + 24],
      sc: data[o + 25],
      vs: dv.getUint16(o + 26, true),
    });
  }
  return { currentOperation: data[0], completion: data[1], results };
}

/** Read the Device Self-test log. */
export async function selfTestLog(dev: AdminTarget, nsid = 0xffffffff): Promise<SelfTestLog> {
  return parseSelfTestLog(await getLogPage(dev, LogId.SELF_TEST, 564, { nsid }));
}

/** `nvme self-test-log <dev> -o json` text for the first `entries` results (default 20). */
export function selfTestLogToJson(l: SelfTestLog, entries = 20): string {
  const list = l.results.slice(0, Math.min(entries, 20)).map((r) => {
    const o: Record<string, number | Uint64> = { "Self test result": r.result };
    if (r.result === 0xf) return o;
    o["Self test code"] = r.code;
    o["Segment number"] = r.segment;
    o["Valid Diagnostic Information"] = r.vdi;
    o["Power on hours"] = new Uint64(r.poh);
    if (r.vdi & 1) o["Namespace Identifier"] = r.nsid;
    if (r.vdi & 2) o["Failing LBA"] = new Uint64(r.flba);
    if (r.vdi & 4) o["Status Code Type"] = r.sct;
    if (r.vdi & 8) o["Status Code"] = r.sc;
    o["Vendor Specific"] = r.vs;
    return o;
  });
  return toNvmeCliJson({
    "Current Device Self-Test Operation": l.currentOperation,
    "Current Device Self-Test Completion": l.completion,
    "List of Valid Reports": list,
  }, { narrow: "all" });
}

const ST_RESULT = [
  "Operation completed without error",
  "Operation was aborted by a Device Self-test command",
  "Operation was aborted by a Controller Level Reset",
  "Operation was aborted due to a removal of a namespace from the namespace inventory",
  "Operation was aborted due to the processing of a Format NVM command",
  "A fatal error or unknown test error occurred while the controller was executing the device self-test operation and the operation did not complete",
  "Operation completed with a segment that failed and the segment that failed is not known",
  "Operation completed with one or more failed segments and the first segment that failed is indicated in the Segment Number field",
  "Operation was aborted for unknown reason",
  "Operation was aborted due to a sanitize operation",
];

/** Readable text like `nvme self-test-log <dev>`. */
export function formatSelfTestLog(l: SelfTestLog, devname: string, entries = 20): string {
  const L = [
    `Device Self Test Log for NVME device:${devname}`,
    `Current operation  : ${l.currentOperation ? "0x" + l.currentOperation.toString(16) : "0"}`,
    `Current Completion : ${l.completion}%`,
  ];
  l.results.slice(0, entries).forEach((r, i) => {
    L.push(`Self Test Result[${i}]:`);
    L.push(`  Operation Result             : 0x${r.result.toString(16)}` + (ST_RESULT[r.result] ? ` (${ST_RESULT[r.result]})` : r.result === 0xf ? " (Entry not used)" : ""));
    if (r.result === 0xf) return;
    L.push(
      `  Self Test Code               : 0x${r.code.toString(16)}`,
      `  Valid Diagnostic Information : 0x${r.vdi.toString(16)}`,
      `  Power on hours (POH)         : 0x${r.poh.toString(16)}`,
    );
    if (r.vdi & 1) L.push(`  Namespace Identifier         : 0x${r.nsid.toString(16)}`);
    if (r.vdi & 2) L.push(`  Failing LBA                  : 0x${r.flba.toString(16)}`);
    if (r.vdi & 4) L.push(`  Status Code Type             : 0x${r.sct.toString(16)}`);
    if (r.vdi & 8) L.push(`  Status Code                  : 0x${r.sc.toString(16)}`);
  });
  return L.join("\n") + "\n";
}

// ---------------------------------------------------------------------------
// Sanitize Status (81h)

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
  const dv = dvOf(data);
  const sstat = dv.getUint16(2, true);
  return {
    sprog: dv.getUint16(0, true),
    sstat,
    status: sstat & 7,
    passes: (sstat >> 3) & 0x1f,
    globalErased: (sstat & 0x100) !== 0,
    scdw10: dv.getUint32(4, true),
    eto: dv.getUint32(8, true),
    etbe: dv.getUint32(12, true),
    etce: dv.getUint32(16, true),
    etond: dv.getUint32(20, true),
    etbend: dv.getUint32(24, true),
    etcend: dv.getUint32(28, true),
  };
}

/** Read the Sanitize Status log. */
export async function sanitizeLog(dev: AdminTarget): Promise<SanitizeLog> {
  return parseSanitizeLog(await getLogPage(dev, LogId.SANITIZE, 512));
}

function sanitizeStatusText(status: number): string {
  switch (status) {
    case 0: return "NVM Subsystem has never been sanitized.";
    case 1: return "Most Recent Sanitize Command Completed Successfully.";
    case 2: return "Sanitize in Progress.";
    case 3: return "Most Recent Sanitize Command Failed.";
    case 4: return "Most Recent Sanitize Command (No-Deallocate After Sanitize) Completed Successfully.";
    default: return "Unknown";
  }
}

/** `nvme sanitize-log <dev> -o json` text; `devname` is the top-level key. */
export function sanitizeLogToJson(l: SanitizeLog, devname: string): string {
  return toNvmeCliJson({
    [devname]: {
      sprog: l.sprog,
      sstat: {
        global_erased: l.globalErased ? 1 : 0,
        no_cmplted_passes: l.passes,
        status: `(${l.status}) ${sanitizeStatusText(l.status)}`,
      },
      cdw10_info: l.scdw10,
      time_over_write: l.eto,
      time_block_erase: l.etbe,
      time_crypto_erase: l.etce,
      time_over_write_no_dealloc: l.etond,
      time_block_erase_no_dealloc: l.etbend,
      time_crypto_erase_no_dealloc: l.etcend,
    },
  }, { narrow: "all" });
}

/** Readable text like `nvme sanitize-log <dev>`. */
export function formatSanitizeLog(l: SanitizeLog, devname: string): string {
  const t = (v: number) => v === 0xffffffff ? "0xffffffff (no time period reported)" : String(v);
  return [
    `Sanitize Progress                      (SPROG) :  ${l.sprog}`,
    `Sanitize Status                        (SSTAT) :  0x${l.sstat.toString(16)}`,
    `\t[2:0]\t${sanitizeStatusText(l.status)}`,
    `\t[7:3]\tNumber of completed passes if most recent operation was overwrite:\t${l.passes}`,
    `Sanitize Command Dword 10 Information (SCDW10) :  0x${l.scdw10.toString(16)}`,
    `Estimated Time For Overwrite                   :  ${t(l.eto)}`,
    `Estimated Time For Block Erase                 :  ${t(l.etbe)}`,
    `Estimated Time For Crypto Erase                :  ${t(l.etce)}`,
    `Estimated Time For Overwrite (No-Deallocate)   :  ${t(l.etond)}`,
    `Estimated Time For Block Erase (No-Deallocate) :  ${t(l.etbend)}`,
    `Estimated Time For Crypto Erase (No-Deallocate):  ${t(l.etcend)}`,
    `(device ${devname})`,
  ].join("\n") + "\n";
}
