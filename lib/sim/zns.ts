/**
 * The software controller's zoned namespace (NVMe ZNS 1.1): zones with a
 * write pointer and a state each, the state machine of Zone Management Send
 * (open, close, finish, reset, offline; one zone or all), implicit opens by
 * writes, the active and open resource limits, Report Zones with its filters
 * and partial report, and the zone state errors (Command Specific B8h-BFh).
 * The model (engine.ts) asks {@link ZonedNamespace} before every write,
 * append and read of a zoned namespace and serves the zoned commands through
 * {@link zonedCommand}; data still moves through the namespace's media.
 * @module
 */
import {
  encodeZnsIdNs,
  encodeZoneReport,
  FILTER_STATE,
  ZnsOpc,
  ZnsStatus as ZNS_STATUS,
  ZONE_DESC_BYTES,
  ZONE_REPORT_HEADER_BYTES,
  ZONE_TYPE_SEQWRITE_REQ,
  ZoneRecvAction,
  ZoneSendAction,
  ZoneState,
} from "../nvme/zns.ts";
import { SimStatus as S } from "./options.ts";

/** How a simulated namespace is zoned. */
export interface SimZonedOptions {
  /** Zone size in logical blocks (default 2048 blocks, 1 MiB with 512-byte blocks). */
  zoneBlocks?: number;
  /** Zone capacity in logical blocks, at most the size (default: the size). */
  zoneCapacity?: number;
  /** Zones that may be open at once (default 0: no limit). */
  maxOpen?: number;
  /** Zones that may be active (open or closed) at once (default 0: no limit). */
  maxActive?: number;
  /** Zone Append Size Limit as a power of two of 4 KiB pages (default 0: MDTS). */
  zasl?: number;
}

interface Zone {
  zslba: number;
  wp: number;
  state: number;
}

const EMPTY = ZoneState.EMPTY, IO = ZoneState.IMPLICITLY_OPENED, EO = ZoneState.EXPLICITLY_OPENED, CLOSED = ZoneState.CLOSED;
const RO = ZoneState.READ_ONLY, FULL = ZoneState.FULL, OFFLINE = ZoneState.OFFLINE;

/** Zone state and rules of one zoned namespace. */
export class ZonedNamespace {
  /** Zone size in blocks. */
  readonly zoneBlocks: number;
  /** Zone capacity in blocks. */
  readonly zoneCapacity: number;
  /** Open zones allowed (0: no limit). */
  readonly maxOpen: number;
  /** Active zones allowed (0: no limit). */
  readonly maxActive: number;
  /** ZASL as reported in the ZNS Identify Controller data. */
  readonly zasl: number;
  readonly #zones: Zone[] = [];

  /** Zone a namespace of `blocks` blocks (whole zones only; a tail shorter than a zone is not used). */
  constructor(blocks: number, o: SimZonedOptions = {}) {
    this.zoneBlocks = o.zoneBlocks ?? 2048;
    this.zoneCapacity = Math.min(o.zoneCapacity ?? this.zoneBlocks, this.zoneBlocks);
    this.maxOpen = o.maxOpen ?? 0;
    this.maxActive = o.maxActive ?? 0;
    this.zasl = o.zasl ?? 0;
    if (!(this.zoneBlocks > 0) || !(this.zoneCapacity > 0)) throw new RangeError("zone size and capacity must be positive");
    const n = Math.floor(blocks / this.zoneBlocks);
    for (let i = 0; i < n; i++) this.#zones.push({ zslba: i * this.zoneBlocks, wp: i * this.zoneBlocks, state: EMPTY });
  }

  /** Number of zones. */
  get count(): number {
    return this.#zones.length;
  }

  /** Blocks the zones cover (the namespace size reported). */
  get blocks(): number {
    return this.#zones.length * this.zoneBlocks;
  }

