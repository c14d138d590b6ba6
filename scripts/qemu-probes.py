#!/usr/bin/env python3
"""Count what makes QEMU's TCG flush a vCPU's soft TLB, per window of a guest job (issue 16).

TCG flushes a vCPU's whole soft TLB and its TB jump cache on every CR3 write and every PKRU change
(WRPKRU; XRSTOR when PKRU differs); afterwards each page the guest touches is walked again and each
indirect branch is looked up in the translation cache (qht_lookup_custom). Real CPUs pay neither.
This puts host uprobes on those QEMU functions (they are in the stripped binary's dynamic symbol
table) and counts their calls per vCPU thread every 0.5 s, so that a guest job's windows (the
"mark start|end LABEL ios=N" lines of scripts/qemu-threads.py, e.g. tests/guest/tcp/nvmet.sh --qd1
with QD1_WINDOWS=1) get calls per IO. Needs root and perf on the host. Each call traps into the
host kernel (a few µs): sample a counting round, not the one whose IOPS you report.

  scripts/qemu-probes.py sample OUT.csv QEMU_PID   # until killed (perf stat -I 500 --per-thread)
  scripts/qemu-probes.py report OUT.csv STAMPED_LOG  # calls per IO per window (log from qemu-threads.py stamp)

Measured this way (2026-12-06, QD1 4 KiB reads against nvmet in the guest): Deno 2.0-2.2 PKRU
writes (each a full flush) per IO, Bun and the kernel initiator 0 (nvmet's kworkers preempt the
reader's thread once per IO, and every Deno thread's PKRU differs from the kernel threads').
"""
import collections, os, signal, subprocess, sys, time

QEMU = os.environ.get("QEMU_BIN", "/usr/bin/qemu-system-x86_64")
# helper_wrpkru: the WRPKRU instruction (guest kernel on a switch between threads whose PKRU
# differs, or user code); helper_xrstor: XRSTOR (flushes only if PKRU changes); cpu_x86_update_cr3:
# a CR3 write (address-space switch); tlb_flush: every full flush, whatever the cause.
FUNCS = ["helper_wrpkru", "helper_xrstor", "cpu_x86_update_cr3", "tlb_flush"]


def sample(out, pid):
    have = subprocess.run(["perf", "probe", "-l"], capture_output=True, text=True).stdout
    for f in FUNCS:
        if "probe_qemu:%s " % f not in have:
            subprocess.run(["perf", "probe", "-q", "-x", QEMU, "-a", f], check=True)
    t0 = time.time()
    p = subprocess.Popen(["perf", "stat", "-I", "500", "--per-thread", "-x,", "-o", out,
                          "-e", ",".join("probe_qemu:" + f for f in FUNCS), "-p", str(pid)])
    with open(out + ".start", "w") as s:
        s.write("%.3f\n" % t0)
    signal.signal(signal.SIGTERM, lambda *_: p.send_signal(signal.SIGINT))
    p.wait()


def report(out, log):
    t0 = float(open(out + ".start").read())
    iv = collections.defaultdict(collections.Counter)
    for l in open(out):
        f = l.strip().split(",")
        if len(f) < 5 or f[0].startswith("#"):
            continue
        try:
            iv[t0 + float(f[0])][f[4].split(":")[-1]] += int(f[2])
        except ValueError:
            continue  # <not counted>
    ts = sorted(iv)
    starts = {}
    for l in open(log, errors="replace"):
        f = l.split()
        if len(f) < 4 or f[1] != "mark":
            continue
        t, label = float(f[0]), " ".join(x for x in f[3:] if not x.startswith("ios="))
        if f[2] == "start":
            starts[label] = t
            continue
        if label not in starts:
            continue
        a = starts.pop(label)
        ios = next((int(x[4:]) for x in f if x.startswith("ios=")), 0)
        inner = [x for x in ts if a + 0.5 <= x <= t]  # intervals wholly inside the window
        if not inner or ios <= 0:
            continue
        c = collections.Counter()
        for x in inner:
            c.update(iv[x])
        n = ios * len(inner) * 0.5 / (t - a)
        print("%-44s %6.0f IOPS  %s" % (label, ios / (t - a), "  ".join("%s %.2f/IO" % (k, c[k] / n) for k in FUNCS)))


if __name__ == "__main__":
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "sample" and len(sys.argv) == 4:
        sample(sys.argv[2], int(sys.argv[3]))
    elif cmd == "report" and len(sys.argv) == 4:
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
