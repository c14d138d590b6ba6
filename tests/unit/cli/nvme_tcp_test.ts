import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../../harness.ts";
import { runCli } from "../../cli.ts";
import { resolveHostIdentity } from "../../../lib/tcp/host-identity.ts";
import { InvalidArgumentError } from "../../../lib/nvme/errors.ts";
import { decodeDiscoveryLog, DISCOVERY_NQN, hostIdentity, TcpController } from "../../../lib/tcp/mod.ts";
import { type CommandHook, type FabricsController, NvmfTarget } from "../../../lib/target/mod.ts";
import { AdminOpc } from "../../../lib/nvme/spec.ts";
import { memNamespaces, recordControllers } from "../util/target_util.ts";

const UUID_NQN = "nqn.2014-08.org.nvmexpress:uuid:92051aff-3332-4684-a4a9-32b718bfa75d";
const HOSTID = "8ca53695-e0b8-4e4d-8fa2-646e692cd2f6";
const hex = (b: Uint8Array) => Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");

function withDir<T>(files: Record<string, string>, f: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "tsnvme-hostid-"));
  try {
    for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, k), v);
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("host identity: options win over files", () => {
  withDir({ hostnqn: "nqn.2024-01.io.example:file\n", hostid: `${HOSTID}\n` }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir, hostnqn: "nqn.2024-01.io.example:opt", hostid: "00112233-4455-6677-8899-aabbccddeeff" });
    assert.equal(r.hostnqn, "nqn.2024-01.io.example:opt");
    assert.equal(hex(r.hostid), "00112233445566778899aabbccddeeff");
    assert.equal(r.hostidText, "00112233-4455-6677-8899-aabbccddeeff");
    assert.deepEqual([r.hostnqnSource, r.hostidSource], ["option", "option"]);
  });
});

test("host identity: /etc/nvme-style files, whitespace trimmed", () => {
  withDir({ hostnqn: `${UUID_NQN}\n`, hostid: `  ${HOSTID.toUpperCase()}\n` }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir });
    assert.equal(r.hostnqn, UUID_NQN);
    assert.equal(r.hostidText, HOSTID);
    assert.equal(hex(r.hostid), HOSTID.replace(/-/g, ""));
    assert.deepEqual([r.hostnqnSource, r.hostidSource], ["file", "file"]);
  });
});

test("host identity: no hostid file takes the UUID of a uuid-form host NQN", () => {
  withDir({ hostnqn: UUID_NQN }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir });
    assert.equal(r.hostidText, "92051aff-3332-4684-a4a9-32b718bfa75d");
    assert.equal(r.hostidSource, "hostnqn");
  });
});

test("host identity: generated from the machine id, stable, and both halves agree", () => {
  withDir({ "machine-id": "0123456789abcdef0123456789abcdef\n" }, (dir) => {
    const o = { configDir: join(dir, "absent"), machineFiles: [join(dir, "missing"), join(dir, "machine-id")] };
    const a = resolveHostIdentity(o), b = resolveHostIdentity(o);
    assert.deepEqual(a, b);
    assert.match(a.hostnqn, /^nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(a.hostnqn, `nqn.2014-08.org.nvmexpress:uuid:${a.hostidText}`);
    assert.deepEqual([a.hostnqnSource, a.hostidSource], ["generated", "hostnqn"]);
    assert.ok(!a.hostidText.replace(/-/g, "").startsWith("0123456789abcdef"), "not the machine id itself");
    // Another machine id, another identity.
    writeFileSync(join(dir, "machine-id"), "fedcba9876543210fedcba9876543210\n");
    assert.notEqual(resolveHostIdentity(o).hostnqn, a.hostnqn);
  });
});

test("host identity: a DMI product UUID is used as is", () => {
  withDir({ product_uuid: "4C4C4544-0039-3510-804C-C6C04F4E3632\n" }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir, machineFiles: [join(dir, "product_uuid")] });
    assert.equal(r.hostnqn, "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0039-3510-804c-c6c04f4e3632");
    assert.equal(r.hostidText, "4c4c4544-0039-3510-804c-c6c04f4e3632");
  });
});

