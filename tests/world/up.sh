#!/usr/bin/env bash
# A local Internet for the live probes (check-domain, summary --probe), inside the
# disposable root only: DNS (NSD authoritative, unbound validating), MX hosts (Postfix,
# one smtpd listener per case, each with its own certificate), MTA-STS policy servers
# (nginx). Everything listens on 127.0.0.x / fd00::x of the root's own network namespace.
#
#   tests/world/up.sh DIR      set up and start; prints "world ready" when all answer
#
# DIR receives the test CA (ca.pem), the certificates, the zones, the configurations and
# the daemons' logs. Daemons keep running until the namespace ends. It writes
# /etc/postfix, so it refuses to run anywhere but the disposable root.
#
# The cases (domain: what it has), all in the zones plain.test (not signed), signed.test
# (DNSSEC-signed, trust anchor in unbound) and bogus.test (signatures expired):
#   good          MX 127.0.0.11, valid certificate, MTA-STS enforce, TLSRPT record
#   expired       MX 127.0.0.12, expired certificate, no MTA-STS
#   expired-sts   the same MX, MTA-STS enforce
#   wrongname     MX 127.0.0.13, certificate for another name
#   selfsigned    MX 127.0.0.14, self-signed certificate, MTA-STS testing
#   soon          MX 127.0.0.15, certificate expiring in 5 days
#   notls         MX 127.0.0.16, no STARTTLS, MTA-STS enforce
#   sni           MX 127.0.0.17, right certificate only with SNI
#   eku           MX 127.0.0.21, certificate for client authentication only, MTA-STS
#   old           MX 127.0.0.22, TLS 1.0/1.1 only, MTA-STS enforce
#   uncovered     MX good + MX sni, the policy names only the first (enforce)
#   redirect, wrongtype, badpolicy, untrusted, nohost, tworecords: MX good, MTA-STS broken
#   tlsaplain     MX 127.0.0.11 with a TLSA record in the unsigned zone
#   dane.signed.test      MX 127.0.0.18, TLSA 3 1 1 matching
#   daneexp.signed.test   MX 127.0.0.19, expired certificate, TLSA 3 1 1 matching
#   danebad.signed.test   MX 127.0.0.20, TLSA 3 1 1 of another key
#   daneta.signed.test    MX 127.0.0.23, TLSA 2 0 1 of the test CA (sent in the chain)
#   bogus.test            MX records whose signatures expired
#   stall, garbage, huge, reset, refused: MX 127.0.0.61-65 (servers of the tests' own)
#   digest@world.plain.test   a local mailbox (/var/mail/digest) for the digest test
#   abnf-blank, abnf-tab, abnf-dot, abnf-case, abnf-space: MX good, an MTA-STS policy that
#                 breaks one rule of RFC 8461 §3.2's grammar each (a blank line, a TAB in a
#                 value, an mx with a trailing dot, "Enforce", a space before ":")
#   abnf-lf       the same, valid: LF line ends, a UTF-8 extension value
#   abnf-record   MX good, an _mta-sts record that breaks §3.1 (an extension "-x")
#   longtxt       MX good; its _smtp._tls and _mta-sts TXT records are 4,095 "a"s and then
#                 "é"s (17 strings), to cut on a character boundary
#   flood         MX mx.flood (127.0.0.11), 1,000 TLSA 2 0 1 records
#   escapes       MX good, MTA-STS enforce; the policy's values carry terminal escapes
#   f0001 .. f1000  the fleet: MX mx1.bench and mx2.bench, MTA-STS enforce (one policy
#                 server for all): the watch benchmark's 1,000 domains
#   watched       MX good, MTA-STS enforce from www/watch/watched.txt (the watch tests
#                 rewrite it between runs)
#   added         MX good, MTA-STS enforce naming mx.good only (the watch tests add an MX
#                 to the zone file and reload NSD)
#   bench         3 MX hosts with an IPv4 and an IPv6 address each (127.0.0.41-43, fd00::41-43),
#                 MTA-STS enforce (mx: *.bench.plain.test): the benchmark's domain
set -euo pipefail

