import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import process from "node:process";
import { runtime, test } from "../../harness.ts";
import { parseNamespaceSpec } from "../../../lib/target/mod.ts";
import { TcpController } from "../../../lib/tcp/host.ts";
import { DISCOVERY_NQN, hostIdentity } from "../../../lib/tcp/fabrics.ts";
import { IoOpc } from "../../../lib/nvme/spec.ts";
import { NvmeStatusError } from "../../../lib/nvme/errors.ts";
import { until } from "../util/target_util.ts";

const SCRIPT = new URL("../../../lib/cli/nvmf-target.ts", import.meta.url).pathname;
const ID = hostIdentity("61111111-2222-4333-8444-555555555555");

test("target CLI: --ns forms parse; bad ones say what is accepted", () => {
  assert.deepEqual(parseNamespaceSpec("0000:00:04.0"), { kind: "dev", target: "0000:00:04.0", nsid: null });
  assert.deepEqual(parseNamespaceSpec("vfio:00:04.0:2"), { kind: "dev", target: "00:04.0", nsid: 2 });
  assert.deepEqual(parseNamespaceSpec("sim:ns=8M:512"), { kind: "dev", target: "sim:ns=8M:512", nsid: null });
  assert.deepEqual(parseNamespaceSpec("file:/tmp/x.img:64M:4096"), { kind: "file", path: "/tmp/x.img", size: 64 << 20, blockSize: 4096 });
  assert.deepEqual(parseNamespaceSpec("file:/tmp/x.img"), { kind: "file", path: "/tmp/x.img", size: null, blockSize: 512 });
  assert.deepEqual(parseNamespaceSpec("mem:1G"), { kind: "mem", size: 1 << 30, blockSize: 512 });
  assert.throws(() => parseNamespaceSpec("mem:12Q"), /bad size/);
  assert.throws(() => parseNamespaceSpec("file:/x:1M:1024"), /512 or 4096/);
  assert.throws(() => parseNamespaceSpec("/dev/nvme0n1"), /expected 0000:00:04.0/);
});

test("target CLI: serves a file and the software controller, allow-list, discovery; SIGTERM exits 0 and the file holds the data", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tsnvme-target-"));
  const img = path.join(dir, "ns.img"), ready = path.join(dir, "ready");
  const nqn = "nqn.2024-01.io.tsnvme:cli";
  const args = ["--port", "0", "--nqn", nqn, "--ns", `file:${img}:1M`, "--ns", "sim:ns=2M:4096", "--allow-host", ID.hostnqn, "--ready-file", ready, "--interrupts", "poll"];
  const child = runtime === "bun"
    ? spawn(process.execPath, [SCRIPT, ...args], { stdio: ["ignore", "ignore", "pipe"] })
    : spawn(process.execPath, ["run", "-A", "--no-check", SCRIPT, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  child.stderr!.on("data", (d) => (err += String(d)));
  const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
  // Deno's child_process reports a child it sent a signal to as code null even when the child exited 0.
  const cleanExit = (code: number | null) => code === 0 || (runtime === "deno" && code === null && err.includes("stopping"));
  try {
    for (let i = 0; i < 3000 && !(fs.existsSync(ready) && fs.readFileSync(ready, "utf8").includes(" ")); i++) await new Promise((r) => setTimeout(r, 10));
    const line = fs.readFileSync(ready, "utf8");
    const port = Number(line.trim().split(" ")[1]);
    assert.ok(port > 0, `ready file ${JSON.stringify(line)}; stderr: ${err}`);
    const disc = await TcpController.discover({ host: "127.0.0.1", port, ...ID });
    assert.deepEqual(disc.map((e) => e.subnqn), [DISCOVERY_NQN, nqn]);
    const c = await TcpController.connect({ host: "127.0.0.1", port, subnqn: nqn, ...ID, katoMs: 0 });
    assert.deepEqual(await c.namespaceIds(), [1, 2]);
    assert.deepEqual(await c.namespace(2), { nsid: 2, blocks: 512, lbaSize: 4096 });
    const b = c.memory.allocDma(8192);
    for (let i = 0; i < 8192; i++) b.bytes[i] = (i * 7) & 0xff;
    await c.io[0].qp.rw(IoOpc.WRITE, 1, 16, 15, b.iova, 8192);
    await c.io[0].qp.rw(IoOpc.WRITE, 2, 1, 1, b.iova, 8192);
    const written = b.bytes.slice(0, 8192);
    await c.shutdown();
    const other = hostIdentity("71111111-2222-4333-8444-555555555555");
    await assert.rejects(
      TcpController.connect({ host: "127.0.0.1", port, subnqn: nqn, ...other, katoMs: 0 }),
      // Connect refused: Connect Invalid Host (SCT 1, SC 84h), the host is not on the allow-list.
      (e: unknown) => e instanceof NvmeStatusError && e.status.sct === 1 && e.status.sc === 0x84,
    );
    child.kill("SIGTERM");
    const code = await exited;
    assert.ok(cleanExit(code), `exit ${code}: ${err}`);
    const f = fs.readFileSync(img);
    assert.equal(f.length, 1 << 20);
    assert.deepEqual(new Uint8Array(f.subarray(16 * 512, 16 * 512 + 8192)), written);
    await until(() => err.includes("stopping"), "the stop line");
  } finally {
    child.kill("SIGKILL");
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