  /** A zone's state and write pointer, for inspection. */
  zone(i: number): { zslba: number; wp: number; state: number } {
    const z = this.#zones[i];
    return { zslba: z.zslba, wp: z.wp, state: z.state };
  }

  /**
   * Force a zone's state, as media wear does on a real device (read-only,
   * offline) or a test needs: only READ_ONLY and OFFLINE, which no host command reaches from elsewhere.
   */
  setState(zslba: number, state: 0xd | 0xf): void {
    const z = this.#zones[Math.floor(zslba / this.zoneBlocks)];
    if (!z || z.zslba !== zslba) throw new RangeError(`no zone starts at ${zslba}`);
    z.state = state;
  }

  #count(...states: number[]): number {
    let n = 0;
    for (const z of this.#zones) if (states.includes(z.state)) n++;
    return n;
  }

  /** Resources for moving `z` to an open state: 0, or the status that refuses it. */
  #openable(z: Zone, implicit: boolean): number {
    if (z.state === IO || z.state === EO) return 0;
    if (z.state === EMPTY && this.maxActive && this.#count(IO, EO, CLOSED) >= this.maxActive) return ZNS_STATUS.TOO_MANY_ACTIVE;
    if (this.maxOpen && this.#count(IO, EO) >= this.maxOpen) {
      // As the specification allows: an implicit open may close an implicitly opened zone to make room.
      const victim = implicit ? this.#zones.find((x) => x.state === IO) : undefined;
      if (!victim) return ZNS_STATUS.TOO_MANY_OPEN;
      victim.state = CLOSED;
    }
    return 0;
  }

