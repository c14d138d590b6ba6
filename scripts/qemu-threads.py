#!/usr/bin/env python3
"""Host-side CPU of the QEMU guest's threads, for diagnosing guest benchmarks (issue 16).

Under TCG each vCPU is a host thread ("CPU 0/TCG"), QEMU's device emulation runs in its main loop
thread (and "worker" AIO threads); the guest cannot see when the host runs them or keeps them
waiting (no steal time under TCG), yet its clock keeps going, so a guest thread that is current on
a vCPU the host has preempted is charged that time. This samples every QEMU thread's run time and
run-queue wait (/proc/PID/task/TID/schedstat, ns) and the host's /proc/stat.

  scripts/qemu-threads.py sample OUT.jsonl [PERIOD_S]   # until killed; one JSON line per sample
  scripts/qemu-threads.py stamp                         # stdin to stdout, each line prefixed by the host's time
  scripts/qemu-threads.py report OUT.jsonl STAMPED_LOG  # per window marked in the guest's output
  scripts/qemu-threads.py perf PERF.DATA STAMPED_LOG    # where each vCPU thread's host time went, per window

For `perf`, record QEMU with host timestamps on the same clock as `stamp`'s (wall time), e.g.
  perf record -k CLOCK_REALTIME -e cpu-clock -F 999 -p $(pgrep -f qemu-system) -o PERF.DATA
The report groups each vCPU's samples: TCG's generated code, looking up translated code (an
indirect branch or a jump cache miss: helper_lookup_tb_ptr, qht_lookup*, tb_*), soft-TLB flushes
(tlb_flush*, tcg_flush_jmp_cache), soft-TLB refills (tlb_set_page*, probe_access*, tlb_fill; the
page walk itself is a static function, so perf shows it as an unnamed address in QEMU: "qemu, no
symbol"), other helpers, the host kernel.

A window is two lines of the guest job's output, stamped on arrival by `stamp`:
  "mark start LABEL" ... "mark end LABEL ios=N"
(scripts/bench-tcp-target.sh prints them around each QD1 run when BENCH_SCHED=1). The report gives
per window and QEMU thread: CPU and run-queue wait as % of the window and µs per IO.
"""
import json, os, sys, time

SMP = int(os.environ.get("QEMU_SMP", "2"))  # vCPUs of the guest (scripts/guest.sh --smp)


def qemu_pids():
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            if open("/proc/%s/comm" % p).read().startswith("qemu-system"):
                out.append(p)
        except OSError:
            pass
    return out


def sample(path, period):
    f = open(path, "a")
    while True:
        t = time.time()
        threads = {}
        for p in qemu_pids():
            try:
                tids = os.listdir("/proc/%s/task" % p)
            except OSError:
                continue
            for tid in tids:
                b = "/proc/%s/task/%s/" % (p, tid)
                try:
                    comm = open(b + "comm").read().strip()
                    run, wait, slices = (int(x) for x in open(b + "schedstat").read().split())
                    st = open(b + "status").read().split("\n")
                    vcs = next(int(l.split()[1]) for l in st if l.startswith("voluntary_ctxt"))
                    nvcs = next(int(l.split()[1]) for l in st if l.startswith("nonvoluntary_ctxt"))
                except (OSError, ValueError, StopIteration):
                    continue
                threads[p + "/" + tid] = [comm, run, wait, slices, vcs, nvcs]
        # Unnamed threads (QEMU without -name debug-threads=on): by creation order, the main loop
        # (tid = pid), the RCU thread, then one thread per vCPU (SMP of them), then helpers.
        for p in set(k.split("/")[0] for k in threads):
            tids = sorted((int(k.split("/")[1]) for k in threads if k.startswith(p + "/")))
            for i, tid in enumerate(tids):
                v = threads["%s/%d" % (p, tid)]
                if v[0].startswith("qemu-system"):
                    v[0] = "main loop" if tid == int(p) else "rcu" if i == 1 else "vCPU %d" % (i - 2) if i < 2 + SMP else "helper %d" % tid
        cpu = [int(x) for x in open("/proc/stat").readline().split()[1:]]
        f.write(json.dumps({"t": t, "threads": threads, "cpu": cpu}) + "\n")
        f.flush()
        time.sleep(max(0.0, period - (time.time() - t)))


def windows(log):
    """(label, t0, t1, ios) of each "mark start/end LABEL" pair in a stamped log."""
    starts, wins = {}, []
    for l in open(log, errors="replace"):
        f = l.split()
        if len(f) >= 4 and f[1] == "mark":
            t, kind, label = float(f[0]), f[2], " ".join(x for x in f[3:] if not x.startswith("ios="))
            if kind == "start":
                starts[label] = t
            elif kind == "end" and label in starts:
                ios = next((int(x[4:]) for x in f if x.startswith("ios=")), 0)
                wins.append((label, starts.pop(label), t, ios))
    return wins


def bucket(sym, dso):
    if "kernel" in dso:
        return "host kernel"
    if "JIT" in dso or "anon" in dso or "/perf-" in dso:
        return "TCG code"  # the translated guest code (perf names QEMU's code buffer "[JIT] tid N")
    if not sym or sym.startswith("0x") or sym == "[unknown]":
        return "qemu, no symbol" if "qemu" in dso else "libs"
    if sym.startswith(("tlb_flush", "tcg_flush_jmp_cache", "tb_flush_jmp_cache")):
        return "TLB flush"
    if sym.startswith(("tlb_set_page", "probe_access", "tlb_fill", "x86_cpu_tlb_fill", "tlb_vaddr_to_host")):
        return "TLB refill"
    if sym.startswith(("helper_lookup_tb_ptr", "qht_lookup", "tb_htable_lookup", "tb_lookup", "tb_gen_code", "cpu_exec", "cpu_tb_exec")):
        return "TB lookup/exec"
    if sym.startswith("helper_"):
        return "other helpers"
    if "qemu" in dso:
        return "qemu, other"
    return "libs"


