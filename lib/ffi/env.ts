/**
 * Environment variables for A/B switches and tracing, read the same way on
 * every runtime the driver runs on.
 * @module
 */

/** An environment variable, or undefined where the runtime gives no access (Deno without --allow-env). */
export function envOf(name: string): string | undefined {
  try {
    return (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env[name];
  } catch {
    return undefined;
  }
}

/**
 * A positive integer from the environment (at most `max`), or `dflt` when it
 * is unset, unreadable or anything else: the driver's A/B knobs read once.
 */
export function envCount(name: string, dflt: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = Number(envOf(name));
  return Number.isInteger(v) && v > 0 && v <= max ? v : dflt;
}
