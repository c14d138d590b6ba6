/**
 * nvmf-target: serve namespaces over NVMe/TCP to hosts such as Linux's
 * `nvme connect -t tcp`. Exports a VFIO controller's namespaces, the software
 * controller's, a file or memory; a discovery controller answers on the same
 * port. Runs until SIGINT/SIGTERM, then drops every connection and closes the
 * devices.
 *
 * Usage:
 *   deno run -A lib/cli/nvmf-target.ts [options] --ns SPEC [--ns SPEC...]
 *   bun lib/cli/nvmf-target.ts [options] --ns SPEC ...
 *
 * Options:
 *   --listen ADDR        address (default 127.0.0.1)
 *   --port N             port (default 4420)
 *   --nqn NQN            subsystem NQN (default nqn.2024-01.io.tsnvme:target)
 *   --ns SPEC            0000:00:04.0[:nsid] (VFIO, through NVMeDev.open), sim:..., file:PATH[:SIZE[:BLOCK]], mem:SIZE[:BLOCK]
 *   --allow-host NQN     allow only these hosts (repeatable; default any host)
 *   --digests MODE       allow (echo the host, default), require, none
 *   --max-transfer BYTES largest transfer per command / MAXH2CDATA (default 262144)
 *   --in-capsule BYTES   in-capsule write data on IO queues (default 16384)
 *   --io-queues N        IO queues per controller (default 8)
 *   --dev-queues N       IO queues opened on each backing device (default 4)
 *   --dev-depth N        entries per backing IO queue (default 256)
 *   --interrupts MODE    backing device wait mode: adaptive (default), interrupt, poll; the
 *                        Workers poll in adaptive and poll modes (spin while IO is in flight
 *                        and for a short window after) and sleep whenever idle in interrupt
 *   --workers N          Worker threads serving IO queues, each on a queue pair of its own
 *                        (default: one per core; 0: the listener's thread serves all IO)
 *   --cpus LIST          run on LIST's CPUs only (every thread) and pin Worker i to the i-th
 *                        CPU of LIST, round robin (e.g. 0 or 2-3,6; default: not pinned), as
 *                        SPDK's -m pins its reactors
 *   --helpers idle|normal  with --cpus: every thread but the Workers (the listener, the
 *                        runtime's JIT and GC threads) runs SCHED_IDLE, so a polling Worker is
 *                        not preempted by them (default idle; TSNVME_TARGET_HELPERS sets the
 *                        default, for A/B runs)
 *   --ready-file PATH    write "ADDR PORT" here once listening (scripts wait for it)
 *   -q, --quiet          no connection log
 *
 * SIGUSR2 stops the first live Worker as a crash would (tests: its hosts
 * reconnect to the others).
 * @module
 */
import process from "node:process";
import * as fs from "node:fs";
import { NvmfTarget, openNamespaces, parseCpuList, pinProcess } from "../target/mod.ts";
import type { DigestPolicy } from "../target/mod.ts";
import type { WaitMode } from "../irq/adaptive.ts";

// As the other tools: node:process gives the arguments on Deno and Bun alike.
const args = process.argv.slice(2);

function usage(msg?: string): never {
  if (msg) console.error(`nvmf-target: ${msg}`);
  console.error("usage: nvmf-target [--listen ADDR] [--port N] [--nqn NQN] --ns SPEC... [--allow-host NQN...] [--digests allow|require|none]");
  process.exit(2);
}

