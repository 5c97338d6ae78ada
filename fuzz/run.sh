#!/usr/bin/env bash
# Run fuzz targets for a while each: `fuzz/run.sh 600 config_loader sse_framer`.
# The pinned toolchain is stable: RUSTC_BOOTSTRAP lets cargo-fuzz pass its
# -Z flags; SLUICE_SKIP_BUNDLED skips the nested plugin build (the parsers do
# not need the bundled policies). Corpora grow in fuzz/corpus/<target>,
# seeded from fuzz/seeds/<target>; findings land in fuzz/artifacts/<target>.
set -euo pipefail
cd "$(dirname "$0")"
secs=$1; shift
export RUSTC_BOOTSTRAP=1 SLUICE_SKIP_BUNDLED=1
for t in "$@"; do
  mkdir -p "corpus/$t"
  cargo fuzz run "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
done
