/**
 * Identify Controller, Identify Namespace and the lists Identify returns: each
 * byte layout named once here (NVMe Base 2.0, figures 275-280), decoded once
 * into nvme-cli-keyed structures ({@link parseIdCtrl}, {@link parseIdNs}) of
 * which the driver's views ({@link decodeIdentifyController},
 * {@link decodeIdentifyNamespace}) are summaries. The driver, lib/admin, the
 * software controller (which encodes these layouts) and the target read the
 * offsets here; the nvme-cli presentation lives in lib/cli/format.
 * @module
 */
import { InvalidArgumentError } from "./errors.ts";
import { getU128, Uint128, Uint64, viewOf } from "./wide.ts";

/** Byte offsets in the Identify Controller data structure. */
export const IdCtrlOffset = {
  VID: 0,
  SSVID: 2,
  SN: 4,
  MN: 24,
  FR: 64,
  RAB: 72,
  IEEE: 73,
  CMIC: 76,
  MDTS: 77,
  CNTLID: 78,
  VER: 80,
  RTD3R: 84,
  RTD3E: 88,
  OAES: 92,
  CTRATT: 96,
  RRLS: 100,
  CNTRLTYPE: 111,
  FGUID: 112,
  CRDT1: 128,
  CRDT2: 130,
  CRDT3: 132,
  NVMSR: 253,
  VWCI: 254,
  MEC: 255,
  OACS: 256,
  ACL: 258,
  AERL: 259,
  FRMW: 260,
  LPA: 261,
  ELPE: 262,
  NPSS: 263,
  AVSCC: 264,
  APSTA: 265,
  WCTEMP: 266,
  CCTEMP: 268,
  MTFA: 270,
  HMPRE: 272,
  HMMIN: 276,
  TNVMCAP: 280,
  UNVMCAP: 296,
  RPMBS: 312,
  EDSTT: 316,
  DSTO: 318,
  FWUG: 319,
  KAS: 320,
  HCTMA: 322,
  MNTMT: 324,
  MXTMT: 326,
  SANICAP: 328,
  HMMINDS: 332,
  HMMAXD: 336,
  NSETIDMAX: 338,
  ENDGIDMAX: 340,
  ANATT: 342,
  ANACAP: 343,
  ANAGRPMAX: 344,
  NANAGRPID: 348,
  PELS: 352,
  DOMAINID: 356,
  MEGCAP: 368,
  SQES: 512,
  CQES: 513,
  MAXCMD: 514,
  NN: 516,
  ONCS: 520,
  FUSES: 522,
  FNA: 524,
  VWC: 525,
  AWUN: 526,
  AWUPF: 528,
  ICSVSCC: 530,
  NWPC: 531,
  ACWU: 532,
  OCFS: 534,
  SGLS: 536,
  MNAN: 540,
  MAXDNA: 544,
  MAXCNA: 560,
  SUBNQN: 768,
  IOCCSZ: 1792,
  IORCSZ: 1796,
  ICDOFF: 1800,
  FCATT: 1802,
  MSDBD: 1803,
  OFCS: 1804,
  /** Power state descriptor 0; descriptor i at PSD0 + i * PSD_BYTES. */
  PSD0: 2048,
  /** Vendor specific area, to the end of the structure. */
  VS: 3072,
} as const;

/** CTRATT bits (Identify Controller). */
export const Ctratt = {
  /** 128-bit host identifier. */
  HOSTID_128: 1 << 0,
  /** Traffic-based keep-alive: any command restarts the keep-alive timer. */
  TBKAS: 1 << 6,
  /** Extended LBA formats supported (ELBAF in the NVM command set Identify Namespace). */
  ELBAS: 1 << 15,
} as const;

/** OAES / Asynchronous Event Configuration bits. */
export const Oaes = {
  /** Namespace attribute notices (Changed Namespace List log). */
  NS_ATTR: 1 << 8,
  /** Discovery log page change notices (discovery controllers). */
  DISC_CHANGE: 1 << 31,
} as const;

