/**
 * json-c's pretty printer as nvme-cli 2.3 uses it (JSON_C_TO_STRING_PRETTY |
 * JSON_C_TO_STRING_NOSLASHESCAPE), with nvme-cli's value rules: fields
 * printed through `json_object_new_int` narrow to int32, 64-bit values
 * ({@link Uint64}) are numbers, 128-bit values ({@link Uint128}) strings of
 * digits with the locale's thousands separator.
 * @module
 */
import { Uint128, Uint64 } from "../../nvme/wide.ts";

/** C `(int32_t)` conversion of an unsigned 32-bit value. */
export function toInt32(v: number): number {
  return v | 0;
}

/** C `%#x`: "0" for zero, "0x..." otherwise. */
export function hexAlt(v: number | bigint): string {
  return v === 0 || v === 0n ? "0" : "0x" + v.toString(16);
}

/**
 * nvme-cli's uint128_t_to_string(): decimal digits, with `sep` (the locale's
 * thousands separator, "" in the C locale) inserted the way nvme-cli does it.
 */
export function uint128ToString(v: bigint, sep = ""): string {
  const len = sep.length;
  const out: string[] = [];
  let pos = 1; // chars already placed counting the terminating NUL (sizeof(str) - idx)
  do {
    if (len && pos % (3 + len) === 0) {
      for (let i = 0; i < len; i++) {
        out.push(sep[i]);
        pos++;
      }
    }
    out.push(String(v % 10n));
    pos++;
    v /= 10n;
  } while (v > 0n);
  return out.reverse().join("");
}

/** A value the json-c writer prints. */
export type JsonVal = number | string | Uint64 | Uint128 | JsonVal[] | { [k: string]: JsonVal | undefined };

/** How {@link writeJson} prints numbers. */
export interface JsonOpts {
  /** Thousands separator for 128-bit values. */
  sep: string;
  /** Keys printed through json_object_new_int whose value may exceed int32. */
  narrow: ReadonlySet<string>;
}

/** json-c json_escape_str() with NOSLASHESCAPE. */
function jsonEscape(s: string): string {
  let o = "";
  for (let i = 0; i < s.length; i++) {
    const ch = s[i];
    const c = s.charCodeAt(i);
    switch (ch) {
      case "\b": o += "\\b"; break;
      case "\n": o += "\\n"; break;
      case "\r": o += "\\r"; break;
      case "\t": o += "\\t"; break;
      case "\f": o += "\\f"; break;
      case '"': o += '\\"'; break;
      case "\\": o += "\\\\"; break;
      default:
        o += c < 0x20 ? "\\u00" + c.toString(16).padStart(2, "0") : ch;
    }
  }
  return o;
}

/** json-c's pretty text of `v` at nesting `level`; `key` is the field it is the value of. */
export function writeJson(v: JsonVal, level: number, key: string, opts: JsonOpts): string {
  if (typeof v === "number") return String(opts.narrow.has(key) ? toInt32(v) : v);
  if (typeof v === "string") return `"${jsonEscape(v)}"`;
  if (v instanceof Uint64) return v.value.toString();
  if (v instanceof Uint128) return `"${jsonEscape(uint128ToString(v.value, opts.sep))}"`;
  const pad = "  ".repeat(level + 1);
  const end = "  ".repeat(level);
  if (Array.isArray(v)) {
    if (v.length === 0) return "[\n" + end + "]";
    return "[\n" + v.map((e) => pad + writeJson(e, level + 1, "", opts)).join(",\n") + "\n" + end + "]";
  }
  const parts: string[] = [];
  for (const [k, e] of Object.entries(v)) {
    if (e === undefined) continue;
    parts.push(`${pad}"${jsonEscape(k)}":${writeJson(e, level + 1, k, opts)}`);
  }
  if (parts.length === 0) return "{\n" + end + "}";
  return "{\n" + parts.join(",\n") + "\n" + end + "}";
}

/** Options for the nvme-cli-compatible writers. */
export interface NvmeCliFormatOptions {
  /**
   * The C locale's thousands separator used by nvme-cli for 128-bit values
   * (`localeconv()->thousands_sep`): "" for C/POSIX/C.UTF-8 (the default),
   * "," for e.g. en_US.UTF-8. nvme-cli inserts the separator's bytes in
   * reverse order; for a multi-byte separator pass its bytes as latin1 chars
   * to reproduce that byte for byte.
   */
  thousandsSep?: string;
  /** Text output only: append the `vs[]:` hex dump, as `nvme ... -v` does. */
  vendorSpecific?: boolean;
  /** Text output only: decode fields under their lines, as `nvme ... -H` does. */
  human?: boolean;
}

/** Options for {@link toNvmeCliJson}. */
export interface NvmeCliJsonOptions extends NvmeCliFormatOptions {
  /**
   * Keys whose plain-number values nvme-cli prints through `json_object_new_int`
   * (int32). `"all"`: every plain number, as in the log page writers, where
   * 64-bit values are {@link Uint64} and 128-bit values {@link Uint128}.
   */
  narrow?: ReadonlySet<string> | "all";
}

const NARROW_ALL: ReadonlySet<string> = { has: () => true } as unknown as ReadonlySet<string>;

/**
 * json-c's pretty text (as nvme-cli 2.3 prints it, without the final newline)
 * of an object tree of numbers, strings, {@link Uint64}, {@link Uint128},
 * arrays and plain objects, in insertion order.
 */
export function toNvmeCliJson(value: unknown, opts: NvmeCliJsonOptions = {}): string {
  const narrow = opts.narrow === "all" ? NARROW_ALL : opts.narrow ?? new Set<string>();
  return writeJson(value as JsonVal, 0, "", { sep: opts.thousandsSep ?? "", narrow });
}
