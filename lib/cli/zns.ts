/**
 * nvme-cli's `zns` plugin over tsnvme: id-ctrl, id-ns, report-zones,
 * open/close/finish/reset/offline-zone, zone-mgmt-send, zone-mgmt-recv and
 * zone-append, with nvme-cli 2.3's options, text and JSON (its quirks kept:
 * `frl1`-`frl3` print FRL, a zone's JSON `attrs` holds ZAI because the key
 * is written twice). Registered by lib/cli/nvme.ts as `zns <command>`.
 * @module
 */
import { type Command, format, intOpt as int, type Options, out, outputFormat, UsageError, type Values } from "./cli.ts";
import { toNvmeCliJson } from "./format/json.ts";
import { hexDump } from "./format/hexdump.ts";
import type { NVMeDev } from "../dev.ts";
import { flbasIndex, parseIdNs } from "../nvme/identify.ts";
import { identifyCmd } from "../nvme/command.ts";
import { Cns } from "../nvme/spec.ts";
import { Uint64 } from "../nvme/wide.ts";
import {
  CSI_ZNS,
  wpField,
  ZONE_TYPE_SEQWRITE_REQ,
  ZoneAttr,
  type ZoneDescriptor,
  type ZnsIdCtrl,
  type ZnsIdNs,
  ZoneSendAction,
  zoneStateName,
} from "../nvme/zns.ts";
import { reportZones, znsIdCtrl, znsIdNs, zoneAppend, zoneMgmtRecv, zoneMgmtSend } from "../io/zns.ts";
import { readFileSync } from "node:fs";
import process from "node:process";

/** What the plugin needs from the CLI that registers it. */
export interface PluginContext {
  /** Open the device, run `f`, close it (tracing with --verbose where the command has no -v of its own). */
  withDev<T>(device: string, f: (dev: NVMeDev) => Promise<T>): Promise<T>;
  /** `--namespace-id`, else the device's first active namespace. */
  nsid(values: Values, dev: NVMeDev): number;
}

/** C `%#-Nx`: alternate-form hex ("0" for zero), left-justified to `w`; -1 is a 64-bit all ones (no write pointer). */
function hexPad(v: number, w: number): string {
  return (v === 0 ? "0" : "0x" + (v < 0 ? "ffffffffffffffff" : v.toString(16))).padEnd(w);
}

const ZNS_NARROW = new Set(["zasl", "zoc", "ozcs", "zrwafg", "zrwasz", "zrwacap", "zsze", "zdes"]);

/** nvme-cli's `zns id-ctrl` text. */
export function formatZnsIdCtrl(c: ZnsIdCtrl): string {
  return `NVMe ZNS Identify Controller:\nzasl    : ${c.zasl}\n`;
}

/** nvme-cli's `zns id-ctrl -o json`. */
export function znsIdCtrlToJson(c: ZnsIdCtrl): string {
  return toNvmeCliJson({ zasl: c.zasl }, { narrow: ZNS_NARROW });
}

