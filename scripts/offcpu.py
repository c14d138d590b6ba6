#!/usr/bin/env python3
"""Where a busy thread's time went on its CPU: off-CPU while runnable (preempted), asleep until
woken, and interrupts taken while it ran. Reads tracefs text (sched_switch, sched_wakeup/
sched_waking, irq_handler_entry/exit, softirq_entry/exit, irq_vectors:*_entry/exit) recorded on
one CPU.

  offcpu.py TRACE IOS [PID ...]

Threads reported: those of the PIDs given (thread-group ids: every thread of the process) that ran
at least 10% of the traced window, or, with no PID, the three busiest non-idle threads. Per thread:
how often it was preempted per IO, how long it waited (histogram), who ran meanwhile (by total
time), its sleeps' wake-up latency, and interrupt time taken while it ran (by source). The bench
(scripts/bench-tcp-target.sh BENCH_OFFCPU=1) records the trace around a QD1 run.
"""
import os
import re
import sys
from collections import defaultdict

LINE = re.compile(r"^\s*(.+?)-(\d+)\s+\[(\d+)\]\s+\S+\s+([\d.]+):\s+(\w+):\s*(.*)$")
KV = re.compile(r"(\w+)=(\S+)")


def tids_of(pids):
    out = set()
    for p in pids:
        try:
            out.update(int(t) for t in os.listdir("/proc/%s/task" % p))
        except OSError:
            out.add(int(p))
    return out


def bins(xs, edges=(0.05, 0.2, 1, 4, 10)):
    c = [0] * (len(edges) + 1)
    for x in xs:
        i = 0
        while i < len(edges) and x >= edges[i]:
            i += 1
        c[i] += 1
    names = ["<%gms" % edges[0]] + ["%g-%gms" % (edges[i], edges[i + 1]) for i in range(len(edges) - 1)] + [">=%gms" % edges[-1]]
    return ", ".join("%s %d" % (n, k) for n, k in zip(names, c) if k)


def main():
    path, ios = sys.argv[1], max(1, int(sys.argv[2]))
    want = tids_of(sys.argv[3:]) if len(sys.argv) > 3 else None
    events = []
    with open(path, errors="replace") as f:
        for ln in f:
            m = LINE.match(ln)
            if m:
                events.append((float(m.group(4)), int(m.group(2)), m.group(1).strip(), m.group(5), m.group(6)))
    if not events:
        print("  offcpu: no events (tracefs?)")
        return
    t0, t1 = events[0][0], events[-1][0]
    span = t1 - t0
    cur = None  # tid on CPU
    since = t0
    comm = {}
    oncpu = defaultdict(float)
    # per watched tid: state
    out_at = {}  # tid -> (time, state) when switched out
    woken_at = {}
    preempt = defaultdict(list)  # tid -> [durations ms]
    sleeps = defaultdict(list)  # tid -> wake latency ms
    during = defaultdict(lambda: defaultdict(float))  # tid -> other -> ms while it waited runnable
    irq_open = []  # stack of (time, name)
    irq_in = defaultdict(lambda: defaultdict(float))  # tid -> irq name -> ms taken while tid ran
    irq_long = defaultdict(int)
    for ts, pid, cm, ev, rest in events:
        if ev == "sched_switch":
            kv = dict(KV.findall(rest))
            prev, nxt = int(kv.get("prev_pid", -1)), int(kv.get("next_pid", -1))
            comm[prev] = kv.get("prev_comm", "?")
            comm[nxt] = kv.get("next_comm", "?")
            if cur is not None:
                oncpu[cur] += ts - since
                # the thread now leaving ran for (ts - since): charge it to every runnable waiter
                for w, (at, st) in out_at.items():
                    if st == "R" and w != cur:
                        during[w]["%s-%d" % (comm.get(cur, "?"), cur)] += (ts - max(since, at)) * 1e3
            st = kv.get("prev_state", "")
            out_at[prev] = (ts, "R" if st.startswith("R") else "S")
            if nxt in out_at:
                at, s = out_at.pop(nxt)
                if s == "R":
                    preempt[nxt].append((ts - at) * 1e3)
                elif nxt in woken_at:
                    sleeps[nxt].append((ts - woken_at.pop(nxt)) * 1e3)
            cur, since = nxt, ts
            irq_open.clear()
        elif ev in ("sched_wakeup", "sched_waking"):
            kv = dict(KV.findall(rest))
            p = int(kv.get("pid", -1))
            if ev == "sched_wakeup" or p not in woken_at:
                woken_at.setdefault(p, ts)
        elif ev.endswith("_entry") and ev != "sys_enter":
            name = ev[:-6]
            if ev == "irq_handler_entry":
                name = "irq " + dict(KV.findall(rest)).get("name", "?")
            elif ev == "softirq_entry":
                m = re.search(r"action=(\w+)", rest)
                name = "softirq " + (m.group(1) if m else rest)
            irq_open.append((ts, name))
        elif ev.endswith("_exit") and irq_open:
            at, name = irq_open.pop()
            d = (ts - at) * 1e3
            if cur is not None:
                irq_in[cur][name] += d
            if d >= 1:
                irq_long[name] += 1
    if cur is not None:
        oncpu[cur] += t1 - since
    if want is None:
        watch = [t for t, _ in sorted(oncpu.items(), key=lambda x: -x[1]) if t != 0][:3]
    else:
        watch = [t for t in want if oncpu.get(t, 0) >= 0.1 * span]
    print("  offcpu: %.2f s traced on one CPU, %d events, %d IOs; CPU share: %s" % (
        span, len(events), ios, ", ".join("%s-%d %.0f%%" % (comm.get(t, "?"), t, 100 * v / span)
                                         for t, v in sorted(oncpu.items(), key=lambda x: -x[1])[:6])))
    for t in watch:
        p = preempt.get(t, [])
        print("  %s-%d: preempted %.3f/IO, waited %.1f µs/IO (%s)" % (
            comm.get(t, "?"), t, len(p) / ios, sum(p) * 1e3 / ios, bins(p) or "none"))
        top = sorted(during[t].items(), key=lambda x: -x[1])[:6]
        if top:
            print("    ran meanwhile (ms total): " + ", ".join("%s %.1f" % kv for kv in top))
        s = sleeps.get(t, [])
        if s:
            s.sort()
            print("    sleeps %.3f/IO; wake-up to running: p50 %.0f µs, p99 %.0f µs, max %.1f ms (%s)" % (
                len(s) / ios, s[len(s) // 2] * 1e3, s[min(len(s) - 1, int(len(s) * 0.99))] * 1e3, s[-1], bins(s)))
        irqs = sorted(irq_in[t].items(), key=lambda x: -x[1])[:6]
        if irqs:
            print("    interrupts while it ran (µs/IO): " + ", ".join("%s %.1f" % (n, v * 1e3 / ios) for n, v in irqs))
    if irq_long:
        print("  interrupts of 1 ms or more: " + ", ".join("%s %d" % kv for kv in sorted(irq_long.items(), key=lambda x: -x[1])))


if __name__ == "__main__":
    main()
