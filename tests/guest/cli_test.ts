/**
 * Guest tier for the admin and IO command set and the nvme-cli-compatible CLI,
 * against QEMU's emulated NVMe controller. Self-contained: it captures
 * nvme-cli's output with the kernel driver bound, then rebinds to vfio-pci and
 * leaves the controller there. Runs before nvme_test.ts (alphabetical order).
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import process from "node:process";
import { test } from "../harness.ts";
import { NVMeDev } from "../../lib/dev.ts";
import { effectsLogs, errorLog, fwLog, sanitizeLog, selfTestLog, smartLog } from "../../lib/admin/log.ts";
import { getFeature, setFeature, setTemperatureThreshold, setTimestamp } from "../../lib/admin/features.ts";
import {
  abortCommand,
  activeNsList,
  asyncEvents,
  attachNamespace,
  createNamespace,
  deviceSelfTest,
  formatNvm,
  nsDescs,
} from "../../lib/admin/manage.ts";
import { NotSupportedError } from "../../lib/admin/support.ts";
import { sanitize } from "../../lib/sanitize/mod.ts";
import { commitFirmware, downloadFirmware } from "../../lib/firmware/mod.ts";
import { deviceSelfTestCmd, fwDownloadCmd, sanitizeCmd } from "../../lib/nvme/command.ts";
import { InvalidArgumentError, NvmeCompareError, NvmeStatusError } from "../../lib/nvme/errors.ts";
import { Fid } from "../../lib/nvme/spec.ts";
import { bind, firstDiff, inGuest, nsBlockDev, nvmeCliJson, PCI, randomBytes, runtime } from "./util.ts";
import { cli } from "./features/cli.ts";

const skip = { ignore: !inGuest };
type Json = Record<string, unknown>;
const nvmeCli: { json: Record<string, unknown>; features: Record<number, string> } = { json: {}, features: {} };
const FEATURES = [Fid.ARBITRATION, Fid.POWER_MGMT, Fid.TEMP_THRESHOLD, Fid.ERROR_RECOVERY, Fid.VOLATILE_WC, Fid.NUM_QUEUES, Fid.IRQ_COALESCING];
/** Namespace-specific features are read for namespace 1 on both sides (QEMU refuses NSID 0 and FFFFFFFFh for them). */
const featureNs = (fid: number): string[] => fid === Fid.ERROR_RECOVERY ? ["-n", "1"] : [];
let seed = (Date.now() ^ (runtime === "bun" ? 0x1234567 : 0x7654321)) >>> 0;
console.log(`[${runtime}] cli data seed ${seed}`);


async function cliJson(args: string[]): Promise<unknown> {
  const r = await cli([...args, "--output-format", "json"]);
  assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
  return JSON.parse(r.out);
}

const unsupported = (e: unknown) => {
  assert.ok(e instanceof NvmeStatusError, `expected NvmeStatusError, got ${e}`);
  assert.equal(e.unsupported, true, e.message);
  assert.equal(e.status.code, 0x001);
  return true;
};

test("kernel driver bound: nvme-cli logs, namespace list, descriptors and features captured", () => {
  bind("nvme");
  try {
    capture();
  } finally {
    bind("vfio");
  }
}, skip);

function capture(): void {
  const j = nvmeCli.json;
  j["smart-log"] = nvmeCliJson(["smart-log", "/dev/nvme0"]);
  j["error-log"] = nvmeCliJson(["error-log", "/dev/nvme0"]);
  j["fw-log"] = nvmeCliJson(["fw-log", "/dev/nvme0"]);
  // Without --csi, nvme-cli 2.3 reads CAP through a mapping of BAR0 that fails in the guest; ask per command set.
  j["effects-log"] = [0, 2].map((csi) => (nvmeCliJson(["effects-log", "/dev/nvme0", "--csi", String(csi)]) as unknown as Json[])[0]);
  j["list-ns"] = nvmeCliJson(["list-ns", "/dev/nvme0"]);
  j["id-ns"] = nvmeCliJson(["id-ns", nsBlockDev(1)]);
  j["ns-descs"] = nvmeCliJson(["ns-descs", nsBlockDev(1)]);
  for (const fid of FEATURES) {
    nvmeCli.features[fid] = execFileSync("nvme", ["get-feature", "/dev/nvme0", "-f", String(fid), ...featureNs(fid)], { encoding: "utf8" })
      .split("\n")[0];
  }
}

