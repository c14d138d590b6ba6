/**
 * Guest tier: the driver against QEMU's emulated NVMe controller through real
 * VFIO and an emulated IOMMU, cross-checked with nvme-cli and the kernel nvme
 * driver in the same boot. Run by tests/guest/run.sh on Deno and on Bun.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chownSync, mkdtempSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import process from "node:process";
import { test } from "../harness.ts";
import { idCtrlToJson, idNsToJson } from "../../lib/cli/format/identify.ts";
import { NVMeDev } from "../../lib/dev.ts";
import {
  ControllerResetError,
  DeviceBusyError,
  DeviceClosedError,
  InvalidArgumentError,
  NvmeTimeoutError,
  SetupError,
} from "../../lib/nvme/errors.ts";
import type { VfioTransport } from "../../lib/vfio/transport.ts";
import {
  bind,
  firstDiff,
  inGuest,
  nsBlockDev,
  nvmeCliJson,
  PCI,
  randomBytes,
  readBlockDev,
  runtime,
  runtimeArgv,
  writeBlockDev,
} from "./util.ts";

const skip = { ignore: !inGuest };
const cli: { ctrl?: Record<string, unknown>; ns: Record<number, Record<string, unknown>> } = { ns: {} };
/** Expected contents of every byte written so far, per namespace. */
const written: Record<number, { lba: number; len: number }[]> = { 1: [], 2: [] };
const shadow: Record<number, Uint8Array> = {};
let seed = (Date.now() ^ (runtime === "bun" ? 0x5bd1e995 : 0x27d4eb2d)) >>> 0;
console.log(`[${runtime}] data seed ${seed}`);
function rng(n: number): number {
  seed ^= seed << 13;
  seed >>>= 0;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  seed >>>= 0;
  return seed % n;
}

function compareFields(ours: Record<string, unknown>, theirs: Record<string, unknown>, what: string): number {
  assert.deepEqual(Object.keys(ours), Object.keys(theirs), `${what}: same fields in the same order`);
  let n = 0;
  for (const k of Object.keys(theirs)) {
    assert.deepEqual(ours[k], theirs[k], `${what}.${k}`);
    n++;
  }
  return n;
}

test("kernel driver bound: nvme-cli identity captured, and the driver refuses with a clear setup error", async () => {
  bind("nvme");
  cli.ctrl = nvmeCliJson(["id-ctrl", "/dev/nvme0"]);
  for (const nsid of [1, 2]) cli.ns[nsid] = nvmeCliJson(["id-ns", nsBlockDev(nsid)]);
  await assert.rejects(NVMeDev.open(PCI), (e: unknown) => {
    assert.ok(e instanceof SetupError);
    assert.equal(e.reason, "not-bound");
    assert.match(e.message, /bound to nvme, not vfio-pci/);
    assert.match(e.message, /driver_override/);
    return true;
  });
  bind("vfio");
}, skip);

test("Identify Controller and Namespace match nvme-cli field by field", async () => {
  await using dev = await NVMeDev.open(PCI);
  const ours = JSON.parse(idCtrlToJson(dev.idCtrl));
  const n = compareFields(ours, cli.ctrl!, "id-ctrl");
  assert.ok(n > 80, `compared ${n} id-ctrl fields`);
  for (const nsid of [1, 2]) {
    const m = compareFields(JSON.parse(idNsToJson(dev.idNs(nsid))), cli.ns[nsid], `id-ns ${nsid}`);
    assert.ok(m > 30, `compared ${m} id-ns fields`);
  }
  assert.equal(dev.info.model, "QEMU NVMe Ctrl");
  assert.equal(dev.info.serial, "TSNVME0001");
  assert.deepEqual(dev.nsList(), [1, 2]);
  assert.equal(dev.ns(1).blockSize, 512);
  assert.equal(dev.ns(2).blockSize, 4096);
  assert.equal(dev.ns(1).blockCount, 64 * 2048);
  assert.equal(dev.ns(2).blockCount, 16 * 256);
}, skip);

