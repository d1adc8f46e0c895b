#!/usr/bin/env bash
# End-to-end suite, host side. Builds tlsrpt-pipe, then runs tests/mta/suite.sh (real
# Postfix, Exim, OpenDKIM and tlsrpt-reporter) inside a disposable Debian root:
#
#   - the root is made by mmdebstrap from this host's own apt sources into
#     target/mta-root/CODENAME-KEY/ and cached there (rebuilt when missing, or when the
#     package list below changes); the MTA packages are only downloaded into it, and the
#     Python test tools are installed into /opt/venv in it;
#   - each run mounts a throw-away overlay on top of the cached root (a copy where
#     overlayfs is unavailable) and enters it with unshare(1): its own mount namespace (every
#     mount vanishes with it), its own PID namespace (every daemon it started dies with it)
#     and its own network namespace (its loopback, so port 25 of a mail server running on
#     this host is neither used nor disturbed).
#
# So nothing of the host is installed, changed or removed: not its packages, /etc,
# /var/spool/tlsrpt, /usr/local/bin nor its users. Safe on a production mail server.
# Needs root and Debian with mmdebstrap; anywhere else it says why it skipped.
# Ends with "N passed, M failed"; exits non-zero if anything failed.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
skip() {
    echo "tests/mta/run.sh: skipped: $*"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
}

[ "$(id -u)" = 0 ] || skip "needs root (to build a Debian root with mmdebstrap and enter it with unshare); it changes nothing on the host"
[ -f /etc/debian_version ] && command -v apt-get >/dev/null || skip "needs Debian (the disposable root is made from this host's apt sources)"
command -v mmdebstrap >/dev/null || skip "mmdebstrap is not installed (apt-get install mmdebstrap; .ci/run does)"
command -v unshare >/dev/null || skip "unshare (util-linux) is not installed"
CODENAME=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[ -n "$CODENAME" ] || skip "cannot tell this Debian release's codename from /etc/os-release"

# The disposable root: its Debian packages, the MTA packages the suite installs inside it
# (downloaded only: it installs and replaces them itself), and the Python tools.
BASE_PKGS="python3,python3-venv,adduser,procps,gzip,iproute2,ca-certificates,debconf"
MTA_PKGS_1="postfix opendkim opendkim-tools"
MTA_PKGS_2="exim4-daemon-light" # conflicts with postfix: downloaded in a second step
WEB_PKGS="lighttpd lighttpd-mod-openssl nginx-light fcgiwrap apache2 curl" # the HTTPS-report (CGI) part
PY_PKGS="tlsrpt-reporter dkimpy jsonschema"
KEY=$(printf '%s\n' 1 "$CODENAME" "$BASE_PKGS" "$MTA_PKGS_1" "$MTA_PKGS_2" "$WEB_PKGS" "$PY_PKGS" | sha256sum | cut -c1-12)
CACHE="$ROOT/target/mta-root"
BASE="$CACHE/$CODENAME-$KEY"
STAMP=.tlsrpt-mta-root # in every root this script made, and only there

