/**
 * Firmware update: Firmware Image Download in chunks (within MDTS, at the
 * FWUG granularity, dword aligned), Firmware Commit with every commit action
 * and slot, and the firmware slot log. What FRMW says the controller cannot
 * do is refused with {@link NotSupportedError} before anything is sent.
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { commitFirmware, downloadFirmware, fwLog } from "@tsnvme/tsnvme/firmware";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:fwslots=3");
 * const image = new Uint8Array(16384).fill(0x42); // the software controller takes any image
 * await downloadFirmware(dev, image);
 * const r = await commitFirmware(dev, { slot: 2, action: "replace-and-activate" });
 * assert.equal(r.resetRequired, "next-reset"); // activates at the next controller reset
 * assert.equal((await fwLog(dev)).nextSlot, 2);
 * ```
 * @module
 */
import { fwCommitCmd, fwDownloadCmd } from "../nvme/command.ts";
import { InvalidArgumentError, NvmeStatusError } from "../nvme/errors.ts";
import { FwCommitAction } from "../nvme/spec.ts";
import { dmaTransfer } from "../nvme/transfer.ts";
import { type AdminTarget, type FwSlotLog, fwLog } from "../admin/log.ts";
import { NotSupportedError } from "../admin/support.ts";

export { type AdminTarget, type FwSlotLog, fwLog, NotSupportedError };

/** Decoded FRMW and FWUG of Identify Controller. */
export interface FirmwareCapabilities {
  /** Slot 1 is read-only. */
  slot1ReadOnly: boolean;
  /** Number of firmware slots (1-7). */
  slots: number;
  /** Activation without reset (commit action 3) supported. */
  activateWithoutReset: boolean;
  /** Firmware Update Granularity in bytes (4 when FWUG is 0, not reported, or 0xff, unrestricted). */
  granularity: number;
}

/** Decode FRMW (byte 260) and FWUG (byte 319). */
export function decodeFirmwareCaps(frmw: number, fwug: number): FirmwareCapabilities {
  return {
    slot1ReadOnly: (frmw & 1) !== 0,
    slots: (frmw >> 1) & 7,
    activateWithoutReset: (frmw & 0x10) !== 0,
    granularity: fwug === 0xff || fwug === 0 ? 4 : fwug * 4096,
  };
}

/** The controller's firmware capabilities. */
export function firmwareCapabilities(dev: AdminTarget): FirmwareCapabilities {
  return decodeFirmwareCaps(dev.controller.id.frmw, dev.controller.id.fwug);
}

/** Options for {@link downloadFirmware}. */
export interface DownloadOptions {
  /** Bytes per Firmware Image Download command (default: the granularity, or 64 KiB, within MDTS). */
  chunkBytes?: number;
  /** Byte offset in the image at which `image` starts (default 0). */
  offset?: number;
  /** Called after each chunk with bytes sent so far and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Timeout per command in ms. */
  timeoutMs?: number;
}

function mdtsBytes(dev: AdminTarget): number {
  const mdts = dev.controller.id.mdts;
  return mdts === 0 ? Infinity : dev.controller.cap.mpsMin * 2 ** mdts;
}

/** Plan the chunks of a download: [offset, length] pairs; throws for what cannot be sent. */
export function planDownload(caps: FirmwareCapabilities, maxBytes: number, size: number, opts: DownloadOptions = {}): [number, number][] {
  if (caps.slots === 0) throw new NotSupportedError("FRMW", "the controller reports no firmware slots (FRMW)");
  if (!Number.isSafeInteger(size) || size <= 0) throw new InvalidArgumentError("the firmware image is empty");
  if (size % 4 !== 0) throw new InvalidArgumentError(`the firmware image size ${size} is not a multiple of 4 bytes (dword)`);
  const base = opts.offset ?? 0;
  const g = caps.granularity;
  if (size % g !== 0) {
    throw new InvalidArgumentError(`the firmware image size ${size} is not a multiple of the update granularity ${g} bytes (FWUG); pad it`);
  }
  if (!Number.isSafeInteger(base) || base < 0 || base % 4 !== 0 || base % g !== 0) {
    throw new InvalidArgumentError(`offset ${base} must be a multiple of the update granularity ${g} bytes`);
  }
  const cap = Math.min(maxBytes, 1 << 30);
  let chunk = opts.chunkBytes ?? Math.min(cap, Math.max(g, 64 * 1024));
  if (opts.chunkBytes === undefined) chunk -= chunk % g;
  if (!Number.isSafeInteger(chunk) || chunk <= 0 || chunk % 4 !== 0) {
    throw new InvalidArgumentError(`chunk size ${chunk} must be a positive multiple of 4 bytes`);
  }
  if (chunk % g !== 0) throw new InvalidArgumentError(`chunk size ${chunk} is not a multiple of the update granularity ${g} bytes (FWUG)`);
  if (chunk > cap) throw new InvalidArgumentError(`chunk size ${chunk} exceeds the maximum data transfer size ${cap} bytes (MDTS)`);
  const out: [number, number][] = [];
  for (let off = 0; off < size; off += chunk) out.push([base + off, Math.min(chunk, size - off)]);
  return out;
}

/**
 * Send `image` with Firmware Image Download commands, in order. The image
 * takes effect only after {@link commitFirmware}.
 */
