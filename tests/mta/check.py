#!/usr/bin/env python3
"""Helpers for tests/mta/run.sh: submit mail over SMTP, query the spool.

  check.py smtp FROM TO FILE            send FILE over SMTP to 127.0.0.1:25
  check.py count SPOOL REPORT_ID        records whose report.report-id is REPORT_ID
  check.py get SPOOL REPORT_ID PATH     a field of that record (dotted path; JSON output)
  check.py quarantined SPOOL            number of quarantined messages
  check.py wrap-gzip FILE               a report message (stdout) holding FILE as +gzip
  check.py same-report SPOOL EML        the record for the report inside EML equals it
  check.py schema SPOOL SCHEMA          every record validates against the JSON schema
  check.py digest MBOX SUMMARY_JSON     MBOX holds one digest message, multipart/alternative
                                        (text + HTML), whose figures match the summary
"""
import email, email.policy, gzip, json, pathlib, smtplib, sys


def records(spool):
    out = []
    for f in sorted(pathlib.Path(spool).glob("*.jsonl")):
        for line in f.read_text().splitlines():
            out.append(json.loads(line))
    return out


def by_id(spool, rid):
    return [r for r in records(spool) if r["report"].get("report-id") == rid]


def report_in(eml):
    msg = email.message_from_bytes(pathlib.Path(eml).read_bytes(), policy=email.policy.compat32)
    for part in msg.walk():
        if part.get_content_type().startswith("application/tlsrpt"):
            data = part.get_payload(decode=True)
            return json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)
    sys.exit(f"no report in {eml}")


def main(argv):
    cmd = argv[1]
    if cmd == "smtp":
        with smtplib.SMTP("127.0.0.1", 25, timeout=30) as s:
            s.sendmail(argv[2], [argv[3]], pathlib.Path(argv[4]).read_bytes())
    elif cmd == "count":
        print(len(by_id(argv[2], argv[3])))
    elif cmd == "get":
        rs = by_id(argv[2], argv[3])
        v = rs[0] if rs else None
        for k in argv[4].split("."):
            v = v.get(k) if isinstance(v, dict) else None
        print(json.dumps(v))
    elif cmd == "quarantined":
        print(len(list((pathlib.Path(argv[2]) / "quarantine").glob("*.eml"))))
    elif cmd == "wrap-gzip":
        data = pathlib.Path(argv[2]).read_bytes()
        import base64
        b64 = base64.encodebytes(data).decode()
        sys.stdout.write(
            "From: tlsrpt@sender.example\nTo: tls-reports@example.com\nSubject: Report Domain: example.com Submitter: sender.example Report-ID: broken\n"
            "TLS-Report-Domain: example.com\nTLS-Report-Submitter: sender.example\nMIME-Version: 1.0\n"
            'Content-Type: multipart/report; report-type="tlsrpt"; boundary="b"\n\n--b\nContent-Type: text/plain\n\nreport\n'
            f"--b\nContent-Type: application/tlsrpt+gzip\nContent-Transfer-Encoding: base64\n\n{b64}--b--\n")
    elif cmd == "same-report":
        src = report_in(argv[3])
        rs = by_id(argv[2], src["report-id"])
        if len(rs) != 1:
            sys.exit(f"{len(rs)} records for {src['report-id']}")
        if rs[0]["report"] != src:
            sys.exit("stored report differs:\n" + json.dumps(rs[0]["report"], indent=1) + "\nsent:\n" + json.dumps(src, indent=1))
        pass
    elif cmd == "schema":
        import jsonschema  # from the suite's venv
        schema = json.loads(pathlib.Path(argv[3]).read_text())
        recs = records(argv[2])
        for r in recs:
            jsonschema.validate(r, schema)
        if not recs:
            sys.exit("no records")
    elif cmd == "digest":
        import mailbox
        msgs = list(mailbox.mbox(argv[2]))
        if len(msgs) != 1:
            sys.exit(f"{len(msgs)} messages in {argv[2]}")
        m = email.message_from_bytes(msgs[0].as_bytes(), policy=email.policy.default)
        doc = json.loads(pathlib.Path(argv[3]).read_text())
        if m.get_content_type() != "multipart/alternative":
            sys.exit(f"content type {m.get_content_type()}")
        if m["From"] != "tlsrpt-digest@example.com" or "root@example.com" not in m["To"]:
            sys.exit(f"headers: From {m['From']} To {m['To']}")
        parts = {p.get_content_type(): p.get_content() for p in m.iter_parts()}
        if set(parts) != {"text/plain", "text/html"}:
            sys.exit(f"parts {list(parts)}")
        failed = sum(d["failed-sessions"] for d in doc["domains"])
        if f"TLS report digest: {failed} failed sessions" not in m["Subject"]:
            sys.exit(f"subject {m['Subject']!r}, expected {failed} failed")
        if not doc["domains"]:
            sys.exit("no domains in the summary")
        for d in doc["domains"]:
            ok, bad = d["successful-sessions"], d["failed-sessions"]
            line = f"{d['policy-domain']}: {bad:,} failed of {ok + bad:,} sessions"
            if line not in parts["text/plain"]:
                sys.exit(f"text part lacks {line!r}:\n{parts['text/plain']}")
            if d["policy-domain"] not in parts["text/html"] or f"{bad:,} failed" not in parts["text/html"]:
                sys.exit(f"HTML part lacks {d['policy-domain']}")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
