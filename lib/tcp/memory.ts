/**
 * Host memory for NVMe/TCP queues. Data moves inside PDUs, so no device
 * reaches this memory; but the generic queue code speaks in DmaBuffers and
 * IOVAs, so each buffer gets a synthetic IOVA: buffer number × 2^32 + offset.
 * A ring turns an IOVA back into bytes with one array index, no search and
 * no allocation.
 * @module
 */
import { lo32 } from "../nvme/command.ts";
import { InvalidArgumentError, OutOfResourcesError } from "../nvme/errors.ts";
import { type DmaBuffer, dmaBuffer, detachView } from "../nvme/transport.ts";

/** Bytes addressed by one synthetic IOVA "page" (the offset part). */
export const TCP_IOVA_SPAN = 0x1_0000_0000;

/**
 * Offset of `iova` in its buffer: its low 32 bits, by {@link lo32} (no
 * floating-point remainder per IO, as `iova % TCP_IOVA_SPAN` was).
 */
export function iovaOffset(iova: number): number {
  return lo32(iova);
}

/** Most buffers alive at once (keeps IOVAs below 2^53). */
export const TCP_MAX_BUFFERS = 0x1f_ffff;

/** Buffers with synthetic IOVAs, shared by the queues of one TCP controller. */
export class TcpMemory {
  /** Page size reported to generic code (allocation granularity). */
  readonly hostPageSize = 4096;
  readonly #bufs: (DmaBuffer | null)[] = [null]; // number 0 is never used: IOVA 0 means "none"
  readonly #freeIds: number[] = [];

  /** Zeroed memory of at least `size` bytes (a multiple of the page size). */
  allocDma(size: number): DmaBuffer {
    if (!(size > 0) || size > TCP_IOVA_SPAN) throw new InvalidArgumentError(`allocDma: bad size ${size}`);
    const n = Math.ceil(size / this.hostPageSize) * this.hostPageSize;
    let id = this.#freeIds.pop();
    if (id === undefined) {
      if (this.#bufs.length > TCP_MAX_BUFFERS) throw new OutOfResourcesError("TCP memory: too many buffers");
      id = this.#bufs.length;
      this.#bufs.push(null);
    }
    const b = dmaBuffer(new Uint8Array(n), id * TCP_IOVA_SPAN, n);
    this.#bufs[id] = b;
    return b;
  }

  /** Free `buf` now (no command may still refer to it: `busy === 0`). */
  freeDma(buf: DmaBuffer): void {
    const id = Math.floor(buf.iova / TCP_IOVA_SPAN);
    if (this.#bufs[id] !== buf) return;
    this.#bufs[id] = null;
    this.#freeIds.push(id);
    detachView(buf.bytes);
  }

  /** Synthetic IOVA of the first byte of `view` when it lies in memory from here, else -1. */
  iovaOf(view: Uint8Array): number {
    const b = this.dmaOf(view);
    return b === null ? -1 : b.iova + (view.byteOffset - b.bytes.byteOffset);
  }

  /** The buffer `view` lies in, else null. */
  dmaOf(view: Uint8Array): DmaBuffer | null {
    for (let i = 1; i < this.#bufs.length; i++) {
      const b = this.#bufs[i];
      if (b !== null && b.bytes.buffer === view.buffer && view.byteOffset >= b.bytes.byteOffset &&
        view.byteOffset + view.byteLength <= b.bytes.byteOffset + b.size) return b;
    }
    return null;
  }

  /** The whole buffer holding `iova` (offset = iova % 2^32), or null. The ring's per-IO lookup. */
  bytesAt(iova: number): Uint8Array | null {
    const b = this.#bufs[Math.floor(iova / TCP_IOVA_SPAN)];
    return b === undefined || b === null ? null : b.bytes;
  }

  /** Free everything. */
  close(): void {
    for (let i = 1; i < this.#bufs.length; i++) {
      const b = this.#bufs[i];
      if (b !== null) detachView(b.bytes);
      this.#bufs[i] = null;
    }
  }
}
