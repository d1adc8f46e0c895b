#!/usr/bin/env bash
# The disposable root: a Debian root that holds every component the tests run for real
# (Chromium, PostgreSQL, promtool and node_exporter, rsyslogd, NSD, unbound, lintian, ...,
# and the MTA and web server packages the end-to-end suite installs itself), entered with
# its own mount, PID and network namespaces. This is where every test that needs more than
# the Rust toolchain runs, so that nothing of the host is installed, started or changed.
#
#   tests/root/enter.sh --prepare                 build the root if needed (cached)
#   tests/root/enter.sh [--rw] [--cwd DIR | --here] -- COMMAND [ARG...]
#                                                 run COMMAND inside a throw-away copy
#                                                 (--here: in the current directory, as
#                                                 cargo's test runner does)
#
# - The root is made by mmdebstrap from this host's own apt sources into
#   target/mta-root/CODENAME-KEY/ and cached there (rebuilt when missing, or when the
#   package list below changes). The one thing this script may add to the host is
#   mmdebstrap itself (no daemon, no configuration), and it says so when it does.
# - Each run mounts a throw-away overlay on top of the cached root (a copy where overlayfs
#   is unavailable) and enters it with unshare(1): its own mount namespace (every mount
#   vanishes with it), PID namespace (every daemon it started dies with it) and network
#   namespace (its own loopback: port 25, 443 or 5432 of the host are neither used nor
#   disturbed).
# - The repository is mounted at /src and at its own path (read-only; --rw for the
#   benchmarks, which write bench/out), so the host's test binaries, built against the same
#   Debian release, run there unchanged: their compiled-in paths still point at the
#   repository and its target directory.
#
# Exit status: COMMAND's; 77 when the root cannot be entered here (not root, not Debian,
# no namespaces), with the reason on stdout as "skipped: REASON"; 1 when building the
# root failed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SKIP=77
skip() {
    echo "skipped: $*"
    exit "$SKIP"
}

PREPARE= RW=ro CWD=/
while [ $# -gt 0 ]; do
    case $1 in
        --prepare) PREPARE=1; shift ;;
        --rw) RW=rw; shift ;;
        --cwd) CWD=$2; shift 2 ;;
        --here) CWD=$PWD; shift ;; # as cargo's runner: the test binary's working directory
        --) shift; break ;;
        *) echo "usage: $0 --prepare | [--rw] [--cwd DIR] -- COMMAND [ARG...]" >&2; exit 2 ;;
    esac
