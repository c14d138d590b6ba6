/**
 * nvme-cli-like command line for tsnvme. Same subcommand and long option names
 * as nvme-cli, with a device string where nvme-cli takes /dev/nvmeX: a PCI
 * address, `sim:` (the software controller) or `tcp://HOST[:PORT]/SUBNQN` (an
 * NVMe/TCP target; `discover` and `connect-all` list what a target offers).
 *
 *   deno run -A jsr:@tsnvme/tsnvme/cli id-ctrl 0000:01:00.0 --output-format json
 *   deno run -A jsr:@tsnvme/tsnvme/cli admin-passthru sim: --opcode 6 --cdw10 1 --data-len 4096 -r
 *   bun lib/cli/nvme.ts read 0000:01:00.0 -n 1 -s 0 -c 7 -z 4096 -d out.bin   (from a checkout)
 *   deno run -A jsr:@tsnvme/tsnvme/cli discover tcp://192.168.1.20 -o json
 *   deno run -A jsr:@tsnvme/tsnvme/cli smart-log tcp://192.168.1.20:4420/nqn.2024-01.io.example:disk1
 * @module
 */
import { ublkCommand } from "./ublk.ts";
import process from "node:process";
import { readFileSync, writeFileSync } from "node:fs";
import { type Cli, type Command, controllerTable, format, formatTable, intList, intOpt as int, type Options, out, outputFormat, runCli, UsageError, type Values } from "./cli.ts";
import {
  effectsLogToJson,
  errorLogToJson,
  formatEffectsLog,
  formatErrorLog,
  formatFeature,
  formatFwLog,
  formatIdCtrl,
  formatIdNs,
  formatNsDescs,
  formatNsList,
  formatRegisters,
  formatSanitizeLog,
  formatSelfTestLog,
  formatSmartLog,
  fwLogToJson,
  hexDump,
  idCtrlToJson,
  idNsToJson,
  nsDescsToJson,
  nsListToJson,
  nvmeCliStatusLine,
  registersToJson,
  sanitizeLogToJson,
  selfTestLogToJson,
  smartLogToJson,
  toNvmeCliJson,
} from "./format/mod.ts";
import { commandName } from "../nvme/trace.ts";
import { effectsLog, effectsLogs, errorLog, fwLog, getLogPage, sanitizeLog, selfTestLog, smartLog } from "../admin/log.ts";
import { featureName, getFeature, setFeature } from "../admin/features.ts";
import { activeNsList, attachNamespace, createNamespace, deleteNamespace, detachNamespace, deviceSelfTest, formatNvm, nsDescs } from "../admin/manage.ts";
import { commitFirmware, downloadFirmware } from "../firmware/mod.ts";
import { sanitize, type SanitizeKind, waitSanitize } from "../sanitize/mod.ts";
import { adminPassthru } from "../admin/passthru.ts";
import { readRegisterBlock, readRegisters } from "../admin/regs.ts";
import { ioPassthru } from "../io/passthru.ts";
import { NVMeDev, type OpenOptions } from "../dev.ts";
import { traceCommands } from "./verbose.ts";
import { virtCommands } from "./virt.ts";
import { InvalidArgumentError, NvmeError, NvmeStatusError } from "../nvme/errors.ts";
import { Cns, encodeStatus, IoOpc, LogId } from "../nvme/spec.ts";
import { listNvmeControllers } from "../vfio/sysfs.ts";
import { decodeIdentifyController, flbasIndex, parseNvmIdNs } from "../nvme/identify.ts";
import { piStripped, Prinfo } from "../nvme/pi.ts";
import type { ProtectionOptions } from "../io/namespace.ts";
import { identifyCmd } from "../nvme/command.ts";
import { TcpController } from "../tcp/host.ts";
import { decodeDiscoveryHeader, decodeDiscoveryLog, type DiscoveryEntry, SubType, TRTYPE_TCP } from "../tcp/discovery.ts";
import { discoveryToJson, type FabricsPath, formatDiscovery, formatSubsystems, subsystemsToJson } from "./format/discovery.ts";
import { DISCOVERY_NQN } from "../tcp/fabrics.ts";
import {
  formatTcpTarget,
  isTcpTarget,
  NVME_TCP_DISCOVERY_PORT,
  NVME_TCP_PORT,
  parseDiscoveryTarget,
  parseTcpTarget,
  type TcpTargetAddress,
} from "../tcp/target-string.ts";
import { resolveHostIdentity } from "../tcp/host-identity.ts";
import { znsCommands } from "./zns.ts";
import { fdpCommands } from "./fdp.ts";
import { resolveGroup } from "./groups.ts";

/** Progress on a terminal only: `\r`-rewritten line on stderr, nothing when stderr is a pipe or file. */
function progress(text: string | null): void {
  if (!process.stderr.isTTY) return;
  process.stderr.write(text === null ? "\r\x1b[K" : `\r\x1b[K${text}`);
}

/** Set from `--verbose` for the subcommand being run: print each command it sends. */
let verbose = false;
/** Set from the fabrics options of the subcommand being run: how a tcp:// device is connected. */
let fabricOpen: OpenOptions = {};
/** Set from `--sgl`/`--prp`/`--no-dbbuf` of the subcommand being run: how a PCIe device's IO queues move data. */
let pcieOpen: OpenOptions = {};

async function withDev<T>(device: string, f: (dev: NVMeDev) => Promise<T>): Promise<T> {
  const dev = await NVMeDev.open(device, isTcpTarget(device) ? fabricOpen : pcieOpen);
  const untrace = verbose ? traceCommands(dev.controller) : null;
  try {
    return await f(dev);
  } finally {
    untrace?.();
    await dev.close();
  }
}

/** Read an input file (or stdin for no name) for a command; a missing file is a usage error. */
function readInput(file: string | undefined): Uint8Array {
  try {
    return new Uint8Array(file ? readFileSync(file) : readFileSync(0));
  } catch (e) {
    throw new UsageError(`cannot read ${file ?? "stdin"}: ${(e as Error).message}`);
  }
}

