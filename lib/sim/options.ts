/**
 * Options of the software NVMe controller, the `sim:` target syntax, the fault
 * rule format and the layout of the memory the host and the device share.
 * @module
 */
import { InvalidArgumentError } from "../nvme/errors.ts";
import { Cns } from "../nvme/spec.ts";
import type { SimZonedOptions } from "./zns.ts";
import type { SimFdpOptions } from "./fdp.ts";

/** One namespace the simulated controller starts with. */
export interface SimNamespaceOptions {
  /** Size in bytes (rounded down to whole blocks). */
  size: number;
  /** Logical block size: 512 or 4096 (default 512). */
  blockSize?: 512 | 4096;
  /** Back the namespace with this file (created or extended to `size`) instead of memory. */
  path?: string;
  /** Make it a zoned namespace (ZNS command set; lib/sim/zns.ts). */
  zoned?: SimZonedOptions;
  /** With {@link SimOptions.fdp}: the reclaim unit handles it places on (default: all of them). */
  fdpRuhs?: number[];
}

/** How to build a simulated controller. Every field is optional. */
export interface SimOptions {
  /** Namespaces present and attached at start (default 16 MiB/512 and 16 MiB/4096). */
  namespaces?: SimNamespaceOptions[];
  /** Host DMA memory in bytes (default 64 MiB). */
  memoryBytes?: number;
  /** IOVA of the first byte of host memory (default 0x1_0000_0000, so PRP high dwords are exercised). */
  iovaBase?: number;
  /** IO queue pairs the controller grants at most (default 8). */
  maxQueues?: number;
  /** Largest queue in entries (CAP.MQES + 1, default 1024). */
  maxQueueEntries?: number;
  /** MDTS as a power of two of 4 KiB pages (default 5: 128 KiB). */
  mdts?: number;
  /** Namespaces the controller supports (NN, default 16). */
  maxNamespaces?: number;
  /** Total NVM capacity for namespace management in bytes (default: the initial namespaces plus 64 MiB). */
  capacityBytes?: number;
  /** Firmware slots (1-7, default 3). */
  fwSlots?: number;
  /** Slot 1 is read-only (FRMW bit 0, default true). */
  fwSlot1ReadOnly?: boolean;
  /** Firmware update granularity in 4 KiB units (FWUG, default 1; 0xff: no restriction). */
  fwug?: number;
  /** Sanitize capabilities (SANICAP bits 2:0 = overwrite|block|crypto; default 7: all three). */
  sanicap?: number;
  /** How long a sanitize operation takes, in ms (default 150). */
  sanitizeMs?: number;
  /** How long a short device self-test takes, in ms (default 100; extended: twice that). */
  selfTestMs?: number;
  /** Time CSTS.RDY takes to follow CC.EN, in ms (default 0). */
  readyDelayMs?: number;
  /** Added latency per IO command in ms (default 0; see also faults.setLatency). */
  latencyMs?: number;
  /** Accept SGLs for IO data (SGLS: any alignment, bit buckets; default true). PRPs are always accepted. */
  sgl?: boolean;
  /** Offer Doorbell Buffer Config (OACS bit 8) and honour shadow doorbells on IO queues (default true). */
  shadowDoorbells?: boolean;
  /**
   * Controller memory buffer of this many bytes in BAR2 (multiple of 4 KiB; default 0: none), set
   * up through CMBMSC as NVMe 1.4 has it, holding submission queues only (CMBSZ.SQS).
   */
  cmbBytes?: number;
  /**
   * SR-IOV: a primary controller with this many secondary controllers (VFs) and flexible queue and
   * interrupt resources, managed through Virtualization Management (default 0: none; lib/sim/virt.ts).
   */
  sriovVfs?: number;
  /** Volatile write cache present (default true). */
  vwc?: boolean;
  /** Serial number (default "SIM" + a counter). */
  serial?: string;
  /**
   * MSI-X model: wake words in lib/irq/waiter.ts's IrqLayout (slot = vector).
   * After each CQE posted to the admin CQ (vector 0) or to an IO CQ created
   * with IEN, the device adds 1 to that vector's word and notifies it, so an
   * `IrqWaiter({ sab: irq, slot: vector })` sleeps until the device interrupts.
   */
  irq?: SharedArrayBuffer;
  /** Model number (default "tsnvme software NVMe controller"). */
  model?: string;
  /** Firmware revision in slot 1 (default "1.0"). */
  firmware?: string;
  /** Flexible Data Placement in endurance group 1 (lib/sim/fdp.ts); default none. */
  fdp?: SimFdpOptions;
  /**
   * Offer LBA formats with metadata and protection information (2-7: 512+8,
   * 4096+8, 4096+16 64-bit guard, 512+16 64-bit guard, 4096+64, 4096+64 64-bit
   * guard; types 1-3, PI first or last; default false: formats 0 and 1 only).
   */
  piFormats?: boolean;
  /**
   * Serve IO queues from this many threads of their own (default 0: the
   * device thread serves every queue). Each IO queue belongs to thread
   * (CQ id - 1) % threads, which fetches, reads and writes memory-backed
   * namespaces itself and completes; commands it does not serve alone
   * (other opcodes, fault rules or latency in force, file media) go to the
   * device thread and their completions come back to it.
   */
  threads?: number;
}

