/** The discovery log's EFLAGS and TSAS round trip (lib/tcp/discovery.ts), and nvme discover's text and JSON for RDMA, TLS and out-of-table values. */
import assert from "node:assert/strict";
import { test } from "../../harness.ts";
import { decodeDiscoveryLog, type DiscoveryEntry, encodeDiscoveryLog } from "../../../lib/tcp/discovery.ts";
import { discoveryToJson, formatDiscovery } from "../../../lib/cli/format/discovery.ts";

const base = { treq: 0, cntlid: 0xffff, asqsz: 32, trsvcid: "4420" };
const ENTRIES: DiscoveryEntry[] = [
  { ...base, trtype: 3, adrfam: 1, subtype: 2, portid: 1, subnqn: "nqn.x", traddr: "10.0.0.1", eflags: 3, sectype: 2 },
  {
    ...base,
    trtype: 1,
    adrfam: 1,
    subtype: 3,
    treq: 2,
    portid: 2,
    subnqn: "nqn.2014-08.org.nvmexpress.discovery",
    traddr: "10.0.0.2",
    eflags: 4,
    rdma: { qptype: 1, prtype: 4, cms: 1, pkey: 0xbeef },
  },
  { ...base, trtype: 2, adrfam: 9, subtype: 7, treq: 3, portid: 3, trsvcid: "", subnqn: "nqn.y", traddr: "", eflags: 9 },
];

test("discovery log: EFLAGS, a TCP entry's SECTYPE and an RDMA entry's TSAS survive encode and decode", () => {
  assert.deepEqual(decodeDiscoveryLog(encodeDiscoveryLog(7n, ENTRIES)), ENTRIES);
});

test("nvme discover text: libnvme's strings, RDMA's TSAS lines, 'unrecognized' outside the tables", () => {
  const text = formatDiscovery(7n, decodeDiscoveryLog(encodeDiscoveryLog(7n, ENTRIES)));
  assert.equal(
    text,
    "\nDiscovery Log Number of Records 3, Generation counter 7\n" +
      "=====Discovery Log Entry 0======\ntrtype:  tcp\nadrfam:  ipv4\nsubtype: nvme subsystem\ntreq:    not specified\n" +
      "portid:  1\ntrsvcid: 4420\nsubnqn:  nqn.x\ntraddr:  10.0.0.1\n" +
      "eflags:  explicit discovery connections, duplicate discovery information\nsectype: tls13\n" +
      "=====Discovery Log Entry 1======\ntrtype:  rdma\nadrfam:  ipv4\nsubtype: current discovery subsystem\n" +
      "treq:    not required\nportid:  2\ntrsvcid: 4420\nsubnqn:  nqn.2014-08.org.nvmexpress.discovery\ntraddr:  10.0.0.2\n" +
      "eflags:  no cdc connectivity\nrdma_prtype: roce-v2\nrdma_qptype: connected\nrdma_cms:    rdma-cm\nrdma_pkey: 0xbeef\n" +
      "=====Discovery Log Entry 2======\ntrtype:  fc\nadrfam:  \nsubtype: unrecognized\ntreq:    unrecognized\n" +
      "portid:  3\ntrsvcid: \nsubnqn:  nqn.y\ntraddr:  \neflags:  unrecognized\n",
  );
});

test("nvme discover -o json: RDMA's fields with the pkey as a number, none for other transports", () => {
  const j = JSON.parse(discoveryToJson(7n, decodeDiscoveryLog(encodeDiscoveryLog(7n, ENTRIES))));
  assert.equal(j.genctr, 7);
  assert.deepEqual(j.records[0], {
    trtype: "tcp",
    adrfam: "ipv4",
    subtype: "nvme subsystem",
    treq: "not specified",
    portid: 1,
    trsvcid: "4420",
    subnqn: "nqn.x",
    traddr: "10.0.0.1",
    eflags: "explicit discovery connections, duplicate discovery information",
    sectype: "tls13",
  });
  assert.deepEqual(
    [j.records[1].rdma_prtype, j.records[1].rdma_qptype, j.records[1].rdma_cms, j.records[1].rdma_pkey, j.records[1].sectype],
    ["roce-v2", "connected", "rdma-cm", 0xbeef, undefined],
  );
  assert.deepEqual(Object.keys(j.records[2]), ["trtype", "adrfam", "subtype", "treq", "portid", "trsvcid", "subnqn", "traddr", "eflags"]);
  assert.equal(j.records[2].adrfam, "unrecognized");
});
