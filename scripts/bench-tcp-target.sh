#!/bin/sh
# Target-side NVMe/TCP benchmark, run inside the QEMU guest: the kernel initiator (fio, io_uring,
# O_DIRECT) reading and writing through each target exporting the same QEMU controller (the second
# one, $TSNVME_PCIS' 2nd entry), one boot, asserts nothing:
#   * tsnvme's nvmf-target with 1 and 2 Workers, on Deno and on Bun (the controller through VFIO);
#   * nvmet on the kernel nvme driver's block device;
#   * SPDK's nvmf_tgt on one core (bdev_nvme over VFIO), when /var/cache/tsnvme-peers/bin has it.
# Columns: 4 KiB randread QD1 and QD32 (IOPS, p50/p99 completion latency in µs), 128 KiB read and
# write QD8 (MB/s), CPU µs per IO of the target process (its utime+stime over the 4 KiB QD32 run;
# nvmet: kernel threads, so the whole guest's busy time, marked "sys"), digests off and on; then
# every figure as a ratio to nvmet's in the same run.
# Usage (host): TSNVME_CACHE=/work/main/.cache/guest scripts/guest.sh --timeout 1800 -- \
#                 sh scripts/bench-tcp-target.sh [SEC] [deno|bun]...
# Environment (a shorter boot, or a diagnosis):
#   BENCH_DIGESTS="off on"  digest modes to run (default both)
#   BENCH_WORKERS="1 2"     tsnvme Worker counts (default 1 and 2)
#   BENCH_SPDK=0            skip SPDK's nvmf_tgt
#   BENCH_WARMUP=each       (default) throw-away QD1 and QD32 runs before every tsnvme target's rows:
#                           under TCG a new process's JIT threads compile for seconds of IO (Bun:
#                           BUN_JSC_reportCompileTimes=1 counted 353 compiles, 7.3 s, each function at
#                           most once per tier per thread), which otherwise lands in the QD1 column of
#                           every target but the first (likely why Bun did 403 IOPS digests off, its
#                           first row, against 729 digests on in the stop 27 table)
#   BENCH_WARMUP=1          those runs before the first target started only (the first one in a boot
#                           measures ~2x slow); BENCH_WARMUP=0 none
#   BENCH_TRACE=1           after each tsnvme row, the same target again with TSNVME_TARGET_TRACE=1:
#                           its Workers' per-IO gap histograms (lib/target/trace.ts) are printed
#   BENCH_RAMP=SEC          fio --ramp_time for every run, every target (default 0): under TCG a
#                           JIT runtime's code takes seconds of IO to warm up, C peers none
#   BENCH_ENVS="A=1 A=2"    each tsnvme row once per VAR=VALUE given to the target (A/B in one boot)
#   BENCH_QD1_AGAIN=1       a last column: QD1 once more after the other runs (a warm target)
#   BENCH_STRACE=SEC        after each runtime's rows: strace -f -tt -T on a 1-Worker target for SEC
#                           seconds of QD1; its syscalls by total time and the longest calls
#   BENCH_SCHED=1           around each QD1 run: every guest thread's CPU time, voluntary and
#                           involuntary context switches and migrations (/proc/*/task/*), and the
#                           guest's context switches, per IO; the busiest threads are printed
#   BENCH_SCHED=1 also: each vCPU's busy/idle/steal share and softirqs per IO, and "mark start|end
#                           LABEL" lines on stderr around each QD1 fio run for a host-side sampler of
#                           QEMU's threads (scripts/qemu-threads.py: its `stamp` times them on arrival)
#   BENCH_RCU=1             around each QD1 run (tracefs kprobes): RCU grace periods started and
#                           call_rcu/synchronize_rcu calls per IO, and the commonest call_rcu stacks
#   BENCH_PERF=SEC          during each QD1 run (after 1 s): perf record of the whole guest for SEC
#                           seconds (cpu-clock, -a); samples by thread and by kernel symbol, and the
#                           syscalls per IO of the busiest threads (tracefs raw_syscalls hist)
#   BENCH_OFFCPU=1          during each QD1 run: tracefs sched_switch/wakeup and interrupt events on
#                           the target's first vCPU, then scripts/offcpu.py: how often the target's
#                           busy threads were preempted per IO, for how long, who ran meanwhile, their
#                           wake-up latency and interrupt time taken while they ran
#   BENCH_IDLE=SEC          after each tsnvme row: the target's CPU over SEC seconds connected and idle
#   BENCH_QD1_ONLY=1        only the 4 KiB randread QD1 column (the others print "-"; warm-up unchanged)
#   BENCH_ROUNDS=N          every target N times, every other round in reverse order; the ratios are
#                           of medians, with each round's QD1 and its ratio to that round's nvmet
# Pinning, by default the same for every row: fio on the last vCPU (taskset), the target's IO
# threads on the others: tsnvme's whole process with --cpus 0-(N-2) (one boot, 2026-12-06, every
# thread pinned with taskset: QD1 +8-47%, the Worker's vCPU time per IO -25-37%, CR3 loads on its
# vCPU 0.2-0.34 -> 0.01-0.02 per IO; only the Workers pinned gained nothing clear, noisy), SPDK's
# reactor on vCPU 0 (-m 0x1, as always), nvmet's kworkers wherever the kernel runs them (it serves
# IO from the initiator's softirq and kworkers, on fio's side). A target process and fio sharing a vCPU switch address
# space per IO there; under TCG (no PCID) each switch flushes the vCPU's soft TLB and jump cache.
#   BENCH_PIN="off fio on"  each row once per pin mode, alternated in one connection (tsnvme then
#                           starts without --cpus unless an item says BENCH_CPUS): "fio" runs fio on
#                           the last vCPU; "on" also moves every thread of a tsnvme target to the
#                           others (taskset -a -p; SPDK's reactor is on vCPU 0 anyway, nvmet: fio
#                           only); "off" lets the scheduler place fio and every target thread (a
#                           Worker's --cpus too); both undone after the row. BENCH_PIN=off: nothing
#                           pinned (as before 2026-12-06)
#   BENCH_SWITCH=1          around each QD1 run (tracefs): per vCPU and IO, context switches
#                           (sched_switch) and address-space switches, i.e. CR3 loads (tlb_flush,
#                           reason 0 = TLB_FLUSH_ON_TASK_SWITCH; each one also flushes TCG's soft TLB
#                           and jump cache on a vCPU without PCID)
#   BENCH_RPS=1             (default) RPS/XPS on lo for every row: /sys/class/net/lo/queues/rx-0/rps_cpus
#                           and tx-0/xps_cpus = fio's vCPU. On loopback a sender's CPU runs the receiver's
#                           TCP receive path in its own send (softirq at the end of the call), so the
#                           target's reply paid the initiator's receive and queueing of its kworker; with
#                           RPS every lo packet is received on fio's vCPU, the target's vCPU serves IO only.
#                           One loaded boot (2026-12-06, QD1, 1 Worker, rounds ABBA): nvmet 1,150 / 977
#                           IOPS without, 1,201 / 1,552 with; tsnvme Deno 110 / 152 -> 380 / 460, Bun
#                           141 / 165 -> 145 / 284. BENCH_RPS=0: off (as before). A BENCH_ENVS item
#                           BENCH_RPS=0|1 sets it for that row only; BENCH_NVMET_RPS="0 1" runs nvmet's
#                           rows once per setting (an A/B of the setting in one boot)
# A BENCH_ENVS item sets several variables when they are joined by commas (A=1,B=2); the item
# BENCH_CPUS=LIST starts the tsnvme target with --cpus LIST, BENCH_PIN=A+B its rows' pin modes; the item
# BENCH_TREE=DIR runs that checkout's target instead of this one (an A/B of two trees in one boot,
# e.g. BENCH_ENVS="BENCH_TREE=/work/wt/base BENCH_TREE=. BENCH_TREE=/work/wt/base BENCH_TREE=.").
cd "$(dirname "$0")/.." || exit 125
REPO=$PWD
SEC=${1:-5}
[ $# -gt 0 ] && shift
RTS=${*:-deno bun}
KROOT=${TSNVME_KROOT:-$REPO/.cache/guest/kernel-${TSNVME_GUEST_KERNEL:-6.12}/root}
OUTD=${TSNVME_OUT:-/tmp}/bench-tcp-target
PEERS=/var/cache/tsnvme-peers/bin
mkdir -p "$OUTD"
NQN=nqn.2024-01.io.tsnvme:bench-target
PORT=4440
PCI2=$(echo "${TSNVME_PCIS:-}" | awk '{print $2}')
[ -n "$PCI2" ] || { echo "bench: needs a second controller (scripts/guest.sh --ctrls 2)"; exit 125; }
for m in configfs crc32c_generic nvmet nvmet-tcp nvme-fabrics nvme-tcp; do
  modprobe -d "$KROOT" "$m" 2>/dev/null || grep -q "^$(echo $m | tr - _) " /proc/modules || echo "note: modprobe $m failed"
done
grep -q " /sys/kernel/config " /proc/mounts || mount -t configfs none /sys/kernel/config
ip link set lo up
HZ=$(getconf CLK_TCK)
ROWS="$OUTD/rows.txt"
DIGESTS=${BENCH_DIGESTS:-off on}
WORKERS=${BENCH_WORKERS:-1 2}
: >"$ROWS"
TPID=

# sched_snap FILE: every guest thread's counters (python3: a few hundred threads, read at once).
sched_snap() {
  python3 - "$1" <<'PY'
import glob, json, os, sys
out = {}
me = str(os.getpid())
for t in glob.glob("/proc/[0-9]*/task/[0-9]*"):
    if t.split("/")[2] == me:
        continue  # this snapshot's own start-up
    try:
        st = open(t + "/stat").read()
        f = st[st.rindex(")") + 2:].split()
        status = open(t + "/status").read().split("\n")
        vcs = next(int(l.split()[1]) for l in status if l.startswith("voluntary_ctxt"))
        nvcs = next(int(l.split()[1]) for l in status if l.startswith("nonvoluntary_ctxt"))
        try:
            mig = next(int(l.split(":")[1]) for l in open(t + "/sched") if l.startswith("se.nr_migrations"))
        except Exception:
            mig = 0
        comm = open(t + "/comm").read().strip()
        pid = t.split("/")[2]
        pcomm = open("/proc/%s/comm" % pid).read().strip()
        out[t] = [pcomm + "/" + comm, int(f[11]) + int(f[12]), vcs, nvcs, mig, int(f[12])]
    except Exception:
        pass
ctxt = next(int(l.split()[1]) for l in open("/proc/stat") if l.startswith("ctxt"))
cpus = {l.split()[0]: [int(x) for x in l.split()[1:9]] for l in open("/proc/stat") if l.startswith("cpu")}
soft = {}
for l in open("/proc/softirqs").read().split("\n")[1:]:
    f = l.split()
    if len(f) > 1:
        soft[f[0].rstrip(":")] = sum(int(x) for x in f[1:])
irqs = {}
for l in open("/proc/interrupts").read().split("\n")[1:]:
    f = l.split()
    if len(f) > 2 and f[0].endswith(":"):
        n = sum(int(x) for x in f[1:] if x.isdigit())
        name = " ".join(x for x in f[1:] if not x.isdigit())
        key = "vfio" if "vfio" in name else "nvme" if "nvme" in name else f[0].rstrip(":")
        irqs[key] = irqs.get(key, 0) + n
json.dump({"threads": out, "ctxt": ctxt, "irqs": irqs, "cpus": cpus, "soft": soft}, open(sys.argv[1], "w"))
PY
}
# sched_diff A B IOS LABEL: the busiest threads between two snapshots, per IO.
sched_diff() {
  python3 - "$@" "$HZ" <<'PY'
import json, sys
a, b = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ios, label, hz = max(1, int(sys.argv[3])), sys.argv[4], int(sys.argv[5])
rows = []
for t, v in b["threads"].items():
    u = a["threads"].get(t, [v[0], 0, 0, 0, 0, 0])
    d = [v[i] - u[i] for i in range(1, 6)]
    if any(d):
        rows.append((d[0], v[0], d))
rows.sort(key=lambda r: -r[0])
tot = sum(r[0] for r in rows)
print("sched %s: %d IOs; guest context switches %.2f/IO; thread CPU %.0f us/IO in all" % (label, ios, (b["ctxt"] - a["ctxt"]) / ios, tot / hz * 1e6 / ios))
ia, ib = a.get("irqs", {}), b.get("irqs", {})
busy = sorted(((ib[k] - ia.get(k, 0)) / ios, k) for k in ib if ib[k] - ia.get(k, 0) > 0)[::-1][:6]
print("  interrupts per IO: " + ", ".join("%s %.2f" % (k, v) for v, k in busy))
ca, cb = a.get("cpus", {}), b.get("cpus", {})
for c in sorted(k for k in cb if k != "cpu" and k in ca):
    d = [y - x for x, y in zip(ca[c], cb[c])]
    t = sum(d) or 1  # user nice system idle iowait irq softirq steal
    print("  %s: busy %.0f%% (user %.0f, sys %.0f, irq+softirq %.0f), idle %.0f%%, steal %.0f%%" % (c, 100 * (t - d[3] - d[4] - d[7]) / t,
          100 * (d[0] + d[1]) / t, 100 * d[2] / t, 100 * (d[5] + d[6]) / t, 100 * (d[3] + d[4]) / t, 100 * d[7] / t))
sa, sb = a.get("soft", {}), b.get("soft", {})
if sb:
    print("  softirqs per IO: " + ", ".join("%s %.2f" % (k, (sb[k] - sa.get(k, 0)) / ios) for k in sb if sb[k] - sa.get(k, 0) > 0))
print("  %-34s %9s %6s %8s %8s %8s" % ("process/thread", "CPU us/IO", "sys %", "vcs/IO", "nvcs/IO", "migr/IO"))
for cpu, name, d in rows[:12]:
    print("  %-34s %9.1f %6.0f %8.2f %8.2f %8.2f" % (name[:34], cpu / hz * 1e6 / ios, 100 * d[4] / cpu if cpu else 0, d[1] / ios, d[2] / ios, d[3] / ios))
PY
}

# RCU's work per IO through tracefs kprobes (BENCH_RCU=1): counts of grace-period starts, forced
# quiescent-state scans and callers' requests, and call_rcu's commonest stacks.
TR=/sys/kernel/tracing
RCU_PROBES="rcu_gp_init force_qs_rnp call_rcu synchronize_rcu kvfree_call_rcu synchronize_rcu_expedited"
rcu_on() {
  grep -q " $TR " /proc/mounts || mount -t tracefs none $TR 2>/dev/null
  for f in $RCU_PROBES; do
    [ -d $TR/events/kprobes/p_$f ] || echo "p:p_$f $f" >>$TR/kprobe_events 2>/dev/null || continue
    echo 'hist:keys=common_pid.execname' >$TR/events/kprobes/p_$f/trigger 2>/dev/null
  done
  [ -d $TR/events/kprobes/p_call_rcu ] && echo 'hist:keys=common_stacktrace:sort=hitcount' >>$TR/events/kprobes/p_call_rcu/trigger 2>/dev/null
}
rcu_off() { # IOS
  echo "rcu: per IO over $1 IOs (kprobe hits by caller thread)"
  for f in $RCU_PROBES; do
    h=$TR/events/kprobes/p_$f/hist
    [ -f $h ] || { echo "  $f: no probe"; continue; }
    awk -v f=$f -v n="$1" '/^{ common_pid/ { split($0, a, "hitcount:"); c = a[2] + 0; t += c; sub(/^{ common_pid: */, ""); sub(/}.*/, ""); gsub(/  +/, " "); x = x sprintf(" %s %.2f,", $0, c / n) }
      END { printf "  %-26s %6.2f/IO:%s\n", f, t / (n > 0 ? n : 1), substr(x, 1, 300) }' $h
  done
  h=$TR/events/kprobes/p_call_rcu/hist
  if [ -f $h ]; then
    echo "  call_rcu stacks (top 4):"
    awk '/^{ common_stacktrace:/ { s = ""; inst = 1; next } inst && /^ +[a-z_0-9.]+\+0x/ { if (n < 7) { x = $1; sub(/\+0x.*/, "", x); s = s " < " x; n++ }; next }
      inst && /hitcount:/ { split($0, a, "hitcount:"); print a[2] + 0, s; inst = 0; n = 0 }' $h | sort -rn | head -4 | sed 's/^/    /'
  fi
  for f in $RCU_PROBES; do
    [ -d $TR/events/kprobes/p_$f ] && { echo '!hist:keys=common_pid.execname' >>$TR/events/kprobes/p_$f/trigger; echo '!hist:keys=common_stacktrace:sort=hitcount' >>$TR/events/kprobes/p_$f/trigger; } 2>/dev/null
  done
}

# perf_on / perf_off IOS SEC: perf record over BENCH_PERF seconds of the QD1 run, a syscall count
# over the whole run; then where the guest's CPU went.
perf_on() {
  grep -q " $TR " /proc/mounts || mount -t tracefs none $TR 2>/dev/null
  echo 0 >/proc/sys/kernel/kptr_restrict 2>/dev/null; echo -1 >/proc/sys/kernel/perf_event_paranoid 2>/dev/null
  echo 'hist:keys=common_pid.execname,id.syscall:sort=hitcount:size=4096' >$TR/events/raw_syscalls/sys_enter/trigger 2>/dev/null
  (sleep 1; perf record -q -e cpu-clock -F 997 -a -o "$OUTD/perf.data" -- sleep "$BENCH_PERF" >/dev/null 2>&1) &
  PERFPID=$!
}
perf_off() { # IOS SEC
  wait $PERFPID
  h=$TR/events/raw_syscalls/sys_enter/hist
  echo "syscalls per IO over the run (thread, syscall):"
  awk -v n="$1" '/^{ common_pid:/ { split($0, a, "hitcount:"); c = a[2] + 0; sub(/^{ common_pid: */, ""); sub(/ *} *hitcount.*/, ""); gsub(/  +/, " "); sub(/, id: */, " "); if (c / n >= 0.05) printf "    %6.2f %s\n", c / n, $0 }' $h | sort -rn | head -16
  echo '!hist:keys=common_pid.execname,id.syscall:sort=hitcount:size=4096' >>$TR/events/raw_syscalls/sys_enter/trigger 2>/dev/null
  echo "perf (cpu-clock, -a, ${BENCH_PERF}s of the ${2}s run): samples by thread, by thread and kernel/user, top kernel symbols"
  perf report -i "$OUTD/perf.data" --stdio --sort comm 2>/dev/null | grep -v "^#" | grep -v "^$" | head -10 | sed 's/^/    /'
  perf report -i "$OUTD/perf.data" --stdio --sort comm,dso 2>/dev/null | grep -v "^#" | grep -v "^$" | head -14 | sed 's/^/    /'
  perf report -i "$OUTD/perf.data" --stdio --sort sym 2>/dev/null | grep -v "^#" | grep "\[k\]" | head -25 | sed 's/^/    /'
}

# offcpu_on / offcpu_off IOS WHO: sched and interrupt events on the target's first vCPU over the QD1
# run, read by scripts/offcpu.py (WHO: the target's pid, or sys for nvmet: its busiest threads).
OC_EVENTS="sched/sched_switch sched/sched_wakeup sched/sched_waking irq/irq_handler_entry irq/irq_handler_exit irq/softirq_entry irq/softirq_exit irq_vectors/local_timer_entry irq_vectors/local_timer_exit irq_vectors/call_function_single_entry irq_vectors/call_function_single_exit irq_vectors/reschedule_entry irq_vectors/reschedule_exit"
offcpu_on() {
  grep -q " $TR " /proc/mounts || mount -t tracefs none $TR 2>/dev/null
  echo 0 >$TR/tracing_on; : >$TR/trace
  printf %x $((1 << ${TGT_CPUS%%-*})) >$TR/tracing_cpumask
  echo 32768 >$TR/buffer_size_kb
  for e in $OC_EVENTS; do echo 1 >$TR/events/$e/enable 2>/dev/null; done
  echo 1 >$TR/tracing_on
}
offcpu_off() { # IOS WHO
  echo 0 >$TR/tracing_on
  for e in $OC_EVENTS; do echo 0 >$TR/events/$e/enable 2>/dev/null; done
  cat $TR/trace >"$OUTD/offcpu.txt"; : >$TR/trace
  printf %x $(((1 << NCPU) - 1)) >$TR/tracing_cpumask
  oc_who=$2; [ "$oc_who" = sys ] && oc_who=
  python3 "$REPO/scripts/offcpu.py" "$OUTD/offcpu.txt" "$1" $oc_who
}

# switch_on / switch_off IOS: context switches and CR3 loads per vCPU (tracefs hist triggers).
switch_on() {
  grep -q " $TR " /proc/mounts || mount -t tracefs none $TR 2>/dev/null
  echo 'hist:keys=common_cpu,reason' >$TR/events/tlb/tlb_flush/trigger 2>/dev/null || echo "note: no tlb:tlb_flush trigger"
  echo 'hist:keys=common_cpu' >$TR/events/sched/sched_switch/trigger 2>/dev/null || echo "note: no sched_switch trigger"
  grep -E "CAL:|vfio|nvme" /proc/interrupts >"$OUTD/irq0.txt"
}
switch_off() { # IOS
  awk -v n="$1" '/^{ common_cpu:/ { split($0, a, "hitcount:"); c = a[2] + 0; sub(/^{ common_cpu: */, ""); sub(/ *} *hitcount.*/, ""); split($0, k, /, reason: */)
      if (k[2] + 0 == 0) cr3[k[1] + 0] += c; else fl[k[1] + 0] += c; cpus[k[1] + 0] = 1 }
    END { s = "  CR3 loads per IO (other TLB flushes):"; for (c in cpus) s = s sprintf(" cpu%d %.2f (%.2f)", c, cr3[c] / n, fl[c] / n); print s }' $TR/events/tlb/tlb_flush/hist 2>/dev/null
  awk -v n="$1" '/^{ common_cpu:/ { split($0, a, "hitcount:"); c = a[2] + 0; sub(/^{ common_cpu: */, ""); sub(/ *}.*/, ""); s = s sprintf(" cpu%d %.2f", $0, c / n) }
    END { print "  context switches per IO:" s }' $TR/events/sched/sched_switch/hist 2>/dev/null
  # Per vCPU: function-call IPIs (remote wake-ups) and the device's vectors, per IO.
  grep -E "CAL:|vfio|nvme" /proc/interrupts | awk -v n="$1" -v c="$NCPU" 'NR == FNR { for (i = 2; i <= 1 + c; i++) a[$1, i] = $i; next }
    { s = s "  " $1 ($1 == "CAL:" ? "" : " " $NF); for (i = 2; i <= 1 + c; i++) s = s sprintf(" cpu%d %.2f", i - 2, ($i - a[$1, i]) / n); s = s ";" }
    END { print "  interrupts per IO and vCPU:" s }' "$OUTD/irq0.txt" -
  # Where the device's active vectors are routed now (a pinned Worker steers its own to its CPU).
  for q in $(grep -E "vfio|nvme" /proc/interrupts | awk -v c="$NCPU" '{ s = 0; for (i = 2; i <= 1 + c; i++) s += $i; if (s > 0) print $1 }' | tr -d :); do
    echo "  IRQ $q ($(grep "^ *$q:" /proc/interrupts | awk '{print $NF}')): affinity $(cat /proc/irq/$q/smp_affinity_list 2>/dev/null), effective $(cat /proc/irq/$q/effective_affinity_list 2>/dev/null)"
  done
  echo '!hist:keys=common_cpu,reason' >>$TR/events/tlb/tlb_flush/trigger 2>/dev/null
  echo '!hist:keys=common_cpu' >>$TR/events/sched/sched_switch/trigger 2>/dev/null
}

