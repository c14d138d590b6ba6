/**
 * Pieces the admin, sanitize and firmware modules share: the typed refusal
 * for what the controller says it cannot do, and admin data transfers larger
 * than two pages.
 * @module
 */
import type { Sqe } from "../nvme/command.ts";
import { NvmeError } from "../nvme/errors.ts";
import { prpListPages, writePrps } from "../nvme/prp.ts";
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

/**
 * Send an admin command with `len` bytes of `buf` (DMA memory) as data,
 * building a PRP list of our own when it spans more than two pages: the
 * admin queue keeps no PRP list memory.
 */
export async function adminTransfer(
  dev: AdminTarget,
  cmd: Sqe,
  buf: { iova: number },
  len: number,
  timeoutMs?: number,
): Promise<number> {
  const c = dev.controller;
  const ps = c.pageSize;
  const first = ps - (buf.iova % ps);
  if (len <= first + ps) return c.adminCommand(cmd, buf.iova, len, timeoutMs);
  const listBytes = prpListPages(buf.iova, len, ps) * ps;
  const list = c.allocDma(listBytes);
  try {
    writePrps(cmd, buf.iova, len, ps, new Uint32Array(list.bytes.buffer, list.bytes.byteOffset, listBytes / 4), list.iova);
    return await c.adminCommand(cmd, 0, 0, timeoutMs);
  } finally {
    c.freeDma(list);
  }
}

/** Little-endian 16-bit field of Identify Controller. */
export function idCtrlU16(dev: AdminTarget, off: number): number {
  const d = dev.controller.identifyData;
  return d[off] | (d[off + 1] << 8);
}

/** Little-endian 32-bit field of Identify Controller. */
export function idCtrlU32(dev: AdminTarget, off: number): number {
  const d = dev.controller.identifyData;
  return (d[off] | (d[off + 1] << 8) | (d[off + 2] << 16) | (d[off + 3] << 24)) >>> 0;
}

