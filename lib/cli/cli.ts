/**
 * What the command line tools (nvme, setup) share: subcommand dispatch with
 * node:util parseArgs, usage listings, number options as nvme-cli takes them,
 * and a plain-text table. One place, so both tools fail bad input the same way
 * (exit status 2 with a short usage on stderr).
 * @module
 */
import process from "node:process";
import { parseArgs, type ParseArgsConfig } from "node:util";
import type { NvmeController } from "../vfio/sysfs.ts";

/** Option definitions in node:util parseArgs form. */
export type Options = NonNullable<ParseArgsConfig["options"]>;
/** Parsed option values. */
export type Values = Record<string, string | boolean | undefined>;

/** A bad command line: the dispatcher prints the message and the command's usage, exit status 2. */
export class UsageError extends Error {}

/** A subcommand. */
export interface Command {
  /** One line for the main listing. */
  summary: string;
  /** Arguments and options after the command name. */
  usage: string;
  /** More text for `--help` (after the summary). */
  help?: string;
  /** Options it takes (`--help` is added). */
  options: Options;
  /** Positional arguments allowed: [min, max]. */
  args: [number, number];
  /** Do it; resolves to the exit status. */
  run(positionals: string[], values: Values): Promise<number>;
}

/** A tool: its name in usage lines and its subcommands. */
export interface Cli {
  /** Name in usage lines, e.g. "nvme.ts". */
  prog: string;
  /** Subcommands by name. */
  commands: Record<string, Command>;
  /** Text between the usage line and the command list. */
  header?: string;
  /**
   * Turn an error thrown by a command into an exit status (after printing it),
   * or return undefined to let it propagate.
   */
  onError?(name: string, e: unknown): number | undefined;
}

/** Write to stdout, adding a final newline when missing. */
export function out(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : text + "\n");
}

/** The listing `<prog> --help` prints. */
export function mainUsage(cli: Cli): string {
  const w = Math.max(...Object.keys(cli.commands).map((k) => k.length));
  return `usage: ${cli.prog} <command> [<device>] [<args>]\n\n${cli.header ?? "The following are all implemented sub-commands:"}\n` +
    Object.entries(cli.commands).map(([k, c]) => `  ${k.padEnd(w)}  ${c.summary}`).join("\n") +
    `\n\nSee '${cli.prog} <command> --help' for more information on a specific command\n`;
}

/** Run `argv` (without the runtime and script) through `cli`; resolves to the exit status. */
export async function runCli(cli: Cli, argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "help" || name === "--help" || name === "-h") {
    (name ? process.stdout : process.stderr).write(mainUsage(cli));
    return name ? 0 : 2;
  }
  const cmd = Object.hasOwn(cli.commands, name) ? cli.commands[name] : undefined;
  if (!cmd) {
    process.stderr.write(`${cli.prog}: unknown command: ${name}\n${mainUsage(cli)}`);
    return 2;
  }
  const usage = `usage: ${cli.prog} ${cmd.usage}\n`;
  let values: Values, positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: rest,
      options: { ...cmd.options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    }) as { values: Values; positionals: string[] });
  } catch (e) {
    process.stderr.write(`${cli.prog} ${name}: ${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${usage}\n${cmd.summary}\n${cmd.help ? cmd.help + "\n" : ""}`);
    return 0;
  }
  const [min, max] = cmd.args;
  if (positionals.length < min || positionals.length > max) {
    process.stderr.write(`${cli.prog} ${name}: ${positionals.length < min ? "missing argument" : "too many arguments"}\n${usage}`);
    return 2;
  }
  try {
    return await cmd.run(positionals, values);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${cli.prog} ${name}: ${e.message}\n${usage}`);
      return 2;
    }
    const code = cli.onError?.(name, e);
    if (code !== undefined) return code;
    throw e;
  }
}

/** The `--output-format` option (normal by default). */
export const outputFormat: Options = {
  "output-format": { type: "string", short: "o", default: "normal" },
};

/** The chosen `--output-format`, one of `allowed` (UsageError otherwise). */
export function format<T extends string = "normal" | "json">(values: Values, allowed: readonly T[] = ["normal", "json"] as T[]): T {
  const f = String(values["output-format"]) as T;
  if (!allowed.includes(f)) throw new UsageError(`invalid output format: ${f} (${allowed.join("|")})`);
  return f;
}

/** A number as nvme-cli's option parser takes it: decimal or 0x hex. NaN when it is neither. */
export function parseNumber(s: string): number {
  const t = s.trim();
  return /^0x[0-9a-f]+$/i.test(t) ? parseInt(t, 16) : /^\d+$/.test(t) ? Number(t) : NaN;
}

/**
 * Integer option `name` within [min, max]; -1 when absent and not required.
 * Anything else is a UsageError naming the option.
 */
export function intOpt(values: Values, name: string, { required = false, min = 0, max = Number.MAX_SAFE_INTEGER } = {}): number {
  const v = values[name];
  if (v === undefined) {
    if (required) throw new UsageError(`--${name} is required`);
    return -1;
  }
  const n = parseNumber(String(v));
  if (!Number.isSafeInteger(n) || n < min || n > max) throw new UsageError(`invalid --${name}: ${String(v).trim()}`);
  return n;
}

/** A comma-separated list of integers (nvme-cli's OPT_LIST); [] when absent. */
export function intList(values: Values, name: string, max = Number.MAX_SAFE_INTEGER): number[] {
  const v = values[name];
  if (v === undefined || v === "") return [];
  return String(v).split(",").map((p) => {
    const n = parseNumber(p);
    if (!Number.isSafeInteger(n) || n > max) throw new UsageError(`invalid --${name}: ${String(v)}`);
    return n;
  });
}

/**
 * The controller table both tools print, header first: address,
 * vendor:device, driver, IOMMU group, and with `kernel` the /dev name and
 * model of those the kernel owns.
 */
export function controllerTable(ctrls: readonly NvmeController[], kernel = false): string[][] {
  const hex = (n: number) => n.toString(16).padStart(4, "0");
  const table = [["Address", "Vendor:Device", "Driver", "IOMMU group", ...(kernel ? ["Kernel device"] : [])]];
  for (const c of ctrls) {
    const row = [
      c.address,
      `${hex(c.vendor)}:${hex(c.device)}`,
      c.driver ?? "(none)",
      c.iommuGroup === null ? "(none)" : String(c.iommuGroup),
    ];
    if (kernel) row.push(c.kernel ? `/dev/${c.kernel.name}${c.kernel.model ? `  ${c.kernel.model}` : ""}` : "");
    table.push(row);
  }
  return table;
}

/** Rows as aligned columns (two spaces apart); with `rule`, a dashed line under the first row. */
export function formatTable(rows: string[][], { rule = false } = {}): string {
  if (rows.length === 0) return "";
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  let s = "";
  for (const [i, r] of rows.entries()) {
    s += r.map((c, j) => c.padEnd(w[j])).join("  ").trimEnd() + "\n";
    if (i === 0 && rule) s += w.map((n) => "-".repeat(n)).join("  ") + "\n";
  }
  return s;
}
