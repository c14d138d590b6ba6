/** Test doubles: plain-memory DMA buffers and a device that services one queue pair by hand. */
import { type DmaBuffer, dmaBuffer } from "../../../lib/nvme/transport.ts";

let nextIova = 0x10_0000;
/** A "DMA" buffer in ordinary memory with a made-up IOVA. */
export function fakeDma(size: number): DmaBuffer {
  const bytes = Math.ceil(size / 4096) * 4096;
  const iova = nextIova;
  nextIova += bytes + 4096;
  return dmaBuffer(new Uint8Array(bytes), iova, bytes);
}

/** Plays the controller for one queue pair: consumes SQEs up to the doorbell, posts CQEs. */
export class FakeQueueDevice {
  sqHead = 0;
  cqTail = 0;
  phase = 1;
  readonly seen: Uint32Array[] = [];
  constructor(
    readonly qid: number,
    readonly depth: number,
    readonly sq: DmaBuffer,
    readonly cq: DmaBuffer,
    readonly db: Uint32Array,
    readonly stride = 4,
  ) {}
  /** SQ tail doorbell value. */
  get sqTailDb(): number {
    return this.db[(2 * this.qid * this.stride) / 4];
  }
  /** CQ head doorbell value. */
  get cqHeadDb(): number {
    return this.db[((2 * this.qid + 1) * this.stride) / 4];
  }
  /** Fetch all submitted commands (up to the doorbell). */
  fetch(): Uint32Array[] {
    const out: Uint32Array[] = [];
    const sq32 = new Uint32Array(this.sq.bytes.buffer);
    while (this.sqHead !== this.sqTailDb) {
      out.push(sq32.slice(this.sqHead * 16, this.sqHead * 16 + 16));
      this.sqHead = (this.sqHead + 1) % this.depth;
    }
    this.seen.push(...out);
    return out;
  }
  /** Post a completion for `cid` with status field `sf` and DW0. */
  complete(cid: number, sf = 0, dw0 = 0, sqid = this.qid): void {
    const cq32 = new Uint32Array(this.cq.bytes.buffer);
    const b = this.cqTail * 4;
    cq32[b] = dw0;
    cq32[b + 1] = 0;
    cq32[b + 2] = (this.sqHead | (sqid << 16)) >>> 0;
    cq32[b + 3] = ((cid & 0xffff) | (this.phase << 16) | (sf << 17)) >>> 0;
    if (++this.cqTail === this.depth) {
      this.cqTail = 0;
      this.phase ^= 1;
    }
  }
  /** Fetch everything and complete it successfully, in order. */
  serviceAll(sf = 0): number {
    const cmds = this.fetch();
    for (const c of cmds) this.complete(c[0] >>> 16, sf);
    return cmds.length;
  }
}
