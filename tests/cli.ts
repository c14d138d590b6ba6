/**
 * lib/cli/nvme.ts's `main` run in this process with what it prints captured: one runner for the
 * unit and guest tiers, so every CLI test sees stdout the same way.
 * @module
 */
import process from "node:process";
import { main } from "../lib/cli/nvme.ts";

/** What one in-process CLI run printed, and its exit status. */
export interface CliRun {
  /** main's return value: the process exit status. */
  code: number;
  /** stdout's text writes, in order. */
  out: string;
  /** stdout's binary writes (raw data, `-o binary`), each copied as written. */
  chunks: Uint8Array[];
  /** {@link chunks} joined. */
  bytes: Uint8Array;
  /** stdout as a terminal shows it: text and binary writes in order, binary decoded as UTF-8. */
  text: string;
  /** Every stdout write in order, for tests that need the stream exactly. */
  writes: (string | Uint8Array)[];
  /** stderr. */
  err: string;
}

/** Runs the CLI with `args` and returns what it printed; the real stdout/stderr are restored after. */
export async function runCli(args: string[]): Promise<CliRun> {
  const o = process.stdout.write, e = process.stderr.write;
  const writes: (string | Uint8Array)[] = [];
  let err = "";
  process.stdout.write = ((s: string | Uint8Array) => (writes.push(typeof s === "string" ? s : s.slice()), true)) as typeof o;
  process.stderr.write = ((s: string | Uint8Array) => (err += typeof s === "string" ? s : new TextDecoder().decode(s), true)) as typeof e;
  let code: number;
  try {
    code = await main(args);
  } finally {
    process.stdout.write = o;
    process.stderr.write = e;
  }
  const chunks = writes.filter((w): w is Uint8Array => typeof w !== "string");
  const bytes = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (bytes.set(c, at), at + c.length), 0);
  const dec = new TextDecoder();
  return {
    code,
    out: writes.filter((w) => typeof w === "string").join(""),
    chunks,
    bytes,
    text: writes.map((w) => typeof w === "string" ? w : dec.decode(w)).join(""),
    writes,
    err,
  };
}
