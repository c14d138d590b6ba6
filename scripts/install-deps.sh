#!/usr/bin/env bash
# Install what the project needs: npm packages (deno, bun, typescript) and, as root,
# the Debian packages for the QEMU guest and the cross-checks. Idempotent and quiet when done.
# On Debian 12 (bookworm) QEMU comes from bookworm-backports (QEMU 10: the guest's NVMe model with
# FDP, both PI guard sizes, SR-IOV, shadow doorbells); the suite is added to the apt sources with
# the same mirror as the host's own Debian line. scripts/guest.sh downloads the guest kernel.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x node_modules/.bin/deno || ! -x node_modules/.bin/bun ]]; then
  # npm ci: exactly the versions in package-lock.json, and a failure if the lock is stale.
  echo "install-deps: npm ci (deno, bun, typescript)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
PKGS=(qemu-system-x86 busybox-static kmod cpio nvme-cli fio stress-ng xfsprogs)
QEMU_MIN=1:10.0  # Debian version of qemu-system-x86 the guest tier expects
CODENAME=$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")
BPO=
[[ $CODENAME == bookworm ]] && BPO=bookworm-backports

missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
old_qemu=0
if [[ -n $BPO ]] && dpkg-query -W -f='${Status}' qemu-system-x86 2>/dev/null | grep -q "ok installed" &&
  ! dpkg --compare-versions "$(dpkg-query -W -f='${Version}' qemu-system-x86)" ge "$QEMU_MIN"; then
  old_qemu=1
fi
((${#missing[@]} || old_qemu)) || exit 0

if [[ $(id -u) -ne 0 ]]; then
  need="${missing[*]}"
  ((old_qemu)) && need="$need qemu-system-x86 (>= $QEMU_MIN, from $BPO)"
  echo "install-deps: missing Debian packages: $need (run as root: scripts/install-deps.sh)" >&2
  exit 1
fi

# The backports suite, once: a deb822 file next to the host's, same mirror and keyring as the line
# that carries the plain suite (deb822 .sources first, then one-line .list files).
add_backports() {
  local f uri='' key=''
  if grep -qsE "^[^#]*\\b$BPO\\b" /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; then
    return 0
  fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    # Stanzas are separated by blank lines; take the first whose Suites has the plain codename.
    read -r uri key < <(awk -v s="$CODENAME" '
      /^[ \t]*$/ { if (hit && u != "") { print u, k; exit } hit = 0; u = ""; k = ""; next }
      /^URIs:/ { u = $2 } /^Signed-By: *\// { k = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) hit = 1 }
      END { if (hit && u != "") print u, k }' "$f") || true
    [[ -n $uri ]] && break
  done
  if [[ -z $uri ]]; then
    uri=$(awk -v s="$CODENAME" '$1 == "deb" { for (i = 2; i < NF; i++) if ($(i + 1) == s && $i !~ /^\[/) { print $i; exit } }' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -1)
  fi
  [[ -n $uri ]] || { echo "install-deps: no Debian '$CODENAME' line in /etc/apt/sources*; add $BPO yourself" >&2; exit 1; }
  echo "install-deps: adding $BPO ($uri) to /etc/apt/sources.list.d/$BPO.sources" >&2
  {
    echo "Types: deb"
    echo "URIs: $uri"
    echo "Suites: $BPO"
    echo "Components: main"
    echo "Signed-By: ${key:-/usr/share/keyrings/debian-archive-keyring.gpg}"
  } >"/etc/apt/sources.list.d/$BPO.sources"
}
[[ -n $BPO ]] && add_backports

rest=()
for p in "${missing[@]}"; do [[ $p == qemu-system-x86 && -n $BPO ]] || rest+=("$p"); done
want_bpo=0
[[ -n $BPO ]] && ((old_qemu || ${#rest[@]} < ${#missing[@]})) && want_bpo=1
echo "install-deps: apt-get install ${rest[*]}$( ((want_bpo)) && echo " qemu-system-x86/$BPO")" >&2
apt-get update -qq >&2
((${#rest[@]} == 0)) || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${rest[@]}" >&2
if ((want_bpo)); then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t "$BPO" qemu-system-x86 >&2
fi
