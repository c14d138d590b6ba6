/**
 * The runtime-neutral libc interface. Everything above lib/ffi talks to the
 * OS only through {@link Libc}; addresses are bigint everywhere above this layer.
 * @module
 */

/** Which runtime the backend was built for. */
export type RuntimeName = "deno" | "bun";

/** The libc calls the driver needs, with raw return values (-1 on error) and errno. */
export interface Libc {
  /** Runtime this backend runs on. */
  readonly runtime: RuntimeName;
  /** open(2). Returns the fd or -1. */
  open(path: string, flags: number): number;
  /** close(2). */
  close(fd: number): number;
  /** ioctl(2) with a pointer argument (a struct in a byte buffer). */
  ioctlPtr(fd: number, request: bigint, arg: Uint8Array): number;
  /** ioctl(2) with an integer argument (or none: pass 0). */
  ioctlInt(fd: number, request: bigint, arg: bigint): number;
  /** mmap(2). Returns the address, or -1n (MAP_FAILED). */
  mmap(addr: bigint, len: bigint, prot: number, flags: number, fd: number, offset: bigint): bigint;
  /** munmap(2). */
  munmap(addr: bigint, len: bigint): number;
  /** pread(2) into buf. */
  pread(fd: number, buf: Uint8Array, offset: bigint): number;
  /** pwrite(2) from buf. */
  pwrite(fd: number, buf: Uint8Array, offset: bigint): number;
  /** read(2) into buf. */
  read(fd: number, buf: Uint8Array): number;
  /** eventfd(2). */
  eventfd(initval: number, flags: number): number;
  /** write(2) from buf (e.g. 8 bytes to signal an eventfd). */
  write(fd: number, buf: Uint8Array): number;
  /** epoll_create1(2). */
  epollCreate1(flags: number): number;
  /** epoll_ctl(2); `event` is one struct epoll_event ({@link EPOLL_EVENT_SIZE} bytes). */
  epollCtl(epfd: number, op: number, fd: number, event: Uint8Array): number;
  /** epoll_wait(2), blocking the calling thread (helper Workers only: it stalls the event loop). */
  epollWait(epfd: number, events: Uint8Array, maxEvents: number, timeoutMs: number): number;
  /** poll(2) over `nfds` 8-byte struct pollfd entries. */
  poll(fds: Uint8Array, nfds: number, timeoutMs: number): number;
  /** io_uring_setup(2) (x86-64 syscall 425): returns the ring fd or -1; `params` is struct io_uring_params. */
  ioUringSetup(entries: number, params: Uint8Array): number;
  /**
   * io_uring_enter(2) (x86-64 syscall 426), synchronous on the calling thread: with
   * GETEVENTS it blocks that thread only. `arg`/`argSize`: the sigset, or with
   * IORING_ENTER_EXT_ARG the address and size of a struct io_uring_getevents_arg (0, 0 for none).
   */
  ioUringEnter(fd: number, toSubmit: number, minComplete: number, flags: number, arg: bigint, argSize: bigint): number;
  /** sched_setaffinity(2); pid 0 is the calling thread. `mask` is a cpu_set_t. */
  schedSetaffinity(pid: number, mask: Uint8Array): number;
  /** sched_setscheduler(2) of thread `pid` (0: the caller); `param` a struct sched_param (4 bytes). */
  schedSetscheduler(pid: number, policy: number, param: Uint8Array): number;
  /** getpid(2). */
  getpid(): number;
  /**
   * _exit(2): end the process now, without the runtime's teardown (no exit handlers, no thread
   * joins). For a process whose Worker threads may still be unwinding: Deno can crash in its
   * own exit path then (denoland/deno#12653). Flush stdout/stderr first.
   */
  exitNow(status: number): never;
  /**
   * read(2) on a thread of the runtime's FFI pool, without blocking the event loop.
   * Deno only (nonblocking FFI; errno is not readable); Bun has no such call.
   */
  readAsync?(fd: number, buf: Uint8Array): Promise<number>;
  /** socket(2). Returns the fd or -1. */
  socket(domain: number, type: number, protocol: number): number;
  /** connect(2) to a sockaddr of `len` bytes. */
  connect(fd: number, addr: Uint8Array, len: number): number;
  /** bind(2) to a sockaddr of `len` bytes. */
  bind(fd: number, addr: Uint8Array, len: number): number;
  /** listen(2). */
  listen(fd: number, backlog: number): number;
  /** accept4(2): the peer's sockaddr into `addr`, its length in/out through the 4-byte `lenBuf`. */
  accept4(fd: number, addr: Uint8Array, lenBuf: Uint8Array, flags: number): number;
  /** recv(2) into all of `buf`. Returns bytes, 0 at end of stream, or -1. */
  recv(fd: number, buf: Uint8Array, flags: number): number;
  /** send(2) of all of `buf`. Returns bytes taken or -1. */
  send(fd: number, buf: Uint8Array, flags: number): number;
  /** sendmsg(2); `msghdr` is a struct msghdr whose iovecs point at memory the caller keeps alive. */
  sendmsg(fd: number, msghdr: Uint8Array, flags: number): number;
  /** setsockopt(2) with all of `value`. */
  setsockopt(fd: number, level: number, name: number, value: Uint8Array): number;
  /** getsockopt(2) into `value`, its length in/out through the 4-byte `lenBuf`. */
  getsockopt(fd: number, level: number, name: number, value: Uint8Array, lenBuf: Uint8Array): number;
  /** getsockname(2) into `addr`, its length in/out through the 4-byte `lenBuf`. */
  getsockname(fd: number, addr: Uint8Array, lenBuf: Uint8Array): number;
  /** getpeername(2) into `addr`, its length in/out through the 4-byte `lenBuf`. */
  getpeername(fd: number, addr: Uint8Array, lenBuf: Uint8Array): number;
  /** shutdown(2). */
  shutdown(fd: number, how: number): number;
  /** dup(2): a second fd on the same open file (e.g. a socket another thread may outlive). */
  dup(fd: number): number;
  /** getrlimit(2) into an 16-byte buffer {rlim_cur, rlim_max}. */
  getrlimit(resource: number, buf: Uint8Array): number;
  /** errno of the last failed call on this thread. */
  errno(): number;
  /** A zero-copy ArrayBuffer over `len` bytes at `addr` (mapped memory). */
  view(addr: bigint, len: number): ArrayBuffer;
  /** A single 32-bit load from memory at addr (for MMIO register polls: never hoisted, never locked). */
  peek32(addr: bigint): number;
  /** Address of a typed array's first byte (only valid while it is alive and not moved). */
  addressOf(buf: Uint8Array): bigint;
}

