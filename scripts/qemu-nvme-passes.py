#!/usr/bin/env python3
"""How QEMU's emulated NVMe controller takes commands and posts completions, from its own trace
events, in windows the guest job chooses (issue 17: does a driver feed the device in lockstep
batches, the whole queue depth per pass?).

QEMU (10.0, shadow doorbells on) fetches commands in a pass of nvme_process_sq: one
pci_nvme_update_sq_tail at its start, then an update_sq_eventidx and an update_sq_tail per command;
it posts completions in a pass of nvme_post_cqes: an update_cq_eventidx per entry, then one
pci_nvme_irq_msix (or irq_masked, a polled CQ) for the pass. Tracing every event of a whole run
slows the main loop that emulates the device, so the trace is on only in short windows:

  TSNVME_QEMU_ARGS="-monitor unix:/tmp/qmon.sock,server=on,wait=off -trace file=/tmp/tr-idle.log" \\
    scripts/guest.sh -- sh JOB > guest.log &
  scripts/qemu-nvme-passes.py follow guest.log /tmp/qmon.sock OUTDIR   # on the host, beside it
  scripts/qemu-nvme-passes.py summarize OUTDIR

The job prints "TRACE_ON NAME" and, seconds later, "TRACE_OFF NAME" inside a measured window;
`follow` switches the events on and off through the monitor, one log file per window
(OUTDIR/tr-NAME.log), and stops at a line "STOPWATCH". `summarize` prints per window, for IO queue
1: IOs completed (pci_nvme_rw_cb), commands per SQ pass and completions per CQ pass (mean, p50,
histogram), and MMIO doorbell writes per IO. Asserts nothing.

At queue depth 1 a window also splits each IO's cycle in two, when QEMU stamped its trace lines
(`-msg timestamp=on` in TSNVME_QEMU_ARGS):

  scripts/qemu-nvme-passes.py cycle OUTDIR

the device's part (the driver's MMIO SQ doorbell on its vCPU thread to the entry's
pci_nvme_update_cq_eventidx on the main loop: fetch, the AIO, the post) and the driver's part (that
post to the next MMIO SQ doorbell: seeing the entry, its callback, the next command, the doorbell,
and the wait for the BQL the main loop holds while it finishes posting). Needs shadow doorbells
(the eventidx event) and a driver that rings the SQ doorbell over MMIO for each command (QD1 does).
"""
import collections, glob, os, re, socket, statistics, sys, time

EVENTS = ["pci_nvme_update_sq_tail", "pci_nvme_update_sq_eventidx", "pci_nvme_mmio_doorbell_sq",
          "pci_nvme_update_cq_eventidx", "pci_nvme_irq_msix", "pci_nvme_irq_masked",
          "pci_nvme_mmio_doorbell_cq", "pci_nvme_rw_cb"]


def hmp(sock, cmds):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    for c in cmds:
        s.sendall((c + "\n").encode())
    time.sleep(0.05)
    s.close()


def follow(log, sock, outdir):
    while not os.path.exists(log):
        time.sleep(0.2)
    f = open(log)
    while True:
        line = f.readline()
        if not line:
            time.sleep(0.05)
            continue
        if line.startswith("TRACE_ON "):
            name = line.split()[1]
            hmp(sock, ["logfile %s/tr-%s.log" % (outdir, name)] + ["trace-event %s on" % e for e in EVENTS])
        elif line.startswith("TRACE_OFF "):
            hmp(sock, ["trace-event %s off" % e for e in EVENTS] + ["logfile %s/tr-idle.log" % outdir])
        elif line.startswith("STOPWATCH"):
            return


def windows(outdir):
    """Each traced window's name and log file (follow's tr-NAME.log; not the idle log between them)."""
    for path in sorted(glob.glob(os.path.join(outdir, "tr-*.log"))):
        if not path.endswith("tr-idle.log"):
            yield os.path.basename(path)[3:-4], path


