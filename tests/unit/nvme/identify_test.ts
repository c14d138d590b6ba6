/**
 * lib/nvme/identify.ts (the driver's typed Identify, decoded once) agrees with
 * the full nvme-cli-compatible decoder on every Identify fixture, real QEMU
 * captures and synthetic edge cases alike.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "../../harness.ts";
import { ctrlSummary, flbasIndex, nsSummary, parseIdCtrl, parseIdNs } from "../../../lib/admin/identify.ts";
import { InvalidArgumentError } from "../../../lib/nvme/errors.ts";
import { decodeIdentifyController, decodeIdentifyNamespace } from "../../../lib/nvme/identify.ts";

const dir = new URL("../../fixtures/identify/", import.meta.url);
const bins = readdirSync(dir).filter((f) => f.endsWith(".bin"));

test("nvme/identify: Identify Controller fields equal the full decoder's on every fixture", () => {
  const ctrls = bins.filter((f) => f.includes("ctrl"));
  assert.ok(ctrls.length >= 4);
  for (const f of ctrls) {
    const d = new Uint8Array(readFileSync(new URL(f, dir)));
    const ours = decodeIdentifyController(d), full = parseIdCtrl(d), s = ctrlSummary(full);
    const want = {
      vid: s.vid, ssvid: s.ssvid, serial: s.serial, model: s.model, firmware: s.firmware, mdts: s.mdts, cntlid: s.cntlid,
      nn: s.nn, oncs: s.oncs, vwc: (s.vwc & 1) === 1, frmw: s.frmw, sanicap: s.sanicap, fwug: s.fwug,
      rtd3e: full.rtd3e, oacs: full.oacs, aerLimit: full.aerl + 1, errorLogEntries: full.elpe + 1, fna: full.fna,
      sqes: { min: s.sqes & 0xf, max: s.sqes >> 4 }, cqes: { min: s.cqes & 0xf, max: s.cqes >> 4 },
      cntrltype: full.cntrltype, kas: full.kas, maxcmd: full.maxcmd, sgls: full.sgls, subnqn: (full.subnqn ?? "").trim(),
      ioccsz: full.ioccsz, iorcsz: full.iorcsz, icdoff: full.icdoff, msdbd: full.msdbd,
    };
    assert.deepEqual(ours, want, f);
  }
});

test("nvme/identify: Identify Namespace geometry equals the full decoder's on every fixture", () => {
  const nss = bins.filter((f) => f.includes("ns"));
  assert.ok(nss.length >= 3);
  for (const f of nss) {
    const d = new Uint8Array(readFileSync(new URL(f, dir)));
    const ours = decodeIdentifyNamespace(d), full = parseIdNs(d), s = nsSummary(full);
    assert.equal(ours.nsze, s.nsze, f);
    assert.equal(ours.ncap, s.ncap, f);
    assert.equal(ours.nuse, s.nuse, f);
    assert.equal(ours.lbaFormat, flbasIndex(full.flbas), f);
    assert.equal(ours.blockSize, s.blockSize, f);
    assert.equal(ours.metadataSize, s.metadataSize, f);
    assert.equal(ours.mssrl, full.mssrl, f);
    assert.equal(ours.mcl, full.mcl, f);
    assert.equal(ours.msrc, full.msrc + 1, f);
  }
  assert.throws(() => decodeIdentifyNamespace(new Uint8Array(100)), InvalidArgumentError);
});
