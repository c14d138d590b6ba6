/**
 * Guest features tier, `--feature pi`: the controller at 0000:00:12.0 (serial TSNVMEPI01) has
 * ns1 512+8 separate metadata type 1 (16-bit guard), ns2 4096+16 separate type 1 (64-bit guard),
 * ns3 512+8 extended LBA type 3 PI first. Data written by the kernel (which generates PI through
 * the block layer, or asks the controller to with PRACT) is read and verified by tsnvme, and data
 * tsnvme writes with its own PI is read by the kernel (which checks it); a corrupted guard fails
 * typed on both sides. nvme-cli cross-checks id-ns and a read with --prinfo.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import process from "node:process";
import { test } from "../../harness.ts";
import { runCli } from "../../cli.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { NvmePiError, PiCheckError } from "../../../lib/nvme/errors.ts";
import { Prinfo } from "../../../lib/nvme/pi.ts";
import { inGuest, nsBlockDev, nvmeCliJson, randomBytes, runtime, writeBlockDev } from "../util.ts";

const PI_PCI = "0000:00:12.0";
const on = inGuest && (process.env.TSNVME_FEATURES ?? "").split(",").includes("pi");
// TCG is slow and each test rebinds the controller twice.
const skip = { ignore: !on, timeout: 900_000 };
const NS = [
  { nsid: 1, bs: 512, ms: 8, extended: false, type: 1, guard: 16, first: false },
  { nsid: 2, bs: 4096, ms: 16, extended: false, type: 1, guard: 64, first: false },
  { nsid: 3, bs: 512, ms: 8, extended: true, type: 3, guard: 16, first: true },
];
const BLOCKS = 16, KLBA = 64, TLBA = 128, BAD = 200;
const seed = runtime === "bun" ? 0xb00 : 0xd00;
type Json = Record<string, unknown>;
const cli: Record<number, { idns: Json; nvm: Json | null; meta: Uint8Array }> = {};

function bindPi(driver: "vfio" | "nvme"): void {
  execFileSync("scripts/guest-bind.sh", [driver, PI_PCI], { stdio: ["ignore", "ignore", "inherit"] });
}

/** O_DIRECT read of whole blocks through the kernel (which checks PI); null when the read fails. */
function readDirect(path: string, bs: number, lba: number, blocks: number): Uint8Array | null {
  const r = spawnSync("dd", [`if=${path}`, `bs=${bs}`, `skip=${lba}`, `count=${blocks}`, "iflag=direct", "status=none"], { maxBuffer: 1 << 26 });
  return r.status === 0 ? new Uint8Array(r.stdout) : null;
}