done
[ -n "$PREPARE" ] || [ $# -gt 0 ] || { echo "usage: $0 --prepare | [--rw] [--cwd DIR] -- COMMAND [ARG...]" >&2; exit 2; }

[ "$(id -u)" = 0 ] || skip "needs root (to build a Debian root with mmdebstrap and enter it with unshare); run: sudo $ROOT/tests/run.sh"
[ -f /etc/debian_version ] && command -v apt-get >/dev/null && command -v dpkg >/dev/null ||
    skip "needs Debian (the disposable root is made from this host's apt sources)"
command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$CODENAME" ] || skip "cannot tell this Debian release's codename from /etc/os-release"
unshare --mount --pid --fork --net true 2>/dev/null ||
    skip "cannot create mount, PID and network namespaces here (a container without CAP_SYS_ADMIN?)"

# What the root holds. Installed: the base and the components the integration tests run
# (the test that needs one names it in its #[ignore = "needs ..."]; Postfix and nginx
# serve the live-probe world of tests/world/up.sh). Downloaded only: the
# MTA and web server packages, which the end-to-end suite installs, upgrades and purges
# itself (no network inside). Python tools in /opt/venv.
BASE_PKGS="python3 python3-venv adduser procps gzip iproute2 ca-certificates debconf"
TEST_PKGS="postfix nginx-light rsyslog chromium prometheus prometheus-node-exporter nsd unbound ldnsutils postgresql openssl lintian time jq util-linux bsdutils curl"
MTA_PKGS_1="postfix opendkim opendkim-tools"
MTA_PKGS_2="exim4-daemon-light" # conflicts with postfix: downloaded in a second step
WEB_PKGS="lighttpd lighttpd-mod-openssl nginx-light fcgiwrap apache2"
IMAP_PKGS="dovecot-imapd fetchmail getmail6 procmail" # reports in a mailbox: retrievers, formail
PY_PKGS="tlsrpt-reporter dkimpy jsonschema"
KEY=$(printf '%s\n' 2 "$CODENAME" "$BASE_PKGS" "$TEST_PKGS" "$MTA_PKGS_1" "$MTA_PKGS_2" "$WEB_PKGS" "$IMAP_PKGS" "$PY_PKGS" | sha256sum | cut -c1-12)
CACHE="$ROOT/target/mta-root"
BASE="$CACHE/$CODENAME-$KEY"
STAMP=.tlsrpt-mta-root # in every root this script made, and only there

ensure_mmdebstrap() {
    command -v mmdebstrap >/dev/null && return 0
    echo "== installing mmdebstrap on this host: it builds the disposable root (no daemon, no configuration; the only package the tests add here)"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null 2>&1; then
        apt-get update -qq >/dev/null 2>&1 || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null ||
            { echo "could not install mmdebstrap (apt-get install mmdebstrap)"; return 1; }
    fi
}

build_root() {
    local tmp="$BASE.building.$$" wheels sources=() f
    # The host's own apt sources, so the root comes from the mirror this machine uses.
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] && grep -qE '^[[:space:]]*(deb|Types:|URIs:)' "$f" && sources+=("$f")
    done
    [ ${#sources[@]} -gt 0 ] || { echo "no apt sources found in /etc/apt"; return 1; }
    ensure_mmdebstrap || return 1
    command -v python3 >/dev/null || { echo "python3 is needed on the host to fetch the Python test tools ($PY_PKGS)"; return 1; }
    echo "== building the disposable root $BASE (mmdebstrap $CODENAME; cached for later runs)"
    mkdir -p "$CACHE"
    # Roots of older package lists: only directories that carry our stamp.
    for old in "$CACHE"/*/; do
        old=${old%/}
        [ "$old" != "$BASE" ] && [ -f "$old/$STAMP" ] && rm -rf --one-file-system "$old"
    done
    # Wheels are fetched by the host's pip (its index, proxy and certificates), installed
    # offline inside the root.
    wheels=$(mktemp -d "$CACHE/wheels.XXXXXX")
    # shellcheck disable=SC2086
    if ! env -u PIP_FIND_LINKS python3 -m pip wheel -q -w "$wheels/w" $PY_PKGS >/dev/null; then
        rm -rf "$wheels"
        echo "pip wheel $PY_PKGS failed (the host's python3 -m pip fetches them)"
        return 1
    fi
    # shellcheck disable=SC2086
    if ! mmdebstrap --quiet --variant=apt --skip=cleanup/apt \
        --include="$(echo $BASE_PKGS $TEST_PKGS | tr ' ' ,)" \
        --customize-hook="chroot \"\$1\" apt-get install --download-only -y -qq $MTA_PKGS_1" \
        --customize-hook="chroot \"\$1\" apt-get install --download-only -y -qq $MTA_PKGS_2" \
        --customize-hook="chroot \"\$1\" apt-get install --download-only -y -qq --no-install-recommends $WEB_PKGS" \
        --customize-hook="chroot \"\$1\" apt-get install --download-only -y -qq --no-install-recommends $IMAP_PKGS" \
        --customize-hook="mkdir \"\$1/tmp/wheels\" && cp \"$wheels\"/w/* \"\$1/tmp/wheels/\"" \
        --customize-hook="chroot \"\$1\" sh -c 'python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-index --find-links /tmp/wheels $PY_PKGS && rm -rf /tmp/wheels'" \
        --customize-hook="touch \"\$1/$STAMP\"" \
        "$CODENAME" "$tmp" "${sources[@]}"; then
        rm -rf --one-file-system "$tmp" "$wheels"
        return 1
    fi
    rm -rf "$wheels"
    mv "$tmp" "$BASE"
}

prepare() {
    mkdir -p "$CACHE"
    # One builder at a time; the others wait for its root.
    exec 9>"$CACHE/.lock"
    flock 9
    if [ ! -f "$BASE/$STAMP" ]; then
        local t0=$SECONDS
        build_root || { echo "could not build the disposable root"; return 1; }
        echo "== disposable root built in $((SECONDS - t0)) s"
    fi
    exec 9>&-
}

prepare || exit 1
[ -z "$PREPARE" ] || exit 0

# The target directory may live outside the repository (CARGO_TARGET_DIR).
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
case $TARGET in /*) ;; *) TARGET=$ROOT/$TARGET ;; esac

RUN=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf --one-file-system "$RUN"' EXIT
mkdir "$RUN/upper" "$RUN/work" "$RUN/root"

# Inside the new namespaces: mount the root, the kernel file systems, the repository, then
# chroot into it and run the command. Every mount made here belongs to this namespace
# only and disappears when it ends.
# shellcheck disable=SC2016
enter='
set -e
base=$1 run=$2 src=$3 target=$4 rw=$5 cwd=$6
shift 6
r=$run/root
if ! mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$r" 2>/dev/null; then
    echo "== overlayfs unavailable: copying the root"
    cp -a "$base/." "$r/"
fi
mount -t proc proc "$r/proc"
mount -t sysfs -o ro sysfs "$r/sys" 2>/dev/null || true
mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
for d in null zero full random urandom tty; do
    touch "$r/dev/$d" && mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$r/dev/pts"
ln -s pts/ptmx "$r/dev/ptmx"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mount_repo() { # mount_repo HOST-DIR DIR-IN-ROOT
    mkdir -p "$r$2"
    mount --bind "$1" "$r$2"
    mount -o "remount,bind,$rw" "$r$2"
}
mount_repo "$src" /src
[ "$src" = /src ] || mount_repo "$src" "$src"
case $target/ in "$src"/*) ;; *) mount_repo "$target" "$target" ;; esac
chroot "$r" ip link set lo up
# Not exec: this shell stays PID 1 of the namespace (reaping orphans), since daemons
# whose parent is PID 1 assume init started them and stay in the foreground (Exim -bd).
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    ${RUST_BACKTRACE:+RUST_BACKTRACE=$RUST_BACKTRACE} ${RUST_TEST_THREADS:+RUST_TEST_THREADS=$RUST_TEST_THREADS} \
    TLSRPT_IN_DISPOSABLE_ROOT=1 /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$cwd" "$@"
exit $? # a command after chroot keeps bash from exec-ing it as the last command
'
set +e
unshare --mount --propagation private --pid --fork --kill-child --net -- \
    bash -c "$enter" enter "$BASE" "$RUN" "$ROOT" "$TARGET" "$RW" "$CWD" "$@"
status=$?
set -e
exit "$status"
