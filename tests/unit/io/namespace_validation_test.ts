import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { type IoHost, Namespace } from "../../../lib/io/namespace.ts";
import { DeviceClosedError, InvalidArgumentError, type NvmeError } from "../../../lib/nvme/errors.ts";
import type { QueuePair } from "../../../lib/nvme/queue.ts";
import { normalizePciAddress } from "../../../lib/vfio/sysfs.ts";
import { IovaAllocator } from "../../../lib/vfio/transport.ts";

function host() {
  const h = {
    closed: null as NvmeError | null,
    picks: 0,
    calls: [] as number[][],
  };
  const qp = {
    defaultTimeoutMs: 1000,
    rw(opc: number, nsid: number, slba: number, nlb0: number) {
      h.calls.push([opc, nsid, slba, nlb0]);
      return Promise.resolve(0);
    },
    submit() {
      h.calls.push([0]);
      return Promise.resolve(0);
    },
  } as unknown as QueuePair;
  const io: IoHost = {
    get closedError() {
      return h.closed;
    },
    pickQueue: () => {
      h.picks++;
      return qp;
    },
    maxTransferBytes: 128 * 1024,
    dmaOf: () => null,
    takeBounce: (size: number) => ({ bytes: new Uint8Array(size), iova: 0x100000, size, busy: 0, onIdle: null }),
    giveBounce: () => {},
  };
  const ns = new Namespace(io, {
    nsid: 1, blockSize: 512, blockCount: 1000n, capacity: 1000n, utilization: 0n, metadataSize: 0, lbaFormat: 0,
  });
  return { h, ns };
}

test("bad IO arguments are rejected with InvalidArgumentError and reach no queue", async () => {
  const { h, ns } = host();
  const b = new Uint8Array(512);
  const bad: [string, () => Promise<void>][] = [
    ["negative lba", () => ns.read(-1, b)],
    ["fractional lba", () => ns.read(1.5, b)],
    ["NaN lba", () => ns.read(NaN, b)],
    ["string lba", () => ns.read("3" as unknown as number, b)],
    ["negative bigint lba", () => ns.write(-1n, b)],
    ["lba past end", () => ns.read(1000, b)],
    ["range past end", () => ns.write(999, new Uint8Array(1024))],
    ["huge lba", () => ns.read(2 ** 60, b)],
    ["empty buffer", () => ns.read(0, new Uint8Array(0))],
    ["length not a block multiple", () => ns.write(0, new Uint8Array(513))],
    ["not a buffer", () => ns.read(0, "abc" as unknown as Uint8Array)],
    ["null buffer", () => ns.read(0, null as unknown as Uint8Array)],
    ["zero timeout", () => ns.read(0, b, { timeoutMs: 0 })],
    ["infinite timeout", () => ns.flush({ timeoutMs: Infinity })],
  ];
  for (const [what, f] of bad) {
    await assert.rejects(f(), InvalidArgumentError, what);
  }
  assert.equal(h.picks, 0);
  assert.equal(h.calls.length, 0);
});

test("valid IO splits at the transfer limit and keeps LBAs contiguous", async () => {
  const { h, ns } = host();
  await ns.write(10, new Uint8Array(512 * 600)); // 256 blocks per command
  assert.deepEqual(h.calls.map((c) => [c[2], c[3]]), [[10, 255], [266, 255], [522, 87]]);
  await ns.read(999n, new Uint16Array(256)); // a typed array of another kind: 512 bytes
  assert.deepEqual(h.calls.at(-1), [0x02, 1, 999, 0]);
});

test("closed device: IO fails with DeviceClosedError before reaching a queue", async () => {
  const { h, ns } = host();
  h.closed = new DeviceClosedError();
  await assert.rejects(ns.read(0, new Uint8Array(512)), DeviceClosedError);
  await assert.rejects(ns.flush(), DeviceClosedError);
  assert.equal(h.picks, 0);
});

test("PCI addresses are normalised and garbage is refused", () => {
  assert.equal(normalizePciAddress("01:00.0"), "0000:01:00.0");
  assert.equal(normalizePciAddress("0000:AF:1f.7"), "0000:af:1f.7");
  for (const s of ["", "1:0.0", "0000:01:00.8", "/dev/nvme0", "0000:01:00.0; rm -rf /"]) {
    assert.equal(normalizePciAddress(s), null, s);
  }
});

test("IOVA allocator stays inside windows, skips gaps, reuses freed ranges", () => {
  const a = new IovaAllocator([{ start: 0, end: 0xfedf_ffff }, { start: 0xfef0_0000, end: 0xff_ffff_ffff }]);
  const x = a.alloc(8192);
  assert.equal(x, 0x10_0000, "never hands out IOVA 0");
  const big = a.alloc(0xfed0_0000);
  assert.ok(big >= 0xfef0_0000, "a range that does not fit moves to the next window");
  a.free(x, 8192);
  assert.equal(a.alloc(8192), x);
});
