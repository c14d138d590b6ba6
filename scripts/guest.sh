#!/usr/bin/env bash
# Run a command inside a QEMU guest that has an emulated NVMe controller behind an emulated
# IOMMU (intel-iommu), with the controller bound to vfio-pci, the kernel nvme driver, or nothing.
# The guest's root is the host's / (read-only, over 9p), so the checkout, deno and bun are at the
# same paths as on the host. See scripts/GUEST.md.
#
#   scripts/guest.sh [--kernel 6.12|6.1] [--bind vfio|nvme|none] [--mem MB] [--smp N] [--timeout SEC]
#                    [--ctrls N] [--ns SIZE_MB:BLOCK_SIZE[,...]] [--feature NAME[,...]] [--fresh-disk]
#                    [--out DIR] [-v] [--] CMD [ARGS...]
#
# Exit status: the command's, or 125 when the harness itself fails (setup, boot, timeout).
set -euo pipefail

PROG=guest.sh
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)

die() { echo "$PROG: error: $*" >&2; exit 125; }
say() { echo "$PROG: $*" >&2; }
vsay() { if ((VERBOSE)); then say "$@"; fi; }

# On any exit: stop QEMU and the output relays if still running. An unplanned exit (a failing
# command under set -e) is reported as a harness failure, 125, never as the command's status.
QPID='' OPID='' EPID='' FINISHED=0
on_exit() {
  local rc=$? p
  for p in $QPID $OPID $EPID; do kill "$p" 2>/dev/null || true; done
  if ((!FINISHED && rc != 0 && rc != 125 && rc != 130 && rc != 143)); then
    echo "$PROG: error: unexpected failure (status $rc)" >&2
    exit 125
  fi
}
trap on_exit EXIT
trap 'say "interrupted"; exit 130' INT
trap 'say "terminated"; exit 143' TERM

usage() {
  cat <<'EOF'
usage: scripts/guest.sh [options] [--] CMD [ARGS...]
  --kernel 6.12|6.1       guest kernel series, Debian's own packages (default 6.12, or
                          $TSNVME_GUEST_KERNEL); each is downloaded once and cached on its own
  --bind vfio|nvme|none   driver for the NVMe controller before CMD runs (default vfio)
  --mem MB                guest memory (default 3072)
  --smp N                 guest vCPUs (default 2)
  --timeout SEC           limit for boot + CMD; on expiry exit 125 (default 1800)
  --ns SIZE_MB:BS[,...]   namespaces: size in MiB and logical block size (default 64:512,16:4096)
  --ctrls N               NVMe controllers (default 2): the first has the --ns namespaces and is
                          $TSNVME_PCI; each further one has one 16 MiB namespace, is bound to
                          vfio-pci and listed in $TSNVME_PCIS (all of them, space separated)
  --feature NAME[,...]    extra controllers that exercise one feature each (see feature_devices);
                          the guest sees the list as \$TSNVME_FEATURES (default: none)
  --fresh-disk            recreate the namespace images (zero-filled) before booting
  --out DIR               host dir the guest sees writable at $TSNVME_OUT (default $TSNVME_CACHE/out)
  -v, --verbose           print setup and boot progress to stderr