  #writable(z: Zone): number {
    switch (z.state) {
      case FULL: return ZNS_STATUS.ZONE_FULL;
      case RO: return ZNS_STATUS.ZONE_READ_ONLY;
      case OFFLINE: return ZNS_STATUS.ZONE_OFFLINE;
    }
    return 0;
  }

  #advance(z: Zone, nlb: number): void {
    z.wp += nlb;
    if (z.wp === z.zslba + this.zoneCapacity) z.state = FULL;
  }

  /** A Write or Write Zeroes of `nlb` blocks at `slba`: 0 (the write pointer moved) or the status that refuses it. */
  write(slba: number, nlb: number): number {
    const z = this.#zones[Math.floor(slba / this.zoneBlocks)];
    if (!z) return S.LBA_OUT_OF_RANGE;
    const st = this.#writable(z);
    if (st) return st;
    if (slba !== z.wp) return ZNS_STATUS.ZONE_INVALID_WRITE;
    if (slba + nlb > z.zslba + this.zoneCapacity) return ZNS_STATUS.ZONE_BOUNDARY;
    const open = this.#openable(z, true);
    if (open) return open;
    if (z.state !== EO) z.state = IO;
    this.#advance(z, nlb);
    return 0;
  }

  /** A Zone Append of `nlb` blocks to the zone at `zslba`: the LBA written (>= 0), or minus the refusing status. */
  append(zslba: number, nlb: number): number {
    const z = this.#zones[Math.floor(zslba / this.zoneBlocks)];
    if (!z) return -S.LBA_OUT_OF_RANGE;
    if (z.zslba !== zslba) return -S.INVALID_FIELD;
    const st = this.#writable(z);
    if (st) return -st;
    if (z.wp + nlb > z.zslba + this.zoneCapacity) return -ZNS_STATUS.ZONE_BOUNDARY;
    const open = this.#openable(z, true);
    if (open) return -open;
    if (z.state !== EO) z.state = IO;
    const alba = z.wp;
    this.#advance(z, nlb);
    return alba;
  }

  /** A read of `nlb` blocks at `slba`: 0, or Zone Is Offline / Zone Boundary Error (reads may not cross zones). */
  read(slba: number, nlb: number): number {
    const i = Math.floor(slba / this.zoneBlocks), z = this.#zones[i];
    if (!z) return S.LBA_OUT_OF_RANGE;
    if (z.state === OFFLINE) return ZNS_STATUS.ZONE_OFFLINE;
    if (slba + nlb > z.zslba + this.zoneBlocks) return ZNS_STATUS.ZONE_BOUNDARY;
    return 0;
  }

  #act(z: Zone, zsa: number): number {
    const s = z.state;
    switch (zsa) {
      case ZoneSendAction.OPEN: {
        if (s === EO) return 0;
        if (s !== EMPTY && s !== IO && s !== CLOSED) return ZNS_STATUS.INVALID_TRANSITION;
        const st = this.#openable(z, false);
        if (st) return st;
        z.state = EO;
        return 0;
      }
      case ZoneSendAction.CLOSE:
        if (s === CLOSED) return 0;
        if (s !== IO && s !== EO) return ZNS_STATUS.INVALID_TRANSITION;
        z.state = z.wp === z.zslba ? EMPTY : CLOSED;
        return 0;
      case ZoneSendAction.FINISH:
        if (s === FULL) return 0;
        if (s !== EMPTY && s !== IO && s !== EO && s !== CLOSED) return ZNS_STATUS.INVALID_TRANSITION;
        z.wp = z.zslba + this.zoneCapacity;
        z.state = FULL;
        return 0;
      case ZoneSendAction.RESET:
        if (s === RO || s === OFFLINE) return ZNS_STATUS.INVALID_TRANSITION;
        z.wp = z.zslba;
        z.state = EMPTY;
        return 0;
      case ZoneSendAction.OFFLINE:
        if (s === OFFLINE) return 0;
        if (s !== RO) return ZNS_STATUS.INVALID_TRANSITION;
        z.wp = z.zslba;
        z.state = OFFLINE;
        return 0;
    }
    return S.INVALID_FIELD;
  }

  /** The zones Select All acts on for each action (the states the specification lists). */
  static readonly #ALL: Record<number, number[]> = {
    [ZoneSendAction.OPEN]: [CLOSED],
    [ZoneSendAction.CLOSE]: [IO, EO],
    [ZoneSendAction.FINISH]: [IO, EO, CLOSED],
    [ZoneSendAction.RESET]: [IO, EO, CLOSED, FULL],
    [ZoneSendAction.OFFLINE]: [RO],
  };

  /**
   * Zone Management Send: `zsa` on the zone starting at `slba` or, with
   * `all`, on every zone in a state the action applies to. Returns the
   * status and, for zones reset, their ranges (the caller deallocates them).
   */
  send(slba: number, zsa: number, all: boolean): { status: number; reset: [number, number][] } {
    const reset: [number, number][] = [];
    const states = ZonedNamespace.#ALL[zsa];
    if (!states) return { status: S.INVALID_FIELD, reset };
    if (all) {
      for (const z of this.#zones) {
        if (!states.includes(z.state)) continue;
        const st = this.#act(z, zsa);
        if (st) return { status: st, reset };
        if (zsa === ZoneSendAction.RESET) reset.push([z.zslba, this.zoneBlocks]);
      }
      return { status: 0, reset };
    }
    const z = this.#zones[Math.floor(slba / this.zoneBlocks)];
    if (!z) return { status: S.LBA_OUT_OF_RANGE, reset };
    if (z.zslba !== slba) return { status: S.INVALID_FIELD, reset };
    const status = this.#act(z, zsa);
    if (!status && zsa === ZoneSendAction.RESET) reset.push([z.zslba, this.zoneBlocks]);
    return { status, reset };
  }

  /**
   * Zone Management Receive (Report Zones): the zones from the one holding
   * `slba` on that match `filter`, in `bytes` bytes; with `partial`, the
   * header counts only the descriptors returned. As QEMU, full, read-only
   * and offline zones report no write pointer (all ones).
   */
  report(slba: number, bytes: number, zra: number, filter: number, partial: boolean): Uint8Array | number {
    if (zra !== ZoneRecvAction.REPORT) return S.INVALID_FIELD; // no descriptor extensions
    if (filter > 7) return S.INVALID_FIELD;
    const first = Math.floor(slba / this.zoneBlocks);
    if (first >= this.#zones.length) return S.LBA_OUT_OF_RANGE;
    const want = FILTER_STATE[filter];
    const match = this.#zones.slice(first).filter((z) => filter === 0 || z.state === want);
    const fit = Math.max(0, Math.floor((bytes - ZONE_REPORT_HEADER_BYTES) / ZONE_DESC_BYTES));
    const shown = match.slice(0, fit).map((z) => ({ zt: ZONE_TYPE_SEQWRITE_REQ, state: z.state, za: 0, zai: 0, zcap: this.zoneCapacity, zslba: z.zslba, wp: z.state === FULL || z.state === RO || z.state === OFFLINE ? -1 : z.wp }));
    return encodeZoneReport(partial ? shown.length : match.length, shown, bytes);
  }

  /** ZNS Identify Namespace data for a namespace with `nlbaf` + 1 LBA formats. */
  identify(nlbaf: number): Uint8Array {
    const lim = (n: number) => (n ? n - 1 : 0xffff_ffff);
    return encodeZnsIdNs({
      mar: lim(this.maxActive),
      mor: lim(this.maxOpen),
      lbafe: Array.from({ length: nlbaf + 1 }, () => ({ zsze: this.zoneBlocks, zdes: 0 })),
    });
  }
}

