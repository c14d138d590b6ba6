/**
 * Pieces the admin, sanitize and firmware modules share: the typed refusal
 * for what the controller says it cannot do, and admin data transfers larger
 * than two pages.
 * @module
 */
import { NvmeError } from "../nvme/errors.ts";
import type { AdminTarget } from "./log.ts";

/**
 * The controller reports (in Identify Controller) that it cannot do what was
 * asked; nothing was sent to the device.
 */
export class NotSupportedError extends NvmeError {
  /** The capability field that says no, e.g. "SANICAP.CES" or "FRMW". */
  readonly capability: string;
  /** Create for a capability field and a message. */
  constructor(capability: string, message: string) {
    super("EUNSUPPORTED", message);
    this.capability = capability;
  }
}

/** Re-read namespaces after a change, when the target is an NVMeDev (anything with `rescan()`). */
export async function rescan(dev: AdminTarget): Promise<void> {
  const r = (dev as { rescan?: () => Promise<void> }).rescan;
  if (typeof r === "function") await r.call(dev);
}
