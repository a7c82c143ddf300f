#!/usr/bin/env bash
# A table larger than a node's memory budget (docs/performance-notes.md, section 14): a fresh
# 3-node cluster on random ports with default flags, `omnikv bench fill` of KEYS keys (default
# 10M) of 256 B in transactions of 16 keys from 4 clients, `omnikv bench memory` every SAMPLE_S
# seconds (default 60), then on the full table: each follower SIGKILLed and restarted in turn,
# timed from its start to a local read of a write made just before the kill; 10 s of
# linearizable gets and 30 s of puts over the whole key space; memory again.
#
#   docs/footprint/large-table.sh OUT_DIR
#
# OMNIKV (the binary) defaults to the release build under $CARGO_TARGET_DIR; OMNIKV_NODE, if
# set, runs the nodes from another build (an older one, to compare). 10M keys take about 10
# minutes here and 1 GB of disk per node.
set -euo pipefail
out=$1
bin=${OMNIKV:-${CARGO_TARGET_DIR:-$HOME/.cache/omnikv/target}/release/omnikv}
node_bin=${OMNIKV_NODE:-$bin}
keys=${KEYS:-10000000}
sample_s=${SAMPLE_S:-60}
base=$((19000 + RANDOM % 2000))
rm -rf "$out"; mkdir -p "$out"
members=(); endpoints=(); pids=(); dirs=()
for i in 1 2 3; do members+=(--member "$i=127.0.0.1:$((base + i))"); done
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
start_node() {
  local i=$1
  "$node_bin" node --id "$i" "${members[@]}" --ws "127.0.0.1:$((base + 2000 + i))" \
    --data-dir "$out/node$i" >>"$out/node$i.log" 2>&1 &
  pids[i - 1]=$!
}
for i in 1 2 3; do
  start_node "$i"
  endpoints+=("ws://127.0.0.1:$((base + 2000 + i))")
  dirs+=("$out/node$i")
done
all=$(IFS=,; echo "${endpoints[*]}")
sleep 3
memory() {
  "$bin" bench memory --pids "$(IFS=,; echo "${pids[*]}")" --data-dirs "$(IFS=,; echo "${dirs[*]}")" \
    --puts "$1" --out "$out/memory-$2.json" | tee -a "$out/summary.txt"
}
"$bin" bench fill --endpoint "$all" --clients 4 --batch-keys 16 --keys "$keys" \
  >"$out/fill.txt" 2>"$out/fill.log" &
fill=$!
started=$(date +%s)
while kill -0 "$fill" 2>/dev/null; do
  sleep "$sample_s"
  if kill -0 "$fill" 2>/dev/null; then
    done_keys=$(tail -1 "$out/fill.log" | awk '{print $1}')
    memory "${done_keys:-0}" "t$(( $(date +%s) - started ))s"
  fi
done
wait "$fill"
cat "$out/fill.txt" | tee -a "$out/summary.txt"
memory "$keys" full
leader() {
  grep -h "leader changed" "$out"/node*.log | tail -1 | sed 's/\x1b\[[0-9;]*m//g' |
    grep -o 'leader=Some([0-9])' | tr -dc 0-9
}
for i in 1 2 3; do
  [ "$i" = "$(leader)" ] && continue
  value="probe-$(date +%s%N)"
  other=$(( i % 3 + 1 ))
  "$bin" put restart-probe "$value" --node "${endpoints[other - 1]}" >/dev/null
  kill -9 "${pids[i - 1]}"; wait "${pids[i - 1]}" 2>/dev/null || true
  t0=$(date +%s%N)
  start_node "$i"
  until [ "$("$bin" get restart-probe --local --node "${endpoints[i - 1]}" --timeout-ms 200 2>/dev/null)" = "$value" ]; do
    sleep 0.01
  done
  echo "node $i served a local read of the last write $(( ($(date +%s%N) - t0) / 1000000 )) ms after its restart" |
    tee -a "$out/summary.txt"
  sleep 2
done
for percent in 0 100; do
  seconds=$(( percent == 0 ? 10 : 30 ))
  "$bin" bench load --endpoint "$all" --clients 16 --write-percent "$percent" --key-space "$keys" \
    --duration-s "$seconds" --no-progress | tee -a "$out/summary.txt"
done
memory "$keys" after-load
echo "leader-changed lines per node: $(grep -c 'leader changed' "$out"/node*.log | tr '\n' ' ')" |
  tee -a "$out/summary.txt"
