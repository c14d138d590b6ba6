#!/bin/sh
# Runs inside the QEMU guest (scripts/guest.sh): the guest tier on Deno, then on Bun, in one boot.
# Usage: tests/guest/run.sh [deno|bun]...   (default: both)
cd "$(dirname "$0")/../.." || exit 125
rc=0
for rt in ${*:-deno bun}; do
  echo "== guest tier on $rt"
  case $rt in
    # Type checking already ran on the host; under TCG it would only cost time.
    deno) deno test -A --no-check tests/guest/ || rc=1 ;;
    bun) bun test tests/guest/ || rc=1 ;;
    *) echo "unknown runtime $rt"; rc=2 ;;
  esac
done
exit $rc
