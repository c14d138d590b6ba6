/** Libc backend for Bun (bun:ffi). Loaded only under Bun, by dynamic import. @module */
import { buildLibc, LIBC_SYMBOLS } from "./libc.ts";
import type { Libc } from "./types.ts";

// A variable specifier: Deno must never see a static bun: import.
const BUN_FFI = "bun:ffi";

/** Deno's dlopen type names that bun:ffi spells otherwise (64-bit Linux only). */
const BUN_TYPE: Record<string, string> = { usize: "u64", isize: "i64", pointer: "ptr" };

type Decl = { readonly parameters: readonly string[]; readonly result: string };

/** One LIBC_SYMBOLS entry in bun:ffi's notation. */
function bunDecl(d: Decl): { args: string[]; returns: string } {
  return {
    args: d.parameters.map((t) => BUN_TYPE[t] ?? t),
    returns: BUN_TYPE[d.result] ?? d.result,
  };
}

/** Build the Bun libc backend. */
export async function createLibc(): Promise<Libc> {
  // deno-lint-ignore no-explicit-any
  const ffi: any = await import(BUN_FFI);
  const { dlopen, toArrayBuffer, read, ptr } = ffi;
  const decls: Record<string, ReturnType<typeof bunDecl>> = {};
  const aliases: [string, string, Decl][] = [];
  for (const [key, d] of Object.entries(LIBC_SYMBOLS)) {
    const name = (d as { name?: string }).name;
    if (name !== undefined && name !== key) aliases.push([key, name, d]);
    else decls[key] = bunDecl(d);
  }
  const lib = dlopen("libc.so.6", decls).symbols;
  // Bun cannot alias one symbol under two signatures: open libc once more per alias.
  const bound = { ...lib };
  for (const [key, name, d] of aliases) bound[key] = dlopen("libc.so.6", { [name]: bunDecl(d) }).symbols[name];
  const errnoPtr: number = lib.__errno_location();
  return buildLibc(bound, {
    runtime: "bun",
    errno: () => read.i32(errnoPtr, 0),
    view: (addr, len) => toArrayBuffer(Number(addr), 0, len),
    peek32: (addr) => read.u32(Number(addr), 0) >>> 0,
    addressOf: (buf) => BigInt(ptr(buf)),
  });
}
