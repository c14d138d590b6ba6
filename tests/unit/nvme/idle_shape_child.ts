// Child of idle_shape_test.ts: drives one IdlePolicy through a stream, a stop and a trickled run with
// fractional clock values (as performance.now() gives), and prints whether it still has the map
// (V8, needs --allow-natives-syntax) or structure (JSC) of a policy made alongside it and never used.
import { Idle, IdlePolicy } from "../../../lib/nvme/idle.ts";

const isBun = "Bun" in globalThis;
// Made before either is used: a map that changes deprecates the old one for new objects too.
const used = new IdlePolicy({ mode: "adaptive" }), ref = new IdlePolicy({ mode: "adaptive" });
const polled = new IdlePolicy({ mode: "poll" }), polledRef = new IdlePolicy({ mode: "poll" });

let t = 1000.25;
// A stream: empty polls and completions; then the queue empties and the pump stops.
used.restart();
used.next(0, t += 0.01);
used.next(1, t += 0.02);
used.next(0, t += 0.01);
used.emptied(t += 0.03);
// 100 ms later a trickled read: a capped run, a stall, a sleep that an interrupt ends.
used.restart();
used.next(0, t += 100.7);
used.stalled(0.3);
if (used.next(0, t += 0.4) !== Idle.SLEEP) throw new Error("the trickled run did not sleep");
used.resumed(t += 2.1, true);
used.next(1, t += 0.01);
used.submitted(t += 0.2);
// Poll mode: a yield, whose cost sets the interval between yields.
polled.restart();
polled.next(0, t += 0.01);
if (polled.next(0, t += 3.3) !== Idle.YIELD) throw new Error("poll mode did not yield");
polled.resumed(t += 0.7, false);

let same: (a: object, b: object) => boolean;
if (isBun) {
  const spec = "bun:jsc";
  const { describe } = await import(spec) as { describe(o: unknown): string };
  const id = (o: object) => /StructureID: (\d+)/.exec(describe(o))?.[1];
  same = (a, b) => id(a) !== undefined && id(a) === id(b);
} else {
  same = new Function("a", "b", "return %HaveSameMap(a, b)") as typeof same;
}
console.log(`same map: adaptive ${same(used, ref)}, poll ${same(polled, polledRef)}`);
