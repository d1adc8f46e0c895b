#!/usr/bin/env python3
"""Benchmarks of the operator side (`tlsrpt summary`) on a generated year of a hosting
provider's spool, against DuckDB and jq answering the same per-domain question over the
same JSON Lines, in the same run.

  python3 bench/summary.py           200,000 records, 1,000 domains, 365 day files
                                      (writes bench/out/operator.md)
  python3 bench/summary.py --quick   5,000 records, one run each, no DuckDB (CI: it
                                      still works)

The question: per policy domain, reports and successful/failed sessions for the window.
tlsrpt answers far more (every breakdown, the previous window, the sts+tlsa rule, dedup,
authentication); DuckDB and jq sum every policy as parsedmarc's dashboards do, which is
the cheaper (and, for sts+tlsa reports, wrong) question: a floor, not a peer.
Times are medians of interleaved runs; peak RSS from GNU time.
"""
import os, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import build, BIN, OUT, QUICK, RECORDS, ROOT, publish, timed, year_spool  # noqa: E402
ROUNDS = 1 if QUICK else 5


def main():
    os.makedirs(OUT, exist_ok=True)
    build()
    spool, size = year_spool(RECORDS)
    now = int(time.time())
    glob = os.path.join(spool, "*.jsonl")

    cmds = {}
    for days in (365, 30):
        cmds[f"tlsrpt summary --since {days}d --format json"] = (
            [BIN, "summary", "--spool", spool, "--since", f"{days}d", "--format", "json", "--include-unauthenticated"], None)
    cmds["tlsrpt summary --since 365d, 1 reader"] = (
        [BIN, "summary", "--spool", spool, "--since", "365d", "--format", "json", "--include-unauthenticated"],
        dict(os.environ, TLSRPT_READERS="1"))
    since30 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30 * 86400))
    jq_prog = ('reduce (inputs | select(.report["date-range"]["end-datetime"] > $s) | .report.policies[]) as $p ({}; '
               '.[$p.policy["policy-domain"]] |= {r: ((.r // 0) + 1), '
               's: ((.s // 0) + $p.summary["total-successful-session-count"]), '
               'f: ((.f // 0) + $p.summary["total-failure-session-count"])})')
    for days, s in ((365, "0"), (30, since30)):
        cmds[f"jq, per-domain sums, {days}d"] = (
            ["sh", "-c", f"cat {glob} | jq -n --arg s '{s}' '{jq_prog}'"], None)
    if not QUICK:
        venv = os.path.join(OUT, "duckdb-venv")
        py = os.path.join(venv, "bin", "python")
        if not os.path.exists(py):
            subprocess.run([sys.executable, "-m", "venv", venv], check=True)
            subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "duckdb"], check=True)
        for days, s in ((365, "1970-01-01"), (30, since30)):
            sql = f"""
              SELECT p.policy."policy-domain" AS domain, count(*) AS reports,
                     sum(p.summary."total-successful-session-count") AS ok,
                     sum(p.summary."total-failure-session-count") AS failed
              FROM (SELECT unnest(report.policies) AS p FROM read_json('{glob}', format='newline_delimited',
                    maximum_object_size=67108864)
                    WHERE report."date-range"."end-datetime" > '{s}')
              GROUP BY 1 ORDER BY failed DESC"""
            cmds[f"DuckDB read_json + unnest, {days}d"] = (
                [py, "-c", f"import duckdb; duckdb.sql('''{sql}''').fetchall()"], None)

    # metrics: a first run (no state) and an incremental run with nothing new; check.
    prom = os.path.join(OUT, "prom")
    os.makedirs(prom, exist_ok=True)
    textfile = os.path.join(prom, "tlsrpt.prom")

    def fresh_metrics():
        for f in os.listdir(prom):
            os.remove(os.path.join(prom, f))
        return [BIN, "metrics", "--spool", spool, "--textfile", textfile]

    cmds["tlsrpt metrics, first run"] = (fresh_metrics, None)
    cmds["tlsrpt metrics, incremental, nothing new"] = (
        [BIN, "metrics", "--spool", spool, "--textfile", textfile], None)
    cmds["tlsrpt check (2 days judged, 30 of history)"] = (
        ["sh", "-c", f"{BIN} check --spool {spool} -w 100 -c 100 >/dev/null; test $? -le 2"], None)

    results = {k: [] for k in cmds}
    rss = {}
    for _ in range(ROUNDS):
        for name, (argv, env) in cmds.items():
            dt, kib = timed(argv() if callable(argv) else argv, env)
            results[name].append(dt)
            rss[name] = max(rss.get(name, 0), kib)
    lines = [f"Spool: {RECORDS:,} records, {size / 1e6:.0f} MB of JSON Lines; {ROUNDS} interleaved rounds, "
             f"{os.cpu_count()} cores.", "",
             "| command | median s | peak RSS MiB |", "|---|---:|---:|"]
    for name in cmds:
        lines.append(f"| {name} | {statistics.median(results[name]):.3f} | {rss[name] / 1024:.0f} |")
    publish(lines, "operator.md", QUICK)

if __name__ == "__main__":
    main()
