#!/usr/bin/env bash
# Apply the test naming rule (README, "Tests"): tests/unit/<room>/<module>_test.ts tests
# lib/<room>/<module>.ts (<module>_<aspect>_test.ts when one module's tests are split); cli/ tests
# the tools, dev/ the whole driver through NVMeDev; helpers live in util/, Worker scripts in workers/.
#
# Moves the files with `git mv`, then rewrites every relative path that pointed at or from a moved
# file (imports, import(), new URL(..., import.meta.url), template prefixes such as `../fixtures/${p}`)
# in tests/**, and the globs and paths in scripts/test.sh and README.md. A file that is gone (merged,
# renamed or deleted on another branch) is skipped with a warning, so this runs after the merges.
# Usage: tests/rename.sh        (from anywhere; commit the result yourself)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
U=tests/unit

# old (under tests/unit) -> new (under tests/unit)
MOVES=(
  # nvme: the generic driver core
  command_test.ts:nvme/command_test.ts
  admin_command_test.ts:nvme/command_mgmt_test.ts
  nvme_identify_test.ts:nvme/identify_test.ts
  prp_test.ts:nvme/prp_test.ts
  queue_test.ts:nvme/queue_test.ts
  tracker_test.ts:nvme/tracker_test.ts
  pcie_ring_test.ts:nvme/pcie_test.ts
  trace_test.ts:nvme/trace_test.ts
  controller_state_test.ts:nvme/controller_state_test.ts
  nvme_layouts_test.ts:nvme/layouts_test.ts
  irq_controller_test.ts:nvme/controller_irq_test.ts
  reset_test.ts:nvme/controller_reset_test.ts
  # admin: logs, features, identify and register decoders, management and passthrough
  admin_log_test.ts:admin/log_test.ts
  admin_sim_test.ts:admin/manage_sim_test.ts
  admin_validation_test.ts:admin/manage_validation_test.ts
  human_test.ts:cli/format_human_test.ts
  identify_test.ts:admin/identify_test.ts
  regs_test.ts:admin/regs_test.ts
  passthru_test.ts:admin/passthru_test.ts
  # io
  io_backlog_test.ts:io/backlog_test.ts
  validation_test.ts:io/namespace_validation_test.ts
  # sim: the software controller
  engine_test.ts:sim/engine_test.ts
  sim_admin_test.ts:sim/engine_admin_test.ts
  sim_io_test.ts:sim/engine_io_test.ts
  engine_nsmedia_test.ts:sim/nsmedia_test.ts
  sim_fault_test.ts:sim/transport_faults_test.ts
  sim_file_test.ts:sim/media_file_test.ts
  irq_sim_test.ts:sim/pcie_msix_test.ts
  # tcp: the NVMe/TCP host
  tcp_crc32c_test.ts:tcp/crc32c_test.ts
  tcp_host_test.ts:tcp/host_test.ts
  tcp_parser_test.ts:tcp/parser_test.ts
  target_sink_test.ts:tcp/parser_sink_test.ts
  tcp_pdu_test.ts:tcp/pdu_test.ts
  tcp_queue_test.ts:tcp/queue_test.ts
  tcp_target_string_test.ts:tcp/target_string_test.ts
  # target: the NVMe/TCP target
  target_ctrl_test.ts:target/controller_test.ts
  target_io_test.ts:target/nvm_test.ts
  # vfio, irq, worker
  setup_test.ts:vfio/setup_test.ts
  irq_test.ts:irq/irq_test.ts
  worker_queue_test.ts:worker/host_test.ts
  # cli: the tools (lib/cli/nvme.ts, lib/cli/nvmf-target.ts) and their presentation (lib/cli/format)
  admin_cli_test.ts:cli/nvme_usage_test.ts
  raw_cli_test.ts:cli/nvme_raw_test.ts
  tcp_cli_test.ts:cli/nvme_tcp_test.ts
  target_cli_test.ts:cli/nvmf_target_test.ts
  discovery_format_test.ts:cli/format_discovery_test.ts
  # dev: the whole driver through NVMeDev
  reliability_test.ts:dev/reliability_test.ts
  fuzz_test.ts:dev/fuzz_test.ts
  sequence_fuzz_test.ts:dev/sequence_fuzz_test.ts
  dma_safety_test.ts:dev/dma_safety_test.ts
  multiqueue_test.ts:dev/multiqueue_test.ts
  wait_mode_test.ts:dev/wait_mode_test.ts
  tcp_dev_test.ts:dev/tcp_test.ts
  # helpers and Worker scripts
  fake.ts:util/fake.ts
  target_util.ts:util/target_util.ts
  irq_worker.js:workers/irq_worker.js
)
# smoke_test.ts and package_test.ts test the package as a whole and stay at tests/unit/.