cpu_of() { # PID: utime+stime in ticks (all threads)
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
sys_busy() { # the whole guest's busy ticks
  awk '/^cpu /{print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat
}

# fio_json RW BS QD: one fio run on $BLK; prints "iops bw_bytes p50_us p99_us ios". fio writes its
# JSON to a file read afterwards: a python3 started beside fio (a pipe) takes ~0.5 s of a vCPU under
# TCG while the first second of the run is measured.
fio_json() {
  [ -n "${MARK:-}" ] && echo "mark start $MARK" >&2
  $FIO_PIN fio --name=b --filename="$BLK" --direct=1 --rw="$1" --bs="$2" --iodepth="$3" --ioengine=io_uring --runtime="$SEC" \
    --ramp_time="${BENCH_RAMP:-0}" --time_based --output-format=json --output="$OUTD/fio.json" >/dev/null 2>&1
  [ -n "${MARK:-}" ] && echo "mark end $MARK ios=$(grep -m1 '"total_ios"' "$OUTD/fio.json" | tr -dc 0-9)" >&2
  python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["write"] if j["write"]["io_bytes"] > 0 else j["read"]
p = d.get("clat_ns", {}).get("percentile", {})
print(round(d["iops"]), d["bw_bytes"], round(p.get("50.000000", 0) / 1000), round(p.get("99.000000", 0) / 1000), d["total_ios"])' "$OUTD/fio.json"
}

connect() { # PORT [args]: sets CTRL, BLK
  CTRL= BLK=
  nvme connect -t tcp -a 127.0.0.1 -s "$1" -n $NQN -i 2 ${2:+$2} ${3:+$3} >"$OUTD/connect.log" 2>&1 || return 1
  for _ in $(seq 1 100); do
    for c in /sys/class/nvme/nvme*; do
      [ "$(cat "$c/subsysnqn" 2>/dev/null)" = $NQN ] && [ "$(cat "$c/transport" 2>/dev/null)" = tcp ] && CTRL=$(basename "$c")
    done
    if [ -n "$CTRL" ]; then
      b=$(ls -d /sys/class/nvme/$CTRL/nvme*n1 /sys/class/nvme-subsystem/nvme-subsys*/nvme*n1 2>/dev/null | while read -r p; do
        s=$(dirname "$p")
        [ "$(cat "$s/subsysnqn" 2>/dev/null)" = $NQN ] || [ "$s" = /sys/class/nvme/$CTRL ] && basename "$p"
      done | head -1)
      [ -n "$b" ] && [ -b "/dev/$b" ] && { BLK=/dev/$b; return 0; }
    fi
    sleep 0.2
  done
  return 1
}

# pin MODE WHO: "fio": fio on the last vCPU; "on": that and, when WHO is a tsnvme target's pid
# (PINPROC=1), every thread of it on the other vCPUs; "off": fio anywhere, the target's threads on
# every vCPU again.
NCPU=$(nproc)
FIO_CPU=$((NCPU - 1))
TGT_CPUS=0-$((NCPU > 1 ? NCPU - 2 : 0))
pin() {
  # Undo an "on" or "off": each thread's own mask back (a Worker keeps its --cpus).
  [ -s "$OUTD/aff.txt" ] && { while read -r t m; do taskset -p "$m" "$t" >/dev/null 2>&1; done <"$OUTD/aff.txt"; : >"$OUTD/aff.txt"; }
  FIO_PIN=
  [ "$1" = end ] && return 0
  [ "$1" = off ] || FIO_PIN="taskset -c $FIO_CPU"
  [ "$PINPROC" = 1 ] || return 0
  [ "$1" = fio ] && return 0
  for t in /proc/"$2"/task/*; do t=${t##*/}; echo "$t $(taskset -p "$t" | awk '{print $NF}')"; done >"$OUTD/aff.txt"
  if [ "$1" = on ]; then taskset -a -p -c $TGT_CPUS "$2" >/dev/null
  else taskset -a -p -c 0-$((NCPU - 1)) "$2" >/dev/null; fi
}
PINPROC=0

