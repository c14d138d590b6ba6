import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { runCli } from "../../cli.ts";

const run = runCli;

const NEW = [
  "list-ns", "ns-descs", "smart-log", "error-log", "fw-log", "effects-log", "self-test-log", "sanitize-log", "get-feature",
  "set-feature", "format", "device-self-test", "fw-download", "fw-commit", "sanitize", "dsm", "write-zeroes", "compare",
  "verify", "copy", "create-ns", "delete-ns", "attach-ns", "detach-ns",
];

test("every subcommand has --help (exit 0) and is listed in the main usage", async () => {
  const top = await run(["--help"]);
  for (const c of [...NEW, "id-ctrl", "id-ns", "read", "write", "list"]) {
    assert.match(top.out, new RegExp(`^  ${c} `, "m"), c);
    const r = await run([c, "--help"]);
    assert.equal(r.code, 0, c);
    assert.match(r.out, new RegExp(`^usage: nvme.ts ${c}`), c);
  }
});

test("wrong options and values: short usage on stderr, exit status 2, no device opened", async () => {
  const D = "0000:99:00.0"; // does not exist: any attempt to open it would fail with exit 1, not 2
  const cases: string[][] = [
    ["smart-log"],
    ["smart-log", D, "extra"],
    ["smart-log", D, "--bogus"],
    ["smart-log", D, "-o", "xml"],
    ["error-log", D, "--log-entries", "0"],
    ["get-feature", D],
    ["get-feature", D, "-f", "6", "--sel", "4"],
    ["get-feature", D, "-f", "0x100"],
    ["set-feature", D, "-v", "1"],
    ["format", D, "-n", "1"],
    ["format", D, "--force"],
    ["format", D, "-n", "1", "--ses", "3", "--force"],
    ["device-self-test", D],
    ["fw-download", D],
    ["fw-commit", D, "--slot", "1"],
    ["fw-commit", D, "--action", "8"],
    ["sanitize", D],
    ["sanitize", D, "--sanact", "nuke"],
    ["sanitize", D, "--sanact", "3", "--owpass", "17"],
    ["dsm", D, "--slbs", "1,2", "--blocks", "1", "--ad"],
    ["dsm", D, "--slbs", "1", "--blocks", "1"],
    ["dsm", D, "--slbs", "1,x", "--blocks", "1,2", "--ad"],
    ["write-zeroes", D, "-c", "65536"],
    ["verify", D, "-s", "-1"],
    ["copy", D, "--slbs", "1", "--blocks", "0"],
    ["copy", D, "--sdlba", "5", "--slbs", "1,2", "--blocks", "0"],
    ["create-ns", D],
    ["delete-ns", D],
    ["attach-ns", D],
    ["detach-ns", D, "-n", "1", "-c", "70000"],
    ["list-ns", D, "-n", "0"],
    ["compare", D, "-n", "1"],
  ];
  for (const argv of cases) {
    const r = await run(argv);
    assert.equal(r.code, 2, `${argv.join(" ")}: ${r.err}`);
    assert.match(r.err, /usage: nvme.ts /, argv.join(" "));
    assert.ok(r.err.split("\n").length <= 6, `short usage: ${r.err}`);
    assert.equal(r.out, "");
  }
});
