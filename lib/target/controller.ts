/**
 * What every controller of the target shares (the subsystem it serves, the
 * target's limits, the reply shape), and the discovery controller: Identify
 * Controller (CNTRLTYPE 2), the discovery log page 70h filtered by the host's
 * allow-lists, Asynchronous Event Configuration with discovery-change
 * notices, AER, Keep Alive and the keep-alive timer feature. NVM controllers
 * are lib/target/nvm.ts, on lib/sim's controller model.
 * @module
 */
import { CntrlType, Ctratt, IDENTIFY_BYTES, IdCtrlOffset, Lpa, Oaes, Sgls } from "../nvme/identify.ts";
import { AdminOpc, AsyncEventType, CC, Cns, CSTS, Fid, Reg, Status, STATUS_DNR } from "../nvme/spec.ts";
import { DISCOVERY_NQN } from "../tcp/fabrics.ts";
import { LID_DISCOVERY } from "../tcp/discovery.ts";
import { padAscii } from "../sim/engine.ts";
import { put16, put32 } from "../tcp/pdu.ts";
import type { BlockBackend } from "./backend.ts";
import type { NvmController, Reply } from "./nvm.ts";
import { DISCOVERY_KATO_MS } from "./spec.ts";

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

/** What a command produced: status, DW0/DW1, and data for the host. */
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

/** Either kind of controller a Connect creates. */
export type FabricsController = NvmController | DiscoveryController;

/** CAP of a fabrics controller with `entries` per queue: MQES, CQR, TO 7.5 s, CSS NVM, MPSMIN/MAX 4 KiB. */
export function fabricsCap(entries: number): bigint {
  return BigInt(entries - 1) | (1n << 16n) | (15n << 24n) | (1n << 37n);
}

/** Property Get as nvmet answers it, for either kind of controller: CAP (8 bytes), VS, CC, CSTS (4 bytes). */
export function propertyGet(c: { readonly cap: bigint; readonly cc: number; readonly csts: number }, ofst: number, eight: boolean): AdminReply {
  if (ofst === Reg.CAP && eight) return { sf: 0, dw0: Number(c.cap & 0xffffffffn), dw1: Number(c.cap >> 32n) };
  if (eight) return { sf: Status.INVALID_FIELD | STATUS_DNR };
  if (ofst === Reg.VS) return { sf: 0, dw0: 0x10400 };
  if (ofst === Reg.CC) return { sf: 0, dw0: c.cc };
  if (ofst === Reg.CSTS) return { sf: 0, dw0: c.csts };
  return { sf: Status.INVALID_FIELD | STATUS_DNR };
}

/** Bytes a Get Log Page moves: (NUMDU:NUMDL + 1) dwords. */
function logBytes(sqe: Uint32Array): number {
  return (((sqe[10] >>> 16) | ((sqe[11] & 0xffff) << 16)) + 1) * 4;
}

/** The discovery controller of one admin Connect to the well-known discovery NQN. */
export class DiscoveryController {
  /** Controller id. */
  readonly cntlid: number;
  /** No subsystem: discovery. */
  readonly subsystem = null;
  /** A discovery controller. */
  readonly discovery = true as const;
  /** Host NQN of the admin Connect. */
  readonly hostnqn: string;
  /** Host identifier of the admin Connect. */
  readonly hostid: Uint8Array;
  /** Keep-alive timeout in ms (KATO 0 means nvmet's 120 s for discovery). */
  kato: number;
  /** When the last command arrived. */
  lastSeen: number = performance.now();
  /** Commands seen on IO queues, counted where they are served (no clock read per IO); the keep-alive check notes changes. */
  activity: Int32Array = new Int32Array(1);
  /** {@link activity} at the last keep-alive check. */
  activitySeen = 0;
  /** Set once the controller is gone. */
  dead = false;
  /** No IO queues. */
  readonly ioQueues = 0;
  /** Largest log transfer per command. */
  readonly maxTransfer: number;
  #cc = 0;
  #csts = 0;
  #aec = 0;
  readonly #aers: Reply[] = [];
  #event = false;
  readonly #log: (hostnqn: string) => Uint8Array;

  /** A discovery controller; `log` builds the discovery log page a host may see. */
  constructor(cntlid: number, hostnqn: string, hostid: Uint8Array, katoMs: number, limits: ControllerLimits, log: (hostnqn: string) => Uint8Array) {
    this.cntlid = cntlid;
    this.hostnqn = hostnqn;
    this.hostid = hostid;
    this.kato = katoMs === 0 ? DISCOVERY_KATO_MS : katoMs;
    this.maxTransfer = limits.maxTransfer;
    this.#log = log;
  }

