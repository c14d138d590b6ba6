/**
 * SR-IOV virtualization management as nvme-cli has it: `primary-ctrl-caps`
 * (Identify Primary Controller Capabilities), `list-secondary` (Identify
 * Secondary Controller List) and `virt-mgmt` (Virtualization Management:
 * flexible resources for the primary, assignment to secondaries, secondaries
 * online and offline). Layouts: lib/nvme/virt.ts. Beyond nvme-cli, what a
 * libvfn user does next: enable VFs from the PF's process with a VF token
 * ({@link enableVfs}, sysfs and VFIO in lib/vfio/sriov.ts), bring their
 * secondary controllers online ({@link onlineSecondary}), open each VF with
 * `NVMeDev.open(vf, { vfToken })`.
 * @module
 */
import type { AdminTarget } from "./log.ts";
import { InvalidArgumentError, SetupError } from "../nvme/errors.ts";
import { VfioDevice } from "../vfio/vfio.ts";
import { newVfToken, type NumVfsOptions, parseVfToken, setNumVfs, type VfInfo } from "../vfio/sriov.ts";
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
export { newVfToken, type NumVfsOptions, type SriovInfo, sriovInfo, type VfInfo } from "../vfio/sriov.ts";

/** Identify Primary Controller Capabilities of the controller behind `dev` (CNTID `cntid`: nvme-cli's `primary-ctrl-caps -c`). */
export async function primaryCtrlCaps(dev: AdminTarget, cntid = 0): Promise<PrimaryCtrlCaps> {
  return parsePrimaryCtrlCaps(await dev.controller.identify(primaryCtrlCapsCmd(cntid)));
}

/**
 * The secondary controllers of this primary, from controller id `cntid` up (nvme-cli's
 * `list-secondary -c`; `nsid` is its `-n`, sent in the command's NSID).
 */
export async function secondaryCtrlList(dev: AdminTarget, cntid = 0, nsid = 0): Promise<SecondaryCtrl[]> {
  return parseSecondaryCtrlList(await dev.controller.identify(secondaryCtrlListCmd(cntid, nsid)));
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

/** What {@link onlineSecondary} assigned. */
export interface SecondaryResources {
  /** VQ resources (the admin queue counts as one). */
  nvq: number;
  /** VI resources (interrupt vectors). */
  nvi: number;
}

/**
 * Bring secondary controller `scid` online with `nvq` VQ and `nvi` VI flexible resources (default:
 * the most one secondary may hold, VQFRSM/VIFRSM), as libvfn's sriov example and QEMU's docs do:
 * offline, assign VQ, assign VI, online. The PF must own no flexible resources it would need to
 * give (see {@link virtMgmt} PRIMARY_FLEXIBLE, effective after a function level reset), and on
 * QEMU the VF must be enabled (sriov_numvfs) before it can go online.
 */
export async function onlineSecondary(dev: AdminTarget, scid: number, r: Partial<SecondaryResources> = {}): Promise<SecondaryResources> {
  const caps = await primaryCtrlCaps(dev);
  const nvq = r.nvq ?? caps.vqfrsm, nvi = r.nvi ?? caps.vifrsm;
  await virtMgmt(dev, { act: VirtAction.SECONDARY_OFFLINE, cntlid: scid });
  await virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, rt: VirtResource.VQ, cntlid: scid, nr: nvq });
  await virtMgmt(dev, { act: VirtAction.SECONDARY_ASSIGN, rt: VirtResource.VI, cntlid: scid, nr: nvi });
  await virtMgmt(dev, { act: VirtAction.SECONDARY_ONLINE, cntlid: scid });
  return { nvq, nvi };
}

/** Take secondary controller `scid` offline (its flexible resources return to the pool). */
export async function offlineSecondary(dev: AdminTarget, scid: number): Promise<void> {
  await virtMgmt(dev, { act: VirtAction.SECONDARY_OFFLINE, cntlid: scid });
}

/** Options of {@link enableVfs}. */
export interface EnableVfsOptions extends NumVfsOptions {
  /** The VF token to set on the PF (a UUID); default a fresh random one. */
  token?: string;
}

/** A VF enabled by {@link enableVfs}, with its secondary controller. */
export interface EnabledVf extends VfInfo {
  /** Secondary controller id of this VF (from the secondary controller list), or null if unlisted. */
  scid: number | null;
}

/** What {@link enableVfs} did. */
export interface EnabledVfs {
  /** The VF token now set on the PF: open each VF with `NVMeDev.open(vf.address, { vfToken: token })`. */
  token: string;
  /** The VFs, bound and ready to open. */
  vfs: EnabledVf[];
}

function vfioOf(dev: AdminTarget): VfioDevice {
  const d = (dev.controller.transport as { device?: unknown }).device;
  if (!(d instanceof VfioDevice)) {
    throw new SetupError("sriov", `${dev.controller.transport.name}: VFs are a PCIe thing; open the PF through VFIO (a PCI address)`);
  }
  return d;
}

/**
 * Enable `n` VFs of the PF behind `dev` (opened through VFIO): set the PF's VF token, write
 * sriov_numvfs (switching on vfio-pci's enable_sriov when needed) and wait until every VF is bound
 * to vfio-pci. The VFs' secondary controllers still need resources and to be online
 * ({@link onlineSecondary}) before their controllers can be enabled. Keep the PF open while VFs
 * are in use: closing (or resetting) the PF takes its secondaries offline.
 * @example
 * ```ts ignore
 * await using pf = await NVMeDev.open("0000:01:00.0");
 * const { token, vfs } = await enableVfs(pf, 1);
 * await onlineSecondary(pf, vfs[0].scid!);
 * await using vf = await NVMeDev.open(vfs[0].address, { vfToken: token });
 * console.log(vf.info.cntlid, vf.nsList());
 * ```
 */
export async function enableVfs(dev: AdminTarget, n: number, o: EnableVfsOptions = {}): Promise<EnabledVfs> {
  const vfio = vfioOf(dev);
  const token = parseVfToken(o.token ?? newVfToken());
  vfio.setVfToken(token);
  const vfs = await setNumVfs(vfio.address, n, o);
  const sec = await secondaryCtrlList(dev);
  return { token, vfs: vfs.map((v) => ({ ...v, scid: sec.find((s) => s.vfn === v.vfn)?.scid ?? null })) };
}

/**
 * Disable the VFs of the PF behind `dev` (sriov_numvfs = 0). Close every VF first: the kernel
 * waits for their users, so this fails with DeviceBusyError after `timeoutMs` otherwise.
 */
export async function disableVfs(dev: AdminTarget, o: NumVfsOptions = {}): Promise<void> {
  await setNumVfs(vfioOf(dev).address, 0, o);
}
