/**
 * The target's controller model: one per admin Connect. It holds the
 * properties (CAP, VS, CC, CSTS) that Property Get/Set reach, the features,
 * the keep-alive clock, held Asynchronous Event Requests, and answers the
 * admin commands Linux's initiator sends (Identify CNS 0/1/2/3/6, Get Log
 * Page 01h/02h/03h/04h/05h/70h, Set/Get Features, Keep Alive, AER, Abort).
 * Identify Controller passes the backing controller's vendor ids, serial,
 * model and firmware through and caps MDTS by its limit; namespace ids are
 * the target's own (a passed-through NGUID would collide with the same
 * namespace seen through the kernel's own driver).
 *
 * Interim: the command semantics move onto lib/sim's front-end-neutral
 * controller model once it exists; the connection code talks to this class
 * only through {@link AdminReply} and the property methods.
 * @module
 */
import { IDENTIFY_BYTES, IdCtrlOffset, IdNsOffset } from "../nvme/identify.ts";
import { AdminOpc, AsyncEventType, Cns, CSTS, Fid, IoOpc, LogId, Nidt, Reg } from "../nvme/spec.ts";
import { crc32c } from "../tcp/crc32c.ts";
import { DISC_RECORD_SIZE, LID_DISCOVERY } from "../tcp/discovery.ts";
import { IdCtrl } from "../tcp/host.ts";
import { put16, put32 } from "../tcp/pdu.ts";
import type { BlockBackend } from "./backend.ts";
import {
  CcField,
  CntrlType,
  Ctratt,
  DISCOVERY_KATO_MS,
  Effects,
  IdCtrlExtra,
  IdNsExtra,
  IOCQES,
  IOSQES,
  Lpa,
  NS_DESC_HEADER,
  Oaes,
  Oncs,
  Sf,
  Sgls,
  TargetLogId,
} from "./spec.ts";

/** An NVM subsystem the target exports. */
export interface Subsystem {
  /** Subsystem NQN. */
  nqn: string;
  /** Namespaces, NSID 1.. in order. */
  namespaces: BlockBackend[];
  /** Host NQNs allowed to connect (null: any host). */
  allowHosts: Set<string> | null;
  /** Serial number (default: the backing controller's, else derived from the NQN). */
  serial?: string;
  /** Model number (default: the backing controller's, else "tsnvme NVMe/TCP target"). */
  model?: string;
}

/** Limits the whole target applies. */
export interface ControllerLimits {
  /** Largest transfer per command in bytes (MDTS is derived from it and the backends). */
  maxTransfer: number;
  /** In-capsule data bytes accepted on IO queues (IOCCSZ = (64 + this) / 16). */
  inCapsule: number;
  /** IO queues a controller may connect. */
  maxIoQueues: number;
  /** Entries per queue (CAP.MQES + 1, MAXCMD). */
  queueEntries: number;
}

/** What an admin command produced: status, DW0/DW1, and data for the host. */
export interface AdminReply {
  /** Status field (0 = success). */
  sf: number;
  /** Completion DW0. */
  dw0?: number;
  /** Completion DW1. */
  dw1?: number;
  /** Controller-to-host data (sent as C2HData before the completion). */
  data?: Uint8Array;
}

/** Completes a held Asynchronous Event Request with its DW0. */
export type AerSink = (dw0: number) => void;

/** NVMe version this model reports (1.4). */
export const TARGET_VS = 0x10400;

const ASCII = (b: Uint8Array, off: number, len: number, s: string) => {
  for (let i = 0; i < len; i++) b[off + i] = i < s.length ? s.charCodeAt(i) & 0x7f : 0x20;
};
const trimAscii = (b: Uint8Array, off: number, len: number) => String.fromCharCode(...b.subarray(off, off + len)).replace(/[\0 ]+$/, "");

/** A stable 16-byte namespace id from the subsystem NQN, the NSID and the backend's name. */
export function namespaceGuid(nqn: string, nsid: number, backend: string): Uint8Array {
  const t = new TextEncoder();
  const g = new Uint8Array(16);
  for (let i = 0; i < 4; i++) put32(g, i * 4, crc32c(t.encode(`${i}:${nqn}:${nsid}:${backend}`)));
  return g;
}

