/**
 * The NVMe/TCP half of a queue pair: one TCP connection on a socket the
 * driver owns (lib/sock, libc through FFI), the ICReq/ICResp exchange, and a
 * {@link QueueRing} that sends each submitted SQE as a CapsuleCmd (writes up
 * to the in-capsule limit ride in it; larger ones wait for R2T and go out as
 * H2CData), receives C2HData into the command's memory and hands
 * CapsuleResp completions to the tracker.
 *
 * No event loop between the pump and the socket: {@link TcpRing.reap} (the
 * pump's poll) reads with nonblocking recv into one reused buffer, and a
 * large C2HData's data is received straight into the read's memory (no copy
 * at all) unless a data digest must be checked first. {@link TcpRing.flush}
 * sends the batch with one sendmsg: capsules staged in one buffer, H2CData
 * straight from the command's memory. A send the kernel cannot take yet stays
 * queued and resumes on the next poll. Per IO: no allocation, no clock read,
 * no event-loop hop. The byte path (recv into memory, sendmsg of an IoVec) is
 * the {@link TcpByteStream} seam, so TLS can later sit under it.
 * @module
 */
import { ConnectionLostError, InvalidArgumentError, type NvmeError, ProtocolError } from "../nvme/errors.ts";
import type { FabricRing } from "../nvme/transport.ts";
import type { QueueWaiter } from "../nvme/queue.ts";
import type { CompletionSink } from "../nvme/ring.ts";
import type { IrqHub } from "../irq/hub.ts";
import { IrqWaiter, type IrqWord } from "../irq/waiter.ts";
import { attachSocket, detachSocket, SocketGate, socketWaiter } from "../irq/socket.ts";
import { type Libc, loadLibc } from "../ffi/mod.ts";
import { AGAIN, encodeSockAddr, IoVec, Socket, SocketError } from "../sock/mod.ts";
import { crc32c } from "./crc32c.ts";
import { dataDirection, FABRICS_OPCODE } from "./fabrics.ts";
import { iovaOffset, type TcpMemory } from "./memory.ts";
import { PduParser } from "./parser.ts";
import {
  Ch,
  DataOff,
  decodeIcResp,
  decodeTermReq,
  DIGEST_SIZE,
  type Digests,
  encodeIcReq,
  encodeTermReq,
  Fes,
  get16,
  get32,
  Hlen,
  type IcResp,
  MIN_MAXH2CDATA,
  type PduLayout,
  pdaBytes,
  PduFlag,
  PduType,
  PFV_1_0,
  PSDT_SGL_CDW0,
  put32,
  R2tOff,
  RespOff,
  sealPdu,
  setSglInCapsule,
  setSglTransport,
  writeCapsuleCmd,
  writeDataPdu,
} from "./pdu.ts";

/** Where and how to open one queue's connection. */
export interface TcpRingOptions {
  /** Target address: an IPv4/IPv6 literal, or a name (resolved once, at connect). */
  host: string;
  /** Target port (4420 by convention; 8009 for discovery). */
  port: number;
  /** Queue id this connection will carry (0 = admin). */
  qid: number;
  /** Submission queue entries (the queue pair keeps depth - 1 in flight). */
  depth: number;
  /** Host memory the queue's commands point into. */
  memory: TcpMemory;
  /** Digests to ask for (the target must grant exactly these). */
  digests?: Partial<Digests>;
  /** Largest write sent in-capsule (admin: 8 KiB as Linux; IO: IOCCSZ × 16 − 64 from Identify). */
  inCapsuleMax?: number;
  /** Largest transfer of one command (cap it by MDTS and the target's limits). */
  maxTransfer?: number;
  /** Bound on TCP connect plus ICResp, in ms (Linux: 10 s). */
  connectTimeoutMs?: number;
  /**
   * Where the socket's readiness is watched: an epoll helper the queue sleeps
   * on as a PCIe queue sleeps on its vector ({@link hubReadiness},
   * {@link slotReadiness}). Without one, sleeps nap on 1 ms timers and poll.
   */
  readiness?: SocketReadiness | null;
  /** The waiter to rebind to this connection (a reconnect keeps the queue's waiter). */
  waiter?: SocketWaiter;
  /**
   * Polls of the socket before the pump sleeps on it ({@link SocketWaiter.spinPolls};
   * default {@link DEFAULT_SOCKET_SPIN_POLLS} on IO queues, 0 on the admin queue).
   */
  spinPolls?: number;
  /** libc (default: this thread's). */
  libc?: Libc;
}

/** In-capsule limit Linux uses on the admin queue and for Fabrics commands. */
export const ADMIN_IN_CAPSULE = 8192;
/** Default largest transfer per command: SPDK's default target limit, below nvmet's 4 MiB. */
export const DEFAULT_TCP_MAX_TRANSFER = 128 * 1024;

const DIR_H2C = 1, DIR_C2H = 2;
/** Status field of Data Transfer Error (SCT 0, SC 04h): what a command whose data failed its digest ends with. */
const SF_DATA_TRANSFER_ERROR = 0x04;
const STAGE_INITIAL = 64 * 1024;
/** Receive buffer: one recv takes many completions or a whole 128 KiB C2HData at once. */
const RECV_BUFFER = 256 * 1024;
/** A C2HData data remainder at least this long is received straight into the read's memory. */
const DIRECT_MIN = 2048;
/** recv calls per poll at most (a queue flooded with data still lets the pump check timeouts). */
const READS_PER_POLL = 16;
/** Segments one sendmsg batch can hold (capsule runs, H2CData headers, data and digests). */
const IOV_SEGMENTS = 1024;

/** Registers a connection's socket with an epoll helper, and deregisters it before it closes. */
export interface SocketReadiness {
  /** Watch `fd`; the waiter wakes when it is readable. */
  attach(fd: number): IrqWaiter;
  /** Stop watching (the socket is about to close). */
  detach(w: IrqWaiter): void;
}

/** Readiness through an {@link IrqHub} this thread owns (a slot per connection). */
export function hubReadiness(hub: IrqHub): SocketReadiness {
  return { attach: (fd) => hub.addSocket(fd), detach: (w) => hub.removeSocket(w.word) };
}

/** Readiness through a slot another thread's hub reserved for this queue (`IrqHub.reserveSocket`), one connection at a time. */
export function slotReadiness(libc: Libc, slot: IrqWord): SocketReadiness {
  return { attach: (fd) => socketWaiter(libc, attachSocket(libc, slot, fd)), detach: (w) => detachSocket(libc, w.word) };
}

/** An IP literal as is; a name through the runtime's resolver (once per connection, never per IO). */
async function resolveHost(host: string): Promise<string> {
  try {
    encodeSockAddr(host, 0);
    return host;
  } catch {
    const dns = await import("node:dns");
    try {
      return (await dns.promises.lookup(host)).address;
    } catch (e) {
      throw new ConnectionLostError(`${host}: cannot resolve (${(e as Error).message})`, { cause: e });
    }
  }
}

/**
 * The byte path of one connection, the seam TLS would sit under: read into
 * memory, send an {@link IoVec}, both nonblocking ({@link AGAIN} when the
 * kernel has nothing or no room; 0 from recv at end of stream).
 */
export interface TcpByteStream {
  /** Read into `buf[0..len)` (default all): bytes, 0 at end of stream, or AGAIN. Throws SocketError. */
  recv(buf: Uint8Array): number;
  /** Send what `iov` holds, consuming what was taken: bytes or AGAIN. Throws SocketError. */
  sendmsg(iov: IoVec): number;
  /** Send all of `buf` now (tiny control PDUs; may spin briefly on a full socket). */
  sendAll(buf: Uint8Array): void;
  /** The socket under it (readiness, shutdown). */
  readonly socket: Socket;
  /** Close the connection. */
  close(): void;
}

/** The plain-TCP {@link TcpByteStream}. */
class PlainStream implements TcpByteStream {
  readonly socket: Socket;
  constructor(s: Socket) {
    this.socket = s;
  }
  recv(buf: Uint8Array): number {
    return this.socket.recv(buf);
  }
  sendmsg(iov: IoVec): number {
    return this.socket.sendmsg(iov);
  }
  sendAll(buf: Uint8Array): void {
    for (let off = 0, spins = 0; off < buf.length;) {
      const n = this.socket.send(off === 0 ? buf : buf.subarray(off));
      if (n === AGAIN) {
        if (++spins > 1000 || !this.socket.waitWritable(10)) throw new SocketError("send", 110);
      } else off += n;
    }
  }
  close(): void {
    this.socket.shutdown();
    this.socket.close();
  }
}

/**
 * Default {@link SocketWaiter.spinPolls} of an IO queue: a poll(2) that finds
 * nothing costs ~1.3 µs on a host and ~10-20 µs in a TCG guest, so 64 polls
 * cover a loopback round trip on either (~30 µs host, ~0.3-0.5 ms guest)
 * before the queue sleeps on the epoll helper.
 */
export const DEFAULT_SOCKET_SPIN_POLLS = 64;

/**
 * What a TCP queue's pump sleeps on: the socket's readiness through the
 * {@link IrqHub}'s epoll helper, or, without a hub, 1 ms timer naps that poll
 * the socket. A sleep first polls the socket synchronously
 * ({@link spinPolls} times): at low queue depth the answer is usually there
 * within a round trip, and the caller gets it with no event-loop hop and no
 * wake through another thread (a Deno waitAsync wake or timer costs
 * milliseconds in a TCG guest). Only then is the socket's EPOLLONESHOT
 * re-armed (one epoll_ctl) and the pump sleeps on its word. One per queue,
 * kept across reconnects: {@link bind} moves it to the new connection.
 */
export class SocketWaiter implements QueueWaiter {
  #irq: IrqWaiter | null = null;
  /** The slot's word without a gate: sleeps on it once the spin found nothing. */
  #sleeper: IrqWaiter | null = null;
  /** Re-arms the socket's oneshot, after the spin (not at {@link arm}). */
  #gate: SocketGate | null = null;
  #sock: Socket | null = null;
  #probe: (() => boolean) | null = null;
  #base = 0;
  #own = 0;
  #armed = 0;
  #wake: (() => void) | null = null;
  /** Polls of the socket a sleep makes before it sleeps on readiness (0: none; the admin queue's default). */
  spinPolls = 0;
  /** Sleeps the spin ended (the socket became readable while polling): diagnostics. */
  spun = 0;

  /** Wake-ups counted so far (across connections). */
  get count(): number {
    return this.#base + (this.#irq ? this.#irq.count : this.#own);
  }

  /**
   * Watch `sock` now, through `irq` (its hub slot, from {@link SocketReadiness.attach})
   * or by polling. `probe` reads what the socket holds and says whether the
   * pump has something to reap (the ring's nonblocking read): the spin calls it
   * instead of polling for readiness, so data it meets is taken in the same call.
   */
  bind(sock: Socket, irq: IrqWaiter | null, probe: (() => boolean) | null = null): void {
    this.#probe = probe;
    this.#base = this.count;
    this.#own = 0;
    this.#irq = irq;
    this.#sleeper = irq ? new IrqWaiter(irq.word) : null;
    this.#gate = irq ? new SocketGate(sock.libc, irq.word) : null;
    this.#sock = sock;
    if (irq) this.#base -= irq.count;
    this.#wake?.();
  }

  /** The hub slot in use, or null (polling). */
  get irq(): IrqWaiter | null {
    return this.#irq;
  }

  /** Snapshot before the last check that precedes {@link sleep} (the oneshot is re-armed by the sleep, after its spin). */
  arm(): void {
    if (this.#sleeper) this.#sleeper.arm();
    else this.#armed = this.#own;
  }

  /** Nothing to do: the oneshot disarms itself when it fires. */
  disarm(): void {}

  /** Until the socket is readable (or closes), {@link wake}, or `timeoutMs`; true if readable. */
  async sleep(timeoutMs: number): Promise<boolean> {
    const s = this.#sock, probe = this.#probe;
    if (s !== null && s.fd >= 0) {
      for (let i = this.spinPolls; i > 0; i--) {
        if (probe !== null ? probe() : s.waitReadable(0)) {
          this.spun++;
          return true;
        }
      }
    }
    const irq = this.#sleeper, gate = this.#gate;
    if (irq !== null && gate !== null) {
      // Re-armed after the snapshot: data that came after the spin's last poll fires it at once.
      if (gate.masked && s !== null && s.fd >= 0) {
        try {
          gate.unmask(); // a syscall: the kernel orders it before the sleep's load of the word
        } catch {
          return true; // the socket is going away: the pump's next read says so
        }
      }
      return await irq.sleep(timeoutMs);
    }
    if (this.#own !== this.#armed) return true;
    const end = performance.now() + timeoutMs;
    let woken = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let napEnd: (() => void) | null = null;
    // wake() ends the current 1 ms nap at once: a closing queue's pump leaves no timer behind.
    this.#wake = () => {
      woken = true;
      clearTimeout(timer);
      napEnd?.();
    };
    try {
      while (!woken) {
        const s = this.#sock;
        if (s === null || s.fd < 0) return false;
        if (s.waitReadable(0)) {
          this.#own++;
          return true;
        }
        if (performance.now() >= end) return false;
        await new Promise<void>((r) => {
          napEnd = r;
          timer = setTimeout(r, 1);
        });
        napEnd = null;
      }
      return false;
    } finally {
      this.#wake = null;
    }
  }

  /** End a sleep now (queue closing, or a new connection bound). */
  wake(): void {
    this.#sleeper?.wake();
    this.#wake?.();
  }
}

/** One NVMe/TCP connection carrying one queue; a {@link FabricRing} for {@link QueuePair}. */
export class TcpRing implements FabricRing {
  /** Submission queue entries. */
  readonly depth: number;
  /** Largest transfer one command can carry. */
  readonly maxTransfer: number;
  /** Queue id. */
  readonly qid: number;
  /** What the target granted in its ICResp. */
  readonly icResp: IcResp;
  /** Digests in force. */
  readonly digests: Digests;
  /** Largest write sent in-capsule. */
  readonly inCapsuleMax: number;
  /** What the queue pair's pump sleeps on (socket readiness). */
  readonly waiter: SocketWaiter;

  /** Called once when the connection fails or closes, with the error in-flight commands get. */
  onLost: ((err: NvmeError) => void) | null = null;
  /** PDUs sent and received, R2Ts answered, data received with no copy, sends the kernel deferred (diagnostics). */
  readonly counters = { pdusOut: 0, pdusIn: 0, r2t: 0, c2hData: 0, inCapsule: 0, directBytes: 0, sendAgain: 0 };

