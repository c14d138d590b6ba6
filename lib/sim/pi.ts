/**
 * Metadata and end-to-end protection information in the software
 * controller: the LBA formats with metadata it offers (when built with
 * `piFormats`), the Identify fields that describe them, Format NVM's
 * metadata settings, and read, write, compare, verify and write zeroes on
 * a namespace formatted with metadata (extended LBAs or a separate buffer
 * at MPTR; PI types 1-3, 16- and 64-bit guards; PRACT and PRCHK) the way
 * QEMU's model does them. Metadata lives in memory beside the media.
 * Injected PI errors ({@link SimMeta.corrupt}) flip a bit of a stored tuple.
 * @module
 */
import { encodeElbaf, IdNsOffset, LBAF_BYTES, LbafOffset } from "../nvme/identify.ts";
import {
  Dpc,
  Dps,
  FLBAS_EXTENDED,
  Mc,
  type PiCheck,
  piCheck,
  PiCmdDw,
  type PiFormat,
  piFormatOf,
  piGenerate,
  piRefAt,
  piStripped,
  PiType,
  Pif,
  Prinfo,
  prinfoOf,
  refTagSpace,
} from "../nvme/pi.ts";
import { IoOpc } from "../nvme/spec.ts";
import type { Media } from "./media.ts";
import { SimStatus as S } from "./options.ts";

/** One LBA format the controller offers: data size (log2), metadata size, guard format. */
export interface SimLbaf {
  /** LBADS. */
  ds: number;
  /** Metadata bytes per block. */
  ms: number;
  /** ELBAF PIF. */
  pif: number;
}

/** The LBA formats: 0 and 1 always, the metadata ones when the controller is built with `piFormats`. */
export const SIM_LBAFS: readonly SimLbaf[] = [
  { ds: 9, ms: 0, pif: 0 },
  { ds: 12, ms: 0, pif: 0 },
  { ds: 9, ms: 8, pif: Pif.GUARD16 },
  { ds: 12, ms: 8, pif: Pif.GUARD16 },
  { ds: 12, ms: 16, pif: Pif.GUARD64 },
  { ds: 9, ms: 16, pif: Pif.GUARD64 },
  { ds: 12, ms: 64, pif: Pif.GUARD16 },
  { ds: 12, ms: 64, pif: Pif.GUARD64 },
];

/** Formats offered without `piFormats`. */
const PLAIN_LBAFS = 2;

/** How many LBA formats a controller offers. */
export function simLbafCount(piFormats: boolean): number {
  return piFormats ? SIM_LBAFS.length : PLAIN_LBAFS;
}

/** A namespace's metadata: its format and the stored metadata of every block. */
export class SimMeta {
  /** The format. */
  readonly fmt: PiFormat;
  /** `metadataSize` bytes per block. */
  readonly store: Uint8Array;

  /** Metadata for `blocks` blocks in `fmt`; all ones, so checks are escaped until a block is written. */
  constructor(fmt: PiFormat, blocks: number) {
    this.fmt = fmt;
    this.store = new Uint8Array(blocks * fmt.metadataSize).fill(0xff);
  }

  /** Deallocated (or unwritten) blocks: metadata all ones. */
  deallocate(slba: number, nlb: number): void {
    const ms = this.fmt.metadataSize;
    this.store.fill(0xff, slba * ms, (slba + nlb) * ms);
  }

  /** Copy's metadata: the source ranges' metadata to consecutive blocks from `dest`. */
  copy(src: readonly [number, number][], dest: number): void {
    const ms = this.fmt.metadataSize;
    const parts = src.map(([s, n]) => this.store.slice(s * ms, (s + n) * ms));
    let p = dest * ms;
    for (const b of parts) {
      this.store.set(b, p);
      p += b.length;
    }
  }

  /** Flip a bit of block `lba`'s stored guard, application tag or reference tag (fault injection). */
  corrupt(lba: number, field: PiCheck): boolean {
    const f = this.fmt;
    if (f.type === PiType.NONE || (lba + 1) * f.metadataSize > this.store.length) return false;
    const p = lba * f.metadataSize + f.piOffset;
    const at = field === "guard" ? 0 : field === "app" ? (f.guard === 16 ? 2 : 8) : (f.guard === 16 ? 4 : 10);
    this.store[p + at + 1] ^= 0x01;
    return true;
  }
}

/**
 * Format NVM's metadata settings for `lbaf`: a {@link SimMeta}, null for a
 * format without metadata, or the status to refuse with.
 */
