/**
 * The CLI's zns and fdp commands (nvme-cli 2.3's text and JSON) and nvme-cli 3.0's grouped
 * names, against the software controller. Each run opens a fresh sim: state does not carry over.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "../../harness.ts";
import { runCli } from "../../cli.ts";
import { formatZone, reportZonesToJson } from "../../../lib/cli/zns.ts";
import { formatFdpEvents, formatRuhStatus } from "../../../lib/cli/fdp.ts";
import { NVME_CLI_3_GROUPS } from "../../../lib/cli/groups.ts";
import { ZoneState } from "../../../lib/nvme/zns.ts";
import { Uint64 } from "../../../lib/nvme/wide.ts";

/** The CLI's run with binary writes shown as text, as a terminal would. */
const run = async (argv: string[]) => {
  const r = await runCli(argv);
  return { code: r.code, out: r.text, err: r.err };
};

const DEV = "sim:ns=2M:512;zoned=1:1024;fdp=4:64K";

test("cli zns: id-ctrl, id-ns and report-zones in nvme-cli's text and JSON", async () => {
  assert.deepEqual(await run(["zns", "id-ctrl", DEV]), { code: 0, out: "NVMe ZNS Identify Controller:\nzasl    : 0\n", err: "" });
  const ns = await run(["zns", "id-ns", DEV, "-n", "1"]);
  assert.equal(ns.code, 0);
  assert.match(ns.out, /^ZNS Command Set Identify Namespace:\nzoc {5}: 0\nozcs {4}: 0\nmar {5}: 0xffffffff\nmor {5}: 0xffffffff\nrrl {5}: 0\n/);
  assert.match(ns.out, /\nlbafe {2}0: zsze:0x400 zdes:0 \(in use\)\nlbafe {2}1: zsze:0x400 zdes:0\n$/);
  const h = await run(["zns", "id-ns", DEV, "-H"]);
  assert.match(h.out, /mar {5}: No Active Resource Limit\n/);
  assert.match(h.out, /LBA Format Extension {2}0 : Zone Size: 0x400 LBAs - Zone Descriptor Extension Size: 0 bytes \(in use\)\n/);
  const j = JSON.parse((await run(["zns", "id-ns", DEV, "-o", "json"])).out);
  assert.equal(j.mar, 4294967295);
  assert.deepEqual(j.lbafe[0], { zsze: 1024, zdes: 0 });
  const rz = await run(["zns", "report-zones", DEV, "-n", "1"]);
  assert.equal(rz.out.split("\n")[0], "nr_zones: 4");
  assert.equal(rz.out.split("\n")[2], "SLBA: 0x400      WP: 0x400      Cap: 0x400      State: 0x10 Type: 0x2  Attrs: 0    AttrsInfo: 0   ");
  const rj = JSON.parse((await run(["zns", "report-zones", DEV, "-o", "json", "-d", "2"])).out);
  assert.equal(rj.nr_zones, 4);
  assert.deepEqual(rj.zone_list[1], { slba: 1024, wp: 1024, cap: 1024, state: "EMPTY", type: "SEQWRITE_REQ", attrs: 0 });
  assert.equal(rj.zone_list.length, 2);
  const v = await run(["zns", "report-zones", DEV, "-v", "-d", "1"]);
  assert.equal(v.out, "nr_zones: 4\nSLBA: 0          WP: 0          Cap: 0x400      State: EMPTY        Type: SEQWRITE_REQ  \nAttrs: Zone Descriptor Extension is Not Vaild\n");
  assert.equal(v.err, "", "report-zones' -v is verbose output, not a command trace");
});

