/**
 * The software controller's Flexible Data Placement (NVMe TP4146): one
 * endurance group (1) with one FDP configuration of `nrg` reclaim groups and
 * `nruh` reclaim unit handles of `runs` bytes each; namespaces name the
 * handles they may place on (their placement handles). Writes with a
 * placement directive (DTYPE 2, DSPEC = placement identifier) consume the
 * chosen reclaim unit and count in the statistics; a reclaim unit that
 * fills is replaced by a fresh one; Reclaim Unit Handle Update replaces them
 * on request. Serves the FDP logs (20h-23h), the FDP and FDP Events
 * features, and I/O Management Send/Receive. The model (engine.ts) holds
 * one {@link FdpSubsystem} and calls it from a few hooks.
 * @module
 */
import {

  encodeFdpConfigLog,
  encodeFdpEventsLog,
  encodeFdpStatsLog,
  encodeRuhStatus,
  encodeRuhUsageLog,
  type FdpEvent,
  FdpEventFlag,
  FdpEventType,
  FdpFid,
  FdpLogId,
  IoMgmt,
  placementOf,
  RuhAttr,
  RuhType,
} from "../nvme/fdp.ts";
import { Uint64 } from "../nvme/wide.ts";
import { SimStatus as S } from "./options.ts";

/** The FDP configuration of a simulated controller (as QEMU's nvme-subsys `fdp.*` properties). */
export interface SimFdpOptions {
  /** Reclaim unit nominal size in bytes (default 1 MiB). */
  runs?: number;
  /** Reclaim groups (default 1). */
  nrg?: number;
  /** Reclaim unit handles (default 8). */
  nruh?: number;
}

/** Event types a handle can report (FDP Events feature). */
const EVENT_TYPES = [
  FdpEventType.RU_NOT_FULLY_WRITTEN, FdpEventType.RU_TIME_LIMIT_EXCEEDED, FdpEventType.CTRL_RESET_MODIFIED_RUH,
  FdpEventType.INVALID_PID, FdpEventType.MEDIA_REALLOCATED, FdpEventType.IMPLICIT_RUH_MODIFIED,
];
const MAX_EVENTS = 63;
const ENDGID = 1;

/** FDP state of the subsystem: handles, reclaim units, statistics, events. */
export class FdpSubsystem {
  /** Reclaim unit nominal size in bytes. */
  readonly runs: number;
  /** Reclaim groups. */
  readonly nrg: number;
  /** Reclaim unit handles. */
  readonly nruh: number;
  /** Bytes left in the reclaim unit each (group, handle) writes to. */
  readonly #left: number[][];
  /** Handles some namespace places on (host specified). */
  readonly #used = new Set<number>();
  readonly #enabled: Set<number>[];
  #hbmw = 0n;
  #mbmw = 0n;
  #mbe = 0n;
  #hostEvents: FdpEvent[] = [];
  #ctrlEvents: FdpEvent[] = [];

  /** Build the configuration. */
  constructor(o: SimFdpOptions = {}) {
    this.runs = o.runs ?? 1 << 20;
    this.nrg = o.nrg ?? 1;
    this.nruh = o.nruh ?? 8;
    if (this.nrg < 1 || this.nruh < 1 || this.nruh > 128 || this.runs < 4096) throw new RangeError("bad FDP configuration");
    this.#left = Array.from({ length: this.nrg }, () => new Array(this.nruh).fill(this.runs));
    this.#enabled = Array.from({ length: this.nruh }, () => new Set<number>());
  }

  /** Bits of the Reclaim Group Identifier Format: enough for `nrg` groups. */
  get rgif(): number {
    return this.nrg > 1 ? Math.ceil(Math.log2(this.nrg)) : 0;
  }

  /** Record that a namespace places on `ruhs` (its placement handles, in order). */
  attach(ruhs: readonly number[]): void {
    for (const r of ruhs) {
      if (!(r >= 0 && r < this.nruh)) throw new RangeError(`reclaim unit handle ${r} out of range (0-${this.nruh - 1})`);
      this.#used.add(r);
    }
  }

