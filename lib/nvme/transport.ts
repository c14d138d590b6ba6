/**
 * The boundary between generic NVMe logic (controller, queues, commands) and a
 * way of reaching a controller: VFIO/PCIe, the software controller, later TCP.
 * @module
 */

/** Host memory the controller can reach by DMA. */
export interface DmaBuffer {
  /** CPU view of the memory (page aligned, zeroed on allocation). */
  readonly bytes: Uint8Array;
  /** Address the controller uses (IOVA); below 2^53 so it fits a number on the hot path. */
  readonly iova: number;
  /** Size in bytes (a multiple of the host page size). */
  readonly size: number;
}

/** What a transport provides to the generic controller code. */
export interface Transport {
  /** Human-readable target, e.g. "vfio:0000:01:00.0". */
  readonly name: string;
  /** Host memory page size (DMA granularity). */
  readonly hostPageSize: number;
  /** Read a 32-bit controller register. */
  readReg32(offset: number): number;
  /** Read a 64-bit controller register (as two 32-bit reads, low first). */
  readReg64(offset: number): bigint;
  /** Write a 32-bit controller register. */
  writeReg32(offset: number, value: number): void;
  /** Write a 64-bit controller register (as two 32-bit writes, low first). */
  writeReg64(offset: number, value: bigint): void;
  /**
   * A Uint32Array over the doorbell area (offset 0x1000 onward). Plain stores
   * into it ring doorbells; index = byte offset from 0x1000 / 4.
   */
  doorbells(): Uint32Array;
  /** Allocate zeroed DMA memory of at least `size` bytes. */
  allocDma(size: number): DmaBuffer;
  /** Free DMA memory (unmaps it from the device first). */
  freeDma(buf: DmaBuffer): void;
  /** IOVA of the first byte of `view` when it lies in DMA memory from this transport, else -1. */
  iovaOf(view: Uint8Array): number;
  /**
   * Optional: reset the device below the NVMe level (PCIe function level reset
   * for VFIO), keeping DMA mappings, then make it reachable again. Used when a
   * controller is fatal or will not become ready.
   */
  resetDevice?(): void;
  /** Release everything (DMA, mappings, handles). Idempotent. */
  close(): void;
}