/** nvme-cli's `admin-passthru` and `io-passthru`: the same options, the same output. */
function passthruCommand(admin: boolean): Command {
  const cdw: Options = {};
  // nvme-cli's short options: -2, -3 for CDW2/3 and -4 to -9 for CDW10 to CDW15.
  for (const [i, n] of [2, 3, 10, 11, 12, 13, 14, 15].entries()) cdw[`cdw${n}`] = { type: "string", short: String(i + 2) };
  return {
    summary: `Submit an arbitrary ${admin ? "admin" : "IO"} command, return results`,
    usage: `${admin ? "admin" : "io"}-passthru <device> --opcode <op> [--namespace-id <nsid>] [--cdw2..--cdw15 <v>] ` +
      "[--data-len <bytes>] [--read|--write] [--input-file <file>] [--timeout <ms>] [--prefill <byte>] [--raw-binary] " +
      "[--show-command] [--dry-run] [--latency] [--verbose]",
    help: "Data direction follows the opcode's bits 1:0 (01b write, 10b read) unless --read/--write says so. " +
      "Write data comes from --input-file or stdin; read data goes to --input-file, else stdout as a hex dump " +
      "(--raw-binary: the bytes). Metadata buffers are not supported. The addr nvme-cli shows with --show-command " +
      "is its malloc pointer; here the data buffer is allocated when the command is sent, so 0 is shown.",
    options: {
      opcode: { type: "string", short: "o" },
      "namespace-id": { type: "string", short: "n" },
      "data-len": { type: "string", short: "l" },
      timeout: { type: "string", short: "t" },
      ...cdw,
      "input-file": { type: "string", short: "i" },
      prefill: { type: "string", short: "p" },
      "raw-binary": { type: "boolean", short: "b" },
      "show-command": { type: "boolean", short: "s" },
      "dry-run": { type: "boolean", short: "d" },
      read: { type: "boolean", short: "r" },
      write: { type: "boolean", short: "w" },
      latency: { type: "boolean", short: "T" },
    },
    args: [1, 1],
    run: async ([device], values) => {
      const opcode = int(values, "opcode", { required: true, max: 0xff });
      const v32 = (k: string) => Math.max(0, int(values, k, { max: 0xffffffff }));
      const nsidV = v32("namespace-id");
      const dataLen = Math.max(0, int(values, "data-len", { max: 0xffffffff }));
      const timeout = v32("timeout");
      const prefill = Math.max(0, int(values, "prefill", { max: 0xff }));
      const dw = Object.fromEntries([2, 3, 10, 11, 12, 13, 14, 15].map((n) => [`cdw${n}`, v32(`cdw${n}`)]));
      // As nvme-cli: the opcode's transfer bits imply the direction.
      const write = !!values.write || (opcode & 1) === 1;
      const read = !!values.read || (opcode & 2) === 2;
      if (dataLen && !read && !write) throw new UsageError("data direction not given");
      const file = values["input-file"] as string | undefined;
      let data: Uint8Array | undefined;
      if (dataLen && write) {
        const src = readInput(file);
        data = src.subarray(0, Math.min(src.length, dataLen));
      }
      if (values["show-command"] || values["dry-run"]) {
        const h = (v: number, w: number) => v.toString(16).padStart(w, "0");
        out(`opcode       : ${h(opcode, 2)}\nflags        : 00\nrsvd1        : 0000\nnsid         : ${h(nsidV, 8)}\n` +
          `cdw2         : ${h(dw.cdw2, 8)}\ncdw3         : ${h(dw.cdw3, 8)}\ndata_len     : ${h(dataLen, 8)}\n` +
          `metadata_len : 00000000\naddr         : 0\nmetadata     : 0\n` +
          [10, 11, 12, 13, 14, 15].map((n) => `cdw${n}        : ${h(dw[`cdw${n}`], 8)}\n`).join("") +
          `timeout_ms   : ${h(timeout, 8)}`);
      }
      if (values["dry-run"]) return 0;
      return await withDev(device, async (dev) => {
        const direction = !dataLen ? "none" : read && write ? "both" : read ? "read" : "write";
        const cmd = { opcode, nsid: nsidV, ...dw, dataLen, direction, data, prefill, timeoutMs: timeout || undefined } as const;
        const t0 = performance.now();
        const r = admin ? await adminPassthru(dev, cmd) : await ioPassthru(dev, cmd);
        const us = Math.round((performance.now() - t0) * 1000);
        const name = commandName(admin, opcode);
        const what = `${admin ? "Admin" : "IO"} Command ${name === "Unknown" ? "Vendor Specific" : name}`;
        if (values.latency) out(`${what} latency: ${us} us`);
        if (r.status) {
          process.stderr.write(nvmeCliStatusLine(r.status) + "\n");
          return 1;
        }
        process.stderr.write(`${what} is Success and result: 0x${r.result.toString(16).padStart(8, "0")}\n`);
        if (read && r.data) {
          if (file) writeFileSync(file, r.data);
          else if (values["raw-binary"]) process.stdout.write(r.data);
          else process.stdout.write(hexDump(r.data));
        }
        return 0;
      });
    },
  };
}

function nsid(values: Values, dev: NVMeDev): number {
  const n = int(values, "namespace-id", { max: 0xffffffff });
  if (n >= 0) return n;
  const list = dev.nsList();
  if (list.length === 0) throw new UsageError("no active namespace: give --namespace-id");
  return list[0];
}

/** id-ctrl and id-ns: nvme-cli's output switches. */
const identifyOptions: Options = {
  ...outputFormat,
  "human-readable": { type: "boolean", short: "H" },
  "vendor-specific": { type: "boolean", short: "v" },
  "raw-binary": { type: "boolean", short: "b" },
};

const ioOptions: Options = {
  "namespace-id": { type: "string", short: "n" },
  "start-block": { type: "string", short: "s", default: "0" },
  "block-count": { type: "string", short: "c", default: "0" },
  "data-size": { type: "string", short: "z" },
  "data": { type: "string", short: "d" },
  ...piOptions(),
};

/** nvme-cli's metadata and protection information options of read, write, compare (and verify: no metadata). */
function piOptions(metadata = true): Options {
  return {
    ...(metadata ? { "metadata-size": { type: "string", short: "y" }, "metadata": { type: "string", short: "M" } } : {}),
    "prinfo": { type: "string", short: "p" },
    "ref-tag": { type: "string", short: "r" },
    "app-tag": { type: "string", short: "a" },
    "app-tag-mask": { type: "string", short: "m" },
  };
}

/** The PI options given, as the library takes them (PRINFO bit 3 = PRACT, bits 2:0 = checks); absent ones stay at the library's defaults. */
function piValues(values: Values): ProtectionOptions {
  const o: ProtectionOptions = {};
  if (values["prinfo"] !== undefined) {
    const p = int(values, "prinfo", { max: 15 });
    o.pract = (p & Prinfo.PRACT) !== 0;
    o.prchk = p & Prinfo.PRCHK_ALL;
  }
  if (values["ref-tag"] !== undefined) o.refTag = int(values, "ref-tag", { max: 2 ** 48 - 1 });
  if (values["app-tag"] !== undefined) o.appTag = int(values, "app-tag", { max: 0xffff });
  if (values["app-tag-mask"] !== undefined) o.appMask = int(values, "app-tag-mask", { max: 0xffff });
  return o;
}

async function io(kind: "read" | "write" | "compare", device: string, values: Values): Promise<number> {
  const slba = int(values, "start-block");
  const nlb = int(values, "block-count", { max: 0xffff }) + 1;
  const dataSize = int(values, "data-size", { required: true, min: 1 });
  const pio = piValues(values);
  const metaFile = values["metadata"] as string | undefined;
  return await withDev(device, async (dev) => {
    const ns = dev.ns(nsid(values, dev));
    const f = ns.pi;
    // Extended LBAs carry each block's metadata after its data, unless PRACT strips a PI-only tuple.
    const pract = pio.pract ?? (f !== null && f.type !== 0 && f.metadataSize === f.tupleBytes && metaFile === undefined);
    const unit = f && f.extended && !piStripped(f, pract) ? f.blockSize + f.metadataSize : ns.blockSize;
    const bytes = nlb * unit;
    if (dataSize < bytes) {
      throw new UsageError(`--data-size ${dataSize} is smaller than ${nlb} blocks of ${unit} bytes (${bytes})`);
    }
    const buf = dev.allocBuffer(bytes);
    const file = values["data"] as string | undefined;
    const metaBytes = f && !f.extended && !piStripped(f, pract) ? nlb * f.metadataSize : 0;
    if (metaBytes && int(values, "metadata-size", { required: true }) < metaBytes) {
      throw new UsageError(`--metadata-size is smaller than ${nlb} blocks of ${f!.metadataSize} metadata bytes (${metaBytes})`);
    }
    const meta = metaBytes ? dev.allocBuffer(metaBytes) : undefined;
    const opts: ProtectionOptions = f ? { ...pio, pract: f.type ? pract : undefined, metadata: meta } : {};
    if (kind !== "read") {
      const src = file ? readFileSync(file) : readFileSync(0);
      buf.set(src.subarray(0, Math.min(src.length, bytes)));
      if (meta) meta.set(metaFile ? readFileSync(metaFile).subarray(0, metaBytes) : new Uint8Array(0));
      if (kind === "write") await ns.write(slba, buf, opts);
      else await ns.compare(slba, buf, opts);
    } else {
      await ns.read(slba, buf, opts);
      if (meta && metaFile) writeFileSync(metaFile, meta);
      // nvme-cli writes the whole --data-size buffer; bytes past the transfer are zero.
      const out = new Uint8Array(dataSize);
      out.set(buf);
      if (file) writeFileSync(file, out);
      else process.stdout.write(out);
    }
    process.stderr.write(`${kind}: Success\n`);
    return 0;
  });
}