# The host's own apt sources, so the root comes from the mirror this machine uses.
sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && grep -qE '^[[:space:]]*(deb|Types:|URIs:)' "$f" && sources+=("$f")
done
[ ${#sources[@]} -gt 0 ] || skip "no apt sources found in /etc/apt"

build_root() {
    local tmp="$BASE.building.$$" wheels
    echo "== building the disposable root $BASE (mmdebstrap $CODENAME; cached for later runs)"
    mkdir -p "$CACHE"
    # Roots of older package lists: only directories that carry our stamp.
    for old in "$CACHE"/*/; do
        old=${old%/}
        [ "$old" != "$BASE" ] && [ -f "$old/$STAMP" ] && rm -rf --one-file-system "$old"
    done
    # Wheels are fetched by the host's pip (its index and certificates), installed offline.
    wheels=$(mktemp -d "$CACHE/wheels.XXXXXX")
    # shellcheck disable=SC2086
    env -u PIP_FIND_LINKS python3 -m pip wheel -q -w "$wheels" $PY_PKGS >/dev/null || { rm -rf "$wheels"; echo "pip wheel $PY_PKGS failed"; return 1; }
    if ! mmdebstrap --quiet --variant=apt --skip=cleanup/apt --include="$BASE_PKGS" \
        --customize-hook="chroot \"\$1\" apt-get install --download-only -y -qq $MTA_PKGS_1" \
        --customize-hook="chroot \"\$1\" apt-get install --download-only -y -qq $MTA_PKGS_2" \
        --customize-hook="chroot \"\$1\" apt-get install --download-only -y -qq --no-install-recommends $WEB_PKGS" \
        --customize-hook="mkdir \"\$1/tmp/wheels\" && cp \"$wheels\"/* \"\$1/tmp/wheels/\"" \
        --customize-hook="chroot \"\$1\" sh -c 'python3 -m venv /opt/venv && /opt/venv/bin/pip install -q --no-index --find-links /tmp/wheels $PY_PKGS && rm -rf /tmp/wheels'" \
        --customize-hook="touch \"\$1/$STAMP\"" \
        "$CODENAME" "$tmp" "${sources[@]}"; then
        rm -rf --one-file-system "$tmp" "$wheels"
        return 1
    fi
    rm -rf "$wheels"
    mv "$tmp" "$BASE"
}

[ -f "$BASE/$STAMP" ] || build_root || { echo "could not build the disposable root"; echo "0 passed, 1 failed"; exit 1; }

echo "== build tlsrpt-pipe, tlsrpt and the Debian package (and a second version, for the upgrade)"
(cd "$ROOT" && cargo build --release --locked -q) || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
rm -f "$ROOT"/target/deb/*.deb
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)
DEB=$("$ROOT/packaging/build-deb.sh" --no-build) && "$ROOT/packaging/build-deb.sh" --no-build --version "$VERSION+upgrade1" >/dev/null \
    || { echo "package build failed"; echo "0 passed, 1 failed"; exit 1; }
# lintian reads the package on the host (it changes nothing); the suite reports it.
if command -v lintian >/dev/null; then
    if out=$(lintian --tag-display-limit 0 --fail-on error,warning "$DEB" 2>&1 | grep -v 'root privileges is not recommended'); [ -z "$out" ]; then
        echo clean > "$ROOT/target/deb/lintian.txt"
    else
        printf '%s\n' "$out" > "$ROOT/target/deb/lintian.txt"
    fi
else
    echo "lintian not installed (apt-get install lintian; .ci/run does)" > "$ROOT/target/deb/lintian.txt"
fi

RUN=$(mktemp -d "$CACHE/run.XXXXXX")
trap 'rm -rf --one-file-system "$RUN"' EXIT
mkdir "$RUN/upper" "$RUN/work" "$RUN/root"

# Inside the new namespaces: mount the root, the kernel file systems, the repository
# (read-only, at /src), then chroot into it and run the suite. Every mount made here
# belongs to this namespace only and disappears when it ends.
# shellcheck disable=SC2016
enter='
set -e
base=$1 run=$2 src=$3
r=$run/root
if ! mount -t overlay overlay -o "lowerdir=$base,upperdir=$run/upper,workdir=$run/work" "$r" 2>/dev/null; then
    echo "== overlayfs unavailable: copying the root"
    cp -a "$base/." "$r/"
fi
mount -t proc proc "$r/proc"
mount -t tmpfs -o mode=0755 tmpfs "$r/dev"
for d in null zero full random urandom tty; do
    touch "$r/dev/$d" && mount --bind "/dev/$d" "$r/dev/$d"
done
mkdir -p "$r/dev/pts" "$r/dev/shm"
mount -t tmpfs -o mode=1777 tmpfs "$r/dev/shm"
ln -s /proc/self/fd "$r/dev/fd"
ln -s /proc/self/fd/0 "$r/dev/stdin"; ln -s /proc/self/fd/1 "$r/dev/stdout"; ln -s /proc/self/fd/2 "$r/dev/stderr"
mount -t tmpfs -o mode=0755 tmpfs "$r/run"
mount -t tmpfs -o mode=1777 tmpfs "$r/tmp"
mkdir -p "$r/src"
mount --bind "$src" "$r/src"
mount -o remount,bind,ro "$r/src"
# Not exec: this shell stays PID 1 of the namespace (reaping orphans), since daemons
# whose parent is PID 1 assume init started them and stay in the foreground (Exim -bd).
chroot "$r" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
    /bin/bash /src/tests/mta/suite.sh
exit $? # a command after chroot keeps bash from exec-ing it as the last command
'
echo "== entering the disposable root (own mount, PID and network namespaces)"
set +e
unshare --mount --propagation private --pid --fork --kill-child --net -- bash -c "$enter" enter "$BASE" "$RUN" "$ROOT"
status=$?
set -e
exit "$status"
