/**
 * The discovery log page (Get Log Page 70h): layout, encoding for a target
 * and decoding for a host, as Linux's nvmf_disc_rsp_page_entry and SPDK's
 * spdk_nvmf_discovery_log_page_entry put it.
 * @module
 */
import { readNqn } from "./fabrics.ts";

/** Log identifier of the discovery log page. */
export const LID_DISCOVERY = 0x70;

/** Header and entry size in bytes. */
export const DISC_RECORD_SIZE = 1024;

/** Discovery log header offsets. */
export const DiscHeader = { GENCTR: 0, NUMREC: 8, RECFMT: 16 } as const;

/** Discovery log entry offsets. */
export const DiscEntry = {
  TRTYPE: 0,
  ADRFAM: 1,
  SUBTYPE: 2,
  TREQ: 3,
  PORTID: 4,
  CNTLID: 6,
  ASQSZ: 8,
  EFLAGS: 10,
  TRSVCID: 32,
  SUBNQN: 256,
  TRADDR: 512,
  TSAS: 768,
} as const;

/**
 * Byte offsets within an entry's TSAS field (Transport Specific Address Subtype), whose
 * meaning depends on TRTYPE: TCP's security type, RDMA's queue pair and provider types.
 */
export const DiscTsas = { TCP_SECTYPE: 0, RDMA_QPTYPE: 0, RDMA_PRTYPE: 1, RDMA_CMS: 2, RDMA_PKEY: 8 } as const;

/** TRTYPE value for RDMA. */
export const TRTYPE_RDMA = 1;
/** TRTYPE value for TCP. */
export const TRTYPE_TCP = 3;
/** ADRFAM values. */
export const AdrFam = { IPV4: 1, IPV6: 2 } as const;
/** SUBTYPE values. */
export const SubType = { REFERRAL: 1, NVM: 2, CURRENT_DISCOVERY: 3 } as const;
/** TREQ bit: SQ flow control disable supported. */
export const TREQ_DISABLE_SQFLOW = 0x04;

/** One discovery log record. */
export interface DiscoveryEntry {
  /** Transport type (3 = TCP). */
  trtype: number;
  /** Address family (1 IPv4, 2 IPv6). */
  adrfam: number;
  /** Subsystem type (2 NVM, 3 current discovery, 1 referral). */
  subtype: number;
  /** Transport requirements. */
  treq: number;
  /** Port id. */
  portid: number;
  /** Controller id (0xFFFF = dynamic). */
  cntlid: number;
  /** Admin max SQ size. */
  asqsz: number;
  /** Service id (TCP port) as text. */
  trsvcid: string;
  /** Subsystem NQN. */
  subnqn: string;
  /** Transport address as text. */
  traddr: string;
  /** Entry flags (EFLAGS: explicit discovery connections, duplicate information, no CDC); decoded always, encoded when given. */
  eflags?: number;
  /** TCP security type (TSAS byte 0: 0 none, 1 TLS 1.2, 2 TLS 1.3); decoded on TCP entries, encoded when given. */
  sectype?: number;
  /** RDMA's TSAS fields; decoded on RDMA entries, encoded when given. */
  rdma?: DiscoveryRdma;
}

/** The TSAS of an RDMA entry. */
export interface DiscoveryRdma {
  /** Queue pair service type (1 connected, 2 datagram). */
  qptype: number;
  /** Provider type (1 not specified, 2 InfiniBand, 3 RoCE, 4 RoCE v2, 5 iWARP). */
  prtype: number;
  /** Connection management service (1 RDMA_CM). */
  cms: number;
  /** Partition key. */
  pkey: number;
}

/** Generation counter and record count of a log header. */
export function decodeDiscoveryHeader(b: Uint8Array): { genctr: bigint; numrec: number } {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  return { genctr: v.getBigUint64(DiscHeader.GENCTR, true), numrec: Number(v.getBigUint64(DiscHeader.NUMREC, true)) };
}

