/**
 * A tsnvme namespace as a Linux block device (/dev/ublkbN): the control
 * sequence (ADD_DEV, SET_PARAMS, START_DEV; STOP_DEV and DEL_DEV on stop;
 * START/END_USER_RECOVERY to take over a device whose server died) on this
 * thread, and one Worker per hardware queue, each owning its ublk queue and
 * an NVMe queue pair of its own.
 * @module
 */
import type { NVMeDev, QueueWorker } from "../dev.ts";
import { errnoName, type Libc, loadLibc, O_CLOEXEC, O_RDWR } from "../ffi/mod.ts";
import { InvalidArgumentError, NvmeError, SyscallError } from "../nvme/errors.ts";
import { UblkControl, type UblkDevInfo } from "./control.ts";
import { type UblkParams, ublkParams } from "./params.ts";
import type { UblkQueueConfig, UblkQueueStats } from "./queue.ts";
import { UblkFlag, UBLK_MAX_NR_QUEUES, UBLK_MAX_QUEUE_DEPTH } from "./uapi.ts";
import type { UblkWorkerIn, UblkWorkerOut } from "./worker.ts";

/** Options of {@link UblkDevice.create}. */
export interface UblkOptions {
  /** Namespace to serve (default 1). */
  nsid?: number;
  /** Hardware queues, one Worker and one NVMe queue pair each (default 1). */
  queues?: number;
  /** Tags per queue (default 128). */
  depth?: number;
  /** Largest request, bytes (default 128 KiB, at most the controller's MDTS). Each tag owns a DMA buffer of this size. */
  maxIoBytes?: number;
  /** Device id wanted (default: the kernel picks). */
  devId?: number;
  /** UBLK_F_USER_RECOVERY with reissue: a dead server leaves the device quiesced for the next (default true). */
  recovery?: boolean;
  /** NVMe command timeout, ms (default: the controller's IO timeout). */
  ioTimeoutMs?: number;
}

/** How long a Worker may take to get its queue ready. */
const READY_MS = 60_000;
/** How long {@link UblkDevice.recover} waits for the kernel to quiesce a dead server's device. */
const RECOVER_MS = 60_000;

/** A namespace served as /dev/ublkbN by this process. */
export class UblkDevice {
  /** ublk device id. */
  readonly devId: number;
  /** The block device. */
  readonly path: string;
  /** The device as the kernel describes it. */
  readonly info: UblkDevInfo;
  /** What the block layer was told. */
  readonly params: UblkParams;
  /** Resolves when every queue has ended (the device was stopped, here or by `tsnvme ublk del`). */
  readonly ended: Promise<UblkQueueStats[]>;
  readonly #ctrl: UblkControl;
  readonly #libc: Libc;
  readonly #cdev: number;
  readonly #workers: QueueWorker[];
  #stopping: Promise<void> | null = null;

  private constructor(
    ctrl: UblkControl,
    libc: Libc,
    cdev: number,
    info: UblkDevInfo,
    params: UblkParams,
    workers: QueueWorker[],
    ended: Promise<UblkQueueStats[]>,
  ) {
    this.#ctrl = ctrl;
    this.#libc = libc;
    this.#cdev = cdev;
    this.devId = info.devId;
    this.path = `/dev/ublkb${info.devId}`;
    this.info = info;
    this.params = params;
    this.#workers = workers;
    this.ended = ended;
  }

