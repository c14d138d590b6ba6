/**
 * The software controller's controller memory buffer (CMB), as NVMe 1.4 sets
 * it up: CAP.CMBS says CMBMSC is there; CMBMSC.CRE makes CMBLOC/CMBSZ read
 * non-zero (BAR2, offset 0, submission queues only); CMBMSC.CMSE with the
 * controller base address (CBA) makes the controller decode queue addresses
 * in [CBA, CBA + size) as its own memory. The host maps the BAR through
 * SimTransport.mapBar; the front end (lib/sim/pcie.ts) fetches SQEs of such
 * queues from it.
 * @module
 */
import { Reg } from "../nvme/spec.ts";
import { SIM_CMB_BAR } from "./options.ts";

/** CMBSZ.SQS: submission queues may live in the CMB. */
const CMBSZ_SQS = 1;

/**
 * CMBLOC and CMBSZ after CMBMSC's low dword became `cmbmscLo`, for a CMB of
 * `size` bytes: zero until CRE, then BAR2 at offset 0, SZU 4 KiB, SQS only.
 * The register write itself has this effect (SimTransport), so a read right
 * after it sees them, as on a real bus.
 */
export function cmbRegisters(cmbmscLo: number, size: number): { cmbloc: number; cmbsz: number } {
  if ((cmbmscLo & 1) === 0) return { cmbloc: 0, cmbsz: 0 };
  return { cmbloc: SIM_CMB_BAR, cmbsz: (((size / 4096) << 12) | CMBSZ_SQS) >>> 0 };
}

/** One controller's CMB: its memory and registers. */
export class SimCmb {
  /** CAP bit 57 (CMBS) in CAP's high dword. */
  static readonly CAP_HI_CMBS = 1 << 25;
  /** The CMB's memory as dwords (the front end reads SQEs from it). */
  readonly u32: Uint32Array;
  readonly #regs: Uint32Array;
  readonly #size: number;
  #msc = -1;
  #cba = -1;

  /** Over the BAR memory `mem` and the register area `regs`. */
  constructor(mem: SharedArrayBuffer, regs: Uint32Array) {
    this.u32 = new Uint32Array(mem);
    this.#size = mem.byteLength;
    this.#regs = regs;
  }

  /** Follow CMBMSC (the host writes it at any time): the decode window. */
  step(): void {
    const r = this.#regs;
    const lo = Atomics.load(r, Reg.CMBMSC / 4), hi = Atomics.load(r, Reg.CMBMSC / 4 + 1);
    const msc = lo + hi * 0x1_0000_0000;
    if (msc === this.#msc) return;
    this.#msc = msc;
    this.#cba = (lo & 3) === 3 ? msc - (msc % 4096) : -1;
  }

  /** True when any of `len` bytes at bus address `addr` falls in the enabled CMB. */
  contains(addr: number, len: number): boolean {
    const c = this.#cba;
    return c >= 0 && addr < c + this.#size && addr + len > c;
  }

  /** Offset in the CMB of `len` bytes at `addr`: -1 when outside it (or not enabled), -2 when only partly inside. */
  offset(addr: number, len: number): number {
    if (!this.contains(addr, len)) return -1;
    const o = addr - this.#cba;
    return o >= 0 && o + len <= this.#size ? o : -2;
  }
}
