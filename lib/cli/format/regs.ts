/**
 * nvme-cli 2.3's presentation of the controller registers: `nvme show-regs`
 * text, its `-H` decoding of every field, and its `-o json` object.
 * @module
 */
import type { ControllerRegisters } from "../../admin/regs.ts";
import { Uint64 } from "../../nvme/wide.ts";
import { toNvmeCliJson } from "./json.ts";

/** `nvme show-regs -o json`: json-c's text of nvme-cli's object (32-bit values as int32). */
export function registersToJson(r: ControllerRegisters): string {
  const o: Record<string, number | Uint64> = {};
  for (const [k, v] of Object.entries(r)) o[k] = typeof v === "bigint" ? new Uint64(v) : v;
  return toNvmeCliJson(o, { narrow: "all" });
}

const x = (v: number | bigint): string => (typeof v === "bigint" ? v : BigInt(v >>> 0)).toString(16);
/** C's `%#x`: "0x" prefix except for zero. */
const hx = (v: number): string => (v === 0 ? "0" : "0x" + x(v));
const yn = (b: boolean) => (b ? "Yes" : "No");
const ns = (b: boolean) => (b ? "Supported" : "Not Supported");

function capText(cap: bigint): string {
  const lo = Number(cap & 0xffff_ffffn), hi = Number(cap >> 32n);
  const mqes = lo & 0xffff, amsCqr = (lo >>> 16) & 0xff, to = (lo >>> 24) & 0xff;
  const bcnd = hi & 0xffff, mps = (hi >>> 16) & 0xff, top = (hi >>> 24) & 0xff;
  return `\tController Ready With Media Support (CRWMS): ${ns((top & 0x08) !== 0)}\n` +
    `\tController Ready Independent of Media Support (CRIMS): ${ns((top & 0x10) !== 0)}\n` +
    `\tController Memory Buffer Supported (CMBS): The Controller Memory Buffer is ${ns((top & 0x02) !== 0)}\n` +
    `\tPersistent Memory Region Supported (PMRS): The Persistent Memory Region is ${ns((top & 0x01) !== 0)}\n` +
    `\tMemory Page Size Maximum         (MPSMAX): ${2 ** (12 + ((mps & 0xf0) >> 4))} bytes\n` +
    `\tMemory Page Size Minimum         (MPSMIN): ${2 ** (12 + (mps & 0x0f))} bytes\n` +
    `\tBoot Partition Support              (BPS): ${yn((bcnd & 0x2000) !== 0)}\n` +
    `\tCommand Sets Supported              (CSS): NVM command set is ${ns((bcnd & 0x0020) !== 0)}\n` +
    `\t                                           One or more I/O Command Sets are ${ns((bcnd & 0x0800) !== 0)}\n` +
    `\t                                           ${bcnd & 0x1000 ? "Only Admin Command Set Supported" : "I/O Command Set is Supported"}\n` +
    `\tNVM Subsystem Reset Supported     (NSSRS): ${yn((bcnd & 0x0010) !== 0)}\n` +
    `\tDoorbell Stride                   (DSTRD): ${2 ** (2 + (bcnd & 0xf))} bytes\n` +
    `\tTimeout                              (TO): ${to * 500} ms\n` +
    `\tArbitration Mechanism Supported     (AMS): Weighted Round Robin with Urgent Priority Class is ${
      amsCqr & 0x02 ? "supported" : "not supported"
    }\n` +
    `\tContiguous Queues Required          (CQR): ${yn((amsCqr & 0x01) !== 0)}\n` +
    `\tMaximum Queue Entries Supported    (MQES): ${mqes + 1}\n\n`;
}

