/**
 * Sanitize: block erase, crypto erase and overwrite of the whole NVM
 * subsystem, exit from failure mode, and a wait that follows progress in the
 * Sanitize Status log. What SANICAP says the controller cannot do is refused
 * with {@link NotSupportedError} before anything reaches the device.
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { sanitize, waitSanitize } from "@tsnvme/tsnvme/sanitize";
 * import assert from "node:assert/strict";
 * // A software controller whose sanitize takes 50 ms.
 * await using dev = await NVMeDev.open("sim:sanitize=50");
 * await sanitize(dev, "block-erase");
 * const log = await waitSanitize(dev, { intervalMs: 10, onProgress: (p) => assert.ok(p.fraction < 1) });
 * assert.equal(log.status, 1); // completed successfully
 * ```
 * @module
 */
import { sanitizeCmd } from "../nvme/command.ts";
import { AbortedError, InvalidArgumentError, NvmeError } from "../nvme/errors.ts";
import { SanitizeAction } from "../nvme/spec.ts";
import { type AdminTarget, type SanitizeLog, sanitizeLog, SanitizeStatus } from "../admin/log.ts";
import { NotSupportedError } from "../admin/support.ts";

export { type AdminTarget, NotSupportedError, type SanitizeLog, sanitizeLog, SanitizeStatus };

/** Sanitize operations. */
export type SanitizeKind = "block-erase" | "crypto-erase" | "overwrite" | "exit-failure";

/** Options for {@link sanitize}. */
export interface SanitizeOptions {
  /** Allow Unrestricted Sanitize Exit: a failed sanitize may be left without another sanitize. */
  allowUnrestrictedExit?: boolean;
  /** Overwrite: number of passes, 1-16 (default 1). */
  passes?: number;
  /** Overwrite: 32-bit pattern (default 0). */
  pattern?: number;
  /** Overwrite: invert the pattern between passes. */
  invert?: boolean;
  /** Do not deallocate the media after the sanitize (No-Deallocate After Sanitize). */
  noDeallocate?: boolean;
  /** Timeout of the Sanitize command itself in ms (the operation continues in the background). */
  timeoutMs?: number;
}

/** Decoded SANICAP (Identify Controller bytes 331:328). */
export interface SanitizeCapabilities {
  /** Crypto erase supported. */
  cryptoErase: boolean;
  /** Block erase supported. */
  blockErase: boolean;
  /** Overwrite supported. */
  overwrite: boolean;
  /** No-Deallocate Inhibited: the no-deallocate option is not allowed. */
  noDeallocateInhibited: boolean;
  /** No-Deallocate Modifies Media After Sanitize (0 not reported, 1 no, 2 yes). */
  nodmmas: number;
}

/** Decode a SANICAP value. */
export function decodeSanicap(v: number): SanitizeCapabilities {
  return {
    cryptoErase: (v & 1) !== 0,
    blockErase: (v & 2) !== 0,
    overwrite: (v & 4) !== 0,
    noDeallocateInhibited: ((v >>> 29) & 1) !== 0,
    nodmmas: (v >>> 30) & 3,
  };
}

/** The controller's sanitize capabilities. */
export function sanitizeCapabilities(dev: AdminTarget): SanitizeCapabilities {
  return decodeSanicap(dev.controller.id.sanicap);
}

/**
 * Build the Sanitize command for `kind`, refusing (before anything is sent)
 * what the capabilities exclude and out-of-range options.
 */