/** One controller of the target (NVM or discovery). */
export class TargetController {
  /** Controller id (returned by Connect). */
  readonly cntlid: number;
  /** The subsystem, or null for a discovery controller. */
  readonly subsystem: Subsystem | null;
  /** Host NQN of the admin Connect (IO Connects must match it). */
  readonly hostnqn: string;
  /** Host identifier of the admin Connect. */
  readonly hostid: Uint8Array;
  /** Keep-alive timeout in ms (0: none). */
  kato: number;
  /** CC property. */
  cc = 0;
  /** CSTS property. */
  csts = 0;
  /** When the last command arrived on any of its queues (performance.now()). */
  lastSeen: number = performance.now();
  /** Set once the controller is gone (keep-alive lapse, admin queue closed). */
  dead = false;
  readonly #limits: ControllerLimits;
  readonly #discoveryLog: (hostnqn: string) => Uint8Array;
  readonly #aers: AerSink[] = [];
  readonly #events: number[] = [];
  readonly #features = new Map<number, number>();
  #changedNs = false;
  #mdts: number;

  /** Model a controller for `subsystem` (null: discovery) after an admin Connect. */
  constructor(
    cntlid: number,
    subsystem: Subsystem | null,
    hostnqn: string,
    hostid: Uint8Array,
    katoMs: number,
    limits: ControllerLimits,
    discoveryLog: (hostnqn: string) => Uint8Array,
  ) {
    this.cntlid = cntlid;
    this.subsystem = subsystem;
    this.hostnqn = hostnqn;
    this.hostid = hostid;
    this.kato = subsystem === null && katoMs === 0 ? DISCOVERY_KATO_MS : katoMs;
    this.#limits = limits;
    this.#discoveryLog = discoveryLog;
    let mt = limits.maxTransfer;
    for (const ns of subsystem?.namespaces ?? []) mt = Math.min(mt, ns.maxTransfer);
    this.#mdts = Math.max(1, Math.floor(Math.log2(mt / 4096)));
    this.#features.set(Fid.NUM_QUEUES, ((limits.maxIoQueues - 1) << 16) | (limits.maxIoQueues - 1));
    this.#features.set(Fid.TEMP_THRESHOLD, 0x157);
    this.#features.set(Fid.VOLATILE_WC, this.#vwc ? 1 : 0);
    this.#features.set(Fid.ASYNC_EVENT, 0);
  }

  /** A discovery controller. */
  get discovery(): boolean {
    return this.subsystem === null;
  }

  /** Largest transfer per command (bytes). */
  get maxTransfer(): number {
    return 4096 * 2 ** this.#mdts;
  }

