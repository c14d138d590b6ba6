/**
 * nvme-cli's SR-IOV commands over lib/admin/virt.ts: `primary-ctrl-caps`,
 * `list-secondary` and `virt-mgmt` with nvme-cli 2.3's options, text and JSON
 * (field names, order and number formats; checked against nvme-cli on the
 * kernel driver in tests/guest/features/sriov_test.ts).
 * @module
 */
import { type Command, format, intOpt as int, out, outputFormat } from "./cli.ts";
import type { NVMeDev } from "../dev.ts";
import { primaryCtrlCaps, type PrimaryCtrlCaps, secondaryCtrlList, type SecondaryCtrl, virtMgmt } from "../admin/virt.ts";

const hex = (n: number) => n === 0 ? "0" : `0x${n.toString(16)}`; // C's %#x
const hex4 = (n: number) => `0x${n.toString(16).padStart(4, "0")}`; // C's 0x%.04x

/** Identify Primary Controller Capabilities as nvme-cli 2.3 prints it (`human`: its -H lines for CRT). */
export function formatPrimaryCtrlCaps(c: PrimaryCtrlCaps, human = false): string {
  const rows = Object.entries(c).map(([k, v]) => `${k.padEnd(9)} : ${k === "cntlid" || k === "portid" || k === "crt" ? hex(v) : v}`);
  if (human) {
    const vi = (c.crt >> 1) & 1, vq = c.crt & 1, rsvd = c.crt >> 2;
    rows.splice(
      3,
      0,
      ...(rsvd ? [`  [7:2] : ${hex(rsvd)}\tReserved`] : []),
      `  [1:1] ${hex(vi)}\tVI Resources are ${vi ? "" : "not "}supported`,
      `  [0:0] ${hex(vq)}\tVQ Resources are ${vq ? "" : "not "}supported`,
    );
  }
  return `NVME Identify Primary Controller Capabilities:\n${rows.join("\n")}\n`;
}

/** Identify Primary Controller Capabilities as nvme-cli's JSON document (its field names and order). */
export function primaryCtrlCapsToJson(c: PrimaryCtrlCaps): string {
  return JSON.stringify(c, null, 2);
}

/**
 * A secondary controller list as nvme-cli 2.3 prints it: NUMID is the list's count (`num`, before
 * `--num-entries` cuts it), the entries are the first `list.length`.
 */
export function formatSecondaryList(list: SecondaryCtrl[], num = list.length): string {
  const lines = [`Identify Secondary Controller List:`, `   NUMID       : Number of Identifiers           : ${num}`];
  list.forEach((s, i) => {
    lines.push(
      `   SCEntry[${String(i).padEnd(3)}]:`,
      `................`,
      `     SCID      : Secondary Controller Identifier : ${hex4(s.scid)}`,
      `     PCID      : Primary Controller Identifier   : ${hex4(s.pcid)}`,
      `     SCS       : Secondary Controller State      : ${hex4(s.scs)} (${s.scs & 1 ? "Online" : "Offline"})`,
      `     VFN       : Virtual Function Number         : ${hex4(s.vfn)}`,
      `     NVQ       : Num VQ Flex Resources Assigned  : ${hex4(s.nvq)}`,
      `     NVI       : Num VI Flex Resources Assigned  : ${hex4(s.nvi)}`,
    );
  });
  return lines.join("\n") + "\n";
}

/** A secondary controller list as nvme-cli's JSON document (`num` entries, its field names). */
export function secondaryListToJson(list: SecondaryCtrl[]): string {
  return JSON.stringify(
    {
      num: list.length,
      "secondary-controllers": list.map((s) => ({
        "secondary-controller-identifier": s.scid,
        "primary-controller-identifier": s.pcid,
        "secondary-controller-state": s.scs,
        "virtual-function-number": s.vfn,
        "num-virtual-queues": s.nvq,
        "num-virtual-interrupts": s.nvi,
      })),
    },
    null,
    2,
  );
}

/** Virtualization Management's result line, as nvme-cli prints it (`nrm`: CQE DW0). */
export function formatVirtMgmt(nrm: number): string {
  return `success, Number of Controller Resources Modified (NRM):${hex(nrm)}\n`;
}

/** The three commands, opening devices through `withDev` (the CLI's, with its --verbose and PCIe choices). */
export function virtCommands(withDev: <T>(device: string, f: (dev: NVMeDev) => Promise<T>) => Promise<T>): Record<string, Command> {
  return {
    "primary-ctrl-caps": {
      summary: "Send Identify Primary Controller Capabilities, display the structure",
      usage: "primary-ctrl-caps <device> [--cntlid <id>] [--human-readable] [--output-format normal|json]",
      options: { ...outputFormat, cntlid: { type: "string", short: "c" }, "human-readable": { type: "boolean", short: "H" } },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values);
        const cntlid = Math.max(0, int(values, "cntlid", { max: 0xffff }));
        return withDev(device, async (dev) => {
          const c = await primaryCtrlCaps(dev, cntlid);
          out(f === "json" ? primaryCtrlCapsToJson(c) : formatPrimaryCtrlCaps(c, !!values["human-readable"]));
          return 0;
        });
      },
    },
    "list-secondary": {
      summary: "Send Identify Secondary Controller List, display the entries",
      usage: "list-secondary <device> [--cntid <first controller id>] [--namespace-id <nsid>] [--num-entries <n>] [--output-format normal|json]",
      options: {
        ...outputFormat,
        cntid: { type: "string", short: "c" },
        "namespace-id": { type: "string", short: "n" },
        "num-entries": { type: "string", short: "e" },
      },
      args: [1, 1],
      run: ([device], values) => {
        const f = format(values);
        const from = Math.max(0, int(values, "cntid", { max: 0xffff }));
        const nsid = Math.max(0, int(values, "namespace-id", { max: 0xffff_ffff }));
        const n = int(values, "num-entries", { min: 1, max: 0xffff_ffff });
        return withDev(device, async (dev) => {
          const all = await secondaryCtrlList(dev, from, nsid);
          const list = n > 0 ? all.slice(0, n) : all;
          out(f === "json" ? secondaryListToJson(list) : formatSecondaryList(list, all.length));
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
          out(formatVirtMgmt(nrm));
          return 0;
        });
      },
    },
  };
}
