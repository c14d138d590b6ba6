/**
 * nvme-cli 2.3's presentation, apart from decoding (the libnvme / nvme-cli
 * split): lib/admin and lib/nvme decode, these writers present. Each family
 * reproduces nvme-cli's text, `-H` text and `-o json` text byte for byte
 * (tests/fixtures holds the real binary's output). Published as
 * `@tsnvme/tsnvme/format`.
 *
 * - {@link "./identify.ts"}: `id-ctrl`, `id-ns`
 * - {@link "./log.ts"}: `smart-log`, `error-log`, `fw-log`, `effects-log`, `self-test-log`, `sanitize-log`
 * - {@link "./features.ts"}: `get-feature`
 * - {@link "./ns.ts"}: `list-ns`, `ns-descs`
 * - {@link "./regs.ts"}: `show-regs`
 * - {@link "./status.ts"}: the status line of a failed command
 * - {@link "./hexdump.ts"}, {@link "./human.ts"}, {@link "./json.ts"}: the shared pieces
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { smartLog } from "@tsnvme/tsnvme/admin";
 * import { smartLogToJson } from "@tsnvme/tsnvme/format";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:");
 * assert.equal(JSON.parse(smartLogToJson(await smartLog(dev))).critical_warning, 0); // nvme smart-log -o json
 * ```
 * @module
 */
export * from "./json.ts";
export * from "./identify.ts";
export * from "./log.ts";
export * from "./features.ts";
export * from "./ns.ts";
export * from "./regs.ts";
export * from "./status.ts";
export * from "./hexdump.ts";
export * from "./human.ts";
