#!/usr/bin/env bash
# Every test of the project: the README's test command.
#
#   tests/run.sh [--no-skip]
#
# 1. host: `cargo test` — unit tests and the integration tests that need nothing but the
#    Rust toolchain. Tests that need a real component (Chromium, PostgreSQL, promtool,
#    rsyslogd, NSD, ...) or root are #[ignore = "needs ..."] here: they never report ok
#    without having run.
# 2. disposable root (tests/root/enter.sh): the same test binaries, `--ignored`, inside a
#    Debian root that holds those components, in its own mount, PID and network
#    namespaces. The host's packages, /etc, daemons and ports are not touched; the one
#    thing that may be added to the host is mmdebstrap, which builds the root (said when
#    it happens).
# 3. end-to-end suite (tests/mta/suite.sh, in the disposable root): the Debian package
#    under real Postfix, Exim, OpenDKIM, tlsrpt-reporter, lighttpd, nginx and Apache.
#
# Ends with one tally, "N passed, N failed, N skipped", after the list of what was skipped
# and why. Exit status 0 when nothing failed; 1 when something failed, or when something
# was skipped and skips are failures (--no-skip, or CI=true).
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
NO_SKIP=
[ "${CI:-}" = true ] && NO_SKIP=1
for a in "$@"; do
    case $a in
        --no-skip) NO_SKIP=1 ;;
        *) echo "usage: $0 [--no-skip]" >&2; exit 2 ;;
    esac
done
case $ROOT in *[[:space:]]*)
    echo "tests/run.sh: the repository path must not contain spaces ($ROOT): cargo splits its runner setting on them" >&2
    exit 2 ;;
esac

LOGS=$(mktemp -d "${TMPDIR:-/tmp}/tlsrpt-tests.XXXXXX")
trap 'rm -rf "$LOGS"' EXIT
PASS=0 FAIL=0 SKIPPED=() FAILED=() PHASES=()
T_START=$SECONDS

# cargo_counts FILE: "passed failed ignored" summed over the file's "test result:" lines.
cargo_counts() {
    sed -n 's/^test result: [A-Za-z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored.*/\1 \2 \3/p' "$1" |
        awk '{p += $1; f += $2; i += $3} END {printf "%d %d %d\n", p, f, i}'
}
# cargo_ignored FILE: "name<TAB>reason" of every test the file shows ignored.
cargo_ignored() {
    sed -n 's/^test \(.*\) \.\.\. ignored\(, \(.*\)\)\{0,1\}$/\1\t\3/p' "$1"
}
phase_done() { # phase_done NAME SECONDS PASSED FAILED
    PHASES+=("$(printf '%-44s %5d passed, %3d failed  (%d s)' "$1" "$3" "$4" "$2")")
    PASS=$((PASS + $3))
    FAIL=$((FAIL + $4))
}

# cargo_phase NAME LABEL LOG STATUS: the counts of one cargo test run, its failures
# named "LABEL: test" (a non-zero exit without a failing test is a failure of its own).
cargo_phase() {
    local name=$1 label=$2 log=$3 status=$4 p f
    read -r p f _ < <(cargo_counts "$log")
    if [ "$status" != 0 ] && [ "$f" = 0 ]; then
        f=1
        FAILED+=("$label: cargo test exited $status (a build error, or a test binary that crashed)")
    fi
    while IFS= read -r l; do FAILED+=("$label: $l"); done < <(sed -n 's/^test \(.*\) \.\.\. FAILED$/\1/p' "$log")
    phase_done "$name" $((SECONDS - t0)) "$p" "$f"
}

# --- 1. host -----------------------------------------------------------------------
echo "== 1/3 host: cargo test (unit tests and the tests that need only the toolchain)"
t0=$SECONDS
cargo test --locked --no-fail-fast 2>&1 | tee "$LOGS/host.txt"
host_status=${PIPESTATUS[0]}
cargo_phase "host: cargo test" host "$LOGS/host.txt" "$host_status"
cargo_ignored "$LOGS/host.txt" | sort -u > "$LOGS/ignored.txt"

# --- 2 and 3. the disposable root ---------------------------------------------------
ROOT_SKIP=
if [ "$host_status" != 0 ] && ! grep -q '^test result:' "$LOGS/host.txt"; then
    ROOT_SKIP="the test binaries did not build"
