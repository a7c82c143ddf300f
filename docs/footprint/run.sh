#!/usr/bin/env bash
# One footprint run (docs/performance-notes.md, section 9): a fresh 3-node cluster on random
# ports with --snapshot-every 1000, `omnikv bench load` with the given options, and a sample of
# every node (docs/footprint/sample.mjs) before, every SAMPLE_S seconds during, and after.
#
#   docs/footprint/run.sh OUT_DIR BENCH_LOAD_OPTIONS...
#   e.g. docs/footprint/run.sh /tmp/fp/sessions --ops 1000000 --session-per-op --key-space 1000
#
# OMNIKV (the binary) defaults to the release build under $CARGO_TARGET_DIR. The run stops
# early if the disk holding OUT_DIR has less than MIN_FREE_MB (3000) left: the write-ahead log
# grows by up to 0.6 GB per node and million log entries (see the notes).
set -euo pipefail
out=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
bin=${OMNIKV:-${CARGO_TARGET_DIR:-$HOME/.cache/omnikv/target}/release/omnikv}
export NODE_PATH=${NODE_PATH:-$here/../../web/node_modules}
sample_s=${SAMPLE_S:-30}
base=$((17000 + RANDOM % 2000))
rm -rf "$out"; mkdir -p "$out"
members=(); specs=(); endpoints=(); pids=()
for i in 1 2 3; do members+=(--member "$i=127.0.0.1:$((base + i))"); done
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
for i in 1 2 3; do
  ws=127.0.0.1:$((base + 2000 + i))
  "$bin" node --id "$i" "${members[@]}" --ws "$ws" --data-dir "$out/node$i" \
    --snapshot-every 1000 >"$out/node$i.log" 2>&1 &
  pids+=($!)
  endpoints+=("ws://$ws")
done
for i in 0 1 2; do specs+=("${endpoints[$i]},${pids[$i]},$out/node$((i + 1))"); done
sleep 3
sample() { node "$here/sample.mjs" "$1" "${specs[@]}" >>"$out/samples.jsonl"; }
sample start
started=$(date +%s)
"$bin" bench load --endpoint "$(IFS=,; echo "${endpoints[*]}")" --no-progress --json \
  --out "$out/result.json" "$@" >"$out/bench.log" 2>&1 &
bench=$!
while kill -0 "$bench" 2>/dev/null; do
  sleep "$sample_s"
  kill -0 "$bench" 2>/dev/null && sample "t=$(( $(date +%s) - started ))s"
  free_mb=$(df -Pm "$out" | awk 'NR == 2 {print $4}')
  if (( free_mb < ${MIN_FREE_MB:-3000} )); then
    echo "stopped: $free_mb MB left on the disk" | tee -a "$out/bench.log"
    kill "$bench"
  fi
done
wait "$bench" || echo "bench load failed: see $out/bench.log"
sample "end ($(( $(date +%s) - started ))s)"
sleep 30
sample "end+30s"