  /** CSTS.RDY. */
  get ready(): boolean {
    return (this.#csts & CSTS.RDY) !== 0;
  }

  /** Held AERs. */
  get heldAers(): number {
    return this.#aers.length;
  }

  /** The CC property. */
  get cc(): number {
    return this.#cc;
  }

  /** The CSTS property as a host reads it. */
  get csts(): number {
    return this.#csts;
  }

  /** CAP: 32 entries per queue. */
  get cap(): bigint {
    return fabricsCap(32);
  }

  /** Bytes a command moves: Identify 4096, Get Log Page (NUMD + 1) x 4. */
  transferLength(_qid: number, sqe: Uint32Array): number {
    const opc = sqe[0] & 0xff;
    if (opc === AdminOpc.IDENTIFY) return IDENTIFY_BYTES;
    if (opc === AdminOpc.GET_LOG_PAGE) return logBytes(sqe);
    return 0;
  }

  /** Property Get: CAP (8 bytes), VS, CC, CSTS. */
  propertyGet(ofst: number, eight: boolean): AdminReply {
    return propertyGet(this, ofst, eight);
  }

  /** Property Set CC: RDY follows EN, SHN completes at once. */
  propertySet(ofst: number, value: number, eight: boolean): AdminReply {
    if (ofst !== Reg.CC || eight) return { sf: Status.INVALID_FIELD | STATUS_DNR };
    this.#cc = value >>> 0;
    const shn = ((value >>> CC.SHN_SHIFT) & 3) !== 0;
    this.#csts = (value & 1 ? CSTS.RDY : 0) | (shn ? CSTS.SHST_COMPLETE : 0);
    if (!(value & 1)) this.#aers.length = 0;
    return { sf: 0 };
  }

  /** The discovery log changed: a held AER completes if the host enabled the notice. */
  discoveryChanged(): void {
    if (!(this.#aec & Oaes.DISC_CHANGE)) return;
    const a = this.#aers.shift();
    if (a) a({ sf: 0, dw0: AsyncEventType.NOTICE | (0xf0 << 8) | (LID_DISCOVERY << 16) });
    else this.#event = true;
  }

  /** Drop held AERs (the admin queue went away). */
  dropPending(): void {
    this.#aers.length = 0;
  }

  /** Run an admin command (discovery controllers have no IO queues). */
  execute(_qid: number, sqe: Uint32Array, _data: Uint8Array | null, reply: Reply): void {
    const opc = sqe[0] & 0xff;
    const fid = sqe[10] & 0xff;
    if (!this.ready && opc !== AdminOpc.KEEP_ALIVE) return reply({ sf: Status.SEQUENCE_ERROR | STATUS_DNR });
    switch (opc) {
      case AdminOpc.IDENTIFY:
        if ((sqe[10] & 0xff) !== Cns.CONTROLLER) return reply({ sf: Status.INVALID_FIELD | STATUS_DNR });
        return reply({ sf: 0, data: this.#identify() });
      case AdminOpc.GET_LOG_PAGE: {
        if ((sqe[10] & 0xff) !== LID_DISCOVERY) return reply({ sf: Status.INVALID_LOG_PAGE | STATUS_DNR });
        const lpo = sqe[12] + sqe[13] * 2 ** 32;
        if (lpo % 4 !== 0) return reply({ sf: Status.INVALID_FIELD | STATUS_DNR });
        const page = this.#log(this.hostnqn), out = new Uint8Array(logBytes(sqe));
        if (lpo < page.length) out.set(page.subarray(lpo, lpo + out.length));
        if (!((sqe[10] >>> 15) & 1)) this.#event = false; // RAE clear: the notice is consumed
        return reply({ sf: 0, data: out });
      }
      case AdminOpc.SET_FEATURES:
        if (fid === Fid.ASYNC_EVENT) {
          this.#aec = sqe[11] & Oaes.DISC_CHANGE;
          return reply({ sf: 0 });
        }
        if (fid === Fid.KEEP_ALIVE_TIMER) {
          this.kato = sqe[11] >>> 0;
          return reply({ sf: 0 });
        }
        return reply({ sf: Status.INVALID_FIELD | STATUS_DNR });
      case AdminOpc.GET_FEATURES:
        if (fid === Fid.ASYNC_EVENT) return reply({ sf: 0, dw0: this.#aec });
        if (fid === Fid.KEEP_ALIVE_TIMER) return reply({ sf: 0, dw0: this.kato });
        return reply({ sf: Status.INVALID_FIELD | STATUS_DNR });
      case AdminOpc.ASYNC_EVENT_REQUEST:
        if (this.#aers.length >= 4) return reply({ sf: Status.AER_LIMIT | STATUS_DNR });
        if (this.#event && this.#aec & Oaes.DISC_CHANGE) {
          this.#event = false;
          return reply({ sf: 0, dw0: AsyncEventType.NOTICE | (0xf0 << 8) | (LID_DISCOVERY << 16) });
        }
        this.#aers.push(reply);
        return;
      case AdminOpc.KEEP_ALIVE:
        return reply({ sf: 0 });
    }
    return reply({ sf: Status.INVALID_OPCODE | STATUS_DNR });
  }

  #identify(): Uint8Array {
    const b = new Uint8Array(IDENTIFY_BYTES);
    padAscii(b, IdCtrlOffset.SN, 20, "");
    padAscii(b, IdCtrlOffset.MN, 40, "tsnvme discovery");
    padAscii(b, IdCtrlOffset.FR, 8, "0.1");
    b[IdCtrlOffset.MDTS] = Math.max(1, Math.floor(Math.log2(this.maxTransfer / 4096)));
    put16(b, IdCtrlOffset.CNTLID, this.cntlid);
    put32(b, IdCtrlOffset.VER, 0x10400);
    put32(b, IdCtrlOffset.OAES, Oaes.DISC_CHANGE);
    put32(b, IdCtrlOffset.CTRATT, Ctratt.HOSTID_128 | Ctratt.TBKAS);
    b[IdCtrlOffset.CNTRLTYPE] = CntrlType.DISCOVERY;
    b[IdCtrlOffset.AERL] = 3;
    b[IdCtrlOffset.LPA] = Lpa.EXTENDED_DATA;
    put16(b, IdCtrlOffset.KAS, 10);
    put16(b, IdCtrlOffset.MAXCMD, 32);
    put32(b, IdCtrlOffset.SGLS, Sgls.SUPPORTED | Sgls.KEYED | Sgls.OFFSET);
    b.set(new TextEncoder().encode(DISCOVERY_NQN), IdCtrlOffset.SUBNQN);
    put32(b, IdCtrlOffset.IOCCSZ, 4);
    put32(b, IdCtrlOffset.IORCSZ, 1);
    b[IdCtrlOffset.MSDBD] = 1;
    return b;
  }
}
