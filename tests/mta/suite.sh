#!/usr/bin/env bash
# End-to-end: tlsrpt-pipe under real Postfix and real Exim 4 (Debian packages), fed by
# real report emails over SMTP and sendmail, by an /etc/aliases pipe, and by sys4's
# tlsrpt-reporter. Uses the contrib/ snippets verbatim.
#
# Runs only inside the disposable root that tests/mta/run.sh builds and enters (its own
# mount, PID and network namespaces; the repository read-only at /src): it installs
# packages, rewrites /etc/aliases and main.cf, and deletes its spool, all of which would
# harm a real machine, so it refuses to run anywhere else.
# Ends with "N passed, M failed"; exits non-zero if anything failed.
set -uo pipefail

if [ ! -f /.tlsrpt-mta-root ]; then
    echo "tests/mta/suite.sh: refused: this is not the disposable root of tests/mta/run.sh; run that instead"
    echo "0 passed, 1 failed"
    exit 1
fi

ROOT=/src
HERE="$ROOT/tests/mta"
FIX="$ROOT/tests/fixtures"
CHECK="python3 $HERE/check.py"
VENV=/opt/venv # made with the root: tlsrpt-reporter, dkimpy, jsonschema
SPOOL=/var/spool/tlsrpt
BIN=/usr/bin/tlsrpt-pipe # from the package, as the contrib snippets name it
DEB=$(ls /src/target/deb/tlsrpt-pipe_*_*.deb | grep -v '+upgrade' | head -1)
DEB2=$(ls /src/target/deb/tlsrpt-pipe_*+upgrade*_*.deb | head -1)
WORK=$(mktemp -d /tmp/tlsrpt-mta.XXXXXX)
chmod 0755 "$WORK"
PASS=0
FAIL=0

