// Child process for tests/unit/ffi/load_test.ts and tests/unit/nvme/pcie_test.ts: polls read-only
// pages hot enough for the optimizing JIT, then prints "survived". A poll that writes (Bun's
// Atomics.load is a locked read-modify-write) dies here with SIGSEGV.
//   "load": lib/ffi's pollLoad32 over a PROT_READ page.
//   "ring": a PcieRing whose CQ and shadow-doorbell event index are read-only pages (reap, flush).
import { loadLibc, MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE } from "../../../lib/ffi/mod.ts";
import { pollLoad32 } from "../../../lib/ffi/load.ts";
import { PcieRing } from "../../../lib/nvme/pcie.ts";
import { dmaBuffer } from "../../../lib/nvme/transport.ts";
import type { CompletionSink } from "../../../lib/nvme/ring.ts";

const MAP_FIXED = 0x10, PAGE = 4096;
const libc = await loadLibc();
const mode = (globalThis as { process?: { argv: string[] } }).process!.argv.at(-1);

function map(prot: number): bigint {
  const a = libc.mmap(0n, BigInt(PAGE), prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0n);
  if (a === MAP_FAILED) throw new Error("mmap failed");
  return a;
}
/** Replace the page at `addr` with a read-only zero page at the same address: views over it stay valid. */
function readOnly(addr: bigint): void {
  if (libc.mmap(addr, BigInt(PAGE), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0n) !== addr) {
    throw new Error("remap failed");
  }
}

let sum = 0;
if (mode === "load") {
  const u32 = new Uint32Array(libc.view(map(PROT_READ), PAGE));
  for (let k = 0; k < 2_000_000; k++) sum += pollLoad32(u32, k & 1023);
} else if (mode === "ring") {
  const depth = 64, qid = 1, stride = 4;
  const cqAddr = map(PROT_READ | PROT_WRITE), eiAddr = map(PROT_READ | PROT_WRITE);
  const cqBytes = new Uint8Array(libc.view(cqAddr, PAGE));
  const sq = dmaBuffer(new Uint8Array(depth * 64), 0x10_0000, depth * 64);
  const cq = dmaBuffer(cqBytes, 0x20_0000, PAGE);
  const shadow = new Uint32Array(PAGE / 4), eventIdx = new Uint32Array(libc.view(eiAddr, PAGE));
  const doorbells = new Uint32Array(64);
  const ring = new PcieRing({
    qid, depth, sq, cq, prp: null, prpPagesPerSlot: 0, pageSize: PAGE, doorbells, doorbellStride: stride,
    dbbuf: { shadow, eventIdx },
  });
  // The ring zeroes its event index when built; from here on only the device may write these pages.
  readOnly(cqAddr);
  readOnly(eiAddr);
  const sink: CompletionSink = { complete: () => sum++, active: 1, failAll: () => {} };
  for (let k = 0; k < 2_000_000; k++) {
    sum += ring.reap(sink);
    if ((k & 7) === 0) {
      ring.entry()[0] = 2;
      ring.push();
      ring.flush(); // reads the event index
    }
  }
} else throw new Error(`unknown mode ${mode}`);
console.log(`survived ${sum}`);