test("host identity: with nothing to read, still the same on every call", () => {
  const o = { configDir: "/nonexistent/tsnvme", machineFiles: ["/nonexistent/tsnvme/id"] };
  assert.deepEqual(resolveHostIdentity(o), resolveHostIdentity(o));
  assert.equal(resolveHostIdentity(o).hostnqnSource, "generated");
});

test("host identity: malformed NQN or host ID is refused", () => {
  assert.throws(() => resolveHostIdentity({ configDir: "/nonexistent", hostnqn: "nqn.a b" }), InvalidArgumentError);
  assert.throws(() => resolveHostIdentity({ configDir: "/nonexistent", hostnqn: "x".repeat(224) }), /longer than 223/);
  assert.throws(() => resolveHostIdentity({ configDir: "/nonexistent", hostnqn: UUID_NQN, hostid: "not-a-uuid" }), /bad host ID "not-a-uuid"/);
  withDir({ hostid: "1234\n" }, (dir) => assert.throws(() => resolveHostIdentity({ configDir: dir, hostnqn: UUID_NQN }), /bad host ID "1234"/));
});

// ---------------------------------------------------------------- the CLI's fabrics commands
// Against the project's target (lib/target) on loopback, which serves a discovery log.

const run = runCli;

const NQN = "nqn.2024-01.io.example:disk1";

/** The target the CLI tests talk to: one subsystem (model "tsnvme test target") of `namespaces`. */
function listen(hook?: CommandHook, namespaces = memNamespaces([1 << 20, 512])): Promise<NvmfTarget> {
  return NvmfTarget.listen({ host: "127.0.0.1", port: 0, subsystems: [{ nqn: NQN, namespaces, model: "tsnvme test target" }], onCommand: hook });
}

/** Run `f` against a fresh target; `made` holds every controller it created (its own map: live ones only). */
async function withTarget(f: (port: number, t: NvmfTarget, made: Map<number, FabricsController>) => Promise<void>): Promise<void> {
  const rec = recordControllers();
  const t = await listen(rec.onCommand);
  try {
    await f(t.port, t, rec.controllers);
  } finally {
    await t.close();
  }
}
// Explicit identity: the machine running the tests may or may not have /etc/nvme.
const ID = ["--hostnqn", "nqn.2014-08.org.nvmexpress:uuid:5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", "--hostid", "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"];

/** nvme-cli 2.3's record for a TCP entry of the loopback target (json-c layout, keys in its order). */
const rec = (port: number, subtype: string, subnqn: string) =>
  `    {\n      "trtype":"tcp",\n      "adrfam":"ipv4",\n      "subtype":"${subtype}",\n` +
  `      "treq":"not specified, sq flow control disable supported",\n      "portid":1,\n      "trsvcid":"${port}",\n` +
  `      "subnqn":"${subnqn}",\n      "traddr":"127.0.0.1",\n      "eflags":"none",\n      "sectype":"none"\n    }`;

test("cli discover -o json: nvme-cli's keys, values and layout; URL and -t/-a/-s forms agree", async () => {
  await withTarget(async (port, t) => {
    t.genctr = 5n;
    const want = `{\n  "genctr":5,\n  "records":[\n${rec(port, "current discovery subsystem", DISCOVERY_NQN)},\n` +
      `${rec(port, "nvme subsystem", NQN)}\n  ]\n}\n`;
    const a = await run(["discover", `tcp://127.0.0.1:${port}`, "-o", "json", ...ID]);
    assert.equal(a.err, "");
    assert.equal(a.code, 0);
    assert.equal(a.out, want);
    const b = await run(["discover", "-t", "tcp", "-a", "127.0.0.1", "-s", String(port), "--output-format", "json", ...ID]);
    assert.equal(b.out, want);
    assert.equal(b.code, 0);
  });
});