/** Defaults of {@link SimOptions} (namespaces aside). */
/** The BAR holding the software controller's CMB (CMBLOC.BIR). */
export const SIM_CMB_BAR = 2;
/** Bus address of the software controller's CMB BAR (below host memory's IOVAs, so the two never meet). */
export const SIM_CMB_BUS = 0x8000_0000;

export const SIM_DEFAULTS = {
  memoryBytes: 64 * 1024 * 1024,
  iovaBase: 0x1_0000_0000,
  maxQueues: 8,
  maxQueueEntries: 1024,
  mdts: 5,
  maxNamespaces: 16,
  fwSlots: 3,
  fwSlot1ReadOnly: true,
  fwug: 1,
  sanicap: 7,
  sanitizeMs: 150,
  selfTestMs: 100,
  readyDelayMs: 0,
  latencyMs: 0,
  vwc: true,
  model: "tsnvme software NVMe controller",
  firmware: "1.0",
} as const;

function parseSize(s: string, what: string): number {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(s.trim());
  if (!m) throw new InvalidArgumentError(`sim: bad ${what} ${JSON.stringify(s)} (expected e.g. 64M, 4096, 1G)`);
  const mul = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[m[2].toUpperCase() as "" | "K"]!;
  return Number(m[1]) * mul;
}

function parseNum(s: string, what: string): number {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`sim: bad ${what} ${JSON.stringify(s)}`);
  return n;
}

/**
 * Parse a `sim:` target into {@link SimOptions}.
 *
 * Syntax: `sim` or `sim:` followed by `;`-separated `key=value` items:
 * - `ns=<size>[:<bs>][@<path>],...` namespaces, e.g. `ns=64M:512,16M:4096@/tmp/ns2.img`
 *   (size suffixes K/M/G/T are binary; bs 512 or 4096, default 512)
 * - `mem=<size>` host DMA memory, `queues=<n>` IO queue pairs, `mqes=<n>` queue entries,
 *   `mdts=<n>`, `nn=<n>`, `capacity=<size>`, `fwslots=<n>`, `fwro=0|1`, `fwug=<n>`,
 *   `sanicap=<n>`, `sanitize=<ms>`, `selftest=<ms>`, `latency=<ms>`, `vwc=0|1`, `ready=<ms>`,
 *   `pi=0|1` (LBA formats with metadata and protection information)
 * - `zoned=<nsid>[:<zone blocks>[:<max open>[:<max active>]]],...` zoned namespaces
 * - `fdp=<handles>[:<reclaim unit size>[:<reclaim groups>]]` Flexible Data Placement
 *
 * Example: `sim:ns=64M:512,16M:4096;queues=4;mdts=6`.
 */