test("cli zns: zone actions, zone append, and a typed failure as nvme-cli's status line", async () => {
  assert.equal((await run(["zns", "open-zone", DEV, "-s", "1024"])).out, "zns-open-zone: Success zone slba:400 nsid:1\n");
  assert.equal((await run(["zns", "finish-zone", DEV, "-s", "0x800", "-n", "1"])).out, "zns-finish-zone: Success, action:2 zone:800 all:0 zcapc:0 nsid:1\n");
  assert.equal((await run(["zns", "reset-zone", DEV, "-a"])).out, "zns-reset-zone: Success, action:4 zone:0 all:1 zcapc:0 nsid:1\n");
  assert.equal((await run(["zns", "zone-mgmt-send", DEV, "-z", "2", "-s", "0"])).out, "zone-mgmt-send: Success, action:2 zone:0 all:0 nsid:1\n");
  assert.equal((await run(["zns", "zone-mgmt-recv", DEV, "-l", "128"])).out, "zone-mgmt-recv: Success, action:0 zone:0 nsid:1\n");
  const bad = await run(["zns", "close-zone", DEV, "-s", "0"]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /Invalid Zone State Transition/);
  const dir = mkdtempSync(`${tmpdir()}/tsnvme-zns-`);
  try {
    writeFileSync(`${dir}/d.bin`, new Uint8Array(1024).fill(3));
    assert.equal((await run(["zns", "zone-append", DEV, "-s", "2048", "-z", "1024", "-d", `${dir}/d.bin`])).out, "Success appended data to LBA 800\n");
    assert.equal((await run(["zns", "zone-append", DEV, "-s", "2048", "-z", "1000", "-d", `${dir}/d.bin`])).code, 2, "not whole blocks");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal((await run(["zns", "zone-mgmt-send", DEV])).code, 2, "no action");
});

test("cli zns: the text and JSON of zones in other states", () => {
  const z = { zt: 2, state: ZoneState.FULL, za: 0x6, zai: 0x5, zcap: 0x800, zslba: 0x1000, wp: 0x1800, ext: new Uint8Array(0) };
  assert.equal(formatZone(z, false), "SLBA: 0x1000     WP: 0x1800     Cap: 0x800      State: 0xe0 Type: 0x2  Attrs: 0x6  AttrsInfo: 0x5 \n");
  assert.equal(
    formatZone(z, true),
    "SLBA: 0x1000     WP: 0x1800     Cap: 0x800      State: FULL         Type: SEQWRITE_REQ  \n" +
      "Attrs: Zone Descriptor Extension is Not Vaild\n" +
      "       Reset Zone Recommended with Reset Recommended Limit1\n" +
      "       Finish Zone Recommended with Finish Recommended Limit1\n",
  );
  assert.deepEqual(JSON.parse(reportZonesToJson(1, [z])).zone_list[0], { slba: 4096, wp: 6144, cap: 2048, state: "FULL", type: "SEQWRITE_REQ", attrs: 5 });
  // No write pointer (QEMU's full zones): 64-bit all ones, exact in the JSON text.
  assert.match(formatZone({ ...z, wp: -1 }, false), /^SLBA: 0x1000 {5}WP: 0xffffffffffffffff Cap: /);
  assert.match(reportZonesToJson(1, [{ ...z, wp: -1 }]), /"wp":18446744073709551615,/);
});

test("cli fdp: configs, usage, stats, status, update, set-events, events", async () => {
  const c = await run(["fdp", "configs", DEV, "-e", "1"]);
  assert.equal(
    c.out,
    "FDP Attributes: 0x80\nVendor Specific Size: 0\nNumber of Reclaim Groups: 1\nNumber of Reclaim Unit Handles: 4\n" +
      "Number of Namespaces Supported: 4294967295\nReclaim Unit Nominal Size: 65536\nEstimated Reclaim Unit Time Limit: 0\n" +
      "Reclaim Unit Handle List:\n  [0]: Initially Isolated\n  [1]: Initially Isolated\n  [2]: Initially Isolated\n  [3]: Initially Isolated\n",
  );
  assert.deepEqual(JSON.parse((await run(["fdp", "configs", DEV, "-e", "1", "-o", "json"])).out), {
    n: 0,
    configs: [{ fdpa: 128, vss: 0, nrg: 1, nruh: 4, nnss: 4294967295, runs: 65536, erutl: 0 }],
  });
  assert.equal((await run(["fdp", "configs", DEV])).code, 2, "endurance group required");
  assert.match((await run(["fdp", "usage", DEV, "-e", "1"])).out, /^Reclaim Unit Handle 0 Attributes: 0x1 \(Host Specified\)\n/);
  assert.equal((await run(["fdp", "stats", DEV, "-e", "1"])).out, "Host Bytes with Metadata Written (HBMW): 0\nMedia Bytes with Metadata Written (MBMW): 0\nMedia Bytes Erased (MBE): 0\n");
  assert.deepEqual(JSON.parse((await run(["fdp", "stats", DEV, "-e", "1", "-o", "json"])).out), { hbmw: "0", mbmw: "0", mbe: "0" });
  const st = await run(["fdp", "status", DEV]);
  assert.match(st.out, /^Placement Identifier 0; Reclaim Unit Handle Identifier 0\n {2}Estimated Active Reclaim Unit Time Remaining \(EARUTR\): 0\n {2}Reclaim Unit Available Media Writes \(RUAMW\): 128\n\n/);
  assert.equal(JSON.parse((await run(["fdp", "status", DEV, "-o", "json"])).out).nruhsd, 4);
  assert.equal((await run(["fdp", "update", DEV, "-p", "0,1"])).out, "update: Success\n");
  assert.equal((await run(["fdp", "update", DEV])).code, 2);
  assert.equal((await run(["fdp", "set-events", DEV, "-t", "0,3", "-e"])).out, "set-events: Success\n");
  assert.deepEqual(JSON.parse((await run(["fdp", "events", DEV, "-e", "1", "-o", "json"])).out), { n: 0, events: [] });
  assert.equal((await run(["fdp", "stats", DEV, "-e", "2"])).code, 1, "no endurance group 2");
});

test("cli fdp: status and events text", () => {
  assert.equal(
    formatRuhStatus({ nruhsd: 1, ruhss: [{ pid: 2, ruhid: 3, earutr: 4, ruamw: new Uint64(5n) }] }),
    "Placement Identifier 2; Reclaim Unit Handle Identifier 3\n  Estimated Active Reclaim Unit Time Remaining (EARUTR): 4\n  Reclaim Unit Available Media Writes (RUAMW): 5\n\n",
  );
  const t = formatFdpEvents({ n: 1, events: [{ type: 0, fdpef: 7, pid: 1, timestamp: 1000, nsid: 1, rgid: 0, ruhid: 2 }] });
  assert.match(t, /^Event\[0\]\n {2}Event Type: 0x0 \(Reclaim Unit Not Fully Written\)\n {2}Event Timestamp: 1000 \(.+\)\n {2}Placement Identifier \(PID\): 0x1\n {2}Namespace Identifier \(NSID\): 1\n {2}Reclaim Group Identifier: 0\n {2}Reclaim Unit Handle Identifier 2\n\n$/);
});

test("cli: nvme-cli 3.0's grouped names run the 2.x commands with the same output", async () => {
  for (const [grouped, old] of [[["id", "ctrl"], ["id-ctrl"]], [["log", "smart"], ["smart-log"]], [["id", "ns-list"], ["list-ns"]]]) {
    const a = await run([...grouped, "sim", "-o", "json"]);
    const b = await run([...old, "sim", "-o", "json"]);
    assert.equal(a.code, 0);
    // Each run is a fresh sim with its own serial number.
    const norm = (t: string) => t.replaceAll(/SIM\d+/g, "SIM");
    assert.equal(norm(a.out), norm(b.out), grouped.join(" "));
  }
  assert.equal((await run(["fw", "commit", "sim", "-s", "9"])).code, 2, "same option checks as fw-commit");
  const help = await run(["log", "help"]);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: nvme.ts log <command>/);
  assert.match(help.out, /\n {2}smart +Retrieve the SMART/);
  assert.doesNotMatch(help.out, /telemetry/, "only commands this CLI has");
  assert.equal((await run(["zns", "nope"])).code, 2);
  assert.equal((await run(["id"])).code, 2);
  assert.equal(NVME_CLI_3_GROUPS.ns.create, "create-ns");
  assert.equal((await run(["smart-log", "sim", "-o", "json"])).code, 0, "2.x names stay");
});
