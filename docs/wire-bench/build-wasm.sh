#!/usr/bin/env bash
# Builds the decode benchmark's wasm like scripts/build-web builds the page's (opt-level z, LTO,
# wasm-bindgen, wasm-opt -Oz) for Node.js, and prints its size:
#   docs/wire-bench/build-wasm.sh OUT_DIR [cargo features...]
# Needs the pinned wasm-bindgen CLI and web/node_modules (scripts/build-web installs both).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "$1" && cd "$1" && pwd)"
shift
root="$here/../.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/omnikv/target-wire-bench}"
WB_VERSION="$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' "$root/Cargo.toml")"
WB="$HOME/.cache/omnikv/wasm-bindgen-$WB_VERSION/bin/wasm-bindgen"
(cd "$here/wasm" && cargo build -q --release --target wasm32-unknown-unknown "$@")
"$WB" --target nodejs --no-typescript --remove-name-section --remove-producers-section \
  --out-dir "$out" "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/wire_bench_wasm.wasm"
"$root/web/node_modules/.bin/wasm-opt" -Oz --enable-bulk-memory --enable-nontrapping-float-to-int \
  --enable-sign-ext --enable-mutable-globals --enable-reference-types --enable-multivalue \
  "$out/wire_bench_wasm_bg.wasm" -o "$out/wire_bench_wasm_bg.wasm"
echo "$out/wire_bench_wasm_bg.wasm: $(stat -c %s "$out/wire_bench_wasm_bg.wasm") bytes"
