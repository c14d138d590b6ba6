/** Worker of mod_test.ts: 100 NOP round trips on a ring of its own, then posts the sum of user_data + res. */
import { Uring, UringOp } from "../../../lib/uring/mod.ts";

const r = await Uring.create(4);
let sum = 0;
for (let i = 0; i < 100; i++) {
  r.prep(r.sqe(), UringOp.NOP, -1, i);
  r.submit(1);
  sum += r.cqeUserData(0) + r.cqeRes(0);
  r.cqAdvance(1);
}
r.close();
(globalThis as unknown as { postMessage(m: unknown): void }).postMessage(sum);
