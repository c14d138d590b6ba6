#!/usr/bin/env bash
# Install what the project needs: npm packages (deno, bun, typescript) and, as root,
# the Debian packages for the QEMU guest and the cross-checks. Idempotent and quiet when done.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x node_modules/.bin/deno || ! -x node_modules/.bin/bun ]]; then
  # npm ci: exactly the versions in package-lock.json, and a failure if the lock is stale.
  echo "install-deps: npm ci (deno, bun, typescript)" >&2
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
PKGS=(qemu-system-x86 busybox-static kmod cpio nvme-cli fio stress-ng)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p"); done
if ((${#missing[@]})); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "install-deps: apt-get install ${missing[*]}" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
  else
    echo "install-deps: missing Debian packages (run as root, or: sudo apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi
