#!/usr/bin/env python3
"""Benchmark of the central database (issue: years of a provider's reports in one
PostgreSQL): `tlsrpt load` of a generated spool into PostgreSQL, then `summary --db` for
a year, a month and a week, against psql running the equivalent GROUP BYs in the same
run, and the same summary from the spool.

  python3 bench/db.py                   2,000,000 records (10x the year of bench/gen_spool.py,
                                        1,000 domains), writes bench/out/db.md
  python3 bench/db.py --records 200000  another size
  python3 bench/db.py --quick           5,000 records, one run each (CI: it still works)

The contenders for `summary --db` (psql's output goes to /dev/null; the time is psql's
whole run, connection included):
- psql, the tool's own GROUP BY over `tlsrpt_figure`, as the server received it from
  `tlsrpt summary --db` (captured from the server's statement log, with its
  parameters, one connection): what the database must do for these figures; the tool's
  time over it is the client's cost (streaming, building the document) less what its
  parallel connections gain.
- psql, hand-written over the tlsrpt_domain_report and tlsrpt_failure views (the
  per-domain sessions, every policy counted once, and the failures per domain and
  result type): the two GROUP BYs the issue measured; far fewer figures than the
  summary gives.
Both psql runs, as the tool, without JIT (it made each slower here).
Peak RSS from GNU time. No timing is asserted: the numbers are written down, not judged.
"""
import os, re, shutil, statistics, subprocess, sys, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import build, BIN, OUT, QUICK, ROOT, publish, timed, year_spool  # noqa: E402
from load import Cluster  # noqa: E402

RECORDS = 5000 if QUICK else 2_000_000
if "--records" in sys.argv:
    RECORDS = int(sys.argv[sys.argv.index("--records") + 1])
ROUNDS = 1 if QUICK else 3

# The GROUP BYs over the database's views (the "two GROUP BY queries").
BARE = """
SET jit = off;
SELECT policy_domain, count(DISTINCT report_pk), sum(successful_session_count), sum(failed_session_count)
FROM tlsrpt_domain_report WHERE end_date > to_timestamp({since}) AND end_date <= to_timestamp({until}) GROUP BY 1;
SELECT policy_domain, result_type, sum(failed_session_count)
FROM tlsrpt_failure WHERE end_date > to_timestamp({since}) AND end_date <= to_timestamp({until}) GROUP BY 1, 2;
"""

# The statement log's prefix while the tool's query is captured (see `captured_sql`).
MARK = "@@tlsrpt-bench@@ "


def captured_sql(pg, url, days):
    """The figures query `tlsrpt summary --db --since DAYSd` sends, as the server logged
    it (log_statement = 'all'), with its logged parameters written in: the tool's own
    SQL, whatever the source builds it from. The first of the summary's connections
    runs it over every domain (one reader: TLSRPT_READERS=1)."""
    log = os.path.join(pg.dir, "pg.log")
    start = os.path.getsize(log)
    # One statement per call: ALTER SYSTEM cannot run inside psql -c's one transaction.
    pg.psql("ALTER SYSTEM SET log_statement = 'all'")
    pg.psql(f"ALTER SYSTEM SET log_line_prefix = '{MARK}'")
    pg.psql("SELECT pg_reload_conf()")
    time.sleep(0.5)
    subprocess.run([BIN, "summary", "--db", url, "--since", f"{days}d", "--format", "json"],
                   check=True, stdout=subprocess.DEVNULL, env=dict(os.environ, TLSRPT_READERS="1"))
    pg.psql("ALTER SYSTEM RESET log_statement")
    pg.psql("ALTER SYSTEM RESET log_line_prefix")
    pg.psql("SELECT pg_reload_conf()")
    with open(log, errors="replace") as f:
        f.seek(start)
        entries = f.read().split(MARK)
    for i, entry in enumerate(entries):
        m = re.match(r"LOG:\s+execute [^:]*: (.*)", entry, re.S)
        if not m or "GROUPING SETS" not in m.group(1):
            continue
        sql = m.group(1).strip()
        detail = entries[i + 1] if i + 1 < len(entries) else ""
        if "DETAIL:  parameters:" in entry:
            sql, detail = entry.split("DETAIL:  parameters:", 1)
            sql = re.match(r"LOG:\s+execute [^:]*: (.*)", sql, re.S).group(1).strip()
        else:
            detail = detail.split("parameters:", 1)[-1]
        params = dict(re.findall(r"\$(\d+) = ('(?:[^']|'')*'|NULL)", detail))
        for k in sorted(params, key=int, reverse=True):
            sql = sql.replace(f"${k}", params[k])
        if "$" in re.sub(r"'(?:[^']|'')*'", "", sql):
            raise RuntimeError(f"a parameter of the captured query is missing from the log: {detail[:200]}")
        return "SET work_mem = '64MB'; SET enable_sort = off; SET jit = off;\n" + sql + ";"
    raise RuntimeError(f"tlsrpt summary --db's figures query is not in {log}")


