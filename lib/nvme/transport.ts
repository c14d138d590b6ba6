/**
 * The boundary between generic NVMe logic (controller, queues, commands) and a
 * way of reaching a controller. Two shapes, as SPDK and Linux cut them:
 * {@link Transport} (memory-mapped registers, doorbells, rings in DMA memory:
 * VFIO/PCIe and the software controller) and {@link FabricTransport}
 * (registers are properties reached with Property Get/Set, each queue is a
 * connection bound with Fabrics Connect: NVMe/TCP). Both give the generic
 * controller {@link DmaMemory} for commands' data.
 * @module
 */
import type { NvmeError } from "./errors.ts";
import type { QueueRing } from "./ring.ts";
import type { QueueWaiter } from "./queue.ts";

/**
 * Host memory the controller can reach by DMA.
 *
 * Lifetime rule: while `busy > 0` a command that refers to the memory has not
 * ended, so the device may still write it. Such memory is never unmapped and
 * its IOVA never reused; whoever frees or recycles it sets `onIdle`, which the
 * queue runs when the last command ends (completion, abort, or a controller
 * reset that disabled the device).
 */
export interface DmaBuffer {
  /** CPU view of the memory (page aligned, zeroed on allocation); detached once freed. */
  readonly bytes: Uint8Array;
  /** Address the controller uses (IOVA); below 2^53 so it fits a number on the hot path. */
  readonly iova: number;
  /** Size in bytes (a multiple of the host page size). */
  readonly size: number;
  /** Commands in flight that refer to this memory. */
  busy: number;
  /** Run once when `busy` drops to 0 (a deferred free or return to a pool), then cleared. */
  onIdle: ((buf: DmaBuffer) => void) | null;
}

/** A new DmaBuffer record with no command on it. */
export function dmaBuffer(bytes: Uint8Array, iova: number, size: number): DmaBuffer {
  return { bytes, iova, size, busy: 0, onIdle: null };
}

/**
 * Detach the ArrayBuffer under `bytes` so every view of it reads as empty
 * (length 0, elements undefined) instead of touching memory about to be
 * unmapped, which would kill the process. Shared memory cannot be detached.
 */
export function detachView(bytes: Uint8Array): void {
  const ab = bytes.buffer as ArrayBuffer & { detached?: boolean; transfer?: (n: number) => ArrayBuffer };
  if (typeof ab.transfer !== "function" || ab.detached) return;
  try {
    ab.transfer(0);
  } catch {
    // Not detachable (e.g. a SharedArrayBuffer): nothing to do.
  }
}

/**
 * How another thread of this process reaches a piece of host memory: by CPU
 * address (a Worker builds its own view with its own dlopen), or through a
 * SharedArrayBuffer at an offset (the software controller without FFI).
 */
export interface SharedMemory {
  /** CPU address, or null when only `sab` reaches it. */
  addr: bigint | null;
  /** The shared buffer holding it, or null. */
  sab: SharedArrayBuffer | null;
  /** Byte offset in `sab`. */
  offset: number;
  /** Bytes. */
  size: number;
  /** IOVA of the first byte (DMA memory), or 0. */
  iova: number;
}

/** One vector's wake word (lib/irq's IrqWord): a SharedArrayBuffer and a slot, usable from any thread. */
export interface InterruptWord {
  /** The shared buffer of wake words. */
  sab: SharedArrayBuffer;
  /** Slot of this vector. */
  slot: number;
  /**
   * How a thread with FFI turns this vector off while its queue polls
   * (lib/vfio's VectorGateSpec), when the transport can; only given to the
   * one queue that owns the vector.
   */
  gate?: { deviceFd: number; index: number; vector: number; eventfd: number; vectorControl?: number };
}

/** Turns a vector's interrupts off while its queue polls (lib/irq's IrqGate). */
export interface InterruptGate {
  /** True while off. */
  readonly masked: boolean;
  /** Off. */
  mask(): void;
  /** On. */
  unmask(): void;
}

/** Interrupt vectors a transport enabled; each queue sleeps on its vector's word. */
export interface InterruptSource {
  /** Mechanism in use, e.g. "msix", "msi", "sim". */
  readonly kind: string;
  /** Vectors enabled (vector 0 is the admin queue's). */
  readonly vectors: number;
  /** The wake word of vector `v` (with its gate's spec when the transport has gates). */
  word(v: number): InterruptWord;
  /** A gate for vector `v` on this thread, or null: for a vector that exactly one queue uses. */
  gate?(v: number): InterruptGate | null;
  /** Disable the vectors and stop any helper thread. Idempotent. */
  close(): Promise<void>;
}

