/**
 * A submission/completion queue pair: ring arithmetic, phase tags, command
 * identifiers with a generation counter, PRPs, batched doorbells, completion
 * polling. Transport neutral: it sees only DMA memory and a doorbell array, so
 * one pair can be owned by one worker with no lock.
 * @module
 */
import { type Sqe, setRw, SqeDw } from "./command.ts";
import { DeviceClosedError, InvalidArgumentError, type NvmeError, NvmeTimeoutError, statusError } from "./errors.ts";
import { writePrps } from "./prp.ts";
import { CQE_SIZE, SQE_SIZE } from "./spec.ts";
import type { DmaBuffer } from "./transport.ts";

/** Memory and doorbells one queue pair needs. */
export interface QueuePairConfig {
  /** Queue id (0 = admin). */
  qid: number;
  /** Entries in each ring. */
  depth: number;
  /** Submission ring (depth * 64 bytes). */
  sq: DmaBuffer;
  /** Completion ring (depth * 16 bytes). */
  cq: DmaBuffer;
  /** PRP list pages for each command slot, or null when no transfer needs a list. */
  prp: DmaBuffer | null;
  /** PRP list pages reserved per command slot. */
  prpPagesPerSlot: number;
  /** Memory page size the controller was enabled with (CC.MPS). */
  pageSize: number;
  /** Doorbell array (from offset 0x1000) and the doorbell stride in bytes. */
  doorbells: Uint32Array;
  /** Doorbell stride in bytes (CAP.DSTRD). */
  doorbellStride: number;
  /** Timeout applied to commands that do not give their own, in ms. */
  defaultTimeoutMs: number;
  /** Most commands in flight at once (at most depth - 1). */
  maxInflight?: number;
  /**
   * How long the pump keeps polling on microtasks after the last completion
   * before it yields to the event loop between polls, in µs (default 500).
   * Higher: lower latency, more CPU; 0: yield after every empty poll.
   */
  pollSpinUs?: number;
}

/** Counters a queue pair keeps; cheap to read at any time. */
export interface QueueStats {
  /** Commands placed in the submission ring. */
  submitted: number;
  /** Completions matched to a command. */
  completed: number;
  /** Completions ignored: unknown or stale command id, or wrong SQ id. */
  bogus: number;
  /** Completions that arrived after their command had timed out. */
  late: number;
  /** Commands that timed out. */
  timeouts: number;
  /** Submission doorbell writes (fewer than submitted when batching). */
  sqDoorbells: number;
}

const FREE = 0;
const BUSY = 1;
const TIMED_OUT = 2;

type Resolve = (dw0: number) => void;
type Reject = (err: unknown) => void;

// setImmediate yields to the event loop in ~1-4 µs; setTimeout(0) costs milliseconds.
const yieldMacrotask: () => Promise<void> = typeof (globalThis as { setImmediate?: unknown }).setImmediate ===
    "function"
  ? () =>
    new Promise<void>((r) => (globalThis as unknown as { setImmediate(f: () => void): void }).setImmediate(r))
  : () => new Promise<void>((r) => setTimeout(r, 0));

/** A queue pair with a Promise API. Owned by exactly one thread. */
export class QueuePair {
  /** Queue id. */
  readonly qid: number;
  /** Ring entries. */
  readonly depth: number;
  /** Command slots (commands in flight at most). */
  readonly slots: number;
  /** Counters. */
  readonly stats: QueueStats = { submitted: 0, completed: 0, bogus: 0, late: 0, timeouts: 0, sqDoorbells: 0 };
  /** Default command timeout in ms. */
  defaultTimeoutMs: number;
  /** Microtask polling window after the last completion, in µs (see QueuePairConfig.pollSpinUs). */
  pollSpinUs: number;
  /** Called after a command times out (the controller decides on abort/reset). */
  onTimeout: ((qp: QueuePair, cid: number, opcode: number) => void) | null = null;
  /**
   * Called about every `healthCheckMs` while commands wait, so a dead or fatal
   * controller is noticed without waiting for a command timeout.
   */
  onHealthCheck: (() => void) | null = null;
  /** Interval of {@link onHealthCheck} in ms. */
  healthCheckMs = 100;