/** nvme-cli's `zns id-ns` text (`human`: -H, `vs`: -v); `inUse` is the LBA format in use. */
export function formatZnsIdNs(n: ZnsIdNs, inUse: number, opts: { human?: boolean; vs?: Uint8Array } = {}): string {
  const h = !!opts.human;
  let s = "ZNS Command Set Identify Namespace:\n";
  if (h) {
    const ze = (n.zoc >> 1) & 1, vzc = n.zoc & 1;
    s += `zoc     : ${n.zoc}\tZone Operation Characteristics\n`;
    if (n.zoc >> 2) s += ` [15:2] : ${hexPad(n.zoc >> 2, 0)}\tReserved\n`;
    s += `  [1:1] : ${hexPad(ze, 0)}\t  Zone Active Excursions: ${ze ? "Yes (Host support required)" : "No"}\n`;
    s += `  [0:0] : ${hexPad(vzc, 0)}\t  Variable Zone Capacity: ${vzc ? "Yes (Host support required)" : "No"}\n\n`;
    const razb = n.ozcs & 1, zrwa = (n.ozcs >> 1) & 1;
    s += `ozcs    : ${n.ozcs}\tOptional Zoned Command Support\n`;
    if (n.ozcs >> 2) s += ` [15:1] : ${hexPad((n.ozcs >> 2) & 0xff, 0)}\tReserved\n`;
    s += `  [0:0] : ${hexPad(razb, 0)}\t  Read Across Zone Boundaries: ${razb ? "Yes" : "No"}\n`;
    s += `  [1:1] : ${hexPad(zrwa, 0)}\t  Zone Random Write Area: ${zrwa ? "Yes" : "No"}\n`;
    s += n.mar === 0xffffffff ? "mar     : No Active Resource Limit\n" : `mar     : ${n.mar + 1}\tActive Resources\n`;
    s += n.mor === 0xffffffff ? "mor     : No Open Resource Limit\n" : `mor     : ${n.mor + 1}\tOpen Resources\n`;
  } else {
    s += `zoc     : ${n.zoc}\nozcs    : ${n.ozcs}\nmar     : ${hexPad(n.mar, 0)}\nmor     : ${hexPad(n.mor, 0)}\n`;
  }
  const limit = (v: number, name: string) => s += !v && h ? `${name}    : Not Reported\n` : `${name}    : ${v}\n`;
  limit(n.rrl, "rrl ");
  limit(n.frl, "frl ");
  limit(n.rrl1, "rrl1");
  limit(n.rrl2, "rrl2");
  limit(n.rrl3, "rrl3");
  // nvme-cli 2.3 prints FRL under frl1-frl3.
  limit(n.frl, "frl1");
  limit(n.frl, "frl2");
  limit(n.frl, "frl3");
  s += `numzrwa : ${hexPad(n.numzrwa, 0)}\nzrwafg  : ${n.zrwafg}\nzrwasz  : ${n.zrwasz}\n`;
  if (h) {
    s += `zrwacap : ${n.zrwacap}\tZone Random Write Area Capability\n`;
    if (n.zrwacap >> 1) s += ` [7:1] : ${hexPad(n.zrwacap >> 1, 0)}\tReserved\n`;
    s += `  [0:0] : ${hexPad(n.zrwacap & 1, 0)}\t  Explicit ZRWA Flush Operations: ${n.zrwacap & 1 ? "Yes" : "No"}\n`;
  } else s += `zrwacap : ${n.zrwacap}\n`;
  n.lbafe.forEach((e, i) => {
    const use = i === inUse ? " (in use)" : "";
    s += h
      ? `LBA Format Extension ${String(i).padStart(2)} : Zone Size: 0x${e.zsze.toString(16)} LBAs - Zone Descriptor Extension Size: ${e.zdes << 6} bytes${use}\n`
      : `lbafe ${String(i).padStart(2)}: zsze:0x${e.zsze.toString(16)} zdes:${e.zdes}${use}\n`;
  });
  if (opts.vs) s += "vs[]    :\n" + hexDump(opts.vs);
  return s;
}

/** nvme-cli's `zns id-ns -o json`. */
export function znsIdNsToJson(n: ZnsIdNs): string {
  const { lbafe, ...rest } = n;
  return toNvmeCliJson({ ...rest, lbafe: lbafe.map((e) => ({ zsze: e.zsze, zdes: e.zdes })) }, { narrow: ZNS_NARROW });
}

