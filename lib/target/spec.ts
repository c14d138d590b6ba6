/**
 * Values only the target uses. Status values, CC fields and Identify field
 * bits are named in lib/nvme (spec.ts, identify.ts), Connect's in
 * lib/nvme/fabrics.ts; the Identify bit tables and connectIpo are
 * re-exported here under the names this module gave them.
 * @module
 */

export { CntrlType, Ctratt, Lpa, Oaes, Sgls } from "../nvme/identify.ts";
export { connectIpo } from "../nvme/fabrics.ts";

/** Keep-alive timeout a discovery controller uses when the host gave none (nvmet's NVMET_DISC_KATO_MS). */
export const DISCOVERY_KATO_MS = 120_000;

/** CDW12 bits of Read/Write the target's fast path reads. */
export const RwFlags = { FUA: 1 << 30 } as const;
