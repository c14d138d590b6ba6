// Flexible Data Placement through the driver on the software controller: placed writes, reclaim
// unit handle status and update, the FDP logs and features, and their refusals.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { placementDwords, ruhStatus, ruhUpdate, writePlaced } from "../../../lib/io/fdp.ts";
import { fdpConfigs, fdpEvents, fdpFeature, fdpStats, fdpUsage, getFdpEvents, setFdpEvents } from "../../../lib/admin/fdp.ts";
import { FdpEventFlag, FdpEventType, placementOf, RuhAttr } from "../../../lib/nvme/fdp.ts";
import { InvalidArgumentError, NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";

const SPEC = "sim:ns=1M:512,1M:4096;fdp=4:64K";

test("fdp: placement directive fields round-trip", () => {
  const { cdw12, cdw13 } = placementDwords(0x1234);
  assert.equal(cdw12, 2 << 20);
  assert.equal(cdw13, 0x1234_0000);
  assert.equal(placementOf(cdw12 | 0xffff, cdw13), 0x1234);
  assert.equal(placementOf(0, cdw13), -1, "no directive");
});

test("fdp: configuration, usage, and the feature of endurance group 1", async () => {
  await using dev = await NVMeDev.open(SPEC);
  const c = await fdpConfigs(dev, 1);
  assert.equal(c.n, 0);
  assert.equal(c.configs.length, 1);
  const cfg = c.configs[0];
  assert.deepEqual([cfg.fdpa, cfg.nrg, cfg.nruh, cfg.maxpids, cfg.runs.value], [0x80, 1, 4, 3, 65536n]);
  assert.equal(cfg.ruhs.length, 4);
  const u = await fdpUsage(dev, 1);
  assert.deepEqual(u.ruhus.map((r) => r.ruha), [1, 1, 1, 1].map(() => RuhAttr.HOST_SPECIFIED));
  assert.deepEqual(await fdpFeature(dev, 1), { enabled: true, index: 0 });
  assert.equal(dev.idCtrl.ctratt & (1 << 19), 1 << 19, "CTRATT.FDPS");
  await assert.rejects(fdpConfigs(dev, 2), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x02, "no such endurance group");
  await assert.rejects(fdpConfigs(dev, 0), InvalidArgumentError);
});

test("fdp: placed writes use the chosen handle's reclaim unit and count in the statistics", async () => {
  await using dev = await NVMeDev.open(SPEC);
  const data = new Uint8Array(8192).map((_, i) => i);
  await writePlaced(dev, 1, 16, data, 2);
  const back = new Uint8Array(8192);
  await dev.ns(1).read(16, back);
  assert.deepEqual(back, data);
  const s = await ruhStatus(dev, 1);
  assert.equal(s.nruhsd, 4);
  assert.deepEqual(s.ruhss.map((r) => [r.pid, r.ruhid, r.ruamw.value]), [[0, 0, 128n], [1, 1, 128n], [2, 2, 112n], [3, 3, 128n]]);
  await dev.ns(1).write(0, new Uint8Array(512)); // no directive: handle 0
  assert.equal((await ruhStatus(dev, 1)).ruhss[0].ruamw.value, 127n);
  const st = await fdpStats(dev, 1);
  assert.deepEqual([st.hbmw.value, st.mbmw.value, st.mbe.value], [8704n, 8704n, 0n]);
  // Fill handle 3's unit (64 KiB) and more: it moves on to a fresh one, and a unit is erased.
  await writePlaced(dev, 1, 0, new Uint8Array(65536 + 4096), 3);
  assert.equal((await ruhStatus(dev, 1)).ruhss[3].ruamw.value, 120n);
  assert.equal((await fdpStats(dev, 1)).mbe.value, 65536n);
});

test("fdp: reclaim unit handle update, and the events it and an invalid placement raise", async () => {
  await using dev = await NVMeDev.open(SPEC);
  await setFdpEvents(dev, 1, 1, [FdpEventType.RU_NOT_FULLY_WRITTEN], true);
  await setFdpEvents(dev, 1, 0, [FdpEventType.INVALID_PID], true);
  assert.deepEqual((await getFdpEvents(dev, 1, 1)).filter((e) => e.enabled).map((e) => e.type), [FdpEventType.RU_NOT_FULLY_WRITTEN]);
  await writePlaced(dev, 1, 0, new Uint8Array(512), 1);
  await ruhUpdate(dev, 1, [1]);
  assert.equal((await ruhStatus(dev, 1)).ruhss[1].ruamw.value, 128n);
  const ctrl = await fdpEvents(dev, 1, false);
  assert.equal(ctrl.n, 1);
  assert.deepEqual([ctrl.events[0].type, ctrl.events[0].pid, ctrl.events[0].nsid, ctrl.events[0].ruhid], [FdpEventType.RU_NOT_FULLY_WRITTEN, 1, 1, 1]);
  assert.equal(ctrl.events[0].fdpef, FdpEventFlag.PIV | FdpEventFlag.NSIDV | FdpEventFlag.LV);
  assert.ok(ctrl.events[0].timestamp > 0);
  await writePlaced(dev, 1, 8, new Uint8Array(512), 9); // no placement identifier 9: handle 0, and an event
  const host = await fdpEvents(dev, 1, true);
  assert.deepEqual(host.events.map((e) => [e.type, e.pid]), [[FdpEventType.INVALID_PID, 9]]);
  await assert.rejects(ruhUpdate(dev, 1, [7]), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x02);
  await assert.rejects(ruhUpdate(dev, 1, []), InvalidArgumentError);
  await assert.rejects(setFdpEvents(dev, 1, 0, [0x42], true), NvmeStatusError, "unknown event type");
});

test("fdp: a controller without FDP refuses the logs and the RUH commands", async () => {
  await using dev = await NVMeDev.open("sim", { transport: await SimTransport.create({}) });
  await assert.rejects(fdpStats(dev, 1), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x09, "Invalid Log Page");
  await assert.rejects(ruhStatus(dev, 1), (e: unknown) => e instanceof NvmeStatusError && e.unsupported);
});
