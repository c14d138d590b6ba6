/**
 * TCP sockets over libc through lib/ffi: nonblocking, owned by the driver,
 * usable from any thread. An fd is a process-wide integer: {@link Socket.release}
 * it on one thread, post the number, {@link Socket.adopt} it in a Worker
 * (which loads its own libc). errno is read right after the failing call, on
 * the calling thread, and surfaces as a {@link SocketError}.
 * @module
 */
import { type Libc, loadLibc, POLLERR, POLLHUP, POLLIN, POLLOUT } from "../ffi/mod.ts";
import { Errno, errnoName } from "../ffi/errno.ts";
import { DeviceClosedError, SyscallError } from "../nvme/errors.ts";
import { AF_INET, AF_INET6, decodeSockAddr, encodeSockAddr, SOCKADDR_STORAGE, type SockAddr } from "./addr.ts";
import type { IoVec } from "./iovec.ts";

/** socket(2) type: stream. */
export const SOCK_STREAM: number = 1;
/** socket(2)/accept4(2) flag: nonblocking. */
export const SOCK_NONBLOCK: number = 0x800;
/** socket(2)/accept4(2) flag: close on exec. */
export const SOCK_CLOEXEC: number = 0x80000;
/** Option level SOL_SOCKET. */
export const SOL_SOCKET: number = 1;
/** Option level IPPROTO_TCP. */
export const IPPROTO_TCP: number = 6;
/** Option level IPPROTO_IPV6. */
export const IPPROTO_IPV6: number = 41;
/** SOL_SOCKET option: reuse a local address in TIME_WAIT. */
export const SO_REUSEADDR: number = 2;
/** SOL_SOCKET option: pending error (read after a nonblocking connect). */
export const SO_ERROR: number = 4;
/** SOL_SOCKET option: send buffer size. */
export const SO_SNDBUF: number = 7;
/** SOL_SOCKET option: receive buffer size. */
export const SO_RCVBUF: number = 8;
/** IPPROTO_TCP option: no Nagle delay. */
export const TCP_NODELAY: number = 1;
/** IPPROTO_IPV6 option: an IPv6 listener takes no IPv4-mapped peers. */
export const IPV6_V6ONLY: number = 26;
/** recv flag: look at the data without taking it. */
export const MSG_PEEK: number = 0x2;
/** send flag: no SIGPIPE on a closed peer (EPIPE instead). */
export const MSG_NOSIGNAL: number = 0x4000;
/** shutdown(2): stop reading. */
export const SHUT_RD: number = 0;
/** shutdown(2): stop writing (the peer reads end of stream). */
export const SHUT_WR: number = 1;
/** shutdown(2): both; wakes every thread waiting to read this socket. */
export const SHUT_RDWR: number = 2;
/** What {@link Socket.recv} / {@link Socket.send} return when the call would block (EAGAIN). */
export const AGAIN: -1 = -1;

/**
 * A socket call failed. `errnoName` is the errno's name ("ECONNRESET"); `peerGone`
 * is true for the errors that mean the connection is over (reset, broken
 * pipe, refused, timed out, aborted, not connected).
 */
export class SocketError extends SyscallError {
  /** The call that failed ("connect", "recv", ...). */
  readonly call: string;
  /** errno's symbolic name. */
  readonly errnoName: string;
  /** Create for a call and its errno. */
  constructor(call: string, errno: number) {
    super(call, errno, errnoName(errno));
    this.name = "SocketError";
    this.call = call;
    this.errnoName = errnoName(errno);
  }
  /** True when the connection is over (the peer reset, refused or vanished). */
  get peerGone(): boolean {
    const e = this.errno;
    return e === Errno.ECONNRESET || e === Errno.EPIPE || e === Errno.ECONNREFUSED || e === Errno.ETIMEDOUT ||
      e === Errno.ECONNABORTED || e === Errno.ENOTCONN;
  }
}

/** Options of {@link Socket.connect}. */
export interface ConnectOptions {
  /** libc to use (default: this runtime's). */
  libc?: Libc;
  /** Give up after this many ms (default 10 000): SocketError ETIMEDOUT. */
  timeoutMs?: number;
  /** TCP_NODELAY (default true: NVMe/TCP PDUs must not wait for Nagle). */
  noDelay?: boolean;
  /** SO_RCVBUF in bytes (default: the kernel's autotuning). */
  recvBuffer?: number;
  /** SO_SNDBUF in bytes (default: the kernel's autotuning). */
  sendBuffer?: number;
}

/** Options of {@link Listener.listen}. */
export interface ListenOptions {
  /** libc to use (default: this runtime's). */
  libc?: Libc;
  /** Address literal to bind (default "127.0.0.1"; "::" for every IPv6 and, unless v6Only, IPv4 address). */
  host?: string;
  /** Port (default 0: the kernel picks one; read it back from {@link Listener.port}). */
  port?: number;
  /** listen(2) backlog (default 128). */
  backlog?: number;
  /** IPV6_V6ONLY on an IPv6 listener (default false). */
  v6Only?: boolean;
}