  readonly #io: TcpByteStream;
  readonly #readiness: SocketReadiness | null;
  #irq: IrqWaiter | null = null;
  readonly #parser: PduParser;
  readonly #mem: TcpMemory;
  readonly #sqe = new Uint32Array(16);
  /** The capsule being staged's layout, one object reused by every {@link push}. */
  readonly #layout: PduLayout = { hlen: 0, pdo: 0, plen: 0, flags: 0 };
  readonly #rx = new Uint8Array(RECV_BUFFER);
  readonly #iov: IoVec;
  #stage = new Uint8Array(STAGE_INITIAL);
  /** Address of #stage's first byte, taken once per stage (never per flush). */
  #stageAddr: number;
  readonly #libc: Libc;
  /** Stage bytes written / already queued in the IoVec. */
  #staged = 0;
  #queued = 0;
  // The command being built between setData/clearData and push.
  #pSlot = -1;
  #pIova = 0;
  #pLen = 0;
  // Per command id: slot + 1 of a command with data (0 = none); per slot: its memory and progress.
  readonly #cidSlot = new Int32Array(0x10000);
  readonly #slotIova: Float64Array;
  readonly #slotLen: Uint32Array;
  readonly #slotDir: Uint8Array;
  readonly #slotDone: Uint32Array;
  readonly #slotCid: Int32Array;
  readonly #slotBad: Uint8Array;
  // Completions received, not yet reaped: cid, sf, dw0, dw1 per entry.
  readonly #cq: Uint32Array;
  #cqHead = 0;
  #cqCount = 0;
  readonly #h2cAlign: number;
  #flushes = 0;
  #lost: NvmeError | null = null;
  #closed = false;
  readonly #where: string;

  private constructor(io: TcpByteStream, parser: PduParser, opts: TcpRingOptions, ic: IcResp, dg: Digests, slots: number, rd: SocketReadiness | null, waiter: SocketWaiter, libc: Libc) {
    this.#io = io;
    this.#readiness = rd;
    this.waiter = waiter;
    this.#parser = parser;
    this.#mem = opts.memory;
    this.#where = `${opts.host}:${opts.port}`;
    this.qid = opts.qid;
    this.depth = opts.depth;
    this.icResp = ic;
    this.digests = dg;
    this.inCapsuleMax = opts.inCapsuleMax ?? ADMIN_IN_CAPSULE;
    this.maxTransfer = opts.maxTransfer ?? DEFAULT_TCP_MAX_TRANSFER;
    this.#h2cAlign = pdaBytes(ic.cpda);
    this.#slotIova = new Float64Array(slots);
    this.#slotLen = new Uint32Array(slots);
    this.#slotDir = new Uint8Array(slots);
    this.#slotDone = new Uint32Array(slots);
    this.#slotCid = new Int32Array(slots).fill(-1);
    this.#slotBad = new Uint8Array(slots);
    this.#cq = new Uint32Array(Math.max(slots, 1) * 2 * 4);
    this.#iov = new IoVec(libc, IOV_SEGMENTS);
    this.#libc = libc;
    this.#stageAddr = Number(libc.addressOf(this.#stage));
    // C2H data may be as large as one command; a target sends at most that in one PDU.
    parser.maxData = Math.max(this.maxTransfer, this.inCapsuleMax, 4096);
    // C2H data lands straight in the command's memory; with a data digest it is staged until the digest
    // checked out, so data that failed it never reaches the command's buffer.
    if (!dg.ddgst) parser.placeData = (hdr, n) => this.#c2hPlace(hdr, n);
  }

