/**
 * Physical Region Page (PRP) construction. Pure: writes PRP1/PRP2 into an SQE
 * and list entries into caller-owned list memory, allocating nothing.
 * @module
 */
import { hi32, lo32, SqeDw } from "./command.ts";
import { InvalidArgumentError } from "./errors.ts";

/** Number of PRP list pages needed to describe `len` bytes starting at `iova`. */
export function prpListPages(iova: number, len: number, pageSize: number): number {
  const first = pageSize - (iova % pageSize);
  if (len <= first + pageSize) return 0;
  const entries = Math.ceil((len - first) / pageSize);
  const perPage = pageSize / 8;
  if (entries <= perPage) return 1;
  // Every list page but the last gives up its final slot to the chain pointer.
  return Math.ceil((entries - 1) / (perPage - 1));
}

/**
 * Write PRP1/PRP2 for a transfer of `len` bytes at `iova` (dword aligned) into `sqe`.
 * `pageSize` is the controller's memory page size (a power of two, CC.MPS).
 * `list` is a Uint32Array view of at least prpListPages() pages of DMA memory
 * at `listIova`; entries are written as lo/hi dword pairs.
 */
export function writePrps(
  sqe: Uint32Array,
  iova: number,
  len: number,
  pageSize: number,
  list: Uint32Array | null,
  listIova: number,
): void {
  sqe[SqeDw.PRP1_LO] = lo32(iova);
  sqe[SqeDw.PRP1_HI] = hi32(iova);
  // The offset in the page by mask: a remainder is a division per IO (a helper call under TCG).
  const first = pageSize - (lo32(iova) & (pageSize - 1));
  if (len <= first) {
    sqe[SqeDw.PRP2_LO] = 0;
    sqe[SqeDw.PRP2_HI] = 0;
    return;
  }
  let page = iova + first;
  let remaining = len - first;
  if (remaining <= pageSize) {
    sqe[SqeDw.PRP2_LO] = lo32(page);
    sqe[SqeDw.PRP2_HI] = hi32(page);
    return;
  }
  if (list === null) throw new InvalidArgumentError("transfer needs a PRP list but none was given (larger than the queue's PRP pages)");
  sqe[SqeDw.PRP2_LO] = lo32(listIova);
  sqe[SqeDw.PRP2_HI] = hi32(listIova);
  const perPage = pageSize / 8;
  let entries = Math.ceil(remaining / pageSize);
  let idx = 0; // entry index within the whole list memory
  let listPage = 0;
  while (entries > 0) {
    const slotInPage = idx % perPage;
    if (slotInPage === perPage - 1 && entries > 1) {
      // Last slot of a full list page: chain to the next list page.
      listPage++;
      const next = listIova + listPage * pageSize;
      list[idx * 2] = lo32(next);
      list[idx * 2 + 1] = hi32(next);
      idx++;
      continue;
    }
    list[idx * 2] = lo32(page);
    list[idx * 2 + 1] = hi32(page);
    idx++;
    page += pageSize;
    remaining -= pageSize;
    entries--;
  }
}