export function parseSimSpec(spec: string): SimOptions {
  const m = /^sim(?::(.*))?$/s.exec(spec.trim());
  if (!m) throw new InvalidArgumentError(`not a sim target: ${JSON.stringify(spec)} (expected e.g. sim:ns=64M:512)`);
  const o: SimOptions = {};
  const body = (m[1] ?? "").trim();
  if (!body) return o;
  for (const item of body.split(";")) {
    if (!item.trim()) continue;
    const eq = item.indexOf("=");
    if (eq < 0) throw new InvalidArgumentError(`sim: item ${JSON.stringify(item)} is not key=value`);
    const k = item.slice(0, eq).trim().toLowerCase(), v = item.slice(eq + 1).trim();
    switch (k) {
      case "ns":
        o.namespaces = v.split(",").filter((x) => x.trim()).map((x) => {
          const at = x.indexOf("@");
          const path = at >= 0 ? x.slice(at + 1) : undefined;
          const [sz, bs] = (at >= 0 ? x.slice(0, at) : x).split(":");
          const blockSize = bs === undefined ? 512 : parseNum(bs, "block size");
          if (blockSize !== 512 && blockSize !== 4096) throw new InvalidArgumentError(`sim: block size must be 512 or 4096, got ${bs}`);
          return { size: parseSize(sz, "namespace size"), blockSize, ...(path ? { path } : {}) };
        });
        break;
      case "mem": o.memoryBytes = parseSize(v, "memory size"); break;
      case "queues": o.maxQueues = parseNum(v, "queues"); break;
      case "mqes": o.maxQueueEntries = parseNum(v, "mqes"); break;
      case "mdts": o.mdts = parseNum(v, "mdts"); break;
      case "nn": o.maxNamespaces = parseNum(v, "nn"); break;
      case "capacity": o.capacityBytes = parseSize(v, "capacity"); break;
      case "fwslots": o.fwSlots = parseNum(v, "fwslots"); break;
      case "fwro": o.fwSlot1ReadOnly = v !== "0"; break;
      case "fwug": o.fwug = parseNum(v, "fwug"); break;
      case "sanicap": o.sanicap = parseNum(v, "sanicap"); break;
      case "sanitize": o.sanitizeMs = parseNum(v, "sanitize time"); break;
      case "selftest": o.selfTestMs = parseNum(v, "self-test time"); break;
      case "latency": o.latencyMs = parseNum(v, "latency"); break;
      case "ready": o.readyDelayMs = parseNum(v, "ready delay"); break;
      case "vwc": o.vwc = v !== "0"; break;
      case "zoned":
        for (const z of v.split(",").filter((x) => x.trim())) {
          const [id, zb, mo, ma] = z.split(":");
          const ns = (o.namespaces ??= [{ size: 16 << 20, blockSize: 512 }, { size: 16 << 20, blockSize: 4096 }])[parseNum(id, "zoned nsid") - 1];
          if (!ns) throw new InvalidArgumentError(`sim: zoned namespace ${id} does not exist (give ns= first)`);
          ns.zoned = {
            ...(zb ? { zoneBlocks: parseNum(zb, "zone size") } : {}),
            ...(mo ? { maxOpen: parseNum(mo, "max open zones") } : {}),
            ...(ma ? { maxActive: parseNum(ma, "max active zones") } : {}),
          };
        }
        break;
      case "fdp": {
        const [nruh, runs, nrg] = v.split(":");
        o.fdp = { nruh: parseNum(nruh, "fdp handles"), ...(runs ? { runs: parseSize(runs, "reclaim unit size") } : {}), ...(nrg ? { nrg: parseNum(nrg, "reclaim groups") } : {}) };
        break;
      }
      case "pi": o.piFormats = v !== "0"; break;
      case "sgl": o.sgl = v !== "0"; break;
      case "dbbuf": o.shadowDoorbells = v !== "0"; break;
      case "cmb": o.cmbBytes = parseSize(v, "cmb size"); break;
      case "sriov": o.sriovVfs = parseNum(v, "sriov VFs"); break;
      case "threads": o.threads = parseNum(v, "threads"); break;
      default:
        throw new InvalidArgumentError(`sim: unknown option ${JSON.stringify(k)}`);
    }
  }
  return o;
}

