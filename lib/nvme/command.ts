/**
 * Submission queue entry builders: small pure functions over a 16-dword array.
 * The queue fills in the command identifier and the data pointer (PRP1/PRP2).
 * @module
 */
import { AdminOpc, Cns, Fid, IoOpc } from "./spec.ts";

/** A submission queue entry as 16 little-endian dwords (CDW0..CDW15). */
export type Sqe = Uint32Array;

/** Dword indices inside an SQE. */
export const SqeDw = {
  CDW0: 0,
  NSID: 1,
  MPTR_LO: 4,
  MPTR_HI: 5,
  PRP1_LO: 6,
  PRP1_HI: 7,
  PRP2_LO: 8,
  PRP2_HI: 9,
  CDW10: 10,
  CDW11: 11,
  CDW12: 12,
  CDW13: 13,
  CDW14: 14,
  CDW15: 15,
} as const;

/** A fresh all-zero SQE with the opcode and NSID set. */
export function sqe(opcode: number, nsid = 0): Sqe {
  const s = new Uint32Array(16);
  s[0] = opcode & 0xff;
  s[1] = nsid >>> 0;
  return s;
}

const TWO32 = 0x1_0000_0000;

/** Low 32 bits of a non-negative integer below 2^53. */
export function lo32(v: number): number {
  return (v % TWO32) >>> 0;
}

/** High 32 bits of a non-negative integer below 2^53. */
export function hi32(v: number): number {
  return Math.floor(v / TWO32) >>> 0;
}

/**
 * Fill a read/write-shaped command in place (read, write, compare, verify,
 * write zeroes): SLBA in CDW10-11, zero-based block count in CDW12[15:0].
 * No allocation: this runs once per IO.
 */
export function setRw(s: Sqe, opcode: number, nsid: number, slba: number, nlb0: number, cdw12Flags = 0): void {
  s[0] = opcode;
  s[1] = nsid;
  s[2] = 0;
  s[3] = 0;
  s[4] = 0;
  s[5] = 0;
  s[10] = lo32(slba);
  s[11] = hi32(slba);
  s[12] = ((nlb0 & 0xffff) | cdw12Flags) >>> 0;
  s[13] = 0;
  s[14] = 0;
  s[15] = 0;
}

/** Read command for `nlb` blocks (one-based count). */
export function readCmd(nsid: number, slba: number, nlb: number): Sqe {
  const s = new Uint32Array(16);
  setRw(s, IoOpc.READ, nsid, slba, nlb - 1);
  return s;
}

/** Write command for `nlb` blocks (one-based count). */
export function writeCmd(nsid: number, slba: number, nlb: number): Sqe {
  const s = new Uint32Array(16);
  setRw(s, IoOpc.WRITE, nsid, slba, nlb - 1);
  return s;
}

/** Flush command. NSID 0xffffffff flushes all namespaces where supported. */
export function flushCmd(nsid: number): Sqe {
  return sqe(IoOpc.FLUSH, nsid);
}

/** Identify command: CNS in CDW10[7:0], controller id in CDW10[31:16]. */
export function identifyCmd(cns: number, nsid = 0, cntid = 0, csi = 0): Sqe {
  const s = sqe(AdminOpc.IDENTIFY, nsid);
  s[10] = ((cns & 0xff) | ((cntid & 0xffff) << 16)) >>> 0;
  s[11] = (csi & 0xff) << 24;
  return s;
}

/** Identify Controller (CNS 01h). */
export function identifyControllerCmd(): Sqe {
  return identifyCmd(Cns.CONTROLLER);
}

/** Identify Namespace (CNS 00h). */
export function identifyNamespaceCmd(nsid: number): Sqe {
  return identifyCmd(Cns.NAMESPACE, nsid);
}

/** Active Namespace ID list (CNS 02h): active NSIDs greater than `startNsid`. */
export function activeNsListCmd(startNsid = 0): Sqe {
  return identifyCmd(Cns.ACTIVE_NS_LIST, startNsid);
}

/**
 * Get Log Page for `bytes` bytes (a multiple of 4) at byte `offset`.
 * NUMD is zero-based dwords split over CDW10[31:16] (NUMDL) and CDW11[15:0] (NUMDU).
 */
