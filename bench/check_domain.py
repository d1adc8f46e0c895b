#!/usr/bin/env python3
"""`tlsrpt check-domain` on a domain with 3 MX hosts x 2 addresses (IPv4 and IPv6) and an
MTA-STS policy, against what a postmaster runs by hand for the same answer, one probe
after the other: drill for the DNS (MX, A, AAAA, TLSA, the _mta-sts TXT), curl for the
policy, `openssl s_client -starttls smtp` for each address with SNI and again without.

Runs only inside the disposable root (tests/root/enter.sh), on the local world of
tests/world/up.sh (Postfix, nginx, NSD, unbound on 127.0.0.x / fd00::x):

  tests/root/enter.sh --rw --cwd "$PWD" -- python3 bench/check_domain.py [--quick]

(bench/quick.sh does this in CI). Times are medians of interleaved runs; nothing is
asserted. Writes bench/out/check_domain.md (full runs).

Then the provider's case of `tlsrpt watch`: the world's fleet of 1,000 domains (50 in
quick mode) on two shared MX hosts (two addresses each), each with its own MTA-STS
policy host: one `tlsrpt watch` run (first, then again with its memory) against running
`check-domain` once per domain, one after the other (what a cron loop over the
domains does). The SMTP connections each made are counted in Postfix's log.
"""
import os, statistics, subprocess, sys, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "tlsrpt")
QUICK = "--quick" in sys.argv
ROUNDS = 1 if QUICK else 15
WORLD = "/tmp/tlsrpt-bench-world"
DOMAIN = "bench.plain.test"
MX = [f"mx{n}.bench.plain.test" for n in (1, 2, 3)]


CALLS = {"drill": 0, "curl": 0, "openssl s_client": 0}


def by_hand(ca):
    """The same probes, one by one, with the tools a postmaster has."""
    def run(argv):
        CALLS["curl" if argv[0] == "curl" else "openssl s_client"] += 1
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30)

    def drill(name, rtype):
        CALLS["drill"] += 1
        out = subprocess.run(["drill", "@127.0.0.1", name, rtype], capture_output=True, text=True, timeout=30).stdout
        return [l.split()[-1] for l in out.splitlines() if l and not l.startswith(";") and f"\t{rtype}\t" in l]

    drill(f"_smtp._tls.{DOMAIN}", "TXT")
    drill(f"_mta-sts.{DOMAIN}", "TXT")
    sts_ip = drill(f"mta-sts.{DOMAIN}", "A")[0]
    run(["curl", "-sS", "--max-time", "10", "--cacert", ca, "--resolve", f"mta-sts.{DOMAIN}:443:{sts_ip}",
         f"https://mta-sts.{DOMAIN}/.well-known/mta-sts.txt"])
    for mx in drill(DOMAIN, "MX"):
        mx = mx.rstrip(".")
        addrs = drill(mx, "A") + drill(mx, "AAAA")
        drill(f"_25._tcp.{mx}", "TLSA")
        for a in addrs:
            target = f"[{a}]:25" if ":" in a else f"{a}:25"
            for sni in (["-servername", mx], ["-noservername"]):
                run(["openssl", "s_client", "-brief", "-starttls", "smtp", "-connect", target, "-CAfile", ca,
                     "-verify_hostname", mx] + sni)


def smtp_connections():
    """Connections Postfix accepted so far (its log's "connect from" lines)."""
    try:
        with open(os.path.join(WORLD, "postfix.log"), errors="replace") as f:
            return sum(1 for l in f if "]: connect from " in l)
    except FileNotFoundError:
        return 0


