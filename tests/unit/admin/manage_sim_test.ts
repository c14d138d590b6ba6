/**
 * Success paths QEMU cannot show (sanitize, firmware, self-test, namespace
 * management), against the project's software controller (lib/sim).
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { SimOptions } from "../../../lib/sim/options.ts";
import { fwLog, sanitizeLog, selfTestLog, smartLog } from "../../../lib/admin/log.ts";
import { attachNamespace, createNamespace, deleteNamespace, detachNamespace, deviceSelfTest, formatNvm } from "../../../lib/admin/manage.ts";
import { NotSupportedError } from "../../../lib/admin/support.ts";
import { sanitize, waitSanitize } from "../../../lib/sanitize/mod.ts";
import { commitFirmware, downloadFirmware } from "../../../lib/firmware/mod.ts";
import { InvalidArgumentError, NvmeStatusError } from "../../../lib/nvme/errors.ts";

async function withSim(sim: SimOptions, f: (dev: NVMeDev) => Promise<void>): Promise<void> {
  const t = await SimTransport.create(sim);
  const dev = await NVMeDev.open("sim", { transport: t });
  try {
    await f(dev);
  } finally {
    await dev.close();
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("sim: sanitize block erase, overwrite with pattern and passes, crypto erase; progress followed to the end", async () => {
  await withSim({ sanitizeMs: 120 }, async (dev) => {
    const ns = dev.ns(1);
    const b = new Uint8Array(512).fill(0x5a);
    await ns.write(3, b);
    await sanitize(dev, "block-erase");
    const seen: number[] = [];
    const log = await waitSanitize(dev, { intervalMs: 10, onProgress: (p) => seen.push(p.fraction) });
    assert.equal(log.status, 1);
    assert.ok(log.globalErased);
    assert.ok(seen.length >= 1 && seen.every((x) => x >= 0 && x < 1), `progress ${seen}`);
    const back = new Uint8Array(512);
    await dev.ns(1).read(3, back);
    assert.ok(back.every((x) => x === 0), "block erase zeroes");

    await sanitize(dev, "overwrite", { passes: 3, pattern: 0x11223344, invert: true, allowUnrestrictedExit: true });
    const ow = await waitSanitize(dev, { intervalMs: 10 });
    assert.equal(ow.passes, 3);
    assert.equal(ow.scdw10 & 0x1ff, 3 | 1 << 3 | 3 << 4 | 1 << 8);
    await dev.ns(1).read(3, back);
    assert.deepEqual([...back.subarray(0, 4)], [0x44, 0x33, 0x22, 0x11], "odd pass count: the pattern itself");

    await sanitize(dev, "crypto-erase");
    await waitSanitize(dev, { intervalMs: 10 });
    assert.equal((await sanitizeLog(dev)).status, 1);
    await sanitize(dev, "exit-failure");
  });
  await withSim({ sanicap: 2 }, async (dev) => {
    await assert.rejects(sanitize(dev, "crypto-erase"), NotSupportedError);
    await assert.rejects(sanitize(dev, "overwrite"), NotSupportedError);
  });
});

test("sim: firmware download in chunks (own PRP lists), commit to slot 2, activation, slot log", async () => {
  await withSim({}, async (dev) => {
    const image = new Uint8Array(200 * 1024);
    image.set(new TextEncoder().encode("2.0-SIM "));
    const steps: number[] = [];
    await downloadFirmware(dev, image, { onProgress: (s) => steps.push(s) });
    assert.deepEqual(steps, [65536, 131072, 196608, 204800]);
    const r = await commitFirmware(dev, { slot: 2, action: "replace-and-activate" });
    assert.equal(r.resetRequired, "next-reset");
    let fw = await fwLog(dev);
    assert.equal(fw.frs[1].trimEnd(), "2.0-SIM");
    assert.equal(fw.nextSlot, 2);
    assert.equal(fw.activeSlot, 1);
    await commitFirmware(dev, { slot: 2, action: "replace-and-activate-now" }).catch((e) => {
      assert.ok(e instanceof NvmeStatusError && e.status.sc === 0x07, "no image downloaded since the last commit");
    });
    await downloadFirmware(dev, image.subarray(0, 8192), { chunkBytes: 4096 });
    await commitFirmware(dev, { slot: 3, action: 3 });
    fw = await fwLog(dev);
    assert.equal(fw.activeSlot, 3);
    await commitFirmware(dev, { slot: 2, action: "activate" });
    assert.equal((await fwLog(dev)).nextSlot, 2);
    await assert.rejects(downloadFirmware(dev, image.subarray(0, 6000)), InvalidArgumentError);
    await assert.rejects(downloadFirmware(dev, image, { chunkBytes: 6144 }), /granularity/);
    await assert.rejects(commitFirmware(dev, { slot: 4, action: "activate" }), NotSupportedError);
  });
});

test("sim: device self-test short and extended complete in the log; abort is recorded", async () => {
  // A 400 ms self-test: the steps that expect it still running get there first on a loaded machine too.
  await withSim({ selfTestMs: 400 }, async (dev) => {
    await deviceSelfTest(dev, "short");
    assert.equal((await selfTestLog(dev)).currentOperation, 1);
    await assert.rejects(deviceSelfTest(dev, "extended"), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x1d);
    for (let i = 0; i < 300 && (await selfTestLog(dev)).currentOperation; i++) await sleep(10);
    let l = await selfTestLog(dev);
    assert.equal(l.currentOperation, 0);
    assert.deepEqual([l.results[0].result, l.results[0].code], [0, 1]);
    await deviceSelfTest(dev, "extended", 1);
    await deviceSelfTest(dev, "abort");
    l = await selfTestLog(dev);
    assert.deepEqual([l.results[0].result, l.results[0].code], [1, 2]);
    assert.equal(l.results[1].code, 1);
  });
});

test("sim: namespace create, attach, IO, detach, delete; format with user data erase", async () => {
  await withSim({}, async (dev) => {
    const id = await createNamespace(dev, { nsze: 2048, flbas: 0 });
    assert.ok(id > 2);
    assert.ok(!dev.nsList().includes(id), "not attached yet");
    await attachNamespace(dev, id);
    assert.ok(dev.nsList().includes(id));
    const ns = dev.ns(id);
    assert.equal(ns.blockCount, 2048);
    const b = new Uint8Array(ns.blockSize).fill(9);
    await ns.write(10, b);
    await assert.rejects(attachNamespace(dev, id), (e: unknown) => e instanceof NvmeStatusError && e.status.sc === 0x18);
    await detachNamespace(dev, id);
    assert.ok(!dev.nsList().includes(id));
    await deleteNamespace(dev, id);
    await assert.rejects(attachNamespace(dev, id), NvmeStatusError);

    await dev.ns(2).write(0, new Uint8Array(4096).fill(7));
    await formatNvm(dev, 2, { ses: 1 });
    const back = new Uint8Array(4096);
    await dev.ns(2).read(0, back);
    assert.ok(back.every((x) => x === 0));
    assert.ok((await smartLog(dev)).temperature > 0);
  });
});