# rps 0|1: RPS/XPS on lo off (0) or onto fio's vCPU (1).
rps() {
  m=0
  [ "$1" = 1 ] && m=$(printf %x $((1 << FIO_CPU)))
  echo "$m" >/sys/class/net/lo/queues/rx-0/rps_cpus 2>/dev/null || echo "note: cannot set lo's rps_cpus"
  # lo may refuse XPS (a single queue; the kernel then picks tx-0 anyway): not worth a note.
  echo "$m" >/sys/class/net/lo/queues/tx-0/xps_cpus 2>/dev/null || :
}
RPS=${BENCH_RPS:-1}
rps "$RPS"

# rows LABEL PID|sys: both digest modes (and every BENCH_PIN mode), one table row each.
rows() {
  label0=$1 who=$2
  for dg in $DIGESTS; do
    if [ $dg = on ]; then connect $PORT -g -G || { echo "bench $label0: connect failed"; nvme disconnect -n $NQN >/dev/null 2>&1; continue; }
    else connect $PORT || { echo "bench $label0: connect failed"; nvme disconnect -n $NQN >/dev/null 2>&1; continue; }; fi
    for pm in ${PINS:-${BENCH_PIN:-fio}}; do
    label=$label0
    [ -n "${BENCH_PIN:-}${PINS:-}" ] && case $pm in on) label="$label0, all pinned" ;; fio) label="$label0, fio pinned" ;; *) label="$label0, unpinned" ;; esac
    pin $pm "$who"
    [ "${BENCH_SWITCH:-0}" = 1 ] && switch_on
    [ "${BENCH_SCHED:-0}" = 1 ] && sched_snap "$OUTD/sched0.json"
    [ "${BENCH_RCU:-0}" = 1 ] && rcu_on
    [ "${BENCH_SCHED:-0}" = 1 ] && MARK="$label, digests $dg, QD1 $(date +%s.%N)"
    [ -n "${BENCH_PERF:-}" ] && perf_on
    [ "${BENCH_OFFCPU:-0}" = 1 ] && offcpu_on
    set -- $(fio_json randread 4k 1); q1=$1 q1p50=$3 q1p99=$4
    [ "${BENCH_OFFCPU:-0}" = 1 ] && offcpu_off "$5" "$who"
    MARK=
    [ "${BENCH_SWITCH:-0}" = 1 ] && switch_off "$5"
    [ -n "${BENCH_PERF:-}" ] && perf_off "$5" "$SEC"
    [ "${BENCH_SCHED:-0}" = 1 ] && python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))["jobs"][0]["read"]["clat_ns"]
