/** NUL-terminated UTF-8 for C string parameters. @module */

const enc = new TextEncoder();

/** Encode `s` as a NUL-terminated UTF-8 byte array. */
export function cstr(s: string): Uint8Array {
  const b = new Uint8Array(s.length * 3 + 1);
  const { written } = enc.encodeInto(s, b);
  return b.subarray(0, written + 1);
}
