/**
 * Flexible Data Placement administration: the FDP Configurations, Reclaim
 * Unit Handle Usage, FDP Statistics and FDP Events logs (read for an
 * endurance group through the Log Specific Identifier) and the FDP and FDP
 * Events features, decoded by lib/nvme/fdp.ts with nvme-cli 2.3's keys. The
 * per-namespace side (reclaim unit handle status and update, placement on
 * writes) is lib/io/fdp.ts.
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { fdpConfigs, fdpStats } from "@tsnvme/tsnvme/admin";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:ns=1M:512;fdp=4");
 * const cfg = await fdpConfigs(dev, 1);
 * assert.equal(cfg.configs[0].nruh, 4);
 * assert.equal((await fdpStats(dev, 1)).hbmw.value, 0n);
 * ```
 * @module
 */
import { InvalidArgumentError } from "../nvme/errors.ts";
import { getFeaturesCmd, setFeaturesCmd } from "../nvme/command.ts";
import { adminTransfer } from "../nvme/transfer.ts";
import {
  FdpBytes,
  type FdpConfigLog,
  type FdpEventsLog,
  FdpFid,
  FdpLogId,
  type FdpStatsLog,
  parseFdpConfigLog,
  parseFdpEventsLog,
  parseFdpStatsLog,
  parseRuhUsageLog,
  type RuhUsageLog,
} from "../nvme/fdp.ts";
import { viewOf } from "../nvme/wide.ts";
import { type AdminTarget, getLogPage } from "./log.ts";

export type { FdpConfig, FdpConfigLog, FdpEvent, FdpEventsLog, FdpStatsLog, RuhUsageLog } from "../nvme/fdp.ts";

function endgrp(egid: number): number {
  if (!Number.isInteger(egid) || egid < 1 || egid > 0xffff) throw new InvalidArgumentError(`endurance group must be 1-65535, got ${String(egid)}`);
  return egid;
}

/** A log whose size its own header says: read the header, then the whole log. */
async function sized(dev: AdminTarget, lid: number, egid: number, header: number, size: (h: Uint8Array) => number): Promise<Uint8Array> {
  const opts = { nsid: 0, lsi: endgrp(egid) };
  const h = await getLogPage(dev, lid, header, opts);
  const len = Math.ceil(size(h) / 4) * 4;
  return len <= header ? h : await getLogPage(dev, lid, len, opts);
}

/** Read the FDP Configurations log (20h) of endurance group `egid`. */
export async function fdpConfigs(dev: AdminTarget, egid: number): Promise<FdpConfigLog> {
  return parseFdpConfigLog(await sized(dev, FdpLogId.CONFIGS, egid, FdpBytes.CONFIG_LOG_HEADER, (h) => viewOf(h).getUint32(4, true)));
}

/** Read the Reclaim Unit Handle Usage log (21h) of endurance group `egid`. */
export async function fdpUsage(dev: AdminTarget, egid: number): Promise<RuhUsageLog> {
  return parseRuhUsageLog(
    await sized(dev, FdpLogId.RUH_USAGE, egid, FdpBytes.RUH_USAGE_HEADER, (h) => FdpBytes.RUH_USAGE_HEADER + viewOf(h).getUint16(0, true) * FdpBytes.RUH_USAGE_DESC),
  );
}

/** Read the FDP Statistics log (22h) of endurance group `egid`. */
export async function fdpStats(dev: AdminTarget, egid: number): Promise<FdpStatsLog> {
  return parseFdpStatsLog(await getLogPage(dev, FdpLogId.STATS, FdpBytes.STATS_LOG, { nsid: 0, lsi: endgrp(egid) }));
}

/** Read the FDP Events log (23h) of endurance group `egid`: host events, or controller events with `host` false. */
export async function fdpEvents(dev: AdminTarget, egid: number, host = false): Promise<FdpEventsLog> {
  const bytes = FdpBytes.EVENTS_HEADER + 63 * FdpBytes.EVENT;
  return parseFdpEventsLog(await getLogPage(dev, FdpLogId.EVENTS, bytes, { nsid: 0, lsi: endgrp(egid), lsp: host ? 1 : 0 }));
}

/** The FDP feature (1Dh) of endurance group `egid`: enabled, and the configuration in use. */
export async function fdpFeature(dev: AdminTarget, egid: number): Promise<{ enabled: boolean; index: number }> {
  const dw0 = await dev.controller.adminCommand(getFeaturesCmd(FdpFid.FDP, { cdw11: endgrp(egid) }));
  return { enabled: (dw0 & 1) === 1, index: (dw0 >>> 8) & 0xff };
}

/**
 * Set Features FDP Events (1Eh): enable (or disable) event `types` on
 * placement handle `ph` of namespace `nsid`.
 */
export async function setFdpEvents(dev: AdminTarget, nsid: number, ph: number, types: readonly number[], enable: boolean): Promise<void> {
  if (!types.length || types.length > 255 || types.some((t) => !Number.isInteger(t) || t < 0 || t > 255)) {
    throw new InvalidArgumentError("event types must be 1 to 255 bytes");
  }
  if (!Number.isInteger(ph) || ph < 0 || ph > 0xffff) throw new InvalidArgumentError(`placement handle must be 0-65535, got ${String(ph)}`);
  const bytes = Math.ceil(types.length / 4) * 4;
  const cmd = setFeaturesCmd(FdpFid.FDP_EVENTS, (ph | types.length << 16) >>> 0, { nsid, cdw12: enable ? 1 : 0 });
  await adminTransfer(dev.controller, cmd, { bytes, input: Uint8Array.from(types) });
}

/** Get Features FDP Events: the event types placement handle `ph` of namespace `nsid` reports, and whether each is enabled. */
export async function getFdpEvents(dev: AdminTarget, nsid: number, ph: number, max = 255): Promise<{ type: number; enabled: boolean }[]> {
  const bytes = Math.ceil((max * 2) / 4) * 4;
  const cmd = getFeaturesCmd(FdpFid.FDP_EVENTS, { nsid, cdw11: (ph | max << 16) >>> 0 });
  const r = await adminTransfer(dev.controller, cmd, { bytes });
  const out: { type: number; enabled: boolean }[] = [];
  for (let i = 0; i < Math.min(r.dw0, max); i++) out.push({ type: r.data![2 * i], enabled: (r.data![2 * i + 1] & 1) === 1 });
  return out;
}
