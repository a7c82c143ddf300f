#!/usr/bin/env bash
# What an /events subscriber per node costs one build of `omnikv` (docs/performance-notes.md):
# one 3-node cluster on loopback with default flags, WARM_OPS puts (default 150000, 64 clients,
# 256-byte values over 100k keys) so that the table holds most of its keys, then ROUNDS pairs
# (default 4) of DUR-second runs (default 10) at 64 clients without and with `--events`, in the
# order off-on, on-off, ... so that a steady drift favours neither. The subscribers speak postcard
# as the page does; EVENTS_ARGS=--events-json makes them ask for JSON. Prints one line per run:
# the mode, puts/s, and the three nodes' CPU time (user and system, from /proc) per 1,000 puts.
#
#   docs/events-cost.sh BINARY
set -euo pipefail
bin=$1
rounds=${ROUNDS:-4}
dur=${DUR:-10}
# shellcheck source=docs/local-cluster.sh
. "$(dirname "$0")/local-cluster.sh"

start_cluster "$bin"
"$bin" bench load --endpoint "$endpoints" --clients 64 --ops "${WARM_OPS:-150000}" \
  --no-progress >/dev/null 2>&1

# Clock ticks of user and system time of the three nodes together.
node_ticks() {
  local total=0 p
  for p in "${pids[@]}"; do
    total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$total"
}

run() {
  local mode=$1 flag="" before after result puts
  [ "$mode" = on ] && flag="--events ${EVENTS_ARGS:-}"
  before=$(node_ticks)
  # shellcheck disable=SC2086 # flag is a list of flags, or empty
  result=$("$bin" bench load --endpoint "$endpoints" --clients 64 --duration-s "$dur" $flag \
    --no-progress 2>/dev/null | tail -1)
  after=$(node_ticks)
  puts=$(echo "$result" | awk '{print $4}')
  echo "events-$mode $puts puts/s, node CPU $(((after - before) * 1000 * 1000 / $(getconf CLK_TCK) / (puts * dur))) ms per 1000 puts"
}

for r in $(seq "$rounds"); do
  if ((r % 2)); then run off; run on; else run on; run off; fi
done