export function sanitizeCommand(caps: SanitizeCapabilities, kind: SanitizeKind, opts: SanitizeOptions = {}): Uint32Array {
  const need: Record<SanitizeKind, [boolean, string, number]> = {
    "block-erase": [caps.blockErase, "SANICAP.BES", SanitizeAction.BLOCK_ERASE],
    "crypto-erase": [caps.cryptoErase, "SANICAP.CES", SanitizeAction.CRYPTO_ERASE],
    "overwrite": [caps.overwrite, "SANICAP.OWS", SanitizeAction.OVERWRITE],
    "exit-failure": [caps.blockErase || caps.cryptoErase || caps.overwrite, "SANICAP", SanitizeAction.EXIT_FAILURE],
  };
  const n = need[kind];
  if (!n) throw new InvalidArgumentError(`sanitize action must be one of ${Object.keys(need).join(", ")}, got ${String(kind)}`);
  const [ok, cap, action] = n;
  if (!ok) {
    throw new NotSupportedError(cap, kind === "exit-failure"
      ? "the controller does not support sanitize (SANICAP is 0)"
      : `the controller does not support sanitize ${kind} (${cap} is 0)`);
  }
  if (opts.noDeallocate && caps.noDeallocateInhibited) {
    throw new NotSupportedError("SANICAP.NDI", "the controller does not allow no-deallocate after sanitize (SANICAP.NDI is 1)");
  }
  const passes = opts.passes ?? 1;
  const pattern = opts.pattern ?? 0;
  if (kind !== "overwrite" && (opts.passes !== undefined || opts.pattern !== undefined || opts.invert)) {
    throw new InvalidArgumentError("passes, pattern and invert only apply to overwrite");
  }
  if (!Number.isInteger(passes) || passes < 1 || passes > 16) throw new InvalidArgumentError(`overwrite passes must be 1-16, got ${passes}`);
  if (!Number.isInteger(pattern) || pattern < 0 || pattern > 0xffffffff) {
    throw new InvalidArgumentError(`overwrite pattern must be a 32-bit unsigned integer, got ${pattern}`);
  }
  return sanitizeCmd(action, {
    ause: opts.allowUnrestrictedExit,
    owpass: kind === "overwrite" ? passes & 0xf : 0, // 16 passes is encoded as 0
    oipbp: opts.invert,
    nodas: opts.noDeallocate,
    ovrpat: kind === "overwrite" ? pattern : 0,
  });
}

/**
 * Start a sanitize operation. It runs in the background on the controller;
 * follow it with {@link waitSanitize}.
 */
export async function sanitize(dev: AdminTarget, kind: SanitizeKind, opts: SanitizeOptions = {}): Promise<void> {
  const cmd = sanitizeCommand(sanitizeCapabilities(dev), kind, opts);
  await dev.controller.adminCommand(cmd, 0, 0, opts.timeoutMs);
}

/** The most recent sanitize operation failed (SSTAT status 3). */
export class SanitizeFailedError extends NvmeError {
  /** The sanitize status log that reported it. */
  readonly log: SanitizeLog;
  /** Create from the log. */
  constructor(log: SanitizeLog) {
    super("ESTATUS", "sanitize failed (Sanitize Status log: Most Recent Sanitize Command Failed); exit with sanitize exit-failure or a new sanitize");
    this.log = log;
  }
}

/** Progress of a sanitize operation. */
export interface SanitizeProgress {
  /** Fraction done, 0-1 (SPROG / 65536). */
  fraction: number;
  /** The status log read. */
  log: SanitizeLog;
}

/** Options for {@link waitSanitize}. */
export interface WaitSanitizeOptions {
  /** Called after each poll while in progress. */
  onProgress?: (p: SanitizeProgress) => void;
  /** Poll interval in ms (default 1000). */
  intervalMs?: number;
  /** Give up after this many ms (default: no limit). */
  timeoutMs?: number;
  /** Stop waiting (the sanitize itself continues). */
  signal?: AbortSignal;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Poll the Sanitize Status log until no sanitize is in progress. Resolves with
 * the final log for a success; rejects with {@link SanitizeFailedError} when
 * the operation failed.
 */
export async function waitSanitize(dev: AdminTarget, opts: WaitSanitizeOptions = {}): Promise<SanitizeLog> {
  const interval = opts.intervalMs ?? 1000;
  const deadline = opts.timeoutMs === undefined ? Infinity : performance.now() + opts.timeoutMs;
  for (;;) {
    const log = await sanitizeLog(dev);
    if (log.status === SanitizeStatus.FAILED) throw new SanitizeFailedError(log);
    if (log.status !== SanitizeStatus.IN_PROGRESS) return log;
    opts.onProgress?.({ fraction: log.sprog / 65536, log });
    if (opts.signal?.aborted) throw new AbortedError("waitSanitize was aborted by its signal", { cause: opts.signal.reason });
    if (performance.now() > deadline) throw new NvmeError("ETIMEDOUT", `sanitize still in progress after ${opts.timeoutMs} ms`);
    await sleep(interval);
  }
}
