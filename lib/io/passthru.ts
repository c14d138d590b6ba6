/**
 * IO command passthrough: any IO opcode with raw command dwords and a data
 * buffer, sent on one of the driver's IO queues, as `nvme io-passthru` does.
 * @module
 */
import type { Controller } from "../nvme/controller.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { checkPassthru, type PassthruCommand, type PassthruResult, sendPassthru } from "../nvme/passthru.ts";

/** An IO passthrough command: a {@link PassthruCommand} and the IO queue to use. */
export interface IoPassthruCommand extends PassthruCommand {
  /** IO queue id, 1 to the number of IO queues (default 1). */
  queue?: number;
}

/**
 * Send a raw IO command on an IO queue of `dev` (anything with `.controller`,
 * such as an NVMeDev). The namespace is CDW1 as given: nothing is checked
 * against the active namespaces, so commands the driver has no API for still
 * go through. A failed completion resolves with its status; bad input rejects
 * with InvalidArgumentError before anything reaches the device.
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { ioPassthru } from "@tsnvme/tsnvme/io";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:ns=1M:512");
 * // Write (01h) then Read (02h) of blocks 8-9 of namespace 1: SLBA in CDW10, 0-based count in CDW12.
 * const data = new Uint8Array(1024).fill(7);
 * await ioPassthru(dev, { opcode: 0x01, nsid: 1, cdw10: 8, cdw12: 1, dataLen: 1024, data });
 * const r = await ioPassthru(dev, { opcode: 0x02, nsid: 1, cdw10: 8, cdw12: 1, dataLen: 1024 });
 * assert.deepEqual(r.data, data);
 * ```
 */
export async function ioPassthru(dev: { readonly controller: Controller }, cmd: IoPassthruCommand): Promise<PassthruResult> {
  const ctrl = dev.controller;
  const c = checkPassthru(ctrl, cmd, false);
  const qid = cmd.queue ?? 1;
  if (!Number.isInteger(qid) || qid < 1 || qid > ctrl.io.length) {
    throw new InvalidArgumentError(`queue must be an IO queue id from 1 to ${ctrl.io.length}, got ${String(qid)}`);
  }
  return await sendPassthru(ctrl, ctrl.io[qid - 1], c);
}
