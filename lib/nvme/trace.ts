/**
 * A command trace in the spirit of Linux's nvme_setup_cmd / nvme_complete_rq
 * tracepoints: every submitted command and its completion, decoded (queue,
 * cid, opcode name, nsid, LBA range or CDWs, status name, latency), kept in a
 * bounded ring of the last commands and optionally logged as it happens. The
 * ring is attached to NvmeTimeoutError and ControllerResetError, so a failure
 * report shows what led to it. Off, it costs the queue one null check per
 * submission and per completion. The opcode names are tabled here once: the
 * trace's ({@link opcodeName}) and nvme-cli's ({@link commandName}).
 * @module
 */
import { InvalidArgumentError } from "./errors.ts";
import { AdminOpc, decodeStatus, IoOpc } from "./spec.ts";

/** One traced command, decoded. */
export interface TraceEntry {
  /** Queue id (0 = admin). */
  qid: number;
  /** Command identifier. */
  cid: number;
  /** Opcode. */
  opcode: number;
  /** Opcode name, e.g. "READ", "IDENTIFY". */
  name: string;
  /** Namespace id. */
  nsid: number;
  /** Starting LBA of a read/write-shaped IO command. */
  slba?: number;
  /** Blocks (one-based) of a read/write-shaped IO command. */
  blocks?: number;
  /** CDW10..CDW15. */
  cdw: number[];
  /** Submission time (performance.now(), ms). */
  submittedMs: number;
  /** How it ended: a status name, "Timed Out", or null while in flight. */
  status: string | null;
  /** Raw 15-bit status field (0 success), or -1 without a completion. */
  sf: number;
  /** CQE DW0. */
  dw0: number;
  /** Latency in µs, or -1 while in flight. */
  latencyUs: number;
}

/** Options of {@link CommandTrace}. */
export interface TraceOptions {
  /** Commands kept (default 64). */
  capacity?: number;
  /** Called with one line per submission and per completion (default: none). */
  log?: ((line: string) => void) | null;
}

const ADMIN_NAMES = new Map(Object.entries(AdminOpc).map(([k, v]) => [v as number, k]));
const IO_NAMES = new Map(Object.entries(IoOpc).map(([k, v]) => [v as number, k]));
const RW_OPCODES = new Set<number>([IoOpc.READ, IoOpc.WRITE, IoOpc.COMPARE, IoOpc.WRITE_ZEROES, IoOpc.VERIFY]);
const PENDING = -2;
const TIMED_OUT = -3;
const DW = 16;

const hex = (v: number, w: number) => (v >>> 0).toString(16).padStart(w, "0");

/** Opcode name on the admin queue (qid 0) or an IO queue, as the spec constants name it: "IDENTIFY", "READ". */
export function opcodeName(qid: number, opcode: number): string {
  return (qid === 0 ? ADMIN_NAMES : IO_NAMES).get(opcode) ?? `OPC_${hex(opcode, 2)}`;
}

/** nvme-cli's names of admin opcodes (its nvme_cmd_to_string()). */
const CMD_NAMES_ADMIN: Record<number, string> = {
  0x00: "Delete I/O Submission Queue",
  0x01: "Create I/O Submission Queue",
  0x02: "Get Log Page",
  0x04: "Delete I/O Completion Queue",
  0x05: "Create I/O Completion Queue",
  0x06: "Identify",
  0x08: "Abort",
  0x09: "Set Features",
  0x0a: "Get Features",
  0x0c: "Asynchronous Event Request",
  0x0d: "Namespace Management",
  0x10: "Firmware Commit",
  0x11: "Firmware Image Download",
  0x14: "Device Self-test",
  0x15: "Namespace Attachment",
  0x18: "Keep Alive",
  0x19: "Directive Send",
  0x1a: "Directive Receive",
  0x1c: "Virtualization Management",
  0x1d: "NVMe-MI Send",
  0x1e: "NVMe-MI Receive",
  0x7c: "Doorbell Buffer Config",
  0x80: "Format NVM",
  0x81: "Security Send",
  0x82: "Security Receive",
  0x84: "Sanitize",
  0x86: "Get LBA Status",
};

/** nvme-cli's names of NVM command set opcodes. */
const CMD_NAMES_IO: Record<number, string> = {
  0x00: "Flush",
  0x01: "Write",
  0x02: "Read",
  0x04: "Write Uncorrectable",
  0x05: "Compare",
  0x08: "Write Zeroes",
  0x09: "Dataset Management",
  0x0d: "Reservation Register",
  0x0e: "Reservation Report",
  0x11: "Reservation Acquire",
  0x15: "Reservation Release",
  0x0c: "Verify",
  0x19: "Copy",
  0x79: "Zone Management Send",
  0x7a: "Zone Management Receive",
  0x7d: "Zone Append",
};

/** nvme-cli's name of an opcode (nvme_cmd_to_string()): "Identify", "Write Zeroes", "Unknown". */
export function commandName(admin: boolean, opcode: number): string {
  return (admin ? CMD_NAMES_ADMIN : CMD_NAMES_IO)[opcode] ?? "Unknown";
}

