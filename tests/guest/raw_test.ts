/**
 * Guest tier for the raw commands: admin-passthru, io-passthru, get-log and
 * show-regs print what nvme-cli 2.3 prints for the same QEMU controller (its
 * output captured with the kernel driver bound), then flush, reset and
 * subsystem-reset on vfio-pci. Runs after cli_test.ts and nvme_test.ts and
 * leaves the controller on vfio-pci.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import process from "node:process";
import { test } from "../harness.ts";
import { runCli } from "../cli.ts";
import { NVMeDev } from "../../lib/dev.ts";
import { bind, inGuest, PCI, runtime, withNsDevs } from "./util.ts";

const skip = { ignore: !inGuest };

/** One nvme-cli run: stdout (text or bytes), stderr, exit status. */
interface Run {
  code: number;
  out: string;
  err: string;
  bytes: Uint8Array;
}

function nvmeCli(args: string[]): Run {
  const r = spawnSync("nvme", args, { maxBuffer: 1 << 24 });
  return { code: r.status ?? -1, out: r.stdout.toString("latin1"), err: r.stderr.toString(), bytes: new Uint8Array(r.stdout) };
}

/** Our CLI in this process, seen as nvmeCli sees nvme-cli: the whole stream as latin1 text and as bytes. */
async function ours(args: string[]): Promise<Run> {
  const r = await runCli(args);
  const out = r.writes.map((w) => typeof w === "string" ? w : Array.from(w, (b) => String.fromCharCode(b)).join("")).join("");
  return { code: r.code, out, err: r.err, bytes: Uint8Array.from({ length: out.length }, (_, i) => out.charCodeAt(i) & 0xff) };
}

/** What the kernel-side run saw, by name. */
const theirs: Record<string, Run> = {};

// Input for the write-direction commands (the guest's TMPDIR is a tmpfs both sides see).
const DIR = process.env.TMPDIR ?? "/tmp";
if (inGuest) {
  const ts = new Uint8Array(8);
  new DataView(ts.buffer).setBigUint64(0, BigInt(Date.UTC(2026, 11, 1)), true);
  writeFileSync(`${DIR}/raw-ts.bin`, ts);
  writeFileSync(`${DIR}/raw-blocks.bin`, new Uint8Array(1024).map((_, i) => (i * 31 + 7) & 0xff));
}

// The same command lines on both sides; only the device argument differs.
const PASSTHRU: Record<string, [string[], string]> = {
  // Write direction: Set Features Timestamp (8 bytes) and a 2-block Write, data from --input-file.
  "set-timestamp": [["admin-passthru", "--opcode=0x09", "--cdw10=0x0e", "--data-len=8", "-w", `--input-file=${DIR}/raw-ts.bin`], "/dev/nvme0"],
  "io-write-ns1": [["io-passthru", "--opcode=0x01", "--namespace-id=1", "--cdw10=300", "--cdw12=1", "--data-len=1024", `--input-file=${DIR}/raw-blocks.bin`], "/dev/nvme0n1"],
  "io-read-back": [["io-passthru", "--opcode=0x02", "--namespace-id=1", "--cdw10=300", "--cdw12=1", "--data-len=1024", "-r"], "/dev/nvme0n1"],
  "identify-ctrl": [["admin-passthru", "--opcode=0x06", "--cdw10=1", "--data-len=4096", "-r"], "/dev/nvme0"],
  "identify-ns": [["admin-passthru", "--opcode=0x06", "--namespace-id=1", "--cdw10=0", "--data-len=4096", "-r"], "/dev/nvme0"],
  "identify-ns-list": [["admin-passthru", "-o", "6", "-4", "2", "-l", "4096", "-r", "-b"], "/dev/nvme0"],
  "get-features-nq": [["admin-passthru", "--opcode=0x0a", "--cdw10=7"], "/dev/nvme0"],
  "io-read-ns1": [["io-passthru", "--opcode=0x02", "--namespace-id=1", "--cdw10=0", "--cdw12=1", "--data-len=1024", "-r"], "/dev/nvme0n1"],
};
/** Commands QEMU fails: the same NVMe status line and exit status on both sides. */
const FAILING: Record<string, [string[], string]> = {
  "admin-vendor-opcode": [["admin-passthru", "--opcode=0xc1"], "/dev/nvme0"],
  "identify-bad-cns": [["admin-passthru", "--opcode=0x06", "--cdw10=0x7f", "--data-len=4096", "-r"], "/dev/nvme0"],
  "io-read-past-end": [["io-passthru", "--opcode=0x02", "--namespace-id=1", "--cdw10=0x7fffffff", "--data-len=512", "-r"], "/dev/nvme0n1"],
};
const LOGS: [number, number][] = [[1, 256], [3, 512], [5, 4096], [3, 8192]];
const REGS: Record<string, string[]> = { "regs": [], "regs-H": ["-H"], "regs-json": ["-o", "json"], "regs-bin": ["-o", "binary"] };
/** -H text of the same device on both sides: [nvme-cli args, our args]. */
const HUMAN: Record<string, [string[], string[]]> = {
  "id-ctrl-H": [["id-ctrl", "/dev/nvme0", "-H"], ["id-ctrl", "-H"]],
  "id-ns1-H": [["id-ns", "/dev/nvme0n1", "-H"], ["id-ns", "-n", "1", "-H"]],
  "id-ns2-H": [["id-ns", "/dev/nvme0n2", "-H"], ["id-ns", "-n", "2", "-H"]],
  "smart-H": [["smart-log", "/dev/nvme0", "-H"], ["smart-log", "-H"]],
  // Namespace-specific features need a namespace on QEMU.
  ...Object.fromEntries([1, 2, 4, 5, 6, 7, 8, 0xb].map((fid) => {
    const ns = fid === 5 ? ["-n", "1"] : [];
    return [`feature-${fid}-H`, [["get-feature", "/dev/nvme0", "-f", String(fid), "-H", ...ns], ["get-feature", "-f", String(fid), "-H", ...ns]]];
  })),
};

