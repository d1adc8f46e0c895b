#!/usr/bin/env bash
# The benchmark harnesses in quick mode, as CI runs them: proves they still work; no
# timing is asserted (the full runs are in BENCHMARKS.md).
#
#   bench/quick.sh
#
# The binaries and the generated inputs are built on the host (cargo); the harnesses then
# run inside the disposable root of the tests (tests/root/enter.sh), which has what they
# compare against and measure with (GNU time, jq, gzip, PostgreSQL), so the host needs
# none of it. Without root, they run on the host with what it has.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
cargo build --release --locked -q
mkdir -p bench/out/inputs
cargo bench -q --locked --bench stages -- --write-inputs bench/out/inputs >/dev/null
HARNESSES=("bench/bench.py --quick" "bench/summary.py --quick" "bench/load.py --quick" "bench/db.py --quick" "bench/backfill.py --quick" "bench/check_domain.py --quick")
# shellcheck disable=SC2016
script='for h in "$@"; do echo "== python3 $h --no-build"; python3 $h --no-build || exit 1; done'
set +e
tests/root/enter.sh --rw --cwd "$ROOT" -- /bin/sh -c "$script" sh "${HARNESSES[@]}" | tee bench/out/quick.log
status=${PIPESTATUS[0]}
set -e
if [ "$status" = 77 ]; then
    echo "== the disposable root cannot be entered here: running the harnesses on this host (not bench/db.py nor bench/check_domain.py: their PostgreSQL and world run in the root)"
    sh -c "$script" sh "${HARNESSES[@]:0:3}" "${HARNESSES[4]}"
else
    exit "$status"
fi
