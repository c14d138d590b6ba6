/**
 * ublk's control device (/dev/ublk-control): ADD_DEV, SET/GET_PARAMS,
 * START/STOP/DEL_DEV, GET_DEV_INFO, GET_QUEUE_AFFINITY and user recovery, each
 * a URING_CMD on a 128-byte-SQE ring. Commands go out ioctl-encoded first
 * (6.4+ wants them so; some kernels have no plain numbers) and plain as the
 * fallback (6.1-6.3), as ublksrv and libublk-rs do; the first form the
 * kernel accepts is kept. Calls block the calling thread until the kernel
 * answers (START_DEV waits for every queue to have fetched its tags).
 * @module
 */
import { errnoName, type Libc, loadLibc, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, O_CLOEXEC, O_RDWR, PROT_READ, PROT_WRITE } from "../ffi/mod.ts";
import { SetupError, SyscallError } from "../nvme/errors.ts";
import { SqeOff, Uring, UringOp } from "../uring/mod.ts";
import { decodeParams, encodeParams, type UblkParams } from "./params.ts";
import { CTRL_CMD_BYTES, ctrlOp, CtrlCmdOff, DevInfoOff, ParamsOff, UblkCmd } from "./uapi.ts";

/** A ublk device as GET_DEV_INFO / ADD_DEV describe it. */
export interface UblkDevInfo {
  /** Device id: /dev/ublkcN and /dev/ublkbN. */
  devId: number;
  /** Hardware queues. */
  queues: number;
  /** Tags per queue. */
  depth: number;
  /** UblkState. */
  state: number;
  /** Largest request buffer, bytes. */
  maxIoBytes: number;
  /** The serving process (-1 or 0: none yet). */
  pid: number;
  /** UblkFlag bits the kernel accepted (it drops those it does not know). */
  flags: number;
}

/** What ADD_DEV asks for. */
export interface AddDevRequest {
  /** Hardware queues. */
  queues: number;
  /** Tags per queue. */
  depth: number;
  /** Largest request buffer, bytes. */
  maxIoBytes: number;
  /** UblkFlag bits. */
  flags: number;
  /** Device id wanted (-1: the kernel picks). */
  devId?: number;
}

const CONTROL = "/dev/ublk-control";
const PAGE = 4096;
/** Scratch page layout: dev_info at 0, params at 128, the affinity mask at 256. */
const INFO_AT = 0, PARAMS_AT = 128, MASK_AT = 256, MASK_BYTES = 512;
const EINVAL = 22, EOPNOTSUPP = 95, ENOTSUPP = 524, ENODEV = 19;

const NAMES: Record<number, string> = Object.fromEntries(Object.entries(UblkCmd).map(([k, v]) => [v, k]));

/** Open /dev/ublk-control and send it commands. One thread; close when done. */
export class UblkControl {
  readonly #libc: Libc;
  readonly #fd: number;
  readonly #ring: Uring;
  readonly #addr: bigint;
  readonly #page: Uint8Array;
  /** null until the kernel accepted one form; then true (encoded) or false (plain). */
  #encoded: boolean | null = null;

  private constructor(libc: Libc, fd: number, ring: Uring, addr: bigint) {
    this.#libc = libc;
    this.#fd = fd;
    this.#ring = ring;
    this.#addr = addr;
    this.#page = new Uint8Array(libc.view(addr, PAGE));
  }