p = d.get("percentile", {})
print("  fio QD1 clat us: mean %.0f, p10 %.0f, p50 %.0f, p90 %.0f, p99 %.0f, p99.9 %.0f, max %.0f" % tuple(x / 1000 for x in
      (d["mean"], p.get("10.000000", 0), p.get("50.000000", 0), p.get("90.000000", 0), p.get("99.000000", 0), p.get("99.900000", 0), d["max"])))' "$OUTD/fio.json"
    [ "${BENCH_RCU:-0}" = 1 ] && rcu_off "$5"
    [ "${BENCH_SCHED:-0}" = 1 ] && sched_snap "$OUTD/sched1.json" && sched_diff "$OUTD/sched0.json" "$OUTD/sched1.json" "$5" "$label, digests $dg, QD1"
    [ -n "$TRACED" ] && sleep 1.5 # the trace prints after a second without IO: one histogram per fio run
    c0=0 c1=0 ios=0 q32=- q32p50=- q32p99=- rmb=- wmb=- again=
    if [ "${BENCH_QD1_ONLY:-0}" != 1 ]; then
    c0=$( [ "$who" = sys ] && sys_busy || cpu_of "$who")
    set -- $(fio_json randread 4k 32); q32=$1 q32p50=$3 q32p99=$4 ios=$5
    c1=$( [ "$who" = sys ] && sys_busy || cpu_of "$who")
    [ -n "$TRACED" ] && sleep 1.5
    set -- $(fio_json read 128k 8); rmb=$(($2 / 1000000))
    [ -n "$TRACED" ] && sleep 1.5
    set -- $(fio_json write 128k 8); wmb=$(($2 / 1000000))
    [ -n "$TRACED" ] && sleep 1.5
    fi
    if [ "${BENCH_QD1_AGAIN:-0}" = 1 ]; then set -- $(fio_json randread 4k 1); again=" QD1 again $1 ($3/$4) |"; fi
    cpu=$(awk -v t=$((c1 - c0)) -v hz="$HZ" -v n="${ios:-0}" 'BEGIN{ if (n > 0) printf "%.1f", t / hz * 1e6 / n; else print "?" }')
    [ "$who" = sys ] && cpu="$cpu sys"
    line="| $label | $dg | $q1 ($q1p50/$q1p99) | $q32 ($q32p50/$q32p99) | $rmb | $wmb | $cpu |$again"
    echo "$label|$dg|$q1|$q32|$rmb|$wmb|${ROUND:-1}" >>"$ROWS"
    echo "$line" | tee -a "$OUTD/table.md"
    done
    pin end "$who"
    nvme disconnect -n $NQN >/dev/null 2>&1
    sleep 0.5
  done
}

