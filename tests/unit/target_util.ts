import assert from "node:assert/strict";

/** Wait (up to 5 s) for a condition the event loop will make true. */
export async function until(cond: () => boolean, what = "condition"): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), `${what} never became true`);
}