/** One report-zones text line (nvme-cli 2.3), with the attribute lines under it when `verbose`. */
export function formatZone(z: ZoneDescriptor, verbose: boolean): string {
  const head = `SLBA: ${hexPad(z.zslba, 10)} WP: ${hexPad(z.wp, 10)} Cap: ${hexPad(z.zcap, 10)} `;
  if (!verbose) {
    return head + `State: ${hexPad(z.state << 4, 4)} Type: ${hexPad(z.zt, 4)} Attrs: ${hexPad(z.za, 4)} AttrsInfo: ${hexPad(z.zai, 4)}\n`;
  }
  const rl = ["", "1", "2", "3"];
  let s = head + `State: ${zoneStateName(z.state).padEnd(12)} Type: ${(z.zt === ZONE_TYPE_SEQWRITE_REQ ? "SEQWRITE_REQ" : "Unknown").padEnd(14)}\n`;
  s += `Attrs: Zone Descriptor Extension is ${z.za & ZoneAttr.ZDEV ? "" : "Not "}Vaild\n`;
  if (z.za & ZoneAttr.RZR) s += `       Reset Zone Recommended with Reset Recommended Limit${rl[(z.zai & 0xd) >> 2]}\n`;
  if (z.za & ZoneAttr.FZR) s += `       Finish Zone Recommended with Finish Recommended Limit${rl[z.zai & 3]}\n`;
  if (z.za & ZoneAttr.ZFC) s += "       Zone Finished by Controller\n";
  return s;
}

/** nvme-cli's `zns report-zones -o json`. */
export function reportZonesToJson(nrZones: number, zones: readonly ZoneDescriptor[]): string {
  return toNvmeCliJson({
    nr_zones: nrZones,
    zone_list: zones.map((z) => ({
      slba: new Uint64(BigInt(z.zslba)),
      wp: new Uint64(wpField(z.wp)),
      cap: new Uint64(BigInt(z.zcap)),
      state: zoneStateName(z.state),
      type: z.zt === ZONE_TYPE_SEQWRITE_REQ ? "SEQWRITE_REQ" : "Unknown",
      // nvme-cli adds "attrs" twice (ZA, then ZAI); json-c keeps the second.
      attrs: z.zai,
    })),
  });
}

const nsOpt: Options = { "namespace-id": { type: "string", short: "n" } };
const sendOptions: Options = {
  ...nsOpt,
  "start-lba": { type: "string", short: "s", default: "0" },
  "select-all": { type: "boolean", short: "a" },
  timeout: { type: "string", short: "t" },
};

function timeoutOf(values: Values): number | undefined {
  const t = int(values, "timeout", { max: 0xffffffff });
  return t > 0 ? t : undefined;
}

