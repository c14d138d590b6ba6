/**
 * Steering a target Worker's device vector to the Worker's CPU (issue 16):
 * the interrupt that ends the Worker's sleep on its queue then lands on the
 * CPU the Worker sleeps on, so the wake-up is local, not a cross-CPU IPI.
 * Linux only, root only (/proc/irq/N/smp_affinity_list); a refusal leaves the
 * kernel's choice in place.
 * @module
 */
import * as fs from "node:fs";

/**
 * The Linux IRQ number VFIO gave a vector of device `bdf`, from the text of
 * /proc/interrupts (its action is named "vfio-msix[V](BDF)", or "vfio-msi[V]"
 * for MSI), or -1 when no line names it.
 */
export function vfioIrqOf(interrupts: string, bdf: string, vector: number, msix = true): number {
  const name = `vfio-msi${msix ? "x" : ""}[${vector}](${bdf})`;
  for (const line of interrupts.split("\n")) {
    const colon = line.indexOf(":");
    if (colon < 0) continue;
    const n = Number(line.slice(0, colon).trim());
    if (!Number.isInteger(n) || n < 0) continue;
    if (line.slice(colon + 1).trim().split(/\s+/).includes(name)) return n;
  }
  return -1;
}

/** Where {@link steerIrq} reads and writes (tests point it at a directory of their own). */
export interface SteerPaths {
  /** The interrupts table (default /proc/interrupts). */
  interrupts: string;
  /** The per-IRQ directory (default /proc/irq). */
  irqDir: string;
}

const PROC: SteerPaths = { interrupts: "/proc/interrupts", irqDir: "/proc/irq" };

/** A steered IRQ: how to put its affinity back. */
export interface SteeredIrq {
  /** The IRQ number. */
  readonly irq: number;
  /** Its previous smp_affinity_list back (the vector is being given up). Never throws. */
  restore(): void;
}

/**
 * Point the IRQ of `bdf`'s VFIO vector `vector` at `cpu` (its
 * smp_affinity_list). Returns the steered IRQ, or a string saying why not
 * (no such IRQ, not root, the kernel refused): the caller says so once and
 * goes on.
 */
export function steerIrq(bdf: string, vector: number, cpu: number, msix = true, paths: SteerPaths = PROC): SteeredIrq | string {
  let irq: number;
  try {
    irq = vfioIrqOf(fs.readFileSync(paths.interrupts, "utf8"), bdf, vector, msix);
  } catch (e) {
    return `cannot read ${paths.interrupts}: ${(e as Error).message}`;
  }
  if (irq < 0) return `no IRQ named vfio-msi${msix ? "x" : ""}[${vector}](${bdf}) in ${paths.interrupts}`;
  const file = `${paths.irqDir}/${irq}/smp_affinity_list`;
  try {
    const old = fs.readFileSync(file, "utf8").trim();
    fs.writeFileSync(file, `${cpu}\n`);
    return {
      irq,
      restore: () => {
        try {
          fs.writeFileSync(file, `${old}\n`);
        } catch { /* the vector goes back to the helper either way */ }
      },
    };
  } catch (e) {
    return `cannot steer IRQ ${irq} to CPU ${cpu}: ${(e as Error).message}`;
  }
}
