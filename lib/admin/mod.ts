/**
 * Admin features: Identify decoding, log pages, features, Format NVM, device
 * self-test, namespace management and attachment, Abort and asynchronous
 * events, with nvme-cli 2.3's field names and JSON. Every function takes the
 * device (anything with `.controller`, such as an NVMeDev).
 *
 * ```ts
 * import { smartLog, smartLogToJson } from "@tsnvme/tsnvme/admin";
 * console.log(smartLogToJson(await smartLog(dev)));
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
