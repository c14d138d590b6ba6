/**
 * NVMe/TCP host throughput on loopback against the project's own test target
 * (lib/tcp/target.ts, in a Worker-free second connection of the same
 * process): 4 KiB random reads at QD1 and QD32 (IOPS) and 128 KiB sequential
 * reads and writes (MB/s), with digests off and on. Both ends are JS on one
 * thread here, so the numbers bound the host's cost, not a network's.
 * Usage: deno run -A scripts/bench-tcp.ts [SECONDS] | bun scripts/bench-tcp.ts [SECONDS]
 * @module
 */
import { MemMedia } from "../lib/sim/media.ts";
import { hostIdentity, TcpController, TcpTarget } from "../lib/tcp/mod.ts";
import { IoOpc } from "../lib/nvme/spec.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const secs = Number(args[0] ?? 2);
const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
const NQN = "nqn.2024-01.io.tsnvme:bench";
const t = await TcpTarget.listen({ subnqn: NQN, namespaces: [{ media: new MemMedia(64 << 20), lbaSize: 512 }], maxh2cdata: 0x20000, inCapsule: 8192 });

async function job(c: TcpController, opc: number, bs: number, qd: number): Promise<{ ios: number; s: number }> {
  const q = c.io[0].qp;
  const buf = c.memory.allocDma(bs * qd);
  const blocks = (64 << 20) / 512, nlb = bs / 512;
  let ios = 0, seq = 0, rnd = 12345;
  const end = performance.now() + secs * 1000;
  const t0 = performance.now();
  const worker = async (i: number) => {
    while (performance.now() < end) {
      rnd = (rnd * 1103515245 + 12345) >>> 0;
      const lba = bs === 4096 ? (rnd % (blocks / nlb)) * nlb : (seq++ * nlb) % blocks;
      await q.rw(opc, 1, lba, nlb - 1, buf.iova + i * bs, bs);
      ios++;
    }
  };
  await Promise.all(Array.from({ length: qd }, (_, i) => worker(i)));
  const s = (performance.now() - t0) / 1000;
  c.memory.freeDma(buf);
  return { ios, s };
}

for (const dg of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }]) {
  const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...hostIdentity("00000000-0000-4000-8000-000000000001"), digests: dg, katoMs: 0 });
  const tag = `${runtime} digests=${dg.hdgst ? "on" : "off"}`;
  for (const qd of [1, 32]) {
    const r = await job(c, IoOpc.READ, 4096, qd);
    console.log(`tcp ${tag} 4k randread qd${qd}: ${(r.ios / r.s).toFixed(0)} IOPS`);
  }
  for (const [name, opc] of [["read", IoOpc.READ], ["write", IoOpc.WRITE]] as const) {
    const r = await job(c, opc, 128 * 1024, 8);
    console.log(`tcp ${tag} 128k seq${name} qd8: ${((r.ios * 128 * 1024) / 1e6 / r.s).toFixed(0)} MB/s`);
  }
  await c.shutdown();
}
await t.close();
