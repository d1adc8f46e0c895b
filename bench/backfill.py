#!/usr/bin/env python3
"""Backfill of a mailbox that collected reports before tlsrpt-pipe was installed:
contrib/backfill/tlsrpt-backfill on a Maildir of 10,000 messages (a real Google report,
each with a report-id of its own, gzipped as Google mails them; every tenth message
ordinary mail), into a fresh spool, fsync on; then the same again (every report a
duplicate). The floor: `cat` of every message file, one process each,
as the backfill starts one tlsrpt-pipe per message.

  python3 bench/backfill.py            10,000 messages (writes bench/out/backfill.md)
  python3 bench/backfill.py --quick    500 messages (CI: it still works)
  --no-build                           use target/release as it is
"""
import os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import ROOT, OUT, QUICK, NO_BUILD, publish  # noqa: E402

N = 500 if QUICK else 10_000
PIPE = os.path.join(ROOT, "target", "release", "tlsrpt-pipe")
SCRIPT = os.path.join(ROOT, "contrib", "backfill", "tlsrpt-backfill")
FIX = os.path.join(ROOT, "tests", "fixtures")


def messages(d):
    """Writes N messages into the Maildir d: reports built on a real Google report
    (cry-inc_dmarc-report-viewer/google.json) with a report-id each, gzipped and mailed as
    Google mails them, and every tenth message ordinary mail. Returns the reports' count."""
    import base64, gzip, json
    os.makedirs(os.path.join(d, "cur"))
    os.makedirs(os.path.join(d, "new"))
    base = json.load(open(os.path.join(FIX, "cry-inc_dmarc-report-viewer", "google.json")))
    other = b"From: colleague@example.com\nSubject: lunch?\n\nAre you coming?\n"
    reports = 0
    for i in range(N):
        if i % 10 == 9:
            body = other
        else:
            r = dict(base, **{"report-id": f"backfill-{i}"})
            gz = base64.encodebytes(gzip.compress(json.dumps(r).encode())).decode()
            body = (
                "From: noreply-smtp-tls-reporting@google.com\nTo: tls-reports@example.com\n"
                f"Subject: Report Domain: example.com Submitter: google.com Report-ID: <backfill-{i}>\n"
                "TLS-Report-Domain: example.com\nTLS-Report-Submitter: google.com\nMIME-Version: 1.0\n"
                'Content-Type: multipart/report; report-type="tlsrpt"; boundary="b"\n\n--b\n'
                "Content-Type: text/plain\n\nThis is an aggregate TLS report from google.com\n--b\n"
                f'Content-Type: application/tlsrpt+gzip; name="google.com!example.com!{i}.json.gz"\n'
                "Content-Transfer-Encoding: base64\n\n" + gz + "--b--\n"
            ).encode()
            reports += 1
        with open(os.path.join(d, "cur", f"1700000000.M{i}.bench:2,S"), "wb") as f:
            f.write(body)
    return reports


def run(argv, env=None):
    t = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    return time.perf_counter() - t, p


def main():
    if not NO_BUILD:
        subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tlsrpt-pipe"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp(prefix="tlsrpt-bench-backfill-")
    os.chmod(work, 0o755)
    try:
        box = os.path.join(work, "Maildir")
        n_reports = messages(box)
        spool = os.path.join(work, "spool")
        env = dict(os.environ, TLSRPT_PIPE=PIPE)
        opts = ["--", "--spool", spool, "--create-spool"]
        if os.geteuid() == 0:
            opts += ["--user", "nobody"]
            subprocess.run(["chown", "-R", "nobody", work], check=True)
        files = sorted(os.listdir(os.path.join(box, "cur")))
        t_floor, _ = run(["sh", "-c", 'for f in "$1"/cur/*; do cat "$f" > /dev/null; done', "sh", box])
        t1, p1 = run(["sh", SCRIPT, box] + opts, env)
        t2, p2 = run(["sh", SCRIPT, box] + opts, env)
        if p1.returncode != 0 or p2.returncode != 0:
            sys.exit(f"backfill failed: {p1.stdout}{p1.stderr}{p2.stdout}{p2.stderr}")
        line1 = p1.stdout.strip().splitlines()[-1]
        line2 = p2.stdout.strip().splitlines()[-1]
        stored = int(re.search(r"(\d+) stored", line1).group(1))
        if stored != n_reports:
            sys.exit(f"{stored} stored of {n_reports} reports: {line1}")
        lines = [
            f"Machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; "
            f"{'quick mode; ' if QUICK else ''}{len(files):,} messages in one Maildir, fsync on.",
            "",
            "| run | s | messages/s | result |",
            "|---|---:|---:|---|",
            f"| floor: cat each message, one process each | {t_floor:.1f} | {len(files) / t_floor:,.0f} | |",
            f"| tlsrpt-backfill, first run | {t1:.1f} | {len(files) / t1:,.0f} | {line1.split(': ', 1)[1]} |",
            f"| tlsrpt-backfill, again | {t2:.1f} | {len(files) / t2:,.0f} | {line2.split(': ', 1)[1]} |",
            "",
            f"First run: {stored:,} reports stored, {stored / t1:,.0f} reports/s; "
            f"{t1 / len(files) * 1e3:.1f} ms per message, {t1 / t_floor:.1f}x the cat floor.",
        ]
        publish(lines, "backfill.md", QUICK)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