/** attach-ns and detach-ns: the same command but for the verb. */
function nsAttachment(verb: "attach" | "detach"): Command {
  const send = verb === "attach" ? attachNamespace : detachNamespace;
  return {
    summary: `${verb === "attach" ? "Attach a namespace to" : "Detach a namespace from"} controllers (default: this one)`,
    usage: `${verb}-ns <device> --namespace-id <nsid> [--controllers <id,...>]`,
    options: { "namespace-id": { type: "string", short: "n" }, controllers: { type: "string", short: "c" } },
    args: [1, 1],
    run: ([device], values) => {
      const id = int(values, "namespace-id", { required: true, min: 1, max: 0xfffffffe });
      const ctrls = intList(values, "controllers", 0xffef);
      return withDev(device, async (dev) => {
        await send(dev, id, ctrls.length ? ctrls : undefined);
        out(`${verb}-ns: Success, nsid:${id}`);
        return 0;
      });
    },
  };
}

// ---------------------------------------------------------------- NVMe over Fabrics (TCP)
// nvme-cli's discover/connect-all/connect over tsnvme's own TCP host. A userspace driver makes no
// kernel device: "connect" resolves discovery entries into tcp:// target strings the device
// commands take (id-ctrl tcp://HOST:PORT/NQN, read, write, ...).

/** nvme-cli's NVMF_OPTS subset that applies to a userspace TCP host. */
const fabricsOptions: Options = {
  transport: { type: "string", short: "t" },
  traddr: { type: "string", short: "a" },
  trsvcid: { type: "string", short: "s" },
  nqn: { type: "string", short: "n" },
  hostnqn: { type: "string", short: "q" },
  hostid: { type: "string", short: "I" },
  "hdr-digest": { type: "boolean", short: "g" },
  "data-digest": { type: "boolean", short: "G" },
};

/** A parse error of a target string is a usage error (exit 2), not a device failure. */
function usageOnBadArg<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw new UsageError(e.message);
    throw e;
  }
}

/**
 * The controller a fabrics command names: a `tcp://HOST[:PORT][/NQN]` argument or nvme-cli's
 * `-t tcp -a HOST -s PORT -n NQN`. Discovery defaults to port 8009 and the discovery NQN.
 */
function fabricsTarget(arg: string | undefined, values: Values, discovery: boolean): TcpTargetAddress {
  const nqn = values.nqn as string | undefined;
  const parse = (s: string) => usageOnBadArg(() => discovery ? parseDiscoveryTarget(s) : parseTcpTarget(s));
  if (arg !== undefined) {
    if (values.transport !== undefined || values.traddr !== undefined || values.trsvcid !== undefined) {
      throw new UsageError("give a tcp:// target or --transport/--traddr/--trsvcid, not both");
    }
    if (!isTcpTarget(arg)) throw new UsageError(`not a tcp:// target: ${arg}`);
    const t = usageOnBadArg(() =>
      parseTcpTarget(arg, {
        defaultPort: discovery ? NVME_TCP_DISCOVERY_PORT : NVME_TCP_PORT,
        defaultNqn: nqn ?? (discovery ? DISCOVERY_NQN : undefined),
      })
    );
    if (nqn !== undefined && t.subnqn !== nqn) throw new UsageError(`--nqn ${nqn} differs from the target's ${t.subnqn}`);
    return t;
  }
  const tr = values.transport as string | undefined;
  if (tr === undefined) throw new UsageError("required argument [--transport | -t] not specified (or give tcp://HOST[:PORT])");
  if (tr !== "tcp") throw new UsageError(`transport ${tr} is not supported (only tcp)`);
  const addr = values.traddr as string | undefined;
  if (addr === undefined) throw new UsageError("required argument [--traddr | -a] not specified for transport tcp");
  const host = addr.includes(":") && !addr.startsWith("[") ? `[${addr}]` : addr;
  const svc = values.trsvcid as string | undefined;
  return parse(`tcp://${host}${svc !== undefined ? `:${svc}` : ""}/${nqn ?? ""}`);
}

/** Host NQN/ID (options, else /etc/nvme, else generated) and digests for a fabrics connection. */
function fabricsHost(values: Values) {
  const id = usageOnBadArg(() => resolveHostIdentity({ hostnqn: values.hostnqn as string | undefined, hostid: values.hostid as string | undefined }));
  return { ...id, digests: { hdgst: !!values["hdr-digest"], ddgst: !!values["data-digest"] } };
}

/**
 * The whole discovery log, header and records, as libnvme 1.3 reads it: header, header plus
 * records, header again; again while GENCTR moved (at most `tries` times).
 */
async function readDiscoveryLog(t: TcpTargetAddress, values: Values, tries = 10): Promise<Uint8Array> {
  const h = fabricsHost(values);
  const c = await TcpController.connect({ host: t.host, port: t.port, subnqn: t.subnqn, hostnqn: h.hostnqn, hostid: h.hostid, digests: h.digests, ioQueues: 0, katoMs: 0 });
  try {
    return await c.discoveryLogBytes(tries);
  } finally {
    await c.shutdown().catch(() => c.close());
  }
}

/** The tcp:// target string of a discovery record (the string the device commands take). */
function recordTarget(e: DiscoveryEntry): string {
  return formatTcpTarget({ host: e.traddr, port: Number(e.trsvcid), subnqn: e.subnqn });
}

/** Connect to one IO controller (admin queue only), read its cntlid, shut it down. */
async function probeController(target: string, values: Values): Promise<{ cntlid: number; model: string }> {
  const t = parseTcpTarget(target);
  const h = fabricsHost(values);
  const c = await TcpController.connect({ host: t.host, port: t.port, subnqn: t.subnqn, hostnqn: h.hostnqn, hostid: h.hostid, digests: h.digests, ioQueues: 0 });
  try {
    return { cntlid: c.cntlid, model: decodeIdentifyController(c.identify).model };
  } finally {
    await c.shutdown().catch(() => c.close());
  }
}

/** A fabrics command's failure to reach the target: nvme-cli's one line on stderr, exit status 1. */
async function reach<T>(name: string, f: () => Promise<T>): Promise<T | number> {
  try {
    return await f();
  } catch (e) {
    if (e instanceof UsageError || e instanceof NvmeStatusError) throw e;
    process.stderr.write(`${name}: ${(e as Error).message ?? String(e)}\n`);
    return 1;
  }
}

/** NVM subsystem paths a discovery log leads to, following referrals (each discovery controller once). */
async function discoverPaths(t: TcpTargetAddress, values: Values, seen = new Set<string>()): Promise<DiscoveryEntry[]> {
  seen.add(formatTcpTarget(t));
  const out: DiscoveryEntry[] = [];
  for (const e of decodeDiscoveryLog(await readDiscoveryLog(t, values))) {
    if (e.trtype !== TRTYPE_TCP) continue; // as nvme-cli: only entries of the transport asked
    if (e.subtype === SubType.NVM) out.push(e);
    if (e.subtype === SubType.REFERRAL) {
      const ref = { host: e.traddr, port: Number(e.trsvcid), subnqn: e.subnqn || DISCOVERY_NQN };
      if (!seen.has(formatTcpTarget(ref))) out.push(...await discoverPaths(ref, values, seen));
    }
  }
  return out;
}

const fabricsCommands: Record<string, Command> = {
  "discover": {
    summary: "Discover NVMe/TCP subsystems (read a discovery controller's log)",
    usage: "discover [tcp://HOST[:PORT]] [--transport tcp --traddr HOST [--trsvcid PORT]] [--hostnqn <nqn>] [--hostid <uuid>] " +
      "[--hdr-digest] [--data-digest] [--raw <file>] [--output-format normal|json|binary]",
    help: "The port defaults to 8009, the NQN to nqn.2014-08.org.nvmexpress.discovery (a tcp://HOST:PORT/NQN names another " +
      "discovery controller). Host NQN and ID: the options, else /etc/nvme/hostnqn and /etc/nvme/hostid, else generated " +
      "from the machine (the same every run).",
    options: { ...fabricsOptions, ...outputFormat, raw: { type: "string", short: "r" } },
    args: [0, 1],
    run: async ([arg], values) => {
      const t = fabricsTarget(arg, values, true);
      const f = format(values, ["normal", "json", "binary"]);
      fabricsHost(values); // a bad host NQN/ID is a usage error before any connection
      return await reach("discover", async () => {
        const log = await readDiscoveryLog(t, values);
        const { genctr } = decodeDiscoveryHeader(log);
        const entries = decodeDiscoveryLog(log);
        const raw = values.raw as string | undefined;
        if (raw !== undefined) {
          writeFileSync(raw, log);
          out(`Discovery log is saved to ${raw}`);
        } else if (f === "binary") process.stdout.write(log);
        else if (f === "json") out(discoveryToJson(genctr, entries));
        else process.stdout.write(formatDiscovery(genctr, entries));
        return 0;
      });
    },
  },
  "connect-all": {
    summary: "Discover NVMe/TCP subsystems and list the tcp:// targets they offer",
    usage: "connect-all [tcp://HOST[:PORT]] [--transport tcp --traddr HOST [--trsvcid PORT]] [--hostnqn <nqn>] [--hostid <uuid>] " +
      "[--hdr-digest] [--data-digest] [--dry-run] [--output-format normal|json]",
    help: "A userspace driver makes no /dev/nvmeX: connecting means turning each NVM subsystem entry of the discovery log " +
      "(referrals followed) into the tcp://HOST:PORT/NQN target the other commands take. Each is connected once to check it " +
      "(state live, with its cntlid) unless --dry-run, which only lists them. Output in list-subsys's layout.",
    options: { ...fabricsOptions, ...outputFormat, "dry-run": { type: "boolean" } },
    args: [0, 1],
    run: async ([arg], values) => {
      const t = fabricsTarget(arg, values, true);
      const f = format(values);
      const host = fabricsHost(values);
      return await reach("connect-all", async () => {
        const paths: FabricsPath[] = [];
        let failed = 0;
        for (const e of await discoverPaths(t, values)) {
          const target = recordTarget(e);
          if (values["dry-run"]) {
            paths.push({ target, entry: e, state: "discovered" });
            continue;
          }
          try {
            const { cntlid } = await probeController(target, values);
            paths.push({ target, entry: e, state: "live", cntlid });
          } catch (err) {
            failed++;
            paths.push({ target, entry: e, state: "failed" });
            process.stderr.write(`connect-all: ${target}: ${(err as Error).message}\n`);
          }
        }
        out(f === "json" ? subsystemsToJson(paths, host) : formatSubsystems(paths));
        return failed ? 1 : 0;
      });
    },
  },
  "connect": {
    summary: "Connect to one NVMe/TCP subsystem and print its tcp:// target",
    usage: "connect [tcp://HOST[:PORT]/NQN] [--transport tcp --traddr HOST [--trsvcid PORT] --nqn NQN] [--hostnqn <nqn>] " +
      "[--hostid <uuid>] [--hdr-digest] [--data-digest] [--nr-io-queues <n>] [--queue-size <n>] [--output-format normal|json]",
    help: "Brings the controller up (admin and IO queues, as the device commands will), shuts it down again and prints " +
      "`device: tcp://HOST:PORT/NQN` (json: {\"device\": ...}), the device string for id-ctrl, read, write and the rest.",
    options: {
      ...fabricsOptions,
      ...outputFormat,
      "nr-io-queues": { type: "string", short: "i" },
      "queue-size": { type: "string", short: "Q" },
    },
    args: [0, 1],
    run: async ([arg], values) => {
      const t = fabricsTarget(arg, values, false);
      const f = format(values);
      const ioQueues = Math.max(1, int(values, "nr-io-queues", { min: 1, max: 0xffff }));
      const qs = int(values, "queue-size", { min: 2, max: 0x10000 });
      const h = fabricsHost(values);
      return await reach("connect", async () => {
        const c = await TcpController.connect({
          host: t.host,
          port: t.port,
          subnqn: t.subnqn,
          hostnqn: h.hostnqn,
          hostid: h.hostid,
          digests: h.digests,
          ioQueues,
          queueDepth: qs < 0 ? undefined : qs,
        });
        await c.shutdown().catch(() => c.close());
        const target = formatTcpTarget(t);
        out(f === "json" ? toNvmeCliJson({ device: target }) : `device: ${target}`);
        return 0;
      });
    },
  },
};

