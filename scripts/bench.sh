#!/usr/bin/env bash
# Benchmark tsnvme against the kernel nvme driver (fio) and, when /work/shared/tools/build-peers.sh
# installed them under /var/cache/tsnvme-peers/bin, SPDK's spdk_nvme_perf and libvfn's perf, on the
# same controller in one QEMU guest boot; prints tsnvme/SPDK and tsnvme/kernel ratios.
# The guest kernel is 6.12 unless TSNVME_GUEST_KERNEL=6.1. The first line printed names the stack
# the figures come from (guest kernel, QEMU, fio, Deno, Bun, commit): the README quotes it.
set -euo pipefail
usage() {
  cat <<'EOF'
Usage: scripts/bench.sh [options]   (boots one QEMU guest; options go to scripts/bench-compare.ts)
  --rw randread          fio/tsnvme workload
  --bs 4096              block size in bytes
  --iodepth 1,32,128     queue depths
  --runtime 4            seconds per job
  --ramp 12              tsnvme warm-up seconds before each job (JIT compiles under TCG take seconds)
  --modes poll,interrupt,adaptive   tsnvme wait modes
  --apis promise,callback           tsnvme APIs: Promise (await ns.read) in every mode; callback
                         (ns.submitRead, next IO from the completion's callback, as SPDK's perf)
                         in adaptive mode; each tsnvme row's wait column names its API
  --no-peers             skip SPDK spdk_nvme_perf and libvfn perf
  --no-hog               skip the CPU-hog table (--loads 0,50,100, --hog-runtime 3)
  --no-scaling           skip scaling with Workers
  --idle-trickle         also run scripts/idle-cpu.ts (idle, and 10 reads/s, % of a core)
  --rounds 1             runs of the kernel, peer and tsnvme rows, every other one in reverse
                         order; each row is the median run (a boot's speed drifts under TCG)
  --out FILE             also write the Markdown tables to FILE
  -h, --help             print this and exit (no guest)
Env: TSNVME_CACHE (guest image cache), TSNVME_GUEST_KERNEL=6.1.
EOF
}
for a in "$@"; do
  case "$a" in -h | --help) usage; exit 0 ;; esac
done
cd "$(dirname "$0")/.."
scripts/install-deps.sh
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
# shellcheck disable=SC2016 # expanded by the guest's shell
exec scripts/guest.sh -- sh -c 'echo "stack: $(date -u +%F) commit '"$commit"', guest Linux $(uname -r), QEMU $TSNVME_QEMU_VERSION (TCG), $(fio --version), Deno $(deno --version | awk "NR == 1 {print \$2}"), Bun $(bun --version), SPDK $(awk "{print \$2}" /var/cache/tsnvme-peers/bin/spdk.commit 2>/dev/null || echo none), libvfn $(awk "{print \$2}" /var/cache/tsnvme-peers/bin/libvfn.commit 2>/dev/null || echo none)"
echo
exec deno run -A scripts/bench-compare.ts "$@"' sh "$@"
