#!/usr/bin/env bash
# Build the Python example into OUT_DIR/team_keys_python.wasm.
# Needs componentize-py on PATH (`pip install componentize-py`).
# Usage: sdk/examples/python/build.sh [OUT_DIR]   (default: ./out)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# The contract: SLUICE_WIT, a wit/ beside this script (scaffolds), or the repo's.
wit="${SLUICE_WIT:-$here/wit}"
[ -d "$wit" ] || wit="$here/../../../wit"
out="$(mkdir -p "${1:-out}" && cd "${1:-out}" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/app.py" "$work/"
cd "$work"
componentize-py -d "$wit" -w policy-plugin componentize app -o "$out/team_keys_python.wasm"
echo "built $out/team_keys_python.wasm"
