/**
 * Inside the guest: the tsnvme TCP host against Linux nvmet (set up by
 * nvmet.sh). Brings the controller up, checks Identify, writes a 4 KiB block
 * (in-capsule) and 128 KiB (R2T/H2CData), reads both back, and leaves the
 * Identify data and the 128 KiB pattern in DIR for the kernel-side checks.
 * With a fifth argument SECONDS, then measures 4 KiB random reads at QD1 and
 * QD32 (IOPS) and 128 KiB sequential reads at QD8 (MB/s) on namespace 1.
 * Usage: nvmet_host.ts PORT NQN none|h|hd DIR [SECONDS]
 * @module
 */
import { writeFileSync } from "node:fs";
import { hostIdentity, TcpController } from "../../../lib/tcp/mod.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";

const [portArg, nqn, dgArg, dir, benchArg] = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const rt = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
const id = hostIdentity("5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9");
let pass = 0, fail = 0;
function check(name: string, ok: boolean, detail = ""): void {
  if (ok) pass++;
  else fail++;
  console.log(`${ok ? "ok" : "not ok"} - ${rt} digests=${dgArg}: ${name}${detail ? ` (${detail})` : ""}`);
}

/**
 * QD1/QD32 4 KiB random read IOPS (p50/p99 µs at QD1), 128 KiB sequential read and write MB/s at
 * QD8, `secs` each, with this process's CPU time per IO; QD1 again with the IO queue polling its
 * socket between completions (wait mode adaptive) instead of sleeping on it (the default).
 */
/**
 * The QD1 warm-up: at least WARM_IOS IOs, for at most WARM_CAP_S seconds. V8's TurboFan threshold is
 * 3,000 calls with stable feedback, but in --trace-opt runs the per-IO functions (rw, push, reap,
 * #turn) reached TurboFan only after 12-18k IOs in the guest (10-15 s) and 20-25k natively.
 */
const WARM_IOS = 20_000, WARM_CAP_S = 30;

async function bench(c: TcpController, blocks: number, secs: number): Promise<void> {
  const proc = (globalThis as unknown as { process: { cpuUsage(): { user: number; system: number } } }).process;
  const lat: number[] = [];
  const half = Math.floor(blocks / 2 / 32) * 32;
  // minIos: keep going past `dur` until that many IOs are done, for at most capSecs.
  const run = async (bs: number, qd: number, dur = secs, opc: number = IoOpc.READ, track = false, minIos = 0, capSecs = dur):
    Promise<{ iops: number; cpu: number; ios: number; secs: number }> => {
    const buf = c.memory.allocDma(bs * qd), nlb = bs / 4096;
    let ios = 0, seq = 0, rnd = 7;
    lat.length = 0;
    const c0 = proc.cpuUsage();
    const t0 = performance.now(), end = t0 + dur * 1000, cap = t0 + Math.max(dur, capSecs) * 1000;
    await Promise.all(Array.from({ length: qd }, async (_, i) => {
      for (let now = performance.now(); (now < end || ios < minIos) && now < cap; now = performance.now()) {
        rnd = (rnd * 1103515245 + 12345) >>> 0;
        // Writes go to the upper half: the lower half holds what nvmet.sh checks through the kernel.
        const lba = nlb === 1 ? rnd % blocks : opc === IoOpc.WRITE ? half + (seq++ * nlb) % half : (seq++ * nlb) % blocks;
        const s = track ? performance.now() : 0;
        await c.io[0].qp.rw(opc, 1, lba, nlb - 1, buf.iova + i * bs, bs);
        if (track) lat.push(performance.now() - s);
        ios++;
      }
    }));
    const secsRun = (performance.now() - t0) / 1000;
    const c1 = proc.cpuUsage();
    c.memory.freeDma(buf);
    return { iops: ios / secsRun, cpu: (c1.user - c0.user + c1.system - c0.system) / Math.max(ios, 1), ios, secs: secsRun };
  };
  const pct = (p: number) => {
    const s = [...lat].sort((a, b) => a - b);
    return s.length ? (s[Math.min(s.length - 1, Math.floor(s.length * p))] * 1000).toFixed(0) : "0";
  };
  const line = (what: string, v: string, unit: string, cpu: number, extra = "") =>
    console.log(`bench ${rt} digests=${dgArg} ${what}: ${v} ${unit}${extra} cpu=${cpu.toFixed(1)}us/io`);
  // JIT tiers settle slowly under TCG (shared/notes/vm-guest.md): one unmeasured pass first.
  await run(4096, 32, Math.max(1, secs / 2));
  await run(131072, 8, Math.max(1, secs / 2));
  // QD1 sleeps between IOs, a path QD32 never takes: warm it too. JIT tiers count calls (V8: Maglev
  // after 400, TurboFan after 3,000), so the warm-up counts IOs, not seconds: a Deno run whose
  // first seconds ran slow (88-146 IOPS under TCG) stays slow until its per-IO functions reach
  // TurboFan (host5). Printed, so the cold rate is on record beside the measured one.
  let r = await run(4096, 1, Math.max(2, secs), IoOpc.READ, false, WARM_IOS, WARM_CAP_S);
  console.log(`bench ${rt} digests=${dgArg} 4k randread qd1 warm-up: ${r.ios} IOs in ${r.secs.toFixed(1)} s (${r.iops.toFixed(0)} IOPS)`);
  r = await run(4096, 1, secs, IoOpc.READ, true);
  line("4k randread qd1", r.iops.toFixed(0), "IOPS", r.cpu, ` p50=${pct(0.5)}us p99=${pct(0.99)}us`);
  r = await run(4096, 32);
  line("4k randread qd32", r.iops.toFixed(0), "IOPS", r.cpu);
  r = await run(131072, 8);
  line("128k seqread qd8", (r.iops * 131072 / 1e6).toFixed(1), "MB/s", r.cpu);
  r = await run(131072, 8, secs, IoOpc.WRITE);
  line("128k seqwrite qd8", (r.iops * 131072 / 1e6).toFixed(1), "MB/s", r.cpu);
  // Polling the socket between completions (adaptive), for the latency-bound case.
  const q = c.io[0].qp;
  q.pollSpinUs = 500;
  q.setWaitMode("adaptive");
  r = await run(4096, 1, secs, IoOpc.READ, true);
  console.log(`bench ${rt}-adaptive digests=${dgArg} 4k randread qd1: ${r.iops.toFixed(0)} IOPS p50=${pct(0.5)}us p99=${pct(0.99)}us cpu=${r.cpu.toFixed(1)}us/io`);
  q.setWaitMode("interrupt");
  q.pollSpinUs = 0;
}

