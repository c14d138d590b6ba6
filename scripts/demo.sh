#!/usr/bin/env bash
# The main job on the embedded default: boot a QEMU guest with an emulated NVMe controller
# behind an IOMMU, bind it to vfio-pci, and let tsnvme open, identify, write, read back and
# verify it, on Deno and then on Bun. Installs what it needs on first run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec scripts/guest.sh -- sh -c 'deno run -A scripts/demo.ts && bun scripts/demo.ts'
