#!/usr/bin/env bash
# Benchmark ublk on tsnvme against the kernel nvme driver, same QEMU controller, one guest boot.
# fio (io_uring, O_DIRECT) on /dev/ublkbN (served by lib/cli/ublk.ts) and on the kernel's
# /dev/nvmeXnY: 4 KiB randread QD1 and QD32 (IOPS, p50/p99 µs), 128 KiB read and write QD8 (MB/s),
# and guest CPU per IO (all CPUs' busy time from /proc/stat over the run / IOs: the server's
# threads included), with 1 and 2 queues (ublk queues; the kernel driver's are its own).
# Prints figures and ublk/kernel ratios; asserts nothing.
# Usage (host): scripts/bench-ublk.sh [--runtime-s 10] [--server deno|bun|both] [--ns 1]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNTIME_S=10 SERVER=deno NS=1
while (($#)); do
  case $1 in
    --runtime-s) RUNTIME_S=$2; shift 2 ;;
    --server) SERVER=$2; shift 2 ;;
    --ns) NS=$2; shift 2 ;;
    *) echo "usage: $0 [--runtime-s N] [--server deno|bun|both] [--ns NSID]" >&2; exit 2 ;;
  esac
done

if [[ ${TSNVME_GUEST:-} != 1 ]]; then
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
  echo "host: commit $commit" >&2
  exec scripts/guest.sh --timeout 3600 -- bash scripts/bench-ublk.sh --runtime-s "$RUNTIME_S" --server "$SERVER" --ns "$NS"
fi

# ---- inside the guest ----
export PATH=$PWD/node_modules/.bin:$PATH
echo "stack: $(date -u +%F), guest Linux $(uname -r), QEMU ${TSNVME_QEMU_VERSION:-?} (TCG), $(fio --version), Deno $(deno --version | awk 'NR == 1 {print $2}'), Bun $(bun --version), $(nproc) vCPUs"
[[ -e /dev/ublk-control ]] || { echo "no /dev/ublk-control (ublk_drv not loaded): nothing to measure" >&2; exit 1; }

busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; } # user nice system irq softirq, jiffies
HZ=$(getconf CLK_TCK)

# run LABEL DEV RW BS QD -> one result line
run() {
  local label=$1 dev=$2 rw=$3 bs=$4 qd=$5 b0 b1 out
  b0=$(busy)
  out=$(fio --name=b --filename="$dev" --ioengine=io_uring --direct=1 --rw="$rw" --bs="$bs" --iodepth="$qd" \
    --time_based --runtime="$RUNTIME_S" --ramp_time=1 --size=48M --group_reporting --output-format=json 2>/dev/null)
  b1=$(busy)
  FIO_OUT=$out python3 - "$label" "$rw" "$bs" "$qd" "$((b1 - b0))" "$HZ" <<'EOF'
import json, os, sys
label, rw, bs, qd, jiffies, hz = sys.argv[1:]
out = os.environ["FIO_OUT"]
j = json.loads(out[out.index("{"):])["jobs"][0]
d = j["read"] if j["read"]["io_bytes"] > 0 else j["write"]
ios = d["total_ios"] or 1
lat = d.get("clat_ns", {}).get("percentile", {})
p50 = lat.get("50.000000", 0) / 1000
p99 = lat.get("99.000000", 0) / 1000
cpu_us = int(jiffies) / int(hz) * 1e6 / ios
print(f"{label:<14} {rw:<9} {int(bs)//1024:>4}K QD{qd:<3} {d['iops']:>10.0f} IOPS {d['bw_bytes']/1e6:>8.1f} MB/s  p50 {p50:>8.1f} us  p99 {p99:>8.1f} us  cpu/IO {cpu_us:>7.1f} us")
EOF
}

suite() { # LABEL DEV
  run "$1" "$2" randread 4096 1
  run "$1" "$2" randread 4096 32
  run "$1" "$2" read 131072 8
  run "$1" "$2" write 131072 8
}

declare -a LINES=()
serve() { # RUNTIME QUEUES -> runs the suite on a ublk device
  local rt=$1 q=$2 ready=/tmp/bench-ublk-ready pid
  rm -f $ready
  if [[ $rt == bun ]]; then bun lib/cli/ublk.ts add "$TSNVME_PCI:$NS" --queues "$q" --depth 128 --ready-file $ready --quiet &
  else deno run -A lib/cli/ublk.ts add "$TSNVME_PCI:$NS" --queues "$q" --depth 128 --ready-file $ready --quiet & fi
  pid=$!
  for _ in $(seq 1 600); do [[ -s $ready ]] && break; sleep 0.2; done
  [[ -s $ready ]] || { echo "ublk server ($rt) did not start" >&2; kill -9 $pid; return 1; }
  local dev; dev=$(awk '{print $2}' $ready)
  while read -r line; do LINES+=("$line"); echo "$line"; done < <(suite "ublk-$rt-q$q" "$dev")
  kill -TERM $pid; wait $pid || true
}

echo
echo "ublk on tsnvme (VFIO), namespace $NS, ${RUNTIME_S}s per point:"
servers=$SERVER; [[ $SERVER == both ]] && servers="deno bun"
for rt in $servers; do for q in 1 2; do serve "$rt" "$q"; done; done

echo
echo "kernel nvme driver, same controller:"
scripts/guest-bind.sh nvme "$TSNVME_PCI" >/dev/null
# (an if, not `[[ ]] &&`: a last namespace that is not $NS must not fail the loop under pipefail)
KDEV=$(for d in /sys/bus/pci/devices/"$TSNVME_PCI"/nvme/nvme*/nvme*n*; do if [[ $(cat "$d/nsid") == "$NS" ]]; then echo "/dev/$(basename "$d" | sed 's/c[0-9]*n/n/')"; fi; done | head -1)
while read -r line; do LINES+=("$line"); echo "$line"; done < <(suite "kernel-nvme" "$KDEV")
scripts/guest-bind.sh vfio "$TSNVME_PCI" >/dev/null

echo
echo "ratios ublk / kernel (IOPS; MB/s for 128K), same rw/bs/QD:"
printf '%s\n' "${LINES[@]}" | python3 -c '
import sys, re
rows = [l.split() for l in sys.stdin if l.strip()]
def key(r): return (r[1], r[2], r[3])
k = {key(r): float(r[4]) for r in rows if r[0] == "kernel-nvme"}
for r in rows:
    if r[0] != "kernel-nvme" and key(r) in k and k[key(r)] > 0:
        print(f"{r[0]:<14} {r[1]:<9} {r[2]:>5} {r[3]:<5} {float(r[4]) / k[key(r)]:6.2f}x")
'
