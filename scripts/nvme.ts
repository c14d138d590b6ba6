/**
 * nvme-cli-like command line for tsnvme. Same subcommand and long option names
 * as nvme-cli, with a PCI address where nvme-cli takes /dev/nvmeX.
 *
 *   deno run -A scripts/nvme.ts id-ctrl 0000:01:00.0 --output-format json
 *   bun scripts/nvme.ts read 0000:01:00.0 -n 1 -s 0 -c 7 -z 4096 -d out.bin
 * @module
 */
import process from "node:process";
import { readFileSync, writeFileSync } from "node:fs";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { formatIdCtrl, formatIdNs, idCtrlToJson, idNsToJson } from "../lib/admin/identify.ts";
import { NVMeDev } from "../lib/dev.ts";
import { NvmeError, NvmeStatusError } from "../lib/nvme/errors.ts";
import { listNvmeControllers } from "../lib/vfio/sysfs.ts";

type Options = NonNullable<ParseArgsConfig["options"]>;
type Values = Record<string, string | boolean | undefined>;

/** A subcommand: its options, usage text and body. */
interface Command {
  summary: string;
  usage: string;
  options: Options;
  /** Positional arguments required (the device address for most). */
  device: boolean;
  run(args: { device: string; values: Values }): Promise<number>;
}

class UsageError extends Error {}

const outputFormat: Options = {
  "output-format": { type: "string", short: "o", default: "normal" },
};

function fmt(values: Values): "normal" | "json" {
  const f = String(values["output-format"]);
  if (f !== "normal" && f !== "json") throw new UsageError(`invalid output format: ${f} (normal|json)`);
  return f;
}

function int(values: Values, name: string, { required = false, min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
  const v = values[name];
  if (v === undefined) {
    if (required) throw new UsageError(`--${name} is required`);
    return -1;
  }
  const s = String(v).trim();
  const n = /^0x[0-9a-f]+$/i.test(s) ? parseInt(s, 16) : /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`invalid --${name}: ${s}`);
  return n;
}

async function withDev<T>(device: string, f: (dev: NVMeDev) => Promise<T>): Promise<T> {
  const dev = await NVMeDev.open(device);
  try {
    return await f(dev);
  } finally {
    await dev.close();
  }
}

function nsid(values: Values, dev: NVMeDev): number {
  const n = int(values, "namespace-id", { max: 0xffffffff });
  if (n >= 0) return n;
  const list = dev.nsList();
  if (list.length === 0) throw new UsageError("no active namespace: give --namespace-id");
  return list[0];
}

const ioOptions: Options = {
  "namespace-id": { type: "string", short: "n" },
  "start-block": { type: "string", short: "s", default: "0" },
  "block-count": { type: "string", short: "c", default: "0" },
  "data-size": { type: "string", short: "z" },
  "data": { type: "string", short: "d" },
};