  get #vwc(): boolean {
    return (this.subsystem?.namespaces ?? []).some((n) => n.vwc);
  }

  /** The CAP property: MQES, CQR, TO 7.5 s, CSS NVM, MPSMIN/MAX 4 KiB. */
  get cap(): bigint {
    return BigInt(this.#limits.queueEntries - 1) | (1n << 16n) | (15n << 24n) | (1n << 37n);
  }

  /** Property Get: CAP (8 bytes), VS, CC, CSTS (4 bytes), as nvmet. */
  propertyGet(ofst: number, eight: boolean): AdminReply {
    if (ofst === Reg.CAP && eight) return { sf: 0, dw0: Number(this.cap & 0xffffffffn), dw1: Number(this.cap >> 32n) };
    if (eight) return { sf: Sf.INVALID_FIELD | Sf.DNR };
    if (ofst === Reg.VS) return { sf: 0, dw0: TARGET_VS };
    if (ofst === Reg.CC) return { sf: 0, dw0: this.cc };
    if (ofst === Reg.CSTS) return { sf: 0, dw0: this.csts };
    return { sf: Sf.INVALID_FIELD | Sf.DNR };
  }

  /**
   * Property Set CC: EN 0→1 checks the queue entry sizes and sets RDY (or
   * CFS), EN 1→0 clears RDY and reports `reset` (the IO queues go), SHN
   * completes at once.
   */
  propertySet(ofst: number, value: number, eight: boolean): AdminReply & { reset?: boolean } {
    if (ofst !== Reg.CC || eight) return { sf: Sf.INVALID_FIELD | Sf.DNR };
    const old = this.cc;
    this.cc = value >>> 0;
    let reset = false;
    if ((value & 1) && !(old & 1)) {
      const sqes = (value >>> CcField.IOSQES_SHIFT) & 0xf, cqes = (value >>> CcField.IOCQES_SHIFT) & 0xf;
      const mps = (value >>> CcField.MPS_SHIFT) & 0xf, ams = (value >>> CcField.AMS_SHIFT) & 7;
      const css = (value >>> CcField.CSS_SHIFT) & 7;
      const ok = mps === 0 && ams === 0 && (css === 0 || css === 6) && (this.discovery || (sqes === IOSQES && cqes === IOCQES));
      this.csts = ok ? CSTS.RDY : CSTS.CFS;
    } else if (!(value & 1) && (old & 1)) {
      this.csts = 0;
      reset = true;
    }
    if (((value >>> CcField.SHN_SHIFT) & 3) !== 0) this.csts = (this.csts & ~CSTS.SHST_MASK) | CSTS.SHST_COMPLETE;
    else this.csts &= ~CSTS.SHST_MASK;
    return { sf: 0, reset };
  }

  /** IO queues the host may connect (Set Features Number of Queues grants the target's maximum). */
  get ioQueues(): number {
    return this.#limits.maxIoQueues;
  }

  /**
   * Answer an admin command. Null means held: an AER, completed later
   * through `aer` when an event is posted.
   */
  admin(sqe: Uint32Array, aer: AerSink): AdminReply | null {
    const opc = sqe[0] & 0xff;
    const disc = this.discovery;
    switch (opc) {
      case AdminOpc.IDENTIFY:
        return this.#identify(sqe[10] & 0xff, sqe[1], (sqe[11] >>> 24) & 0xff);
      case AdminOpc.GET_LOG_PAGE:
        return this.#getLog(sqe);
      case AdminOpc.SET_FEATURES:
        return this.#setFeature(sqe);
      case AdminOpc.GET_FEATURES:
        return this.#getFeature(sqe);
      case AdminOpc.KEEP_ALIVE:
        return { sf: 0 };
      case AdminOpc.ASYNC_EVENT_REQUEST: {
        if (this.#aers.length >= 4) return { sf: Sf.AER_LIMIT | Sf.DNR };
        const ev = this.#events.shift();
        if (ev !== undefined) return { sf: 0, dw0: ev };
        this.#aers.push(aer);
        return null;
      }
      case AdminOpc.ABORT:
        if (disc) break;
        return { sf: 0, dw0: 1 }; // not aborted: commands here are never queued long enough to abort
    }
    return { sf: Sf.INVALID_OPCODE | Sf.DNR };
  }

  /**
   * Post an asynchronous event (type | info << 8 | log page << 16) if the
   * host enabled it: a held AER completes with it, or it waits for the next.
   */
  postEvent(type: number, info: number, lid: number, enableBit: number): void {
    if ((this.#features.get(Fid.ASYNC_EVENT)! & enableBit) === 0) return;
    if (lid === LogId.CHANGED_NS) this.#changedNs = true;
    const dw0 = type | (info << 8) | (lid << 16);
    const a = this.#aers.shift();
    if (a) a(dw0);
    else if (this.#events.length < 16) this.#events.push(dw0);
  }

  /** A namespace attribute changed (a Changed Namespace List notice). */
  namespaceChanged(): void {
    this.postEvent(AsyncEventType.NOTICE, 0, LogId.CHANGED_NS, Oaes.NS_ATTR);
  }

  /** The discovery log changed (a discovery controller's notice). */
  discoveryChanged(): void {
    if (this.discovery) this.postEvent(AsyncEventType.NOTICE, 0xf0, LID_DISCOVERY, Oaes.DISC_CHANGE);
  }

  /** Held AERs (tests). */
  get heldAers(): number {
    return this.#aers.length;
  }

  /** Drop held AERs (the admin queue went away). */
  dropAers(): void {
    this.#aers.length = 0;
  }

  #identify(cns: number, nsid: number, csi: number): AdminReply {
    const b = new Uint8Array(IDENTIFY_BYTES);
    const nss = this.subsystem?.namespaces ?? [];
    if (cns === Cns.CONTROLLER) {
      this.#idCtrl(b);
      return { sf: 0, data: b };
    }
    if (this.discovery) return { sf: Sf.INVALID_FIELD | Sf.DNR };
    switch (cns) {
      case Cns.NAMESPACE: {
        if (nsid === 0 || (nsid > nss.length && nsid !== 0xffffffff)) return { sf: Sf.INVALID_NS | Sf.DNR };
        const ns = nss[nsid - 1];
        if (ns) this.#idNs(b, ns);
        return { sf: 0, data: b };
      }
      case Cns.ACTIVE_NS_LIST: {
        if (nsid >= 0xfffffffe) return { sf: Sf.INVALID_NS | Sf.DNR };
        let k = 0;
        for (let id = nsid + 1; id <= nss.length && k < 1024; id++) put32(b, 4 * k++, id);
        return { sf: 0, data: b };
      }
      case Cns.NS_DESCRIPTORS: {
        const ns = nss[nsid - 1];
        if (!ns) return { sf: Sf.INVALID_NS | Sf.DNR };
        b[0] = Nidt.NGUID;
        b[1] = 16;
        b.set(namespaceGuid(this.subsystem!.nqn, nsid, ns.name), NS_DESC_HEADER);
        const o = NS_DESC_HEADER + 16;
        b[o] = Nidt.CSI;
        b[o + 1] = 1;
        b[o + NS_DESC_HEADER] = 0; // NVM command set
        return { sf: 0, data: b };
      }
      case 0x05: // I/O command set specific namespace (NVM: nothing beyond CNS 0)
      case 0x06: // I/O command set specific controller: no extra limits for NVM
        if (csi !== 0) return { sf: Sf.INVALID_FIELD | Sf.DNR };
        return { sf: 0, data: b };
    }
    return { sf: Sf.INVALID_FIELD | Sf.DNR };
  }

  #idCtrl(b: Uint8Array): void {
    const sub = this.subsystem;
    const back = sub?.namespaces.find((n) => n.idCtrl !== null)?.idCtrl ?? null;
    if (back) {
      b.set(back.subarray(IdCtrlOffset.VID, IdCtrlOffset.SN), IdCtrlOffset.VID); // VID, SSVID
      b.set(back.subarray(IdCtrlOffset.SN, IdCtrlOffset.FR + 8), IdCtrlOffset.SN); // SN, MN, FR
      b.set(back.subarray(IdCtrlExtra.IEEE, IdCtrlExtra.IEEE + 3), IdCtrlExtra.IEEE);
    } else {
      ASCII(b, IdCtrlOffset.FR, 8, "0.1");
    }
    const nqn = sub?.nqn ?? "";
    if (sub?.serial !== undefined || !back) {
      ASCII(b, IdCtrlOffset.SN, 20, sub?.serial ?? (sub ? crc32c(new TextEncoder().encode(nqn)).toString(16).padStart(8, "0") : ""));
    }
    if (sub?.model !== undefined || !back) ASCII(b, IdCtrlOffset.MN, 40, sub?.model ?? (sub ? "tsnvme NVMe/TCP target" : "tsnvme discovery"));
    b[IdCtrl.MDTS] = this.#mdts;
    put16(b, IdCtrl.CNTLID, this.cntlid);
    put32(b, IdCtrl.VER, TARGET_VS);
    put32(b, IdCtrlExtra.OAES, this.discovery ? Oaes.DISC_CHANGE : Oaes.NS_ATTR);
    put32(b, IdCtrl.CTRATT, Ctratt.HOSTID_128 | Ctratt.TBKAS);
    b[IdCtrl.CNTRLTYPE] = this.discovery ? CntrlType.DISCOVERY : CntrlType.IO;
    b[IdCtrlExtra.ACL] = 3;
    b[IdCtrlExtra.AERL] = 3;
    b[IdCtrlExtra.LPA] = Lpa.SMART_PER_NS | Lpa.CMD_EFFECTS | Lpa.EXTENDED_DATA;
    put16(b, IdCtrl.KAS, 10); // 1 s granularity (units of 100 ms)
    if (!this.discovery) {
      b[IdCtrlOffset.SQES] = (IOSQES << 4) | IOSQES;
      b[IdCtrlOffset.CQES] = (IOCQES << 4) | IOCQES;
    }
    put16(b, IdCtrl.MAXCMD, this.#limits.queueEntries);
    put32(b, IdCtrl.NN, sub?.namespaces.length ?? 0);
    let oncs = Oncs.DSM | Oncs.WRITE_ZEROES;
    for (const ns of sub?.namespaces ?? []) {
      const o = ns.oncs;
      if (o !== undefined) oncs &= o | Oncs.WRITE_ZEROES; // Write Zeroes passes through or fails per command
    }
    put16(b, IdCtrlOffset.ONCS, sub ? oncs : 0);
    b[IdCtrlOffset.VWC] = this.#vwc ? 1 : 0;
    put32(b, IdCtrl.SGLS, Sgls.SUPPORTED | Sgls.KEYED | Sgls.OFFSET);
    const nb = new TextEncoder().encode(this.discovery ? "nqn.2014-08.org.nvmexpress.discovery" : nqn);
    b.set(nb.subarray(0, 255), IdCtrl.SUBNQN);
    put32(b, IdCtrl.IOCCSZ, (64 + this.#limits.inCapsule) / 16);
    put32(b, IdCtrl.IORCSZ, 1);
    put16(b, IdCtrl.ICDOFF, 0);
    b[IdCtrlExtra.FCATT] = 0; // dynamic controller model
    b[IdCtrl.MSDBD] = 1;
  }

  #idNs(b: Uint8Array, ns: BlockBackend): void {
    const nlb = ns.blockCount;
    for (const off of [IdNsOffset.NSZE, IdNsOffset.NCAP, IdNsOffset.NUSE]) {
      put32(b, off, nlb % 2 ** 32);
      put32(b, off + 4, Math.floor(nlb / 2 ** 32));
    }
    b[IdNsOffset.NLBAF] = 0;
    b[IdNsOffset.FLBAS] = 0;
    b[IdNsExtra.DLFEAT] = ns.idCtrl === null ? 1 : 0; // media reads deallocated blocks as zeros; a device says so itself
    const nsid = this.subsystem!.namespaces.indexOf(ns) + 1;
    b.set(namespaceGuid(this.subsystem!.nqn, nsid, ns.name), IdNsExtra.NGUID);
    b[IdNsOffset.LBAF + 2] = Math.log2(ns.blockSize);
  }

  #getLog(sqe: Uint32Array): AdminReply {
    const lid = sqe[10] & 0xff;
    const numd = ((sqe[10] >>> 16) | ((sqe[11] & 0xffff) << 16)) + 1;
    const lpo = sqe[12] + sqe[13] * 2 ** 32;
    if (lpo % 4 !== 0) return { sf: Sf.INVALID_FIELD | Sf.DNR };
    const out = new Uint8Array(numd * 4);
    let page: Uint8Array | null = null;
    if (this.discovery) {
      if (lid !== LID_DISCOVERY) return { sf: Sf.INVALID_LOG_PAGE | Sf.DNR };
      page = this.#discoveryLog(this.hostnqn);
    } else {
      switch (lid) {
        case LogId.ERROR:
          page = new Uint8Array(64);
          break;
        case LogId.SMART:
          page = new Uint8Array(512);
          put16(page, 1, 300); // composite temperature (K)
          page[3] = 100; // available spare
          page[4] = 10; // spare threshold
          break;
        case TargetLogId.FW_SLOT: {
          page = new Uint8Array(512);
          page[0] = 1; // active slot 1
          const id = new Uint8Array(IDENTIFY_BYTES);
          this.#idCtrl(id);
          page.set(id.subarray(IdCtrlOffset.FR, IdCtrlOffset.FR + 8), 8);
          break;
        }
        case LogId.CHANGED_NS:
          page = new Uint8Array(4096);
          if (this.#changedNs) put32(page, 0, 0xffffffff); // more than 1024 changed: rescan all
          this.#changedNs = false;
          break;
        case LogId.CMD_EFFECTS:
          page = this.#effects();
          break;
        default:
          return { sf: Sf.INVALID_LOG_PAGE | Sf.DNR };
      }
    }
    if (lpo < page.length) out.set(page.subarray(lpo, lpo + out.length));
    return { sf: 0, data: out };
  }

  #effects(): Uint8Array {
    const p = new Uint8Array(4096);
    for (const opc of [AdminOpc.GET_LOG_PAGE, AdminOpc.IDENTIFY, AdminOpc.ABORT, AdminOpc.SET_FEATURES, AdminOpc.GET_FEATURES, AdminOpc.ASYNC_EVENT_REQUEST, AdminOpc.KEEP_ALIVE]) {
      put32(p, opc * 4, Effects.CSUPP);
    }
    const io = 1024;
    put32(p, io + IoOpc.FLUSH * 4, Effects.CSUPP);
    put32(p, io + IoOpc.READ * 4, Effects.CSUPP);
    for (const opc of [IoOpc.WRITE, IoOpc.WRITE_ZEROES, IoOpc.DATASET_MANAGEMENT]) put32(p, io + opc * 4, Effects.CSUPP | Effects.LBCC);
    return p;
  }

  #setFeature(sqe: Uint32Array): AdminReply {
    const fid = sqe[10] & 0xff, v = sqe[11] >>> 0;
    if (sqe[10] & 0x80000000) return { sf: Sf.NOT_SAVEABLE | Sf.DNR };
    switch (fid) {
      case Fid.NUM_QUEUES:
        if (this.discovery) break;
        if ((v & 0xffff) === 0xffff || v >>> 16 === 0xffff) return { sf: Sf.INVALID_FIELD | Sf.DNR };
        return { sf: 0, dw0: this.#features.get(Fid.NUM_QUEUES) };
      case Fid.ASYNC_EVENT:
        this.#features.set(fid, v & (this.discovery ? Oaes.DISC_CHANGE : Oaes.NS_ATTR | 0xff));
        return { sf: 0 };
      case KATO_FID:
        this.kato = v;
        return { sf: 0 };
      case Fid.VOLATILE_WC:
        if (this.discovery || !this.#vwc) break;
        this.#features.set(fid, v & 1);
        return { sf: 0 };
      case Fid.TEMP_THRESHOLD:
        if (this.discovery) break;
        this.#features.set(fid, v & 0xffff);
        return { sf: 0 };
    }
    return { sf: Sf.INVALID_FIELD | Sf.DNR };
  }

  #getFeature(sqe: Uint32Array): AdminReply {
    const fid = sqe[10] & 0xff;
    if (fid === KATO_FID) return { sf: 0, dw0: this.kato };
    const v = this.#features.get(fid);
    if (v === undefined || (this.discovery && fid !== Fid.ASYNC_EVENT)) return { sf: Sf.INVALID_FIELD | Sf.DNR };
    return { sf: 0, dw0: v };
  }

  /** Serial and model as reported (for logs). */
  describe(): string {
    const b = new Uint8Array(IDENTIFY_BYTES);
    this.#idCtrl(b);
    return `${trimAscii(b, IdCtrlOffset.MN, 40)} (SN ${trimAscii(b, IdCtrlOffset.SN, 20)})`;
  }
}

/** Keep Alive Timer feature id. */
const KATO_FID = 0x0f;
/** A discovery log record's size (for callers sizing reads). */
export const DISCOVERY_RECORD = DISC_RECORD_SIZE;
