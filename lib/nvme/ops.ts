/**
 * Transport operations: what the generic controller sequence
 * (lib/nvme/controller.ts) calls on either shape of transport, as SPDK's
 * `spdk_nvme_transport_ops` sits under `nvme_ctrlr.c`. The PCIe operations
 * (lib/nvme/pcie.ts: admin queue registers, Create/Delete IO CQ/SQ, doorbells,
 * PRP sizing) serve VFIO and the software controller; the fabrics operations
 * (lib/nvme/fabrics.ts: Connect, Property Get/Set, keep-alive) serve every
 * fabric transport, as SPDK's nvme_fabric.c serves TCP and RDMA.
 * @module
 */
import type { Sqe } from "./command.ts";
import type { NvmeError } from "./errors.ts";
import type { IdentifyController } from "./identify.ts";
import type { QueuePair, SubmitOptions } from "./queue.ts";
import type { Cap } from "./spec.ts";
import type { DmaBuffer, DmaMemory } from "./transport.ts";

/**
 * The controller's bring-up and recovery states, in order, as SPDK's
 * `nvme_ctrlr_state`; the controller names the state it is in in its logs,
 * trace and errors.
 */
export const CtrlrState = {
  /** Reach the controller: read CAP and disable it (PCIe), or open and Connect the admin queue (fabrics). */
  CONNECT_ADMIN: "connect-admin",
  /** Hand the admin queue over where the transport needs it, set CC.EN, wait for CSTS.RDY. */
  ENABLE: "enable",
  /** Read VS. */
  READ_VS: "read-vs",
  /** Identify Controller and the checks on it. */
  IDENTIFY: "identify",
  /** Set Features Number of Queues. */
  SET_NUM_QUEUES: "set-num-queues",
  /** Create (PCIe) or connect (fabrics) the IO queues. */
  CREATE_IO_QUEUES: "create-io-queues",
  /** Up and serving. */
  READY: "ready",
  /** Recovery: the controller is disabled or its connections dropped, in-flight commands fail. */
  RESETTING: "resetting",
  /** Shutdown notification and release. */
  SHUTDOWN: "shutdown",
  /** Given up: every queue failed. */
  FAILED: "failed",
} as const;

/** One of {@link CtrlrState}. */
export type CtrlrStateName = typeof CtrlrState[keyof typeof CtrlrState];

/** What transport operations use of the controller they serve. */
export interface OpsHost {
  /** Admin queue pair (once the operations made it). */
  readonly admin: QueuePair;
  /** Identify Controller (once identified). */
  readonly id: IdentifyController;
  /** Largest transfer per command in bytes, as the controller settled it. */
  readonly maxTransferBytes: number;
  /** True while a recovery runs. */
  readonly recovering: boolean;
  /** True once shut down (or shutting down). */
  readonly closed: boolean;
  /** The error the controller was given up with, else null. */
  readonly failed: NvmeError | null;
  /** DMA memory owned by the controller (freed with it). */
  allocDma(size: number): DmaBuffer;
  /** Send an admin command (see Controller.adminCommand). */
  adminCommand(cmd: Sqe, dataIova?: number, dataLen?: number, timeoutMs?: number, opts?: SubmitOptions): Promise<number>;
  /** The interrupt vector of IO queue `qid`, or -1 when polled. */
  ioVector(qid: number): number;
  /** A connection of the controller was lost: recover. */
  lost(err: NvmeError): void;
}

/** What {@link TransportOps.connectAdmin} found. */
export interface AdminStart {
  /** Decoded CAP. */
  cap: Cap;
  /** Memory page size the controller is enabled with (CC.MPS). */
  pageSize: number;
  /** Controller id (fabrics: Connect's), or 0 until Identify says. */
  cntlid: number;
}

/** Memory of a queue pair reserved for another thread (PCIe only). */
export interface ReservedQueue {
  /** Entries in each ring. */
  depth: number;
  /** Submission ring. */
  sq: DmaBuffer;
  /** Completion ring. */
  cq: DmaBuffer;
  /** PRP list pages for every slot, or null. */
  prp: DmaBuffer | null;
  /** PRP list pages per slot. */
  prpPages: number;
}

