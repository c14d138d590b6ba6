/**
 * Admin command passthrough: any admin opcode with raw command dwords and a
 * data buffer, answered with DW0, the status field and the data, as
 * `nvme admin-passthru` does.
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { adminPassthru } from "@tsnvme/tsnvme/admin";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:");
 * // Identify Controller (opcode 06h, CNS 01h): 4096 bytes to the host.
 * const r = await adminPassthru(dev, { opcode: 0x06, cdw10: 1, dataLen: 4096 });
 * assert.equal(r.status, 0);
 * assert.deepEqual(r.data, dev.controller.identifyData);
 * // A failed command resolves with its status: 0x4001 is Invalid Command Opcode with DNR.
 * assert.equal((await adminPassthru(dev, { opcode: 0xc1 })).status, 0x4001);
 * ```
 * @module
 */
import { checkPassthru, type PassthruCommand, type PassthruResult, sendPassthru } from "../nvme/passthru.ts";
import { AdminOpc } from "../nvme/spec.ts";
import type { AdminTarget } from "./log.ts";
import { rescan } from "./support.ts";

export { opcodeDirection, type PassthruCommand, type PassthruDirection, type PassthruResult } from "../nvme/passthru.ts";

/**
 * Send a raw admin command. A failed completion resolves with its status (as
 * the kernel ioctl returns it); bad input rejects with InvalidArgumentError
 * before anything reaches the device. Queue creation/deletion and
 * Asynchronous Event Requests are refused: the driver owns those. After a
 * successful Format NVM, Namespace Management or Namespace Attachment the
 * device's namespaces are re-read (when `dev` has `rescan()`, as NVMeDev does).
 */
export async function adminPassthru(dev: AdminTarget, cmd: PassthruCommand): Promise<PassthruResult> {
  const c = checkPassthru(dev.controller, cmd, true);
  const r = await sendPassthru(dev.controller, dev.controller.admin, c);
  // Namespaces may have changed size, format or presence: the device's view follows, as after formatNvm().
  if (r.status === 0 && RESHAPES.has(cmd.opcode)) await rescan(dev);
  return r;
}

/** Admin opcodes that change namespaces (Format NVM, Namespace Management, Namespace Attachment). */
const RESHAPES = new Set<number>([AdminOpc.FORMAT_NVM, AdminOpc.NS_MANAGEMENT, AdminOpc.NS_ATTACHMENT]);