D=${1:?usage: $0 DIR}
if [ ! -f /.tlsrpt-mta-root ]; then
    echo "tests/world/up.sh: refused: this is not the disposable root of tests/root/enter.sh (it rewrites /etc/postfix)" >&2
    exit 1
fi
mkdir -p "$D"
D=$(cd "$D" && pwd)
cd "$D"
# Quiet unless it fails; the daemons get none of the caller's pipes (it waits for their end).
exec 3>&2 2>"$D/up.log"
trap 'rc=$?; if [ $rc != 0 ]; then echo "tests/world/up.sh failed ($rc):" >&3; tail -30 "$D/up.log" >&3; fi' EXIT
set -x

# ---- addresses ----------------------------------------------------------------------
ip link set lo up
for n in 41 42 43; do ip -6 addr add "fd00::$n/128" dev lo nodad 2>/dev/null || true; done

# The policies that break one rule of RFC 8461 §3.2 each (and one that is valid).
ABNF="blank tab dot case space lf"

# ---- the test CA and certificates -----------------------------------------------------
cat > ca.cnf <<EOF
[ ca ]
default_ca = test
[ test ]
dir = $D/ca
certificate = $D/ca.pem
private_key = $D/ca.key
database = \$dir/index.txt
new_certs_dir = \$dir/new
serial = \$dir/serial
default_md = sha256
policy = any
copy_extensions = copy
unique_subject = no
[ any ]
commonName = supplied
[ req ]
distinguished_name = dn
prompt = no
[ dn ]
CN = placeholder
[ server ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
[ clientonly ]
basicConstraints = CA:FALSE
keyUsage = digitalSignature
extendedKeyUsage = clientAuth
EOF
mkdir -p ca/new && : > ca/index.txt && echo 1000 > ca/serial
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key -out ca.pem \
    -days 3650 -subj "/CN=tlsrpt test CA" -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign
# cert NAME CN "SAN,..." [EXTENSIONS [STARTDATE ENDDATE]]: NAME.key, NAME.pem, NAME.chain.pem
cert() {
    local name=$1 cn=$2 san=$3 ext=${4:-server} start=${5:-} end=${6:-} dates=()
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$name.key" \
        -out "$name.csr" -subj "/CN=$cn" -addext "subjectAltName=$san"
    if [ -n "$start" ]; then dates=(-startdate "$start" -enddate "$end"); else dates=(-days 365); fi
    openssl ca -batch -config ca.cnf -extensions "$ext" -notext "${dates[@]}" -in "$name.csr" -out "$name.pem"
    cat "$name.pem" > "$name.chain.pem"
}
cert good mx.good.plain.test "DNS:mx.good.plain.test,DNS:mx.uncovered-b.plain.test,DNS:mx.tlsaplain.plain.test"
cert sts mta-sts.good.plain.test "DNS:mta-sts.good.plain.test,DNS:mta-sts.expired-sts.plain.test,DNS:mta-sts.selfsigned.plain.test,DNS:mta-sts.notls.plain.test,DNS:mta-sts.eku.plain.test,DNS:mta-sts.old.plain.test,DNS:mta-sts.uncovered.plain.test,DNS:mta-sts.redirect.plain.test,DNS:mta-sts.wrongtype.plain.test,DNS:mta-sts.badpolicy.plain.test,DNS:mta-sts.untrusted.plain.test,DNS:mta-sts.tworecords.plain.test,DNS:mta-sts.bench.plain.test,DNS:mta-sts.escapes.plain.test,DNS:mta-sts.watched.plain.test,DNS:mta-sts.added.plain.test$(for c in $ABNF record; do printf ',DNS:mta-sts.abnf-%s.plain.test' "$c"; done)"
cert expired mx.expired.plain.test "DNS:mx.expired.plain.test" server 20250101000000Z 20251201000000Z
cert wrongname other.plain.test "DNS:other.plain.test"
cert soon mx.soon.plain.test "DNS:mx.soon.plain.test" server "$(date -u -d '-30 days' +%Y%m%d%H%M%SZ)" "$(date -u -d '+5 days' +%Y%m%d%H%M%SZ)"
cert notls mx.notls.plain.test "DNS:mx.notls.plain.test"
cert sni mx.sni.plain.test "DNS:mx.sni.plain.test"
cert default default.invalid "DNS:default.invalid"
cert eku mx.eku.plain.test "DNS:mx.eku.plain.test" clientonly
cert old mx.old.plain.test "DNS:mx.old.plain.test"
cert dane mx.dane.signed.test "DNS:mx.dane.signed.test"
cert daneexp mx.daneexp.signed.test "DNS:mx.daneexp.signed.test" server 20250101000000Z 20251201000000Z
cert danebad mx.danebad.signed.test "DNS:mx.danebad.signed.test"
cert other-key unused.signed.test "DNS:unused.signed.test"
cert daneta mx.daneta.signed.test "DNS:mx.daneta.signed.test"
cat ca.pem >> daneta.chain.pem # DANE-TA: the trust anchor is sent (RFC 7672 §3.1.2)
cert bench "mx1.bench.plain.test" "DNS:mx1.bench.plain.test,DNS:mx2.bench.plain.test,DNS:mx3.bench.plain.test"
FLEET=$(seq -f 'f%04g' 1 1000)
cert fleet mta-sts.f0001.plain.test "$(for f in $FLEET; do printf 'DNS:mta-sts.%s.plain.test,' "$f"; done | sed 's/,$//')"
# Self-signed (no CA): the MX and an MTA-STS host.
selfsigned() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$1.key" -out "$1.pem" \
        -days 365 -subj "/CN=$2" -addext "subjectAltName=DNS:$2"
    cp "$1.pem" "$1.chain.pem"
}
selfsigned selfsigned mx.selfsigned.plain.test
selfsigned sts-untrusted mta-sts.untrusted.plain.test
spki() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | sha256sum | cut -c1-64; }
DER_SHA() { openssl x509 -in "$1" -outform DER | sha256sum | cut -c1-64; }

