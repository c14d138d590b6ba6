/**
 * One way to move data with a command: allocate DMA memory, fill it, send,
 * copy the result out, free. Freeing follows the controller's deferral rule
 * (Controller.freeDma): the views are detached at once, and if the command
 * has not ended (a timeout not yet aborted or ended by a reset) the unmap and
 * the IOVA's reuse wait until it has, so the device never writes memory that
 * means something else. libvfn's `nvme_sync` is the shape: the caller's
 * command, the helper's buffer.
 * @module
 */
import type { Sqe } from "./command.ts";
import type { DmaBuffer } from "./transport.ts";

/** What a transfer needs of a controller: its DMA memory and its admin queue. */
export interface AdminPort {
  /** Allocate DMA memory (zeroed, page aligned). */
  allocDma(size: number): DmaBuffer;
  /** Free DMA memory from allocDma, deferred while a command still refers to it. */
  freeDma(b: DmaBuffer): void;
  /** Send an admin command with a data buffer; resolves to CQE DW0. */
  adminCommand(cmd: Sqe, dataIova?: number, dataLen?: number, timeoutMs?: number): Promise<number>;
}

/** Options of {@link dmaTransfer} and {@link adminTransfer}. */
export interface TransferOptions {
  /** Bytes the command transfers. */
  bytes: number;
  /** Data for the device (host to controller), copied in before sending. */
  input?: Uint8Array;
  /** Byte the buffer is filled with before `input` is copied (default 0). */
  prefill?: number;
  /** Copy `bytes` out after the command (default: when there is no `input`). */
  read?: boolean;
  /** Allocate at least this much (default `bytes`, at least the input's length). */
  allocBytes?: number;
  /** Use this buffer instead of allocating one (it is not freed). */
  buffer?: DmaBuffer;
}

/** What a transfer returns. */
export interface TransferResult {
  /** What `send` resolved to (CQE DW0 for a single command). */
  dw0: number;
  /** A copy of the first `bytes` after the command, or null when not read. */
  data: Uint8Array | null;
}

/**
 * Run `send` with a DMA buffer of at least `bytes`: zeroed (or `prefill`ed),
 * with `input` copied in; copy the data out; free the buffer even when `send`
 * rejects (the free is deferred while a command on it has not ended).
 */
export async function dmaTransfer(mem: Pick<AdminPort, "allocDma" | "freeDma">, send: (buf: DmaBuffer) => Promise<number>, opts: TransferOptions): Promise<TransferResult> {
  const { bytes, input } = opts;
  const own = !opts.buffer;
  const buf = opts.buffer ?? mem.allocDma(Math.max(opts.allocBytes ?? bytes, input?.length ?? 0, 1));
  try {
    if (own || bytes > 0) buf.bytes.fill(opts.prefill ?? 0, 0, Math.max(bytes, input?.length ?? 0));
    if (input) buf.bytes.set(input);
    const dw0 = await send(buf);
    const read = opts.read ?? !input;
    return { dw0, data: read ? buf.bytes.slice(0, bytes) : null };
  } finally {
    if (own) mem.freeDma(buf);
  }
}

/** Send one admin command that moves `opts.bytes` of data through a DMA buffer; DW0 and the data back. */
export function adminTransfer(ctrl: AdminPort, cmd: Sqe, opts: TransferOptions & { timeoutMs?: number }): Promise<TransferResult> {
  return dmaTransfer(ctrl, (b) => ctrl.adminCommand(cmd, b.iova, opts.bytes, opts.timeoutMs), opts);
}
