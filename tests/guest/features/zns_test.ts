/**
 * Features tier (scripts/guest.sh --feature zns): QEMU's zoned namespace (controller TSNVMEZNS1 at
 * 0000:00:10.0, 16 zones of 256 4 KiB blocks) through nvme-cli on the kernel driver and through
 * tsnvme on vfio-pci. Zone state is QEMU's memory, not the disk: every boot starts all EMPTY, and
 * a controller shutdown (an unbind, tsnvme's close) closes open zones (EMPTY when unwritten), so
 * the zones compared across drivers are EMPTY, CLOSED or FULL. QEMU reports a full zone's write
 * pointer as all ones (JSON.parse rounds it to 2 ** 64).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import process from "node:process";
import { test } from "../../harness.ts";
import { nvme, ours } from "./cli.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { finishZone, NvmeZoneError, openZone, reportZones, zoneAppend, ZoneState } from "../../../lib/io/zns.ts";
import { bind, inGuest, nsBlockDev, randomBytes, readBlockDev, runtime } from "../util.ts";

const ZPCI = "0000:00:10.0";
const on = inGuest && (process.env.TSNVME_FEATURES ?? "").split(",").includes("zns");
const opts = { ignore: !on };

const bindZ = (driver: "vfio" | "nvme") => bind(driver, ZPCI);

test("zns: report zones, zone states and ZNS identify equal nvme-cli's on the kernel driver; zone append's LBA holds the data", async () => {
  const seed = (Date.now() ^ (runtime === "bun" ? 0x2468 : 0x1357)) >>> 0;
  console.log(`[${runtime}] zns seed ${seed}`);
  const dir = mkdtempSync("/tmp/tsnvme-zns-");
  const kernel: Record<string, string> = {};
  bindZ("nvme");
  try {
    const blk = nsBlockDev(1, ZPCI);
    // Known states that survive a controller shutdown: zone 1 written and closed, zone 2 full, the rest empty.
    nvme(["zns", "reset-zone", blk, "-a"]);
    writeFileSync(`${dir}/a.bin`, randomBytes(8192, seed));
    assert.equal(nvme(["zns", "zone-append", blk, "-s", "256", "-z", "8192", "-d", `${dir}/a.bin`]), "Success appended data to LBA 100\n");
    nvme(["zns", "close-zone", blk, "-s", "256"]);
    nvme(["zns", "finish-zone", blk, "-s", "512"]);
    for (const [k, a] of Object.entries({
      rzj: ["zns", "report-zones", blk, "-o", "json"],
      rz: ["zns", "report-zones", blk],
      rzv: ["zns", "report-zones", blk, "-v"],
      rzs: ["zns", "report-zones", blk, "-S", "4"],
      nsj: ["zns", "id-ns", blk, "-o", "json"],
      ns: ["zns", "id-ns", blk],
      ctrlj: ["zns", "id-ctrl", blk, "-o", "json"],
    })) kernel[k] = nvme(a);
  } finally {
    bindZ("vfio");
  }
  try {
    const rz = JSON.parse(kernel.rzj);
    assert.equal(rz.nr_zones, 16);
    // QEMU reports no write pointer (all ones) for a full zone.
    assert.deepEqual(rz.zone_list.slice(0, 3).map((z: { state: string; wp: number }) => [z.state, z.wp]), [["EMPTY", 0], ["CLOSED", 258], ["FULL", 2 ** 64]]);
    // The CLI against the same device, now on vfio-pci: the same text and JSON.
    assert.deepEqual(JSON.parse(await ours(["zns", "report-zones", ZPCI, "-n", "1", "-o", "json"])), rz);
    assert.equal(await ours(["zns", "report-zones", ZPCI, "-n", "1"]), kernel.rz);
    assert.equal(await ours(["zns", "report-zones", ZPCI, "-n", "1", "-v"]), kernel.rzv);
    assert.equal(await ours(["zns", "report-zones", ZPCI, "-n", "1", "-S", "4"]), kernel.rzs);
    assert.deepEqual(JSON.parse(await ours(["zns", "id-ns", ZPCI, "-n", "1", "-o", "json"])), JSON.parse(kernel.nsj));
    assert.equal(await ours(["zns", "id-ns", ZPCI, "-n", "1"]), kernel.ns);
    assert.deepEqual(JSON.parse(await ours(["zns", "id-ctrl", ZPCI, "-o", "json"])), JSON.parse(kernel.ctrlj));
    // nvme-cli's zone-append data, read back by tsnvme.
    const want = randomBytes(8192, seed);
    const dev = await NVMeDev.open(ZPCI);
    const landed: number[] = [];
    const data = randomBytes(3 * 8192, seed + 1);
    try {
      const back = new Uint8Array(8192);
      await dev.ns(1).read(256, back);
      assert.deepEqual(back, want);
      // Zone append: the LBA the data landed at, read back there.
      for (let i = 0; i < 3; i++) landed.push(await zoneAppend(dev, 1, 1024, data.subarray(i * 8192, (i + 1) * 8192)));
      assert.deepEqual(landed, [1024, 1026, 1028]);
      const got = new Uint8Array(3 * 8192);
      await dev.ns(1).read(1024, got);
      assert.deepEqual(got, data);
      // Zone state errors, typed.
      await assert.rejects(dev.ns(1).write(512, new Uint8Array(4096)), (e: unknown) => e instanceof NvmeZoneError && e.zone === "full");
      await assert.rejects(dev.ns(1).write(1024, new Uint8Array(4096)), (e: unknown) => e instanceof NvmeZoneError && e.zone === "invalid-write");
      await assert.rejects(openZone(dev, 1, 512), (e: unknown) => e instanceof NvmeZoneError && e.zone === "invalid-transition");
      await openZone(dev, 1, 1280);
      const r = await reportZones(dev, 1);
      assert.deepEqual(r.zones.slice(4, 6).map((z) => [z.state, z.wp]), [[ZoneState.IMPLICITLY_OPENED, 1030], [ZoneState.EXPLICITLY_OPENED, 1280]]);
      await finishZone(dev, 1, 1024);
    } finally {
      await dev.close();
    }
    // Back on the kernel: zone 4 full, zone 5 empty again (opened, unwritten, then shut down), the data where append said.
    bindZ("nvme");
    try {
      const blk = nsBlockDev(1, ZPCI);
      const after = JSON.parse(nvme(["zns", "report-zones", blk, "-o", "json"]));
      assert.deepEqual(after.zone_list.slice(4, 6).map((z: { state: string; wp: number }) => [z.state, z.wp]), [["FULL", 2 ** 64], ["EMPTY", 1280]]);
      assert.deepEqual(readBlockDev(blk, 1024 * 4096, data.length), data);
      nvme(["zns", "reset-zone", blk, "-a"]);
    } finally {
      bindZ("vfio");
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, opts);
