/**
 * Guest tier: the local kernel on a tsnvme device through ublk (Linux 6.12,
 * ublk_drv). The server is `lib/cli/ublk.ts add` in a child process of the
 * same runtime; the kernel's own tools (fio, mkfs.ext4, fsck, blkdiscard, dd)
 * drive /dev/ublkbN: ext4 and xfs (xfsprogs comes from the host's /, which
 * the guest mounts; scripts/install-deps.sh installs it).
 *
 * Every child process is bounded (killed on timeout, the test fails naming
 * it), and nothing blocks the event loop, so a stuck step fails with the
 * server's log and the process list instead of stalling the runner.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import process from "node:process";
import { test } from "../harness.ts";
import { inGuest, nsBlockDev, PCI, runtime, runtimeArgv } from "./util.ts";

const skip = { ignore: !inGuest || !existsSync("/dev/ublk-control"), sanitizeOps: false, sanitizeResources: false, timeout: 1_200_000 };
const MNT = "/tmp/ublk-mnt";
const READY = "/tmp/ublk-ready";

/**
 * Run `cmd` with `args` (optionally feeding `input` on stdin) without blocking the event loop;
 * resolves to its stdout. Bounded: after `timeoutS` the process is killed and the promise rejects
 * with the command, its exit status and its output, so a stuck tool fails the test instead of
 * stalling the runner (synchronous child calls would also stop the timers that bound the rest).
 */
function run(cmd: string, args: string[], timeoutS = 600, input?: Uint8Array): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: [input ? "pipe" : "ignore", "pipe", "pipe"] });
    const out: Buffer[] = [];
    let err = "";
    c.stdout!.on("data", (d: Buffer) => out.push(d));
    c.stderr!.on("data", (d) => (err += d));
    const name = `'${[cmd, ...args].join(" ").slice(0, 300)}'`;
    const timer = setTimeout(() => {
      c.kill("SIGKILL");
      reject(new Error(`${name} did not finish in ${timeoutS} s (killed):\n${Buffer.concat(out).toString().slice(-4000)}\n${err.slice(-4000)}`));
    }, timeoutS * 1000);
    c.on("error", (e) => {
      clearTimeout(timer);
      reject(new Error(`${name} could not run: ${e.message}`));
    });
    c.on("close", (code, sig) => {
      clearTimeout(timer);
      const o = Buffer.concat(out);
      if (code === 0) resolve(o);
      else reject(new Error(`${name} failed (status ${code ?? sig}):\n${o.toString().slice(-4000)}\n${err.slice(-4000)}`));
    });
    if (input) {
      c.stdin!.on("error", () => {}); // reported through the exit status
      c.stdin!.end(input);
    }
  });
}

/** A shell command through {@link run}; its stdout as text. */
async function sh(cmd: string, timeoutS = 600): Promise<string> {
  return (await run("sh", ["-c", cmd], timeoutS)).toString();
}

/** Read `len` bytes at byte `offset` of a block device with O_DIRECT (dd, bounded). */
async function readDev(path: string, offset: number, len: number): Promise<Uint8Array> {
  const bs = 4096;
  const b = await run("dd", [`if=${path}`, `bs=${bs}`, `skip=${offset / bs}`, `count=${len / bs}`, "iflag=direct", "status=none"], 300);
  assert.equal(b.length, len, `read ${len} bytes from ${path}`);
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** Write `data` at byte `offset` of a block device with O_DIRECT and fsync (dd, bounded). */
async function writeDev(path: string, offset: number, data: Uint8Array): Promise<void> {
  const bs = 4096;
  await run("dd", [`of=${path}`, `bs=${bs}`, `seek=${offset / bs}`, `count=${data.length / bs}`, "iflag=fullblock", "oflag=direct", "conv=fsync,notrunc", "status=none"], 300, data);
}

/**
 * Send `sig` to the server. Through process.kill, not ChildProcess.kill: Deno's node:child_process
 * (2.9) sends only the first kill() of a child (later ones return false and send nothing) and then
 * reports that first signal as the exit signal whatever the real status was, so after a SIGUSR2
 * reset the SIGTERM and the SIGKILL were never sent.
 */
function signal(s: Server, sig: "SIGTERM" | "SIGKILL" | "SIGUSR2"): boolean {
  try {
    process.kill(s.child.pid!, sig);
    return true;
  } catch {
    return false; // gone already
  }
}

/** A server's exit, or "timeout" after `ms`. */
function exitWithin(s: Server, ms: number): Promise<number | string | null> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([s.exited, new Promise<"timeout">((r) => (t = setTimeout(() => r("timeout"), ms)))]).finally(() => clearTimeout(t));
}

