/**
 * The CLI's raw commands against the software controller: admin-passthru,
 * io-passthru, get-log, show-regs, flush, reset, subsystem-reset, --verbose.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "../../harness.ts";
import { runCli } from "../../cli.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { getLogPage } from "../../../lib/admin/log.ts";
import { hexDump } from "../../../lib/cli/format/hexdump.ts";
import { nvmeCliStatusLine, statusText } from "../../../lib/cli/format/status.ts";

const run = runCli;

/** Bytes back from a hex dump nvme-cli style. */
function unDump(text: string): Uint8Array {
  const bytes: number[] = [];
  for (const line of text.split("\n")) {
    const m = /^[0-9a-f]{4}:((?: [0-9a-f]{2})+)/.exec(line);
    if (m) bytes.push(...m[1].trim().split(" ").map((h) => parseInt(h, 16)));
  }
  return new Uint8Array(bytes);
}

async function withSim<T>(f: (dev: NVMeDev) => Promise<T>): Promise<T> {
  const dev = await NVMeDev.open("sim", { transport: await SimTransport.create({}) });
  try {
    return await f(dev);
  } finally {
    await dev.close();
  }
}

test("hexDump: nvme-cli's layout, full and short last lines (with its stale character)", () => {
  const b = new Uint8Array(20).map((_, i) => 0x30 + i);
  assert.equal(
    hexDump(b),
    "       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f\n" +
      '0000: 30 31 32 33 34 35 36 37 38 39 3a 3b 3c 3d 3e 3f "0123456789:;<=>?"\n' +
      "0010: 40 41 42 43" + " ".repeat(1 + 36) + ' "@ABC4"\n',
  );
  assert.equal(hexDump(new Uint8Array([0, 0x20, 0x7f, 0x41])).split("\n")[1], "0000: 00 20 7f 41" + " ".repeat(37) + ' "...A"');
});

