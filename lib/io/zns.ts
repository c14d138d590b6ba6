/**
 * Zoned namespaces (NVMe ZNS): the ZNS Identify data, Report Zones, Zone
 * Management Send (open, close, finish, reset, offline; one zone or all),
 * Zone Management Receive, and Zone Append, which returns the LBA the data
 * landed at. Layouts are lib/nvme/zns.ts's; a broken zone rule rejects with
 * {@link NvmeZoneError} naming the rule (full, read-only, offline, invalid
 * write, invalid transition, ...).
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { reportZones, zoneAppend, ZoneState } from "@tsnvme/tsnvme/io";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:ns=4M:512;zoned=1:2048");
 * const first = await zoneAppend(dev, 1, 0, new Uint8Array(1024).fill(1));
 * const again = await zoneAppend(dev, 1, 0, new Uint8Array(512).fill(2));
 * assert.deepEqual([first, again], [0, 2]);
 * const r = await reportZones(dev, 1);
 * assert.equal(r.nrZones, 4);
 * assert.equal(r.zones[0].state, ZoneState.IMPLICITLY_OPENED);
 * assert.equal(r.zones[0].wp, 3);
 * ```
 * @module
 */
import type { Controller } from "../nvme/controller.ts";
import { identifyCmd, type Sqe } from "../nvme/command.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { dmaTransfer } from "../nvme/transfer.ts";
import { Cns } from "../nvme/spec.ts";
import { flbasIndex, parseIdNs } from "../nvme/identify.ts";
import {
  CSI_ZNS,
  parseZnsIdCtrl,
  parseZnsIdNs,
  parseZoneReport,
  ZONE_DESC_BYTES,
  ZONE_REPORT_HEADER_BYTES,
  zoneAppendCmd,
  zoneMgmtRecvCmd,
  zoneMgmtSendCmd,
  type ZnsIdCtrl,
  type ZnsIdNs,
  type ZoneReport,
  ZoneSendAction,
} from "../nvme/zns.ts";

export {
  CSI_ZNS,
  type ZnsIdCtrl,
  type ZnsIdNs,
  type ZnsLbaFormatExt,
  type ZoneDescriptor,
  type ZoneReport,
  ZoneReportFilter,
  ZoneSendAction,
  ZoneState,
  zoneStateName,
} from "../nvme/zns.ts";
export { NvmeZoneError, type ZoneErrorKind } from "../nvme/errors.ts";

/** Anything that carries an initialised controller, e.g. an NVMeDev. */
export interface ZonedTarget {
  /** The controller: its IO queues and DMA memory. */
  readonly controller: Controller;
}

function u64Arg(v: number, what: string): number {
  if (!Number.isSafeInteger(v) || v < 0) throw new InvalidArgumentError(`${what} must be a non-negative integer, got ${String(v)}`);
  return v;
}

function nsidArg(nsid: number): number {
  if (!Number.isInteger(nsid) || nsid < 1 || nsid >= 0xffffffff) throw new InvalidArgumentError(`nsid must be 1-0xfffffffe, got ${String(nsid)}`);
  return nsid;
}

/** Send `cmd` on the first IO queue with a DMA buffer of `bytes` (`input` copied in); DW0, DW1 and the data. */
async function ioCommand(dev: ZonedTarget, cmd: Sqe, bytes: number, input?: Uint8Array, timeoutMs?: number): Promise<{ dw0: number; dw1: number; data: Uint8Array | null }> {
  const ctrl = dev.controller;
  const q = ctrl.io[0];
  if (!q) throw new InvalidArgumentError("the device has no IO queue");
  if (bytes > ctrl.maxTransferBytes) throw new InvalidArgumentError(`${bytes} bytes exceed the controller's transfer limit of ${ctrl.maxTransferBytes}`);
  let dw1 = 0;
  if (!bytes) {
    const c = await q.submitForCompletion(cmd, 0, 0, timeoutMs ?? q.defaultTimeoutMs);
    return { dw0: c.dw0 >>> 0, dw1: c.dw1 >>> 0, data: null };
  }
  const r = await dmaTransfer(ctrl, async (b) => {
    const c = await q.submitForCompletion(cmd, b.iova, bytes, timeoutMs ?? q.defaultTimeoutMs, b);
    dw1 = c.dw1 >>> 0;
    return c.dw0 >>> 0;
  }, { bytes, input, read: !input });
  return { dw0: r.dw0, dw1, data: r.data };
}

