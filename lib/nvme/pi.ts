/**
 * End-to-end protection information (PI): the tuple layouts of the 16-bit
 * and 64-bit guard formats, the PRINFO bits of read/write-shaped commands,
 * the DPC/DPS/FLBAS/MC bits of Identify Namespace, a namespace's PI format
 * decoded once ({@link PiFormat}), and the per-block generate and check
 * that the host (lib/io) and the software controller (lib/sim) share.
 * Every tuple field is big-endian, as the specification lays it out.
 * @module
 */
import { crc16T10dif, crc64NvmeFinal, crc64NvmeInit, crc64NvmeState, crc64NvmeUpdate } from "../util/crc.ts";

/** PI type (DPS bits 2:0). */
export const PiType = {
  /** Protection information disabled. */
  NONE: 0,
  /** Type 1: reference tag = low bits of the LBA, checked. */
  TYPE1: 1,
  /** Type 2: reference tag from the command, incremented per block. */
  TYPE2: 2,
  /** Type 3: reference tag not incremented; app tag and guard only, by convention. */
  TYPE3: 3,
} as const;

/**
 * PRINFO: the 4-bit protection information field of read, write, compare,
 * verify and write zeroes (CDW12 bits 29:26). Combine with `|`.
 */
export const Prinfo = {
  /** Check the reference tag. */
  PRCHK_REF: 1,
  /** Check the application tag (under the command's mask). */
  PRCHK_APP: 2,
  /** Check the guard (CRC). */
  PRCHK_GUARD: 4,
  /** Protection information action: the controller inserts (write) or strips (read) PI. */
  PRACT: 8,
  /** All three checks. */
  PRCHK_ALL: 7,
} as const;

/** Where PRINFO sits in CDW12. */
export const PRINFO_SHIFT = 26;

/** CDW12 bits for a PRINFO value. */
export function prinfoBits(prinfo: number): number {
  return ((prinfo & 0xf) << PRINFO_SHIFT) >>> 0;
}

/** PRINFO of a read/write-shaped command. */
export function prinfoOf(cdw12: number): number {
  return (cdw12 >>> PRINFO_SHIFT) & 0xf;
}

/**
 * Where the PI fields of a read/write-shaped command live: the expected or
 * initial reference tag in CDW14 (its bits 47:32, 64-bit guard formats, in
 * CDW3), the application tag and its mask in CDW15.
 */
export const PiCmdDw = {
  /** Reference tag bits 47:32 (64-bit guard, no storage tag). */
  REFTAG_HI: 3,
  /** Reference tag bits 31:0 (ILBRT / EILBRT). */
  REFTAG_LO: 14,
  /** Application tag in bits 15:0, application tag mask in bits 31:16. */
  APPTAG: 15,
} as const;

/** Protection Information Format (ELBAF bits 8:7): the guard size. */
export const Pif = {
  /** 16-bit guard, CRC-T10DIF, 8-byte tuple. */
  GUARD16: 0,
  /** 32-bit guard (CRC32C); not served here. */
  GUARD32: 1,
  /** 64-bit guard, CRC64-NVME, 16-byte tuple. */
  GUARD64: 2,
} as const;

/** Byte offsets in the 8-byte PI tuple of the 16-bit guard format. */
export const Pi16Offset = {
  /** Guard, 16 bits. */
  GUARD: 0,
  /** Application tag, 16 bits. */
  APPTAG: 2,
  /** Reference tag, 32 bits. */
  REFTAG: 4,
} as const;

/** Byte offsets in the 16-byte PI tuple of the 64-bit guard format (no storage tag). */
export const Pi64Offset = {
  /** Guard, 64 bits. */
  GUARD: 0,
  /** Application tag, 16 bits. */
  APPTAG: 8,
  /** Storage and reference tag space, 48 bits: the reference tag when STS is 0. */
  REFTAG: 10,
} as const;

/** Tuple sizes in bytes. */
export const PI_TUPLE_BYTES = { 16: 8, 64: 16 } as const;

/** DPC bits (Identify Namespace): what the namespace can be formatted with. */
export const Dpc = {
  /** Type 1 supported. */
  TYPE1: 1 << 0,
  /** Type 2 supported. */
  TYPE2: 1 << 1,
  /** Type 3 supported. */
  TYPE3: 1 << 2,
  /** PI in the first bytes of metadata supported. */
  FIRST: 1 << 3,
  /** PI in the last bytes of metadata supported. */
  LAST: 1 << 4,
} as const;

