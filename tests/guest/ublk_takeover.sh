#!/bin/sh
# Guest-side probe of the ublk USER_RECOVERY takeover, one runtime per call:
# serve the namespace, write to it with O_DIRECT, kill -9 the server, then
# report what the kernel and the processes do at each step (old server's
# threads and their kernel stacks, device state, the new server's log, the
# writer, dmesg). Prints; asserts nothing. Exit 0 iff the writer finished.
#   scripts/guest.sh --timeout 600 -- sh tests/guest/ublk_takeover.sh deno
set -u
RT=${1:-deno}
case $RT in
  deno) RUN="deno run -A" ;;
  bun) RUN="bun" ;;
  *) echo "usage: $0 deno|bun" >&2; exit 2 ;;
esac
export PATH=$PWD/node_modules/.bin:$PATH
CLI="$RUN lib/cli/ublk.ts"
R=/tmp/ublk-takeover-ready
OUT=${TSNVME_OUT:-/tmp}
ts() { awk '{print $1}' /proc/uptime; }
threads() { # pid: each thread's state and, for blocked ones, its kernel stack
  for t in /proc/$1/task/*; do
    [ -r "$t/stat" ] || continue
    st=$(sed 's/.*) //' "$t/stat" | cut -d' ' -f1)
    echo "  tid ${t##*/} $(cat "$t/comm" 2>/dev/null) state $st"
    case $st in D|S) [ -r "$t/stack" ] && sed 's/^/      /' "$t/stack" | head -12 ;; esac
  done
}
wait_ready() { # seconds
  i=0
  while [ ! -s $R ] && [ $i -lt $(($1 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  [ -s $R ]
}

rm -f $R
$CLI add "$TSNVME_PCI:1" --queues 2 --depth 64 --ready-file $R >$OUT/ublk-srv1.log 2>&1 &
P1=$!
wait_ready 120 || { echo "first server not ready"; cat $OUT/ublk-srv1.log; exit 1; }
read -r ID DEV _ <$R
echo "[$(ts)] server $P1 serves $DEV (id $ID)"

(
  i=0
  while [ $i -lt 300 ]; do
    dd if=/dev/urandom of="$DEV" bs=4k count=16 seek=$(((i * 16) % 8192)) oflag=direct status=none || echo "dd $i failed"
    i=$((i + 1))
  done
  echo "writer done"
) >$OUT/ublk-writer.log 2>&1 &
W=$!
sleep 3
echo "[$(ts)] kill -9 $P1"
kill -9 $P1

i=0
while [ $i -lt 30 ]; do
  st=$(sed 's/.*) //' /proc/$P1/stat 2>/dev/null | cut -d' ' -f1)
  echo "[$(ts)] old server state ${st:-gone}; threads $(ls /proc/$P1/task 2>/dev/null | wc -l)"
  case ${st:-gone} in Z|gone) break ;; esac
  [ $i = 5 ] && threads $P1
  sleep 1
  i=$((i + 1))
done
[ $i -ge 30 ] && { echo "old server did not exit in 30 s:"; threads $P1; }
[ $i -lt 30 ] && wait $P1 2>/dev/null
echo "[$(ts)] old server reaped; device: $($CLI list 2>&1 | tr '\n' '|')"
echo "[$(ts)] writer: $(ls /proc/$W >/dev/null 2>&1 && echo running || echo exited)"

rm -f $R
$CLI add "$TSNVME_PCI:1" --recover "$ID" --ready-file $R >$OUT/ublk-srv2.log 2>&1 &
P2=$!
if wait_ready 100; then
  echo "[$(ts)] new server $P2 took over"
else
  echo "[$(ts)] new server not ready in 100 s; its threads:"
  threads $P2
fi
echo "--- new server log"; cat $OUT/ublk-srv2.log
echo "[$(ts)] device: $($CLI list 2>&1 | tr '\n' '|')"

i=0
while kill -0 $W 2>/dev/null && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
if kill -0 $W 2>/dev/null; then
  echo "[$(ts)] writer still blocked after 60 s:"
  threads $W
  for c in $(cat /proc/$W/task/*/children 2>/dev/null); do threads $c; done
  ok=1
else
  echo "[$(ts)] writer exited"
  ok=0
fi
echo "--- writer log"; tail -5 $OUT/ublk-writer.log
echo "--- dmesg"; dmesg | grep -v -i "audit" | tail -40
echo "--- new server log"; cat $OUT/ublk-srv2.log
kill -TERM $P2 2>/dev/null
i=0
while kill -0 $P2 2>/dev/null && [ $i -lt 30 ]; do sleep 1; i=$((i + 1)); done
kill -9 $P2 $W 2>/dev/null
$CLI del --all >/dev/null 2>&1
echo "[$(ts)] takeover probe ($RT): $([ $ok = 0 ] && echo writer finished || echo writer blocked)"
exit $ok
