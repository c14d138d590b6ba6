/** The CLI's metadata and PI commands against the software controller: nvm-id-ns, the PI options of the IO commands. */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { test } from "../../harness.ts";
import { runCli } from "../../cli.ts";

/** The CLI's run with binary writes shown as text, as a terminal would. */
const run = async (argv: string[]) => {
  const r = await runCli(argv);
  return { code: r.code, out: r.text, err: r.err };
};

test("cli/pi: nvm-id-ns shows each LBA format's guard size (JSON and text)", async () => {
  const j = await run(["nvm-id-ns", "sim:pi=1;ns=1M:512", "-n", "1", "-o", "json"]);
  assert.equal(j.code, 0, j.err);
  const v = JSON.parse(j.out) as { lbstm: number; pic: number; elbafs: { sts: number; pif: number }[] };
  assert.deepEqual(v.elbafs.map((e) => e.pif), [0, 0, 0, 0, 2, 2, 0, 2]);
  assert.equal(v.lbstm, 0);
  const t = await run(["nvm-id-ns", "sim:pi=1;ns=1M:512", "-n", "1"]);
  assert.ok(t.out.startsWith("NVMe NVM Identify Namespace 1:\nlbstm : 0x0\npic   : 0x0\nelbaf  0 : pif:0 sts:0  (in use)\n"), t.out);
  assert.ok(t.out.includes("elbaf  4 : pif:2 sts:0  \n"), t.out);
});

test("cli/pi: read/write/verify take nvme-cli's PI options; format takes --ms --pi --pil", async () => {
  const dir = mkdtempSync(`${tmpdir()}/tsnvme-pi-`);
  try {
    // A file-backed namespace keeps its data between CLI runs; the software controller's
    // format and metadata live in memory, so each run sees a fresh format: PI options on a
    // namespace without PI are refused where they matter and ignored where nvme-cli's are.
    const dev = `sim:pi=1;ns=1M:512@${dir}/ns1.img`;
    writeFileSync(`${dir}/in`, new Uint8Array(512).fill(0x3c));
    let r = await run(["write", dev, "-n", "1", "-s", "2", "-c", "0", "-z", "512", "-d", `${dir}/in`, "--prinfo", "0"]);
    assert.equal(r.code, 0, r.err);
    r = await run(["read", dev, "-n", "1", "-s", "2", "-c", "0", "-z", "512", "-d", `${dir}/out`]);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(new Uint8Array(readFileSync(`${dir}/out`)), new Uint8Array(512).fill(0x3c));
    r = await run(["verify", dev, "-n", "1", "-s", "2", "-c", "0", "--prinfo", "7"]);
    assert.notEqual(r.code, 0);
    assert.match(r.err, /no protection information/);
    r = await run(["format", dev, "-n", "1", "--lbaf", "2", "--pi", "1", "--ms", "1", "--force"]);
    assert.equal(r.code, 0, r.err);
    r = await run(["format", dev, "-n", "1", "--lbaf", "0", "--pi", "1", "--force"]);
    assert.notEqual(r.code, 0, "PI needs an LBA format with metadata");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
