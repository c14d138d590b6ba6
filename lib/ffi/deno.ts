/** Libc backend for Deno (Deno.dlopen). Loaded only under Deno, by dynamic import. @module */
import { SetupError } from "../nvme/errors.ts";
import { cstr } from "./cstr.ts";
import type { Libc } from "./types.ts";

const SYMBOLS = {
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
  read_nb: { name: "read", parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
  __errno_location: { parameters: [], result: "pointer" },
} as const;


/** Build the Deno libc backend. Throws if FFI permission is missing. */
export function createLibc(): Libc {
  const st = Deno.permissions.querySync({ name: "ffi" });
  if (st.state !== "granted") {
    throw new SetupError("no-ffi", "tsnvme needs FFI: run Deno with --allow-ffi (or -A)");
  }
  const lib = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  const errnoPtr = lib.__errno_location();
  const errnoView = new Deno.UnsafePointerView(errnoPtr!);
  const ptr = (a: bigint) => Deno.UnsafePointer.create(a)!;
  return {
    runtime: "deno",
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
    readAsync: async (fd, buf) => Number(await lib.read_nb(fd | 0, buf, BigInt(buf.byteLength))),
    errno: () => errnoView.getInt32(0),
    view: (addr, len) => Deno.UnsafePointerView.getArrayBuffer(ptr(addr), len),
    peek32: (addr) => new Deno.UnsafePointerView(ptr(addr)).getUint32(0),
    addressOf: (buf) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf))),
  };
}
