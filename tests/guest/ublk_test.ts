/**
 * Guest tier: the local kernel on a tsnvme device through ublk (Linux 6.12,
 * ublk_drv). The server is `lib/cli/ublk.ts add` in a child process of the
 * same runtime; the kernel's own tools (fio, mkfs.ext4, fsck, blkdiscard, dd)
 * drive /dev/ublkbN. xfsprogs is not in the guest (it sees the host's /,
 * which has no mkfs.xfs): ext4 only.
 *
 * The kill-and-takeover test (USER_RECOVERY) runs only with TSNVME_UBLK_TAKEOVER=1.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import process from "node:process";
import { test } from "../harness.ts";
import { bind, inGuest, nsBlockDev, PCI, readBlockDev, runtime, runtimeArgv, writeBlockDev } from "./util.ts";

const skip = { ignore: !inGuest || !existsSync("/dev/ublk-control"), sanitizeOps: false, sanitizeResources: false, timeout: 1_200_000 };
const TAKEOVER_ENV = "TSNVME_UBLK_TAKEOVER";
const takeoverOn = process.env[TAKEOVER_ENV] === "1";
const skipTakeover = { ...skip, ignore: skip.ignore || !takeoverOn };
const MNT = "/tmp/ublk-mnt";
const READY = "/tmp/ublk-ready";

/** Run a shell command; its stdout, or a thrown error with its output. */
function sh(cmd: string, timeoutS = 600): string {
  try {
    return execFileSync("sh", ["-c", cmd], { encoding: "utf8", timeout: timeoutS * 1000, maxBuffer: 1 << 26 });
  } catch (e) {
    const x = e as { stdout?: string; stderr?: string; status?: number };
    throw new Error(`'${cmd}' failed (status ${x.status}):\n${x.stdout ?? ""}\n${x.stderr ?? ""}`);
  }
}

/** As {@link sh}, without blocking the event loop (timers run meanwhile). */
function shAsync(cmd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn("sh", ["-c", cmd], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "", err = "";
    c.stdout!.on("data", (d) => (out += d));
    c.stderr!.on("data", (d) => (err += d));
    c.on("exit", (code) => code === 0 ? resolve(out) : reject(new Error(`'${cmd}' failed (status ${code}):\n${out}\n${err}`)));
  });
}

