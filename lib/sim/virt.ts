/**
 * The software controller's SR-IOV model (SimOptions.sriovVfs): a primary
 * controller with flexible VQ and VI resources and one secondary controller
 * per VF, served through Identify CNS 14h/15h and Virtualization Management,
 * with the spec's rules (resources only to an offline secondary, within the
 * flexible secondary maximum and what the primary has not kept; online only
 * with at least 2 VQ and 1 VI; the primary's flexible allocation takes effect
 * after a reset). There are no VF functions behind it: the secondaries exist
 * as state, which is what the admin commands manage.
 * @module
 */
import { encodePrimaryCtrlCaps, encodeSecondaryCtrlList, type SecondaryCtrl, VirtAction, VirtResource } from "../nvme/virt.ts";

/** Generic Invalid Field in Command. */
const INVALID_FIELD = 0x002;
/** Command-specific: Invalid Controller Identifier. */
const INVALID_CTRL_ID = 0x11f;
/** Command-specific: Invalid Secondary Controller State. */
const INVALID_SECONDARY_STATE = 0x120;
/** Command-specific: Invalid Number of Controller Resources. */
const INVALID_RESOURCE_COUNT = 0x121;
/** Command-specific: Invalid Resource Identifier. */
const INVALID_RESOURCE_ID = 0x122;

/** Per type: flexible total, flexible maximum per secondary, private to the primary. */
const VQ_FLEX = 16, VQ_MAX = 4, VQ_PRIVATE = 8;
const VI_FLEX = 8, VI_MAX = 2, VI_PRIVATE = 4;

/** SR-IOV state of one primary controller. */
export class SimVirt {
  readonly #cntlid: number;
  readonly #secondaries: SecondaryCtrl[] = [];
  /** Flexible resources the primary keeps (effective after reset), by type. */
  #primaryFlex = [0, 0];

  /** A primary `cntlid` with `vfs` secondaries (SCIDs cntlid+1 ..). */
  constructor(cntlid: number, vfs: number) {
    this.#cntlid = cntlid;
    for (let i = 1; i <= vfs; i++) this.#secondaries.push({ scid: cntlid + i, pcid: cntlid, scs: 0, vfn: i, nvq: 0, nvi: 0 });
  }

  /** Identify CNS 14h into `d`. */
  primaryCaps(d: Uint8Array): void {
    const assigned = (rt: number) => this.#secondaries.reduce((n, s) => n + (rt === 0 ? s.nvq : s.nvi), 0);
    encodePrimaryCtrlCaps({
      cntlid: this.#cntlid,
      portid: 0,
      crt: 3,
      vqfrt: VQ_FLEX,
      vqrfa: assigned(0),
      vqrfap: this.#primaryFlex[0],
      vqprt: VQ_PRIVATE,
      vqfrsm: VQ_MAX,
      vqgran: 1,
      vifrt: VI_FLEX,
      virfa: assigned(1),
      virfap: this.#primaryFlex[1],
      viprt: VI_PRIVATE,
      vifrsm: VI_MAX,
      vigran: 1,
    }, d);
  }

  /** Identify CNS 15h into `d`: secondaries with SCID >= `from`. */
  secondaryList(d: Uint8Array, from: number): void {
    encodeSecondaryCtrlList(this.#secondaries.filter((s) => s.scid >= from), d);
  }

  /** Virtualization Management: status (0 success); `out[0]` gets DW0 (resources allocated). */
  manage(cdw10: number, cdw11: number, out: number[]): number {
    const act = cdw10 & 0xf, rt = (cdw10 >>> 8) & 7, cntlid = cdw10 >>> 16, nr = cdw11 & 0xffff;
    out[0] = 0;
    const flex = rt === VirtResource.VQ ? VQ_FLEX : VI_FLEX, max = rt === VirtResource.VQ ? VQ_MAX : VI_MAX;
    if ((act === VirtAction.PRIMARY_FLEXIBLE || act === VirtAction.SECONDARY_ASSIGN) && rt > 1) return INVALID_RESOURCE_ID;
    if (act === VirtAction.PRIMARY_FLEXIBLE) {
      if (cntlid !== this.#cntlid) return INVALID_CTRL_ID;
      const given = this.#secondaries.reduce((n, s) => n + (rt === 0 ? s.nvq : s.nvi), 0);
      if (nr > flex - given) return INVALID_RESOURCE_COUNT;
      this.#primaryFlex[rt] = nr;
      out[0] = nr;
      return 0;
    }
    const s = this.#secondaries.find((x) => x.scid === cntlid);
    if (!s) return INVALID_CTRL_ID;
    switch (act) {
      case VirtAction.SECONDARY_OFFLINE:
        s.scs = 0;
        return 0;
      case VirtAction.SECONDARY_ASSIGN: {
        if (s.scs & 1) return INVALID_SECONDARY_STATE;
        const others = this.#secondaries.reduce((n, x) => n + (x === s ? 0 : rt === 0 ? x.nvq : x.nvi), 0);
        if (nr > max || nr > flex - this.#primaryFlex[rt] - others) return INVALID_RESOURCE_COUNT;
        if (rt === 0) s.nvq = nr;
        else s.nvi = nr;
        out[0] = nr;
        return 0;
      }
      case VirtAction.SECONDARY_ONLINE:
        if (s.nvq < 2 || s.nvi < 1) return INVALID_SECONDARY_STATE;
        s.scs = 1;
        return 0;
    }
    return INVALID_FIELD;
  }
}