/** What {@link zonedCommand} needs of the model for one command. */
export interface ZonedIo {
  /** Logical block size. */
  blockSize: number;
  /** Send `data` to the host (Zone Management Receive); 0 or a status. */
  toHost(data: Uint8Array): number;
  /** Write the command's data (Zone Append, `len` bytes) to the media at byte `off`; 0 or a status. */
  writeData(off: number, len: number): number;
  /** Deallocate `blocks` blocks from `lba` (a zone reset). */
  zero(lba: number, blocks: number): void;
  /** Set the completion's DW0 and DW1 (Zone Append's LBA). */
  result(dw0: number, dw1: number): void;
  /** Largest append in bytes (MDTS). */
  maxBytes: number;
}

/** Serve a zoned command (Zone Management Send/Receive, Zone Append) on `z`; returns the status. */
export function zonedCommand(z: ZonedNamespace, cmd: Uint32Array, io: ZonedIo): number {
  const opc = cmd[0] & 0xff, slba = cmd[10] + cmd[11] * 0x1_0000_0000;
  switch (opc) {
    case ZnsOpc.ZONE_MGMT_SEND: {
      const { status, reset } = z.send(slba, cmd[13] & 0xff, ((cmd[13] >>> 8) & 1) === 1);
      for (const [lba, n] of reset) io.zero(lba, n);
      return status;
    }
    case ZnsOpc.ZONE_MGMT_RECV: {
      const bytes = (cmd[12] + 1) * 4;
      const r = z.report(slba, bytes, cmd[13] & 0xff, (cmd[13] >>> 8) & 0xff, ((cmd[13] >>> 16) & 1) === 1);
      return typeof r === "number" ? r : io.toHost(r);
    }
    case ZnsOpc.ZONE_APPEND: {
      const nlb = (cmd[12] & 0xffff) + 1, len = nlb * io.blockSize;
      const limit = z.zasl ? 4096 * 2 ** z.zasl : io.maxBytes;
      if (len > Math.min(limit, io.maxBytes)) return S.INVALID_FIELD;
      const alba = z.append(slba, nlb);
      if (alba < 0) return -alba;
      const st = io.writeData(alba * io.blockSize, len);
      if (st) return st;
      io.result(alba % 0x1_0000_0000, Math.floor(alba / 0x1_0000_0000));
      return 0;
    }
  }
  return S.INVALID_OPCODE;
}