function ccText(cc: number): string {
  const shn = ["No notification; no effect", "Normal shutdown notification", "Abrupt shutdown notification", "Reserved"];
  const ams = (cc >>> 11) & 7;
  const css = cc & 0x70;
  return `\tController Ready Independent of Media Enable (CRIME): ${(cc >>> 24) & 1 ? "Enabled" : "Disabled"}\n` +
    `\tI/O Completion Queue Entry Size (IOCQES): ${2 ** ((cc >>> 20) & 0xf)} bytes\n` +
    `\tI/O Submission Queue Entry Size (IOSQES): ${2 ** ((cc >>> 16) & 0xf)} bytes\n` +
    `\tShutdown Notification              (SHN): ${shn[(cc >>> 14) & 3]}\n` +
    `\tArbitration Mechanism Selected     (AMS): ${
      ams === 0 ? "Round Robin" : ams === 1 ? "Weighted Round Robin with Urgent Priority Class" : ams === 7 ? "Vendor Specific" : "Reserved"
    }\n` +
    `\tMemory Page Size                   (MPS): ${2 ** (12 + ((cc >>> 7) & 0xf))} bytes\n` +
    `\tI/O Command Set Selected           (CSS): ${
      css === 0 ? "NVM Command Set" : css === 0x60 ? "All supported I/O Command Sets" : css === 0x70 ? "Admin Command Set only" : "Reserved"
    }\n` +
    `\tEnable                              (EN): ${yn((cc & 1) !== 0)}\n\n`;
}

function cstsText(csts: number): string {
  const shst = [
    "Normal operation (no shutdown has been requested)",
    "Shutdown processing occurring",
    "Shutdown processing complete",
    "Reserved",
  ];
  return `\tProcessing Paused               (PP): ${yn((csts & 0x20) !== 0)}\n` +
    `\tNVM Subsystem Reset Occurred (NSSRO): ${yn((csts & 0x10) !== 0)}\n` +
    `\tShutdown Status               (SHST): ${shst[(csts >>> 2) & 3]}\n` +
    `\tController Fatal Status        (CFS): ${csts & 2 ? "True" : "False"}\n` +
    `\tReady                          (RDY): ${yn((csts & 1) !== 0)}\n\n`;
}

function cmblocText(cmbloc: number, cmbsz: number): string {
  if (cmbsz === 0) return "\tController Memory Buffer feature is not supported\n\n";
  const e = (bit: number) => ((cmbloc >>> bit) & 1 ? "Not Enforced" : "Enforced");
  return `\tOffset                                                        (OFST): 0x${x(cmbloc >>> 12)} (See cmbsz.szu for granularity)\n` +
    `\tCMB Queue Dword Alignment                                     (CQDA): ${(cmbloc >>> 8) & 1}\n` +
    `\tCMB Data Metadata Mixed Memory Support                      (CDMMMS): ${e(7)}\n` +
    `\tCMB Data Pointer and Command Independent Locations Support (CDPCILS): ${e(6)}\n` +
    `\tCMB Data Pointer Mixed Locations Support                    (CDPMLS): ${e(5)}\n` +
    `\tCMB Queue Physically Discontiguous Support                   (CQPDS): ${e(4)}\n` +
    `\tCMB Queue Mixed Memory Support                               (CQMMS): ${e(3)}\n` +
    `\tBase Indicator Register                                        (BIR): 0x${x(cmbloc & 7)}\n\n`;
}

function cmbszText(cmbsz: number): string {
  if (cmbsz === 0) return "\tController Memory Buffer feature is not supported\n\n";
  const szu = ["4 KB", "64 KB", "1 MB", "16 MB", "256 MB", "4 GB", "64 GB"][(cmbsz >>> 8) & 0xf] ?? "Reserved";
  const s = (b: number) => (cmbsz & b ? "Supported" : "Not supported");
  return `\tSize                      (SZ): ${cmbsz >>> 12}\n` +
    `\tSize Units               (SZU): ${szu}\n` +
    `\tWrite Data Support       (WDS): Write Data and metadata transfer in Controller Memory Buffer is ${s(0x10)}\n` +
    `\tRead Data Support        (RDS): Read Data and metadata transfer in Controller Memory Buffer is ${s(0x08)}\n` +
    `\tPRP SGL List Support   (LISTS): PRP/SG Lists in Controller Memory Buffer is ${s(0x04)}\n` +
    `\tCompletion Queue Support (CQS): Admin and I/O Completion Queues in Controller Memory Buffer is ${s(0x02)}\n` +
    `\tSubmission Queue Support (SQS): Admin and I/O Submission Queues in Controller Memory Buffer is ${s(0x01)}\n\n`;
}

function bpinfoText(bpinfo: number): string {
  const brs = ["No Boot Partition read operation requested", "Boot Partition read in progress",
    "Boot Partition read completed successfully", "Error completing Boot Partition read"][(bpinfo >>> 24) & 3];
  return `\tActive Boot Partition ID      (ABPID): ${bpinfo >>> 31}\n` +
    `\tBoot Read Status                (BRS): ${brs}\n` +
    `\tBoot Partition Size            (BPSZ): ${bpinfo & 0x7fff}\n`;
}