test("kernel driver bound: nvme-cli's admin-passthru, io-passthru, get-log and show-regs captured", () => {
  bind("nvme");
  try {
    for (const [name, [args, dev]] of Object.entries(PASSTHRU)) theirs[name] = nvmeCli(withNsDevs([args[0], dev, ...args.slice(1)]));
    for (const [name, [args, dev]] of Object.entries(FAILING)) theirs[name] = nvmeCli(withNsDevs([args[0], dev, ...args.slice(1)]));
    for (const [lid, len] of LOGS) theirs[`log-${lid}-${len}`] = nvmeCli(["get-log", "/dev/nvme0", `--log-id=${lid}`, `--log-len=${len}`]);
    for (const [name, args] of Object.entries(REGS)) theirs[name] = nvmeCli(["show-regs", "/dev/nvme0", ...args]);
    for (const [name, [args]] of Object.entries(HUMAN)) theirs[name] = nvmeCli(withNsDevs(args));
  } finally {
    bind("vfio");
  }
  // Kept for the unit tier's fixture (tests/fixtures/regs): what nvme-cli printed for these registers.
  if (process.env.TSNVME_OUT && runtime === "deno") {
    writeFileSync(`${process.env.TSNVME_OUT}/show-regs-H.txt`, theirs["regs-H"].out);
    writeFileSync(`${process.env.TSNVME_OUT}/show-regs.json`, theirs["regs-json"].out);
  }
  // nvme-cli 2.3's show-regs exits with its output-format flag (json, binary) as the status, though it printed.
  const flagged = new Set(["regs-json", "regs-bin"]);
  for (const [name, r] of Object.entries(theirs)) {
    if (flagged.has(name)) assert.ok(r.bytes.length > 0, `nvme-cli ${name} printed nothing: ${r.err}`);
    else if (name in FAILING) assert.match(r.err, /^NVMe status: /, `nvme-cli ${name}`);
    else assert.equal(r.code, 0, `nvme-cli ${name}: ${r.err}`);
  }
}, skip);

test("admin-passthru and io-passthru print nvme-cli's hex dump, raw bytes and result line for the same commands", async () => {
  for (const [name, [args]] of Object.entries(PASSTHRU)) {
    const r = await ours([args[0], PCI, ...args.slice(1)]);
    assert.equal(r.code, 0, `${name}: ${r.err}`);
    assert.equal(r.err, theirs[name].err, `${name}: stderr`);
    assert.equal(r.out, theirs[name].out, `${name}: stdout`);
  }
  // What both wrote is what both read back.
  assert.ok(theirs["io-read-back"].out.startsWith(
    "       0  1  2  3  4  5  6  7  8  9  a  b  c  d  e  f\n0000: 07 26 45 64",
  ), theirs["io-read-back"].out.slice(0, 120));
}, skip);

test("failing passthru commands print nvme-cli's NVMe status line and exit 1 as nvme-cli does", async () => {
  for (const [name, [args]] of Object.entries(FAILING)) {
    const r = await ours([args[0], PCI, ...args.slice(1)]);
    assert.deepEqual([r.code, r.err, r.out], [theirs[name].code, theirs[name].err, theirs[name].out], name);
  }
}, skip);

