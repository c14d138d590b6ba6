/**
 * nvme-cli's `fdp` plugin over tsnvme: configs, usage, stats, events,
 * status, update and set-events, with nvme-cli 2.3's options, text and JSON
 * (its quirks kept: the configs JSON has no handle list, the events text
 * "Reclaim Unit Handle Identifier" line has no colon). Registered by
 * lib/cli/nvme.ts as `fdp <command>`.
 * @module
 */
import process from "node:process";
import { type Command, format, intList, intOpt as int, out, outputFormat, UsageError, type Values } from "./cli.ts";
import { hexAlt, toNvmeCliJson, uint128ToString } from "./format/json.ts";
import type { PluginContext } from "./zns.ts";
import { getLogPage } from "../admin/log.ts";
import { fdpConfigs, fdpEvents, fdpStats, fdpUsage, setFdpEvents } from "../admin/fdp.ts";
import { ruhStatus, ruhUpdate } from "../io/fdp.ts";
import {
  FdpBytes,
  type FdpConfigLog,
  FdpEventFlag,
  type FdpEventsLog,
  FdpEventType,
  fdpEventName,
  FdpLogId,
  type FdpStatsLog,
  RuhAttr,
  type RuhStatus,
  RuhType,
  type RuhUsageLog,
} from "../nvme/fdp.ts";
import { Uint64 } from "../nvme/wide.ts";

/** nvme-cli's `fdp configs` text (`human`: -H decodes FDPA). */
export function formatFdpConfigs(log: FdpConfigLog, human = false): string {
  let s = "";
  for (const c of log.configs) {
    s += `FDP Attributes: ${hexAlt(c.fdpa)}\n`;
    if (human) {
      const valid = c.fdpa >> 7 & 1, rsvd = c.fdpa >> 5 >> 3, vwc = c.fdpa >> 4 & 1;
      s += `  [7:7] : ${hexAlt(valid)}\tFDP Configuration ${valid ? "" : "Not "}Valid\n`;
      if (rsvd) s += `  [6:5] : ${hexAlt(rsvd)}\tReserved\n`;
      s += `  [4:4] : ${hexAlt(vwc)}\tFDP Volatile Write Cache ${vwc ? "" : "Not "}Present\n`;
      s += `  [3:0] : ${hexAlt(c.fdpa & 0xf)}\tReclaim Group Identifier Format\n`;
    }
    s += `Vendor Specific Size: ${c.vss}\nNumber of Reclaim Groups: ${c.nrg}\nNumber of Reclaim Unit Handles: ${c.nruh}\n`;
    s += `Number of Namespaces Supported: ${c.nnss}\nReclaim Unit Nominal Size: ${c.runs}\nEstimated Reclaim Unit Time Limit: ${c.erutl}\n`;
    s += "Reclaim Unit Handle List:\n";
    c.ruhs.forEach((r, j) => s += `  [${j}]: ${r.ruht === RuhType.INITIALLY_ISOLATED ? "Initially Isolated" : "Persistently Isolated"}\n`);
  }
  return s;
}

/** nvme-cli's `fdp configs -o json` (2.3 builds the handle list but never attaches it). */
export function fdpConfigsToJson(log: FdpConfigLog): string {
  return toNvmeCliJson({
    n: log.n,
    configs: log.configs.map((c) => ({ fdpa: c.fdpa, vss: c.vss, nrg: c.nrg, nruh: c.nruh, nnss: c.nnss, runs: c.runs, erutl: c.erutl })),
  });
}

/** nvme-cli's `fdp usage` text. */
export function formatFdpUsage(log: RuhUsageLog): string {
  const name = (a: number) => a === RuhAttr.UNUSED ? "Unused" : a === RuhAttr.HOST_SPECIFIED ? "Host Specified" : a === RuhAttr.CONTROLLER_SPECIFIED ? "Controller Specified" : "Unknown";
  return log.ruhus.map((r, i) => `Reclaim Unit Handle ${i} Attributes: 0x${r.ruha.toString(16)} (${name(r.ruha)})\n`).join("");
}

/** nvme-cli's `fdp usage -o json`. */
export function fdpUsageToJson(log: RuhUsageLog): string {
  return toNvmeCliJson({ nruh: log.nruh, ruhus: log.ruhus.map((r) => ({ ruha: r.ruha })) });
}

