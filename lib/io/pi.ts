/**
 * Host-side protection information: generate the PI tuples of blocks before
 * a write (PRACT off: the host supplies PI) and verify them after a read,
 * over either layout: extended LBAs (each block's metadata right after its
 * data, in one buffer) or a separate metadata buffer. Nothing is allocated;
 * a failed check throws {@link PiCheckError} naming the check.
 * @module
 */
import { InvalidArgumentError, PiCheckError } from "../nvme/errors.ts";
import {
  piAppTag,
  piCheck,
  piGenerate,
  piGuard,
  type PiFormat,
  piRefAt,
  piRefTag,
  PiStatus,
  PiType,
  Prinfo,
  refTagSpace,
} from "../nvme/pi.ts";

/** Tags for {@link generatePi} and {@link verifyPi}. */
export interface PiTags {
  /** Reference tag of the first block (default: the LBA's low 32 or 48 bits; type 3 keeps it for every block). */
  refTag?: number;
  /** Application tag (default 0). */
  appTag?: number;
}

/** What {@link verifyPi} checks. */
export interface PiVerifyOptions extends PiTags {
  /** Checks as PRINFO check bits (Prinfo.PRCHK_*); default guard and reference tag (type 3: guard only). */
  prchk?: number;
  /** Application tag mask (default 0xffff when an application tag check is asked for). */
  appMask?: number;
}

const NO_TAGS: PiVerifyOptions = Object.freeze({});

/** The default checks of a format: guard and reference tag, guard only for type 3. */
export function defaultPrchk(f: PiFormat): number {
  if (f.type === PiType.NONE) return 0;
  return f.type === PiType.TYPE3 ? Prinfo.PRCHK_GUARD : Prinfo.PRCHK_GUARD | Prinfo.PRCHK_REF;
}

/** Blocks in `data` and where each block's metadata is; throws on a length that does not fit the format. */
function layout(f: PiFormat, data: Uint8Array, meta: Uint8Array | undefined): number {
  if (f.type === PiType.NONE) throw new InvalidArgumentError("the namespace is not formatted with protection information");
  if (f.extended) {
    const unit = f.blockSize + f.metadataSize;
    if (data.byteLength === 0 || data.byteLength % unit) {
      throw new InvalidArgumentError(`extended-LBA buffer length ${data.byteLength} is not a multiple of ${unit} (data + metadata per block)`);
    }
    return data.byteLength / unit;
  }
  if (data.byteLength === 0 || data.byteLength % f.blockSize) {
    throw new InvalidArgumentError(`buffer length ${data.byteLength} is not a multiple of the block size ${f.blockSize}`);
  }
  const n = data.byteLength / f.blockSize;
  if (!meta || meta.byteLength < n * f.metadataSize) {
    throw new InvalidArgumentError(`a metadata buffer of ${n * f.metadataSize} bytes is needed for ${n} blocks (${f.metadataSize} per block)`);
  }
  return n;
}

function firstRef(f: PiFormat, lba: number, tags: PiTags): number {
  return tags.refTag ?? lba % refTagSpace(f);
}

/**
 * Write the PI tuple of every block of `data` (starting at block `lba`) into
 * its metadata: after each block's data in an extended-LBA buffer, else in
 * `meta` (`metadataSize` bytes per block).
 */
export function generatePi(f: PiFormat, lba: number, data: Uint8Array, meta?: Uint8Array, tags: PiTags = NO_TAGS): void {
  const n = layout(f, data, meta);
  const ref = firstRef(f, lba, tags), app = tags.appTag ?? 0;
  const unit = f.blockSize + f.metadataSize;
  for (let i = 0; i < n; i++) {
    if (f.extended) piGenerate(f, data, i * unit, data, i * unit + f.blockSize, piRefAt(f, ref, i), app);
    else piGenerate(f, data, i * f.blockSize, meta!, i * f.metadataSize, piRefAt(f, ref, i), app);
  }
}

/**
 * Check the PI of every block of `data` (starting at block `lba`) as a
 * controller would; throws {@link PiCheckError} at the first block that
 * fails, naming the check (guard, then application tag, then reference tag).
 */
export function verifyPi(f: PiFormat, lba: number, data: Uint8Array, meta?: Uint8Array, opts: PiVerifyOptions = NO_TAGS): void {
  const n = layout(f, data, meta);
  const ref = firstRef(f, lba, opts), app = opts.appTag ?? 0;
  const prchk = opts.prchk ?? defaultPrchk(f), mask = opts.appMask ?? 0xffff;
  const unit = f.blockSize + f.metadataSize;
  for (let i = 0; i < n; i++) {
    const d = f.extended ? i * unit : i * f.blockSize;
    const m = f.extended ? data : meta!;
    const mo = f.extended ? d + f.blockSize : i * f.metadataSize;
    const r = piRefAt(f, ref, i);
    const st = piCheck(f, data, d, m, mo, prchk, r, app, mask);
    if (st === 0) continue;
    if (st === PiStatus.GUARD) {
      const want = m.slice(mo, mo + f.metadataSize);
      piGenerate(f, data, d, want, 0, 0, 0);
      throw new PiCheckError("guard", lba + i, piGuard(f, want, 0), piGuard(f, m, mo));
    }
    if (st === PiStatus.APP) throw new PiCheckError("app", lba + i, app & mask, piAppTag(f, m, mo) & mask);
    throw new PiCheckError("ref", lba + i, r, piRefTag(f, m, mo));
  }
}