before=$(mktemp)
moves=$(mktemp)
trap 'rm -f "$before" "$moves"' EXIT
git ls-files > "$before"
for m in "${MOVES[@]}"; do
  old=$U/${m%%:*} new=$U/${m#*:}
  if [[ ! -e $old ]]; then
    if [[ -e $new ]]; then echo "rename: $new already in place"; else echo "rename: warning: $old not found, skipped" >&2; fi
    continue
  fi
  if [[ -e $new ]]; then echo "rename: warning: $new exists, $old left where it is" >&2; continue; fi
  mkdir -p "$(dirname "$new")"
  git mv "$old" "$new"
  printf '%s\t%s\n' "$old" "$new" >> "$moves"
done
for f in "$U"/*_test.ts; do
  [[ -e $f ]] || continue
  case ${f##*/} in smoke_test.ts | package_test.ts) ;; *) echo "rename: warning: $f has no room (add it to MOVES)" >&2 ;; esac
done
[[ -s $moves ]] || { echo "rename: nothing to move"; exit 0; }

# Rewrite relative paths in tests/**: a literal is rewritten only when, read from the file's old
# place, it names a file or directory of the tree before the moves (so fake sysfs paths and the
# like in test data are left alone).
deno run --allow-read --allow-write - "$before" "$moves" <<'EOF'
const [beforeList, movesList] = Deno.args;
const norm = (p: string): string => {
  const out: string[] = [];
  for (const s of p.split("/")) {
    if (s === "" || s === ".") continue;
    if (s === "..") out.pop();
    else out.push(s);
  }
  return out.join("/");
};
const dirOf = (p: string) => p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "";
const rel = (fromDir: string, to: string): string => {
  const a = fromDir ? fromDir.split("/") : [], b = to.split("/");
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  const r = [...a.slice(i).map(() => ".."), ...b.slice(i)].join("/");
  return r.startsWith("../") ? r : `./${r}`;
};
const known = new Set<string>();
for (const f of Deno.readTextFileSync(beforeList).split("\n").filter(Boolean)) {
  known.add(f);
  for (let d = dirOf(f); d; d = dirOf(d)) known.add(d);
}
const moved = new Map<string, string>();
for (const l of Deno.readTextFileSync(movesList).split("\n").filter(Boolean)) {
  const [o, n] = l.split("\t");
  moved.set(o, n);
}
const oldOf = new Map([...moved].map(([o, n]) => [n, o]));
const files: string[] = [];
const walk = (d: string) => {
  for (const e of Deno.readDirSync(d)) {
    const p = `${d}/${e.name}`;
    if (e.isDirectory) walk(p);
    else if (/\.(ts|js)$/.test(e.name)) files.push(p);
  }
};
walk("tests");
// A quoted relative path ('…', "…", or a template's static start up to `${`).
const lit = /(["'`])(\.\.?\/[^"'`$\s]*)/g;
for (const f of files) {
  const oldPath = oldOf.get(f) ?? f;
  const src = Deno.readTextFileSync(f);
  const out = src.replace(lit, (all, q: string, spec: string) => {
    const slash = spec.endsWith("/");
    const target = norm(`${dirOf(oldPath)}/${spec}`);
    if (!known.has(target)) return all;
    const now = moved.get(target) ?? target;
    const r = rel(dirOf(f), now) + (slash ? "/" : "");
    return q + r;
  });
  if (out !== src) {
    Deno.writeTextFileSync(f, out);
    console.log(`rename: paths fixed in ${f}`);
  }
}
EOF

# scripts/test.sh type-checks tests/unit/*.ts: add the room directories.
if grep -q 'tests/unit/\*\.ts' scripts/test.sh 2>/dev/null; then
  if ! grep -q 'tests/unit/\*/\*\.ts' scripts/test.sh; then
    sed -i 's#tests/unit/workers/\*\.ts ##; s#tests/unit/\*\.ts#tests/unit/*.ts tests/unit/*/*.ts#' scripts/test.sh
    echo "rename: scripts/test.sh checks tests/unit/*/*.ts"
  fi
else
  echo "rename: warning: scripts/test.sh does not list tests/unit/*.ts; check its type-check globs by hand" >&2
fi
# README: the per-room test paths it names.
if [[ -f README.md ]]; then
  sed -i 's#`tests/unit/tcp_\*`#`tests/unit/tcp/`#g; s#`tests/unit/target_\*`#`tests/unit/target/`#g' README.md
fi
echo "rename: done; run the unit tests on both runtimes, then commit"