# ---- DNS: zones, NSD, unbound ---------------------------------------------------------
common() { # $1 = zone
    printf '$ORIGIN %s.\n$TTL 3600\n@ SOA ns1 hostmaster 1 3600 600 86400 300\n@ NS ns1\nns1 A 127.0.0.1\n' "$1"
}
tlsrpt() { printf '_smtp._tls.%s TXT "v=TLSRPTv1; rua=mailto:tls-reports@%s.%s"\n' "$1" "$1" "$2"; }
sts() { printf '_mta-sts.%s TXT "v=STSv1; id=2026120601"\nmta-sts.%s A 127.0.0.30\n' "$1" "$1"; }
{
    common plain.test
    for c in good expired expired-sts wrongname selfsigned soon notls sni eku old uncovered redirect wrongtype badpolicy untrusted nohost tworecords tlsaplain stall garbage huge reset refused bench watched added; do
        tlsrpt "$c" plain.test
    done
    echo 'mx.good A 127.0.0.11'
    echo 'mx.expired A 127.0.0.12'
    echo 'mx.wrongname A 127.0.0.13'
    echo 'mx.selfsigned A 127.0.0.14'
    echo 'mx.soon A 127.0.0.15'
    echo 'mx.notls A 127.0.0.16'
    echo 'mx.sni A 127.0.0.17'
    echo 'mx.eku A 127.0.0.21'
    echo 'mx.old A 127.0.0.22'
    echo 'mx.uncovered-b A 127.0.0.11'
    echo 'mx.tlsaplain A 127.0.0.11'
    echo "_25._tcp.mx.tlsaplain TLSA 3 1 1 $(spki good.pem)"
    for c in good expired-sts selfsigned notls eku old uncovered redirect wrongtype badpolicy untrusted tworecords bench watched added; do sts "$c"; done
    # tlsrpt watch: a policy the test rewrites, a domain the test gives a second MX.
    echo 'watched MX 10 mx.good'
    echo 'added MX 10 mx.good'
    for c in $ABNF; do sts "abnf-$c"; echo "abnf-$c MX 10 mx.good"; tlsrpt "abnf-$c" plain.test; done
    # Hostile DNS: a long multi-byte TXT record, a TLSA flood.
    long=$(printf '"%s" ' $(for _ in $(seq 16); do printf 'a%.0s' $(seq 255); echo; done) "$(printf 'a%.0s' $(seq 15))$(for _ in $(seq 60); do printf '\\195\\169'; done)")
    echo "_smtp._tls.longtxt TXT $long"
    echo "_mta-sts.longtxt TXT $long"
    echo 'longtxt MX 10 mx.good'
    echo 'flood MX 10 mx.flood'
    echo 'mx.flood A 127.0.0.11'
    for n in $(seq 1000); do printf '_25._tcp.mx.flood TLSA 2 0 1 %064x\n' "$n"; done
    sts escapes
    echo 'escapes MX 10 mx.good'
    echo '_mta-sts.abnf-record TXT "v=STSv1; id=1; -x=1"'
    echo 'mta-sts.abnf-record A 127.0.0.30'
    echo 'abnf-record MX 10 mx.good'
    tlsrpt abnf-record plain.test
    echo 'good MX 10 mx.good'
    echo 'expired MX 10 mx.expired'
    echo 'expired-sts MX 10 mx.expired'
    echo 'wrongname MX 10 mx.wrongname'
    echo 'selfsigned MX 10 mx.selfsigned'
    echo 'soon MX 10 mx.soon'
    echo 'notls MX 10 mx.notls'
    echo 'sni MX 10 mx.sni'
    echo 'eku MX 10 mx.eku'
    echo 'old MX 10 mx.old'
    echo 'uncovered MX 10 mx.good'
    echo 'uncovered MX 20 mx.uncovered-b'
    for c in redirect wrongtype badpolicy untrusted nohost tworecords; do echo "$c MX 10 mx.good"; done
    echo '_mta-sts.nohost TXT "v=STSv1; id=1"'
    echo '_mta-sts.tworecords TXT "v=STSv1; id=2"'
    echo 'tlsaplain MX 10 mx.tlsaplain'
    n=61; for c in stall garbage huge reset refused; do echo "$c MX 10 mx.$c"; echo "mx.$c A 127.0.0.$n"; n=$((n + 1)); done
    for n in 1 2 3; do
        echo "bench MX $((n * 10)) mx$n.bench"
        echo "mx$n.bench A 127.0.0.4$n"
        echo "mx$n.bench AAAA fd00::4$n"
    done
    # The fleet: 1,000 domains on two of the bench MX hosts, MTA-STS enforce each.
    for f in $FLEET; do
        echo "$f MX 10 mx1.bench"
        echo "$f MX 20 mx2.bench"
        tlsrpt "$f" plain.test
        sts "$f"
    done
} > plain.test.zone
{
    common signed.test
    for c in dane daneexp danebad daneta; do tlsrpt "$c" signed.test; done
    echo 'dane MX 10 mx.dane'
    echo 'mx.dane A 127.0.0.18'
    echo "_25._tcp.mx.dane TLSA 3 1 1 $(spki dane.pem)"
    echo 'daneexp MX 10 mx.daneexp'
    echo 'mx.daneexp A 127.0.0.19'
    echo "_25._tcp.mx.daneexp TLSA 3 1 1 $(spki daneexp.pem)"
    echo 'danebad MX 10 mx.danebad'
    echo 'mx.danebad A 127.0.0.20'
    echo "_25._tcp.mx.danebad TLSA 3 1 1 $(spki other-key.pem)"
    echo 'daneta MX 10 mx.daneta'
    echo 'mx.daneta A 127.0.0.23'
    echo "_25._tcp.mx.daneta TLSA 2 0 1 $(DER_SHA ca.pem)"
} > signed.test.zone
{
    common bogus.test
    tlsrpt bogus test
    echo '@ MX 10 mx'
    echo 'mx A 127.0.0.11'
} > bogus.test.zone
: > trust-anchors
sign() { # zone [ldns-signzone options]: signs, adds the KSK's DS to unbound's anchors
    local z=$1 ksk zsk
    shift
    ksk=$(ldns-keygen -a ECDSAP256SHA256 -k "$z")
    zsk=$(ldns-keygen -a ECDSAP256SHA256 "$z")
    ldns-signzone "$@" -o "$z" -f "$z.zone.signed" "$z.zone" "$zsk" "$ksk"
    cat "$ksk.ds" >> trust-anchors
}
sign signed.test
sign bogus.test -i 20190101000000 -e 20200101000000
cp plain.test.zone plain.test.zone.signed # one file name for all three
cat > nsd.conf <<EOF
server:
    ip-address: 127.0.0.1@5353
    do-ip6: no
    username: ""
    chroot: ""
    zonesdir: "$D"
    database: ""
    pidfile: "$D/nsd.pid"
    zonelistfile: "$D/zone.list"
    xfrdfile: "$D/xfrd.state"
    xfrdir: "$D"
    logfile: "$D/nsd.log"
    server-count: 1
    # No response rate limiting: the watch benchmark asks about 1,000 domains at once
    # from one address, which RRL (on by default) would answer with drops and SERVFAILs.
    rrl-ratelimit: 0
