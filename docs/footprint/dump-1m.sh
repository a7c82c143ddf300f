#!/usr/bin/env bash
# docs/performance-notes.md, section 11: ~1M keys in a 3-node release cluster, then a full
# paged dump of every node while 64 clients keep writing, after the same load alone for 60 s
# (IDLE=1: dumps of the idle cluster);
# leader changes and complete snapshots counted from the nodes' logs, and each node's peak RSS. Needs `cargo build --release -p omnikv-node`.
set -uo pipefail
bin=${CARGO_TARGET_DIR:-$HOME/.cache/omnikv/target}/release/omnikv
work=$HOME/.cache/omnikv/dump1m; rm -rf $work; mkdir -p $work
eps=ws://127.0.0.1:29201,ws://127.0.0.1:29202,ws://127.0.0.1:29203
pids=()
for i in 1 2 3; do
  RUST_LOG=info $bin node --id $i --member 1=127.0.0.1:27201 --member 2=127.0.0.1:27202 --member 3=127.0.0.1:27203 \
    --ws 127.0.0.1:2920$i --data-dir $work/n$i >> $work/n$i.log 2>&1 &
  pids+=($!)
done
trap 'kill -9 ${pids[@]} 2>/dev/null' EXIT
for _ in $(seq 100); do $bin put ready x --node ws://127.0.0.1:29201 --timeout-ms 1000 >/dev/null 2>&1 && break; sleep 0.2; done
$bin bench load --backend omnikv --endpoint $eps --clients 64 --key-space 1000000 --ops 3000000 --label fill-1m 2>&1 | tail -1
leaders() { grep -h "leader changed" $work/n*.log | wc -l; }
echo "leader-changed log lines before the dumps: $(leaders)"
# The same load for 60 s without dumps, then for 60 s with a dump of every node in turn: what
# the dumps add to the leader changes the load alone makes.
if [ -z "${IDLE:-}" ]; then
  $bin bench load --backend omnikv --endpoint $eps --clients 64 --key-space 1000000 --duration-s 60 --label without-dumps 2>&1 | tail -1
  echo "leader-changed log lines after the load without dumps: $(leaders)"
  $bin bench load --backend omnikv --endpoint $eps --clients 64 --key-space 1000000 --duration-s 75 --label during-dumps 2>&1 | tail -1 &
  load=$!
  sleep 3
fi
for i in 1 2 3; do
  /usr/bin/time -f "%e s elapsed, %M KB max RSS of the CLI" $bin dump --node ws://127.0.0.1:2920$i --timeout-ms 60000 > $work/dump$i.tsv
done
[ -z "${IDLE:-}" ] && wait $load
echo "leader-changed log lines after the dumps: $(leaders)"
echo "complete snapshots sent: $(grep -h 'sending a complete snapshot' $work/n*.log | wc -l)"
for i in 1 2 3; do
  echo "node $i peak RSS: $(grep VmHWM /proc/${pids[$((i-1))]}/status 2>/dev/null | awk '{print $2, $3}' || echo 'gone')"
done