const i32buf = (v: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setInt32(0, v, true);
  return b;
};

function fail(libc: Libc, call: string): never {
  throw new SocketError(call, libc.errno());
}

function newSocket(libc: Libc, family: number): number {
  const fd = libc.socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) fail(libc, "socket");
  return fd;
}

function sockName(libc: Libc, fd: number, peer: boolean): SockAddr {
  const addr = new Uint8Array(SOCKADDR_STORAGE);
  const len = i32buf(SOCKADDR_STORAGE);
  const r = peer ? libc.getpeername(fd, addr, len) : libc.getsockname(fd, addr, len);
  if (r !== 0) fail(libc, peer ? "getpeername" : "getsockname");
  return decodeSockAddr(addr);
}

/** poll(2) one fd for `events`; returns the revents (0 on timeout). Blocks this thread up to `timeoutMs` (-1: forever). */
function pollOne(libc: Libc, fd: number, events: number, timeoutMs: number, pfd: Uint8Array, v: DataView): number {
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  v.setInt16(6, 0, true);
  for (;;) {
    const r = libc.poll(pfd, 1, timeoutMs);
    if (r >= 0) return r === 0 ? 0 : v.getInt16(6, true) & 0xffff;
    const e = libc.errno();
    if (e !== Errno.EINTR) throw new SocketError("poll", e);
  }
}

/**
 * One connected TCP socket, nonblocking. {@link recv}, {@link send} and
 * {@link sendmsg} never block and never allocate: they return {@link AGAIN}
 * when the kernel has nothing to give or no room, and throw
 * {@link SocketError} on a real error. The typed arrays passed in are held by
 * the call until it returns (the FFI `buffer` parameter), so no address
 * outlives its memory.
 *
 * @example Ping-pong on loopback
 * ```ts
 * import { Listener, Socket } from "@tsnvme/tsnvme/sock";
 * const l = await Listener.listen({ port: 0 });
 * const c = await Socket.connect("127.0.0.1", l.port);
 * let s = l.accept();
 * while (s === null) { await new Promise((r) => setTimeout(r, 1)); s = l.accept(); }
 * c.send(new TextEncoder().encode("ping"));
 * const buf = new Uint8Array(4);
 * s.waitReadable(1000);
 * console.log(new TextDecoder().decode(buf.subarray(0, s.recv(buf)))); // "ping"
 * c.close(); s.close(); l.close();
 * ```
 */
export class Socket {
  /** The libc this socket's calls go through (this thread's). */
  readonly libc: Libc;
  #fd: number;
  readonly #pfd = new Uint8Array(8);
  /** Over #pfd, made once: a zero-timeout poll may run once per spin of a pump. */
  readonly #pv = new DataView(this.#pfd.buffer);

  private constructor(libc: Libc, fd: number) {
    this.libc = libc;
    this.#fd = fd;
  }

  /** The fd (-1 once closed or released). */
  get fd(): number {
    return this.#fd;
  }

