/**
 * NVMe/TCP host throughput on loopback against the project's own target
 * (lib/target, serving memory, in the same process): 4 KiB random reads at QD1 and QD32 (IOPS) and 128 KiB sequential
 * reads and writes (MB/s), with digests off and on. Both ends are JS on one
 * thread here, so the numbers bound the host's cost, not a network's.
 *
 * With `--table LOG`, instead turns the `bench ...` and `crc32c ...` lines
 * of a guest run (tests/guest/tcp/nvmet.sh --bench SEC writes them to
 * $TSNVME_OUT/tcp/bench.log) into markdown tables: the tsnvme host on each
 * runtime against the kernel initiator on the same nvmet target, digests off
 * and on, with ratios, and CRC32C speed.
 * The guest run (kernel initiator, SPDK's initiator and tsnvme on Deno and Bun against one nvmet
 * target, in one boot): scripts/guest.sh --bind none -- tests/guest/tcp/nvmet.sh --bench SECONDS.
 * TSNVME_TCP_WAIT=adaptive|poll|interrupt sets the loopback rows' IO queue wait mode (default
 * interrupt; polling starves the in-process target, so it says little here).
 * Usage: deno run -A scripts/bench-tcp.ts [SECONDS] | bun scripts/bench-tcp.ts [SECONDS]
 *        deno run -A scripts/bench-tcp.ts --table LOG [--svg FILE]   (FILE: the tables as charts)
 *        deno run -A scripts/bench-tcp.ts --rx [SECONDS]   (host receive path only: parser + placement, no sockets)
 * @module
 */
import { readFileSync, writeFileSync } from "node:fs";
import { type BarChart, chartsSvg } from "../lib/cli/bench/svg.ts";
import { MemMedia } from "../lib/sim/media.ts";
import { hostIdentity, TcpController } from "../lib/tcp/mod.ts";
import { MediaBackend, NvmfTarget } from "../lib/target/mod.ts";
import { IoOpc } from "../lib/nvme/spec.ts";
import type { WaitMode } from "../lib/irq/adaptive.ts";
import { PduParser } from "../lib/tcp/parser.ts";
import { buildPdu, DataOff, encodeIcResp, get32, PduType, writeDataPdu } from "../lib/tcp/pdu.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ??
  (globalThis as unknown as { process: { argv: string[] } }).process.argv.slice(2);
const runtime = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";
const NQN = "nqn.2024-01.io.tsnvme:bench";

async function job(c: TcpController, opc: number, bs: number, qd: number, secs: number): Promise<{ ios: number; s: number }> {
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

/** The loopback rows: the host against the project's own target in this process. */
async function loopback(secs: number): Promise<void> {
  const t = await NvmfTarget.listen({
    port: 0,
    subsystems: [{ nqn: NQN, namespaces: [new MediaBackend(new MemMedia(64 << 20), 512)] }],
    maxTransfer: 0x20000,
    inCapsule: 8192,
  });
  for (const dg of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }]) {
    const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...hostIdentity("00000000-0000-4000-8000-000000000001"), digests: dg, katoMs: 0 });
    const mode = (globalThis as { process?: { env: Record<string, string | undefined> } }).process?.env.TSNVME_TCP_WAIT as WaitMode | undefined;
    if (mode) for (const q of c.io) (q.qp.pollSpinUs = 500, q.qp.setWaitMode(mode));
    const tag = `${runtime} digests=${dg.hdgst ? "on" : "off"}${mode ? ` ${mode}` : ""}`;
    for (const qd of [1, 32]) {
      const r = await job(c, IoOpc.READ, 4096, qd, secs);
      console.log(`tcp ${tag} 4k randread qd${qd}: ${(r.ios / r.s).toFixed(0)} IOPS`);
    }
    for (const [name, opc] of [["read", IoOpc.READ], ["write", IoOpc.WRITE]] as const) {
      const r = await job(c, opc, 128 * 1024, 8, secs);
      console.log(`tcp ${tag} 128k seq${name} qd8: ${((r.ios * 128 * 1024) / 1e6 / r.s).toFixed(0)} MB/s`);
    }
    await c.shutdown();
  }
  await t.close();
}

/**
 * The host's receive path alone: 128 KiB C2HData PDUs (SUCCESS set) cut into
 * 64 KiB chunks, as a socket hands them, fed to a parser whose data is either
 * placed straight into a read buffer (what the ring does without a data
 * digest) or staged by the parser and copied by the handler (with one).
 */
