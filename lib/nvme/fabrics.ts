/**
 * NVMe over Fabrics commands (opcode 7Fh): Connect, Property Get and
 * Property Set, with the Connect data block (host ID, cntlid, NQNs). Builders
 * return SQEs in the same 16-dword form as lib/nvme/command.ts.
 * @module
 */
import type { Sqe } from "./command.ts";
import { InvalidArgumentError } from "./errors.ts";

/** The Fabrics command opcode. */
export const FABRICS_OPCODE = 0x7f;

/** Fabrics Command Types (SQE byte 4). */
export const FcType = {
  PROPERTY_SET: 0x00,
  CONNECT: 0x01,
  PROPERTY_GET: 0x04,
  AUTH_SEND: 0x05,
  AUTH_RECEIVE: 0x06,
} as const;

/** Byte offsets of Fabrics fields inside the SQE. */
export const FabricsSqe = {
  FCTYPE: 4,
  /** Connect: record format (0). */
  RECFMT: 40,
  /** Connect: queue id. */
  QID: 42,
  /** Connect: SQ size, 0's based. */
  SQSIZE: 44,
  /** Connect: connect attributes (bit 2: disable SQ flow control). */
  CATTR: 46,
  /** Connect: keep-alive timeout in ms. */
  KATO: 48,
  /** Property Get/Set: bit 0 = 8-byte property. */
  ATTRIB: 40,
  /** Property Get/Set: property offset (the PCIe register offset). */
  OFST: 44,
  /** Property Set: value (8 bytes). */
  VALUE: 48,
} as const;

/** Connect CATTR bit: disable SQ flow control (the controller reports SQHD 0xFFFF). */
export const CATTR_DISABLE_SQFLOW = 0x04;

/** Byte offsets inside the 1024-byte Connect data. */
export const ConnectData = {
  HOSTID: 0,
  CNTLID: 16,
  SUBNQN: 256,
  HOSTNQN: 512,
  SIZE: 1024,
} as const;

/** Longest NQN (bytes, without the NUL). */
export const NQN_MAX = 223;

/** CNTLID asked for on an admin Connect: any (dynamic controller model). */
export const CNTLID_DYNAMIC = 0xffff;

/** The well-known discovery subsystem NQN. */
export const DISCOVERY_NQN = "nqn.2014-08.org.nvmexpress.discovery";

/** Connect status SC 82h (SCT 1): Connect Invalid Parameters; DW0 then holds IATTR/IPO. */
export const SC_CONNECT_INVALID_PARAM = 0x182;

function fabrics(fctype: number): Sqe {
  const s = new Uint32Array(16);
  s[0] = FABRICS_OPCODE;
  s[1] = fctype; // byte 4 = FCTYPE (dword 1 byte 0)
  return s;
}

/** Connect options. */
export interface ConnectParams {
  /** Queue id (0 = admin). */
  qid: number;
  /** Submission queue entries (1's based here; sent 0's based). */
  entries: number;
  /** Keep-alive timeout in ms (admin queue; 0 = none). */
  katoMs?: number;
  /** CATTR bits (e.g. {@link CATTR_DISABLE_SQFLOW}). */
  cattr?: number;
}

/** A Connect command (its 1024-byte data goes in-capsule; the transport sets the SGL). */
export function connectCmd(p: ConnectParams): Sqe {
  if (p.entries < 2 || p.entries > 0x10000) throw new InvalidArgumentError(`connect: ${p.entries} entries`);
  const s = fabrics(FcType.CONNECT);
  s[10] = ((p.qid & 0xffff) << 16) >>> 0; // RECFMT 0 | QID
  s[11] = ((p.entries - 1) & 0xffff) | ((p.cattr ?? 0) & 0xff) << 16;
  s[12] = (p.katoMs ?? 0) >>> 0;
  return s;
}

/** Connect data fields. */
export interface ConnectDataParams {
  /** 16-byte host identifier (keep it stable: targets match controllers by it). */
  hostid: Uint8Array;
  /** {@link CNTLID_DYNAMIC} on the admin queue, the granted cntlid on IO queues. */
  cntlid: number;
  /** Subsystem NQN to connect to. */
  subnqn: string;
  /** Host NQN (allow-lists key on it). */
  hostnqn: string;
}

