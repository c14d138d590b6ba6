/**
 * Identify Controller (CNS 01h) and Identify Namespace (CNS 00h) as lib/admin
 * returns them: the decoders and structures of lib/nvme/identify.ts (one
 * layout, decoded once), and the driver's summaries. nvme-cli's text and JSON
 * of them are in lib/cli/format/identify.ts.
 * @module
 */
import { type IdCtrl, identifyControllerOf, type IdNs, identifyNamespaceOf } from "../nvme/identify.ts";

export {
  flbasIndex,
  type IdCtrl,
  IDENTIFY_DATA_SIZE,
  type IdNs,
  type LbaFormat,
  parseIdCtrl,
  parseIdNs,
  type PowerState,
} from "../nvme/identify.ts";
export { Uint128, Uint64 } from "../nvme/wide.ts";

// ---------------------------------------------------------------------------
// Summaries for the driver

/** Controller facts the driver needs, as plain numbers and trimmed strings. */
export interface CtrlSummary {
  /** Serial number, trimmed. */
  serial: string;
  /** Model number, trimmed. */
  model: string;
  /** Firmware revision, trimmed. */
  firmware: string;
  /** PCI vendor ID. */
  vid: number;
  /** PCI subsystem vendor ID. */
  ssvid: number;
  /** Maximum data transfer size exponent (0 = no limit). */
  mdts: number;
  /** Number of namespaces. */
  nn: number;
  /** Optional NVM command support. */
  oncs: number;
  /** Volatile write cache. */
  vwc: number;
  /** Submission queue entry sizes. */
  sqes: number;
  /** Completion queue entry sizes. */
  cqes: number;
  /** Controller ID. */
  cntlid: number;
  /** Version (VER). */
  ver: number;
  /** Firmware updates. */
  frmw: number;
  /** Sanitize capabilities. */
  sanicap: number;
  /** Firmware update granularity. */
  fwug: number;
}

/** Controller summary for the driver. */
export function ctrlSummary(c: IdCtrl): CtrlSummary {
  const d = identifyControllerOf(c);
  return {
    serial: d.serial,
    model: d.model,
    firmware: d.firmware,
    vid: c.vid,
    ssvid: c.ssvid,
    mdts: c.mdts,
    nn: c.nn,
    oncs: c.oncs,
    vwc: c.vwc,
    sqes: c.sqes,
    cqes: c.cqes,
    cntlid: c.cntlid,
    ver: c.ver,
    frmw: c.frmw,
    sanicap: c.sanicap,
    fwug: c.fwug,
  };
}

/** Namespace facts the driver needs. */
export interface NsSummary {
  /** Namespace size in logical blocks. */
  nsze: bigint;
  /** Namespace capacity in logical blocks. */
  ncap: bigint;
  /** Namespace utilization in logical blocks. */
  nuse: bigint;
  /** Logical block size in bytes of the current format (2^LBADS). */
  blockSize: number;
  /** Metadata bytes per block of the current format. */
  metadataSize: number;
  /** Index of the current LBA format (from FLBAS, including bits 6:5). */
  lbaFormat: number;
}

/** Namespace summary for the driver (current format from FLBAS). */
export function nsSummary(n: IdNs): NsSummary {
  const s = identifyNamespaceOf(n);
  return { nsze: s.nsze, ncap: s.ncap, nuse: s.nuse, blockSize: s.blockSize, metadataSize: s.metadataSize, lbaFormat: s.lbaFormat };
}
