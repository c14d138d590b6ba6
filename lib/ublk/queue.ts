/**
 * One ublk hardware queue served by the thread that owns an NVMe queue pair:
 * the kernel posts each request into this queue's descriptor array and
 * completes a FETCH; the pump maps it onto one NVMe command whose data
 * buffer is the tag's own DMA memory (the kernel copies a WRITE's pages in
 * before the FETCH completes and a READ's out on COMMIT: no copy here), and
 * answers with COMMIT_AND_FETCH. All commits of a pump turn go to the kernel
 * in one io_uring_enter; when nothing is in flight the thread sleeps in that
 * same call, and while NVMe commands are in flight with nothing to do it
 * sleeps there too, on a poll of the queue's interrupt eventfd (one wait for
 * both). ublk requires that every command of a queue come from the thread
 * that fetched it, so this must run synchronously in its Worker.
 * @module
 */
import { errnoName, type Libc, MAP_FAILED, MAP_POPULATE, MAP_SHARED, PROT_READ } from "../ffi/mod.ts";
import { yieldMacrotask } from "../ffi/yield.ts";
import { flushCmd, dsmCmd } from "../nvme/command.ts";
import { InvalidArgumentError, type NvmeError, SyscallError } from "../nvme/errors.ts";
import { encodeDsmRanges } from "../nvme/ranges.ts";
import { IoOpc } from "../nvme/spec.ts";
import type { QueuePair } from "../nvme/queue.ts";
import type { IoCallback } from "../nvme/tracker.ts";
import { SqeOff, Uring, UringOp } from "../uring/mod.ts";
import type { WorkerQueue } from "../worker/mod.ts";
import { disposition, Errno } from "./params.ts";
import { descOffset, IoCmdOff, IoDescWord, ioOp, UblkIoCmd, UblkIoFlag, UblkIoRes, UblkOp } from "./uapi.ts";

/** What a queue server needs besides its NVMe queue. */
export interface UblkQueueConfig {
  /** ublk device id. */
  devId: number;
  /** ublk queue index. */
  qId: number;
  /**
   * /dev/ublkc<devId>, opened once by the controlling thread: the kernel lets
   * one open at a time, and fds are the process's, so every queue shares it.
   */
  cdevFd: number;
  /** Tags. */
  depth: number;
  /** Bytes per tag buffer (the device's max_io_buf_bytes). */
  maxIoBytes: number;
  /** Namespace served. */
  nsid: number;
  /** Bytes per logical block. */
  blockSize: number;
  /** IO commands ioctl-encoded (the device has UBLK_F_CMD_IOCTL_ENCODE). */
  encoded: boolean;
  /** The controller has a volatile write cache: FLUSH goes to the device. */
  vwc: boolean;
  /** NVMe command timeout, ms. */
  timeoutMs: number;
  /** CPUs to pin this thread to (cpu_set_t), or null. */
  affinity?: Uint8Array | null;
}

/** Counters of a queue server. */
export interface UblkQueueStats {
  /** Requests taken from the kernel. */
  requests: number;
  /** Requests completed with an error. */
  errors: number;
  /** NVMe commands submitted again after a retryable failure. */
  retries: number;
  /** io_uring_enter calls. */
  enters: number;
  /** Sleeps in io_uring_enter with NVMe commands in flight. */
  nvmeSleeps: number;
}

const PAGE = 4096;
/** user_data of the poll on the interrupt eventfd (tags are below 4096). */
const POLL_TAG = 0xffff;
/** Pump turns between yields to the event loop (recovery messages, timers): never per IO. */
const TURNS_PER_YIELD = 64;
/** Empty turns with NVMe commands in flight before the pump sleeps. */
const SPIN_TURNS = 64;
/** The longest sleep before the pump looks at the event loop again, ns. */
const IDLE_WAIT_NS = 100_000_000;
/** A sleep with NVMe commands in flight: bounded, as the vector may be masked or shared. */
const NVME_WAIT_NS = 1_000_000;
const NVME_WAIT_NO_IRQ_NS = 20_000;
const FUA = 1 << 30;
const DEAC = 1 << 25;

/** A tag's state. */
const Tag = {
  /** Waiting in the kernel for a request (FETCH or COMMIT_AND_FETCH outstanding). */
  KERNEL: 0,
  /** Being served: an NVMe command in flight, or waiting for a slot. */
  SERVING: 1,
  /** Its fetch ended with ABORT: the queue is going away. */
  ABORTED: 2,
} as const;

