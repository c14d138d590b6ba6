/** show-regs decoding: nvme-cli's text for known register values. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "../../harness.ts";
import type { ControllerRegisters } from "../../../lib/admin/regs.ts";
import { formatRegisters, registersToJson } from "../../../lib/cli/format/regs.ts";

const dir = new URL("../../fixtures/regs/", import.meta.url);
const BIG = new Set(["cap", "asq", "acq", "bpmbl", "cmbmsc"]);

/** Register values from nvme-cli's JSON (int32 fields may be negative there). */
function fromJson(text: string): ControllerRegisters {
  // 64-bit values past 2^53 would lose digits in JSON.parse: take them from the text.
  const o: Record<string, number | bigint> = {};
  for (const m of text.matchAll(/"(\w+)":(-?\d+)/g)) o[m[1]] = BIG.has(m[1]) ? BigInt(m[2]) : Number(m[2]) >>> 0;
  return o as unknown as ControllerRegisters;
}

test("show-regs -H of QEMU's registers is nvme-cli 2.3's text byte for byte; json round-trips", () => {
  const json = readFileSync(new URL("qemu-show-regs.json", dir), "utf8");
  const regs = fromJson(json);
  assert.equal(regs.cap, 0x4018200f0107ffn);
  assert.equal(formatRegisters(regs, { human: true }), readFileSync(new URL("qemu-show-regs-H.txt", dir), "utf8"));
  assert.equal(registersToJson(regs), json.trimEnd());
});

test("show-regs decodes CMB, boot partition, PMR and CRTO fields as nvme-cli does", () => {
  const zero = fromJson(readFileSync(new URL("qemu-show-regs.json", dir), "utf8"));
  const r: ControllerRegisters = {
    ...zero,
    // CRIMS, CRWMS, CMBS, PMRS | MPSMAX 15, MPSMIN 0 | BPS, CSS NVM, NSSRS, DSTRD 13 | TO 15 | AMS WRR, CQR | MQES 1023.
    cap: 0x1b_f0_203d_0f_03_03ffn,
    crto: 0x0014_000a,
    cmbloc: 0x0000_51a9,
    cmbsz: 0x0000_3315,
    bpinfo: 0x8200_0004,
    bprsel: 0x8000_0c05,
    cmbmsc: 0x1234_5003n,
    cmbsts: 1,
    pmrcap: 0x0105_0d18,
    pmrctl: 1,
    pmrsts: 0x0000_0401,
    pmrebs: 0x0000_0215,
    pmrswtp: 0x0000_0303,
    pmrmscl: 0x0000_3002,
    pmrmscu: 0x7,
    nssr: 0xffff_ffff,
  };
  const t = formatRegisters(r, { human: true });
  const has = (s: string) => assert.ok(t.includes(s), `missing ${JSON.stringify(s)}`);
  has("\tController Ready With Media Support (CRWMS): Supported\n");
  has("\tController Memory Buffer Supported (CMBS): The Controller Memory Buffer is Supported\n");
  has("\tPersistent Memory Region Supported (PMRS): The Persistent Memory Region is Supported\n");
  has("\tMemory Page Size Maximum         (MPSMAX): 134217728 bytes\n");
  has("\tBoot Partition Support              (BPS): Yes\n");
  has("\tNVM Subsystem Reset Supported     (NSSRS): Yes\n");
  has("\tDoorbell Stride                   (DSTRD): 32768 bytes\n");
  has("\tCRIMT                               : 10 secs\n\tCRWMT                               : 5 secs\n");
  assert.ok(!t.includes("nssr    :"), "a register reading all ones is left out");
  has("\tOffset                                                        (OFST): 0x5 (See cmbsz.szu for granularity)\n");
  has("\tCMB Queue Dword Alignment                                     (CQDA): 1\n");
  has("\tCMB Data Metadata Mixed Memory Support                      (CDMMMS): Not Enforced\n");
  has("\tCMB Data Pointer and Command Independent Locations Support (CDPCILS): Enforced\n");
  has("\tBase Indicator Register                                        (BIR): 0x1\n\n");
  has("\tSize                      (SZ): 3\n\tSize Units               (SZU): 16 MB\n");
  has("Write Data and metadata transfer in Controller Memory Buffer is Supported\n");
  has("Read Data and metadata transfer in Controller Memory Buffer is Not supported\n");
  has("\tActive Boot Partition ID      (ABPID): 1\n\tBoot Read Status                (BRS): Boot Partition read completed successfully\n");
  has("\tBoot Partition Size            (BPSZ): 4\n");
  has("\tBoot Partition Identifier      (BPID): 1\n\tBoot Partition Read Offset    (BPROF): 3\n\tBoot Partition Read Size      (BPRSZ): 5\n");
  has("cmbmsc\t: 12345003\n\tController Base Address         (CBA): 12345\n\tController Memory Space Enable (CMSE): 1\n");
  has("CMBLOC and CMBSZ registers are enabled\n\n");
  has("cmbsts\t: 1\n\tController Base Address Invalid (CBAI): 1\n\n");
  has("Referencing PMR with host supplied addresses is Supported\n");
  has("\tPersistent Memory Region Timeout                   (PMRTO): 5\n");
  has("\tPersistent Memory Region Write Barrier Mechanisms (PMRWBM): 3\n");
  has("(PMRTU): PMR time unit is minutes\n");
  has("\tWrite Data Support                                   (WDS): Write data to the PMR is supported\n");
  has("\tRead Data Support                                    (RDS): Read data from the PMR is supported\n");
  has("\tEnable (EN): PMR is READY\n");
  has("\tHealth Status                   (HSTS): Read Only\n");
  has("The Persistent Memory Region is READY to process");
  has("\tPMR Elasticity Buffer Size Base  (PMRWBZ): 2\n");
  has("in the PMR Elasticity Buffer SHALL bypass those memory writes\n");
  has("\tPMR Elasticity Buffer Size Units (PMRSZU): Reserved\n");
  has("\tPMR Sustained Write Throughput Units (PMRSWTU): One GB/second\n");
  has("pmrmscl\t: 0x3002\n\tController Base Address         (CBA): 0x3\n\tController Memory Space Enable (CMSE): 0x1\n\n");
  has("pmrmscu\t: 0x7\n\tController Base Address         (CBA): 0x7\n");
  // Without -H: one line each, nvme-cli's spacing (tabs for cmbmsc, cmbsts, pmrmscl, pmrmscu).
  const plain = formatRegisters(r).split("\n");
  assert.equal(plain[0], "cap     : 1bf0203d0f0303ff");
  assert.ok(plain.includes("pmrmscl\t: 0x3002"));
  assert.ok(!plain.some((l) => l.startsWith("\t")));
});
