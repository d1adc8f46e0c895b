#!/usr/bin/env python3
"""The operator's hot paths, this build against an earlier build, in the same run on the
same spool: the counting rule and trust given at read time (issue "No failure may
vanish") had to leave summary, metrics and load no slower.

  git worktree add /tmp/old c061f7e && (cd /tmp/old && cargo build --release -p tlsrpt)
  python3 bench/versions.py --baseline /tmp/old/target/release/tlsrpt [--rounds 3]

On the generated year of 200,000 records (bench/gen_spool.py; `--quick`: 5,000). Each
round runs every command with both binaries, interleaved; medians of the wall time and
of the CPU time (user + system, from wait4: on a shared virtual machine the wall time
of one run can vary by a third, the CPU time much less), peak RSS. Writes
bench/out/versions.md. No timing is asserted.
"""
import os, shutil, statistics, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import build, BIN, OUT, QUICK, RECORDS, publish, year_spool  # noqa: E402


def run(argv):
    """Runs argv; returns (wall seconds, CPU seconds, peak RSS KiB). Exits on failure."""
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err)
        _, status, ru = os.wait4(p.pid, 0)
        dt = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            err.seek(0)
            sys.exit(f"{argv[0]} failed ({p.returncode}): {err.read().decode(errors='replace')[-2000:]}")
        return dt, ru.ru_utime + ru.ru_stime, ru.ru_maxrss


def arg(name, default=None):
    return sys.argv[sys.argv.index(name) + 1] if name in sys.argv else default


def main():
    base = arg("--baseline")
    if not base or not os.access(base, os.X_OK):
        sys.exit("usage: bench/versions.py --baseline PATH/TO/OLD/tlsrpt [--rounds N] [--quick]")
    rounds = int(arg("--rounds", "1" if QUICK else "3"))
    build()
    spool, size = year_spool(RECORDS)
    work = tempfile.mkdtemp(prefix="tlsrpt-versions-")
    bins = {"earlier": base, "this": BIN}

    def commands(b, tag):
        prom = os.path.join(work, f"prom-{tag}")
        db = os.path.join(work, f"{tag}.db")

        def fresh_metrics():
            shutil.rmtree(prom, ignore_errors=True)
            os.makedirs(prom)
            return [b, "metrics", "--spool", spool, "--textfile", os.path.join(prom, "t.prom")]

        def fresh_load():
            for f in os.listdir(work):
                if f.startswith(f"{tag}.db"):
                    os.remove(os.path.join(work, f))
            return [b, "load", "--spool", spool, "--db", f"sqlite://{db}"]

        return {
            "summary --since 365d --format json": [b, "summary", "--spool", spool, "--since", "365d",
                                                   "--format", "json"],
            "summary --since 30d --format json": [b, "summary", "--spool", spool, "--since", "30d",
                                                  "--format", "json"],
            "metrics, first run": fresh_metrics,
            "load into SQLite, first run": fresh_load,
            "summary --db --since 365d --format json": [b, "summary", "--db", f"sqlite://{db}",
                                                        "--since", "365d", "--format", "json"],
        }

    cmds = {tag: commands(b, tag) for tag, b in bins.items()}
    names = list(cmds["this"])
    times = {(t, n): [] for t in bins for n in names}
    cpu = {(t, n): [] for t in bins for n in names}
    rss = {}
    try:
        for _ in range(rounds):
            for n in names:
                for t in bins:
                    argv = cmds[t][n]
                    dt, used, kib = run(argv() if callable(argv) else argv)
                    times[(t, n)].append(dt)
                    cpu[(t, n)].append(used)
                    rss[(t, n)] = max(rss.get((t, n), 0), kib)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"Spool: {RECORDS:,} records, {size / 1e6:.0f} MB of JSON Lines; {rounds} interleaved rounds, "
             f"{os.cpu_count()} cores; earlier: {base}", "",
             "| command | earlier s | this s | this / earlier | earlier CPU s | this CPU s | CPU this / earlier "
             "| earlier MiB | this MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in names:
        e, m = statistics.median(times[("earlier", n)]), statistics.median(times[("this", n)])
        ce, cm = statistics.median(cpu[("earlier", n)]), statistics.median(cpu[("this", n)])
        lines.append(f"| {n} | {e:.3f} | {m:.3f} | {m / e:.2f} | {ce:.3f} | {cm:.3f} | {cm / ce:.2f} | "
                     f"{rss[('earlier', n)] / 1024:.0f} | {rss[('this', n)] / 1024:.0f} |")
    publish(lines, "versions.md", QUICK)


if __name__ == "__main__":
    main()
