import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  commandName, parseEffectsLog, parseErrorLog, parseFwLog, parseSanitizeLog, parseSelfTestLog, parseSmartLog,
} from "../../../lib/admin/log.ts";
import {
  effectsLogToJson, errorLogToJson, formatFeature, fwLogToJson, nsDescsToJson, nsListToJson, sanitizeLogToJson,
  selfTestLogToJson, smartLogToJson,
} from "../../../lib/cli/format/mod.ts";
import { decodeFeature } from "../../../lib/admin/features.ts";
import { decodeAsyncEvent, parseNsDescs } from "../../../lib/admin/manage.ts";
import { Fid } from "../../../lib/nvme/spec.ts";

test("SMART log: nvme-cli keys and order, 128-bit counters as strings, int32 narrowing, sensors only when non-zero", () => {
  const d = new Uint8Array(512);
  const dv = new DataView(d.buffer);
  d[0] = 0x04;
  dv.setUint16(1, 310, true);
  d[3] = 100;
  d[4] = 10;
  d[5] = 3;
  dv.setBigUint64(32, 0xffff_ffff_ffff_ffffn, true);
  dv.setBigUint64(40, 1n, true); // data_units_read = 2^64 + 2^64 - 1
  dv.setUint32(192, 0xffffffff, true);
  dv.setUint16(202, 300, true); // sensor 2
  dv.setUint32(228, 7, true);
  const s = parseSmartLog(d);
  assert.equal(s.temperature, 310);
  assert.equal(s.data_units_read.value, (1n << 65n) - 1n);
  assert.equal(s.temperature_sensor_2, 300);
  assert.equal("temperature_sensor_1" in s, false);
  const j = smartLogToJson(s);
  assert.match(j, /^\{\n {2}"critical_warning":4,\n {2}"temperature":310,\n {2}"avail_spare":100,/);
  assert.match(j, /"data_units_read":"36893488147419103231",/);
  assert.match(j, /"warning_temp_time":-1,/);
  assert.match(j, /"critical_comp_time":0,\n {2}"temperature_sensor_2":300,\n {2}"thm_temp1_trans_count":0,/);
  assert.match(j, /"thm_temp2_total_time":7\n\}$/);
  const keys = Object.keys(JSON.parse(j));
  assert.equal(keys.length, 23);
});