def perf_report(data, log):
    import collections, subprocess
    wins = windows(log)
    out = subprocess.run(["perf", "script", "-i", data, "-F", "comm,tid,time,ip,sym,dso"], capture_output=True, text=True).stdout
    samples = []  # (t, comm, sym, dso)
    for l in out.split("\n"):
        # "CPU 0/TCG  1234 1796567261.505663:   55f58d8df30f qht_lookup_custom (/usr/bin/qemu-system-x86_64)"
        i = l.find(":")
        head, tail = l[:i].split(), l[i + 1:].strip().split(" ", 1)[-1]
        if len(head) < 3 or not head[-1].replace(".", "").isdigit():
            continue
        t, comm = float(head[-1]), " ".join(head[:-2])
        dso = tail[tail.rfind("(") + 1:-1] if tail.endswith(")") else ""
        sym = tail[:tail.rfind("(")].strip() if tail.endswith(")") else tail
        samples.append((t, comm, sym.split("+")[0], dso))
    samples.sort()
    if len(samples) < 2:
        sys.exit("perf: no samples")
    for label, t0, t1, ios in wins:
        inw = [s for s in samples if t0 <= s[0] <= t1 and "/TCG" in s[1]]
        print("%s: %.2f s, %d IOs" % (label, t1 - t0, ios))
        for comm in sorted(set(s[1] for s in inw)):
            mine = [s for s in inw if s[1] == comm]
            n = len(mine)
            b = collections.Counter(bucket(s[2], s[3]) for s in mine)
            syms = collections.Counter(s[2] or s[3] for s in mine)
            # cpu-clock at F Hz: a sample is 1/F s of the thread's CPU; F from the thread's own density is unknowable, so
            # give samples per IO (x 1e6/F µs) and shares.
            print("  %-10s %6d samples, %.2f per IO: %s" % (comm, n, n / max(1, ios), ", ".join("%s %.0f%%" % (k, 100 * v / n) for k, v in b.most_common())))
            print("  %-10s top: %s" % ("", ", ".join("%s %.1f%%" % (k[:28], 100 * v / n) for k, v in syms.most_common(8))))


def stamp():
    for line in sys.stdin:
        sys.stdout.write("%.3f %s" % (time.time(), line))
        sys.stdout.flush()


def at(samples, t):
    """The last sample at or before t (the first if none)."""
    best = samples[0]
    for s in samples:
        if s["t"] <= t:
            best = s
        else:
            break
    return best


def report(path, log):
    samples = [json.loads(l) for l in open(path) if l.strip()]
    wins = windows(log)
    for label, t0, t1, ios in wins:
        a, b = at(samples, t0), at(samples, t1)
        # Samples inside the window only: the first after t0, the last before t1.
        inner = [s for s in samples if t0 <= s["t"] <= t1]
        if len(inner) >= 2:
            a, b = inner[0], inner[-1]
        dt = b["t"] - a["t"]
        if dt <= 0:
            print("%s: no samples inside" % label)
            continue
        n = max(1, ios) * dt / (t1 - t0)  # IOs in the sampled part, assuming an even rate
        cpu = [y - x for x, y in zip(a["cpu"], b["cpu"])]
        tot = sum(cpu) or 1
        print("%s: %.2f s sampled of %.2f s, %d IOs (%.0f IOPS); host CPU busy %.0f%% of 2 cores (user %.0f sys %.0f idle %.0f)" % (
            label, dt, t1 - t0, ios, ios / (t1 - t0), 100 * (tot - cpu[3] - cpu[4]) / tot * 2 / 2,
            100 * (cpu[0] + cpu[1]) / tot, 100 * cpu[2] / tot, 100 * cpu[3] / tot))
        rows = []
        for k, v in b["threads"].items():
            u = a["threads"].get(k)
            if u is None:
                continue
            d = [v[i] - u[i] for i in range(1, 6)]
            if d[0] > 0 or d[1] > 0:
                rows.append((d[0], v[0], d))
        rows.sort(key=lambda r: -r[0])
        print("  %-16s %7s %7s %9s %9s %7s %7s" % ("qemu thread", "run %", "wait %", "run us/IO", "wait us/IO", "vcs/IO", "nvcs/IO"))
        for run, comm, d in rows[:8]:
            print("  %-16s %7.1f %7.1f %9.0f %9.0f %7.2f %7.2f" % (comm[:16], d[0] / dt / 1e7, d[1] / dt / 1e7, d[0] / 1e3 / n, d[1] / 1e3 / n, d[3] / n, d[4] / n))
        tr = sum(r[2][0] for r in rows)
        tw = sum(r[2][1] for r in rows)
        print("  %-16s %7.1f %7.1f %9.0f %9.0f" % ("all", tr / dt / 1e7, tw / dt / 1e7, tr / 1e3 / n, tw / 1e3 / n))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "sample":
        sample(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.5)
    elif cmd == "stamp":
        stamp()
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    elif cmd == "perf":
        perf_report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