/** LPA bits (Identify Controller). */
export const Lpa = {
  SMART_PER_NS: 1 << 0,
  CMD_EFFECTS: 1 << 1,
  EXTENDED_DATA: 1 << 2,
} as const;

/** SGLS bits (Identify Controller). */
export const Sgls = {
  SUPPORTED: 1 << 0,
  KEYED: 1 << 2,
  /** Address field of a Data Block descriptor may be an offset (in-capsule data). */
  OFFSET: 1 << 20,
} as const;

/** CNTRLTYPE values (Identify Controller). */
export const CntrlType = { IO: 1, DISCOVERY: 2 } as const;

/** Bytes of one power state descriptor. */
export const PSD_BYTES = 32;

/** Byte offsets in a power state descriptor. */
export const PsdOffset = {
  MP: 0,
  FLAGS: 3,
  ENLAT: 4,
  EXLAT: 8,
  RRT: 12,
  RRL: 13,
  RWT: 14,
  RWL: 15,
  IDLP: 16,
  IPS: 18,
  ACTP: 20,
  APWS: 22,
} as const;

/** Byte offsets in the Identify Namespace data structure (NVM command set). */
export const IdNsOffset = {
  NSZE: 0,
  NCAP: 8,
  NUSE: 16,
  NSFEAT: 24,
  NLBAF: 25,
  FLBAS: 26,
  MC: 27,
  DPC: 28,
  DPS: 29,
  NMIC: 30,
  RESCAP: 31,
  FPI: 32,
  DLFEAT: 33,
  NAWUN: 34,
  NAWUPF: 36,
  NACWU: 38,
  NABSN: 40,
  NABO: 42,
  NABSPF: 44,
  NOIOB: 46,
  NVMCAP: 48,
  NPWG: 64,
  NPWA: 66,
  NPDG: 68,
  NPDA: 70,
  NOWS: 72,
  MSSRL: 74,
  MCL: 76,
  MSRC: 80,
  NULBAF: 82,
  ANAGRPID: 92,
  NSATTR: 99,
  NVMSETID: 100,
  ENDGID: 102,
  NGUID: 104,
  EUI64: 120,
  /** LBA format 0; format i at LBAF + i * LBAF_BYTES. */
  LBAF: 128,
  /** Where nvme-cli 2.3's `id-ns -v` starts its `vs[]` dump. */
  VS: 392,
} as const;

/** Bytes of one LBA format descriptor. */
export const LBAF_BYTES = 4;

/** Byte offsets in an LBA format descriptor. */
export const LbafOffset = {
  /** Metadata size (16 bits). */
  MS: 0,
  /** LBA data size, a power of two. */
  LBADS: 2,
  /** Relative performance (bits 1:0). */
  RP: 3,
} as const;

/** Identify data is always this long. */
export const IDENTIFY_BYTES = 4096;

/** Identify Controller data size (the same 4096 bytes, under nvme-cli's name). */
export const IDENTIFY_DATA_SIZE: number = IDENTIFY_BYTES;

/** Namespace ids in one Active Namespace ID list (CNS 02h) or Changed Namespace List log. */
export const NSID_LIST_ENTRIES = 1024;