test("pi: the kernel writes with PI; nvme-cli reads with --prinfo; tsnvme reads and verifies the same PI", async () => {
  bindPi("nvme");
  for (const n of NS) {
    const dev = nsBlockDev(n.nsid, PI_PCI);
    writeBlockDev(dev, n.bs, KLBA, randomBytes(BLOCKS * n.bs, seed + n.nsid));
    cli[n.nsid] = { idns: nvmeCliJson(["id-ns", dev]), nvm: null, meta: new Uint8Array(0) };
    cli[n.nsid].nvm = nvmeCliJson(["nvm-id-ns", dev]);
    if (!n.extended) {
      // nvme-cli reads one block with every check on: the controller verifies the kernel's PI.
      const m = `/tmp/pi-meta-${n.nsid}`;
      execFileSync("nvme", ["read", dev, "-s", String(KLBA), "-c", "0", "-z", String(n.bs), "-y", String(n.ms), "-d", "/dev/null", "-M", m, "-p", "7", "-r", String(KLBA)], { stdio: ["ignore", "ignore", "inherit"] });
      cli[n.nsid].meta = new Uint8Array(readFileSync(m));
    }
  }
  bindPi("vfio");
  const dev = await NVMeDev.open(PI_PCI);
  try {
    for (const n of NS) {
      const ns = dev.ns(n.nsid), id = dev.idNs(n.nsid), j = cli[n.nsid].idns;
      assert.equal(id.flbas, j.flbas, `ns${n.nsid} flbas`);
      assert.equal(id.dps, j.dps, `ns${n.nsid} dps`);
      assert.equal(id.dpc, j.dpc, `ns${n.nsid} dpc`);
      assert.deepEqual(id.lbafs.map((l) => l.ms), (j.lbafs as Json[]).map((l) => l.ms), `ns${n.nsid} lbaf ms`);
      const f = ns.pi!;
      assert.deepEqual({ bs: f.blockSize, ms: f.metadataSize, extended: f.extended, type: f.type, guard: f.guard, first: f.first },
        { bs: n.bs, ms: n.ms, extended: n.extended, type: n.type, guard: n.guard, first: n.first }, `ns${n.nsid} format`);
      const nvm = cli[n.nsid].nvm as { elbafs: { pif: number; sts: number }[] };
      assert.equal(nvm.elbafs[ns.info.lbaFormat].pif, n.guard === 64 ? 2 : 0, `ns${n.nsid} nvme-cli pif`);
      const want = randomBytes(BLOCKS * n.bs, seed + n.nsid);
      const unit = n.extended ? n.bs + n.ms : n.bs;
      const buf = dev.allocBuffer(BLOCKS * unit), meta = n.extended ? undefined : dev.allocBuffer(BLOCKS * n.ms);
      await ns.read(KLBA, buf, { pract: false, metadata: meta });
      ns.verifyPi(KLBA, buf, meta);
      for (let i = 0; i < BLOCKS; i++) assert.deepEqual(buf.subarray(i * unit, i * unit + n.bs), want.subarray(i * n.bs, (i + 1) * n.bs), `ns${n.nsid} block ${i}`);
      if (meta) assert.deepEqual(meta.subarray(0, n.ms), cli[n.nsid].meta, `ns${n.nsid} metadata as nvme-cli read it`);
      await ns.verify(KLBA, BLOCKS);
    }
  } finally {
    await dev.close();
  }
  // The CLI with nvme-cli's own arguments: nvm-id-ns's formats, and a read with --prinfo giving the same metadata.
  for (const n of NS) {
    const j = JSON.parse((await capture(["nvm-id-ns", PI_PCI, "-n", String(n.nsid), "-o", "json"])).out) as { elbafs: { pif: number; sts: number }[] };
    const theirs = (cli[n.nsid].nvm as { elbafs: { pif: number; sts: number }[] }).elbafs;
    assert.deepEqual(j.elbafs.map((e) => [e.pif, e.sts]), theirs.map((e) => [e.pif, e.sts]), `ns${n.nsid} nvm-id-ns`);
    if (n.extended) continue;
    const m = `/tmp/pi-meta-ours-${n.nsid}`;
    const r = await capture(["read", PI_PCI, "-n", String(n.nsid), "-s", String(KLBA), "-c", "0", "-z", String(n.bs), "-y", String(n.ms), "-d", "/dev/null", "-M", m, "-p", "7", "-r", String(KLBA)]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(new Uint8Array(readFileSync(m)), cli[n.nsid].meta, `ns${n.nsid}: read --prinfo 7 metadata equals nvme-cli's`);
  }
}, skip);

/** The CLI's run with binary writes shown as text, as a terminal would. */
const capture = async (argv: string[]) => {
  const r = await runCli(argv);
  return { code: r.code, out: r.text, err: r.err };
};

test("pi: tsnvme writes its own PI and PRACT PI; the kernel reads it back checked; a bad guard fails typed on both sides", async () => {
  bindPi("vfio");
  const dev = await NVMeDev.open(PI_PCI);
  try {
    for (const n of NS) {
      const ns = dev.ns(n.nsid);
      const data = randomBytes(BLOCKS * n.bs, seed + 10 + n.nsid);
      if (n.extended) {
        await ns.write(TLBA, data); // default PRACT: the controller inserts PI
        const got = new Uint8Array(BLOCKS * (n.bs + n.ms));
        await ns.read(TLBA, got, { pract: false });
        ns.verifyPi(TLBA, got);
      } else {
        const buf = dev.allocBuffer(data.length), meta = dev.allocBuffer(BLOCKS * n.ms);
        buf.set(data);
        ns.generatePi(TLBA, buf, meta);
        await ns.write(TLBA, buf, { pract: false, metadata: meta, prchk: Prinfo.PRCHK_ALL });
        // One block with a broken guard: written unchecked, then refused by the controller's check and the host's.
        buf[3] ^= 0xff;
        await ns.write(BAD, buf.subarray(0, n.bs), { pract: false, metadata: meta.subarray(0, n.ms), prchk: 0, refTag: TLBA });
        const one = dev.allocBuffer(n.bs), m1 = dev.allocBuffer(n.ms);
        await assert.rejects(ns.read(BAD, one, { pract: false, metadata: m1, prchk: Prinfo.PRCHK_GUARD }), (e) => e instanceof NvmePiError && e.check === "guard");
        await ns.read(BAD, one, { pract: false, metadata: m1, prchk: 0 });
        assert.throws(() => ns.verifyPi(BAD, one, m1, { prchk: Prinfo.PRCHK_GUARD }), (e) => e instanceof PiCheckError && e.check === "guard");
      }
    }
  } finally {
    await dev.close();
  }
  bindPi("nvme");
  for (const n of NS) {
    const path = nsBlockDev(n.nsid, PI_PCI);
    assert.deepEqual(readDirect(path, n.bs, TLBA, BLOCKS), randomBytes(BLOCKS * n.bs, seed + 10 + n.nsid), `ns${n.nsid}: the kernel reads tsnvme's blocks`);
    if (n.extended) continue;
    assert.equal(readDirect(path, n.bs, BAD, 1), null, `ns${n.nsid}: the kernel refuses the block with the bad guard`);
    const r = spawnSync("nvme", ["read", path, "-s", String(BAD), "-c", "0", "-z", String(n.bs), "-y", String(n.ms), "-d", "/dev/null", "-M", "/dev/null", "-p", "4"], { encoding: "utf8" });
    assert.notEqual(r.status, 0, `ns${n.nsid}: nvme read --prinfo=4 of the bad block`);
    assert.match(`${r.stdout}${r.stderr}`, /guard/i);
  }
}, skip);