function putNqn(b: Uint8Array, off: number, nqn: string, what: string): void {
  const e = new TextEncoder().encode(nqn);
  if (e.length === 0 || e.length > NQN_MAX) throw new InvalidArgumentError(`${what} must be 1..${NQN_MAX} bytes: "${nqn}"`);
  b.set(e, off);
}

/** The 1024-byte Connect data block. */
export function connectData(p: ConnectDataParams): Uint8Array {
  if (p.hostid.length !== 16) throw new InvalidArgumentError("hostid must be 16 bytes");
  const b = new Uint8Array(ConnectData.SIZE);
  b.set(p.hostid, ConnectData.HOSTID);
  b[ConnectData.CNTLID] = p.cntlid & 0xff;
  b[ConnectData.CNTLID + 1] = (p.cntlid >>> 8) & 0xff;
  putNqn(b, ConnectData.SUBNQN, p.subnqn, "subnqn");
  putNqn(b, ConnectData.HOSTNQN, p.hostnqn, "hostnqn");
  return b;
}

/** A NUL-terminated string field of a data block. */
export function readNqn(b: Uint8Array, off: number, max = 256): string {
  let end = off;
  while (end < off + max && b[end] !== 0) end++;
  return new TextDecoder().decode(b.subarray(off, end));
}

/** Decode a Connect data block (the target's side). */
export function decodeConnectData(b: Uint8Array): ConnectDataParams {
  return {
    hostid: b.slice(ConnectData.HOSTID, ConnectData.HOSTID + 16),
    cntlid: b[ConnectData.CNTLID] | (b[ConnectData.CNTLID + 1] << 8),
    subnqn: readNqn(b, ConnectData.SUBNQN),
    hostnqn: readNqn(b, ConnectData.HOSTNQN),
  };
}

/** Property Get of the register at `offset` (4 or 8 bytes); the value comes back in CQE DW0/DW1. */
export function propertyGetCmd(offset: number, eightBytes: boolean): Sqe {
  const s = fabrics(FcType.PROPERTY_GET);
  s[10] = eightBytes ? 1 : 0;
  s[11] = offset >>> 0;
  return s;
}

/** Property Set of the register at `offset` (nvmet accepts only CC, 4 bytes). */
export function propertySetCmd(offset: number, value: bigint, eightBytes: boolean): Sqe {
  const s = fabrics(FcType.PROPERTY_SET);
  s[10] = eightBytes ? 1 : 0;
  s[11] = offset >>> 0;
  s[12] = Number(value & 0xffffffffn);
  s[13] = Number((value >> 32n) & 0xffffffffn);
  return s;
}

/**
 * Data direction of a command from its opcode (bits 1:0), or for Fabrics
 * commands from FCTYPE: 1 host to controller, 2 controller to host, 3 both, 0 none.
 */
export function dataDirection(cdw0: number, cdw1: number): number {
  const opc = cdw0 & 0xff;
  return (opc === FABRICS_OPCODE ? cdw1 & 0xff : opc) & 3;
}

/** A stable host identity: NQN and 16-byte host ID derived from one UUID string. */
export interface HostIdentity {
  /** Host NQN. */
  hostnqn: string;
  /** Host ID (16 bytes). */
  hostid: Uint8Array;
}

/** The host identity for UUID `uuid` (as nvme-cli's gen-hostnqn: nqn.2014-08.org.nvmexpress:uuid:UUID). */
export function hostIdentity(uuid: string): HostIdentity {
  const hex = uuid.replace(/-/g, "");
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new InvalidArgumentError(`not a UUID: ${uuid}`);
  const hostid = new Uint8Array(16);
  for (let i = 0; i < 16; i++) hostid[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return { hostnqn: `nqn.2014-08.org.nvmexpress:uuid:${uuid.toLowerCase()}`, hostid };
}
