/**
 * ublk: a tsnvme namespace as a Linux block device (/dev/ublkbN), served by
 * this process until SIGINT/SIGTERM (which stop and delete it) or until
 * `ublk del` from another shell; SIGUSR2 resets the controller under live IO
 * (requests in flight are retried, as Linux's nvme driver does). Needs root
 * and ublk_drv (Linux 6.0+).
 *
 * Usage:
 *   deno run -A lib/cli/ublk.ts add 0000:01:00.0[:NSID] [--queues N] [--depth N] [--max-io BYTES] [--no-recovery]
 *   deno run -A lib/cli/ublk.ts add 0000:01:00.0[:NSID] --recover ID   # take over a device whose server died
 *   deno run -A lib/cli/ublk.ts list
 *   deno run -A lib/cli/ublk.ts del ID|--all
 * (also `nvme.ts ublk ...`; `bun lib/cli/ublk.ts ...` alike)
 * @module
 */
import process from "node:process";
import { readdirSync, renameSync, writeFileSync } from "node:fs";
import { NVMeDev } from "../dev.ts";
import { NvmeError } from "../nvme/errors.ts";
import { UBLK_STATE_NAMES, UblkControl, UblkDevice, UblkFlag } from "../ublk/mod.ts";
import { type Cli, type Command, formatTable, intOpt, out, runCli, UsageError, type Values } from "./cli.ts";

/** "0000:01:00.0:2" → ["0000:01:00.0", 2]; no namespace suffix → namespace 1. */
export function parseUblkTarget(spec: string): { target: string; nsid: number } {
  const m = /^(?:vfio:)?((?:[0-9a-f]{4}:)?[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])(?::(\d+))?$/i.exec(spec);
  if (!m) throw new UsageError(`not a PCI address with an optional namespace (0000:01:00.0:1): ${spec}`);
  const nsid = m[2] === undefined ? 1 : Number(m[2]);
  if (!Number.isSafeInteger(nsid) || nsid < 1 || nsid > 0xffff_fffe) throw new UsageError(`invalid namespace id in ${spec}`);
  return { target: m[1], nsid };
}

/** ublk device ids that have a /dev/ublkcN node. */
function deviceIds(): number[] {
  return readdirSync("/dev").map((n) => /^ublkc(\d+)$/.exec(n)?.[1]).filter((x) => x !== undefined).map(Number).sort((a, b) => a - b);
}