interface Server {
  child: ChildProcess;
  devId: number;
  path: string;
  /** Resolves to the exit status, or the signal's name when a signal ended it. */
  exited: Promise<number | string | null>;
  log: () => string;
}

/** Start `ublk.ts add` (or `--recover ID`) and wait until it printed its device. */
async function startServer(extra: string[]): Promise<Server> {
  rmSync(READY, { force: true });
  const [cmd, args] = runtimeArgv("lib/cli/ublk.ts", ["add", `${PCI}:1`, "--ready-file", READY, ...extra]);
  const child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  const exited = new Promise<number | string | null>((r) => child.on("exit", (c, sig) => r(c ?? sig)));
  let done = false;
  void exited.then(() => (done = true));
  for (let i = 0; i < 1200 && !existsSync(READY); i++) {
    if (done) throw new Error(`ublk server exited before it was ready:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!existsSync(READY)) {
    child.kill("SIGKILL");
    throw new Error(`ublk server not ready in 120 s:\n${out}`);
  }
  const [id, path] = readFileSync(READY, "utf8").trim().split(" ");
  return { child, devId: Number(id), path, exited, log: () => out };
}

/** SIGTERM: the server stops and deletes the device, then exits 0 (bounded). */
async function stopServer(s: Server): Promise<void> {
  signal(s, "SIGTERM");
  const code = await exitWithin(s, 120_000);
  assert.equal(code, 0, `server exit after SIGTERM (${String(code)}):\n${s.log()}`);
  assert.ok(!existsSync(s.path), `${s.path} is gone after SIGTERM`);
  assert.ok(!existsSync(`/dev/ublkc${s.devId}`), "its char device too (DEL_DEV)");
}

function pattern(bytes: number, seed: number): Uint8Array {
  const b = new Uint8Array(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** The ublk CLI under this runtime, as one shell word list. */
const cli = (args: string): string => `${runtimeArgv("lib/cli/ublk.ts", []).flat().join(" ")} ${args}`;

/** Load a filesystem module (ext4, xfs: modules in the 6.12 guest, as tests/guest/tcp/target.sh loads them). */
async function loadModule(fs: "ext4" | "xfs"): Promise<void> {
  await sh(`modprobe -d "$TSNVME_KROOT" ${fs} 2>/dev/null || grep -q "^${fs} " /proc/modules`, 60);
}

/** Rebind the controller (bounded: an unbind that waits for a VFIO user fails the test). */
async function rebind(driver: "vfio" | "nvme"): Promise<void> {
  await run("scripts/guest-bind.sh", [driver, PCI], 120);
}

/**
 * On failure: unmount, kill the server, delete whatever device it left (a killed one stays
 * quiesced), rethrow with its log. Every step bounded.
 */
async function failWith(e: unknown, s: Server, mounted: boolean): Promise<never> {
  const notes: string[] = [];
  if (mounted) await sh(`umount ${MNT} 2>/dev/null || umount -l ${MNT} 2>/dev/null || true`, 120).catch((x) => notes.push(String(x)));
  signal(s, "SIGKILL");
  if (await exitWithin(s, 30_000) === "timeout") notes.push("the server did not exit in 30 s after SIGKILL");
  await sh(cli("del --all"), 120).catch((x) => notes.push(String(x)));
  const ps = await sh("ps -eo pid,stat,wchan:24,args | grep -v ' \\[' | tail -40; dmesg | tail -25", 30).catch(() => "");
  throw new Error(`${(e as Error).message}\n--- server log ---\n${s.log()}\n--- cleanup ---\n${notes.join("\n")}\n--- ps, dmesg ---\n${ps}`, { cause: e });
}

test(`ublk (${runtime}): raw IO, discard and write zeroes, fio randwrite verify QD32 on 2 queues with resets, ext4, SIGTERM delete, data seen by the kernel nvme driver both ways`, async () => {
  await loadModule("ext4");
  let s = await startServer(["--queues", "2", "--depth", "64"]);
  let mounted = false;
  try {
    const dev = s.path;
    assert.match(dev, /^\/dev\/ublkb\d+$/);
    const sysfs = `/sys/block/${dev.slice(5)}`;
    assert.equal(readFileSync(`${sysfs}/size`, "utf8").trim(), String(64 * 2048), "capacity in sectors");
    assert.equal(readFileSync(`${sysfs}/queue/logical_block_size`, "utf8").trim(), "512");
    assert.ok(Number(readFileSync(`${sysfs}/queue/max_sectors_kb`, "utf8")) >= 64);
    assert.equal((await sh(`ls ${sysfs}/mq | wc -l`)).trim(), "2", "two hardware queues");
    const list = JSON.parse(await sh(cli("list -o json"), 120));
    assert.ok(list.some((d: { devId: number; stateName: string; queues: number }) => d.devId === s.devId && d.stateName === "live" && d.queues === 2));

    // Write zeroes and discard read back as zeroes.
    await writeDev(dev, 60 << 20, pattern(256 << 10, 7));
    await sh(`blkdiscard -f -z -o ${60 << 20} -l ${128 << 10} ${dev}`);
    await sh(`blkdiscard -f -o ${(60 << 20) + (128 << 10)} -l ${128 << 10} ${dev}`);
    const z = await readDev(dev, 60 << 20, 256 << 10);
    assert.ok(z.every((b) => b === 0), "write zeroes and discard read back as zeroes");

    // fio randwrite with verify at QD32, two jobs (the two vCPUs map onto the two queues), with
    // two controller resets (SIGUSR2) under the writes: requests in flight are retried, none lost.
    let sent = 0;
    const resets = [2000, 5000].map((ms) => setTimeout(() => void (signal(s, "SIGUSR2") && sent++), ms));
    const fio = await sh(
      `fio --name=v --filename=${dev} --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k --iodepth=32 ` +
        `--numjobs=2 --size=16M --offset_increment=16M --verify=crc32c --verify_fatal=1 --do_verify=1 ` +
        `--verify_state_save=0 --group_reporting --output-format=json`,
    ).finally(() => resets.forEach(clearTimeout));
    const j = JSON.parse(fio.slice(fio.indexOf("{")));
    assert.equal(j.jobs[0].error, 0, "fio verify passed");
    assert.ok(j.jobs[0].write.total_ios >= 8192, `fio wrote (${j.jobs[0].write.total_ios} IOs)`);
    const done = () => s.log().match(/controller reset done/g)?.length ?? 0;
    for (let i = 0; i < 600 && done() < sent; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(sent >= 1, "fio ran long enough for a reset under IO");
    assert.equal(done(), sent, `every reset under IO completed:\n${s.log()}`);

    // ext4: files, umount, fsck clean, remount, checksums.
    await sh(`mkfs.ext4 -q -F -E nodiscard ${dev} 48M && mkdir -p ${MNT} && mount ${dev} ${MNT}`);
    mounted = true;
    await sh(`for i in 1 2 3 4 5 6 7 8; do head -c $((i * 300000)) /dev/urandom > ${MNT}/f$i; done; mkdir ${MNT}/d; ` +
      `cp ${MNT}/f3 ${MNT}/d/copy; sync`);
    const sums = await sh(`cd ${MNT} && sha256sum f* d/copy`);
    await sh(`umount ${MNT} && fsck.ext4 -fn ${dev} && mount ${dev} ${MNT}`);
    assert.equal(await sh(`cd ${MNT} && sha256sum f* d/copy`), sums, "checksums after remount");
    await sh(`umount ${MNT}`);
    mounted = false;

    // xfs on the same device (over the ext4 above): files, umount, xfs_repair -n clean, remount,
    // checksums. xfsprogs 5.19+ refuses filesystems under 300 MB unless it runs under fstests (its
    // three variables); 48 MiB keeps clear of the zeroes read back at 60 MiB.
    await loadModule("xfs");
    await sh(`TEST_DIR=${MNT} TEST_DEV=${dev} QA_CHECK_FS=1 mkfs.xfs -q -f -K -d size=48m ${dev} && mount ${dev} ${MNT}`);
    mounted = true;
    await sh(`for i in 1 2 3 4 5 6; do head -c $((i * 250000)) /dev/urandom > ${MNT}/x$i; done; mkdir ${MNT}/d; ` +
      `cp ${MNT}/x4 ${MNT}/d/copy; sync`);
    const xsums = await sh(`cd ${MNT} && sha256sum x* d/copy`);
    await sh(`umount ${MNT} && xfs_repair -n ${dev} && mount ${dev} ${MNT}`);
    assert.equal(await sh(`cd ${MNT} && sha256sum x* d/copy`), xsums, "xfs checksums after remount");
    await sh(`umount ${MNT}`);
    mounted = false;

    // Raw data, kept for the kernel driver to read later (last MiB of the namespace; written after
    // the filesystems because mkfs.xfs zeroes the device's last blocks whatever the fs size).
    const A = pattern(1 << 20, 0xab);
    await writeDev(dev, 63 << 20, A);
    assert.deepEqual(await readDev(dev, 63 << 20, 1 << 20), A, "read back through ublk");

    // SIGTERM stops and deletes the device.
    await stopServer(s);

    // Through the kernel nvme driver: ublk's data is there; write other data for ublk to find.
    await rebind("nvme");
    let B: Uint8Array;
    try {
      const kdev = nsBlockDev(1);
      assert.deepEqual(await readDev(kdev, 63 << 20, 1 << 20), A, "the kernel nvme driver reads what ublk wrote");
      B = pattern(512 << 10, 0xcd);
      await writeDev(kdev, 62 << 20, B);
    } finally {
      await rebind("vfio");
    }
    s = await startServer(["--queues", "1", "--depth", "16"]);
    assert.deepEqual(await readDev(s.path, 62 << 20, 512 << 10), B, "ublk reads what the kernel nvme driver wrote");
    await stopServer(s);
  } catch (e) {
    await failWith(e, s, mounted);
  }
}, skip);

test(`ublk (${runtime}): a server killed mid-IO (USER_RECOVERY) is taken over by a new one, fsync'd files intact, fsck clean`, async () => {
  await loadModule("ext4");
  let s = await startServer(["--queues", "2", "--depth", "64"]);
  let mounted = false;
  try {
    const dev = s.path;
    await sh(`mkfs.ext4 -q -F -E nodiscard ${dev} 48M && mkdir -p ${MNT} && mount ${dev} ${MNT}`);
    mounted = true;
    await sh(`for i in 1 2 3 4; do head -c $((i * 300000)) /dev/urandom > ${MNT}/f$i; done; sync`);
    const sums = await sh(`cd ${MNT} && sha256sum f*`);

    // The server killed mid-IO (USER_RECOVERY): fsync'd files intact, a new server takes over.
    await sh(`head -c 2000000 /dev/urandom > ${MNT}/synced && sync ${MNT}/synced`);
    const synced = await sh(`sha256sum ${MNT}/synced`);
    const writer = sh(`for i in $(seq 1 40); do head -c 200000 /dev/urandom > ${MNT}/bg$i; sync ${MNT}/bg$i; done`, 300);
    writer.catch(() => {}); // awaited below
    await new Promise((r) => setTimeout(r, 1500));
    signal(s, "SIGKILL");
    assert.notEqual(await exitWithin(s, 30_000), "timeout", "the killed server exits");
    const old = s;
    s = await startServer(["--recover", String(old.devId)]);
    assert.equal(s.path, old.path, "the same device, taken over");
    await writer; // IO issued around the kill completes after the takeover (reissued)
    assert.equal(await sh(`sha256sum ${MNT}/synced`), synced, "the fsync'd file is intact");
    await sh(`umount ${MNT} && fsck.ext4 -fn ${dev} && mount ${dev} ${MNT}`);
    assert.equal(await sh(`cd ${MNT} && sha256sum f*`), sums, "older files intact after the takeover");
    assert.equal(await sh(`sha256sum ${MNT}/synced`), synced);
    await sh(`umount ${MNT}`);
    mounted = false;

    await stopServer(s);
  } catch (e) {
    await failWith(e, s, mounted);
  }
}, skip);

if (!skip.ignore) process.stdout.write(`ublk guest test on ${runtime}, controller ${PCI}\n`);