const blockSizes = new WeakMap<Controller, Map<number, number>>();

/** Logical block size of `nsid` (Identify Namespace once per controller and namespace). */
async function blockSizeOf(dev: ZonedTarget, nsid: number): Promise<number> {
  let m = blockSizes.get(dev.controller);
  if (!m) blockSizes.set(dev.controller, m = new Map());
  let bs = m.get(nsid);
  if (bs === undefined) {
    const ns = parseIdNs(await dev.controller.identifyNamespace(nsid));
    if (ns.nsze.value === 0n) throw new InvalidArgumentError(`namespace ${nsid} is not active`);
    bs = 2 ** ns.lbafs[flbasIndex(ns.flbas)].ds;
    m.set(nsid, bs);
  }
  return bs;
}

/** Identify the Zoned Namespace Command Set controller data (CNS 06h, CSI 02h). */
export async function znsIdCtrl(dev: ZonedTarget): Promise<ZnsIdCtrl> {
  return parseZnsIdCtrl(await dev.controller.identify(identifyCmd(Cns.CSI_CTRL, 0, 0, CSI_ZNS)));
}

/** Identify a zoned namespace (CNS 05h, CSI 02h), with one LBA format extension per LBA format. */
export async function znsIdNs(dev: ZonedTarget, nsid: number): Promise<ZnsIdNs> {
  const c = dev.controller;
  const ns = parseIdNs(await c.identifyNamespace(nsidArg(nsid)));
  return parseZnsIdNs(await c.identify(identifyCmd(Cns.CSI_NS, nsid, 0, CSI_ZNS)), ns.nlbaf);
}

/** Zone size in blocks of a zoned namespace (its LBA format in use). */
export async function zoneSize(dev: ZonedTarget, nsid: number): Promise<number> {
  const c = dev.controller;
  const ns = parseIdNs(await c.identifyNamespace(nsidArg(nsid)));
  const z = parseZnsIdNs(await c.identify(identifyCmd(Cns.CSI_NS, nsid, 0, CSI_ZNS)), ns.nlbaf);
  return z.lbafe[flbasIndex(ns.flbas)].zsze;
}

/** Options of {@link reportZones}. */
export interface ReportZonesOptions {
  /** First LBA: the report starts at the zone holding it (default 0). */
  slba?: number;
  /** Only zones in this state ({@link ZoneReportFilter}, default all). */
  filter?: number;
  /** The header counts only the zones returned, not every matching zone. */
  partial?: boolean;
  /** Descriptors to fetch at most (default: every zone, in as many commands as the transfer limit needs). */
  maxZones?: number;
  /** Command timeout in ms. */
  timeoutMs?: number;
}

/**
 * Report Zones (Zone Management Receive): the zone descriptors from
 * `slba` on, all of them by default, in pieces the transfer limit allows.
 */
export async function reportZones(dev: ZonedTarget, nsid: number, opts: ReportZonesOptions = {}): Promise<ZoneReport> {
  nsidArg(nsid);
  const slba = u64Arg(opts.slba ?? 0, "slba");
  const filter = opts.filter ?? 0;
  if (!Number.isInteger(filter) || filter < 0 || filter > 7) throw new InvalidArgumentError(`filter must be 0-7, got ${String(filter)}`);
  const recv = async (from: number, n: number) => {
    const bytes = ZONE_REPORT_HEADER_BYTES + n * ZONE_DESC_BYTES;
    const cmd = zoneMgmtRecvCmd(nsid, from, bytes, { zrasf: filter, partial: opts.partial });
    return parseZoneReport((await ioCommand(dev, cmd, bytes, undefined, opts.timeoutMs)).data!);
  };
  const head = await recv(slba, 0);
  const want = Math.min(head.nrZones, opts.maxZones ?? Infinity);
  const per = Math.max(1, Math.floor((Math.min(dev.controller.maxTransferBytes, 1 << 20) - ZONE_REPORT_HEADER_BYTES) / ZONE_DESC_BYTES));
  const zones: ZoneReport["zones"] = [];
  let from = slba, zsze = 0;
  while (zones.length < want) {
    const r = await recv(from, Math.min(per, want - zones.length));
    if (!r.zones.length) break;
    zones.push(...r.zones);
    if (zones.length >= want) break;
    zsze ||= await zoneSize(dev, nsid);
    from = r.zones[r.zones.length - 1].zslba + zsze; // the next report starts at the zone after the last one
  }
  return { nrZones: opts.partial ? zones.length : head.nrZones, zones };
}