def fleet(ca):
    import json, tempfile
    n = 50 if QUICK else 1000
    domains = [f"f{i:04d}.plain.test" for i in range(1, n + 1)]
    dfile = os.path.join(WORLD, f"fleet-{n}.txt")
    with open(dfile, "w") as f:
        f.write("\n".join(domains) + "\n")
    state = tempfile.mkdtemp(prefix="tlsrpt-bench-watch-")
    common = ["--nameserver", "127.0.0.1", "--ca-file", ca, "--allow-private-addresses"]
    watch = [BIN, "watch", "--domains-file", dfile, "--state", state, "--textfile",
             os.path.join(state, "watch.prom"), "--format", "json"] + common
    rows = []
    for label in ("first run", "again, with its memory"):
        c0, t = smtp_connections(), time.perf_counter()
        p = subprocess.run(watch, capture_output=True, text=True)
        dt = time.perf_counter() - t
        doc = json.loads(p.stdout)
        time.sleep(1.5)  # Postfix logs a connection's end asynchronously
        conns = smtp_connections() - c0
        checked = len(doc["domains"])
        probed = {(a["address"], m["host"]) for d in doc["domains"] for m in d["mx"] for a in m["addresses"]
                  if a["probed"]}
        rows.append((f"tlsrpt watch, {label} (exit {p.returncode})", dt, conns,
                     f"{checked} domains checked, {len({a for a, _ in probed})} addresses probed"))
    c0, t = smtp_connections(), time.perf_counter()
    statuses = {}
    for d in domains:
        p = subprocess.run([BIN, "check-domain", "--format", "json"] + common + [d],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        statuses[p.returncode] = statuses.get(p.returncode, 0) + 1
    dt = time.perf_counter() - t
    time.sleep(1.5)
    rows.append((f"tlsrpt check-domain once per domain, one after the other", dt,
                 smtp_connections() - c0, "exit statuses " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))))
    out = [f"Fleet: {n} domains, MX mx1.bench and mx2.bench (2 addresses each), an MTA-STS policy host each; single runs.",
           "", "| run | s | SMTP connections | result |", "|---|---:|---:|---|"]
    out += [f"| {w} | {dt:.2f} | {c} | {r} |" for w, dt, c, r in rows]
    out += ["", f"One watch run takes {rows[0][1] / rows[2][1] * 100:.0f}% of the time of check-domain per domain "
                f"({rows[2][1] / rows[0][1]:.1f}x faster), with {rows[0][2]} SMTP connections instead of {rows[2][2]}."]
    return out


def main():
    if not os.path.exists("/.tlsrpt-mta-root"):
        sys.exit("bench/check_domain.py runs inside the disposable root: "
                 "tests/root/enter.sh --rw --cwd \"$PWD\" -- python3 bench/check_domain.py")
    if not os.path.exists(BIN):
        sys.exit(f"{BIN} is missing: cargo build --release --locked")
    subprocess.run([os.path.join(ROOT, "tests", "world", "up.sh"), WORLD], check=True, stdout=subprocess.DEVNULL)
    ca = os.path.join(WORLD, "ca.pem")
    ours = [BIN, "check-domain", "--nameserver", "127.0.0.1", "--ca-file", ca, "--allow-private-addresses",
            "--format", "json", DOMAIN]
    # What ours found, to show it did the whole job.
    doc = subprocess.run(ours, capture_output=True, text=True).stdout
    import json
    d = json.loads(doc)["domains"][0]
    addrs = sum(len(m["addresses"]) for m in d["mx"])
    probed = sum(1 for m in d["mx"] for a in m["addresses"] if a["probed"])
    t_ours, t_hand = [], []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        subprocess.run(ours, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        t_ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        by_hand(ca)
        t_hand.append(time.perf_counter() - t)
    o, h = statistics.median(t_ours), statistics.median(t_hand)
    lines = [
        f"Machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
        f"{'quick mode, ' if QUICK else ''}medians of {ROUNDS} interleaved runs.",
        "",
        f"Domain {DOMAIN}: {len(d['mx'])} MX hosts, {addrs} addresses ({probed} probed), MTA-STS {d['mta-sts']['policy']['mode']};"
        f" each address: EHLO, STARTTLS, a handshake with SNI and one without.",
        "",
        "| check | median ms |",
        "|---|---:|",
        f"| tlsrpt check-domain (parallel; DNS, policy, {addrs} addresses x 2 handshakes, judged) | {o * 1e3:.0f} |",
        f"| by hand, one by one: " + ", ".join(f"{k} x {v // ROUNDS}" for k, v in CALLS.items()) + f" | {h * 1e3:.0f} |",
        "",
        f"check-domain takes {o / h * 100:.0f}% of the time of the same probes run one by one ({h / o:.1f}x faster).",
    ]
    lines += [""] + fleet(ca)
    text = "\n".join(lines) + "\n"
    print(text)
    if not QUICK:
        os.makedirs(os.path.join(ROOT, "bench", "out"), exist_ok=True)
        with open(os.path.join(ROOT, "bench", "out", "check_domain.md"), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
