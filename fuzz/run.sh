#!/usr/bin/env bash
# Runs the fuzz targets for a bounded time, seeded from tests/fixtures.
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 60 s, both targets)
# Needs cargo-fuzz (cargo install cargo-fuzz). On a stable toolchain the sanitizer
# flags are unlocked with RUSTC_BOOTSTRAP=1. Crashes land in fuzz/artifacts/TARGET/;
# minimise one with `cargo fuzz tmin TARGET FILE` and add it to tests/fixtures/fuzz/.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-60}; shift || true
targets=("$@"); [ ${#targets[@]} -gt 0 ] || targets=(message report)
export RUSTC_BOOTSTRAP=1
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    find ../tests/fixtures -type f \( -name '*.eml' -o -name '*.json' -o -name '*.gz' \) -exec cp {} "corpus/$t/" \;
    echo "== fuzz $t for ${secs}s"
    cargo fuzz run "$t" "corpus/$t" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 2>&1 \
        | tee "fuzz-$t.log" | grep -E '^(#[0-9]+.*(pulse|DONE|NEW)|stat::|==[0-9]+== ERROR|SUMMARY|Done)' | tail -25
done
