/**
 * Identify Controller and Identify Namespace as the driver uses them: the
 * byte layout named once here (NVMe Base 2.0, figures 275 and 280), decoded
 * once into typed structures. The nvme-cli presentation of every field lives
 * in lib/admin/identify.ts; the driver, admin, sanitize and firmware modules
 * read these instead of offsets.
 * @module
 */
import { InvalidArgumentError } from "./errors.ts";

/** Byte offsets in the Identify Controller data structure. */
export const IdCtrlOffset = {
  VID: 0,
  SSVID: 2,
  SN: 4,
  MN: 24,
  FR: 64,
  MDTS: 77,
  CNTLID: 78,
  VER: 80,
  RTD3E: 88,
  OACS: 256,
  ACL: 258,
  AERL: 259,
  FRMW: 260,
  LPA: 261,
  ELPE: 262,
  SANICAP: 328,
  SQES: 512,
  CQES: 513,
  NN: 516,
  ONCS: 520,
  FNA: 524,
  VWC: 525,
  FWUG: 319,
  RAB: 72,
  IEEE: 73,
  OAES: 92,
  CTRATT: 96,
  CNTRLTYPE: 111,
  NPSS: 263,
  WCTEMP: 266,
  CCTEMP: 268,
  TNVMCAP: 280,
  UNVMCAP: 296,
  EDSTT: 316,
  OCFS: 534,
  MNAN: 540,
  PSD0: 2048,
  KAS: 320,
  MAXCMD: 514,
  SGLS: 536,
  SUBNQN: 768,
  IOCCSZ: 1792,
  IORCSZ: 1796,
  ICDOFF: 1800,
  FCATT: 1802,
  MSDBD: 1803,
} as const;

/** Byte offsets in the Identify Namespace data structure (NVM command set). */
export const IdNsOffset = {
  NSZE: 0,
  NCAP: 8,
  NUSE: 16,
  NLBAF: 25,
  FLBAS: 26,
  DLFEAT: 33,
  NVMCAP: 48,
  NGUID: 104,
  EUI64: 120,
  MSSRL: 74,
  MCL: 76,
  MSRC: 80,
  LBAF: 128,
} as const;

/** Identify data is always this long. */
export const IDENTIFY_BYTES = 4096;

/** What the driver needs of Identify Controller, decoded once. */
export interface IdentifyController {
  /** PCI vendor id. */
  vid: number;
  /** PCI subsystem vendor id. */
  ssvid: number;
  /** Serial number (trimmed). */
  serial: string;
  /** Model number (trimmed). */
  model: string;
  /** Firmware revision (trimmed). */
  firmware: string;
  /** Maximum Data Transfer Size (power of two of CAP.MPSMIN; 0: no limit). */
  mdts: number;
  /** Controller id. */
  cntlid: number;
  /** RTD3 entry latency, µs (0: not reported). */
  rtd3e: number;
  /** Optional Admin Command Support. */
  oacs: number;
  /** Asynchronous Event Request Limit (one-based). */
  aerLimit: number;
  /** Firmware updates (FRMW). */
  frmw: number;
  /** Error log page entries (one-based). */
  errorLogEntries: number;
  /** Sanitize capabilities (SANICAP). */
  sanicap: number;
  /** Firmware update granularity (FWUG; 0xff: no restriction, 0: unknown). */
  fwug: number;
  /** Submission queue entry size: required and maximum, log2 bytes. */
  sqes: { min: number; max: number };
  /** Completion queue entry size: required and maximum, log2 bytes. */
  cqes: { min: number; max: number };
  /** Number of namespaces. */
  nn: number;
  /** Optional NVM Command Support. */
  oncs: number;
  /** Format NVM Attributes (FNA). */
  fna: number;
  /** Volatile write cache present (VWC bit 0). */
  vwc: boolean;
  /** Controller type (1 IO, 2 discovery, 3 administrative; 0 not reported). */
  cntrltype: number;
  /** Keep Alive Support: granularity in units of 100 ms (0: not supported). */
  kas: number;
  /** Maximum outstanding commands per queue (0: not reported). */
  maxcmd: number;
  /** SGL support (SGLS). */
  sgls: number;
  /** NVM Subsystem NQN. */
  subnqn: string;
  /** Fabrics: IO queue command capsule size, 16-byte units (0 on PCIe). */
  ioccsz: number;
  /** Fabrics: IO queue response capsule size, 16-byte units. */
  iorcsz: number;
  /** Fabrics: in-capsule data offset, 16-byte units. */
  icdoff: number;
  /** Fabrics: maximum SGL data block descriptors per command (0: no limit). */
  msdbd: number;
}

