/**
 * Admin operations beyond logs and features: Format NVM, Device Self-test,
 * Namespace Management and Attachment, Abort, asynchronous events, Identify
 * namespace descriptors and the active namespace list.
 * @module
 */
import {
  abortCmd,
  activeNsListCmd,
  asyncEventRequestCmd,
  deviceSelfTestCmd,
  formatNvmCmd,
  nsAttachCmd,
  nsCreateCmd,
  nsDeleteCmd,
  nsDescsCmd,
} from "../nvme/command.ts";
import { InvalidArgumentError } from "../nvme/errors.ts";
import { Nidt, SelfTestCode } from "../nvme/spec.ts";
import { decodeNsDescriptors, decodeNsidList, encodeControllerList, encodeNamespaceCreate, flbasIndex, IDENTIFY_BYTES, parseIdNs } from "../nvme/identify.ts";
import { adminTransfer } from "../nvme/transfer.ts";
import type { AdminTarget } from "./log.ts";
import { rescan } from "./support.ts";

function checkNsid(nsid: number, allowAll = false): void {
  if (!Number.isInteger(nsid) || nsid < 1 || nsid > (allowAll ? 0xffffffff : 0xfffffffe)) {
    throw new InvalidArgumentError(`namespace id must be 1-0x${(allowAll ? 0xffffffff : 0xfffffffe).toString(16)}, got ${nsid}`);
  }
}

// ---------------------------------------------------------------------------
// Identify: active namespace list and namespace descriptors

/** One page (up to 1024) of active namespace ids greater than `start` (CNS 02h). */
export async function activeNsList(dev: AdminTarget, start = 0): Promise<number[]> {
  if (!Number.isInteger(start) || start < 0 || start > 0xfffffffe) {
    throw new InvalidArgumentError(`start namespace id must be 0-0xfffffffe, got ${start}`);
  }
  // Every non-zero entry, as nvme-cli's list-ns prints them.
  return decodeNsidList(await dev.controller.identify(activeNsListCmd(start)), true);
}

/** One Namespace Identification Descriptor. */
export interface NsDescriptor {
  /** Byte offset of the descriptor in the list. */
  loc: number;
  /** Type (1 EUI-64, 2 NGUID, 3 UUID, 4 CSI). */
  nidt: number;
  /** Length of the identifier. */
  nidl: number;
  /** nvme-cli's name of the type: "eui64", "nguid", "uuid", "csi". */
  type: "eui64" | "nguid" | "uuid" | "csi";
  /** The identifier as nvme-cli prints it. */
  value: string;
}

const hex = (d: Uint8Array) => [...d].map((b) => b.toString(16).padStart(2, "0")).join("");

/** Decode a 4096-byte Namespace Identification Descriptor list (unknown types are skipped). */
export function parseNsDescs(data: Uint8Array): NsDescriptor[] {
  const out: NsDescriptor[] = [];
  for (const { loc, nidt, nidl, id: v } of decodeNsDescriptors(data)) {
    let type: NsDescriptor["type"] | null = null, value = "";
    if (nidt === Nidt.EUI64) [type, value] = ["eui64", hex(v.subarray(0, 8))];
    else if (nidt === Nidt.NGUID) [type, value] = ["nguid", hex(v.subarray(0, 16))];
    else if (nidt === Nidt.UUID) {
      const h = hex(v.subarray(0, 16));
      [type, value] = ["uuid", `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`];
    } else if (nidt === Nidt.CSI) [type, value] = ["csi", v[0] ? "0x" + v[0].toString(16) : "0"];
    if (type) out.push({ loc, nidt, nidl, type, value });
  }
  return out;
}

/** Identify Namespace Identification Descriptors (CNS 03h) for `nsid`. */
export async function nsDescs(dev: AdminTarget, nsid: number): Promise<NsDescriptor[]> {
  checkNsid(nsid);
  return parseNsDescs(await dev.controller.identify(nsDescsCmd(nsid)));
}

// ---------------------------------------------------------------------------
// Format NVM

/** Options for {@link formatNvm}. */
export interface FormatOptions {
  /** LBA format index (default: the one in use). */
  lbaf?: number;
  /** Secure erase: 0 none (default), 1 user data erase, 2 cryptographic erase. */
  ses?: number;
  /** Protection information type 0-3. */
  pi?: number;
  /** PI location: first bytes of metadata. */
  pil?: boolean;
  /** Metadata transferred in an extended LBA (true) or separately. */
  mset?: boolean;
  /** Timeout in ms (default 10 minutes: a secure erase can take long). */
  timeoutMs?: number;
}

