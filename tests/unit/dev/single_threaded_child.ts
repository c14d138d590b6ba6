// Child process for tests/unit/dev/single_threaded_test.ts: whether Atomics.waitAsync wakes here;
// a TCP host (interrupt wait mode: it sleeps on every IO) writes and reads back through lib/target
// on loopback in this same process ("tcp ok"); the software controller opened by default reads
// ("sim ok" and its wait mode), and opened with interrupts: "interrupt" (the error's reason, or "none").
import { waitAsyncWakes } from "../../../lib/ffi/wait.ts";
import { NvmfTarget } from "../../../lib/target/mod.ts";
import { hostIdentity, TcpController } from "../../../lib/tcp/mod.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { memNamespaces } from "../util/target_util.ts";
import { NVMeDev } from "../../../lib/dev.ts";
import { SetupError } from "../../../lib/nvme/errors.ts";

const NQN = "nqn.2024-01.io.tsnvme:single-threaded";
console.log(`waitAsync ${await waitAsyncWakes()}`);
const t = await NvmfTarget.listen({ port: 0, subsystems: [{ nqn: NQN, namespaces: memNamespaces([1 << 20, 512]) }] });
const c = await TcpController.connect({ host: "127.0.0.1", port: t.port, subnqn: NQN, ...hostIdentity("11111111-2222-4333-8444-555555555555") });
try {
  const q = c.io[0].qp;
  q.setWaitMode("interrupt");
  const w = c.memory.allocDma(4096), r = c.memory.allocDma(4096);
  w.bytes.fill(0x5a);
  for (let i = 0; i < 20; i++) {
    await q.rw(IoOpc.WRITE, 1, i * 8, 7, w.iova, 4096);
    await q.rw(IoOpc.READ, 1, i * 8, 7, r.iova, 4096);
    if (r.bytes[4095] !== 0x5a) throw new Error(`read ${i} differs`);
    r.bytes.fill(0);
  }
  await c.shutdown();
  console.log("tcp ok");
} finally {
  c.close();
  await t.close();
}
const dev = await NVMeDev.open("sim:");
try {
  const b = new Uint8Array(4096);
  for (let i = 0; i < 20; i++) await dev.ns(1).read(i * 8, b);
  console.log(`sim ok ${dev.info.waitMode}`);
} finally {
  await dev.close();
}
const refused = await NVMeDev.open("sim:", { interrupts: "interrupt" }).then(async (d) => {
  await d.close();
  return "none";
}, (e) => e instanceof SetupError ? e.reason : String(e));
console.log(`interrupt mode: ${refused}`);
