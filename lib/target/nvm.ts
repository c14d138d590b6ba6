/**
 * An NVM controller of the target: the front end's half of one controller
 * whose command semantics are lib/sim's controller model. The model owns
 * Identify, logs, features, AER, CC/CSTS and every IO command but Read and
 * Write (which the connection maps straight onto the backend's queues); this
 * class adds what fabrics change: CAP as a property, the keep-alive timer
 * feature, the model's fabrics options (Identify's SGLS, IOCCSZ, KAS,
 * MAXCMD...; no format, firmware, sanitize, namespace or queue management:
 * the backing controller's business) and the routing of commands the model
 * completes later.
 * @module
 */
import { AdminOpc, CC, CQE_SIZE, CSTS, Fid, Reg, SQE_SIZE, Status, STATUS_DNR } from "../nvme/spec.ts";
import { BufferPort, ControllerModel, DataDir, type DataPort, type ModelIdentity, PENDING, transferDirection } from "../sim/engine.ts";
import { crc32c } from "../tcp/crc32c.ts";
import { identityFromIdCtrl } from "../sim/nsmedia.ts";
import { type AdminReply, type ControllerLimits, fabricsCap, propertyGet, type Subsystem } from "./controller.ts";
import { Ctratt, Sgls } from "../nvme/identify.ts";

/** Reply callback of a command the controller may finish later. */
export type Reply = (r: AdminReply) => void;

const EMPTY = new BufferPort();
/** One NVM controller (one admin Connect to an NVM subsystem). */
export class NvmController {
  /** Controller id. */
  readonly cntlid: number;
  /** Its subsystem. */
  readonly subsystem: Subsystem;
  /** Host NQN of the admin Connect. */
  readonly hostnqn: string;
  /** Host identifier of the admin Connect. */
  readonly hostid: Uint8Array;
  /** Not a discovery controller. */
  readonly discovery = false as const;
  /** Keep-alive timeout in ms (0: none). */
  kato: number;
  /** When the last command arrived on any of its queues. */
  lastSeen: number = performance.now();
  /** Commands seen on IO queues, counted where they are served (no clock read per IO); the keep-alive check notes changes. */
  activity: Int32Array = new Int32Array(1);
  /** {@link activity} at the last keep-alive check. */
  activitySeen = 0;
  /** Set once the controller is gone. */
  dead = false;
  /** The command semantics. */
  readonly model: ControllerModel;
  /** Largest transfer per command (bytes). */
  readonly maxTransfer: number;
  readonly #limits: ControllerLimits;
  readonly #pending = new Map<number, Reply>();
  readonly #onReset: () => void;

  /** A controller for `sub` after an admin Connect; `onReset` drops its IO queues (CC.EN cleared). */
  constructor(cntlid: number, sub: Subsystem, hostnqn: string, hostid: Uint8Array, katoMs: number, limits: ControllerLimits, onReset: () => void) {
    this.cntlid = cntlid;
    this.subsystem = sub;
    this.hostnqn = hostnqn;
    this.hostid = hostid;
    this.kato = katoMs;
    this.#limits = limits;
    this.#onReset = onReset;
    let mt = limits.maxTransfer;
    for (const ns of sub.namespaces) mt = Math.min(mt, ns.maxTransfer);
    const mdts = Math.max(1, Math.floor(Math.log2(mt / 4096)));
    this.maxTransfer = 4096 * 2 ** mdts;
    const back = sub.namespaces.find((n) => n.idCtrl !== null)?.idCtrl;
    const identity: ModelIdentity = back ? identityFromIdCtrl(back) : {};
    identity.subnqn = sub.nqn;
    if (sub.serial !== undefined) identity.serial = sub.serial;
    if (sub.model !== undefined) identity.model = sub.model;
    else if (!back) identity.model = "tsnvme NVMe/TCP target";
    const serial = identity.serial || crc32c(new TextEncoder().encode(sub.nqn)).toString(16).padStart(8, "0");
    this.model = new ControllerModel({
      serial,
      cntlid,
      identity: { ...identity, serial },
      namespaces: sub.namespaces.map((n) => ({ media: n.media, blockSize: n.blockSize as 512 | 4096 })),
      mdts,
      maxQueues: limits.maxIoQueues,
      maxQueueEntries: limits.queueEntries,
      maxNamespaces: Math.max(1, sub.namespaces.length),
      vwc: sub.namespaces.some((n) => n.vwc),
      sanicap: 0,
      fwSlots: 1,
      // Fabrics Identify fields and admin set: no Format, Sanitize, firmware, self-test, namespace or queue management.
      fabrics: {
        inCapsule: limits.inCapsule,
        maxcmd: limits.queueEntries,
        sgls: Sgls.SUPPORTED | Sgls.KEYED | Sgls.OFFSET,
        ctratt: Ctratt.HOSTID_128 | Ctratt.TBKAS,
        kas: 10,
      },
    }, {
      complete: (qid, cid, sf, dw0) => this.#complete(qid, cid, sf, dw0),
      enable: (cc) => 2 ** ((cc >>> CC.IOSQES_SHIFT) & 0xf) === SQE_SIZE && 2 ** ((cc >>> CC.IOCQES_SHIFT) & 0xf) === CQE_SIZE,
      reset: () => this.#onReset(),
    });
  }