export function simFormat(lbaf: number, mset: number, pi: number, pil: number, mediaBytes: number, syncMedia: boolean): SimMeta | null | number {
  const l = SIM_LBAFS[lbaf];
  if (!l) return S.INVALID_FORMAT;
  if (l.ms === 0) return pi ? S.INVALID_FORMAT : null;
  if (pi > 3) return S.INVALID_FIELD;
  const tuple = l.pif === Pif.GUARD64 ? 16 : 8;
  if (pi && l.ms < tuple) return S.INVALID_FORMAT;
  // Metadata is modelled beside synchronous media only.
  if (!syncMedia) return S.INVALID_FORMAT;
  const fmt = piFormatOf(1 << l.ds, l.ms, mset ? FLBAS_EXTENDED : 0, pi | (pil ? Dps.FIRST : 0), l.pif);
  return new SimMeta(fmt, Math.floor(mediaBytes / (1 << l.ds)));
}

/**
 * Identify Namespace fields of metadata: every offered format's MS, MC, DPC,
 * and for a namespace formatted with metadata FLBAS's extended bit and DPS.
 */
export function simIdNsPi(d: Uint8Array, meta: SimMeta | null, count: number): void {
  for (let i = PLAIN_LBAFS; i < count; i++) {
    const o = IdNsOffset.LBAF + LBAF_BYTES * i;
    d[o + LbafOffset.MS] = SIM_LBAFS[i].ms;
    d[o + LbafOffset.LBADS] = SIM_LBAFS[i].ds;
  }
  if (count <= PLAIN_LBAFS) return;
  d[IdNsOffset.MC] = Mc.EXTENDED | Mc.SEPARATE;
  d[IdNsOffset.DPC] = Dpc.TYPE1 | Dpc.TYPE2 | Dpc.TYPE3 | Dpc.FIRST | Dpc.LAST;
  if (!meta) return;
  if (meta.fmt.extended) d[IdNsOffset.FLBAS] |= FLBAS_EXTENDED;
  d[IdNsOffset.DPS] = meta.fmt.type | (meta.fmt.type && meta.fmt.first ? Dps.FIRST : 0);
}

/** The NVM command set Identify Namespace (CNS 05h): each offered format's ELBAF. */
export function simNvmIdNs(d: Uint8Array, count: number): void {
  for (let i = 0; i < count; i++) encodeElbaf(d, i, { sts: 0, pif: SIM_LBAFS[i].pif });
}

/** Where a command's data lives (the model's DataPort, with the metadata pointer). */
export interface PiPort {
  /** Map `len` bytes of data: 0 or a status. */
  map(cmd: Uint32Array, len: number): number;
  /** Mapped segments. */
  readonly count: number;
  /** Segment `i`. */
  segment(i: number): Uint8Array;
  /** The separate metadata buffer at MPTR: a view of `len` bytes, or a status; absent: not supported (fabrics). */
  meta?(cmd: Uint32Array, len: number): Uint8Array | number;
  /** Called once the model has written into what `meta` gave (a read), for a port that gathered scattered metadata. */
  metaWritten?(): void;
}

/** Host bytes per block of a read/write/compare: data plus metadata when extended and not stripped. */
function hostUnit(f: PiFormat, cmd: Uint32Array): number {
  const strip = piStripped(f, (prinfoOf(cmd[12]) & Prinfo.PRACT) !== 0);
  return f.extended && !strip ? f.blockSize + f.metadataSize : f.blockSize;
}

/** Bytes a read, write or compare of `nlb` blocks moves through the data pointer. */
export function simPiTransferLength(meta: SimMeta, cmd: Uint32Array, nlb: number): number {
  return nlb * hostUnit(meta.fmt, cmd);
}

function gather(port: PiPort, len: number): Uint8Array {
  const out = new Uint8Array(len);
  for (let i = 0, p = 0, n = port.count; i < n; i++) {
    const s = port.segment(i);
    out.set(s, p);
    p += s.length;
  }
  return out;
}

function scatter(port: PiPort, src: Uint8Array): void {
  for (let i = 0, p = 0, n = port.count; i < n && p < src.length; i++) {
    const s = port.segment(i);
    const k = Math.min(s.length, src.length - p);
    s.set(src.subarray(p, p + k));
    p += k;
  }
}

/** Check every block's tuple as PRCHK asks: 0 or the first failing PI status. */
function checkAll(f: PiFormat, data: Uint8Array, meta: Uint8Array, nlb: number, prchk: number, ref: number, app: number, mask: number): number {
  if (f.type === PiType.NONE || prchk === 0) return 0;
  for (let i = 0; i < nlb; i++) {
    const st = piCheck(f, data, i * f.blockSize, meta, i * f.metadataSize, prchk, piRefAt(f, ref, i), app, mask);
    if (st) return st;
  }
  return 0;
}

/**
 * Read, Write, Compare, Verify or Write Zeroes of `nlb` blocks from `slba`
 * on a namespace with metadata over synchronous media: 0 or a status.
 * `maxBytes` is MDTS in bytes.
 */
