#!/bin/sh
# Runs inside the QEMU guest: Linux nvmet on 127.0.0.1:4420 (file-backed 4 KiB-LBA namespace, recipe
# of shared/notes/nvme-tcp.md §8), then the tsnvme TCP host against it on Deno and Bun with digests
# off, header only, header+data; Identify equals the kernel initiator's (nvme-cli, same target, cntlid
# masked); data our host wrote reads back through the kernel's /dev/nvmeXnY.
# --bench SEC adds IOPS/MB/s rows: the tsnvme host and the kernel initiator (fio, io_uring, O_DIRECT)
# against the same nvmet target in the same boot.
# Usage (host): scripts/guest.sh --bind none -- tests/guest/tcp/nvmet.sh [--bench SEC]
cd "$(dirname "$0")/../../.." || exit 125
REPO=$PWD
KROOT=${TSNVME_KROOT:-$REPO/.cache/guest/kernel/root}
OUTD=${TSNVME_OUT:-/tmp}/tcp
mkdir -p "$OUTD"
BENCH=
[ "${1:-}" = --bench ] && BENCH=${2:-5}
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "not ok - $*"; }
finish() { echo "guest tcp: $pass passed, $fail failed"; exit $((fail > 0)); }

# request_module cannot find modules in this guest: load them (and dependencies) from the cache.
for m in configfs crc32c_generic nvmet nvmet-tcp nvme-fabrics nvme-tcp; do
  modprobe -d "$KROOT" "$m" 2>/dev/null || grep -q "^$(echo $m | tr - _) " /proc/modules || echo "note: modprobe $m failed"
done
grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs none /sys/kernel/config || { bad "configfs"; finish; }
ip link set lo up || { bad "lo up"; finish; }

NQN=nqn.2024-01.io.tsnvme:tcp-test C=/sys/kernel/config/nvmet S=/sys/kernel/config/nvmet/subsystems/nqn.2024-01.io.tsnvme:tcp-test
truncate -s 64M /tmp/ns1.img
mkdir $S && echo 1 > $S/attr_allow_any_host && mkdir $S/namespaces/1 &&
  echo -n /tmp/ns1.img > $S/namespaces/1/device_path && echo 1 > $S/namespaces/1/buffered_io &&
  echo 1 > $S/namespaces/1/enable && mkdir $C/ports/1 && echo tcp > $C/ports/1/addr_trtype &&
  echo ipv4 > $C/ports/1/addr_adrfam && echo 127.0.0.1 > $C/ports/1/addr_traddr &&
  echo 4420 > $C/ports/1/addr_trsvcid && ln -s $S $C/ports/1/subsystems/$NQN || { bad "nvmet setup"; finish; }
ok "nvmet listening on 127.0.0.1:4420"

# The kernel initiator's view of the same target, for comparison.
nvme connect -t tcp -a 127.0.0.1 -s 4420 -n $NQN -i 1 >/dev/null 2>&1 || bad "nvme connect"
dev=
for i in $(seq 1 50); do
  for c in /sys/class/nvme/nvme*; do [ "$(cat $c/subsysnqn 2>/dev/null)" = $NQN ] && dev=/dev/$(basename $c); done
  [ -n "$dev" ] && [ -e "$dev" ] && break
  sleep 0.2
done
[ -n "$dev" ] && ok "kernel initiator connected ($dev)" || bad "kernel initiator device"
nvme id-ctrl "$dev" -b > "$OUTD/id-ctrl-kernel.bin" 2>/dev/null || bad "nvme id-ctrl"
blk=$(ls -d /sys/class/nvme-subsystem/nvme-subsys*/nvme*n1 /sys/class/nvme/$(basename "$dev")/nvme*n1 2>/dev/null | head -1)
blk=/dev/$(basename "$blk")

for rt in deno bun; do
  for dg in none h hd; do
    if [ $rt = deno ]; then deno run -A --no-check tests/guest/tcp/nvmet_host.ts 4420 $NQN $dg "$OUTD" $BENCH; else bun tests/guest/tcp/nvmet_host.ts 4420 $NQN $dg "$OUTD" $BENCH; fi
    rc=$?
    [ $rc = 0 ] && ok "$rt host digests=$dg" || bad "$rt host digests=$dg (rc $rc)"
    # Identify equals nvme-cli's from the kernel's connection except the controller id (bytes 78-79).
    if [ -s "$OUTD/id-ctrl-$rt-$dg.bin" ] && [ -s "$OUTD/id-ctrl-kernel.bin" ]; then
      d=$(cmp -l "$OUTD/id-ctrl-$rt-$dg.bin" "$OUTD/id-ctrl-kernel.bin" | awk '$1 != 79 && $1 != 80' | wc -l)
      [ "$d" = 0 ] && ok "$rt digests=$dg: identify equals nvme-cli's (cntlid aside)" || bad "$rt digests=$dg: identify differs in $d bytes"
    fi
    # What our host wrote, read back through the kernel initiator.
    if [ -b "$blk" ]; then
      dd if="$blk" of=/tmp/kback bs=128k count=1 iflag=direct 2>/dev/null
      cmp -s /tmp/kback "$OUTD/pattern-$rt-$dg.bin" && ok "$rt digests=$dg: kernel reads our data" || bad "$rt digests=$dg: kernel read differs"
    fi
  done
done
if [ -n "$BENCH" ] && [ -b "$blk" ]; then
  for j in "randread 4k 1" "randread 4k 32" "read 128k 8"; do
    set -- $j
    r=$(fio --name=k --filename="$blk" --direct=1 --rw=$1 --bs=$2 --iodepth=$3 --ioengine=io_uring --runtime="$BENCH" \
      --time_based --minimal 2>/dev/null | cut -d';' -f7,8)
    if [ $2 = 4k ]; then echo "bench kernel $1 $2 qd$3: ${r#*;} IOPS"; else echo "bench kernel $1 $2 qd$3: $(( ${r%;*} * 1024 / 1000000 )) MB/s"; fi
  done
fi
nvme disconnect -n $NQN >/dev/null 2>&1
finish
