/**
 * Command groups on the command line: the plugins (`nvme zns report-zones`,
 * `nvme fdp configs`), registered as commands named "<group> <name>", and
 * nvme-cli 3.0's grouped names for the 2.x commands (`nvme id ctrl` for
 * `nvme id-ctrl`, `nvme log smart` for `nvme smart-log`, ...), which run the
 * 2.x command unchanged (same options, same output, same JSON). 2.x names
 * stay the primary ones.
 * @module
 */
import type { Cli } from "./cli.ts";

/**
 * nvme-cli 3.0's grouped names of 2.x commands (nvme-cli's plugins/id,
 * log, ns and fw command tables and its NEWS), as group → name → 2.x name.
 * Only those whose 2.x command exists here are offered.
 */
export const NVME_CLI_3_GROUPS: Readonly<Record<string, Readonly<Record<string, string>>>> = {
  id: {
    ctrl: "id-ctrl",
    ns: "id-ns",
    "ns-list": "list-ns",
    "ctrl-list": "list-ctrl",
    "ns-descs": "ns-descs",
    "primary-ctrl-caps": "primary-ctrl-caps",
    "secondary-ctrl-list": "list-secondary",
    "nvm-ctrl": "nvm-id-ctrl",
    "nvm-ns": "nvm-id-ns",
    "ns-ind": "cmdset-ind-id-ns",
    iocs: "id-iocs",
  },
  log: {
    smart: "smart-log",
    error: "error-log",
    fw: "fw-log",
    effects: "effects-log",
    "self-test": "self-test-log",
    sanitize: "sanitize-log",
    "changed-ns-list": "changed-ns-list-log",
    telemetry: "telemetry-log",
    ana: "ana-log",
    endurance: "endurance-log",
    "supported-pages": "supported-log-pages",
  },
  ns: {
    create: "create-ns",
    delete: "delete-ns",
    attach: "attach-ns",
    detach: "detach-ns",
    "get-id": "get-ns-id",
  },
  fw: {
    download: "fw-download",
    commit: "fw-commit",
  },
};

/** The groups a CLI has: nvme-cli 3.0's and the "<group> <name>" commands it registers. */
function groupsOf(cli: Cli): Map<string, Map<string, string>> {
  const g = new Map<string, Map<string, string>>();
  const add = (group: string, name: string, target: string) => {
    if (!Object.hasOwn(cli.commands, target)) return;
    if (!g.has(group)) g.set(group, new Map());
    g.get(group)!.set(name, target);
  };
  for (const [group, names] of Object.entries(NVME_CLI_3_GROUPS)) for (const [n, t] of Object.entries(names)) add(group, n, t);
  for (const k of Object.keys(cli.commands)) {
    const sp = k.indexOf(" ");
    if (sp > 0) add(k.slice(0, sp), k.slice(sp + 1), k);
  }
  return g;
}

/**
 * Rewrite `argv` so a grouped command runs its command: `["id", "ctrl",
 * dev]` → `["id-ctrl", dev]`, `["zns", "report-zones", dev]` → `["zns
 * report-zones", dev]`. A group alone (or with `help`/`--help`) becomes a
 * usage string to print instead. Anything else is returned as it is.
 */
export function resolveGroup(cli: Cli, argv: string[]): string[] | { usage: string; ok: boolean } {
  const [first, second, ...rest] = argv;
  if (first === undefined || Object.hasOwn(cli.commands, first)) return argv;
  const group = groupsOf(cli).get(first);
  if (!group) return argv;
  if (second !== undefined && group.has(second)) return [group.get(second)!, ...rest];
  const w = Math.max(...[...group.keys()].map((k) => k.length));
  const usage = `usage: ${cli.prog} ${first} <command> [<device>] [<args>]\n\nThe following are all implemented sub-commands:\n` +
    [...group].map(([k, t]) => `  ${k.padEnd(w)}  ${cli.commands[t].summary}`).join("\n") +
    `\n\nSee '${cli.prog} ${first} <command> --help' for more information on a specific command\n`;
  const ok = second === "help" || second === "--help" || second === "-h";
  return { usage: second === undefined || ok ? usage : `${cli.prog} ${first}: unknown command: ${second}\n${usage}`, ok };
}
