/**
 * SR-IOV virtualization management as nvme-cli has it: `primary-ctrl-caps`
 * (Identify Primary Controller Capabilities), `list-secondary` (Identify
 * Secondary Controller List) and `virt-mgmt` (Virtualization Management:
 * flexible resources for the primary, assignment to secondaries, secondaries
 * online and offline). Layouts: lib/nvme/virt.ts.
 * @module
 */
import type { AdminTarget } from "./log.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import {
  parsePrimaryCtrlCaps,
  parseSecondaryCtrlList,
  type PrimaryCtrlCaps,
  primaryCtrlCapsCmd,
  type SecondaryCtrl,
  secondaryCtrlListCmd,
  VirtAction,
  virtMgmtCmd,
  VirtResource,
} from "../nvme/virt.ts";

export { type PrimaryCtrlCaps, type SecondaryCtrl, VirtAction, VirtResource } from "../nvme/virt.ts";

/** Identify Primary Controller Capabilities of the controller behind `dev`. */
export async function primaryCtrlCaps(dev: AdminTarget): Promise<PrimaryCtrlCaps> {
  return parsePrimaryCtrlCaps(await dev.controller.identify(primaryCtrlCapsCmd()));
}

/** The secondary controllers of this primary, from controller id `cntid` up (nvme-cli's `list-secondary -c`). */
export async function secondaryCtrlList(dev: AdminTarget, cntid = 0): Promise<SecondaryCtrl[]> {
  return parseSecondaryCtrlList(await dev.controller.identify(secondaryCtrlListCmd(cntid)));
}

/** What {@link virtMgmt} does. */
export interface VirtMgmtOptions {
  /** Action: a {@link VirtAction} value. */
  act: number;
  /** Resource type: {@link VirtResource} VQ (0) or VI (1). */
  rt?: number;
  /** Controller the action is about (a secondary's SCID; the primary's CNTLID for PRIMARY_FLEXIBLE). */
  cntlid: number;
  /** Number of resources (assign, primary flexible). */
  nr?: number;
}

/** Virtualization Management; resolves to the number of resources allocated (CQE DW0). */
export async function virtMgmt(dev: AdminTarget, o: VirtMgmtOptions): Promise<number> {
  const acts: number[] = Object.values(VirtAction);
  if (!acts.includes(o.act)) throw new InvalidArgumentError(`virt-mgmt action must be one of ${acts.join(", ")}, got ${o.act}`);
  const rt = o.rt ?? VirtResource.VQ;
  if (rt !== VirtResource.VQ && rt !== VirtResource.VI) throw new InvalidArgumentError(`virt-mgmt resource type must be 0 (VQ) or 1 (VI), got ${rt}`);
  if (!Number.isInteger(o.cntlid) || o.cntlid < 0 || o.cntlid > 0xffff) throw new InvalidArgumentError(`cntlid must be 0-65535, got ${o.cntlid}`);
  const nr = o.nr ?? 0;
  if (!Number.isInteger(nr) || nr < 0 || nr > 0xffff) throw new InvalidArgumentError(`nr must be 0-65535, got ${nr}`);
  return await dev.controller.adminCommand(virtMgmtCmd(o.act, rt, o.cntlid, nr));
}