test("CLI JSON equals nvme-cli's: error-log, fw-log, effects-log, id-ns, list-ns, ns-descs; get-feature values", async () => {
  const j = nvmeCli.json;
  assert.deepEqual(await cliJson(["error-log", PCI]), j["error-log"]);
  const fw = await cliJson(["fw-log", PCI]) as Json;
  assert.deepEqual(Object.keys(fw), [PCI]);
  assert.deepEqual(fw[PCI], Object.values(j["fw-log"] as Json)[0], "fw-log (top-level key is the device name)");
  // QEMU's CAP.CSS has the NVM and "IO command sets" bits: NVM and Zoned pages, as nvme-cli reads them.
  const eff = await cliJson(["effects-log", PCI]) as Json[];
  const theirs = j["effects-log"] as Json[];
  assert.equal(eff.length, 2);
  assert.deepEqual(eff[0], theirs[0]);
  assert.deepEqual(await cliJson(["effects-log", PCI, "--csi", "2"]), [eff[1]]);
  // Like the kernel, the driver enables every IO command set (CC.CSS 110b): the zoned page matches too.
  assert.deepEqual(eff[1], theirs[1]);
  assert.deepEqual(await cliJson(["id-ns", PCI, "-n", "1"]), j["id-ns"]);
  assert.deepEqual(await cliJson(["list-ns", PCI]), j["list-ns"]);
  assert.deepEqual(await cliJson(["ns-descs", PCI, "-n", "1"]), j["ns-descs"]);
  for (const fid of FEATURES) {
    const r = await cli(["get-feature", PCI, "-f", String(fid), ...featureNs(fid)]);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out.split("\n")[0], nvmeCli.features[fid], `get-feature ${fid}`);
    const js = await cliJson(["get-feature", PCI, "-f", String(fid), ...featureNs(fid)]) as Json;
    assert.equal(`0x${(js.value as number).toString(16).padStart(8, "0")}`.slice(-8), nvmeCli.features[fid].slice(-8));
  }
}, skip);

test("CLI smart-log JSON matches nvme-cli's: same keys in order, equal values, counters only grow", async () => {
  const ours = await cliJson(["smart-log", PCI]) as Json;
  const theirs = nvmeCli.json["smart-log"] as Json;
  assert.deepEqual(Object.keys(ours), Object.keys(theirs));
  const growing = new Set([
    "data_units_read", "data_units_written", "host_read_commands", "host_write_commands", "controller_busy_time",
    "power_cycles", "power_on_hours", "unsafe_shutdowns",
  ]);
  for (const [k, v] of Object.entries(theirs)) {
    if (growing.has(k)) {
      assert.equal(typeof ours[k], "string", `${k} is a 128-bit string as in nvme-cli`);
      assert.ok(BigInt(ours[k] as string) >= BigInt(v as string), `${k}: ${ours[k]} >= ${v}`);
    } else if (k === "temperature" || k.startsWith("temperature_sensor")) {
      assert.ok(Math.abs((ours[k] as number) - (v as number)) <= 5, `${k}`);
    } else {
      assert.deepEqual(ours[k], v, k);
    }
  }
}, skip);

test("library: logs, features (set and read back), abort, active list, descriptors", async () => {
  await using dev = await NVMeDev.open(PCI);
  const s = await smartLog(dev);
  assert.ok(s.temperature > 200 && s.temperature < 400);
  assert.equal((await errorLog(dev)).length, Math.min(64, dev.idCtrl.elpe + 1));
  assert.equal((await fwLog(dev)).activeSlot, 1);
  assert.ok((await effectsLogs(dev))[0].acs[0x06] & 1, "Identify supported");
  assert.deepEqual(await activeNsList(dev), [1, 2]);
  assert.ok((await nsDescs(dev, 1)).length >= 1);
  // Log pages QEMU does not implement: a clean status error, not a crash.
  await assert.rejects(selfTestLog(dev), NvmeStatusError);
  await assert.rejects(sanitizeLog(dev), NvmeStatusError);
  // Set and read back, then restore.
  const vwc = await getFeature(dev, Fid.VOLATILE_WC);
  await setFeature(dev, Fid.VOLATILE_WC, vwc.value ^ 1);
  assert.equal((await getFeature(dev, Fid.VOLATILE_WC)).fields.wce, !vwc.fields.wce);
  await setFeature(dev, Fid.VOLATILE_WC, vwc.value);
  const tt = await getFeature(dev, Fid.TEMP_THRESHOLD);
  await setTemperatureThreshold(dev, 350);
  assert.equal((await getFeature(dev, Fid.TEMP_THRESHOLD)).fields.tmpth, 350);
  await setFeature(dev, Fid.TEMP_THRESHOLD, tt.value);
  const now = Date.now();
  await setTimestamp(dev, now);
  const ts = (await getFeature(dev, Fid.TIMESTAMP)).fields.timestamp as number;
  assert.ok(ts >= now && ts < now + 60_000, `timestamp ${ts} vs ${now}`);
  assert.equal((await getFeature(dev, Fid.NUM_QUEUES)).fields.nsqa, (await getFeature(dev, Fid.NUM_QUEUES)).fields.ncqa);
  assert.equal(await abortCommand(dev, 0, 0xffff), false, "QEMU never aborts");
}, skip);

