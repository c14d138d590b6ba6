/**
 * Identify Controller (CNS 01h) and Identify Namespace (CNS 00h) decoding,
 * with output that reproduces nvme-cli 2.3 / libnvme 1.3 exactly:
 *
 * - {@link idCtrlToJson} / {@link idNsToJson}: the text of
 *   `nvme id-ctrl <dev> -o json` / `nvme id-ns <dev> -o json` (json-c
 *   "pretty" layout, same keys, order and value representation).
 * - {@link formatIdCtrl} / {@link formatIdNs}: the normal (non `-H`) text of
 *   `nvme id-ctrl` / `nvme id-ns`.
 *
 * Rules taken from nvme-cli 2.3 (nvme-print.c json_nvme_id_ctrl /
 * json_nvme_id_ns, util/json.c, util/types.c) and checked against the real
 * binary:
 * - sn/mn/fr/subnqn are copied with `%-.*s`: up to the first NUL, never
 *   trimmed (trailing spaces are kept); `subnqn` is only emitted when non-empty.
 * - 128-bit fields (tnvmcap, unvmcap, megcap, maxdna, nvmcap) are JSON
 *   *strings* of decimal digits (`"tnvmcap":"1099511627776"`); digits are
 *   grouped with the locale's thousands separator (none in the C locale).
 * - 64-bit nsze/ncap/nuse are JSON numbers (json-c uint64).
 * - Every other field goes through `json_object_new_int` (int32), so 32-bit
 *   values >= 2^31 print as negative numbers.
 * - `psds` has npss+1 entries, `lbafs` has nlbaf+1 entries (nulbaf ignored);
 *   the vendor-specific area is not part of the JSON.
 *
 * The parsed {@link IdCtrl}/{@link IdNs} objects hold the true (unsigned)
 * values; their key order equals nvme-cli's, and `JSON.stringify` of them
 * equals nvme-cli's JSON (modulo whitespace) except for the int32 narrowing
 * above, which only the `*ToJson` writers reproduce.
 * @module
 */
import { InvalidArgumentError } from "../nvme/errors.ts";
import { hexDump } from "./hexdump.ts";
import { ID_CTRL_HUMAN, ID_CTRL_HUMAN_128, ID_NS_HUMAN, lbafHuman } from "./human.ts";

// ---------------------------------------------------------------------------
// Byte-reading helpers

function view(data: Uint8Array): DataView {
  return new DataView(data.buffer, data.byteOffset, data.byteLength);
}

function u8(data: Uint8Array, off: number): number {
  return off < data.length ? data[off] : 0;
}

function u16(dv: DataView, off: number): number {
  return off + 2 <= dv.byteLength ? dv.getUint16(off, true) : 0;
}

function u32(dv: DataView, off: number): number {
  return off + 4 <= dv.byteLength ? dv.getUint32(off, true) : 0;
}

function u64(dv: DataView, off: number): bigint {
  return off + 8 <= dv.byteLength ? dv.getBigUint64(off, true) : 0n;
}

function u128(dv: DataView, off: number): bigint {
  return (u64(dv, off + 8) << 64n) | u64(dv, off);
}

/** Bytes up to the first NUL (at most `len`), one char per byte (latin1), like C `%-.*s`. */
function cstr(data: Uint8Array, off: number, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) {
    const b = data[off + i];
    if (b === 0 || b === undefined) break;
    s += String.fromCharCode(b);
  }
  return s;
}

function hexBytes(data: Uint8Array, off: number, len: number): string {
  let s = "";
  for (let i = 0; i < len; i++) s += u8(data, off + i).toString(16).padStart(2, "0");
  return s;
}

/** C `(int32_t)` conversion of an unsigned 32-bit value. */
function toInt32(v: number): number {
  return v | 0;
}

/** C `%#x`: "0" for zero, "0x..." otherwise. */
function hexAlt(v: number | bigint): string {
  return v === 0 || v === 0n ? "0" : "0x" + v.toString(16);
}

