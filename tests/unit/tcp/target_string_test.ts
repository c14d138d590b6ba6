import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import {
  DISCOVERY_NQN,
  formatTcpTarget,
  isTcpTarget,
  NVME_TCP_DISCOVERY_PORT,
  NVME_TCP_PORT,
  parseDiscoveryTarget,
  parseTcpTarget,
} from "../../../lib/tcp/mod.ts";
import { InvalidArgumentError } from "../../../lib/nvme/errors.ts";

const NQN = "nqn.2024-01.io.example:disk1";

test("tcp target: IPv4 host, port and NQN", () => {
  assert.deepEqual(parseTcpTarget(`tcp://127.0.0.1:4421/${NQN}`), { host: "127.0.0.1", port: 4421, subnqn: NQN });
});

test("tcp target: default port 4420, scheme case-insensitive, DNS names", () => {
  assert.deepEqual(parseTcpTarget(`TCP://storage-1.example.com/${NQN}`), { host: "storage-1.example.com", port: NVME_TCP_PORT, subnqn: NQN });
  assert.equal(NVME_TCP_PORT, 4420);
  assert.deepEqual(parseTcpTarget(`tcp://localhost/${NQN}`).host, "localhost");
});

test("tcp target: IPv6 in brackets, with and without port, with zone", () => {
  assert.deepEqual(parseTcpTarget(`tcp://[::1]:4420/${NQN}`), { host: "::1", port: 4420, subnqn: NQN });
  assert.deepEqual(parseTcpTarget(`tcp://[fd00::12:34]/${NQN}`), { host: "fd00::12:34", port: 4420, subnqn: NQN });
  assert.equal(parseTcpTarget(`tcp://[fe80::1%eth0]:9/${NQN}`).host, "fe80::1%eth0");
  assert.equal(parseTcpTarget(`tcp://[::ffff:10.0.0.1]/${NQN}`).host, "::ffff:10.0.0.1");
});

test("tcp target: the NQN is verbatim (colons, slashes, uuid form)", () => {
  const uuidNqn = "nqn.2014-08.org.nvmexpress:uuid:6c4f0d1e-2b3a-4c5d-8e9f-a0b1c2d3e4f5";
  assert.equal(parseTcpTarget(`tcp://h:1/${uuidNqn}`).subnqn, uuidNqn);
  assert.equal(parseTcpTarget("tcp://h/nqn.x:a/b:c").subnqn, "nqn.x:a/b:c");
});

test("tcp target: discovery defaults (8009, discovery NQN), explicit NQN kept", () => {
  assert.deepEqual(parseDiscoveryTarget("tcp://10.0.0.2"), { host: "10.0.0.2", port: NVME_TCP_DISCOVERY_PORT, subnqn: DISCOVERY_NQN });
  assert.equal(NVME_TCP_DISCOVERY_PORT, 8009);
  assert.deepEqual(parseDiscoveryTarget("tcp://10.0.0.2:4420/"), { host: "10.0.0.2", port: 4420, subnqn: DISCOVERY_NQN });
  assert.equal(parseDiscoveryTarget(`tcp://[::1]/${NQN}`).subnqn, NQN);
  assert.equal(parseTcpTarget("tcp://h", { defaultNqn: "nqn.a", defaultPort: 7 }).port, 7);
});

test("tcp target: format round-trips, brackets IPv6", () => {
  for (const s of [`tcp://127.0.0.1:4420/${NQN}`, `tcp://[::1]:4420/${NQN}`, `tcp://host.example:1/nqn.x:a/b`]) {
    assert.equal(formatTcpTarget(parseTcpTarget(s)), s);
  }
  assert.equal(formatTcpTarget({ host: "fd00::1", port: 8009, subnqn: DISCOVERY_NQN }), `tcp://[fd00::1]:8009/${DISCOVERY_NQN}`);
});

test("tcp target: isTcpTarget tells tcp:// from PCI addresses and paths", () => {
  assert.equal(isTcpTarget(`tcp://h/${NQN}`), true);
  assert.equal(isTcpTarget("TCP://h"), true);
  assert.equal(isTcpTarget("0000:00:04.0"), false);
  assert.equal(isTcpTarget("/dev/nvme0"), false);
  assert.equal(isTcpTarget("rdma://h/x"), false);
});

test("tcp target: bad strings are rejected with the reason", () => {
  const bad: [string, RegExp][] = [
    ["0000:00:04.0", /scheme must be tcp/],
    [`rdma://h/${NQN}`, /scheme must be tcp/],
    [`tcp:/h/${NQN}`, /scheme must be tcp/],
    [`tcp:///${NQN}`, /empty host/],
    [`tcp://:4420/${NQN}`, /empty host/],
    [`tcp://::1/${NQN}`, /IPv6 address must be in brackets/],
    [`tcp://fd00::1:4420/${NQN}`, /IPv6 address must be in brackets/],
    [`tcp://[::1/${NQN}`, /unclosed \[/],
    [`tcp://[::1]x/${NQN}`, /unexpected "x" after \]/],
    [`tcp://[nothex::g]/${NQN}`, /is not an IPv6 address/],
    [`tcp://[1.2.3.4]/${NQN}`, /is not an IPv6 address/],
    [`tcp://[fe80::1%]/${NQN}`, /is not an IPv6 address/],
    [`tcp://300.1.1.1/${NQN}`, /not a host name or IPv4/],
    [`tcp://bad_host/${NQN}`, /not a host name or IPv4/],
    [`tcp://-a.example/${NQN}`, /not a host name or IPv4/],
    [`tcp://user@h/${NQN}`, /user info/],
    [`tcp://h:/${NQN}`, /port "" is not a number/],
    [`tcp://h:44x/${NQN}`, /port "44x" is not a number/],
    [`tcp://h:0/${NQN}`, /port 0 is outside/],
    [`tcp://h:65536/${NQN}`, /port 65536 is outside/],
    [`tcp://h:123456/${NQN}`, /not a number/],
    ["tcp://h", /no subsystem NQN/],
    ["tcp://h:4420/", /no subsystem NQN/],
    ["tcp://h/nqn.a b", /whitespace/],
    ["tcp://h/nqn.a\tb", /whitespace/],
    [`tcp://h/nqn.${"x".repeat(220)}`, /longer than 223 bytes/],
  ];
  for (const [s, why] of bad) {
    assert.throws(() => parseTcpTarget(s), (e: unknown) => {
      assert.ok(e instanceof InvalidArgumentError, `${s}: ${e}`);
      assert.match((e as Error).message, why, s);
      assert.ok((e as Error).message.includes(s), `message names the input: ${s}`);
      return true;
    });
  }
  // Exactly NQN_MAX bytes is fine.
  assert.equal(parseTcpTarget(`tcp://h/nqn.${"x".repeat(219)}`).subnqn.length, 223);
});