const digests = { hdgst: dgArg !== "none", ddgst: dgArg === "hd" };
const t0 = performance.now();
const c = await TcpController.connect({ host: "127.0.0.1", port: Number(portArg), subnqn: nqn, ...id, digests, ioQueues: 2 });
try {
  check("bring-up", c.io.length === 2, `cntlid ${c.cntlid}, ${c.io.length} IO queues, ${(performance.now() - t0).toFixed(0)} ms`);
  check("VS 1.3", c.vs === 0x10300, `0x${c.vs.toString(16)}`);
  check("in-capsule from IOCCSZ", c.inCapsuleMax === 16384, String(c.inCapsuleMax));
  const mn = new TextDecoder().decode(c.identify.subarray(24, 64)).trim();
  check("model", mn === "Linux", mn);
  writeFileSync(`${dir}/id-ctrl-${rt}-${dgArg}.bin`, c.identify);
  const ids = await c.namespaceIds();
  const ns = await c.namespace(1);
  check("namespaces", ids[0] === 1 && ns.lbaSize === 4096, `${ids.join(",")} lba ${ns.lbaSize} blocks ${ns.blocks}`);
  const big = c.memory.allocDma(128 * 1024), back = c.memory.allocDma(128 * 1024);
  for (let i = 0; i < big.size; i++) big.bytes[i] = (i * 131 + (i >>> 12) + (dgArg.length * 17)) & 0xff;
  const lbas = (128 * 1024) / ns.lbaSize;
  await c.io[0].qp.rw(IoOpc.WRITE, 1, 0, lbas - 1, big.iova, big.size);
  await c.io[1].qp.rw(IoOpc.READ, 1, 0, lbas - 1, back.iova, back.size);
  check("128 KiB write (R2T) reads back on the other queue", back.bytes.every((v, i) => v === big.bytes[i]), `r2t ${c.io[0].ring.counters.r2t}`);
  const small = c.memory.allocDma(4096);
  small.bytes.fill(0xa5);
  await c.io[1].qp.rw(IoOpc.WRITE, 1, lbas, 0, small.iova, 4096);
  await c.io[0].qp.rw(IoOpc.READ, 1, lbas, 0, back.iova, 4096);
  check("4 KiB in-capsule write reads back", back.bytes.subarray(0, 4096).every((v) => v === 0xa5), `in-capsule ${c.io[1].ring.counters.inCapsule}`);
  writeFileSync(`${dir}/pattern-${rt}-${dgArg}.bin`, big.bytes);
  if (benchArg) await bench(c, ns.blocks, Number(benchArg));
  await c.io[0].qp.submit(new Uint32Array([0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])); // Flush nsid 1
  check("flush", true);
  await c.shutdown();
  check("shutdown", true);
  const disc = await TcpController.discover({ host: "127.0.0.1", port: Number(portArg), ...id, digests });
  check("discovery log", disc.length === 2 && disc[0].subtype === 3 && disc[1].subnqn === nqn && disc[1].trsvcid === portArg,
    disc.map((e) => `${e.subtype}:${e.subnqn}@${e.traddr}:${e.trsvcid} treq ${e.treq}`).join(", "));
} catch (e) {
  check("no exception", false, String(e));
  c.close();
}
console.log(`${rt} digests=${dgArg}: ${pass} passed, ${fail} failed`);
(globalThis as unknown as { process: { exit(n: number): void } }).process.exit(fail ? 1 : 0);
