#!/bin/sh
# Runs inside the QEMU guest: Linux nvmet on 127.0.0.1:4420 (file-backed 4 KiB-LBA namespace, recipe
# of shared/notes/nvme-tcp.md §8), then the tsnvme TCP host against it on Deno and Bun with digests
# off, header only, header+data; Identify equals the kernel initiator's (nvme-cli, same target, cntlid
# masked); data our host wrote reads back through the kernel's /dev/nvmeXnY. Then the CLI on both
# runtimes: discover (normal, json, IPv6), connect-all, id-ctrl and smart-log JSON equal to nvme-cli's,
# write/read through tcp:// against the kernel initiator's view.
# --bench SEC adds IOPS/MB/s rows: the tsnvme host and the kernel initiator (fio, io_uring, O_DIRECT)
# against the same nvmet target in the same boot, digests off and on, CRC32C speed, and prints them
# as markdown tables (scripts/bench-tcp.ts --table).
# --qd1 SEC runs only QD1 4 KiB randread: the kernel initiator and tsnvme (tests/guest/tcp/qd1.ts).
# Usage (host): scripts/guest.sh --bind none -- tests/guest/tcp/nvmet.sh [--bench SEC | --qd1 SEC]
# guest.sh passes only TSNVME_* and CI into the guest: give the QD1_* knobs below through env, e.g.
#   scripts/guest.sh --bind none -- env QD1_ROUNDS=3 'QD1_DENO_VARIANTS=;--no-memory-protection-keys' tests/guest/tcp/nvmet.sh --qd1 5
cd "$(dirname "$0")/../../.." || exit 125
REPO=$PWD
KROOT=${TSNVME_KROOT:-$REPO/.cache/guest/kernel-${TSNVME_GUEST_KERNEL:-6.12}/root} # set by scripts/guest.sh
OUTD=${TSNVME_OUT:-/tmp}/tcp
mkdir -p "$OUTD"
BENCH=
[ "${1:-}" = --bench ] && BENCH=${2:-5}
: > "$OUTD/bench.log"
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
# A second port on [::1] at the discovery port 8009: the CLI's defaults and IPv6 target strings.
mkdir $C/ports/2 && echo tcp > $C/ports/2/addr_trtype && echo ipv6 > $C/ports/2/addr_adrfam &&
  echo ::1 > $C/ports/2/addr_traddr && echo 8009 > $C/ports/2/addr_trsvcid && ln -s $S $C/ports/2/subsystems/$NQN &&
  ok "nvmet listening on [::1]:8009" || bad "nvmet second port"

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
# Namespace 1 of $NQN: nvmet sets CMIC, so the disk is the multipath head of the subsystem with that
# NQN. QEMU 10's controller (CMIC 0x2) has a head too, if bound to nvme: match the NQN, not the first.
ns1_blk() {
  for s in /sys/class/nvme-subsystem/nvme-subsys*; do
    [ "$(cat "$s/subsysnqn" 2>/dev/null)" = $NQN ] || continue
    for b in "$s"/nvme*n1; do [ -e "$b" ] && { echo "/dev/${b##*/}"; return 0; }; done
  done
  for b in /sys/class/nvme/"${dev#/dev/}"/nvme*n1; do # no head (CMIC 0): the plain disk
    case ${b##*/} in *c*n*) ;; *) [ -e "$b" ] && { echo "/dev/${b##*/}"; return 0; } ;; esac
  done
  return 1
}
blk=$(ns1_blk)

# The first process of a runtime in a boot has often run slower than later ones, even once V8's
# trace showed nothing left to compile (a Deno QD1 run at 693-1069 IOPS, the next 1098-1662; not
# in every boot). So the measuring modes (--qd1, --bench) start with one throwaway QD1 process per
# runtime (SEC seconds, interrupt mode) whose figures print as "warm-up process (not measured)".
# QD1_WARM_PROCESS=0 skips it.
warm_processes() { # SEC runtimes...
  wsec=$1
  shift
  [ "${QD1_WARM_PROCESS:-1}" = 0 ] && return 0
  for rt in "$@"; do
    if [ $rt = deno ]; then timeout 300 deno run -A --no-check tests/guest/tcp/qd1.ts 127.0.0.1 4420 $NQN "$wsec" interrupt
    else timeout 300 bun tests/guest/tcp/qd1.ts 127.0.0.1 4420 $NQN "$wsec" interrupt; fi 2>&1 | grep 'IOPS' | sed "s/^/warm-up process (not measured): /"
  done
}

if [ "${1:-}" = --qd1 ]; then
  # Quick QD1 look for iteration: the kernel initiator (fio io_uring O_DIRECT) and the tsnvme host
  # (tests/guest/tcp/qd1.ts, wait modes in $QD1_MODES) against this nvmet, SEC seconds each.
  # QD1_DENO_VARIANTS: ';'-separated V8 flag sets, each a Deno run of its own (empty = no flags), for
  # A/B in one boot. QD1_BASE=DIR: also run DIR/tests/guest/tcp/qd1.ts on Deno (another tree, e.g.
  # the code before a change). QD1_ROUNDS=N: the kernel and every run N times, interleaved, since a
  # loaded host swings one run by 2x or more. QD1_QD32=1: the kernel at QD32 too (add MODE@32 to
  # QD1_MODES for ours). QD1_PROBE=SEC: per runtime (and per QD1_PROBE_DENO_VARIANTS on Deno), one
  # more run whose measured pass is watched from outside for SEC seconds: perf stat per thread
  # (syscalls, faults, context switches), perf trace's syscall summary per thread, V8's GC count.
  # QD1_TRACE="V8 FLAGS" (e.g. "--trace-opt --trace-deopt --trace-generalization --trace-file-names"):
  # added to every Deno run (the base tree's too, as qd1-rROUND-base.log), whose whole output (passes
  # marked) goes to $OUTD/qd1-rROUND-deno-N.log; its qd1 lines and scripts/v8-trace-summary.ts's per-pass
  # counts show here. QD1_TRACE_ROUNDS=N: trace only the first N rounds (the rest measure untraced).
  # qd1.ts's QD1_PASSES / QD1_WARM pass through (is a slow state only the first seconds?).
  # QD1_WINDOWS=1: "mark start|end ..." lines around each measured run (kernel and ours), for the
  # host's scripts/qemu-threads.py report (pipe guest.sh's output through its `stamp`).
  sec=${2:-3}
  kfio() { # iodepth
    [ -n "${QD1_WINDOWS:-}" ] && echo "mark start qd$1 kernel round $round"
    r=$(fio --name=k --filename="$blk" --direct=1 --rw=randread --bs=4k --iodepth=$1 --ioengine=io_uring --runtime="$sec" \
      --time_based --minimal --clat_percentiles=1 --percentile_list=50:99 2>/dev/null)
    [ -n "${QD1_WINDOWS:-}" ] && echo "mark end qd$1 kernel round $round ios=$(($(echo "$r" | cut -d';' -f8) * sec))"
    echo "qd$1 kernel: $(echo "$r" | cut -d';' -f8) IOPS p50=$(echo "$r" | cut -d';' -f18 | cut -d= -f2)us p99=$(echo "$r" | cut -d';' -f19 | cut -d= -f2)us"
  }
  deno_qd1() { # tree label "V8 FLAGS": one Deno run of TREE's qd1.ts, traced (QD1_TRACE) in the first QD1_TRACE_ROUNDS rounds
    if [ "$1" = . ]; then echo "== deno ${3:-(no V8 flags)}"; else echo "== deno, base tree $1 ${3:-(no V8 flags)}"; fi
    if [ -n "${QD1_TRACE:-}" ] && [ "$round" -le "${QD1_TRACE_ROUNDS:-$round}" ]; then
      f="$3 $QD1_TRACE" log=$OUTD/qd1-r$round-$2.log
      echo "   (V8 flags $(echo $f); trace in $log)"
      QD1_MARKS=1 timeout 300 deno run -A --no-check --v8-flags=$(echo $f | tr ' ' ',') "$1/tests/guest/tcp/qd1.ts" 127.0.0.1 4420 $NQN "$sec" "$modes" > "$log" 2>&1
      grep -a '^qd1\|^  ' "$log" | grep -av 'pass [0-9]* starts'
      # What V8 compiled and deoptimized in each pass, and why.
      deno run -A --no-check scripts/v8-trace-summary.ts "$log" | grep -v '^   most compiled'
    else
      QD1_WINDOWS=${QD1_WINDOWS:+r$round-$2} timeout 300 deno run -A --no-check ${3:+--v8-flags=$(echo $3 | tr ' ' ',')} "$1/tests/guest/tcp/qd1.ts" 127.0.0.1 4420 $NQN "$sec" "$modes"
    fi
  }
  modes=${QD1_MODES:-interrupt,adaptive}
  warm_processes "$sec" ${QD1_RUNTIMES:-deno bun}
  for round in $(seq 1 "${QD1_ROUNDS:-1}"); do
    echo "=== round $round at $(date +%s.%N)"
    kfio 1
    [ -n "${QD1_QD32:-}" ] && kfio 32
    for rt in ${QD1_RUNTIMES:-deno bun}; do
      if [ $rt = deno ]; then
        # Even rounds run the base tree first: old and new alternate.
        [ -n "${QD1_BASE:-}" ] && [ $((round % 2)) = 0 ] && deno_qd1 "$QD1_BASE" base ""
        n=0
        echo "${QD1_DENO_VARIANTS:-}" | tr ';' '\n' | while IFS= read -r v; do
          n=$((n + 1))
          deno_qd1 . "deno-$n" "$v"
        done
        [ -n "${QD1_BASE:-}" ] && [ $((round % 2)) = 1 ] && deno_qd1 "$QD1_BASE" base ""
      else echo "== bun"; QD1_WINDOWS=${QD1_WINDOWS:+r$round} timeout 300 bun tests/guest/tcp/qd1.ts 127.0.0.1 4420 $NQN "$sec" "$modes"; fi
    done
  done
  if [ -n "${QD1_PROBE:-}" ]; then
    P=$QD1_PROBE
    grep -q " /sys/kernel/tracing " /proc/mounts || mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
    grep -q " /sys/kernel/debug " /proc/mounts || mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
    for run in $(for rt in ${QD1_RUNTIMES:-deno bun}; do
      if [ $rt = deno ]; then echo "${QD1_PROBE_DENO_VARIANTS:-}" | tr ';' '\n' | while IFS= read -r v; do echo "deno:$(echo "$v" | tr ' ' ',')"; done
      else echo bun:; fi
    done); do
      rt=${run%%:*} flags=${run#*:}
      mark=/tmp/qd1-mark-$rt
      rm -f $mark
      if [ $rt = deno ]; then
        QD1_MARK=$mark deno run -A --no-check --v8-flags=--trace-gc${flags:+,$flags} tests/guest/tcp/qd1.ts 127.0.0.1 4420 $NQN $((P * 4)) interrupt > /tmp/qd1-probe.log 2>&1 &
      else QD1_MARK=$mark bun tests/guest/tcp/qd1.ts 127.0.0.1 4420 $NQN $((P * 4)) interrupt > /tmp/qd1-probe.log 2>&1 & fi
      pid=$!
      for i in $(seq 1 600); do [ -e $mark ] && break; sleep 0.1; done
      echo "== probe $rt $flags (pid $pid): perf stat, $P s"
      perf stat --per-thread -e raw_syscalls:sys_enter,syscalls:sys_enter_sendmsg,page-faults,context-switches,cpu-migrations \
        -p $pid -- sleep "$P" 2>&1 | grep -v '^ *0 ' | grep -v 'not counted' | grep -v '^$'
      echo "== probe $rt $flags: perf trace -s, $P s"
      timeout $((P + 20)) perf trace -s -p $pid -- sleep "$P" 2>&1 | grep -v '^$' | head -40
      wait $pid
      grep -v ' ms: ' /tmp/qd1-probe.log
      [ $rt = deno ] && echo "probe deno $flags: $(grep -c ' ms: Scavenge' /tmp/qd1-probe.log) scavenges, $(grep -c ' ms: Mark' /tmp/qd1-probe.log) mark-compacts, IOs: $(sed -n 's/.*: \([0-9]*\) IOs in all/\1/p' /tmp/qd1-probe.log)"
    done
  fi
  nvme disconnect -n $NQN >/dev/null 2>&1
  finish
fi

[ -n "$BENCH" ] && warm_processes "$BENCH" deno bun
for rt in deno bun; do
  for dg in none h hd; do
    if [ $rt = deno ]; then deno run -A --no-check tests/guest/tcp/nvmet_host.ts 4420 $NQN $dg "$OUTD" $BENCH; else bun tests/guest/tcp/nvmet_host.ts 4420 $NQN $dg "$OUTD" $BENCH; fi > "$OUTD/host.log"
    rc=$?
    cat "$OUTD/host.log"; grep '^bench ' "$OUTD/host.log" >> "$OUTD/bench.log"
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
# Host queues in two Workers (each its own connection, Connect with the controller's cntlid); what
# they wrote, read back through the kernel initiator.
for rt in deno bun; do
  if [ $rt = deno ]; then deno run -A --no-check tests/guest/tcp/nvmet_workers.ts 4420 $NQN "$OUTD"; else bun tests/guest/tcp/nvmet_workers.ts 4420 $NQN "$OUTD"; fi
  [ $? = 0 ] && ok "$rt host queues in two Workers" || bad "$rt host queues in two Workers"
  if [ -b "$blk" ]; then
    for w in 0 1; do
      dd if="$blk" of=/tmp/wback bs=4096 skip=$((1024 + w * 256)) count=64 iflag=direct 2>/dev/null
      cmp -s /tmp/wback "$OUTD/workers-$rt-$w.bin" && ok "$rt worker $w's data, read by the kernel initiator" || bad "$rt worker $w's data differs through the kernel"
    done
  fi
done
# The CLI (lib/cli/nvme.ts) against the same target: output equal to nvme-cli's on the same target.
cli() { if [ $rt = deno ]; then deno run -A --no-check lib/cli/nvme.ts "$@"; else bun lib/cli/nvme.ts "$@"; fi; }
same() { # name ours theirs: equal and non-empty, else the first differing lines
  if [ -s "$3" ] && cmp -s "$2" "$3"; then ok "$1"; else bad "$1"; diff "$3" "$2" | head -8; fi
}
nvme discover -t tcp -a 127.0.0.1 -s 4420 -o json > "$OUTD/disc-nvme.json" 2>&1
nvme discover -t tcp -a 127.0.0.1 -s 4420 > "$OUTD/disc-nvme.txt" 2>&1
nvme discover -t tcp -a ::1 -o json > "$OUTD/disc6-nvme.json" 2>&1
nvme id-ctrl "$dev" -o json | grep -v '^  "cntlid":' > "$OUTD/id-ctrl-nvme.json"
nvme smart-log "$dev" -o json > "$OUTD/smart-nvme.json" 2>&1
for rt in deno bun; do
  cli discover tcp://127.0.0.1:4420 -o json > "$OUTD/disc-$rt.json" 2>&1
  same "$rt cli: discover -o json equals nvme-cli's" "$OUTD/disc-$rt.json" "$OUTD/disc-nvme.json"
  cli discover -t tcp -a 127.0.0.1 -s 4420 > "$OUTD/disc-$rt.txt" 2>&1
  same "$rt cli: discover (normal) equals nvme-cli's" "$OUTD/disc-$rt.txt" "$OUTD/disc-nvme.txt"
  cli discover 'tcp://[::1]' -o json > "$OUTD/disc6-$rt.json" 2>&1
  same "$rt cli: discover IPv6, default port 8009, equals nvme-cli's" "$OUTD/disc6-$rt.json" "$OUTD/disc6-nvme.json"
  T=$(cli connect-all tcp://127.0.0.1:4420 --dry-run -o json 2>&1 | sed -n 's/^ *"Name":"\(tcp:[^"]*\)",*$/\1/p')
  [ "$T" = "tcp://127.0.0.1:4420/$NQN" ] && ok "$rt cli: connect-all --dry-run lists $T" || bad "$rt cli: connect-all target '$T'"
  cli connect-all tcp://127.0.0.1:4420 | grep -q " +- tcp://127.0.0.1:4420/$NQN tcp traddr=127.0.0.1,trsvcid=4420 live" &&
    ok "$rt cli: connect-all connects ($NQN live)" || bad "$rt cli: connect-all"
  cli id-ctrl "$T" -o json | grep -v '^  "cntlid":' > "$OUTD/id-ctrl-$rt.json"
  same "$rt cli: id-ctrl tcp:// -o json equals nvme-cli's on the kernel's connection (cntlid aside)" "$OUTD/id-ctrl-$rt.json" "$OUTD/id-ctrl-nvme.json"
  cli smart-log "$T" -o json > "$OUTD/smart-$rt.json" 2>&1
  same "$rt cli: smart-log tcp:// -o json equals nvme-cli's" "$OUTD/smart-$rt.json" "$OUTD/smart-nvme.json"
  # Write through the CLI (header+data digests), read through the kernel; and the other way round.
  head -c 65536 /dev/urandom > /tmp/cli-w.bin
  cli write "$T" -n 1 -s 64 -c 15 -z 65536 -d /tmp/cli-w.bin --hdr-digest --data-digest >/dev/null 2>&1 || bad "$rt cli: write rc"
  if [ -b "$blk" ]; then
    dd if="$blk" of=/tmp/cli-k.bin bs=4096 skip=64 count=16 iflag=direct 2>/dev/null
    same "$rt cli: write tcp:// (64 KiB, digests), the kernel reads it back" /tmp/cli-k.bin /tmp/cli-w.bin
    head -c 65536 /dev/urandom > /tmp/cli-kw.bin
    dd if=/tmp/cli-kw.bin of="$blk" bs=4096 seek=96 oflag=direct conv=notrunc 2>/dev/null
    cli read "$T" -n 1 -s 96 -c 15 -z 65536 -d /tmp/cli-r.bin >/dev/null 2>&1 || bad "$rt cli: read rc"
    same "$rt cli: read tcp:// returns what the kernel wrote" /tmp/cli-r.bin /tmp/cli-kw.bin
  fi
done

if [ -n "$BENCH" ] && [ -b "$blk" ]; then
  # The kernel initiator with fio (io_uring, O_DIRECT) on the same target: digests off, then
  # reconnected with -g -G; lines in nvmet_host.ts's form so bench-tcp.ts --table pairs them up.
  kbench() { # digests-tag block-device
    ktag=$1 kdev=$2
    for j in "randread 4k 1" "randread 4k 32" "read 128k 8" "write 128k 8"; do
      set -- $j
      # Terse v3: 7,8 read KB/s and IOPS; 48 write KB/s; 18,19 read clat p50/p99 (µs).
      r=$(fio --name=k --filename="$kdev" --direct=1 --rw=$1 --bs=$2 --iodepth=$3 --ioengine=io_uring --runtime="$BENCH" \
        --time_based --minimal --clat_percentiles=1 --percentile_list=50:99 2>/dev/null)
      if [ $2 = 4k ]; then
        iops=$(echo "$r" | cut -d';' -f8) p50=$(echo "$r" | cut -d';' -f18 | cut -d= -f2) p99=$(echo "$r" | cut -d';' -f19 | cut -d= -f2)
        echo "bench kernel digests=$ktag 4k randread qd$3: $iops IOPS p50=${p50:-0}us p99=${p99:-0}us"
      elif [ $1 = read ]; then echo "bench kernel digests=$ktag 128k seqread qd$3: $(( $(echo "$r" | cut -d';' -f7) * 1024 / 1000000 )) MB/s"
      else echo "bench kernel digests=$ktag 128k seqwrite qd$3: $(( $(echo "$r" | cut -d';' -f48) * 1024 / 1000000 )) MB/s"; fi
    done
  }
  # SPDK's initiator (spdk_nvme_perf, no hugepages) on the same target, when the peers are built.
  SPDK_PERF=/var/cache/tsnvme-peers/bin/spdk_nvme_perf
  sbench() { # digests-tag perf-flags...
    stag=$1
    shift
    for j in "randread 4096 1" "randread 4096 32" "read 131072 8" "write 131072 8"; do
      set -- $j "$@"
      w=$1 sz=$2 qd=$3
      shift 3
      out=$("$SPDK_PERF" --no-huge -s 1024 -r "trtype:TCP adrfam:IPv4 traddr:127.0.0.1 trsvcid:4420 subnqn:$NQN" \
        -q $qd -o $sz -w $w -t "$BENCH" -L "$@" 2>&1)
      tot=$(echo "$out" | sed -n 's/^Total *: *\([0-9.]*\) *\([0-9.]*\).*/\1 \2/p' | head -1)
      p50=$(echo "$out" | sed -n 's/^ *50\.00000% *: *\([0-9.]*\)us.*/\1/p' | head -1)
      p99=$(echo "$out" | sed -n 's/^ *99\.00000% *: *\([0-9.]*\)us.*/\1/p' | head -1)
      [ -n "$tot" ] || { echo "note: spdk_nvme_perf $w $sz qd$qd failed: $(echo "$out" | tail -2)"; continue; }
      case $w$sz in
        randread4096) echo "bench spdk digests=$stag 4k randread qd$qd: ${tot% *} IOPS p50=${p50%.*}us p99=${p99%.*}us" ;;
        read131072) echo "bench spdk digests=$stag 128k seqread qd$qd: $(echo "${tot#* }" | awk '{printf "%.1f", $1 * 1.048576}') MB/s" ;;
        write131072) echo "bench spdk digests=$stag 128k seqwrite qd$qd: $(echo "${tot#* }" | awk '{printf "%.1f", $1 * 1.048576}') MB/s" ;;
      esac
    done
  }
  if [ -x "$SPDK_PERF" ]; then
    sbench none | tee -a "$OUTD/bench.log"
    sbench hd -H -I | tee -a "$OUTD/bench.log"
  else
    echo "note: $SPDK_PERF not built: no SPDK rows"
  fi
  kbench none "$blk" | tee -a "$OUTD/bench.log"
  nvme disconnect -n $NQN >/dev/null 2>&1
  nvme connect -t tcp -a 127.0.0.1 -s 4420 -n $NQN -i 1 -g -G >/dev/null 2>&1 || bad "nvme connect -g -G"
  kblk=
  for i in $(seq 1 50); do
    kblk=$(ns1_blk)
    [ -n "$kblk" ] && [ -b "$kblk" ] && break
    sleep 0.2
  done
  [ -n "$kblk" ] && kbench hd "$kblk" | tee -a "$OUTD/bench.log"
  for rt in deno bun; do
    if [ $rt = deno ]; then deno run --no-check scripts/bench-crc32c.ts; else bun scripts/bench-crc32c.ts; fi
  done | tee -a "$OUTD/bench.log"
  deno run -A --no-check scripts/bench-tcp.ts --table "$OUTD/bench.log"
  # QD1 by wait mode and socket polls before a sleep (0: none), with each thread's CPU.
  for rt in deno bun; do
    if [ $rt = deno ]; then deno run -A --no-check tests/guest/tcp/qd1.ts 127.0.0.1 4420 $NQN "$BENCH" "${QD1_MODES:-interrupt:0,interrupt,adaptive}"
    else bun tests/guest/tcp/qd1.ts 127.0.0.1 4420 $NQN "$BENCH" "${QD1_MODES:-interrupt:0,interrupt,adaptive}"; fi
  done
fi
nvme disconnect -n $NQN >/dev/null 2>&1
finish