  /**
   * Serve namespace `opts.nsid` of `dev` as a new /dev/ublkbN. Needs root and
   * the ublk_drv module (Linux 6.0+), and a controller whose queues Workers
   * can own (VFIO).
   *
   * @example
   * ```ts ignore
   * import { NVMeDev } from "@tsnvme/tsnvme";
   * import { UblkDevice } from "@tsnvme/tsnvme/ublk";
   * const dev = await NVMeDev.open("0000:01:00.0");
   * const ublk = await UblkDevice.create(dev, { nsid: 1, queues: 2, depth: 128 });
   * console.log(ublk.path); // /dev/ublkb0
   * await ublk.stop(); // STOP_DEV and DEL_DEV
   * await dev.close();
   * ```
   */
  static async create(dev: NVMeDev, opts: UblkOptions = {}): Promise<UblkDevice> {
    const nsid = opts.nsid ?? 1;
    const queues = opts.queues ?? 1;
    const depth = opts.depth ?? 128;
    checkInt("queues", queues, 1, UBLK_MAX_NR_QUEUES);
    checkInt("depth", depth, 1, UBLK_MAX_QUEUE_DEPTH);
    const ns = dev.ns(nsid).info;
    let maxIo = Math.min(opts.maxIoBytes ?? 128 * 1024, dev.info.maxTransferBytes);
    maxIo -= maxIo % Math.max(4096, ns.blockSize);
    const params = ublkParams(dev.info, ns, maxIo);
    const libc = await loadLibc();
    const ctrl = await UblkControl.open(libc);
    let info: UblkDevInfo;
    try {
      const recovery = opts.recovery ?? true;
      info = ctrl.addDev({
        queues,
        depth,
        maxIoBytes: maxIo,
        devId: opts.devId ?? -1,
        flags: UblkFlag.CMD_IOCTL_ENCODE | (recovery ? UblkFlag.USER_RECOVERY | UblkFlag.USER_RECOVERY_REISSUE : 0),
      });
    } catch (e) {
      ctrl.close();
      throw e;
    }
    let cdev = -1;
    try {
      ctrl.setParams(info.devId, params);
      cdev = await openCdev(libc, info.devId);
      const { workers, ended } = await startQueues(dev, ctrl, info, nsid, ns.blockSize, opts.ioTimeoutMs, cdev);
      try {
        ctrl.startDev(info.devId, libc.getpid());
      } catch (e) {
        await stopQueues(ctrl, info.devId, workers, ended);
        throw e;
      }
      return new UblkDevice(ctrl, libc, cdev, ctrl.getDevInfo(info.devId) ?? info, params, workers, ended);
    } catch (e) {
      if (cdev >= 0) libc.close(cdev);
      try {
        ctrl.delDev(info.devId);
      } catch { /* best effort: report the first error */ }
      ctrl.close();
      throw e;
    }
  }

  /**
   * Take over device `devId`, whose server died (UBLK_F_USER_RECOVERY): wait
   * until the kernel has quiesced it, start recovery, fetch every tag from new
   * Workers on `dev`, end recovery. Requests the dead server held are issued
   * again (REISSUE); nothing acknowledged is lost. The namespace must be the
   * one the device was created on (its size and block size are checked).
   */
  static async recover(dev: NVMeDev, devId: number, opts: Pick<UblkOptions, "nsid" | "ioTimeoutMs"> = {}): Promise<UblkDevice> {
    checkInt("devId", devId, 0, 0x7fff_ffff);
    const nsid = opts.nsid ?? 1;
    const ns = dev.ns(nsid).info;
    const libc = await loadLibc();
    const ctrl = await UblkControl.open(libc);
    try {
      const info0 = ctrl.getDevInfo(devId);
      if (info0 === null) throw new InvalidArgumentError(`there is no ublk device ${devId}`);
      if ((info0.flags & UblkFlag.USER_RECOVERY) === 0) {
        throw new InvalidArgumentError(`ublk device ${devId} was created without user recovery; it cannot be taken over`);
      }
      const params = ctrl.getParams(devId);
      if (2 ** params.logicalBsShift !== ns.blockSize || params.devSectors !== ns.blockCount * BigInt(ns.blockSize / 512)) {
        throw new InvalidArgumentError(`namespace ${nsid} is not the one ublk device ${devId} was created on (size or block size differ)`);
      }
      // The kernel quiesces the device once it noticed the old server is gone; until then EBUSY.
      const until = Date.now() + RECOVER_MS;
      for (;;) {
        if (ctrl.startUserRecovery(devId)) break;
        if (Date.now() > until) throw new NvmeError("ETIMEDOUT", `ublk device ${devId} did not become recoverable in ${RECOVER_MS / 1000} s`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const info = ctrl.getDevInfo(devId) ?? info0;
      const cdev = await openCdev(libc, devId);
      try {
        const { workers, ended } = await startQueues(dev, ctrl, info, nsid, ns.blockSize, opts.ioTimeoutMs, cdev);
        try {
          ctrl.endUserRecovery(devId, libc.getpid());
        } catch (e) {
          await stopQueues(ctrl, devId, workers, ended);
          throw e;
        }
        return new UblkDevice(ctrl, libc, cdev, ctrl.getDevInfo(devId) ?? info, params, workers, ended);
      } catch (e) {
        libc.close(cdev);
        throw e;
      }
    } catch (e) {
      ctrl.close();
      throw e;
    }
  }

  /**
   * Stop the device (STOP_DEV: the disk goes away once in-flight requests
   * finish), wait for the queues to end, release their NVMe queues and
   * delete the device (DEL_DEV). Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      try {
        await stopQueues(this.#ctrl, this.devId, this.#workers, this.ended);
        this.#libc.close(this.#cdev);
        // Gone already when `ublk del` stopped it from another process.
        try {
          if (this.#ctrl.getDevInfo(this.devId) !== null) this.#ctrl.delDev(this.devId);
        } catch (e) {
          if ((e as SyscallError).errno !== 19) throw e; // ENODEV: deleted meanwhile
        }
      } finally {
        this.#ctrl.close();
      }
    })();
    return this.#stopping;
  }
}

function checkInt(name: string, v: number, min: number, max: number): void {
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError(`${name} must be an integer from ${min} to ${max}, got ${String(v)}`);
  }
}

/** Start one Worker per queue and wait until each has fetched all its tags. */
async function startQueues(
  dev: NVMeDev,
  ctrl: UblkControl,
  info: UblkDevInfo,
  nsid: number,
  blockSize: number,
  ioTimeoutMs: number | undefined,
  cdevFd: number,
): Promise<{ workers: QueueWorker[]; ended: Promise<UblkQueueStats[]> }> {
  const maxIo = info.maxIoBytes;
  const workers = await dev.startWorkers(new URL("./worker_entry.js", import.meta.url), info.queues, {
    // One slot more than the tags: the ring keeps one entry empty.
    depth: info.depth + 1,
    arenaBytes: info.depth * maxIo + 2 * 1024 * 1024,
  });
  const ready: Promise<void>[] = [];
  const done: Promise<UblkQueueStats>[] = [];
  workers.forEach((w, qId) => {
    let affinity: Uint8Array | null = null;
    try {
      affinity = ctrl.queueAffinity(info.devId, qId);
    } catch { /* older kernels: no pinning */ }
    const cfg: UblkQueueConfig = {
      devId: info.devId,
      qId,
      cdevFd,
      depth: info.depth,
      maxIoBytes: maxIo,
      nsid,
      blockSize,
      encoded: (info.flags & UblkFlag.CMD_IOCTL_ENCODE) !== 0,
      vwc: dev.info.vwc,
      timeoutMs: ioTimeoutMs ?? dev.controller.options.ioTimeoutMs,
      affinity,
    };
    let failReady: (e: Error) => void = () => {};
    ready.push(new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new NvmeError("ETIMEDOUT", `ublk queue ${qId} was not ready in ${READY_MS / 1000} s`)), READY_MS);
      failReady = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      w.worker.addEventListener("message", (e: MessageEvent) => {
        if ((e.data as UblkWorkerOut)?.type !== "ublk-ready") return;
        clearTimeout(timer);
        resolve();
      });
    }));
    done.push(new Promise<UblkQueueStats>((resolve) => {
      w.worker.addEventListener("message", (e: MessageEvent) => {
        const m = e.data as UblkWorkerOut;
        if (m?.type === "ublk-done") resolve(m.stats);
        if (m?.type === "ublk-error") {
          console.error(`tsnvme ublk: queue ${qId} failed: ${m.message}`);
          failReady(new SyscallError(`ublk queue ${qId}`, 5, m.message.split("\n")[0]));
          resolve({ requests: 0, errors: 0, retries: 0, enters: 0, nvmeSleeps: 0 });
        }
      });
    }));
    w.worker.postMessage({ type: "ublk-go", cfg } satisfies UblkWorkerIn);
  });
  const ended = Promise.all(done);
  try {
    await Promise.all(ready);
  } catch (e) {
    await quitQueues(workers, ended);
    throw e;
  }
  return { workers, ended };
}

