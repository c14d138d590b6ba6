/**
 * The libc calls both backends share: one symbol table (in Deno's dlopen
 * notation; bun.ts translates it) and one builder of the runtime-neutral calls
 * over the bound symbols. The backends add only what differs per runtime:
 * errno, pointer views and the nonblocking read.
 * @module
 */
import { cstr } from "./cstr.ts";
import type { Libc } from "./types.ts";

/** The libc symbols tsnvme binds. `name` aliases one C symbol under two signatures. */
export const LIBC_SYMBOLS = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl_ptr: { name: "ioctl", parameters: ["i32", "u64", "buffer"], result: "i32" },
  ioctl_int: { name: "ioctl", parameters: ["i32", "u64", "u64"], result: "i32" },
  mmap: { parameters: ["u64", "usize", "i32", "i32", "i32", "i64"], result: "u64" },
  munmap: { parameters: ["u64", "usize"], result: "i32" },
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  getrlimit: { parameters: ["i32", "buffer"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  // io_uring has no libc wrapper: syscall(2) under two signatures (variadic, every argument a register).
  uring_setup: { name: "syscall", parameters: ["i64", "u32", "buffer"], result: "i32" },
  uring_enter: { name: "syscall", parameters: ["i64", "i32", "u32", "u32", "u32", "u64", "u64"], result: "i32" },
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  sched_setscheduler: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  _exit: { parameters: ["i32"], result: "void" },
  __errno_location: { parameters: [], result: "pointer" },
  // Sockets: lengths and ssize_t results declared i32 (Deno: u32/usize lengths cost ~20x per call,
  // i64 results come back as BigInt). One call moves at most 2 GiB, far above any PDU batch.
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  connect: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  listen: { parameters: ["i32", "i32"], result: "i32" },
  accept4: { parameters: ["i32", "buffer", "buffer", "i32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  send: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  sendmsg: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "i32"], result: "i32" },
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  shutdown: { parameters: ["i32", "i32"], result: "i32" },
  dup: { parameters: ["i32"], result: "i32" },
} as const;

/** The symbols of LIBC_SYMBOLS as a backend bound them. */
// deno-lint-ignore no-explicit-any
export type BoundLibc = { [K in keyof typeof LIBC_SYMBOLS]: (...args: any[]) => any };

/** What a backend adds to the shared calls: the runtime and its pointer access. */
export type RuntimeCalls = Pick<
  Libc,
  "runtime" | "errno" | "view" | "peek32" | "addressOf" | "readAsync"
>;

/** Build the Libc over bound symbols: the shared calls plus the backend's own. */
export function buildLibc(lib: BoundLibc, own: RuntimeCalls): Libc {
  return {
    open: (path, flags) => lib.open(cstr(path), flags | 0),
    close: (fd) => lib.close(fd | 0),
    ioctlPtr: (fd, req, arg) => lib.ioctl_ptr(fd | 0, req, arg),
    ioctlInt: (fd, req, arg) => lib.ioctl_int(fd | 0, req, arg),
    mmap: (addr, len, prot, flags, fd, off) =>
      BigInt.asUintN(64, BigInt(lib.mmap(addr, len, prot | 0, flags | 0, fd | 0, off))),
    munmap: (addr, len) => lib.munmap(addr, len),
    pread: (fd, buf, off) => Number(lib.pread(fd | 0, buf, BigInt(buf.byteLength), off)),
    pwrite: (fd, buf, off) => Number(lib.pwrite(fd | 0, buf, BigInt(buf.byteLength), off)),
    read: (fd, buf) => Number(lib.read(fd | 0, buf, BigInt(buf.byteLength))),
    eventfd: (init, flags) => lib.eventfd(init >>> 0, flags | 0),
    getrlimit: (res, buf) => lib.getrlimit(res | 0, buf),
    write: (fd, buf) => Number(lib.write(fd | 0, buf, BigInt(buf.byteLength))),
    epollCreate1: (flags) => lib.epoll_create1(flags | 0),
    epollCtl: (ep, op, fd, ev) => lib.epoll_ctl(ep | 0, op | 0, fd | 0, ev),
    epollWait: (ep, evs, max, t) => lib.epoll_wait(ep | 0, evs, max | 0, t | 0),
    poll: (fds, n, t) => lib.poll(fds, BigInt(n), t | 0),
    ioUringSetup: (entries, params) => lib.uring_setup(425, entries >>> 0, params),
    ioUringEnter: (fd, toSubmit, minComplete, flags, arg, argSize) =>
      lib.uring_enter(426, fd | 0, toSubmit >>> 0, minComplete >>> 0, flags >>> 0, arg, argSize),
    schedSetaffinity: (pid, mask) => lib.sched_setaffinity(pid | 0, BigInt(mask.byteLength), mask),
    schedSetscheduler: (pid, policy, param) => lib.sched_setscheduler(pid | 0, policy | 0, param),
    getpid: () => lib.getpid(),
    exitNow: (status) => {
      lib._exit(status | 0);
      throw new Error("_exit returned");
    },
    socket: (domain, type, protocol) => lib.socket(domain | 0, type | 0, protocol | 0),
    connect: (fd, addr, len) => lib.connect(fd | 0, addr, len | 0),
    bind: (fd, addr, len) => lib.bind(fd | 0, addr, len | 0),
    listen: (fd, backlog) => lib.listen(fd | 0, backlog | 0),
    accept4: (fd, addr, lenBuf, flags) => lib.accept4(fd | 0, addr, lenBuf, flags | 0),
    recv: (fd, buf, flags) => lib.recv(fd | 0, buf, buf.byteLength | 0, flags | 0),
    send: (fd, buf, flags) => lib.send(fd | 0, buf, buf.byteLength | 0, flags | 0),
    sendmsg: (fd, msghdr, flags) => lib.sendmsg(fd | 0, msghdr, flags | 0),
    setsockopt: (fd, level, name, val) => lib.setsockopt(fd | 0, level | 0, name | 0, val, val.byteLength | 0),
    getsockopt: (fd, level, name, val, lenBuf) => lib.getsockopt(fd | 0, level | 0, name | 0, val, lenBuf),
    getsockname: (fd, addr, lenBuf) => lib.getsockname(fd | 0, addr, lenBuf),
    getpeername: (fd, addr, lenBuf) => lib.getpeername(fd | 0, addr, lenBuf),
    shutdown: (fd, how) => lib.shutdown(fd | 0, how | 0),
    dup: (fd) => lib.dup(fd | 0),
    ...own,
  };
}