  /**
   * Open a TCP connection, exchange ICReq/ICResp and return the ring. Fails
   * with a ConnectionLostError (refused, closed, timed out) or a
   * ProtocolError (bad ICResp, digests other than asked).
   */
  static async connect(opts: TcpRingOptions): Promise<TcpRing> {
    if (!(opts.depth >= 2 && opts.depth <= 0x10000)) throw new InvalidArgumentError(`queue depth ${opts.depth}`);
    const want: Digests = { hdgst: !!opts.digests?.hdgst, ddgst: !!opts.digests?.ddgst };
    const timeoutMs = opts.connectTimeoutMs ?? 10_000;
    const deadline = performance.now() + timeoutMs;
    const where = `${opts.host}:${opts.port}`;
    const libc = opts.libc ?? await loadLibc();
    let sock: Socket;
    try {
      sock = await Socket.connect(await resolveHost(opts.host), opts.port, { libc, timeoutMs });
    } catch (e) {
      if (e instanceof SocketError) throw new ConnectionLostError(`${where}: ${e.message}`, { cause: e });
      throw e;
    }
    const io = new PlainStream(sock);
    let ring: TcpRing | null = null;
    try {
      let ic: IcResp | null = null;
      const parser = new PduParser({ role: "host", maxData: 4096, softDataDigest: true }, (hdr, data, ok) => {
        if (ring !== null) {
          ring.#onPdu(hdr, data, ok);
          return;
        }
        if (hdr[Ch.TYPE] !== PduType.IC_RESP) throw new ProtocolError("sequence", "expected ICResp", Fes.PDU_SEQUENCE_ERROR);
        const r = decodeIcResp(hdr);
        if (r.pfv !== PFV_1_0) throw new ProtocolError("pfv", `ICResp PFV ${r.pfv}`, Fes.INVALID_HEADER_FIELD, 8);
        if (r.hdgst !== want.hdgst || r.ddgst !== want.ddgst) {
          throw new ProtocolError("param", `digests granted (h ${r.hdgst}, d ${r.ddgst}) differ from those asked`, Fes.UNSUPPORTED_PARAMETER, 11);
        }
        if (r.maxh2cdata < MIN_MAXH2CDATA || r.maxh2cdata % 4 !== 0) {
          throw new ProtocolError("param", `ICResp MAXH2CDATA ${r.maxh2cdata}`, Fes.INVALID_HEADER_FIELD, 12);
        }
        if (r.cpda > 31) throw new ProtocolError("param", `ICResp CPDA ${r.cpda}`, Fes.INVALID_HEADER_FIELD, 10);
        parser.digests = want;
        ic = r;
      });
      io.sendAll(encodeIcReq({ hdgst: want.hdgst, ddgst: want.ddgst }));
      // Read exactly the ICResp (128 bytes): anything after it belongs to the ring's parser state.
      const icBuf = new Uint8Array(Hlen.IC);
      let got = 0, pause = 0;
      while (ic === null) {
        const n = got < Hlen.IC ? sock.recv(icBuf.subarray(got)) : AGAIN;
        if (n === 0) throw new ConnectionLostError(`${where}: connection closed before ICResp`);
        if (n > 0) {
          got += n;
          if (got === Hlen.IC) parser.feed(icBuf);
          continue;
        }
        if (performance.now() >= deadline) throw new ConnectionLostError(`${where}: no ICResp within ${timeoutMs} ms`);
        await new Promise((r) => setTimeout(r, pause));
        pause = Math.min(pause * 2 + 1, 10);
      }
      const rd = opts.readiness ?? null;
      const waiter = opts.waiter ?? new SocketWaiter();
      waiter.spinPolls = opts.spinPolls ?? (opts.qid === 0 ? 0 : DEFAULT_SOCKET_SPIN_POLLS);
      ring = new TcpRing(io, parser, opts, ic, want, opts.depth - 1, rd, waiter, libc);
      ring.#irq = rd ? rd.attach(sock.fd) : null;
      waiter.bind(sock, ring.#irq, ring.#probe);
      return ring;
    } catch (e) {
      io.close();
      if (e instanceof SocketError) throw new ConnectionLostError(`${where}: ${e.message}`, { cause: e });
      throw e;
    }
  }

  /** The waiter's spin: read what arrived (send what waits); true once the pump has something to reap. */
  readonly #probe = (): boolean => {
    if (this.#lost === null) {
      if (this.#iov.pending > 0) this.#send();
      this.#pull();
    }
    return this.#cqCount > 0 || this.#lost !== null;
  };

  /** The error that ended the connection, or null while it is up. */
  get lost(): NvmeError | null {
    return this.#lost;
  }

  entry(): Uint32Array {
    return this.#sqe;
  }

  setData(_e: Uint32Array, slot: number, iova: number, len: number): void {
    this.#pSlot = slot;
    this.#pIova = iova;
    this.#pLen = len;
  }

  clearData(_e: Uint32Array): void {
    this.#pLen = 0;
  }

  push(): void {
    const e = this.#sqe;
    // PSDT 01b on every command: no PRPs exist on TCP, and nvmet refuses anything else.
    e[0] = ((e[0] & ~0xc000) | PSDT_SGL_CDW0) >>> 0;
    const cid = e[0] >>> 16;
    const len = this.#pLen;
    this.#pLen = 0;
    if (this.#lost) return; // reap fails it
    let inCapsule = 0;
    if (len === 0) {
      setSglTransport(e, 0);
    } else {
      const slot = this.#pSlot;
      const dir = dataDirection(e[0], e[1]) === DIR_C2H ? DIR_C2H : DIR_H2C;
      this.#slotIova[slot] = this.#pIova;
      this.#slotLen[slot] = len;
      this.#slotDir[slot] = dir;
      this.#slotDone[slot] = 0;
      this.#slotCid[slot] = cid;
      this.#slotBad[slot] = 0;
      this.#cidSlot[cid] = slot + 1;
      // Fabrics commands (Connect's 1024 bytes) ride in-capsule up to 8 KiB on any queue, as Linux sends them.
      const capMax = (e[0] & 0xff) === FABRICS_OPCODE ? Math.max(this.inCapsuleMax, ADMIN_IN_CAPSULE) : this.inCapsuleMax;
      if (dir === DIR_H2C && len <= capMax) {
        inCapsule = len;
        setSglInCapsule(e, len);
        this.counters.inCapsule++;
      } else setSglTransport(e, len);
    }
    const need = Hlen.CAPSULE_CMD + 2 * DIGEST_SIZE + inCapsule;
    if (this.#staged + need > this.#stage.length) this.#newStage(need);
    const at = this.#staged, b = this.#stage;
    const l = writeCapsuleCmd(b, e, inCapsule, this.digests, at, this.#layout);
    if (inCapsule > 0) {
      const mem = this.#mem.bytesAt(this.#pIova);
      const off = iovaOffset(this.#pIova);
      if (mem === null || off + inCapsule > mem.length) {
        this.#fatal(new InvalidArgumentError(`command data at IOVA 0x${this.#pIova.toString(16)} is not TCP memory`));
        return;
      }
      this.#staged = at + sealPdu(b, l, mem.subarray(off, off + inCapsule), at);
    } else this.#staged = at + sealPdu(b, l, null, at);
    this.counters.pdusOut++;
  }

  flush(): boolean {
    if (this.#lost) return false;
    if (this.#staged === this.#queued && this.#iov.pending === 0) return false;
    this.#queueStage();
    this.#send();
    this.#flushes++;
    return true;
  }

  /** Capsule batches handed to the socket. */
  get flushes(): number {
    return this.#flushes;
  }

  /** Bytes handed to {@link flush} that the kernel has not taken yet (its send buffer was full). */
  get sendPending(): number {
    return this.#iov.pending + this.#staged - this.#queued;
  }

  reap(sink: CompletionSink): number {
    if (this.#lost === null) {
      if (this.#iov.pending > 0) this.#send();
      this.#pull();
    }
    if (this.#lost !== null) {
      if (sink.active > 0 || this.#cqCount > 0) {
        this.#cqCount = 0;
        sink.failAll(this.#lost, true); // the connection is gone: nothing can write the commands' memory now
      }
      return 0;
    }
    let n = 0;
    const cq = this.#cq, cap = cq.length >> 2;
    while (this.#cqCount > 0) {
      const i = this.#cqHead << 2;
      if (++this.#cqHead === cap) this.#cqHead = 0;
      this.#cqCount--;
      n++;
      sink.complete(cq[i], cq[i + 1], cq[i + 2], cq[i + 3], this.qid);
    }
    return n;
  }

  reset(): void {
    // A TCP queue is rebuilt by reconnecting, not by zeroing rings.
    this.#staged = this.#queued = 0;
    this.#iov.clear();
    this.#cqCount = 0;
  }

  close(): void {
    if (this.#lost === null) this.#lost = new ConnectionLostError(`queue ${this.qid}: closed`);
    this.#release();
  }

  /** Tell the target we end the connection for `fes`/`fei` (H2CTermReq with `header`), then close. */
  terminate(fes: number, fei: number, header: Uint8Array = new Uint8Array(0)): void {
    if (this.#lost === null) {
      this.#sendTerm(fes, fei, header);
      this.#fatal(new ProtocolError("term", `host terminated the connection (FES ${fes})`, fes, fei));
    }
  }

  /** The socket's fd (diagnostics), -1 once closed. */
  get fd(): number {
    return this.#io.socket.fd;
  }

  /** Let go of the socket, its hub slot and the IoVec's mapping, once. */
  #release(): void {
    if (this.#closed) return;
    this.#closed = true;
    // This connection's registration, even if the waiter has moved on to a newer connection.
    if (this.#irq !== null && this.#readiness !== null) this.#readiness.detach(this.#irq);
    this.waiter.wake();
    this.#io.close();
    this.#iov.close();
  }

  #sendTerm(fes: number, fei: number, header: Uint8Array): void {
    try {
      // Behind whatever is queued: the TermReq must not cut a PDU in half.
      this.#queueStage();
      for (let i = 0; i < 100 && this.#iov.pending > 0; i++) {
        if (this.#io.sendmsg(this.#iov) === AGAIN) this.#io.socket.waitWritable(10);
      }
      if (this.#iov.pending === 0) this.#io.sendAll(encodeTermReq(PduType.H2C_TERM_REQ, { fes, fei, header }));
    } catch { /* the socket is already failing */ }
  }

  /** Queue the staged bytes not yet queued as one segment. */
  #queueStage(): void {
    if (this.#staged === this.#queued) return;
    if (!this.#iov.hasRoom()) this.#send();
    if (!this.#iov.hasRoom()) {
      this.#fatal(new ConnectionLostError(`${this.#where}: send queue full (${IOV_SEGMENTS} segments unsent)`));
      return;
    }
    // The stage is far larger than 64 bytes: its memory never moves, and the IoVec holds it until sent.
    this.#iov.pushRange(this.#stage, this.#stageAddr, this.#queued, this.#staged);
    this.#queued = this.#staged;
  }

  /** sendmsg what is queued; whatever the kernel cannot take yet waits for the next poll. */
  #send(): void {
    const iov = this.#iov;
    try {
      while (iov.pending > 0) {
        if (this.#io.sendmsg(iov) === AGAIN) {
          this.counters.sendAgain++;
          return;
        }
      }
    } catch (e) {
      this.#fatal(this.#lostFrom(e));
      return;
    }
    // All sent: the stage is free again from its start.
    if (this.#staged === this.#queued) this.#staged = this.#queued = 0;
  }

  /** Room for `need` more stage bytes: a new stage when the unsent part of this one must stay put. */
  #newStage(need: number): void {
    this.#queueStage();
    this.#send();
    if (this.#staged === 0 && need <= this.#stage.length) return;
    // Segments still queued keep the old stage alive until the kernel took them.
    this.#stage = new Uint8Array(Math.max(need * 2, this.#stage.length * (need > this.#stage.length / 2 ? 2 : 1)));
    this.#stageAddr = Number(this.#libc.addressOf(this.#stage));
    this.#staged = this.#queued = 0;
  }

  /** Nonblocking reads until the socket is empty (bounded per poll); each chunk goes through the parser. */
  #pull(): void {
    const p = this.#parser, io = this.#io, rx = this.#rx;
    try {
      for (let k = 0; k < READS_PER_POLL; k++) {
        const direct = p.dataPending;
        if (direct >= DIRECT_MIN) {
          // The rest of a C2HData's data: straight into the read's memory.
          const n = io.recv(p.dataWindow());
          if (n === AGAIN) return;
          if (n === 0) throw new ConnectionLostError(`${this.#where}: connection closed`);
          this.counters.directBytes += n;
          p.dataReceived(n);
          continue;
        }
        const n = io.recv(rx);
        if (n === AGAIN) return;
        if (n === 0) throw new ConnectionLostError(`${this.#where}: connection closed`);
        p.feed(rx, n);
        if (n < rx.length && p.dataPending < DIRECT_MIN) return; // drained
      }
    } catch (e) {
      this.#fatal(this.#lostFrom(e));
    }
  }

  #lostFrom(e: unknown): NvmeError {
    if (e instanceof ProtocolError || e instanceof ConnectionLostError) return e;
    if (e instanceof SocketError) return new ConnectionLostError(`${this.#where}: ${e.message}`, { cause: e });
    return new ProtocolError("sequence", `PDU handling failed: ${e}`);
  }

  #fatal(err: NvmeError): void {
    if (this.#lost !== null) return;
    this.#lost = err;
    if (err instanceof ProtocolError && err.fes !== 0 && err.reason !== "term" && !this.#closed) {
      // The peer broke the protocol: say why before closing (TermReq never carries digests).
      this.#sendTerm(err.fes, err.fei, this.#parser.header);
    }
    this.#release();
    this.onLost?.(err);
  }

  #onPdu(hdr: Uint8Array, data: Uint8Array | null, ddgstOk: boolean): void {
    this.counters.pdusIn++;
    switch (hdr[Ch.TYPE]) {
      case PduType.CAPSULE_RESP: {
        const cid = get16(hdr, RespOff.CID);
        let sf = get16(hdr, RespOff.STATUS) >>> 1;
        if (sf === 0 && this.#badData(cid)) sf = SF_DATA_TRANSFER_ERROR;
        this.#cidSlot[cid] = 0;
        this.#queueCqe(cid, sf, get32(hdr, RespOff.DW0), get32(hdr, RespOff.DW1));
        return;
      }
      case PduType.C2H_DATA:
        this.#onC2hData(hdr, data!, ddgstOk);
        return;
      case PduType.R2T:
        this.#onR2t(hdr);
        return;
      case PduType.C2H_TERM_REQ: {
        const t = decodeTermReq(hdr.subarray(0, Hlen.SHORT));
        throw new ProtocolError("term", `target terminated the connection: FES ${t.fes}, FEI ${t.fei}`, 0, t.fei);
      }
      default:
        throw new ProtocolError("sequence", `unexpected PDU type 0x${hdr[Ch.TYPE].toString(16)}`, Fes.PDU_SEQUENCE_ERROR);
    }
  }

  #queueCqe(cid: number, sf: number, dw0: number, dw1: number): void {
    const cq = this.#cq, cap = cq.length >> 2;
    if (this.#cqCount === cap) throw new ProtocolError("sequence", "more completions than commands", Fes.PDU_SEQUENCE_ERROR);
    const i = ((this.#cqHead + this.#cqCount) % cap) << 2;
    cq[i] = cid;
    cq[i + 1] = sf;
    cq[i + 2] = dw0;
    cq[i + 3] = dw1;
    this.#cqCount++;
  }

  #slotFor(cid: number, dir: number, what: string): number {
    const s = this.#cidSlot[cid] - 1;
    // The slot must still carry this cid: data for an earlier command in the slot never lands in a later one's memory.
    if (s < 0 || this.#slotCid[s] !== cid || this.#slotDir[s] !== dir) {
      throw new ProtocolError("sequence", `${what} for command ${cid}, which has no such transfer`, Fes.INVALID_HEADER_FIELD, DataOff.CCCID);
    }
    return s;
  }

  /** True if command `cid` received data with a wrong digest. */
  #badData(cid: number): boolean {
    const s = this.#cidSlot[cid] - 1;
    return s >= 0 && this.#slotCid[s] === cid && this.#slotBad[s] === 1;
  }

  /** Slot of the C2HData in `hdr` carrying `n` bytes, checked against the command's read. */
  #c2hSlot(hdr: Uint8Array, n: number): number {
    const cid = get16(hdr, DataOff.CCCID);
    const s = this.#slotFor(cid, DIR_C2H, "C2HData");
    const datao = get32(hdr, DataOff.DATAO);
    if (datao !== this.#slotDone[s] || datao + n > this.#slotLen[s]) {
      throw new ProtocolError("range", `C2HData at ${datao}+${n} for a ${this.#slotLen[s]}-byte read (${this.#slotDone[s]} received)`, Fes.DATA_OUT_OF_RANGE);
    }
    return s;
  }

  /** The parser's {@link DataPlacer}: where in the read's memory a C2HData's data goes. */
  #c2hPlace(hdr: Uint8Array, n: number): Uint8Array | null {
    if (hdr[Ch.TYPE] !== PduType.C2H_DATA) return null;
    const s = this.#c2hSlot(hdr, n);
    const iova = this.#slotIova[s];
    const mem = this.#mem.bytesAt(iova);
    if (mem === null) throw new ConnectionLostError(`read buffer of command ${get16(hdr, DataOff.CCCID)} was freed`);
    // The memory whole and the offset: no view per PDU (the parser hands `mem` back to #onC2hData).
    this.#parser.placeAt = iovaOffset(iova) + get32(hdr, DataOff.DATAO);
    return mem;
  }

  #onC2hData(hdr: Uint8Array, data: Uint8Array, ddgstOk: boolean): void {
    // Placed by #c2hPlace: `data` is the read's whole memory and the data already lies in it.
    const placed = this.#parser.placeAt >= 0;
    const cid = get16(hdr, DataOff.CCCID), n = placed ? this.#parser.dataLength : data.length;
    const s = this.#c2hSlot(hdr, n);
    const datao = get32(hdr, DataOff.DATAO);
    const iova = this.#slotIova[s];
    const mem = this.#mem.bytesAt(iova);
    if (mem === null) throw new ConnectionLostError(`read buffer of command ${cid} was freed`);
    const at = iovaOffset(iova) + datao;
    // Data that failed its digest is not copied; the command fails with Data Transfer Error, as on Linux.
    if (!ddgstOk) this.#slotBad[s] = 1;
    else if (!placed) mem.set(data, at);
    this.#slotDone[s] = datao + n;
    this.counters.c2hData++;
    const flags = hdr[Ch.FLAGS];
    if (flags & PduFlag.SUCCESS) {
      if (datao + n !== this.#slotLen[s]) throw new ProtocolError("sequence", "C2HData SUCCESS before all data", Fes.PDU_SEQUENCE_ERROR);
      const sf = this.#slotBad[s] ? SF_DATA_TRANSFER_ERROR : 0;
      this.#cidSlot[cid] = 0;
      this.#queueCqe(cid, sf, 0, 0); // no CapsuleResp follows
    }
  }

  #onR2t(hdr: Uint8Array): void {
    const cid = get16(hdr, R2tOff.CCCID);
    const s = this.#slotFor(cid, DIR_H2C, "R2T");
    const ttag = get16(hdr, R2tOff.TTAG), r2to = get32(hdr, R2tOff.R2TO), r2tl = get32(hdr, R2tOff.R2TL);
    if (r2tl === 0 || r2to + r2tl > this.#slotLen[s] || r2to < this.#slotDone[s]) {
      throw new ProtocolError("range", `R2T ${r2to}+${r2tl} for a ${this.#slotLen[s]}-byte write`, Fes.DATA_OUT_OF_RANGE);
    }
    this.counters.r2t++;
    const iova = this.#slotIova[s];
    const mem = this.#mem.bytesAt(iova);
    if (mem === null) throw new ConnectionLostError(`write buffer of command ${cid} was freed`);
    const base = iovaOffset(iova);
    const max = this.#parserMaxH2c();
    const dg = this.digests;
    // Behind the capsules staged so far, in one sendmsg batch: header (stage), data (the command's
    // memory, no copy: it stays busy until the completion, which follows the target's receipt), digest.
    for (let o = r2to; o < r2to + r2tl;) {
      const n = Math.min(max, r2to + r2tl - o);
      const last = o + n === r2to + r2tl;
      const room = Hlen.SHORT + DIGEST_SIZE + this.#h2cAlign + DIGEST_SIZE;
      if (this.#staged + room > this.#stage.length) this.#newStage(room);
      if (!this.#iov.hasRoom(3)) this.#send();
      if (!this.#iov.hasRoom(3)) throw new ConnectionLostError(`${this.#where}: send queue full (${IOV_SEGMENTS} segments unsent)`);
      const at = this.#staged, st = this.#stage;
      const l = writeDataPdu(st.subarray(at), PduType.H2C_DATA, { cccid: cid, ttag, datao: o, datal: n, last, success: false }, dg, this.#h2cAlign);
      this.#staged = at + sealPdu(st, l, null, at);
      this.#queueStage();
      const view = mem.subarray(base + o, base + o + n);
      this.#iov.push(view);
      if (l.flags & PduFlag.DDGST) {
        const d = this.#staged;
        put32(st, d, crc32c(view));
        this.#staged = d + DIGEST_SIZE;
        this.#queueStage();
      }
      this.counters.pdusOut++;
      o += n;
    }
    this.#slotDone[s] = r2to + r2tl;
    this.#send();
  }

  #parserMaxH2c(): number {
    return Math.min(this.icResp.maxh2cdata, 0x7fff_ffff);
  }
}
