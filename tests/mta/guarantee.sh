#!/usr/bin/env bash
# Proves the promise "the test command never harms the machine it runs on".
#
#   tests/mta/guarantee.sh COMMAND...      (as root on Debian; .ci/run passes the README's
#                                            test command, tests/run.sh)
#
# 1. Prepares what a mail server already has, creating only what is missing: Postfix
#    installed (not started) with a marker line in main.cf, a spool /var/spool/tlsrpt
#    holding a record, a tls-reports line in /etc/aliases, a file at
#    /usr/local/bin/tlsrpt-pipe.
# 2. Checksums those, /etc/passwd and /etc/group, and the whole installed package list
#    (but for mmdebstrap, the one package the test command may add; any addition is listed).
# 3. Runs COMMAND.
# 4. Checks every checksum unchanged and Postfix still installed.
# 5. Removes exactly what step 1 created (restoring /etc/aliases byte for byte), nothing
#    else. What existed before step 1 is never modified.
# Ends with "N passed, M failed"; exits non-zero if COMMAND or a check failed.
set -uo pipefail

if [ "$#" = 0 ]; then
    echo "usage: $0 COMMAND..." >&2
    exit 2
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "tests/mta/guarantee.sh: no pre-existing state prepared (needs root on Debian); running the command alone"
    exec "$@"
fi
export DEBIAN_FRONTEND=noninteractive

SPOOL=/var/spool/tlsrpt
BIN=/usr/local/bin/tlsrpt-pipe
ALIASES=/etc/aliases
STATE=$(mktemp -d /tmp/tlsrpt-guarantee.XXXXXX)
PASS=0
FAIL=0
made=() # what this script created, undone in reverse order

pkgs() { dpkg-query -W -f '${Package} ${Version} ${db:Status-Abbrev}\n' | sort; }
# The one package the test command may add to the host: mmdebstrap, which builds its
# disposable root (documented in the README; no daemon, no configuration). Every other
# package must stay exactly as it was.
pkgs_but_mmdebstrap() { pkgs | grep -v '^mmdebstrap '; }
installed() { dpkg-query -W -f '${db:Status-Abbrev}' "$1" 2>/dev/null | grep -q '^ii'; }

undo() {
    local i
    for ((i = ${#made[@]} - 1; i >= 0; i--)); do
        case ${made[i]} in
            aliases) cp -p "$STATE/aliases.orig" "$ALIASES" ;;
            aliases-new) rm -f "$ALIASES" ;;
            bin) rm -f "$BIN" ;;
            spool) rm -rf --one-file-system "$SPOOL" ;;
            policy-rc) rm -f /usr/sbin/policy-rc.d ;;
            postfix)
                # Exactly the packages this script's install added, nothing more.
                xargs -r apt-get purge -y -qq < "$STATE/added-packages" >/dev/null 2>&1
                [ -d /etc/postfix ] && [ ! -e "$STATE/had-etc-postfix" ] && rm -rf --one-file-system /etc/postfix
                ;;
        esac
    done
    rm -rf "$STATE"
}
trap undo EXIT

echo "== guarantee: preparing pre-existing state (only what is missing)"
if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Keeps the Postfix package from starting a daemon on this machine.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
    made+=(policy-rc)
fi
if ! installed postfix; then
    if apt-get install -s -y --no-install-recommends postfix 2>/dev/null | grep -q '^Remv'; then
        echo "   postfix: not installed, and installing it would remove packages here; not prepared"
    else
        [ -d /etc/postfix ] && touch "$STATE/had-etc-postfix"
        pkgs | awk '{print $1}' > "$STATE/before-packages"
        echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
        made+=(postfix)
        if apt-get install -y -qq --no-install-recommends postfix >/dev/null 2>&1; then
            pkgs | awk '{print $1}' | comm -13 "$STATE/before-packages" - > "$STATE/added-packages"
            printf '# tlsrpt-pipe guarantee marker %s\nmyhostname = guarantee.invalid\n' "$$" > /etc/postfix/main.cf
            echo "   postfix: installed (not started), main.cf with a marker line"
        else
            echo "   postfix: apt-get install failed; not prepared"
            pkgs | awk '{print $1}' | comm -13 "$STATE/before-packages" - > "$STATE/added-packages"
        fi
    fi
else
    echo "   postfix: already installed; its configuration is checked, not changed"
fi
if [ ! -e "$SPOOL" ]; then
    install -d -m 0750 "$SPOOL" && made+=(spool)
    printf '%s\n' '{"version":1,"received-at":"2026-01-01T00:00:00Z","dedup-key":"guarantee","report":{"organization-name":"Guarantee Org","report-id":"guarantee-1"}}' > "$SPOOL/2026-01-01.jsonl"
    echo "   $SPOOL: created with one record"
else
    echo "   $SPOOL: exists; checked, not changed"
fi
if [ -f "$ALIASES" ]; then
    if ! grep -q '^tls-reports:' "$ALIASES"; then
        cp -p "$ALIASES" "$STATE/aliases.orig" && made+=(aliases)
        echo 'tls-reports: "|/usr/local/bin/tlsrpt-pipe --spool /var/spool/tlsrpt"' >> "$ALIASES"
        echo "   $ALIASES: tls-reports line appended"
    fi
else
    echo 'tls-reports: "|/usr/local/bin/tlsrpt-pipe --spool /var/spool/tlsrpt"' > "$ALIASES" && made+=(aliases-new)
    echo "   $ALIASES: created with a tls-reports line"
fi
if [ ! -e "$BIN" ]; then
    printf '#!/bin/sh\n# guarantee marker %s: not the real tlsrpt-pipe\nexit 75\n' "$$" > "$BIN" && chmod 0755 "$BIN" && made+=(bin)
    echo "   $BIN: created (a marker script)"
fi

snapshot() { # one line per item: name and checksum
    local d
    for f in "$ALIASES" "$BIN" /etc/passwd /etc/group /etc/shadow /etc/postfix/main.cf /etc/postfix/master.cf /usr/sbin/policy-rc.d; do
        [ -e "$f" ] && d=$(sha256sum < "$f" | cut -c1-64) || d=absent
        echo "$f $d"
    done
    if [ -d "$SPOOL" ]; then
        d=$( (cd "$SPOOL" && find . -printf '%p %y %m %U %G %s\n' | sort && find . -type f -print0 | sort -z | xargs -0r cat) | sha256sum | cut -c1-64)
    else
        d=absent
    fi
    echo "$SPOOL(tree) $d"
    echo "packages $(pkgs_but_mmdebstrap | sha256sum | cut -c1-64)"
    echo "postfix-installed $(installed postfix && echo yes || echo no)"
}
snapshot > "$STATE/before"
pkgs > "$STATE/packages-before"

echo "== guarantee: running: $*"
"$@"
status=$?

echo "== guarantee: is everything that existed before byte-identical?"
snapshot > "$STATE/after"
while read -r name sum; do
    now=$(awk -v n="$name" '$1 == n {print $2}' "$STATE/after")
    if [ "$now" = "$sum" ]; then
        PASS=$((PASS + 1)); echo "ok   unchanged: $name"
    else
        FAIL=$((FAIL + 1)); echo "FAIL changed: $name"
    fi
done < "$STATE/before"
if ! pkgs | diff "$STATE/packages-before" - >/dev/null; then
    echo "   host package list, before (<) and after (>):"
    pkgs | diff "$STATE/packages-before" - | grep '^[<>]' | head -20 | sed 's/^/   /'
fi
echo "$PASS passed, $FAIL failed"
[ "$status" = 0 ] && [ "$FAIL" = 0 ]