Exit status: CMD's, or 125 if the harness fails. Cache: $TSNVME_CACHE (default <repo>/.cache/guest).
TSNVME_QEMU_TRACE=FILE:EVENT[,EVENT...] writes QEMU's trace events (globs, e.g. pci_nvme_*) to FILE.
TSNVME_QEMU_CPU=MODEL[,FEATURES] the vCPU model (default max,pku=off; "max" gives the guest PKU).
TSNVME_QEMU_ARGS="ARG ..." more QEMU arguments (split on blanks), appended last.
QEMU's threads carry names (-name debug-threads=on: "CPU 0/TCG", "worker", the main loop keeps
"qemu-system-x86"), so their host CPU can be read from /proc/PID/task/*/{comm,schedstat}.
EOF
}

# ---------------------------------------------------------------- options
BIND=vfio MEM=3072 SMP=2 TIMEOUT=1800 NS=64:512,16:4096 FRESH=0 OUT='' VERBOSE=0 CTRLS=2 FEATURES=''
KSERIES=${TSNVME_GUEST_KERNEL:-6.12}
while (($#)); do
  case $1 in
    --bind|--mem|--smp|--timeout|--ns|--out|--ctrls|--kernel|--feature)
      (($# >= 2)) || die "$1 needs a value"
      opt=${1#--}; val=$2; shift 2 ;;
    --bind=*|--mem=*|--smp=*|--timeout=*|--ns=*|--out=*|--ctrls=*|--kernel=*|--feature=*)
      opt=${1%%=*}; opt=${opt#--}; val=${1#*=}; shift ;;
    --fresh-disk) FRESH=1; shift; continue ;;
    -v|--verbose) VERBOSE=1; shift; continue ;;
    -h|--help) usage; exit 0 ;;
    --) shift; break ;;
    -*) usage >&2; die "unknown option $1" ;;
    *) break ;;
  esac
  case $opt in
    bind) BIND=$val ;; mem) MEM=$val ;; smp) SMP=$val ;; timeout) TIMEOUT=$val ;;
    ns) NS=$val ;; out) OUT=$val ;; ctrls) CTRLS=$val ;; kernel) KSERIES=$val ;;
    feature) FEATURES=${FEATURES:+$FEATURES,}$val ;;
  esac
done
(($#)) || { usage >&2; die "no command given"; }
case $BIND in vfio|nvme|none) ;; *) die "--bind must be vfio, nvme or none (got '$BIND')" ;; esac
case $KSERIES in 6.12|6.1) ;; *) die "--kernel (or TSNVME_GUEST_KERNEL) must be 6.12 or 6.1 (got '$KSERIES')" ;; esac
((CTRLS >= 1 && CTRLS <= 8)) 2>/dev/null || die "--ctrls must be 1..8"
for v in MEM SMP TIMEOUT; do [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--${v,,} must be a positive integer"; done
NS_SIZES=() NS_BS=()
IFS=, read -ra ns_list <<<"$NS"
for spec in "${ns_list[@]}"; do
  [[ $spec =~ ^([1-9][0-9]*):([1-9][0-9]*)$ ]] || die "bad --ns entry '$spec' (want SIZE_MB:BLOCK_SIZE)"
  bs=${BASH_REMATCH[2]}
  ((bs >= 512 && bs <= 65536 && (bs & (bs - 1)) == 0)) || die "block size $bs must be a power of two in 512..65536"
  NS_SIZES+=("${BASH_REMATCH[1]}") NS_BS+=("$bs")
done
((${#NS_SIZES[@]} >= 1 && ${#NS_SIZES[@]} <= 256)) || die "--ns needs 1..256 namespaces"

[[ ${TSNVME_GUEST:-} != 1 ]] || die "already inside the test guest (TSNVME_GUEST=1); run CMD directly"

CACHE=${TSNVME_CACHE:-$REPO/.cache/guest}
mkdir -p "$CACHE" && CACHE=$(cd "$CACHE" && pwd -P) || die "cannot create cache dir $CACHE"
OUT=${OUT:-$CACHE/out}
mkdir -p "$OUT" && OUT=$(cd "$OUT" && pwd -P) || die "cannot create out dir $OUT"
LOGS=$CACHE/logs
mkdir -p "$LOGS"

# One guest per cache at a time: runs share the kernel cache and the disk images (QEMU locks them).
exec 9>"$CACHE/lock"
if ! flock -n 9; then
  say "another guest.sh run holds $CACHE/lock; waiting"
  flock 9
fi

# ---------------------------------------------------------------- host packages (first run)
# scripts/install-deps.sh installs them (QEMU from bookworm-backports on Debian 12); as root, run it
# here when something is missing.
have_tools() {
  local t
  for t in qemu-system-x86_64 depmod modprobe cpio gzip nvme fio timeout flock mkfifo mkfs.xfs; do
    command -v "$t" >/dev/null 2>&1 || return 1
  done
  # The initramfs needs a static busybox (the "busybox" package is dynamically linked).
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'install ok installed'
}
APT_UPDATED=0
apt_update_once() {
  ((APT_UPDATED)) && return 0
  say "apt-get update"
  apt-get update >>"$LOGS/setup.log" 2>&1 || die "apt-get update failed, see $LOGS/setup.log"
  APT_UPDATED=1
}
if ! have_tools; then
  ((EUID == 0)) || die "missing tools; as root run: scripts/install-deps.sh"
  say "installing the Debian packages (scripts/install-deps.sh)"
  "$REPO/scripts/install-deps.sh" >>"$LOGS/setup.log" 2>&1 || die "scripts/install-deps.sh failed, see $LOGS/setup.log"
  APT_UPDATED=1
  have_tools || die "tools still missing after scripts/install-deps.sh"
fi
# "QEMU emulator version 10.0.2 (Debian ...)": the guest sees it as $TSNVME_QEMU_VERSION.
QEMU_VERSION=$(qemu-system-x86_64 --version | awk 'NR == 1 {print $4}')
[[ $QEMU_VERSION =~ ^[0-9]+\.[0-9]+ ]] || die "cannot read the QEMU version (qemu-system-x86_64 --version)"
((${QEMU_VERSION%%.*} >= 10)) || say "warning: QEMU $QEMU_VERSION; the guest tier expects QEMU 10 (scripts/install-deps.sh installs it)"
BUSYBOX=$(command -v busybox 2>/dev/null || echo /bin/busybox)

# ---------------------------------------------------------------- guest kernel (first run)
# The kernel is Debian's own, unpacked, not installed; one cache dir per series. 6.12 is the
# bookworm linux-6.12 package (bookworm-security), else bookworm-backports' kernel; 6.1 is
# bookworm's default kernel (what linux-image-amd64 depends on). Once cached it is reused as is,
# so runs work offline; delete $CACHE/kernel-<series> to refresh it.
KDIR=$CACHE/kernel-$KSERIES
# A cache from before the series switch: its one kernel was 6.1.
if [[ $KSERIES == 6.1 && ! -e $KDIR && -f $CACHE/kernel/ready && $(<"$CACHE/kernel/version") == 6.1.* ]]; then
  mv "$CACHE/kernel" "$KDIR"
fi
kernel_pkg() { # the versioned linux-image package of series $KSERIES, from the first meta-package apt knows
  local meta dep metas
  if [[ $KSERIES == 6.12 ]]; then
    metas=(linux-image-6.12-amd64 linux-image-amd64/bookworm-backports linux-image-amd64)
  else
    metas=(linux-image-amd64/bookworm-security linux-image-amd64/bookworm linux-image-amd64)
  fi
  for meta in "${metas[@]}"; do
    dep=$(apt-cache depends "$meta" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}' || true)
    [[ $dep == linux-image-"$KSERIES".* || $dep == linux-image-"$KSERIES"-* ]] && { echo "$dep"; return 0; }
  done
  return 1
}
if [[ ! -f $KDIR/ready ]]; then
  kpkg=$(kernel_pkg || true)
  if [[ -z $kpkg && $EUID -eq 0 ]]; then
    apt_update_once
    kpkg=$(kernel_pkg || true)
  fi
  [[ -n $kpkg ]] || die "cannot find a Linux $KSERIES package (apt-cache depends linux-image-amd64); run scripts/install-deps.sh, then apt-get update"
  say "downloading guest kernel $kpkg (first run with --kernel $KSERIES only)"
  rm -rf "$KDIR" "$KDIR.tmp"
  mkdir -p "$KDIR.tmp/deb"
  # apt-get download as root warns that _apt cannot write here; harmless.
  if ! (cd "$KDIR.tmp/deb" && apt-get download "$kpkg") >>"$LOGS/setup.log" 2>&1; then
    # Stale package lists name a kernel the mirror no longer has: refresh and ask again.
    [[ $EUID -eq 0 ]] || die "apt-get download $kpkg failed, see $LOGS/setup.log"
    apt_update_once
    kpkg=$(kernel_pkg || true)
    (cd "$KDIR.tmp/deb" && apt-get download "$kpkg") >>"$LOGS/setup.log" 2>&1 ||
      die "apt-get download $kpkg failed, see $LOGS/setup.log"
  fi
  kver=${kpkg#linux-image-}
  dpkg -x "$KDIR.tmp"/deb/*.deb "$KDIR.tmp/root" || die "dpkg -x failed"
  rm -rf "$KDIR.tmp/deb"
  # dpkg -x runs no post-install step: build modules.dep ourselves.
  depmod -b "$KDIR.tmp/root" "$kver" || die "depmod failed"
  [[ -f $KDIR.tmp/root/boot/vmlinuz-$kver ]] || die "no vmlinuz-$kver in $kpkg"
  echo "$kver" >"$KDIR.tmp/version"
  touch "$KDIR.tmp/ready"
  mv "$KDIR.tmp" "$KDIR"
fi
KVER=$(<"$KDIR/version")
KROOT=$KDIR/root
VMLINUZ=$KROOT/boot/vmlinuz-$KVER

# ---------------------------------------------------------------- initramfs
# Modules, in load order (modprobe --show-depends gives dependencies, softdeps included).
# Phase 1 brings up 9p and virtio-serial; phase 2 loads the NVMe-facing drivers with PCI
# autoprobe off, so neither nvme nor vfio-pci grabs the controller before guest-bind.sh does.
MODS_PHASE1=(virtio_pci virtio_console 9pnet_virtio 9p)
# crc64_rocksoft_generic: crc64-rocksoft (an nvme-core dependency) asks the crypto API for it,
# which would need request_module and so a modprobe in the initramfs; load it up front instead.
# (6.12 builds it, virtio and others in: modprobe says "builtin", and mod_order skips those.)
MODS_PHASE2=(vfio-pci vfio_iommu_type1 crc64_rocksoft_generic nvme)
# ublk_drv where the kernel builds it as a module (6.12; 6.1 has none): the ublk tests need /dev/ublk-control.
compgen -G "$KROOT/lib/modules/$KVER/kernel/drivers/block/ublk_drv.ko*" >/dev/null && MODS_PHASE2+=(ublk_drv)

# PID 1 of the guest. It prints only to the serial console (the host's boot log); the command's
# output travels over virtio-serial ports. Any failure powers off, so QEMU always exits.
read -r -d '' INIT_SH <<'EOF' || true
#!/bin/sh
export PATH=/bin
fail() { echo "tsnvme-init: FATAL: $*"; sync; poweroff -f; sleep 5; }
mount -t proc proc /proc && mount -t sysfs sysfs /sys && mount -t devtmpfs devtmpfs /dev || fail "base mounts"
echo "tsnvme-init: start $(cut -d' ' -f1 /proc/uptime)s"
load() { while read -r m; do insmod "/lib/modules/$m" || fail "insmod $m"; done <"$1"; }
load /modules.phase1
echo 0 >/sys/bus/pci/drivers_autoprobe
load /modules.phase2
echo 1 >/sys/bus/pci/drivers_autoprobe

R=/newroot
mkdir -p $R
# msize: the small default makes loading deno/bun (100+ MB each) slow.
# cache=loose: starting deno+bun took ~35 s with cache=none, ~5 s with it. The price: a host file
# changed during the run may look stale to this guest (each boot starts with an empty cache).
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R || fail "mount host /"
mount -t proc proc $R/proc && mount -t sysfs sysfs $R/sys && mount -t devtmpfs devtmpfs $R/dev || fail "chroot mounts"
# devtmpfs lacks the links udev would make; scripts use /dev/stderr and friends.
ln -sfn /proc/self/fd /dev/fd && ln -sf fd/0 /dev/stdin && ln -sf fd/1 /dev/stdout && ln -sf fd/2 /dev/stderr
mkdir -p $R/dev/shm $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm && mount -t devpts -o newinstance,ptmxmode=0666 devpts $R/dev/pts ||
  fail "dev mounts"
[ -d $R/run ] && { mount -t tmpfs -o mode=755 tmpfs $R/run || fail "tmpfs on /run"; }
J=$R/run/tsnvme/job
mkdir -p $J
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none tsnvmejob $J || fail "mount job dir"
. $J/job.sh || fail "cannot read job.sh"
# Writable tmpfs over /tmp and /var/tmp. A checkout living there (a CI clone in /tmp, say) is
# held by a bind mount first and put back at the same path on top of the tmpfs.
for d in /tmp /var/tmp; do
  [ -d "$R$d" ] || continue
  keep=0
  case "$GUEST_REPO/" in "$d"/*) keep=1 ;; esac
  if [ $keep = 1 ]; then mkdir -p /stage && mount -o bind "$R$GUEST_REPO" /stage || fail "hold $GUEST_REPO"; fi
  mount -t tmpfs -o mode=1777 tmpfs "$R$d" || fail "tmpfs on $d"
  if [ $keep = 1 ]; then
    mkdir -p "$R$GUEST_REPO" && mount -o bind /stage "$R$GUEST_REPO" && umount /stage || fail "repo under $d"
  fi
done
[ -n "$GUEST_OUT" ] || fail "no GUEST_OUT in job.sh"
# Same absolute path as on the host; mkdir only matters when it lies in a guest tmpfs.
mkdir -p "$R$GUEST_OUT" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none tsnvmeout "$R$GUEST_OUT" || fail "mount out dir"
cp /run.sh $R/run/tsnvme/run.sh

# The command's stdout/stderr ports, found by name (no udev here to make /dev/virtio-ports).
out= err=
for i in 1 2 3 4 5 6 7 8 9 10; do
  for p in /sys/class/virtio-ports/*; do
    [ -e "$p/name" ] || continue
    case $(cat "$p/name") in
      tsnvme.stdout) out=/dev/${p##*/} ;;
      tsnvme.stderr) err=/dev/${p##*/} ;;
    esac
  done
  [ -c "$out" ] && [ -c "$err" ] && break
  sleep 0.5
done
[ -c "$out" ] && [ -c "$err" ] || fail "virtio-serial ports not found"

echo "tsnvme-init: chroot $(cut -d' ' -f1 /proc/uptime)s"
chroot $R /bin/sh /run/tsnvme/run.sh "$out" "$err"
echo "tsnvme-init: done rc=$? $(cut -d' ' -f1 /proc/uptime)s"
sync
poweroff -f
EOF

# Runs inside the chroot (host's /bin/sh): environment, initial bind, the command, its status.
read -r -d '' RUN_SH <<'EOF' || true
#!/bin/sh
out_dev=$1 err_dev=$2
J=/run/tsnvme/job
echo "$(cut -d' ' -f1 /proc/uptime)" >$J/started
# Relay stdout/stderr through pipes: a virtio-serial port can be open only once at a time, so
# handing it to the command directly would break `echo >/dev/stderr` and the like.
mkfifo /run/tsnvme/out /run/tsnvme/err
cat /run/tsnvme/out >"$out_dev" & relay_out=$!
cat /run/tsnvme/err >"$err_dev" & relay_err=$!
exec </dev/null >/run/tsnvme/out 2>/run/tsnvme/err

. $J/job.sh   # exports TSNVME_*/CI from the host, sets GUEST_* and the command (set --)
export HOME=/tmp/home TMPDIR=/tmp DENO_DIR=/tmp/deno-dir XDG_CACHE_HOME=/tmp/cache \
  BUN_INSTALL_CACHE_DIR=/tmp/bun-cache LANG=C.UTF-8
mkdir -p "$HOME" "$DENO_DIR" "$XDG_CACHE_HOME" "$BUN_INSTALL_CACHE_DIR"
export PATH="$GUEST_REPO/node_modules/.bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
export TSNVME_GUEST=1 TSNVME_OUT="$GUEST_OUT" TSNVME_PCI= TSNVME_PCIS=
for d in /sys/bus/pci/devices/*; do
  read -r class <"$d/class" && [ "$class" = 0x010802 ] && TSNVME_PCIS="${TSNVME_PCIS:+$TSNVME_PCIS }${d##*/}"
