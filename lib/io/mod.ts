/**
 * IO features: namespaces and their read/write/flush, write zeroes, dataset
 * management, compare, verify and copy, usable on their own; metadata and
 * end-to-end protection information (PRACT/PRCHK, host-side generate and verify).
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { formatNvm } from "@tsnvme/tsnvme/admin";
 * import { Prinfo } from "@tsnvme/tsnvme/io";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:pi=1;ns=1M:512");
 * await formatNvm(dev, 1, { lbaf: 2, pi: 1 }); // 512 + 8 bytes of metadata, PI type 1
 * const ns = dev.ns(1);
 * const data = dev.allocBuffer(4096).fill(7), meta = dev.allocBuffer(8 * 8);
 * ns.generatePi(0, data, meta, { appTag: 0x42 });
 * await ns.write(0, data, { pract: false, metadata: meta, appTag: 0x42, prchk: Prinfo.PRCHK_ALL });
 * await ns.read(0, data, { pract: false, metadata: meta });
 * ns.verifyPi(0, data, meta, { appTag: 0x42, prchk: Prinfo.PRCHK_ALL });
 * assert.equal(ns.pi?.guard, 16);
 * ```
 * @module
 */
export {
  type BlockRange,
  BOUNCE_MAX,
  type DsmOptions,
  type IoHost,
  type IoOptions,
  Namespace,
  type NamespaceInfo,
  type ProtectionOptions,
  type WriteZeroesOptions,
} from "./namespace.ts";
export { defaultPrchk, generatePi, type PiTags, type PiVerifyOptions, verifyPi } from "./pi.ts";
export { type PiCheck, type PiFormat, PiType, Prinfo } from "../nvme/pi.ts";
export { type IoCallback, QueuePair, type QueuePairConfig, type QueueStats, type QueueWaiter } from "../nvme/queue.ts";
export { PcieRing, type PcieRingConfig, type QueueRing } from "../nvme/pcie.ts";
export { CommandTracker } from "../nvme/tracker.ts";
export { type IoPassthruCommand, ioPassthru } from "./passthru.ts";
export { bounceClass, BouncePool } from "./bounce.ts";
export type { DmaBuffer } from "../nvme/transport.ts";
export * from "./zns.ts";
export * from "./fdp.ts";
