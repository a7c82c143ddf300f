#!/usr/bin/env bash
# Leader changes under heavy writes (docs/performance-notes.md, section 15): a fresh 3-node
# cluster on random ports with default flags, `omnikv bench fill` of KEYS keys (default 2M) of
# 256 B in transactions of BATCH keys (default 128) from CLIENTS clients (default 16), then per
# node: leader-changed log lines (the first election is one), the turns the node warned about
# (a turn longer than half a heartbeat round), and RocksDB's write stalls and stops (its LOG).
#
#   docs/footprint/heavy-fill.sh OUT_DIR
#
# OMNIKV (the binary) defaults to the release build under $CARGO_TARGET_DIR; OMNIKV_NODE, if
# set, runs the nodes from another build (an older one, to compare). 2M keys take about a
# minute here.
set -euo pipefail
out=$1
bin=${OMNIKV:-${CARGO_TARGET_DIR:-$HOME/.cache/omnikv/target}/release/omnikv}
node_bin=${OMNIKV_NODE:-$bin}
keys=${KEYS:-2000000}
base=$((19000 + RANDOM % 2000))
rm -rf "$out"; mkdir -p "$out"
members=(); endpoints=(); pids=()
for i in 1 2 3; do members+=(--member "$i=127.0.0.1:$((base + i))"); done
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in 1 2 3; do
  "$node_bin" node --id "$i" "${members[@]}" --ws "127.0.0.1:$((base + 2000 + i))" \
    --data-dir "$out/node$i" >>"$out/node$i.log" 2>&1 &
  pids[i - 1]=$!
  endpoints+=("ws://127.0.0.1:$((base + 2000 + i))")
done
sleep 3
"$bin" bench fill --endpoint "$(IFS=,; echo "${endpoints[*]}")" --clients "${CLIENTS:-16}" \
  --batch-keys "${BATCH:-128}" --keys "$keys" >"$out/fill.txt" 2>"$out/fill.log"
cat "$out/fill.txt"
for i in 1 2 3; do
  echo "node $i: $(grep -c 'leader changed' "$out/node$i.log") leader-changed lines," \
    "$(grep -c 'outlasted half a heartbeat round' "$out/node$i.log") slow-turn warnings," \
    "$(cat "$out/node$i"/LOG* | grep -c 'Stalling writes\|Stopping writes') RocksDB write stalls or stops"
done
