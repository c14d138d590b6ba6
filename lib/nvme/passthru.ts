/**
 * Raw command passthrough: any opcode with caller-chosen command dwords, a
 * data buffer in either direction and a timeout, as nvme-cli's admin-passthru
 * and io-passthru send them. The admin and IO entry points (lib/admin,
 * lib/io) share this core; only the queue differs.
 * @module
 */
import { sqe, SqeDw } from "./command.ts";
import type { Controller } from "./controller.ts";
import { DeviceClosedError, InvalidArgumentError, NvmeStatusError } from "./errors.ts";
import { AdminOpc, type DecodedStatus, encodeStatus } from "./spec.ts";
import type { QueuePair } from "./queue.ts";
import { dmaTransfer } from "./transfer.ts";
import type { DmaBuffer } from "./transport.ts";

/** Which way data moves: to the host (read), to the controller (write), both, or none. */
export type PassthruDirection = "none" | "read" | "write" | "both";

/** A raw command. Dwords not given are zero; the driver owns CDW0's CID and the data pointer. */
export interface PassthruCommand {
  /** Opcode (CDW0 bits 7:0). */
  opcode: number;
  /** Namespace id (CDW1), default 0. */
  nsid?: number;
  /** CDW2 (command specific). */
  cdw2?: number;
  /** CDW3 (command specific). */
  cdw3?: number;
  /** CDW10. */
  cdw10?: number;
  /** CDW11. */
  cdw11?: number;
  /** CDW12. */
  cdw12?: number;
  /** CDW13. */
  cdw13?: number;
  /** CDW14. */
  cdw14?: number;
  /** CDW15. */
  cdw15?: number;
  /** Bytes of data the command transfers (0: none). At most the controller's transfer limit. */
  dataLen?: number;
  /**
   * Direction of the data. Default: from the opcode's bits 1:0 as the
   * specification defines them (01b write, 10b read, 11b both), "none" without data.
   */
  direction?: PassthruDirection;
  /** Data sent for "write"/"both" (at most dataLen bytes; the rest of the buffer is the prefill byte). */
  data?: Uint8Array;
  /** Byte the data buffer holds before `data` is copied in and the command runs (default 0), as nvme-cli's --prefill. */
  prefill?: number;
  /** Timeout in ms (default: the queue's). */
  timeoutMs?: number;
}

/** What the controller answered. */
export interface PassthruResult {
  /** Completion DW0 (command specific result). */
  result: number;
  /**
   * The completion's 15-bit status field (SC, SCT, CRD, More, DNR), 0 on success;
   * the value the kernel's passthrough ioctl returns.
   */
  status: number;
  /** `status` decoded, null on success. */
  statusInfo: DecodedStatus | null;
  /** Data received ("read"/"both") on success, else null. */
  data: Uint8Array | null;
}

/** Admin opcodes refused: they would pull queues or event slots out from under the driver. */
const DRIVER_OWNED: Record<number, string> = {
  [AdminOpc.DELETE_IO_SQ]: "Delete I/O Submission Queue",
  [AdminOpc.CREATE_IO_SQ]: "Create I/O Submission Queue",
  [AdminOpc.DELETE_IO_CQ]: "Delete I/O Completion Queue",
  [AdminOpc.CREATE_IO_CQ]: "Create I/O Completion Queue",
  [AdminOpc.ASYNC_EVENT_REQUEST]: "Asynchronous Event Request",
};

const DWORDS = ["cdw2", "cdw3", "cdw10", "cdw11", "cdw12", "cdw13", "cdw14", "cdw15"] as const;
const DW_INDEX = [SqeDw.CDW2, SqeDw.CDW3, SqeDw.CDW10, SqeDw.CDW11, SqeDw.CDW12, SqeDw.CDW13, SqeDw.CDW14, SqeDw.CDW15];

function u32(v: unknown, what: string): number {
  if (v === undefined) return 0;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new InvalidArgumentError(`${what} must be an integer from 0 to 0xffffffff, got ${String(v)}`);
  }
  return v;
}

/** The direction the opcode's low two bits declare (NVMe base spec, opcode data transfer field). */
export function opcodeDirection(opcode: number): PassthruDirection {
  return (["none", "write", "read", "both"] as const)[opcode & 3];
}

/** A checked command: the SQE and its data handling. Throws InvalidArgumentError; touches nothing. */
export interface CheckedPassthru {
  /** The SQE to send (PRPs and CID filled in by the queue). */
  sqe: Uint32Array;
  /** Data bytes. */
  dataLen: number;
  /** Data direction. */
  direction: PassthruDirection;
  /** Bytes to send, or null. */
  input: Uint8Array | null;
  /** Byte the buffer is filled with first. */
  prefill: number;
  /** Timeout in ms, or undefined for the queue's default. */
  timeoutMs: number | undefined;
}

