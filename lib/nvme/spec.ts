/**
 * NVMe base specification definitions (2.0): controller registers, command and
 * completion layouts, opcodes and status codes. The single source of these numbers.
 * @module
 */

/** Controller register offsets in BAR0. */
export const Reg = {
  CAP: 0x00,
  VS: 0x08,
  INTMS: 0x0c,
  INTMC: 0x10,
  CC: 0x14,
  CSTS: 0x1c,
  NSSR: 0x20,
  AQA: 0x24,
  ASQ: 0x28,
  ACQ: 0x30,
  CMBLOC: 0x38,
  CMBSZ: 0x3c,
  /** Boot Partition Information. */
  BPINFO: 0x40,
  /** Boot Partition Read Select. */
  BPRSEL: 0x44,
  /** Boot Partition Memory Buffer Location (64-bit). */
  BPMBL: 0x48,
  /** Controller Memory Buffer Memory Space Control (64-bit). */
  CMBMSC: 0x50,
  /** Controller Memory Buffer Status. */
  CMBSTS: 0x58,
  /** Controller Ready Timeouts. */
  CRTO: 0x68,
  /** Persistent Memory Region Capabilities. */
  PMRCAP: 0xe00,
  /** PMR Control. */
  PMRCTL: 0xe04,
  /** PMR Status. */
  PMRSTS: 0xe08,
  /** PMR Elasticity Buffer Size. */
  PMREBS: 0xe0c,
  /** PMR Sustained Write Throughput. */
  PMRSWTP: 0xe10,
  /** PMR Controller Memory Space Control, lower 32 bits. */
  PMRMSCL: 0xe14,
  /** PMR Controller Memory Space Control, upper 32 bits. */
  PMRMSCU: 0xe18,
  /** First doorbell register (SQ0TDBL). */
  DOORBELL: 0x1000,
} as const;

/** Bytes of the controller register block before the doorbells that nvme-cli dumps (0x0000-0x0e1b). */
export const REG_BLOCK_SIZE = 0x0e1c;

/** Value written to NSSR to start an NVM Subsystem Reset ("NVMe" in ASCII). */
export const NSSR_RESET = 0x4e56_4d65;

/** Decoded Controller Capabilities (CAP). */
export interface Cap {
  /** Maximum queue entries supported, as a count (MQES + 1). */
  mqes: number;
  /** Contiguous queues required. */
  cqr: boolean;
  /** Worst-case ready transition time in ms (CAP.TO * 500). */
  timeoutMs: number;
  /** Doorbell stride in bytes (4 << DSTRD). */
  doorbellStride: number;
  /** NVM subsystem reset supported. */
  nssrs: boolean;
  /** Command sets supported (CSS bitmask). */
  css: number;
  /** Minimum memory page size in bytes. */
  mpsMin: number;
  /** Maximum memory page size in bytes. */
  mpsMax: number;
}

/** Decode the 64-bit CAP register. */
export function decodeCap(cap: bigint): Cap {
  const lo = Number(cap & 0xffff_ffffn);
  const hi = Number(cap >> 32n);
  return {
    mqes: (lo & 0xffff) + 1,
    cqr: ((lo >>> 16) & 1) === 1,
    timeoutMs: ((lo >>> 24) & 0xff) * 500,
    doorbellStride: 4 << (hi & 0xf),
    nssrs: ((hi >>> 4) & 1) === 1,
    css: (hi >>> 5) & 0xff,
    mpsMin: 1 << (12 + ((hi >>> 16) & 0xf)),
    mpsMax: 1 << (12 + ((hi >>> 20) & 0xf)),
  };
}

/** Decode the VS register into "major.minor.tertiary". */
export function decodeVersion(vs: number): string {
  return `${vs >>> 16}.${(vs >>> 8) & 0xff}.${vs & 0xff}`;
}