start_tsnvme() { # RT WORKERS [ENV=VALUE]
  rm -f /tmp/bench-target.ready
  e=$(echo "${3:-TSNVME_TARGET_TRACE=0}" | tr , ' ')
  tree=$(echo " $e " | sed -n 's/.* BENCH_TREE=\([^ ]*\) .*/\1/p')
  tree=$(cd "$REPO" && cd "${tree:-.}" && pwd)
  cpus=$(echo " $e " | sed -n 's/.* BENCH_CPUS=\([^ ]*\) .*/\1/p')
  if [ "$1" = deno ]; then set -- env $e deno run -A --no-check "$tree/lib/cli/nvmf-target.ts" --workers "$2"; else set -- env $e bun "$tree/lib/cli/nvmf-target.ts" --workers "$2"; fi
  # By default (BENCH_PIN unset) the whole process (its listener and the runtime's JIT and GC
  # threads too) runs on the vCPUs fio does not run on, its Workers one CPU each of them.
  [ -z "$cpus" ] && [ -z "${BENCH_PIN:-}" ] && cpus=$TGT_CPUS
  [ -n "$cpus" ] && set -- "$@" --cpus "$cpus"
  "$@" --port $PORT --nqn $NQN --ns "$PCI2:1" --ready-file /tmp/bench-target.ready -q >>"$OUTD/target.log" 2>&1 &
  TPID=$!
  for _ in $(seq 1 300); do
    [ -s /tmp/bench-target.ready ] && return 0
    kill -0 $TPID 2>/dev/null || return 1
    sleep 0.2
  done
  return 1
}
stop_pid() { [ -n "$TPID" ] && kill -TERM $TPID 2>/dev/null && wait $TPID; TPID=; }

