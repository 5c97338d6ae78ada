#!/usr/bin/env bash
# Build the JavaScript example into OUT_DIR/team_keys_js.wasm.
# Needs Node.js and npm. componentize-js comes from SLUICE_JS_TOOLS (a
# directory whose node_modules has it, e.g. one set up by .ci/run), or is
# installed here from package.json/package-lock.json with `npm ci`.
# Usage: sdk/examples/js/build.sh [OUT_DIR]   (default: ./out)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="$(mkdir -p "${1:-out}" && cd "${1:-out}" && pwd)"
tools="${SLUICE_JS_TOOLS:-$here}"
if [ ! -d "$tools/node_modules/@bytecodealliance/componentize-js" ]; then
  (cd "$here" && npm ci --no-audit --no-fund)
  tools="$here"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp "$here/build.mjs" "$here/team-keys.js" "$work/"
ln -s "$tools/node_modules" "$work/node_modules"
# The contract: SLUICE_WIT, a wit/ beside this script (scaffolds), or the repo's.
wit="${SLUICE_WIT:-$here/wit}"
[ -d "$wit" ] || wit="$here/../../../wit"
SLUICE_WIT="$wit" node "$work/build.mjs" "$out"