interface Server {
  child: ChildProcess;
  devId: number;
  path: string;
  exited: Promise<number | null>;
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
  const exited = new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
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

/** SIGTERM: the server stops and deletes the device, then exits 0. */
async function stopServer(s: Server): Promise<void> {
  s.child.kill("SIGTERM");
  const code = await Promise.race([s.exited, new Promise((r) => setTimeout(() => r("timeout"), 120_000))]);
  assert.equal(code, 0, `server exit (${String(code)}):\n${s.log()}`);
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

/** Load ext4 (a module in the 6.12 guest, as tests/guest/tcp/target.sh loads it). */
function loadExt4(): void {
  sh(`modprobe -d "$TSNVME_KROOT" ext4 2>/dev/null || grep -q "^ext4 " /proc/modules`);
}

/** On failure: kill the server, delete whatever device it left (a killed one stays quiesced), rethrow with its log. */
async function failWith(e: unknown, s: Server, cleanup: (() => void)[]): Promise<never> {
  for (const f of cleanup) f();
  s.child.kill("SIGKILL");
  await s.exited;
  try {
    sh(`${runtimeArgv("lib/cli/ublk.ts", []).flat().join(" ")} del --all`, 120);
  } catch { /* reported below with the first error */ }
  throw new Error(`${(e as Error).message}\n--- server log ---\n${s.log()}`, { cause: e });
}

test(`ublk (${runtime}): raw IO, discard and write zeroes, fio randwrite verify QD32 on 2 queues with resets, ext4, SIGTERM delete, data seen by the kernel nvme driver both ways`, async () => {
  loadExt4();
  let s = await startServer(["--queues", "2", "--depth", "64"]);
  const cleanup: (() => void)[] = [];
  try {
    const dev = s.path;
    assert.match(dev, /^\/dev\/ublkb\d+$/);
    const sysfs = `/sys/block/${dev.slice(5)}`;
    assert.equal(readFileSync(`${sysfs}/size`, "utf8").trim(), String(64 * 2048), "capacity in sectors");
    assert.equal(readFileSync(`${sysfs}/queue/logical_block_size`, "utf8").trim(), "512");
    assert.ok(Number(readFileSync(`${sysfs}/queue/max_sectors_kb`, "utf8")) >= 64);
    assert.equal(sh(`ls ${sysfs}/mq | wc -l`).trim(), "2", "two hardware queues");
    const list = JSON.parse(sh(`${runtimeArgv("lib/cli/ublk.ts", []).flat().join(" ")} list -o json`));
    assert.ok(list.some((d: { devId: number; stateName: string; queues: number }) => d.devId === s.devId && d.stateName === "live" && d.queues === 2));

    // Raw data, kept for the kernel driver to read later (last MiB of the namespace).
    const A = pattern(1 << 20, 0xab);
    writeBlockDev(dev, 4096, (63 << 20) / 4096, A);
    assert.deepEqual(readBlockDev(dev, 63 << 20, 1 << 20), A, "read back through ublk");

    // Write zeroes and discard read back as zeroes.
    writeBlockDev(dev, 4096, (60 << 20) / 4096, pattern(256 << 10, 7));
    sh(`blkdiscard -f -z -o ${60 << 20} -l ${128 << 10} ${dev}`);
    sh(`blkdiscard -f -o ${(60 << 20) + (128 << 10)} -l ${128 << 10} ${dev}`);
    sh(`echo 3 > /proc/sys/vm/drop_caches`);
    const z = readBlockDev(dev, 60 << 20, 256 << 10);
    assert.ok(z.every((b) => b === 0), "write zeroes and discard read back as zeroes");

    // fio randwrite with verify at QD32, two jobs (the two vCPUs map onto the two queues), with
    // two controller resets (SIGUSR1) under the writes: requests in flight are retried, none lost.
    let sent = 0;
    const resets = [2000, 5000].map((ms) => setTimeout(() => void (s.child.kill("SIGUSR1") && sent++), ms));
    const fio = await shAsync(
      `fio --name=v --filename=${dev} --ioengine=io_uring --direct=1 --rw=randwrite --bs=4k --iodepth=32 ` +
        `--numjobs=2 --size=16M --offset_increment=16M --verify=crc32c --verify_fatal=1 --do_verify=1 ` +
        `--verify_state_save=0 --group_reporting --output-format=json`,
    );
    resets.forEach(clearTimeout);
    const j = JSON.parse(fio.slice(fio.indexOf("{")));
    assert.equal(j.jobs[0].error, 0, "fio verify passed");
    assert.ok(j.jobs[0].write.total_ios >= 8192, `fio wrote (${j.jobs[0].write.total_ios} IOs)`);
    const done = () => s.log().match(/controller reset done/g)?.length ?? 0;
    for (let i = 0; i < 600 && done() < sent; i++) await new Promise((r) => setTimeout(r, 100));
    assert.ok(sent >= 1, "fio ran long enough for a reset under IO");
    assert.equal(done(), sent, `every reset under IO completed:\n${s.log()}`);

    // ext4: files, umount, fsck clean, remount, checksums.
    sh(`mkfs.ext4 -q -F -E nodiscard ${dev} 48M && mkdir -p ${MNT} && mount ${dev} ${MNT}`);
    cleanup.push(() => void sh(`umount ${MNT} 2>/dev/null || true`));
    sh(`for i in 1 2 3 4 5 6 7 8; do head -c $((i * 300000)) /dev/urandom > ${MNT}/f$i; done; mkdir ${MNT}/d; ` +
      `cp ${MNT}/f3 ${MNT}/d/copy; sync`);
    const sums = sh(`cd ${MNT} && sha256sum f* d/copy`);
    sh(`umount ${MNT} && fsck.ext4 -fn ${dev} && mount ${dev} ${MNT}`);
    assert.equal(sh(`cd ${MNT} && sha256sum f* d/copy`), sums, "checksums after remount");

    sh(`umount ${MNT}`);
    cleanup.length = 0;

    // SIGTERM stops and deletes the device.
    await stopServer(s);

    // Through the kernel nvme driver: ublk's data is there; write other data for ublk to find.
    bind("nvme");
    let B: Uint8Array;
    try {
      const kdev = nsBlockDev(1);
      assert.deepEqual(readBlockDev(kdev, 63 << 20, 1 << 20), A, "the kernel nvme driver reads what ublk wrote");
      B = pattern(512 << 10, 0xcd);
      writeBlockDev(kdev, 4096, (62 << 20) / 4096, B);
    } finally {
      bind("vfio");
    }
    s = await startServer(["--queues", "1", "--depth", "16"]);
    assert.deepEqual(readBlockDev(s.path, 62 << 20, 512 << 10), B, "ublk reads what the kernel nvme driver wrote");
    await stopServer(s);
  } catch (e) {
    await failWith(e, s, cleanup);
  }
}, skip);

test(`ublk (${runtime}): a server killed mid-IO (USER_RECOVERY) is taken over by a new one, fsync'd files intact (only with ${TAKEOVER_ENV}=1)`, async () => {
  loadExt4();
  let s = await startServer(["--queues", "2", "--depth", "64"]);
  const cleanup: (() => void)[] = [];
  try {
    const dev = s.path;
    sh(`mkfs.ext4 -q -F -E nodiscard ${dev} 48M && mkdir -p ${MNT} && mount ${dev} ${MNT}`);
    cleanup.push(() => void sh(`umount ${MNT} 2>/dev/null || true`));
    sh(`for i in 1 2 3 4; do head -c $((i * 300000)) /dev/urandom > ${MNT}/f$i; done; sync`);
    const sums = sh(`cd ${MNT} && sha256sum f*`);

    // The server killed mid-IO (USER_RECOVERY): fsync'd files intact, a new server takes over.
    sh(`head -c 2000000 /dev/urandom > ${MNT}/synced && sync ${MNT}/synced`);
    const synced = sh(`sha256sum ${MNT}/synced`);
    const writer = spawn("sh", ["-c", `for i in $(seq 1 40); do head -c 200000 /dev/urandom > ${MNT}/bg$i; sync ${MNT}/bg$i; done`], { stdio: "ignore" });
    const writerDone = new Promise<number | null>((r) => writer.on("exit", (c) => r(c)));
    await new Promise((r) => setTimeout(r, 1500));
    s.child.kill("SIGKILL");
    await s.exited;
    const old = s;
    s = await startServer(["--recover", String(old.devId)]);
    assert.equal(s.path, old.path, "the same device, taken over");
    const w = await Promise.race([writerDone, new Promise((r) => setTimeout(() => r("timeout"), 300_000))]);
    if (w === "timeout") writer.kill("SIGKILL");
    assert.equal(w, 0, `IO issued around the kill completed after the takeover (reissued):\n${s.log()}`);
    assert.equal(sh(`sha256sum ${MNT}/synced`), synced, "the fsync'd file is intact");
    sh(`umount ${MNT} && fsck.ext4 -fn ${dev} && mount ${dev} ${MNT}`);
    assert.equal(sh(`cd ${MNT} && sha256sum f*`), sums, "older files intact after the takeover");
    assert.equal(sh(`sha256sum ${MNT}/synced`), synced);
    sh(`umount ${MNT}`);
    cleanup.length = 0;

    await stopServer(s);
  } catch (e) {
    await failWith(e, s, cleanup);
  }
}, skipTakeover);

if (!skip.ignore && !takeoverOn) {
  process.stdout.write(`ublk takeover test skipped: set ${TAKEOVER_ENV}=1 to run it (kill -9 of the server and USER_RECOVERY takeover)\n`);
}
if (!skip.ignore) process.stdout.write(`ublk guest test on ${runtime}, controller ${PCI}\n`);