/** What the driver needs of Identify Controller, decoded once. */
export interface IdentifyController {
  /** PCI vendor id. */
  vid: number;
  /** PCI subsystem vendor id. */
  ssvid: number;
  /** Serial number (trimmed). */
  serial: string;
  /** Model number (trimmed). */
  model: string;
  /** Firmware revision (trimmed). */
  firmware: string;
  /** Maximum Data Transfer Size (power of two of CAP.MPSMIN; 0: no limit). */
  mdts: number;
  /** Controller id. */
  cntlid: number;
  /** RTD3 entry latency, µs (0: not reported). */
  rtd3e: number;
  /** Optional Admin Command Support. */
  oacs: number;
  /** Asynchronous Event Request Limit (one-based). */
  aerLimit: number;
  /** Firmware updates (FRMW). */
  frmw: number;
  /** Error log page entries (one-based). */
  errorLogEntries: number;
  /** Sanitize capabilities (SANICAP). */
  sanicap: number;
  /** Firmware update granularity (FWUG; 0xff: no restriction, 0: unknown). */
  fwug: number;
  /** Submission queue entry size: required and maximum, log2 bytes. */
  sqes: { min: number; max: number };
  /** Completion queue entry size: required and maximum, log2 bytes. */
  cqes: { min: number; max: number };
  /** Number of namespaces. */
  nn: number;
  /** Optional NVM Command Support. */
  oncs: number;
  /** Format NVM Attributes (FNA). */
  fna: number;
  /** Volatile write cache present (VWC bit 0). */
  vwc: boolean;
  /** Controller type (1 IO, 2 discovery, 3 administrative; 0 not reported). */
  cntrltype: number;
  /** Keep Alive Support: granularity in units of 100 ms (0: not supported). */
  kas: number;
  /** Maximum outstanding commands per queue (0: not reported). */
  maxcmd: number;
  /** SGL support (SGLS). */
  sgls: number;
  /** NVM Subsystem NQN. */
  subnqn: string;
  /** Fabrics: IO queue command capsule size, 16-byte units (0 on PCIe). */
  ioccsz: number;
  /** Fabrics: IO queue response capsule size, 16-byte units. */
  iorcsz: number;
  /** Fabrics: in-capsule data offset, 16-byte units. */
  icdoff: number;
  /** Fabrics: maximum SGL data block descriptors per command (0: no limit). */
  msdbd: number;
}

/** What the driver needs of Identify Namespace, decoded once. */
export interface IdentifyNamespace {
  /** Size in logical blocks. */
  nsze: bigint;
  /** Capacity in logical blocks. */
  ncap: bigint;
  /** Utilization in logical blocks. */
  nuse: bigint;
  /** Index of the LBA format in use. */
  lbaFormat: number;
  /** Logical block size of the format in use, bytes. */
  blockSize: number;
  /** Metadata bytes per block of the format in use. */
  metadataSize: number;
  /** Formatted LBA size as is (bit 4: extended LBA). */
  flbas: number;
  /** End-to-end data protection type settings (PI type, PI first). */
  dps: number;
  /** Copy: Maximum Single Source Range Length, blocks. */
  mssrl: number;
  /** Copy: Maximum Copy Length, blocks. */
  mcl: number;
  /** Copy: Maximum Source Range Count, one-based. */
  msrc: number;
}

function check(d: Uint8Array, what: string): DataView {
  if (!(d instanceof Uint8Array) || d.length < IDENTIFY_BYTES) {
    throw new InvalidArgumentError(`${what}: need ${IDENTIFY_BYTES} bytes, got ${d?.length}`);
  }
  return viewOf(d);
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
  for (let i = 0; i < len; i++) s += (data[off + i] ?? 0).toString(16).padStart(2, "0");
  return s;
}