export async function downloadFirmware(dev: AdminTarget, image: Uint8Array, opts: DownloadOptions = {}): Promise<void> {
  if (!(image instanceof Uint8Array)) throw new InvalidArgumentError("firmware image must be a Uint8Array");
  const plan = planDownload(firmwareCapabilities(dev), mdtsBytes(dev), image.byteLength, opts);
  const c = dev.controller;
  const maxLen = Math.max(...plan.map(([, n]) => n));
  const base = opts.offset ?? 0;
  // One buffer for every piece, freed (deferred while a piece is still in flight) at the end.
  await dmaTransfer(c, async (buf) => {
    let sent = 0;
    for (const [off, n] of plan) {
      buf.bytes.set(image.subarray(off - base, off - base + n));
      await c.adminCommand(fwDownloadCmd(n, off), buf.iova, n, opts.timeoutMs);
      sent += n;
      opts.onProgress?.(sent, image.byteLength);
    }
    return 0;
  }, { bytes: maxLen, read: false });
}

/** Commit actions by name. */
export type CommitActionName =
  | "replace"
  | "replace-and-activate"
  | "activate"
  | "replace-and-activate-now"
  | "replace-boot-partition"
  | "activate-boot-partition";

const ACTIONS: Record<CommitActionName, number> = {
  "replace": FwCommitAction.REPLACE,
  "replace-and-activate": FwCommitAction.REPLACE_AND_ACTIVATE,
  "activate": FwCommitAction.ACTIVATE,
  "replace-and-activate-now": FwCommitAction.REPLACE_AND_ACTIVATE_NOW,
  "replace-boot-partition": FwCommitAction.REPLACE_BOOT_PARTITION,
  "activate-boot-partition": FwCommitAction.ACTIVATE_BOOT_PARTITION,
};

/** Options for {@link commitFirmware}. */
export interface CommitOptions {
  /** Slot 1-7, or 0 to let the controller choose (default 0). */
  slot?: number;
  /** Commit action, by name or number 0-7. */
  action: CommitActionName | number;
  /** Boot partition id (0 or 1) for the boot partition actions. */
  bpid?: number;
  /** Timeout in ms. */
  timeoutMs?: number;
}

/** What a successful commit needs before the new firmware runs. */
export interface CommitResult {
  /** "none": running now or nothing to activate; otherwise the reset that activates it. */
  resetRequired: "none" | "conventional" | "nvm-subsystem" | "controller" | "next-reset";
  /** Completion DW0 (bit 0: multiple update detected, for action 3). */
  dw0: number;
}

/** Build the Firmware Commit command, refusing (before anything is sent) what FRMW excludes. */
export function commitCommand(caps: FirmwareCapabilities, o: CommitOptions): Uint32Array {
  const action = typeof o.action === "number" ? o.action : ACTIONS[o.action];
  if (action === undefined || !Number.isInteger(action) || action < 0 || action > 7 || action === 4 || action === 5) {
    throw new InvalidArgumentError(`commit action must be 0-3, 6, 7 or one of ${Object.keys(ACTIONS).join(", ")}, got ${String(o.action)}`);
  }
  const slot = o.slot ?? 0;
  if (!Number.isInteger(slot) || slot < 0 || slot > 7) throw new InvalidArgumentError(`firmware slot must be 0-7, got ${slot}`);
  const bpid = o.bpid ?? 0;
  if (bpid !== 0 && bpid !== 1) throw new InvalidArgumentError(`boot partition id must be 0 or 1, got ${bpid}`);
  if (action < 6) {
    if (caps.slots === 0) throw new NotSupportedError("FRMW", "the controller reports no firmware slots (FRMW)");
    if (slot > caps.slots) {
      throw new NotSupportedError("FRMW", `firmware slot ${slot} does not exist: the controller has ${caps.slots} slot(s) (FRMW)`);
    }
    const replaces = action === 0 || action === 1 || action === 3;
    if (replaces && caps.slot1ReadOnly && (slot === 1 || (slot === 0 && caps.slots === 1))) {
      throw new NotSupportedError("FRMW", "firmware slot 1 is read-only (FRMW bit 0): it cannot be replaced");
    }
    if (action === 3 && !caps.activateWithoutReset) {
      throw new NotSupportedError("FRMW", "the controller cannot activate firmware without a reset (FRMW bit 4)");
    }
  }
  return fwCommitCmd(slot, action, bpid);
}

/**
 * Firmware Commit. The statuses "Firmware Activation Requires ... Reset" are
 * successes here: they come back as `resetRequired`.
 */
export async function commitFirmware(dev: AdminTarget, o: CommitOptions): Promise<CommitResult> {
  const cmd = commitCommand(firmwareCapabilities(dev), o);
  const action = (cmd[10] >> 3) & 7;
  try {
    const dw0 = await dev.controller.adminCommand(cmd, 0, 0, o.timeoutMs);
    return { resetRequired: action === 1 || action === 2 ? "next-reset" : "none", dw0: dw0 >>> 0 };
  } catch (e) {
    if (e instanceof NvmeStatusError && e.status.sct === 1) {
      const r = ({ 0x0b: "conventional", 0x10: "nvm-subsystem", 0x11: "controller" } as const)[e.status.sc as 0x0b];
      if (r) return { resetRequired: r, dw0: e.dw0 >>> 0 };
    }
    throw e;
  }
}
