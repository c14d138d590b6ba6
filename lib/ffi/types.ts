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