export function simPiIo(
  meta: SimMeta,
  m: Media,
  port: PiPort,
  cmd: Uint32Array,
  opc: number,
  slba: number,
  nlb: number,
  maxBytes: number,
): number {
  const f = meta.fmt, bs = f.blockSize, ms = f.metadataSize;
  const prinfo = prinfoOf(cmd[12]), pract = (prinfo & Prinfo.PRACT) !== 0, prchk = f.type ? prinfo & Prinfo.PRCHK_ALL : 0;
  const ref = cmd[PiCmdDw.REFTAG_LO] + (f.guard === 64 ? (cmd[PiCmdDw.REFTAG_HI] & 0xffff) * 0x1_0000_0000 : 0);
  const app = cmd[PiCmdDw.APPTAG] & 0xffff, mask = cmd[PiCmdDw.APPTAG] >>> 16;
  // Type 1: the reference tag is the LBA; a command saying otherwise is refused, as QEMU does.
  if (f.type === PiType.TYPE1 && (prchk & Prinfo.PRCHK_REF) && ref !== slba % refTagSpace(f)) return S.INVALID_PROTECTION_INFO;
  const stored = meta.store.subarray(slba * ms, (slba + nlb) * ms);
  if (opc === IoOpc.WRITE_ZEROES) {
    m.zero(slba * bs, nlb * bs);
    if (pract && f.type) {
      const zero = new Uint8Array(bs);
      for (let i = 0; i < nlb; i++) piGenerate(f, zero, 0, stored, i * ms, piRefAt(f, ref, i), app);
    } else stored.fill(0xff);
    return 0;
  }
  const data = new Uint8Array(nlb * bs);
  if (opc === IoOpc.VERIFY) {
    m.read(slba * bs, data);
    return checkAll(f, data, stored, nlb, prchk, ref, app, mask);
  }
  const strip = piStripped(f, pract);
  const unit = f.extended && !strip ? bs + ms : bs;
  const len = nlb * unit;
  if (len > maxBytes) return S.INVALID_FIELD;
  let st = port.map(cmd, len);
  if (st) return st;
  let sep: Uint8Array | null = null;
  if (!f.extended && !strip) {
    if (!port.meta) return S.INVALID_FIELD;
    const r = port.meta(cmd, nlb * ms);
    if (typeof r === "number") return r;
    sep = r;
  }
  if (opc === IoOpc.WRITE) {
    const host = gather(port, len);
    const md = new Uint8Array(nlb * ms);
    for (let i = 0; i < nlb; i++) {
      data.set(host.subarray(i * unit, i * unit + bs), i * bs);
      if (unit > bs) md.set(host.subarray(i * unit + bs, (i + 1) * unit), i * ms);
    }
    if (sep) md.set(sep.subarray(0, nlb * ms));
    if (pract && f.type) {
      for (let i = 0; i < nlb; i++) piGenerate(f, data, i * bs, md, i * ms, piRefAt(f, ref, i), app);
    } else if ((st = checkAll(f, data, md, nlb, prchk, ref, app, mask))) return st;
    m.write(slba * bs, data);
    stored.set(md);
    return 0;
  }
  // Read and Compare: the stored blocks, checked as PRCHK asks before anything moves.
  m.read(slba * bs, data);
  if ((st = checkAll(f, data, stored, nlb, prchk, ref, app, mask))) return st;
  if (opc === IoOpc.READ) {
    if (unit === bs) scatter(port, data);
    else {
      const host = new Uint8Array(len);
      for (let i = 0; i < nlb; i++) {
        host.set(data.subarray(i * bs, (i + 1) * bs), i * unit);
        host.set(stored.subarray(i * ms, (i + 1) * ms), i * unit + bs);
      }
      scatter(port, host);
    }
    if (sep) {
      sep.set(stored);
      port.metaWritten?.();
    }
    return 0;
  }
  const host = gather(port, len);
  for (let i = 0; i < nlb; i++) {
    for (let k = 0; k < bs; k++) if (host[i * unit + k] !== data[i * bs + k]) return S.COMPARE_FAILURE;
    if (unit > bs) {
      for (let k = 0; k < ms; k++) if (host[i * unit + bs + k] !== stored[i * ms + k]) return S.COMPARE_FAILURE;
    }
  }
  if (sep) for (let k = 0; k < nlb * ms; k++) if (sep[k] !== stored[k]) return S.COMPARE_FAILURE;
  return 0;
}

/** The opcodes {@link simPiIo} serves. */
export function isPiIo(opc: number): boolean {
  return opc === IoOpc.READ || opc === IoOpc.WRITE || opc === IoOpc.COMPARE || opc === IoOpc.VERIFY || opc === IoOpc.WRITE_ZEROES;
}