export DEBIAN_FRONTEND=noninteractive
log() { printf '%s\n' "== $*"; }
pass() { PASS=$((PASS + 1)); printf 'ok   %s\n' "$*"; }
fail() { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$*"; }
check() { # check "description" command...
    local what=$1; shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
eq() { [ "$1" = "$2" ] || { echo "     expected [$2], got [$1]"; return 1; }; }
wait_for() { # wait_for SECONDS command...: poll until the command succeeds
    local t=$1; shift
    for _ in $(seq $((t * 4))); do "$@" && return 0; sleep 0.25; done
    return 1
}
count() { $CHECK count "$SPOOL" "$1"; }
has_records() { [ "$(count "$1")" = "$2" ]; }
quarantined() { [ "$($CHECK quarantined "$SPOOL")" = "$1" ]; }
in_log() { grep -q -- "$2" "$1" 2>/dev/null; }

fresh_spool() { # fresh_spool OWNER
    rm -rf "$SPOOL"
    install -d -o "$1" -g "$(id -gn "$1")" -m 0750 "$SPOOL"
}

cleanup() { # the PID namespace and the overlay go away after this; stop daemons cleanly
    [ -f /var/spool/postfix/pid/master.pid ] && postfix stop >/dev/null 2>&1
    [ -f "$WORK/exim.pid" ] && kill "$(cat "$WORK/exim.pid")" 2>/dev/null
    return 0
}
trap cleanup EXIT

ip link set lo up
# Package scripts must not start daemons: the suite starts what it needs itself.
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d

log "Debian package: lintian, install"
lintian_clean() { # lintian of the disposable root (installed there, not on the host)
    local out
    out=$(lintian --tag-display-limit 0 --fail-on error,warning "$DEB" 2>&1 | grep -v 'root privileges is not recommended')
    [ -z "$out" ] || { printf '%s\n' "$out"; return 1; }
}
check "lintian: no error or warning" lintian_clean
check "dpkg -i $(basename "$DEB")" sh -c "dpkg -i '$DEB' >/dev/null"
check "package: /usr/bin/tlsrpt-pipe and /usr/bin/tlsrpt" test -x /usr/bin/tlsrpt-pipe -a -x /usr/bin/tlsrpt
check "package: the tlsrpt system user" sh -c "getent passwd tlsrpt | grep -q ':/nonexistent:'"
check "package: /var/spool/tlsrpt owned by tlsrpt, mode 750" eq "$(stat -c '%U:%G %a' /var/spool/tlsrpt)" "tlsrpt:tlsrpt 750"
check "package: man pages, schema, examples" test -f /usr/share/man/man8/tlsrpt-pipe.8.gz -a -f /usr/share/man/man1/tlsrpt.1.gz -a -f /usr/share/doc/tlsrpt-pipe/schema/record.schema.json -a -f /usr/share/doc/tlsrpt-pipe/examples/postfix/master.cf
check "package: systemd timers shipped, none enabled" sh -c "test -f /lib/systemd/system/tlsrpt-load.timer && ! ls /etc/systemd/system/*.wants/tlsrpt-* 2>/dev/null"
check "package: cron jobs shipped, all commented out" sh -c "test -f /etc/cron.d/tlsrpt && ! grep -q '^[^#]' /etc/cron.d/tlsrpt"
check "package: installing again changes nothing" sh -c "dpkg -i '$DEB' >/dev/null && [ \"\$(stat -c '%U %a' /var/spool/tlsrpt)\" = 'tlsrpt 750' ]"
# The packages were downloaded when the root was built: no network here.
APT="apt-get install -y -qq --no-install-recommends --no-download"
WEB_PKGS_LIGHTTPD="lighttpd lighttpd-mod-openssl curl"

ID_GOOGLE=2022-09-15T00:00:00Z_test.xmox.nl           # mjl-_mox/example.eml
ID_MS=133198585438131172+test.xmox.nl                 # mjl-_mox/microsoft.eml
ID_FAIL=2026-02-08T00:00:00Z_example.com              # isseis tlsrpt_failure.eml
ID_DC=2024-01-20T00:00:00Z_nine.testrun.org           # deltachat tlsrpt.eml
$CHECK wrap-gzip "$FIX/YnkDK_tls_reporting/truncated.gz" > "$WORK/broken.eml"

# ---------------------------------------------------------------------------
log "Postfix: install"
echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
$APT postfix >/dev/null 2>&1 || fail "apt-get install postfix"
PLOG=/var/log/postfix-tlsrpt-test.log
: > "$PLOG"
cat > /etc/postfix/main.cf <<CF
compatibility_level = 3.6
myhostname = mx.example.com
mydomain = example.com
myorigin = example.com
mydestination = example.com, localhost
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $PLOG
alias_maps = hash:/etc/aliases
alias_database = hash:/etc/aliases
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
queue_run_delay = 1h
minimal_backoff_time = 1h
CF
cat "$ROOT/contrib/postfix/main.cf" >> /etc/postfix/main.cf
[ -f /etc/postfix/master.cf ] || cp /usr/share/postfix/master.cf.dist /etc/postfix/master.cf
cat "$ROOT/contrib/postfix/master.cf" >> /etc/postfix/master.cf
cp "$ROOT/contrib/postfix/transport" /etc/postfix/transport
postmap /etc/postfix/transport
grep -v '^tls-reports:' /etc/aliases 2>/dev/null > "$WORK/aliases" || true
grep -v '^#' "$ROOT/contrib/aliases" >> "$WORK/aliases"
cp "$WORK/aliases" /etc/aliases
newaliases
postconf -F '*/*/chroot = n'
fresh_spool tlsrpt
postfix start >/dev/null 2>&1
check "postfix started" wait_for 20 test -S /var/spool/postfix/public/pickup
# tlsrpt doctor sees the package and the wiring the snippets made (the rest of its
# verdicts, each piece broken in turn, in operator/tests/doctor.rs).
/usr/bin/tlsrpt doctor > "$WORK/doctor.txt" 2>&1 || true
check "doctor: the Postfix service of the snippet" grep -q '^ok *mta: Postfix service tlsrpt (master.cf) runs /usr/bin/tlsrpt-pipe as tlsrpt into /var/spool/tlsrpt$' "$WORK/doctor.txt"
check "doctor: the packaged tlsrpt-pipe, same version" grep -q '^ok *install: tlsrpt-pipe [0-9.]* (/usr/bin/tlsrpt-pipe)$' "$WORK/doctor.txt"
# Both snippets are wired here: the alias delivers as nobody (root owns /etc/aliases),
# which cannot write the tlsrpt-owned spool; doctor names it (the alias tests below
# give the spool to nobody first).
check "doctor: the alias of the snippet, as nobody" grep -q '^ok *mta: /etc/aliases alias tls-reports runs /usr/bin/tlsrpt-pipe as nobody' "$WORK/doctor.txt"
check "doctor: the spool the alias cannot write" grep -q '^error *spool: /var/spool/tlsrpt (owner tlsrpt:tlsrpt, mode 0750) is not writable by nobody' "$WORK/doctor.txt"

log "Postfix: delivery over SMTP with envelope"
$CHECK smtp noreply-smtp-tls-reporting@google.com tls-reports@example.com "$FIX/mjl-_mox/example.eml"
check "SMTP: record stored" wait_for 30 has_records "$ID_GOOGLE" 1
check "SMTP: envelope sender" eq "$($CHECK get $SPOOL $ID_GOOGLE envelope.sender)" '"noreply-smtp-tls-reporting@google.com"'
check "SMTP: envelope recipient" eq "$($CHECK get $SPOOL $ID_GOOGLE envelope.recipient)" '"tls-reports@example.com"'
check "SMTP: client address" eq "$($CHECK get $SPOOL $ID_GOOGLE envelope.client-address)" '"127.0.0.1"'
check "SMTP: queue id present" test "$($CHECK get $SPOOL $ID_GOOGLE envelope.queue-id)" != '""'
check "SMTP: size present" test "$($CHECK get $SPOOL $ID_GOOGLE envelope.size)" != null
check "SMTP: spool file owned by tlsrpt, mode 0640" eq "$(stat -c '%U %a' "$SPOOL"/*.jsonl)" "tlsrpt 640"

log "Postfix: delivery through sendmail"
/usr/sbin/sendmail -i -f tlsrpt-noreply@microsoft.com tls-reports@example.com < "$FIX/mjl-_mox/microsoft.eml"
check "sendmail: record stored" wait_for 30 has_records "$ID_MS" 1
check "sendmail: empty client address accepted" eq "$($CHECK get $SPOOL $ID_MS envelope.client-address)" '""'

log "Postfix: spool unwritable -> deferred, kept, then delivered once"
chown root:root "$SPOOL"
/usr/sbin/sendmail -i -f noreply-smtp-tls-reporting@google.com tls-reports@example.com < "$FIX/isseis_tlsrpt-digest/tlsrpt_failure.eml"
check "deferred in the log" wait_for 30 in_log "$PLOG" "status=deferred.*tlsrpt-pipe: spool"
check "still queued" wait_for 5 sh -c "postqueue -j | grep -q tls-reports@example.com"
check "not bounced" sh -c "! grep -q 'status=bounced' $PLOG"
check "nothing stored yet" has_records "$ID_FAIL" 0
chown tlsrpt:tlsrpt "$SPOOL"
postqueue -f
check "after retry: stored" wait_for 30 has_records "$ID_FAIL" 1
postqueue -f; sleep 2
check "after retry: exactly once" has_records "$ID_FAIL" 1
check "queue empty" wait_for 10 sh -c "[ -z \"\$(postqueue -j)\" ]"

log "Postfix: malformed report -> delivered, quarantined, not bounced"
/usr/sbin/sendmail -i -f tlsrpt@sender.example tls-reports@example.com < "$WORK/broken.eml"
check "malformed: quarantined" wait_for 30 quarantined 1
check "malformed: not bounced" sh -c "! grep -q 'status=bounced' $PLOG"

# tlsrpt-reporter (sys4, PyPI): collectd takes the TLS results an MTA would send it,
# reportd builds the report and delivers it. reporter_collect DIR TLSRPT-RECORD feeds
# collectd 5 successful and 3 failed sessions for example.com.
reporter_collect() {
    local R=$1 pr=$2
    mkdir -p "$R"
    "$VENV/bin/tlsrpt-collectd" --storage "sqlite://$R/collectd.sqlite" --socketname "$R/collectd.sock" --sockettimeout 1 >"$R/collectd.log" 2>&1 &
    local pid=$!
    wait_for 10 test -S "$R/collectd.sock"
    "$VENV/bin/python" - "$R/collectd.sock" "$pr" <<'PY'
import json, socket, sys
pr = sys.argv[2]
pol = {"policy-type": 2, "policy-domain": "example.com",
       "policy-string": ["version: STSv1", "mode: enforce", "mx: mx.example.com", "max_age: 86400"],
       "mx-host": ["mx.example.com"]}
def dgram(failed, details):
    p = dict(pol, t=1 if failed else 0, f=1 if failed else 0)
    if details:
        p["failure-details"] = details
    return {"dpv": "1", "d": "example.com", "pr": pr, "policies": [p]}
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
for _ in range(5):
    s.sendto(json.dumps(dgram(False, None)).encode(), sys.argv[1])
for _ in range(3):
    s.sendto(json.dumps(dgram(True, [{"c": 204, "s": "192.0.2.10", "n": "mx.example.com", "h": "mx.example.com", "r": "192.0.2.25", "a": "certificate expired"}])).encode(), sys.argv[1])
PY
    sleep 2
    kill -USR2 "$pid"; sleep 2
    kill "$pid"; wait "$pid" 2>/dev/null
}

# reporter_send DIR ORGANIZATION DELIVERY-OPTIONS...: starts reportd on what collectd
# stored in DIR, delivering as the options say; its pid in REPORTD_PID.
reporter_send() {
    local R=$1 org=$2; shift 2
    "$VENV/bin/tlsrpt-reportd" --dbname "$R/reportd.sqlite" \
        --fetchers "$VENV/bin/tlsrpt-fetcher --storage sqlite://$R/collectd.sqlite" \
        --organization_name "$org" --contact_info tlsrpt@reporter.example \
        --sender_address tlsrpt@reporter.example \
        --spread_out_delivery 1 --interval_main_loop 2 "$@" >"$R/reportd.log" 2>&1 &
    REPORTD_PID=$!
}

log "tlsrpt-reporter: a real sender's report through Postfix"
if [ -x "$VENV/bin/tlsrpt-collectd" ]; then
    R="$WORK/reporter"
    reporter_collect "$R" "v=TLSRPTv1; rua=mailto:tls-reports@example.com"
    reporter_send "$R" "Example Reporter Org" \
        --sendmail_script "tee $R/report.eml | /usr/sbin/sendmail -i -t -f tlsrpt@reporter.example"
    wait_for 60 test -s "$R/report.eml"
    sleep 2; kill "$REPORTD_PID" 2>/dev/null; wait "$REPORTD_PID" 2>/dev/null; REPORTD_PID=
    if [ -s "$R/report.eml" ]; then
        RID=$("$VENV/bin/python" -c "import sys; sys.path.insert(0, '$HERE'); import check; print(check.report_in('$R/report.eml')['report-id'])")
        check "reporter: record stored" wait_for 30 has_records "$RID" 1
        check "reporter: stored report equals the one sent" $CHECK same-report "$SPOOL" "$R/report.eml"
        check "reporter: organization" eq "$($CHECK get $SPOOL "$RID" report.organization-name)" '"Example Reporter Org"'
        check "reporter: failed sessions" eq "$($CHECK get $SPOOL "$RID" totals.failed-sessions)" 3
        check "reporter: successful sessions" eq "$($CHECK get $SPOOL "$RID" totals.successful-sessions)" 5
    else
        fail "reporter: no report mail produced (see $R/reportd.log)"; cat "$R/reportd.log" | tail -20
    fi
else
    fail "reporter: tlsrpt-reporter missing from $VENV"
fi

log "Postfix + OpenDKIM: a real DKIM verifier's verdict lands in the record"
if $APT opendkim opendkim-tools >/dev/null 2>&1; then
    D="$WORK/dkim"; mkdir -p "$D"
    opendkim-genkey -b 1024 -d sender.example -s sel -D "$D"
    # The public key as a TXT record, served by OpenDKIM's test DNS data (no DNS needed).
    PUB=$(tr -d '\n\t' < "$D/sel.txt" | sed -e 's/.*( *//' -e 's/ *).*//' -e 's/" *"//g' -e 's/"//g')
    # No spaces in the value: OpenDKIM's file data set ends the value at white space.
    echo "sel._domainkey.sender.example $(echo "$PUB" | tr -d ' ')" > "$D/dns"
    chown -R opendkim:opendkim "$D"
    cat > "$D/opendkim.conf" <<CF
Mode                    v
AuthservID              mx.example.com
RemoveARFrom            mx.example.com
Socket                  inet:8891@127.0.0.1
# The test submits from 127.0.0.1, which OpenDKIM would otherwise treat as internal
# (to be signed, not verified).
InternalHosts           192.0.2.254
TestDNSData             file:$D/dns
UserID                  opendkim
PidFile                 $D/opendkim.pid
Syslog                  no
CF
    opendkim -x "$D/opendkim.conf"
    check "opendkim started" wait_for 10 test -s "$D/opendkim.pid"
    OPENDKIM_PID=$(cat "$D/opendkim.pid")
    postconf -e 'smtpd_milters = inet:127.0.0.1:8891' 'milter_default_action = tempfail'
    # The transport from contrib, plus the trusted authserv-id as contrib/dkim/README.md says.
    ENTRY=$(postconf -M tlsrpt/unix)
    postconf -M "tlsrpt/unix=$ENTRY --trusted-authserv-id mx.example.com"
    postfix reload >/dev/null 2>&1; sleep 1
    gzip -c "$FIX/stalwartlabs_mail-auth/rpt02.json" > "$D/rpt02.json.gz"
    $CHECK wrap-gzip "$D/rpt02.json.gz" > "$D/unsigned.eml"
    # Signed by dkimpy (PyPI): Debian's opendkim-testmsg fails with "dkim_chunk(): Syntax error".
    "$VENV/bin/dkimsign" --hcanon relaxed --bcanon relaxed sel sender.example "$D/sel.private" < "$D/unsigned.eml" > "$D/signed.eml"
    RID_SIGNED=$(python3 -c "import json; print(json.load(open('$FIX/stalwartlabs_mail-auth/rpt02.json'))['report-id'])")
    $CHECK smtp tlsrpt@sender.example tls-reports@example.com "$D/signed.eml"
    check "dkim: signed report stored" wait_for 30 has_records "$RID_SIGNED" 1
    check "dkim: verdict pass from OpenDKIM" eq "$($CHECK get $SPOOL "$RID_SIGNED" authentication.verdict)" '"pass"'
    check "dkim: aligned with sender.example" eq "$($CHECK get $SPOOL "$RID_SIGNED" authentication.aligned-domain)" '"sender.example"'
    check "dkim: selector recorded" eq "$($CHECK get $SPOOL "$RID_SIGNED" authentication.dkim)" \
        "$(printf '[{"authserv-id": "mx.example.com", "result": "pass", "header-d": "sender.example", "header-i": "@sender.example", "selector": "sel"}]')"
    # A forged pass with our id, in an unsigned message: OpenDKIM's own header says none.
    python3 - "$FIX/stalwartlabs_mail-auth/rpt02.json" > "$D/forged.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1])); doc["report-id"] = "forged-1"; print(json.dumps(doc))
PY
    gzip -c "$D/forged.json" > "$D/forged.json.gz"
    { echo "Authentication-Results: mx.example.com; dkim=pass header.d=sender.example"
      $CHECK wrap-gzip "$D/forged.json.gz"; } > "$D/forged.eml"
    $CHECK smtp tlsrpt@sender.example tls-reports@example.com "$D/forged.eml"
    check "dkim: forged report stored" wait_for 30 has_records forged-1 1
    check "dkim: forged A-R header not believed" eq "$($CHECK get $SPOOL forged-1 authentication.verdict)" '"unauthenticated"'
    postconf -e 'smtpd_milters =' 'milter_default_action = accept'
    postconf -M "tlsrpt/unix=$ENTRY"
    postfix reload >/dev/null 2>&1; sleep 1
    kill "$OPENDKIM_PID" 2>/dev/null; OPENDKIM_PID=
else
    fail "dkim: apt-get install opendkim opendkim-tools failed"
fi

log "Every stored record matches schema/record.schema.json"
if [ -x "$VENV/bin/python" ]; then
    check "records validate against the schema" "$VENV/bin/python" "$HERE/check.py" schema "$SPOOL" "$ROOT/schema/record.schema.json"
else
    fail "jsonschema missing from $VENV"
fi

log "tlsrpt summary --mail-to: the weekly digest through Postfix into a local mailbox"
OP="$ROOT/target/release/tlsrpt"
# Every report the suite stored so far, whatever its date, authenticated or not.
DIGEST_ARGS="--spool $SPOOL --since 3650d --include-unauthenticated"
# shellcheck disable=SC2086
"$OP" summary $DIGEST_ARGS --format json > "$WORK/summary.json"
check "summary json validates against schema/summary.schema.json" \
    "$VENV/bin/python" -c "import json,jsonschema,sys; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))" \
    "$WORK/summary.json" "$ROOT/schema/summary.schema.json"
rm -f /var/mail/root
# shellcheck disable=SC2086
check "digest handed to sendmail" "$OP" summary $DIGEST_ARGS --mail-to root@example.com --mail-from tlsrpt-digest@example.com
check "digest delivered to the mailbox" wait_for 30 test -s /var/mail/root
check "digest: one well-formed message whose figures match the spool" \
    "$VENV/bin/python" "$HERE/check.py" digest /var/mail/root "$WORK/summary.json"

log "Postfix: /etc/aliases pipe via local(8)"
postconf -e 'transport_maps ='
fresh_spool nobody
postfix reload >/dev/null 2>&1; sleep 1
$CHECK smtp noreply-smtp-tls-reporting@google.com tls-reports@example.com "$FIX/deltachat_deltachat-core-rust/tlsrpt.eml"
check "aliases: record stored" wait_for 30 has_records "$ID_DC" 1
check "aliases: delivered by local(8)" wait_for 5 in_log "$PLOG" "relay=local.*status=sent"
check "aliases: ran as nobody" eq "$(stat -c '%U' "$SPOOL"/*.jsonl)" nobody

log "Postfix: stop (installing Exim replaces it)"
postfix stop >/dev/null 2>&1
sleep 1
check "postfix stopped" sh -c "! postfix status 2>/dev/null"

# ---------------------------------------------------------------------------
log "Exim: install"
$APT exim4-daemon-light >/dev/null 2>&1 || fail "apt-get install exim4-daemon-light"
ELOG=/var/log/exim4
mkdir -p "$ELOG" && chown Debian-exim:adm "$ELOG" 2>/dev/null
rm -f "$ELOG"/mainlog
{
    cat <<CF
primary_hostname = mx.example.com
keep_environment =
domainlist local_domains = example.com : localhost
qualify_domain = example.com
local_interfaces = 127.0.0.1
daemon_smtp_ports = 25
never_users = root
log_file_path = $ELOG/%slog
acl_smtp_rcpt = acl_check_rcpt
begin acl
acl_check_rcpt:
  accept domains = +local_domains
  deny message = relay not permitted
begin routers
CF
    cat "$ROOT/contrib/exim4/router"
    echo "begin transports"
    cat "$ROOT/contrib/exim4/transport"
    cat <<CF
begin retry
*   *   F,2h,1h
CF
} > /etc/exim4/exim4.conf
fresh_spool tlsrpt
exim4 -bV >/dev/null || fail "exim4 config invalid"
exim4 -bd -oP "$WORK/exim.pid"
check "exim started" wait_for 20 sh -c "python3 -c 'import socket; socket.create_connection((\"127.0.0.1\", 25), 2)'"

log "Exim: delivery over SMTP, envelope from the environment"
$CHECK smtp noreply-smtp-tls-reporting@google.com tls-reports@example.com "$FIX/mjl-_mox/example.eml"
check "exim SMTP: record stored" wait_for 30 has_records "$ID_GOOGLE" 1
check "exim SMTP: envelope sender from \$SENDER" eq "$($CHECK get $SPOOL $ID_GOOGLE envelope.sender)" '"noreply-smtp-tls-reporting@google.com"'
check "exim SMTP: recipient from \$RECIPIENT" eq "$($CHECK get $SPOOL $ID_GOOGLE envelope.recipient)" '"tls-reports@example.com"'
check "exim SMTP: queue id from \$MESSAGE_ID" test "$($CHECK get $SPOOL $ID_GOOGLE envelope.queue-id)" != null
check "exim SMTP: no mbox From line trouble, delivered" wait_for 5 in_log "$ELOG/mainlog" "=> tls-reports.*T=tlsrpt_pipe"

log "Exim: sendmail -odi"
exim4 -odi -f tlsrpt-noreply@microsoft.com tls-reports@example.com < "$FIX/mjl-_mox/microsoft.eml"
check "exim sendmail: record stored" wait_for 30 has_records "$ID_MS" 1

log "Exim: spool unwritable -> deferred, kept, then delivered once"
chown root:root "$SPOOL"
exim4 -odi -f noreply-smtp-tls-reporting@google.com tls-reports@example.com < "$FIX/isseis_tlsrpt-digest/tlsrpt_failure.eml"
check "exim: deferred (==) in mainlog" wait_for 30 in_log "$ELOG/mainlog" "== tls-reports@example.com.*T=tlsrpt_pipe"
check "exim: still queued" eq "$(exim4 -bpc)" 1
check "exim: not bounced" sh -c "! grep -q '\*\* tls-reports@example.com' $ELOG/mainlog"
check "exim: nothing stored yet" has_records "$ID_FAIL" 0
chown tlsrpt:tlsrpt "$SPOOL"
QID=$(exim4 -bp | awk 'NF>=4 && $3 ~ /-/ {print $3; exit}')
exim4 -M "$QID"
check "exim after retry: stored" wait_for 30 has_records "$ID_FAIL" 1
check "exim after retry: queue empty" wait_for 10 sh -c "[ \"\$(exim4 -bpc)\" = 0 ]"
check "exim after retry: exactly once" has_records "$ID_FAIL" 1

log "Exim: malformed report -> delivered, quarantined, not bounced"
exim4 -odi -f tlsrpt@sender.example tls-reports@example.com < "$WORK/broken.eml"
check "exim malformed: quarantined" wait_for 30 quarantined 1
check "exim malformed: not bounced" sh -c "! grep -q '\*\*' $ELOG/mainlog"

log "Exim: stop"
kill "$(cat "$WORK/exim.pid")" 2>/dev/null; rm -f "$WORK/exim.pid"
sleep 1

# ---------------------------------------------------------------------------
log "HTTPS reports: lighttpd + CGI, contrib/lighttpd/tlsrpt.conf verbatim"
$APT $WEB_PKGS_LIGHTTPD >/dev/null 2>&1 || fail "apt-get install lighttpd lighttpd-mod-openssl curl"
# The web snippets name the package path, /usr/bin.
HSPOOL=/var/spool/tlsrpt-https
install -d -o www-data -g www-data -m 0750 "$HSPOOL"
mkdir -p "$WORK/www"
# Logs and pid file where the server's user can write them.
WEB="$WORK/web"; install -d -o www-data -g www-data "$WEB"
cat > "$WORK/lighttpd.conf" <<CF
server.document-root = "$WORK/www"
server.bind = "127.0.0.1"
server.port = 8080
server.username = "www-data"
server.groupname = "www-data"
server.errorlog = "$WEB/lighttpd-error.log"
server.pid-file = "$WEB/lighttpd.pid"
# HTTPS as senders use it, with a certificate for reports.example.com.
server.modules += ( "mod_openssl" )
\$SERVER["socket"] == "127.0.0.1:8443" {
    ssl.engine = "enable"
    ssl.pemfile = "$WEB/cert.pem"
    ssl.privkey = "$WEB/key.pem"
}
include "$ROOT/contrib/lighttpd/tlsrpt.conf"
CF
openssl req -x509 -newkey rsa:2048 -nodes -subj "/CN=reports.example.com" -days 2 \
    -keyout "$WEB/key.pem" -out "$WEB/cert.pem" >/dev/null 2>&1
lighttpd -tt -f "$WORK/lighttpd.conf" >/dev/null || fail "lighttpd config invalid"
lighttpd -f "$WORK/lighttpd.conf"
check "lighttpd started" wait_for 10 sh -c "curl -s -o /dev/null http://127.0.0.1:8080/"
http() { # http URL CURL-ARGS...: prints the status code; headers in $WORK/h, body in $WORK/b
    local url=$1; shift
    curl -s -o "$WORK/b" -D "$WORK/h" -w '%{http_code}' "$@" "$url"
}
hcount() { $CHECK count "$HSPOOL" "$1"; }
web_suite() { # web_suite NAME URL: the CGI contract through a real web server
    local n=$1 url=$2
    check "$n: POST a real gzip report -> 201" eq "$(http "$url" -H 'Content-Type: application/tlsrpt+gzip' --data-binary @"$FIX/YnkDK_tls_reporting/example.gz")" 201
    check "$n: the same again -> 200" eq "$(http "$url" -H 'Content-Type: application/tlsrpt+gzip' --data-binary @"$FIX/YnkDK_tls_reporting/example.gz")" 200
    check "$n: stored once" eq "$(hcount 5065427c-23d3-47ca-b6e0-946ea0e8c4be)" 1
    check "$n: GET -> 405" eq "$(http "$url")" 405
    check "$n: 405 says Allow: POST" grep -qi '^Allow: POST' "$WORK/h"
    check "$n: wrong type -> 415" eq "$(http "$url" -H 'Content-Type: text/html' --data-binary '<html></html>')" 415
    check "$n: over 10 MiB -> 413" eq "$(http "$url" -H 'Content-Type: application/tlsrpt+gzip' --data-binary @"$WORK/big")" 413
    check "$n: garbage -> 400" eq "$(http "$url" -H 'Content-Type: application/tlsrpt+json' --data-binary '{"not": "a report"}')" 400
    check "$n: no path in a body" sh -c "! grep -q / '$WORK/b'"
}
head -c 11M /dev/zero > "$WORK/big"
web_suite lighttpd http://127.0.0.1:8080/v1/tlsrpt
U=http://127.0.0.1:8080/v1/tlsrpt
check "lighttpd: garbage quarantined" test "$($CHECK quarantined "$HSPOOL")" -ge 1
check "lighttpd: JSON report with a wrong Content-Type -> 201" eq "$(http "$U" -H 'Content-Type: application/octet-stream' --data-binary @"$FIX/stalwartlabs_mail-auth/rpt02.json")" 201
check "lighttpd: record says transport https" eq "$($CHECK get "$HSPOOL" 2020-01-01T00:00:00Z_example.com source.transport)" '"https"'
check "lighttpd: record has the client address" eq "$($CHECK get "$HSPOOL" 2020-01-01T00:00:00Z_example.com source.remote-address)" '"127.0.0.1"'
check "lighttpd: HTTPS reports are unauthenticated" eq "$($CHECK get "$HSPOOL" 2020-01-01T00:00:00Z_example.com authentication.verdict)" '"unauthenticated"'
head -c 1G /dev/zero | gzip -1 -c > "$WORK/bomb.gz"
check "lighttpd: a gzip bomb -> 400" eq "$(http "$U" -H 'Content-Type: application/tlsrpt+gzip' --data-binary @"$WORK/bomb.gz")" 400
check "lighttpd: the bomb's reason" grep -q 'exceeds' "$WORK/b"
chown root:root "$HSPOOL"
check "lighttpd: spool unwritable -> 503" eq "$(http "$U" -H 'Content-Type: application/tlsrpt+json' --data-binary @"$FIX/stalwartlabs_mail-auth/rpt03.json")" 503
check "lighttpd: 503 says Retry-After" grep -qi '^Retry-After: ' "$WORK/h"
chown www-data:www-data "$HSPOOL"
check "lighttpd: the retry -> 201" eq "$(http "$U" -H 'Content-Type: application/tlsrpt+json' --data-binary @"$FIX/stalwartlabs_mail-auth/rpt03.json")" 201
check "lighttpd: stored once" eq "$(hcount 2019-04-14T00:00:00Z_example.org)" 1
# 50 POSTs at once, each a different report.
mkdir -p "$WORK/par"
python3 - "$FIX/stalwartlabs_mail-auth/rpt02.json" "$WORK/par" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for i in range(50):
    doc["report-id"] = f"parallel-{i}"
    open(f"{sys.argv[2]}/{i}.json", "w").write(json.dumps(doc))
PY
# shellcheck disable=SC2016
seq 0 49 | xargs -P 50 -I{} sh -c 'curl -s -o /dev/null -w "%{http_code}\n" -H "Content-Type: application/tlsrpt+json" --data-binary @"$1/{}.json" "$2"' _ "$WORK/par" "$U" > "$WORK/par.codes"
check "lighttpd: 50 concurrent POSTs -> 50 x 201" eq "$(grep -c '^201$' "$WORK/par.codes")" 50
check "lighttpd: 50 records, each once" eq "$(python3 -c "import sys; sys.path.insert(0, '$HERE'); import check; print(sum(1 for r in check.records('$HSPOOL') if r['report']['report-id'].startswith('parallel-')))")" 50
log "tlsrpt-reporter: a real sender's report to rua=https://... (lighttpd over TLS)"
check "TLS: a POST over HTTPS (a report stored already) -> 200" eq "$(curl -s -k -o /dev/null -w '%{http_code}' --connect-to reports.example.com:443:127.0.0.1:8443 -H 'Content-Type: application/tlsrpt+json' --data-binary @"$FIX/stalwartlabs_mail-auth/rpt02.json" https://reports.example.com/v1/tlsrpt)" 200
if [ -x "$VENV/bin/tlsrpt-collectd" ]; then
    R="$WORK/reporter-https"
    reporter_collect "$R" "v=TLSRPTv1; rua=https://reports.example.com/v1/tlsrpt"
    # Its default http_script is curl; a test certificate needs --insecure (RFC 8460 §3:
    # senders MAY ignore certificate errors), and the name points at our lighttpd.
    reporter_send "$R" "HTTPS Reporter Org" \
        --http_script "curl --silent --fail --insecure --connect-to reports.example.com:443:127.0.0.1:8443 --header 'Content-Type: application/tlsrpt+gzip' --data-binary @-"
    https_reports() { python3 -c "import sys; sys.path.insert(0, '$HERE'); import check; print(sum(1 for r in check.records('$HSPOOL') if r['report'].get('organization-name') == 'HTTPS Reporter Org' and r['source'].get('transport') == 'https'))"; }
    https_stored() { [ "$(https_reports)" = "$1" ]; }
    check "reporter over HTTPS: the report is stored" wait_for 60 https_stored 1
    sleep 3; kill "$REPORTD_PID" 2>/dev/null; wait "$REPORTD_PID" 2>/dev/null; REPORTD_PID=
    check "reporter over HTTPS: stored once, with its figures" "$VENV/bin/python" -c "
import sys; sys.path.insert(0, '$HERE'); import check
rs = [r for r in check.records('$HSPOOL') if r['report'].get('organization-name') == 'HTTPS Reporter Org']
assert len(rs) == 1, len(rs)
r = rs[0]
assert r['source']['transport'] == 'https' and r['source']['content-type'] == 'application/tlsrpt+gzip', r['source']
assert r['totals']['successful-sessions'] == 5 and r['totals']['failed-sessions'] == 3, r['totals']
"
else
    fail "reporter over HTTPS: tlsrpt-reporter missing from $VENV"
fi
kill "$(cat "$WEB/lighttpd.pid")" 2>/dev/null

log "HTTPS reports: nginx + fcgiwrap, contrib/nginx/tlsrpt.conf verbatim"
$APT nginx-light fcgiwrap >/dev/null 2>&1 || fail "apt-get install nginx-light fcgiwrap"
# Debian's fcgiwrap.socket, by hand: root binds the socket the snippet names and hands
# it to fcgiwrap as its stdin (as systemd and spawn-fcgi do), which runs as www-data.
rm -f /run/fcgiwrap.socket
python3 -c '
import os, pwd, socket
w = pwd.getpwnam("www-data")
s = socket.socket(socket.AF_UNIX)
s.bind("/run/fcgiwrap.socket")
os.chown("/run/fcgiwrap.socket", w.pw_uid, w.pw_gid)
s.listen(64)
os.dup2(s.fileno(), 0)
os.execvp("setpriv", ["setpriv", "--reuid=www-data", "--regid=www-data", "--init-groups", "fcgiwrap"])
' 2>"$WEB/fcgiwrap.log" &
check "fcgiwrap started" wait_for 10 test -S /run/fcgiwrap.socket
# In /etc/nginx, as a real one: the snippet's "include fastcgi_params" is relative to it.
NGINX_CONF=/etc/nginx/tlsrpt-test.conf
cat > "$NGINX_CONF" <<CF
user www-data;
pid $WEB/nginx.pid;
error_log $WEB/nginx-error.log;
events { }
http {
    access_log off;
    server {
        listen 127.0.0.1:8081;
        include $ROOT/contrib/nginx/tlsrpt.conf;
    }
}
CF
nginx -t -c "$NGINX_CONF" >/dev/null 2>&1 || { fail "nginx config invalid"; nginx -t -c "$NGINX_CONF"; }
nginx -c "$NGINX_CONF"
check "nginx started" wait_for 10 sh -c "curl -s -o /dev/null http://127.0.0.1:8081/"
rm -f "$HSPOOL"/*.jsonl; rm -rf "$HSPOOL/.seen"
web_suite nginx http://127.0.0.1:8081/v1/tlsrpt
if [ -x "$VENV/bin/python" ]; then
    check "HTTPS records validate against the schema" "$VENV/bin/python" "$HERE/check.py" schema "$HSPOOL" "$ROOT/schema/record.schema.json"
fi
kill "$(cat "$WEB/nginx.pid")" 2>/dev/null

log "HTTPS reports: Apache 2.4 + mod_cgid, contrib/apache2/tlsrpt.conf verbatim"
$APT apache2 >/dev/null 2>&1 || fail "apt-get install apache2"
# A server of its own beside Debian's (which stays unconfigured and stopped): the
# modules the snippet needs, and the snippet included as it is.
M=/usr/lib/apache2/modules
APACHE_CONF=/etc/apache2/tlsrpt-test.conf
cat > "$APACHE_CONF" <<CF
ServerRoot /etc/apache2
ServerName localhost
Listen 127.0.0.1:8082
PidFile $WEB/apache.pid
ErrorLog $WEB/apache-error.log
User www-data
Group www-data
LoadModule mpm_event_module $M/mod_mpm_event.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule alias_module $M/mod_alias.so
LoadModule env_module $M/mod_env.so
LoadModule cgid_module $M/mod_cgid.so
ScriptSock $WEB/cgid.sock
DocumentRoot $WORK/www
<Directory />
    Require all denied
</Directory>
Include $ROOT/contrib/apache2/tlsrpt.conf
CF
apache2 -t -f "$APACHE_CONF" >/dev/null 2>&1 || { fail "apache2 config invalid"; apache2 -t -f "$APACHE_CONF"; }
apache2 -f "$APACHE_CONF" -k start
check "apache2 started" wait_for 10 sh -c "curl -s -o /dev/null http://127.0.0.1:8082/"
rm -f "$HSPOOL"/*.jsonl; rm -rf "$HSPOOL/.seen"
web_suite apache2 http://127.0.0.1:8082/v1/tlsrpt
# Apache hands a chunked body to the CGI program without CONTENT_LENGTH: read to the
# end, under the cap.
check "apache2: a chunked POST (no Content-Length) -> 201" eq "$(http http://127.0.0.1:8082/v1/tlsrpt -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/tlsrpt+json' --data-binary @"$FIX/stalwartlabs_mail-auth/rpt03.json")" 201
check "apache2: stored once" eq "$(hcount 2019-04-14T00:00:00Z_example.org)" 1
apache2 -f "$APACHE_CONF" -k stop 2>/dev/null || kill "$(cat "$WEB/apache.pid")" 2>/dev/null

# ---------------------------------------------------------------------------
log "Reports in a mailbox: Dovecot IMAP over TLS, fetchmail and getmail6 with contrib/ verbatim"
$APT dovecot-imapd fetchmail getmail6 procmail >/dev/null 2>&1 || fail "apt-get install dovecot-imapd fetchmail getmail6 procmail"
IMAP="$WORK/imap"
mkdir -p "$IMAP/run"
# A test CA the system trusts (in this disposable root only), and the server's certificate.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$IMAP/ca.key" -out "$IMAP/ca.pem" \
    -days 30 -subj "/CN=tlsrpt imap test CA" >/dev/null 2>&1
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$IMAP/server.key" -out "$IMAP/server.csr" \
    -subj "/CN=imap.test" -addext "subjectAltName=DNS:imap.test" >/dev/null 2>&1
openssl x509 -req -in "$IMAP/server.csr" -CA "$IMAP/ca.pem" -CAkey "$IMAP/ca.key" -CAcreateserial -days 30 \
    -copy_extensions copy -out "$IMAP/server.pem" >/dev/null 2>&1
cp "$IMAP/ca.pem" /usr/local/share/ca-certificates/tlsrpt-imap-test.crt && update-ca-certificates >/dev/null 2>&1
echo "127.0.0.1 imap.test" >> /etc/hosts
id reports >/dev/null 2>&1 || useradd -m reports
MBOX=/home/reports/Maildir
install -d -o reports -g reports -m 0700 "$MBOX" "$MBOX/cur" "$MBOX/new" "$MBOX/tmp"
echo "reports:{PLAIN}imap-secret" > "$IMAP/users"
cat > "$IMAP/dovecot.conf" <<CF
protocols = imap
listen = 127.0.0.1
base_dir = $IMAP/run
log_path = $IMAP/dovecot.log
ssl = required
ssl_cert = <$IMAP/server.pem
ssl_key = <$IMAP/server.key
mail_location = maildir:~/Maildir
auth_mechanisms = plain
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u $IMAP/users
}
userdb {
  driver = static
  args = uid=reports gid=reports home=/home/reports
}
service imap-login {
  inet_listener imap {
    port = 0
  }
  inet_listener imaps {
    port = 993
    ssl = yes
  }
}
CF
dovecot -c "$IMAP/dovecot.conf" 2>"$IMAP/start.err" || { cat "$IMAP/start.err"; fail "dovecot start"; }
imaps_up() { printf 'a logout\r\n' | openssl s_client -quiet -connect 127.0.0.1:993 -servername imap.test -CAfile "$IMAP/ca.pem" -verify_return_error 2>/dev/null | grep -q '^\* OK'; }
check "dovecot: IMAPS on 127.0.0.1:993 with the test CA" wait_for 20 imaps_up

N_MSG=0
deliver() { # deliver FILE...: into the mailbox, as the MTA's LDA would
    local f
    for f in "$@"; do
        N_MSG=$((N_MSG + 1))
        install -o reports -g reports -m 0600 "$f" "$MBOX/new/$(date +%s).M$N_MSG.imap.test"
    done
}
in_mailbox() { find "$MBOX/cur" "$MBOX/new" -type f | wc -l; }
# A DMARC aggregate report (zip of XML, as Google sends them) and an ordinary message:
# they share the mailbox and must outlive every poll.
python3 - "$WORK/dmarc.eml" <<'PY'
import base64, io, sys, zipfile
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w") as z:
    z.writestr("google.com!example.com!1700000000!1700086399.xml", '<?xml version="1.0"?><feedback><report_metadata><org_name>google.com</org_name></report_metadata></feedback>')
b64 = base64.encodebytes(buf.getvalue()).decode()
open(sys.argv[1], "w").write(
    "From: noreply-dmarc-support@google.com\nTo: tls-reports@example.com\n"
    "Subject: Report domain: example.com Submitter: google.com Report-ID: 1234567890\n"
    "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\n"
    "Content-Type: application/zip; name=\"google.com!example.com!1700000000!1700086399.zip\"\n"
    "Content-Disposition: attachment; filename=\"google.com!example.com!1700000000!1700086399.zip\"\n"
    "Content-Transfer-Encoding: base64\n\n" + b64 + "--b--\n")
PY
printf 'From: colleague@example.com\nTo: tls-reports@example.com\nSubject: lunch?\nMessage-ID: <lunch@example.com>\n\nAre you coming?\n' > "$WORK/ordinary.eml"
REPORTS=("$FIX/mjl-_mox/example.eml" "$FIX/mjl-_mox/microsoft.eml" "$FIX/isseis_tlsrpt-digest/tlsrpt_failure.eml" "$FIX/deltachat_deltachat-core-rust/tlsrpt.eml")
all_once() { for id in "$ID_GOOGLE" "$ID_MS" "$ID_FAIL" "$ID_DC"; do [ "$(count "$id")" = 1 ] || return 1; done; }
only_the_others_left() { # the DMARC report and the ordinary message, and nothing else
    [ "$(in_mailbox)" = 2 ] && grep -lq 'Report domain: example.com Submitter: google.com' "$MBOX"/cur/* "$MBOX"/new/* 2>/dev/null &&
        grep -lq 'Subject: lunch?' "$MBOX"/cur/* "$MBOX"/new/* 2>/dev/null
}

retriever_suite() { # retriever_suite NAME POLL-FUNCTION WRONG-NAME-POLL-FUNCTION
    local name=$1 poll=$2 wrong=$3
    fresh_spool tlsrpt
    rm -f "$MBOX"/cur/* "$MBOX"/new/*
    deliver "${REPORTS[@]}" "$WORK/dmarc.eml" "$WORK/ordinary.eml"
    # The server's certificate is checked: under a name it does not carry, nothing moves.
    $wrong
    check "$name: a server whose certificate does not name it is refused" eq "$(ls "$SPOOL"/*.jsonl 2>/dev/null | wc -l):$(in_mailbox)" "0:6"
    $poll
    check "$name: every report stored once" all_once
    check "$name: the reports are gone from the mailbox, the DMARC report and the ordinary message are there" only_the_others_left
    check "$name: nothing quarantined" quarantined 0
    $poll
    check "$name: a second poll: still once each" all_once
    check "$name: a second poll: the others still there" only_the_others_left
    # The spool made unwritable: the poll leaves every message on the server.
    chown root:root "$SPOOL"
    deliver "$FIX/isseis_tlsrpt-digest/tlsrpt_success_google_1.eml" "$FIX/isseis_tlsrpt-digest/tlsrpt_success_microsoft.eml"
    $poll
    check "$name: spool unwritable: nothing stored" eq "$(ls "$SPOOL"/*.jsonl 2>/dev/null | xargs cat 2>/dev/null | wc -l)" 4
    check "$name: spool unwritable: every message still on the server" eq "$(in_mailbox)" 4
    chown tlsrpt:tlsrpt "$SPOOL"
    $poll
    check "$name: spool fixed: the next poll stores them" eq "$(cat "$SPOOL"/*.jsonl | wc -l)" 6
    check "$name: spool fixed: the others still there" only_the_others_left
    # The same report in the mailbox twice: stored once, both copies removed.
    deliver "$FIX/stalwartlabs_mail-auth/rpt01.eml" "$FIX/stalwartlabs_mail-auth/rpt01.eml"
    $poll
    check "$name: a report appended twice is stored once" eq "$(cat "$SPOOL"/*.jsonl | wc -l)" 7
    check "$name: both copies removed, the others still there" only_the_others_left
}

# fetchmail: contrib/fetchmail/fetchmailrc with its placeholders filled in, run the way
# contrib/systemd/tlsrpt-fetchmail.service runs it.
install -d -o tlsrpt -g tlsrpt -m 0750 /etc/tlsrpt
install -d -o tlsrpt -g tlsrpt -m 0700 /var/lib/tlsrpt/fetchmail /var/lib/tlsrpt/getmail
sed -e 's/imap\.example\.com/imap.test/g' -e 's/"tls-reports@example\.com"/"reports"/' -e 's/CHANGE-ME/imap-secret/' \
    "$ROOT/contrib/fetchmail/fetchmailrc" > "$IMAP/fetchmailrc"
install -o tlsrpt -g tlsrpt -m 0600 "$IMAP/fetchmailrc" /etc/tlsrpt/fetchmailrc
sed 's/^poll imap\.test /poll 127.0.0.1 /' "$IMAP/fetchmailrc" > "$IMAP/fetchmailrc.wrong"
install -o tlsrpt -g tlsrpt -m 0600 "$IMAP/fetchmailrc.wrong" /etc/tlsrpt/fetchmailrc.wrong
fetchmail_poll() { # fetchmail_poll [RC]
    runuser -u tlsrpt -- env HOME=/var/lib/tlsrpt/fetchmail FETCHMAILHOME=/var/lib/tlsrpt/fetchmail \
        /usr/bin/fetchmail --fetchmailrc "${1:-/etc/tlsrpt/fetchmailrc}" --nodetach --daemon 0 >>"$IMAP/fetchmail.log" 2>&1
    echo "fetchmail exit $?" >>"$IMAP/fetchmail.log"
}
fetchmail_wrong() { fetchmail_poll /etc/tlsrpt/fetchmailrc.wrong; }
retriever_suite fetchmail fetchmail_poll fetchmail_wrong
[ "$FAIL" = 0 ] || tail -n 25 "$IMAP/fetchmail.log" | sed 's/^/     /'

# getmail6: contrib/getmail/getmailrc the same way (tlsrpt-getmail.service).
sed -e 's/imap\.example\.com/imap.test/g' -e 's/^username = .*/username = reports/' -e 's/CHANGE-ME/imap-secret/' \
    "$ROOT/contrib/getmail/getmailrc" > "$IMAP/getmailrc"
install -o tlsrpt -g tlsrpt -m 0600 "$IMAP/getmailrc" /etc/tlsrpt/getmailrc
sed 's/^server = imap\.test/server = 127.0.0.1/' "$IMAP/getmailrc" > "$IMAP/getmailrc.wrong"
install -o tlsrpt -g tlsrpt -m 0600 "$IMAP/getmailrc.wrong" /etc/tlsrpt/getmailrc.wrong
getmail_once() { # getmail_once [RC]: one poll; its output goes to the log and stays in $GETMAIL_OUT
    GETMAIL_OUT=$(runuser -u tlsrpt -- /usr/bin/getmail --getmaildir /var/lib/tlsrpt/getmail --rcfile "${1:-/etc/tlsrpt/getmailrc}" --quiet 2>&1)
    printf '%s\ngetmail exit %s\n' "$GETMAIL_OUT" "$?" >>"$IMAP/getmail.log"
}
getmail_poll() { # getmail_poll [RC]
    getmail_once "$@"
    # getmail6 before 6.19 (Debian 12 has 6.18) forks the command before it installs its
    # SIGCHLD handler: when tlsrpt-pipe has exited before the parent runs again, the exit
    # is never seen, getmail says "waiting child pid N timed out" after its timeout and
    # leaves that message on the server. The report is stored; the next poll finds it
    # already stored and deletes it. Nothing is lost, but one poll is then not enough, so
    # poll once more, and say so (a second miss fails the checks that follow).
    if printf '%s' "$GETMAIL_OUT" | grep -q 'waiting child pid [0-9]* timed out'; then
        echo "     getmail: its fork-before-SIGCHLD-handler race hit (getmail6 < 6.19): polled once more"
        getmail_once "$@"
    fi
}
getmail_wrong() { getmail_poll /etc/tlsrpt/getmailrc.wrong; }
retriever_suite getmail getmail_poll getmail_wrong
[ "$FAIL" = 0 ] || tail -n 25 "$IMAP/getmail.log" | sed 's/^/     /'
grep -h "exit" "$IMAP/fetchmail.log" "$IMAP/getmail.log" | sort | uniq -c | sed 's/^/     /'

log "Backfill: a Maildir and an mbox collected before tlsrpt-pipe, imported twice"
fresh_spool tlsrpt
BF="$WORK/backfill"
install -d -o reports -m 0755 "$BF" "$BF/Maildir" "$BF/Maildir/cur" "$BF/Maildir/new" "$BF/Maildir/tmp"
i=0
for f in "$FIX/mjl-_mox/example.eml" "$FIX/mjl-_mox/microsoft.eml" "$WORK/dmarc.eml" "$WORK/ordinary.eml"; do
    i=$((i + 1)); install -m 0644 "$f" "$BF/Maildir/cur/1700000000.M$i.host:2,S"
done
for f in "$FIX/isseis_tlsrpt-digest/tlsrpt_failure.eml" "$FIX/deltachat_deltachat-core-rust/tlsrpt.eml" "$WORK/ordinary.eml"; do
    printf 'From sender@example.com Thu Jan  1 00:00:00 2026\n'; cat "$f"; printf '\n'
done > "$BF/mbox"
chmod 0644 "$BF/mbox"
before=$(cd "$BF" && find . -type f -exec sha256sum {} + | sort | sha256sum)
BACKFILL=/usr/share/doc/tlsrpt-pipe/examples/backfill/tlsrpt-backfill
out=$(runuser -u tlsrpt -- sh "$BACKFILL" "$BF/Maildir" "$BF/mbox" -- --spool "$SPOOL" 2>&1); st=$?
echo "     $out"
check "backfill: exit 0" eq "$st" 0
check "backfill: every report stored once" all_once
check "backfill: counts" sh -c "printf '%s' '$out' | grep -q '7 messages: 4 stored, 0 already stored, 0 quarantined, 3 no TLS report (left alone), 0 deferred'"
out=$(runuser -u tlsrpt -- sh "$BACKFILL" "$BF/Maildir" "$BF/mbox" -- --spool "$SPOOL" 2>&1); st=$?
echo "     $out"
check "backfill again: exit 0, nothing new" sh -c "[ $st = 0 ] && printf '%s' '$out' | grep -q '0 stored, 4 already stored'"
check "backfill again: still once each" all_once
check "backfill: the mailboxes are untouched" eq "$(cd "$BF" && find . -type f -exec sha256sum {} + | sort | sha256sum)" "$before"
check "backfill: the non-reports were not quarantined" quarantined 0
kill "$(cat "$IMAP/run/master.pid" 2>/dev/null)" 2>/dev/null

# ---------------------------------------------------------------------------
log "Debian package: upgrade, remove, purge: the reports and your changes stay"
fresh_spool tlsrpt
$CHECK wrap-gzip "$FIX/YnkDK_tls_reporting/example.gz" > "$WORK/pkg.eml"
$BIN --spool "$SPOOL" --user tlsrpt --log-stderr < "$WORK/pkg.eml" 2>/dev/null
check "package: a report stored by the packaged binary" eq "$($CHECK count "$SPOOL" 5065427c-23d3-47ca-b6e0-946ea0e8c4be)" 1
sed -i 's|^#\(\*/5 .*tlsrpt load\)|\1|' /etc/cron.d/tlsrpt
# The jobs of /etc/cron.d/tlsrpt, run as cron would: their user, their command verbatim.
cron_job() { # cron_job PATTERN: runs the (commented or not) line's command as its user
    local line user cmd
    line=$(grep -E "^#?[0-9*].*$1" /etc/cron.d/tlsrpt | head -1 | sed 's/^#//')
    user=$(echo "$line" | awk '{print $6}')
    cmd=$(echo "$line" | awk '{for (i = 1; i <= 6; i++) $i = ""; sub(/^ +/, ""); print}')
    [ -n "$cmd" ] && runuser -u "$user" -- sh -c "$cmd"
}
DB=/var/lib/tlsrpt/tlsrpt.db
db_reports() { python3 -c "import sqlite3; print(sqlite3.connect('$DB').execute('SELECT count(*) FROM smtp_tls_report').fetchone()[0])"; }
check "cron: the load job, as tlsrpt" cron_job 'tlsrpt load'
check "cron: the report is in $DB" eq "$(db_reports)" 1
check "cron: the load job again" cron_job 'tlsrpt load'
check "cron: after a second load, still once" eq "$(db_reports)" 1
# The textfile directory, made here unless the root has one (then only our files go).
PROM_MADE=; [ -e /var/lib/prometheus ] || PROM_MADE=1
install -d -o tlsrpt -g tlsrpt /var/lib/prometheus/node-exporter
check "cron: the metrics job, as tlsrpt" cron_job 'tlsrpt metrics'
check "cron: metrics and heartbeat written" test -s /var/lib/prometheus/node-exporter/tlsrpt.prom -a -s /var/lib/prometheus/node-exporter/tlsrpt.run.prom
# The report came without DKIM: counted apart, under "(other)" (no domain of ours).
check "cron: the report counted" grep -qF 'tlsrpt_unauthenticated_reports_total{policy_domain="(other)"} 1' /var/lib/prometheus/node-exporter/tlsrpt.prom
# The watch job: the report's domain cannot be looked up in this root (no network), so
# nothing is judged fine: exit 3, and its textfile says so for the alerts.
watch_job() { cron_job 'tlsrpt watch'; [ $? = 3 ]; }
check "cron: the watch job, as tlsrpt: nothing it could look up, exit 3" watch_job
check "cron: the watch textfile says it could not check" grep -qx 'tlsrpt_watch_status 3' /var/lib/prometheus/node-exporter/tlsrpt-watch.prom
if [ -n "$PROM_MADE" ]; then rm -rf /var/lib/prometheus; else rm -f /var/lib/prometheus/node-exporter/tlsrpt.* /var/lib/prometheus/node-exporter/tlsrpt-watch.prom; fi
chmod 0770 "$SPOOL"
SUM=$(cat "$SPOOL"/*.jsonl | sha256sum)
check "upgrade: dpkg -i $(basename "$DEB2")" sh -c "dpkg -i '$DEB2' >/dev/null"
check "upgrade: the new version is installed" eq "$(dpkg-query -W -f '${Version}' tlsrpt-pipe)" "$(dpkg-deb -f "$DEB2" Version)"
check "upgrade: the changed conffile is kept" grep -q '^\*/5 .*tlsrpt load' /etc/cron.d/tlsrpt
check "upgrade: the spool and its mode are kept" sh -c "[ \"\$(cat $SPOOL/*.jsonl | sha256sum)\" = '$SUM' ] && [ \"\$(stat -c %a $SPOOL)\" = 770 ]"
check "remove: dpkg -r" sh -c "dpkg -r tlsrpt-pipe >/dev/null"
check "remove: the programs are gone" test ! -e /usr/bin/tlsrpt-pipe
check "remove: the reports are kept" sh -c "[ \"\$(cat $SPOOL/*.jsonl | sha256sum)\" = '$SUM' ]"
check "remove: the conffile is kept" test -f /etc/cron.d/tlsrpt
check "purge: dpkg -P" sh -c "dpkg -P tlsrpt-pipe >/dev/null"
check "purge: the conffile is gone" test ! -e /etc/cron.d/tlsrpt
check "purge: the reports are kept" sh -c "[ \"\$(cat $SPOOL/*.jsonl | sha256sum)\" = '$SUM' ]"

echo "$PASS passed, $FAIL failed"
[ "$FAIL" = 0 ]