/**
 * Format NVM for `nsid` (0xffffffff: all namespaces). Refused before sending
 * when the controller does not support Format NVM (OACS), the LBA format does
 * not exist, or crypto erase is asked for and FNA says it is not supported.
 * The target's namespaces are rescanned afterwards.
 */
export async function formatNvm(dev: AdminTarget, nsid: number, opts: FormatOptions = {}): Promise<void> {
  checkNsid(nsid, true);
  const c = dev.controller;
  if ((dev.controller.id.oacs & 2) === 0) throw new InvalidArgumentError("the controller does not support Format NVM (OACS bit 1)");
  const ses = opts.ses ?? 0;
  if (![0, 1, 2].includes(ses)) throw new InvalidArgumentError(`secure erase setting must be 0, 1 or 2, got ${ses}`);
  if (ses === 2 && (c.id.fna & 4) === 0) {
    throw new InvalidArgumentError("the controller does not support cryptographic erase (FNA bit 2)");
  }
  const pi = opts.pi ?? 0;
  if (![0, 1, 2, 3].includes(pi)) throw new InvalidArgumentError(`protection information type must be 0-3, got ${pi}`);
  let lbaf = opts.lbaf;
  const idns = parseIdNs(await c.identifyNamespace(nsid));
  const nlbaf = idns.nlbaf + 1;
  if (lbaf === undefined) lbaf = flbasIndex(idns.flbas);
  if (!Number.isInteger(lbaf) || lbaf < 0 || lbaf > 63 || (nsid !== 0xffffffff && lbaf >= nlbaf)) {
    throw new InvalidArgumentError(`LBA format ${lbaf} does not exist (namespace ${nsid} has ${nlbaf})`);
  }
  await c.adminCommand(formatNvmCmd(nsid, { lbaf, ses, pi, pil: opts.pil, mset: opts.mset }), 0, 0, opts.timeoutMs ?? 600_000);
  await rescan(dev);
}

// ---------------------------------------------------------------------------
// Device Self-test

/** Self-test kinds accepted by {@link deviceSelfTest}. */
export type SelfTestKind = "short" | "extended" | "abort" | number;

/**
 * Start (or abort) a device self-test on `nsid` (0: controller only,
 * 0xffffffff: controller and all namespaces). Follow it in the self-test log.
 */
export async function deviceSelfTest(dev: AdminTarget, kind: SelfTestKind, nsid = 0xffffffff): Promise<void> {
  const stc = kind === "short" ? SelfTestCode.SHORT : kind === "extended" ? SelfTestCode.EXTENDED : kind === "abort" ? SelfTestCode.ABORT : kind;
  if (![1, 2, 0xe, 0xf].includes(stc as number)) throw new InvalidArgumentError(`self-test code must be 1, 2, 0xe or 0xf, got ${String(kind)}`);
  if (!Number.isInteger(nsid) || nsid < 0 || nsid > 0xffffffff) throw new InvalidArgumentError(`invalid namespace id ${nsid}`);
  await dev.controller.adminCommand(deviceSelfTestCmd(nsid, stc as number));
}

// ---------------------------------------------------------------------------
// Namespace Management and Attachment

/** Options for {@link createNamespace}. */
export interface CreateNamespaceOptions {
  /** Size in blocks (NSZE). */
  nsze: number | bigint;
  /** Capacity in blocks (NCAP, default nsze). */
  ncap?: number | bigint;
  /** LBA format index (FLBAS). */
  flbas?: number;
  /** End-to-end data protection settings (DPS). */
  dps?: number;
  /** Multi-path and sharing (NMIC bit 0: shared). */
  nmic?: number;
  /** Command set (CSI). */
  csi?: number;
  /** Timeout in ms. */
  timeoutMs?: number;
}

function big(v: number | bigint | undefined, what: string): bigint {
  if (typeof v === "bigint" ? v > 0n && v < 2n ** 64n : Number.isSafeInteger(v) && (v as number) > 0) return BigInt(v!);
  throw new InvalidArgumentError(`${what} must be a positive integer of blocks, got ${String(v)}`);
}

/** Namespace Management create; resolves to the new namespace id. The namespace still has to be attached. */
export async function createNamespace(dev: AdminTarget, o: CreateNamespaceOptions): Promise<number> {
  const nsze = big(o.nsze, "nsze");
  const ncap = o.ncap === undefined ? nsze : big(o.ncap, "ncap");
  if (ncap > nsze) throw new InvalidArgumentError(`ncap ${ncap} is larger than nsze ${nsze}`);
  const flbas = o.flbas ?? 0;
  if (!Number.isInteger(flbas) || flbas < 0 || flbas > 63) throw new InvalidArgumentError(`flbas must be 0-63, got ${flbas}`);
  const input = encodeNamespaceCreate({ nsze, ncap, lbaFormat: flbas, dps: o.dps ?? 0, nmic: o.nmic ?? 0 });
  const r = await adminTransfer(dev.controller, nsCreateCmd(o.csi ?? 0), { bytes: IDENTIFY_BYTES, input, timeoutMs: o.timeoutMs });
  return r.dw0 >>> 0;
}

