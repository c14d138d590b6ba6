/**
 * nvme-cli's SR-IOV commands over lib/admin/virt.ts: `primary-ctrl-caps`,
 * `list-secondary` and `virt-mgmt` (same options; text as `field : value`
 * lines, JSON with the spec's field names).
 * @module
 */
import { type Command, format, intOpt as int, out, outputFormat } from "./cli.ts";
import type { NVMeDev } from "../dev.ts";
import { primaryCtrlCaps, type PrimaryCtrlCaps, secondaryCtrlList, type SecondaryCtrl, virtMgmt } from "../admin/virt.ts";

const hex = (n: number) => n === 0 ? "0" : `0x${n.toString(16)}`;

/** Identify Primary Controller Capabilities as text. */
export function formatPrimaryCtrlCaps(c: PrimaryCtrlCaps): string {
  const rows = Object.entries(c).map(([k, v]) => `${k.padEnd(9)} : ${k === "cntlid" || k === "crt" ? hex(v) : v}`);
  return `NVMe Identify Primary Controller Capabilities:\n${rows.join("\n")}\n`;
}

/** A secondary controller list as text. */
export function formatSecondaryList(list: SecondaryCtrl[]): string {
  const lines = [`Identify Secondary Controller List:`, `   NUMID       : Number of Identifiers           : ${list.length}`];
  list.forEach((s, i) => {
    lines.push(
      `   SCEntry[${i}]:`,
      `................`,
      `     SCID      : Secondary Controller Identifier : ${hex(s.scid)}`,
      `     PCID      : Primary Controller Identifier   : ${hex(s.pcid)}`,
      `     SCS       : Secondary Controller State      : ${hex(s.scs)} (${s.scs & 1 ? "Online" : "Offline"})`,
      `     VFN       : Virtual Function Number         : ${hex(s.vfn)}`,
      `     NVQ       : Num VQ Flex Resources Assigned  : ${hex(s.nvq)}`,
      `     NVI       : Num VI Flex Resources Assigned  : ${hex(s.nvi)}`,
    );
  });
  return lines.join("\n") + "\n";
}

/** The three commands, opening devices through `withDev` (the CLI's, with its --verbose and PCIe choices). */
export function virtCommands(withDev: <T>(device: string, f: (dev: NVMeDev) => Promise<T>) => Promise<T>): Record<string, Command> {
  return {
    "primary-ctrl-caps": {
      summary: "Send Identify Primary Controller Capabilities, display the structure",
      usage: "primary-ctrl-caps <device> [--output-format normal|json]",
      options: { ...outputFormat },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values);
        return withDev(device, async (dev) => {
          const c = await primaryCtrlCaps(dev);
          out(f === "json" ? JSON.stringify(c, null, 2) : formatPrimaryCtrlCaps(c));
          return 0;
        });
      },
    },
    "list-secondary": {
      summary: "Send Identify Secondary Controller List, display the entries",
      usage: "list-secondary <device> [--cntid <first controller id>] [--num-entries <n>] [--output-format normal|json]",
      options: { ...outputFormat, cntid: { type: "string", short: "c" }, "num-entries": { type: "string", short: "e" } },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values);
        const from = Math.max(0, int(values, "cntid", { max: 0xffff }));
        const n = int(values, "num-entries", { min: 1, max: 127 });
        return withDev(device, async (dev) => {
          let list = await secondaryCtrlList(dev, from);
          if (n > 0) list = list.slice(0, n);
          out(f === "json" ? JSON.stringify({ num: list.length, "secondary-controllers": list }, null, 2) : formatSecondaryList(list));
          return 0;
        });
      },
    },
    "virt-mgmt": {
      summary: "Send Virtualization Management: flexible resources, assignment, secondary online/offline",
      usage: "virt-mgmt <device> --cntlid <id> --act <1|7|8|9> [--rt <0 VQ|1 VI>] [--nr <resources>]",
      options: {
        cntlid: { type: "string", short: "c" },
        act: { type: "string", short: "a" },
        rt: { type: "string", short: "r" },
        nr: { type: "string", short: "n" },
      },
      args: [1, 1],
      run: ([device], values) => {
        const cntlid = int(values, "cntlid", { required: true, max: 0xffff });
        const act = int(values, "act", { required: true, max: 0xf });
        const rt = Math.max(0, int(values, "rt", { max: 7 }));
        const nr = Math.max(0, int(values, "nr", { max: 0xffff }));
        return withDev(device, async (dev) => {
          const nrm = await virtMgmt(dev, { act, rt, cntlid, nr });
          out(`success, Number of Controller Resources Modified (NRM):${hex(nrm)}`);
          return 0;
        });
      },
    },
  };
}
