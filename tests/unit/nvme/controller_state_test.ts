/** The controller's named bring-up states (CtrlrState): where a bring-up stands, and where it failed. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { Controller, CtrlrState } from "../../../lib/nvme/controller.ts";
import { ControllerFatalError } from "../../../lib/nvme/errors.ts";
import { CSTS, Reg } from "../../../lib/nvme/spec.ts";
import type { Transport } from "../../../lib/nvme/transport.ts";
import { SimTransport } from "../../../lib/sim/transport.ts";

/** The software controller with some register reads rewritten (its methods bound: they use private fields). */
function rewrite(t: SimTransport, override: Partial<Transport>): Transport {
  return new Proxy(t, {
    get(target, prop) {
      if (prop in override) return override[prop as keyof Transport];
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

test("controller state: ready once up, shutdown once closed", async () => {
  const t = await SimTransport.create({});
  const c = await Controller.init(t);
  try {
    assert.equal(c.state, CtrlrState.READY);
    assert.match(c.version, /^\d+\.\d+\.\d+$/, "VS read during the bring-up");
    assert.equal(c.io.length, 1);
  } finally {
    await c.shutdown();
    t.close();
  }
  assert.equal(c.state, CtrlrState.SHUTDOWN);
});

test("controller state: a controller that never reports CSTS.RDY fails in the enable state, by name", async () => {
  const sim = await SimTransport.create({});
  const t = rewrite(sim, {
    // CAP.TO = 1 (500 ms) so the wait is short; CSTS.RDY never set.
    readReg64: (off) => {
      const v = sim.readReg64(off);
      return off === Reg.CAP ? (v & ~(0xffn << 24n)) | (1n << 24n) : v;
    },
    readReg32: (off) => (off === Reg.CSTS ? sim.readReg32(off) & ~CSTS.RDY : sim.readReg32(off)),
  });
  try {
    await assert.rejects(Controller.init(t), (e: unknown) => {
      assert.ok(e instanceof ControllerFatalError, String(e));
      assert.match(e.message, /did not become ready/);
      assert.match(e.message, /\(bring-up state: enable\)$/);
      return true;
    });
  } finally {
    sim.close();
  }
});
