// The software controller's zoned namespace: the zone state machine on its own, then through the
// controller model (Zone Append's DW0/DW1, read-only and offline zones a host cannot reach).
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { ZonedNamespace } from "../../../lib/sim/zns.ts";
import { BufferPort, ControllerModel, type FrontEnd } from "../../../lib/sim/engine.ts";
import { CC, IoOpc } from "../../../lib/nvme/spec.ts";
import { parseZoneReport, ZnsOpc, ZnsStatus, zoneAppendCmd, zoneMgmtRecvCmd, zoneMgmtSendCmd, ZoneSendAction as A, ZoneState as Z } from "../../../lib/nvme/zns.ts";
import { SimStatus as S } from "../../../lib/sim/options.ts";

const DNR = 1 << 14;

test("zones: writes at the write pointer open implicitly, fill, and refuse a full zone", () => {
  const z = new ZonedNamespace(8 * 16, { zoneBlocks: 16 });
  assert.equal(z.count, 8);
  assert.equal(z.write(0, 4), 0);
  assert.deepEqual(z.zone(0), { zslba: 0, wp: 4, state: Z.IMPLICITLY_OPENED });
  assert.equal(z.write(8, 1), ZnsStatus.ZONE_INVALID_WRITE, "not at the write pointer");
  assert.equal(z.write(4, 13), ZnsStatus.ZONE_BOUNDARY, "crosses the zone end");
  assert.equal(z.write(4, 12), 0);
  assert.equal(z.zone(0).state, Z.FULL);
  assert.equal(z.write(16 - 1, 1), ZnsStatus.ZONE_FULL);
  assert.equal(z.write(8 * 16, 1), S.LBA_OUT_OF_RANGE);
});

test("zones: every Zone Management Send transition, valid and invalid", () => {
  const z = new ZonedNamespace(4 * 8, { zoneBlocks: 8 });
  assert.equal(z.send(0, A.OPEN, false).status, 0);
  assert.equal(z.zone(0).state, Z.EXPLICITLY_OPENED);
  assert.equal(z.send(0, A.CLOSE, false).status, 0);
  assert.equal(z.zone(0).state, Z.EMPTY, "closing an open zone with nothing written empties it");
  assert.equal(z.send(0, A.CLOSE, false).status, ZnsStatus.INVALID_TRANSITION, "close an empty zone");
  z.write(0, 2);
  assert.equal(z.send(0, A.CLOSE, false).status, 0);
  assert.equal(z.zone(0).state, Z.CLOSED);
  assert.equal(z.send(0, A.FINISH, false).status, 0);
  assert.deepEqual(z.zone(0), { zslba: 0, wp: 8, state: Z.FULL });
  assert.equal(z.send(0, A.OPEN, false).status, ZnsStatus.INVALID_TRANSITION, "open a full zone");
  assert.equal(z.send(0, A.OFFLINE, false).status, ZnsStatus.INVALID_TRANSITION, "offline needs read-only");
  const r = z.send(0, A.RESET, false);
  assert.equal(r.status, 0);
  assert.deepEqual(r.reset, [[0, 8]]);
  assert.deepEqual(z.zone(0), { zslba: 0, wp: 0, state: Z.EMPTY });
  assert.equal(z.send(3, A.OPEN, false).status, S.INVALID_FIELD, "not a zone start");
  assert.equal(z.send(0, 0x7, false).status, S.INVALID_FIELD, "unknown action");
  z.setState(8, Z.READ_ONLY);
  assert.equal(z.write(8, 1), ZnsStatus.ZONE_READ_ONLY);
  assert.equal(z.send(8, A.RESET, false).status, ZnsStatus.INVALID_TRANSITION);
  assert.equal(z.send(8, A.OFFLINE, false).status, 0);
  assert.equal(z.zone(1).state, Z.OFFLINE);
  assert.equal(z.read(8, 1), ZnsStatus.ZONE_OFFLINE);
  assert.equal(z.append(8, 1), -ZnsStatus.ZONE_OFFLINE);
  assert.equal(z.read(6, 4), ZnsStatus.ZONE_BOUNDARY, "reads may not cross zones");
});

test("zones: select all, and the open and active limits", () => {
  const z = new ZonedNamespace(4 * 8, { zoneBlocks: 8, maxOpen: 2, maxActive: 3 });
  assert.equal(z.send(0, A.OPEN, false).status, 0);
  assert.equal(z.send(8, A.OPEN, false).status, 0);
  assert.equal(z.send(16, A.OPEN, false).status, ZnsStatus.TOO_MANY_OPEN, "explicit opens never evict");
  assert.equal(z.write(16, 1), ZnsStatus.TOO_MANY_OPEN, "no implicitly opened zone to close");
  assert.equal(z.send(0, A.CLOSE, true).status, 0);
  assert.equal(z.zone(0).state, Z.EMPTY);
  z.write(0, 1), z.write(8, 1);
  assert.equal(z.write(16, 1), 0, "an implicit open closes an implicitly opened zone");
  assert.equal(z.zone(0).state, Z.CLOSED);
  assert.equal(z.write(24, 1), ZnsStatus.TOO_MANY_ACTIVE);
  assert.equal(z.send(0, A.FINISH, true).status, 0);
  for (let i = 0; i < 3; i++) assert.equal(z.zone(i).state, Z.FULL);
  assert.equal(z.send(0, A.RESET, true).reset.length, 3);
  for (let i = 0; i < 4; i++) assert.equal(z.zone(i).state, Z.EMPTY);
});

