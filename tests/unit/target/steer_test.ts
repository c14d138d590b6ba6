/**
 * Steering a pinned Worker's device vector to its CPU (lib/target/steer.ts):
 * the vector's IRQ found by its VFIO name in /proc/interrupts, its
 * smp_affinity_list written and put back, refusals reported, not thrown.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { test } from "../../harness.ts";
import { steerIrq, vfioIrqOf } from "../../../lib/target/steer.ts";

// Two vCPUs, as the TCG guest's /proc/interrupts shows a device bound to vfio-pci.
const INTERRUPTS = `           CPU0       CPU1
  0:         45          0   IO-APIC   2-edge      timer
 24:          0          0  IR-PCI-MSIX-0000:00:04.0    0-edge      vfio-msix[0](0000:00:04.0)
 25:         10        310  IR-PCI-MSIX-0000:00:04.0    1-edge      vfio-msix[1](0000:00:04.0)
 26:          3          0  IR-PCI-MSIX-0000:00:05.0    1-edge      vfio-msix[1](0000:00:05.0)
 27:          0          0  IR-PCI-MSI-0000:00:06.0    0-edge      vfio-msi[1](0000:00:06.0)
NMI:          0          0   Non-maskable interrupts
CAL:        100        200   Function call interrupts
`;

test("target steer: a vector's IRQ is found by its VFIO name, device and vector both", () => {
  assert.equal(vfioIrqOf(INTERRUPTS, "0000:00:04.0", 1), 25);
  assert.equal(vfioIrqOf(INTERRUPTS, "0000:00:04.0", 0), 24);
  assert.equal(vfioIrqOf(INTERRUPTS, "0000:00:05.0", 1), 26);
  assert.equal(vfioIrqOf(INTERRUPTS, "0000:00:06.0", 1, false), 27);
  assert.equal(vfioIrqOf(INTERRUPTS, "0000:00:06.0", 1), -1); // MSI, not MSI-X
  assert.equal(vfioIrqOf(INTERRUPTS, "0000:00:04.0", 2), -1);
});

test("target steer: the IRQ's affinity is set to the CPU and put back on restore; refusals are reasons, not throws", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tsnvme-steer-"));
  try {
    const paths = { interrupts: path.join(dir, "interrupts"), irqDir: path.join(dir, "irq") };
    fs.writeFileSync(paths.interrupts, INTERRUPTS);
    assert.match(String(steerIrq("0000:00:04.0", 1, 0, true, paths)), /cannot steer IRQ 25/); // no such file
    fs.mkdirSync(path.join(paths.irqDir, "25"), { recursive: true });
    const file = path.join(paths.irqDir, "25", "smp_affinity_list");
    fs.writeFileSync(file, "0-1\n");
    const s = steerIrq("0000:00:04.0", 1, 0, true, paths);
    assert.ok(typeof s !== "string", String(s));
    assert.equal(s.irq, 25);
    assert.equal(fs.readFileSync(file, "utf8").trim(), "0");
    s.restore();
    assert.equal(fs.readFileSync(file, "utf8").trim(), "0-1");
    assert.match(String(steerIrq("0000:00:09.0", 1, 0, true, paths)), /no IRQ named vfio-msix\[1\]\(0000:00:09\.0\)/);
    assert.match(String(steerIrq("0000:00:04.0", 1, 0, true, { ...paths, interrupts: path.join(dir, "none") })), /cannot read/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
