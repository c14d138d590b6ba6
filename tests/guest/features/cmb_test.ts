/**
 * Features tier (scripts/guest.sh --feature cmb): QEMU's NVMe with a 16 MiB controller memory
 * buffer (controller TSNVMECMB1 at 0000:00:13.0). tsnvme maps the CMB's BAR through VFIO, enables
 * it at its bus address (CMBMSC) and puts its IO submission queues there; IO is served from them
 * (the SQEs are read back from the BAR), data matches the kernel nvme driver's reading of the same
 * LBAs, and the same holds with the CMB turned off.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import process from "node:process";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { decodeCmb } from "../../../lib/nvme/pcie.ts";
import { IoOpc, Reg } from "../../../lib/nvme/spec.ts";
import type { VfioTransport } from "../../../lib/vfio/transport.ts";
import { firstDiff, inGuest, nsBlockDev, randomBytes, readBlockDev, runtime } from "../util.ts";

const CPCI = "0000:00:13.0";
const on = inGuest && (process.env.TSNVME_FEATURES ?? "").split(",").includes("cmb");
const opts = { ignore: !on };
const LBA = runtime === "bun" ? 8192 : 0;

function bindC(driver: "vfio" | "nvme"): void {
  execFileSync("scripts/guest-bind.sh", [driver, CPCI], { stdio: ["ignore", "ignore", "inherit"] });
}

async function io(dev: NVMeDev, lba: number, seed: number): Promise<Uint8Array> {
  const ns = dev.ns(1), per = 4096 / ns.blockSize;
  const all = randomBytes(32 * 4096, seed);
  await Promise.all(Array.from({ length: 32 }, (_, i) => ns.write(lba + i * per, all.subarray(i * 4096, (i + 1) * 4096))));
  const back = new Uint8Array(all.length);
  await Promise.all(Array.from({ length: 32 }, (_, i) => ns.read(lba + i * per, back.subarray(i * 4096, (i + 1) * 4096))));
  assert.equal(firstDiff(back, all), -1);
  return all;
}

test("cmb: IO submission queues in the controller memory buffer serve IO; the kernel reads the same data", async () => {
  const seed = (Date.now() ^ 0xc3b) >>> 0;
  console.log(`[${runtime}] cmb seed ${seed}`);
  let a: Uint8Array, b: Uint8Array;
  {
    await using dev = await NVMeDev.open(CPCI, { ioQueues: 2, ioQueueDepth: 64 });
    const t = dev.controller.transport as VfioTransport;
    const msc = t.readReg64(Reg.CMBMSC);
    const cmb = decodeCmb(t.readReg32(Reg.CMBLOC), t.readReg32(Reg.CMBSZ));
    console.log(`[${runtime}] CMBMSC 0x${msc.toString(16)}, CMB ${JSON.stringify(cmb)}`);
    assert.equal(msc & 3n, 3n, "CRE and CMSE set");
    assert.ok(cmb && cmb.supports & 1, "QEMU's CMB takes SQs");
    a = await io(dev, LBA, seed);
    // Read the SQEs back through a second mapping of the BAR: queue 1's first entry is one of ours.
    const bar = t.mapBar(cmb!.bar)!;
    assert.equal(BigInt(bar.busAddress + cmb!.offset), msc & ~0xfffn, "CBA is the BAR's bus address");
    const sq = new Uint32Array(bar.bytes.buffer, bar.bytes.byteOffset + cmb!.offset, 64 * 16);
    const opcodes = new Set<number>();
    for (let i = 0; i < 64; i++) opcodes.add(sq[i * 16] & 0xff);
    assert.ok(opcodes.has(IoOpc.WRITE) && opcodes.has(IoOpc.READ), `SQEs in the CMB (opcodes ${[...opcodes]})`);
    await dev.controller.reset();
    b = await io(dev, LBA + 32 * 8, seed + 1);
  }
  {
    await using dev = await NVMeDev.open(CPCI, { pcie: { cmbQueues: false } });
    await io(dev, LBA + 64 * 8, seed + 2);
  }
  bindC("nvme");
  try {
    const blk = nsBlockDev(1, CPCI);
    assert.equal(firstDiff(readBlockDev(blk, LBA * 512, a.length), a), -1);
    assert.equal(firstDiff(readBlockDev(blk, (LBA + 256) * 512, b.length), b), -1);
  } finally {
    bindC("vfio");
  }
}, opts);