/** libnvme nvme_uuid_to_string(). */
function uuidString(data: Uint8Array, off: number): string {
  const h = hexBytes(data, off, 16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** Trim an ASCII space-padded identify string. */
function trimId(s: string): string {
  return s.replace(/[\s\0]+$/, "").replace(/^\s+/, "");
}

// The structure each decoded object came from: the vendor area and the unique
// LBA formats are not fields of the decoded objects, yet nvme-cli shows them.
const raw = new WeakMap<object, Uint8Array>();

/** The 4096 bytes an {@link IdCtrl} or {@link IdNs} was decoded from (undefined for a copy). */
export function identifyRaw(decoded: IdCtrl | IdNs): Uint8Array | undefined {
  return raw.get(decoded);
}

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

function parsePsd(data: Uint8Array, dv: DataView, off: number): PowerState {
  const P = PsdOffset;
  const ips = data[off + P.IPS];
  const apws = data[off + P.APWS];
  return {
    max_power: dv.getUint16(off + P.MP, true),
    flags: data[off + P.FLAGS],
    entry_lat: dv.getUint32(off + P.ENLAT, true),
    exit_lat: dv.getUint32(off + P.EXLAT, true),
    read_tput: data[off + P.RRT],
    read_lat: data[off + P.RRL],
    write_tput: data[off + P.RWT],
    write_lat: data[off + P.RWL],
    idle_power: dv.getUint16(off + P.IDLP, true),
    idle_scale: (ips >> 6) & 3,
    active_power: dv.getUint16(off + P.ACTP, true),
    active_power_work: apws & 7,
    active_scale: (apws >> 6) & 3,
  };
}

/** Decode the 4096-byte Identify Controller data structure (CNS 01h). */
export function parseIdCtrl(data: Uint8Array): IdCtrl {
  const dv = check(data, "parseIdCtrl");
  const O = IdCtrlOffset;
  const u16 = (off: number) => dv.getUint16(off, true);
  const u32 = (off: number) => dv.getUint32(off, true);
  const u128 = (off: number) => new Uint128(getU128(dv, off));
  const subnqn = cstr(data, O.SUBNQN, 256);
  const npss = data[O.NPSS];
  const psds: PowerState[] = [];
  // nvme-cli loops i <= npss over psd[32]; entries 32..63 overlay the vendor
  // area (same as nvme-cli); beyond the structure nvme-cli reads stack memory,
  // which we do not imitate.
  for (let i = 0; i <= npss && O.PSD0 + PSD_BYTES * (i + 1) <= data.length && i < 64; i++) {
    psds.push(parsePsd(data, dv, O.PSD0 + PSD_BYTES * i));
  }
  const c: IdCtrl = {
    vid: u16(O.VID),
    ssvid: u16(O.SSVID),
    sn: cstr(data, O.SN, 20),
    mn: cstr(data, O.MN, 40),
    fr: cstr(data, O.FR, 8),
    rab: data[O.RAB],
    ieee: data[O.IEEE] | (data[O.IEEE + 1] << 8) | (data[O.IEEE + 2] << 16),
    cmic: data[O.CMIC],
    mdts: data[O.MDTS],
    cntlid: u16(O.CNTLID),
    ver: u32(O.VER),
    rtd3r: u32(O.RTD3R),
    rtd3e: u32(O.RTD3E),
    oaes: u32(O.OAES),
    ctratt: u32(O.CTRATT),
    rrls: u16(O.RRLS),
    cntrltype: data[O.CNTRLTYPE],
    fguid: uuidString(data, O.FGUID),
    crdt1: u16(O.CRDT1),
    crdt2: u16(O.CRDT2),
    crdt3: u16(O.CRDT3),
    nvmsr: data[O.NVMSR],
    vwci: data[O.VWCI],
    mec: data[O.MEC],
    oacs: u16(O.OACS),
    acl: data[O.ACL],
    aerl: data[O.AERL],
    frmw: data[O.FRMW],
    lpa: data[O.LPA],
    elpe: data[O.ELPE],
    npss,
    avscc: data[O.AVSCC],
    apsta: data[O.APSTA],
    wctemp: u16(O.WCTEMP),
    cctemp: u16(O.CCTEMP),
    mtfa: u16(O.MTFA),
    hmpre: u32(O.HMPRE),
    hmmin: u32(O.HMMIN),
    tnvmcap: u128(O.TNVMCAP),
    unvmcap: u128(O.UNVMCAP),
    rpmbs: u32(O.RPMBS),
    edstt: u16(O.EDSTT),
    dsto: data[O.DSTO],
    fwug: data[O.FWUG],
    kas: u16(O.KAS),
    hctma: u16(O.HCTMA),
    mntmt: u16(O.MNTMT),
    mxtmt: u16(O.MXTMT),
    sanicap: u32(O.SANICAP),
    hmminds: u32(O.HMMINDS),
    hmmaxd: u16(O.HMMAXD),
    nsetidmax: u16(O.NSETIDMAX),
    endgidmax: u16(O.ENDGIDMAX),
    anatt: data[O.ANATT],
    anacap: data[O.ANACAP],
    anagrpmax: u32(O.ANAGRPMAX),
    nanagrpid: u32(O.NANAGRPID),
    pels: u32(O.PELS),
    domainid: u16(O.DOMAINID),
    megcap: u128(O.MEGCAP),
    sqes: data[O.SQES],
    cqes: data[O.CQES],
    maxcmd: u16(O.MAXCMD),
    nn: u32(O.NN),
    oncs: u16(O.ONCS),
    fuses: u16(O.FUSES),
    fna: data[O.FNA],
    vwc: data[O.VWC],
    awun: u16(O.AWUN),
    awupf: u16(O.AWUPF),
    icsvscc: data[O.ICSVSCC],
    nwpc: data[O.NWPC],
    acwu: u16(O.ACWU),
    ocfs: u16(O.OCFS),
    sgls: u32(O.SGLS),
    mnan: u32(O.MNAN),
    maxdna: u128(O.MAXDNA),
    maxcna: u32(O.MAXCNA),
    ...(subnqn.length > 0 ? { subnqn } : {}),
    ioccsz: u32(O.IOCCSZ),
    iorcsz: u32(O.IORCSZ),
    icdoff: u16(O.ICDOFF),
    fcatt: data[O.FCATT],
    msdbd: data[O.MSDBD],
    ofcs: u16(O.OFCS),
    psds,
  };
  raw.set(c, data.slice(0, IDENTIFY_BYTES));
  return c;
}

/** Decode the driver's view of Identify Controller. */
export function decodeIdentifyController(d: Uint8Array): IdentifyController {
  check(d, "Identify Controller");
  return identifyControllerOf(parseIdCtrl(d));
}

/** The driver's view of a decoded Identify Controller. */
export function identifyControllerOf(c: IdCtrl): IdentifyController {
  return {
    vid: c.vid,
    ssvid: c.ssvid,
    serial: trimId(c.sn),
    model: trimId(c.mn),
    firmware: trimId(c.fr),
    mdts: c.mdts,
    cntlid: c.cntlid,
    rtd3e: c.rtd3e,
    oacs: c.oacs,
    aerLimit: c.aerl + 1,
    frmw: c.frmw,
    errorLogEntries: c.elpe + 1,
    sanicap: c.sanicap,
    fwug: c.fwug,
    sqes: { min: c.sqes & 0xf, max: c.sqes >> 4 },
    cqes: { min: c.cqes & 0xf, max: c.cqes >> 4 },
    nn: c.nn,
    oncs: c.oncs,
    fna: c.fna,
    vwc: (c.vwc & 1) === 1,
    cntrltype: c.cntrltype,
    kas: c.kas,
    maxcmd: c.maxcmd,
    sgls: c.sgls,
    subnqn: trimId(c.subnqn ?? ""),
    ioccsz: c.ioccsz,
    iorcsz: c.iorcsz,
    icdoff: c.icdoff,
    msdbd: c.msdbd,
  };
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

/** LBA format `i` of an Identify Namespace structure (any index up to 63, past nlbaf too). */
export function lbaFormatAt(data: Uint8Array, i: number): LbaFormat {
  const off = IdNsOffset.LBAF + LBAF_BYTES * i;
  const L = LbafOffset;
  return { ms: (data[off + L.MS] ?? 0) | ((data[off + L.MS + 1] ?? 0) << 8), ds: data[off + L.LBADS] ?? 0, rp: data[off + L.RP] ?? 0 };
}

/** Index of the LBA format in use: FLBAS bits 3:0, plus bits 6:5 as bits 5:4. */
export function flbasIndex(flbas: number): number {
  return ((flbas & 0x60) >> 1) | (flbas & 0x0f);
}

/** FLBAS for LBA format index `i` (the inverse of {@link flbasIndex}). */
export function flbasOf(i: number): number {
  return (i & 0xf) | ((i >> 4) << 5);
}

/** Decode the 4096-byte Identify Namespace data structure (CNS 00h). */
export function parseIdNs(data: Uint8Array): IdNs {
  const dv = check(data, "parseIdNs");
  const O = IdNsOffset;
  const u16 = (off: number) => dv.getUint16(off, true);
  const u32 = (off: number) => dv.getUint32(off, true);
  const nsfeat = data[O.NSFEAT];
  const nlbaf = data[O.NLBAF];
  const lbafs: LbaFormat[] = [];
  for (let i = 0; i <= nlbaf; i++) lbafs.push(lbaFormatAt(data, i));
  const n: IdNs = {
    nsze: new Uint64(dv.getBigUint64(O.NSZE, true)),
    ncap: new Uint64(dv.getBigUint64(O.NCAP, true)),
    nuse: new Uint64(dv.getBigUint64(O.NUSE, true)),
    nsfeat,
    nlbaf,
    flbas: data[O.FLBAS],
    mc: data[O.MC],
    dpc: data[O.DPC],
    dps: data[O.DPS],
    nmic: data[O.NMIC],
    rescap: data[O.RESCAP],
    fpi: data[O.FPI],
    dlfeat: data[O.DLFEAT],
    nawun: u16(O.NAWUN),
    nawupf: u16(O.NAWUPF),
    nacwu: u16(O.NACWU),
    nabsn: u16(O.NABSN),
    nabo: u16(O.NABO),
    nabspf: u16(O.NABSPF),
    noiob: u16(O.NOIOB),
    nvmcap: new Uint128(getU128(dv, O.NVMCAP)),
    nsattr: data[O.NSATTR],
    nvmsetid: u16(O.NVMSETID),
    ...(nsfeat & 0x10 ? { npwg: u16(O.NPWG), npwa: u16(O.NPWA), npdg: u16(O.NPDG), npda: u16(O.NPDA), nows: u16(O.NOWS) } : {}),
    mssrl: u16(O.MSSRL),
    mcl: u32(O.MCL),
    msrc: data[O.MSRC],
    nulbaf: data[O.NULBAF],
    anagrpid: u32(O.ANAGRPID),
    endgid: u16(O.ENDGID),
    eui64: hexBytes(data, O.EUI64, 8),
    nguid: hexBytes(data, O.NGUID, 16),
    lbafs,
  };
  raw.set(n, data.slice(0, IDENTIFY_BYTES));
  return n;
}

/** Decode the driver's view of Identify Namespace (the LBA format in use). */
export function decodeIdentifyNamespace(d: Uint8Array): IdentifyNamespace {
  check(d, "Identify Namespace");
  return identifyNamespaceOf(parseIdNs(d));
}

/** The driver's view of a decoded Identify Namespace (the LBA format in use). */
export function identifyNamespaceOf(n: IdNs): IdentifyNamespace {
  const lbaFormat = flbasIndex(n.flbas);
  const r = raw.get(n);
  const f = r ? lbaFormatAt(r, lbaFormat) : n.lbafs[lbaFormat] ?? { ms: 0, ds: 0, rp: 0 };
  return {
    nsze: n.nsze.value,
    ncap: n.ncap.value,
    nuse: n.nuse.value,
    lbaFormat,
    blockSize: 2 ** f.ds,
    metadataSize: f.ms,
    flbas: n.flbas,
    dps: n.dps,
    mssrl: n.mssrl,
    mcl: n.mcl,
    msrc: n.msrc + 1,
  };
}

// ---------------------------------------------------------------------------
// NVM Command Set Identify Namespace (CNS 05h, CSI 00h): the extended LBA formats

/** Byte offsets in the NVM command set's I/O Command Set specific Identify Namespace structure. */
export const NvmIdNsOffset = {
  /** Logical Block Storage Tag Mask, 64 bits. */
  LBSTM: 0,
  /** Protection Information Capabilities. */
  PIC: 8,
  /** Extended LBA format 0 (4 bytes each; format i at ELBAF + 4 * i). */
  ELBAF: 12,
} as const;

/** One extended LBA format: storage tag size and protection information format (guard size). */
export interface ExtendedLbaFormat {
  /** Storage Tag Size in bits (ELBAF bits 6:0). */
  sts: number;
  /** Protection Information Format (bits 8:7): 0 16-bit guard, 1 32-bit, 2 64-bit. */
  pif: number;
}

/** The NVM command set's Identify Namespace: keys as nvme-cli's `nvm-id-ns -o json`. */
export interface NvmIdNs {
  /** Logical block storage tag mask. */
  lbstm: Uint64;
  /** Protection information capabilities. */
  pic: number;
  /** Extended LBA formats 0..nlbaf (nlbaf from Identify Namespace). */
  elbafs: ExtendedLbaFormat[];
}

/** Extended LBA format `i` of an NVM command set Identify Namespace structure. */
export function elbafAt(data: Uint8Array, i: number): ExtendedLbaFormat {
  const v = viewOf(data).getUint32(NvmIdNsOffset.ELBAF + 4 * i, true);
  return { sts: v & 0x7f, pif: (v >>> 7) & 3 };
}

/** Write extended LBA format `i` (the inverse of {@link elbafAt}). */
export function encodeElbaf(out: Uint8Array, i: number, f: ExtendedLbaFormat): void {
  viewOf(out).setUint32(NvmIdNsOffset.ELBAF + 4 * i, ((f.sts & 0x7f) | ((f.pif & 3) << 7)) >>> 0, true);
}

/** Decode the NVM command set Identify Namespace (CNS 05h, CSI 00h) for `nlbaf` + 1 formats. */
export function parseNvmIdNs(data: Uint8Array, nlbaf: number): NvmIdNs {
  const dv = check(data, "parseNvmIdNs");
  const elbafs: ExtendedLbaFormat[] = [];
  for (let i = 0; i <= nlbaf && i < 64; i++) elbafs.push(elbafAt(data, i));
  return { lbstm: new Uint64(dv.getBigUint64(NvmIdNsOffset.LBSTM, true)), pic: data[NvmIdNsOffset.PIC], elbafs };
}

// ---------------------------------------------------------------------------
// Lists: namespace ids (CNS 02h, Changed Namespace List log) and controller ids

/**
 * The namespace ids of a list of 32-bit ids (Active Namespace ID list,
 * Changed Namespace List): up to {@link NSID_LIST_ENTRIES}, ending at the
 * first 0 as the specification says, or with `skipZeros` every non-zero
 * entry, as nvme-cli's list-ns prints them.
 */
export function decodeNsidList(d: Uint8Array, skipZeros = false): number[] {
  const dv = viewOf(d);
  const out: number[] = [];
  for (let i = 0; i < NSID_LIST_ENTRIES && i * 4 + 4 <= d.length; i++) {
    const id = dv.getUint32(i * 4, true);
    if (id !== 0) out.push(id);
    else if (!skipZeros) break;
  }
  return out;
}

/** Write up to {@link NSID_LIST_ENTRIES} namespace ids into `out` (the rest stays zero). */
export function encodeNsidList(ids: readonly number[], out: Uint8Array = new Uint8Array(NSID_LIST_ENTRIES * 4)): Uint8Array {
  const dv = viewOf(out);
  for (let i = 0; i < ids.length && i < NSID_LIST_ENTRIES; i++) dv.setUint32(i * 4, ids[i], true);
  return out;
}

/** Write a Controller List (Namespace Attachment data, CNS 12h/13h): a count, then 16-bit ids. */
export function encodeControllerList(ids: readonly number[], out: Uint8Array = new Uint8Array(IDENTIFY_BYTES)): Uint8Array {
  const dv = viewOf(out);
  dv.setUint16(0, ids.length, true);
  ids.forEach((id, i) => dv.setUint16(2 + 2 * i, id, true));
  return out;
}

/** The fields Namespace Management (create) takes from an Identify Namespace structure. */
export interface NamespaceCreate {
  /** Size in logical blocks. */
  nsze: bigint;
  /** Capacity in logical blocks. */
  ncap: bigint;
  /** LBA format index. */
  lbaFormat: number;
  /** End-to-end data protection type settings. */
  dps: number;
  /** Multi-path and sharing capabilities. */
  nmic: number;
}

/** Write the Identify Namespace fields Namespace Management (create) reads into `out` (4096 bytes, zeroed). */
export function encodeNamespaceCreate(n: NamespaceCreate, out: Uint8Array = new Uint8Array(IDENTIFY_BYTES)): Uint8Array {
  const dv = viewOf(out), O = IdNsOffset;
  dv.setBigUint64(O.NSZE, n.nsze, true);
  dv.setBigUint64(O.NCAP, n.ncap, true);
  out[O.FLBAS] = flbasOf(n.lbaFormat);
  out[O.DPS] = n.dps;
  out[O.NMIC] = n.nmic;
  return out;
}

/** Read the Identify Namespace fields Namespace Management (create) takes; the inverse of {@link encodeNamespaceCreate}. */
export function decodeNamespaceCreate(d: Uint8Array): NamespaceCreate & { flbas: number } {
  const dv = viewOf(d), O = IdNsOffset;
  const flbas = d[O.FLBAS];
  return {
    nsze: dv.getBigUint64(O.NSZE, true),
    ncap: dv.getBigUint64(O.NCAP, true),
    lbaFormat: flbasIndex(flbas),
    flbas,
    dps: d[O.DPS],
    nmic: d[O.NMIC],
  };
}

/** The controller ids of a Controller List (at most 2047); the inverse of {@link encodeControllerList}. */
export function decodeControllerList(d: Uint8Array): number[] {
  const dv = viewOf(d);
  const n = Math.min(dv.getUint16(0, true), 2047);
  const out: number[] = [];
  for (let i = 0; i < n && 4 + 2 * i <= d.length; i++) out.push(dv.getUint16(2 + 2 * i, true));
  return out;
}

/** One Namespace Identification Descriptor (CNS 03h) as the list carries it. */
export interface NsIdDescriptor {
  /** Byte offset of the descriptor in the list. */
  loc: number;
  /** Type (NIDT: 1 EUI-64, 2 NGUID, 3 UUID, 4 CSI). */
  nidt: number;
  /** Length of the identifier (NIDL). */
  nidl: number;
  /** The identifier's bytes (NIDL of them, fewer where the list is cut short). */
  id: Uint8Array;
}

/** Bytes of a descriptor's header (NIDT, NIDL, two reserved). */
const NS_DESC_HEADER = 4;

/** Walk a Namespace Identification Descriptor list (up to 4096 bytes; a zero length ends it). */
export function decodeNsDescriptors(d: Uint8Array): NsIdDescriptor[] {
  const out: NsIdDescriptor[] = [];
  const end = Math.min(IDENTIFY_BYTES, d.length);
  let pos = 0;
  while (pos + NS_DESC_HEADER <= end) {
    const nidt = d[pos], nidl = d[pos + 1];
    if (nidl === 0) break;
    out.push({ loc: pos, nidt, nidl, id: d.subarray(pos + NS_DESC_HEADER, pos + NS_DESC_HEADER + nidl) });
    pos += NS_DESC_HEADER + nidl;
  }
  return out;
}

/** Write a Namespace Identification Descriptor list into `out` (the rest stays zero, which ends the list). */
export function encodeNsDescriptors(list: readonly Pick<NsIdDescriptor, "nidt" | "id">[], out: Uint8Array = new Uint8Array(IDENTIFY_BYTES)): Uint8Array {
  let pos = 0;
  for (const { nidt, id } of list) {
    out[pos] = nidt;
    out[pos + 1] = id.length;
    out.set(id, pos + NS_DESC_HEADER);
    pos += NS_DESC_HEADER + id.length;
  }
  return out;
}