const sleep = (ms: number) => new Promise<"timeout">((r) => setTimeout(() => r("timeout"), ms));

/** Have the Workers leave their loops and close their rings (cancelling their fetches), then release them. */
async function quitQueues(workers: QueueWorker[], ended: Promise<unknown>): Promise<void> {
  for (const w of workers) w.worker.postMessage({ type: "ublk-quit" } satisfies UblkWorkerIn);
  await Promise.race([ended, sleep(5000)]);
  await Promise.all(workers.map((w) => w.terminate()));
}

/** Open /dev/ublkc<devId> (devtmpfs adds the node right after ADD_DEV: give a slow guest a moment). */
async function openCdev(libc: Libc, devId: number): Promise<number> {
  const path = `/dev/ublkc${devId}`;
  for (let i = 0;; i++) {
    const fd = libc.open(path, O_RDWR | O_CLOEXEC);
    if (fd >= 0) return fd;
    const e = libc.errno();
    if (e !== 2 || i >= 300) throw new SyscallError(`open ${path}`, e, errnoName(e));
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** STOP_DEV (unless the device is already dead), wait for the queues to end, release them. */
async function stopQueues(ctrl: UblkControl, devId: number, workers: QueueWorker[], ended: Promise<unknown>): Promise<void> {
  if (ctrl.getDevInfo(devId) !== null) ctrl.stopDev(devId);
  if (await Promise.race([ended, sleep(30_000)]) === "timeout") await quitQueues(workers, ended);
  else await Promise.all(workers.map((w) => w.terminate()));
}