  readonly #cfg: QueuePairConfig;
  readonly #sq32: Uint32Array;
  readonly #cq32: Uint32Array;
  readonly #entries: Uint32Array[];
  readonly #prpViews: (Uint32Array | null)[];
  readonly #prpIova: number[];
  readonly #db: Uint32Array;
  readonly #sqDb: number;
  readonly #cqDb: number;
  readonly #pageSize: number;
  readonly #slotBits: number;
  readonly #slotMask: number;
  readonly #genMask: number;
  #sqTail = 0;
  #sqTailRung = 0;
  #cqHead = 0;
  #phase = 1;
  #active = 0;
  #occupied = 0;
  readonly #free: Int32Array;
  #freeTop = 0;
  readonly #gen: Uint16Array;
  readonly #state: Uint8Array;
  readonly #opcode: Uint8Array;
  readonly #nsid: Uint32Array;
  readonly #deadline: Float64Array;
  readonly #timeout: Float64Array;
  /** DMA memory each slot's command refers to: the device may write it until the slot is released. */
  readonly #ref: (DmaBuffer | null)[];
  readonly #resolve: (Resolve | undefined)[];
  readonly #reject: (Reject | undefined)[];
  readonly #waiters: (() => void)[] = [];
  #flushQueued = false;
  #pumping = false;
  #closedWith: NvmeError | null = null;
  #paused = false;
  #lastTimeoutCheck = 0;
  #lastHealthCheck = 0;
  readonly #flush = (): void => this.ring();

  /** Wrap the rings described by `cfg`. The controller must already know them. */
  constructor(cfg: QueuePairConfig) {
    this.#cfg = cfg;
    this.qid = cfg.qid;
    this.depth = cfg.depth;
    this.slots = Math.min(cfg.depth - 1, cfg.maxInflight ?? cfg.depth - 1);
    this.defaultTimeoutMs = cfg.defaultTimeoutMs;
    this.pollSpinUs = cfg.pollSpinUs ?? 500;
    this.#pageSize = cfg.pageSize;
    const sqb = cfg.sq.bytes, cqb = cfg.cq.bytes;
    if (sqb.byteLength < cfg.depth * SQE_SIZE || cqb.byteLength < cfg.depth * CQE_SIZE) {
      throw new InvalidArgumentError("queue memory smaller than depth");
    }
    this.#sq32 = new Uint32Array(sqb.buffer, sqb.byteOffset, cfg.depth * 16);
    this.#cq32 = new Uint32Array(cqb.buffer, cqb.byteOffset, cfg.depth * 4);
    this.#entries = [];
    for (let i = 0; i < cfg.depth; i++) this.#entries.push(this.#sq32.subarray(i * 16, i * 16 + 16));
    this.#prpViews = [];
    this.#prpIova = [];
    const slotBytes = cfg.prpPagesPerSlot * cfg.pageSize;
    for (let s = 0; s < this.slots; s++) {
      if (cfg.prp && slotBytes > 0) {
        const b = cfg.prp.bytes;
        this.#prpViews.push(new Uint32Array(b.buffer, b.byteOffset + s * slotBytes, slotBytes / 4));
        this.#prpIova.push(cfg.prp.iova + s * slotBytes);
      } else {
        this.#prpViews.push(null);
        this.#prpIova.push(0);
      }
    }
    this.#db = cfg.doorbells;
    this.#sqDb = (2 * cfg.qid * cfg.doorbellStride) / 4;
    this.#cqDb = ((2 * cfg.qid + 1) * cfg.doorbellStride) / 4;
    this.#slotBits = Math.max(1, Math.ceil(Math.log2(this.slots)));
    this.#slotMask = (1 << this.#slotBits) - 1;
    this.#genMask = (1 << (16 - this.#slotBits)) - 1;
    this.#free = new Int32Array(this.slots);
    for (let s = this.slots - 1; s >= 0; s--) this.#free[this.#freeTop++] = s;
    this.#gen = new Uint16Array(this.slots);
    this.#state = new Uint8Array(this.slots);
    this.#opcode = new Uint8Array(this.slots);
    this.#nsid = new Uint32Array(this.slots);
    this.#deadline = new Float64Array(this.slots);
    this.#timeout = new Float64Array(this.slots);
    this.#ref = new Array(this.slots).fill(null);
    this.#resolve = new Array(this.slots).fill(undefined);
    this.#reject = new Array(this.slots).fill(undefined);
  }

