/**
 * What `--ns` names, opened: a VFIO controller ("0000:00:04.0[:nsid]",
 * optionally "vfio:"), the software controller ("sim:..."), a file
 * ("file:PATH[:SIZE[:BLOCK]]") or memory ("mem:SIZE[:BLOCK]"). A controller
 * without an nsid exports every active namespace of it.
 * @module
 */
import type { OpenOptions } from "../dev.ts";
import { isWorkerThreadName, type Libc, loadLibc } from "../ffi/mod.ts";
import * as fs from "node:fs";
import { FileMedia, MemMedia } from "../sim/media.ts";
import { type BackingDevice, type BlockBackend, DevBackend, MediaBackend } from "./backend.ts";
import { SharedMedia } from "./shared.ts";

/** A parsed `--ns` value. */
export type NamespaceSpec =
  | { kind: "dev"; target: string; nsid: number | null }
  | { kind: "file"; path: string; size: number | null; blockSize: number }
  | { kind: "mem"; size: number; blockSize: number };

const PCI = /^(?:vfio:)?((?:[0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])(?::(\d+))?$/;

function size(s: string): number {
  const m = /^(\d+)([KMGT]?)i?B?$/i.exec(s);
  if (!m) throw new RangeError(`bad size ${JSON.stringify(s)} (e.g. 64M)`);
  const mul = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 }[m[2].toUpperCase() as "" | "K" | "M" | "G" | "T"];
  return Number(m[1]) * mul;
}

function blockSize(s: string | undefined): number {
  const b = s === undefined ? 512 : Number(s);
  if (b !== 512 && b !== 4096) throw new RangeError(`block size must be 512 or 4096, got ${s}`);
  return b;
}

/** Parse one `--ns` value; throws RangeError with the accepted forms. */
export function parseNamespaceSpec(spec: string): NamespaceSpec {
  if (spec.startsWith("sim:") || spec === "sim") return { kind: "dev", target: spec, nsid: null };
  const p = PCI.exec(spec);
  if (p) return { kind: "dev", target: p[1], nsid: p[2] === undefined ? null : Number(p[2]) };
  if (spec.startsWith("file:")) {
    const [path, sz, bs] = spec.slice(5).split(":");
    if (!path) throw new RangeError("file: needs a path");
    return { kind: "file", path, size: sz ? size(sz) : null, blockSize: blockSize(bs) };
  }
  if (spec.startsWith("mem:")) {
    const [sz, bs] = spec.slice(4).split(":");
    return { kind: "mem", size: size(sz), blockSize: blockSize(bs) };
  }
  throw new RangeError(`bad namespace ${JSON.stringify(spec)}: expected 0000:00:04.0[:nsid], sim:..., file:PATH[:SIZE[:BLOCK]] or mem:SIZE[:BLOCK]`);
}

/** NVMeDev.open options the target passes to every device it opens. */
export interface NamespaceOpenOptions {
  /** IO queues to create on the device. */
  ioQueues?: number;
  /** Entries per IO queue. */
  ioQueueDepth?: number;
  /** How the device's queues wait for completions. */
  interrupts?: "adaptive" | "interrupt" | "poll";
  /** Memory namespaces in shared memory (a target's Workers serve them in place). */
  sharedMemory?: boolean;
}

/** The backends opened from `--ns` values and what closes them. */
export interface OpenedNamespaces {
  /** In order: the target's NSIDs 1... */
  backends: BlockBackend[];
  /** The devices opened (each once). */
  devices: BackingDevice[];
  /** Close the backends, then the devices. */
  close(): Promise<void>;
}

/**
 * Open every spec (devices once each, through NVMeDev.open with `devOptions`)
 * and return the backends in order with a close() that releases them all.
 */
export async function openNamespaces(
  specs: string[],
  devOptions: NamespaceOpenOptions = {},
): Promise<OpenedNamespaces> {
  const { NVMeDev } = await import("../dev.ts");
  const { sharedMemory: _shared, ...openOptions } = devOptions;
  const devs = new Map<string, BackingDevice>();
  const backends: BlockBackend[] = [];
  const close = async () => {
    for (const b of backends) await b.close().catch(() => {});
    for (const d of devs.values()) await d.close().catch(() => {});
  };
  try {
    for (const s of specs) {
      const p = parseNamespaceSpec(s);
      if (p.kind === "dev") {
        let d = devs.get(p.target);
        if (!d) devs.set(p.target, d = await NVMeDev.open(p.target, openOptions as OpenOptions));
        for (const nsid of p.nsid === null ? d.nsList() : [p.nsid]) {
          const b = new DevBackend(d, nsid);
          if (b.blockSize !== 512 && b.blockSize !== 4096) throw new RangeError(`${b.name}: block size ${b.blockSize} (the target serves 512 and 4096)`);
          backends.push(b);
        }
      } else if (p.kind === "file") {
        let sz = p.size;
        if (sz === null) {
          if (!fs.existsSync(p.path)) throw new RangeError(`${p.path} does not exist (give a size: file:PATH:64M)`);
          sz = fs.statSync(p.path).size;
        }
        sz -= sz % p.blockSize;
        if (sz <= 0) throw new RangeError(`${p.path}: no whole block`);
        backends.push(new MediaBackend(new FileMedia(p.path, sz), p.blockSize, `file ${p.path}`, 1 << 20, p.path));
      } else {
        // Shared memory when a target's Workers are to serve it; sparse memory otherwise.
        const m = devOptions.sharedMemory ? new SharedMedia(p.size) : new MemMedia(p.size);
        backends.push(new MediaBackend(m, p.blockSize, `mem ${backends.length + 1}`));
      }
    }
  } catch (e) {
    await close();
    throw e;
  }
  return { backends, devices: [...devs.values()], close };
}