test("CLI id-ctrl / id-ns JSON equals nvme-cli's", () => {
  const run = (args: string[]) => {
    const [cmd, argv] = runtimeArgv("lib/cli/nvme.ts", args);
    const r = spawnSync(cmd, argv, { encoding: "utf8", maxBuffer: 1 << 24 });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  compareFields(run(["id-ctrl", PCI, "--output-format", "json"]), cli.ctrl!, "cli id-ctrl");
  compareFields(run(["id-ns", PCI, "--namespace-id", "2", "-o", "json"]), cli.ns[2], "cli id-ns 2");
}, skip);

test("random data at random LBAs, one block to several MiB, reads back identical", async () => {
  await using dev = await NVMeDev.open(PCI);
  const mdts = dev.info.maxTransferBytes;
  assert.equal(mdts, 512 * 1024, "QEMU: MDTS 7 with 4 KiB pages");
  for (const nsid of [1, 2]) {
    const ns = dev.ns(nsid);
    const bs = ns.blockSize;
    shadow[nsid] = new Uint8Array(ns.sizeBytes);
    // One block, a page-crossing run, exactly MDTS, just over MDTS, several MDTS chunks, more than a bounce segment.
    const sizes = [bs, 7 * bs, 64 * 1024, mdts, mdts + bs, 3 * 1024 * 1024 + 5 * bs, 5 * 1024 * 1024];
    let k = 0;
    for (const size of sizes) {
      const blocks = Math.ceil(size / bs);
      const len = blocks * bs;
      const lba = rng(ns.blockCount - blocks + 1);
      const data = randomBytes(len, seed + k);
      // Alternate zero-copy DMA buffers and plain memory (bounced); odd offsets too.
      if (k % 2 === 0) {
        const b = dev.allocBuffer(len);
        b.set(data);
        await ns.write(lba, b);
        dev.freeBuffer(b);
      } else {
        const plain = new Uint8Array(len + 1).subarray(1);
        plain.set(data);
        await ns.write(BigInt(lba), plain);
      }
      shadow[nsid].set(data, lba * bs);
      written[nsid].push({ lba, len });
      k++;
    }
    await ns.flush();
    for (const [i, { lba, len }] of written[nsid].entries()) {
      const expect = shadow[nsid].subarray(lba * bs, lba * bs + len);
      const viaDma = dev.allocBuffer(len);
      await ns.read(lba, viaDma);
      assert.equal(firstDiff(viaDma, expect), -1, `ns ${nsid} write ${i} (${len} B at ${lba}) via DMA buffer`);
      dev.freeBuffer(viaDma);
      const plain = new Uint8Array(len);
      await ns.read(lba, plain);
      assert.equal(firstDiff(plain, expect), -1, `ns ${nsid} write ${i} via plain buffer`);
    }
  }
  // Many commands in flight on one queue at once.
  const ns = dev.ns(1);
  const reads = Array.from({ length: 256 }, (_, i) => {
    const { lba, len } = written[1][i % written[1].length];
    const n = Math.min(len, 4096);
    const b = new Uint8Array(n);
    return ns.read(lba, b).then(() => firstDiff(b, shadow[1].subarray(lba * 512, lba * 512 + n)));
  });
  assert.deepEqual(new Set(await Promise.all(reads)), new Set([-1]));
  const st = dev.queueStats()[0];
  assert.equal(st.submitted, st.completed);
  assert.equal(st.bogus, 0);
  assert.ok(st.sqDoorbells < st.submitted, `doorbells batched: ${st.sqDoorbells} for ${st.submitted} commands`);
}, skip);

test("four IO queue pairs on QEMU: reads spread over every queue, data intact", async () => {
  await using dev = await NVMeDev.open(PCI, { ioQueues: 4, ioQueueDepth: 128 });
  assert.equal(dev.info.ioQueues, 4);
  const ns = dev.ns(1);
  const checks = Array.from({ length: 400 }, (_, i) => {
    const { lba, len } = written[1][i % written[1].length];
    const n = Math.min(len, 8192);
    const b = new Uint8Array(n);
    return ns.read(lba, b).then(() => firstDiff(b, shadow[1].subarray(lba * 512, lba * 512 + n)));
  });
  assert.deepEqual(new Set(await Promise.all(checks)), new Set([-1]));
  for (const s of dev.queueStats()) {
    assert.ok(s.submitted >= 90, JSON.stringify(s));
    assert.equal(s.submitted, s.completed);
    assert.equal(s.bogus, 0);
  }
}, skip);

test("second open fails cleanly, in this process and from another one", async () => {
  await using dev = await NVMeDev.open(PCI);
  await assert.rejects(NVMeDev.open(PCI), DeviceBusyError);
  await assert.rejects(NVMeDev.open(PCI.slice(5)), DeviceBusyError, "short address form is the same device");
  const [cmd, argv] = runtimeArgv("lib/cli/nvme.ts", ["id-ctrl", PCI]);
  const r = spawnSync(cmd, argv, { encoding: "utf8" });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /already open/);
  assert.deepEqual(dev.nsList(), [1, 2], "the first handle still works");
  await dev.ns(1).read(0, new Uint8Array(512));
}, skip);