const o = {
  listen: "127.0.0.1",
  port: 4420,
  nqn: "nqn.2024-01.io.tsnvme:target",
  ns: [] as string[],
  allow: [] as string[],
  digests: "allow" as DigestPolicy,
  maxTransfer: 256 * 1024,
  inCapsule: 16384,
  ioQueues: 8,
  devQueues: 4,
  devDepth: 256,
  interrupts: undefined as WaitMode | undefined,
  ready: "",
  quiet: false,
  workers: undefined as number | undefined,
  cpus: undefined as number[] | undefined,
  helpers: (process.env.TSNVME_TARGET_HELPERS === "normal" ? "normal" : "idle") as "idle" | "normal",
};
const num = (v: string | undefined, what: string) => {
  const n = Number(v);
  if (v === undefined || !Number.isInteger(n) || n < 0) usage(`${what} needs a non-negative integer`);
  return n;
};
for (let i = 0; i < args.length; i++) {
  const a = args[i], v = () => args[++i] ?? usage(`${a} needs a value`);
  switch (a) {
    case "--listen": o.listen = v(); break;
    case "--port": o.port = num(v(), a); break;
    case "--nqn": o.nqn = v(); break;
    case "--ns": o.ns.push(v()); break;
    case "--allow-host": o.allow.push(v()); break;
    case "--digests": {
      const d = v();
      if (d !== "allow" && d !== "require" && d !== "none") usage("--digests is allow, require or none");
      o.digests = d;
      break;
    }
    case "--max-transfer": o.maxTransfer = num(v(), a); break;
    case "--in-capsule": o.inCapsule = num(v(), a); break;
    case "--io-queues": o.ioQueues = num(v(), a); break;
    case "--dev-queues": o.devQueues = num(v(), a); break;
    case "--dev-depth": o.devDepth = num(v(), a); break;
    case "--interrupts": {
      const m = v();
      if (m !== "adaptive" && m !== "interrupt" && m !== "poll") usage("--interrupts is adaptive, interrupt or poll");
      o.interrupts = m;
      break;
    }
    case "--workers": o.workers = num(v(), a); break;
    case "--cpus":
      try {
        o.cpus = parseCpuList(v());
      } catch (e) {
        usage(`--cpus: ${(e as Error).message}`);
      }
      break;
    case "--helpers": {
      const m = v();
      if (m !== "idle" && m !== "normal") usage("--helpers is idle or normal");
      o.helpers = m;
      break;
    }
    case "--ready-file": o.ready = v(); break;
    case "-q":
    case "--quiet": o.quiet = true; break;
    case "-h":
    case "--help":
      usage();
      break;
    default: usage(`unknown argument ${a}`);
  }
}
if (o.ns.length === 0) usage("give at least one --ns");
// The whole process on --cpus, not only the Workers: its listener and the runtime's threads on
// the hosts' CPUs would switch address space there per IO (issue 16: QD1 +8-47% in a TCG guest
// with every thread pinned away from fio's vCPU).
if (o.cpus) {
  try {
    await pinProcess(o.cpus);
  } catch (e) {
    console.error(`nvmf-target: --cpus: ${(e as Error).message}`);
    process.exit(1);
  }
}

const log = (l: string) => console.error(`nvmf-target: ${l}`);
const opened = await openNamespaces(o.ns, {
  ioQueues: o.devQueues,
  ioQueueDepth: o.devDepth,
  sharedMemory: o.workers !== 0,
  ...(o.interrupts ? { interrupts: o.interrupts } : {}),
})
  .catch((e) => {
    log(`cannot open namespaces: ${(e as Error).message}`);
    process.exit(1);
  });
let target: NvmfTarget;
try {
  target = await NvmfTarget.listen({
    host: o.listen,
    port: o.port,
    subsystems: [{ nqn: o.nqn, namespaces: opened.backends, allowHosts: o.allow.length ? o.allow : undefined }],
    digests: o.digests,
    maxTransfer: o.maxTransfer,
    inCapsule: o.inCapsule,
    maxIoQueues: o.ioQueues,
    log: o.quiet ? undefined : log,
    ...(o.workers !== undefined ? { workers: o.workers } : {}),
    ...(o.cpus !== undefined ? { cpus: o.cpus, idleHelpers: o.helpers === "idle" } : {}),
  });
} catch (e) {
  log(`cannot listen on ${o.listen}:${o.port}: ${(e as Error).message}`);
  await opened.close();
  process.exit(1);
}
for (const [i, b] of opened.backends.entries()) log(`nsid ${i + 1}: ${b.name}, ${b.blockCount} x ${b.blockSize} B`);
log(`${o.nqn} on ${target.address}:${target.port} (digests ${o.digests}${o.allow.length ? `, hosts ${o.allow.join(" ")}` : ", any host"}, ${target.workers} workers${o.cpus ? ` on CPUs ${o.cpus.join(",")}` : ""})`);
if (o.ready) {
  // Whole or absent: scripts poll for this file and read it.
  fs.writeFileSync(`${o.ready}.tmp`, `${target.address} ${target.port}\n`);
  fs.renameSync(`${o.ready}.tmp`, o.ready);
}

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  log(`stopping: ${JSON.stringify(target.stats)}`);
  await target.close();
  await opened.close();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
process.on("SIGUSR2", () => {
  for (let i = 0;; i++) {
    if (i >= 64) return log("SIGUSR2: no live worker to stop");
    if (target.workerAlive(i)) {
      log(`SIGUSR2: stopping worker ${i} as a crash would`);
      void target.killWorker(i);
      return;
    }
  }
});
