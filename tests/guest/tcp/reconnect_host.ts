/**
 * Guest: NVMeDev over TCP against Linux nvmet while nvmet drops the host.
 * Usage (inside the guest, as root): reconnect_host.ts PORT NQN, with
 * TSNVME_NVMET_LINK (the port's symlink to the subsystem) and
 * TSNVME_NVMET_SUBSYS (the subsystem's configfs directory) set.
 * Exit 0 when every check passed.
 * @module
 */
import { execSync } from "node:child_process";
import process from "node:process";
import { NVMeDev } from "../../../lib/dev.ts";
import { ConnectionLostError, NvmeError } from "../../../lib/nvme/errors.ts";

const args = (globalThis as { Deno?: { args: string[] } }).Deno?.args ?? process.argv.slice(2);
const [port, nqn] = [Number(args[0]), args[1]];
const link = process.env.TSNVME_NVMET_LINK!, subsys = process.env.TSNVME_NVMET_SUBSYS!;
const url = `tcp://127.0.0.1:${port}/${nqn}`;
const id = { hostnqn: "nqn.2014-08.org.nvmexpress:uuid:4e1b7c2a-9d3f-4a5b-8c6d-7e8f90a1b2c3", hostid: "4e1b7c2a-9d3f-4a5b-8c6d-7e8f90a1b2c3" };
let failed = 0;
function check(name: string, ok: boolean, detail = ""): void {
  if (!ok) failed++;
  console.log(`${ok ? "ok" : "not ok"} - ${name}${detail ? ` (${detail})` : ""}`);
}
const unlink = () => execSync(`rm -f '${link}'`);
const relink = () => execSync(`ln -s '${subsys}' '${link}'`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const dev = await NVMeDev.open(url, { ...id, ioQueues: 2, reconnectDelayMs: 200, ctrlLossTimeoutMs: 30_000 });
try {
  const ns = dev.ns(1);
  const pat = dev.allocBuffer(64 * 1024);
  for (let i = 0; i < pat.length; i++) pat[i] = (i * 31 + 7) & 0xff;
  await ns.write(0, pat);
  const cntlid = dev.controller.cntlid;
  // Keep reads going while nvmet drops the host: the subsystem leaves the port.
  let stop = false, good = 0, lost = 0, other = "";
  const reader = async (q: number) => {
    const b = dev.allocBuffer(4096);
    while (!stop) {
      try {
        await ns.read((q * 8) % (pat.length / ns.blockSize), b);
        good++;
      } catch (e) {
        if (e instanceof ConnectionLostError) lost++;
        else if (!other) other = `${(e as Error).name}: ${(e as Error).message}`;
      }
    }
  };
  const readers = Array.from({ length: 8 }, (_, q) => reader(q));
  await sleep(300);
  const before = good;
  unlink();
  await sleep(1500); // reconnect attempts meanwhile: refused while the subsystem is off the port
  relink();
  const until = performance.now() + 20_000;
  while (dev.controller.resets < 1 && performance.now() < until) await sleep(50);
  const afterReconnect = good;
  await sleep(300);
  stop = true;
  await Promise.all(readers);
  check("reads ran before the drop", before > 0, `${before}`);
  check("reconnected once the subsystem was back", dev.controller.resets >= 1, `resets ${dev.controller.resets}`);
  check("a new controller id after the reconnect", dev.controller.cntlid !== cntlid, `${cntlid} -> ${dev.controller.cntlid}`);
  check("reads go on after the reconnect", good > afterReconnect, `${afterReconnect} -> ${good}`);
  check("every failure was typed ConnectionLostError", other === "", other || `${lost} lost`);
  const back = new Uint8Array(pat.length);
  await ns.read(0, back);
  check("data written before the drop reads back", back.every((v, i) => v === pat[i]));
} finally {
  await dev.close();
}

// A target that stays away: given up after the loss timeout, typed.
const dev2 = await NVMeDev.open(url, { ...id, reconnectDelayMs: 100, ctrlLossTimeoutMs: 1500 });
try {
  unlink();
  const t0 = performance.now();
  let err: unknown = null;
  try {
    for (;;) {
      await dev2.ns(1).read(0, new Uint8Array(512));
      await sleep(20);
    }
  } catch (e) {
    err = e;
  }
  while (!dev2.controller.failed && performance.now() - t0 < 10_000) await sleep(50);
  check("given up after ctrlLossTimeoutMs", dev2.controller.failed instanceof ConnectionLostError, String(dev2.controller.failed?.message));
  check("IO failed typed", err instanceof NvmeError, String(err));
  check("within the loss timeout plus one attempt", performance.now() - t0 < 8000, `${Math.round(performance.now() - t0)} ms`);
} finally {
  await dev2.close();
  relink();
}
process.exit(failed ? 1 : 0);