test("get-log prints nvme-cli's dump of the same log pages (also past 4096 bytes)", async () => {
  for (const [lid, len] of LOGS) {
    const r = await ours(["get-log", PCI, `--log-id=${lid}`, `--log-len=${len}`]);
    assert.equal(r.code, 0, r.err);
    const [head, ...rest] = r.out.split("\n");
    const [theirHead, ...theirRest] = theirs[`log-${lid}-${len}`].out.split("\n");
    // nvme-cli names the kernel's device, tsnvme the PCI address.
    assert.equal(head.replace(PCI, "nvme0"), theirHead, `log ${lid} header`);
    assert.equal(rest.join("\n"), theirRest.join("\n"), `log ${lid} len ${len}`);
  }
}, skip);

/** Drop the admin queue base addresses: each driver puts its queues elsewhere. */
const noQueues = (text: string) => text.replace(/^(asq|acq) +: [0-9a-f]+\n(\t.*\n\n)?/gm, "");

test("show-regs equals nvme-cli's output, normal, -H, json and binary, but for the admin queue addresses", async () => {
  const r = await ours(["show-regs", PCI]);
  assert.equal(r.code, 0, r.err);
  assert.equal(noQueues(r.out), noQueues(theirs["regs"].out));
  assert.match(r.out, /^asq +: [0-9a-f]+$/m);
  const h = await ours(["show-regs", PCI, "-H"]);
  assert.equal(noQueues(h.out), noQueues(theirs["regs-H"].out));
  const j = JSON.parse((await ours(["show-regs", PCI, "-o", "json"])).out);
  const tj = JSON.parse(theirs["regs-json"].out);
  assert.deepEqual(Object.keys(j), Object.keys(tj));
  for (const k of Object.keys(tj)) if (k !== "asq" && k !== "acq") assert.equal(j[k], tj[k], `json ${k}`);
  const b = (await ours(["show-regs", PCI, "-o", "binary"])).bytes;
  const tb = theirs["regs-bin"].bytes;
  assert.equal(b.length, tb.length);
  for (let i = 0; i < b.length; i++) {
    if (i >= 0x28 && i < 0x38) continue; // ASQ, ACQ
    assert.equal(b[i], tb[i], `register byte 0x${i.toString(16)}`);
  }
}, skip);

test("-H of id-ctrl, id-ns, get-feature and smart-log equals nvme-cli's text for the same device", async () => {
  for (const [name, [, args]] of Object.entries(HUMAN)) {
    const r = await ours([args[0], PCI, ...args.slice(1)]);
    assert.equal(r.code, 0, `${name}: ${r.err}`);
    // "°C": nvme-cli's UTF-8 bytes against our string.
    const text = new TextDecoder().decode(theirs[name].bytes);
    if (name === "smart-H") {
      // Counters and temperature move between the two reads: the warning bits and the layout do not.
      const head = (t: string) => t.split("\n").slice(1, 8).join("\n");
      assert.equal(head(r.out), head(text), name);
      assert.deepEqual(r.out.split("\n").map((l) => l.split(":")[0]), text.split("\n").map((l) => l.split(":")[0]), name);
    } else {
      assert.equal(r.out, text, name);
    }
  }
}, skip);

test("flush and reset on vfio-pci: IO works after the reset; subsystem-reset only where CAP.NSSRS allows", async () => {
  assert.deepEqual(await ours(["flush", PCI, "-n", "1"]).then((r) => [r.code, r.out]), [0, "NVMe Flush: success\n"]);
  const data = new Uint8Array(512).map((_, i) => i & 0xff);
  {
    await using dev = await NVMeDev.open(PCI);
    await dev.ns(1).write(40, data);
    await dev.controller.reset();
    const back = new Uint8Array(512);
    await dev.ns(1).read(40, back);
    assert.deepEqual(back, data, "data and IO survive a requested reset");
  }
  const r = await ours(["reset", PCI]);
  assert.deepEqual([r.code, r.out, r.err], [0, "", ""]);
  const regs = await ours(["show-regs", PCI, "-H"]);
  const nssrs = /\(NSSRS\): Yes/.test(regs.out);
  const s = await ours(["subsystem-reset", PCI]);
  if (nssrs) {
    assert.equal(s.code, 0, s.err);
    await using dev = await NVMeDev.open(PCI);
    const back = new Uint8Array(512);
    await dev.ns(1).read(40, back);
    assert.deepEqual(back, data);
  } else {
    assert.deepEqual([s.code, s.err], [1, "Subsystem-reset: NVM Subsystem Reset not supported.\n"]);
  }
  console.log(`[${runtime}] CAP.NSSRS ${nssrs ? "1: subsystem reset done" : "0: subsystem reset refused"}`);
}, skip);