/** Namespace Management delete (0xffffffff: every namespace). */
export async function deleteNamespace(dev: AdminTarget, nsid: number, timeoutMs?: number): Promise<void> {
  checkNsid(nsid, true);
  await dev.controller.adminCommand(nsDeleteCmd(nsid), 0, 0, timeoutMs);
  await rescan(dev);
}

async function attachment(dev: AdminTarget, nsid: number, detach: boolean, ctrls?: number[]): Promise<void> {
  checkNsid(nsid);
  const list = ctrls ?? [dev.controller.id.cntlid];
  if (list.length === 0 || list.length > 2047) throw new InvalidArgumentError("controller list must have 1-2047 entries");
  for (const id of list) {
    if (!Number.isInteger(id) || id < 0 || id > 0xffef) throw new InvalidArgumentError(`invalid controller id ${id}`);
  }
  await adminTransfer(dev.controller, nsAttachCmd(nsid, detach), { bytes: IDENTIFY_BYTES, input: encodeControllerList(list) });
  await rescan(dev);
}

/** Attach `nsid` to controllers (default: this controller). */
export function attachNamespace(dev: AdminTarget, nsid: number, controllers?: number[]): Promise<void> {
  return attachment(dev, nsid, false, controllers);
}

/** Detach `nsid` from controllers (default: this controller). */
export function detachNamespace(dev: AdminTarget, nsid: number, controllers?: number[]): Promise<void> {
  return attachment(dev, nsid, true, controllers);
}

// ---------------------------------------------------------------------------
// Abort and asynchronous events

/** Ask the controller to abort command `cid` on queue `sqid`; true when it says it did (DW0 bit 0 clear). */
export async function abortCommand(dev: AdminTarget, sqid: number, cid: number): Promise<boolean> {
  if (!Number.isInteger(sqid) || sqid < 0 || sqid > 0xffff) throw new InvalidArgumentError(`invalid sqid ${sqid}`);
  if (!Number.isInteger(cid) || cid < 0 || cid > 0xffff) throw new InvalidArgumentError(`invalid cid ${cid}`);
  return ((await dev.controller.adminCommand(abortCmd(sqid, cid))) & 1) === 0;
}

/** An asynchronous event reported by the controller. */
export interface AsyncEvent {
  /** Event type (0 error, 1 SMART/health, 2 notice, 3 immediate, 6 IO command set, 7 vendor). */
  type: number;
  /** Event information (meaning depends on the type). */
  info: number;
  /** Log page to read to clear the event. */
  logPage: number;
  /** Completion DW0 as received. */
  raw: number;
}

/** Decode an Asynchronous Event Request completion DW0. */
export function decodeAsyncEvent(dw0: number): AsyncEvent {
  return { type: dw0 & 7, info: (dw0 >>> 8) & 0xff, logPage: (dw0 >>> 16) & 0xff, raw: dw0 >>> 0 };
}

/**
 * Asynchronous events as an async iterator. One Asynchronous Event Request is
 * kept outstanding; each completion is yielded and a new request sent. The
 * event stays pending on the controller until its log page is read (without
 * RAE). Stopping the loop (break, or `signal`) sends no more requests; the
 * one outstanding completes or fails when the device closes.
 */
export async function* asyncEvents(dev: AdminTarget, opts: { signal?: AbortSignal } = {}): AsyncGenerator<AsyncEvent> {
  const c = dev.controller;
  const aerl = c.id.aerLimit;
  if (aerl < 1) throw new InvalidArgumentError("the controller accepts no asynchronous event requests");
  const aborted = new Promise<null>((resolve) => {
    if (opts.signal?.aborted) resolve(null);
    opts.signal?.addEventListener("abort", () => resolve(null), { once: true });
  });
  for (;;) {
    if (opts.signal?.aborted) return;
    // No timeout: an event may take arbitrarily long. 2^31-1 ms is the largest timer both runtimes accept.
    const req = c.adminCommand(asyncEventRequestCmd(), 0, 0, 0x7fff_ffff);
    req.catch(() => {}); // may be left behind when the loop stops; it fails on close
    const r = await Promise.race([req, aborted]);
    if (r === null) return;
    yield decodeAsyncEvent(r);
  }
}
