/**
 * nvme-cli 2.3's presentation of the log pages lib/admin reads: the text of
 * `nvme smart-log`, `error-log`, `fw-log`, `effects-log`, `self-test-log` and
 * `sanitize-log`, and their `-o json` text byte for byte (nvme-print.c json_*
 * functions: `json_object_add_value_int`/`_uint` are int32, `_uint64` a
 * number, `_uint128` a string of digits).
 * @module
 */
import type { EffectsLog, ErrorLogEntry, FwSlotLog, SanitizeLog, SelfTestLog, SmartLog } from "../../nvme/logs.ts";
import { commandName } from "../../nvme/trace.ts";
import { type Uint128, Uint64 } from "../../nvme/wide.ts";
import { toNvmeCliJson } from "./json.ts";

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