else
    t0=$SECONDS
    out=$("$ROOT/tests/root/enter.sh" --prepare 2>&1)
    st=$?
    printf '%s\n' "$out" | grep -v '^skipped: '
    case $st in
        0) echo "== disposable root ready ($((SECONDS - t0)) s)" ;;
        77) ROOT_SKIP=$(printf '%s\n' "$out" | sed -n 's/^skipped: //p' | head -1) ;;
        *) ROOT_SKIP="the disposable root could not be built (see above)"
           FAIL=$((FAIL + 1)); FAILED+=("building the disposable root") ;;
    esac
fi

: > "$LOGS/ran-in-root.txt"
if [ -z "$ROOT_SKIP" ]; then
    echo "== 2/3 disposable root: the component tests (cargo test -- --ignored, each test binary run inside the root)"
    t0=$SECONDS
    host=$(rustc -vV | sed -n 's/^host: //p' | tr 'a-z-' 'A-Z_')
    env "CARGO_TARGET_${host}_RUNNER=$ROOT/tests/root/enter.sh --here --" \
        cargo test --locked --no-fail-fast -- --ignored 2>&1 | tee "$LOGS/root.txt"
    cargo_phase "disposable root: component tests" root "$LOGS/root.txt" "${PIPESTATUS[0]}"
    sed -n 's/^test \(.*\) \.\.\. \(ok\|FAILED\)$/\1/p' "$LOGS/root.txt" | sort -u > "$LOGS/ran-in-root.txt"

    echo "== 3/3 end-to-end suite: build tlsrpt-pipe, tlsrpt and the Debian package (and a second version, for the upgrade)"
    t0=$SECONDS
    p=0 f=0
    rm -f "$ROOT"/target/deb/*.deb
    VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
    if cargo build --release --locked -q &&
        "$ROOT/packaging/build-deb.sh" --no-build >/dev/null &&
        "$ROOT/packaging/build-deb.sh" --no-build --version "$VERSION+upgrade1" >/dev/null; then
        echo "== entering the disposable root for tests/mta/suite.sh"
        "$ROOT/tests/root/enter.sh" -- /bin/bash /src/tests/mta/suite.sh 2>&1 | tee "$LOGS/e2e.txt"
        tally=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$LOGS/e2e.txt" | tail -1)
        if [ -n "$tally" ]; then
            p=${tally%% passed*}
            f=${tally#*passed, }; f=${f%% failed*}
        else
            f=1
        fi
        grep '^FAIL ' "$LOGS/e2e.txt" | sed 's/^FAIL /end-to-end: /' > "$LOGS/failed-e2e.txt"
        while IFS= read -r l; do FAILED+=("$l"); done < "$LOGS/failed-e2e.txt"
        [ -n "$tally" ] || FAILED+=("end-to-end: the suite ended without its tally")
    else
        f=1
        FAILED+=("end-to-end: the release build or the package build failed")
    fi
    phase_done "end-to-end suite (tests/mta/suite.sh)" $((SECONDS - t0)) "$p" "$f"
fi

# What did not run: ignored on the host and not run in the root, and the suite.
while IFS=$'\t' read -r name reason; do
    grep -qxF -- "$name" "$LOGS/ran-in-root.txt" && continue
    SKIPPED+=("$name: ${reason:-ignored}")
done < "$LOGS/ignored.txt"
[ -z "$ROOT_SKIP" ] || SKIPPED+=("the end-to-end suite tests/mta/suite.sh")

echo
echo "== summary ($((SECONDS - T_START)) s)"
for l in "${PHASES[@]}"; do echo "   $l"; done
if [ ${#FAILED[@]} -gt 0 ]; then
    echo "FAILED (${#FAILED[@]}):"
    for l in "${FAILED[@]}"; do echo "   $l"; done
fi
if [ ${#SKIPPED[@]} -gt 0 ]; then
    echo "SKIPPED (${#SKIPPED[@]}): these did not run, so they did not pass:"
    for l in "${SKIPPED[@]}"; do echo "   $l"; done
    if [ -n "$ROOT_SKIP" ]; then
        echo "   They run in the disposable root (a Debian root in its own namespaces; nothing of the host changes), which was not entered: $ROOT_SKIP"
    else
        echo "   They did not run in the disposable root (see its output above)."
    fi
    [ -z "$NO_SKIP" ] || echo "   skips are failures in this run (CI=true or --no-skip)"
fi
echo "$PASS passed, $FAIL failed, ${#SKIPPED[@]} skipped"
[ "$FAIL" = 0 ] || exit 1
[ -z "$NO_SKIP" ] || [ ${#SKIPPED[@]} = 0 ] || exit 1
exit 0
