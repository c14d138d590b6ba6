import assert from "node:assert/strict";
import { MemMedia } from "../../../lib/sim/media.ts";
import { type CommandHook, type FabricsController, MediaBackend } from "../../../lib/target/mod.ts";

/** Wait (up to `ms`, 5 s by default) for a condition the event loop will make true. */
export async function until(cond: () => boolean, what = "condition", ms = 5000): Promise<void> {
  for (let i = 0; i < ms / 10 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `${what} never became true`);
}

/** A command as a target sees it, for wire-order checks: "q0 fabrics 4 @1c" (Property Get CSTS), "q0 6" (Identify). */
export function wireLabel(qid: number, s: Uint32Array): string {
  const opc = s[0] & 0xff;
  return opc === 0x7f ? `q${qid} fabrics ${s[1] & 0xff}${(s[1] & 0xff) !== 1 ? ` @${s[11].toString(16)}` : ""}` : `q${qid} ${opc.toString(16)}`;
}

/** Linux's admin bring-up on the wire: Connect, CAP, CC, CC, CAP, CC|EN, CSTS, VS, Identify, Set Features 7. */
export const LINUX_BRING_UP: readonly string[] = [
  "q-1 fabrics 1",
  "q0 fabrics 4 @0",
  "q0 fabrics 0 @14",
  "q0 fabrics 4 @14",
  "q0 fabrics 4 @0",
  "q0 fabrics 0 @14",
  "q0 fabrics 4 @1c",
  "q0 fabrics 4 @8",
  "q0 6",
  "q0 9",
];

/** Memory namespaces for a target, one per [bytes, block size]. */
export function memNamespaces(...ns: [number, number][]): MediaBackend[] {
  return ns.map(([bytes, bs]) => new MediaBackend(new MemMedia(bytes), bs));
}

/**
 * Every controller a target made, by cntlid, seen through its command hook
 * (the target's own map holds live controllers only; a test looks at one after
 * its host went). `hook`, if given, runs after and its fault applies.
 */
export function recordControllers(hook?: CommandHook): { onCommand: CommandHook; controllers: Map<number, FabricsController> } {
  const controllers = new Map<number, FabricsController>();
  return {
    controllers,
    onCommand: (qid, sqe, conn) => {
      if (conn.ctrl !== null) controllers.set(conn.ctrl.cntlid, conn.ctrl);
      return hook?.(qid, sqe, conn);
    },
  };
}