done
TSNVME_PCI=${TSNVME_PCIS%% *}
ulimit -l unlimited

rc=125
if ! cd "$GUEST_REPO"; then
  echo "guest.sh: cannot cd to $GUEST_REPO in the guest" >&2
elif [ -z "$TSNVME_PCI" ]; then
  echo "guest.sh: no NVMe controller (PCI class 0x010802) in the guest" >&2
elif ! msg=$("$GUEST_REPO/scripts/guest-bind.sh" "$GUEST_BIND" "$TSNVME_PCI" 2>&1); then
  printf 'guest.sh: initial bind (%s) failed:\n%s\n' "$GUEST_BIND" "$msg" >&2
else
  # Further controllers stay with vfio-pci for tests that drive several at once.
  for a in ${TSNVME_PCIS#"$TSNVME_PCI"}; do
    "$GUEST_REPO/scripts/guest-bind.sh" vfio "$a" >/dev/null 2>&1 || echo "guest.sh: cannot bind $a to vfio-pci" >&2
  done
  echo "$(cut -d' ' -f1 /proc/uptime)" >$J/command
  "$@"
  rc=$?
fi
echo "$rc" >$J/status
# Let the relays drain; give up after ~5 s if a leftover background process keeps a pipe open.
exec >/dev/null 2>&1
i=0
while [ $i -lt 50 ] && { kill -0 $relay_out || kill -0 $relay_err; } 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
exit "$rc"
EOF

INITRD=$CACHE/initramfs-$KSERIES.img
mods_hash=$(printf '%s\n' "${MODS_PHASE1[@]}" / "${MODS_PHASE2[@]}")
want_hash=$( { printf '%s\n' "$KVER" "$mods_hash" "$INIT_SH" "$RUN_SH"; sha256sum <"$BUSYBOX"; } | sha256sum | cut -d' ' -f1)
if [[ ! -f $INITRD || "$(cat "$INITRD.hash" 2>/dev/null)" != "$want_hash" ]]; then
  vsay "building initramfs"
  D=$CACHE/initramfs.d
  rm -rf "$D"
  mkdir -p "$D"/{bin,dev,proc,sys,newroot,lib/modules}
  cp "$BUSYBOX" "$D/bin/busybox"
  for a in $("$BUSYBOX" --list); do [[ $a == busybox ]] || ln -s busybox "$D/bin/$a"; done
  mod_order() { # the .ko paths needed by the named modules, dependencies first, no repeats
    local m
    for m; do
      modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" || die "module $m not found for $KVER"
    done | awk '$1 == "insmod" && !seen[$2]++ {print $2}'
  }
  phase1=$(mod_order "${MODS_PHASE1[@]}")
  phase2=$(mod_order "${MODS_PHASE2[@]}")
  phase2=$(grep -vxF -f <(echo "$phase1") <<<"$phase2" || true)  # already loaded in phase 1
  # 6.12 ships .ko.xz; busybox insmod first hands those to the kernel as is ("Invalid ELF header
  # magic" in the boot log), then unpacks them itself. Unpack them here instead.
  ko() { local b=${1##*/}; echo "${b%.xz}"; }
  for f in $phase1 $phase2; do
    case $f in
      *.xz) xz -dc "$f" >"$D/lib/modules/$(ko "$f")" || die "cannot unpack $f" ;;
      *) cp "$f" "$D/lib/modules/" ;;
    esac
  done
  for f in $phase1; do ko "$f"; done >"$D/modules.phase1"
  for f in $phase2; do ko "$f"; done >"$D/modules.phase2"
  printf '%s\n' "$INIT_SH" >"$D/init"
  printf '%s\n' "$RUN_SH" >"$D/run.sh"
  chmod 755 "$D/init" "$D/run.sh"
  (cd "$D" && find . | LC_ALL=C sort | cpio -o -H newc --quiet | gzip -1) >"$INITRD.tmp" || die "cpio failed"
  mv "$INITRD.tmp" "$INITRD"
  echo "$want_hash" >"$INITRD.hash"
fi

# ---------------------------------------------------------------- namespace images
# Sparse raw files, one per namespace. They persist between runs (so data written in one run is
# there in the next) unless --fresh-disk is given or the --ns layout changed.
DISKS=$CACHE/disks
mkdir -p "$DISKS"
if ((FRESH)) || [[ "$(cat "$DISKS/layout" 2>/dev/null)" != "$NS" ]]; then
  vsay "creating namespace images ($NS)"
  rm -f "$DISKS"/ns*.raw "$DISKS/layout"
  for i in "${!NS_SIZES[@]}"; do
    truncate -s "${NS_SIZES[i]}M" "$DISKS/ns$((i + 1)).raw"
  done
  echo "$NS" >"$DISKS/layout"
fi

# ---------------------------------------------------------------- job description
# The guest reads the job from a writable 9p export of $RUNDIR/job and writes its status there.
RUNDIR=$CACHE/run
rm -rf "$RUNDIR"
mkdir -p "$RUNDIR/job"
shq() { local s=$1; printf "'%s'" "${s//\'/\'\\\'\'}"; }
{
  echo "# generated by scripts/guest.sh; sourced by the guest"
  echo "GUEST_REPO=$(shq "$REPO")"
  echo "GUEST_OUT=$(shq "$OUT")"
  echo "GUEST_BIND=$BIND"
  while IFS= read -r name; do
    [[ $name =~ ^(TSNVME_[A-Za-z0-9_]*|CI)$ ]] && echo "export $name=$(shq "${!name}")"
  done < <(compgen -e)
  # The stack under test, for tests whose expectations depend on versions; KROOT has the modules.
  echo "export TSNVME_GUEST_KERNEL=$KSERIES TSNVME_KVER=$(shq "$KVER") TSNVME_QEMU_VERSION=$(shq "$QEMU_VERSION") TSNVME_FEATURES=$(shq "$FEATURES")"
  echo "export TSNVME_KROOT=$(shq "$KROOT")"
  printf 'set --'
  for a in "$@"; do printf ' %s' "$(shq "$a")"; done
  echo
} >"$RUNDIR/job/job.sh"
[[ $OUT != *$'\n'* && $REPO != *$'\n'* ]] || die "paths with newlines are not supported"

# ---------------------------------------------------------------- QEMU
BOOTLOG=$LOGS/boot.log QEMULOG=$LOGS/qemu.log
: >"$BOOTLOG"
mkfifo "$RUNDIR/stdout.fifo" "$RUNDIR/stderr.fifo"

# Paths inside QEMU's key=value options need commas doubled.
qp() { printf '%s' "${1//,/,,}"; }
qemu=(qemu-system-x86_64 -nodefaults -no-user-config -display none -no-reboot
  # pku=off: TCG flushes a vCPU's soft TLB and jump cache on every PKRU write (real CPUs pay a few
  # dozen cycles). V8 keeps every Deno thread's PKRU off the kernel's default, so each switch to or
  # from a Deno thread writes it: 2 emulated full flushes per QD1 IO, half of Deno's CPU there.
  -machine q35,accel=tcg -cpu "${TSNVME_QEMU_CPU:-max,pku=off}" -smp "$SMP" -m "$MEM"
  -kernel "$VMLINUZ" -initrd "$INITRD"
  # no_timer_check: on a loaded host the IO-APIC timer check at boot can fail under TCG and panic
  # ("timer doesn't work through Interrupt-remapped IO-APIC"); VMs commonly skip it.
  # TSC clocksource: real machines use it; on the default (hpet) a clock read costs 2-4x more under TCG.
  # iomem=relaxed: nvme-cli maps BAR0 through sysfs (show-regs, effects-log without --csi), which
  # the Debian kernel's CONFIG_IO_STRICT_DEVMEM refuses while the nvme driver owns the device.
  -append "console=ttyS0 rdinit=/init panic=-1 intel_iommu=on iommu=pt iomem=relaxed quiet tsc=reliable clocksource=tsc no_timer_check"
  -chardev "file,id=con,path=$(qp "$BOOTLOG")" -serial chardev:con
  # The IOMMU must exist before the PCI devices it translates for.
  -device intel-iommu,intremap=on,caching-mode=on
  -device "nvme,id=nvme0,serial=TSNVME0001,bus=pcie.0,addr=0x4")
for ((c = 2; c <= CTRLS; c++)); do
  [[ -f $DISKS/c$c.raw ]] || truncate -s 16M "$DISKS/c$c.raw"
  qemu+=(-device "nvme,id=nvme$((c - 1)),serial=TSNVME000$c,bus=pcie.0,addr=0x$((3 + c))"
    -drive "file=$(qp "$DISKS/c$c.raw"),if=none,id=c${c}ns1,format=raw,discard=unmap"
    -device "nvme-ns,drive=c${c}ns1,bus=nvme$((c - 1)),nsid=1,logical_block_size=512,physical_block_size=512")
done
# Feature controllers (--feature): each arm adds its own controller(s) at its own PCI slot
# (0x10 and up; 0x4..0xb belong to --ctrls) with its own disk images under $DISKS, so the
# default boot stays small. Tests read $TSNVME_FEATURES and find their controller by serial.
feature_devices() { # name: append that feature's -device/-drive arguments to qemu
  case $1 in
    zns) # one zoned namespace: 16 zones of 1 MiB (4 KiB blocks), at most 4 open and 6 active
      [[ -f $DISKS/zns1.raw ]] || truncate -s 16M "$DISKS/zns1.raw"
      qemu+=(-device "nvme,id=nvmezns,serial=TSNVMEZNS1,bus=pcie.0,addr=0x10,zoned.zasl=5"
        -drive "file=$(qp "$DISKS/zns1.raw"),if=none,id=zns1,format=raw"
        -device "nvme-ns,drive=zns1,bus=nvmezns,nsid=1,logical_block_size=4096,physical_block_size=4096,zoned=true,zoned.zone_size=1M,zoned.max_open=4,zoned.max_active=6") ;;
    fdp) # FDP in endurance group 1: 8 handles of 1 MiB reclaim units; namespace 1 places on handles 0-3
      [[ -f $DISKS/fdp1.raw ]] || truncate -s 16M "$DISKS/fdp1.raw"
      qemu+=(-device "nvme-subsys,id=fdpsubsys,nqn=nqn.2024-01.io.tsnvme:fdp,fdp=on,fdp.runs=1M,fdp.nrg=1,fdp.nruh=8"
        -device "nvme,id=nvmefdp,serial=TSNVMEFDP1,subsys=fdpsubsys,bus=pcie.0,addr=0x11"
        -drive "file=$(qp "$DISKS/fdp1.raw"),if=none,id=fdp1,format=raw"
        -device "nvme-ns,drive=fdp1,bus=nvmefdp,nsid=1,logical_block_size=4096,physical_block_size=4096,fdp.ruhs=0-3") ;;
    pi)
      # One controller (serial TSNVMEPI01, 0000:00:12.0), formatted fresh each boot: ns1 512+8
      # separate metadata, type 1, 16-bit guard; ns2 4096+16 separate, type 1, 64-bit guard
      # (pif=2); ns3 512+8 extended LBA, type 3, PI first (the kernel uses PRACT there).
      qemu+=(-device "nvme,id=nvmepi,serial=TSNVMEPI01,bus=pcie.0,addr=0x12")
      local spec n
      for spec in "1:512:ms=8,mset=0,pi=1,pil=0,pif=0" "2:4096:ms=16,mset=0,pi=1,pil=0,pif=2" "3:512:ms=8,mset=1,pi=3,pil=1,pif=0"; do
        n=${spec%%:*}
        rm -f "$DISKS/pi$n.raw" && truncate -s 16M "$DISKS/pi$n.raw"
        qemu+=(-drive "file=$(qp "$DISKS/pi$n.raw"),if=none,id=pins$n,format=raw"
          -device "nvme-ns,drive=pins$n,bus=nvmepi,nsid=$n,logical_block_size=$(cut -d: -f2 <<<"$spec"),physical_block_size=$(cut -d: -f2 <<<"$spec"),${spec#*:*:}")
      done ;;
    cmb)
      # A 16 MiB controller memory buffer (BAR2, CMBMSC as NVMe 1.4 has it: QEMU offers SQs in it).
      [[ -f $DISKS/cmb.raw ]] || truncate -s 16M "$DISKS/cmb.raw"
      qemu+=(-device "nvme,id=nvmecmb,serial=TSNVMECMB1,bus=pcie.0,addr=0x13,cmb_size_mb=16"
        -drive "file=$(qp "$DISKS/cmb.raw"),if=none,id=cmbns1,format=raw,discard=unmap"
        -device "nvme-ns,drive=cmbns1,bus=nvmecmb,nsid=1,logical_block_size=512,physical_block_size=512") ;;
    sriov)
      # SR-IOV (TSNVMESRIOV1, PF 0000:00:14.0, VFs 00:14.1 and 00:14.2 once enabled): up to 2 VFs
      # sharing 8 flexible queue and 4 interrupt resources (at most 4 and 2 per VF). QEMU wants an
      # nvme-subsys for SR-IOV; the namespace is shared so the VFs' controllers attach it too.
      [[ -f $DISKS/sriov1.raw ]] || truncate -s 16M "$DISKS/sriov1.raw"
      qemu+=(-device "nvme-subsys,id=sriovsubsys,nqn=nqn.2024-01.io.tsnvme:sriov"
        -device "nvme,id=nvmesriov,serial=TSNVMESRIOV1,subsys=sriovsubsys,bus=pcie.0,addr=0x14,sriov_max_vfs=2,sriov_vq_flexible=8,sriov_vi_flexible=4"
        -drive "file=$(qp "$DISKS/sriov1.raw"),if=none,id=sriovns1,format=raw,discard=unmap"
        -device "nvme-ns,drive=sriovns1,bus=nvmesriov,nsid=1,logical_block_size=512,physical_block_size=512,shared=on"
        # QEMU 10.0 registers the VF's BAR0 as a 32-bit BAR (`info pci`) and maps it at the low 32 bits
        # of the PF's 64-bit VF BAR (seen: the kernel put VF 1 at 0xc00000c000, QEMU mapped it at
        # 0xc000, so the VF read all zeros). So no 64-bit window at all: with no RAM above 4 GiB
        # SeaBIOS keeps every BAR low, and with a zero hole64 ACPI offers the kernel no 64-bit window,
        # so it assigns the PF's SR-IOV BARs below 4 GiB too, where QEMU and the kernel agree.
        -m 2048 -global q35-pcihost.pci-hole64-size=0)
      # TSNVME_SRIOV_TRACE=FILE: QEMU's own account of virtualization management, resets, PM and
      # MMIO to offline VFs, written to FILE on the host (the log trace backend via -D).
      if [[ -n ${TSNVME_SRIOV_TRACE:-} ]]; then
        qemu+=(-D "$TSNVME_SRIOV_TRACE" -trace "pci_nvme_virt_mngmt" -trace "pci_nvme_pci_reset"
          -trace "pci_nvme_err_ignored_mmio_vf_offline" -trace "pci_nvme_err_startfail*" -trace "pci_nvme_mmio_start_success"
          -trace "pci_nvme_mmio_stopped" -trace "pci_pm_*" -trace "sriov_*" -trace "pci_update_mappings*")
      fi ;;
    *) die "unknown --feature '$1' (known: zns fdp pi cmb sriov)" ;;
  esac
}
# TSNVME_QEMU_TRACE=FILE:EVENT[,EVENT...]: QEMU's trace events (globs allowed, e.g. pci_nvme_*)
# written to FILE on the host, for device-side questions the guest cannot answer.
if [[ -n ${TSNVME_QEMU_TRACE:-} ]]; then
  qemu+=(-D "${TSNVME_QEMU_TRACE%%:*}")
  IFS=, read -r -a trace_list <<<"${TSNVME_QEMU_TRACE#*:}"
  for t in "${trace_list[@]}"; do qemu+=(-trace "$t"); done