function rx(secs: number): void {
  const bs = 128 * 1024, chunk = 64 * 1024;
  for (const dg of [{ hdgst: false, ddgst: false }, { hdgst: true, ddgst: true }]) {
    for (const place of [true, false]) {
      const h = new Uint8Array(128);
      const data = Uint8Array.from({ length: bs }, (_, i) => (i * 2654435761) >>> 24);
      const parts: Uint8Array[] = [];
      for (let k = 0; k < 8; k++) {
        parts.push(buildPdu(h, writeDataPdu(h, PduType.C2H_DATA, { cccid: k, ttag: 0, datao: 0, datal: bs, last: true, success: true }, dg), data));
      }
      const stream = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((o, p) => (stream.set(p, o), o + p.length), 0);
      const chunks: Uint8Array[] = [];
      for (let o = 0; o < stream.length; o += chunk) chunks.push(stream.slice(o, o + chunk)); // distinct buffers, as sockets give
      const mem = new Uint8Array(bs * 8);
      let pdus = 0;
      const p = new PduParser({ role: "host", maxData: bs, softDataDigest: true }, (hdr, d, ok) => {
        if (hdr[0] === PduType.IC_RESP) p.digests = dg;
        else {
          const at = get32(hdr, DataOff.CCCID) % 0x10000 * bs;
          if (ok && d!.buffer !== mem.buffer) mem.set(d!, at);
          pdus++;
        }
      });
      p.feed(encodeIcResp({ maxh2cdata: bs, ...dg }));
      if (place && !dg.ddgst) p.placeData = (hdr, n) => mem.subarray((get32(hdr, DataOff.CCCID) % 0x10000) * bs, (get32(hdr, DataOff.CCCID) % 0x10000) * bs + n);
      const end = performance.now() + secs * 1000, t0 = performance.now();
      while (performance.now() < end) for (const c of chunks) p.feed(c);
      const s = (performance.now() - t0) / 1000;
      const how = dg.ddgst ? "staged+digests" : place ? "placed" : "staged";
      console.log(`rx ${runtime} 128k C2HData ${how}${place || dg.ddgst ? "" : " (before)"}: ${(pdus * bs / 1e6 / s).toFixed(0)} MB/s`);
      if (dg.ddgst) break;
    }
  }
}


/** A guest bench log's figures: `WHO|DIGESTS|WORKLOAD` and `crc32c[-js]|RUNTIME|KIB` keys. */
interface BenchLog {
  v: Map<string, { n: number; extra: string }>;
  crc: Map<string, number>;
  digestsSeen: Set<string>;
  whoSeen: Set<string>;
}

/**
 * Parse a guest bench log: lines `bench WHO digests=D WORKLOAD: N UNIT [p50=Aus p99=Bus]
 * [cpu=Cus/io]` (WHO kernel, spdk, deno, bun, deno-adaptive, bun-adaptive) and `crc32c[-js] RUNTIME
 * SIZE KiB: N MB/s`.
 */
function parseBenchLog(log: string): BenchLog {
  const v = new Map<string, { n: number; extra: string }>();
  const crc = new Map<string, number>();
  const digestsSeen = new Set<string>(), whoSeen = new Set<string>();
  for (const line of log.split("\n")) {
    let m = /^bench ([a-z-]+) digests=(none|h|hd) (4k randread qd1|4k randread qd32|128k seqread qd8|128k seqwrite qd8): ([\d.]+) (IOPS|MB\/s)(.*)$/.exec(line.trim());
    if (m) {
      const p = /p50=(\d+)us p99=(\d+)us/.exec(m[6]), c = /cpu=([\d.]+)us\/io/.exec(m[6]);
      const extra = (p ? ` (p50 ${p[1]} / p99 ${p[2]} µs)` : "") + (c ? ` [${c[1]} µs CPU/IO]` : "");
      v.set(`${m[1]}|${m[2]}|${m[3]}`, { n: Number(m[4]), extra });
      digestsSeen.add(m[2]);
      whoSeen.add(m[1]);
      continue;
    }
    m = /^(crc32c|crc32c-js) (deno|bun) (\d+) KiB: ([\d.]+) MB\/s( \(\w+\))?$/.exec(line.trim());
    if (m) crc.set(`${m[1]}|${m[2]}|${m[3]}`, Number(m[4]));
  }
  return { v, crc, digestsSeen, whoSeen };
}

const DIGEST_LABEL: Record<string, string> = { none: "off", h: "header", hd: "header+data" };
const WHO_NAME: Record<string, string> = {
  kernel: "kernel initiator",
  spdk: "SPDK initiator",
  deno: "tsnvme Deno",
  bun: "tsnvme Bun",
  "deno-adaptive": "tsnvme Deno (adaptive)",
  "bun-adaptive": "tsnvme Bun (adaptive)",
};
const WORKLOADS: [string, string][] = [
  ["4k randread qd1", "4 KiB random read QD1 (IOPS)"],
  ["4k randread qd32", "4 KiB random read QD32 (IOPS)"],
  ["128k seqread qd8", "128 KiB sequential read QD8 (MB/s)"],
  ["128k seqwrite qd8", "128 KiB sequential write QD8 (MB/s)"],
];