remote-control:
    control-enable: no
EOF
for z in plain.test signed.test bogus.test; do printf 'zone:\n    name: %s\n    zonefile: %s.zone.signed\n' "$z" "$z" >> nsd.conf; done
cat > unbound.conf <<EOF
server:
    interface: 127.0.0.1
    port: 53
    do-ip6: no
    access-control: 127.0.0.0/8 allow
    username: ""
    chroot: ""
    directory: "$D"
    pidfile: "$D/unbound.pid"
    logfile: "$D/unbound.log"
    use-syslog: no
    num-threads: 1
    do-not-query-localhost: no
    module-config: "validator iterator"
    trust-anchor-file: "$D/trust-anchors"
    trust-anchor-signaling: no
    val-log-level: 2
    local-zone: "test." transparent
    local-zone: "." refuse
    prefetch: no
remote-control:
    control-enable: no
EOF
for z in plain.test signed.test bogus.test; do printf 'stub-zone:\n    name: "%s"\n    stub-addr: 127.0.0.1@5353\n' "$z" >> unbound.conf; done
nsd-checkconf nsd.conf
unbound-checkconf unbound.conf
nsd -c nsd.conf </dev/null >/dev/null
unbound -c unbound.conf </dev/null >/dev/null

# ---- Postfix: one smtpd per case ------------------------------------------------------
# Local delivery to digest@world.plain.test (/var/mail/digest): the mailbox the digest
# test reads.
id digest >/dev/null 2>&1 || useradd -m digest
cat > /etc/postfix/main.cf <<EOF
compatibility_level = 3.6
myhostname = world.plain.test
mydestination = world.plain.test, localhost
alias_maps =
local_recipient_maps = proxy:unix:passwd.byname
inet_interfaces = loopback-only
inet_protocols = all
maillog_file_prefixes = /var, /tmp, $D
maillog_file = $D/postfix.log
smtpd_tls_security_level = may
smtpd_tls_loglevel = 1
smtpd_relay_restrictions = reject
EOF
cp /usr/share/postfix/master.cf.dist /etc/postfix/master.cf
sed -i '/^smtp[[:space:]]*inet/d' /etc/postfix/master.cf
listener() { # ADDRESS CERT-NAME [-o option]...
    local addr=$1 name=$2
    shift 2
    printf '%s:25 inet n - n - - smtpd\n  -o smtpd_tls_chain_files=%s\n' "$addr" "$D/$name.key,$D/$name.chain.pem" >> /etc/postfix/master.cf
    for o in "$@"; do printf '  %s\n' "$o" >> /etc/postfix/master.cf; done
}
listener 127.0.0.11 good
listener 127.0.0.12 expired
listener 127.0.0.13 wrongname
listener 127.0.0.14 selfsigned
listener 127.0.0.15 soon
listener 127.0.0.16 notls "-o smtpd_tls_security_level=none"
cat sni.key sni.chain.pem > sni.combined.pem
printf 'mx.sni.plain.test %s\n' "$D/sni.combined.pem" > sni.map
postmap -F "hash:$D/sni.map"
listener 127.0.0.17 default "-o tls_server_sni_maps=hash:$D/sni.map"
listener 127.0.0.18 dane
listener 127.0.0.19 daneexp
listener 127.0.0.20 danebad
listener 127.0.0.21 eku
listener 127.0.0.22 old "-o smtpd_tls_protocols=TLSv1,TLSv1.1,!TLSv1.2,!TLSv1.3" "-o tls_medium_cipherlist=DEFAULT:@SECLEVEL=0"
listener 127.0.0.23 daneta
for n in 41 42 43; do
    listener "127.0.0.$n" bench
    listener "[fd00::$n]" bench
