# Sourced by docs/ab.sh and docs/events-cost.sh: a 3-node OmniKV cluster on loopback, default
# flags, in a temporary directory removed on exit with every node started.
#
#   start_cluster BINARY     # sets $endpoints (comma-separated ws:// URLs) and $pids
#   stop_cluster
work=$(mktemp -d)
pids=()
endpoints=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

start_cluster() {
  local bin=$1 base=$((20000 + RANDOM % 5000)) members=() i j
  rm -rf "${work:?}"/n*
  for j in 1 2 3; do members+=(--member "$j=127.0.0.1:$((base + j))"); done
  pids=()
  endpoints=""
  for i in 1 2 3; do
    RUST_LOG=warn "$bin" node --id "$i" "${members[@]}" --ws "127.0.0.1:$((base + 100 + i))" \
      --data-dir "$work/n$i" >>"$work/n$i.log" 2>&1 &
    pids+=($!)
    endpoints+="ws://127.0.0.1:$((base + 100 + i)),"
  done
  endpoints=${endpoints%,}
  for _ in $(seq 100); do
    "$bin" put ready x --node "ws://127.0.0.1:$((base + 101))" --timeout-ms 2000 >/dev/null 2>&1 && break
    sleep 0.1
  done
}

stop_cluster() {
  kill "${pids[@]}"
  wait 2>/dev/null || true
  pids=()
}
