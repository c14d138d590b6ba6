/**
 * The target's byte path on sockets the driver owns (lib/sock): a
 * {@link SockWire} per connection (nonblocking recv into one reused buffer,
 * fed to the connection's PDU parser; sends that keep what the kernel did
 * not take) and a {@link PollGroup} that serves a set of them with one
 * poll(2) per pass, as SPDK's socket groups do. The group runs in whichever
 * thread owns it: the listener's (admin and discovery queues) or a target
 * Worker's (IO queues); nothing here touches another thread. This is the one
 * place received and sent bytes pass through (TLS would sit here). A
 * {@link GroupSleep} lets a thread that must keep its event loop (the
 * listener's) sleep until one of its fds has something.
 * @module
 */
import type { Libc } from "../ffi/types.ts";
import {
  EPOLL_CLOEXEC,
  EPOLL_CTL_ADD,
  EPOLL_CTL_DEL,
  EPOLL_CTL_MOD,
  EPOLL_EVENT_SIZE,
  EPOLLET,
  EPOLLIN,
  POLLERR,
  POLLHUP,
  POLLIN,
  POLLOUT,
} from "../ffi/types.ts";
import { IrqHub, type IrqWaiter } from "../irq/mod.ts";
import { AGAIN, type Socket } from "../sock/mod.ts";
import type { ConnWire, TargetConn } from "./conn.ts";
import type { TargetTrace } from "./trace.ts";

/** Bytes read per recv call (one buffer per group, reused). */
const RECV_BYTES = 256 * 1024;

/** One connection's socket under a {@link TargetConn}. */
export class SockWire implements ConnWire {
  /** The socket (owned: closed when the connection ends, unless released). */
  readonly sock: Socket;
  /** The connection fed from it (set by {@link PollGroup.add}). */
  conn: TargetConn | null = null;
  /** Bytes the kernel has not taken yet (a full send buffer): sent first at the next pass. */
  #pending: Uint8Array | null = null;
  #pendingOff = 0;
  /** The last view {@link send} made of a batch buffer. */
  #view: Uint8Array | null = null;
  #ending = false;
  #closed = false;
  /** Called once when the socket is closed (the group drops it). */
  onClosed: (() => void) | null = null;
  /** Called when output starts to wait for room (a sleeping owner must wake: only a pass sends it). */
  onBlocked: (() => void) | null = null;
  /**
   * In a target Worker: the word deciding who closes the fd (RemoteQueue.own
   * in the listener's thread); the socket is closed here only if this side
   * wins it, else the listener took it (this Worker was declared dead).
   */
  readonly #own: Int32Array | null;

  /** Wrap a connected nonblocking socket; `own`: its close word when a Worker serves it. */
  constructor(sock: Socket, own: Int32Array | null = null) {
    this.sock = sock;
    this.#own = own;
  }

  /** Output waits for room in the kernel's send buffer. */
  get blocked(): boolean {
    return this.#pending !== null;
  }

