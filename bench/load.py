#!/usr/bin/env python3
"""Benchmark of `tlsrpt load` on the generated year of a hosting provider's spool, in one
run with DuckDB loading the same JSON Lines into flat tables (the floor the issue names).

  python3 bench/load.py           200,000 records (bench/gen_spool.py), writes
                                  bench/out/load.md
  python3 bench/load.py --quick   5,000 records, no DuckDB (CI: it still works)

Each contender starts from an empty database and loads the whole spool once (first run);
then `tlsrpt load` runs again with nothing new (incremental). PostgreSQL is a throw-away
cluster (initdb in a temporary directory, its own socket, default durability settings:
fsync on, synchronous_commit on), run as `nobody` when this runs as root; skipped with
a reason when the server binaries are missing. Peak RSS from GNU time. No timing is
asserted: the numbers are written down, not judged.
"""
import os, shutil, subprocess, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import build, BIN, OUT, QUICK, RECORDS, ROOT, publish, timed, year_spool  # noqa: E402


class Cluster:
    """A throw-away PostgreSQL cluster in a temporary directory."""

    def __init__(self):
        base = "/usr/lib/postgresql"
        bins = sorted(os.path.join(base, v, "bin") for v in os.listdir(base)) if os.path.isdir(base) else []
        bins = [b for b in bins if os.path.exists(os.path.join(b, "initdb"))]
        if not bins:
            raise RuntimeError("no PostgreSQL server binaries (apt-get install postgresql)")
        self.bin = bins[-1]
        self.version = os.path.basename(os.path.dirname(self.bin))
        self.root = os.geteuid() == 0
        self.dir = tempfile.mkdtemp(prefix="tlsrpt-bench-pg-")
        os.chmod(self.dir, 0o777)
        self.user = "nobody" if self.root else os.environ.get("USER", "postgres")
        self.data = os.path.join(self.dir, "data")
        self.port = 54329
        self._run([os.path.join(self.bin, "initdb"), "-D", self.data, "-A", "trust", "-U", self.user])
        opts = f"-c listen_addresses='' -c unix_socket_directories={self.dir} -p {self.port}"
        self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-o", opts, "-l",
                   os.path.join(self.dir, "pg.log"), "-w", "start"])

    def _run(self, argv):
        pre = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] if self.root else []
        subprocess.run(pre + argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=self.dir)

    def url(self, db="postgres"):
        return f"host={self.dir} port={self.port} user={self.user} dbname={db}"

    def psql(self, sql, db="postgres"):
        return subprocess.run([os.path.join(self.bin, "psql"), "-XAtq", "-d", self.url(db), "-c", sql],
                              check=True, capture_output=True, text=True, cwd=self.dir).stdout.strip()

    def stop(self):
        try:
            self._run([os.path.join(self.bin, "pg_ctl"), "-D", self.data, "-m", "fast", "-w", "stop"])
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


DUCKDB_SQL = """
CREATE TABLE raw AS SELECT * FROM read_json('{glob}', format='newline_delimited', maximum_object_size=67108864);
CREATE TABLE smtp_tls_report AS
  SELECT row_number() OVER () AS id, "dedup-key" AS dedup_key, report."organization-name" AS organization_name,
         report."date-range"."start-datetime" AS begin_date, report."date-range"."end-datetime" AS end_date,
         report."contact-info" AS contact_info, report."report-id" AS report_id, report.policies AS policies
  FROM raw;
CREATE TABLE smtp_tls_policy AS
  SELECT id AS report_id, p.policy."policy-domain" AS policy_domain, p.policy."policy-type" AS policy_type,
         p.policy."policy-string" AS policy_strings, p.policy."mx-host" AS mx_host_patterns,
         p.summary."total-successful-session-count" AS successful_session_count,
         p.summary."total-failure-session-count" AS failed_session_count, p."failure-details" AS details
  FROM (SELECT id, unnest(policies) AS p FROM smtp_tls_report);
CREATE TABLE smtp_tls_failure_detail AS
  SELECT report_id, policy_domain, d."result-type" AS result_type, d."failed-session-count" AS failed_session_count,
         d."sending-mta-ip" AS sending_mta_ip, d."receiving-ip" AS receiving_ip,
         d."receiving-mx-hostname" AS receiving_mx_hostname
  FROM (SELECT report_id, policy_domain, unnest(details) AS d FROM smtp_tls_policy);
ALTER TABLE smtp_tls_report DROP COLUMN policies;
ALTER TABLE smtp_tls_policy DROP COLUMN details;
DROP TABLE raw;
"""