  /** Largest transfer one command can carry with this pair's PRP list pages. */
  get maxPrpTransfer(): number {
    const per = this.#pageSize / 8;
    const p = this.#cfg.prpPagesPerSlot;
    const entries = p === 0 ? 1 : p * (per - 1) + 1;
    // Holds for any dword-aligned start: a partial first page only adds room.
    return entries * this.#pageSize;
  }

  /** Commands waiting for completion (timed-out ones excluded). */
  get inflight(): number {
    return this.#active;
  }

  /** True once the pair has been failed or closed. */
  get closed(): boolean {
    return this.#closedWith !== null;
  }

  /** True if the pair currently holds a command id (busy or timed out and not yet answered). */
  holds(cid: number): boolean {
    const slot = cid & this.#slotMask;
    return slot < this.slots && this.#state[slot] !== FREE && (cid >>> this.#slotBits) === this.#gen[slot];
  }

  /** Hold new submissions (they wait) while the controller is being reset. */
  pause(): void {
    this.#paused = true;
  }

  /**
   * During a controller reset, while the device is disabled: fail whatever was
   * still outstanding with `err` and zero the rings. Submissions stay held
   * until {@link resume}.
   */
  reset(err: NvmeError): void {
    this.#paused = true;
    // The device is disabled: it can no longer write the commands' memory.
    this.#failSlots(err, true);
    // Stale phase tags from the last lap would read as fresh completions.
    this.#cq32.fill(0);
    this.#sq32.fill(0);
    this.#sqTail = this.#sqTailRung = this.#cqHead = 0;
    this.#phase = 1;
    this.#flushQueued = false;
  }

  /** Let held submissions through once the pair exists on the device again. */
  resume(): void {
    this.#paused = false;
    const w = this.#waiters.splice(0);
    for (const f of w) f();
  }

  /**
   * Submit a prepared command (`cmd` dwords copied) with an optional data
   * buffer. Resolves to CQE DW0. `ref` is the DMA memory the command uses:
   * it stays busy (never unmapped, its IOVA never reused) until the command
   * has ended on the device, even after its promise rejected on a timeout.
   */
  submit(
    cmd: Sqe,
    dataIova = 0,
    dataLen = 0,
    timeoutMs = this.defaultTimeoutMs,
    ref: DmaBuffer | null = null,
  ): Promise<number> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const slot = this.#take();
    if (slot < 0) return this.#queued(ref, () => this.submit(cmd, dataIova, dataLen, timeoutMs, ref));
    const e = this.#entries[this.#sqTail];
    for (let i = 1; i < 16; i++) e[i] = cmd[i];
    if (dataLen > 0) writePrps(e, dataIova, dataLen, this.#pageSize, this.#prpViews[slot], this.#prpIova[slot]);
    return this.#post(slot, e, cmd[0], timeoutMs, ref);
  }

