/**
 * PRP and SGL walking of the software controller's PCIe front end, shared by the
 * device thread (lib/sim/pcie.ts) and the queue threads (lib/sim/qthread.ts).
 * @module
 */
import type { DataPort } from "./engine.ts";
import { SimStatus as S } from "./options.ts";
import { type SglHost, walkMetadataSgl, walkSgl } from "./sgl.ts";
import { Psdt, psdtOf } from "../nvme/sgl.ts";

/** Host memory as the device reaches it (what an SGL walk needs too). */
export type DmaWindow = SglHost;

const PAGE = 4096;
const TWO32 = 0x1_0000_0000;

/**
 * PRP data port: `map` walks the command's PRP entries into (offset, length)
 * pairs of host memory, merging contiguous pages; segments are views of the
 * shared host memory, so the media read and write it in place.
 */
export class PrpPort implements DataPort {
  readonly #dev: DmaWindow;
  readonly #u8: Uint8Array;
  readonly #dv: DataView;
  /** Pairs of (offset in host memory, length). */
  readonly segs: number[] = [];
  /** Memory page size (CC.MPS). */
  pageSize = PAGE;
  /** SGLS the controller advertises (0: PRPs only). */
  sgls = 0;
  /** The command being mapped came from the admin queue (SGLs are refused there). */
  admin = false;
  /** Bytes a bit bucket's reads land in (discarded). */
  #scratch = new Uint8Array(0);
  readonly #piece = (iova: number, n: number): boolean => iova < 0 ? this.#bucket(n) : this.#seg(iova, n);

  /** Over host memory `u8` / `dv`, reached through `dev` (its IOMMU). */
  constructor(dev: DmaWindow, u8: Uint8Array, dv: DataView) {
    this.#dev = dev;
    this.#u8 = u8;
    this.#dv = dv;
  }

  /** Segments the last {@link map} produced. */
  get count(): number {
    return this.segs.length >> 1;
  }

  /** Segment `i` as a view of host memory (a bit bucket's: scratch). */
  segment(i: number): Uint8Array {
    const o = this.segs[2 * i];
    if (o < 0) return this.#scratch.subarray(0, this.segs[2 * i + 1]);
    return this.#u8.subarray(o, o + this.segs[2 * i + 1]);
  }

  #bucket(n: number): boolean {
    if (this.#scratch.length < n) this.#scratch = new Uint8Array(n);
    this.segs.push(-1, n);
    return true;
  }

  /** Walk `cmd`'s PRPs or SGL for `len` bytes; 0, or the status field to fail the command with. */
  map(cmd: Uint32Array, len: number): number {
    const segs = this.segs;
    segs.length = 0;
    if (len === 0) return 0;
    if (cmd[0] & 0xc000) return walkSgl(this.#dev, cmd, len, this.sgls, this.admin, this.#piece);
    const ps = this.pageSize;
    const prp1 = cmd[6] + cmd[7] * TWO32, prp2 = cmd[8] + cmd[9] * TWO32;
    if (prp1 % 4) return S.PRP_OFFSET_INVALID;
    const first = Math.min(len, ps - (prp1 % ps));
    if (!this.#seg(prp1, first)) return S.DATA_TRANSFER_ERROR;
    let rem = len - first;
    if (rem === 0) return 0;
    if (rem <= ps) {
      if (prp2 % ps) return S.PRP_OFFSET_INVALID;
      return this.#seg(prp2, rem) ? 0 : S.DATA_TRANSFER_ERROR;
    }
    if (prp2 % 8) return S.PRP_OFFSET_INVALID;
    let list = this.#dev.off(prp2, 8);
    if (list < 0) return S.DATA_TRANSFER_ERROR;
    let left = (ps - (prp2 % ps)) / 8;
    const dv = this.#dv;
    while (rem > 0) {
      const e = dv.getUint32(list, true) + dv.getUint32(list + 4, true) * TWO32;
      if (left === 1 && rem > ps) {
        // Last entry of a full list page: it points at the next list page.
        if (e % 8) return S.PRP_OFFSET_INVALID;
        list = this.#dev.off(e, 8);
        if (list < 0) return S.DATA_TRANSFER_ERROR;
        left = (ps - (e % ps)) / 8;
        continue;
      }
      if (e % ps) return S.PRP_OFFSET_INVALID;
      const n = Math.min(ps, rem);
      if (!this.#seg(e, n)) return S.DATA_TRANSFER_ERROR;
      rem -= n;
      list += 8;
      left--;
    }
    return 0;
  }

  /**
   * The separate metadata: at MPTR (contiguous, dword aligned, PRPs and PSDT
   * 01b), or described by the SGL descriptor at MPTR (PSDT 10b). Metadata
   * that lands in one range of host memory is a view of it; scattered
   * metadata is gathered into a buffer, and {@link metaWritten} scatters what
   * the model wrote there back to the pieces.
   */
  meta(cmd: Uint32Array, len: number): Uint8Array | number {
    if (psdtOf(cmd[0]) === Psdt.SGL_MPTR_SGL) {
      const ms = this.#metaSegs;
      ms.length = 0;
      const st = walkMetadataSgl(this.#dev, cmd, len, this.sgls, this.#metaPiece);
      if (st) return st;
      if (ms.length === 2) return this.#u8.subarray(ms[0], ms[0] + ms[1]);
      const out = new Uint8Array(len);
      for (let i = 0, p = 0; i < ms.length; i += 2) {
        out.set(this.#u8.subarray(ms[i], ms[i] + ms[i + 1]), p);
        p += ms[i + 1];
      }
      this.#metaGathered = out;
      return out;
    }
    this.#metaGathered = null;
    const mptr = cmd[4] + cmd[5] * TWO32;
    if (mptr % 4) return S.INVALID_FIELD;
    const o = this.#dev.off(mptr, len);
    return o < 0 ? S.DATA_TRANSFER_ERROR : this.#u8.subarray(o, o + len);
  }

  /** The model wrote into what {@link meta} gave (a read): scattered metadata goes back to its pieces. */
  metaWritten(): void {
    const g = this.#metaGathered;
    if (g === null) return;
    this.#metaGathered = null;
    const ms = this.#metaSegs;
    for (let i = 0, p = 0; i < ms.length; i += 2) {
      this.#u8.set(g.subarray(p, p + ms[i + 1]), ms[i]);
      p += ms[i + 1];
    }
  }

  /** Pairs (offset in host memory, length) of the last metadata SGL, contiguous pieces merged. */
  readonly #metaSegs: number[] = [];
  #metaGathered: Uint8Array | null = null;
  readonly #metaPiece = (iova: number, n: number): boolean => {
    const o = this.#dev.off(iova, n);
    if (o < 0) return false;
    const s = this.#metaSegs, k = s.length;
    if (k && s[k - 2] + s[k - 1] === o) s[k - 1] += n;
    else s.push(o, n);
    return true;
  };

  #seg(iova: number, len: number): boolean {
    const o = this.#dev.off(iova, len);
    if (o < 0) return false;
    const s = this.segs;
    const k = s.length;
    if (k && s[k - 2] >= 0 && s[k - 2] + s[k - 1] === o) s[k - 1] += len;
    else s.push(o, len);
    return true;
  }
}
