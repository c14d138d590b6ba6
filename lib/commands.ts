/**
 * The command lines advice strings name: the published package's tools, as a
 * user of `jsr:@tsnvme/tsnvme` types them (no checkout needed).
 * @module
 */

/** The package's JSR specifier. */
export const PACKAGE = "jsr:@tsnvme/tsnvme";

/** The tools the package exports as entry points (deno.json "exports"). */
export type Tool = "cli" | "setup" | "bench";

/** e.g. `deno run -A jsr:@tsnvme/tsnvme/setup bind 0000:01:00.0`, with `sudo` for steps that need root. */
export function toolCommand(tool: Tool, args: string, { sudo = false } = {}): string {
  return `${sudo ? "sudo " : ""}deno run -A ${PACKAGE}/${tool}${args ? " " + args : ""}`;
}
