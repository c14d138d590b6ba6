/**
 * The adaptive pump on the software controller: a trickle of reads sleeps on
 * the interrupt after a short spin instead of polling through a window sized
 * for throughput, and arms no timer that wakes the process on its own.
 */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { NVMeDev } from "../../../lib/dev.ts";

test("adaptive: reads 30 ms apart sleep on the interrupt (no polling window), and no driver timer fires", async () => {
  // A device that answers in ~3 ms and a 20 ms polling window: a stream polls through every wait, even on a
  // loaded machine; a read after 30 ms of nothing should not (30 µs of polling, then the interrupt).
  await using dev = await NVMeDev.open("sim:latency=3", { interrupts: "adaptive", pollSpinUs: 20_000 });
  assert.equal(dev.info.waitMode, "adaptive");
  const ns = dev.ns(1), buf = dev.allocBuffer(4096);
  const q = dev.controller.io[0];
  for (let i = 0; i < 40; i++) await ns.read(i * 8, buf);
  const streamed = q.stats.sleeps;
  // Timers the driver arms while the trickle runs (the test's own pacing uses the original).
  const orig = globalThis.setTimeout;
  let armed = 0, fired = 0;
  const counting = ((fn: () => void, ms?: number) => {
    armed++;
    return orig(() => {
      fired++;
      fn();
    }, ms);
  }) as typeof setTimeout;
  const reads = 12;
  // A sleep's timer is its bound, the queue's health check: a read that took that long (a machine so
  // loaded that the 3 ms device or its interrupt came late) may see it fire, once. Each such slow read
  // excuses one fire; on a machine that keeps up there are none, and the assertion is the old one.
  const bound = q.healthCheckMs;
  let slow = 0;
  try {
    for (let i = 0; i < reads; i++) {
      await new Promise((r) => orig(r, 30));
      // The pump runs on after read() returns: count its timers until the read is done.
      globalThis.setTimeout = counting;
      const t0 = performance.now();
      await ns.read(i * 8, buf);
      globalThis.setTimeout = orig;
      // Half the bound: a read preempted that long (16x the device's time) was on a machine too
      // loaded to tell a late wake-up from a timer left armed (seen under load: 4 fired, 2 at the bound).
      if (performance.now() - t0 >= bound / 2) slow++;
    }
  } finally {
    globalThis.setTimeout = orig;
  }
  const sleeps = q.stats.sleeps - streamed;
  // Each read should sleep once; a pump preempted past the device's 3 ms finds its completion by polling
  // instead (a loaded machine). The old window slept on none of them.
  assert.ok(sleeps >= reads / 4, `${sleeps} sleeps for ${reads} spaced reads (stream before: ${streamed} sleeps in 40 reads)`);
  assert.ok(armed <= sleeps, `${armed} timers armed for ${sleeps} sleeps: one (the sleep's bound) at most per sleep`);
  assert.ok(fired <= slow, `${fired} driver timers fired, ${slow} reads took the ${bound} ms bound: every other sleep ends by its interrupt, its timer cleared unfired`);
  dev.freeBuffer(buf);
});
