/** Child for the guest tests: try to open the controller and print what happened as JSON. */
import process from "node:process";
import { NVMeDev } from "../../lib/dev.ts";

try {
  const dev = await NVMeDev.open(process.argv[2] ?? process.env.TSNVME_PCI!);
  const ns = dev.ns(1);
  await ns.read(0, new Uint8Array(ns.blockSize));
  await dev.close();
  console.log(JSON.stringify({ ok: true }));
} catch (e) {
  const err = e as { name?: string; code?: string; reason?: string; message?: string };
  console.log(JSON.stringify({ ok: false, name: err.name, code: err.code, reason: err.reason, message: err.message }));
}