export function getLogPageCmd(
  lid: number,
  bytes: number,
  opts: { nsid?: number; offset?: number; lsp?: number; rae?: boolean; lsi?: number; csi?: number } = {},
): Sqe {
  const s = sqe(AdminOpc.GET_LOG_PAGE, opts.nsid ?? 0xffffffff);
  const numd = (bytes >>> 2) - 1;
  s[10] = ((lid & 0xff) | ((opts.lsp ?? 0) & 0x7f) << 8 | (opts.rae ? 1 << 15 : 0) | ((numd & 0xffff) << 16)) >>> 0;
  s[11] = ((numd >>> 16) & 0xffff | ((opts.lsi ?? 0) & 0xffff) << 16) >>> 0;
  const off = opts.offset ?? 0;
  s[12] = lo32(off);
  s[13] = hi32(off);
  s[14] = ((opts.csi ?? 0) & 0xff) << 24;
  return s;
}

/** Set Features: FID in CDW10[7:0], SV in CDW10[31]. */
export function setFeaturesCmd(fid: number, cdw11: number, opts: { nsid?: number; save?: boolean; cdw12?: number } = {}): Sqe {
  const s = sqe(AdminOpc.SET_FEATURES, opts.nsid ?? 0);
  s[10] = ((fid & 0xff) | (opts.save ? 0x8000_0000 : 0)) >>> 0;
  s[11] = cdw11 >>> 0;
  s[12] = (opts.cdw12 ?? 0) >>> 0;
  return s;
}

/** Get Features: FID in CDW10[7:0], SEL in CDW10[10:8] (0 current, 1 default, 2 saved, 3 capabilities). */
export function getFeaturesCmd(fid: number, opts: { nsid?: number; sel?: number; cdw11?: number } = {}): Sqe {
  const s = sqe(AdminOpc.GET_FEATURES, opts.nsid ?? 0);
  s[10] = ((fid & 0xff) | ((opts.sel ?? 0) & 7) << 8) >>> 0;
  s[11] = (opts.cdw11 ?? 0) >>> 0;
  return s;
}

/** Set Features Number of Queues: zero-based counts of IO SQs and CQs requested. */
export function setNumQueuesCmd(nsq: number, ncq: number): Sqe {
  return setFeaturesCmd(Fid.NUM_QUEUES, (((nsq - 1) & 0xffff) | (((ncq - 1) & 0xffff) << 16)) >>> 0);
}

/** Create IO Completion Queue (physically contiguous). Interrupts on vector `iv` when `ien`. */
export function createIoCqCmd(qid: number, entries: number, ien = false, iv = 0): Sqe {
  const s = sqe(AdminOpc.CREATE_IO_CQ);
  s[10] = ((qid & 0xffff) | (((entries - 1) & 0xffff) << 16)) >>> 0;
  s[11] = (1 | (ien ? 2 : 0) | ((iv & 0xffff) << 16)) >>> 0;
  return s;
}

/** Create IO Submission Queue (physically contiguous) bound to completion queue `cqid`. */
export function createIoSqCmd(qid: number, entries: number, cqid: number, prio = 0): Sqe {
  const s = sqe(AdminOpc.CREATE_IO_SQ);
  s[10] = ((qid & 0xffff) | (((entries - 1) & 0xffff) << 16)) >>> 0;
  s[11] = (1 | ((prio & 3) << 1) | ((cqid & 0xffff) << 16)) >>> 0;
  return s;
}

/** Delete IO Submission Queue. */
export function deleteIoSqCmd(qid: number): Sqe {
  const s = sqe(AdminOpc.DELETE_IO_SQ);
  s[10] = qid & 0xffff;
  return s;
}

/** Delete IO Completion Queue. */
export function deleteIoCqCmd(qid: number): Sqe {
  const s = sqe(AdminOpc.DELETE_IO_CQ);
  s[10] = qid & 0xffff;
  return s;
}

/** Abort the command `cid` submitted on `sqid`. */
export function abortCmd(sqid: number, cid: number): Sqe {
  const s = sqe(AdminOpc.ABORT);
  s[10] = ((sqid & 0xffff) | ((cid & 0xffff) << 16)) >>> 0;
  return s;
}
