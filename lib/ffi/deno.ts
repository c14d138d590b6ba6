/** Libc backend for Deno (Deno.dlopen). Loaded only under Deno, by dynamic import. @module */
import { SetupError } from "../nvme/errors.ts";
import { buildLibc, LIBC_SYMBOLS } from "./libc.ts";
import type { Libc } from "./types.ts";

const SYMBOLS = {
  ...LIBC_SYMBOLS,
  // Deno only: read(2) on the FFI thread pool, for readAsync.
  read_nb: { name: "read", parameters: ["i32", "buffer", "usize"], result: "isize", nonblocking: true },
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
  return buildLibc(lib, {
    runtime: "deno",
    readAsync: async (fd, buf) => Number(await lib.read_nb(fd | 0, buf, BigInt(buf.byteLength))),
    errno: () => errnoView.getInt32(0),
    view: (addr, len) => Deno.UnsafePointerView.getArrayBuffer(ptr(addr), len),
    peek32: (addr) => new Deno.UnsafePointerView(ptr(addr)).getUint32(0),
    addressOf: (buf) => BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf))),
  });
}
