/**
 * The software controller's shadow doorbells (Doorbell Buffer Config): once
 * the host gave the shadow doorbell and event index pages, IO queues' SQ
 * tails and CQ heads are read from the shadow page, and the event index page
 * tells the host how far the device has looked (so the host may skip the
 * MMIO write, lib/nvme/pcie.ts). The admin queue keeps its MMIO doorbells. A
 * controller reset forgets the pages. The layout is the doorbells' (stride 4).
 * @module
 */

/** Generic status Invalid Field in Command (SCT 0). */
const INVALID_FIELD = 0x02;
/** Generic status Data Transfer Error (SCT 0). */
const DATA_TRANSFER_ERROR = 0x04;

/** Shadow doorbell state of one controller. */
export class SimDbbuf {
  readonly #host32: Uint32Array;
  /** Dword index of the shadow page in host memory, -1 while not configured. */
  #sh = -1;
  /** Dword index of the event index page. */
  #ei = -1;

  /** Over host memory `host32`. */
  constructor(host32: Uint32Array) {
    this.#host32 = host32;
  }

  /** True once Doorbell Buffer Config succeeded (until a reset). */
  get enabled(): boolean {
    return this.#sh >= 0;
  }

  /**
   * Doorbell Buffer Config: PRP1 the shadow page, PRP2 the event index page,
   * both page aligned and mapped for `bytes` (the doorbells of every queue).
   */
  config(cmd: Uint32Array, pageSize: number, bytes: number, off: (iova: number, len: number) => number): number {
    const sh = cmd[6] + cmd[7] * 0x1_0000_0000, ei = cmd[8] + cmd[9] * 0x1_0000_0000;
    if (sh === 0 || ei === 0 || sh % pageSize || ei % pageSize) return INVALID_FIELD;
    const so = off(sh, bytes), eo = off(ei, bytes);
    if (so < 0 || eo < 0) return DATA_TRANSFER_ERROR;
    this.#sh = so >>> 2;
    this.#ei = eo >>> 2;
    return 0;
  }

  /** Controller reset: back to MMIO doorbells. */
  reset(): void {
    this.#sh = this.#ei = -1;
  }

  /** The SQ tail of `qid`: the shadow's for IO queues once configured, else `mmio`. */
  sqTail(qid: number, mmio: number): number {
    if (this.#sh < 0 || qid === 0) return mmio;
    return Atomics.load(this.#host32, this.#sh + 2 * qid);
  }

  /** The device has fetched SQ `qid` up to `head`: the host need not ring while it adds entries past it. */
  sqSeen(qid: number, head: number): void {
    if (this.#sh < 0 || qid === 0) return;
    Atomics.store(this.#host32, this.#ei + 2 * qid, head);
  }

  /** The CQ head of `qid` (shadow for IO queues once configured, else `mmio`), noted in the event index. */
  cqHead(qid: number, mmio: number): number {
    if (this.#sh < 0 || qid === 0) return mmio;
    const head = Atomics.load(this.#host32, this.#sh + 2 * qid + 1);
    Atomics.store(this.#host32, this.#ei + 2 * qid + 1, head);
    return head;
  }
}
