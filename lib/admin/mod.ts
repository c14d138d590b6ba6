/**
 * Admin features: Identify decoding, log pages, features, Format NVM, device
 * self-test, namespace management and attachment, Abort and asynchronous
 * events, decoded with nvme-cli 2.3's field names. Every function takes the
 * device (anything with `.controller`, such as an NVMeDev). nvme-cli's text,
 * JSON and `-H` output of these objects is the CLI's (`@tsnvme/tsnvme/format`).
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { getFeature, smartLog } from "@tsnvme/tsnvme/admin";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:");
 * const s = await smartLog(dev);
 * assert.equal(s.critical_warning, 0);
 * assert.equal(s.temperature > 273, true); // kelvin
 * assert.equal((await getFeature(dev, 0x06)).fields.wce, true); // volatile write cache on
 * ```
 * @module
 */
export * from "./identify.ts";
export * from "./log.ts";
export * from "./features.ts";
export * from "./manage.ts";
export { NotSupportedError } from "./support.ts";
export * from "./passthru.ts";
export * from "./regs.ts";
export * from "./fdp.ts";
export * from "./virt.ts";