/** Initiators in table order: the kernel, SPDK, then tsnvme's, then any other seen. */
function whoOrder(whoSeen: Set<string>): string[] {
  const order = ["kernel", "spdk", "deno", "deno-adaptive", "bun", "bun-adaptive"].filter((w) => whoSeen.has(w) || w === "kernel" || w === "deno" || w === "bun");
  for (const w of whoSeen) if (!order.includes(w)) order.push(w);
  return order;
}

/**
 * The same guest bench log as charts (lib/cli/bench/svg.ts): one per workload, digests along
 * the x axis, a bar per initiator.
 */
export function benchCharts(log: string): BarChart[] {
  const { v, digestsSeen, whoSeen } = parseBenchLog(log);
  const order = whoOrder(whoSeen).filter((w) => whoSeen.has(w));
  const digests = ["none", "h", "hd"].filter((x) => digestsSeen.has(x));
  const charts: BarChart[] = [];
  for (const [key, title] of WORKLOADS) {
    if (!order.some((w) => digests.some((d) => v.has(`${w}|${d}|${key}`)))) continue;
    charts.push({
      title: `NVMe/TCP against nvmet: ${title}`,
      yLabel: title.endsWith("(IOPS)") ? "IOPS" : "MB/s",
      categories: digests.map((d) => `digests ${DIGEST_LABEL[d]}`),
      series: order.map((w) => ({ name: WHO_NAME[w] ?? w, values: digests.map((d) => v.get(`${w}|${d}|${key}`)?.n ?? null) })),
    });
  }
  return charts;
}

/**
 * Markdown tables from a guest bench log (see {@link parseBenchLog}). Every initiator gets a ratio
 * against the kernel's figure; a missing one shows "–".
 */
export function benchTables(log: string): string {
  const { v, crc, digestsSeen, whoSeen } = parseBenchLog(log);
  const fmt = (n: number | undefined) => n === undefined ? "–" : n >= 100 ? n.toFixed(0) : n.toFixed(1);
  const ratio = (a: number | undefined, b: number | undefined) => a === undefined || !b ? "–" : `${(a / b).toFixed(2)}x`;
  const label = DIGEST_LABEL, name = WHO_NAME, work = WORKLOADS;
  const order = whoOrder(whoSeen);
  const others = order.filter((w) => w !== "kernel");
  // The kernel first, then each initiator beside its ratio to the kernel.
  let s = `| workload | digests | kernel initiator |${others.map((w) => ` ${name[w] ?? w} | ${(name[w] ?? w).replace("tsnvme ", "")} / kernel |`).join("")}\n`;
  s += `|---|---|---:|${others.map(() => "---:|---:|").join("")}\n`;
  for (const [key, title] of work) {
    for (const d of ["none", "h", "hd"].filter((x) => digestsSeen.has(x))) {
      if (key === "128k seqwrite qd8" && !order.some((w) => v.has(`${w}|${d}|${key}`))) continue;
      const cell = (w: string) => {
        const e = v.get(`${w}|${d}|${key}`);
        return `${fmt(e?.n)}${e?.extra ?? ""}`;
      };
      const k = v.get(`kernel|${d}|${key}`)?.n;
      s += `| ${title} | ${label[d]} | ${cell("kernel")} |${others.map((w) => ` ${cell(w)} | ${ratio(v.get(`${w}|${d}|${key}`)?.n, k)} |`).join("")}\n`;
    }
  }
  if (crc.size) {
    // crc32c lines: what the digests use (wasm where available); crc32c-js lines: the plain-JS fallback.
    const js = [...crc.keys()].some((k) => k.startsWith("crc32c-js|"));
    s += `\n| CRC32C | Deno MB/s | Bun MB/s |${js ? " Deno JS fallback | Bun JS fallback |" : ""}\n|---|---:|---:|${js ? "---:|---:|" : ""}\n`;
    for (const size of [...new Set([...crc.keys()].map((k) => k.split("|")[2]))]) {
      const g = (w: string, rt: string) => fmt(crc.get(`${w}|${rt}|${size}`));
      s += `| ${size} KiB buffers | ${g("crc32c", "deno")} | ${g("crc32c", "bun")} |${js ? ` ${g("crc32c-js", "deno")} | ${g("crc32c-js", "bun")} |` : ""}\n`;
    }
  }
  return s;
}

// Last: the --table path reads the label tables above (a const is not initialised before its line).
if (import.meta.main) {
  if (args[0] === "--rx") rx(Number(args[1] ?? 2));
  else if (args[0] === "--table") {
    const log = readFileSync(args[1] ?? "", "utf8");
    console.log(benchTables(log));
    // --svg FILE: the same figures as charts, for the README.
    const svg = args.indexOf("--svg");
    if (svg > 0 && args[svg + 1]) writeFileSync(args[svg + 1], chartsSvg(benchCharts(log), `tsnvme NVMe/TCP (bench-tcp.ts --table ${args[1]})`));
  }
  else await loopback(Number(args[0] ?? 2));
}
