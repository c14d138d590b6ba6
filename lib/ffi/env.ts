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
