/**
 * Flexible Data Placement on a namespace: Reclaim Unit Handle Status and
 * Update (I/O Management Receive and Send) and writes that place their data
 * with a placement identifier (DTYPE 2, DSPEC = the identifier). The
 * endurance group's logs and features are lib/admin/fdp.ts's; layouts are
 * lib/nvme/fdp.ts's.
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { ruhStatus, ruhUpdate, writePlaced } from "@tsnvme/tsnvme/io";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:ns=1M:512;fdp=4:64K");
 * await writePlaced(dev, 1, 0, new Uint8Array(4096), 2);
 * const s = await ruhStatus(dev, 1);
 * assert.equal(s.ruhss[2].ruamw.value, 128n - 8n);
 * await ruhUpdate(dev, 1, [2]);
 * assert.equal((await ruhStatus(dev, 1)).ruhss[2].ruamw.value, 128n);
 * ```
 * @module
 */
import type { Controller } from "../nvme/controller.ts";
import { setRw, type Sqe } from "../nvme/command.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { dmaTransfer } from "../nvme/transfer.ts";
import { IoOpc } from "../nvme/spec.ts";
import { flbasIndex, parseIdNs } from "../nvme/identify.ts";
import { encodePidList, FdpBytes, parseRuhStatus, placementDwords, type RuhStatus, ruhStatusCmd, ruhUpdateCmd } from "../nvme/fdp.ts";

export { placementDwords, type RuhStatus, type RuhStatusDesc } from "../nvme/fdp.ts";

/** Anything that carries an initialised controller, e.g. an NVMeDev. */
export interface PlacementTarget {
  /** The controller: its IO queues and DMA memory. */
  readonly controller: Controller;
}

async function send(dev: PlacementTarget, cmd: Sqe, bytes: number, input?: Uint8Array, timeoutMs?: number): Promise<Uint8Array | null> {
  const ctrl = dev.controller, q = ctrl.io[0];
  if (!q) throw new InvalidArgumentError("the device has no IO queue");
  if (bytes > ctrl.maxTransferBytes) throw new InvalidArgumentError(`${bytes} bytes exceed the controller's transfer limit of ${ctrl.maxTransferBytes}`);
  const r = await dmaTransfer(ctrl, (b) => q.submit(cmd, b.iova, bytes, timeoutMs ?? q.defaultTimeoutMs, b), { bytes, input, read: !input });
  return r.data;
}

function nsidArg(nsid: number): number {
  if (!Number.isInteger(nsid) || nsid < 1 || nsid >= 0xffffffff) throw new InvalidArgumentError(`nsid must be 1-0xfffffffe, got ${String(nsid)}`);
  return nsid;
}

/** Reclaim Unit Handle Status of namespace `nsid`: one descriptor per placement identifier. */
export async function ruhStatus(dev: PlacementTarget, nsid: number, opts: { timeoutMs?: number } = {}): Promise<RuhStatus> {
  const head = parseRuhStatus((await send(dev, ruhStatusCmd(nsidArg(nsid), FdpBytes.RUH_STATUS_HEADER), FdpBytes.RUH_STATUS_HEADER, undefined, opts.timeoutMs))!);
  const bytes = FdpBytes.RUH_STATUS_HEADER + head.nruhsd * FdpBytes.RUH_STATUS_DESC;
  if (!head.nruhsd) return head;
  return parseRuhStatus((await send(dev, ruhStatusCmd(nsid, bytes), bytes, undefined, opts.timeoutMs))!);
}

/** Reclaim Unit Handle Update: the handles `pids` name move to fresh reclaim units. */
export async function ruhUpdate(dev: PlacementTarget, nsid: number, pids: readonly number[], opts: { timeoutMs?: number } = {}): Promise<void> {
  if (!pids.length || pids.length > 0x10000 || pids.some((p) => !Number.isInteger(p) || p < 0 || p > 0xffff)) {
    throw new InvalidArgumentError("placement identifiers must be 1 or more 16-bit values");
  }
  const data = encodePidList(pids);
  await send(dev, ruhUpdateCmd(nsidArg(nsid), pids.length), data.length, data, opts.timeoutMs);
}

/**
 * Write `data` (whole blocks) at `lba` of namespace `nsid` with placement
 * identifier `pid`. For the hot path, {@link placementDwords} gives the
 * CDW12 flags and CDW13 to set on a prepared write instead.
 */
export async function writePlaced(dev: PlacementTarget, nsid: number, lba: number, data: Uint8Array, pid: number, opts: { timeoutMs?: number } = {}): Promise<void> {
  const ns = parseIdNs(await dev.controller.identifyNamespace(nsidArg(nsid)));
  const bs = 2 ** ns.lbafs[flbasIndex(ns.flbas)].ds;
  if (!(data instanceof Uint8Array) || !data.length || data.length % bs || data.length / bs > 65536) {
    throw new InvalidArgumentError(`data must be 1 to 65536 whole ${bs}-byte blocks`);
  }
  if (!Number.isSafeInteger(lba) || lba < 0) throw new InvalidArgumentError(`lba must be a non-negative integer, got ${String(lba)}`);
  if (!Number.isInteger(pid) || pid < 0 || pid > 0xffff) throw new InvalidArgumentError(`placement identifier must be 0-65535, got ${String(pid)}`);
  const { cdw12, cdw13 } = placementDwords(pid);
  const cmd = new Uint32Array(16);
  setRw(cmd, IoOpc.WRITE, nsid, lba, data.length / bs - 1, cdw12);
  cmd[13] = cdw13;
  await send(dev, cmd, data.length, data, opts.timeoutMs);
}