done
postfix check
postfix start </dev/null >/dev/null

# ---- nginx: the MTA-STS policy servers -------------------------------------------------
mkdir -p www/good www/bad
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmax_age: 604800\r\n' > www/good/enforce.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.expired.plain.test\r\nmax_age: 604800\r\n' > www/good/expired-sts.txt
printf 'version: STSv1\r\nmode: testing\r\nmx: mx.selfsigned.plain.test\r\nmax_age: 86400\r\n' > www/good/selfsigned.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.notls.plain.test\r\nmax_age: 604800\r\n' > www/good/notls.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.eku.plain.test\r\nmax_age: 604800\r\n' > www/good/eku.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.old.plain.test\r\nmax_age: 604800\r\n' > www/good/old.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmax_age: 604800\r\n' > www/good/uncovered.txt
printf 'version: STSv2\r\nmode: strict\r\nmax_age: forever\r\n' > www/bad/badpolicy.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: *.bench.plain.test\r\nmax_age: 604800\r\n' > www/good/bench.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmx: \033]0;pwned\007.example\r\nmax_age: 604800\r\nnote: \033[31mred\033[0m \342\200\256gnp.exe\r\n' > www/good/escapes.txt
mkdir -p www/abnf www/watch
# Rewritten by the watch tests (operator/tests/watch.rs) between runs.
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmax_age: 86400\r\n' > www/watch/watched.txt
printf 'version: STSv1\r\n\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmax_age: 604800\r\n' > www/abnf/blank.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test\r\nmax_age: 604800\r\nnote: a\tb\r\n' > www/abnf/tab.txt
printf 'version: STSv1\r\nmode: enforce\r\nmx: mx.good.plain.test.\r\nmax_age: 604800\r\n' > www/abnf/dot.txt
printf 'version: STSv1\r\nmode: Enforce\r\nmx: mx.good.plain.test\r\nmax_age: 604800\r\n' > www/abnf/case.txt
printf 'version: STSv1\r\nmode : enforce\r\nmx: mx.good.plain.test\r\nmax_age: 604800\r\n' > www/abnf/space.txt
printf 'version: STSv1\nmode: enforce\nmx: mx.good.plain.test\nmax_age: 604800\nnote: d\303\251j\303\240 vu\n' > www/abnf/lf.txt
nginx_site() { # SERVER-NAME CERT-NAME BODY-DIRECTIVES
    cat >> nginx.conf <<EOF
    server {
        listen 127.0.0.30:443 ssl;
        server_name $1;
        ssl_certificate $D/$2.chain.pem;
        ssl_certificate_key $D/$2.key;
        location = /.well-known/mta-sts.txt { $3 }
    }
EOF
}
cat > nginx.conf <<EOF
daemon on;
pid $D/nginx.pid;
error_log $D/nginx.error.log;
events { worker_connections 64; }
http {
    access_log $D/nginx.access.log;
    types { text/plain txt; }
    default_type application/octet-stream;
EOF
nginx_site mta-sts.good.plain.test sts "alias $D/www/good/enforce.txt;"
nginx_site mta-sts.expired-sts.plain.test sts "alias $D/www/good/expired-sts.txt;"
nginx_site mta-sts.selfsigned.plain.test sts "alias $D/www/good/selfsigned.txt;"
nginx_site mta-sts.notls.plain.test sts "alias $D/www/good/notls.txt;"
nginx_site mta-sts.eku.plain.test sts "alias $D/www/good/eku.txt;"
nginx_site mta-sts.old.plain.test sts "alias $D/www/good/old.txt;"
nginx_site mta-sts.uncovered.plain.test sts "alias $D/www/good/uncovered.txt;"
nginx_site mta-sts.tworecords.plain.test sts "alias $D/www/good/enforce.txt;"
nginx_site mta-sts.redirect.plain.test sts "return 301 https://www.redirect.plain.test/mta-sts.txt;"
nginx_site mta-sts.wrongtype.plain.test sts "alias $D/www/good/enforce.txt; types { } default_type text/html;"
nginx_site mta-sts.badpolicy.plain.test sts "alias $D/www/bad/badpolicy.txt;"
nginx_site mta-sts.untrusted.plain.test sts-untrusted "alias $D/www/good/enforce.txt;"
nginx_site mta-sts.bench.plain.test sts "alias $D/www/good/bench.txt;"
for c in $ABNF; do nginx_site "mta-sts.abnf-$c.plain.test" sts "alias $D/www/abnf/$c.txt;"; done
nginx_site mta-sts.abnf-record.plain.test sts "alias $D/www/good/enforce.txt;"
nginx_site '"~^mta-sts\.f[0-9]+\.plain\.test$"' fleet "alias $D/www/good/bench.txt;"
nginx_site mta-sts.watched.plain.test sts "alias $D/www/watch/watched.txt;"
nginx_site mta-sts.added.plain.test sts "alias $D/www/good/uncovered.txt;"
nginx_site mta-sts.escapes.plain.test sts "alias $D/www/good/escapes.txt;"
echo '}' >> nginx.conf
nginx -t -c "$D/nginx.conf"
nginx -c "$D/nginx.conf" </dev/null >/dev/null

# ---- ready? ------------------------------------------------------------------------
answers() { drill -p "$2" @127.0.0.1 SOA "$1" 2>/dev/null | grep -q 'rcode: NOERROR'; }
listening() { (exec 9<>"/dev/tcp/$1/$2") 2>/dev/null; }
for _ in $(seq 200); do
    if answers signed.test 5353 && answers signed.test 53 && listening 127.0.0.11 25 && listening 127.0.0.23 25 &&
        listening 127.0.0.30 443; then
        set +x
        exec 2>&3
        echo "world ready in $D"
        exit 0
    fi
    sleep 0.05
done
echo "the world did not come up in 10 s" >&2
cat "$D/nsd.log" "$D/unbound.log" "$D/postfix.log" "$D/nginx.error.log" >&2 2>/dev/null || true
exit 1