/** Validate `cmd` against the controller's limits and build its SQE. Nothing reaches the device. */
export function checkPassthru(ctrl: Controller, cmd: PassthruCommand, admin: boolean): CheckedPassthru {
  if (cmd === null || typeof cmd !== "object") throw new InvalidArgumentError("command must be an object");
  const opcode = cmd.opcode;
  if (typeof opcode !== "number" || !Number.isInteger(opcode) || opcode < 0 || opcode > 0xff) {
    throw new InvalidArgumentError(`opcode must be an integer from 0 to 0xff, got ${String(opcode)}`);
  }
  if (admin && DRIVER_OWNED[opcode]) {
    throw new InvalidArgumentError(
      `admin opcode 0x${opcode.toString(16).padStart(2, "0")} (${DRIVER_OWNED[opcode]}) is not passed through: the driver owns the queues and event slots`,
    );
  }
  const nsid = u32(cmd.nsid, "nsid");
  const dataLen = cmd.dataLen ?? 0;
  if (typeof dataLen !== "number" || !Number.isSafeInteger(dataLen) || dataLen < 0) {
    throw new InvalidArgumentError(`dataLen must be a non-negative integer, got ${String(dataLen)}`);
  }
  if (dataLen > ctrl.maxTransferBytes) {
    throw new InvalidArgumentError(`dataLen ${dataLen} exceeds the controller's transfer limit of ${ctrl.maxTransferBytes} bytes`);
  }
  const direction = cmd.direction ?? (dataLen ? opcodeDirection(opcode) : "none");
  if (!["none", "read", "write", "both"].includes(direction)) {
    throw new InvalidArgumentError(`direction must be none, read, write or both, got ${String(direction)}`);
  }
  if (dataLen === 0 && direction !== "none") throw new InvalidArgumentError(`direction ${direction} needs a dataLen`);
  if (dataLen > 0 && direction === "none") {
    throw new InvalidArgumentError("data direction not given: the opcode declares no transfer, so say read or write");
  }
  let input: Uint8Array | null = null;
  if (cmd.data !== undefined) {
    if (!(cmd.data instanceof Uint8Array)) throw new InvalidArgumentError("data must be a Uint8Array");
    if (direction !== "write" && direction !== "both") throw new InvalidArgumentError("data is only sent with direction write or both");
    if (cmd.data.byteLength > dataLen) {
      throw new InvalidArgumentError(`data is ${cmd.data.byteLength} bytes, more than dataLen ${dataLen}`);
    }
    input = cmd.data;
  }
  const prefill = cmd.prefill ?? 0;
  if (typeof prefill !== "number" || !Number.isInteger(prefill) || prefill < 0 || prefill > 0xff) {
    throw new InvalidArgumentError(`prefill must be a byte (0-255), got ${String(prefill)}`);
  }
  const t = cmd.timeoutMs;
  if (t !== undefined && (typeof t !== "number" || !(t > 0) || !Number.isFinite(t))) {
    throw new InvalidArgumentError(`timeoutMs must be a positive finite number, got ${String(t)}`);
  }
  const s = sqe(opcode, nsid);
  DWORDS.forEach((k, i) => (s[DW_INDEX[i]] = u32(cmd[k], k)));
  return { sqe: s, dataLen, direction, input, prefill, timeoutMs: t };
}

/**
 * Send a checked command on `queue` with a DMA buffer from `ctrl`. A failed
 * status resolves (see {@link PassthruResult.status}); timeouts, resets and a
 * closed device reject with their NvmeError.
 */
export async function sendPassthru(ctrl: Controller, queue: QueuePair, c: CheckedPassthru): Promise<PassthruResult> {
  // A closed pair rejects anyway; checked first so no DMA memory is taken from a closed transport.
  if (queue.closed) throw ctrl.failed ?? new DeviceClosedError();
  // Admin commands through the controller's own entry point; IO straight onto the chosen queue.
  const send = (buf: DmaBuffer | null): Promise<number> =>
    queue === ctrl.admin
      ? ctrl.adminCommand(c.sqe, buf ? buf.iova : 0, c.dataLen, c.timeoutMs)
      : queue.submit(c.sqe, buf ? buf.iova : 0, c.dataLen, c.timeoutMs ?? queue.defaultTimeoutMs, buf);
  try {
    if (!c.dataLen) return { result: (await send(null)) >>> 0, status: 0, statusInfo: null, data: null };
    const read = c.direction === "read" || c.direction === "both";
    const r = await dmaTransfer(ctrl, send, { bytes: c.dataLen, input: c.input ?? undefined, prefill: c.prefill, read });
    return { result: r.dw0 >>> 0, status: 0, statusInfo: null, data: r.data };
  } catch (e) {
    if (!(e instanceof NvmeStatusError)) throw e;
    return { result: e.dw0 >>> 0, status: encodeStatus(e.status), statusInfo: e.status, data: null };
  }
}