/** Decode the records of a log read from offset 0 (header then entries). */
export function decodeDiscoveryLog(b: Uint8Array): DiscoveryEntry[] {
  const { numrec } = decodeDiscoveryHeader(b);
  const out: DiscoveryEntry[] = [];
  for (let i = 0; i < numrec && (i + 2) * DISC_RECORD_SIZE <= b.length; i++) {
    const o = (i + 1) * DISC_RECORD_SIZE;
    out.push({
      trtype: b[o + DiscEntry.TRTYPE],
      adrfam: b[o + DiscEntry.ADRFAM],
      subtype: b[o + DiscEntry.SUBTYPE],
      treq: b[o + DiscEntry.TREQ],
      portid: b[o + DiscEntry.PORTID] | (b[o + DiscEntry.PORTID + 1] << 8),
      cntlid: b[o + DiscEntry.CNTLID] | (b[o + DiscEntry.CNTLID + 1] << 8),
      asqsz: b[o + DiscEntry.ASQSZ] | (b[o + DiscEntry.ASQSZ + 1] << 8),
      trsvcid: readNqn(b, o + DiscEntry.TRSVCID, 32).trim(),
      subnqn: readNqn(b, o + DiscEntry.SUBNQN),
      traddr: readNqn(b, o + DiscEntry.TRADDR).trim(),
      eflags: b[o + DiscEntry.EFLAGS] | (b[o + DiscEntry.EFLAGS + 1] << 8),
      ...decodeTsas(b, o),
    });
  }
  return out;
}

/** The TSAS fields of the entry at `o`, by its transport type. */
function decodeTsas(b: Uint8Array, o: number): Pick<DiscoveryEntry, "sectype" | "rdma"> {
  const t = o + DiscEntry.TSAS;
  if (b[o + DiscEntry.TRTYPE] === TRTYPE_TCP) return { sectype: b[t + DiscTsas.TCP_SECTYPE] };
  if (b[o + DiscEntry.TRTYPE] !== TRTYPE_RDMA) return {};
  return {
    rdma: {
      qptype: b[t + DiscTsas.RDMA_QPTYPE],
      prtype: b[t + DiscTsas.RDMA_PRTYPE],
      cms: b[t + DiscTsas.RDMA_CMS],
      pkey: b[t + DiscTsas.RDMA_PKEY] | (b[t + DiscTsas.RDMA_PKEY + 1] << 8),
    },
  };
}

/** Encode a whole discovery log (header + entries) for generation `genctr`. */
export function encodeDiscoveryLog(genctr: bigint, entries: DiscoveryEntry[]): Uint8Array {
  const b = new Uint8Array(DISC_RECORD_SIZE * (entries.length + 1));
  const v = new DataView(b.buffer);
  v.setBigUint64(DiscHeader.GENCTR, genctr, true);
  v.setBigUint64(DiscHeader.NUMREC, BigInt(entries.length), true);
  const enc = new TextEncoder();
  entries.forEach((e, i) => {
    const o = (i + 1) * DISC_RECORD_SIZE;
    b[o + DiscEntry.TRTYPE] = e.trtype;
    b[o + DiscEntry.ADRFAM] = e.adrfam;
    b[o + DiscEntry.SUBTYPE] = e.subtype;
    b[o + DiscEntry.TREQ] = e.treq;
    v.setUint16(o + DiscEntry.PORTID, e.portid, true);
    v.setUint16(o + DiscEntry.CNTLID, e.cntlid, true);
    v.setUint16(o + DiscEntry.ASQSZ, e.asqsz, true);
    b.set(enc.encode(e.trsvcid).subarray(0, 32), o + DiscEntry.TRSVCID);
    b.set(enc.encode(e.subnqn).subarray(0, 255), o + DiscEntry.SUBNQN);
    b.set(enc.encode(e.traddr).subarray(0, 255), o + DiscEntry.TRADDR);
    if (e.eflags !== undefined) v.setUint16(o + DiscEntry.EFLAGS, e.eflags, true);
    const t = o + DiscEntry.TSAS;
    if (e.sectype !== undefined) b[t + DiscTsas.TCP_SECTYPE] = e.sectype;
    if (e.rdma) {
      b[t + DiscTsas.RDMA_QPTYPE] = e.rdma.qptype;
      b[t + DiscTsas.RDMA_PRTYPE] = e.rdma.prtype;
      b[t + DiscTsas.RDMA_CMS] = e.rdma.cms;
      v.setUint16(t + DiscTsas.RDMA_PKEY, e.rdma.pkey, true);
    }
  });
  return b;
}
