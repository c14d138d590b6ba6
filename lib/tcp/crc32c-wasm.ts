/**
 * CRC32C slice-by-16 as a tiny WebAssembly function, assembled here from its
 * opcodes (no build step, no binary file; runs on Deno and Bun alike). Wasm
 * drops the bounds and type checks JS pays per typed-array access, which is
 * what slice-by-8 is made of. The data is copied into the module's memory in
 * blocks first (a memcpy, far cheaper than the table walk). {@link wasmCrc32c}
 * is null where WebAssembly is unavailable; crc32c.ts then stays in JS.
 * @module
 */

/** Tables folded per step (16 input bytes). */
const SLICES = 16;
/** Bytes of the sixteen 256-entry tables at the start of the module's memory. */
const TABLES = SLICES * 256 * 4;
/** Largest block copied in per call; memory = tables + block (3 × 64 KiB pages). */
export const WASM_CRC_BLOCK = 128 * 1024;
const PAGES = 3;

// Opcodes used below (WebAssembly 1.0 binary format).
const BLOCK = 0x02, LOOP = 0x03, END = 0x0b, BR = 0x0c, BR_IF = 0x0d, VOID = 0x40, I32 = 0x7f;
const GET = 0x20, SET = 0x21, LOAD = 0x28, LOAD8U = 0x2d, CONST = 0x41;
const GE_U = 0x4f, ADD = 0x6a, AND = 0x71, XOR = 0x73, SHL = 0x74, SHR_U = 0x76;

/** Unsigned LEB128 (signed for i32.const operands below 64, which share the encoding). */
function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 for i32.const. */
function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

// Locals: 0 state, 1 ptr, 2 len (params); 3 end, 4.. the step's other three words.
const C = 0, P = 1, LEN = 2, E = 3, W1 = 4;

/** Table k lookup of byte `shift` of local `v`: i32.load offset=k*1024 ((v >>> (shift-2)) & 1020). */
function look(k: number, v: number, shift: number): number[] {
  const idx = shift === 0
    ? [GET, v, CONST, ...sleb(2), SHL, CONST, ...sleb(1020), AND]
    : [GET, v, CONST, ...sleb(shift - 2), SHR_U, CONST, ...sleb(1020), AND];
  return [...idx, LOAD, 2, ...leb(k * 1024)];
}

/** crc(state, ptr, len) -> state: slice-by-16 over whole 16-byte blocks, then bytes. */
function body(): number[] {
  // Word w of the block, byte j: table SLICES-1-(4w+j); the state is word 0.
  const fold: number[] = [];
  for (let w = 0; w < 4; w++) {
    for (let j = 0; j < 4; j++) {
      fold.push(...look(SLICES - 1 - (4 * w + j), w === 0 ? C : W1 + w - 1, 8 * j));
      if (w + j > 0) fold.push(XOR);
    }
  }
  return [
    // end = ptr + (len & ~15)
    GET, P, GET, LEN, CONST, ...sleb(-16), AND, ADD, SET, E,
    BLOCK, VOID, LOOP, VOID,
    GET, P, GET, E, GE_U, BR_IF, 1,
    // c ^= load(p); w1..w3 = load(p + 4/8/12)
    GET, C, GET, P, LOAD, 0, 0, XOR, SET, C,
    GET, P, LOAD, 0, 4, SET, W1,
    GET, P, LOAD, 0, 8, SET, W1 + 1,
    GET, P, LOAD, 0, 12, SET, W1 + 2,
    ...fold,
    SET, C,
    GET, P, CONST, ...sleb(16), ADD, SET, P,
    BR, 0, END, END,
    // tail: end = ptr + (len & 15); bytes one by one
    GET, P, GET, LEN, CONST, ...sleb(15), AND, ADD, SET, E,
    BLOCK, VOID, LOOP, VOID,
    GET, P, GET, E, GE_U, BR_IF, 1,
    GET, C, GET, P, LOAD8U, 0, 0, XOR, CONST, ...sleb(2), SHL, CONST, ...sleb(1020), AND, LOAD, 2, 0,
    GET, C, CONST, ...sleb(8), SHR_U, XOR, SET, C,
    GET, P, CONST, ...sleb(1), ADD, SET, P,
    BR, 0, END, END,
    GET, C,
    END,
  ];
}

function section(id: number, content: number[]): number[] {
  return [id, ...leb(content.length), ...content];
}

function name(s: string): number[] {
  return [s.length, ...Array.from(s, (ch) => ch.charCodeAt(0))];
}

/** The module's bytes: one function "crc", one exported memory "mem". */
export function crc32cWasmBytes(): Uint8Array {
  const code = [1, 4, I32, ...body()]; // one local group: 4 × i32
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [1, 0x60, 3, I32, I32, I32, 1, I32]),
    ...section(3, [1, 0]),
    ...section(5, [1, 0, PAGES]),
    ...section(7, [2, ...name("crc"), 0, 0, ...name("mem"), 2, 0]),
    ...section(10, [1, ...leb(code.length), ...code]),
  ]);
}

/** A ready CRC32C kernel: raw state in, raw state out, over `b[start..end)`. */
export type Crc32cKernel = (state: number, b: Uint8Array, start: number, end: number) => number;

/** Build the kernel from the byte table `t0` (256 entries); null if WebAssembly is missing or refuses. */
export function wasmCrc32c(t0: Int32Array): Crc32cKernel | null {
  const W = (globalThis as { WebAssembly?: typeof WebAssembly }).WebAssembly;
  if (W === undefined) return null;
  try {
    const inst = new W.Instance(new W.Module(crc32cWasmBytes() as Uint8Array<ArrayBuffer>), {});
    const crc = inst.exports.crc as (s: number, p: number, n: number) => number;
    const mem = new Uint8Array((inst.exports.mem as WebAssembly.Memory).buffer);
    // Table k: CRC of byte b followed by k zero bytes.
    const t = new Int32Array(mem.buffer, 0, SLICES * 256);
    t.set(t0.subarray(0, 256));
    for (let k = 1; k < SLICES; k++) {
      for (let n = 0; n < 256; n++) {
        const c = t[(k - 1) * 256 + n];
        t[k * 256 + n] = t[c & 0xff] ^ (c >>> 8);
      }
    }
    return (state, b, start, end) => {
      let c = state | 0;
      for (let i = start; i < end;) {
        const n = Math.min(WASM_CRC_BLOCK, end - i);
        mem.set(b.subarray(i, i + n), TABLES);
        c = crc(c, TABLES, n);
        i += n;
      }
      return c >>> 0;
    };
  } catch {
    return null;
  }
}