test("zones: report filters and partial report", () => {
  const z = new ZonedNamespace(4 * 8, { zoneBlocks: 8 });
  z.write(8, 8);
  z.send(16, A.OPEN, false);
  const all = parseZoneReport(z.report(0, 64 + 4 * 64, 0, 0, false) as Uint8Array);
  assert.equal(all.nrZones, 4);
  assert.deepEqual(all.zones.map((d) => [d.zslba, d.wp, d.state, d.zcap, d.zt]), [
    [0, 0, Z.EMPTY, 8, 2], [8, -1, Z.FULL, 8, 2], [16, 16, Z.EXPLICITLY_OPENED, 8, 2], [24, 24, Z.EMPTY, 8, 2],
  ]);
  // As QEMU: a full zone has no write pointer (all ones on the wire).
  assert.equal(new DataView((z.report(8, 128, 0, 0, false) as Uint8Array).buffer).getBigUint64(64 + 24, true), 0xffff_ffff_ffff_ffffn);
  const empty = parseZoneReport(z.report(0, 64 + 64, 0, 1, false) as Uint8Array);
  assert.equal(empty.nrZones, 2, "every matching zone, though one fits");
  assert.equal(empty.zones.length, 1);
  assert.equal(parseZoneReport(z.report(0, 64 + 64, 0, 1, true) as Uint8Array).nrZones, 1, "partial: the ones returned");
  assert.deepEqual(parseZoneReport(z.report(9, 64 + 4 * 64, 0, 0, false) as Uint8Array).zones.map((d) => d.zslba), [8, 16, 24]);
  assert.equal(z.report(0, 128, 1, 0, false), S.INVALID_FIELD, "no extended report");
  assert.equal(z.report(32, 128, 0, 0, false), S.LBA_OUT_OF_RANGE);
});

function model(): ControllerModel {
  const fe: FrontEnd = { complete() {} };
  const m = new ControllerModel({ serial: "ZNS1", readyDelayMs: 0, namespaces: [{ size: 64 * 512, blockSize: 512, zoned: { zoneBlocks: 16 } }] }, fe);
  m.setCc(CC.EN | (6 << 16) | (4 << 20));
  return m;
}

test("model: zone append returns the LBA in DW0/DW1 and the data lands there", () => {
  const m = model();
  const data = new Uint8Array(1024).fill(0xa5);
  assert.equal(m.execute(1, zoneAppendCmd(1, 16, 2), new BufferPort(data)), 0);
  assert.deepEqual([m.dw0, m.dw1], [16, 0]);
  assert.equal(m.execute(1, zoneAppendCmd(1, 16, 1), new BufferPort(new Uint8Array(512).fill(1))), 0);
  assert.equal(m.dw0, 18);
  const back = new Uint8Array(1536);
  const rd = new Uint32Array(16);
  rd[0] = IoOpc.READ, rd[1] = 1, rd[10] = 16, rd[12] = 2;
  assert.equal(m.execute(1, rd, new BufferPort(back)), 0);
  assert.deepEqual(back.subarray(0, 1024), data);
  assert.equal(back[1024], 1);
  assert.equal(m.execute(1, zoneAppendCmd(1, 17, 1), new BufferPort(new Uint8Array(512))), S.INVALID_FIELD | DNR, "not a zone start");
});

test("model: append to a read-only or offline zone fails with the zone status; report shows them", () => {
  const m = model();
  const z = m.zonesOf(1)!;
  z.setState(16, Z.READ_ONLY);
  z.setState(32, Z.OFFLINE);
  assert.equal(m.execute(1, zoneAppendCmd(1, 16, 1), new BufferPort(new Uint8Array(512))), ZnsStatus.ZONE_READ_ONLY | DNR);
  assert.equal(m.execute(1, zoneAppendCmd(1, 32, 1), new BufferPort(new Uint8Array(512))), ZnsStatus.ZONE_OFFLINE | DNR);
  assert.equal(m.execute(1, zoneMgmtSendCmd(1, 16, A.OFFLINE), new BufferPort()), 0);
  const rep = new Uint8Array(64 + 4 * 64);
  assert.equal(m.execute(1, zoneMgmtRecvCmd(1, 0, rep.length), new BufferPort(rep)), 0);
  assert.deepEqual(parseZoneReport(rep).zones.map((d) => d.state), [Z.EMPTY, Z.OFFLINE, Z.OFFLINE, Z.EMPTY]);
  assert.equal(m.transferLength(1, zoneMgmtRecvCmd(1, 0, 256)), 256);
  assert.equal(m.transferLength(1, zoneAppendCmd(1, 0, 3)), 1536);
  assert.equal(ZnsOpc.ZONE_APPEND, 0x7d);
});