test("bad input gets typed errors and nothing reaches the device", async () => {
  const dev = await NVMeDev.open(PCI);
  const ns = dev.ns(1);
  const before = dev.queueStats()[0].submitted;
  assert.throws(() => dev.ns(3), InvalidArgumentError);
  assert.throws(() => dev.ns(0), InvalidArgumentError);
  assert.throws(() => dev.ns(0xffffffff), InvalidArgumentError);
  await assert.rejects(ns.read(ns.blockCount, new Uint8Array(512)), InvalidArgumentError);
  await assert.rejects(ns.write(ns.blockCount - 1, new Uint8Array(1024)), InvalidArgumentError);
  await assert.rejects(ns.write(0, new Uint8Array(100)), InvalidArgumentError);
  await assert.rejects(ns.read(0, new Uint8Array(0)), InvalidArgumentError);
  await assert.rejects(dev.ns(2).read(0, new Uint8Array(512)), InvalidArgumentError, "512 B on a 4 KiB namespace");
  assert.throws(() => dev.allocBuffer(0), InvalidArgumentError);
  assert.throws(() => dev.freeBuffer(new Uint8Array(8)), InvalidArgumentError);
  assert.equal(dev.queueStats()[0].submitted, before, "no command was sent");
  await assert.rejects(NVMeDev.open("/dev/nvme0"), InvalidArgumentError);
  await assert.rejects(NVMeDev.open("0000:00:01.0"), SetupError);
  await dev.close();
  await dev.close(); // idempotent
  await assert.rejects(ns.read(0, new Uint8Array(512)), DeviceClosedError);
  assert.throws(() => dev.ns(1), DeviceClosedError);
  assert.throws(() => dev.allocBuffer(4096), DeviceClosedError);
}, skip);

test("close during IO fails in-flight commands with a typed error, then reopen works", async () => {
  const dev = await NVMeDev.open(PCI);
  const ns = dev.ns(1);
  const inflight = Array.from({ length: 64 }, (_, i) => ns.read(i * 8, new Uint8Array(4096)).then(() => "ok", (e) => e));
  const closing = dev.close();
  const results = await Promise.all(inflight);
  await closing;
  for (const r of results) assert.ok(r === "ok" || r instanceof DeviceClosedError, String(r));
  await using again = await NVMeDev.open(PCI);
  const { lba, len } = written[1][0];
  const b = new Uint8Array(len);
  await again.ns(1).read(lba, b);
  assert.equal(firstDiff(b, shadow[1].subarray(lba * 512, lba * 512 + len)), -1);
}, skip);

test("controller fatal status (CSTS.CFS): in-flight IO fails typed, the driver resets and recovers by itself", async () => {
  const dev = await NVMeDev.open(PCI, { ioTimeoutMs: 2000 });
  const ns = dev.ns(1);
  await ns.read(0, new Uint8Array(4096));
  // With bus mastering off, QEMU's controller cannot DMA and declares itself fatal.
  const vfio = (dev.controller.transport as VfioTransport).device;
  const cmd = vfio.readConfig(4, 2);
  vfio.writeConfig(4, new Uint8Array([cmd[0] & ~4, cmd[1]]));
  const t0 = performance.now();
  const r = await ns.read(8, new Uint8Array(4096)).then(() => null, (e) => e);
  assert.ok(
    r instanceof ControllerResetError || r instanceof NvmeTimeoutError,
    `in-flight command fails with a typed error, got ${r}`,
  );
  assert.ok(performance.now() - t0 < 5000, "no hang");
  // Recovery: function level reset, controller reset, queues re-created on the same memory.
  const { lba, len } = written[1][0];
  const b = new Uint8Array(len);
  await ns.read(lba, b);
  assert.equal(firstDiff(b, shadow[1].subarray(lba * 512, lba * 512 + len)), -1);
  assert.equal(dev.controller.resets, 1);
  assert.equal(dev.controller.failed, null);
  await dev.close();
}, skip);

