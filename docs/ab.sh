#!/usr/bin/env bash
# A/B of two builds of `omnikv` (docs/performance-notes.md): ROUNDS rounds (default 2), each
# starting a fresh 3-node cluster on loopback with default flags per build, in alternating
# order, and running `omnikv bench load` against all three nodes at each client count of
# CLIENTS (default "64 1") for DUR seconds (default 10), with BENCH_ARGS added (for example
# "--write-percent 0" for gets, "--write-percent 50" for a mix), and OLD_ARGS or NEW_ARGS
# added to the runs against that build only (to compare two ways of driving one build, give the
# same binary twice). The load generator is NEW's. Prints one line per run: build, clients,
# then `bench load`'s own figures.
#
#   docs/ab.sh OLD_BINARY NEW_BINARY
#
# Build the older binary from a worktree (`git worktree add /tmp/old <commit>`, then
# `cargo build --release -p omnikv-node` there) and copy it out before building the newer.
set -euo pipefail
old=$1
new=$2
rounds=${ROUNDS:-2}
dur=${DUR:-10}
# shellcheck source=docs/local-cluster.sh
. "$(dirname "$0")/local-cluster.sh"

run() {
  local bin=$1 tag=$2 args=$3
  start_cluster "$bin"
  for clients in ${CLIENTS:-64 1}; do
    # shellcheck disable=SC2086 # BENCH_ARGS and args are lists of flags
    result=$("$new" bench load --endpoint "$endpoints" --clients "$clients" --duration-s "$dur" \
      ${BENCH_ARGS:-} $args --no-progress 2>/dev/null | tail -1)
    echo "$tag c$clients $result"
  done
  stop_cluster
}

for r in $(seq "$rounds"); do
  if ((r % 2)); then
    run "$old" old "${OLD_ARGS:-}"
    run "$new" new "${NEW_ARGS:-}"
  else
    run "$new" new "${NEW_ARGS:-}"
    run "$old" old "${OLD_ARGS:-}"
  fi
done
