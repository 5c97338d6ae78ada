#!/usr/bin/env bash
# Build this plugin into OUT_DIR/{{crate}}.wasm (default: ./out).
# Needs the Rust target: rustup target add wasm32-wasip2
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "${1:-out}" && cd "${1:-out}" && pwd)"
target="${CARGO_TARGET_DIR:-$here/target}"
cargo build --manifest-path "$here/Cargo.toml" --release --target wasm32-wasip2 --target-dir "$target"
cp "$target/wasm32-wasip2/release/{{crate}}.wasm" "$out/{{crate}}.wasm"
echo "built $out/{{crate}}.wasm"
