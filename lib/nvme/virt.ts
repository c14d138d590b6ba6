/**
 * SR-IOV virtualization layouts (NVMe 1.4 section 8.5): Identify Primary
 * Controller Capabilities (CNS 14h), Identify Secondary Controller List (CNS
 * 15h) and the Virtualization Management command (opcode 1Ch), named and
 * decoded once. lib/admin/virt.ts sends them; the software controller serves
 * them (lib/sim/virt.ts).
 * @module
 */
import { identifyCmd, type Sqe, sqe } from "./command.ts";
import { AdminOpc } from "./spec.ts";

/** Identify CNS values of virtualization. */
export const VirtCns = { PRIMARY_CTRL_CAPS: 0x14, SECONDARY_CTRL_LIST: 0x15 } as const;

/** Byte offsets in Identify Primary Controller Capabilities. */
export const PrimaryCapsOffset = {
  CNTLID: 0,
  PORTID: 2,
  CRT: 4,
  VQFRT: 32,
  VQRFA: 36,
  VQRFAP: 40,
  VQPRT: 42,
  VQFRSM: 44,
  VQGRAN: 46,
  VIFRT: 64,
  VIRFA: 68,
  VIRFAP: 72,
  VIPRT: 74,
  VIFRSM: 76,
  VIGRAN: 78,
} as const;

/** Identify Primary Controller Capabilities, with nvme-cli's field names. */
export interface PrimaryCtrlCaps {
  /** Controller identifier. */
  cntlid: number;
  /** Port identifier. */
  portid: number;
  /** Controller resource types (bit 0 VQ resources, bit 1 VI resources). */
  crt: number;
  /** VQ resources flexible total. */
  vqfrt: number;
  /** VQ resources flexible assigned (to secondaries). */
  vqrfa: number;
  /** VQ resources flexible allocated to the primary. */
  vqrfap: number;
  /** VQ resources private total. */
  vqprt: number;
  /** VQ resources flexible secondary maximum. */
  vqfrsm: number;
  /** VQ flexible resource preferred granularity. */
  vqgran: number;
  /** VI resources flexible total. */
  vifrt: number;
  /** VI resources flexible assigned. */
  virfa: number;
  /** VI resources flexible allocated to the primary. */
  virfap: number;
  /** VI resources private total. */
  viprt: number;
  /** VI resources flexible secondary maximum. */
  vifrsm: number;
  /** VI flexible resource preferred granularity. */
  vigran: number;
}

/** Decode Identify Primary Controller Capabilities (4096 bytes). */
export function parsePrimaryCtrlCaps(d: Uint8Array): PrimaryCtrlCaps {
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength), O = PrimaryCapsOffset;
  const u16 = (o: number) => v.getUint16(o, true), u32 = (o: number) => v.getUint32(o, true);
  return {
    cntlid: u16(O.CNTLID),
    portid: u16(O.PORTID),
    crt: d[O.CRT],
    vqfrt: u32(O.VQFRT),
    vqrfa: u32(O.VQRFA),
    vqrfap: u16(O.VQRFAP),
    vqprt: u16(O.VQPRT),
    vqfrsm: u16(O.VQFRSM),
    vqgran: u16(O.VQGRAN),
    vifrt: u32(O.VIFRT),
    virfa: u32(O.VIRFA),
    virfap: u16(O.VIRFAP),
    viprt: u16(O.VIPRT),
    vifrsm: u16(O.VIFRSM),
    vigran: u16(O.VIGRAN),
  };
}

/** Encode Identify Primary Controller Capabilities into `d` (controllers that serve it). */
export function encodePrimaryCtrlCaps(c: PrimaryCtrlCaps, d: Uint8Array): void {
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength), O = PrimaryCapsOffset;
  v.setUint16(O.CNTLID, c.cntlid, true);
  v.setUint16(O.PORTID, c.portid, true);
  d[O.CRT] = c.crt;
  v.setUint32(O.VQFRT, c.vqfrt, true);
  v.setUint32(O.VQRFA, c.vqrfa, true);
  v.setUint16(O.VQRFAP, c.vqrfap, true);
  v.setUint16(O.VQPRT, c.vqprt, true);
  v.setUint16(O.VQFRSM, c.vqfrsm, true);
  v.setUint16(O.VQGRAN, c.vqgran, true);
  v.setUint32(O.VIFRT, c.vifrt, true);
  v.setUint32(O.VIRFA, c.virfa, true);
  v.setUint16(O.VIRFAP, c.virfap, true);
  v.setUint16(O.VIPRT, c.viprt, true);
  v.setUint16(O.VIFRSM, c.vifrsm, true);
  v.setUint16(O.VIGRAN, c.vigran, true);
}

