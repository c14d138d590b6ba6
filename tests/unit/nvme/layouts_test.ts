/**
 * Each layout in lib/nvme has one decoder and one encoder: what the software
 * controller encodes, the driver decodes back to the same fields; and the
 * one admin-transfer helper frees what it allocates.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { smartLog } from "../../../lib/admin/log.ts";
import {
  decodeControllerList,
  decodeNamespaceCreate,
  decodeNsDescriptors,
  decodeNsidList,
  encodeControllerList,
  encodeNamespaceCreate,
  encodeNsDescriptors,
  encodeNsidList,
  IDENTIFY_BYTES,
  IdCtrlOffset,
  IdNsOffset,
  LBAF_BYTES,
  PSD_BYTES,
} from "../../../lib/nvme/identify.ts";
import {
  encodeEffectsLog,
  encodeErrorLogEntry,
  encodeFwLog,
  encodeSanitizeLog,
  encodeSelfTestLog,
  encodeSmartLog,
  ERROR_LOG_ENTRY_SIZE,
  ErrorLogOffset,
  parseChangedNsList,
  parseEffectsLog,
  parseErrorLog,
  parseFwLog,
  parseSanitizeLog,
  parseSelfTestLog,
  parseSmartLog,
  SANITIZE_LOG_BYTES,
  SanitizeLogOffset,
  SELF_TEST_LOG_BYTES,
  SELF_TEST_RESULT_BYTES,
  SelfTestLogOffset,
  type SmartLog,
  SMART_LOG_BYTES,
  SmartLogOffset,
} from "../../../lib/nvme/logs.ts";
import { decodeHostBehavior, decodeTimestamp, encodeHostBehavior, encodeTimestamp } from "../../../lib/nvme/features.ts";
import { decodeCopyRanges, decodeDsmRanges, encodeCopyRanges, encodeDsmRanges } from "../../../lib/nvme/ranges.ts";
import { adminTransfer, type AdminPort, dmaTransfer } from "../../../lib/nvme/transfer.ts";
import type { DmaBuffer } from "../../../lib/nvme/transport.ts";
import { Uint128, Uint64 } from "../../../lib/nvme/wide.ts";

test("layouts: every offset table fits its structure (as SPDK's static asserts)", () => {
  assert.ok(SmartLogOffset.THM_TEMP2_TOTAL_TIME + 4 <= SMART_LOG_BYTES);
  assert.ok(SmartLogOffset.TEMP_SENSOR1 + 8 * 2 <= SmartLogOffset.THM_TEMP1_TRANS_COUNT);
  assert.ok(ErrorLogOffset.TRTYPE_SPEC_INFO + 2 <= ERROR_LOG_ENTRY_SIZE);
  assert.equal(SelfTestLogOffset.RESULT0 + 20 * SELF_TEST_RESULT_BYTES, SELF_TEST_LOG_BYTES);
  assert.ok(SanitizeLogOffset.ETCEND + 4 <= SANITIZE_LOG_BYTES);
  assert.ok(IdCtrlOffset.PSD0 + 32 * PSD_BYTES === IdCtrlOffset.VS && IdCtrlOffset.VS < IDENTIFY_BYTES);
  assert.ok(IdNsOffset.LBAF + 64 * LBAF_BYTES <= IDENTIFY_BYTES);
});

test("layouts: SMART log encoded by a controller decodes to the same fields", () => {
  const s: Partial<SmartLog> = {
    critical_warning: 0x12,
    temperature: 310,
    avail_spare: 100,
    spare_thresh: 10,
    percent_used: 3,
    endurance_grp_critical_warning_summary: 1,
    data_units_read: new Uint128(2n ** 100n + 7n),
    data_units_written: new Uint128(5n),
    host_read_commands: new Uint128(6n),
    host_write_commands: new Uint128(7n),
    controller_busy_time: new Uint128(8n),
    power_cycles: new Uint128(9n),
    power_on_hours: new Uint128(10n),
    unsafe_shutdowns: new Uint128(11n),
    media_errors: new Uint128(12n),
    num_err_log_entries: new Uint128(13n),
    warning_temp_time: 14,
    critical_comp_time: 0xffffffff,
    temperature_sensor_1: 300,
    temperature_sensor_8: 301,
    thm_temp1_trans_count: 15,
    thm_temp2_trans_count: 16,
    thm_temp1_total_time: 17,
    thm_temp2_total_time: 18,
  };
  const bytes = encodeSmartLog(s);
  assert.equal(bytes.length, SMART_LOG_BYTES);
  const back = parseSmartLog(bytes);
  assert.deepEqual(back, s);
  // Key order is nvme-cli's, which the JSON writer relies on.
  assert.deepEqual(Object.keys(back), Object.keys(s));
  assert.deepEqual(encodeSmartLog(back), bytes);
});

test("layouts: the software controller's SMART log through the driver", async () => {
  await using dev = await NVMeDev.open("sim:ns=1M:512");
  await dev.ns(1).write(0, new Uint8Array(512 * 4).fill(1));
  const s = await smartLog(dev);
  assert.equal(s.temperature, 310);
  assert.equal(s.temperature_sensor_1, 310);
  assert.equal(s.avail_spare, 100);
  assert.equal(s.spare_thresh, 10);
  assert.ok(s.host_write_commands.value >= 1n);
  assert.equal(s.data_units_written.value, 1n); // 4 blocks of 512 bytes: one unit of 1000 x 512, rounded up
});

test("layouts: error log entry round trip (status field and phase tag apart)", () => {
  const e = {
    error_count: new Uint64(2n ** 60n),
    sqid: 3,
    cmdid: 0xbeef,
    status_field: 0x4002 & 0x7fff,
    phase_tag: 1,
    parm_error_location: 0xffff,
    lba: new Uint64(0x1_2345_6789n),
    nsid: 0xffffffff,
    vs: 4,
    trtype: 3,
    cs: new Uint64(99n),
    trtype_spec_info: 0x1234,
  };
  const two = new Uint8Array(2 * ERROR_LOG_ENTRY_SIZE);
  encodeErrorLogEntry(e, two.subarray(ERROR_LOG_ENTRY_SIZE));
  const [empty, back] = parseErrorLog(two);
  assert.deepEqual(back, e);
  assert.equal(empty.error_count.value, 0n);
});

test("layouts: firmware slot, effects, self-test and sanitize logs round trip", () => {
  const fw = parseFwLog(encodeFwLog({ afi: 0x21, frs: ["1.0     ", "", "abcdefgh"] }));
  assert.deepEqual([fw.afi, fw.activeSlot, fw.nextSlot], [0x21, 1, 2]);
  assert.deepEqual(fw.frs, ["1.0     ", "", "abcdefgh", "", "", "", ""]);
  assert.equal(fw.frsRaw[1], 0n);

  const acs: number[] = [], iocs: number[] = [];
  acs[0x06] = 1;
  acs[0x80] = 0xf;
  iocs[0x01] = 3;
  iocs[0xff] = 0x10000;
  const ef = parseEffectsLog(encodeEffectsLog({ acs, iocs }), 2);
  assert.equal(ef.csi, 2);
  assert.deepEqual([ef.acs[0x06], ef.acs[0x80], ef.acs[0x07], ef.iocs[0x01], ef.iocs[0xff]], [1, 0xf, 0, 3, 0x10000]);

  const st = { result: 7, code: 2, segment: 3, vdi: 0xf, poh: 1234n, nsid: 1, flba: 2n ** 40n, sct: 2, sc: 0x81, vs: 0xabcd };
  const log = parseSelfTestLog(encodeSelfTestLog({ currentOperation: 1, completion: 42, results: [st] }));
  assert.deepEqual([log.currentOperation, log.completion], [1, 42]);
  assert.deepEqual(log.results[0], st);
  assert.equal(log.results.length, 20);
  assert.ok(log.results.slice(1).every((r) => r.result === 0xf && r.code === 0), "unused entries");

  const raw = { sprog: 0x8000, sstat: 2 | (3 << 3) | 0x100, scdw10: 0x2, eto: 1, etbe: 2, etce: 3, etond: 4, etbend: 5, etcend: 0xffffffff };
  const san = parseSanitizeLog(encodeSanitizeLog(raw));
  assert.deepEqual(san, { ...raw, status: 2, passes: 3, globalErased: true });
});

test("layouts: namespace id lists, controller lists, namespace create and descriptors round trip", () => {
  const ids = Array.from({ length: 1030 }, (_, i) => i + 1);
  const list = encodeNsidList(ids);
  assert.deepEqual(decodeNsidList(list), ids.slice(0, 1024), "at most 1024");
  const gap = encodeNsidList([1, 0, 3]);
  assert.deepEqual(decodeNsidList(gap), [1], "the list ends at the first 0");
  assert.deepEqual(decodeNsidList(gap, true), [1, 3], "nvme-cli's list-ns reads past it");
  assert.deepEqual(parseChangedNsList(encodeNsidList([7, 9])), [7, 9]);
  assert.equal(parseChangedNsList(encodeNsidList([0xffffffff])), null, "overflow: read them all");

  assert.deepEqual(decodeControllerList(encodeControllerList([1, 0x20, 0xffef])), [1, 0x20, 0xffef]);

  const c = { nsze: 2n ** 40n, ncap: 2n ** 39n, lbaFormat: 0x15, dps: 1, nmic: 1 };
  assert.deepEqual(decodeNamespaceCreate(encodeNamespaceCreate(c)), { ...c, flbas: 0x25 });

  const guid = Uint8Array.from({ length: 16 }, (_, i) => i + 1);
  const descs = decodeNsDescriptors(encodeNsDescriptors([{ nidt: 2, id: guid }, { nidt: 4, id: new Uint8Array([0]) }]));
  assert.deepEqual(descs.map((d) => [d.loc, d.nidt, d.nidl, [...d.id]]), [[0, 2, 16, [...guid]], [20, 4, 1, [0]]]);
});

test("layouts: feature data (timestamp, host behavior) and IO range lists round trip", () => {
  const ts = { timestamp: 2 ** 47 + 12345, synch: true, origin: 1 };
  assert.deepEqual(decodeTimestamp(encodeTimestamp(ts)), ts);
  assert.deepEqual(decodeTimestamp(encodeTimestamp({ timestamp: 5 })), { timestamp: 5, synch: false, origin: 0 });
  const hb = { acre: 1, etdas: 0, lbafee: 1 };
  assert.deepEqual(decodeHostBehavior(encodeHostBehavior(hb)), hb);

  const ranges: [number, number][] = [[0, 1], [2 ** 40 + 3, 0xffff_ffff], [2 ** 52, 8]];
  const dsm = new Uint8Array(4096);
  encodeDsmRanges(ranges, dsm);
  assert.deepEqual(decodeDsmRanges(dsm, 3), ranges);
  const copy = new Uint8Array(3 * 32);
  const src: [number, number][] = [[7, 1], [2 ** 45, 65536], [9, 128]];
  encodeCopyRanges(src, copy);
  assert.deepEqual(decodeCopyRanges(copy, 3), src);
});

/** A port whose DMA memory and admin queue are counted, not real. */
function fakePort(answer: (buf: Uint8Array) => Promise<number>) {
  const live = new Set<DmaBuffer>();
  let next = 0x1000;
  const port: AdminPort & { live: Set<DmaBuffer>; freed: number } = {
    live,
    freed: 0,
    allocDma(size: number): DmaBuffer {
      const b: DmaBuffer = { bytes: new Uint8Array(Math.ceil(size / 4096) * 4096), iova: next, size, busy: 0, onIdle: null };
      next += 0x10000;
      live.add(b);
      return b;
    },
    freeDma(b: DmaBuffer): void {
      live.delete(b);
      port.freed++;
    },
    adminCommand(_cmd, iova = 0, _len = 0): Promise<number> {
      const b = [...live].find((x) => x.iova === iova);
      return answer(b ? b.bytes : new Uint8Array(0));
    },
  };
  return port;
}