/** What a fault rule does to a matching command. */
export type FaultAction =
  /** The command is held and never completes (an Abort still completes it). */
  | "drop"
  /** The command runs and completes `delayMs` later (abortable meanwhile, unless `abortable` is false). */
  | "delay"
  /** The command completes with `status` without running. */
  | "status"
  /** The command runs and its completion is mangled as `bogus` says. */
  | "bogus"
  /** The controller becomes fatal (CSTS.CFS) on this command and stops. */
  | "fatal"
  /** The device disappears (registers read all ones) on this command. */
  | "remove";

/** Kinds of bogus completion. */
export type BogusKind =
  /** An extra completion with a command id nobody issued, then the real one. */
  | "unknown-cid"
  /** The real completion, posted twice. */
  | "duplicate"
  /** An extra completion naming another SQ, then the real one. */
  | "wrong-sqid"
  /** The real completion with the previous phase tag: the host never sees it (nor what follows). */
  | "stale-phase";

/** A fault injection rule: which commands it matches and what happens to them. */
export interface FaultRule {
  /** What happens. */
  action: FaultAction;
  /** Queue id, or "admin" / "io"; default any queue (opcodes overlap between admin and IO!). */
  queue?: number | "admin" | "io";
  /** Opcode to match. */
  opcode?: number;
  /** Namespace id to match. */
  nsid?: number;
  /** Inclusive block range [first, last]; matches IO commands whose blocks overlap it. */
  lba?: [number, number];
  /** Matches at most this many commands, then the rule is dropped (default unlimited). */
  count?: number;
  /** Delay in ms ("delay"). */
  delayMs?: number;
  /**
   * "delay" only: false makes an Abort miss the command (it completes "not aborted") while the
   * command still completes after `delayMs`, as a device may answer an Abort it could not act on.
   */
  abortable?: boolean;
  /** Status as (SCT << 8) | SC, e.g. 0x281 Unrecovered Read Error ("status"). */
  status?: number;
  /** Set Do Not Retry on the injected status. */
  dnr?: boolean;
  /** Kind of bogus completion ("bogus", default "unknown-cid"). */
  bogus?: BogusKind;
}

/** A command the device holds (dropped or delayed), as reported by state(). */
export interface HeldCommand {
  /** Submission queue id. */
  qid: number;
  /** Command identifier. */
  cid: number;
  /** Opcode. */
  opcode: number;
  /** Namespace id. */
  nsid: number;
}

/** A snapshot of device state for tests. */
export interface SimState {
  /** Commands the device is holding (faults, latency, outstanding AERs excluded). */
  held: HeldCommand[];
  /** Outstanding Asynchronous Event Requests. */
  aers: number;
  /** Active fault rules with their remaining counts. */
  faults: (FaultRule & { id: number })[];
  /** Namespaces: id, blocks, block size, attached. */
  namespaces: { nsid: number; blocks: number; blockSize: number; attached: boolean }[];
  /** Active firmware slot and revision per slot (index 0 = slot 1). */
  firmware: { active: number; next: number; slots: string[] };
  /** Sanitize: SSTAT and SPROG as in the sanitize status log. */
  sanitize: { sstat: number; sprog: number };
  /** Device self-test running (0: none, 1 short, 2 extended) and percent done. */
  selfTest: { op: number; percent: number };
  /** Enabled (CC.EN), ready (CSTS.RDY), fatal (CSTS.CFS). */
  enabled: boolean;
  /** CSTS.RDY. */
  ready: boolean;
  /** CSTS.CFS. */
  fatal: boolean;
}