const pmrUnits = (u: number) => ["Bytes", "One KB", "One MB", "One GB"][u] ?? "Reserved";

function pmrText(r: ControllerRegisters): Record<string, string> {
  const { pmrcap, pmrctl, pmrsts, pmrebs, pmrswtp, pmrmscl, pmrmscu } = r;
  return {
    pmrcap: `\tController Memory Space Supported                   (CMSS): Referencing PMR with host supplied addresses is ${
      (pmrcap >>> 24) & 1 ? "Supported" : "Not Supported"
    }\n` +
      `\tPersistent Memory Region Timeout                   (PMRTO): ${x((pmrcap >>> 16) & 0xff)}\n` +
      `\tPersistent Memory Region Write Barrier Mechanisms (PMRWBM): ${x((pmrcap >>> 10) & 0xf)}\n` +
      `\tPersistent Memory Region Time Units                (PMRTU): PMR time unit is ${(pmrcap >>> 8) & 3 ? "minutes" : "500 milliseconds"}\n` +
      `\tBase Indicator Register                              (BIR): ${x((pmrcap >>> 5) & 7)}\n` +
      `\tWrite Data Support                                   (WDS): Write data to the PMR is ${pmrcap & 0x10 ? "supported" : "not supported"}\n` +
      `\tRead Data Support                                    (RDS): Read data from the PMR is ${pmrcap & 0x08 ? "supported" : "not supported"}\n`,
    pmrctl: `\tEnable (EN): PMR is ${pmrctl & 1 ? "READY" : "Disabled"}\n`,
    pmrsts: `\tController Base Address Invalid (CBAI): ${x((pmrsts >>> 12) & 1)}\n` +
      `\tHealth Status                   (HSTS): ${
        ["Normal Operation", "Restore Error", "Read Only", "Unreliable"][(pmrsts >>> 9) & 7] ?? "Reserved"
      }\n` +
      `\tNot Ready                       (NRDY): The Persistent Memory Region is ${
        (pmrsts & 0x100) === 0 && pmrctl & 1 ? "READY" : "Not Ready"
      } to process PCI Express memory read and write requests\n` +
      `\tError                            (ERR): ${x(pmrsts & 0xff)}\n`,
    pmrebs: `\tPMR Elasticity Buffer Size Base  (PMRWBZ): ${x(pmrebs >>> 8)}\n` +
      `\tRead Bypass Behavior                     : memory reads not conflicting with memory writes in the PMR Elasticity Buffer ${
        pmrebs & 0x10 ? "SHALL" : "MAY"
      } bypass those memory writes\n` +
      `\tPMR Elasticity Buffer Size Units (PMRSZU): ${pmrUnits(pmrebs & 0xf)}\n`,
    pmrswtp: `\tPMR Sustained Write Throughput       (PMRSWTV): ${x(pmrswtp >>> 8)}\n` +
      `\tPMR Sustained Write Throughput Units (PMRSWTU): ${pmrUnits(pmrswtp & 0xf)}/second\n`,
    pmrmscl: `\tController Base Address         (CBA): ${hx(pmrmscl >>> 12)}\n` +
      `\tController Memory Space Enable (CMSE): ${hx((pmrmscl >>> 1) & 1)}\n\n`,
    pmrmscu: `\tController Base Address         (CBA): ${hx(pmrmscu)}\n`,
  };
}

/**
 * `nvme show-regs` text for a PCIe controller; with `human`, each register is
 * followed by nvme-cli's decoding of its fields (`-H`). nvme-cli skips a
 * register that reads all ones (0xffffffff) among the first six.
 */