/** `ublk add`: serve until a signal or a `ublk del`; resolves to the exit status. */
async function add(spec: string, values: Values): Promise<number> {
  const { target, nsid } = parseUblkTarget(spec);
  const queues = intOpt(values, "queues", { min: 1, max: 4096 });
  const depth = intOpt(values, "depth", { min: 1, max: 4096 });
  const maxIo = intOpt(values, "max-io", { min: 4096, max: 16 * 1024 * 1024 });
  const recoverId = intOpt(values, "recover", { min: 0, max: 0x7fff_ffff });
  const dev = await NVMeDev.open(target, { ioQueues: 1, maxIoQueues: Math.max(16, queues + 1) });
  let u: UblkDevice;
  try {
    u = recoverId >= 0
      ? await UblkDevice.recover(dev, recoverId, { nsid })
      : await UblkDevice.create(dev, {
        nsid,
        queues: queues < 0 ? 1 : queues,
        depth: depth < 0 ? 128 : depth,
        maxIoBytes: maxIo < 0 ? undefined : maxIo,
        recovery: !values["no-recovery"],
      });
  } catch (e) {
    await dev.close();
    throw e;
  }
  out(u.path);
  const ready = values["ready-file"] as string | undefined;
  if (ready) {
    // Whole or absent: a watcher that polls for the file must never read it half written.
    writeFileSync(`${ready}.tmp`, `${u.devId} ${u.path} ${process.pid}\n`);
    renameSync(`${ready}.tmp`, ready);
  }
  let signalled = false;
  const stop = () => {
    if (signalled) return;
    signalled = true;
    void u.stop();
  };
  // SIGUSR2: reset the controller under live IO (what a timeout would do), to exercise recovery.
  // Not SIGUSR1: Deno (2.9.2+), like Node, starts its inspector on SIGUSR1, and a process with
  // an inspector open waits for it to disconnect before it exits.
  const reset = () => {
    process.stderr.write("ublk: SIGUSR2: resetting the controller\n");
    dev.controller.reset().then(
      () => process.stderr.write("ublk: controller reset done\n"),
      (e) => process.stderr.write(`ublk: controller reset failed: ${(e as Error).message}\n`),
    );
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGUSR2", reset);
  // Both runtimes: a pending promise alone does not keep the process alive.
  const keep = setInterval(() => {}, 1 << 30);
  try {
    const stats = await u.ended;
    await u.stop();
    if (!values.quiet) {
      const sum = (k: "requests" | "errors" | "retries") => stats.reduce((n, s) => n + s[k], 0);
      const s = { requests: sum("requests"), errors: sum("errors"), retries: sum("retries") };
      process.stderr.write(`ublk: ${u.path} ended (${s.requests} requests, ${s.errors} errors, ${s.retries} retries)\n`);
    }
  } finally {
    clearInterval(keep);
    // Listeners stay until the controller is closed: a second SIGTERM meanwhile is a no-op.
    await dev.close();
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
    process.off("SIGUSR2", reset);
  }
  if (!values.quiet) process.stderr.write(`ublk: ${target} closed\n`);
  return 0;
}

async function list(values: Values): Promise<number> {
  const ids = deviceIds();
  if (ids.length === 0) {
    if (values["output-format"] === "json") out("[]");
    return 0;
  }
  const ctrl = await UblkControl.open();
  try {
    const infos = ids.map((id) => ctrl.getDevInfo(id)).filter((i) => i !== null);
    if (values["output-format"] === "json") {
      out(JSON.stringify(infos.map((i) => ({ ...i, stateName: UBLK_STATE_NAMES[i.state] ?? String(i.state), blockDevice: `/dev/ublkb${i.devId}` })), null, 2));
      return 0;
    }
    const rows = [["Device", "State", "Queues", "Depth", "Max IO", "PID", "Recovery"]];
    for (const i of infos) {
      rows.push([
        `/dev/ublkb${i.devId}`,
        UBLK_STATE_NAMES[i.state] ?? String(i.state),
        String(i.queues),
        String(i.depth),
        String(i.maxIoBytes),
        String(i.pid),
        i.flags & UblkFlag.USER_RECOVERY ? "yes" : "no",
      ]);
    }
    process.stdout.write(formatTable(rows, { rule: true }));
  } finally {
    ctrl.close();
  }
  return 0;
}

async function del(id: string | undefined, values: Values): Promise<number> {
  const ids = values.all ? deviceIds() : [Number(id)];
  if (!values.all && (id === undefined || !/^\d+$/.test(id))) throw new UsageError("give a device id (see `ublk list`) or --all");
  const ctrl = await UblkControl.open();
  try {
    for (const n of ids) {
      if (ctrl.getDevInfo(n) === null) throw new NvmeError("EINVAL_ARG", `there is no ublk device ${n}`);
      // STOP_DEV ends the serving process's queues (it exits); DEL_DEV waits for it to let go.
      ctrl.stopDev(n);
      ctrl.delDev(n);
      out(`deleted /dev/ublkb${n}`);
    }
  } finally {
    ctrl.close();
  }
  return 0;
}

/** `ublk add|list|del`, as a subcommand of another CLI (nvme.ts registers it). */
export const ublkCommand: Command = {
  summary: "Serve a namespace as a Linux block device through ublk (add|list|del)",
  usage: "ublk add <device>[:nsid] [--queues N] [--depth N] [--max-io BYTES] [--no-recovery] [--recover ID] [--ready-file PATH]\n" +
    "       ublk list [--output-format normal|json]\n       ublk del <id>|--all",
  help: "add serves the namespace as /dev/ublkbN (printed once ready) until SIGINT/SIGTERM, which stop and delete the device, " +
    "or until `ublk del`. One Worker per queue owns its ublk queue and an NVMe queue pair. Devices are created with " +
    "UBLK_F_USER_RECOVERY (unless --no-recovery): if the server dies, the device stays quiesced and `add --recover ID` takes " +
    "it over with nothing acknowledged lost. Needs root and ublk_drv (Linux 6.0+).",
  options: {
    queues: { type: "string", short: "q" },
    depth: { type: "string", short: "d" },
    "max-io": { type: "string" },
    "no-recovery": { type: "boolean" },
    recover: { type: "string" },
    "ready-file": { type: "string" },
    quiet: { type: "boolean" },
    all: { type: "boolean" },
    "output-format": { type: "string", short: "o", default: "normal" },
  },
  args: [1, 2],
  run: async ([sub, arg], values) => {
    switch (sub) {
      case "add":
        if (arg === undefined) throw new UsageError("add needs a device (0000:01:00.0[:nsid])");
        return await add(arg, values);
      case "list":
        return await list(values);
      case "del":
        return await del(arg, values);
      default:
        throw new UsageError(`unknown ublk command: ${sub} (add, list, del)`);
    }
  },
};

const cli: Cli = {
  prog: "ublk.ts",
  commands: {
    add: { ...ublkCommand, summary: "Serve <device>[:nsid] as /dev/ublkbN until SIGINT/SIGTERM", args: [1, 1], run: ([d], v) => add(d, v) },
    list: { ...ublkCommand, summary: "List ublk devices", args: [0, 0], run: (_p, v) => list(v) },
    del: { ...ublkCommand, summary: "Stop and delete a ublk device", args: [0, 1], run: ([d], v) => del(d, v) },
  },
  onError(name, e) {
    if (e instanceof NvmeError) {
      process.stderr.write(`${name}: ${e.message}\n`);
      return 1;
    }
    return undefined;
  },
};

/** Run `argv` (without the runtime and script); resolves to the exit status. */
export function main(argv: string[]): Promise<number> {
  return runCli(cli, argv);
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  // Exit explicitly once stdout and stderr are flushed, as setup.ts does: nothing left open after a
  // stop (a signal listener, a Worker still unwinding) should keep the server alive.
  await new Promise((r) => process.stdout.write("", () => process.stderr.write("", r)));
  process.exit(code);
}
