#!/usr/bin/env bash
# Builds the Debian package tlsrpt-pipe_VERSION_ARCH.deb into target/deb/ from this
# repository, with dpkg-deb only (no debhelper, no cargo-deb: what the package holds
# is listed here, file by file).
#
#   packaging/build-deb.sh [--version VERSION] [--no-build]
#
# VERSION defaults to the one in Cargo.toml. Prints the path of the .deb.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
BUILD=1
while [ $# -gt 0 ]; do
    case $1 in
        --version) VERSION=$2; shift 2 ;;
        --no-build) BUILD=; shift ;;
        *) echo "usage: $0 [--version VERSION] [--no-build]" >&2; exit 2 ;;
    esac
done
PKG=tlsrpt-pipe
ARCH=$(dpkg --print-architecture)
[ -n "$BUILD" ] && cargo build --release --locked -q
OUT="$ROOT/target/deb"
STAGE="$OUT/stage-$VERSION"
rm -rf "$STAGE"
mkdir -p "$STAGE/DEBIAN"
DOC="$STAGE/usr/share/doc/$PKG"

# Programs (stripped: the debug symbols are for the developers' builds).
install -d "$STAGE/usr/bin"
for b in tlsrpt-pipe tlsrpt; do
    install -m 0755 "target/release/$b" "$STAGE/usr/bin/$b"
    strip --strip-unneeded --remove-section=.comment --remove-section=.note "$STAGE/usr/bin/$b"
done

# Manual pages.
install -d "$STAGE/usr/share/man/man8" "$STAGE/usr/share/man/man1"
gzip -9nc man/tlsrpt-pipe.8 > "$STAGE/usr/share/man/man8/tlsrpt-pipe.8.gz"
gzip -9nc man/tlsrpt.1 > "$STAGE/usr/share/man/man1/tlsrpt.1.gz"

# Documentation: README, the record and summary schemas, every contrib snippet.
install -d "$DOC/examples" "$DOC/schema"
gzip -9nc README.md > "$DOC/README.md.gz"
install -m 0644 schema/*.json "$DOC/schema/"
cp -r contrib/. "$DOC/examples/"
find "$DOC/examples" -type d -exec chmod 0755 {} + ; find "$DOC/examples" -type f -exec chmod 0644 {} +
install -m 0644 packaging/copyright "$DOC/copyright"
sed "s/@VERSION@/$VERSION/" packaging/changelog | gzip -9nc > "$DOC/changelog.gz"

# systemd units of the operator commands: installed, never enabled or started.
install -d "$STAGE/lib/systemd/system"
install -m 0644 contrib/systemd/*.service contrib/systemd/*.timer "$STAGE/lib/systemd/system/"

# The cron jobs, all commented out: a conffile the operator edits to enable them.
install -d "$STAGE/etc/cron.d"
install -m 0644 packaging/cron.d "$STAGE/etc/cron.d/tlsrpt"

# Control files.
install -m 0755 packaging/postinst "$STAGE/DEBIAN/postinst"
echo /etc/cron.d/tlsrpt > "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" packaging/control > "$STAGE/DEBIAN/control"
(cd "$STAGE" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) > "$STAGE/DEBIAN/md5sums"
chmod 0644 "$STAGE/DEBIAN/control" "$STAGE/DEBIAN/conffiles" "$STAGE/DEBIAN/md5sums"

DEB="$OUT/${PKG}_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$DEB" >/dev/null
rm -rf "$STAGE"
echo "$DEB"