: >"$OUTD/table.md"
: >"$OUTD/aff.txt"
[ "$RPS" = 1 ] && echo "RPS/XPS on lo: fio's vCPU $FIO_CPU (every row)"
if [ -z "${BENCH_PIN:-}" ]; then
  echo "Pinned: fio on vCPU $FIO_CPU; tsnvme's process and Workers on $TGT_CPUS (--cpus), SPDK's reactor -m 0x1 (vCPU 0); nvmet's kernel threads unpinned"
else
  echo "Pin modes per row: $BENCH_PIN (fio pinned: fio on vCPU $FIO_CPU; all pinned: also every tsnvme thread on $TGT_CPUS)"
fi
echo "| target | digests | 4 KiB randread QD1 IOPS (p50/p99 µs) | 4 KiB randread QD32 IOPS (p50/p99 µs) | 128 KiB read QD8 MB/s | 128 KiB write QD8 MB/s | CPU µs/IO (QD32) |"
echo "|---|---|---|---|---|---|---|"

# strace_probe RT SEC: strace -f -tt -T on a 1-Worker target during SEC seconds of QD1 reads.
strace_probe() {
  command -v strace >/dev/null || { echo "bench: no strace"; return; }
  start_tsnvme "$1" 1 || { echo "bench: tsnvme $1 target did not start"; stop_pid; return; }
  if connect $PORT; then
    log="$OUTD/strace-$1.log"
    fio --name=s --filename="$BLK" --direct=1 --rw=randread --bs=4k --iodepth=1 --ioengine=io_uring --runtime=$(($2 + 3)) \
      --time_based >/dev/null 2>&1 &
    fpid=$!
    sleep 1
    timeout -s INT "$2" strace -f -tt -T -p "$TPID" -o "$log" >/dev/null 2>&1
    wait $fpid
    echo "strace $1, 1 Worker, QD1, ${2}s: syscalls by total time (calls, total s, mean µs, max µs) per thread"
    awk '{ tid = $1; name = ($3 == "<...") ? $4 : $3; sub(/\(.*/, "", name); t = $NF; gsub(/[<>]/, "", t); if (t + 0 != t) next
           k = tid " " name; n[k]++; s[k] += t; if (t > m[k]) m[k] = t }
         END { for (k in n) printf "  %-28s %8d %9.3f %9.1f %9.1f\n", k, n[k], s[k], s[k] / n[k] * 1e6, m[k] * 1e6 }' "$log" |
      sort -k4 -rn | head -20
    echo "  longest calls:"
    awk '{ t = $NF; gsub(/[<>]/, "", t); if (t + 0 == t) print t, $0 }' "$log" | sort -rn | head -12 | cut -d' ' -f2- | cut -c1-160 | sed 's/^/    /'
    nvme disconnect -n $NQN >/dev/null 2>&1
  else
    echo "bench strace $1: connect failed"
  fi
  stop_pid
}