/** Serves one ublk queue on one NVMe queue pair. Build with {@link UblkQueue.open}, then {@link run}. */
export class UblkQueue {
  /** Configuration. */
  readonly cfg: UblkQueueConfig;
  /** Counters. */
  readonly stats: UblkQueueStats = { requests: 0, errors: 0, retries: 0, enters: 0, nvmeSleeps: 0 };
  readonly #libc: Libc;
  readonly #wq: WorkerQueue;
  readonly #qp: QueuePair;
  readonly #ring: Uring;
  readonly #cdev: number;
  readonly #desc: Uint32Array;
  readonly #descMap: [bigint, bigint];
  readonly #bufAddr: bigint;
  readonly #bufIova: number;
  readonly #buf: Uint8Array;
  readonly #state: Uint8Array;
  readonly #retries: Uint8Array;
  readonly #cbs: IoCallback[];
  readonly #backlog: number[] = [];
  readonly #fetchOp: number;
  readonly #commitOp: number;
  readonly #lbShift: number;
  readonly #irqFd: number;
  #aborted = 0;
  #serving = 0;
  #promises = 0;
  #pollArmed = false;
  #quit = false;

  private constructor(libc: Libc, wq: WorkerQueue, cfg: UblkQueueConfig, ring: Uring, cdev: number, descAddr: bigint, descLen: bigint) {
    this.cfg = cfg;
    this.#libc = libc;
    this.#wq = wq;
    this.#qp = wq.queue;
    this.#ring = ring;
    this.#cdev = cdev;
    this.#descMap = [descAddr, descLen];
    this.#desc = new Uint32Array(libc.view(descAddr, Number(descLen)));
    const arena = wq.handle.arena;
    if (arena === null || arena.addr === null) throw new InvalidArgumentError("ublk needs a queue whose DMA memory has an address (a PCIe controller)");
    this.#buf = wq.allocBuffer(cfg.depth * cfg.maxIoBytes);
    this.#bufAddr = libc.addressOf(this.#buf);
    this.#bufIova = arena.iova + Number(this.#bufAddr - arena.addr);
    this.#state = new Uint8Array(cfg.depth);
    this.#retries = new Uint8Array(cfg.depth);
    this.#cbs = [];
    for (let t = 0; t < cfg.depth; t++) this.#cbs.push((err) => this.#done(t, err));
    this.#fetchOp = cfg.encoded ? ioOp(UblkIoCmd.FETCH_REQ) : UblkIoCmd.FETCH_REQ;
    this.#commitOp = cfg.encoded ? ioOp(UblkIoCmd.COMMIT_AND_FETCH_REQ) : UblkIoCmd.COMMIT_AND_FETCH_REQ;
    this.#lbShift = Math.log2(cfg.blockSize);
    this.#irqFd = wq.handle.irq?.gate?.eventfd ?? -1;
  }

  /**
   * Open /dev/ublkc<devId> in this thread, map the queue's descriptors, pin
   * the thread, and FETCH every tag. After this the kernel counts the queue
   * ready (START_DEV or END_USER_RECOVERY may go).
   */
  static async open(libc: Libc, wq: WorkerQueue, cfg: UblkQueueConfig): Promise<UblkQueue> {
    if (cfg.affinity) libc.schedSetaffinity(0, cfg.affinity); // best effort: blk-mq's CPUs for this queue
    const path = `/dev/ublkc${cfg.devId}`;
    const cdev = cfg.cdevFd;
    const len = BigInt(Math.ceil((cfg.depth * IoDescWord.SIZE * 4) / PAGE) * PAGE);
    const desc = libc.mmap(0n, len, PROT_READ, MAP_SHARED | MAP_POPULATE, cdev, descOffset(cfg.qId));
    if (desc === MAP_FAILED) {
      const e = libc.errno();
      throw new SyscallError(`mmap ${path} queue ${cfg.qId}`, e, errnoName(e));
    }
    let ring: Uring;
    try {
      ring = await Uring.create(cfg.depth + 8, { libc, cqEntries: 2 * (cfg.depth + 8) });
    } catch (e) {
      libc.munmap(desc, len);
      throw e;
    }
    const q = new UblkQueue(libc, wq, cfg, ring, cdev, desc, len);
    // The pump reaps itself; the pair's own pump must not mask the vector the pump polls on.
    q.#qp.setWaitMode("poll", null);
    for (let t = 0; t < cfg.depth; t++) q.#io(t, q.#fetchOp, 0);
    q.#enter(0, -1);
    return q;
  }

  /**
   * Leave {@link run} at its next turn (within one idle wait): for a device
   * that never started, whose fetches no STOP_DEV ends. {@link close} then
   * cancels them.
   */
  quit(): void {
    this.#quit = true;
  }