/** Controller Configuration (CC) fields. */
export const CC = {
  EN: 1 << 0,
  /** Shutdown notification: normal. */
  SHN_NORMAL: 1 << 14,
  /** Shutdown notification: abrupt. */
  SHN_ABRUPT: 2 << 14,
  SHN_MASK: 3 << 14,
  /** Bit positions of the multi-bit fields. */
  CSS_SHIFT: 4,
  MPS_SHIFT: 7,
  AMS_SHIFT: 11,
  SHN_SHIFT: 14,
  IOSQES_SHIFT: 16,
  IOCQES_SHIFT: 20,
} as const;

/** CAP.CSS bit: the controller supports one or more IO command sets (select with CC.CSS = 110b). */
export const CAP_CSS_IOCS = 1 << 6;
/** CC.CSS value that enables every IO command set the controller supports. */
export const CC_CSS_ALL = 0b110;

/** Build a CC value for enabling the controller (CSS 0: NVM command set only). */
export function ccValue(pageSize: number, sqes = 6, cqes = 4, css = 0): number {
  const mps = Math.log2(pageSize) - 12;
  return (CC.EN | ((css & 7) << CC.CSS_SHIFT) | (mps << CC.MPS_SHIFT) | (0 << CC.AMS_SHIFT) |
    (sqes << CC.IOSQES_SHIFT) | (cqes << CC.IOCQES_SHIFT)) >>> 0;
}

/** Controller Status (CSTS) fields. */
export const CSTS = {
  RDY: 1 << 0,
  CFS: 1 << 1,
  SHST_MASK: 3 << 2,
  SHST_COMPLETE: 2 << 2,
  NSSRO: 1 << 4,
  PP: 1 << 5,
} as const;

/** Submission queue entry size in bytes. */
export const SQE_SIZE = 64;
/** Completion queue entry size in bytes. */
export const CQE_SIZE = 16;

/** Admin command opcodes. */
export const AdminOpc = {
  DELETE_IO_SQ: 0x00,
  CREATE_IO_SQ: 0x01,
  GET_LOG_PAGE: 0x02,
  DELETE_IO_CQ: 0x04,
  CREATE_IO_CQ: 0x05,
  IDENTIFY: 0x06,
  ABORT: 0x08,
  SET_FEATURES: 0x09,
  GET_FEATURES: 0x0a,
  ASYNC_EVENT_REQUEST: 0x0c,
  NS_MANAGEMENT: 0x0d,
  FW_COMMIT: 0x10,
  FW_IMAGE_DOWNLOAD: 0x11,
  DEVICE_SELF_TEST: 0x14,
  NS_ATTACHMENT: 0x15,
  KEEP_ALIVE: 0x18,
  DIRECTIVE_SEND: 0x19,
  DIRECTIVE_RECEIVE: 0x1a,
  VIRTUALIZATION_MGMT: 0x1c,
  DOORBELL_BUFFER_CONFIG: 0x7c,
  FORMAT_NVM: 0x80,
  SECURITY_SEND: 0x81,
  SECURITY_RECEIVE: 0x82,
  SANITIZE: 0x84,
} as const;

/** NVM command set IO opcodes. */
export const IoOpc = {
  FLUSH: 0x00,
  WRITE: 0x01,
  READ: 0x02,
  WRITE_UNCORRECTABLE: 0x04,
  COMPARE: 0x05,
  WRITE_ZEROES: 0x08,
  DATASET_MANAGEMENT: 0x09,
  VERIFY: 0x0c,
  COPY: 0x19,
} as const;

/** Identify CNS values. */
export const Cns = {
  NAMESPACE: 0x00,
  CONTROLLER: 0x01,
  ACTIVE_NS_LIST: 0x02,
  NS_DESCRIPTORS: 0x03,
  /** I/O Command Set specific Identify Namespace. */
  CSI_NS: 0x05,
  /** I/O Command Set specific Identify Controller. */
  CSI_CTRL: 0x06,
  ALLOCATED_NS_LIST: 0x10,
  ALLOCATED_NS: 0x11,
  /** Controllers attached to a namespace. */
  NS_CTRL_LIST: 0x12,
  /** Controllers in the subsystem. */
  CTRL_LIST: 0x13,
} as const;

