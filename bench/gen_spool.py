#!/usr/bin/env python3
"""Generates a hosting provider's year of TLS report records, as tlsrpt-pipe stores them.

  python3 bench/gen_spool.py DIR [--records 200000] [--domains 1000] [--days 365] [--seed 1]

Writes DIR/YYYY-MM-DD.jsonl (one file per day of receipt, the last day being yesterday),
records of schema version 1 with realistic shape: Google/Microsoft/Mail.ru/mox-style
organisations, sts (and for Microsoft sts + tlsa) policies with policy strings and MX
hosts, failure details on about a fifth of the policies, received a few hours after the
report's UTC day (some days later). About 90% carry a DKIM pass. ~260 MB for the defaults.
Deterministic for a given seed.
"""
import argparse, hashlib, json, os, random, time

ap = argparse.ArgumentParser()
ap.add_argument("dir")
ap.add_argument("--records", type=int, default=200_000)
ap.add_argument("--domains", type=int, default=1000)
ap.add_argument("--days", type=int, default=365)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()

rnd = random.Random(a.seed)
os.makedirs(a.dir, exist_ok=True)
DAY = 86400
today = int(time.time()) // DAY * DAY
first = today - a.days * DAY
orgs = [("Google Inc.", "smtp-tls-reporting@google.com", "google.com"),
        ("Microsoft Corporation", "tlsrpt-noreply@microsoft.com", "microsoft.com"),
        ("Mail.ru", "tlsrpt@mail.ru", "mail.ru"),
        ("mox", "postmaster@mox.example", "mox.example"),
        ("Example Reporter Org", "tlsrpt@reporter.example", "reporter.example")]
results = ["certificate-expired", "starttls-not-supported", "sts-policy-fetch-error",
           "certificate-host-mismatch", "tlsa-invalid", "validation-failure"]
domains = [f"customer{i:04d}.example" for i in range(a.domains)]


def iso(t):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


files = {}
for n in range(a.records):
    day = first + rnd.randrange(a.days) * DAY
    org, contact, odom = orgs[rnd.choices(range(5), weights=[50, 30, 10, 5, 5])[0]]
    dom = domains[rnd.randrange(a.domains)]
    ok = rnd.randrange(5000)
    details = []
    if rnd.random() < 0.2:
        for _ in range(rnd.randrange(1, 4)):
            details.append({"result-type": rnd.choice(results),
                            "sending-mta-ip": f"203.0.113.{rnd.randrange(256)}",
                            "receiving-mx-hostname": f"mx{rnd.randrange(3)}.{dom}",
                            "receiving-ip": f"192.0.2.{rnd.randrange(2)}",
                            "failed-session-count": rnd.randrange(1, 50)})
    failed = sum(d["failed-session-count"] for d in details)
    types = ["sts", "tlsa"] if org.startswith("Microsoft") else ["sts"]
    policies = []
    for ty in types:
        p = {"policy": {"policy-type": ty, "policy-domain": dom,
                        "policy-string": ["version: STSv1", "mode: enforce", f"mx: mx0.{dom}", f"mx: mx1.{dom}", "max_age: 604800"],
                        "mx-host": [f"mx0.{dom}", f"mx1.{dom}"]},
             "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed}}
        if details:
            p["failure-details"] = details
        policies.append(p)
    rid = f"{iso(day)}_{dom}_{n}"
    received = day + DAY + rnd.randrange(2 * 3600, 20 * 3600) + (rnd.randrange(5) * DAY if rnd.random() < 0.02 else 0)
    received = min(received, today + DAY - 1)
    report = {"organization-name": org, "date-range": {"start-datetime": iso(day), "end-datetime": iso(day + DAY - 1)},
              "contact-info": contact, "report-id": rid, "policies": policies}
    rec = {"version": 1, "received-at": iso(received),
           "dedup-key": hashlib.sha256(f"{org}\0{rid}".encode()).hexdigest(),
           "envelope": {"sender": f"noreply@{odom}", "recipient": "tls-reports@hosting.example", "queue-id": f"4F{n:08X}", "client-address": "198.51.100.1", "size": 4000 + n % 3000},
           "headers": {"message-id": f"<{n}@{odom}>", "from": f"noreply@{odom}", "subject": f"Report Domain: {dom} Submitter: {odom} Report-ID: <{rid}>",
                       "date": "Mon, 1 Jan 2026 00:00:00 +0000", "tls-report-domain": dom, "tls-report-submitter": odom},
           "authentication": {"verdict": "pass" if rnd.random() < 0.9 else "unauthenticated",
                              "aligned-domain": odom, "aligned-with": "from",
                              "dkim": [{"authserv-id": "mx.hosting.example", "result": "pass", "header-d": odom, "header-i": f"@{odom}", "selector": "s1"}]},
           "source": {"part": "2", "content-type": "application/tlsrpt+gzip", "filename": f"{odom}!{dom}!{day}!{day + DAY - 1}!{n}.json.gz", "encoding": ["gzip", "json"]},
           "totals": {"policies": len(policies), "successful-sessions": ok * len(types), "failed-sessions": failed * len(types), "failure-details": len(details) * len(types)},
           "warnings": [], "report": report}
    name = time.strftime("%Y-%m-%d", time.gmtime(received)) + ".jsonl"
    files.setdefault(name, []).append(json.dumps(rec, separators=(",", ":")))
total = 0
for name in sorted(files):
    with open(os.path.join(a.dir, name), "w") as f:
        data = "\n".join(files[name]) + "\n"
        f.write(data)
        total += len(data)
print(f"{a.records} records, {len(files)} day files, {total / 1e6:.0f} MB in {a.dir}")