WARM=${BENCH_WARMUP:-each}

# tsnvme_rows RT WORKERS ENV: one tsnvme target's rows (and its idle, trace and strace extras).
tsnvme_rows() {
  rt=$1 w=$2 env=$3
  vl=
  [ -n "${BENCH_ENVS:-}" ] && vl=", $env"
  start_tsnvme "$rt" "$w" "$env" || { echo "bench: tsnvme $rt target did not start"; stop_pid; return; }
  if [ "$WARM" = 1 ] || [ "$WARM" = each ]; then
    # Thrown away: the first target in a boot runs ~2x slow for a while.
    [ "$WARM" = each ] || WARM=0
    connect $PORT && fio_json randread 4k 1 >/dev/null && fio_json randread 4k 32 >/dev/null
    nvme disconnect -n $NQN >/dev/null 2>&1
    sleep 0.5
  fi
  PINPROC=1 PINS=$(echo " $env " | tr , ' ' | sed -n 's/.* BENCH_PIN=\([^ ]*\) .*/\1/p' | tr + ' ')
  r=$(echo " $env " | tr , ' ' | sed -n 's/.* BENCH_RPS=\([01]\) .*/\1/p')
  [ -n "$r" ] && rps "$r"
  rows "tsnvme $rt, $w Worker(s)$vl" $TPID
  [ -n "$r" ] && rps "$RPS"
  PINPROC=0 PINS=
  if [ -n "${BENCH_IDLE:-}" ] && connect $PORT; then
    # After a second of QD1 (whatever spins after IO has ended), then connected and idle.
    fio_json randread 4k 1 >/dev/null
    c0=$(cpu_of $TPID); sleep "$BENCH_IDLE"; c1=$(cpu_of $TPID)
    echo "idle, tsnvme $rt, $w Worker(s)$vl: $(awk -v t=$((c1 - c0)) -v hz="$HZ" -v s="$BENCH_IDLE" 'BEGIN{printf "%.1f%%", t / hz / s * 100}') of a CPU over ${BENCH_IDLE}s"
    nvme disconnect -n $NQN >/dev/null 2>&1
  fi
  stop_pid
  if [ "${BENCH_TRACE:-0}" = 1 ]; then
    # env(1) takes both assignments; the trace's own goes last so it wins over a variant's.
    start_tsnvme "$rt" "$w" "$env TSNVME_TARGET_TRACE=1" || { echo "bench: tsnvme $rt target did not start"; stop_pid; return; }
    : >"$OUTD/target.log"
    TRACED=1
    rows "tsnvme $rt, $w Worker(s)$vl, traced" $TPID
    TRACED=
    stop_pid
    echo "trace, tsnvme $rt, $w Worker(s)$vl, per fio run (QD1, QD32, 128K read, 128K write[, QD1 again]), per digest mode:"
    grep "^target worker" "$OUTD/target.log" | sed 's/^/  /'
  fi
}

# SPDK nvmf_tgt, one core, bdev_nvme over VFIO.
spdk_rows() {
  if [ "${BENCH_SPDK:-1}" = 0 ]; then
    :
  elif [ -x $PEERS/nvmf_tgt ]; then
    grep -q " /run " /proc/mounts || mount -t tmpfs none /run
    mkdir -p /dev/hugepages && { grep -q " /dev/hugepages " /proc/mounts || mount -t hugetlbfs none /dev/hugepages; }
    echo 512 >/proc/sys/vm/nr_hugepages
    $PEERS/nvmf_tgt -m 0x1 >"$OUTD/spdk.log" 2>&1 &
    TPID=$!
    # The link in bin/ would make rpc.py look for its python package beside the link: call the real file.
    RPC="$(readlink -f "$PEERS/spdk-rpc.py")"
    for _ in $(seq 1 100); do $RPC rpc_get_methods >/dev/null 2>&1 && break; sleep 0.3; done
    if $RPC nvmf_create_transport -t TCP >>"$OUTD/spdk.log" 2>&1 && $RPC bdev_nvme_attach_controller -b N0 -t PCIe -a "$PCI2" >>"$OUTD/spdk.log" 2>&1 &&
      $RPC nvmf_create_subsystem $NQN -a >>"$OUTD/spdk.log" 2>&1 && $RPC nvmf_subsystem_add_ns $NQN N0n1 >>"$OUTD/spdk.log" 2>&1 &&
      $RPC nvmf_subsystem_add_listener $NQN -t tcp -a 127.0.0.1 -s $PORT >>"$OUTD/spdk.log" 2>&1; then
      rows "SPDK nvmf_tgt (1 core)" $TPID
    else
      echo "bench: SPDK nvmf_tgt setup failed ($(tail -2 "$OUTD/spdk.log" | tr '\n' ' '))"
    fi
    stop_pid
  else
    echo "bench: no SPDK nvmf_tgt in $PEERS (see /work/shared/tools/build-peers.sh)"
  fi
}