/** Highest CPU number a cpu_set_t of the target's (1024 bits, glibc's CPU_SETSIZE) can name. */
export const MAX_CPU = 1023;

/** A cpu_set_t (1024 bits) naming `cpus`, for sched_setaffinity(2). */
export function cpuSet(cpus: readonly number[]): Uint8Array {
  const mask = new Uint8Array((MAX_CPU + 1) >> 3);
  for (const c of cpus) mask[c >> 3] |= 1 << (c & 7);
  return mask;
}

/**
 * Parse a CPU list as taskset(1) and /sys/devices/system/cpu take it
 * ("0", "0,2", "1-3,6"): the CPUs in the order given, each once. Throws
 * RangeError on anything else, a reversed range or a CPU above {@link MAX_CPU}.
 */
export function parseCpuList(list: string): number[] {
  const out: number[] = [];
  for (const part of list.split(",")) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    const lo = m ? Number(m[1]) : NaN, hi = m && m[2] !== undefined ? Number(m[2]) : lo;
    if (!m || hi < lo || hi > MAX_CPU) throw new RangeError(`bad CPU list ${JSON.stringify(list)} (e.g. 0,2-3; CPUs 0..${MAX_CPU})`);
    for (let c = lo; c <= hi; c++) if (!out.includes(c)) out.push(c);
  }
  return out;
}

/**
 * Confine every thread this process has now (the runtime's JIT, GC and
 * helper threads too; /proc/self/task) to `cpus`; threads started later
 * inherit it from the thread that starts them. For a process that is only a
 * target (the CLI): its threads then never share a CPU with its hosts'
 * applications, so no CPU switches address space between them per IO.
 * Resolves to how many threads were pinned; rejects if none could be.
 */
export async function pinProcess(cpus: number[]): Promise<number> {
  const libc = await loadLibc();
  const mask = cpuSet(cpus);
  let n = 0, err = 0;
  for (const tid of fs.readdirSync("/proc/self/task")) {
    if (libc.schedSetaffinity(Number(tid), mask) === 0) n++;
    else err = libc.errno(); // a thread that ended meanwhile (ESRCH), or a CPU we may not use (EINVAL)
  }
  if (n === 0) throw new Error(`cannot pin the process to CPUs ${cpus.join(",")} (errno ${err})`);
  return n;
}

const SCHED_OTHER = 0;
const SCHED_IDLE = 5;
const NO_PARAM = new Uint8Array(4); // struct sched_param { sched_priority = 0 }

/**
 * A thread's name and scheduling policy, from one read of
 * /proc/PID/task/TID/stat (its comm in parentheses, the policy field 41), or
 * null if it ended.
 */
export function threadSched(tid: string | number, pid: string | number = "self"): { comm: string; policy: number } | null {
  try {
    const st = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
    const end = st.lastIndexOf(")");
    return { comm: st.slice(st.indexOf("(") + 1, end), policy: Number(st.slice(end + 2).split(" ")[38]) };
  } catch {
    return null;
  }
}

/**
 * Give the CPU to the process's JavaScript Workers: every other thread (the
 * main thread, the runtime's JIT, GC and I/O helpers) runs SCHED_IDLE, so on
 * a CPU a Worker polls it runs only while that Worker leaves the CPU idle,
 * and a Worker is never preempted by one for a scheduler slice (a tick, 4 ms
 * at HZ=250). For a process whose every thread shares its Workers' CPUs (the
 * target CLI's --cpus); Workers found SCHED_IDLE (started by a demoted
 * thread) get SCHED_OTHER back. Threads started later inherit their
 * creator's policy: call again after new ones may have appeared. `libc` is
 * the calling thread's. Returns how many threads it demoted now.
 */
export function idleHelpers(libc: Libc): number {
  let n = 0;
  for (const tid of fs.readdirSync("/proc/self/task")) {
    const t = threadSched(tid);
    if (t === null) continue; // ended meanwhile
    const policy = t.policy;
    if (isWorkerThreadName(t.comm)) {
      if (policy === SCHED_IDLE) libc.schedSetscheduler(Number(tid), SCHED_OTHER, NO_PARAM);
    } else if (policy === SCHED_OTHER && libc.schedSetscheduler(Number(tid), SCHED_IDLE, NO_PARAM) === 0) n++;
  }
  return n;
}