def main():
    os.makedirs(OUT, exist_ok=True)
    build()
    spool, size = year_spool(RECORDS)
    work = tempfile.mkdtemp(prefix="tlsrpt-bench-load-")
    rows = []  # (what, seconds, rss KiB, note)
    try:
        if not QUICK:
            venv = os.path.join(OUT, "duckdb-venv")
            py = os.path.join(venv, "bin", "python")
            if not os.path.exists(py):
                subprocess.run([sys.executable, "-m", "venv", venv], check=True)
                subprocess.run([os.path.join(venv, "bin", "pip"), "install", "-q", "duckdb"], check=True)
            sql = DUCKDB_SQL.format(glob=os.path.join(spool, "*.jsonl"))
            prog = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); c.execute(sys.argv[2]); "
                    "print(c.sql('SELECT count(*) FROM smtp_tls_report').fetchall()[0][0]); c.close()")
            # In memory (the floor) and into a file (durable, as ours are).
            dt, kib = timed([py, "-c", prog, ":memory:", sql])
            rows.append(("DuckDB: read_json + unnest into three flat tables, in memory", dt, kib, ""))
            ddb = os.path.join(work, "flat.duckdb")
            dt, kib = timed([py, "-c", prog, ddb, sql])
            rows.append(("DuckDB: the same into a database file", dt, kib,
                         f"{os.path.getsize(ddb) / 1e6:.0f} MB file"))
        db = os.path.join(work, "tlsrpt.db")
        dt, kib = timed([BIN, "load", "--db", f"sqlite://{db}", "--spool", spool])
        rows.append(("tlsrpt load into SQLite, first run", dt, kib, f"{os.path.getsize(db) / 1e6:.0f} MB file"))
        dt, kib = timed([BIN, "load", "--db", f"sqlite://{db}", "--spool", spool])
        rows.append(("tlsrpt load into SQLite, nothing new", dt, kib, ""))
        try:
            pg = Cluster()
        except (RuntimeError, subprocess.CalledProcessError) as e:
            print(f"PostgreSQL skipped: {e}")
            pg = None
        if pg:
            try:
                # The loader connects over the cluster's socket as its owner (trust).
                dt, kib = timed([BIN, "load", "--db", pg.url(), "--spool", spool])
                n = pg.psql("SELECT count(*) FROM smtp_tls_report")
                sz = int(pg.psql("SELECT pg_database_size('postgres')"))
                jobs = min(os.cpu_count() or 1, 4)
                rows.append((f"tlsrpt load into PostgreSQL {pg.version}, first run ({jobs} connections)", dt, kib,
                             f"{n} reports, {sz / 1e6:.0f} MB database"))
                dt, kib = timed([BIN, "load", "--db", pg.url(), "--spool", spool])
                rows.append((f"tlsrpt load into PostgreSQL {pg.version}, nothing new", dt, kib, ""))
            finally:
                pg.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    lines = [f"Spool: {RECORDS:,} records, {size / 1e6:.0f} MB of JSON Lines; single runs, "
             f"{os.cpu_count()} cores.", "",
             "| load | s | peak RSS MiB | result |", "|---|---:|---:|---|"]
    for what, dt, kib, note in rows:
        lines.append(f"| {what} | {dt:.3f} | {kib / 1024:.0f} | {note} |")
    floors = [(what, dt) for what, dt, _, _ in rows if what.startswith("DuckDB")]
    if floors:
        lines.append("")
        for what, dt, _, _ in rows:
            if "first run" in what:
                ratios = ", ".join(f"{dt / f:.1f}x {'in-memory' if 'memory' in w else 'file'}"
                                   for w, f in floors)
                lines.append(f"- {what}: {ratios} DuckDB")
    publish(lines, "load.md", QUICK)

if __name__ == "__main__":
    main()
