"""The generated spools the operator benchmarks share (bench/gen_spool.py, made once)."""
import os, subprocess, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def year_spool(records):
    """Returns (directory, bytes of JSON Lines) of the generated year spool of `records`
    records, generating it the first time (a `.complete` marker says it is whole)."""
    spool = os.path.join(ROOT, "bench", "out", f"year-{records}")
    if not os.path.exists(os.path.join(spool, ".complete")):
        subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_spool.py"), spool,
                        "--records", str(records)], check=True)
        open(os.path.join(spool, ".complete"), "w").close()
    size = sum(os.path.getsize(os.path.join(spool, f)) for f in os.listdir(spool) if f.endswith(".jsonl"))
    return spool, size