fi
IFS=, read -r -a feature_list <<<"$FEATURES"
for f in "${feature_list[@]}"; do [[ -n $f ]] && feature_devices "$f"; done
for i in "${!NS_SIZES[@]}"; do
  n=$((i + 1)) bs=${NS_BS[i]}
  qemu+=(-drive "file=$(qp "$DISKS/ns$n.raw"),if=none,id=ns$n,format=raw,discard=unmap"
    -device "nvme-ns,drive=ns$n,bus=nvme0,nsid=$n,logical_block_size=$bs,physical_block_size=$bs")
done
qemu+=(
  -fsdev local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap
  -device virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot
  -fsdev "local,id=fsjob,path=$(qp "$RUNDIR/job"),security_model=none"
  -device virtio-9p-pci,fsdev=fsjob,mount_tag=tsnvmejob
  -fsdev "local,id=fsout,path=$(qp "$OUT"),security_model=none"
  -device virtio-9p-pci,fsdev=fsout,mount_tag=tsnvmeout
  -device virtio-serial-pci,id=vser
  -chardev "file,id=cout,path=$(qp "$RUNDIR/stdout.fifo")" -device virtserialport,bus=vser.0,chardev=cout,name=tsnvme.stdout
  -chardev "file,id=cerr,path=$(qp "$RUNDIR/stderr.fifo")" -device virtserialport,bus=vser.0,chardev=cerr,name=tsnvme.stderr
)
# Named threads: which of QEMU's threads (a vCPU, the main loop that runs the NVMe emulation, the
# AIO workers) takes the host's cores can be sampled from the host while a job runs.
qemu+=(-name tsnvme-guest,debug-threads=on)
# TSNVME_QEMU_ARGS: extra arguments for one-off experiments (split on blanks; no quoting).
# shellcheck disable=SC2206 # split on purpose
[[ -n ${TSNVME_QEMU_ARGS:-} ]] && qemu+=(${TSNVME_QEMU_ARGS})

