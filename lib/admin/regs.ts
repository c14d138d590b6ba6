/**
 * Controller registers as `nvme show-regs` (nvme-cli 2.3) reads them: the
 * values and the raw register block (their text, `-H` decoding and JSON are
 * in lib/cli/format/regs.ts). Reads go through the transport (VFIO BAR0 or
 * the software controller), never through an admin command.
 *
 * ```ts
 * import { NVMeDev } from "@tsnvme/tsnvme";
 * import { readRegisters } from "@tsnvme/tsnvme/admin";
 * import assert from "node:assert/strict";
 * await using dev = await NVMeDev.open("sim:");
 * const r = readRegisters(dev);
 * assert.equal(r.csts & 1, 1); // CSTS.RDY: enabled and ready
 * assert.equal(r.vs, 0x00010400); // NVMe 1.4
 * ```
 * @module
 */
import { Reg, REG_BLOCK_SIZE } from "../nvme/spec.ts";
import type { AdminTarget } from "./log.ts";
import { isFabric, type Transport } from "../nvme/transport.ts";
import { NotSupportedError } from "./support.ts";

/** The memory-mapped registers of `dev`; a fabrics controller has properties instead (Controller.readRegister). */
function mmio(dev: AdminTarget): Transport {
  const t = dev.controller.transport;
  if (isFabric(t)) throw new NotSupportedError("transport", `${t.name}: registers are properties over a fabric; read them with controller.readRegister()`);
  return t;
}

/** The register values nvme-cli reads, named as nvme-cli names them. */
export interface ControllerRegisters {
  /** Controller Capabilities. */
  cap: bigint;
  /** Version. */
  vs: number;
  /** Interrupt Mask Set. */
  intms: number;
  /** Interrupt Mask Clear. */
  intmc: number;
  /** Controller Configuration. */
  cc: number;
  /** Controller Status. */
  csts: number;
  /** NVM Subsystem Reset (reads 0 where supported). */
  nssr: number;
  /** Controller Ready Timeouts. */
  crto: number;
  /** Admin Queue Attributes. */
  aqa: number;
  /** Admin Submission Queue base address. */
  asq: bigint;
  /** Admin Completion Queue base address. */
  acq: bigint;
  /** Controller Memory Buffer Location. */
  cmbloc: number;
  /** Controller Memory Buffer Size. */
  cmbsz: number;
  /** Boot Partition Information. */
  bpinfo: number;
  /** Boot Partition Read Select. */
  bprsel: number;
  /** Boot Partition Memory Buffer Location. */
  bpmbl: bigint;
  /** Controller Memory Buffer Memory Space Control. */
  cmbmsc: bigint;
  /** Controller Memory Buffer Status. */
  cmbsts: number;
  /** Persistent Memory Region Capabilities. */
  pmrcap: number;
  /** PMR Control. */
  pmrctl: number;
  /** PMR Status. */
  pmrsts: number;
  /** PMR Elasticity Buffer Size. */
  pmrebs: number;
  /** PMR Sustained Write Throughput. */
  pmrswtp: number;
  /** PMR Memory Space Control, lower. */
  pmrmscl: number;
  /** PMR Memory Space Control, upper. */
  pmrmscu: number;
}

/** Read every register nvme-cli shows (32-bit reads; 64-bit registers low dword first). */
export function readRegisters(dev: AdminTarget): ControllerRegisters {
  const t = mmio(dev);
  const r32 = (off: number) => t.readReg32(off) >>> 0;
  const r64 = (off: number) => t.readReg64(off);
  return {
    cap: r64(Reg.CAP),
    vs: r32(Reg.VS),
    intms: r32(Reg.INTMS),
    intmc: r32(Reg.INTMC),
    cc: r32(Reg.CC),
    csts: r32(Reg.CSTS),
    nssr: r32(Reg.NSSR),
    crto: r32(Reg.CRTO),
    aqa: r32(Reg.AQA),
    asq: r64(Reg.ASQ),
    acq: r64(Reg.ACQ),
    cmbloc: r32(Reg.CMBLOC),
    cmbsz: r32(Reg.CMBSZ),
    bpinfo: r32(Reg.BPINFO),
    bprsel: r32(Reg.BPRSEL),
    bpmbl: r64(Reg.BPMBL),
    cmbmsc: r64(Reg.CMBMSC),
    cmbsts: r32(Reg.CMBSTS),
    pmrcap: r32(Reg.PMRCAP),
    pmrctl: r32(Reg.PMRCTL),
    pmrsts: r32(Reg.PMRSTS),
    pmrebs: r32(Reg.PMREBS),
    pmrswtp: r32(Reg.PMRSWTP),
    pmrmscl: r32(Reg.PMRMSCL),
    pmrmscu: r32(Reg.PMRMSCU),
  };
}

/** The register block from offset 0 to 0xe1b, read dword by dword (`show-regs -o binary`). */
export function readRegisterBlock(dev: AdminTarget): Uint8Array {
  const t = mmio(dev);
  const out = new Uint8Array(REG_BLOCK_SIZE);
  const dv = new DataView(out.buffer);
  for (let off = 0; off < REG_BLOCK_SIZE; off += 4) dv.setUint32(off, t.readReg32(off) >>> 0, true);
  return out;
}