/** Status codes (SCT << 8 | SC) the controller returns that lib/nvme/spec.ts has no name for. */
export const SimStatus = {
  SUCCESS: 0x000,
  INVALID_OPCODE: 0x001,
  INVALID_FIELD: 0x002,
  DATA_TRANSFER_ERROR: 0x004,
  INTERNAL_ERROR: 0x006,
  ABORT_REQUESTED: 0x007,
  SQ_DELETION: 0x008,
  INVALID_NAMESPACE: 0x00b,
  COMMAND_SEQUENCE_ERROR: 0x00c,
  PRP_OFFSET_INVALID: 0x013,
  SANITIZE_FAILED: 0x01c,
  SANITIZE_IN_PROGRESS: 0x01d,
  LBA_OUT_OF_RANGE: 0x080,
  CQ_INVALID: 0x100,
  INVALID_QID: 0x101,
  INVALID_QUEUE_SIZE: 0x102,
  AER_LIMIT_EXCEEDED: 0x105,
  INVALID_FW_SLOT: 0x106,
  INVALID_FW_IMAGE: 0x107,
  INVALID_INTERRUPT_VECTOR: 0x108,
  INVALID_LOG_PAGE: 0x109,
  INVALID_FORMAT: 0x10a,
  INVALID_QUEUE_DELETION: 0x10c,
  OVERLAPPING_RANGE: 0x114,
  NS_INSUFFICIENT_CAPACITY: 0x115,
  NS_ID_UNAVAILABLE: 0x116,
  NS_ALREADY_ATTACHED: 0x118,
  NS_NOT_ATTACHED: 0x11a,
  THIN_PROVISIONING_NOT_SUPPORTED: 0x11b,
  CONTROLLER_LIST_INVALID: 0x11c,
  SELF_TEST_IN_PROGRESS: 0x11d,
  INVALID_PROTECTION_INFO: 0x181,
  COMMAND_SIZE_LIMIT_EXCEEDED: 0x183,
  WRITE_FAULT: 0x280,
  UNRECOVERED_READ_ERROR: 0x281,
  GUARD_CHECK_ERROR: 0x282,
  APP_TAG_CHECK_ERROR: 0x283,
  REF_TAG_CHECK_ERROR: 0x284,
  COMPARE_FAILURE: 0x285,
} as const;

/** Log page identifiers the controller serves: the spec's own table. */
export { LogId } from "../nvme/spec.ts";

/** The Identify CNS values the controller serves beyond CNS 00h-03h (lib/nvme/spec.ts's Cns, under the names the sim used). */
export const SimCns = {
  NS_COMMON: Cns.NAMESPACE,
  CSI_CTRL: Cns.CSI_CTRL,
  ALLOCATED_NS_LIST: Cns.ALLOCATED_NS_LIST,
  ALLOCATED_NS: Cns.ALLOCATED_NS,
  NS_CTRL_LIST: Cns.NS_CTRL_LIST,
  CTRL_LIST: Cns.CTRL_LIST,
} as const;

/** Int32 indices in the shared control area. */
export const Ctl = {
  /** Word the device sleeps on; the host notifies it on register writes. */
  WAKE: 0,
  /** 1 once the device was surprise-removed. */
  REMOVED: 1,
  /** DMA attempts to host memory that was not mapped (stale IOVAs). */
  STALE_DMA: 2,
  /** Start of per-queue per-opcode command counters: index COUNTS + qid * 256 + opcode. */
  COUNTS: 16,
} as const;

/** Byte size of the control area for `maxQueues` IO queues. */
export function ctlBytes(maxQueues: number): number {
  return (Ctl.COUNTS + (maxQueues + 1) * 256) * 4;
}

/** Byte size of the register area (registers, then two doorbells per queue at 0x1000). */
export function regBytes(maxQueues: number): number {
  return 0x1000 + 8 * (maxQueues + 1);
}