  /** Split a placement identifier: [placement handle index, reclaim group], or null when out of range. */
  #pid(ruhs: readonly number[], pid: number): [number, number] | null {
    const phBits = 16 - this.rgif;
    const ph = this.rgif ? pid & ((1 << phBits) - 1) : pid, rg = this.rgif ? pid >>> phBits : 0;
    return ph < ruhs.length && rg < this.nrg ? [ph, rg] : null;
  }

  #event(host: boolean, e: Omit<FdpEvent, "timestamp">): void {
    const list = host ? this.#hostEvents : this.#ctrlEvents;
    if (!this.#enabled[e.ruhid]?.has(e.type)) return;
    list.push({ ...e, timestamp: Date.now() });
    if (list.length > MAX_EVENTS) list.shift();
  }

  /**
   * A write of `bytes` on namespace `nsid` with placement handles `ruhs`:
   * consume the reclaim unit the directive (CDW12/CDW13) names, handle 0 of
   * group 0 without one or with an invalid identifier (which is an event).
   */
  write(nsid: number, ruhs: readonly number[], cdw12: number, cdw13: number, bytes: number): void {
    if (!ruhs.length) return;
    let ph = 0, rg = 0;
    const pid = placementOf(cdw12, cdw13);
    if (pid >= 0) {
      const p = this.#pid(ruhs, pid);
      if (p) [ph, rg] = p;
      else this.#event(true, { type: FdpEventType.INVALID_PID, fdpef: FdpEventFlag.PIV | FdpEventFlag.NSIDV, pid, nsid, rgid: 0, ruhid: ruhs[0] });
    }
    const ruh = ruhs[ph];
    this.#hbmw += BigInt(bytes);
    this.#mbmw += BigInt(bytes);
    let left = this.#left[rg][ruh] - bytes;
    while (left <= 0) {
      left += this.runs; // the unit is full: the handle moves on to a fresh one
      this.#mbe += BigInt(this.runs);
    }
    this.#left[rg][ruh] = left;
  }

  /** Reclaim Unit Handle Update: each placement identifier's handle gets a fresh reclaim unit. */
  update(nsid: number, ruhs: readonly number[], pids: readonly number[]): number {
    const parsed = pids.map((p) => this.#pid(ruhs, p));
    if (parsed.some((p) => p === null)) return S.INVALID_FIELD;
    parsed.forEach((p, i) => {
      const [ph, rg] = p!, ruh = ruhs[ph];
      if (this.#left[rg][ruh] < this.runs) {
        this.#event(false, {
          type: FdpEventType.RU_NOT_FULLY_WRITTEN,
          fdpef: FdpEventFlag.PIV | FdpEventFlag.NSIDV | FdpEventFlag.LV,
          pid: pids[i],
          nsid,
          rgid: rg,
          ruhid: ruh,
        });
      }
      this.#left[rg][ruh] = this.runs;
    });
    return 0;
  }

  /** Reclaim Unit Handle Status of a namespace in `bytes` bytes (one descriptor per placement identifier). */
  status(ruhs: readonly number[], bytes: number, blockSize: number): Uint8Array {
    const d: { pid: number; ruhid: number; earutr: number; ruamw: bigint }[] = [];
    for (let rg = 0; rg < this.nrg; rg++) {
      ruhs.forEach((ruh, ph) => d.push({ pid: (rg << (16 - this.rgif)) & 0xffff | ph, ruhid: ruh, earutr: 0, ruamw: BigInt(Math.floor(this.#left[rg][ruh] / blockSize)) }));
    }
    return encodeRuhStatus(d, bytes);
  }

  /** The FDP log `lid` for endurance group `lsi`, LSP bit 0 = host events; a status when refused. */
  log(lid: number, lsi: number, lsp: number): Uint8Array | number {
    if (lsi !== ENDGID) return S.INVALID_FIELD;
    switch (lid) {
      case FdpLogId.CONFIGS:
        return encodeFdpConfigLog([{
          fdpa: 0x80 | this.rgif,
          nrg: this.nrg,
          nruh: this.nruh,
          maxpids: this.nruh - 1,
          nnss: 0xffff_ffff,
          runs: new Uint64(BigInt(this.runs)),
          erutl: 0,
          ruhs: Array.from({ length: this.nruh }, () => ({ ruht: RuhType.INITIALLY_ISOLATED })),
        }]);
      case FdpLogId.RUH_USAGE:
        return encodeRuhUsageLog(Array.from({ length: this.nruh }, (_, i) => this.#used.has(i) ? RuhAttr.HOST_SPECIFIED : RuhAttr.UNUSED));
      case FdpLogId.STATS:
        return encodeFdpStatsLog({ hbmw: this.#hbmw, mbmw: this.#mbmw, mbe: this.#mbe });
      case FdpLogId.EVENTS:
        return encodeFdpEventsLog(lsp & 1 ? this.#hostEvents : this.#ctrlEvents);
    }
    return S.INVALID_LOG_PAGE;
  }

  /** Get Features FDP (1Dh) for endurance group `endgid`: DW0 (enabled, configuration 0), or minus a status. */
  getFdp(endgid: number): number {
    return endgid === ENDGID ? 1 : -S.INVALID_FIELD;
  }

  /**
   * Get Features FDP Events (1Eh) of placement handle `ph` of `ruhs`: up to
   * `noet` (type, attributes) pairs in `bytes`; DW0 the number returned.
   */
  getEvents(ruhs: readonly number[], ph: number, noet: number, bytes: number): { data: Uint8Array; dw0: number } | number {
    if (ph >= ruhs.length) return S.INVALID_FIELD;
    const on = this.#enabled[ruhs[ph]], n = Math.min(noet, EVENT_TYPES.length, Math.floor(bytes / 2));
    const data = new Uint8Array(bytes);
    for (let i = 0; i < n; i++) {
      data[2 * i] = EVENT_TYPES[i];
      data[2 * i + 1] = on.has(EVENT_TYPES[i]) ? 1 : 0;
    }
    return { data, dw0: n };
  }

  /** Set Features FDP Events: enable or disable event `types` on placement handle `ph` of `ruhs`. */
  setEvents(ruhs: readonly number[], ph: number, types: readonly number[], enable: boolean): number {
    if (ph >= ruhs.length) return S.INVALID_FIELD;
    if (types.some((t) => !EVENT_TYPES.includes(t as typeof EVENT_TYPES[number]))) return S.INVALID_FIELD;
    const on = this.#enabled[ruhs[ph]];
    for (const t of types) enable ? on.add(t) : on.delete(t);
    return 0;
  }
}

/** Bytes of FDP command data: I/O Management Receive/Send and the FDP Events feature; -1 for other commands. */
export function fdpTransferLength(admin: boolean, cmd: Uint32Array): number {
  const opc = cmd[0] & 0xff;
  if (!admin) {
    if (opc === IoMgmt.RECV_OPC) return (cmd[11] + 1) * 4;
    if (opc === IoMgmt.SEND_OPC) return Math.ceil((((cmd[10] >>> 16) + 1) * 2) / 4) * 4;
    return -1;
  }
  if ((opc === 0x09 || opc === 0x0a) && (cmd[10] & 0xff) === FdpFid.FDP_EVENTS) {
    const noet = (cmd[11] >>> 16) & 0xff;
    return opc === 0x09 ? Math.ceil(noet / 4) * 4 : Math.ceil((noet * 2) / 4) * 4;
  }
  return -1;
}