export function formatRegisters(r: ControllerRegisters, { human = false } = {}): string {
  const present = (v: number | bigint) => v !== 0xffff_ffff && v !== 0xffff_ffffn;
  const pmr = pmrText(r);
  const h = (s: string) => (human ? s : "");
  let s = "";
  if (present(r.cap)) s += `cap     : ${x(r.cap)}\n` + h(capText(r.cap));
  if (present(r.vs)) s += `version : ${x(r.vs)}\n` + h(`\tNVMe specification ${r.vs >>> 16}.${(r.vs >>> 8) & 0xff}\n\n`);
  if (present(r.cc)) s += `cc      : ${x(r.cc)}\n` + h(ccText(r.cc));
  if (present(r.csts)) s += `csts    : ${x(r.csts)}\n` + h(cstsText(r.csts));
  if (present(r.nssr)) s += `nssr    : ${x(r.nssr)}\n` + h(`\tNVM Subsystem Reset Control (NSSRC): ${r.nssr}\n\n`);
  if (present(r.crto)) {
    // C integer division of the 500 ms unit counts.
    s += `crto    : ${x(r.crto)}\n` +
      h(`\tCRIMT                               : ${Math.trunc((r.crto >>> 16) / 2)} secs\n` +
        `\tCRWMT                               : ${Math.trunc((r.crto & 0xffff) / 2)} secs\n`);
  }
  s += `intms   : ${x(r.intms)}\n` + h(`\tInterrupt Vector Mask Set (IVMS): ${x(r.intms)}\n\n`);
  s += `intmc   : ${x(r.intmc)}\n` + h(`\tInterrupt Vector Mask Clear (IVMC): ${x(r.intmc)}\n\n`);
  s += `aqa     : ${x(r.aqa)}\n` +
    h(`\tAdmin Completion Queue Size (ACQS): ${((r.aqa >>> 16) & 0xfff) + 1}\n` +
      `\tAdmin Submission Queue Size (ASQS): ${(r.aqa & 0xfff) + 1}\n\n`);
  s += `asq     : ${x(r.asq)}\n` + h(`\tAdmin Submission Queue Base (ASQB): ${x(r.asq)}\n\n`);
  s += `acq     : ${x(r.acq)}\n` + h(`\tAdmin Completion Queue Base (ACQB): ${x(r.acq)}\n\n`);
  s += `cmbloc  : ${x(r.cmbloc)}\n` + h(cmblocText(r.cmbloc, r.cmbsz));
  s += `cmbsz   : ${x(r.cmbsz)}\n` + h(cmbszText(r.cmbsz));
  s += `bpinfo  : ${x(r.bpinfo)}\n` + h(bpinfoText(r.bpinfo));
  s += `bprsel  : ${x(r.bprsel)}\n` +
    h(`\tBoot Partition Identifier      (BPID): ${r.bprsel >>> 31}\n` +
      `\tBoot Partition Read Offset    (BPROF): ${x((r.bprsel >>> 10) & 0xfffff)}\n` +
      `\tBoot Partition Read Size      (BPRSZ): ${x(r.bprsel & 0x3ff)}\n`);
  s += `bpmbl   : ${x(r.bpmbl)}\n` + h(`\tBoot Partition Memory Buffer Base Address (BMBBA): ${x(r.bpmbl)}\n`);
  s += `cmbmsc\t: ${x(r.cmbmsc)}\n` +
    h(`\tController Base Address         (CBA): ${x(r.cmbmsc >> 12n)}\n` +
      `\tController Memory Space Enable (CMSE): ${x((r.cmbmsc >> 1n) & 1n)}\n` +
      `\tCapabilities Registers Enabled  (CRE): CMBLOC and CMBSZ registers are${r.cmbmsc & 1n ? " " : " NOT "}enabled\n\n`);
  s += `cmbsts\t: ${x(r.cmbsts)}\n` + h(`\tController Base Address Invalid (CBAI): ${x(r.cmbsts & 1)}\n\n`);
  s += `pmrcap  : ${x(r.pmrcap)}\n` + h(pmr.pmrcap);
  s += `pmrctl  : ${x(r.pmrctl)}\n` + h(pmr.pmrctl);
  s += `pmrsts  : ${x(r.pmrsts)}\n` + h(pmr.pmrsts);
  s += `pmrebs  : ${x(r.pmrebs)}\n` + h(pmr.pmrebs);
  s += `pmrswtp : ${x(r.pmrswtp)}\n` + h(pmr.pmrswtp);
  s += `pmrmscl\t: ${hx(r.pmrmscl)}\n` + h(pmr.pmrmscl);
  s += `pmrmscu\t: ${hx(r.pmrmscu)}\n` + h(pmr.pmrmscu);
  return s;
}