/**
 * The operations of one transport shape, bound to one controller. Commands
 * a recovery sends itself go with `opts` ({ held: true }): they pass while
 * the queues hold every other submission.
 */
export interface TransportOps {
  /** True for a fabric (recovery reconnects with backoff instead of resetting once). */
  readonly fabric: boolean;
  /** The transport's memory for commands' data. */
  readonly memory: DmaMemory;
  /** Data an IO command carries inside its capsule (fabrics: IOCCSZ × 16 − 64); 0 on PCIe. */
  readonly inCapsuleBytes: number;
  /**
   * CONNECT_ADMIN: reach the controller, read CAP and leave it disabled with
   * an admin queue pair ready (PCIe), or open the admin connection, Connect
   * and read CAP in Linux's order (fabrics). Returns what the controller needs
   * to make its admin pair with {@link adminQueue}.
   */
  connectAdmin(): Promise<AdminStart>;
  /** The admin queue pair, serving `host` from now on (PCIe: rings in its memory; fabrics: the connection opened). */
  adminQueue(host: OpsHost): QueuePair;
  /** ENABLE: hand the admin queue to the controller if the transport needs it, set CC.EN, wait for CSTS.RDY. */
  enable(opts: SubmitOptions): Promise<void>;
  /** Checks on Identify Controller particular to the transport; may lower the transfer size. Returns it. */
  identified(id: IdentifyController, maxTransferBytes: number): number;
  /** IO queues to ask for with Set Features Number of Queues (0: none, a discovery controller). */
  ioQueuesToRequest(): number;
  /** Make IO queue `qid` on the controller and return its pair. */
  createIoQueue(qid: number): Promise<QueuePair>;
  /** Bring IO queue `q` back on the controller after {@link teardown}. */
  restoreIoQueue(q: QueuePair, opts: SubmitOptions): Promise<void>;
  /** Create a queue reserved for another thread on the controller (PCIe; its CQ first). */
  createRemoteQueue(qid: number, depth: number, sq: DmaBuffer, cq: DmaBuffer, opts?: SubmitOptions): Promise<void>;
  /** Delete IO queue `qid` on the controller (fabrics: closing its connection is enough). */
  deleteIoQueue(qid: number): Promise<void>;
  /** Reserve ring and PRP memory for a queue another thread owns (PCIe only). */
  reserveQueue(depth: number): ReservedQueue;
  /** Another thread may still touch `memory` (an owner that did not answer): keep it mapped. */
  retain(memory: DmaBuffer[]): void;
  /** Read a controller register: MMIO, or Property Get. */
  readRegister(offset: number, eightBytes: boolean): Promise<bigint>;
  /** Throw if the controller is gone or fatal (PCIe reads CSTS; a fabric learns it from its connections). */
  checkHealth(): void;
  /**
   * RESETTING: stop the controller's use of every queue: NVM Subsystem Reset
   * first when `nssr`; PCIe disables it (resetting the function when it is
   * fatal or will not stop), fabrics drop every connection. Then `queues` fail
   * what they had in flight with `err` and wait, held.
   */
  teardown(queues: QueuePair[], err: NvmeError, nssr: boolean): Promise<void>;
  /**
   * After {@link teardown}: reach the controller again (fabrics: a new admin
   * connection, Connect, CC without EN); resolves to the new controller id,
   * or null when it stays.
   */
  reconnectAdmin(opts: SubmitOptions): Promise<number | null>;
  /** Every queue is back after a recovery: watch their connections again (fabrics). */
  recovered(queues: QueuePair[]): void;
  /** Keep-alive on (fabrics, at KATO/2) or off. */
  keepAlive(on: boolean): void;
  /** SHUTDOWN: notify a normal shutdown and wait for CSTS.SHST complete within `rtd3eUs`; PCIe then clears CC.EN. */
  shutdown(rtd3eUs: number): Promise<void>;
}
