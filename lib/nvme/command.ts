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
  CDW2: 2,
  CDW3: 3,
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

/**
 * Low 32 bits of a non-negative integer below 2^53. ToUint32 is already
 * modulo 2^32; `v % 2^32` was a floating-point remainder (x87 fprem in V8's
 * code, ~15 ns per split natively, a softfloat helper under TCG) on every IO.
 */
export function lo32(v: number): number {
  return v >>> 0;
}

/** High 32 bits of a non-negative integer below 2^53 (0 without a division for the usual small value). */
export function hi32(v: number): number {
  return v >= 0 && v <= 0xffff_ffff ? 0 : Math.floor(v / TWO32) >>> 0;
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

/** A fresh read/write-shaped command for `nlb` blocks (one-based count). */
function rwCmd(opcode: number, nsid: number, slba: number, nlb: number, cdw12Flags = 0): Sqe {
  const s = new Uint32Array(16);
  setRw(s, opcode, nsid, slba, nlb - 1, cdw12Flags);
  return s;
}

/** Read command for `nlb` blocks (one-based count). */
export function readCmd(nsid: number, slba: number, nlb: number): Sqe {
  return rwCmd(IoOpc.READ, nsid, slba, nlb);
}

/** Write command for `nlb` blocks (one-based count). */
export function writeCmd(nsid: number, slba: number, nlb: number): Sqe {
  return rwCmd(IoOpc.WRITE, nsid, slba, nlb);
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
  opts: { nsid?: number; offset?: number; lsp?: number; rae?: boolean; lsi?: number; csi?: number; uuidIndex?: number; ot?: boolean } = {},
): Sqe {
  const s = sqe(AdminOpc.GET_LOG_PAGE, opts.nsid ?? 0xffffffff);
  const numd = (bytes >>> 2) - 1;
  s[10] = ((lid & 0xff) | ((opts.lsp ?? 0) & 0x7f) << 8 | (opts.rae ? 1 << 15 : 0) | ((numd & 0xffff) << 16)) >>> 0;
  s[11] = ((numd >>> 16) & 0xffff | ((opts.lsi ?? 0) & 0xffff) << 16) >>> 0;
  const off = opts.offset ?? 0;
  s[12] = lo32(off);
  s[13] = hi32(off);
  // CDW14: UUID index 6:0, offset type 23 (offset is an index, not bytes), CSI 31:24.
  s[14] = (((opts.csi ?? 0) & 0xff) << 24 | (opts.ot ? 1 << 23 : 0) | ((opts.uuidIndex ?? 0) & 0x7f)) >>> 0;
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

/**
 * Set Features Interrupt Coalescing (FID 08h): interrupt once `thr0 + 1`
 * completions have gathered or `time100us` × 100 µs have passed. Applies to
 * every vector except those with coalescing disabled (FID 09h).
 */
export function setIrqCoalescingCmd(thr0: number, time100us: number): Sqe {
  return setFeaturesCmd(Fid.IRQ_COALESCING, ((thr0 & 0xff) | ((time100us & 0xff) << 8)) >>> 0);
}

/** Set Features Interrupt Vector Configuration (FID 09h): CD = true turns coalescing off for vector `iv`. */
export function setIrqVectorConfigCmd(iv: number, coalescingDisable: boolean): Sqe {
  return setFeaturesCmd(Fid.IRQ_CONFIG, ((iv & 0xffff) | (coalescingDisable ? 0x1_0000 : 0)) >>> 0);
}

// Create/Delete IO CQ/SQ are built where they are sent, in the PCIe transport;
// exported here too under the names this module always gave them.
export { createIoCqCmd, createIoSqCmd, deleteIoCqCmd, deleteIoSqCmd } from "./pcie.ts";

/** Abort the command `cid` submitted on `sqid`. */
export function abortCmd(sqid: number, cid: number): Sqe {
  const s = sqe(AdminOpc.ABORT);
  s[10] = ((sqid & 0xffff) | ((cid & 0xffff) << 16)) >>> 0;
  return s;
}

/** Write Zeroes for `nlb` blocks; `deac` asks the controller to deallocate them as well. */
export function writeZeroesCmd(nsid: number, slba: number, nlb: number, opts: { deac?: boolean; fua?: boolean } = {}): Sqe {
  return rwCmd(IoOpc.WRITE_ZEROES, nsid, slba, nlb, (opts.deac ? 1 << 25 : 0) | (opts.fua ? 1 << 30 : 0));
}

/** Compare `nlb` blocks against the data buffer. */
export function compareCmd(nsid: number, slba: number, nlb: number): Sqe {
  return rwCmd(IoOpc.COMPARE, nsid, slba, nlb);
}

/** Verify `nlb` blocks (integrity check on the controller; no data transfer). */
export function verifyCmd(nsid: number, slba: number, nlb: number): Sqe {
  return rwCmd(IoOpc.VERIFY, nsid, slba, nlb);
}

/** Dataset Management over `ranges` 16-byte range entries (one-based count); AD = deallocate. */
export function dsmCmd(nsid: number, ranges: number, attrs: { ad?: boolean; idw?: boolean; idr?: boolean } = {}): Sqe {
  const s = sqe(IoOpc.DATASET_MANAGEMENT, nsid);
  s[10] = (ranges - 1) & 0xff;
  s[11] = (attrs.idr ? 1 : 0) | (attrs.idw ? 2 : 0) | (attrs.ad ? 4 : 0);
  return s;
}

/** Copy `ranges` source ranges (one-based count, descriptor format 0) to `sdlba`. */
export function copyCmd(nsid: number, sdlba: number, ranges: number, opts: { format?: number } = {}): Sqe {
  const s = sqe(IoOpc.COPY, nsid);
  s[10] = lo32(sdlba);
  s[11] = hi32(sdlba);
  s[12] = (((ranges - 1) & 0xff) | ((opts.format ?? 0) & 0xf) << 8) >>> 0;
  return s;
}

/** Format NVM: LBA format index (0-63), secure erase setting (0 none, 1 user data, 2 crypto), PI. */
export function formatNvmCmd(
  nsid: number,
  opts: { lbaf?: number; ses?: number; pi?: number; pil?: boolean; mset?: boolean } = {},
): Sqe {
  const s = sqe(AdminOpc.FORMAT_NVM, nsid);
  const lbaf = opts.lbaf ?? 0;
  s[10] = ((lbaf & 0xf) | (opts.mset ? 1 << 4 : 0) | ((opts.pi ?? 0) & 7) << 5 | (opts.pil ? 1 << 8 : 0) |
    ((opts.ses ?? 0) & 7) << 9 | ((lbaf >> 4) & 3) << 12) >>> 0;
  return s;
}

/** Device Self-test with code `stc` (1 short, 2 extended, 0xf abort). */
export function deviceSelfTestCmd(nsid: number, stc: number): Sqe {
  const s = sqe(AdminOpc.DEVICE_SELF_TEST, nsid);
  s[10] = stc & 0xf;
  return s;
}

/** Firmware Image Download of `bytes` (a multiple of 4) at byte `offset` (a multiple of 4) of the image. */
export function fwDownloadCmd(bytes: number, offset: number): Sqe {
  const s = sqe(AdminOpc.FW_IMAGE_DOWNLOAD);
  s[10] = ((bytes >>> 2) - 1) >>> 0;
  s[11] = (offset / 4) >>> 0;
  return s;
}

/** Firmware Commit: slot (0 = controller's choice), commit action, boot partition id. */
export function fwCommitCmd(slot: number, action: number, bpid = 0): Sqe {
  const s = sqe(AdminOpc.FW_COMMIT);
  s[10] = ((slot & 7) | (action & 7) << 3 | (bpid ? 1 << 31 : 0)) >>> 0;
  return s;
}

/** Sanitize: action, allow unrestricted exit, overwrite pass count (1-16), invert, no-deallocate, pattern. */
export function sanitizeCmd(
  action: number,
  opts: { ause?: boolean; owpass?: number; oipbp?: boolean; nodas?: boolean; ovrpat?: number } = {},
): Sqe {
  const s = sqe(AdminOpc.SANITIZE);
  s[10] = ((action & 7) | (opts.ause ? 1 << 3 : 0) | ((opts.owpass ?? 0) & 0xf) << 4 | (opts.oipbp ? 1 << 8 : 0) |
    (opts.nodas ? 1 << 9 : 0)) >>> 0;
  s[11] = (opts.ovrpat ?? 0) >>> 0;
  return s;
}

/** Namespace Management create (SEL 0; data: a 4096-byte namespace structure) for command set `csi`. */
export function nsCreateCmd(csi = 0): Sqe {
  const s = sqe(AdminOpc.NS_MANAGEMENT, 0);
  s[10] = 0;
  s[11] = (csi & 0xff) << 24;
  return s;
}

/** Namespace Management delete (SEL 1) of `nsid` (0xffffffff: all). */
export function nsDeleteCmd(nsid: number): Sqe {
  const s = sqe(AdminOpc.NS_MANAGEMENT, nsid);
  s[10] = 1;
  return s;
}

/** Namespace Attachment: attach (SEL 0) or detach (SEL 1); data: a controller list. */
export function nsAttachCmd(nsid: number, detach: boolean): Sqe {
  const s = sqe(AdminOpc.NS_ATTACHMENT, nsid);
  s[10] = detach ? 1 : 0;
  return s;
}

/** Asynchronous Event Request: completes when the controller has an event to report. */
export function asyncEventRequestCmd(): Sqe {
  return sqe(AdminOpc.ASYNC_EVENT_REQUEST);
}

/** Namespace Identification Descriptor list (CNS 03h) for `nsid`. */
export function nsDescsCmd(nsid: number): Sqe {
  return identifyCmd(Cns.NS_DESCRIPTORS, nsid);
}