  /** Open the control device. SetupError when ublk_drv is missing or access is denied. */
  static async open(libc?: Libc): Promise<UblkControl> {
    const l = libc ?? await loadLibc();
    const fd = l.open(CONTROL, O_RDWR | O_CLOEXEC);
    if (fd < 0) {
      const e = l.errno();
      if (e === 2) throw new SetupError("no-device", `${CONTROL} does not exist: load the ublk driver (modprobe ublk_drv; Linux 6.0+ with CONFIG_BLK_DEV_UBLK)`);
      if (e === 1 || e === 13) throw new SetupError("permission", `${CONTROL}: ${errnoName(e)}; ublk needs root (CAP_SYS_ADMIN)`);
      throw new SyscallError(`open ${CONTROL}`, e, errnoName(e));
    }
    let ring: Uring;
    try {
      ring = await Uring.create(4, { sqe128: true, libc: l });
    } catch (e) {
      l.close(fd);
      throw e;
    }
    const addr = l.mmap(0n, BigInt(PAGE), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
    if (addr === MAP_FAILED) {
      const e = l.errno();
      ring.close();
      l.close(fd);
      throw new SyscallError("mmap", e, errnoName(e));
    }
    return new UblkControl(l, fd, ring, addr);
  }

  /** Whether commands go out ioctl-encoded (null until the first answer). */
  get encoded(): boolean | null {
    return this.#encoded;
  }

  /** Send one command and wait for its answer; returns the CQE res (>= 0) or throws. */
  #cmd(nr: number, devId: number, o: { addr?: bigint; len?: number; data?: bigint; queueId?: number; allow?: number[] } = {}): number {
    const tryOnce = (encoded: boolean): number => {
      const r = this.#ring;
      const s = r.sqe();
      r.prep(s, UringOp.URING_CMD, this.#fd, nr);
      const v = r.sqeView;
      v.setUint32(s + SqeOff.OFF, encoded ? ctrlOp(nr) : nr, true);
      const c = s + SqeOff.CMD;
      v.setUint32(c + CtrlCmdOff.DEV_ID, devId >>> 0, true);
      v.setUint16(c + CtrlCmdOff.QUEUE_ID, o.queueId ?? 0xffff, true);
      v.setUint16(c + CtrlCmdOff.LEN, o.len ?? 0, true);
      v.setBigUint64(c + CtrlCmdOff.ADDR, o.addr ?? 0n, true);
      v.setBigUint64(c + CtrlCmdOff.DATA, o.data ?? 0n, true);
      while (r.cqReady() === 0) r.submit(1);
      const res = r.cqeRes(0);
      r.cqAdvance(1);
      return res;
    };
    let res: number;
    if (this.#encoded === null) {
      res = tryOnce(true);
      if (res === -EINVAL || res === -EOPNOTSUPP || res === -ENOTSUPP) {
        const plain = tryOnce(false);
        if (plain >= 0) this.#encoded = false;
        res = plain;
      } else if (res >= 0) this.#encoded = true;
    } else res = tryOnce(this.#encoded);
    if (res < 0 && !(o.allow ?? []).includes(res)) {
      throw new SyscallError(`ublk ${NAMES[nr] ?? nr} (dev ${devId | 0})`, -res, errnoName(-res));
    }
    return res;
  }

  #info(): UblkDevInfo {
    const v = new DataView(this.#page.buffer, this.#page.byteOffset + INFO_AT, DevInfoOff.SIZE);
    return {
      devId: v.getUint32(DevInfoOff.DEV_ID, true),
      queues: v.getUint16(DevInfoOff.NR_HW_QUEUES, true),
      depth: v.getUint16(DevInfoOff.QUEUE_DEPTH, true),
      state: v.getUint16(DevInfoOff.STATE, true),
      maxIoBytes: v.getUint32(DevInfoOff.MAX_IO_BUF_BYTES, true),
      pid: v.getInt32(DevInfoOff.UBLKSRV_PID, true),
      flags: Number(v.getBigUint64(DevInfoOff.FLAGS, true) & 0xffff_ffffn),
    };
  }

  /** ADD_DEV: a new device (no disk yet). Returns its info with the flags the kernel kept. */
  addDev(req: AddDevRequest): UblkDevInfo {
    const p = this.#page;
    p.fill(0, INFO_AT, INFO_AT + DevInfoOff.SIZE);
    const v = new DataView(p.buffer, p.byteOffset + INFO_AT, DevInfoOff.SIZE);
    const id = req.devId ?? -1;
    v.setUint16(DevInfoOff.NR_HW_QUEUES, req.queues, true);
    v.setUint16(DevInfoOff.QUEUE_DEPTH, req.depth, true);
    v.setUint32(DevInfoOff.MAX_IO_BUF_BYTES, req.maxIoBytes, true);
    v.setUint32(DevInfoOff.DEV_ID, id >>> 0, true);
    v.setBigUint64(DevInfoOff.FLAGS, BigInt(req.flags >>> 0), true);
    this.#cmd(UblkCmd.ADD_DEV, id, { addr: this.#addr + BigInt(INFO_AT), len: DevInfoOff.SIZE });
    return this.#info();
  }

  /** GET_DEV_INFO; null when there is no such device. */
  getDevInfo(devId: number): UblkDevInfo | null {
    this.#page.fill(0, INFO_AT, INFO_AT + DevInfoOff.SIZE);
    const r = this.#cmd(UblkCmd.GET_DEV_INFO, devId, { addr: this.#addr + BigInt(INFO_AT), len: DevInfoOff.SIZE, allow: [-ENODEV] });
    return r < 0 ? null : this.#info();
  }

  /** SET_PARAMS (before START_DEV). */
  setParams(devId: number, params: UblkParams): void {
    encodeParams(params, this.#page.subarray(PARAMS_AT, PARAMS_AT + ParamsOff.SIZE));
    this.#cmd(UblkCmd.SET_PARAMS, devId, { addr: this.#addr + BigInt(PARAMS_AT), len: ParamsOff.SIZE });
  }

  /** GET_PARAMS. */
  getParams(devId: number): UblkParams {
    const b = this.#page.subarray(PARAMS_AT, PARAMS_AT + ParamsOff.SIZE);
    b.fill(0);
    new DataView(b.buffer, b.byteOffset).setUint32(ParamsOff.LEN, ParamsOff.SIZE, true);
    this.#cmd(UblkCmd.GET_PARAMS, devId, { addr: this.#addr + BigInt(PARAMS_AT), len: ParamsOff.SIZE });
    return decodeParams(b);
  }

  /** GET_QUEUE_AFFINITY: the CPUs blk-mq maps onto queue `q`, as a cpu_set_t (a copy). */
  queueAffinity(devId: number, q: number): Uint8Array {
    this.#page.fill(0, MASK_AT, MASK_AT + MASK_BYTES);
    this.#cmd(UblkCmd.GET_QUEUE_AFFINITY, devId, { addr: this.#addr + BigInt(MASK_AT), len: MASK_BYTES, data: BigInt(q) });
    return this.#page.slice(MASK_AT, MASK_AT + MASK_BYTES);
  }

  /** START_DEV: blocks until every queue fetched its tags, then adds /dev/ublkbN. */
  startDev(devId: number, pid: number): void {
    this.#cmd(UblkCmd.START_DEV, devId, { data: BigInt(pid) });
  }

  /** STOP_DEV: removes the disk (in-flight requests finish first); every queue's fetches end with ABORT. */
  stopDev(devId: number): void {
    this.#cmd(UblkCmd.STOP_DEV, devId);
  }

  /** DEL_DEV: waits until /dev/ublkcN is closed by every server, then deletes the device. */
  delDev(devId: number): void {
    this.#cmd(UblkCmd.DEL_DEV, devId);
  }

  /** START_USER_RECOVERY on a quiesced device; false (EBUSY) while the dead server is still being reaped. */
  startUserRecovery(devId: number): boolean {
    return this.#cmd(UblkCmd.START_USER_RECOVERY, devId, { allow: [-16] }) >= 0;
  }

  /** END_USER_RECOVERY: the new server (pid) has fetched every tag; the device runs again. */
  endUserRecovery(devId: number, pid: number): void {
    this.#cmd(UblkCmd.END_USER_RECOVERY, devId, { data: BigInt(pid) });
  }

  /** Close the ring, the page and the fd. */
  close(): void {
    this.#ring.close();
    this.#libc.munmap(this.#addr, BigInt(PAGE));
    this.#libc.close(this.#fd);
  }
}

/** Bytes of struct ublksrv_ctrl_cmd, re-exported for tests. */
export { CTRL_CMD_BYTES };
