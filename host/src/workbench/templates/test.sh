#!/usr/bin/env bash
# Snapshot test: build, check against the gateway's contract, replay
# request.json through the hooks, and compare the report with expected.json.
# The first run writes expected.json: review it and commit it; after a
# deliberate change of behaviour, delete it and run again.
# SLUICE: the sluice binary (default: sluice on PATH).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
sluice="${SLUICE:-sluice}"
cd "$here"
./build.sh out
wasm="out/{{wasm}}"
"$sluice" plugin check "$wasm" --config config.yaml
"$sluice" plugin run "$wasm" --config config.yaml --request request.json --json > out/actual.json
if [ -f expected.json ]; then
  diff -u expected.json out/actual.json
  echo "test: ok (the report matches expected.json)"
else
  cp out/actual.json expected.json
  echo "test: wrote expected.json; review it and commit it"
fi