test("async events: a temperature threshold below the current temperature raises a SMART event", async () => {
  await using dev = await NVMeDev.open(PCI);
  const tt = await getFeature(dev, Fid.TEMP_THRESHOLD);
  const aec = await getFeature(dev, Fid.ASYNC_EVENT);
  await setFeature(dev, Fid.ASYNC_EVENT, 0x2); // temperature warnings only
  try {
    const events = asyncEvents(dev, { signal: AbortSignal.timeout(20_000) });
    const first = events.next();
    await setTemperatureThreshold(dev, 200);
    const r = await first;
    assert.equal(r.done, false, "an event arrived");
    assert.deepEqual([r.value!.type, r.value!.logPage], [1, 2]);
    await events.return(undefined);
  } finally {
    await setFeature(dev, Fid.TEMP_THRESHOLD, tt.value);
    await smartLog(dev); // reading the log clears the event
    await setFeature(dev, Fid.ASYNC_EVENT, aec.value);
  }
}, skip);

test("write zeroes, deallocate, compare, verify and copy, checked by reading back (library and CLI)", async () => {
  {
    await using dev = await NVMeDev.open(PCI);
    for (const nsid of [1, 2]) {
      const ns = dev.ns(nsid);
      const bs = ns.blockSize;
      const per4k = 4096 / bs;
      const n = 16 * per4k; // 64 KiB
      const lba = (seed % Math.floor(ns.blockCount / n - 4)) * n;
      const data = randomBytes(n * bs, seed++);
      const back = new Uint8Array(n * bs);
      const expect = data.slice();
      await ns.write(lba, data);
      // Write zeroes over 4 KiB .. 12 KiB.
      await ns.writeZeroes(lba + per4k, 2 * per4k);
      expect.fill(0, 4096, 12288);
      // Deallocate 16 KiB .. 24 KiB and 40 KiB .. 44 KiB (discard=unmap: reads back zero).
      await ns.deallocate([{ lba: lba + 4 * per4k, blocks: 2 * per4k }, { lba: lba + 10 * per4k, blocks: per4k }]);
      expect.fill(0, 16384, 24576);
      expect.fill(0, 40960, 45056);
      await ns.read(lba, back);
      assert.equal(firstDiff(back, expect), -1, `ns ${nsid}: write zeroes + deallocate`);
      // Compare: equal, then one byte off.
      await ns.compare(lba, expect);
      const off = expect.slice();
      off[5000] ^= 0x40;
      await assert.rejects(ns.compare(lba, off), (e: unknown) => e instanceof NvmeCompareError && e.code === "EMISCOMPARE");
      await ns.verify(lba, n);
      await assert.rejects(ns.verify(ns.blockCount - 1, 2), InvalidArgumentError);
      // Copy two source ranges to the end of the region: destination = their concatenation.
      const dst = lba + 12 * per4k;
      await ns.copy([{ lba, blocks: per4k }, { lba: lba + 2 * per4k, blocks: per4k }], dst);
      const got = new Uint8Array(2 * 4096);
      await ns.read(dst, got);
      assert.equal(firstDiff(got.subarray(0, 4096), expect.subarray(0, 4096)), -1, `ns ${nsid}: copy range 0`);
      assert.equal(firstDiff(got.subarray(4096), expect.subarray(8192, 12288)), -1, `ns ${nsid}: copy range 1`);
    }
  }
  // The same through the CLI on namespace 2: write-zeroes, dsm, verify, compare, copy.
  const ok = async (args: string[]) => {
    const r = await cli(args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.err}`);
    return r;
  };
  await ok(["write-zeroes", PCI, "-n", "2", "-s", "100", "-c", "3"]);
  await ok(["dsm", PCI, "-n", "2", "--slbs", "104,110", "--blocks", "2,1", "--ad"]);
  await ok(["verify", PCI, "-n", "2", "-s", "100", "-c", "15"]);
  await ok(["copy", PCI, "-n", "2", "--sdlba", "120", "--slbs", "100,104", "--blocks", "1,0"]);
  const dir = process.env.TMPDIR ?? "/tmp";
  const zeros = `${dir}/cli-zeros.bin`;
  await ok(["read", PCI, "-n", "2", "-s", "100", "-c", "7", "-z", String(8 * 4096), "-d", zeros]);
  const r = await ok(["compare", PCI, "-n", "2", "-s", "120", "-c", "2", "-z", String(3 * 4096), "-d", zeros]);
  assert.match(r.err, /compare: Success/);
  const notZero = `${dir}/cli-ones.bin`;
  execFileSync("sh", ["-c", `head -c 4096 /dev/zero | tr '\\0' '\\1' > ${notZero}`]);
  const bad = await cli(["compare", PCI, "-n", "2", "-s", "120", "-c", "0", "-z", "4096", "-d", notZero]);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /Compare Failure/);
}, skip);

test("format: namespace 2 to 512-byte blocks and back to its original format; data is gone", async () => {
  await using dev = await NVMeDev.open(PCI);
  const id = dev.idNs(2);
  const orig = id.flbas & 0xf;
  const to512 = id.lbafs.findIndex((f) => f.ds === 9 && f.ms === 0);
  assert.ok(to512 >= 0, "a 512-byte format exists");
  const blk = new Uint8Array(4096).fill(0xa5);
  await dev.ns(2).write(7, blk);
  try {
    await formatNvm(dev, 2, { lbaf: to512 });
    assert.equal(dev.ns(2).blockSize, 512);
    assert.equal(dev.ns(2).blockCount, 16 * 2048);
    const b = new Uint8Array(512).fill(3);
    await dev.ns(2).write(1, b);
    const back = new Uint8Array(512);
    await dev.ns(2).read(1, back);
    assert.equal(firstDiff(back, b), -1);
  } finally {
    await formatNvm(dev, 2, { lbaf: orig });
  }
  assert.equal(dev.ns(2).blockSize, 4096);
  assert.equal(dev.idNs(2).flbas & 0xf, orig);
  const back = new Uint8Array(4096);
  await dev.ns(2).read(7, back);
  assert.ok(back.every((x) => x === 0), "format erased the data");
  assert.equal(dev.ns(1).blockSize, 512, "namespace 1 untouched");
  // The CLI refuses without --force, and formats with it (same format: nothing changes).
  await dev.close();
  assert.equal((await cli(["format", PCI, "-n", "2"])).code, 2);
  const r = await cli(["format", PCI, "-n", "2", "--lbaf", String(orig), "--force"]);
  assert.equal(r.code, 0, r.err);
}, skip);

test("what QEMU refuses: typed refusals before sending, else Invalid Command Opcode (0x4001), never a hang", async () => {
  await using dev = await NVMeDev.open(PCI);
  // Sanitize: SANICAP is 0, so the library refuses first; the raw command proves the device's answer.
  assert.equal(dev.idCtrl.sanicap, 0);
  for (const k of ["block-erase", "crypto-erase", "overwrite", "exit-failure"] as const) {
    await assert.rejects(sanitize(dev, k), (e: unknown) => e instanceof NotSupportedError && e.code === "EUNSUPPORTED");
  }
  await assert.rejects(dev.controller.adminCommand(sanitizeCmd(2)), unsupported);
  // Firmware: FRMW 3 (slot 1 read-only, one slot): replacing slot 1 is refused here; the rest reaches the device.
  assert.equal(dev.idCtrl.frmw, 3);
  await assert.rejects(commitFirmware(dev, { slot: 1, action: "replace-and-activate" }), NotSupportedError);
  await assert.rejects(downloadFirmware(dev, new Uint8Array(8192)), unsupported);
  await assert.rejects(dev.controller.adminCommand(fwDownloadCmd(4, 0)), unsupported);
  await assert.rejects(commitFirmware(dev, { slot: 1, action: "activate" }), unsupported);
  // Self-test and namespace management are not implemented by QEMU 7.2.
  await assert.rejects(deviceSelfTest(dev, "short"), unsupported);
  await assert.rejects(dev.controller.adminCommand(deviceSelfTestCmd(0xffffffff, 2)), unsupported);
  await assert.rejects(createNamespace(dev, { nsze: 1024 }), unsupported);
  await assert.rejects(attachNamespace(dev, 1), NvmeStatusError);
  // The device still works afterwards.
  const b = new Uint8Array(512);
  await dev.ns(1).read(0, b);
  await dev.close();
  // CLI: exit status 1 and nvme-cli's status text.
  const san = await cli(["sanitize", PCI, "--sanact", "start-block-erase"]);
  assert.equal(san.code, 1);
  assert.match(san.err, /SANICAP/);
  const st = await cli(["device-self-test", PCI, "-s", "1"]);
  assert.equal(st.code, 1);
  assert.match(st.err, /^NVMe status: Invalid Command Opcode: .*\(0x4001\)$/m);
}, skip);
