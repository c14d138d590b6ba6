import assert from "node:assert/strict";

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
