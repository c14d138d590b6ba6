/**
 * A tsnvme namespace as a Linux block device through ublk (Linux 6.0+,
 * ublk_drv): {@link UblkDevice.create} serves a namespace as /dev/ublkbN with
 * one Worker per hardware queue, each owning its ublk queue and an NVMe queue
 * pair (no thread in between, no copy in userspace); {@link UblkDevice.recover}
 * takes over a device whose server died; {@link UblkControl} is the control
 * device for listings and deletion.
 *
 * @example
 * ```ts ignore
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { UblkDevice } from "@tsnvme/tsnvme/ublk";
 * await using dev = await NVMeDev.open("0000:01:00.0");
 * const ublk = await UblkDevice.create(dev, { queues: 2, depth: 128 });
 * console.log(`serving ${ublk.path}`);
 * await ublk.ended; // until `tsnvme ublk del` (or ublk.stop())
 * ```
 * @module
 */
export { type UblkOptions, UblkDevice } from "./server.ts";
export { type AddDevRequest, UblkControl, type UblkDevInfo } from "./control.ts";
export { type UblkQueueConfig, type UblkQueueStats } from "./queue.ts";
export {
  decodeParams,
  disposition,
  encodeParams,
  Errno,
  MAX_RETRIES,
  statusErrno,
  type UblkControllerFacts,
  type UblkNamespaceFacts,
  type UblkParams,
  ublkParams,
} from "./params.ts";
export type { Libc, RuntimeName } from "../ffi/mod.ts";
export { NvmeError, type NvmeErrorCode } from "../nvme/errors.ts";
export { ctrlOp, ioOp, UBLK_STATE_NAMES, UblkCmd, UblkFlag, UblkIoCmd, UblkOp, UblkState } from "./uapi.ts";