/** Memory commands' data lives in, addressed by IOVA, as every transport provides it. */
export interface DmaMemory {
  /** Human-readable target, e.g. "vfio:0000:01:00.0". */
  readonly name: string;
  /** Host memory page size (DMA granularity). */
  readonly hostPageSize: number;
  /** Allocate zeroed DMA memory of at least `size` bytes. */
  allocDma(size: number): DmaBuffer;
  /**
   * Free DMA memory now: detach its views, unmap it from the device, return
   * its IOVA. Callers make sure no command still refers to it (`busy === 0`).
   */
  freeDma(buf: DmaBuffer): void;
  /** IOVA of the first byte of `view` when it lies in DMA memory from this transport, else -1. */
  iovaOf(view: Uint8Array): number;
  /** The DMA buffer `view` lies in (a view of its memory, not detached), else null. */
  dmaOf(view: Uint8Array): DmaBuffer | null;
  /** Release everything (connections, DMA, mappings, handles). Idempotent. */
  close(): void;
}

/**
 * One queue's connection on a fabric: a {@link QueueRing} whose completions
 * arrive from the network, and what the controller needs beyond the ring.
 */
export interface FabricRing extends QueueRing {
  /** Set by the controller: called once when the connection is lost (not after close()). */
  onLost: ((err: NvmeError) => void) | null;
  /** What the queue's pump sleeps on: arrivals on the connection play the interrupt's part. */
  readonly waiter: QueueWaiter;
}

/** Who connects: the identity every Fabrics Connect carries. */
export interface FabricHost {
  /** Subsystem NQN to connect to. */
  readonly subnqn: string;
  /** Host NQN (stable across connections: targets' allow-lists and duplicate checks key on it). */
  readonly hostnqn: string;
  /** Host ID, 16 bytes (stable as the NQN). */
  readonly hostid: Uint8Array;
  /** Keep-alive timeout sent in the admin Connect, in ms (0: none). */
  readonly katoMs: number;
}

/** Limits of one queue's connection, known once the controller has been identified. */
export interface FabricQueueLimits {
  /** Largest data sent inside the command capsule (IOCCSZ × 16 − 64 on IO queues). */
  inCapsuleMax: number;
  /** Largest transfer per command. */
  maxTransfer: number;
}

/**
 * A transport whose registers are properties and whose queues are connections
 * (NVMe over Fabrics). The generic controller sends Connect, Property Get/Set
 * and Keep Alive itself; the transport only opens connections.
 */
export interface FabricTransport extends DmaMemory, FabricHost {
  /** Marks the fabric shape. */
  readonly fabric: true;
  /** Transport type as nvme-cli names it ("tcp"). */
  readonly trtype: string;
  /**
   * Open queue `qid`'s connection, ready for its Connect command (for TCP:
   * the socket and ICReq/ICResp). Rejects with a ConnectionLostError or a
   * ProtocolError.
   */
  openRing(qid: number, depth: number, limits: FabricQueueLimits): Promise<FabricRing>;
}

/** True when `t` is a fabrics transport. */
export function isFabric(t: Transport | FabricTransport): t is FabricTransport {
  return (t as FabricTransport).fabric === true;
}

/** What a memory-mapped transport (PCIe, the software controller) provides to the generic controller code. */
export interface Transport extends DmaMemory {
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
  /** How a Worker reaches `buf` (queues owned by Workers); absent when the transport cannot share. */
  shareDma?(buf: DmaBuffer): SharedMemory;
  /** How a Worker reaches the doorbell array (offset 0x1000 onward). */
  shareDoorbells?(): SharedMemory;
  /**
   * Another thread may still touch `buf` (a Worker that stopped answering):
   * when it is freed, unmap it from the device but keep the process mapping,
   * so that thread reads stale memory instead of crashing.
   */
  retain?(buf: DmaBuffer): void;
  /** The same for the doorbell mapping: close() leaves it mapped. */
  retainDoorbells?(): void;
  /**
   * Optional: reset the device below the NVMe level (PCIe function level reset
   * for VFIO), keeping DMA mappings, then make it reachable again. Used when a
   * controller is fatal or will not become ready.
   */
  resetDevice?(): void;
  /**
   * Optional: enable up to `vectors` interrupt vectors before the controller
   * is brought up (MSI-X through VFIO, the software controller's model).
   * Throws a SetupError when none can be enabled.
   */
  enableInterrupts?(vectors: number): Promise<InterruptSource>;
  /**
   * Optional: map PCI BAR `index` (the controller memory buffer's, CMBLOC.BIR)
   * and give its bus address, as the controller sees it; null when it cannot.
   */
  mapBar?(index: number): PciBar | null;
}

/** A mapped PCI BAR: its bytes in this process and the bus address the device decodes. */
export interface PciBar {
  /** The BAR's memory (device memory: every access goes to the device). */
  bytes: Uint8Array;
  /** Bus address of its first byte. */
  busAddress: number;
}