def median_timed(argv, rounds):
    runs = [timed(argv) for _ in range(rounds)]
    return statistics.median(r[0] for r in runs), max(r[1] for r in runs)


def main():
    os.makedirs(OUT, exist_ok=True)
    build()
    spool, size = year_spool(RECORDS)
    rows = []  # (what, seconds, rss KiB, note)
    pg = Cluster()
    try:
        url = pg.url()
        dt, kib = timed([BIN, "load", "--db", url, "--spool", spool])
        print(f"loaded in {dt:.1f} s", flush=True)
        n = int(pg.psql("SELECT count(*) FROM smtp_tls_report"))
        facts = int(pg.psql("SELECT count(*) FROM tlsrpt_figure"))
        mb = int(pg.psql("SELECT pg_database_size('postgres')")) / 1e6
        rows.append((f"tlsrpt load into PostgreSQL {pg.version}, first run", dt, kib,
                     f"{n:,} reports ({n / dt:,.0f}/s), {facts:,} figure rows, {mb:,.0f} MB database"))
        dt, kib = median_timed([BIN, "load", "--db", url, "--spool", spool], 1 if QUICK else 5)
        rows.append(("tlsrpt load, nothing new (median of 5)", dt, kib, ""))
        # What autovacuum does after a bulk load, done now so every contender reads the
        # same settled tables.
        pg.psql("VACUUM ANALYZE")
        psql = os.path.join(pg.bin, "psql")
        now = int(time.time())
        figures = {}
        for days in (365, 30, 7):
            until, since = now, now - days * 86400
            figures[days] = captured_sql(pg, url, days)
            sqlfile = os.path.join(pg.dir, f"figures-{days}.sql")
            with open(sqlfile, "w") as f:
                f.write("\\o /dev/null\n" + figures[days] + "\n")
            barefile = os.path.join(pg.dir, f"bare-{days}.sql")
            with open(barefile, "w") as f:
                f.write("\\o /dev/null\n" + BARE.format(since=since, until=until) + "\n")
            contenders = {
                f"tlsrpt summary --db --since {days}d --format json": [
                    BIN, "summary", "--db", url, "--since", f"{days}d", "--format", "json"],
                f"psql: the same GROUP BY over tlsrpt_figure, {days}d": [
                    psql, "-Xq", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", sqlfile],
                f"psql: two GROUP BYs over the views, {days}d": [
                    psql, "-Xq", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", barefile],
            }
            if days == 365:
                contenders[f"tlsrpt summary --since {days}d from the spool"] = [
                    BIN, "summary", "--spool", spool, "--since", f"{days}d", "--format", "json"]
            results = {k: [] for k in contenders}
            for _ in range(ROUNDS):  # interleaved, so drift hits all alike
                for k, argv in contenders.items():
                    results[k].append(timed(argv))
            for k, r in results.items():
                rows.append((k, statistics.median(x[0] for x in r), max(x[1] for x in r), ""))
                print(rows[-1], flush=True)
        # The plans, for the record (bench/out/db-explain-N.txt).
        plans = []
        for days in (365, 7):
            q = figures[days].split("\n", 1)
            plans.append(f"-- {days}d\n" + pg.psql(q[0] + "\nEXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + q[1]))
        if not QUICK:
            with open(os.path.join(OUT, f"db-explain-{RECORDS}.txt"), "w") as f:
                f.write("\n\n".join(plans) + "\n")
        cut = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 300 * 86400))
        dt, kib = timed([BIN, "prune", "--older-than", cut, "--db", url, "--dry-run"])
        rows.append(("tlsrpt prune --db --older-than 300d --dry-run", dt, kib, ""))
    finally:
        pg.stop()
    lines = [f"Spool: {RECORDS:,} records, {size / 1e6:,.0f} MB of JSON Lines; "
             f"{os.cpu_count()} cores; medians of {ROUNDS} interleaved runs.", "",
             "| what | s | peak RSS MiB | result |", "|---|---:|---:|---|"]
    for what, dt, kib, note in rows:
        lines.append(f"| {what} | {dt:.3f} | {kib / 1024:.0f} | {note} |")
    by = {w: dt for w, dt, _, _ in rows}
    lines.append("")
    for days in (365, 30, 7):
        ours = by[f"tlsrpt summary --db --since {days}d --format json"]
        same = by[f"psql: the same GROUP BY over tlsrpt_figure, {days}d"]
        bare = by[f"psql: two GROUP BYs over the views, {days}d"]
        lines.append(f"- {days}d: tlsrpt summary --db {ours:.2f} s = {ours / same:.2f}x psql with the same "
                     f"GROUP BY ({same:.2f} s), {ours / bare:.2f}x the two bare GROUP BYs ({bare:.2f} s)")
    publish(lines, "db.md" if RECORDS == 2_000_000 else f"db-{RECORDS}.md", QUICK)


if __name__ == "__main__":
    main()