  /** True once every tag's fetch ended with ABORT (the device was stopped or deleted). */
  get finished(): boolean {
    return this.#aborted === this.cfg.depth;
  }

  /** Prepare a FETCH or COMMIT_AND_FETCH for `tag` (room is certain: the SQ holds depth + 8). */
  #io(tag: number, op: number, result: number): void {
    const r = this.#ring;
    const s = r.sqe();
    r.prep(s, UringOp.URING_CMD, this.#cdev, tag);
    const v = r.sqeView, c = s + SqeOff.CMD;
    v.setUint32(s + SqeOff.OFF, op, true);
    v.setUint16(c + IoCmdOff.Q_ID, this.cfg.qId, true);
    v.setUint16(c + IoCmdOff.TAG, tag, true);
    v.setInt32(c + IoCmdOff.RESULT, result, true);
    v.setBigUint64(c + IoCmdOff.ADDR, this.#bufAddr + BigInt(tag * this.cfg.maxIoBytes), true);
  }

  #enter(min: number, timeoutNs: number): void {
    this.stats.enters++;
    this.#ring.submit(min, timeoutNs);
  }

  /** Answer `tag` with `res` (bytes or -errno); the commit goes out with the turn's batch. */
  #commit(tag: number, res: number): void {
    if (res < 0) this.stats.errors++;
    this.#retries[tag] = 0;
    this.#state[tag] = Tag.KERNEL;
    this.#serving--;
    this.#io(tag, this.#commitOp, res);
  }

  /** An NVMe command of `tag` ended. */
  #done(tag: number, err: NvmeError | null): void {
    if (err === null) {
      const d = this.#desc, w = tag * IoDescWord.SIZE;
      const op = d[w + IoDescWord.OP_FLAGS] & 0xff;
      this.#commit(tag, op === UblkOp.READ || op === UblkOp.WRITE ? d[w + IoDescWord.NR_SECTORS] * 512 : 0);
      return;
    }
    const r = disposition(err, this.#retries[tag]);
    if (r === 0) {
      // Retried as Linux's nvme driver does: the descriptor stays valid until the commit.
      this.#retries[tag]++;
      this.stats.retries++;
      this.#backlog.push(tag);
    } else this.#commit(tag, r);
  }

  /** Start the NVMe command for `tag`'s request; false when no slot is free (retry later). */
  #serve(tag: number): boolean {
    const d = this.#desc, w = tag * IoDescWord.SIZE, cfg = this.cfg;
    const opf = d[w + IoDescWord.OP_FLAGS];
    const op = opf & 0xff;
    const sectors = d[w + IoDescWord.NR_SECTORS];
    const start = d[w + IoDescWord.START_LO] + d[w + IoDescWord.START_HI] * 0x1_0000_0000;
    const sh = this.#lbShift - 9;
    const slba = Math.floor(start / (1 << sh));
    const blocks = Math.floor(sectors / (1 << sh));
    const iova = this.#bufIova + tag * cfg.maxIoBytes;
    const qp = this.#qp;
    try {
      switch (op) {
        case UblkOp.READ:
          return qp.rwCallback(IoOpc.READ, cfg.nsid, slba, blocks - 1, iova, sectors * 512, 0, cfg.timeoutMs, null, this.#cbs[tag]);
        case UblkOp.WRITE:
          return qp.rwCallback(IoOpc.WRITE, cfg.nsid, slba, blocks - 1, iova, sectors * 512, opf & UblkIoFlag.FUA ? FUA : 0, cfg.timeoutMs, null, this.#cbs[tag]);
        case UblkOp.WRITE_ZEROES:
          return qp.rwCallback(IoOpc.WRITE_ZEROES, cfg.nsid, slba, blocks - 1, 0, 0, opf & UblkIoFlag.NOUNMAP ? 0 : DEAC, cfg.timeoutMs, null, this.#cbs[tag]);
        case UblkOp.FLUSH:
          if (!cfg.vwc) {
            this.#commit(tag, 0);
            return true;
          }
          this.#viaPromise(tag, qp.submit(flushCmd(cfg.nsid), 0, 0, cfg.timeoutMs));
          return true;
        case UblkOp.DISCARD: {
          // The range list lives in the tag's own buffer: a discard carries no data.
          const b = this.#buf.subarray(tag * cfg.maxIoBytes, tag * cfg.maxIoBytes + 16);
          b.fill(0);
          encodeDsmRanges([[slba, blocks]], b);
          this.#viaPromise(tag, qp.submit(dsmCmd(cfg.nsid, 1, { ad: true }), iova, 16, cfg.timeoutMs));
          return true;
        }
        default:
          this.#commit(tag, -Errno.EOPNOTSUPP);
          return true;
      }
    } catch (e) {
      // The queue failed or closed (controller gone): the request fails, the pump goes on.
      this.#commit(tag, -Errno.EIO);
      void e;
      return true;
    }
  }

  /** FLUSH and DISCARD: rare, so a Promise is fine. */
  #viaPromise(tag: number, p: Promise<number>): void {
    this.#promises++;
    p.then(() => {
      this.#promises--;
      this.#done(tag, null);
    }, (e: NvmeError) => {
      this.#promises--;
      this.#done(tag, e);
    });
  }

  /** Handle the ring's completions; returns how many. */
  #reapRing(): number {
    const r = this.#ring;
    const n = r.cqReady();
    for (let i = 0; i < n; i++) {
      const tag = r.cqeUserData(i), res = r.cqeRes(i);
      if (tag === POLL_TAG) {
        this.#pollArmed = false;
        continue;
      }
      if (tag >= this.cfg.depth) continue;
      if (res === UblkIoRes.OK) {
        this.stats.requests++;
        this.#state[tag] = Tag.SERVING;
        this.#serving++;
        if (this.#backlog.length > 0 || !this.#serve(tag)) this.#backlog.push(tag);
      } else if (this.#state[tag] !== Tag.ABORTED) {
        // ABORT (-ENODEV) when the device stops; any other error ends the tag too.
        this.#state[tag] = Tag.ABORTED;
        this.#aborted++;
      }
    }
    if (n > 0) r.cqAdvance(n);
    return n;
  }

  #drainBacklog(): void {
    const b = this.#backlog;
    let i = 0;
    while (i < b.length && this.#serve(b[i])) i++;
    if (i > 0) b.splice(0, i);
  }

  /**
   * Serve requests until the device goes away (every fetch aborted). Yields
   * to the event loop every few dozen turns and before each idle sleep, so
   * the NVMe queue's recovery messages and timers run; never per request.
   */
  async run(): Promise<void> {
    const qp = this.#qp, ring = this.#ring;
    let turns = 0, empty = 0;
    while ((this.#aborted < this.cfg.depth || this.#serving > 0) && !this.#quit) {
      let work = this.#reapRing();
      if (this.#backlog.length > 0) this.#drainBacklog();
      qp.ring();
      work += qp.processCompletions();
      if (this.#serving === 0) {
        // Nothing in flight anywhere: one enter sends this turn's commits and sleeps until the
        // kernel has a request (bounded). The event loop runs when that wait ends empty (idle)
        // and every TURNS_PER_YIELD turns: at QD1 every request passes here, so never per request.
        if (ring.cqReady() === 0) this.#enter(1, IDLE_WAIT_NS);
        if (ring.cqReady() === 0 || ++turns % TURNS_PER_YIELD === 0) {
          await yieldMacrotask();
          if (this.#aborted === this.cfg.depth || this.#quit) break;
        }
        empty = 0;
        continue;
      }
      if (ring.pending > 0) this.#enter(0, -1);
      if (work === 0 && this.#promises === 0 && qp.inflight > 0 && ++empty > SPIN_TURNS) {
        // NVMe commands in flight, nothing moving: sleep on the ring, which also polls the
        // queue's interrupt eventfd, so a completion or a new request ends the same wait.
        empty = 0;
        this.stats.nvmeSleeps++;
        if (this.#irqFd >= 0 && !this.#pollArmed) {
          const s = ring.sqe();
          ring.prep(s, UringOp.POLL_ADD, this.#irqFd, POLL_TAG);
          ring.sqeView.setUint32(s + SqeOff.OP_FLAGS, 1 /* POLLIN */, true);
          this.#pollArmed = true;
        }
        if (qp.processCompletions() === 0) this.#enter(1, this.#irqFd >= 0 ? NVME_WAIT_NS : NVME_WAIT_NO_IRQ_NS);
      } else if (work > 0) empty = 0;
      if (this.#promises > 0 || this.#backlog.length > 0) await null;
      if (++turns % TURNS_PER_YIELD === 0) {
        qp.checkTimeouts();
        await yieldMacrotask();
      }
    }
    if (ring.pending > 0) this.#enter(0, -1);
  }

  /** Release the ring (cancelling any fetch still outstanding) and the descriptor mapping; /dev/ublkcN stays the controlling thread's. */
  close(): void {
    this.#ring.close();
    this.#libc.munmap(this.#descMap[0], this.#descMap[1]);
    try {
      this.#wq.freeBuffer(this.#buf);
    } catch { /* the queue already failed and let go of it */ }
  }
}