test("non-root user: permission and memlock problems are typed setup errors with the fix", () => {
  const group = readlinkSync(`/sys/bus/pci/devices/${PCI}/iommu_group`).split("/").pop();
  const node = `/dev/vfio/${group}`;
  const asNobody = (memlockKiB: string) => {
    const [cmd, argv] = runtimeArgv("tests/guest/open_child.ts", [PCI]);
    const rtArgv = runtime === "deno" ? ["run", "-A", "--no-check", ...argv.slice(2)] : argv;
    const sh = `ulimit -l ${memlockKiB}; exec "$0" "$@"`;
    const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", sh, cmd, ...rtArgv], {
      encoding: "utf8",
      env: { ...process.env, HOME: "/tmp", DENO_DIR: "/tmp/deno-nobody", XDG_CACHE_HOME: "/tmp/cache-nobody" },
    });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout.trim().split("\n").pop()!);
  };
  try {
    const denied = asNobody("unlimited");
    assert.equal(denied.code, "ESETUP", JSON.stringify(denied));
    assert.equal(denied.reason, "permission");
    assert.match(denied.message, new RegExp(`chown .* ${node}`));
    chownSync(node, 65534, 65534);
    const pinned = asNobody("64");
    assert.equal(pinned.reason, "memlock", JSON.stringify(pinned));
    assert.match(pinned.message, /ulimit -l/);
    assert.deepEqual(asNobody("unlimited"), { ok: true }, "with the node and the limit, a non-root user can use the device");
  } finally {
    chownSync(node, 0, 0);
  }
}, skip);

test("CLI write then read round-trips a file", () => {
  const dir = mkdtempSync("/tmp/tsnvme-");
  const data = randomBytes(8 * 4096, 77);
  writeFileSync(`${dir}/in.bin`, data);
  const common = ["--namespace-id", "2", "--start-block", "100", "--block-count", "7", "--data-size", String(data.length)];
  for (const [verb, file] of [["write", "in.bin"], ["read", "out.bin"]]) {
    const [cmd, argv] = runtimeArgv("lib/cli/nvme.ts", [verb, PCI, ...common, "--data", `${dir}/${file}`]);
    const r = spawnSync(cmd, argv, { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`${verb}: Success`));
  }
  assert.equal(firstDiff(new Uint8Array(readFileSync(`${dir}/out.bin`)), data), -1);
  shadow[2].set(data, 100 * 4096);
  written[2].push({ lba: 100, len: data.length });
  const [cmd, argv] = runtimeArgv("lib/cli/nvme.ts", ["read", PCI, "-n", "2", "-c", "1", "-z", "4096"]);
  const r = spawnSync(cmd, argv, { encoding: "utf8" });
  assert.equal(r.status, 2, "data-size smaller than the transfer is a usage error");
}, skip);

test("kernel driver reads what the driver wrote; the driver reads what the kernel wrote", async () => {
  bind("nvme");
  const kernelWrites: { nsid: number; lba: number; data: Uint8Array }[] = [];
  try {
    for (const nsid of [1, 2]) {
      const bs = nsid === 1 ? 512 : 4096;
      for (const [i, { lba, len }] of written[nsid].entries()) {
        const got = readBlockDev(nsBlockDev(nsid), lba * bs, len);
        assert.equal(firstDiff(got, shadow[nsid].subarray(lba * bs, lba * bs + len)), -1, `kernel view of ns ${nsid} write ${i}`);
      }
      const total = nsid === 1 ? 131072 : 4096;
      const third = Math.floor(total / 3);
      for (const [k, blocks] of [1, 9, 300].entries()) {
        // Disjoint thirds: an overlapping later write would change an earlier one's expected data.
        const lba = k * third + rng(third - blocks + 1);
        const data = randomBytes(blocks * bs, seed + blocks);
        writeBlockDev(nsBlockDev(nsid), bs, lba, data);
        kernelWrites.push({ nsid, lba, data });
      }
    }
  } finally {
    bind("vfio");
  }
  await using dev = await NVMeDev.open(PCI);
  for (const { nsid, lba, data } of kernelWrites) {
    const b = new Uint8Array(data.length);
    await dev.ns(nsid).read(lba, b);
    assert.equal(firstDiff(b, data), -1, `driver view of kernel write on ns ${nsid} at ${lba}`);
  }
}, skip);
