#!/usr/bin/env bash
# Idle CPU of an open device against a process that only sleeps, on Deno and Bun, in one guest boot
# (issue 17's goal: within 1 point of a core idle, within 3 at 10 reads/s).
# Usage: scripts/idle-cpu.sh [--seconds 5] [--interrupts adaptive|interrupt|poll]
set -euo pipefail
cd "$(dirname "$0")/.."
exec scripts/guest.sh --timeout 900 -- deno run -A scripts/idle-cpu.ts "$@"
