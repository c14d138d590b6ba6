/**
 * Linux ublk's user API (include/uapi/linux/ublk_cmd.h), named once: control
 * and IO command numbers (plain and ioctl-encoded), feature flags, device
 * states, and the byte layouts of the structs that cross the boundary.
 * Layouts checked against the 6.1 and 6.12 headers.
 * @module
 */

/** Control commands (cmd_op of a URING_CMD on /dev/ublk-control), plain numbers. */
export const UblkCmd = {
  GET_QUEUE_AFFINITY: 0x01,
  GET_DEV_INFO: 0x02,
  ADD_DEV: 0x04,
  DEL_DEV: 0x05,
  START_DEV: 0x06,
  STOP_DEV: 0x07,
  SET_PARAMS: 0x08,
  GET_PARAMS: 0x09,
  START_USER_RECOVERY: 0x10,
  END_USER_RECOVERY: 0x11,
} as const;

/** IO commands (cmd_op of a URING_CMD on /dev/ublkcN), plain numbers. */
export const UblkIoCmd = {
  FETCH_REQ: 0x20,
  COMMIT_AND_FETCH_REQ: 0x21,
} as const;

/** Bytes of struct ublksrv_ctrl_cmd. */
export const CTRL_CMD_BYTES = 32;
/** Bytes of struct ublksrv_io_cmd. */
export const IO_CMD_BYTES = 16;

/** Control commands the kernel reads (_IOR) rather than writes back (_IOWR). */
const READ_ONLY = new Set<number>([UblkCmd.GET_QUEUE_AFFINITY, UblkCmd.GET_DEV_INFO, UblkCmd.GET_PARAMS]);

/** _IOC(dir, 'u', nr, size): the encoded form kernels from 6.4 expect (`UBLK_U_*`). */
export function encodeOp(nr: number, size: number, read = false): number {
  const dir = read ? 2 : 3;
  return ((dir << 30) | (size << 16) | (0x75 << 8) | nr) >>> 0;
}

/** The encoded control command `nr`. */
export function ctrlOp(nr: number): number {
  return encodeOp(nr, CTRL_CMD_BYTES, READ_ONLY.has(nr));
}

/** The encoded IO command `nr`. */
export function ioOp(nr: number): number {
  return encodeOp(nr, IO_CMD_BYTES);
}

/** Device feature flags (dev_info.flags). */
export const UblkFlag = {
  SUPPORT_ZERO_COPY: 1 << 0,
  URING_CMD_COMP_IN_TASK: 1 << 1,
  NEED_GET_DATA: 1 << 2,
  /** A dead server leaves the device quiesced; a new one may take it over. */
  USER_RECOVERY: 1 << 3,
  /** With USER_RECOVERY: requests the dead server held are issued again to the new one. */
  USER_RECOVERY_REISSUE: 1 << 4,
  UNPRIVILEGED_DEV: 1 << 5,
  /** IO commands in their ioctl-encoded form. */
  CMD_IOCTL_ENCODE: 1 << 6,
  USER_COPY: 1 << 7,
  ZONED: 1 << 8,
} as const;

/** dev_info.state. */
export const UblkState = {
  DEAD: 0,
  LIVE: 1,
  QUIESCED: 2,
  FAIL_IO: 3,
} as const;

/** Names of {@link UblkState} values, for listings. */
export const UBLK_STATE_NAMES: Record<number, string> = { 0: "dead", 1: "live", 2: "quiesced", 3: "fail-io" };

/** struct ublksrv_ctrl_cmd (32 bytes). */
export const CtrlCmdOff = {
  DEV_ID: 0,
  QUEUE_ID: 4,
  LEN: 6,
  ADDR: 8,
  DATA: 16,
} as const;

/** struct ublksrv_ctrl_dev_info (64 bytes). */
export const DevInfoOff = {
  SIZE: 64,
  NR_HW_QUEUES: 0,
  QUEUE_DEPTH: 2,
  STATE: 4,
  MAX_IO_BUF_BYTES: 8,
  DEV_ID: 12,
  UBLKSRV_PID: 16,
  FLAGS: 24,
} as const;

/** struct ublk_params: header, basic (type 1) and discard (type 2) parts. */
export const ParamsOff = {
  /** Bytes this project sends (header + basic + discard, as 6.1 defines the struct). */
  SIZE: 64,
  LEN: 0,
  TYPES: 4,
  ATTRS: 8,
  LOGICAL_BS_SHIFT: 12,
  PHYSICAL_BS_SHIFT: 13,
  IO_OPT_SHIFT: 14,
  IO_MIN_SHIFT: 15,
  MAX_SECTORS: 16,
  CHUNK_SECTORS: 20,
  DEV_SECTORS: 24,
  VIRT_BOUNDARY_MASK: 32,
  DISCARD_ALIGNMENT: 40,
  DISCARD_GRANULARITY: 44,
  MAX_DISCARD_SECTORS: 48,
  MAX_WRITE_ZEROES_SECTORS: 52,
  MAX_DISCARD_SEGMENTS: 56,
} as const;

/** ublk_params.types bits. */
export const ParamType = { BASIC: 1, DISCARD: 2 } as const;

/** ublk_param_basic.attrs bits. */
export const ParamAttr = { READ_ONLY: 1 << 0, ROTATIONAL: 1 << 1, VOLATILE_CACHE: 1 << 2, FUA: 1 << 3 } as const;

/** struct ublksrv_io_desc (24 bytes), in 32-bit words. */
export const IoDescWord = {
  /** Words per descriptor. */
  SIZE: 6,
  /** op in bits 0-7, flags above. */
  OP_FLAGS: 0,
  NR_SECTORS: 1,
  /** start_sector, low and high words. */
  START_LO: 2,
  START_HI: 3,
  /** The buffer address given with the last FETCH/COMMIT (unused here). */
  ADDR_LO: 4,
} as const;

/** Request ops (op_flags & 0xff). */
export const UblkOp = {
  READ: 0,
  WRITE: 1,
  FLUSH: 2,
  DISCARD: 3,
  WRITE_SAME: 4,
  WRITE_ZEROES: 5,
} as const;

/** Request flags (op_flags bits above the op). */
export const UblkIoFlag = {
  FUA: 1 << 13,
  NOUNMAP: 1 << 15,
} as const;

/** struct ublksrv_io_cmd (16 bytes) at the SQE's command area. */
export const IoCmdOff = {
  Q_ID: 0,
  TAG: 2,
  RESULT: 4,
  ADDR: 8,
} as const;

/** CQE res of a FETCH/COMMIT: a request is ready in the descriptor, or the queue is being torn down. */
export const UblkIoRes = { OK: 0, ABORT: -19 } as const;

/** The descriptor array of queue `qId` lies at this mmap offset of /dev/ublkcN (UBLK_MAX_QUEUE_DEPTH * 24, page-rounded). */
export function descOffset(qId: number): bigint {
  return BigInt(qId) * 98304n;
}

/** Deepest queue the kernel allows. */
export const UBLK_MAX_QUEUE_DEPTH = 4096;
/** Most queues the kernel allows. */
export const UBLK_MAX_NR_QUEUES = 4096;