# Relay the guest's stdout/stderr ports to ours (opening a FIFO blocks until QEMU opens it).
cat "$RUNDIR/stdout.fifo" 9>&- & OPID=$!
cat "$RUNDIR/stderr.fifo" >&2 9>&- & EPID=$!
vsay "booting guest (kernel $KVER, QEMU $QEMU_VERSION, bind=$BIND mem=${MEM}M smp=$SMP ns=$NS timeout=${TIMEOUT}s)"
start=$(date +%s.%N)
timeout -k 10 "$TIMEOUT" "${qemu[@]}" </dev/null >"$QEMULOG" 2>&1 & QPID=$!
# If this script is SIGKILLed, the watchdog still stops QEMU (and --timeout bounds it anyway).
( while kill -0 $$ 2>/dev/null && kill -0 "$QPID" 2>/dev/null; do sleep 1; done; kill "$QPID" 2>/dev/null ) \
  </dev/null >/dev/null 2>&1 9>&- &
qrc=0
wait "$QPID" || qrc=$?
QPID=''
end=$(date +%s.%N)
# Unblock a relay whose FIFO QEMU never opened (e.g. QEMU failed to start), then let both drain.
for f in "$RUNDIR/stdout.fifo" "$RUNDIR/stderr.fifo"; do : <>"$f"; done
wait "$OPID" "$EPID" 2>/dev/null || true
OPID='' EPID=''

