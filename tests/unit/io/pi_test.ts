import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import { formatNvm } from "../../../lib/admin/manage.ts";
import { InvalidArgumentError, NvmePiError, PiCheckError } from "../../../lib/nvme/errors.ts";
import { Prinfo } from "../../../lib/nvme/pi.ts";
import { generatePi, verifyPi } from "../../../lib/io/pi.ts";

async function open(): Promise<{ dev: NVMeDev; t: SimTransport }> {
  const t = await SimTransport.create({ piFormats: true, namespaces: [{ size: 1 << 20, blockSize: 512 }], mdts: 2 });
  return { dev: await NVMeDev.open("sim", { transport: t }), t };
}

function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

// Formats of the software controller with piFormats: 2 = 512+8, 3 = 4096+8, 4 = 4096+16 (64-bit guard),
// 5 = 512+16 (64-bit guard), 6 = 4096+64, 7 = 4096+64 (64-bit guard).
const CASES = [
  { lbaf: 2, mset: false, pi: 1, pil: false, guard: 16 },
  { lbaf: 3, mset: true, pi: 2, pil: false, guard: 16 },
  { lbaf: 4, mset: false, pi: 1, pil: false, guard: 64 },
  { lbaf: 5, mset: true, pi: 3, pil: true, guard: 64 },
  { lbaf: 6, mset: false, pi: 1, pil: true, guard: 16 },
  { lbaf: 6, mset: true, pi: 2, pil: false, guard: 16 },
  { lbaf: 7, mset: false, pi: 3, pil: false, guard: 64 },
];

for (const c of CASES) {
  test(`io/pi: lbaf ${c.lbaf} ${c.mset ? "extended" : "separate"} type ${c.pi} pil ${c.pil ? 1 : 0}: PRACT, host PI, checks`, async () => {
    const { dev, t } = await open();
    try {
      await formatNvm(dev, 1, { lbaf: c.lbaf, mset: c.mset, pi: c.pi, pil: c.pil });
      const ns = dev.ns(1);
      const f = ns.pi!;
      assert.equal(f.type, c.pi);
      assert.equal(f.guard, c.guard);
      assert.equal(f.extended, c.mset);
      assert.equal(f.first, c.pil);
      const bs = ns.blockSize, ms = f.metadataSize, n = 40; // past one command (MDTS 16 KiB): chunks carry on the ref tag
      const data = pattern(n * bs, c.lbaf * 7 + c.pi);
      const lba = 3;
      // Host-generated PI, PRACT off: the controller checks it on the write and again on the read.
      const unit = c.mset ? bs + ms : bs;
      const buf = dev.allocBuffer(n * unit);
      const meta = c.mset ? undefined : dev.allocBuffer(n * ms);
      for (let i = 0; i < n; i++) buf.set(data.subarray(i * bs, (i + 1) * bs), i * unit);
      if (meta) meta.fill(0x5a);
      ns.generatePi(lba, buf, meta, { appTag: 0x1234 });
      await ns.write(lba, buf, { pract: false, metadata: meta, appTag: 0x1234, prchk: Prinfo.PRCHK_ALL & (c.pi === 3 ? ~Prinfo.PRCHK_REF : 7) });
      const back = dev.allocBuffer(n * unit), mback = c.mset ? undefined : dev.allocBuffer(n * ms);
      await ns.read(lba, back, { pract: false, metadata: mback, appTag: 0x1234, prchk: Prinfo.PRCHK_GUARD | Prinfo.PRCHK_APP });
      assert.deepEqual(back, buf);
      if (mback) assert.deepEqual(mback, meta);
      ns.verifyPi(lba, back, mback, { appTag: 0x1234, prchk: Prinfo.PRCHK_ALL });
      await ns.verify(lba, n);
      await ns.compare(lba, buf, { pract: false, metadata: meta });
      // The wrong application tag is caught by the controller, typed.
      await assert.rejects(ns.read(lba, back, { pract: false, metadata: mback, appTag: 0x4321, prchk: Prinfo.PRCHK_APP }), (e) => {
        assert.ok(e instanceof NvmePiError);
        assert.equal(e.check, "app");
        assert.equal(e.code, "EPI");
        return true;
      });
      // A corrupted guard: the controller's check names it, and so does the host's own.
      assert.equal(await t.faults.corruptPi(1, lba + 5, "guard"), true);
      await assert.rejects(ns.read(lba, back, { pract: false, metadata: mback }), (e) => e instanceof NvmePiError && e.check === "guard");
      await assert.rejects(ns.verify(lba, n), (e) => e instanceof NvmePiError && e.check === "guard");
      await ns.read(lba, back, { pract: false, metadata: mback, prchk: 0 });
      assert.throws(() => ns.verifyPi(lba, back, mback, { appTag: 0x1234 }), (e) => e instanceof PiCheckError && e.check === "guard" && e.lba === lba + 5);
      if (c.pi !== 3) {
        await t.faults.corruptPi(1, lba + 6, "ref");
        await ns.read(lba + 6, back.subarray(0, unit), { pract: false, metadata: mback?.subarray(0, ms), prchk: 0 });
        assert.throws(() => ns.verifyPi(lba + 6, back.subarray(0, unit), mback?.subarray(0, ms)), (e) => e instanceof PiCheckError && e.check === "ref");
        await assert.rejects(ns.read(lba + 6, back.subarray(0, unit), { pract: false, metadata: mback?.subarray(0, ms) }), (e) => e instanceof NvmePiError && e.check === "ref");
      }
      // PRACT: the controller generates PI (data only moves when the metadata is only the tuple).
      const strip = ms === f.tupleBytes;
      const plain = pattern(8 * bs, 99);
      if (strip) {
        await ns.write(100, plain);
        const got = new Uint8Array(8 * bs);
        await ns.read(100, got);
        assert.deepEqual(got, plain);
        // Read back with PRACT off: the controller's PI verifies on the host.
        const whole = new Uint8Array(8 * unit), m2 = c.mset ? undefined : new Uint8Array(8 * ms);
        await ns.read(100, whole, { pract: false, metadata: m2 });
        ns.verifyPi(100, whole, m2);
      } else {
        const m2 = c.mset ? undefined : new Uint8Array(8 * ms);
        const whole = new Uint8Array(8 * unit);
        for (let i = 0; i < 8; i++) whole.set(plain.subarray(i * bs, (i + 1) * bs), i * unit);
        await ns.write(100, whole, { pract: true, metadata: m2 });
        const got = new Uint8Array(8 * unit), m3 = c.mset ? undefined : new Uint8Array(8 * ms);
        await ns.read(100, got, { metadata: m3 });
        ns.verifyPi(100, got, m3);
      }
      // Write zeroes writes PI too (PRACT); deallocated blocks escape the checks.
      await ns.writeZeroes(200, 4);
      await ns.verify(200, 4);
      await ns.deallocate({ lba: 200, blocks: 4 });
      await ns.verify(200, 4);
    } finally {
      await dev.close();
    }
  });
}

