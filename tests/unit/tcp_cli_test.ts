import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "../harness.ts";
import { resolveHostIdentity } from "../../lib/tcp/host-identity.ts";
import { InvalidArgumentError } from "../../lib/nvme/errors.ts";

const UUID_NQN = "nqn.2014-08.org.nvmexpress:uuid:92051aff-3332-4684-a4a9-32b718bfa75d";
const HOSTID = "8ca53695-e0b8-4e4d-8fa2-646e692cd2f6";
const hex = (b: Uint8Array) => Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");

function withDir<T>(files: Record<string, string>, f: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), "tsnvme-hostid-"));
  try {
    for (const [k, v] of Object.entries(files)) writeFileSync(join(dir, k), v);
    return f(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("host identity: options win over files", () => {
  withDir({ hostnqn: "nqn.2024-01.io.example:file\n", hostid: `${HOSTID}\n` }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir, hostnqn: "nqn.2024-01.io.example:opt", hostid: "00112233-4455-6677-8899-aabbccddeeff" });
    assert.equal(r.hostnqn, "nqn.2024-01.io.example:opt");
    assert.equal(hex(r.hostid), "00112233445566778899aabbccddeeff");
    assert.equal(r.hostidText, "00112233-4455-6677-8899-aabbccddeeff");
    assert.deepEqual([r.hostnqnSource, r.hostidSource], ["option", "option"]);
  });
});

test("host identity: /etc/nvme-style files, whitespace trimmed", () => {
  withDir({ hostnqn: `${UUID_NQN}\n`, hostid: `  ${HOSTID.toUpperCase()}\n` }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir });
    assert.equal(r.hostnqn, UUID_NQN);
    assert.equal(r.hostidText, HOSTID);
    assert.equal(hex(r.hostid), HOSTID.replace(/-/g, ""));
    assert.deepEqual([r.hostnqnSource, r.hostidSource], ["file", "file"]);
  });
});

test("host identity: no hostid file takes the UUID of a uuid-form host NQN", () => {
  withDir({ hostnqn: UUID_NQN }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir });
    assert.equal(r.hostidText, "92051aff-3332-4684-a4a9-32b718bfa75d");
    assert.equal(r.hostidSource, "hostnqn");
  });
});

test("host identity: generated from the machine id, stable, and both halves agree", () => {
  withDir({ "machine-id": "0123456789abcdef0123456789abcdef\n" }, (dir) => {
    const o = { configDir: join(dir, "absent"), machineFiles: [join(dir, "missing"), join(dir, "machine-id")] };
    const a = resolveHostIdentity(o), b = resolveHostIdentity(o);
    assert.deepEqual(a, b);
    assert.match(a.hostnqn, /^nqn\.2014-08\.org\.nvmexpress:uuid:[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(a.hostnqn, `nqn.2014-08.org.nvmexpress:uuid:${a.hostidText}`);
    assert.deepEqual([a.hostnqnSource, a.hostidSource], ["generated", "hostnqn"]);
    assert.ok(!a.hostidText.replace(/-/g, "").startsWith("0123456789abcdef"), "not the machine id itself");
    // Another machine id, another identity.
    writeFileSync(join(dir, "machine-id"), "fedcba9876543210fedcba9876543210\n");
    assert.notEqual(resolveHostIdentity(o).hostnqn, a.hostnqn);
  });
});

test("host identity: a DMI product UUID is used as is", () => {
  withDir({ product_uuid: "4C4C4544-0039-3510-804C-C6C04F4E3632\n" }, (dir) => {
    const r = resolveHostIdentity({ configDir: dir, machineFiles: [join(dir, "product_uuid")] });
    assert.equal(r.hostnqn, "nqn.2014-08.org.nvmexpress:uuid:4c4c4544-0039-3510-804c-c6c04f4e3632");
    assert.equal(r.hostidText, "4c4c4544-0039-3510-804c-c6c04f4e3632");
  });
});

test("host identity: with nothing to read, still the same on every call", () => {
  const o = { configDir: "/nonexistent/tsnvme", machineFiles: ["/nonexistent/tsnvme/id"] };
  assert.deepEqual(resolveHostIdentity(o), resolveHostIdentity(o));
  assert.equal(resolveHostIdentity(o).hostnqnSource, "generated");
});

test("host identity: malformed NQN or host ID is refused", () => {
  assert.throws(() => resolveHostIdentity({ configDir: "/nonexistent", hostnqn: "nqn.a b" }), InvalidArgumentError);
  assert.throws(() => resolveHostIdentity({ configDir: "/nonexistent", hostnqn: "x".repeat(224) }), /longer than 223/);
  assert.throws(() => resolveHostIdentity({ configDir: "/nonexistent", hostnqn: UUID_NQN, hostid: "not-a-uuid" }), /bad host ID "not-a-uuid"/);
  withDir({ hostid: "1234\n" }, (dir) => assert.throws(() => resolveHostIdentity({ configDir: dir, hostnqn: UUID_NQN }), /bad host ID "1234"/));
});