/** DPS bits (Identify Namespace): how the namespace is formatted. */
export const Dps = {
  /** PI type, bits 2:0. */
  TYPE_MASK: 7,
  /** PI in the first bytes of metadata (clear: the last). */
  FIRST: 1 << 3,
} as const;

/** FLBAS bit 4: metadata at the end of each block's data (extended LBA); clear: a separate buffer. */
export const FLBAS_EXTENDED = 0x10;

/** MC bits (Identify Namespace): metadata transfer modes supported. */
export const Mc = {
  /** Extended LBAs. */
  EXTENDED: 1 << 0,
  /** A separate metadata buffer. */
  SEPARATE: 1 << 1,
} as const;

/** Which protection check failed. */
export type PiCheck = "guard" | "app" | "ref";

/** NVMe status (SCT 2) of each failed check. */
export const PiStatus = {
  /** End-to-end Guard Check Error. */
  GUARD: 0x282,
  /** End-to-end Application Tag Check Error. */
  APP: 0x283,
  /** End-to-end Reference Tag Check Error. */
  REF: 0x284,
  /** Invalid Protection Information (SCT 1): e.g. a type 1 reference tag that is not the LBA. */
  INVALID: 0x181,
} as const;

/** The check a PI status names, or null for any other status. */
export function piCheckOf(status: number): PiCheck | null {
  switch (status & 0x7ff) {
    case PiStatus.GUARD:
      return "guard";
    case PiStatus.APP:
      return "app";
    case PiStatus.REF:
      return "ref";
  }
  return null;
}

/** A namespace's metadata and PI format, decoded once from Identify Namespace (and the NVM command set's ELBAF). */
export interface PiFormat {
  /** Data bytes per block. */
  blockSize: number;
  /** Metadata bytes per block (0: none). */
  metadataSize: number;
  /** Metadata travels at the end of each block's data (extended LBA), else in a separate buffer. */
  extended: boolean;
  /** PI type: 0 none, 1-3. */
  type: number;
  /** PI in the first bytes of metadata (else the last). */
  first: boolean;
  /** Guard size in bits. */
  guard: 16 | 64;
  /** Offset of the PI tuple inside a block's metadata. */
  piOffset: number;
  /** PI tuple size in bytes (0 without PI). */
  tupleBytes: number;
}

/**
 * Decode a format: LBA format (data size, metadata size), FLBAS, DPS, and
 * the ELBAF's PIF (0 when the NVM command set identify is not there).
 */
export function piFormatOf(blockSize: number, metadataSize: number, flbas: number, dps: number, pif = 0): PiFormat {
  const type = metadataSize > 0 ? dps & Dps.TYPE_MASK : 0;
  const guard = pif === Pif.GUARD64 ? 64 : 16;
  const tupleBytes = type ? PI_TUPLE_BYTES[guard] : 0;
  const first = (dps & Dps.FIRST) !== 0;
  return {
    blockSize,
    metadataSize,
    extended: metadataSize > 0 && (flbas & FLBAS_EXTENDED) !== 0,
    type,
    first,
    guard,
    piOffset: type && !first ? metadataSize - tupleBytes : 0,
    tupleBytes,
  };
}

/**
 * Bytes the host moves per block for a command with PRACT as given: data
 * only when the metadata is nothing but the PI tuple and the controller
 * inserts or strips it (PRACT), else data plus metadata when extended.
 */
export function piStripped(f: PiFormat, pract: boolean): boolean {
  return pract && f.type !== 0 && f.metadataSize === f.tupleBytes;
}

/** The largest reference tag plus one for the format's guard (2^32 or 2^48). */
export function refTagSpace(f: PiFormat): number {
  return f.guard === 64 ? 2 ** 48 : 2 ** 32;
}

// One CRC64 state for every guard: the data path runs on one thread per isolate, synchronously.
const CRC64 = crc64NvmeState();

/** Offsets of the guard over one block: data[dOff, dOff+bs), then metadata before a trailing tuple. */
function guardInto(f: PiFormat, data: Uint8Array, dOff: number, meta: Uint8Array, mOff: number): number {
  const pre = f.first ? 0 : f.piOffset;
  if (f.guard === 16) {
    const c = crc16T10dif(data, 0, dOff, dOff + f.blockSize);
    return pre ? crc16T10dif(meta, c, mOff, mOff + pre) : c;
  }
  crc64NvmeInit(CRC64);
  crc64NvmeUpdate(CRC64, data, dOff, dOff + f.blockSize);
  if (pre) crc64NvmeUpdate(CRC64, meta, mOff, mOff + pre);
  crc64NvmeFinal(CRC64);
  return 0;
}