  /**
   * Submit a read/write-shaped IO (read, write, compare, verify, write zeroes)
   * straight into the ring: the hot path, no allocation but the Promise.
   */
  rw(
    opcode: number,
    nsid: number,
    slba: number,
    nlb0: number,
    dataIova: number,
    dataLen: number,
    cdw12Flags = 0,
    timeoutMs = this.defaultTimeoutMs,
    ref: DmaBuffer | null = null,
  ): Promise<number> {
    if (this.#closedWith) return Promise.reject(this.#closedWith);
    const slot = this.#take();
    if (slot < 0) {
      return this.#queued(ref, () => this.rw(opcode, nsid, slba, nlb0, dataIova, dataLen, cdw12Flags, timeoutMs, ref));
    }
    const e = this.#entries[this.#sqTail];
    setRw(e, opcode, nsid, slba, nlb0, cdw12Flags);
    if (dataLen > 0) writePrps(e, dataIova, dataLen, this.#pageSize, this.#prpViews[slot], this.#prpIova[slot]);
    else e[6] = e[7] = e[8] = e[9] = 0;
    return this.#post(slot, e, opcode, timeoutMs, ref);
  }

  /** Write the SQ tail doorbell if entries were added since the last ring. */
  ring(): void {
    this.#flushQueued = false;
    if (this.#sqTail === this.#sqTailRung || this.#closedWith) return;
    // A sequentially consistent store orders the SQE writes before the doorbell (a fence on weak CPUs).
    const last = ((this.#sqTail + this.depth - 1) % this.depth) * 16;
    Atomics.store(this.#sq32, last, this.#sq32[last]);
    this.#db[this.#sqDb] = this.#sqTail;
    this.#sqTailRung = this.#sqTail;
    this.stats.sqDoorbells++;
  }

  /** Reap completions without waiting; returns how many were consumed. */
  processCompletions(): number {
    const cq = this.#cq32;
    let head = this.#cqHead;
    let phase = this.#phase;
    let n = 0;
    for (;;) {
      const base = head << 2;
      // Atomics.load: a plain load here can be hoisted out of the loop by Bun's JIT.
      const dw3 = Atomics.load(cq, base + 3);
      if (((dw3 >>> 16) & 1) !== phase) break;
      const dw0 = cq[base];
      const dw2 = cq[base + 2];
      if (++head === this.depth) {
        head = 0;
        phase ^= 1;
      }
      n++;
      this.#complete(dw3 & 0xffff, dw3 >>> 17, dw0, dw2 >>> 16);
    }
    if (n > 0) {
      this.#cqHead = head;
      this.#phase = phase;
      if (!this.#closedWith) this.#db[this.#cqDb] = head;
    }
    return n;
  }

  /** Expire commands past their deadline; returns how many timed out. */
  checkTimeouts(now: number = performance.now()): number {
    let n = 0;
    for (let s = 0; s < this.slots; s++) {
      if (this.#state[s] !== BUSY || this.#deadline[s] > now) continue;
      const cid = this.#cid(s);
      const err = new NvmeTimeoutError(
        { qid: this.qid, cid, opcode: this.#opcode[s], nsid: this.#nsid[s] || undefined },
        this.#timeout[s],
      );
      this.#state[s] = TIMED_OUT;
      this.#active--;
      this.stats.timeouts++;
      const rej = this.#reject[s]!;
      this.#resolve[s] = this.#reject[s] = undefined;
      rej(err);
      n++;
      this.onTimeout?.(this, cid, this.#opcode[s]);
    }
    return n;
  }

  /**
   * Fail every outstanding command with `err` and refuse new ones. Used on
   * close, controller failure and device loss; no promise is left pending.
   */
  fail(err: NvmeError): void {
    if (!this.#closedWith) this.#closedWith = err;
    // The device may still be running: the commands' memory stays busy until the transport closes.
    this.#failSlots(err, false);
    const w = this.#waiters.splice(0);
    for (const f of w) f();
  }

  /**
   * Reject every command still holding a slot with `err` and free the slots.
   * Their DMA memory is released only when `deviceStopped` (it can no longer
   * be written); otherwise it stays busy for good.
   */
  #failSlots(err: NvmeError, deviceStopped: boolean): void {
    for (let s = 0; s < this.slots; s++) {
      if (this.#state[s] === FREE) continue;
      const rej = this.#reject[s];
      this.#resolve[s] = this.#reject[s] = undefined;
      if (this.#state[s] === BUSY) this.#active--;
      if (!deviceStopped) this.#ref[s] = null;
      this.#release(s);
      rej?.(err);
    }
  }

  /** Cycle until no command is waiting; runs as the pump of this pair. */
  async #pump(): Promise<void> {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      // Let the caller finish its synchronous batch first: one doorbell for all of it.
      await null;
      let idleSince = -1;
      let lastYield = performance.now();
      while (this.#active > 0 && !this.#closedWith) {
        if (this.#flushQueued) this.ring();
        const n = this.processCompletions();
        const now = performance.now();
        if (now - this.#lastTimeoutCheck >= 5) {
          this.#lastTimeoutCheck = now;
          this.checkTimeouts(now);
        }
        if (n === 0 && now - this.#lastHealthCheck >= this.healthCheckMs && this.onHealthCheck) {
          this.#lastHealthCheck = now;
          this.onHealthCheck();
        }
        if (n > 0) idleSince = -1;
        else if (idleSince < 0) idleSince = now;
        // Spin on microtasks while completions are likely soon; then let the event loop run;
        // long waits (an async event request, a format) back off to timer sleeps.
        const idle = idleSince >= 0 ? now - idleSince : 0;
        if (idle > 50) {
          await new Promise<void>((r) => setTimeout(r, idle > 1000 ? 10 : 1));
          lastYield = performance.now();
        } else if (idle * 1000 >= this.pollSpinUs || now - lastYield > 2) {
          await yieldMacrotask();
          lastYield = performance.now();
        } else {
          await null;
        }
      }
    } finally {
      this.#pumping = false;
    }
  }

  #cid(slot: number): number {
    return (slot | (this.#gen[slot] << this.#slotBits)) & 0xffff;
  }

  #take(): number {
    if (this.#paused) return -1;
    if (this.#freeTop === 0) return -1;
    return this.#free[--this.#freeTop];
  }

  /** Wait for a free slot, then `retry`; the memory counts as busy meanwhile, so it cannot be freed under the call. */
  #queued(ref: DmaBuffer | null, retry: () => Promise<number>): Promise<number> {
    if (ref !== null) ref.busy++;
    return new Promise<void>((r) => this.#waiters.push(r)).then(() => {
      const p = retry();
      this.#unref(ref);
      return p;
    });
  }

  #unref(ref: DmaBuffer | null): void {
    if (ref !== null && --ref.busy === 0 && ref.onIdle !== null) {
      const f = ref.onIdle;
      ref.onIdle = null;
      f(ref);
    }
  }

  #post(slot: number, e: Uint32Array, cdw0: number, timeoutMs: number, ref: DmaBuffer | null): Promise<number> {
    const cid = this.#cid(slot);
    this.#ref[slot] = ref;
    if (ref !== null) ref.busy++;
    const opcode = cdw0 & 0xff;
    this.#state[slot] = BUSY;
    this.#opcode[slot] = opcode;
    this.#nsid[slot] = e[SqeDw.NSID];
    this.#timeout[slot] = timeoutMs;
    this.#deadline[slot] = performance.now() + timeoutMs;
    this.#active++;
    this.#occupied++;
    const p = new Promise<number>((res, rej) => {
      this.#resolve[slot] = res;
      this.#reject[slot] = rej;
    });
    e[0] = ((cdw0 & 0xffff) | (cid << 16)) >>> 0;
    if (++this.#sqTail === this.depth) this.#sqTail = 0;
    this.stats.submitted++;
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(this.#flush);
    }
    if (!this.#pumping) void this.#pump();
    return p;
  }

  #complete(cid: number, sf: number, dw0: number, sqid: number): void {
    const slot = cid & this.#slotMask;
    if (
      sqid !== this.qid || slot >= this.slots || this.#state[slot] === FREE ||
      (cid >>> this.#slotBits) !== this.#gen[slot]
    ) {
      this.stats.bogus++;
      return;
    }
    if (this.#state[slot] === TIMED_OUT) {
      this.stats.late++;
      this.#release(slot);
      return;
    }
    const res = this.#resolve[slot]!, rej = this.#reject[slot]!;
    this.#resolve[slot] = this.#reject[slot] = undefined;
    this.#active--;
    const opcode = this.#opcode[slot], nsid = this.#nsid[slot];
    this.#release(slot);
    this.stats.completed++;
    if ((sf & 0x7ff) === 0) res(dw0);
    else rej(statusError(sf, dw0, { qid: this.qid, cid, opcode, nsid: nsid || undefined }));
  }

  #release(slot: number): void {
    const ref = this.#ref[slot];
    this.#ref[slot] = null;
    this.#state[slot] = FREE;
    this.#gen[slot] = (this.#gen[slot] + 1) & this.#genMask;
    this.#free[this.#freeTop++] = slot;
    this.#occupied--;
    this.#unref(ref);
    if (this.#waiters.length > 0 && !this.#paused) this.#waiters.shift()!();
  }

  /** Reject new work with `DeviceClosedError` after failing what is in flight. */
  close(): void {
    this.fail(new DeviceClosedError());
  }
}