/** Options of a zone action. */
export interface ZoneActionOptions {
  /** Act on every zone in a state the action applies to (`slba` is ignored). */
  selectAll?: boolean;
  /** Command timeout in ms. */
  timeoutMs?: number;
}

/** Zone Management Send action `zsa` ({@link ZoneSendAction}) on the zone starting at `slba`; resolves to DW0. */
export async function zoneMgmtSend(dev: ZonedTarget, nsid: number, slba: number, zsa: number, opts: ZoneActionOptions = {}): Promise<number> {
  const cmd = zoneMgmtSendCmd(nsidArg(nsid), u64Arg(slba, "slba"), zsa, { selectAll: opts.selectAll });
  return (await ioCommand(dev, cmd, 0, undefined, opts.timeoutMs)).dw0;
}

/** Open a zone explicitly. */
export function openZone(dev: ZonedTarget, nsid: number, slba: number, opts?: ZoneActionOptions): Promise<number> {
  return zoneMgmtSend(dev, nsid, slba, ZoneSendAction.OPEN, opts);
}

/** Close an open zone. */
export function closeZone(dev: ZonedTarget, nsid: number, slba: number, opts?: ZoneActionOptions): Promise<number> {
  return zoneMgmtSend(dev, nsid, slba, ZoneSendAction.CLOSE, opts);
}

/** Finish a zone (its write pointer jumps to the end: full). */
export function finishZone(dev: ZonedTarget, nsid: number, slba: number, opts?: ZoneActionOptions): Promise<number> {
  return zoneMgmtSend(dev, nsid, slba, ZoneSendAction.FINISH, opts);
}

/** Reset a zone (empty, write pointer back at its start). */
export function resetZone(dev: ZonedTarget, nsid: number, slba: number, opts?: ZoneActionOptions): Promise<number> {
  return zoneMgmtSend(dev, nsid, slba, ZoneSendAction.RESET, opts);
}

/** Take a read-only zone offline. */
export function offlineZone(dev: ZonedTarget, nsid: number, slba: number, opts?: ZoneActionOptions): Promise<number> {
  return zoneMgmtSend(dev, nsid, slba, ZoneSendAction.OFFLINE, opts);
}

/** Zone Management Receive with raw fields (nvme-cli's zone-mgmt-recv): `bytes` of data back. */
export async function zoneMgmtRecv(
  dev: ZonedTarget,
  nsid: number,
  slba: number,
  bytes: number,
  opts: { zra?: number; zrasf?: number; partial?: boolean; timeoutMs?: number } = {},
): Promise<Uint8Array> {
  if (!Number.isInteger(bytes) || bytes < 4 || bytes % 4) throw new InvalidArgumentError(`data length must be a positive multiple of 4, got ${String(bytes)}`);
  const cmd = zoneMgmtRecvCmd(nsidArg(nsid), u64Arg(slba, "slba"), bytes, opts);
  return (await ioCommand(dev, cmd, bytes, undefined, opts.timeoutMs)).data!;
}

/**
 * Zone Append `data` (whole blocks of namespace `nsid`'s size) to the zone
 * starting at `zslba`; resolves to the LBA the controller wrote it at.
 */
export async function zoneAppend(dev: ZonedTarget, nsid: number, zslba: number, data: Uint8Array, opts: { timeoutMs?: number; placement?: number } = {}): Promise<number> {
  const bs = await blockSizeOf(dev, nsidArg(nsid));
  if (!(data instanceof Uint8Array) || data.length === 0 || data.length % bs) {
    throw new InvalidArgumentError(`data must be a non-empty whole number of ${bs}-byte blocks`);
  }
  const cmd = zoneAppendCmd(nsid, u64Arg(zslba, "zslba"), data.length / bs);
  if (opts.placement !== undefined) {
    cmd[12] |= 2 << 20;
    cmd[13] = (opts.placement & 0xffff) << 16;
  }
  const r = await ioCommand(dev, cmd, data.length, data, opts.timeoutMs);
  return r.dw0 + r.dw1 * 0x1_0000_0000;
}