  /** True once closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Send now; what the kernel does not take is copied and sent at the next pass. Never keeps `b`. */
  send(b: Uint8Array, n: number): boolean {
    if (this.#closed) return false;
    if (this.#pending !== null) {
      this.#append(b, 0, n);
      return false;
    }
    let off = 0;
    try {
      while (off < n) {
        const k = this.sock.send(off === 0 ? this.#whole(b, n) : b.subarray(off, n));
        if (k === AGAIN) break;
        off += k;
      }
    } catch {
      this.destroy();
      return false;
    }
    if (off < n) this.#append(b, off, n);
    return false;
  }

  /** `b[0..n)`: `b` when whole, else a view kept while the batch's buffer and length repeat (a QD1 read's response is the same size every time). */
  #whole(b: Uint8Array, n: number): Uint8Array {
    if (n === b.length) return b;
    const v = this.#view;
    if (v !== null && v.buffer === b.buffer && v.byteOffset === b.byteOffset && v.length === n) return v;
    return this.#view = b.subarray(0, n);
  }

  #append(b: Uint8Array, from: number, to: number): void {
    const p = this.#pending;
    if (p === null) this.onBlocked?.();
    const have = p === null ? 0 : p.length - this.#pendingOff;
    const nb = new Uint8Array(have + to - from);
    if (p !== null) nb.set(p.subarray(this.#pendingOff));
    nb.set(b.subarray(from, to), have);
    this.#pending = nb;
    this.#pendingOff = 0;
  }

  /** Send what waited; true once nothing waits. */
  drain(): boolean {
    const p = this.#pending;
    if (p === null) return true;
    try {
      while (this.#pendingOff < p.length) {
        const k = this.sock.send(p.subarray(this.#pendingOff));
        if (k === AGAIN) return false;
        this.#pendingOff += k;
      }
    } catch {
      this.destroy();
      return true;
    }
    this.#pending = null;
    this.#pendingOff = 0;
    if (this.#ending) this.destroy();
    return true;
  }

  /** Send `last` (best effort), then close. */
  end(last: Uint8Array | null): void {
    if (this.#closed) return;
    if (last) this.send(last, last.length);
    this.#ending = true;
    if (this.#pending === null) this.destroy();
  }

  /** Close the socket now; the connection hears of it. */
  destroy(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pending = null;
    if (this.#own === null || Atomics.compareExchange(this.#own, 0, 0, 1) === 0) this.sock.close();
    else this.sock.release(); // the listener owns the number now: forget it, never close it
    this.onClosed?.();
    this.conn?.wireClosed();
  }

  /**
   * Stop serving this socket and give its fd away (to post to a Worker). The
   * connection is not told: the caller has detached it.
   */
  release(): number {
    this.#closed = true;
    this.onClosed?.();
    return this.sock.release();
  }

  /** Read what the socket has into `buf` and feed it to the connection; false at end of stream or error (then closed). */
  pump(buf: Uint8Array): boolean {
    for (let i = 0; i < 64 && !this.#closed; i++) {
      let n: number;
      try {
        n = this.sock.recv(buf);
      } catch {
        this.destroy();
        return false;
      }
      if (n === AGAIN) return true;
      if (n === 0) {
        this.destroy();
        return false;
      }
      this.conn!.feed(buf, n); // a length, not a view per read
      if (n < buf.length) return true;
    }
    return !this.#closed;
  }
}

/** An extra fd a group waits on (a wake-up eventfd), with what to do when it is readable. */
export interface PollExtra {
  /** The fd. */
  fd: number;
  /** Called when readable; it must clear the fd (read the eventfd), or the next wait ends at once. */
  onReadable(): void;
  /**
   * For an eventfd whose count nobody needs: in an epoll group it is watched
   * edge-triggered and this is called per edge instead of {@link onReadable},
   * so no read(2) clears it (one syscall fewer per wake-up).
   */
  onEdge?(): void;
}

/** What an epoll group's event names: a connection's socket or an extra fd. */
type Watched = { wire: SockWire; x: null } | { wire: null; x: PollExtra };

/**
 * Sockets served by one thread: one poll(2) over all of them per pass, reads
 * from the readable ones into one reused buffer, then every connection's
 * batch goes out. Passes are driven by the owner ({@link pass}): the
 * listener's thread between event-loop turns, a Worker in its own loop.
 */
export class PollGroup {
  readonly #libc: Libc;
  readonly #wires: SockWire[] = [];
  readonly #extra: PollExtra[] = [];
  #pfd = new Uint8Array(8 * 16);
  #pdv = new DataView(this.#pfd.buffer);
  readonly #buf = new Uint8Array(RECV_BYTES);
  /** The epoll set of an epoll group (-1: poll(2) per pass). */
  #epfd: number;
  /** An epoll group's fds and what each is. */
  readonly #watched = new Map<number, Watched>();
  /** Sockets whose output waits, watched for room too (epoll group). */
  readonly #outWatched = new Set<SockWire>();
  readonly #ev = new Uint8Array(EPOLL_EVENT_SIZE);
  readonly #evDv = new DataView(this.#ev.buffer);
  readonly #evs = new Uint8Array(EPOLL_EVENT_SIZE * 64);
  readonly #evsDv = new DataView(this.#evs.buffer);
  /** The owner's timing trace (lib/target/trace.ts), stamped when poll reports events; null: none. */
  trace: TargetTrace | null = null;

  /**
   * A group calling through `libc` (this thread's). `epoll`: its fds sit in
   * an epoll set of its own and a pass is one epoll_wait(2) (a target
   * Worker's group: nothing to build per pass, and edge-triggered extras need
   * no read); else one poll(2) over them per pass. Falls back to poll(2) when
   * no epoll set can be had.
   */
  constructor(libc: Libc, opts: { epoll?: boolean } = {}) {
    this.#libc = libc;
    this.#epfd = opts.epoll ? libc.epollCreate1(EPOLL_CLOEXEC) : -1;
  }

  /** True when passes wait in epoll_wait(2) (see the constructor). */
  get epoll(): boolean {
    return this.#epfd >= 0;
  }

  #ctl(op: number, fd: number, events: number): void {
    this.#evDv.setUint32(0, events, true);
    this.#evDv.setInt32(EPOLL_EVENT_SIZE - 8, fd, true); // data: the fd
    this.#evDv.setInt32(EPOLL_EVENT_SIZE - 4, 0, true);
    this.#libc.epollCtl(this.#epfd, op, fd, this.#ev);
  }

  /** Connections served. */
  get size(): number {
    return this.#wires.length;
  }

  /** The wires served (a copy). */
  get wires(): SockWire[] {
    return [...this.#wires];
  }

  /** The owner's sleep, if it has one: the group's sockets join its epoll set while served. */
  sleep: GroupSleep | null = null;

  /** Serve `w` for `conn` from the next pass on. */
  add(w: SockWire, conn: TargetConn): void {
    w.conn = conn;
    this.#wires.push(w);
    const fd = w.sock.fd;
    this.sleep?.add(fd);
    if (this.#epfd >= 0) {
      this.#watched.set(fd, { wire: w, x: null });
      this.#ctl(EPOLL_CTL_ADD, fd, POLLIN);
    }
    w.onBlocked = () => this.sleep?.wake();
    w.onClosed = () => {
      const i = this.#wires.indexOf(w);
      if (i >= 0) this.#wires.splice(i, 1);
      // Before a released fd goes to a Worker (else its every capsule would wake this thread).
      this.sleep?.remove(fd);
      if (this.#epfd >= 0 && this.#watched.get(fd)?.wire === w) {
        // A closed fd has left the set already (unless another thread holds the file: the listener
        // took it); the fd number may be reused at once, so it is forgotten now either way.
        this.#watched.delete(fd);
        this.#outWatched.delete(w);
        this.#ctl(EPOLL_CTL_DEL, fd, 0);
      }
    };
  }

  /** True if a connection's output waits for room in the kernel's send buffer (a pass must retry it). */
  get blocked(): boolean {
    for (const w of this.#wires) if (w.blocked) return true;
    return false;
  }

  /** Also wait on `x.fd` (e.g. a wake-up eventfd). */
  addExtra(x: PollExtra): void {
    this.#extra.push(x);
    if (this.#epfd >= 0) {
      this.#watched.set(x.fd, { wire: null, x });
      this.#ctl(EPOLL_CTL_ADD, x.fd, x.onEdge ? POLLIN | EPOLLET : POLLIN);
    }
  }

  /** Stop waiting on `fd` (added with {@link addExtra}). */
  removeExtra(fd: number): void {
    const i = this.#extra.findIndex((x) => x.fd === fd);
    if (i >= 0) this.#extra.splice(i, 1);
    if (this.#epfd >= 0 && this.#watched.get(fd)?.x) {
      this.#watched.delete(fd);
      this.#ctl(EPOLL_CTL_DEL, fd, 0);
    }
  }

  /** Close an epoll group's set (after {@link closeAll}); the group polls from then on. Idempotent. */
  close(): void {
    if (this.#epfd < 0) return;
    this.#libc.close(this.#epfd);
    this.#epfd = -1;
    this.#watched.clear();
    this.#outWatched.clear();
  }

  /**
   * One pass: poll every socket (and extra fd) for up to `timeoutMs` (0: do
   * not wait, -1: until something happens), read the readable ones, retry
   * blocked sends, flush every connection's batch. Returns the fds that had
   * events.
   */
  pass(timeoutMs: number): number {
    if (this.#epfd >= 0) return this.#epollPass(timeoutMs);
    const ws = this.#wires, xs = this.#extra, n = ws.length + xs.length;
    if (this.#pfd.length < n * 8) {
      this.#pfd = new Uint8Array(n * 16);
      this.#pdv = new DataView(this.#pfd.buffer);
    }
    const v = this.#pdv;
    for (let i = 0; i < ws.length; i++) {
      v.setInt32(i * 8, ws[i].sock.fd, true);
      v.setInt16(i * 8 + 4, ws[i].blocked ? POLLIN | POLLOUT : POLLIN, true);
      v.setInt16(i * 8 + 6, 0, true);
    }
    for (let i = 0; i < xs.length; i++) {
      const o = (ws.length + i) * 8;
      v.setInt32(o, xs[i].fd, true);
      v.setInt16(o + 4, POLLIN, true);
      v.setInt16(o + 6, 0, true);
    }
    if (n === 0) return 0;
    const r = this.#libc.poll(this.#pfd, n, timeoutMs);
    if (r <= 0) return 0;
    if (this.trace !== null) this.trace.readable(performance.now());
    // Snapshot: a connection may close (and leave the array) while being served.
    const m = ws.length;
    let served = 0;
    for (let i = 0; i < m && served < r; i++) {
      const ev = v.getInt16(i * 8 + 6, true);
      if (ev === 0) continue;
      served++;
      const w = ws[i] === undefined || ws[i].sock.fd !== v.getInt32(i * 8, true) ? this.#find(v.getInt32(i * 8, true)) : ws[i];
      if (w === null) continue;
      if (ev & POLLOUT) w.drain();
      if (ev & (POLLIN | POLLERR | POLLHUP)) w.pump(this.#buf);
    }
    for (let i = 0; i < xs.length; i++) if (v.getInt16((m + i) * 8 + 6, true) !== 0) xs[i].onReadable();
    this.flush();
    return r;
  }

  /** {@link pass} of an epoll group: one epoll_wait, then each fd it names. */
  #epollPass(timeoutMs: number): number {
    const ws = this.#wires;
    // Output waiting for room is watched for POLLOUT until it has gone (rare: a full send buffer).
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i];
      if (w.blocked !== this.#outWatched.has(w)) {
        if (w.blocked) this.#outWatched.add(w);
        else this.#outWatched.delete(w);
        this.#ctl(EPOLL_CTL_MOD, w.sock.fd, w.blocked ? POLLIN | POLLOUT : POLLIN);
      }
    }
    if (this.#watched.size === 0) return 0;
    const r = this.#libc.epollWait(this.#epfd, this.#evs, 64, timeoutMs);
    if (r <= 0) return 0;
    if (this.trace !== null) this.trace.readable(performance.now());
    const v = this.#evsDv;
    for (let i = 0; i < r; i++) {
      const ev = v.getUint32(i * EPOLL_EVENT_SIZE, true);
      // Looked up per event: an earlier one may have closed this fd (then it is no longer here).
      const it = this.#watched.get(v.getInt32(i * EPOLL_EVENT_SIZE + EPOLL_EVENT_SIZE - 8, true));
      if (it === undefined) continue;
      if (it.wire !== null) {
        if (ev & POLLOUT) it.wire.drain();
        if (ev & (POLLIN | POLLERR | POLLHUP)) it.wire.pump(this.#buf);
      } else if (it.x.onEdge) it.x.onEdge();
      else it.x.onReadable();
    }
    this.flush();
    return r;
  }

  #find(fd: number): SockWire | null {
    for (const w of this.#wires) if (w.sock.fd === fd) return w;
    return null;
  }

  /** Send every connection's batch now (after completions that came outside a pass). */
  flush(): void {
    for (const w of this.#wires) w.conn?.flush();
  }

  /** Close every socket. */
  closeAll(): void {
    for (const w of [...this.#wires]) w.conn ? w.conn.destroy() : w.destroy();
  }
}

/**
 * Sleeping until one of a set of fds is readable, for a thread that must keep
 * its event loop running meanwhile (the target's listener: timers, Worker
 * messages, a host in the same process), so it cannot block in poll(2) as a
 * Worker does. The fds sit in an epoll set of their own (level-triggered,
 * EPOLLIN; never waited on here), and that one epoll fd is watched by an
 * {@link IrqHub} helper thread (EPOLLONESHOT, re-armed by each sleep's
 * {@link arm}), which wakes this thread through a shared word. Between
 * events: no pass, no timer, no syscall.
 */
export class GroupSleep {
  /** Sleeps that ended because an fd had something (not {@link wake}). */
  wakeups = 0;
  readonly #libc: Libc;
  readonly #hub: IrqHub;
  readonly #epfd: number;
  readonly #waiter: IrqWaiter;
  readonly #ev = new Uint8Array(EPOLL_EVENT_SIZE);

  private constructor(libc: Libc, hub: IrqHub, epfd: number) {
    this.#libc = libc;
    this.#hub = hub;
    this.#epfd = epfd;
    this.#waiter = hub.addSocket(epfd);
    new DataView(this.#ev.buffer).setUint32(0, EPOLLIN, true);
  }

  /** An epoll set and its helper thread, or null when either cannot be had (the owner then naps on timers). */
  static async start(libc: Libc): Promise<GroupSleep | null> {
    const epfd = libc.epollCreate1(EPOLL_CLOEXEC);
    if (epfd < 0) return null;
    let hub: IrqHub | null = null;
    try {
      hub = await IrqHub.start({ libc, slots: 2 });
      return new GroupSleep(libc, hub, epfd);
    } catch {
      await hub?.close();
      libc.close(epfd);
      return null;
    }
  }

  /** Watch `fd` (readable, end of stream or error). */
  add(fd: number): void {
    this.#libc.epollCtl(this.#epfd, EPOLL_CTL_ADD, fd, this.#ev);
  }

  /** Stop watching `fd` (before it is closed or given away; after a close it has left the set anyway). */
  remove(fd: number): void {
    this.#libc.epollCtl(this.#epfd, EPOLL_CTL_DEL, fd, this.#ev);
  }

  /**
   * Before the last look at the fds that precedes {@link sleep}: re-arm the
   * helper's watch (it reports at once if an fd is already readable), so
   * nothing that arrives after that look is missed.
   */
  arm(): void {
    this.#waiter.arm();
  }

  /** Sleep until an fd has something (true) or {@link wake} (false). */
  async sleep(): Promise<boolean> {
    const woke = await this.#waiter.sleep();
    if (woke) this.wakeups++;
    return woke;
  }

  /** End a sleep now (the owner is closing). Any thread may call it. */
  wake(): void {
    this.#waiter.wake();
  }

  /** Stop the helper and close the epoll set. */
  async close(): Promise<void> {
    this.#waiter.wake();
    this.#hub.removeSocket(this.#waiter.word);
    await this.#hub.close();
    this.#libc.close(this.#epfd);
  }
}
