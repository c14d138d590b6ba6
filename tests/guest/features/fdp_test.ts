/**
 * Features tier (scripts/guest.sh --feature fdp): QEMU's Flexible Data Placement (controller
 * TSNVMEFDP1 at 0000:00:11.0 in an FDP subsystem, 8 handles of 1 MiB reclaim units, namespace 1
 * on handles 0-3) through nvme-cli on the kernel driver and through tsnvme on vfio-pci: the FDP
 * logs and reclaim unit handle status equal nvme-cli's, before and after tsnvme's placed writes.
 */
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import process from "node:process";
import { test } from "../../harness.ts";
import { nvme, ours } from "./cli.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { ruhStatus, ruhUpdate, writePlaced } from "../../../lib/io/fdp.ts";
import { fdpStats } from "../../../lib/admin/fdp.ts";
import { bind, inGuest, nsBlockDev, randomBytes, readBlockDev, runtime } from "../util.ts";

const FPCI = "0000:00:11.0";
const on = inGuest && (process.env.TSNVME_FEATURES ?? "").split(",").includes("fdp");
const opts = { ignore: !on };

const bindF = (driver: "vfio" | "nvme") => bind(driver, FPCI);

/** nvme-cli's FDP output on the kernel driver: the controller's char device for logs, the namespace for status. */
function kernelView(): Record<string, string> {
  bindF("nvme");
  try {
    const blk = nsBlockDev(1, FPCI);
    // The controller's own char device (a multipath head's number is the subsystem's, not the controller's).
    const ctrl = `/dev/${readdirSync(`/sys/bus/pci/devices/${FPCI}/nvme`)[0]}`;
    const v: Record<string, string> = {};
    for (const [k, a] of Object.entries({
      configs: ["fdp", "configs", ctrl, "-e", "1"],
      configsH: ["fdp", "configs", ctrl, "-e", "1", "-H"],
      configsJ: ["fdp", "configs", ctrl, "-e", "1", "-o", "json"],
      usage: ["fdp", "usage", ctrl, "-e", "1"],
      usageJ: ["fdp", "usage", ctrl, "-e", "1", "-o", "json"],
      stats: ["fdp", "stats", ctrl, "-e", "1"],
      statsJ: ["fdp", "stats", ctrl, "-e", "1", "-o", "json"],
      eventsJ: ["fdp", "events", ctrl, "-e", "1", "-o", "json"],
      status: ["fdp", "status", blk],
      statusJ: ["fdp", "status", blk, "-o", "json"],
    })) v[k] = nvme(a);
    return v;
  } finally {
    bindF("vfio");
  }
}

async function ourView(): Promise<Record<string, string>> {
  const D = FPCI;
  return {
    configs: await ours(["fdp", "configs", D, "-e", "1"]),
    configsH: await ours(["fdp", "configs", D, "-e", "1", "-H"]),
    configsJ: await ours(["fdp", "configs", D, "-e", "1", "-o", "json"]),
    usage: await ours(["fdp", "usage", D, "-e", "1"]),
    usageJ: await ours(["fdp", "usage", D, "-e", "1", "-o", "json"]),
    stats: await ours(["fdp", "stats", D, "-e", "1"]),
    statsJ: await ours(["fdp", "stats", D, "-e", "1", "-o", "json"]),
    eventsJ: await ours(["fdp", "events", D, "-e", "1", "-o", "json"]),
    status: await ours(["fdp", "status", D, "-n", "1"]),
    statusJ: await ours(["fdp", "status", D, "-n", "1", "-o", "json"]),
  };
}

test("fdp: logs and RUH status equal nvme-cli's; placed writes move the statistics and status the same on both drivers", async () => {
  const seed = (Date.now() ^ (runtime === "bun" ? 0x5151 : 0x1515)) >>> 0;
  console.log(`[${runtime}] fdp seed ${seed}`);
  const before = kernelView();
  assert.match(before.configs, /^FDP Attributes: 0x80\n/);
  assert.deepEqual(await ourView(), before);
  const data = randomBytes(65536, seed);
  const dev = await NVMeDev.open(FPCI);
  let status;
  try {
    const hbmw0 = (await fdpStats(dev, 1)).hbmw.value;
    const s0 = await ruhStatus(dev, 1);
    await writePlaced(dev, 1, 64, data, 2);
    const s1 = await ruhStatus(dev, 1);
    assert.equal(s1.ruhss[2].ruamw.value, s0.ruhss[2].ruamw.value - 16n, "16 blocks of handle 2's unit");
    assert.equal(s1.ruhss[1].ruamw.value, s0.ruhss[1].ruamw.value);
    assert.equal((await fdpStats(dev, 1)).hbmw.value - hbmw0, 65536n);
    await writePlaced(dev, 1, 80, data.subarray(0, 8192), 1);
    await ruhUpdate(dev, 1, [1]);
    status = await ruhStatus(dev, 1);
    assert.equal(status.ruhss[1].ruamw.value, s0.ruhss[1].ruamw.value, "a fresh unit after the update");
  } finally {
    await dev.close();
  }
  const after = kernelView();
  assert.deepEqual(await ourView(), after);
  assert.deepEqual(JSON.parse(after.statusJ).ruhss.map((r: { ruamw: number }) => BigInt(r.ruamw)), status.ruhss.map((r) => r.ruamw.value));
  bindF("nvme");
  try {
    assert.deepEqual(readBlockDev(nsBlockDev(1, FPCI), 64 * 4096, data.length), data);
  } finally {
    bindF("vfio");
  }
}, opts);
