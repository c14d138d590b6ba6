/**
 * `--verbose` for the nvme CLI: print every command the subcommand sends, when
 * it completes, in the layout newer nvme-cli prints with -vv (logging.c
 * nvme_show_command: the passthru fields, result, err, latency). It decorates
 * the open device's queue pairs from outside; the driver's own bring-up and
 * shutdown commands are not shown, as nvme-cli shows none of the kernel's.
 * @module
 */
import process from "node:process";
import { setRw, type Sqe, SqeDw } from "../nvme/command.ts";
import type { Controller } from "../nvme/controller.ts";
import { NvmeStatusError } from "../nvme/errors.ts";
import type { QueuePair } from "../nvme/queue.ts";
import { encodeStatus } from "../nvme/spec.ts";

const h = (v: number, w: number) => (v >>> 0).toString(16).padStart(w, "0");

/** nvme-cli's key/value lines for one command (`addr` is the DMA address the controller was given). */
export function formatCommand(cmd: Sqe, dataIova: number, dataLen: number, timeoutMs: number, result: number, err: number, us: number): string {
  const kv = (k: string, v: string) => `${k.padEnd(13)}: ${v}\n`;
  const D = SqeDw;
  return kv("opcode", h(cmd[D.CDW0] & 0xff, 2)) + kv("flags", h((cmd[D.CDW0] >>> 8) & 0xff, 2)) + kv("rsvd1", "0000") +
    kv("nsid", h(cmd[D.NSID], 8)) + kv("cdw2", h(cmd[D.CDW2], 8)) + kv("cdw3", h(cmd[D.CDW3], 8)) + kv("data_len", h(dataLen, 8)) +
    kv("metadata_len", h(0, 8)) + kv("addr", dataLen ? dataIova.toString(16) : "0") + kv("metadata", "0") +
    ([D.CDW10, D.CDW11, D.CDW12, D.CDW13, D.CDW14, D.CDW15] as number[]).map((i) => kv(`cdw${i}`, h(cmd[i], 8))).join("") +
    kv("timeout_ms", h(Math.round(timeoutMs), 8)) + kv("result", h(result, 8)) + kv("err", String(err)) + kv("latency", `${Math.round(us)} us`);
}

/** Status field of a failed command as the kernel ioctl returns it (positive), or -1 for no completion. */
function errOf(e: unknown): number {
  return e instanceof NvmeStatusError ? encodeStatus(e.status) : -1;
}

function traced(p: Promise<number>, show: (result: number, err: number) => void): Promise<number> {
  return p.then((r) => (show(r, 0), r), (e) => {
    show(e instanceof NvmeStatusError ? e.dw0 : 0, errOf(e));
    throw e;
  });
}

/** Print every command sent on `ctrl`'s queues until the returned function is called. */
export function traceCommands(ctrl: Controller): () => void {
  const undo: (() => void)[] = [];
  for (const q of [ctrl.admin, ...ctrl.io] as QueuePair[]) {
    const submit = q.submit, rw = q.rw;
    q.submit = (cmd, dataIova = 0, dataLen = 0, timeoutMs = q.defaultTimeoutMs, ref = null) => {
      const copy = cmd.slice();
      const t0 = performance.now();
      return traced(submit.call(q, cmd, dataIova, dataLen, timeoutMs, ref), (res, err) =>
        process.stdout.write(formatCommand(copy, dataIova, dataLen, timeoutMs, res, err, (performance.now() - t0) * 1000)));
    };
    q.rw = (opcode, nsid, slba, nlb0, dataIova, dataLen, cdw12Flags = 0, timeoutMs = q.defaultTimeoutMs, ref = null) => {
      const t0 = performance.now();
      return traced(rw.call(q, opcode, nsid, slba, nlb0, dataIova, dataLen, cdw12Flags, timeoutMs, ref), (res, err) => {
        const cmd = new Uint32Array(16);
        setRw(cmd, opcode, nsid, slba, nlb0, cdw12Flags);
        process.stdout.write(formatCommand(cmd, dataIova, dataLen, timeoutMs, res, err, (performance.now() - t0) * 1000));
      });
    };
    undo.push(() => {
      q.submit = submit;
      q.rw = rw;
    });
  }
  return () => undo.forEach((f) => f());
}