/** Feature identifiers. */
export const Fid = {
  ARBITRATION: 0x01,
  POWER_MGMT: 0x02,
  TEMP_THRESHOLD: 0x04,
  ERROR_RECOVERY: 0x05,
  VOLATILE_WC: 0x06,
  NUM_QUEUES: 0x07,
  IRQ_COALESCING: 0x08,
  IRQ_CONFIG: 0x09,
  WRITE_ATOMICITY: 0x0a,
  ASYNC_EVENT: 0x0b,
  TIMESTAMP: 0x0e,
  /** Keep Alive Timer (KATO, ms). */
  KEEP_ALIVE_TIMER: 0x0f,
  HOST_BEHAVIOR: 0x16,
} as const;

/** Status code types (SCT). */
export const Sct = {
  GENERIC: 0,
  COMMAND_SPECIFIC: 1,
  MEDIA: 2,
  PATH: 3,
  VENDOR: 7,
} as const;

const GENERIC: Record<number, string> = {
  0x00: "Successful Completion",
  0x01: "Invalid Command Opcode",
  0x02: "Invalid Field in Command",
  0x03: "Command ID Conflict",
  0x04: "Data Transfer Error",
  0x05: "Commands Aborted due to Power Loss Notification",
  0x06: "Internal Error",
  0x07: "Command Abort Requested",
  0x08: "Command Aborted due to SQ Deletion",
  0x09: "Command Aborted due to Failed Fused Command",
  0x0a: "Command Aborted due to Missing Fused Command",
  0x0b: "Invalid Namespace or Format",
  0x0c: "Command Sequence Error",
  0x0d: "Invalid SGL Segment Descriptor",
  0x0e: "Invalid Number of SGL Descriptors",
  0x0f: "Data SGL Length Invalid",
  0x10: "Metadata SGL Length Invalid",
  0x11: "SGL Descriptor Type Invalid",
  0x12: "Invalid Use of Controller Memory Buffer",
  0x13: "PRP Offset Invalid",
  0x14: "Atomic Write Unit Exceeded",
  0x15: "Operation Denied",
  0x16: "SGL Offset Invalid",
  0x18: "Host Identifier Inconsistent Format",
  0x19: "Keep Alive Timer Expired",
  0x1a: "Keep Alive Timeout Invalid",
  0x1b: "Command Aborted due to Preempt and Abort",
  0x1c: "Sanitize Failed",
  0x1d: "Sanitize In Progress",
  0x1e: "SGL Data Block Granularity Invalid",
  0x1f: "Command Not Supported for Queue in CMB",
  0x20: "Namespace is Write Protected",
  0x21: "Command Interrupted",
  0x22: "Transient Transport Error",
  0x23: "Command Prohibited by Command and Feature Lockdown",
  0x24: "Admin Command Media Not Ready",
  0x80: "LBA Out of Range",
  0x81: "Capacity Exceeded",
  0x82: "Namespace Not Ready",
  0x83: "Reservation Conflict",
  0x84: "Format In Progress",
};