  /**
   * Connect to `host` (an IPv4/IPv6 literal or "localhost") at `port`.
   * Nonblocking connect, then a wait for completion bounded by `timeoutMs`
   * that yields to the event loop between checks.
   */
  static async connect(host: string, port: number, opts: ConnectOptions = {}): Promise<Socket> {
    const libc = opts.libc ?? await loadLibc();
    const addr = encodeSockAddr(host, port);
    const fd = newSocket(libc, addr.length === 16 ? AF_INET : AF_INET6);
    const s = new Socket(libc, fd);
    try {
      if (opts.noDelay ?? true) s.setNoDelay(true);
      if (opts.recvBuffer) s.setBufferSizes({ recv: opts.recvBuffer });
      if (opts.sendBuffer) s.setBufferSizes({ send: opts.sendBuffer });
      if (libc.connect(fd, addr, addr.length) !== 0) {
        const e = libc.errno();
        if (e !== Errno.EINPROGRESS && e !== Errno.EINTR) throw new SocketError("connect", e);
        const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
        let pause = 0;
        while (pollOne(libc, fd, POLLOUT, 0, s.#pfd, s.#pv) === 0) {
          if (Date.now() >= deadline) throw new SocketError("connect", Errno.ETIMEDOUT);
          await new Promise((r) => setTimeout(r, pause));
          pause = Math.min(pause * 2 + 1, 20);
        }
        const err = s.getIntOption(SOL_SOCKET, SO_ERROR);
        if (err !== 0) throw new SocketError("connect", err);
      }
      return s;
    } catch (e) {
      s.close();
      throw e;
    }
  }

  /** Own an fd received from another thread (a connected, nonblocking stream socket), with this thread's libc. */
  static adopt(libc: Libc, fd: number): Socket {
    if (!Number.isInteger(fd) || fd < 0) throw new SocketError("adopt", Errno.EBADF);
    return new Socket(libc, fd);
  }

  /** Stop owning the fd and return it (to post to a Worker, which {@link adopt}s it). This object is then closed. */
  release(): number {
    const fd = this.#fd;
    if (fd < 0) throw new DeviceClosedError("socket is closed");
    this.#fd = -1;
    return fd;
  }

  /**
   * Read into all of `buf`: the bytes read (> 0), 0 at end of stream, or
   * {@link AGAIN}. Throws {@link SocketError} (e.g. ECONNRESET).
   */
  recv(buf: Uint8Array, flags = 0): number {
    const n = this.libc.recv(this.#fd, buf, flags);
    if (n >= 0) return n;
    const e = this.libc.errno();
    if (e === Errno.EAGAIN || e === Errno.EINTR) return AGAIN;
    throw new SocketError("recv", e);
  }

  /** {@link recv} with MSG_PEEK: the bytes stay queued (e.g. read a Connect capsule's QID before handing the fd on). */
  peek(buf: Uint8Array): number {
    return this.recv(buf, MSG_PEEK);
  }

  /** Send from `buf`: the bytes the kernel took (maybe fewer than all) or {@link AGAIN}. Never raises SIGPIPE. */
  send(buf: Uint8Array): number {
    const n = this.libc.send(this.#fd, buf, MSG_NOSIGNAL);
    if (n >= 0) return n;
    const e = this.libc.errno();
    if (e === Errno.EAGAIN || e === Errno.EINTR) return AGAIN;
    throw new SocketError("send", e);
  }

  /**
   * One sendmsg of `iov`'s unsent segments. The bytes the kernel took are
   * consumed from `iov`; returns their count or {@link AGAIN}. Loop (after
   * {@link waitWritable} or another pump pass) while `iov.pending > 0`.
   */
  sendmsg(iov: IoVec): number {
    if (iov.pending === 0) return 0;
    const n = this.libc.sendmsg(this.#fd, iov.msghdr(), MSG_NOSIGNAL);
    if (n >= 0) {
      iov.consume(n);
      return n;
    }
    const e = this.libc.errno();
    if (e === Errno.EAGAIN || e === Errno.EINTR) return AGAIN;
    throw new SocketError("sendmsg", e);
  }

  /** Block this thread until readable (data, end of stream or error) or `timeoutMs` (-1: forever). True if readable. */
  waitReadable(timeoutMs: number): boolean {
    return pollOne(this.libc, this.#fd, POLLIN, timeoutMs, this.#pfd, this.#pv) !== 0;
  }

  /** Block this thread until the send buffer has room (or an error) or `timeoutMs`. True if writable. */
  waitWritable(timeoutMs: number): boolean {
    return (pollOne(this.libc, this.#fd, POLLOUT, timeoutMs, this.#pfd, this.#pv) & (POLLOUT | POLLERR | POLLHUP)) !== 0;
  }

  /** Set or clear TCP_NODELAY. */
  setNoDelay(on: boolean): void {
    this.setIntOption(IPPROTO_TCP, TCP_NODELAY, on ? 1 : 0);
  }

  /** Set SO_RCVBUF and/or SO_SNDBUF (bytes; the kernel doubles and caps them). */
  setBufferSizes(sizes: { recv?: number; send?: number }): void {
    if (sizes.recv !== undefined) this.setIntOption(SOL_SOCKET, SO_RCVBUF, sizes.recv);
    if (sizes.send !== undefined) this.setIntOption(SOL_SOCKET, SO_SNDBUF, sizes.send);
  }

  /** setsockopt(2) with an int value. */
  setIntOption(level: number, name: number, value: number): void {
    if (this.libc.setsockopt(this.#fd, level, name, i32buf(value)) !== 0) fail(this.libc, "setsockopt");
  }

  /** getsockopt(2) of an int value. */
  getIntOption(level: number, name: number): number {
    const v = i32buf(0), len = i32buf(4);
    if (this.libc.getsockopt(this.#fd, level, name, v, len) !== 0) fail(this.libc, "getsockopt");
    return new DataView(v.buffer).getInt32(0, true);
  }

  /** This end's address. */
  localAddress(): SockAddr {
    return sockName(this.libc, this.#fd, false);
  }

  /** The peer's address. */
  remoteAddress(): SockAddr {
    return sockName(this.libc, this.#fd, true);
  }

  /**
   * shutdown(2). Safe from any thread that knows the fd: a reader blocked in
   * {@link waitReadable} (or poll/epoll) wakes and reads end of stream. Errors
   * on an already dead connection are ignored.
   */
  shutdown(how = SHUT_RDWR): void {
    if (this.#fd >= 0) shutdownFd(this.libc, this.#fd, how);
  }

  /** close(2) the fd (exactly once: fd numbers are reused). Idempotent. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    this.libc.close(fd);
  }
}

/** shutdown(2) by fd number, from any thread (ENOTCONN ignored: already down). */
export function shutdownFd(libc: Libc, fd: number, how = SHUT_RDWR): void {
  if (libc.shutdown(fd, how) !== 0) {
    const e = libc.errno();
    if (e !== Errno.ENOTCONN) throw new SocketError("shutdown", e);
  }
}

/**
 * A listening TCP socket, nonblocking. {@link accept} returns the next
 * connection or null; wait for one with {@link waitAcceptable} (blocks this
 * thread) or by polling between event-loop turns.
 */
export class Listener {
  /** The libc this listener's calls go through. */
  readonly libc: Libc;
  /** The bound address; its port is the kernel's pick when 0 was asked. */
  readonly address: SockAddr;
  #fd: number;
  readonly #peer = new Uint8Array(SOCKADDR_STORAGE);
  readonly #peerLen = new Uint8Array(4);
  readonly #pfd = new Uint8Array(8);
  /** Over #pfd, made once: a zero-timeout poll may run once per spin of a pump. */
  readonly #pv = new DataView(this.#pfd.buffer);

  private constructor(libc: Libc, fd: number, address: SockAddr) {
    this.libc = libc;
    this.#fd = fd;
    this.address = address;
  }

  /** The listening fd (-1 once closed). */
  get fd(): number {
    return this.#fd;
  }

  /** The bound port. */
  get port(): number {
    return this.address.port;
  }

  /** socket, SO_REUSEADDR, bind, listen; reads the bound address back (port 0 → the kernel's pick). */
  static async listen(opts: ListenOptions = {}): Promise<Listener> {
    const libc = opts.libc ?? await loadLibc();
    const addr = encodeSockAddr(opts.host ?? "127.0.0.1", opts.port ?? 0);
    const v6 = addr.length !== 16;
    const fd = newSocket(libc, v6 ? AF_INET6 : AF_INET);
    try {
      if (libc.setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, i32buf(1)) !== 0) fail(libc, "setsockopt");
      if (v6 && libc.setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, i32buf(opts.v6Only ? 1 : 0)) !== 0) {
        fail(libc, "setsockopt");
      }
      if (libc.bind(fd, addr, addr.length) !== 0) fail(libc, "bind");
      if (libc.listen(fd, opts.backlog ?? 128) !== 0) fail(libc, "listen");
      return new Listener(libc, fd, sockName(libc, fd, false));
    } catch (e) {
      libc.close(fd);
      throw e;
    }
  }

  /** The next pending connection (nonblocking, close-on-exec), or null if none is waiting. */
  accept(opts: { noDelay?: boolean } = {}): Socket | null {
    new DataView(this.#peerLen.buffer).setInt32(0, SOCKADDR_STORAGE, true);
    const fd = this.libc.accept4(this.#fd, this.#peer, this.#peerLen, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) {
      const e = this.libc.errno();
      // ECONNABORTED: a peer gave up while queued; nothing to accept now.
      if (e === Errno.EAGAIN || e === Errno.EINTR || e === Errno.ECONNABORTED) return null;
      throw new SocketError("accept4", e);
    }
    const s = Socket.adopt(this.libc, fd);
    try {
      if (opts.noDelay ?? true) s.setNoDelay(true);
    } catch (e) {
      s.close();
      throw e;
    }
    return s;
  }

  /** Block this thread until a connection is pending or `timeoutMs` (-1: forever); true if one is. Also wakes on {@link close} from another thread's shutdown. */
  waitAcceptable(timeoutMs: number): boolean {
    return pollOne(this.libc, this.#fd, POLLIN, timeoutMs, this.#pfd, this.#pv) !== 0;
  }

  /** Wait (yielding to the event loop) for the next connection, up to `timeoutMs` (default: forever); null on timeout or close. */
  async acceptAsync(timeoutMs = Infinity): Promise<Socket | null> {
    const deadline = Date.now() + timeoutMs;
    let pause = 0;
    for (;;) {
      if (this.#fd < 0) return null;
      const s = this.accept();
      if (s !== null) return s;
      if (Date.now() >= deadline) return null;
      await new Promise((r) => setTimeout(r, pause));
      pause = Math.min(pause * 2 + 1, 10);
    }
  }

  /** Close the listening fd. Idempotent. */
  close(): void {
    const fd = this.#fd;
    if (fd < 0) return;
    this.#fd = -1;
    // shutdown wakes a thread blocked in waitAcceptable on this fd before the number can be reused.
    this.libc.shutdown(fd, SHUT_RDWR);
    this.libc.close(fd);
  }
}
