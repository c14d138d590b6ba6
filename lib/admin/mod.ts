/**
 * Admin features: Identify decoding, log pages, features, Format NVM, device
 * self-test, namespace management and attachment, Abort and asynchronous
 * events, with nvme-cli 2.3's field names and JSON. Every function takes the
 * device (anything with `.controller`, such as an NVMeDev).
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { getFeature, smartLog, smartLogToJson } from "@tsnvme/tsnvme/admin";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:");
 * const s = await smartLog(dev);
 * assert.equal(s.critical_warning, 0);
 * assert.equal(JSON.parse(smartLogToJson(s)).critical_warning, 0); // nvme smart-log -o json
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
export * from "./hexdump.ts";
export * from "./status.ts";
