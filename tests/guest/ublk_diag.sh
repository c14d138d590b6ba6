#!/bin/sh
# Guest debugging aid: after $1 s, every 40 s print every process (state, wait channel),
# the kernel stacks of those in D state, and the kernel log's tail.
sleep "$1"
while true; do
  echo "===== diag at $(awk '{print $1}' /proc/uptime)"
  ps -eLo pid,tid,ppid,stat,wchan:28,comm,args | grep -v "\[k\|ps -eLo\|grep" | cut -c1-200
  for t in /proc/[0-9]*/task/*; do
    [ "$(sed 's/.*) //' "$t/stat" 2>/dev/null | cut -d' ' -f1)" = D ] && { echo "D: $t $(cat "$t/comm")"; sed 's/^/    /' "$t/stack"; }
  done
  dmesg | tail -8
  sleep 40
done
