// The CLI's PCIe choices (--sgl, --prp, --no-dbbuf; nvme-cli has none): accepted by every device
// command, passed to the driver (--sgl on a controller without SGLs fails at open), exclusive.
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { runCli } from "../../cli.ts";

const run = runCli;

test("cli: --sgl, --prp and --no-dbbuf open the device with those choices; --sgl with --prp is a usage error", async () => {
  for (const flag of ["--sgl", "--prp", "--no-dbbuf"]) {
    const r = await run(["read", "sim:", "-n", "1", "-s", "0", "-c", "7", "-z", "4096", flag]);
    assert.equal(r.code, 0, `${flag}: ${r.err}`);
  }
  const both = await run(["read", "sim:", "-n", "1", "-s", "0", "-c", "0", "-z", "512", "--sgl", "--prp"]);
  assert.equal(both.code, 2);
  assert.match(both.err, /--sgl and --prp exclude each other/);
  const help = await run(["--help"]);
  assert.match(help.out, /--sgl or --prp/);
});

test("cli: primary-ctrl-caps, list-secondary and virt-mgmt on the software controller's SR-IOV model", async () => {
  const caps = await run(["primary-ctrl-caps", "sim:sriov=2", "-o", "json"]);
  assert.equal(caps.code, 0, caps.err);
  const c = JSON.parse(caps.out);
  assert.equal(c.cntlid, 1);
  assert.equal(c.vqfrt, 16);
  const text = await run(["primary-ctrl-caps", "sim:sriov=2"]);
  assert.match(text.out, /^vqfrsm\s+: 4$/m);
  const list = await run(["list-secondary", "sim:sriov=2", "-o", "json"]);
  assert.equal(list.code, 0, list.err);
  // nvme-cli 2.3's JSON field names (tests/guest/features/sriov_test.ts compares with nvme-cli itself).
  assert.deepEqual(JSON.parse(list.out), {
    num: 2,
    "secondary-controllers": [2, 3].map((scid, i) => ({
      "secondary-controller-identifier": scid,
      "primary-controller-identifier": 1,
      "secondary-controller-state": 0,
      "virtual-function-number": i + 1,
      "num-virtual-queues": 0,
      "num-virtual-interrupts": 0,
    })),
  });
  const one = await run(["list-secondary", "sim:sriov=2", "-c", "3"]);
  assert.match(one.out, /NUMID .*: 1/);
  assert.match(one.out, /SCID .*: 0x0003$/m);
  // --num-entries cuts the entries, not NUMID (nvme-cli prints the list's count).
  const cut = await run(["list-secondary", "sim:sriov=2", "-e", "1"]);
  assert.match(cut.out, /NUMID .*: 2$/m);
  assert.match(cut.out, /^ {3}SCEntry\[0 {2}\]:$/m);
  assert.doesNotMatch(cut.out, /SCEntry\[1/);
  assert.equal(JSON.parse((await run(["list-secondary", "sim:sriov=2", "-e", "1", "-o", "json"])).out).num, 1);
  const human = await run(["primary-ctrl-caps", "sim:sriov=2", "-H"]);
  assert.equal(human.code, 0, human.err);
  assert.match(human.out, /^NVME Identify Primary Controller Capabilities:\ncntlid {4}: 0x1\nportid {4}: 0\ncrt {7}: 0x3\n {2}\[1:1\] 0x1\tVI Resources are supported\n {2}\[0:0\] 0x1\tVQ Resources are supported\nvqfrt {5}: 16\n/);
  const vm = await run(["virt-mgmt", "sim:sriov=2", "-c", "2", "-a", "8", "-r", "0", "-n", "3"]);
  assert.equal(vm.code, 0, vm.err);
  assert.equal(vm.out, "success, Number of Controller Resources Modified (NRM):0x3\n");
  const bad = await run(["virt-mgmt", "sim:sriov=2", "-c", "2", "-a", "9"]);
  assert.equal(bad.code, 1, "online without resources: the controller refuses");
  assert.match(bad.err, /Invalid Secondary Controller State/);
  assert.equal((await run(["virt-mgmt", "sim:sriov=2", "-a", "8"])).code, 2, "--cntlid is required");
});
