/** Requested resets: Controller.reset() and subsystemReset() on the software controller. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";
import type { Transport } from "../../../lib/nvme/transport.ts";
import { ControllerResetError, DeviceClosedError } from "../../../lib/nvme/errors.ts";
import { NSSR_RESET, Reg } from "../../../lib/nvme/spec.ts";

/**
 * The software controller as a subsystem-reset capable one: CAP.NSSRS reads 1
 * and NSSR writes are recorded. (The sim itself has no NSSR; the reset that
 * follows the write is the controller reset it does have.)
 */
function withNssr(t: SimTransport): { transport: Transport; nssrWrites: number[] } {
  const nssrWrites: number[] = [];
  const override: Partial<Transport> = {
    readReg32: (off) => (off === Reg.CAP + 4 ? (t.readReg32(off) | 1 << 4) >>> 0 : t.readReg32(off)),
    readReg64: (off) => (off === Reg.CAP ? t.readReg64(off) | (1n << 36n) : t.readReg64(off)),
    writeReg32: (off, v) => {
      if (off === Reg.NSSR) nssrWrites.push(v);
      else t.writeReg32(off, v);
    },
  };
  // Everything else goes to the sim itself (bound: its methods use private fields).
  const transport = new Proxy(t, {
    get(target, prop) {
      if (prop in override) return override[prop as keyof Transport];
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return { transport, nssrWrites };
}

test("reset(): IO in flight fails with ControllerResetError or completes; IO afterwards works; not counted as a recovery", async () => {
  const t = await SimTransport.create({ latencyMs: 20 });
  await using dev = await NVMeDev.open("sim", { transport: t });
  const ns = dev.ns(1);
  const data = new Uint8Array(4096).fill(0x3c);
  await ns.write(0, data);
  // Handlers attached before the reset, so the rejections it causes are never unhandled.
  const inflight = Promise.allSettled(Array.from({ length: 8 }, (_, i) => ns.read(i * 8, new Uint8Array(4096))));
  await dev.controller.reset();
  const settled = await inflight;
  for (const r of settled) {
    if (r.status === "rejected") assert.ok(r.reason instanceof ControllerResetError, String(r.reason));
  }
  assert.ok(settled.some((r) => r.status === "rejected"), "a 20 ms command was still in flight when the reset came");
  const back = new Uint8Array(4096);
  await ns.read(0, back);
  assert.deepEqual(back, data);
  assert.equal(dev.controller.resets, 0);
  // Requested resets are not rate limited as recoveries are (3 a minute).
  for (let i = 0; i < 4; i++) await dev.controller.reset();
  await ns.read(0, back);
});

test("subsystemReset(): writes 'NVMe' to NSSR where CAP.NSSRS is 1, then brings the controller back", async () => {
  const { transport, nssrWrites } = withNssr(await SimTransport.create({}));
  await using dev = await NVMeDev.open("sim", { transport });
  assert.equal(dev.controller.cap.nssrs, true);
  await dev.controller.subsystemReset();
  assert.deepEqual(nssrWrites, [NSSR_RESET]);
  assert.equal(NSSR_RESET, 0x4e564d65);
  const b = new Uint8Array(512);
  await dev.ns(1).read(0, b);
});

test("reset() and subsystemReset() after close reject with DeviceClosedError; nothing is written", async () => {
  const { transport, nssrWrites } = withNssr(await SimTransport.create({}));
  const dev = await NVMeDev.open("sim", { transport });
  await dev.close();
  await assert.rejects(dev.controller.reset(), DeviceClosedError);
  await assert.rejects(dev.controller.subsystemReset(), DeviceClosedError);
  assert.deepEqual(nssrWrites, []);
});
