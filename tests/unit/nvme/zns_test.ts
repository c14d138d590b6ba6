// ZNS layouts and command builders: decoders read what the encoders write, at the specification's offsets.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  encodeZnsIdCtrl,
  encodeZnsIdNs,
  encodeZoneReport,
  parseZnsIdCtrl,
  parseZnsIdNs,
  parseZoneReport,
  ZnsIdNsOffset,
  zoneAppendCmd,
  zoneMgmtRecvCmd,
  zoneMgmtSendCmd,
  ZoneSendAction,
  zoneStateName,
  ZoneState,
} from "../../../lib/nvme/zns.ts";
import { NvmeZoneError, statusError, zoneErrorKind } from "../../../lib/nvme/errors.ts";
import { statusName } from "../../../lib/nvme/spec.ts";

test("zns layouts: identify controller and namespace round-trip at their offsets", () => {
  assert.equal(parseZnsIdCtrl(encodeZnsIdCtrl({ zasl: 5 })).zasl, 5);
  const d = encodeZnsIdNs({ zoc: 1, ozcs: 2, mar: 7, mor: 3, rrl: 9, frl3: 4, numzrwa: 6, zrwafg: 8, zrwasz: 10, zrwacap: 1, lbafe: [{ zsze: 0x1_0000_0000, zdes: 2 }, { zsze: 4096, zdes: 0 }] });
  assert.equal(d.length, 4096);
  assert.equal(ZnsIdNsOffset.LBAFE, 2816);
  assert.equal(d[2816 + 12], 0, "zsze is 64-bit little endian");
  assert.equal(d[2816 + 4], 1);
  const n = parseZnsIdNs(d, 1);
  assert.deepEqual(
    [n.zoc, n.ozcs, n.mar, n.mor, n.rrl, n.frl3, n.numzrwa, n.zrwafg, n.zrwasz, n.zrwacap],
    [1, 2, 7, 3, 9, 4, 6, 8, 10, 1],
  );
  assert.deepEqual(n.lbafe, [{ zsze: 0x1_0000_0000, zdes: 2 }, { zsze: 4096, zdes: 0 }]);
  assert.equal(parseZnsIdNs(d).lbafe.length, 64);
});

test("zns layouts: report zones header and descriptors", () => {
  const zones = [
    { zt: 2, state: ZoneState.FULL, za: 0x80, zai: 1, zcap: 100, zslba: 0, wp: 100 },
    { zt: 2, state: ZoneState.CLOSED, za: 0, zai: 0, zcap: 100, zslba: 128, wp: 130 },
  ];
  const d = encodeZoneReport(9, zones, 64 + 2 * 64);
  assert.equal(d[64 + 1], 0xe0, "state in the high nibble");
  const r = parseZoneReport(d);
  assert.equal(r.nrZones, 9);
  assert.deepEqual(r.zones.map(({ ext: _e, ...z }) => z), zones);
  assert.equal(parseZoneReport(d.subarray(0, 64 + 64)).zones.length, 1, "as many as the buffer holds");
  const none = encodeZoneReport(1, [{ ...zones[0], wp: -1 }], 128);
  assert.deepEqual([...none.subarray(64 + 24, 64 + 32)], new Array(8).fill(0xff), "no write pointer: all ones");
  assert.equal(parseZoneReport(none).zones[0].wp, -1);
  assert.equal(zoneStateName(ZoneState.IMPLICITLY_OPENED), "IMP_OPENED");
  assert.equal(zoneStateName(0), "Unknown State");
});

test("zns commands: dwords as the specification lays them out", () => {
  const s = zoneMgmtSendCmd(3, 0x1_0000_0010, ZoneSendAction.RESET, { selectAll: true });
  assert.deepEqual([s[0], s[1], s[10], s[11], s[13]], [0x79, 3, 0x10, 1, 0x104]);
  const r = zoneMgmtRecvCmd(1, 64, 4096, { zrasf: 5, partial: true });
  assert.deepEqual([r[0], r[10], r[12], r[13]], [0x7a, 64, 1023, (5 << 8) | (1 << 16)]);
  const a = zoneAppendCmd(1, 2048, 8);
  assert.deepEqual([a[0], a[10], a[12]], [0x7d, 2048, 7]);
});

test("zone status codes: names, kinds, and the typed error", () => {
  assert.equal(statusName(1, 0xb9), "Zone Is Full");
  assert.equal(statusName(1, 0xbf), "Invalid Zone State Transition");
  assert.equal(zoneErrorKind(0x41bb), "offline");
  assert.equal(zoneErrorKind(0x1b7), null);
  const e = statusError(0x41ba, 0, { qid: 1, cid: 3, opcode: 0x7d });
  assert.ok(e instanceof NvmeZoneError);
  assert.equal(e.zone, "read-only");
  assert.ok(!(statusError(0x0002, 0, { qid: 1, cid: 3, opcode: 1 }) instanceof NvmeZoneError));
});
