#!/usr/bin/env python3
"""Regenerates tests/fixtures/expected/*.json: the report JSON inside each fixture
email, extracted with Python's own email package (an implementation independent of
the one under test), so the Rust tests can compare stored records field by field.

Usage: python3 tests/extract_expected.py   (from the repository root)
"""
import email, email.policy, gzip, json, pathlib, sys

root = pathlib.Path(__file__).parent / "fixtures"
out = root / "expected"
out.mkdir(exist_ok=True)
for eml in sorted(root.glob("*/*.eml")):
    raw = eml.read_bytes()
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    docs = []
    for part in msg.walk():
        ct = part.get_content_type()
        if part.is_multipart() or not ct.startswith("application/"):
            continue
        data = part.get_payload(decode=True)
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        docs.append(json.loads(data))
    if len(docs) != 1:
        sys.exit(f"{eml}: expected one report, found {len(docs)}")
    name = f"{eml.parent.name}__{eml.name}.json"
    (out / name).write_text(json.dumps(docs[0], indent=1, ensure_ascii=False) + "\n")
    print(name)