def summarize(outdir):
    for name, path in windows(outdir):
        sq, cq = [], []  # commands per SQ pass, completions per CQ pass
        prev, cqe, mmio_sq, mmio_cq, ios = None, 0, 0, 0, 0
        for line in open(path):
            p = line.split()
            if not p:
                continue
            ev = p[0]
            m = re.search(r"[sc]qid (\d+)", line)
            q = int(m.group(1)) if m else None
            if ev == "pci_nvme_update_sq_tail" and q == 1:
                if prev != "ei":
                    sq.append(0)  # a pass starts: its first tail read follows no command
                prev = "tail"
            elif ev == "pci_nvme_update_sq_eventidx" and q == 1:
                if sq:
                    sq[-1] += 1
                prev = "ei"
            elif ev == "pci_nvme_mmio_doorbell_sq" and q == 1:
                mmio_sq += 1
            elif ev == "pci_nvme_mmio_doorbell_cq" and q == 1:
                mmio_cq += 1
            elif ev == "pci_nvme_update_cq_eventidx" and q == 1:
                cqe += 1
            elif ev in ("pci_nvme_irq_msix", "pci_nvme_irq_masked") and cqe:
                cq.append(cqe)
                cqe = 0
            elif ev == "pci_nvme_rw_cb":
                ios += 1
        full = [x for x in sq if x]
        n = max(1, ios)
        hist = lambda xs: " ".join("%d:%d" % kv for kv in sorted(collections.Counter(xs).items()))
        print("%s: %d IOs; SQ passes %d (+%d empty), commands/pass mean %.1f p50 %s; CQ passes %d, completions/pass mean %.1f p50 %s; "
              "MMIO/IO sq %.3f cq %.3f" % (name, ios, len(full), len(sq) - len(full),
                                           sum(full) / max(1, len(full)), statistics.median(full or [0]), len(cq),
                                           sum(cq) / max(1, len(cq)), statistics.median(cq or [0]), mmio_sq / n, mmio_cq / n))
        print("  commands per SQ pass: " + hist(full))
        print("  completions per CQ pass: " + hist(cq))


STAMP = re.compile(r"^\d+@(\d+)\.(\d+):(\S+)(.*)$")


def cycle(outdir):
    for name, path in windows(outdir):
        rung = posted = None
        device, driver = [], []
        for line in open(path):
            m = STAMP.match(line)
            if not m:
                continue
            t = int(m.group(1)) * 1e6 + int(m.group(2))
            ev, rest = m.group(3), m.group(4) + " "
            if ev == "pci_nvme_mmio_doorbell_sq" and " sqid 1 " in rest:
                if posted is not None:
                    driver.append(t - posted)
                    posted = None
                rung = t
            elif ev == "pci_nvme_update_cq_eventidx" and " cqid 1 " in rest and rung is not None:
                device.append(t - rung)
                rung, posted = None, t
        if not device or not driver:
            print("%s: no QD1 cycles (timestamps missing, or no MMIO doorbell per command)" % name)
            continue
        print("%s: %d IOs" % (name, len(device)))
        for name, xs in (("device (SQ doorbell -> CQE posted)", device), ("driver (CQE posted -> next SQ doorbell)", driver)):
            xs.sort()
            n = len(xs)
            pct = lambda q: xs[min(n - 1, int(q * n))]
            slow = [x for x in xs if x > 50]
            print("  %-40s mean %6.1f  p50 %4.0f  p90 %4.0f  p99 %5.0f us; over 50 us: %.1f%% of IOs, %.0f%% of the time"
                  % (name, sum(xs) / n, pct(.5), pct(.9), pct(.99), 100 * len(slow) / n, 100 * sum(slow) / max(1, sum(xs))))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "follow":
        follow(*sys.argv[2:])
    elif len(sys.argv) == 3 and sys.argv[1] == "summarize":
        summarize(sys.argv[2])
    elif len(sys.argv) == 3 and sys.argv[1] == "cycle":
        cycle(sys.argv[2])
    else:
        sys.exit(__doc__)
