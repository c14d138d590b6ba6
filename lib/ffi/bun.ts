/** Libc backend for Bun (bun:ffi). Loaded only under Bun, by dynamic import. @module */
import { cstr } from "./cstr.ts";
import type { Libc } from "./types.ts";

// A variable specifier: Deno must never see a static bun: import.
const BUN_FFI = "bun:ffi";


/** Build the Bun libc backend. */
export async function createLibc(): Promise<Libc> {
  // deno-lint-ignore no-explicit-any
  const ffi: any = await import(BUN_FFI);
  const { dlopen, toArrayBuffer, read, ptr } = ffi;
  const lib = dlopen("libc.so.6", {
    open: { args: ["buffer", "i32"], returns: "i32" },
    close: { args: ["i32"], returns: "i32" },
    ioctl: { args: ["i32", "u64", "buffer"], returns: "i32" },
    mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: "u64" },
    munmap: { args: ["u64", "u64"], returns: "i32" },
    pread: { args: ["i32", "buffer", "u64", "i64"], returns: "i64" },
    pwrite: { args: ["i32", "buffer", "u64", "i64"], returns: "i64" },
    read: { args: ["i32", "buffer", "u64"], returns: "i64" },
    eventfd: { args: ["u32", "i32"], returns: "i32" },
    getrlimit: { args: ["i32", "buffer"], returns: "i32" },
    write: { args: ["i32", "buffer", "u64"], returns: "i64" },
    epoll_create1: { args: ["i32"], returns: "i32" },
    epoll_ctl: { args: ["i32", "i32", "i32", "buffer"], returns: "i32" },
    epoll_wait: { args: ["i32", "buffer", "i32", "i32"], returns: "i32" },
    poll: { args: ["buffer", "u64", "i32"], returns: "i32" },
    __errno_location: { args: [], returns: "ptr" },
  }).symbols;
  // Bun cannot alias one symbol under two signatures: open libc twice.
  const libInt = dlopen("libc.so.6", {
    ioctl: { args: ["i32", "u64", "u64"], returns: "i32" },
  }).symbols;
  const errnoPtr: number = lib.__errno_location();
  return {
    runtime: "bun",
    open: (path, flags) => lib.open(cstr(path), flags | 0),
    close: (fd) => lib.close(fd | 0),
    ioctlPtr: (fd, req, arg) => lib.ioctl(fd | 0, req, arg),
    ioctlInt: (fd, req, arg) => libInt.ioctl(fd | 0, req, arg),
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
    errno: () => read.i32(errnoPtr, 0),
    view: (addr, len) => toArrayBuffer(Number(addr), 0, len),
    peek32: (addr) => read.u32(Number(addr), 0) >>> 0,
    addressOf: (buf) => BigInt(ptr(buf)),
  };
}
