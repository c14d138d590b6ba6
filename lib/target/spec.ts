/**
 * Layouts and values the target needs beyond what lib/nvme and lib/tcp
 * already name: bit values of Identify fields a fabrics controller fills (NVMe Base 2.0,
 * figure 275), the Connect status codes (NVMe over Fabrics 1.1, figure
 * 20), and the CC fields the target checks.
 * @module
 */

/** CTRATT bits a fabrics target sets. */
export const Ctratt = {
  /** 128-bit host identifier. */
  HOSTID_128: 1 << 0,
  /** Traffic-based keep-alive: any command restarts the keep-alive timer. */
  TBKAS: 1 << 6,
} as const;

/** OAES / Asynchronous Event Configuration bits. */
export const Oaes = {
  /** Namespace attribute notices (Changed Namespace List log). */
  NS_ATTR: 1 << 8,
  /** Discovery log page change notices (discovery controllers). */
  DISC_CHANGE: 1 << 31,
} as const;

/** LPA bits. */
export const Lpa = {
  SMART_PER_NS: 1 << 0,
  CMD_EFFECTS: 1 << 1,
  EXTENDED_DATA: 1 << 2,
} as const;

/** SGLS bits. */
export const Sgls = {
  SUPPORTED: 1 << 0,
  KEYED: 1 << 2,
  /** Address field of a Data Block descriptor may be an offset (in-capsule data). */
  OFFSET: 1 << 20,
} as const;

/** CNTRLTYPE values. */
export const CntrlType = { IO: 1, DISCOVERY: 2 } as const;

/** Status values (15-bit status field: SC | SCT << 8 | DNR << 14). */
export const Sf = {
  SUCCESS: 0x000,
  INVALID_OPCODE: 0x001,
  INVALID_FIELD: 0x002,
  DATA_TRANSFER: 0x004,
  INTERNAL: 0x006,
  INVALID_NS: 0x00b,
  SEQUENCE: 0x00c,
  SGL_LENGTH: 0x00f,
  SGL_TYPE: 0x011,
  LBA_RANGE: 0x080,
  KEEP_ALIVE_EXPIRED: 0x019,
  AER_LIMIT: 0x105,
  INVALID_LOG_PAGE: 0x109,
  NOT_SAVEABLE: 0x10d,
  /** Connect: incompatible format (RECFMT). */
  CONNECT_FORMAT: 0x180,
  /** Connect: controller busy (the queue is already connected). */
  CONNECT_BUSY: 0x181,
  /** Connect: invalid parameters; DW0 holds IATTR/IPO. */
  CONNECT_INVALID: 0x182,
  /** Connect: host not allowed; DW0 holds IATTR/IPO of HOSTNQN. */
  CONNECT_INVALID_HOST: 0x184,
  DNR: 0x4000,
} as const;

/** Connect DW0 on invalid parameters: IATTR (bit 16: in the data) | IPO. */
export function connectIpo(inData: boolean, offset: number): number {
  return (inData ? 1 << 16 : 0) | offset;
}

/** CC fields the model checks on enable (bit positions). */
export const CcField = {
  CSS_SHIFT: 4,
  MPS_SHIFT: 7,
  AMS_SHIFT: 11,
  SHN_SHIFT: 14,
  IOSQES_SHIFT: 16,
  IOCQES_SHIFT: 20,
} as const;

/** Fixed IO queue entry sizes a controller accepts (log2 bytes). */
export const IOSQES = 6;
/** See {@link IOSQES}. */
export const IOCQES = 4;

/** Keep-alive timeout a discovery controller uses when the host gave none (nvmet's NVMET_DISC_KATO_MS). */
export const DISCOVERY_KATO_MS = 120_000;

/** CDW12 bits of Read/Write the target's fast path reads. */
export const RwFlags = { FUA: 1 << 30 } as const;

