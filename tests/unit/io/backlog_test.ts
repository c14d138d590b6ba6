import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { SubmitBacklog } from "../../../lib/io/backlog.ts";

test("submit backlog: submissions without a slot wait in order; a throw, now or on drain, goes to its fail once", () => {
  const b = new SubmitBacklog();
  let slots = 1;
  const ran: string[] = [], failed: string[] = [];
  const go = (name: string, boom = false) => () => {
    if (boom && slots > 0) throw new Error(name);
    if (slots === 0) return false;
    slots--;
    ran.push(name);
    return true;
  };
  const fail = (name: string) => (e: unknown) => {
    failed.push(`${name}:${(e as Error).message}`);
    b.drain(); // a completion callback drains again: the failed entry must already be gone
  };
  b.submit(go("a"), fail("a"));
  b.submit(go("b"), fail("b"));
  b.submit(go("c", true), fail("c"));
  b.submit(go("d"), fail("d"));
  assert.deepEqual(ran, ["a"]);
  assert.equal(b.length, 3);
  slots = 2;
  b.drain(); // b runs, c throws (fails once), d runs
  assert.deepEqual(ran, ["a", "b", "d"]);
  assert.deepEqual(failed, ["c:c"]);
  assert.equal(b.length, 0);
  slots = 1;
  b.submit(go("e", true), fail("e")); // nothing waits: runs now, and its throw goes to fail
  assert.deepEqual(failed, ["c:c", "e:e"]);
  assert.equal(b.length, 0);
});