/** Secondary controller list: NUMID at byte 0, entries of {@link SECONDARY_ENTRY_BYTES} from byte 32. */
export const SECONDARY_LIST_FIRST = 32;
/** Bytes of one secondary controller entry. */
export const SECONDARY_ENTRY_BYTES = 32;
/** Entries one list holds at most. */
export const SECONDARY_LIST_MAX = 127;

/** Byte offsets in a secondary controller entry. */
export const SecondaryEntryOffset = { SCID: 0, PCID: 2, SCS: 4, VFN: 8, NVQ: 10, NVI: 12 } as const;

/** One secondary controller entry. */
export interface SecondaryCtrl {
  /** Secondary controller identifier. */
  scid: number;
  /** Primary controller identifier. */
  pcid: number;
  /** Secondary controller state (bit 0: online). */
  scs: number;
  /** Virtual function number (1-based). */
  vfn: number;
  /** Number of VQ flexible resources assigned. */
  nvq: number;
  /** Number of VI flexible resources assigned. */
  nvi: number;
}

/** Decode an Identify Secondary Controller List (4096 bytes). */
export function parseSecondaryCtrlList(d: Uint8Array): SecondaryCtrl[] {
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength), O = SecondaryEntryOffset;
  const n = Math.min(d[0], SECONDARY_LIST_MAX);
  const out: SecondaryCtrl[] = [];
  for (let i = 0; i < n; i++) {
    const b = SECONDARY_LIST_FIRST + i * SECONDARY_ENTRY_BYTES;
    out.push({
      scid: v.getUint16(b + O.SCID, true),
      pcid: v.getUint16(b + O.PCID, true),
      scs: d[b + O.SCS],
      vfn: v.getUint16(b + O.VFN, true),
      nvq: v.getUint16(b + O.NVQ, true),
      nvi: v.getUint16(b + O.NVI, true),
    });
  }
  return out;
}

/** Encode a secondary controller list into `d` (at most {@link SECONDARY_LIST_MAX} entries). */
export function encodeSecondaryCtrlList(list: SecondaryCtrl[], d: Uint8Array): void {
  const v = new DataView(d.buffer, d.byteOffset, d.byteLength), O = SecondaryEntryOffset;
  const n = Math.min(list.length, SECONDARY_LIST_MAX);
  d[0] = n;
  for (let i = 0; i < n; i++) {
    const b = SECONDARY_LIST_FIRST + i * SECONDARY_ENTRY_BYTES, e = list[i];
    v.setUint16(b + O.SCID, e.scid, true);
    v.setUint16(b + O.PCID, e.pcid, true);
    d[b + O.SCS] = e.scs;
    v.setUint16(b + O.VFN, e.vfn, true);
    v.setUint16(b + O.NVQ, e.nvq, true);
    v.setUint16(b + O.NVI, e.nvi, true);
  }
}

/** Identify Primary Controller Capabilities (CNTID `cntid`, as nvme-cli's `--cntlid` sends it). */
export function primaryCtrlCapsCmd(cntid = 0): Sqe {
  return identifyCmd(VirtCns.PRIMARY_CTRL_CAPS, 0, cntid);
}

/** Identify Secondary Controller List, from controller id `cntid` up (NSID `nsid`, as nvme-cli's `--namespace-id` sends it). */
export function secondaryCtrlListCmd(cntid = 0, nsid = 0): Sqe {
  return identifyCmd(VirtCns.SECONDARY_CTRL_LIST, nsid, cntid);
}

/** Virtualization Management actions (CDW10 bits 3:0). */
export const VirtAction = {
  PRIMARY_FLEXIBLE: 0x1,
  SECONDARY_OFFLINE: 0x7,
  SECONDARY_ASSIGN: 0x8,
  SECONDARY_ONLINE: 0x9,
} as const;

/** Virtualization Management resource types (CDW10 bits 10:8). */
export const VirtResource = { VQ: 0, VI: 1 } as const;

/** Virtualization Management: `act` on controller `cntlid`, `nr` resources of type `rt`. */
export function virtMgmtCmd(act: number, rt: number, cntlid: number, nr: number): Sqe {
  const s = sqe(AdminOpc.VIRTUALIZATION_MGMT);
  s[10] = ((act & 0xf) | ((rt & 7) << 8) | ((cntlid & 0xffff) << 16)) >>> 0;
  s[11] = nr & 0xffff;
  return s;
}
