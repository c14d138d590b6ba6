#!/bin/sh
# Bind the NVMe controller to vfio-pci, to the kernel nvme driver, or to nothing. Meant for the
# tsnvme test guest (scripts/guest.sh runs it for --bind), works on any Linux box as root.
#
#   scripts/guest-bind.sh vfio|nvme|none [PCI_ADDR]
#
# PCI_ADDR defaults to $TSNVME_PCI, else the first PCI device of class 0x010802 (NVMe).
# Idempotent. Waits (up to ~20 s) until /dev/vfio/<group>, or /dev/nvmeX and every namespace's
# /dev/nvmeXnY, exist. Prints one line on stderr saying what it did; exits non-zero on failure.
set -u
LIMIT=20

die() { echo "guest-bind: error: $*" >&2; exit 1; }
usage() { echo "usage: $0 vfio|nvme|none [PCI_ADDR]" >&2; exit 2; }

case ${1:-} in
  vfio) want=vfio-pci ;;
  nvme) want=nvme ;;
  none) want= ;;
  *) usage ;;
esac
addr=${2:-${TSNVME_PCI:-}}
if [ -z "$addr" ]; then
  for d in /sys/bus/pci/devices/*; do
    read -r class <"$d/class" && [ "$class" = 0x010802 ] && { addr=${d##*/}; break; }
  done
  [ -n "$addr" ] || die "no NVMe controller (PCI class 0x010802) found"
fi
dev=/sys/bus/pci/devices/$addr
[ -d "$dev" ] || die "no PCI device $addr"
[ -w "$dev/driver_override" ] || die "$dev/driver_override is not writable (need root)"

deadline=$(($(date +%s) + LIMIT))
expired() { [ "$(date +%s)" -ge "$deadline" ]; }
current() { if [ -e "$dev/driver" ]; then l=$(readlink "$dev/driver") && echo "${l##*/}"; fi; }

if [ -n "$want" ] && [ ! -d "/sys/bus/pci/drivers/$want" ]; then
  modprobe "$want" 2>/dev/null
  [ -d "/sys/bus/pci/drivers/$want" ] || die "driver $want is not loaded and modprobe $want failed"
fi

cur=$(current)
if [ "$cur" != "$want" ]; then
  if [ -n "$cur" ]; then
    # vfio-pci's unbind blocks while a process still holds the device: don't hang forever.
    (echo "$addr" >"$dev/driver/unbind") 2>/dev/null &
    pid=$!
    while kill -0 "$pid" 2>/dev/null; do
      expired && die "unbinding $addr from $cur did not finish in ${LIMIT}s (is a process still using the device?)"
      sleep 0.1
    done
    wait "$pid" || die "unbinding $addr from $cur failed"
  fi
  # driver_override makes only the wanted driver match this device, now and on later probes.
  # An empty write clears it, so "none" leaves the device free for any driver.
  echo "$want" >"$dev/driver_override" || die "cannot write $dev/driver_override"
  if [ -n "$want" ]; then
    echo "$addr" >/sys/bus/pci/drivers_probe 2>/dev/null
    [ "$(current)" = "$want" ] || die "$want did not bind $addr (see dmesg | tail)"
  fi
fi

# Wait for the device nodes the chosen driver creates.
case $want in
  vfio-pci)
    group=$(basename "$(readlink "$dev/iommu_group" 2>/dev/null)")
    [ -n "$group" ] || die "$addr has no IOMMU group (is the IOMMU on? intel_iommu=on)"
    until [ -c "/dev/vfio/$group" ] && [ -c /dev/vfio/vfio ]; do
      expired && die "/dev/vfio/$group did not appear within ${LIMIT}s"
      sleep 0.1
    done
    echo "guest-bind: $addr -> vfio-pci (/dev/vfio/$group)" >&2
    ;;
  nvme)
    # The driver resets the controller and scans namespaces asynchronously after probe.
    while :; do
      ctrl=
      for c in "$dev"/nvme/nvme*; do [ -e "$c" ] && ctrl=${c##*/}; done
      if [ -n "$ctrl" ] && [ -c "/dev/$ctrl" ] && [ "$(cat "$dev/nvme/$ctrl/state" 2>/dev/null)" = live ]; then
        have=0 nodes=
        for n in "$dev/nvme/$ctrl"/nvme*n*; do
          n=${n##*/}
          # nvmeXcYnZ is a hidden multipath path (no /dev node); its disk is the head nvmeXnZ of
          # subsystem X. QEMU 10's controller reports CMIC 0x2 and NMIC 1, so Linux (6.1 and 6.12)
          # makes heads for its namespaces; QEMU 7.2's did not.
          case $n in *c*n*) n=${n%%c*}n${n##*n} ;; esac
          [ -b "/dev/$n" ] || continue
          have=$((have + 1)) nodes="$nodes /dev/$n"
        done
        # The controller's active namespace list says how many to expect.
        if command -v nvme >/dev/null 2>&1; then
          expect=$(nvme list-ns "/dev/$ctrl" 2>/dev/null | grep -c '^\[')
        else
          expect=1
        fi
        [ "$expect" -ge 1 ] && [ "$have" -ge "$expect" ] && break
      fi
      expired && die "nvme did not bring up $addr within ${LIMIT}s (ctrl=${ctrl:-none}, state=$(cat "$dev/nvme/$ctrl/state" 2>/dev/null))"
      sleep 0.1
    done
    echo "guest-bind: $addr -> nvme (/dev/$ctrl:$nodes)" >&2
    ;;
  '')
    [ -z "$(current)" ] || die "$addr is still bound to $(current)"
    echo "guest-bind: $addr -> no driver" >&2
    ;;
esac
exit 0