test("error log: status field split from the phase tag, 64-bit fields as numbers, nsid through int32", () => {
  const d = new Uint8Array(128);
  const dv = new DataView(d.buffer);
  dv.setBigUint64(0, 5n, true);
  dv.setUint16(8, 1, true);
  dv.setUint16(10, 0x1234, true);
  dv.setUint16(12, (0x4002 << 1) | 1, true);
  dv.setBigUint64(16, 0x1_0000_0000n, true);
  dv.setUint32(24, 0xffffffff, true);
  const e = parseErrorLog(d);
  assert.equal(e.length, 2);
  assert.equal(e[0].status_field, 0x4002);
  assert.equal(e[0].phase_tag, 1);
  const j = errorLogToJson(e);
  assert.match(j, /^\{\n {2}"errors":\[\n {4}\{\n {6}"error_count":5,\n {6}"sqid":1,\n {6}"cmdid":4660,\n {6}"status_field":16386,\n {6}"phase_tag":1,/);
  assert.match(j, /"lba":4294967296,\n {6}"nsid":-1,/);
  assert.equal(JSON.parse(j).errors.length, 2);
  assert.equal(errorLogToJson([]), '{\n  "errors":[\n  ]\n}');
});

test("firmware slot log: afi, slots with a first non-zero byte only, revision as number and 8 printable chars", () => {
  const d = new Uint8Array(512);
  d[0] = 0x21;
  d.set(new TextEncoder().encode("1.0"), 8);
  d.set(new TextEncoder().encode("abcdefgh"), 8 + 8 * 2);
  const f = parseFwLog(d);
  assert.equal(f.activeSlot, 1);
  assert.equal(f.nextSlot, 2);
  assert.deepEqual(f.frs.slice(0, 3), ["1.0", "", "abcdefgh"]);
  const j = JSON.parse(fwLogToJson(f, "nvme0"));
  assert.deepEqual(j, {
    nvme0: {
      "Active Firmware Slot (afi)": 0x21,
      "Firmware Rev Slot 1": "3157553 (1.0.....)",
      "Firmware Rev Slot 3": `${new DataView(d.buffer).getBigUint64(24, true)} (abcdefgh)`,
    },
  });
});

test("effects log: only supported opcodes, nvme-cli's names, one object per page", () => {
  const d = new Uint8Array(4096);
  const dv = new DataView(d.buffer);
  dv.setUint32(0x06 * 4, 1, true);
  dv.setUint32(0x80 * 4, 0x3 | 1 << 16, true);
  dv.setUint32(0x7f * 4, 0, true);
  dv.setUint32(1024 + 0x01 * 4, 0x3, true);
  dv.setUint32(1024 + 0x19 * 4, 0x3, true);
  const j = effectsLogToJson([parseEffectsLog(d, 0)]);
  assert.equal(
    j,
    '[\n  {\n    "command_set_identifier":0,\n    "admin_cmd_set":{\n      "ACS_6 (Identify)":1,\n' +
      '      "ACS_128 (Format NVM)":65539\n    },\n    "io_cmd_set":{\n      "IOCS_1 (Write)":3,\n      "IOCS_25 (Copy)":3\n    }\n  }\n]',
  );
  assert.equal(commandName(true, 0x99), "Unknown");
});

test("self-test log: unused entries carry only the result; optional fields follow VDI", () => {
  const d = new Uint8Array(564);
  const dv = new DataView(d.buffer);
  d[0] = 1;
  d[1] = 40;
  d[4] = 0x27; // extended (2), result 7
  d[5] = 3;
  d[6] = 0x3; // nsid + flba valid
  dv.setBigUint64(8, 12n, true);
  dv.setUint32(16, 1, true);
  dv.setBigUint64(20, 99n, true);
  for (let i = 1; i < 20; i++) d[4 + i * 28] = 0xf;
  const l = parseSelfTestLog(d);
  assert.equal(l.results[0].code, 2);
  const j = JSON.parse(selfTestLogToJson(l));
  assert.equal(j["Current Device Self-Test Operation"], 1);
  assert.equal(j["List of Valid Reports"].length, 20);
  assert.deepEqual(j["List of Valid Reports"][0], {
    "Self test result": 7,
    "Self test code": 2,
    "Segment number": 3,
    "Valid Diagnostic Information": 3,
    "Power on hours": 12,
    "Namespace Identifier": 1,
    "Failing LBA": 99,
    "Vendor Specific": 0,
  });
  assert.deepEqual(j["List of Valid Reports"][1], { "Self test result": 15 });
});

test("sanitize log: status text, passes, global erased", () => {
  const d = new Uint8Array(512);
  const dv = new DataView(d.buffer);
  dv.setUint16(0, 0x8000, true);
  dv.setUint16(2, 0x100 | 3 << 3 | 2, true);
  dv.setUint32(4, 0x32, true);
  dv.setUint32(12, 0xffffffff, true);
  const l = parseSanitizeLog(d);
  assert.equal(l.status, 2);
  assert.equal(l.passes, 3);
  assert.ok(l.globalErased);
  const j = JSON.parse(sanitizeLogToJson(l, "nvme0"));
  assert.deepEqual(j.nvme0.sstat, { global_erased: 1, no_cmplted_passes: 3, status: "(2) Sanitize in Progress." });
  assert.equal(j.nvme0.sprog, 32768);
  assert.equal(j.nvme0.time_block_erase, -1);
  assert.deepEqual(Object.keys(j.nvme0), [
    "sprog", "sstat", "cdw10_info", "time_over_write", "time_block_erase", "time_crypto_erase",
    "time_over_write_no_dealloc", "time_block_erase_no_dealloc", "time_crypto_erase_no_dealloc",
  ]);
});

test("namespace list and descriptors JSON", () => {
  assert.equal(nsListToJson([1, 2]), '{\n  "nsid_list":[\n    {\n      "nsid":1\n    },\n    {\n      "nsid":2\n    }\n  ]\n}');
  const d = new Uint8Array(4096);
  d.set([1, 8, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8], 0);
  d.set([3, 16, 0, 0], 12);
  d.set([0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8], 16);
  d.set([4, 1, 0, 0, 0], 32);
  d.set([9, 2, 0, 0, 0, 0], 37); // unknown type: skipped
  const descs = parseNsDescs(d);
  assert.deepEqual(descs.map((x) => [x.loc, x.type, x.value]), [
    [0, "eui64", "0102030405060708"],
    [12, "uuid", "12345678-9abc-def0-0102-030405060708"],
    [32, "csi", "0"],
  ]);
  const j = JSON.parse(nsDescsToJson(descs));
  assert.deepEqual(j["ns-descs"][1], { loc: 12, nidt: 3, nidl: 16, type: "uuid", uuid: "12345678-9abc-def0-0102-030405060708" });
  assert.equal(nsDescsToJson([]), "{\n}");
});

test("feature decoding and nvme-cli's get-feature line", () => {
  assert.deepEqual(decodeFeature(Fid.ARBITRATION, 0x03020107), { ab: 7, lpw: 1, mpw: 2, hpw: 3 });
  assert.deepEqual(decodeFeature(Fid.NUM_QUEUES, 0x003f003f), { nsqa: 64, ncqa: 64 });
  assert.deepEqual(decodeFeature(Fid.TEMP_THRESHOLD, 0x0001_0157), { tmpth: 343, tmpthCelsius: 70, tmpsel: 1, thsel: 0 });
  assert.deepEqual(decodeFeature(Fid.ERROR_RECOVERY, 0x10005), { tler: 5, dulbe: true });
  const ts = new Uint8Array(8);
  new DataView(ts.buffer).setUint32(0, 1000, true);
  ts[6] = 0x3;
  assert.deepEqual(decodeFeature(Fid.TIMESTAMP, 0, ts), { timestamp: 1000, synch: true, origin: 1 });
  const line = (fid: number, sel: number, value: number) => formatFeature({ fid, sel, value, fields: {} }).split("\n")[0];
  assert.equal(line(6, 0, 1), "get-feature:0x06 (Volatile Write Cache), Current value:0x00000001");
  assert.equal(line(6, 0, 0), "get-feature:0x06 (Volatile Write Cache), Current value:00000000");
  assert.equal(line(0x0b, 1, 0x200), "get-feature:0x0b (Async Event Configuration), Default value:0x00000200");
  assert.equal(formatFeature({ fid: 4, sel: 3, value: 5, fields: {} }), "get-feature:0x04 (Temperature Threshold), Supported capabilities value:0x00000005\n  Feature is saveable\n  Feature is changeable\n");
  assert.deepEqual(decodeAsyncEvent(0x00020102), { type: 2, info: 1, logPage: 2, raw: 0x00020102 });
});
