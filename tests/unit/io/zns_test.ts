// Zoned namespaces through the driver on the software controller: identify, report zones, zone
// actions, zone append (the LBA returned, the data read back there), and typed zone errors.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import {
  closeZone,
  finishZone,
  NvmeZoneError,
  offlineZone,
  openZone,
  reportZones,
  resetZone,
  zoneAppend,
  zoneMgmtRecv,
  ZoneReportFilter,
  ZoneState as Z,
  zoneSize,
  znsIdCtrl,
  znsIdNs,
} from "../../../lib/io/zns.ts";
import { InvalidArgumentError, NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { parseZoneReport } from "../../../lib/nvme/zns.ts";

const SPEC = "sim:ns=2M:512,1M:4096;zoned=1:512:2:3";

async function zoneError(p: Promise<unknown>, kind: string): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof NvmeZoneError, `expected NvmeZoneError, got ${String(e)}`);
    assert.equal(e.zone, kind);
    assert.equal(e.code, "EZONE");
    return true;
  });
}

test("zns: identify controller and namespace; a plain namespace refuses the ZNS identify", async () => {
  await using dev = await NVMeDev.open(SPEC);
  assert.equal((await znsIdCtrl(dev)).zasl, 0);
  const n = await znsIdNs(dev, 1);
  assert.equal(n.mor, 1, "max open 2, 0-based");
  assert.equal(n.mar, 2);
  assert.equal(n.lbafe.length, dev.idNs(1).nlbaf + 1);
  assert.equal(await zoneSize(dev, 1), 512);
  await assert.rejects(znsIdNs(dev, 2), NvmeStatusError);
  await assert.rejects(znsIdNs(dev, 0), InvalidArgumentError);
});

test("zns: zone append returns the LBA the data landed at; reads there give it back", async () => {
  await using dev = await NVMeDev.open(SPEC);
  const a = new Uint8Array(2048).map((_, i) => i * 7);
  const b = new Uint8Array(512).fill(0x5a);
  assert.equal(await zoneAppend(dev, 1, 512, a), 512);
  assert.equal(await zoneAppend(dev, 1, 512, b), 516);
  const back = new Uint8Array(2560);
  await dev.ns(1).read(512, back);
  assert.deepEqual(back.subarray(0, 2048), a);
  assert.deepEqual(back.subarray(2048), b);
  const r = await reportZones(dev, 1, { slba: 512, maxZones: 1 });
  assert.deepEqual([r.zones[0].zslba, r.zones[0].wp, r.zones[0].state], [512, 517, Z.IMPLICITLY_OPENED]);
  await assert.rejects(zoneAppend(dev, 1, 513, b), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x02, "not a zone start: Invalid Field");
  await assert.rejects(zoneAppend(dev, 1, 512, new Uint8Array(100)), InvalidArgumentError);
});

test("zns: report zones pages through every zone; filters and partial reports", async () => {
  await using dev = await NVMeDev.open(SPEC);
  const all = await reportZones(dev, 1);
  assert.equal(all.nrZones, 8);
  assert.deepEqual(all.zones.map((z) => z.zslba), [0, 512, 1024, 1536, 2048, 2560, 3072, 3584]);
  assert.ok(all.zones.every((z) => z.state === Z.EMPTY && z.wp === z.zslba && z.zcap === 512));
  await finishZone(dev, 1, 1024);
  await openZone(dev, 1, 2048);
  const full = await reportZones(dev, 1, { filter: ZoneReportFilter.FULL });
  assert.deepEqual([full.nrZones, full.zones.map((z) => z.zslba)], [1, [1024]]);
  assert.deepEqual((await reportZones(dev, 1, { filter: ZoneReportFilter.EXPLICITLY_OPENED })).zones.map((z) => z.wp), [2048]);
  const raw = parseZoneReport(await zoneMgmtRecv(dev, 1, 0, 64 + 2 * 64, { partial: true }));
  assert.deepEqual([raw.nrZones, raw.zones.length], [2, 2]);
  const head = parseZoneReport(await zoneMgmtRecv(dev, 1, 0, 64));
  assert.deepEqual([head.nrZones, head.zones.length], [8, 0]);
});

test("zns: report zones in several commands when the transfer limit is small", async () => {
  await using dev = await NVMeDev.open("sim:ns=2M:512;mdts=1;zoned=1:8");
  const r = await reportZones(dev, 1);
  assert.equal(r.nrZones, 512);
  assert.equal(r.zones.length, 512, "8 KiB per report: 127 zones each");
  assert.ok(r.zones.every((z, i) => z.zslba === i * 8));
  const some = await reportZones(dev, 1, { slba: 800, maxZones: 200 });
  assert.deepEqual([some.zones.length, some.zones[0].zslba, some.zones[199].zslba], [200, 800, 800 + 199 * 8]);
});

test("zns: writing a full zone, off the write pointer, or across a boundary fails typed", async () => {
  await using dev = await NVMeDev.open(SPEC);
  const ns = dev.ns(1);
  await ns.write(0, new Uint8Array(512 * 4));
  await zoneError(ns.write(8, new Uint8Array(512)), "invalid-write");
  await zoneError(ns.write(4, new Uint8Array(512 * 509)), "boundary");
  await finishZone(dev, 1, 0);
  await zoneError(ns.write(0, new Uint8Array(512)), "full");
  await zoneError(zoneAppend(dev, 1, 0, new Uint8Array(512)), "full");
  await resetZone(dev, 1, 0);
  await ns.write(0, new Uint8Array(512));
  assert.equal((await reportZones(dev, 1, { maxZones: 1 })).zones[0].wp, 1);
});

test("zns: invalid transitions and the open and active limits fail typed", async () => {
  await using dev = await NVMeDev.open(SPEC);
  await zoneError(closeZone(dev, 1, 0), "invalid-transition");
  await zoneError(offlineZone(dev, 1, 0), "invalid-transition");
  await finishZone(dev, 1, 0);
  await zoneError(openZone(dev, 1, 0), "invalid-transition");
  await openZone(dev, 1, 512);
  await openZone(dev, 1, 1024);
  await zoneError(openZone(dev, 1, 1536), "too-many-open");
  await closeZone(dev, 1, 0, { selectAll: true });
  const r = await reportZones(dev, 1);
  assert.deepEqual(r.zones.slice(0, 3).map((z) => z.state), [Z.FULL, Z.EMPTY, Z.EMPTY]);
  await dev.ns(1).write(512, new Uint8Array(512));
  await dev.ns(1).write(1024, new Uint8Array(512));
  await closeZone(dev, 1, 0, { selectAll: true });
  await dev.ns(1).write(1536, new Uint8Array(512));
  await zoneError(dev.ns(1).write(2048, new Uint8Array(512)), "too-many-active");
  await resetZone(dev, 1, 0, { selectAll: true });
  assert.ok((await reportZones(dev, 1)).zones.every((z) => z.state === Z.EMPTY));
});
