/**
 * Host setup and diagnosis for tsnvme: check the host, hand a controller to
 * vfio-pci and back, list controllers. Thin CLI over lib/vfio/setup.ts (binding) and ./doctor.ts.
 *
 *   deno run -A jsr:@tsnvme/tsnvme/setup doctor [ADDR] [--output-format json]
 *   sudo deno run -A jsr:@tsnvme/tsnvme/setup bind 0000:01:00.0 [--user alice]
 *   sudo deno run -A jsr:@tsnvme/tsnvme/setup unbind 0000:01:00.0
 *   bun lib/cli/setup.ts list   (from a checkout)
 * @module
 */
import process from "node:process";
import { type Cli, type Command, controllerTable, format, formatTable, outputFormat, runCli, UsageError } from "./cli.ts";
import { NvmeError } from "../nvme/errors.ts";
import { bindVfio, unbindVfio } from "../vfio/setup.ts";
import { listNvmeControllers } from "../vfio/sysfs.ts";
import { doctor, formatChecks, memlockAdvice } from "./doctor.ts";

const out = (s: string) => process.stdout.write(s);
const err = (s: string) => process.stderr.write(s);

const commands: Record<string, Command> = {
  doctor: {
    summary: "Check that this host can run tsnvme, with a fix for each problem",
    usage: "doctor [ADDR] [--output-format normal|json]",
    help: "Checks the runtime, FFI permission, IOMMU, vfio modules, /dev/vfio, the locked-memory limit,\n" +
      "interrupt remapping, and for each NVMe controller (or just ADDR) its driver, IOMMU group,\n" +
      "group viability and /dev/vfio/<group>. Exit status 0 when nothing FAILs, 1 otherwise.",
    options: outputFormat,
    args: [0, 1],
    async run(pos, values) {
      const f = format(values);
      const checks = await doctor({ address: pos[0] });
      const failed = checks.filter((c) => c.status === "FAIL").length;
      if (f === "json") out(JSON.stringify({ ok: failed === 0, checks }, null, 2) + "\n");
      else {
        out(formatChecks(checks));
        const warned = checks.filter((c) => c.status === "warn").length;
        out(failed ? `\n${failed} check${failed > 1 ? "s" : ""} failed\n` : `\nall good${warned ? ` (${warned} warning${warned > 1 ? "s" : ""})` : ""}\n`);
      }
      return failed ? 1 : 0;
    },
  },
  bind: {
    summary: "Bind an NVMe controller to vfio-pci (as root)",
    usage: "bind ADDR [--user NAME] [--force]",
    help: "Loads vfio-pci if needed, sets driver_override, unbinds the current driver and reprobes, then waits\n" +
      "for /dev/vfio/<group>. Refuses devices that are not NVMe controllers, and controllers whose\n" +
      "namespaces are mounted or in use (--force overrides that).\n" +
      "  --user NAME   give /dev/vfio/<group> to NAME so it can use the controller without root\n" +
      "  --force       bind even if the kernel's namespaces are mounted or in use",
    options: { user: { type: "string", short: "u" }, force: { type: "boolean" } },
    args: [1, 1],
    async run([addr], values) {
      const user = values.user as string | undefined;
      if (user === "") throw new UsageError("--user needs a name");
      const r = await bindVfio(addr, { user, force: values.force === true, log: (l) => out(`bind: ${l}\n`) });
      out(`${r.address} is bound to vfio-pci: ${r.groupPath}${r.owner ? `, owned by ${r.owner}` : ""}\n`);
      if (r.owner) {
        const name = r.owner.split(" ")[0];
        out(`note: the owner resets when the device is rebound or the host reboots\n`);
        out(`note: ${memlockAdvice(name)}\n`);
      }
      return 0;
    },
  },
  unbind: {
    summary: "Give an NVMe controller back to the kernel nvme driver (as root)",
    usage: "unbind ADDR",
    help: "Clears driver_override, unbinds vfio-pci and reprobes, then waits for the kernel's /dev/nvmeX.",
    options: {},
    args: [1, 1],
    async run([addr]) {
      const r = await unbindVfio(addr, { log: (l) => out(`unbind: ${l}\n`) });
      out(`${r.address} is bound to nvme${r.controller ? `: /dev/${r.controller}` : ""}\n`);
      return 0;
    },
  },
  list: {
    summary: "List NVMe controllers with their driver and IOMMU group",
    usage: "list [--output-format normal|json]",
    help: "One line per NVMe controller (PCI class 0x010802); for those the kernel owns, /dev/nvmeX and model.",
    options: outputFormat,
    args: [0, 0],
    run(_pos, values) {
      const rows = listNvmeControllers();
      if (format(values) === "json") {
        out(JSON.stringify({ controllers: rows }, null, 2) + "\n");
        return Promise.resolve(0);
      }
      if (rows.length === 0) {
        out("no NVMe controllers found\n");
        return Promise.resolve(0);
      }
      out(formatTable(controllerTable(rows, true)));
      return Promise.resolve(0);
    },
  },
};

/** The setup tool: host checks, vfio-pci binding, controller list. */
const cli: Cli = {
  prog: "setup.ts",
  commands,
  header: "Commands:",
  onError(name, e) {
    if (!(e instanceof NvmeError)) return undefined;
    err(`setup.ts ${name}: error: ${e.message}\n`);
    return e.code === "EINVAL_ARG" ? 2 : 1;
  },
};

/** Run the CLI with `argv` (without the runtime and script); returns the exit status. */
export function main(argv: string[]): Promise<number> {
  return runCli(cli, argv);
}

if (import.meta.main) {
  // Exit explicitly: an unbind that timed out leaves a kernel write pending that would keep us alive.
  const code = await main(process.argv.slice(2));
  const flush = (s: NodeJS.WriteStream) => new Promise<void>((res) => s.write("", () => res()));
  await Promise.all([flush(process.stdout), flush(process.stderr)]);
  process.exit(code);
}