test("admin-passthru Identify: the dump and the raw bytes are the identify data; stderr has nvme-cli's success line", async () => {
  const r = await run(["admin-passthru", "sim:", "--opcode", "0x06", "--cdw10", "1", "--data-len", "4096", "--read"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.err, "Admin Command Identify is Success and result: 0x00000000\n");
  const got = unDump(r.out);
  const ref = await withSim((dev) => Promise.resolve(dev.controller.identifyData.slice()));
  assert.equal(got.length, 4096);
  // Each software controller has its own serial (bytes 4-23) and NQN built from it (768-1023).
  const mask = (d: Uint8Array) => d.map((v, i) => (i >= 4 && i < 24) || i >= 768 && i < 1024 ? 0 : v);
  assert.deepEqual(mask(got), mask(ref));
  assert.equal(new TextDecoder().decode(got.subarray(24, 55)), "tsnvme software NVMe controller");
  // -b: the bytes themselves; -i with a read: into the file, nothing on stdout.
  const raw = await run(["admin-passthru", "sim:", "-o", "6", "-4", "1", "-l", "4096", "-r", "-b"]);
  assert.deepEqual(mask(raw.bytes), mask(ref));
  const dir = mkdtempSync(`${tmpdir()}/tsnvme-`);
  const f = await run(["admin-passthru", "sim:", "-o", "6", "-4", "1", "-l", "4096", "-r", "-i", `${dir}/id.bin`]);
  assert.equal(f.out, "");
  assert.deepEqual(mask(new Uint8Array(readFileSync(`${dir}/id.bin`))), mask(ref));
  rmSync(dir, { recursive: true }); // kept when the test fails, to look at
});

test("admin-passthru: a failing command prints the NVMe status and exits 1; --dry-run shows the command and sends nothing", async () => {
  const r = await run(["admin-passthru", "sim:", "--opcode", "0xc1"]);
  assert.equal(r.code, 1);
  assert.equal(r.err, "NVMe status: Invalid Command Opcode: A reserved coded value or an unsupported value in the command opcode field(0x4001)\n");
  const dry = await run(["admin-passthru", "sim:", "-o", "0xc0", "-4", "0x12345678", "-l", "16", "-r", "--dry-run"]);
  assert.equal(dry.code, 0);
  assert.ok(dry.out.startsWith("opcode       : c0\nflags        : 00\n"), dry.out);
  assert.ok(dry.out.includes("\ncdw10        : 12345678\n"), dry.out);
  assert.ok(dry.out.includes("\ndata_len     : 00000010\n"), dry.out);
});

test("io-passthru: write from a file, read back as a dump; get-log equals the log API; flush", async () => {
  const dir = mkdtempSync(`${tmpdir()}/tsnvme-`);
  const data = new Uint8Array(1024).map((_, i) => (i * 13) & 0xff);
  writeFileSync(`${dir}/in.bin`, data);
  // A file-backed namespace keeps the data from one CLI run to the next.
  const target = `sim:ns=1M:512@${dir}/ns1.img`;
  const w = await run(["io-passthru", target, "-o", "1", "-n", "1", "-4", "8", "-6", "1", "-l", "1024", "-i", `${dir}/in.bin`]);
  assert.equal(w.code, 0, w.err);
  assert.equal(w.err, "IO Command Write is Success and result: 0x00000000\n");
  assert.equal(w.out, "");
  const r = await run(["io-passthru", target, "-o", "2", "-n", "1", "-4", "8", "-6", "1", "-l", "1024"]);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(unDump(r.out), data);
  assert.equal(r.out, hexDump(data));

  const fw = await run(["get-log", "sim:", "--log-id", "3", "--log-len", "512"]);
  assert.equal(fw.code, 0, fw.err);
  const api = await withSim((dev) => getLogPage(dev, 3, 512));
  assert.equal(fw.out, "Device:sim: log-id:3 namespace-id:0xffffffff\n" + hexDump(api));
  const bin = await run(["get-log", "sim:", "-i", "3", "-l", "512", "-b"]);
  assert.deepEqual(bin.bytes, api);

  assert.deepEqual(await run(["flush", "sim:"]).then((x) => [x.code, x.out]), [0, "NVMe Flush: success\n"]);
  rmSync(dir, { recursive: true }); // kept when the test fails, to look at
});

test("show-regs: normal, -H and json from the software controller's registers", async () => {
  const r = await run(["show-regs", "sim:"]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split("\n");
  assert.deepEqual(lines.map((l) => l.split(/\s*:/)[0].trim()), [
    "cap", "version", "cc", "csts", "nssr", "crto", "intms", "intmc", "aqa", "asq", "acq", "cmbloc", "cmbsz", "bpinfo",
    "bprsel", "bpmbl", "cmbmsc", "cmbsts", "pmrcap", "pmrctl", "pmrsts", "pmrebs", "pmrswtp", "pmrmscl", "pmrmscu",
  ]);
  assert.equal(lines[1], "version : 10400");
  assert.equal(lines[3], "csts    : 1");
  const h = await run(["show-regs", "sim:", "-H"]);
  assert.ok(h.out.includes("\tNVM Subsystem Reset Supported     (NSSRS): No\n"), h.out);
  assert.ok(h.out.includes("\tEnable                              (EN): Yes\n"), h.out);
  assert.match(h.out, /\tAdmin Completion Queue Size \(ACQS\): 32\n/);
  const j = JSON.parse((await run(["show-regs", "sim:", "-o", "json"])).out);
  assert.equal(j.vs, 0x10400);
  assert.equal(j.csts, 1);
  const b = await run(["show-regs", "sim:", "-o", "binary"]);
  assert.equal(b.bytes.length, 0xe1c);
  assert.equal(new DataView(b.bytes.buffer).getUint32(8, true), 0x10400);
});

test("reset brings the controller back; subsystem-reset is refused where CAP.NSSRS is 0", async () => {
  assert.deepEqual(await run(["reset", "sim:"]).then((x) => [x.code, x.out, x.err]), [0, "", ""]);
  const s = await run(["subsystem-reset", "sim:"]);
  assert.equal(s.code, 1);
  assert.equal(s.err, "Subsystem-reset: NVM Subsystem Reset not supported.\n");
  await withSim(async (dev) => {
    await dev.controller.reset();
    const b = new Uint8Array(512);
    await dev.ns(1).read(0, b); // IO works after the reset
    await assert.rejects(dev.controller.subsystemReset(), (e: unknown) => (e as { code?: string }).code === "EUNSUPPORTED");
    assert.equal(dev.controller.resets, 0, "a requested reset is not a recovery");
  });
});

test("--verbose prints each command the subcommand sends, as nvme-cli's logging does", async () => {
  const r = await run(["get-log", "sim:", "-i", "2", "-l", "512", "--verbose"]);
  assert.equal(r.code, 0, r.err);
  const head = r.out.split("\n").slice(0, 20);
  assert.equal(head[0], "opcode       : 02");
  assert.equal(head[3], "nsid         : ffffffff");
  assert.equal(head[6], "data_len     : 00000200");
  assert.equal(head[10], "cdw10        : 007f0002");
  assert.equal(head[17], "result       : 00000000");
  assert.equal(head[18], "err          : 0");
  assert.match(head[19], /^latency {6}: \d+ us$/);
  assert.match(r.out, /\nDevice:sim: log-id:2 namespace-id:0xffffffff\n/);
  const bad = await run(["admin-passthru", "sim:", "-o", "0xc1", "-v"]);
  assert.ok(bad.out.includes("\nerr          : 16385\n"), bad.out); // Invalid Command Opcode with DNR
});

test("raw commands: bad command lines exit 2 with usage and open no device", async () => {
  const D = "0000:99:00.0"; // does not exist: opening it would exit 1
  const cases: string[][] = [
    ["admin-passthru", D],
    ["admin-passthru", D, "--opcode", "0x100"],
    ["admin-passthru", D, "--opcode", "6", "--cdw10", "0x100000000"],
    ["admin-passthru", D, "--opcode", "0xc0", "--data-len", "64"],
    ["admin-passthru", D, "--opcode", "6", "--prefill", "256"],
    ["admin-passthru", D, "--opcode", "6", "--metadata-len", "8"],
    ["io-passthru", D, "-o", "1", "-l", "512", "-i", "/nonexistent/file"],
    ["io-passthru"],
    ["get-log", D],
    ["get-log", D, "--log-id", "2"],
    ["get-log", D, "--log-id", "2", "--log-len", "5"],
    ["get-log", D, "--log-id", "2", "--log-len", "512", "--lsp", "128"],
    ["get-log", D, "--log-id", "256", "--log-len", "512"],
    ["get-log", D, "--log-id", "2", "--log-len", "512", "--lpo", "2"],
    ["show-regs", D, "-o", "xml"],
    ["show-regs"],
    ["flush", D, "extra"],
    ["flush", D, "-n", "x"],
    ["reset", D, "--force"],
    ["subsystem-reset", D, D],
  ];
  for (const argv of cases) {
    const r = await run(argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err}`);
    assert.match(r.err, /usage: nvme.ts /, argv.join(" "));
    assert.equal(r.out, "", argv.join(" "));
  }
});

test("hexDump equals the real nvme-cli's admin-passthru dump of the same bytes (fixtures/passthru)", () => {
  const fx = (p: string) => new URL(`../../fixtures/${p}`, import.meta.url);
  const id = new Uint8Array(readFileSync(fx("identify/ctrl-random.bin")));
  for (const n of [20, 100, 4096]) {
    assert.equal(hexDump(id.subarray(0, n)), readFileSync(fx(`passthru/pt-${n}.txt`), "latin1"), `${n} bytes`);
  }
  assert.equal(readFileSync(fx("passthru/pt-4096.stderr.txt"), "utf8"), "Admin Command Identify is Success and result: 0x00000000\n");
});

test("NVMe status lines are nvme-cli 2.3's for every status code (fixtures/passthru/nvme-cli-status.json)", () => {
  const theirs: Record<string, string> = JSON.parse(readFileSync(new URL("../../fixtures/passthru/nvme-cli-status.json", import.meta.url), "utf8"));
  assert.equal(Object.keys(theirs).length, 2047);
  for (const [code, text] of Object.entries(theirs)) {
    assert.equal(statusText(Number(code)), text, `0x${Number(code).toString(16)}`);
    // DNR, More and CRD change the number nvme-cli prints, not the text.
    const sf = Number(code) | 0x4000 | 0x2000 | 0x800;
    assert.equal(nvmeCliStatusLine(sf), `NVMe status: ${text}(0x${sf.toString(16)})`);
  }
});

test("admin-passthru --prefill: the buffer holds the byte where the controller wrote nothing (as nvme-cli)", async () => {
  // Get Log Page, firmware slot log (03h), NUMD for 64 bytes, into a 128-byte buffer prefilled with 0xee.
  const r = await run(["admin-passthru", "sim:", "-o", "2", "-n", "0xffffffff", "-4", String(3 | (15 << 16)), "-l", "128", "-r", "-p", "0xee", "-b"]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.bytes.length, 128);
  assert.ok(r.bytes.subarray(64).every((b) => b === 0xee), "bytes past the log keep the prefill");
  assert.ok(!r.bytes.subarray(0, 64).every((b) => b === 0xee), "the log overwrote the first 64");
});