/** What the driver needs of Identify Namespace, decoded once. */
export interface IdentifyNamespace {
  /** Size in logical blocks. */
  nsze: bigint;
  /** Capacity in logical blocks. */
  ncap: bigint;
  /** Utilization in logical blocks. */
  nuse: bigint;
  /** Index of the LBA format in use. */
  lbaFormat: number;
  /** Logical block size of the format in use, bytes. */
  blockSize: number;
  /** Metadata bytes per block of the format in use. */
  metadataSize: number;
  /** Copy: Maximum Single Source Range Length, blocks. */
  mssrl: number;
  /** Copy: Maximum Copy Length, blocks. */
  mcl: number;
  /** Copy: Maximum Source Range Count, one-based. */
  msrc: number;
}

function check(d: Uint8Array, what: string): DataView {
  if (!(d instanceof Uint8Array) || d.length < IDENTIFY_BYTES) {
    throw new InvalidArgumentError(`${what}: need ${IDENTIFY_BYTES} bytes, got ${d?.length}`);
  }
  return new DataView(d.buffer, d.byteOffset, IDENTIFY_BYTES);
}

function ascii(d: Uint8Array, off: number, len: number): string {
  let s = "";
  // A NUL ends the string, as C reads it.
  for (let i = off; i < off + len && d[i] !== 0; i++) s += String.fromCharCode(d[i]);
  return s.replace(/[\s\0]+$/, "").replace(/^\s+/, "");
}

/** Decode the driver's view of Identify Controller. */
export function decodeIdentifyController(d: Uint8Array): IdentifyController {
  const v = check(d, "Identify Controller");
  const O = IdCtrlOffset;
  return {
    vid: v.getUint16(O.VID, true),
    ssvid: v.getUint16(O.SSVID, true),
    serial: ascii(d, O.SN, 20),
    model: ascii(d, O.MN, 40),
    firmware: ascii(d, O.FR, 8),
    mdts: d[O.MDTS],
    cntlid: v.getUint16(O.CNTLID, true),
    rtd3e: v.getUint32(O.RTD3E, true),
    oacs: v.getUint16(O.OACS, true),
    aerLimit: d[O.AERL] + 1,
    frmw: d[O.FRMW],
    errorLogEntries: d[O.ELPE] + 1,
    sanicap: v.getUint32(O.SANICAP, true),
    fwug: d[O.FWUG],
    sqes: { min: d[O.SQES] & 0xf, max: d[O.SQES] >> 4 },
    cqes: { min: d[O.CQES] & 0xf, max: d[O.CQES] >> 4 },
    nn: v.getUint32(O.NN, true),
    oncs: v.getUint16(O.ONCS, true),
    fna: d[O.FNA],
    vwc: (d[O.VWC] & 1) === 1,
    cntrltype: d[O.CNTRLTYPE],
    kas: v.getUint16(O.KAS, true),
    maxcmd: v.getUint16(O.MAXCMD, true),
    sgls: v.getUint32(O.SGLS, true),
    subnqn: ascii(d, O.SUBNQN, 256),
    ioccsz: v.getUint32(O.IOCCSZ, true),
    iorcsz: v.getUint32(O.IORCSZ, true),
    icdoff: v.getUint16(O.ICDOFF, true),
    msdbd: d[O.MSDBD],
  };
}

/** Decode the driver's view of Identify Namespace (the LBA format in use). */
export function decodeIdentifyNamespace(d: Uint8Array): IdentifyNamespace {
  const v = check(d, "Identify Namespace");
  const O = IdNsOffset;
  const flbas = d[O.FLBAS];
  // FLBAS bits 3:0, and bits 6:5 as the high part of the index past 16 formats.
  const lbaFormat = ((flbas & 0x60) >> 1) | (flbas & 0x0f);
  const lbaf = v.getUint32(O.LBAF + lbaFormat * 4, true);
  return {
    nsze: v.getBigUint64(O.NSZE, true),
    ncap: v.getBigUint64(O.NCAP, true),
    nuse: v.getBigUint64(O.NUSE, true),
    lbaFormat,
    blockSize: 2 ** ((lbaf >> 16) & 0xff),
    metadataSize: lbaf & 0xffff,
    mssrl: v.getUint16(O.MSSRL, true),
    mcl: v.getUint32(O.MCL, true),
    msrc: d[O.MSRC] + 1,
  };
}
