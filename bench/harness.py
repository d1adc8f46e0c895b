"""What the operator benchmarks share: the generated year spool (bench/gen_spool.py,
made once), timing a command with its peak RSS, and writing the result table."""
import os, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out")
BIN = os.path.join(ROOT, "target", "release", "tlsrpt")
QUICK = "--quick" in sys.argv
RECORDS = 5000 if QUICK else 200_000
NO_BUILD = "--no-build" in sys.argv  # target/release is already built (bench/quick.sh)


def build():
    """Builds the release binaries, unless --no-build says they are there."""
    if NO_BUILD:
        if not os.path.exists(BIN):
            sys.exit(f"--no-build: {BIN} is missing")
        return
    subprocess.run(["cargo", "build", "--release", "--locked", "-q", "-p", "tlsrpt"], cwd=ROOT, check=True)


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


def timed(argv, env=None):
    """Runs argv under GNU time; returns (seconds, peak RSS KiB). Exits on failure."""
    with tempfile.NamedTemporaryFile("r") as out:
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", out.name] + argv,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
        dt = time.perf_counter() - t
        if p.returncode != 0:
            sys.exit(f"{argv[0]} failed ({p.returncode}): {p.stderr.decode(errors='replace')[-2000:]}")
        return dt, int(out.read().split()[-1])


def publish(lines, name, quick):
    """Prints the result and, for a full run, writes it to bench/out/NAME."""
    text = "\n".join(lines) + "\n"
    print(text)
    if not quick:
        with open(os.path.join(ROOT, "bench", "out", name), "w") as f:
            f.write(text)