/** libnvme nvme_uuid_to_string(). */
function uuidString(data: Uint8Array, off: number): string {
  const h = hexBytes(data, off, 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
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

const rawJSON = (JSON as unknown as { rawJSON?: (text: string) => unknown }).rawJSON;

/** An unsigned 64-bit field; nvme-cli prints it as a JSON number. */
export class Uint64 {
  /** The exact value. */
  readonly value: bigint;
  /** Wrap a 64-bit unsigned value. */
  constructor(value: bigint) {
    this.value = value;
  }
  /** Raw JSON digits where `JSON.rawJSON` exists, else a (possibly rounded) number. */
  toJSON(): unknown {
    return rawJSON ? rawJSON(this.value.toString()) : Number(this.value);
  }
  /** Decimal digits. */
  toString(): string {
    return this.value.toString();
  }
}

/** An unsigned 128-bit field; nvme-cli 2.3 prints it as a JSON string of decimal digits. */
export class Uint128 {
  /** The exact value. */
  readonly value: bigint;
  /** Wrap a 128-bit unsigned value. */
  constructor(value: bigint) {
    this.value = value;
  }
  /** Decimal digits (a JSON string, as nvme-cli prints it in the C locale). */
  toJSON(): string {
    return this.value.toString();
  }
  /** Decimal digits. */
  toString(): string {
    return this.value.toString();
  }
}

// ---------------------------------------------------------------------------
// json-c pretty printer (JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE)

type JsonVal = number | string | Uint64 | Uint128 | JsonVal[] | { [k: string]: JsonVal | undefined };

interface JsonOpts {
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

function writeJson(v: JsonVal, level: number, key: string, opts: JsonOpts): string {
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

// Raw structure kept for things outside the JSON view (vendor area, unique LBA formats).
const rawCtrl = new WeakMap<object, Uint8Array>();
const rawNs = new WeakMap<object, Uint8Array>();

// ---------------------------------------------------------------------------
// Identify Controller

/** One power state descriptor, keyed and valued like nvme-cli 2.3's `psds` entries. */
export interface PowerState {
  /** MP: maximum power (units per flags.MXPS). */
  max_power: number;
  /** Byte 3: bit 0 MXPS (0.0001 W units), bit 1 NOPS (non-operational). */
  flags: number;
  /** ENLAT: entry latency in microseconds. */
  entry_lat: number;
  /** EXLAT: exit latency in microseconds. */
  exit_lat: number;
  /** RRT byte. */
  read_tput: number;
  /** RRL byte. */
  read_lat: number;
  /** RWT byte. */
  write_tput: number;
  /** RWL byte. */
  write_lat: number;
  /** IDLP: idle power. */
  idle_power: number;
  /** IPS: idle power scale (bits 7:6 of byte 18). */
  idle_scale: number;
  /** ACTP: active power. */
  active_power: number;
  /** APW: active power workload (bits 2:0 of byte 22). */
  active_power_work: number;
  /** APS: active power scale (bits 7:6 of byte 22). */
  active_scale: number;
}

/**
 * Identify Controller data: keys in nvme-cli 2.3's `id-ctrl -o json` order.
 * Strings are raw (up to the first NUL, padding kept); numbers are unsigned.
 */
export interface IdCtrl {
  /** PCI vendor ID. */
  vid: number;
  /** PCI subsystem vendor ID. */
  ssvid: number;
  /** Serial number, padding kept. */
  sn: string;
  /** Model number, padding kept. */
  mn: string;
  /** Firmware revision, padding kept. */
  fr: string;
  /** Recommended arbitration burst. */
  rab: number;
  /** IEEE OUI (bytes 73..75 little-endian). */
  ieee: number;
  /** Controller multi-path I/O and namespace sharing capabilities. */
  cmic: number;
  /** Maximum data transfer size (power of two of CAP.MPSMIN units, 0 = none). */
  mdts: number;
  /** Controller ID. */
  cntlid: number;
  /** Version. */
  ver: number;
  /** RTD3 resume latency (us). */
  rtd3r: number;
  /** RTD3 entry latency (us). */
  rtd3e: number;
  /** Optional asynchronous events supported. */
  oaes: number;
  /** Controller attributes. */
  ctratt: number;
  /** Read recovery levels supported. */
  rrls: number;
  /** Controller type. */
  cntrltype: number;
  /** FRU globally unique identifier, as a UUID string. */
  fguid: string;
  /** Command retry delay time 1. */
  crdt1: number;
  /** Command retry delay time 2. */
  crdt2: number;
  /** Command retry delay time 3. */
  crdt3: number;
  /** NVM subsystem report. */
  nvmsr: number;
  /** VPD write cycle information. */
  vwci: number;
  /** Management endpoint capabilities. */
  mec: number;
  /** Optional admin command support. */
  oacs: number;
  /** Abort command limit. */
  acl: number;
  /** Asynchronous event request limit. */
  aerl: number;
  /** Firmware updates. */
  frmw: number;
  /** Log page attributes. */
  lpa: number;
  /** Error log page entries. */
  elpe: number;
  /** Number of power states supported (0's based). */
  npss: number;
  /** Admin vendor specific command configuration. */
  avscc: number;
  /** Autonomous power state transition attributes. */
  apsta: number;
  /** Warning composite temperature threshold (K). */
  wctemp: number;
  /** Critical composite temperature threshold (K). */
  cctemp: number;
  /** Maximum time for firmware activation. */
  mtfa: number;
  /** Host memory buffer preferred size. */
  hmpre: number;
  /** Host memory buffer minimum size. */
  hmmin: number;
  /** Total NVM capacity (bytes). */
  tnvmcap: Uint128;
  /** Unallocated NVM capacity (bytes). */
  unvmcap: Uint128;
  /** Replay protected memory block support. */
  rpmbs: number;
  /** Extended device self-test time. */
  edstt: number;
  /** Device self-test options. */
  dsto: number;
  /** Firmware update granularity. */
  fwug: number;
  /** Keep alive support. */
  kas: number;
  /** Host controlled thermal management attributes. */
  hctma: number;
  /** Minimum thermal management temperature. */
  mntmt: number;
  /** Maximum thermal management temperature. */
  mxtmt: number;
  /** Sanitize capabilities. */
  sanicap: number;
  /** Host memory buffer minimum descriptor entry size. */
  hmminds: number;
  /** Host memory maximum descriptors entries. */
  hmmaxd: number;
  /** NVM set identifier maximum. */
  nsetidmax: number;
  /** Endurance group identifier maximum. */
  endgidmax: number;
  /** ANA transition time. */
  anatt: number;
  /** ANA capabilities. */
  anacap: number;
  /** ANA group identifier maximum. */
  anagrpmax: number;
  /** Number of ANA group identifiers. */
  nanagrpid: number;
  /** Persistent event log size. */
  pels: number;
  /** Domain identifier. */
  domainid: number;
  /** Max endurance group capacity. */
  megcap: Uint128;
  /** Submission queue entry size (max << 4 | required). */
  sqes: number;
  /** Completion queue entry size (max << 4 | required). */
  cqes: number;
  /** Maximum outstanding commands. */
  maxcmd: number;
  /** Number of namespaces. */
  nn: number;
  /** Optional NVM command support. */
  oncs: number;
  /** Fused operation support. */
  fuses: number;
  /** Format NVM attributes. */
  fna: number;
  /** Volatile write cache. */
  vwc: number;
  /** Atomic write unit normal. */
  awun: number;
  /** Atomic write unit power fail. */
  awupf: number;
  /** I/O command set vendor specific command configuration. */
  icsvscc: number;
  /** Namespace write protection capabilities. */
  nwpc: number;
  /** Atomic compare & write unit. */
  acwu: number;
  /** Optional copy formats supported. */
  ocfs: number;
  /** SGL support. */
  sgls: number;
  /** Maximum number of allowed namespaces. */
  mnan: number;
  /** Maximum domain namespace attachments. */
  maxdna: Uint128;
  /** Maximum I/O controller namespace attachments. */
  maxcna: number;
  /** NVM subsystem NQN; absent when empty (nvme-cli omits it then). */
  subnqn?: string;
  /** I/O queue command capsule supported size. */
  ioccsz: number;
  /** I/O queue response capsule supported size. */
  iorcsz: number;
  /** In capsule data offset. */
  icdoff: number;
  /** Fabrics controller attributes. */
  fcatt: number;
  /** Maximum SGL data block descriptors. */
  msdbd: number;
  /** Optional fabric commands support. */
  ofcs: number;
  /** Power state descriptors 0..npss. */
  psds: PowerState[];
}

/** Identify Controller data size. */
export const IDENTIFY_DATA_SIZE = 4096;

function parsePsd(data: Uint8Array, dv: DataView, off: number): PowerState {
  const ips = u8(data, off + 18);
  const apws = u8(data, off + 22);
  return {
    max_power: u16(dv, off),
    flags: u8(data, off + 3),
    entry_lat: u32(dv, off + 4),
    exit_lat: u32(dv, off + 8),
    read_tput: u8(data, off + 12),
    read_lat: u8(data, off + 13),
    write_tput: u8(data, off + 14),
    write_lat: u8(data, off + 15),
    idle_power: u16(dv, off + 16),
    idle_scale: (ips >> 6) & 3,
    active_power: u16(dv, off + 20),
    active_power_work: apws & 7,
    active_scale: (apws >> 6) & 3,
  };
}

function checkSize(data: Uint8Array, what: string): void {
  if (!(data instanceof Uint8Array) || data.length < IDENTIFY_DATA_SIZE) {
    throw new InvalidArgumentError(`${what}: need ${IDENTIFY_DATA_SIZE} bytes, got ${data?.length}`);
  }
}

/** Decode the 4096-byte Identify Controller data structure (CNS 01h). */
export function parseIdCtrl(data: Uint8Array): IdCtrl {
  checkSize(data, "parseIdCtrl");
  const dv = view(data);
  const subnqn = cstr(data, 768, 256);
  const npss = data[263];
  const psds: PowerState[] = [];
  // nvme-cli loops i <= npss over psd[32]; entries 32..63 overlay the vendor
  // area (same as nvme-cli); beyond the structure nvme-cli reads stack memory,
  // which we do not imitate.
  for (let i = 0; i <= npss && 2048 + 32 * i + 32 <= data.length && i < 64; i++) {
    psds.push(parsePsd(data, dv, 2048 + 32 * i));
  }
  const c: IdCtrl = {
    vid: u16(dv, 0),
    ssvid: u16(dv, 2),
    sn: cstr(data, 4, 20),
    mn: cstr(data, 24, 40),
    fr: cstr(data, 64, 8),
    rab: data[72],
    ieee: data[73] | (data[74] << 8) | (data[75] << 16),
    cmic: data[76],
    mdts: data[77],
    cntlid: u16(dv, 78),
    ver: u32(dv, 80),
    rtd3r: u32(dv, 84),
    rtd3e: u32(dv, 88),
    oaes: u32(dv, 92),
    ctratt: u32(dv, 96),
    rrls: u16(dv, 100),
    cntrltype: data[111],
    fguid: uuidString(data, 112),
    crdt1: u16(dv, 128),
    crdt2: u16(dv, 130),
    crdt3: u16(dv, 132),
    nvmsr: data[253],
    vwci: data[254],
    mec: data[255],
    oacs: u16(dv, 256),
    acl: data[258],
    aerl: data[259],
    frmw: data[260],
    lpa: data[261],
    elpe: data[262],
    npss,
    avscc: data[264],
    apsta: data[265],
    wctemp: u16(dv, 266),
    cctemp: u16(dv, 268),
    mtfa: u16(dv, 270),
    hmpre: u32(dv, 272),
    hmmin: u32(dv, 276),
    tnvmcap: new Uint128(u128(dv, 280)),
    unvmcap: new Uint128(u128(dv, 296)),
    rpmbs: u32(dv, 312),
    edstt: u16(dv, 316),
    dsto: data[318],
    fwug: data[319],
    kas: u16(dv, 320),
    hctma: u16(dv, 322),
    mntmt: u16(dv, 324),
    mxtmt: u16(dv, 326),
    sanicap: u32(dv, 328),
    hmminds: u32(dv, 332),
    hmmaxd: u16(dv, 336),
    nsetidmax: u16(dv, 338),
    endgidmax: u16(dv, 340),
    anatt: data[342],
    anacap: data[343],
    anagrpmax: u32(dv, 344),
    nanagrpid: u32(dv, 348),
    pels: u32(dv, 352),
    domainid: u16(dv, 356),
    megcap: new Uint128(u128(dv, 368)),
    sqes: data[512],
    cqes: data[513],
    maxcmd: u16(dv, 514),
    nn: u32(dv, 516),
    oncs: u16(dv, 520),
    fuses: u16(dv, 522),
    fna: data[524],
    vwc: data[525],
    awun: u16(dv, 526),
    awupf: u16(dv, 528),
    icsvscc: data[530],
    nwpc: data[531],
    acwu: u16(dv, 532),
    ocfs: u16(dv, 534),
    sgls: u32(dv, 536),
    mnan: u32(dv, 540),
    maxdna: new Uint128(u128(dv, 544)),
    maxcna: u32(dv, 560),
    ...(subnqn.length > 0 ? { subnqn } : {}),
    ioccsz: u32(dv, 1792),
    iorcsz: u32(dv, 1796),
    icdoff: u16(dv, 1800),
    fcatt: data[1802],
    msdbd: data[1803],
    ofcs: u16(dv, 1804),
    psds,
  };
  rawCtrl.set(c, data.slice(0, IDENTIFY_DATA_SIZE));
  return c;
}

/** Id-ctrl JSON keys that nvme-cli passes through int32 although they are 32-bit unsigned. */
const CTRL_NARROW: ReadonlySet<string> = new Set([
  "ver", "rtd3r", "rtd3e", "oaes", "ctratt", "hmpre", "hmmin", "rpmbs", "sanicap",
  "hmminds", "anagrpmax", "nanagrpid", "pels", "nn", "sgls", "mnan", "maxcna",
  "ioccsz", "iorcsz", "entry_lat", "exit_lat",
]);

/**
 * The exact text nvme-cli 2.3 prints for `nvme id-ctrl <dev> -o json`
 * (without the final newline nvme-cli adds).
 */
export function idCtrlToJson(c: IdCtrl, opts: NvmeCliFormatOptions = {}): string {
  return writeJson(c as unknown as JsonVal, 0, "", { sep: opts.thousandsSep ?? "", narrow: CTRL_NARROW });
}

function psPower(power: number, scale: number): string {
  switch (scale & 3) {
    case 0: return "-";
    case 1: return `${Math.floor(power / 10000)}.${String(power % 10000).padStart(4, "0")}W`;
    case 2: return `${Math.floor(power / 100)}.${String(power % 100).padStart(2, "0")}W`;
    default: return "reserved";
  }
}

function psWorkload(apw: number): string {
  switch (apw & 7) {
    case 0: return "-";
    case 1: return "1MiB 32 RW, 30s idle";
    case 2: return "80K 128KiB SW";
    default: return "reserved";
  }
}

/** Lines with nvme-cli's `-H` decoding after each field that has one. */
function withHuman(L: string[], fields: Record<string, unknown>, dec: Record<string, (v: number) => string>, sep: string): string {
  let out = "";
  for (const line of L) {
    out += line + "\n";
    const key = line.slice(0, line.indexOf(":")).trim();
    const v = fields[key];
    if (typeof v === "number" && dec[key]) out += dec[key](v);
    else if (v instanceof Uint128 && ID_CTRL_HUMAN_128[key]) out += ID_CTRL_HUMAN_128[key](uint128ToString(v.value, sep));
  }
  return out;
}

/**
 * nvme-cli 2.3's normal (non `-H`) text for `nvme id-ctrl <dev>`: the
 * `NVME Identify Controller:` block, one `\n`-terminated line per field.
 */
export function formatIdCtrl(c: IdCtrl, opts: NvmeCliFormatOptions = {}): string {
  const sep = opts.thousandsSep ?? "";
  const s = (v: number) => String(toInt32(v)); // printf %d of a 32-bit value
  const ieee = c.ieee.toString(16).padStart(6, "0");
  const L: string[] = [
    "NVME Identify Controller:",
    `vid       : ${hexAlt(c.vid)}`,
    `ssvid     : ${hexAlt(c.ssvid)}`,
    `sn        : ${c.sn}`,
    `mn        : ${c.mn}`,
    `fr        : ${c.fr}`,
    `rab       : ${c.rab}`,
    `ieee      : ${ieee}`,
    `cmic      : ${hexAlt(c.cmic)}`,
    `mdts      : ${c.mdts}`,
    `cntlid    : ${hexAlt(c.cntlid)}`,
    `ver       : ${hexAlt(c.ver)}`,
    `rtd3r     : ${hexAlt(c.rtd3r)}`,
    `rtd3e     : ${hexAlt(c.rtd3e)}`,
    `oaes      : ${hexAlt(c.oaes)}`,
    `ctratt    : ${hexAlt(c.ctratt)}`,
    `rrls      : ${hexAlt(c.rrls)}`,
    `cntrltype : ${c.cntrltype}`,
    `fguid     : ${c.fguid}`,
    `crdt1     : ${c.crdt1}`,
    `crdt2     : ${c.crdt2}`,
    `crdt3     : ${c.crdt3}`,
    `nvmsr     : ${c.nvmsr}`,
    `vwci      : ${c.vwci}`,
    `mec       : ${c.mec}`,
    `oacs      : ${hexAlt(c.oacs)}`,
    `acl       : ${c.acl}`,
    `aerl      : ${c.aerl}`,
    `frmw      : ${hexAlt(c.frmw)}`,
    `lpa       : ${hexAlt(c.lpa)}`,
    `elpe      : ${c.elpe}`,
    `npss      : ${c.npss}`,
    `avscc     : ${hexAlt(c.avscc)}`,
    `apsta     : ${hexAlt(c.apsta)}`,
    `wctemp    : ${c.wctemp}`,
    `cctemp    : ${c.cctemp}`,
    `mtfa      : ${c.mtfa}`,
    `hmpre     : ${s(c.hmpre)}`,
    `hmmin     : ${s(c.hmmin)}`,
    `tnvmcap   : ${uint128ToString(c.tnvmcap.value, sep)}`,
    `unvmcap   : ${uint128ToString(c.unvmcap.value, sep)}`,
    `rpmbs     : ${hexAlt(c.rpmbs)}`,
    `edstt     : ${c.edstt}`,
    `dsto      : ${c.dsto}`,
    `fwug      : ${c.fwug}`,
    `kas       : ${c.kas}`,
    `hctma     : ${hexAlt(c.hctma)}`,
    `mntmt     : ${c.mntmt}`,
    `mxtmt     : ${c.mxtmt}`,
    `sanicap   : ${hexAlt(c.sanicap)}`,
    `hmminds   : ${c.hmminds}`,
    `hmmaxd    : ${c.hmmaxd}`,
    `nsetidmax : ${c.nsetidmax}`,
    `endgidmax : ${c.endgidmax}`,
    `anatt     : ${c.anatt}`,
    `anacap    : ${c.anacap}`,
    `anagrpmax : ${c.anagrpmax}`,
    `nanagrpid : ${c.nanagrpid}`,
    `pels      : ${c.pels}`,
    `domainid  : ${c.domainid}`,
    `megcap    : ${uint128ToString(c.megcap.value, sep)}`,
    `sqes      : ${hexAlt(c.sqes)}`,
    `cqes      : ${hexAlt(c.cqes)}`,
    `maxcmd    : ${c.maxcmd}`,
    `nn        : ${s(c.nn)}`,
    `oncs      : ${hexAlt(c.oncs)}`,
    `fuses     : ${hexAlt(c.fuses)}`,
    `fna       : ${hexAlt(c.fna)}`,
    `vwc       : ${hexAlt(c.vwc)}`,
    `awun      : ${c.awun}`,
    `awupf     : ${c.awupf}`,
    `icsvscc   : ${c.icsvscc}`,
    `nwpc      : ${c.nwpc}`,
    `acwu      : ${c.acwu}`,
    `ocfs      : ${hexAlt(c.ocfs)}`,
    `sgls      : ${hexAlt(c.sgls)}`,
    `mnan      : ${c.mnan}`,
    `maxdna    : ${uint128ToString(c.maxdna.value, sep)}`,
    `maxcna    : ${c.maxcna}`,
    `subnqn    : ${c.subnqn ?? ""}`,
    `ioccsz    : ${c.ioccsz}`,
    `iorcsz    : ${c.iorcsz}`,
    `icdoff    : ${c.icdoff}`,
    `fcatt     : ${hexAlt(c.fcatt)}`,
    `msdbd     : ${c.msdbd}`,
    `ofcs      : ${c.ofcs}`,
  ];
  c.psds.forEach((p, i) => {
    const mp = p.flags & 1
      ? `${Math.floor(p.max_power / 10000)}.${String(p.max_power % 10000).padStart(4, "0")}W`
      : `${Math.floor(p.max_power / 100)}.${String(p.max_power % 100).padStart(2, "0")}W`;
    L.push(
      `ps   ${String(i).padStart(4, " ")} : mp:${mp} ${p.flags & 2 ? "non-" : ""}operational ` +
        `enlat:${s(p.entry_lat)} exlat:${s(p.exit_lat)} rrt:${p.read_tput} rrl:${p.read_lat}`,
      `            rwt:${p.write_tput} rwl:${p.write_lat} idle_power:${psPower(p.idle_power, p.idle_scale)}` +
        ` active_power:${psPower(p.active_power, p.active_scale)}`,
      `            active_power_workload:${psWorkload(p.active_power_work)}`,
    );
  });
  let out = opts.human ? withHuman(L, c as unknown as Record<string, unknown>, ID_CTRL_HUMAN, sep) : L.join("\n") + "\n";
  const raw = rawCtrl.get(c);
  if (opts.vendorSpecific && raw) out += "vs[]:\n" + hexDump(raw.subarray(3072, 4096));
  return out;
}

// ---------------------------------------------------------------------------
// Identify Namespace

/** One LBA format, keyed like nvme-cli 2.3's `lbafs` entries. */
export interface LbaFormat {
  /** Metadata size in bytes. */
  ms: number;
  /** LBA data size as a power of two (LBADS). */
  ds: number;
  /** Byte 3 as is (relative performance in bits 1:0). */
  rp: number;
}

/** Identify Namespace data: keys in nvme-cli 2.3's `id-ns -o json` order. */
export interface IdNs {
  /** Namespace size (LBAs). */
  nsze: Uint64;
  /** Namespace capacity (LBAs). */
  ncap: Uint64;
  /** Namespace utilization (LBAs). */
  nuse: Uint64;
  /** Namespace features. */
  nsfeat: number;
  /** Number of LBA formats (0's based). */
  nlbaf: number;
  /** Formatted LBA size. */
  flbas: number;
  /** Metadata capabilities. */
  mc: number;
  /** End-to-end data protection capabilities. */
  dpc: number;
  /** End-to-end data protection type settings. */
  dps: number;
  /** Namespace multi-path I/O and sharing capabilities. */
  nmic: number;
  /** Reservation capabilities. */
  rescap: number;
  /** Format progress indicator. */
  fpi: number;
  /** Deallocate logical block features. */
  dlfeat: number;
  /** Namespace atomic write unit normal. */
  nawun: number;
  /** Namespace atomic write unit power fail. */
  nawupf: number;
  /** Namespace atomic compare & write unit. */
  nacwu: number;
  /** Namespace atomic boundary size normal. */
  nabsn: number;
  /** Namespace atomic boundary offset. */
  nabo: number;
  /** Namespace atomic boundary size power fail. */
  nabspf: number;
  /** Namespace optimal I/O boundary. */
  noiob: number;
  /** NVM capacity (bytes). */
  nvmcap: Uint128;
  /** Namespace attributes. */
  nsattr: number;
  /** NVM set identifier. */
  nvmsetid: number;
  /** Preferred write granularity (only when nsfeat bit 4 is set). */
  npwg?: number;
  /** Preferred write alignment (only when nsfeat bit 4 is set). */
  npwa?: number;
  /** Preferred deallocate granularity (only when nsfeat bit 4 is set). */
  npdg?: number;
  /** Preferred deallocate alignment (only when nsfeat bit 4 is set). */
  npda?: number;
  /** Optimal write size (only when nsfeat bit 4 is set). */
  nows?: number;
  /** Maximum single source range length. */
  mssrl: number;
  /** Maximum copy length. */
  mcl: number;
  /** Maximum source range count. */
  msrc: number;
  /** Number of unique capability LBA formats. */
  nulbaf: number;
  /** ANA group identifier. */
  anagrpid: number;
  /** Endurance group identifier. */
  endgid: number;
  /** IEEE extended unique identifier, 16 hex digits. */
  eui64: string;
  /** Namespace globally unique identifier, 32 hex digits. */
  nguid: string;
  /** LBA formats 0..nlbaf. */
  lbafs: LbaFormat[];
}

function lbafAt(data: Uint8Array, dv: DataView, i: number): LbaFormat {
  const off = 128 + 4 * i;
  return { ms: u16(dv, off), ds: u8(data, off + 2), rp: u8(data, off + 3) };
}

/** Decode the 4096-byte Identify Namespace data structure (CNS 00h). */
export function parseIdNs(data: Uint8Array): IdNs {
  checkSize(data, "parseIdNs");
  const dv = view(data);
  const nsfeat = data[24];
  const nlbaf = data[25];
  const lbafs: LbaFormat[] = [];
  for (let i = 0; i <= nlbaf; i++) lbafs.push(lbafAt(data, dv, i));
  const n: IdNs = {
    nsze: new Uint64(u64(dv, 0)),
    ncap: new Uint64(u64(dv, 8)),
    nuse: new Uint64(u64(dv, 16)),
    nsfeat,
    nlbaf,
    flbas: data[26],
    mc: data[27],
    dpc: data[28],
    dps: data[29],
    nmic: data[30],
    rescap: data[31],
    fpi: data[32],
    dlfeat: data[33],
    nawun: u16(dv, 34),
    nawupf: u16(dv, 36),
    nacwu: u16(dv, 38),
    nabsn: u16(dv, 40),
    nabo: u16(dv, 42),
    nabspf: u16(dv, 44),
    noiob: u16(dv, 46),
    nvmcap: new Uint128(u128(dv, 48)),
    nsattr: data[99],
    nvmsetid: u16(dv, 100),
    ...(nsfeat & 0x10
      ? { npwg: u16(dv, 64), npwa: u16(dv, 66), npdg: u16(dv, 68), npda: u16(dv, 70), nows: u16(dv, 72) }
      : {}),
    mssrl: u16(dv, 74),
    mcl: u32(dv, 76),
    msrc: data[80],
    nulbaf: data[82],
    anagrpid: u32(dv, 92),
    endgid: u16(dv, 102),
    eui64: hexBytes(data, 120, 8),
    nguid: hexBytes(data, 104, 16),
    lbafs,
  };
  rawNs.set(n, data.slice(0, IDENTIFY_DATA_SIZE));
  return n;
}

const NS_NARROW: ReadonlySet<string> = new Set(["mcl", "anagrpid"]);

/**
 * The exact text nvme-cli 2.3 prints for `nvme id-ns <dev> -o json`
 * (without the final newline nvme-cli adds).
 */
export function idNsToJson(n: IdNs, opts: NvmeCliFormatOptions = {}): string {
  return writeJson(n as unknown as JsonVal, 0, "", { sep: opts.thousandsSep ?? "", narrow: NS_NARROW });
}

/** Index of the LBA format in use: FLBAS bits 3:0, plus bits 6:5 as bits 5:4. */
export function flbasIndex(flbas: number): number {
  return ((flbas & 0x60) >> 1) | (flbas & 0x0f);
}

/**
 * nvme-cli 2.3's normal (non `-H`) text for `nvme id-ns <dev> -n <nsid>`,
 * one `\n`-terminated line per field; the `lbaf` lines cover nlbaf + nulbaf
 * (read from the structure `n` was parsed from; for a copied object only the
 * `lbafs` it holds are known).
 */
export function formatIdNs(n: IdNs, nsid: number, opts: NvmeCliFormatOptions = {}): string {
  const sep = opts.thousandsSep ?? "";
  const L: string[] = [
    `NVME Identify Namespace ${toInt32(nsid)}:`,
    `nsze    : ${hexAlt(n.nsze.value)}`,
    `ncap    : ${hexAlt(n.ncap.value)}`,
    `nuse    : ${hexAlt(n.nuse.value)}`,
    `nsfeat  : ${hexAlt(n.nsfeat)}`,
    `nlbaf   : ${n.nlbaf}`,
    `flbas   : ${hexAlt(n.flbas)}`,
    `mc      : ${hexAlt(n.mc)}`,
    `dpc     : ${hexAlt(n.dpc)}`,
    `dps     : ${hexAlt(n.dps)}`,
    `nmic    : ${hexAlt(n.nmic)}`,
    `rescap  : ${hexAlt(n.rescap)}`,
    `fpi     : ${hexAlt(n.fpi)}`,
    `dlfeat  : ${n.dlfeat}`,
    `nawun   : ${n.nawun}`,
    `nawupf  : ${n.nawupf}`,
    `nacwu   : ${n.nacwu}`,
    `nabsn   : ${n.nabsn}`,
    `nabo    : ${n.nabo}`,
    `nabspf  : ${n.nabspf}`,
    `noiob   : ${n.noiob}`,
    `nvmcap  : ${uint128ToString(n.nvmcap.value, sep)}`,
  ];
  if (n.nsfeat & 0x10) {
    L.push(
      `npwg    : ${n.npwg ?? 0}`,
      `npwa    : ${n.npwa ?? 0}`,
      `npdg    : ${n.npdg ?? 0}`,
      `npda    : ${n.npda ?? 0}`,
      `nows    : ${n.nows ?? 0}`,
    );
  }
  L.push(
    `mssrl   : ${n.mssrl}`,
    `mcl     : ${n.mcl}`,
    `msrc    : ${n.msrc}`,
    `nulbaf  : ${n.nulbaf}`,
    `anagrpid: ${n.anagrpid}`,
    `nsattr\t: ${n.nsattr}`,
    `nvmsetid: ${n.nvmsetid}`,
    `endgid  : ${n.endgid}`,
    `nguid   : ${n.nguid}`,
    `eui64   : ${n.eui64}`,
  );
  const raw = rawNs.get(n);
  const inUse = flbasIndex(n.flbas);
  const count = n.nlbaf + n.nulbaf + 1;
  const lbafs: string[] = [];
  for (let i = 0; i < count; i++) {
    const f = raw ? lbafAt(raw, view(raw), i) : n.lbafs[i] ?? { ms: 0, ds: 0, rp: 0 };
    lbafs.push(
      opts.human ? lbafHuman(i, f.ms, f.ds, f.rp, i === inUse) : `lbaf ${String(i).padStart(2, " ")} : ms:${String(f.ms).padEnd(3, " ")} ` +
        `lbads:${String(f.ds).padEnd(2, " ")} rp:${hexAlt(f.rp)} ${i === inUse ? "(in use)" : ""}`,
    );
  }
  let out = (opts.human ? withHuman(L, n as unknown as Record<string, unknown>, ID_NS_HUMAN, sep) : L.join("\n") + "\n") +
    lbafs.map((l) => l + "\n").join("");
  if (opts.vendorSpecific && raw) out += "vs[]:\n" + hexDump(raw.subarray(392, 4096));
  return out;
}

// ---------------------------------------------------------------------------
// Summaries for the driver

/** Controller facts the driver needs, as plain numbers and trimmed strings. */
export interface CtrlSummary {
  /** Serial number, trimmed. */
  serial: string;
  /** Model number, trimmed. */
  model: string;
  /** Firmware revision, trimmed. */
  firmware: string;
  /** PCI vendor ID. */
  vid: number;
  /** PCI subsystem vendor ID. */
  ssvid: number;
  /** Maximum data transfer size exponent (0 = no limit). */
  mdts: number;
  /** Number of namespaces. */
  nn: number;
  /** Optional NVM command support. */
  oncs: number;
  /** Volatile write cache. */
  vwc: number;
  /** Submission queue entry sizes. */
  sqes: number;
  /** Completion queue entry sizes. */
  cqes: number;
  /** Controller ID. */
  cntlid: number;
  /** Version (VER). */
  ver: number;
  /** Firmware updates. */
  frmw: number;
  /** Sanitize capabilities. */
  sanicap: number;
  /** Firmware update granularity. */
  fwug: number;
}

/** Trim an ASCII space-padded identify string. */
function trimId(s: string): string {
  return s.replace(/[\s\0]+$/, "").replace(/^\s+/, "");
}

/** Controller summary for the driver. */
export function ctrlSummary(c: IdCtrl): CtrlSummary {
  return {
    serial: trimId(c.sn),
    model: trimId(c.mn),
    firmware: trimId(c.fr),
    vid: c.vid,
    ssvid: c.ssvid,
    mdts: c.mdts,
    nn: c.nn,
    oncs: c.oncs,
    vwc: c.vwc,
    sqes: c.sqes,
    cqes: c.cqes,
    cntlid: c.cntlid,
    ver: c.ver,
    frmw: c.frmw,
    sanicap: c.sanicap,
    fwug: c.fwug,
  };
}

/** Namespace facts the driver needs. */
export interface NsSummary {
  /** Namespace size in logical blocks. */
  nsze: bigint;
  /** Namespace capacity in logical blocks. */
  ncap: bigint;
  /** Namespace utilization in logical blocks. */
  nuse: bigint;
  /** Logical block size in bytes of the current format (2^LBADS). */
  blockSize: number;
  /** Metadata bytes per block of the current format. */
  metadataSize: number;
  /** Index of the current LBA format (from FLBAS, including bits 6:5). */
  lbaFormat: number;
}

/** Namespace summary for the driver (current format from FLBAS). */
export function nsSummary(n: IdNs): NsSummary {
  const lbaFormat = flbasIndex(n.flbas);
  const raw = rawNs.get(n);
  const f = raw ? lbafAt(raw, view(raw), lbaFormat) : n.lbafs[lbaFormat] ?? { ms: 0, ds: 0, rp: 0 };
  return {
    nsze: n.nsze.value,
    ncap: n.ncap.value,
    nuse: n.nuse.value,
    blockSize: 2 ** f.ds,
    metadataSize: f.ms,
    lbaFormat,
  };
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
