/**
 * Get Log Page: error information, SMART / health, firmware slot, commands
 * supported and effects, changed namespace list, device self-test and
 * sanitize status, decoded by lib/nvme/logs.ts (each layout named once there)
 * with nvme-cli 2.3's JSON keys. nvme-cli's text and JSON of them are in
 * lib/cli/format/log.ts.
 * @module
 */
import { getLogPageCmd, type Sqe } from "../nvme/command.ts";
import { dmaTransfer } from "../nvme/transfer.ts";
import type { Controller } from "../nvme/controller.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { LogId } from "../nvme/spec.ts";
import {
  CHANGED_NS_LOG_BYTES,
  EFFECTS_LOG_BYTES,
  type EffectsLog,
  ERROR_LOG_ENTRY_SIZE,
  type ErrorLogEntry,
  FW_SLOT_LOG_BYTES,
  type FwSlotLog,
  parseChangedNsList,
  parseEffectsLog,
  parseErrorLog,
  parseFwLog,
  parseSanitizeLog,
  parseSelfTestLog,
  parseSmartLog,
  SANITIZE_LOG_BYTES,
  type SanitizeLog,
  SELF_TEST_LOG_BYTES,
  type SelfTestLog,
  SMART_LOG_BYTES,
  type SmartLog,
} from "../nvme/logs.ts";

export {
  type EffectsLog,
  ERROR_LOG_ENTRY_SIZE,
  type ErrorLogEntry,
  type FwSlotLog,
  parseEffectsLog,
  parseErrorLog,
  parseFwLog,
  parseSanitizeLog,
  parseSelfTestLog,
  parseSmartLog,
  type SanitizeLog,
  SanitizeStatus,
  type SelfTestLog,
  type SelfTestResult,
  type SmartLog,
} from "../nvme/logs.ts";
export { commandName } from "../nvme/trace.ts";

/** Anything that carries an initialised controller, e.g. an NVMeDev. */
export interface AdminTarget {
  /** The generic controller: admin queue, identify data, DMA memory. */
  readonly controller: Controller;
}

/** Options for {@link getLogPage}. */
export interface LogPageOptions {
  /** Namespace (default 0xffffffff: the controller as a whole). */
  nsid?: number;
  /** Log Specific field. */
  lsp?: number;
  /** Retain Asynchronous Event: reading does not clear a pending event. */
  rae?: boolean;
  /** Command set identifier (CDW14 CSI). */
  csi?: number;
  /** Byte offset into the log (must be a multiple of 4). */
  offset?: number;
  /** Log Specific Identifier (CDW11 bits 31:16). */
  lsi?: number;
  /** UUID index (CDW14 bits 6:0), 0: none. */
  uuidIndex?: number;
  /** Offset Type: the offset is an index into the log's entries, not bytes (the log defines the unit). */
  ot?: boolean;
  /**
   * Bytes per Get Log Page command (default 4096, through the controller's
   * scratch buffer; more takes a DMA buffer). At most the controller's transfer
   * limit. `nvme get-log` sends one command for the whole length.
   */
  pieceBytes?: number;
  /** Command timeout in ms. */
  timeoutMs?: number;
}

/**
 * Read `bytes` of log page `lid`. Pieces of at most 4096 bytes go through the
 * controller's scratch buffer, so no DMA memory is allocated.
 */
