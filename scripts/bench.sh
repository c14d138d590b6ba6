#!/usr/bin/env bash
# Benchmark tsnvme against the kernel nvme driver (fio) and, when /work/shared/tools/build-peers.sh
# installed them under /var/cache/tsnvme-peers/bin, SPDK's spdk_nvme_perf and libvfn's perf, on the
# same controller in one QEMU guest boot; prints tsnvme/SPDK and tsnvme/kernel ratios.
# Usage: scripts/bench.sh [--bs 4096] [--iodepth 1,32] [--runtime 5] [--rw randread] [--no-peers]
# The guest kernel is 6.12 unless TSNVME_GUEST_KERNEL=6.1. The first line printed names the stack
# the figures come from (guest kernel, QEMU, fio, Deno, Bun, commit): the README quotes it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# shellcheck disable=SC2016 # expanded by the guest's shell
exec scripts/guest.sh -- sh -c 'echo "stack: $(date -u +%F) commit '"$commit"', guest Linux $(uname -r), QEMU $TSNVME_QEMU_VERSION (TCG), $(fio --version), Deno $(deno --version | awk "NR == 1 {print \$2}"), Bun $(bun --version), SPDK $(awk "{print \$2}" /var/cache/tsnvme-peers/bin/spdk.commit 2>/dev/null || echo none), libvfn $(awk "{print \$2}" /var/cache/tsnvme-peers/bin/libvfn.commit 2>/dev/null || echo none)"
echo
exec deno run -A scripts/bench-compare.ts "$@"' sh "$@"