const commands: Record<string, Command> = {
  "list": {
    summary: "List NVMe controllers (PCI functions of class 0x010802)",
    usage: "list [--output-format normal|json]",
    options: outputFormat,
    args: [0, 0],
    run(_pos, values) {
      const ctrls = listNvmeControllers();
      if (format(values) === "json") {
        const devices = ctrls.map((c) => ({
          Address: c.address,
          Driver: c.driver ?? "",
          VendorId: c.vendor,
          DeviceId: c.device,
          IommuGroup: c.iommuGroup,
        }));
        process.stdout.write(JSON.stringify({ Devices: devices }, null, 2) + "\n");
      } else {
        process.stdout.write(formatTable(controllerTable(ctrls), { rule: true }));
      }
      return Promise.resolve(0);
    },
  },
  "id-ctrl": {
    summary: "Send Identify Controller and show the result",
    usage: "id-ctrl <device> [--human-readable] [--vendor-specific] [--raw-binary] [--output-format normal|json|binary]",
    options: { ...identifyOptions },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values, ["normal", "json", "binary"]);
      return withDev(device, (dev) => {
        const c = dev.idCtrl;
        if (f === "binary" || values["raw-binary"]) process.stdout.write(dev.controller.identifyData.slice());
        else if (f === "json") out(idCtrlToJson(c));
        else process.stdout.write(formatIdCtrl(c, { human: !!values["human-readable"], vendorSpecific: !!values["vendor-specific"] }));
        return Promise.resolve(0);
      });
    },
  },
  "id-ns": {
    summary: "Send Identify Namespace and show the result",
    usage:
      "id-ns <device> --namespace-id <nsid> [--human-readable] [--vendor-specific] [--raw-binary] [--output-format normal|json|binary]",
    options: { ...identifyOptions, "namespace-id": { type: "string", short: "n" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values, ["normal", "json", "binary"]);
      int(values, "namespace-id", { max: 0xffffffff });
      return withDev(device, async (dev) => {
        const id = nsid(values, dev);
        const n = dev.idNs(id);
        if (f === "binary" || values["raw-binary"]) process.stdout.write(await dev.controller.identifyNamespace(id));
        else if (f === "json") out(idNsToJson(n));
        else process.stdout.write(formatIdNs(n, id, { human: !!values["human-readable"], vendorSpecific: !!values["vendor-specific"] }));
        return 0;
      });
    },
  },
  "nvm-id-ns": {
    summary: "Send the NVM command set's Identify Namespace (CNS 05h): extended LBA formats, guard sizes",
    usage: "nvm-id-ns <device> --namespace-id <nsid> [--output-format normal|json]",
    options: { ...outputFormat, "namespace-id": { type: "string", short: "n" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      int(values, "namespace-id", { max: 0xffffffff });
      return withDev(device, async (dev) => {
        const id = nsid(values, dev);
        const n = dev.idNs(id);
        const nvm = parseNvmIdNs(await dev.controller.identify(identifyCmd(Cns.CSI_NS, id, 0, 0)), n.nlbaf + n.nulbaf);
        if (f === "json") out(JSON.stringify({ lbstm: Number(nvm.lbstm.value), pic: nvm.pic, elbafs: nvm.elbafs }, null, 2));
        else {
          const inUse = flbasIndex(n.flbas);
          process.stdout.write(
            `NVMe NVM Identify Namespace ${id}:\nlbstm : 0x${nvm.lbstm.value.toString(16)}\npic   : 0x${nvm.pic.toString(16)}\n` +
              nvm.elbafs.map((e, i) => `elbaf ${String(i).padStart(2)} : pif:${e.pif} sts:${String(e.sts).padEnd(2)} ${i === inUse ? "(in use)" : ""}\n`).join(""),
          );
        }
        return 0;
      });
    },
  },
  "list-ns": {
    summary: "Send Identify List (active namespaces), display the namespace ids",
    usage: "list-ns <device> [--namespace-id <first nsid>] [--output-format normal|json]",
    options: { ...outputFormat, "namespace-id": { type: "string", short: "n", default: "1" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      const first = int(values, "namespace-id", { min: 1, max: 0xffffffff });
      return withDev(device, async (dev) => {
        const ids = await activeNsList(dev, first - 1);
        out(f === "json" ? nsListToJson(ids) : formatNsList(ids));
        return 0;
      });
    },
  },
  "ns-descs": {
    summary: "Send Identify Namespace Identification Descriptors, display them",
    usage: "ns-descs <device> --namespace-id <nsid> [--output-format normal|json]",
    options: { ...outputFormat, "namespace-id": { type: "string", short: "n" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      return withDev(device, async (dev) => {
        const id = nsid(values, dev);
        const d = await nsDescs(dev, id);
        out(f === "json" ? nsDescsToJson(d) : formatNsDescs(d, id));
        return 0;
      });
    },
  },
  "smart-log": {
    summary: "Retrieve the SMART / health information log",
    usage: "smart-log <device> [--namespace-id <nsid>] [--human-readable] [--raw-binary] [--output-format normal|json|binary]",
    options: {
      ...outputFormat,
      "namespace-id": { type: "string", short: "n" },
      "human-readable": { type: "boolean", short: "H" },
      "raw-binary": { type: "boolean", short: "b" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values, ["normal", "json", "binary"]);
      const n = int(values, "namespace-id", { max: 0xffffffff });
      const id = n < 0 ? 0xffffffff : n;
      return withDev(device, async (dev) => {
        if (f === "binary" || values["raw-binary"]) {
          process.stdout.write(await getLogPage(dev, LogId.SMART, 512, { nsid: id }));
          return 0;
        }
        const s = await smartLog(dev, id);
        out(f === "json" ? smartLogToJson(s) : formatSmartLog(s, device, id, { human: !!values["human-readable"] }));
        return 0;
      });
    },
  },
  "error-log": {
    summary: "Retrieve the error information log",
    usage: "error-log <device> [--log-entries <n>] [--output-format normal|json]",
    options: { ...outputFormat, "log-entries": { type: "string", short: "e", default: "64" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      const want = int(values, "log-entries", { min: 1, max: 256 });
      return withDev(device, async (dev) => {
        // As nvme-cli: never more than the controller keeps (ELPE + 1).
        const e = await errorLog(dev, Math.min(want, dev.idCtrl.elpe + 1));
        out(f === "json" ? errorLogToJson(e) : formatErrorLog(e, device));
        return 0;
      });
    },
  },
  "fw-log": {
    summary: "Retrieve the firmware slot log",
    usage: "fw-log <device> [--output-format normal|json]",
    options: outputFormat,
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      return withDev(device, async (dev) => {
        const l = await fwLog(dev);
        out(f === "json" ? fwLogToJson(l, device) : formatFwLog(l, device));
        return 0;
      });
    },
  },
  "effects-log": {
    summary: "Retrieve the commands supported and effects log",
    usage: "effects-log <device> [--csi <csi>] [--output-format normal|json]",
    options: { ...outputFormat, csi: { type: "string", short: "c" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      const csi = int(values, "csi", { max: 0xff });
      return withDev(device, async (dev) => {
        const pages = csi < 0 ? await effectsLogs(dev) : [await effectsLog(dev, csi)];
        out(f === "json" ? effectsLogToJson(pages) : formatEffectsLog(pages));
        return 0;
      });
    },
  },
  "self-test-log": {
    summary: "Retrieve the device self-test log",
    usage: "self-test-log <device> [--dst-entries <n>] [--output-format normal|json]",
    options: { ...outputFormat, "dst-entries": { type: "string", short: "e", default: "20" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      const n = int(values, "dst-entries", { max: 255 });
      return withDev(device, async (dev) => {
        const l = await selfTestLog(dev);
        out(f === "json" ? selfTestLogToJson(l, n) : formatSelfTestLog(l, device, Math.min(n, 20)));
        return 0;
      });
    },
  },
  "sanitize-log": {
    summary: "Retrieve the sanitize status log",
    usage: "sanitize-log <device> [--output-format normal|json]",
    options: outputFormat,
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      return withDev(device, async (dev) => {
        const l = await sanitizeLog(dev);
        out(f === "json" ? sanitizeLogToJson(l, device) : formatSanitizeLog(l, device));
        return 0;
      });
    },
  },
  "get-feature": {
    summary: "Get a feature and show its value (decoded with --human-readable or in JSON)",
    usage:
      "get-feature <device> --feature-id <fid> [--namespace-id <nsid>] [--sel 0-3] [--cdw11 <v>] [--human-readable] [--output-format normal|json]",
    options: {
      ...outputFormat,
      "feature-id": { type: "string", short: "f" },
      "namespace-id": { type: "string", short: "n" },
      sel: { type: "string", short: "s", default: "0" },
      cdw11: { type: "string", short: "c", default: "0" },
      "human-readable": { type: "boolean", short: "H" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values);
      const fid = int(values, "feature-id", { required: true, min: 1, max: 0xff });
      const sel = int(values, "sel", { max: 3 });
      const cdw11 = int(values, "cdw11", { max: 0xffffffff });
      const n = int(values, "namespace-id", { max: 0xffffffff });
      return withDev(device, async (dev) => {
        const r = await getFeature(dev, fid, { sel, cdw11, nsid: n < 0 ? 0 : n });
        if (f === "json") {
          out(toNvmeCliJson({
            feature_id: r.fid,
            name: featureName(r.fid),
            sel: r.sel,
            value: r.value,
            ...(r.data ? { data: [...r.data].map((b) => b.toString(16).padStart(2, "0")).join("") } : {}),
            fields: Object.fromEntries(Object.entries(r.fields).map(([k, v]) => [k, typeof v === "boolean" ? (v ? 1 : 0) : v])),
          }));
        } else {
          out(formatFeature(r, { human: !!values["human-readable"] }));
        }
        return 0;
      });
    },
  },
  "set-feature": {
    summary: "Set a feature and show the resulting value",
    usage:
      "set-feature <device> --feature-id <fid> --value <v> [--namespace-id <nsid>] [--cdw12 <v>] [--data <file>] [--data-len <n>] [--save]",
    options: {
      "feature-id": { type: "string", short: "f" },
      "namespace-id": { type: "string", short: "n" },
      value: { type: "string", short: "v", default: "0" },
      cdw12: { type: "string", short: "c", default: "0" },
      data: { type: "string", short: "d" },
      "data-len": { type: "string", short: "l" },
      save: { type: "boolean", short: "s" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const fid = int(values, "feature-id", { required: true, min: 1, max: 0xff });
      const value = int(values, "value", { max: 0xffffffff });
      const cdw12 = int(values, "cdw12", { max: 0xffffffff });
      const n = int(values, "namespace-id", { max: 0xffffffff });
      const len = int(values, "data-len", { min: 1, max: 4096 });
      let data: Uint8Array | undefined;
      if (values.data) {
        const raw = readFileSync(String(values.data));
        data = new Uint8Array(len > 0 ? len : raw.length);
        data.set(raw.subarray(0, data.length));
      }
      return withDev(device, async (dev) => {
        const dw0 = await setFeature(dev, fid, value, { nsid: n < 0 ? 0 : n, cdw12, data, save: !!values.save });
        out(`set-feature:${fid ? "0x" + fid.toString(16).padStart(2, "0") : "00"} (${featureName(fid)}), value:${
          value ? "0x" + value.toString(16).padStart(8, "0") : "00000000"
        }, cdw12:${cdw12 ? "0x" + cdw12.toString(16).padStart(8, "0") : "00000000"}, save:${values.save ? 1 : 0}` +
          (dw0 ? `\\n  result: 0x${dw0.toString(16).padStart(8, "0")}` : ""));
        return 0;
      });
    },
  },
  "format": {
    summary: "Format a namespace with a new block format (restores nothing; all data is lost)",
    usage:
      "format <device> --namespace-id <nsid> [--lbaf <i>] [--ses 0-2] [--pi 0-3] [--pil 0|1] [--ms 0|1] [--timeout <ms>] --force",
    options: {
      "namespace-id": { type: "string", short: "n" },
      lbaf: { type: "string", short: "l" },
      ses: { type: "string", short: "s", default: "0" },
      pi: { type: "string", short: "i", default: "0" },
      pil: { type: "string", short: "p", default: "0" },
      ms: { type: "string", short: "m", default: "0" },
      timeout: { type: "string", short: "t" },
      force: { type: "boolean" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const lbaf = int(values, "lbaf", { max: 63 });
      const ses = int(values, "ses", { max: 2 });
      const pi = int(values, "pi", { max: 3 });
      const pil = int(values, "pil", { max: 1 });
      const ms = int(values, "ms", { max: 1 });
      const timeout = int(values, "timeout", { min: 1 });
      const id = int(values, "namespace-id", { required: true, min: 1, max: 0xffffffff });
      if (!values.force) throw new UsageError("format destroys all data on the namespace: add --force to confirm");
      return withDev(device, async (dev) => {
        progress("format: in progress...");
        await formatNvm(dev, id, {
          lbaf: lbaf < 0 ? undefined : lbaf,
          ses,
          pi,
          pil: pil === 1,
          mset: ms === 1,
          timeoutMs: timeout < 0 ? undefined : timeout,
        });
        progress(null);
        out("Success formatting namespace:" + id.toString(16));
        return 0;
      });
    },
  },
  "device-self-test": {
    summary: "Start (or abort) a device self-test",
    usage: "device-self-test <device> [--namespace-id <nsid>] --self-test-code <1 short|2 extended|0xf abort> [--wait]",
    options: {
      "namespace-id": { type: "string", short: "n" },
      "self-test-code": { type: "string", short: "s" },
      wait: { type: "boolean", short: "w" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const stc = int(values, "self-test-code", { required: true, max: 0xf });
      const n = int(values, "namespace-id", { max: 0xffffffff });
      return withDev(device, async (dev) => {
        await deviceSelfTest(dev, stc, n < 0 ? 0xffffffff : n);
        const what = stc === 0xf ? "Aborting device self-test operation" :
          stc === 2 ? "Extended Device self-test started" : stc === 1 ? "Short Device self-test started" : "Device self-test started";
        out(what);
        if (values.wait && stc !== 0xf) {
          for (;;) {
            const l = await selfTestLog(dev);
            if (l.currentOperation === 0) break;
            progress(`[${"=".repeat(Math.floor(l.completion / 5)).padEnd(20)}] ${l.completion}%`);
            await new Promise((r) => setTimeout(r, 1000));
          }
          progress(null);
          const r = (await selfTestLog(dev)).results[0];
          out(`Test result: 0x${r.result.toString(16)}`);
        }
        return 0;
      });
    },
  },
  "fw-download": {
    summary: "Download a firmware image to the controller (activate it with fw-commit)",
    usage: "fw-download <device> --fw <file> [--xfer <bytes per command>] [--offset <bytes>] [--progress]",
    options: {
      fw: { type: "string", short: "f" },
      xfer: { type: "string", short: "x" },
      offset: { type: "string", short: "o", default: "0" },
      progress: { type: "boolean", short: "p" },
    },
    args: [1, 1],
    run: ([device], values) => {
      if (!values.fw) throw new UsageError("--fw is required");
      const xfer = int(values, "xfer", { min: 4 });
      const offset = int(values, "offset");
      const image = new Uint8Array(readFileSync(String(values.fw)));
      return withDev(device, async (dev) => {
        await downloadFirmware(dev, image, {
          chunkBytes: xfer < 0 ? undefined : xfer,
          offset,
          onProgress: (sent, total) =>
            progress(`Firmware download: transferring 0x${sent.toString(16).padStart(8, "0")}/0x${
              total.toString(16).padStart(8, "0")
            } bytes: ${String(Math.floor((100 * sent) / total)).padStart(3, "0")}%`),
        });
        progress(null);
        out("Firmware download success");
        return 0;
      });
    },
  },
  "fw-commit": {
    summary: "Commit a downloaded firmware image to a slot and/or activate a slot",
    usage: "fw-commit <device> --action <0-3,6,7> [--slot <0-7>] [--bpid <0|1>]",
    options: {
      slot: { type: "string", short: "s", default: "0" },
      action: { type: "string", short: "a" },
      bpid: { type: "string", short: "b", default: "0" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const action = int(values, "action", { required: true, max: 7 });
      const slot = int(values, "slot", { max: 7 });
      const bpid = int(values, "bpid", { max: 1 });
      return withDev(device, async (dev) => {
        const r = await commitFirmware(dev, { slot, action, bpid });
        out(`Success committing firmware action:${action} slot:${slot}` +
          (r.resetRequired === "none" ? "" : `, activation needs a ${r.resetRequired} reset`));
        return 0;
      });
    },
  },
  "sanitize": {
    summary: "Start a sanitize operation (block erase, crypto erase, overwrite) or exit failure mode",
    usage:
      "sanitize <device> --sanact <exit-failure|start-block-erase|start-overwrite|start-crypto-erase|1-4> [--ause] [--owpass <1-16>] [--oipbp] [--ovrpat <pattern>] [--no-dealloc] [--wait]",
    options: {
      "no-dealloc": { type: "boolean", short: "d" },
      oipbp: { type: "boolean", short: "i" },
      owpass: { type: "string", short: "n" },
      ause: { type: "boolean", short: "u" },
      sanact: { type: "string", short: "a" },
      ovrpat: { type: "string", short: "p" },
      wait: { type: "boolean", short: "w" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const names: Record<string, SanitizeKind> = {
        "1": "exit-failure",
        "exit-failure": "exit-failure",
        "2": "block-erase",
        "start-block-erase": "block-erase",
        "3": "overwrite",
        "start-overwrite": "overwrite",
        "4": "crypto-erase",
        "start-crypto-erase": "crypto-erase",
      };
      const kind = names[String(values.sanact ?? "")];
      if (!kind) throw new UsageError(`--sanact must be one of ${Object.keys(names).join(", ")}`);
      const owpass = int(values, "owpass", { min: 1, max: 16 });
      const ovrpat = int(values, "ovrpat", { max: 0xffffffff });
      return withDev(device, async (dev) => {
        await sanitize(dev, kind, {
          allowUnrestrictedExit: !!values.ause,
          passes: owpass < 0 ? undefined : owpass,
          pattern: ovrpat < 0 ? undefined : ovrpat,
          invert: values.oipbp ? true : undefined,
          noDeallocate: !!values["no-dealloc"],
        });
        if (values.wait) {
          await waitSanitize(dev, { onProgress: (p) => progress(`sanitize: ${(p.fraction * 100).toFixed(1)}%`) });
          progress(null);
        }
        out("Sanitize " + (values.wait ? "completed" : "started"));
        return 0;
      });
    },
  },
  "dsm": {
    summary: "Send Dataset Management (e.g. deallocate) for a list of ranges",
    usage:
      "dsm <device> --namespace-id <nsid> --slbs <lba,...> --blocks <count,...> [--ad] [--idw] [--idr] [--ctx-attrs <a,...>]",
    options: {
      "namespace-id": { type: "string", short: "n" },
      "ctx-attrs": { type: "string", short: "a" },
      blocks: { type: "string", short: "b" },
      slbs: { type: "string", short: "s" },
      ad: { type: "boolean", short: "d" },
      idw: { type: "boolean", short: "w" },
      idr: { type: "boolean", short: "r" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const slbs = intList(values, "slbs");
      const blocks = intList(values, "blocks", 0xffffffff);
      if (slbs.length === 0 || slbs.length !== blocks.length) {
        throw new UsageError("--slbs and --blocks must list the same number of ranges");
      }
      if (!values.ad && !values.idw && !values.idr) throw new UsageError("give at least one of --ad, --idw, --idr");
      return withDev(device, async (dev) => {
        const ns = dev.ns(nsid(values, dev));
        await ns.dsm(slbs.map((lba, i) => ({ lba, blocks: blocks[i] })), {
          deallocate: !!values.ad,
          idw: !!values.idw,
          idr: !!values.idr,
        });
        out(`NVMe DSM: success`);
        return 0;
      });
    },
  },
  "write-zeroes": {
    summary: "Send Write Zeroes for a block range",
    usage: "write-zeroes <device> --namespace-id <nsid> --start-block <slba> --block-count <nlb, 0-based> [--deac] [--force-unit-access]",
    options: {
      "namespace-id": { type: "string", short: "n" },
      "start-block": { type: "string", short: "s", default: "0" },
      "block-count": { type: "string", short: "c", default: "0" },
      deac: { type: "boolean", short: "d" },
      "force-unit-access": { type: "boolean", short: "f" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const slba = int(values, "start-block");
      const nlb = int(values, "block-count", { max: 0xffff }) + 1;
      return withDev(device, async (dev) => {
        await dev.ns(nsid(values, dev)).writeZeroes(slba, nlb, { deallocate: !!values.deac, fua: !!values["force-unit-access"] });
        out("NVME Write Zeroes Success");
        return 0;
      });
    },
  },
  "verify": {
    summary: "Send Verify for a block range",
    usage:
      "verify <device> --namespace-id <nsid> --start-block <slba> --block-count <nlb, 0-based> [--prinfo <0-15>] [--ref-tag <n>] [--app-tag <n>] [--app-tag-mask <n>]",
    options: {
      "namespace-id": { type: "string", short: "n" },
      "start-block": { type: "string", short: "s", default: "0" },
      "block-count": { type: "string", short: "c", default: "0" },
      ...piOptions(false),
    },
    args: [1, 1],
    run: ([device], values) => {
      const slba = int(values, "start-block");
      const nlb = int(values, "block-count", { max: 0xffff }) + 1;
      const pio = piValues(values);
      return withDev(device, async (dev) => {
        await dev.ns(nsid(values, dev)).verify(slba, nlb, pio);
        out("NVME Verify Success");
        return 0;
      });
    },
  },
  "compare": {
    summary: "Compare blocks with data from a file (or stdin)",
    usage:
      "compare <device> --namespace-id <nsid> --start-block <slba> --block-count <nlb, 0-based> --data-size <bytes> [--data <file>] [--metadata-size <bytes>] [--metadata <file>] [--prinfo <0-15>] [--ref-tag <n>] [--app-tag <n>] [--app-tag-mask <n>]",
    options: ioOptions,
    args: [1, 1],
    run: ([device], values) => io("compare", device, values),
  },
  "copy": {
    summary: "Copy block ranges to a destination block (Copy command)",
    usage: "copy <device> --namespace-id <nsid> --sdlba <dest lba> --slbs <lba,...> --blocks <nlb 0-based,...>",
    options: {
      "namespace-id": { type: "string", short: "n" },
      sdlba: { type: "string", short: "d" },
      slbs: { type: "string", short: "s" },
      blocks: { type: "string", short: "b" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const sdlba = int(values, "sdlba", { required: true });
      const slbs = intList(values, "slbs");
      const blocks = intList(values, "blocks", 0xffff);
      if (slbs.length === 0 || slbs.length !== blocks.length) {
        throw new UsageError("--slbs and --blocks must list the same number of ranges");
      }
      return withDev(device, async (dev) => {
        await dev.ns(nsid(values, dev)).copy(slbs.map((lba, i) => ({ lba, blocks: blocks[i] + 1 })), sdlba);
        out("NVMe Copy: success");
        return 0;
      });
    },
  },
  "create-ns": {
    summary: "Create a namespace (Namespace Management); attach it with attach-ns",
    usage: "create-ns <device> --nsze <blocks> [--ncap <blocks>] [--flbas <i>] [--dps <v>] [--nmic <v>] [--csi <v>]",
    options: {
      nsze: { type: "string", short: "s" },
      ncap: { type: "string", short: "c" },
      flbas: { type: "string", short: "f", default: "0" },
      dps: { type: "string", short: "d", default: "0" },
      nmic: { type: "string", short: "m", default: "0" },
      csi: { type: "string", short: "y", default: "0" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const nsze = int(values, "nsze", { required: true, min: 1 });
      const ncap = int(values, "ncap", { min: 1 });
      const flbas = int(values, "flbas", { max: 63 });
      const dps = int(values, "dps", { max: 0xff });
      const nmic = int(values, "nmic", { max: 0xff });
      const csi = int(values, "csi", { max: 0xff });
      return withDev(device, async (dev) => {
        const id = await createNamespace(dev, { nsze, ncap: ncap < 0 ? nsze : ncap, flbas, dps, nmic, csi });
        out(`create-ns: Success, created nsid:${id}`);
        return 0;
      });
    },
  },
  "delete-ns": {
    summary: "Delete a namespace (Namespace Management)",
    usage: "delete-ns <device> --namespace-id <nsid>",
    options: { "namespace-id": { type: "string", short: "n" } },
    args: [1, 1],
    run: ([device], values) => {
      const id = int(values, "namespace-id", { required: true, min: 1, max: 0xffffffff });
      return withDev(device, async (dev) => {
        await deleteNamespace(dev, id);
        out(`delete-ns: Success, deleted nsid:${id}`);
        return 0;
      });
    },
  },
  "attach-ns": nsAttachment("attach"),
  "detach-ns": nsAttachment("detach"),
  "admin-passthru": passthruCommand(true),
  "io-passthru": passthruCommand(false),
  "show-regs": {
    summary: "Reads and shows the defined NVMe controller registers",
    usage: "show-regs <device> [--human-readable] [--output-format normal|json|binary]",
    options: { ...outputFormat, "human-readable": { type: "boolean", short: "H" } },
    args: [1, 1],
    run: ([device], values) => {
      const f = format(values, ["normal", "json", "binary"]);
      return withDev(device, (dev) => {
        if (f === "binary") process.stdout.write(readRegisterBlock(dev));
        else if (f === "json") out(registersToJson(readRegisters(dev)));
        else process.stdout.write(formatRegisters(readRegisters(dev), { human: !!values["human-readable"] }));
        return Promise.resolve(0);
      });
    },
  },
  "get-log": {
    summary: "Retrieve any log page, as a hex dump (default) or raw binary",
    usage: "get-log <device> --log-id <lid> --log-len <bytes> [--namespace-id <nsid>] [--lpo <offset>] [--lsp <v>] " +
      "[--lsi <v>] [--rae] [--uuid-index <v>] [--csi <v>] [--ot] [--aen <dw0>] [--raw-binary]",
    help: "--log-len and --lpo are multiples of 4 (NUMD counts dwords); logs longer than 4096 bytes are read in pieces.",
    options: {
      "namespace-id": { type: "string", short: "n", default: "0xffffffff" },
      "log-id": { type: "string", short: "i" },
      "log-len": { type: "string", short: "l" },
      aen: { type: "string", short: "a" },
      lpo: { type: "string", short: "o", default: "0" },
      lsp: { type: "string", short: "s", default: "0" },
      lsi: { type: "string", short: "S", default: "0" },
      rae: { type: "boolean", short: "r" },
      "uuid-index": { type: "string", short: "U", default: "0" },
      "raw-binary": { type: "boolean", short: "b" },
      csi: { type: "string", short: "y", default: "0" },
      ot: { type: "boolean", short: "O" },
    },
    args: [1, 1],
    run: ([device], values) => {
      const aen = int(values, "aen", { max: 0xffffffff });
      // As nvme-cli: --aen (an event's DW0) names the log and reads 4096 bytes of it.
      const lid = aen > 0 ? (aen >>> 16) & 0xff : int(values, "log-id", { required: true, max: 0xff });
      const len = aen > 0 ? 4096 : int(values, "log-len", { required: true, min: 1, max: 0xffffffff });
      if (len % 4 !== 0) throw new UsageError(`invalid --log-len: ${len} (a multiple of 4: the command counts dwords)`);
      const ns = int(values, "namespace-id", { max: 0xffffffff });
      const lpo = int(values, "lpo");
      const ot = !!values.ot;
      if (!ot && lpo % 4 !== 0) throw new UsageError(`invalid --lpo: ${lpo} (a multiple of 4)`);
      const opts = {
        nsid: ns,
        offset: lpo,
        lsp: int(values, "lsp", { max: 0x7f }),
        lsi: int(values, "lsi", { max: 0xffff }),
        rae: !!values.rae,
        uuidIndex: int(values, "uuid-index", { max: 0x7f }),
        csi: int(values, "csi", { max: 0xff }),
        ot,
      };
      return withDev(device, async (dev) => {
        // One command for the whole log, as nvme-cli sends it (pieces only past the transfer limit).
        const pieceBytes = Math.max(4, Math.min(len, dev.controller.maxTransferBytes) & ~3);
        const log = await getLogPage(dev, lid, len, { ...opts, pieceBytes });
        if (values["raw-binary"]) process.stdout.write(log);
        else process.stdout.write(`Device:${device} log-id:${lid} namespace-id:${ns ? "0x" + ns.toString(16) : "0"}\n` + hexDump(log));
        return 0;
      });
    },
  },
  "flush": {
    summary: "Submit a flush command (namespace 0xffffffff: all namespaces, where the controller allows it)",
    usage: "flush <device> [--namespace-id <nsid>]",
    options: { "namespace-id": { type: "string", short: "n" } },
    args: [1, 1],
    run: ([device], values) => {
      int(values, "namespace-id", { max: 0xffffffff }); // a bad number is a usage error before the device opens
      return withDev(device, async (dev) => {
        const id = nsid(values, dev);
        if (id === 0xffffffff) {
          const r = await ioPassthru(dev, { opcode: IoOpc.FLUSH, nsid: id });
          if (r.status) {
            process.stderr.write(nvmeCliStatusLine(r.status) + "\n");
            return 1;
          }
        } else {
          await dev.ns(id).flush();
        }
        out("NVMe Flush: success");
        return 0;
      });
    },
  },
  "reset": {
    summary: "Resets the controller (CC.EN 1 to 0 to 1) and brings its queues back",
    usage: "reset <device>",
    options: {},
    args: [1, 1],
    run: ([device]) =>
      withDev(device, async (dev) => {
        await dev.controller.reset();
        return 0;
      }),
  },
  "subsystem-reset": {
    summary: "Resets the NVM subsystem (NSSR), where CAP.NSSRS says the controller supports it",
    usage: "subsystem-reset <device>",
    options: {},
    args: [1, 1],
    run: ([device]) =>
      withDev(device, async (dev) => {
        if (!dev.controller.cap.nssrs) {
          process.stderr.write("Subsystem-reset: NVM Subsystem Reset not supported.\n");
          return 1;
        }
        await dev.controller.subsystemReset();
        return 0;
      }),
  },
  "read": {
    summary: "Read blocks into a file (or stdout)",
    usage:
      "read <device> --namespace-id <nsid> --start-block <slba> --block-count <nlb, 0-based> --data-size <bytes> [--data <file>] [--metadata-size <bytes>] [--metadata <file>] [--prinfo <0-15>] [--ref-tag <n>] [--app-tag <n>] [--app-tag-mask <n>]",
    options: ioOptions,
    args: [1, 1],
    run: ([device], values) => io("read", device, values),
  },
  "write": {
    summary: "Write blocks from a file (or stdin)",
    usage:
      "write <device> --namespace-id <nsid> --start-block <slba> --block-count <nlb, 0-based> --data-size <bytes> [--data <file>] [--metadata-size <bytes>] [--metadata <file>] [--prinfo <0-15>] [--ref-tag <n>] [--app-tag <n>] [--app-tag-mask <n>]",
    options: ioOptions,
    args: [1, 1],
    run: ([device], values) => io("write", device, values),
  },
  ...fabricsCommands,
  ...virtCommands(withDev),
};

// nvme-cli's zns and fdp plugins, as "zns <name>" and "fdp <name>" (lib/cli/groups.ts dispatches them).
Object.assign(commands, znsCommands({ withDev, nsid }), fdpCommands({ withDev, nsid }));

/** Fabrics options every device command takes for a tcp:// device (long only: nvme-cli has none there). */
const deviceFabricsOptions: Options = {
  hostnqn: { type: "string" },
  hostid: { type: "string" },
  "hdr-digest": { type: "boolean" },
  "data-digest": { type: "boolean" },
};

/** PCIe data pointer and doorbell choices (long only: nvme-cli has none; the kernel decides there). */
const devicePcieOptions: Options = {
  sgl: { type: "boolean" },
  prp: { type: "boolean" },
  "no-dbbuf": { type: "boolean" },
};

// Every command that opens a device takes --verbose (print each command it sends) and, for
// tcp:// devices, the host identity and digests.
for (const c of Object.values(commands)) {
  if (c.args[0] < 1) continue;
  const taken = new Set(Object.values(c.options).map((o) => o.short));
  // A command with its own --verbose (zns report-zones: verbose output) keeps it; the others trace commands with it.
  const ownVerbose = "verbose" in c.options;
  c.options = { ...c.options, ...deviceFabricsOptions, ...devicePcieOptions, verbose: c.options.verbose ?? { type: "boolean", ...(taken.has("v") ? {} : { short: "v" }) } };
  const run = c.run;
  c.run = async (pos, values) => {
    verbose = !!values.verbose && !ownVerbose;
    const fabric = ["hostnqn", "hostid", "hdr-digest", "data-digest"].filter((k) => values[k] !== undefined);
    if (fabric.length && !isTcpTarget(pos[0] ?? "")) throw new UsageError(`--${fabric[0]} applies to tcp:// devices only`);
    // Resolved here so a bad --hostnqn/--hostid is a usage error (exit 2) before any connection.
    if (isTcpTarget(pos[0] ?? "")) {
      usageOnBadArg(() => parseTcpTarget(pos[0]));
      const h = fabricsHost(values);
      fabricOpen = { hostnqn: h.hostnqn, hostid: h.hostidText, digests: h.digests };
    }
    if (values.sgl && values.prp) throw new UsageError("--sgl and --prp exclude each other");
    const dataPointer = values.sgl ? "sgl" as const : values.prp ? "prp" as const : undefined;
    pcieOpen = { pcie: { ...(dataPointer ? { dataPointer } : {}), ...(values["no-dbbuf"] ? { shadowDoorbells: false } : {}) } };
    try {
      return await run(pos, values);
    } finally {
      verbose = false;
      fabricOpen = {};
      pcieOpen = {};
    }
  };
}

// ublk add|list|del (lib/cli/ublk.ts): takes a PCI address with an optional namespace, not a device argument.
commands.ublk = ublkCommand;

/** The nvme command line: nvme-cli's subcommands over tsnvme. */
const cli: Cli = {
  prog: "nvme.ts",
  commands,
  header: "<device> is a PCI address (0000:01:00.0), sim: (the software controller) or tcp://HOST[:PORT]/SUBNQN " +
    "(NVMe/TCP; see discover, connect-all). On PCIe every device command takes --sgl or --prp (how IO data is\n" +
    "described; default SGLs when offered) and --no-dbbuf (no shadow doorbells).\n\nThe following are all implemented sub-commands:",
  onError(name, e) {
    if (e instanceof NvmeStatusError) {
      process.stderr.write(nvmeCliStatusLine(encodeStatus(e.status)) + "\n");
      return 1;
    }
    if (e instanceof NvmeError) {
      process.stderr.write(`${name}: ${e.message}\n`);
      return 1;
    }
    return undefined;
  },
};

/** Run the CLI with `argv` (without the runtime and script). Returns the exit status. */
export function main(argv: string[]): Promise<number> {
  // nvme-cli 3.0's grouped names and the plugins' "<group> <name>" commands.
  const r = resolveGroup(cli, argv);
  if (!Array.isArray(r)) {
    (r.ok ? process.stdout : process.stderr).write(r.usage);
    return Promise.resolve(r.ok ? 0 : 2);
  }
  return runCli(cli, r);
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