/**
 * Write the PI tuple of one block into its metadata at `meta[mOff..]` (the
 * block's metadata start): guard over the block's data at `data[dOff..]`,
 * application tag `app`, reference tag `ref`.
 */
export function piGenerate(f: PiFormat, data: Uint8Array, dOff: number, meta: Uint8Array, mOff: number, ref: number, app: number): void {
  const p = mOff + f.piOffset;
  if (f.guard === 16) {
    const g = guardInto(f, data, dOff, meta, mOff);
    meta[p] = g >>> 8;
    meta[p + 1] = g;
    meta[p + 2] = app >>> 8;
    meta[p + 3] = app;
    meta[p + 4] = ref >>> 24;
    meta[p + 5] = ref >>> 16;
    meta[p + 6] = ref >>> 8;
    meta[p + 7] = ref;
    return;
  }
  guardInto(f, data, dOff, meta, mOff);
  putBe32(meta, p, CRC64[1]);
  putBe32(meta, p + 4, CRC64[0]);
  meta[p + 8] = app >>> 8;
  meta[p + 9] = app;
  const hi = Math.floor(ref / 0x1_0000_0000);
  meta[p + 10] = hi >>> 8;
  meta[p + 11] = hi;
  putBe32(meta, p + 12, ref >>> 0);
}

/** The application tag stored in a block's tuple. */
export function piAppTag(f: PiFormat, meta: Uint8Array, mOff: number): number {
  const p = mOff + f.piOffset + (f.guard === 16 ? Pi16Offset.APPTAG : Pi64Offset.APPTAG);
  return (meta[p] << 8) | meta[p + 1];
}

/** The reference tag stored in a block's tuple (32 or 48 bits). */
export function piRefTag(f: PiFormat, meta: Uint8Array, mOff: number): number {
  const p = mOff + f.piOffset;
  if (f.guard === 16) return be32(meta, p + Pi16Offset.REFTAG);
  const q = p + Pi64Offset.REFTAG;
  return ((meta[q] << 8) | meta[q + 1]) * 0x1_0000_0000 + be32(meta, q + 2);
}

/** The guard stored in a block's tuple (the 64-bit one as a bigint: tools and messages only). */
export function piGuard(f: PiFormat, meta: Uint8Array, mOff: number): number | bigint {
  const p = mOff + f.piOffset;
  if (f.guard === 16) return (meta[p] << 8) | meta[p + 1];
  return (BigInt(be32(meta, p)) << 32n) | BigInt(be32(meta, p + 4));
}

/**
 * Check one block's tuple as a controller does: 0 when it passes (or
 * checking is escaped: application tag FFFFh, for type 3 with an all-ones
 * reference tag too), else the {@link PiStatus} of the first check that
 * failed, in the order guard, application tag, reference tag.
 * `prchk` is PRINFO's check bits; `app`/`appMask` the expected tag and mask.
 */
export function piCheck(
  f: PiFormat,
  data: Uint8Array,
  dOff: number,
  meta: Uint8Array,
  mOff: number,
  prchk: number,
  ref: number,
  app: number,
  appMask: number,
): number {
  const storedApp = piAppTag(f, meta, mOff);
  if (storedApp === 0xffff) {
    if (f.type !== PiType.TYPE3) return 0;
    if (piRefTag(f, meta, mOff) === refTagSpace(f) - 1) return 0;
  }
  const p = mOff + f.piOffset;
  if (prchk & Prinfo.PRCHK_GUARD) {
    if (f.guard === 16) {
      if (guardInto(f, data, dOff, meta, mOff) !== ((meta[p] << 8) | meta[p + 1])) return PiStatus.GUARD;
    } else {
      guardInto(f, data, dOff, meta, mOff);
      if (CRC64[1] !== be32(meta, p) || CRC64[0] !== be32(meta, p + 4)) return PiStatus.GUARD;
    }
  }
  if ((prchk & Prinfo.PRCHK_APP) && ((storedApp ^ app) & appMask) !== 0) return PiStatus.APP;
  if ((prchk & Prinfo.PRCHK_REF) && piRefTag(f, meta, mOff) !== ref) return PiStatus.REF;
  return 0;
}

/** The reference tag of block `i` of a command whose first block has `ref` (types 1 and 2 count up; type 3 does not). */
export function piRefAt(f: PiFormat, ref: number, i: number): number {
  return f.type === PiType.TYPE3 ? ref : (ref + i) % refTagSpace(f);
}

function be32(b: Uint8Array, p: number): number {
  return ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
}

function putBe32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}
