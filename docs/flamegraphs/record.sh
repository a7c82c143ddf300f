#!/usr/bin/env bash
# Flame graphs of a 3-node OmniKV cluster, one per workload (docs/performance-notes.md,
# section 33): for each, a fresh cluster with default flags (docs/local-cluster.sh), 3 s of
# warm-up under `omnikv bench load`, then `perf record` with DWARF call graphs of the three
# node processes while the load goes on, folded and drawn by flamegraph.py into OUT_DIR
# (default docs/flamegraphs) as WORKLOAD.svg, plus the run's own figures and the threads' and
# top functions' shares of the samples in WORKLOAD.txt.
#
#   docs/flamegraphs/record.sh [BINARY]     # default: the release build in the shared target
#
# SECONDS_RECORDED (default 4) sets the profile's length; WORKLOADS a subset of the names below.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
bin=${1:-${CARGO_TARGET_DIR:-$HOME/.cache/omnikv/target}/release/omnikv}
out=${OUT_DIR:-$here}
recorded=${SECONDS_RECORDED:-4}
# shellcheck source=docs/local-cluster.sh
. "$here/../local-cluster.sh"

declare -A args=(
  [puts-64]="--clients 64"
  [puts-1]="--clients 1"
  [gets-64]="--clients 64 --write-percent 0"
  [mix-64]="--clients 64 --write-percent 50"
)
declare -A titles=(
  [puts-64]="puts of 256 B over 100k keys, 64 clients"
  [puts-1]="puts of 256 B over 100k keys, 1 client"
  [gets-64]="linearizable gets over 100k keys, 64 clients (after 3 s of puts)"
  [mix-64]="50/50 puts and linearizable gets, 64 clients"
)

for workload in ${WORKLOADS:-puts-64 puts-1 gets-64 mix-64}; do
  start_cluster "$bin"
  if [ "$workload" = gets-64 ]; then
    # Gets of an empty table read nothing: put some of the keys first.
    "$bin" bench load --endpoint "$endpoints" --clients 64 --duration-s 3 --no-progress >/dev/null
  fi
  # shellcheck disable=SC2086 # the workload's flags are words
  "$bin" bench load --endpoint "$endpoints" ${args[$workload]} --warmup-ms 3000 \
    --duration-s $((recorded + 2)) --no-progress >"$out/$workload.txt" 2>&1 &
  load=$!
  sleep 3.5
  perf record -q -F 499 --call-graph dwarf,16384 -o "$work/perf.data" \
    -p "$(IFS=,; echo "${pids[*]}")" -- sleep "$recorded" 2>/dev/null
  wait "$load"
  perf script -i "$work/perf.data" 2>/dev/null |
    "$here/flamegraph.py" --title "OmniKV, 3 nodes: ${titles[$workload]}" \
      --summary "$work/summary" >"$out/$workload.svg"
  cat "$work/summary" >>"$out/$workload.txt"
  stop_cluster
  echo "$workload: $(tail -1 "$out/$workload.txt")"
done