/** The `zns` commands, keyed `zns <name>`. */
export function znsCommands(ctx: PluginContext): Record<string, Command> {
  const action = (name: string, zsa: number, summary: string): Command => ({
    summary,
    usage: `zns ${name} <device> [--namespace-id <nsid>] [--start-lba <slba>] [--select-all] [--timeout <ms>]`,
    options: sendOptions,
    args: [1, 1],
    run: ([device], values) => {
      const slba = int(values, "start-lba");
      const all = !!values["select-all"];
      return ctx.withDev(device, async (dev) => {
        const nsid = ctx.nsid(values, dev);
        const dw0 = await zoneMgmtSend(dev, nsid, slba, zsa, { selectAll: all, timeoutMs: timeoutOf(values) });
        if (zsa === ZoneSendAction.OPEN) out(`zns-open-zone: Success zone slba:${slba.toString(16)} nsid:${nsid}`);
        else {
          const zcapc = zsa === ZoneSendAction.RESET ? dw0 & 1 : 0;
          out(`zns-${name}: Success, action:${zsa} zone:${slba.toString(16)} all:${all ? 1 : 0} zcapc:${zcapc} nsid:${nsid}`);
        }
        return 0;
      });
    },
  });
  return {
    "zns id-ctrl": {
      summary: "Send NVMe Identify Zoned Namespace Controller, display structure",
      usage: "zns id-ctrl <device> [--output-format normal|json|binary]",
      options: { ...outputFormat },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values, ["normal", "json", "binary"]);
        return ctx.withDev(device, async (dev) => {
          if (f === "binary") {
            process.stdout.write(await dev.controller.identify(identifyCmd(Cns.CSI_CTRL, 0, 0, CSI_ZNS)));
            return 0;
          }
          const c = await znsIdCtrl(dev);
          out(f === "json" ? znsIdCtrlToJson(c) : formatZnsIdCtrl(c));
          return 0;
        });
      },
    },
    "zns id-ns": {
      summary: "Send NVMe Identify Zoned Namespace Namespace, display structure",
      usage: "zns id-ns <device> [--namespace-id <nsid>] [--vendor-specific] [--human-readable] [--output-format normal|json]",
      options: { ...outputFormat, ...nsOpt, "vendor-specific": { type: "boolean", short: "v" }, "human-readable": { type: "boolean", short: "H" } },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values);
        return ctx.withDev(device, async (dev) => {
          const nsid = ctx.nsid(values, dev);
          const n = await znsIdNs(dev, nsid);
          if (f === "json") out(znsIdNsToJson(n));
          else {
            const id = parseIdNs(await dev.controller.identifyNamespace(nsid));
            const vs = values["vendor-specific"] ? new Uint8Array(256) : undefined;
            process.stdout.write(formatZnsIdNs(n, flbasIndex(id.flbas), { human: !!values["human-readable"], vs }));
          }
          return 0;
        });
      },
    },
    "zns report-zones": {
      summary: "Report zones associated to a Zoned Namespace",
      usage: "zns report-zones <device> [--namespace-id <nsid>] [--start-lba <slba>] [--descs <n>] [--state <0-7>] " +
        "[--verbose] [--partial] [--output-format normal|json]",
      help: "Extended reports (--extended) are not supported: the software controller and QEMU have no zone descriptor extensions.",
      options: {
        ...outputFormat,
        ...nsOpt,
        "start-lba": { type: "string", short: "s", default: "0" },
        descs: { type: "string", short: "d" },
        state: { type: "string", short: "S", default: "0" },
        verbose: { type: "boolean", short: "v" },
        partial: { type: "boolean", short: "p" },
      },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values);
        const slba = int(values, "start-lba");
        const state = int(values, "state", { max: 7 });
        const descs = int(values, "descs", { min: 1, max: 0xffffffff });
        return ctx.withDev(device, async (dev) => {
          const nsid = ctx.nsid(values, dev);
          // As nvme-cli: the total comes from a report from LBA 0 with the same filter.
          const total = (await reportZones(dev, nsid, { filter: state, maxZones: 0 })).nrZones;
          const r = await reportZones(dev, nsid, { slba, filter: state, partial: !!values.partial, maxZones: descs > 0 ? descs : total });
          if (f === "json") out(reportZonesToJson(total, r.zones));
          else process.stdout.write(`nr_zones: ${total}\n` + r.zones.map((z) => formatZone(z, !!values.verbose)).join(""));
          return 0;
        });
      },
    },
    "zns open-zone": action("open-zone", ZoneSendAction.OPEN, "Open one or more zones"),
    "zns close-zone": action("close-zone", ZoneSendAction.CLOSE, "Close one or more zones"),
    "zns finish-zone": action("finish-zone", ZoneSendAction.FINISH, "Finish one or more zones"),
    "zns reset-zone": action("reset-zone", ZoneSendAction.RESET, "Reset one or more zones"),
    "zns offline-zone": action("offline-zone", ZoneSendAction.OFFLINE, "Offline one or more zones"),
    "zns zone-mgmt-send": {
      summary: "Send the zone management send command",
      usage: "zns zone-mgmt-send <device> --zsa <action> [--namespace-id <nsid>] [--start-lba <slba>] [--select-all] [--timeout <ms>]",
      help: "Actions: 1 close, 2 finish, 3 open, 4 reset, 5 offline. Actions with data (set zone descriptor extension) are not supported.",
      options: { ...sendOptions, zsa: { type: "string", short: "z" } },
      args: [1, 1],
      run: ([device], values) => {
        const zsa = int(values, "zsa", { max: 0xff });
        if (zsa <= 0) throw new UsageError("zone send action must be specified");
        const slba = int(values, "start-lba");
        const all = !!values["select-all"];
        return ctx.withDev(device, async (dev) => {
          const nsid = ctx.nsid(values, dev);
          await zoneMgmtSend(dev, nsid, slba, zsa, { selectAll: all, timeoutMs: timeoutOf(values) });
          out(`zone-mgmt-send: Success, action:${zsa} zone:${slba.toString(16)} all:${all ? 1 : 0} nsid:${nsid}`);
          return 0;
        });
      },
    },
    "zns zone-mgmt-recv": {
      summary: "Send the zone management receive command",
      usage: "zns zone-mgmt-recv <device> --data-len <bytes> [--namespace-id <nsid>] [--start-lba <slba>] [--zra <n>] [--zrasf <n>] [--partial] [--output-format normal|binary]",
      help: "As nvme-cli 2.3, the data is not shown; -o binary writes it to stdout.",
      options: {
        ...outputFormat,
        ...nsOpt,
        "start-lba": { type: "string", short: "s", default: "0" },
        zra: { type: "string", short: "z", default: "0" },
        zrasf: { type: "string", short: "S", default: "0" },
        partial: { type: "boolean", short: "p" },
        "data-len": { type: "string", short: "l" },
      },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values, ["normal", "binary"]);
        const len = int(values, "data-len", { min: 4 });
        if (len < 0) throw new UsageError("data len is needed for NVME_ZRA_ZONE_REPORT");
        const slba = int(values, "start-lba"), zra = int(values, "zra", { max: 0xff }), zrasf = int(values, "zrasf", { max: 0xff });
        return ctx.withDev(device, async (dev) => {
          const nsid = ctx.nsid(values, dev);
          const d = await zoneMgmtRecv(dev, nsid, slba, Math.ceil(len / 4) * 4, { zra, zrasf, partial: !!values.partial });
          if (f === "binary") process.stdout.write(d.subarray(0, len));
          else out(`zone-mgmt-recv: Success, action:${zra} zone:${slba.toString(16)} nsid:${nsid}`);
          return 0;
        });
      },
    },
    "zns zone-append": {
      summary: "Append data and metadata (if applicable) to a zone",
      usage: "zns zone-append <device> --data-size <bytes> [--namespace-id <nsid>] [--zslba <slba>] [--data <file>] [--latency]",
      help: "Data comes from --data or stdin. Metadata and protection information options are not supported.",
      options: {
        ...nsOpt,
        zslba: { type: "string", short: "s", default: "0" },
        "data-size": { type: "string", short: "z" },
        data: { type: "string", short: "d" },
        latency: { type: "boolean", short: "t" },
      },
      args: [1, 1],
      run: ([device], values) => {
        const size = int(values, "data-size", { min: 1 });
        if (size < 0) throw new UsageError("Append size not provided");
        const zslba = int(values, "zslba");
        let data: Uint8Array;
        try {
          data = new Uint8Array(readFileSync(values.data ? String(values.data) : 0));
        } catch (e) {
          throw new UsageError(`cannot read ${values.data ?? "stdin"}: ${(e as Error).message}`);
        }
        return ctx.withDev(device, async (dev) => {
          const nsid = ctx.nsid(values, dev);
          const bs = dev.ns(nsid).blockSize;
          if (size % bs) throw new UsageError(`Data size:${size.toString(16)} not aligned to lba size:${bs}`);
          const buf = new Uint8Array(size);
          buf.set(data.subarray(0, size));
          const t0 = performance.now();
          const lba = await zoneAppend(dev, nsid, zslba, buf);
          if (values.latency) out(` latency: zone append: ${Math.round((performance.now() - t0) * 1000)} us`);
          out(`Success appended data to LBA ${lba.toString(16)}`);
          return 0;
        });
      },
    },
  };
}