const COMMAND_SPECIFIC: Record<number, string> = {
  0x00: "Completion Queue Invalid",
  0x01: "Invalid Queue Identifier",
  0x02: "Invalid Queue Size",
  0x03: "Abort Command Limit Exceeded",
  0x05: "Asynchronous Event Request Limit Exceeded",
  0x06: "Invalid Firmware Slot",
  0x07: "Invalid Firmware Image",
  0x08: "Invalid Interrupt Vector",
  0x09: "Invalid Log Page",
  0x0a: "Invalid Format",
  0x0b: "Firmware Activation Requires Conventional Reset",
  0x0c: "Invalid Queue Deletion",
  0x0d: "Feature Identifier Not Saveable",
  0x0e: "Feature Not Changeable",
  0x0f: "Feature Not Namespace Specific",
  0x10: "Firmware Activation Requires NVM Subsystem Reset",
  0x11: "Firmware Activation Requires Controller Level Reset",
  0x12: "Firmware Activation Requires Maximum Time Violation",
  0x13: "Firmware Activation Prohibited",
  0x14: "Overlapping Range",
  0x15: "Namespace Insufficient Capacity",
  0x16: "Namespace Identifier Unavailable",
  0x18: "Namespace Already Attached",
  0x19: "Namespace Is Private",
  0x1a: "Namespace Not Attached",
  0x1b: "Thin Provisioning Not Supported",
  0x1c: "Controller List Invalid",
  0x1d: "Device Self-test In Progress",
  0x1e: "Boot Partition Write Prohibited",
  0x1f: "Invalid Controller Identifier",
  0x20: "Invalid Secondary Controller State",
  0x21: "Invalid Number of Controller Resources",
  0x22: "Invalid Resource Identifier",
  0x23: "Sanitize Prohibited While Persistent Memory Region is Enabled",
  0x24: "ANA Group Identifier Invalid",
  0x25: "ANA Attach Failed",
  0x80: "Conflicting Attributes",
  0x81: "Invalid Protection Information",
  0x82: "Attempted Write to Read Only Range",
  0x83: "Command Size Limit Exceeded",
  // Zoned Namespace Command Set
  0xb8: "Zone Boundary Error",
  0xb9: "Zone Is Full",
  0xba: "Zone Is Read Only",
  0xbb: "Zone Is Offline",
  0xbc: "Zone Invalid Write",
  0xbd: "Too Many Active Zones",
  0xbe: "Too Many Open Zones",
  0xbf: "Invalid Zone State Transition",
};

const MEDIA: Record<number, string> = {
  0x80: "Write Fault",
  0x81: "Unrecovered Read Error",
  0x82: "End-to-end Guard Check Error",
  0x83: "End-to-end Application Tag Check Error",
  0x84: "End-to-end Reference Tag Check Error",
  0x85: "Compare Failure",
  0x86: "Access Denied",
  0x87: "Deallocated or Unwritten Logical Block",
  0x88: "End-to-End Storage Tag Check Error",
};

const PATH: Record<number, string> = {
  0x00: "Internal Path Error",
  0x01: "Asymmetric Access Persistent Loss",
  0x02: "Asymmetric Access Inaccessible",
  0x03: "Asymmetric Access Transition",
  0x60: "Controller Pathing Error",
  0x70: "Host Pathing Error",
  0x71: "Command Aborted By Host",
};

/**
 * Status values (SC | SCT << 8) the driver branches on and the device side
 * (software controller, target) returns. Connect's own are in lib/nvme/fabrics.ts.
 */
export const Status = {
  SUCCESS: 0x000,
  INVALID_OPCODE: 0x001,
  INVALID_FIELD: 0x002,
  DATA_TRANSFER: 0x004,
  ABORT_REQUESTED: 0x007,
  SQ_DELETION: 0x008,
  INTERNAL_ERROR: 0x006,
  INVALID_NAMESPACE: 0x00b,
  SEQUENCE_ERROR: 0x00c,
  SGL_LENGTH_INVALID: 0x00f,
  SGL_TYPE_INVALID: 0x011,
  KEEP_ALIVE_EXPIRED: 0x019,
  LBA_OUT_OF_RANGE: 0x080,
  AER_LIMIT: 0x105,
  INVALID_LOG_PAGE: 0x109,
  NOT_SAVEABLE: 0x10d,
  COMPARE_FAILURE: 0x285,
} as const;

/** Do Not Retry, bit 14 of the 15-bit status field. */
export const STATUS_DNR = 1 << 14;

