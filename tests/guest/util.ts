/** Helpers for tests that run inside the QEMU guest (scripts/guest.sh). */
import { execFileSync, spawnSync } from "node:child_process";
import { closeSync, openSync, readdirSync, readFileSync, readSync } from "node:fs";
import process from "node:process";

/** True inside the guest started by scripts/guest.sh. */
export const inGuest: boolean = process.env.TSNVME_GUEST === "1";
/** PCI address of the emulated controller. */
export const PCI: string = process.env.TSNVME_PCI ?? "";
/** The running runtime. */
export const runtime: "deno" | "bun" = typeof (globalThis as { Bun?: unknown }).Bun !== "undefined" ? "bun" : "deno";

/** Rebind controller `pci` (default the first) to vfio-pci or the kernel nvme driver (waits for the device nodes). */
export function bind(driver: "vfio" | "nvme", pci: string = PCI): void {
  execFileSync("scripts/guest-bind.sh", [driver, pci], { stdio: ["ignore", "ignore", "inherit"] });
}

/**
 * The kernel's block device for namespace `nsid` of the controller at `pci` (bound to nvme). With
 * QEMU 10 (CMIC 0x2, NMIC 1) the disk is a multipath head `nvmeXnY` and the controller holds the
 * hidden path `nvmeXcZnY`; QEMU 7.2 gave plain disks. Linux 6.12 scans namespaces in parallel, so
 * `/dev/nvme0n1` may be namespace 2 (seen once). The `nsid` file decides.
 */
export function nsBlockDev(nsid: number, pci: string = PCI): string {
  const base = `/sys/bus/pci/devices/${pci}/nvme`;
  for (const ctrl of readdirSync(base)) {
    for (const e of readdirSync(`${base}/${ctrl}`)) {
      const m = e.match(/^nvme(\d+)(?:c\d+)?n(\d+)$/);
      if (m && Number(readFileSync(`${base}/${ctrl}/${e}/nsid`, "utf8")) === nsid) return `/dev/nvme${m[1]}n${m[2]}`;
    }
  }
  throw new Error(`no block device for namespace ${nsid} of ${pci} (is it bound to nvme?)`);
}

/** `args` with every `/dev/nvme0n<nsid>` replaced by {@link nsBlockDev}'s device for that namespace. */
export function withNsDevs(args: string[]): string[] {
  return args.map((a) => a.replace(/^\/dev\/nvme0n(\d+)$/, (_, n) => nsBlockDev(Number(n))));
}

/** Run nvme-cli and parse its JSON output. */
export function nvmeCliJson(args: string[]): Record<string, unknown> {
  const out = execFileSync("nvme", [...args, "-o", "json"], { encoding: "utf8", maxBuffer: 1 << 24 });
  return JSON.parse(out);
}

/** Read bytes from a kernel block device at a byte offset (page cache is fresh after a rebind). */
export function readBlockDev(path: string, offset: number, len: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const out = new Uint8Array(len);
    let got = 0;
    while (got < len) {
      const n = readSync(fd, out, got, len - got, offset + got);
      if (n <= 0) throw new Error(`short read from ${path}`);
      got += n;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

/** Write through the kernel driver with O_DIRECT (dd), so the data is on the device before unbinding. */
export function writeBlockDev(path: string, blockSize: number, lba: number, data: Uint8Array): void {
  const r = spawnSync("dd", [
    `of=${path}`,
    `bs=${blockSize}`,
    `seek=${lba}`,
    `count=${data.length / blockSize}`,
    "oflag=direct",
    "conv=fsync,notrunc",
    "status=none",
  ], { input: data, maxBuffer: 1 << 26 });
  if (r.status !== 0) throw new Error(`dd failed: ${r.stderr}`);
}

/** Command line that runs a TypeScript file under the current runtime. */
export function runtimeArgv(script: string, args: string[]): [string, string[]] {
  return runtime === "bun" ? [process.execPath, [script, ...args]] : [process.execPath, ["run", "-A", script, ...args]];
}

/** Deterministic pseudo-random bytes (xorshift), so failures can be reproduced from the seed. */
export function randomBytes(len: number, seed: number): Uint8Array {
  const out = new Uint8Array(len);
  const v = new Uint32Array(out.buffer, 0, len >>> 2);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < v.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    v[i] = x;
  }
  return out;
}

/** Index of the first differing byte, or -1. */
export function firstDiff(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/** Interrupt counts per vfio-msix vector of `pci` in /proc/interrupts (all CPUs summed). */
export function procMsix(pci: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of readFileSync("/proc/interrupts", "utf8").split("\n")) {
    const v = line.match(/vfio-msix\[(\d+)\]\(([^)]+)\)/);
    if (!v || v[2] !== pci) continue;
    const cols = line.match(/^\s*\w+:((?:\s+\d+)+)/);
    out.set(Number(v[1]), cols ? cols[1].trim().split(/\s+/).reduce((a, c) => a + Number(c), 0) : 0);
  }
  return out;
}
