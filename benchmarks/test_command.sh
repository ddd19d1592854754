#!/usr/bin/env bash
# Time the README's test command as CI runs it: a fresh clone of the committed tree, the environment
# created from nothing, then `./run_all.sh test` (what .ci/run calls). Prints the machine, the two
# phases' wall times, pytest's summary and its slowest items. Needs an idle machine to mean anything.
#
#   benchmarks/test_command.sh [CLONE_DIR]      (default ../fresh, deleted and recreated)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dest="${1:-../fresh}"
rm -rf "$dest"
git clone -q . "$dest"
cd "$dest"
log="$(mktemp)"
echo "commit $(git rev-parse --short HEAD), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores"

t0=$(date +%s.%N)
./run_all.sh setup > "$log" 2>&1 || { tail -30 "$log"; exit 1; }
t1=$(date +%s.%N)
.venv/bin/python -c "from lib import machine; print('cpu:', machine.cpu_model(), '| precision:', machine.precision())"
rc=0
CI=true bash .ci/run > "$log" 2>&1 || rc=$?
t2=$(date +%s.%N)

grep -A 16 "slowest .* durations" "$log" | sed '/short test summary/d' || true
grep -E "^=+ .*(passed|failed|error).* in " "$log" | tail -1
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
  printf "set-up (fresh environment): %.1f min\n", (b - a) / 60
  printf "test command after set-up:  %.1f min\n", (c - b) / 60
  printf "total:                      %.1f min\n", (c - a) / 60 }'
echo "exit code of the test command: $rc"
rm -f "$log"
exit "$rc"
