#!/bin/sh
# Runs inside the QEMU guest: NVMeDev.open("tcp://...") against Linux nvmet (file-backed namespace on
# 127.0.0.1:4421), on Deno and Bun: IO, then nvmet drops the host (the subsystem leaves the port), IO
# in flight fails typed, the host reconnects once the subsystem is back and IO goes on with the data
# intact; a target that stays away is given up after ctrlLossTimeoutMs.
# Usage (host): scripts/guest.sh --bind none -- tests/guest/tcp/reconnect.sh
cd "$(dirname "$0")/../../.." || exit 125
REPO=$PWD
KROOT=${TSNVME_KROOT:-$REPO/.cache/guest/kernel-${TSNVME_GUEST_KERNEL:-6.12}/root} # set by scripts/guest.sh
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok - $*"; }
bad() { fail=$((fail + 1)); echo "not ok - $*"; }
finish() { echo "guest tcp: $pass passed, $fail failed"; exit $((fail > 0)); }

for m in configfs crc32c_generic nvmet nvmet-tcp; do
  modprobe -d "$KROOT" "$m" 2>/dev/null || grep -q "^$(echo $m | tr - _) " /proc/modules || echo "note: modprobe $m failed"
done
grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs none /sys/kernel/config || { bad "configfs"; finish; }
ip link set lo up || { bad "lo up"; finish; }

NQN=nqn.2024-01.io.tsnvme:reconnect C=/sys/kernel/config/nvmet
S=$C/subsystems/$NQN P=$C/ports/21
truncate -s 16M /tmp/reconnect.img
mkdir $S && echo 1 > $S/attr_allow_any_host && mkdir $S/namespaces/1 &&
  echo -n /tmp/reconnect.img > $S/namespaces/1/device_path && echo 1 > $S/namespaces/1/buffered_io && echo 1 > $S/namespaces/1/enable &&
  mkdir $P && echo tcp > $P/addr_trtype && echo ipv4 > $P/addr_adrfam && echo 127.0.0.1 > $P/addr_traddr &&
  echo 4421 > $P/addr_trsvcid && ln -s $S $P/subsystems/$NQN || { bad "nvmet setup"; finish; }
ok "nvmet listening on 127.0.0.1:4421"

for rt in deno bun; do
  if [ $rt = deno ]; then run="deno run -A --no-check"; else run=bun; fi
  # The script unlinks/relinks the subsystem itself (it is root here) at the moments it needs.
  if TSNVME_NVMET_LINK="$P/subsystems/$NQN" TSNVME_NVMET_SUBSYS="$S" $run tests/guest/tcp/reconnect_host.ts 4421 $NQN; then
    ok "$rt: reconnect after nvmet dropped the host; loss timeout"
  else
    bad "$rt: reconnect (rc $?)"
  fi
done
rm -f $P/subsystems/$NQN; rmdir $P 2>/dev/null
echo 0 > $S/namespaces/1/enable; rmdir $S/namespaces/1 $S 2>/dev/null
finish