  /** CSTS.RDY. */
  get ready(): boolean {
    return this.model.ready;
  }

  /** IO queues the host may connect (Set Features Number of Queues). */
  get ioQueues(): number {
    return this.model.grantedQueues;
  }

  /** The CC property. */
  get cc(): number {
    return this.model.cc;
  }

  /** The CSTS property as a host reads it (RDY, SHST...): the model's state machine advances first. */
  get csts(): number {
    this.model.tick();
    return this.model.csts;
  }

  /** Held Asynchronous Event Requests. */
  get heldAers(): number {
    return this.model.pendingAers;
  }

  /** The CAP property (the target's queue entries). */
  get cap(): bigint {
    return fabricsCap(this.#limits.queueEntries);
  }

  /** Bytes a command moves (the SGL must say the same for controller-to-host data). */
  transferLength(qid: number, sqe: Uint32Array): number {
    return this.model.transferLength(qid, sqe);
  }

  /** Property Get: CAP (8 bytes), VS, CC, CSTS (4 bytes), as nvmet. */
  propertyGet(ofst: number, eight: boolean): AdminReply {
    return propertyGet(this, ofst, eight);
  }

  /** Property Set CC (4 bytes only): the model's state machine; clearing EN drops the IO queues. */
  propertySet(ofst: number, value: number, eight: boolean): AdminReply {
    if (ofst !== Reg.CC || eight) return { sf: Status.INVALID_FIELD | STATUS_DNR };
    this.model.setCc(value >>> 0);
    return { sf: 0 };
  }

  /**
   * Run an admin command (qid 0) or an IO command other than Read/Write
   * through the model. `data` holds the host's data for commands that send
   * some (gathered by the connection first). `reply` runs once, now or
   * when the model completes the command.
   */
  execute(qid: number, sqe: Uint32Array, data: Uint8Array | null, reply: Reply): void {
    const opc = sqe[0] & 0xff;
    if (qid === 0) {
      const fid = sqe[10] & 0xff;
      if (fid === Fid.KEEP_ALIVE_TIMER && opc === AdminOpc.SET_FEATURES) {
        this.kato = sqe[11] >>> 0;
        return reply({ sf: 0 });
      }
      if (fid === Fid.KEEP_ALIVE_TIMER && opc === AdminOpc.GET_FEATURES) return reply({ sf: 0, dw0: this.kato });
    }
    if (this.model.failed || !(this.model.csts & CSTS.RDY)) return reply({ sf: Status.SEQUENCE_ERROR | STATUS_DNR });
    const dir = transferDirection(opc);
    let port: DataPort = EMPTY;
    let out: BufferPort | null = null;
    if (dir === DataDir.TO_HOST) {
      const len = this.model.transferLength(qid, sqe);
      if (len > 0) port = out = new BufferPort(new Uint8Array(len));
    } else if (data !== null) port = new BufferPort(data);
    const key = qid * 0x10000 + (sqe[0] >>> 16);
    const done: Reply = out === null ? reply : (r) => reply(r.sf === 0 ? { ...r, data: out!.buf } : r);
    this.#pending.set(key, done);
    const st = this.model.execute(qid, sqe, port);
    if (st === PENDING) return;
    if (this.#pending.get(key) === done) {
      this.#pending.delete(key);
      done({ sf: st, dw0: this.model.dw0 });
    }
  }

  #complete(qid: number, cid: number, sf: number, dw0: number): void {
    const key = qid * 0x10000 + cid;
    const r = this.#pending.get(key);
    if (r === undefined) return; // its queue went away
    this.#pending.delete(key);
    r({ sf, dw0 });
  }

  /** Drop every held command (held AERs, IO the backend still runs): their queues are gone. */
  dropPending(): void {
    this.#pending.clear();
  }
}
