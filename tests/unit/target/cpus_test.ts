/**
 * Pinning the target's Workers (`cpus`, `--cpus`): the CPU list's parsing and
 * validation, and each Worker's thread actually pinned (its affinity as
 * /proc/self/task shows it), the listener's thread not.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import { test } from "../../harness.ts";
import { MediaBackend, NvmfTarget, parseCpuList } from "../../../lib/target/mod.ts";
import { SharedMedia } from "../../../lib/target/shared.ts";

const NQN = "nqn.2024-01.io.tsnvme:cpus";

function target(o: { workers?: number; cpus?: number[] }): Promise<NvmfTarget> {
  return NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: [new MediaBackend(new SharedMedia(1 << 20), 512)] }], ...o });
}

/** Each thread of this process: its Cpus_allowed_list. */
function affinities(): string[] {
  const out: string[] = [];
  for (const tid of fs.readdirSync("/proc/self/task")) {
    try {
      const st = fs.readFileSync(`/proc/self/task/${tid}/status`, "utf8");
      const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(st);
      if (m) out.push(m[1]);
    } catch {
      // a thread that ended while we read
    }
  }
  return out;
}

test("target cpus: CPU lists parse as taskset's", () => {
  assert.deepEqual(parseCpuList("0"), [0]);
  assert.deepEqual(parseCpuList("3,1"), [3, 1]);
  assert.deepEqual(parseCpuList("0-2,6"), [0, 1, 2, 6]);
  assert.deepEqual(parseCpuList("1,0-1"), [1, 0]);
  assert.deepEqual(parseCpuList("1023"), [1023]);
  for (const bad of ["", "a", "1,", "-1", "2-1", "1024", "0-1024", "1.5", "0x1"]) {
    assert.throws(() => parseCpuList(bad), RangeError, bad);
  }
});

test("target cpus: invalid lists are refused before listening", async () => {
  for (const cpus of [[], [-1], [1024], [0.5], [NaN]]) {
    await assert.rejects(target({ workers: 1, cpus }), RangeError, JSON.stringify(cpus));
  }
});

const allowed = ((): number[] => {
  try {
    return parseCpuList(/^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync("/proc/self/status", "utf8"))![1]);
  } catch {
    return [];
  }
})();

test("target cpus: each Worker pins its own thread, round robin over the list", async () => {
  const cpu = allowed[allowed.length - 1];
  const one = String(cpu);
  const before = affinities().filter((a) => a === one).length;
  const t = await target({ workers: 2, cpus: [cpu] });
  try {
    assert.equal(t.workers, 2);
    const after = affinities();
    // Both Workers' threads on that CPU alone; this (the listener's) thread still everywhere.
    assert.equal(after.filter((a) => a === one).length - before, 2, JSON.stringify(after));
    const self = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync("/proc/thread-self/status", "utf8"))![1];
    assert.deepEqual(parseCpuList(self), allowed);
  } finally {
    await t.close();
  }
}, { ignore: allowed.length < 2 });
