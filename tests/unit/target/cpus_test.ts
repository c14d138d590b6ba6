/**
 * Pinning the target's Workers (`cpus`, `--cpus`): the CPU list's parsing and
 * validation, each Worker's thread actually pinned (its affinity as
 * /proc/self/task shows it), the listener's thread not; and the CLI with
 * --cpus confining every thread of its process, its threads but the Workers
 * SCHED_IDLE.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { runtime, test } from "../../harness.ts";
import { MediaBackend, NvmfTarget, parseCpuList } from "../../../lib/target/mod.ts";
import { threadSched } from "../../../lib/target/spec-parse.ts";
import { SharedMedia } from "../../../lib/target/shared.ts";
import { isWorkerThreadName } from "../../../lib/ffi/mod.ts";
import { until } from "../util/target_util.ts";

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

test("target cpus: the CLI with --cpus runs every thread of its process there", async () => {
  const cpu = allowed[allowed.length - 1];
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tsnvme-cpus-"));
  const ready = path.join(dir, "ready");
  const script = new URL("../../../lib/cli/nvmf-target.ts", import.meta.url).pathname;
  const args = ["--port", "0", "--ns", "mem:1M", "--workers", "1", "--cpus", String(cpu), "--ready-file", ready, "-q"];
  const child = runtime === "bun"
    ? spawn(process.execPath, [script, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    : spawn(process.execPath, ["run", "-A", "--no-check", script, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += String(d)));
  const exited = new Promise<void>((r) => child.on("exit", () => r()));
  try {
    for (let i = 0; i < 3000 && !fs.existsSync(ready); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(fs.existsSync(ready), `not ready; stderr: ${err}`);
    const seen: string[] = [];
    for (const tid of fs.readdirSync(`/proc/${child.pid}/task`)) {
      const m = /^Cpus_allowed_list:\s*(\S+)/m.exec(fs.readFileSync(`/proc/${child.pid}/task/${tid}/status`, "utf8"));
      if (m) seen.push(m[1]);
    }
    assert.ok(seen.length >= 2, JSON.stringify(seen)); // the listener and its Worker at least
    assert.deepEqual(seen.filter((a) => a !== String(cpu)), [], `threads off CPU ${cpu}: ${JSON.stringify(seen)}`);
    // --helpers idle (the default with --cpus): the Worker keeps SCHED_OTHER (0), the listener's
    // thread and the runtime's helpers run SCHED_IDLE (5). The Worker demotes them as it starts.
    const policies = (): Map<string, number[]> => {
      const by = new Map<string, number[]>();
      for (const tid of fs.readdirSync(`/proc/${child.pid}/task`)) {
        const t = threadSched(tid, child.pid!);
        if (t === null) continue; // ended
        const key = Number(tid) === child.pid ? "main" : isWorkerThreadName(t.comm) ? "worker" : "helper";
        by.set(key, [...(by.get(key) ?? []), t.policy]);
      }
      return by;
    };
    await until(() => policies().get("main")?.[0] === 5, "the listener's thread SCHED_IDLE");
    const by = policies();
    assert.ok((by.get("worker") ?? []).length >= 1 && by.get("worker")!.every((p) => p === 0), JSON.stringify([...by]));
    assert.ok((by.get("helper") ?? []).every((p) => p === 5), JSON.stringify([...by]));
  } finally {
    child.kill("SIGTERM");
    await exited;
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, { ignore: allowed.length < 2 });