# nvmet on the kernel driver (the controller back on vfio-pci after it).
nvmet_rows() {
  if sh scripts/guest-bind.sh nvme "$PCI2" >/dev/null 2>&1; then
    kdev=$(basename "$(ls -d /sys/bus/pci/devices/$PCI2/nvme/nvme*/nvme*n1 2>/dev/null | head -1)")
    case $kdev in *c*n*) kdev=${kdev%%c*}n${kdev##*n} ;; esac
    C=/sys/kernel/config/nvmet S=/sys/kernel/config/nvmet/subsystems/$NQN P=/sys/kernel/config/nvmet/ports/9
    if mkdir $S && echo 1 >$S/attr_allow_any_host && mkdir $S/namespaces/1 && echo -n "/dev/$kdev" >$S/namespaces/1/device_path &&
      echo 1 >$S/namespaces/1/enable && mkdir $P && echo tcp >$P/addr_trtype && echo ipv4 >$P/addr_adrfam &&
      echo 127.0.0.1 >$P/addr_traddr && echo $PORT >$P/addr_trsvcid && ln -s $S $P/subsystems/$NQN; then
      for r in ${BENCH_NVMET_RPS:-$RPS}; do
        rps "$r"
        rows "nvmet (kernel nvme, /dev/$kdev)$([ -n "${BENCH_NVMET_RPS:-}" ] && echo ", BENCH_RPS=$r")" sys
      done
      rps "$RPS"
    else
      echo "bench: nvmet setup failed"
    fi
    rm -f $P/subsystems/$NQN; rmdir $P 2>/dev/null
    echo 0 >$S/namespaces/1/enable 2>/dev/null; rmdir $S/namespaces/1 $S 2>/dev/null
  fi
  sh scripts/guest-bind.sh vfio "$PCI2" >/dev/null 2>&1
}

# The targets of one round, in order; with BENCH_ROUNDS=N each round runs them all, every other
# round in reverse (a boot's speed drifts by tens of percent over minutes under TCG: without
# rotation the target measured last is favoured or penalized alike), and the ratios below are of
# medians over the rounds.
TARGETS=
for rt in $RTS; do for w in $WORKERS; do for env in ${BENCH_ENVS:-TSNVME_TARGET_TRACE=0}; do
  TARGETS="$TARGETS tsnvme:$rt:$w:$env"
done; done; done
[ "${BENCH_SPDK:-1}" = 0 ] || TARGETS="$TARGETS spdk"
TARGETS="$TARGETS nvmet"
ROUNDS=${BENCH_ROUNDS:-1}
sh scripts/guest-bind.sh vfio "$PCI2" >/dev/null 2>&1
for ROUND in $(seq 1 "$ROUNDS"); do
  order=$TARGETS
  [ $((ROUND % 2)) = 0 ] && order=$(echo $TARGETS | tr ' ' '\n' | tac | tr '\n' ' ')
  [ "$ROUNDS" -gt 1 ] && echo "round $ROUND of $ROUNDS ($(date +%T)):$(echo " $order" | sed 's/ tsnvme:\([a-z]*\):\([0-9]*\):[^ ]*/ \1-\2W/g')"
  for t in $order; do
    case $t in
      tsnvme:*) t=${t#tsnvme:}; trt=${t%%:*}; t=${t#*:}; tsnvme_rows "$trt" "${t%%:*}" "${t#*:}" ;;
      spdk) spdk_rows ;;
      nvmet) nvmet_rows ;;
    esac
  done
  # Once per runtime, after its rows (the first round only).
  if [ "$ROUND" = 1 ] && [ -n "${BENCH_STRACE:-}" ]; then for rt in $RTS; do strace_probe "$rt" "$BENCH_STRACE"; done; fi
done

echo
if [ "$ROUNDS" -gt 1 ]; then
  echo "Medians over $ROUNDS rounds, ratios to nvmet's median (same digests and pin mode, same boot): QD1 IOPS, QD32 IOPS, 128 KiB read, 128 KiB write"
else
  echo "Ratios to nvmet (same digests and pin mode, same boot): QD1 IOPS, QD32 IOPS, 128 KiB read, 128 KiB write"
fi
python3 - "$ROWS" "$ROUNDS" <<'PY'
import re, statistics, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[1]) if l.strip()]
many = int(sys.argv[2]) > 1
def pm(label):
    m = re.search(r", (all pinned|fio pinned|unpinned)$", label)
    return m.group(0) if m else ""
def num(x):
    try:
        return float(x)
    except ValueError:
        return None
keys, vals, rnd = [], {}, {}
for r in rows:
    k = (r[0], r[1])
    if k not in vals:
        keys.append(k)
        vals[k] = [[] for _ in range(4)]
        rnd[k] = {}
    for i in range(4):
        v = num(r[2 + i])
        if v is not None:
            vals[k][i].append(v)
    rnd[k][r[6] if len(r) > 6 else "1"] = num(r[2])
med = {k: [statistics.median(c) if c else None for c in vals[k]] for k in keys}
ref = {}
for k in keys:
    if k[0].startswith("nvmet"):
        ref[k[1] + pm(k[0])] = (med[k], rnd[k])
for k in keys:
    base, brnd = ref.get(k[1] + pm(k[0]), ([None] * 4, {}))
    cells = ["%.2fx" % (m / b) if m is not None and b else "?" for m, b in zip(med[k], base)]
    line = "| %s | %s | %s |" % (k[0], k[1], " | ".join(cells))
    if many:
        per = ", ".join("%s %s%s" % (n, "%.0f" % v if v is not None else "-",
                        " (%.2fx)" % (v / brnd[n]) if v is not None and brnd.get(n) else "") for n, v in sorted(rnd[k].items(), key=lambda x: int(x[0])))
        line += " QD1 median %s; by round: %s |" % ("%.0f" % med[k][0] if med[k][0] is not None else "-", per)
    print(line)
PY