/** Decoded 15-bit status field of a completion (CQE DW3 bits 31:17). */
export interface DecodedStatus {
  /** Status code type. */
  sct: number;
  /** Status code. */
  sc: number;
  /** (sct << 8) | sc: nvme-cli's way to print a status, e.g. 0x4001 with DNR. */
  code: number;
  /** Command Retry Delay index. */
  crd: number;
  /** More information in the error log. */
  more: boolean;
  /** Do Not Retry. */
  dnr: boolean;
  /** Human-readable name from the specification. */
  name: string;
}

/** Name of a status from its SCT and SC. */
export function statusName(sct: number, sc: number): string {
  const table = sct === 0 ? GENERIC : sct === 1 ? COMMAND_SPECIFIC : sct === 2 ? MEDIA : sct === 3 ? PATH : undefined;
  const n = table?.[sc];
  if (n) return n;
  if (sct === 7) return `Vendor Specific (sc 0x${sc.toString(16)})`;
  return `Unknown status (sct ${sct}, sc 0x${sc.toString(16)})`;
}

/** Decode the status field: `sf` is CQE DW3 >>> 17 (phase bit removed). */
export function decodeStatus(sf: number): DecodedStatus {
  const sc = sf & 0xff;
  const sct = (sf >>> 8) & 0x7;
  return {
    sct,
    sc,
    code: (sct << 8) | sc,
    crd: (sf >>> 11) & 0x3,
    more: ((sf >>> 13) & 1) === 1,
    dnr: ((sf >>> 14) & 1) === 1,
    name: statusName(sct, sc),
  };
}

/** The 15-bit status field back from its decoded form (the inverse of {@link decodeStatus}). */
export function encodeStatus(st: DecodedStatus): number {
  return st.sc | (st.sct << 8) | (st.crd << 11) | (st.more ? 1 << 13 : 0) | (st.dnr ? 1 << 14 : 0);
}

/** Log page identifiers (Get Log Page CDW10 LID). */
export const LogId = {
  ERROR: 0x01,
  SMART: 0x02,
  FW_SLOT: 0x03,
  CHANGED_NS: 0x04,
  CMD_EFFECTS: 0x05,
  SELF_TEST: 0x06,
  SANITIZE: 0x81,
} as const;

/** Get Features select (CDW10 SEL). */
export const FeatureSel = {
  CURRENT: 0,
  DEFAULT: 1,
  SAVED: 2,
  SUPPORTED: 3,
} as const;

/** Sanitize Action (CDW10 SANACT). */
export const SanitizeAction = {
  EXIT_FAILURE: 1,
  BLOCK_ERASE: 2,
  OVERWRITE: 3,
  CRYPTO_ERASE: 4,
} as const;

/** Firmware Commit Action (CDW10 CA). */
export const FwCommitAction = {
  /** Download replaces the image in the slot; not activated. */
  REPLACE: 0,
  /** Replace, and activate at the next reset. */
  REPLACE_AND_ACTIVATE: 1,
  /** Activate an existing slot at the next reset. */
  ACTIVATE: 2,
  /** Replace and activate now, without a reset. */
  REPLACE_AND_ACTIVATE_NOW: 3,
  /** Download replaces the boot partition BPID. */
  REPLACE_BOOT_PARTITION: 6,
  /** Mark boot partition BPID active. */
  ACTIVATE_BOOT_PARTITION: 7,
} as const;

/** Device Self-test Code (CDW10 STC). */
export const SelfTestCode = {
  SHORT: 0x1,
  EXTENDED: 0x2,
  VENDOR: 0xe,
  ABORT: 0xf,
} as const;

/** Namespace Identification Descriptor types (NIDT). */
export const Nidt = {
  EUI64: 1,
  NGUID: 2,
  UUID: 3,
  CSI: 4,
} as const;

/** Asynchronous event types (completion DW0 bits 2:0). */
export const AsyncEventType = {
  ERROR: 0,
  SMART: 1,
  NOTICE: 2,
  IMMEDIATE: 3,
  IO_COMMAND_SET: 6,
  VENDOR: 7,
} as const;