test("cli discover: plain output in nvme discover's layout", async () => {
  await withTarget(async (port) => {
    const r = await run(["discover", `tcp://127.0.0.1:${port}`, ...ID, "-g", "-G"]);
    assert.equal(r.code, 0, r.err);
    const entry = (i: number, subtype: string, nqn: string) =>
      `=====Discovery Log Entry ${i}======\ntrtype:  tcp\nadrfam:  ipv4\nsubtype: ${subtype}\n` +
      `treq:    not specified, sq flow control disable supported\nportid:  1\ntrsvcid: ${port}\nsubnqn:  ${nqn}\n` +
      `traddr:  127.0.0.1\neflags:  none\nsectype: none\n`;
    assert.equal(
      r.out,
      `\nDiscovery Log Number of Records 2, Generation counter 1\n` +
        entry(0, "current discovery subsystem", DISCOVERY_NQN) + entry(1, "nvme subsystem", NQN),
    );
  });
});

test("cli discover: --raw saves the log, -o binary writes it, both decode to the same records", async () => {
  await withTarget(async (port) => {
    const dir = mkdtempSync(join(tmpdir(), "tsnvme-disc-"));
    try {
      const f = join(dir, "disc.bin");
      const r = await run(["discover", `tcp://127.0.0.1:${port}`, "-r", f, ...ID]);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out, `Discovery log is saved to ${f}\n`);
      const saved = new Uint8Array(readFileSync(f));
      assert.equal(saved.length, 3 * 1024);
      const b = await run(["discover", `tcp://127.0.0.1:${port}`, "-o", "binary", ...ID]);
      assert.equal(b.code, 0);
      assert.deepEqual(b.chunks[0], saved);
      assert.deepEqual(decodeDiscoveryLog(saved).map((e) => e.subnqn), [DISCOVERY_NQN, NQN]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("cli discover: a log that changes while read is read again (GENCTR)", async () => {
  let reads = 0;
  const t: NvmfTarget = await listen((_q, s) => {
    if ((s[0] & 0xff) === AdminOpc.GET_LOG_PAGE && ++reads <= 2) t.genctr++; // the first pass sees 3 different counters
    return undefined;
  });
  try {
    const r = await run(["discover", `tcp://127.0.0.1:${t.port}`, "-o", "json", ...ID]);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /"genctr":3,/);
    assert.equal(reads, 6, "two passes of header, log, header");
  } finally {
    await t.close();
  }
});

test("cli connect-all: discovery entries become tcp:// targets (dry run lists, otherwise each is connected)", async () => {
  await withTarget(async (port, _t, made) => {
    const target = `tcp://127.0.0.1:${port}/${NQN}`;
    const dry = await run(["connect-all", `tcp://127.0.0.1:${port}`, "--dry-run", ...ID]);
    assert.equal(dry.code, 0, dry.err);
    assert.equal(dry.out, `${NQN} - NQN=${NQN}\n\\\n +- ${target} tcp traddr=127.0.0.1,trsvcid=${port} discovered\n`);
    const before = [...made.values()].filter((c) => !c.discovery).length;
    assert.equal(before, 0, "a dry run connects to no IO controller");
    const live = await run(["connect-all", "-t", "tcp", "-a", "127.0.0.1", "-s", String(port), "-o", "json", ...ID]);
    assert.equal(live.code, 0, live.err);
    const j = JSON.parse(live.out);
    assert.equal(j[0].HostNQN, ID[1]);
    assert.equal(j[0].HostID, "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9");
    assert.deepEqual(j[0].Subsystems, [{
      Name: NQN,
      NQN,
      Paths: [{ Name: target, Transport: "tcp", Address: `traddr=127.0.0.1,trsvcid=${port}`, State: "live", Cntlid: j[0].Subsystems[0].Paths[0].Cntlid }],
    }]);
    const io = [...made.values()].filter((c) => !c.discovery);
    assert.equal(io.length, 1);
    assert.equal(j[0].Subsystems[0].Paths[0].Cntlid, io[0].cntlid);
    assert.equal(io[0].hostnqn, ID[1], "the host NQN given is the one connected with");
  });
});

test("cli connect: brings the controller up and prints the device string", async () => {
  await withTarget(async (port) => {
    const r = await run(["connect", `tcp://127.0.0.1:${port}/${NQN}`, "-i", "2", ...ID]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `device: tcp://127.0.0.1:${port}/${NQN}\n`);
    const j = await run(["connect", "-t", "tcp", "-a", "127.0.0.1", "-s", String(port), "-n", NQN, "-o", "json", ...ID]);
    assert.equal(j.out, `{\n  "device":"tcp://127.0.0.1:${port}/${NQN}"\n}\n`);
    const n = await run(["connect", `tcp://127.0.0.1:${port}`, "--nqn", NQN, ...ID]);
    assert.equal(n.out, `device: tcp://127.0.0.1:${port}/${NQN}\n`, "--nqn completes a target string without one");
    const wrong = await run(["connect", `tcp://127.0.0.1:${port}/nqn.2024-01.io.example:nope`, ...ID]);
    assert.equal(wrong.code, 1, "the target refuses an unknown subsystem: exit 1");
    assert.notEqual(wrong.err, "");
  });
});

test("cli fabrics commands: bad command lines exit 2 before connecting, unreachable targets exit 1", async () => {
  const bad: string[][] = [
    ["discover"],
    ["discover", "0000:00:04.0"],
    ["discover", "tcp://::1"],
    ["discover", "tcp://h:0"],
    ["discover", "tcp://127.0.0.1", "-a", "127.0.0.1"],
    ["discover", "-t", "rdma", "-a", "127.0.0.1"],
    ["discover", "-t", "tcp"],
    ["discover", "-t", "tcp", "-a", "127.0.0.1", "-s", "port"],
    ["discover", "tcp://127.0.0.1", "--hostid", "nope"],
    ["discover", "tcp://127.0.0.1", "-o", "xml"],
    ["connect"],
    ["connect", "tcp://127.0.0.1:4420"],
    ["connect", "-t", "tcp", "-a", "127.0.0.1"],
    ["connect", `tcp://127.0.0.1/${NQN}`, "-n", "nqn.other"],
    ["connect", `tcp://127.0.0.1/${NQN}`, "-i", "0"],
    ["connect-all", "tcp://127.0.0.1", "-o", "binary"],
  ];
  for (const argv of bad) {
    const r = await run(argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err}`);
    assert.match(r.err, /usage: nvme\.ts/, argv.join(" "));
  }
  // A closed port: one line on stderr, status 1.
  const t = await listen(undefined, []);
  const port = t.port;
  await t.close();
  const r = await run(["discover", `tcp://127.0.0.1:${port}`, ...ID]);
  assert.equal(r.code, 1);
  assert.match(r.err, /^discover: .*ECONNREFUSED/);
  assert.equal(r.out, "");
});

test("cli device commands on tcp://: id-ctrl, smart-log, write then read back, the host NQN given is used", async () => {
  await withTarget(async (port, _t, made) => {
    const d = `tcp://127.0.0.1:${port}/${NQN}`;
    const bin = await run(["id-ctrl", d, "-b", ...ID]);
    assert.equal(bin.code, 0, bin.err);
    const direct = await TcpController.connect({ host: "127.0.0.1", port, subnqn: NQN, ...hostIdentity(ID[3]), ioQueues: 0, katoMs: 0 });
    const want = direct.identify.slice();
    await direct.shutdown();
    const got = bin.chunks[0];
    assert.equal(got.length, 4096);
    const CNTLID = 78;
    got[CNTLID] = got[CNTLID + 1] = want[CNTLID] = want[CNTLID + 1] = 0;
    assert.deepEqual(got, want, "the CLI's Identify is the target's, cntlid aside");
    const j = await run(["id-ctrl", d, "-o", "json", ...ID]);
    assert.equal(j.code, 0, j.err);
    const id = JSON.parse(j.out);
    assert.equal(id.mn.trim(), "tsnvme test target");
    assert.equal(id.subnqn, NQN);
    const s = await run(["smart-log", d, "-o", "json", ...ID]);
    assert.equal(s.code, 0, s.err);
    assert.ok("critical_warning" in JSON.parse(s.out));
    assert.ok([...made.values()].every((c) => c.hostnqn === ID[1]));

    const dir = mkdtempSync(join(tmpdir(), "tsnvme-tcpio-"));
    try {
      const src = join(dir, "in.bin"), dst = join(dir, "out.bin");
      const data = new Uint8Array(8192).map((_, i) => (i * 7 + 3) & 0xff);
      writeFileSync(src, data);
      const w = await run(["write", d, "-n", "1", "-s", "16", "-c", "15", "-z", "8192", "-d", src, "--hdr-digest", "--data-digest", ...ID]);
      assert.equal(w.code, 0, w.err);
      assert.equal(w.err, "write: Success\n");
      const r = await run(["read", d, "-n", "1", "-s", "16", "-c", "15", "-z", "8192", "-d", dst, ...ID]);
      assert.equal(r.code, 0, r.err);
      assert.deepEqual(new Uint8Array(readFileSync(dst)), data);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

test("cli device commands: fabrics options only for tcp:// devices, a bad host ID is a usage error", async () => {
  for (const argv of [["smart-log", "sim:", "--hostnqn", "nqn.x:y"], ["id-ctrl", "0000:99:00.0", "--hdr-digest"], ["id-ctrl", `tcp://127.0.0.1:1/${NQN}`, "--hostid", "xyz"]]) {
    const r = await run(argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err}`);
    assert.match(r.err, /usage: nvme\.ts/);
  }
  const bad = await run(["id-ctrl", "tcp://127.0.0.1:1", ...ID]);
  assert.equal(bad.code, 2, "a tcp:// device without a subsystem NQN is a usage error");
  assert.match(bad.err, /no subsystem NQN/);
});

test("bench-tcp --table: guest bench lines become kernel/tsnvme rows with ratios and a CRC32C table", async () => {
  const { benchTables } = await import("../../../scripts/bench-tcp.ts");
  const t = benchTables([
    "bench kernel digests=none 4k randread qd1: 2000 IOPS",
    "bench deno digests=none 4k randread qd1: 1000 IOPS",
    "bench bun digests=none 4k randread qd1: 3000 IOPS",
    "bench kernel digests=hd 128k seqread qd8: 80 MB/s",
    "bench deno digests=hd 128k seqread qd8: 20.5 MB/s",
    "noise line",
    "crc32c deno 4 KiB: 1234 MB/s",
    "crc32c bun 4 KiB: 987.6 MB/s",
  ].join("\n"));
  const rows = t.split("\n");
  assert.ok(rows.includes("| 4 KiB random read QD1 (IOPS) | off | 2000 | 1000 | 0.50x | 3000 | 1.50x |"), t);
  assert.ok(rows.includes("| 128 KiB sequential read QD8 (MB/s) | header+data | 80.0 | 20.5 | 0.26x | – | – |"), t);
  assert.ok(rows.includes("| 4 KiB buffers | 1234 | 988 |"), t);
  assert.equal(rows.filter((r) => r.startsWith("| 4 KiB random read QD32")).length, 2, "one row per digest setting seen");
});

test("bench-tcp --table --svg: the same lines as one chart per workload, a bar per initiator", async () => {
  const { benchCharts } = await import("../../../scripts/bench-tcp.ts");
  const { chartsSvg } = await import("../../../lib/cli/bench/svg.ts");
  const charts = benchCharts([
    "bench kernel digests=none 4k randread qd1: 2000 IOPS",
    "bench deno digests=none 4k randread qd1: 1000 IOPS",
    "bench deno digests=hd 4k randread qd1: 900 IOPS",
    "bench kernel digests=hd 128k seqread qd8: 80 MB/s",
  ].join("\n"));
  assert.deepEqual(charts.map((c) => c.yLabel), ["IOPS", "MB/s"]);
  assert.deepEqual(charts[0].categories, ["digests off", "digests header+data"]);
  assert.deepEqual(charts[0].series, [
    { name: "kernel initiator", values: [2000, null] },
    { name: "tsnvme Deno", values: [1000, 900] },
  ]);
  const svg = chartsSvg(charts);
  assert.ok(svg.includes("4 KiB random read QD1") && svg.includes("<title>tsnvme Deno digests header+data: 900</title>"), svg);
});