test("io/pi: refusals before anything is sent", async () => {
  const { dev } = await open();
  try {
    await formatNvm(dev, 1, { lbaf: 6, mset: false, pi: 1 });
    const ns = dev.ns(1);
    await assert.rejects(ns.write(0, new Uint8Array(4096)), /pass opts.metadata/);
    await assert.rejects(ns.write(0, new Uint8Array(4096), { metadata: new Uint8Array(8) }), /short/);
    await assert.rejects(ns.write(0, new Uint8Array(4096), { appTag: 0x10000, metadata: new Uint8Array(64) }), InvalidArgumentError);
    await formatNvm(dev, 1, { lbaf: 3, mset: true, pi: 1 });
    const ext = dev.ns(1);
    assert.equal(ext.pi!.extended, true);
    await assert.rejects(ext.read(0, new Uint8Array(4096), { pract: false }), /not a multiple of 4104/);
    await assert.rejects(ext.read(0, new Uint8Array(4104), { metadata: new Uint8Array(8) }), /extended LBAs/);
    await formatNvm(dev, 1, { lbaf: 1 });
    assert.equal(dev.ns(1).pi, null);
    assert.throws(() => dev.ns(1).generatePi(0, new Uint8Array(4096)), /not formatted with protection information/);
  } finally {
    await dev.close();
  }
});

test("io/pi: host helpers over both layouts name the check that failed", () => {
  const f = { blockSize: 512, metadataSize: 8, extended: true, type: 1, first: false, guard: 16 as const, piOffset: 0, tupleBytes: 8 };
  const b = pattern(4 * 520, 5);
  generatePi(f, 10, b, undefined, { appTag: 7 });
  verifyPi(f, 10, b, undefined, { appTag: 7, prchk: 7 });
  assert.throws(() => verifyPi(f, 11, b), (e) => e instanceof PiCheckError && e.check === "ref" && e.lba === 11);
  assert.throws(() => verifyPi(f, 10, b, undefined, { appTag: 8, prchk: 2 }), (e) => e instanceof PiCheckError && e.check === "app");
  b[520 * 2 + 3] ^= 1;
  assert.throws(() => verifyPi(f, 10, b), (e) => e instanceof PiCheckError && e.check === "guard" && e.lba === 12);
});