export async function getLogPage(dev: AdminTarget, lid: number, bytes: number, opts: LogPageOptions = {}): Promise<Uint8Array> {
  if (!Number.isInteger(lid) || lid < 0 || lid > 0xff) throw new InvalidArgumentError(`log page id must be 0-255, got ${lid}`);
  if (!Number.isSafeInteger(bytes) || bytes < 4 || bytes % 4 !== 0) {
    throw new InvalidArgumentError(`log page length must be a positive multiple of 4, got ${bytes}`);
  }
  const base = opts.offset ?? 0;
  if (!Number.isSafeInteger(base) || base < 0 || (!opts.ot && base % 4 !== 0)) {
    throw new InvalidArgumentError(`log page offset must be a non-negative multiple of 4, got ${base}`);
  }
  const piece = opts.pieceBytes ?? 4096;
  const maxPiece = Math.max(4096, dev.controller.maxTransferBytes);
  if (!Number.isSafeInteger(piece) || piece < 4 || piece % 4 !== 0 || piece > maxPiece) {
    throw new InvalidArgumentError(`pieceBytes must be a multiple of 4 from 4 to ${maxPiece}, got ${String(piece)}`);
  }
  if (opts.ot && bytes > piece) throw new InvalidArgumentError("with an index offset (ot) the log is read in one piece");
  const field = (v: number | undefined, max: number, what: string) => {
    if (v !== undefined && (!Number.isInteger(v) || v < 0 || v > max)) {
      throw new InvalidArgumentError(`${what} must be an integer from 0 to ${max}, got ${String(v)}`);
    }
  };
  field(opts.nsid, 0xffffffff, "nsid");
  field(opts.lsp, 0x7f, "lsp");
  field(opts.lsi, 0xffff, "lsi");
  field(opts.uuidIndex, 0x7f, "uuid index");
  field(opts.csi, 0xff, "csi");
  const out = new Uint8Array(bytes);
  const pieces = async (read: (cmd: Sqe, n: number) => Promise<Uint8Array>): Promise<number> => {
    for (let off = 0; off < bytes; off += piece) {
      const n = Math.min(piece, bytes - off);
      // As libnvme: retain the asynchronous event until the last piece has been read.
      const rae = off + n < bytes ? true : opts.rae;
      const cmd = getLogPageCmd(lid, n, {
        nsid: opts.nsid,
        lsp: opts.lsp,
        rae,
        csi: opts.csi,
        lsi: opts.lsi,
        uuidIndex: opts.uuidIndex,
        ot: opts.ot,
        offset: base + off,
      });
      out.set(await read(cmd, n), off);
    }
    return 0;
  };
  const c = dev.controller;
  if (piece <= 4096) await pieces((cmd, n) => c.identify(cmd, n, opts.timeoutMs));
  else {
    // One DMA buffer for every piece, freed at the end (deferred while a piece is still in flight).
    await dmaTransfer(c, (buf) =>
      pieces(async (cmd, n) => {
        buf.bytes.fill(0, 0, n);
        await c.adminCommand(cmd, buf.iova, n, opts.timeoutMs);
        return buf.bytes.subarray(0, n);
      }), { bytes: Math.min(piece, bytes), read: false });
  }
  return out;
}

// ---------------------------------------------------------------------------
// The log pages, decoded

/** Read the SMART / Health Information log (default: controller-wide, NSID 0xffffffff). */
export async function smartLog(dev: AdminTarget, nsid = 0xffffffff): Promise<SmartLog> {
  return parseSmartLog(await getLogPage(dev, LogId.SMART, SMART_LOG_BYTES, { nsid }));
}

/**
 * Read `entries` error log entries (default, as nvme-cli: min(64, ELPE + 1)).
 */
export async function errorLog(dev: AdminTarget, entries?: number): Promise<ErrorLogEntry[]> {
  const elpe = dev.controller.id.errorLogEntries;
  const n = entries ?? Math.min(64, elpe);
  if (!Number.isInteger(n) || n < 1 || n > elpe) {
    throw new InvalidArgumentError(`error log entries must be 1-${elpe} (ELPE + 1), got ${String(entries)}`);
  }
  return parseErrorLog(await getLogPage(dev, LogId.ERROR, n * ERROR_LOG_ENTRY_SIZE));
}

/** Read the Firmware Slot Information log. */
export async function fwLog(dev: AdminTarget): Promise<FwSlotLog> {
  return parseFwLog(await getLogPage(dev, LogId.FW_SLOT, FW_SLOT_LOG_BYTES));
}

/** Read the Commands Supported and Effects log for command set `csi`. */
export async function effectsLog(dev: AdminTarget, csi = 0): Promise<EffectsLog> {
  return parseEffectsLog(await getLogPage(dev, LogId.CMD_EFFECTS, EFFECTS_LOG_BYTES, { csi }), csi);
}

/**
 * The pages `nvme effects-log <dev>` reads without --csi: NVM when CAP.CSS
 * has the NVM bit, then Zoned Namespace (CSI 2) when it has the
 * "IO command sets" bit.
 */
export async function effectsLogs(dev: AdminTarget): Promise<EffectsLog[]> {
  const css = dev.controller.cap.css;
  const out: EffectsLog[] = [];
  if (css & 1) out.push(await effectsLog(dev, 0));
  if (css & 0x40) out.push(await effectsLog(dev, 2));
  return out;
}

/** Read the Changed Namespace List (null when more than 1024 changed: "read them all"). */
export async function changedNsList(dev: AdminTarget): Promise<number[] | null> {
  return parseChangedNsList(await getLogPage(dev, LogId.CHANGED_NS, CHANGED_NS_LOG_BYTES));
}

/** Read the Device Self-test log. */
export async function selfTestLog(dev: AdminTarget, nsid = 0xffffffff): Promise<SelfTestLog> {
  return parseSelfTestLog(await getLogPage(dev, LogId.SELF_TEST, SELF_TEST_LOG_BYTES, { nsid }));
}

/** Read the Sanitize Status log. */
export async function sanitizeLog(dev: AdminTarget): Promise<SanitizeLog> {
  return parseSanitizeLog(await getLogPage(dev, LogId.SANITIZE, SANITIZE_LOG_BYTES));
}
