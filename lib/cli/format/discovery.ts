/**
 * nvme-cli's presentation of NVMe over Fabrics discovery: `nvme discover`'s
 * text and JSON (libnvme's strings for each field) and `list-subsys`'s layout
 * for the paths `connect-all` found. lib/tcp/discovery.ts decodes the log;
 * this file only presents it.
 * @module
 */
import { toNvmeCliJson } from "./json.ts";
import { Uint64 } from "../../nvme/wide.ts";
import { type DiscoveryEntry, TRTYPE_RDMA, TRTYPE_TCP } from "../../tcp/discovery.ts";

/** Re-exported: the writers take decoded entries. */
export type { DiscoveryEntry };

/** libnvme's strings for discovery log fields (arg_str: "unrecognized" outside the table). */
const pick = (t: readonly (string | undefined)[], i: number | undefined) => t[i ?? -1] ?? "unrecognized";
const TRTYPE: (string | undefined)[] = [];
Object.assign(TRTYPE, { 1: "rdma", 2: "fc", 3: "tcp", 254: "loop" });
const ADRFAM = ["pci", "ipv4", "ipv6", "infiniband", "fibre-channel"];
const SUBTYPE = [undefined, "discovery subsystem referral", "nvme subsystem", "current discovery subsystem"];
const TREQ = ["not specified", "required", "not required", undefined, "not specified, sq flow control disable supported"];
const EFLAGS = [
  "none",
  "explicit discovery connections",
  "duplicate discovery information",
  "explicit discovery connections, duplicate discovery information",
  "no cdc connectivity",
  "explicit discovery connections, no cdc connectivity",
  "duplicate discovery information, no cdc connectivity",
  "explicit discovery connections, duplicate discovery information, no cdc connectivity",
];
const SECTYPE = ["none", "tls", "tls13"];
const RDMA_PRTYPE = [undefined, "not specified", "infiniband", "roce", "roce-v2", "iwarp"];
const RDMA_QPTYPE = [undefined, "connected", "datagram"];
const RDMA_CMS = [undefined, "rdma-cm"];

/** `nvme discover`'s normal output (print_discovery_log). */
export function formatDiscovery(genctr: bigint, entries: DiscoveryEntry[]): string {
  let s = `\nDiscovery Log Number of Records ${entries.length}, Generation counter ${genctr}\n`;
  entries.forEach((e, i) => {
    s += `=====Discovery Log Entry ${i}======\n` +
      `trtype:  ${pick(TRTYPE, e.trtype)}\nadrfam:  ${e.traddr ? pick(ADRFAM, e.adrfam) : ""}\n` +
      `subtype: ${pick(SUBTYPE, e.subtype)}\ntreq:    ${pick(TREQ, e.treq)}\nportid:  ${e.portid}\n` +
      `trsvcid: ${e.trsvcid}\nsubnqn:  ${e.subnqn}\ntraddr:  ${e.traddr}\neflags:  ${pick(EFLAGS, e.eflags ?? 0)}\n`;
    if (e.trtype === TRTYPE_TCP) s += `sectype: ${pick(SECTYPE, e.sectype ?? 0)}\n`;
    if (e.trtype === TRTYPE_RDMA && e.rdma) {
      const r = e.rdma;
      s += `rdma_prtype: ${pick(RDMA_PRTYPE, r.prtype)}\nrdma_qptype: ${pick(RDMA_QPTYPE, r.qptype)}\n` +
        `rdma_cms:    ${pick(RDMA_CMS, r.cms)}\nrdma_pkey: 0x${r.pkey.toString(16).padStart(4, "0")}\n`;
    }
  });
  return s;
}

/** `nvme discover -o json` (json_discovery_log). */
export function discoveryToJson(genctr: bigint, entries: DiscoveryEntry[]): string {
  return toNvmeCliJson({
    genctr: new Uint64(genctr),
    records: entries.map((e) => ({
      trtype: pick(TRTYPE, e.trtype),
      adrfam: pick(ADRFAM, e.adrfam),
      subtype: pick(SUBTYPE, e.subtype),
      treq: pick(TREQ, e.treq),
      portid: e.portid,
      trsvcid: e.trsvcid,
      subnqn: e.subnqn.trimEnd(),
      traddr: e.traddr,
      eflags: pick(EFLAGS, e.eflags ?? 0),
      ...(e.trtype === TRTYPE_TCP ? { sectype: pick(SECTYPE, e.sectype ?? 0) } : {}),
      ...(e.trtype === TRTYPE_RDMA && e.rdma
        ? {
          rdma_prtype: pick(RDMA_PRTYPE, e.rdma.prtype),
          rdma_qptype: pick(RDMA_QPTYPE, e.rdma.qptype),
          rdma_cms: pick(RDMA_CMS, e.rdma.cms),
          rdma_pkey: e.rdma.pkey,
        }
        : {}),
    })),
  });
}

/** One path of a subsystem as connect-all reports it. */
export interface FabricsPath {
  /** The tcp:// target string the device commands take. */
  target: string;
  /** The discovery log entry it came from. */
  entry: DiscoveryEntry;
  /** "live", "failed" or "discovered" (--dry-run). */
  state: string;
  /** Controller ID, when connected. */
  cntlid?: number;
}

/** list-subsys's layout: subsystem, then one line per path (target, transport, address, state). */
export function formatSubsystems(paths: FabricsPath[]): string {
  let s = "";
  for (const [nqn, ps] of bySubsystem(paths)) {
    s += `${nqn} - NQN=${nqn}\n\\\n`;
    for (const p of ps) s += ` +- ${p.target} tcp traddr=${p.entry.traddr},trsvcid=${p.entry.trsvcid} ${p.state}\n`;
  }
  return s;
}

function bySubsystem(paths: FabricsPath[]): Map<string, FabricsPath[]> {
  const m = new Map<string, FabricsPath[]>();
  for (const p of paths) m.set(p.entry.subnqn, [...(m.get(p.entry.subnqn) ?? []), p]);
  return m;
}

/** list-subsys -o json's shape: host, then subsystems with their paths. */
export function subsystemsToJson(paths: FabricsPath[], host: { hostnqn: string; hostidText: string }): string {
  return toNvmeCliJson([{
    HostNQN: host.hostnqn,
    HostID: host.hostidText,
    Subsystems: [...bySubsystem(paths)].map(([nqn, ps]) => ({
      Name: nqn,
      NQN: nqn,
      Paths: ps.map((p) => ({
        Name: p.target,
        Transport: "tcp",
        Address: `traddr=${p.entry.traddr},trsvcid=${p.entry.trsvcid}`,
        State: p.state,
        ...(p.cntlid !== undefined ? { Cntlid: p.cntlid } : {}),
      })),
    })),
  }]);
}
