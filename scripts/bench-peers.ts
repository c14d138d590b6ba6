/**
 * The userspace peers on the controller tsnvme benchmarks, in the same guest
 * boot (scripts/bench-compare.ts calls it; scripts/bench.sh starts the boot):
 * SPDK's spdk_nvme_perf and libvfn's examples/perf, when
 * /work/shared/tools/build-peers.sh installed them under
 * $TSNVME_PEERS/bin (default /var/cache/tsnvme-peers/bin). Both poll their
 * completion queue from one core, so their CPU per IO is their wall time per
 * IO. Returns rows; prints nothing; asserts nothing.
 * @module
 */
import { existsSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import process from "node:process";

/** One peer's figures at one queue depth. */
export interface PeerRow {
  /** "SPDK spdk_nvme_perf" or "libvfn perf". */
  who: string;
  /** What it ran (version, namespace, block size). */
  mode: string;
  /** Queue depth. */
  qd: number;
  /** IOs per second. */
  iops: number;
  /** Mean latency, µs. */
  mean: number;
  /** Median latency, µs (0: the tool does not report it). */
  p50: number;
  /** 99th percentile, µs (0: not reported). */
  p99: number;
  /** CPU µs per IO: a polling core is busy the whole run. */
  cpu: number;
}

/** Options of {@link runPeers}. */
export interface PeerOptions {
  /** PCI address of the controller (bound to vfio-pci). */
  pci: string;
  /** Queue depths. */
  depths: number[];
  /** Bytes per IO. */
  bs: number;
  /** fio-style pattern: randread, read, randwrite, write. */
  rw: string;
  /** Seconds per job. */
  seconds: number;
  /** Namespace with 512-byte blocks (1) and, optionally, one with 4096-byte blocks for libvfn's 4 KiB reads. */
  nsid512?: number;
  /** Namespace whose block size is 4096 (libvfn's perf reads one block per IO). */
  nsid4k?: number;
}

const BIN = `${process.env.TSNVME_PEERS ?? "/var/cache/tsnvme-peers"}/bin`;

/** Paths of the peers' binaries that exist here. */
export function peersFound(): { spdk: string | null; libvfn: string | null } {
  const spdk = `${BIN}/spdk_nvme_perf`, libvfn = `${BIN}/libvfn-perf`;
  return { spdk: existsSync(spdk) ? spdk : null, libvfn: existsSync(libvfn) ? libvfn : null };
}

const sh = (cmd: string) => spawnSync("sh", ["-c", cmd], { encoding: "utf8" });

/**
 * What SPDK needs in the guest (build-peers.sh's header): a writable /run, hugetlbfs on
 * /dev/hugepages, 2 MiB pages reserved. Returns a function that gives the pages back.
 */
function spdkEnv(): () => void {
  sh("touch /run/.tsnvme-w 2>/dev/null && rm -f /run/.tsnvme-w || mount -t tmpfs tmpfs /run");
  sh("mkdir -p /dev/hugepages && (mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages)");
  try {
    writeFileSync("/proc/sys/vm/nr_hugepages", "512");
  } catch { /* not root: SPDK reports it */ }
  return () => {
    try {
      writeFileSync("/proc/sys/vm/nr_hugepages", "0");
    } catch { /* as above */ }
  };
}

/** spdk_nvme_perf's "Total : IOPS MiB/s Average min max" line. */
export function parseSpdkTotal(out: string): { iops: number; mean: number } | null {
  const m = out.match(/^Total\s*:\s*([\d.]+)\s+([\d.]+)\s+([\d.]+)/m);
  return m ? { iops: Number(m[1]), mean: Number(m[3]) } : null;
}

/**
 * spdk_nvme_perf -L's "Summary latency data" percentiles (`50.00000% :  38.400us`), µs by
 * percentile, or null without them.
 */
export function parseSpdkPercentiles(out: string): Map<number, number> | null {
  const i = out.indexOf("Summary latency data");
  if (i < 0) return null;
  const m = new Map<number, number>();
  for (const x of out.slice(i).matchAll(/^\s*([\d.]+)% :\s*([\d.]+)us/gm)) {
    const p = Number(x[1]);
    if (!m.has(p)) m.set(p, Number(x[2]));
  }
  return m.size > 0 ? m : null;
}

/** libvfn perf's last "iops mbps lavg lmin lmax" figures. */
export function parseLibvfn(out: string): { iops: number; mean: number } | null {
  const lines = out.split(/[\r\n]+/);
  const h = lines.findLastIndex((l) => /^\s*iops\s+mbps\s+lavg/.test(l));
  if (h < 0 || h + 1 >= lines.length) return null;
  const v = lines[h + 1].trim().split(/\s+/).map(Number);
  return v.length >= 3 && v.every(Number.isFinite) ? { iops: v[0], mean: v[2] } : null;
}

/**
 * Run the peers found at every depth (SPDK with a 2 s warm-up, libvfn with
 * 2 s) and return their rows; a peer that fails yields a row-less note in
 * `notes`.
 */
export function runPeers(o: PeerOptions, notes: string[] = []): PeerRow[] {
  const { spdk, libvfn } = peersFound();
  const rows: PeerRow[] = [];
  if (spdk) {
    const release = spdkEnv();
    try {
      for (const qd of o.depths) {
        const r = spawnSync(spdk, [
          // -L: software latency tracking, for the percentiles (an rdtsc pair per IO).
          "-q", String(qd), "-o", String(o.bs), "-w", o.rw, "-t", String(o.seconds), "-a", "2", "-L",
          "-r", `trtype:PCIe traddr:${o.pci} ns:${o.nsid512 ?? 1}`,
        ], { encoding: "utf8", timeout: (o.seconds + 60) * 1000 });
        const t = r.status === 0 ? parseSpdkTotal(r.stdout) : null;
        if (!t) {
          notes.push(`SPDK QD ${qd} failed: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-3).join(" | ")}`);
          continue;
        }
        const pct = parseSpdkPercentiles(r.stdout);
        rows.push({
          who: "SPDK spdk_nvme_perf", mode: "polled (v24.01)", qd, iops: Math.round(t.iops), mean: t.mean,
          p50: pct?.get(50) ?? 0, p99: pct?.get(99) ?? 0, cpu: 1e6 / t.iops,
        });
      }
    } finally {
      release();
    }
  } else notes.push(`SPDK not found in ${BIN} (build it with build-peers.sh)`);
  // libvfn's perf reads one logical block per IO, reads only: pick the namespace whose block is bs.
  const nsid = o.bs === 512 ? (o.nsid512 ?? 1) : o.bs === 4096 ? o.nsid4k : undefined;
  if (libvfn && nsid !== undefined && o.rw.endsWith("read")) {
    for (const qd of o.depths) {
      const r = spawnSync(libvfn, [
        "-d", o.pci, "-N", String(nsid), "-p", o.rw, "-q", String(qd), "-t", String(o.seconds), "-w", "2", "-u", "1",
      ], { encoding: "utf8", timeout: (o.seconds + 60) * 1000 });
      const t = r.status === 0 ? parseLibvfn(r.stdout) : null;
      if (!t) {
        notes.push(`libvfn QD ${qd} failed: ${(r.stderr || r.stdout || String(r.error)).trim().split("\n").slice(-3).join(" | ")}`);
        continue;
      }
      rows.push({ who: "libvfn perf", mode: `polled (ns ${nsid}, ${o.bs} B blocks)`, qd, iops: Math.round(t.iops), mean: t.mean, p50: 0, p99: 0, cpu: 1e6 / t.iops });
    }
  } else if (!libvfn) notes.push(`libvfn perf not found in ${BIN}`);
  else notes.push(`libvfn perf skipped: it reads one block per IO (needs --rw *read and a namespace with ${o.bs} B blocks)`);
  return rows;
}
