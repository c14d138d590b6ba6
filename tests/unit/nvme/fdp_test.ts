// FDP layouts: decoders read what the encoders write, at the specification's offsets.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  decodePidList,
  encodeFdpConfigLog,
  encodeFdpEventsLog,
  encodeFdpStatsLog,
  encodePidList,
  encodeRuhStatus,
  encodeRuhUsageLog,
  FdpEventType,
  parseFdpConfigLog,
  parseFdpEventsLog,
  parseFdpStatsLog,
  parseRuhStatus,
  parseRuhUsageLog,
  ruhStatusCmd,
  ruhUpdateCmd,
} from "../../../lib/nvme/fdp.ts";
import { Uint64 } from "../../../lib/nvme/wide.ts";

test("fdp layouts: configurations log with its handle list", () => {
  const cfg = { fdpa: 0x81, nrg: 2, nruh: 3, maxpids: 2, nnss: 5, runs: new Uint64(1n << 33n), erutl: 7, ruhs: [{ ruht: 1 }, { ruht: 2 }, { ruht: 1 }] };
  const d = encodeFdpConfigLog([cfg, { ...cfg, fdpa: 0x80, ruhs: [{ ruht: 2 }] }]);
  assert.equal(d.length, 16 + 64 + 12 + 64 + 4);
  const log = parseFdpConfigLog(d);
  assert.deepEqual([log.n, log.size], [1, d.length]);
  assert.deepEqual(log.configs[0], { ...cfg, vss: 0 });
  assert.deepEqual(log.configs[1].ruhs, [{ ruht: 2 }]);
  assert.equal(log.configs[1].nruh, 1);
});

test("fdp layouts: usage, statistics, events, RUH status, PID lists", () => {
  assert.deepEqual(parseRuhUsageLog(encodeRuhUsageLog([0, 1, 2])), { nruh: 3, ruhus: [{ ruha: 0 }, { ruha: 1 }, { ruha: 2 }] });
  const st = parseFdpStatsLog(encodeFdpStatsLog({ hbmw: 1n << 70n, mbmw: 5n, mbe: 0n }));
  assert.deepEqual([st.hbmw.value, st.mbmw.value, st.mbe.value], [1n << 70n, 5n, 0n]);
  const ev = [
    { type: FdpEventType.MEDIA_REALLOCATED, fdpef: 7, pid: 3, timestamp: 0x1234_5678_9a, nsid: 2, rgid: 1, ruhid: 4, nlbam: 9, lba: 77 },
    { type: FdpEventType.INVALID_PID, fdpef: 1, pid: 5, timestamp: 1, nsid: 1, rgid: 0, ruhid: 0 },
  ];
  const e = parseFdpEventsLog(encodeFdpEventsLog(ev));
  assert.equal(e.n, 2);
  assert.deepEqual(e.events, ev);
  assert.equal(encodeFdpEventsLog(ev).length, 4096);
  const rs = parseRuhStatus(encodeRuhStatus([{ pid: 1, ruhid: 2, earutr: 3, ruamw: 1n << 40n }], 48));
  assert.deepEqual([rs.nruhsd, rs.ruhss[0].pid, rs.ruhss[0].ruhid, rs.ruhss[0].earutr, rs.ruhss[0].ruamw.value], [1, 1, 2, 3, 1n << 40n]);
  assert.equal(parseRuhStatus(encodeRuhStatus([{ pid: 1, ruhid: 2, earutr: 3, ruamw: 0n }], 16)).ruhss.length, 0, "header only");
  assert.deepEqual(decodePidList(encodePidList([1, 0xffff, 7]), 3), [1, 0xffff, 7]);
  assert.equal(encodePidList([1, 2, 3]).length, 8);
  const s = ruhStatusCmd(1, 4096), u = ruhUpdateCmd(2, 3);
  assert.deepEqual([s[0], s[10], s[11], u[0], u[1], u[10]], [0x12, 1, 1023, 0x1d, 2, 0x2_0001]);
});
