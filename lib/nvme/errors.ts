/**
 * The typed error family. Every error tsnvme throws is an {@link NvmeError};
 * `code` tells the kind without instanceof, which also survives postMessage.
 * @module
 */
import { type DecodedStatus, decodeStatus, encodeStatus, Status } from "./spec.ts";
import type { TraceEntry } from "./trace.ts";
import { type PiCheck, piCheckOf } from "./pi.ts";

/** Kinds of {@link NvmeError}. */
export type NvmeErrorCode =
  | "EINVAL_ARG"
  | "ECLOSED"
  | "ESTATUS"
  | "EMISCOMPARE"
  | "EZONE"
  | "EPI"
  | "ETIMEDOUT"
  | "EFATAL"
  | "EGONE"
  | "ERESET"
  | "ESETUP"
  | "EBUSY"
  | "EUNSUPPORTED"
  | "ESYSCALL"
  | "ENOMEM"
  | "EABORTED"
  | "EPROTO"
  | "ECONNLOST";

/** Base class of every error tsnvme throws. */
export class NvmeError extends Error {
  /** Machine-readable kind. */
  readonly code: NvmeErrorCode;
  /** Create an error of kind `code`. */
  constructor(code: NvmeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** Bad input rejected before anything reached the device. */
export class InvalidArgumentError extends NvmeError {
  /** Create from a message naming the bad argument. */
  constructor(message: string) {
    super("EINVAL_ARG", message);
  }
}

/** The device (or queue) was closed. */
export class DeviceClosedError extends NvmeError {
  /** Create with an optional detail. */
  constructor(message = "device is closed") {
    super("ECLOSED", message);
  }
}

/** Where a failed command was sent. */
export interface CommandContext {
  /** Queue id (0 = admin). */
  qid: number;
  /** Command identifier. */
  cid: number;
  /** Opcode. */
  opcode: number;
  /** Namespace id, when relevant. */
  nsid?: number;
}

/** The controller completed a command with a non-zero status. */
export class NvmeStatusError extends NvmeError {
  /** Decoded status (SCT, SC, DNR, More, name). */
  readonly status: DecodedStatus;
  /** Command Specific DW0 of the completion. */
  readonly dw0: number;
  /** Which command failed. */
  readonly command: CommandContext;
  /** Create from the raw 15-bit status field. */
  constructor(sf: number, dw0: number, command: CommandContext, code: NvmeErrorCode = "ESTATUS") {
    const st = decodeStatus(sf);
    const q = command.qid === 0 ? "admin" : `io q${command.qid}`;
    super(
      code,
      `NVMe ${q} opcode 0x${command.opcode.toString(16).padStart(2, "0")} failed: ${st.name} ` +
        `(sct 0x${st.sct.toString(16)}, sc 0x${st.sc.toString(16).padStart(2, "0")}` +
        `${st.dnr ? ", DNR" : ""}${st.more ? ", More" : ""})`,
    );
    this.status = st;
    this.dw0 = dw0;
    this.command = command;
  }
  /** True for Invalid Command Opcode: the controller does not implement the command. */
  get unsupported(): boolean {
    return this.status.code === Status.INVALID_OPCODE;
  }
}

/** Compare command found different data (Compare Failure, SCT 2 SC 85h). */
export class NvmeCompareError extends NvmeStatusError {
  /** Create from the raw status field. */
  constructor(sf: number, dw0: number, command: CommandContext) {
    super(sf, dw0, command, "EMISCOMPARE");
  }
}

/** Which zone rule a zoned command broke (Command Specific status B8h-BFh). */
export type ZoneErrorKind =
  | "boundary"
  | "full"
  | "read-only"
  | "offline"
  | "invalid-write"
  | "too-many-active"
  | "too-many-open"
  | "invalid-transition";

const ZONE_ERRORS: readonly ZoneErrorKind[] = [
  "boundary", "full", "read-only", "offline", "invalid-write", "too-many-active", "too-many-open", "invalid-transition",
];

/** The zone state error a status field names (SCT 1, SC B8h-BFh), or null. */
export function zoneErrorKind(sf: number): ZoneErrorKind | null {
  const code = sf & 0x7ff;
  return code >= 0x1b8 && code <= 0x1bf ? ZONE_ERRORS[code - 0x1b8] : null;
}

/** A zoned command broke a zone rule: writing a full zone, appending to an offline one, an invalid transition... */
export class NvmeZoneError extends NvmeStatusError {
  /** Which rule ({@link ZoneErrorKind}). */
  readonly zone: ZoneErrorKind;
  /** Create from the raw status field (SCT 1, SC B8h-BFh). */
  constructor(sf: number, dw0: number, command: CommandContext) {
    super(sf, dw0, command, "EZONE");
    this.zone = zoneErrorKind(sf)!;
  }
}

/**
 * The controller found bad protection information (End-to-end Guard, Application
 * Tag or Reference Tag Check Error, SCT 2 SC 82h-84h); `check` names which.
 */
export class NvmePiError extends NvmeStatusError {
  /** The check that failed. */
  readonly check: PiCheck;
  /** Create from the raw status field (one of the three PI statuses). */
  constructor(sf: number, dw0: number, command: CommandContext) {
    super(sf, dw0, command, "EPI");
    this.check = piCheckOf(sf) ?? "guard";
  }
}

/**
 * The host's own PI check failed on a block read back (or about to be
 * written): `check` names which, `lba` the block; `expected`/`actual` are
 * the tag or guard values (guards of 64-bit formats as bigints).
 */
export class PiCheckError extends NvmeError {
  /** The check that failed. */
  readonly check: PiCheck;
  /** The block. */
  readonly lba: number;
  /** What the check wanted. */
  readonly expected: number | bigint;
  /** What the block carries. */
  readonly actual: number | bigint;
  /** Create for a failed check at `lba`. */
  constructor(check: PiCheck, lba: number, expected: number | bigint, actual: number | bigint) {
    const what = check === "guard" ? "guard" : check === "app" ? "application tag" : "reference tag";
    super("EPI", `protection information ${what} check failed at block ${lba}: expected 0x${expected.toString(16)}, got 0x${actual.toString(16)}`);
    this.check = check;
    this.lba = lba;
    this.expected = expected;
    this.actual = actual;
  }
}

/** Build the right status error subclass for a failed completion. */
export function statusError(sf: number, dw0: number, command: CommandContext): NvmeStatusError {
  if ((sf & 0x7ff) === Status.COMPARE_FAILURE) return new NvmeCompareError(sf, dw0, command);
  if (zoneErrorKind(sf)) return new NvmeZoneError(sf, dw0, command);
  if (piCheckOf(sf) !== null) return new NvmePiError(sf, dw0, command);
  return new NvmeStatusError(sf, dw0, command);
}

/** A command did not complete within its timeout. */
export class NvmeTimeoutError extends NvmeError {
  /** Which command timed out. */
  readonly command: CommandContext;
  /** The timeout that expired, in ms. */
  readonly timeoutMs: number;
  /** Create for a command and its timeout. */
  constructor(command: CommandContext, timeoutMs: number) {
    super(
      "ETIMEDOUT",
      `NVMe ${command.qid === 0 ? "admin" : `io q${command.qid}`} opcode 0x${
        command.opcode.toString(16).padStart(2, "0")
      } (cid ${command.cid}) timed out after ${timeoutMs} ms`,
    );
    this.command = command;
    this.timeoutMs = timeoutMs;
  }
  /** The last commands before it (when a command trace is on). */
  trace?: TraceEntry[];
}

/** The controller reported Controller Fatal Status (CSTS.CFS) or failed to become ready. */
export class ControllerFatalError extends NvmeError {
  /** Create with a detail message. */
  constructor(message: string, options?: { cause?: unknown }) {
    super("EFATAL", message, options);
  }
}

/** The command was in flight when the controller was reset to recover from a fault; it did not complete. */
export class ControllerResetError extends NvmeError {
  /** Create with the reason for the reset. */
  constructor(message: string, options?: { cause?: unknown }) {
    super("ERESET", message, options);
  }
  /** The last commands before the reset (when a command trace is on). */
  trace?: TraceEntry[];
}

/** The device no longer answers (registers read all ones): surprise removal. */
export class DeviceGoneError extends NvmeError {
  /** Create with a detail message. */
  constructor(message = "device is gone (registers read all ones)") {
    super("EGONE", message);
  }
}

/** Why device setup failed. */
export type SetupReason =
  | "no-ffi"
  | "no-device"
  | "not-nvme"
  | "not-bound"
  | "no-iommu"
  | "no-vfio"
  | "group-not-viable"
  | "permission"
  | "memlock"
  | "iommu-type"
  | "sim"
  | "unsupported-controller"
  | "irq"
  | "vfio"
  | "sriov"
  | "vf-token"
  | "bar-zeros";

/** Setting the device up failed; the message says what to do. */
export class SetupError extends NvmeError {
  /** The specific setup problem. */
  readonly reason: SetupReason;
  /** Create for a reason, with advice in the message. */
  constructor(reason: SetupReason, message: string, options?: { cause?: unknown }) {
    super("ESETUP", message, options);
    this.reason = reason;
  }
}

/** The device is already open (in this process or another). */
export class DeviceBusyError extends NvmeError {
  /** Create with a detail message. */
  constructor(message: string) {
    super("EBUSY", message);
  }
}

/** A libc call failed. */
export class SyscallError extends NvmeError {
  /** errno value. */
  readonly errno: number;
  /** Create for a named call and its errno. */
  constructor(call: string, errno: number, errnoName: string) {
    super("ESYSCALL", `${call} failed: ${errnoName} (${errno})`);
    this.errno = errno;
  }
}

/** Out of DMA memory or IOVA space (or another bounded resource); nothing was sent. */
export class OutOfResourcesError extends NvmeError {
  /** Create with what ran out. */
  constructor(message: string) {
    super("ENOMEM", message);
  }
}

/** The caller's AbortSignal stopped the operation; `cause` is the signal's reason. */
export class AbortedError extends NvmeError {
  /** Create from the signal's reason. */
  constructor(message = "operation aborted", options?: { cause?: unknown }) {
    super("EABORTED", message, options);
  }
}

/** Why a transport PDU was refused (NVMe/TCP). */
export type ProtocolReason =
  | "type"
  | "hlen"
  | "pdo"
  | "plen"
  | "flags"
  | "hdgst"
  | "ddgst"
  | "pfv"
  | "param"
  | "sequence"
  | "range"
  | "term";

/**
 * The peer broke the transport protocol (a bad PDU, digest or sequence) or
 * terminated the connection with a TermReq. `fes`/`fei` are what a TermReq
 * to the peer would carry (0 where the protocol defines none).
 */
export class ProtocolError extends NvmeError {
  /** What was wrong. */
  readonly reason: ProtocolReason;
  /** Fatal Error Status for a TermReq (NVMe/TCP), 0 if none applies. */
  readonly fes: number;
  /** Fatal Error Information: the offending field's byte offset, where one applies. */
  readonly fei: number;
  /** Create for a reason, with the TermReq fields. */
  constructor(reason: ProtocolReason, message: string, fes = 0, fei = 0) {
    super("EPROTO", message);
    this.reason = reason;
    this.fes = fes;
    this.fei = fei;
  }
}

/** The connection to a fabrics controller was lost or refused; commands in flight on it did not complete. */
export class ConnectionLostError extends NvmeError {
  /** Create with what happened. */
  constructor(message: string, options?: { cause?: unknown }) {
    super("ECONNLOST", message, options);
  }
}

/**
 * The NVMe status field (SC | SCT << 8 | CRD | More | DNR) to report for a
 * failed IO: an {@link NvmeStatusError}'s own, the `status: { sct, sc, dnr }`
 * any other rejection carries (a backing device's, an async media's), else
 * `fallback` (Internal Error). What a target or a model passes on when a
 * backing device failed a command.
 */
export function statusFieldOf(e: unknown, fallback: number = Status.INTERNAL_ERROR): number {
  if (e instanceof NvmeStatusError) return encodeStatus(e.status);
  const st = (e as { status?: { sct?: unknown; sc?: unknown; dnr?: unknown } } | null)?.status;
  if (st && typeof st.sct === "number" && typeof st.sc === "number") {
    return ((st.sct & 7) << 8) | (st.sc & 0xff) | (st.dnr ? 1 << 14 : 0);
  }
  return fallback;
}