/** A bounded ring of the last commands of one device; shared by its queues on one thread. */
export class CommandTrace {
  /** Commands kept. */
  readonly capacity: number;
  /** Line logger, or null. */
  log: ((line: string) => void) | null;
  readonly #qid: Uint16Array;
  readonly #cid: Uint16Array;
  readonly #sqe: Uint32Array;
  readonly #t0: Float64Array;
  readonly #us: Float64Array;
  readonly #sf: Int32Array;
  readonly #dw0: Uint32Array;
  #next = 0;
  #count = 0;

  /** A trace of the last `capacity` commands. */
  constructor(opts: TraceOptions = {}) {
    const n = opts.capacity ?? 64;
    if (!Number.isInteger(n) || n < 1 || n > 1 << 20) throw new InvalidArgumentError(`trace capacity must be 1..2^20, got ${n}`);
    this.capacity = n;
    this.log = opts.log ?? null;
    this.#qid = new Uint16Array(n);
    this.#cid = new Uint16Array(n);
    this.#sqe = new Uint32Array(n * DW);
    this.#t0 = new Float64Array(n);
    this.#us = new Float64Array(n);
    this.#sf = new Int32Array(n);
    this.#dw0 = new Uint32Array(n);
  }

  /** A command was placed on queue `qid` with id `cid`; `sqe` is its 16 dwords. */
  submit(qid: number, cid: number, sqe: Uint32Array): void {
    const i = this.#next;
    this.#next = (i + 1) % this.capacity;
    if (this.#count < this.capacity) this.#count++;
    this.#qid[i] = qid;
    this.#cid[i] = cid;
    this.#sqe.set(sqe.subarray(0, DW), i * DW);
    this.#t0[i] = performance.now();
    this.#us[i] = -1;
    this.#sf[i] = PENDING;
    this.#dw0[i] = 0;
    if (this.log) this.log(this.#setupLine(i));
  }

  /** Command `cid` of queue `qid` completed with status field `sf`; `sf` < 0: it timed out. */
  complete(qid: number, cid: number, sf: number, dw0: number): void {
    // The newest entry with this queue and cid that is still open.
    for (let k = 0, i = this.#next; k < this.#count; k++) {
      i = (i + this.capacity - 1) % this.capacity;
      if (this.#qid[i] !== qid || this.#cid[i] !== cid || this.#sf[i] !== PENDING) continue;
      this.#us[i] = (performance.now() - this.#t0[i]) * 1000;
      this.#sf[i] = sf < 0 ? TIMED_OUT : sf & 0x7fff;
      this.#dw0[i] = dw0 >>> 0;
      if (this.log) this.log(this.#completeLine(i));
      return;
    }
  }

  /** The last `n` commands (default all kept), oldest first, decoded. */
  last(n: number = this.capacity): TraceEntry[] {
    const k = Math.min(n, this.#count);
    const out: TraceEntry[] = [];
    for (let j = k; j > 0; j--) out.push(this.#entry((this.#next + this.capacity - j) % this.capacity));
    return out;
  }

  /** Forget everything. */
  clear(): void {
    this.#next = this.#count = 0;
  }

  #entry(i: number): TraceEntry {
    const s = this.#sqe.subarray(i * DW, i * DW + DW);
    const qid = this.#qid[i], opcode = s[0] & 0xff;
    const e: TraceEntry = {
      qid,
      cid: this.#cid[i],
      opcode,
      name: opcodeName(qid, opcode),
      nsid: s[1],
      cdw: Array.from(s.subarray(10, 16)),
      submittedMs: this.#t0[i],
      status: null,
      sf: -1,
      dw0: this.#dw0[i],
      latencyUs: this.#us[i],
    };
    if (qid !== 0 && RW_OPCODES.has(opcode)) {
      e.slba = s[10] + s[11] * 0x1_0000_0000;
      e.blocks = (s[12] & 0xffff) + 1;
    }
    const sf = this.#sf[i];
    if (sf === TIMED_OUT) e.status = "Timed Out";
    else if (sf >= 0) {
      e.sf = sf;
      e.status = decodeStatus(sf).name;
    }
    return e;
  }

  #what(e: TraceEntry): string {
    const args = e.slba !== undefined
      ? `slba=${e.slba} len=${e.blocks}`
      : `cdw10=${e.cdw.map((c) => hex(c, 8)).join(",")}`;
    return `qid=${e.qid} cid=${e.cid} nsid=${e.nsid} opcode=${e.name}(0x${hex(e.opcode, 2)}) ${args}`;
  }

  #setupLine(i: number): string {
    return `nvme_setup_cmd: ${this.#what(this.#entry(i))}`;
  }

  #completeLine(i: number): string {
    const e = this.#entry(i);
    return `nvme_complete_rq: qid=${e.qid} cid=${e.cid} opcode=${e.name} status=${e.status} (0x${hex(Math.max(e.sf, 0), 4)}) ` +
      `result=0x${hex(e.dw0, 8)} latency=${e.latencyUs.toFixed(1)}us`;
  }

  /** One line per kept command (for a failure report). */
  format(n?: number): string {
    return this.last(n).map((e) =>
      `${this.#what(e)} -> ${e.status ?? "in flight"}${e.latencyUs >= 0 ? ` ${e.latencyUs.toFixed(1)}us` : ""}`
    ).join("\n");
  }
}
