#!/usr/bin/env bash
# Benchmark tsnvme against the kernel nvme driver (fio) in one QEMU guest boot.
# Usage: scripts/bench.sh [--bs 4096] [--iodepth 1,32] [--runtime 5] [--rw randread]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec scripts/guest.sh -- deno run -A scripts/bench-compare.ts "$@"