elapsed=$(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
S=$RUNDIR/job
{
  echo "start=$(date -d "@${start%.*}" '+%F %T') elapsed=${elapsed}s qemu_rc=$qrc bind=$BIND kernel=$KVER qemu=$QEMU_VERSION"
  echo "guest uptime at chroot=$(cat "$S/started" 2>/dev/null) command=$(cat "$S/command" 2>/dev/null)"
  printf 'argv:'; printf ' %q' "$@"; echo
} >"$LOGS/last-run.txt"
vsay "guest ran ${elapsed}s; guest uptime at command start: $(cat "$S/command" 2>/dev/null || echo never)"

tail_logs() {
  if [[ -s $BOOTLOG ]]; then
    echo "--- last lines of $BOOTLOG:" >&2
    tail -n 30 "$BOOTLOG" >&2 || true
  else
    echo "--- $BOOTLOG is empty: the kernel never started (too little --mem? broken $VMLINUZ?)" >&2
  fi
  if [[ -s $QEMULOG ]]; then
    echo "--- $QEMULOG:" >&2
    tail -n 10 "$QEMULOG" >&2
  fi
}
if [[ -f $S/status ]]; then
  rc=$(<"$S/status")
  [[ $rc =~ ^[0-9]+$ ]] || die "unreadable exit status '$rc' from the guest"
  FINISHED=1
  exit "$rc"
fi
if ((qrc == 124 || qrc == 137)); then
  if [[ -f $S/started ]]; then
    say "error: timed out after ${TIMEOUT}s; the guest booted but the command did not finish"
  else
    say "error: timed out after ${TIMEOUT}s before the guest came up"
  fi
elif ((qrc == 134)) && grep -q "Assertion .* failed" "$QEMULOG"; then
  # QEMU's own assert (e.g. 10.0's iotlb_to_section under TCG while a guest remaps BARs): an
  # emulator bug, not the guest's; scripts/test.sh boots once more on this line.
  say "error: QEMU aborted (an emulator assertion, not a guest failure): $(grep -m1 "Assertion .* failed" "$QEMULOG")"
elif [[ -f $S/started ]]; then
  say "error: the guest stopped before the command finished (qemu exit $qrc)"
else
  say "error: the guest failed to boot (qemu exit $qrc)"
fi
tail_logs
exit 125
