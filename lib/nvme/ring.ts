/**
 * The seam between a queue pair's pending commands and a transport's rings,
 * as OpenVMM keeps queues.rs (rings only) beside queue_pair.rs (pending
 * commands): a {@link QueueRing} places commands and hands every completion it
 * finds to a {@link CompletionSink}. PCIe rings live in lib/nvme/pcie.ts,
 * NVMe/TCP connections in lib/tcp/ring.ts; lib/nvme/tracker.ts is the sink.
 * @module
 */
import type { NvmeError } from "./errors.ts";

/** Where a ring hands completions: one call per CQE, nothing allocated. */
export interface CompletionSink {
  /**
   * One completion: command id, status field (15 bits, phase stripped), DW0,
   * DW1 and the SQ id it names. Unknown, stale or foreign ones are the sink's
   * to count and drop.
   */
  complete(cid: number, sf: number, dw0: number, dw1: number, sqid: number): void;
  /** Commands waiting for completion. */
  readonly active: number;
  /**
   * End every command still held with `err` (the ring's connection is gone).
   * `deviceStopped`: nothing can write their memory any more, so it is released.
   */
  failAll(err: NvmeError, deviceStopped: boolean): void;
}

/**
 * What the generic queue pair needs from a transport's ring. A ring is owned
 * by one thread; no method allocates.
 */
export interface QueueRing {
  /** Entries in the submission ring. */
  readonly depth: number;
  /** Largest transfer one command can carry. */
  readonly maxTransfer: number;
  /**
   * True when completions land in memory this thread polls without the event
   * loop running (PCIe CQs): the pump may then spin on {@link reap}
   * synchronously for a bounded number of polls. Absent or false (a socket
   * ring fed by the event loop): it never does.
   */
  readonly pollable?: boolean;
  /** Times {@link flush} made new entries visible (SQ tail doorbell writes on PCIe, sends on a fabric). */
  readonly flushes: number;
  /** The SQE to fill for the next command (16 dwords, any previous content). */
  entry(): Uint32Array;
  /** Point the entry's data pointer at `len` (> 0) bytes at `iova`, using the slot's list memory. */
  setData(e: Uint32Array, slot: number, iova: number, len: number): void;
  /** The entry carries no data. */
  clearData(e: Uint32Array): void;
  /** Commit the filled entry (its CDW0 already carries the cid). */
  push(): void;
  /** Make pushed entries visible to the device (one doorbell per batch); returns true if it did. */
  flush(): boolean;
  /** Hand every new completion to `sink`; returns how many. */
  reap(sink: CompletionSink): number;
  /**
   * Rings that may hold back telling the device of consumed completions (a
   * PCIe CQ head doorbell) while the queue polls: whether they do (the queue
   * pair sets it per wait mode).
   */
  batchCqDoorbell?: boolean;
  /** Tell the device of every consumed completion now (before the queue sleeps or goes idle). */
  flushCq?(): void;
  /** Zero the rings and their positions (the device was disabled and forgot them). */
  reset(): void;
  /** Stop touching device memory and doorbells (queue failed or closed). */
  close(): void;
}