test("admin transfer: allocate, send, copy out, free; input copied in; freed on failure too", async () => {
  const port = fakePort((b) => {
    b[0] ^= 0xff;
    b[1] = 0x42;
    return Promise.resolve(7);
  });
  const cmd = new Uint32Array(16);
  const r = await adminTransfer(port, cmd, { bytes: 8 });
  assert.equal(r.dw0, 7);
  assert.deepEqual([...r.data!], [0xff, 0x42, 0, 0, 0, 0, 0, 0], "zeroed before the command, copied after");
  assert.equal(port.live.size, 0);
  assert.equal(port.freed, 1);

  const w = await adminTransfer(port, cmd, { bytes: 4, input: new Uint8Array([1, 2, 3, 4]) });
  assert.equal(w.data, null, "a host-to-controller transfer reads nothing back by default");
  assert.equal(port.freed, 2);

  const failing = fakePort(() => Promise.reject(new Error("Invalid Field in Command")));
  await assert.rejects(adminTransfer(failing, cmd, { bytes: 4096 }));
  assert.equal(failing.live.size, 0, "freed after a failed command");

  // A caller's buffer (the controller's scratch) is used, not freed.
  const own = port.allocDma(4096);
  own.bytes.fill(9);
  const s = await dmaTransfer(port, () => Promise.resolve(0), { bytes: 16, buffer: own });
  assert.deepEqual([...s.data!], new Array(16).fill(0));
  assert.ok(port.live.has(own));
});

test("admin transfer: through the controller, the free waits for a command still in flight", async () => {
  await using dev = await NVMeDev.open("sim:");
  const c = dev.controller;
  let seen: DmaBuffer | null = null;
  const r = await dmaTransfer(c, (buf) => {
    seen = buf;
    // The command holds the memory: freeDma defers the unmap until busy drops to 0.
    buf.busy++;
    return Promise.resolve(0);
  }, { bytes: 4096, read: false });
  assert.equal(r.data, null);
  const b = seen! as DmaBuffer;
  assert.equal(b.bytes.length, 0, "views detached at once");
  assert.equal(typeof b.onIdle, "function", "the unmap waits for the command");
  assert.equal(c.dmaAt(b.iova), null, "no longer the controller's live memory");
  b.busy--;
  b.onIdle!(b);
});