/** Linux constants (x86-64 and arm64 agree on these). */
export const O_RDWR = 0x2;
/** open(2) flag: close on exec. */
export const O_CLOEXEC = 0x80000;
/** mmap prot: readable. */
export const PROT_READ = 0x1;
/** mmap prot: writable. */
export const PROT_WRITE = 0x2;
/** mmap flag: shared mapping. */
export const MAP_SHARED = 0x01;
/** mmap flag: private mapping. */
export const MAP_PRIVATE = 0x02;
/** mmap flag: anonymous memory. */
export const MAP_ANONYMOUS = 0x20;
/** mmap flag: pre-fault pages. */
export const MAP_POPULATE = 0x8000;
/** eventfd flag: close on exec. */
export const EFD_CLOEXEC = 0x80000;
/** eventfd flag: non-blocking. */
export const EFD_NONBLOCK = 0x800;
/** getrlimit resource: locked memory. */
export const RLIMIT_MEMLOCK = 8;
/** mmap's failure value as an address. */
export const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
/** epoll_ctl op: add an fd. */
export const EPOLL_CTL_ADD = 1;
/** epoll_ctl op: remove an fd. */
export const EPOLL_CTL_DEL = 2;
/** epoll_ctl op: change an fd's events (re-arm an EPOLLONESHOT fd). */
export const EPOLL_CTL_MOD = 3;
/** epoll event: readable. */
export const EPOLLIN = 0x1;
/** epoll event: peer closed its writing half (also set with EPOLLIN at end of stream). */
export const EPOLLRDHUP = 0x2000;
/** epoll flag: edge-triggered (reported once per change, e.g. per eventfd write, with no read needed). */
export const EPOLLET = 0x8000_0000;
/** epoll flag: report once, then stay disabled until EPOLL_CTL_MOD re-arms. */
export const EPOLLONESHOT = 0x4000_0000;
/** epoll_create1 flag: close on exec. */
export const EPOLL_CLOEXEC = 0x80000;
/** poll(2) event: readable. */
export const POLLIN = 0x1;
/** errno of an interrupted call, retried by blocking waits. */
export const EINTR = 4;
/** errno of an empty nonblocking read. */
export const EAGAIN = 11;
/** poll(2) event: writable. */
export const POLLOUT = 0x4;
/** poll(2) event: error (always reported). */
export const POLLERR = 0x8;
/** poll(2) event: hung up (always reported). */
export const POLLHUP = 0x10;

const arch = (globalThis as { process?: { arch?: string } }).process?.arch ??
  (globalThis as { Deno?: { build?: { arch?: string } } }).Deno?.build?.arch;
/**
 * Bytes of one struct epoll_event: x86-64 packs it ({u32 events; u64 data} = 12 bytes),
 * other 64-bit ABIs align the data to 8 (16 bytes). The data field starts at
 * `EPOLL_EVENT_SIZE - 8`.
 */
export const EPOLL_EVENT_SIZE: number = arch === "x64" || arch === "x86_64" ? 12 : 16;