/** nvme-cli's `fdp stats` text (C locale). */
export function formatFdpStats(s: FdpStatsLog): string {
  return `Host Bytes with Metadata Written (HBMW): ${uint128ToString(s.hbmw.value)}\n` +
    `Media Bytes with Metadata Written (MBMW): ${uint128ToString(s.mbmw.value)}\n` +
    `Media Bytes Erased (MBE): ${uint128ToString(s.mbe.value)}\n`;
}

/** nvme-cli's `fdp stats -o json`. */
export function fdpStatsToJson(s: FdpStatsLog): string {
  return toNvmeCliJson({ hbmw: s.hbmw, mbmw: s.mbmw, mbe: s.mbe });
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** strftime("%c %Z") in the C locale for a timestamp in ms (local time; the zone as "UTC" when the offset is 0). */
function cTime(ms: number): string {
  const d = new Date(Math.floor(ms / 1000) * 1000), p = (n: number) => String(n).padStart(2, "0");
  const off = -d.getTimezoneOffset();
  const tz = off === 0 ? "UTC" : `${off < 0 ? "-" : "+"}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`;
  return `${DAYS[d.getDay()]} ${MONTHS[d.getMonth()]} ${String(d.getDate()).padStart(2)} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${d.getFullYear()} ${tz}`;
}

/** nvme-cli's `fdp events` text. */
export function formatFdpEvents(log: FdpEventsLog): string {
  let s = "";
  log.events.forEach((e, i) => {
    s += `Event[${i}]\n  Event Type: 0x${e.type.toString(16)} (${fdpEventName(e.type)})\n  Event Timestamp: ${e.timestamp} (${cTime(e.timestamp)})\n`;
    if (e.fdpef & FdpEventFlag.PIV) s += `  Placement Identifier (PID): 0x${e.pid.toString(16)}\n`;
    if (e.fdpef & FdpEventFlag.NSIDV) s += `  Namespace Identifier (NSID): ${e.nsid}\n`;
    if (e.type === FdpEventType.MEDIA_REALLOCATED) {
      s += `  Number of LBAs Moved (NLBAM): ${e.nlbam ?? 0}\n`;
      if (e.lba !== undefined) s += `  Logical Block Address (LBA): 0x${e.lba.toString(16)}\n`;
    }
    if (e.fdpef & FdpEventFlag.LV) s += `  Reclaim Group Identifier: ${e.rgid}\n  Reclaim Unit Handle Identifier ${e.ruhid}\n`;
    s += "\n";
  });
  return s;
}

/** nvme-cli's `fdp events -o json`. */
export function fdpEventsToJson(log: FdpEventsLog): string {
  return toNvmeCliJson({
    n: log.n,
    events: log.events.map((e) => ({
      type: e.type,
      fdpef: e.fdpef,
      pid: e.pid,
      timestamp: new Uint64(BigInt(e.timestamp)),
      nsid: e.nsid,
      ...(e.type === FdpEventType.MEDIA_REALLOCATED ? { nlbam: e.nlbam ?? 0 } : {}),
      ...(e.lba !== undefined ? { lba: new Uint64(BigInt(e.lba)) } : {}),
    })),
  });
}

/** nvme-cli's `fdp status` text. */
export function formatRuhStatus(s: RuhStatus): string {
  return s.ruhss.map((r) =>
    `Placement Identifier ${r.pid}; Reclaim Unit Handle Identifier ${r.ruhid}\n` +
    `  Estimated Active Reclaim Unit Time Remaining (EARUTR): ${r.earutr}\n` +
    `  Reclaim Unit Available Media Writes (RUAMW): ${r.ruamw}\n\n`
  ).join("");
}

/** nvme-cli's `fdp status -o json`. */
export function ruhStatusToJson(s: RuhStatus): string {
  return toNvmeCliJson({ nruhsd: s.nruhsd, ruhss: s.ruhss.map((r) => ({ pid: r.pid, ruhid: r.ruhid, earutr: r.earutr, ruamw: r.ruamw })) });
}

const egOptions = {
  ...outputFormat,
  "endgrp-id": { type: "string" as const, short: "e" },
  "raw-binary": { type: "boolean" as const, short: "b" },
};

function egid(values: Values): number {
  const e = int(values, "endgrp-id", { max: 0xffff });
  return e < 0 ? 0 : e;
}

function fmt(values: Values): "normal" | "json" | "binary" {
  const f = format(values, ["normal", "json", "binary"]);
  return values["raw-binary"] ? "binary" : f;
}

/** The `fdp` commands, keyed `fdp <name>`. */
export function fdpCommands(ctx: PluginContext): Record<string, Command> {
  /** A log command: binary dumps the raw page (as nvme-cli, the size the header names). */
  const logCmd = (name: string, summary: string, lid: number, read: (dev: Parameters<typeof fdpConfigs>[0], e: number, v: Values) => Promise<string>, extra = {}): Command => ({
    summary,
    usage: `fdp ${name} <device> --endgrp-id <egid> [--output-format normal|json|binary] [--raw-binary]`,
    options: { ...egOptions, ...extra },
    args: [1, 1],
    run: ([device], values) => {
      fmt(values);
      const e = egid(values);
      if (name === "configs" && !e) throw new UsageError("endurance group identifier required");
      return ctx.withDev(device, async (dev) => {
        if (fmt(values) === "binary") {
          const bytes = lid === FdpLogId.STATS ? FdpBytes.STATS_LOG : 4096;
          process.stdout.write(await getLogPage(dev, lid, bytes, { nsid: 0, lsi: e, lsp: values["host-events"] ? 1 : 0 }));
          return 0;
        }
        process.stdout.write(await read(dev, e, values));
        return 0;
      });
    },
  });
  return {
    "fdp configs": logCmd("configs", "List configurations", FdpLogId.CONFIGS, async (dev, e, v) => {
      const log = await fdpConfigs(dev, e);
      return fmt(v) === "json" ? fdpConfigsToJson(log) + "\n" : formatFdpConfigs(log, !!v["human-readable"]);
    }, { "human-readable": { type: "boolean", short: "H" } }),
    "fdp usage": logCmd("usage", "Show reclaim unit handle usage", FdpLogId.RUH_USAGE, async (dev, e, v) => {
      const log = await fdpUsage(dev, e);
      return fmt(v) === "json" ? fdpUsageToJson(log) + "\n" : formatFdpUsage(log);
    }),
    "fdp stats": logCmd("stats", "Show statistics", FdpLogId.STATS, async (dev, e, v) => {
      const s = await fdpStats(dev, e);
      return fmt(v) === "json" ? fdpStatsToJson(s) + "\n" : formatFdpStats(s);
    }),
    "fdp events": logCmd("events", "List events affecting reclaim units and media usage", FdpLogId.EVENTS, async (dev, e, v) => {
      const log = await fdpEvents(dev, e, !!v["host-events"]);
      return fmt(v) === "json" ? fdpEventsToJson(log) + "\n" : formatFdpEvents(log);
    }, { "host-events": { type: "boolean", short: "E" } }),
    "fdp status": {
      summary: "Show reclaim unit handle status",
      usage: "fdp status <device> [--namespace-id <nsid>] [--output-format normal|json]",
      options: { ...outputFormat, "namespace-id": { type: "string", short: "n" } },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values);
        return ctx.withDev(device, async (dev) => {
          const s = await ruhStatus(dev, ctx.nsid(values, dev));
          out(f === "json" ? ruhStatusToJson(s) : formatRuhStatus(s));
          return 0;
        });
      },
    },
    "fdp update": {
      summary: "Update a reclaim unit handle",
      usage: "fdp update <device> --pids <pid,...> [--namespace-id <nsid>]",
      options: { "namespace-id": { type: "string", short: "n" }, pids: { type: "string", short: "p" } },
      args: [1, 1],
      run: ([device], values) => {
        const pids = intList(values, "pids", 0xffff);
        if (!pids.length) throw new UsageError("no placement identifiers set");
        return ctx.withDev(device, async (dev) => {
          await ruhUpdate(dev, ctx.nsid(values, dev), pids);
          out("update: Success");
          return 0;
        });
      },
    },
    "fdp set-events": {
      summary: "Enable or disable events",
      usage: "fdp set-events <device> --event-types <t,...> [--placement-handle <ph>] [--enable] [--namespace-id <nsid>]",
      options: {
        "namespace-id": { type: "string", short: "n" },
        "placement-handle": { type: "string", short: "p", default: "0" },
        enable: { type: "boolean", short: "e" },
        "event-types": { type: "string", short: "t" },
      },
      args: [1, 1],
      run: ([device], values) => {
        const types = intList(values, "event-types", 0xff);
        if (!types.length) throw new UsageError("no event types set");
        if (types.length > 255) throw new UsageError("too many event types (max 255)");
        const ph = int(values, "placement-handle", { max: 0xffff });
        return ctx.withDev(device, async (dev) => {
          await setFdpEvents(dev, ctx.nsid(values, dev), ph, types, !!values.enable);
          out("set-events: Success");
          return 0;
        });
      },
    },
  };
}
