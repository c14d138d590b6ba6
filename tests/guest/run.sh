#!/bin/sh
# Runs inside the QEMU guest (scripts/guest.sh): the guest tier on Deno, then on Bun, in one boot.
# Usage: tests/guest/run.sh [deno|bun|tcp|target|features|sriov]...   (default: the first four)
cd "$(dirname "$0")/../.." || exit 125
rc=0
for rt in ${*:-deno bun tcp target}; do
  echo "== guest tier on $rt"
  case $rt in
    # NVMe/TCP host against Linux nvmet in this boot, on both runtimes (its own summary line).
    tcp) sh tests/guest/tcp/nvmet.sh || rc=1; sh tests/guest/tcp/reconnect.sh || rc=1 ;;
    # The kernel initiator against tsnvme's own NVMe/TCP target (QEMU's NVMe through VFIO), both runtimes.
    target) sh tests/guest/tcp/target.sh || rc=1 ;;
    # Type checking already ran on the host; under TCG it would only cost time.
    # Feature controllers (scripts/guest.sh --feature ...): each test skips a feature not booted.
    features) deno test -A --no-check tests/guest/features/ || rc=1; bun test tests/guest/features/ || rc=1 ;;
    # SR-IOV alone (scripts/guest.sh --feature sriov; see scripts/test.sh).
    sriov) deno test -A --no-check tests/guest/features/sriov_test.ts || rc=1; bun test tests/guest/features/sriov_test.ts || rc=1 ;;
    deno) deno test -A --no-check tests/guest/ || rc=1 ;;
    bun) bun test tests/guest/ || rc=1 ;;
    *) echo "unknown runtime $rt"; rc=2 ;;
  esac
done
exit $rc