async function io(kind: "read" | "write", device: string, values: Values): Promise<number> {
  const slba = int(values, "start-block");
  const nlb = int(values, "block-count", { max: 0xffff }) + 1;
  const dataSize = int(values, "data-size", { required: true, min: 1 });
  return await withDev(device, async (dev) => {
    const ns = dev.ns(nsid(values, dev));
    const bytes = nlb * ns.blockSize;
    if (dataSize < bytes) {
      throw new UsageError(`--data-size ${dataSize} is smaller than ${nlb} blocks of ${ns.blockSize} bytes (${bytes})`);
    }
    const buf = dev.allocBuffer(bytes);
    const file = values["data"] as string | undefined;
    if (kind === "write") {
      const src = file ? readFileSync(file) : readFileSync(0);
      buf.set(src.subarray(0, Math.min(src.length, bytes)));
      await ns.write(slba, buf);
    } else {
      await ns.read(slba, buf);
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

const commands: Record<string, Command> = {
  "list": {
    summary: "List NVMe controllers (PCI functions of class 0x010802)",
    usage: "list [--output-format normal|json]",
    options: outputFormat,
    device: false,
    run({ values }) {
      const ctrls = listNvmeControllers();
      if (fmt(values) === "json") {
        const devices = ctrls.map((c) => ({
          Address: c.address,
          Driver: c.driver ?? "",
          VendorId: c.vendor,
          DeviceId: c.device,
          IommuGroup: c.iommuGroup,
        }));
        process.stdout.write(JSON.stringify({ Devices: devices }, null, 2) + "\n");
      } else {
        const rows = [["Address", "Vendor:Device", "Driver", "IOMMU group"]];
        for (const c of ctrls) {
          rows.push([
            c.address,
            `${c.vendor.toString(16).padStart(4, "0")}:${c.device.toString(16).padStart(4, "0")}`,
            c.driver ?? "(none)",
            c.iommuGroup === null ? "(none)" : String(c.iommuGroup),
          ]);
        }
        const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
        for (const [i, r] of rows.entries()) {
          process.stdout.write(r.map((c, j) => c.padEnd(w[j])).join("  ").trimEnd() + "\n");
          if (i === 0) process.stdout.write(w.map((n) => "-".repeat(n)).join("  ") + "\n");
        }
      }
      return Promise.resolve(0);
    },
  },
  "id-ctrl": {
    summary: "Send Identify Controller and show the result",
    usage: "id-ctrl <pci-address> [--output-format normal|json]",
    options: outputFormat,
    device: true,
    run: ({ device, values }) =>
      withDev(device, (dev) => {
        const f = fmt(values);
        process.stdout.write(f === "json" ? idCtrlToJson(dev.idCtrl) + "\n" : formatIdCtrl(dev.idCtrl));
        return Promise.resolve(0);
      }),
  },
  "id-ns": {
    summary: "Send Identify Namespace and show the result",
    usage: "id-ns <pci-address> --namespace-id <nsid> [--output-format normal|json]",
    options: { ...outputFormat, "namespace-id": { type: "string", short: "n" } },
    device: true,
    run: ({ device, values }) =>
      withDev(device, (dev) => {
        const f = fmt(values);
        const id = nsid(values, dev);
        const n = dev.idNs(id);
        process.stdout.write(f === "json" ? idNsToJson(n) + "\n" : formatIdNs(n, id));
        return Promise.resolve(0);
      }),
  },
  "read": {
    summary: "Read blocks into a file (or stdout)",
    usage:
      "read <pci-address> --namespace-id <nsid> --start-block <slba> --block-count <nlb, 0-based> --data-size <bytes> [--data <file>]",
    options: ioOptions,
    device: true,
    run: ({ device, values }) => io("read", device, values),
  },
  "write": {
    summary: "Write blocks from a file (or stdin)",
    usage:
      "write <pci-address> --namespace-id <nsid> --start-block <slba> --block-count <nlb, 0-based> --data-size <bytes> [--data <file>]",
    options: ioOptions,
    device: true,
    run: ({ device, values }) => io("write", device, values),
  },
};

function mainUsage(): string {
  const w = Math.max(...Object.keys(commands).map((k) => k.length));
  return "usage: nvme.ts <command> [<device>] [<args>]\n\nThe following are all implemented sub-commands:\n" +
    Object.entries(commands).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`).join("\n") +
    "\n\nSee 'nvme.ts <command> --help' for more information on a specific command\n";
}

/** Run the CLI with `argv` (without the runtime and script). Returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(mainUsage());
    return name ? 0 : 2;
  }
  const cmd = commands[name];
  if (!cmd) {
    process.stderr.write(`unknown command: ${name}\n${mainUsage()}`);
    return 2;
  }
  let values: Values, positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...cmd.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] });
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\nusage: nvme.ts ${cmd.usage}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`usage: nvme.ts ${cmd.usage}\n\n${cmd.summary}\n`);
    return 0;
  }
  if (positionals.length !== (cmd.device ? 1 : 0)) {
    process.stderr.write(`usage: nvme.ts ${cmd.usage}\n`);
    return 2;
  }
  try {
    return await cmd.run({ device: positionals[0], values });
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\nusage: nvme.ts ${cmd.usage}\n`);
      return 2;
    }
    if (e instanceof NvmeStatusError) {
      process.stderr.write(`NVMe status: ${e.status.name} (0x${((e.status.dnr ? 0x4000 : 0) | e.status.code).toString(16)})\n`);
      return 1;
    }
    if (e instanceof NvmeError) {
      process.stderr.write(`${name}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) {
  process.exitCode = await main(process.argv.slice(2));
}
