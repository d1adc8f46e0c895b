//! The SQLite store: one file, no server. WAL journal with `synchronous=NORMAL`: a
//! crash of the process never loses a commit, and a power loss can lose only the last
//! commits, rows and checkpoint together, so the next run loads them again (the spool
//! is the durable copy; the database is derived from it). Foreign keys on, and a 60 s
//! busy timeout so a second load waits for the first one's file transaction. The WAL is
//! checkpointed every 64 MiB rather than every 4 MiB (each checkpoint syncs; a first
//! load of a year went from 11 s to 8 s) and truncated back to 64 MiB after one.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::rows::FactRows;
use super::{DbError, DbResult, Pruned, ReportRows, SCHEMA_VERSION, Store};
use crate::facts::{Group, Query, Total};

/// Forward migrations; entry `i` takes a database from version `i` to `i + 1`
/// (version 2 is shared with PostgreSQL: [`super::SCHEMA_V2`]).
/// Version 1 is parsedmarc's tables (nearest SQLite types) plus ours; version 2 adds
/// indexes and the once-per-report-and-domain view; version 3 changes PostgreSQL's
/// compression of the record column only, and nothing here.
pub const MIGRATIONS: [&str; 4] = [
    r#"
CREATE TABLE IF NOT EXISTS smtp_tls_report (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    organization_name TEXT NOT NULL,
    begin_date TEXT NOT NULL,
    end_date TEXT NOT NULL,
    contact_info TEXT,
    report_id TEXT NOT NULL,
    UNIQUE (organization_name, report_id, begin_date, end_date));
CREATE TABLE IF NOT EXISTS smtp_tls_policy (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id INTEGER REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    policy_domain TEXT,
    policy_type TEXT,
    policy_strings TEXT,
    mx_host_patterns TEXT,
    successful_session_count INTEGER,
    failed_session_count INTEGER);
CREATE TABLE IF NOT EXISTS smtp_tls_failure_detail (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    policy_id INTEGER REFERENCES smtp_tls_policy(id) ON DELETE CASCADE,
    result_type TEXT,
    failed_session_count INTEGER,
    sending_mta_ip TEXT,
    receiving_ip TEXT,
    receiving_mx_hostname TEXT,
    receiving_mx_helo TEXT,
    additional_info_uri TEXT,
    failure_reason_code TEXT);
CREATE TABLE tlsrpt_report_meta (
    report_pk INTEGER PRIMARY KEY REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    dedup_key TEXT NOT NULL UNIQUE,
    received_at TEXT,
    source_spool TEXT,
    dkim_verdict TEXT,
    warnings TEXT,
    record TEXT NOT NULL);
CREATE TABLE tlsrpt_checkpoint (
    spool TEXT NOT NULL,
    file TEXT NOT NULL,
    inode INTEGER NOT NULL,
    read_to INTEGER NOT NULL,
    PRIMARY KEY (spool, file));
"#,
    super::SCHEMA_V2,
    "-- version 3: PostgreSQL's TOAST compression; nothing changes on SQLite",
    super::SCHEMA_V4,
];

/// The facts of one report (crate::facts) into `tlsrpt_fact`.
fn insert_facts(c: &Connection, pk: i64, f: &FactRows) -> DbResult<()> {
    let mut st = c
        .prepare_cached(
            "INSERT INTO tlsrpt_fact (report_pk, end_at, start_at, authenticated, received_at, policy_domain,
             kind, a, b, c, n, n2) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )
        .map_err(e)?;
    for x in &f.facts {
        st.execute(params![
            pk,
            f.end_at,
            f.start_at,
            f.authenticated,
            f.received_at,
            x.domain,
            x.kind.letter(),
            x.a,
            x.b,
            x.c,
            x.n,
            x.n2
        ])
        .map_err(e)?;
    }
    Ok(())
}

/// Version 4: the facts of the reports stored before it, from their records.
fn backfill(c: &Connection) -> DbResult<()> {
    let mut last = i64::MIN;
    loop {
        let batch: Vec<(i64, String)> = c
            .prepare(
                "SELECT report_pk, record FROM tlsrpt_report_meta WHERE report_pk > ?1
                 ORDER BY report_pk LIMIT ?2",
            )
            .map_err(e)?
            .query_map(params![last, super::BACKFILL_BATCH], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(e)?
            .collect::<Result<_, _>>()
            .map_err(e)?;
        let Some(&(pk, _)) = batch.last() else {
            return Ok(());
        };
        last = pk;
        for (pk, record) in &batch {
            if let Some(f) = super::backfill_rows(record) {
                insert_facts(c, *pk, &f)?;
            }
        }
    }
}

pub struct Sqlite {
    conn: Connection,
    /// The schema has `tlsrpt_fact` (version 4 or later; a test may migrate to less).
    facts: bool,
}

fn e(x: rusqlite::Error) -> DbError {
    DbError::from(format!("sqlite: {x}"))
}

fn json_array(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings")
}

impl Sqlite {
    pub fn open(path: &Path) -> Result<Sqlite, String> {
        let conn = Connection::open(path).map_err(|x| format!("{}: {x}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(|x| e(x).msg)?;
        // Switching a new database to WAL takes an exclusive lock, and SQLite does not
        // call the busy handler for it: two loads creating one database at once retry.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match conn.execute_batch(
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON; PRAGMA cache_size=-32768; PRAGMA wal_autocheckpoint=16384; PRAGMA journal_size_limit=67108864;",
            ) {
                Ok(()) => break,
                Err(rusqlite::Error::SqliteFailure(f, _))
                    if f.code == rusqlite::ErrorCode::DatabaseBusy && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(x) => return Err(e(x).msg),
            }
        }
        Ok(Sqlite { conn, facts: true })
    }
}

/// The schema version a run migrates to (`TLSRPT_SCHEMA_TARGET`, for the migration
/// test, may ask for an older one).
pub fn target_version() -> i64 {
    std::env::var("TLSRPT_SCHEMA_TARGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| (1..=SCHEMA_VERSION).contains(v))
        .unwrap_or(SCHEMA_VERSION)
}

impl Store for Sqlite {
    fn migrate(&mut self) -> DbResult<()> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS tlsrpt_schema_version (version INTEGER NOT NULL);",
        )
        .map_err(e)?;
        let v: i64 = tx
            .query_row(
                "SELECT coalesce(max(version), 0) FROM tlsrpt_schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(e)?;
        if v > SCHEMA_VERSION {
            return Err(DbError::from(format!(
                "database schema version {v} is newer than {SCHEMA_VERSION}: upgrade tlsrpt"
            )));
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target_version() as usize)
            .skip(v as usize)
        {
            tx.execute_batch(sql)
                .map_err(|x| format!("sqlite: migration to version {}: {x}", i + 1))?;
            tx.execute("DELETE FROM tlsrpt_schema_version", [])
                .map_err(e)?;
            tx.execute(
                "INSERT INTO tlsrpt_schema_version (version) VALUES (?1)",
                params![i as i64 + 1],
            )
            .map_err(e)?;
            if i + 1 == 4 {
                backfill(&tx)?;
            }
        }
        self.facts = target_version() >= 4;
        tx.commit().map_err(e)
    }

    fn version(&mut self) -> DbResult<i64> {
        let has: i64 = self
            .conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'tlsrpt_schema_version'",
                [],
                |r| r.get(0),
            )
            .map_err(e)?;
        if has == 0 {
            return Ok(0);
        }
        self.conn
            .query_row(
                "SELECT coalesce(max(version), 0) FROM tlsrpt_schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(e)
    }

    fn checkpoints(&mut self, spool: &str) -> DbResult<HashMap<String, (u64, u64)>> {
        let mut st = self
            .conn
            .prepare_cached("SELECT file, inode, read_to FROM tlsrpt_checkpoint WHERE spool = ?1")
            .map_err(e)?;
        let rows = st
            .query_map(params![spool], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    (r.get::<_, i64>(1)? as u64, r.get::<_, i64>(2)? as u64),
                ))
            })
            .map_err(e)?;
        rows.collect::<Result<_, _>>().map_err(e)
    }

    /// SQLite has one writer at a time: the database's write lock, whatever the file.
    fn begin(&mut self, _spool: &str, _file: &str, _alone: bool) -> DbResult<()> {
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(e)
    }

    fn checkpoint(&mut self, spool: &str, file: &str) -> DbResult<Option<(u64, u64)>> {
        self.conn
            .prepare_cached(
                "SELECT inode, read_to FROM tlsrpt_checkpoint WHERE spool = ?1 AND file = ?2",
            )
            .map_err(e)?
            .query_row(params![spool, file], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64))
            })
            .optional()
            .map_err(e)
    }

    fn insert(&mut self, r: &ReportRows) -> DbResult<bool> {
        let c = &self.conn;
        let known: Option<i64> = c
            .prepare_cached("SELECT 1 FROM tlsrpt_report_meta WHERE dedup_key = ?1")
            .map_err(e)?
            .query_row(params![r.dedup_key], |x| x.get(0))
            .optional()
            .map_err(e)?;
        if known.is_some() {
            return Ok(false);
        }
        let id: Option<i64> = c
            .prepare_cached(
                "INSERT INTO smtp_tls_report (organization_name, begin_date, end_date, contact_info, report_id)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING RETURNING id",
            )
            .map_err(e)?
            .query_row(params![r.organization_name, r.begin_date, r.end_date, r.contact_info, r.report_id], |x| x.get(0))
            .optional()
            .map_err(e)?;
        let Some(id) = id else {
            return Ok(false); // stored already (by parsedmarc's key)
        };
        for p in &r.policies {
            let pid: i64 = c
                .prepare_cached(
                    "INSERT INTO smtp_tls_policy (report_id, policy_domain, policy_type, policy_strings, mx_host_patterns,
                     successful_session_count, failed_session_count) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
                )
                .map_err(e)?
                .query_row(
                    params![
                        id,
                        p.policy_domain,
                        p.policy_type,
                        json_array(&p.policy_strings),
                        json_array(&p.mx_host_patterns),
                        p.successful_session_count,
                        p.failed_session_count
                    ],
                    |x| x.get(0),
                )
                .map_err(e)?;
            for d in &p.details {
                c.prepare_cached(
                    "INSERT INTO smtp_tls_failure_detail (policy_id, result_type, failed_session_count, sending_mta_ip,
                     receiving_ip, receiving_mx_hostname, receiving_mx_helo, additional_info_uri, failure_reason_code)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                )
                .map_err(e)?
                .execute(params![
                    pid,
                    d.result_type,
                    d.failed_session_count,
                    d.sending_mta_ip.map(|ip| ip.to_string()),
                    d.receiving_ip.map(|ip| ip.to_string()),
                    d.receiving_mx_hostname,
                    d.receiving_mx_helo,
                    d.additional_info_uri,
                    d.failure_reason_code
                ])
                .map_err(e)?;
            }
        }
        c.prepare_cached(
            "INSERT INTO tlsrpt_report_meta (report_pk, dedup_key, received_at, source_spool, dkim_verdict, warnings, record)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(e)?
        .execute(params![id, r.dedup_key, r.received_at.map(|t| t.rfc3339()), r.source_spool, r.dkim_verdict, r.warnings, r.record])
        .map_err(e)?;
        if self.facts {
            insert_facts(c, id, &r.figures)?;
        }
        Ok(true)
    }

    fn set_checkpoint(&mut self, spool: &str, file: &str, inode: u64, offset: u64) -> DbResult<()> {
        self.conn
            .prepare_cached(
                "INSERT INTO tlsrpt_checkpoint (spool, file, inode, read_to) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (spool, file) DO UPDATE SET inode = excluded.inode, read_to = excluded.read_to",
            )
            .map_err(e)?
            .execute(params![spool, file, inode as i64, offset as i64])
            .map_err(e)?;
        Ok(())
    }

    fn forget_checkpoint(&mut self, spool: &str, file: &str) -> DbResult<()> {
        self.conn
            .prepare_cached("DELETE FROM tlsrpt_checkpoint WHERE spool = ?1 AND file = ?2")
            .map_err(e)?
            .execute(params![spool, file])
            .map_err(e)?;
        Ok(())
    }

    fn commit(&mut self) -> DbResult<()> {
        self.conn.execute_batch("COMMIT").map_err(e)
    }

    fn rollback(&mut self) {
        let _ = self.conn.execute_batch("ROLLBACK");
    }

    fn prune(&mut self, cut: i64, dry_run: bool) -> DbResult<Pruned> {
        let cut = crate::window::rfc3339(cut);
        let c = &self.conn;
        let pragma = |name: &str| -> DbResult<i64> {
            c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(e)
        };
        let page = pragma("page_size")?;
        let count_rows = |ids: &str| -> DbResult<i64> {
            c.query_row(
                "SELECT (SELECT count(*) FROM smtp_tls_policy WHERE report_id IN (SELECT value FROM json_each(?1)))
                      + (SELECT count(*) FROM smtp_tls_failure_detail WHERE policy_id IN
                           (SELECT id FROM smtp_tls_policy WHERE report_id IN (SELECT value FROM json_each(?1))))
                      + (SELECT count(*) FROM tlsrpt_report_meta WHERE report_pk IN (SELECT value FROM json_each(?1)))
                      + (SELECT count(*) FROM tlsrpt_fact WHERE report_pk IN (SELECT value FROM json_each(?1)))",
                params![ids],
                |r| r.get(0),
            )
            .map_err(e)
        };
        let mut out = Pruned::default();
        if dry_run {
            let (old, all): (i64, i64) = c
                .query_row(
                    "SELECT count(*) FILTER (WHERE end_date < ?1), count(*) FROM smtp_tls_report",
                    params![cut],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(e)?;
            // Counted where they are, without fetching a million ids.
            let rows: i64 = c
                .query_row(
                    "WITH old AS (SELECT id FROM smtp_tls_report WHERE end_date < ?1)
                     SELECT (SELECT count(*) FROM smtp_tls_policy WHERE report_id IN old)
                          + (SELECT count(*) FROM smtp_tls_failure_detail WHERE policy_id IN
                               (SELECT id FROM smtp_tls_policy WHERE report_id IN old))
                          + (SELECT count(*) FROM tlsrpt_report_meta WHERE report_pk IN old)
                          + (SELECT count(*) FROM tlsrpt_fact WHERE report_pk IN old)",
                    params![cut],
                    |r| r.get(0),
                )
                .map_err(e)?;
            out.reports = old as u64;
            out.rows = rows as u64;
            let used = (pragma("page_count")? - pragma("freelist_count")?) * page;
            out.bytes = if all > 0 {
                (used as f64 * old as f64 / all as f64) as u64
            } else {
                0
            };
            return Ok(out);
        }
        let free_before = pragma("freelist_count")?;
        loop {
            self.conn.execute_batch("BEGIN IMMEDIATE").map_err(e)?;
            let r = (|| -> DbResult<bool> {
                let c = &self.conn;
                let ids: Vec<i64> = c
                    .prepare(
                        "SELECT id FROM smtp_tls_report WHERE end_date < ?1 ORDER BY id LIMIT ?2",
                    )
                    .map_err(e)?
                    .query_map(params![cut, super::PRUNE_BATCH as i64], |r| r.get(0))
                    .map_err(e)?
                    .collect::<Result<_, _>>()
                    .map_err(e)?;
                if ids.is_empty() {
                    return Ok(false);
                }
                let ids_json = serde_json::to_string(&ids).expect("ids");
                out.rows += count_rows(&ids_json)? as u64;
                c.execute(
                    &CARRY.replace("KINDS", super::COUNTER_KINDS),
                    params![ids_json],
                )
                .map_err(e)?;
                out.reports += c
                    .execute(
                        "DELETE FROM smtp_tls_report WHERE id IN (SELECT value FROM json_each(?1))",
                        params![ids_json],
                    )
                    .map_err(e)? as u64;
                Ok(true)
            })();
            match r {
                Ok(more) => {
                    self.conn.execute_batch("COMMIT").map_err(e)?;
                    if !more {
                        break;
                    }
                }
                Err(x) => {
                    let _ = self.conn.execute_batch("ROLLBACK");
                    return Err(x);
                }
            }
        }
        out.bytes = ((pragma("freelist_count")? - free_before).max(0) * page) as u64;
        Ok(out)
    }

    fn totals(&mut self, f: &mut dyn FnMut(Total)) -> DbResult<()> {
        let sql = TOTALS.replace("KINDS", super::COUNTER_KINDS);
        let mut st = self.conn.prepare(&sql).map_err(e)?;
        let mut rows = st.query([]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            f(total(r, false).map_err(e)?);
        }
        Ok(())
    }

    fn history(&mut self, since: i64, f: &mut dyn FnMut(Total)) -> DbResult<()> {
        let mut st = self.conn.prepare(HISTORY).map_err(e)?;
        let mut rows = st.query(params![since]).map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            f(total(r, true).map_err(e)?);
        }
        Ok(())
    }

    fn figures(&mut self, q: &Query, f: &mut dyn FnMut(Group)) -> DbResult<()> {
        let domains = serde_json::to_string(&q.domains).expect("strings");
        // One scan: a page cache does not help it, and in this process it would be the
        // largest part of the memory (the loads' 32 MiB). 4 MiB, for this connection.
        self.conn
            .execute_batch("PRAGMA cache_size = -4096")
            .map_err(e)?;
        let mut st = self.conn.prepare(FIGURES).map_err(e)?;
        let mut rows = st
            .query(params![
                q.previous_since,
                q.since,
                q.until,
                q.domains.len() as i64,
                domains,
                q.include_unauthenticated,
                crate::aggregate::MAX_IPS as i64,
                crate::summary::TOP_SENDING_IPS as i64
            ])
            .map_err(e)?;
        while let Some(r) = rows.next().map_err(e)? {
            let n = |i: usize| -> rusqlite::Result<u64> {
                Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
            };
            let kind: String = r.get(3).map_err(e)?;
            f(Group {
                current: r.get::<_, i64>(0).map_err(e)? != 0,
                authenticated: r.get::<_, i64>(1).map_err(e)? != 0,
                domain: r.get(2).map_err(e)?,
                kind: crate::facts::Kind::from_letter(&kind),
                a: r.get(4).map_err(e)?,
                b: r.get(5).map_err(e)?,
                c: r.get(6).map_err(e)?,
                day: r.get(7).map_err(e)?,
                rows: n(8).map_err(e)?,
                n: n(9).map_err(e)?,
                n2: n(10).map_err(e)?,
                first: r.get::<_, Option<i64>>(11).map_err(e)?.unwrap_or(0),
                last: r.get::<_, Option<i64>>(12).map_err(e)?.unwrap_or(0),
                day_only: false,
            });
        }
        Ok(())
    }
}

/// One row of TOTALS or HISTORY (the same columns).
fn total(r: &rusqlite::Row, history: bool) -> rusqlite::Result<Total> {
    let n = |i: usize| -> rusqlite::Result<u64> {
        Ok(r.get::<_, Option<i64>>(i)?.unwrap_or(0).max(0) as u64)
    };
    let kind: String = r.get(2)?;
    Ok(Total {
        authenticated: r.get::<_, i64>(0)? != 0,
        domain: r.get(1)?,
        kind: crate::facts::Kind::from_letter(&kind),
        a: r.get::<_, Option<String>>(3)?.unwrap_or_default(),
        b: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
        day: if history { r.get(5)? } else { None },
        rows: n(6)?,
        n: n(7)?,
        last_end: r.get::<_, Option<i64>>(9)?.unwrap_or(0),
        last_received: r.get(10)?,
        c: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
    })
}

/// Counter facts of the reports ?1 (a JSON array of ids), added to the pruned sums.
const CARRY: &str = "
INSERT INTO tlsrpt_fact_pruned (authenticated, policy_domain, kind, a, b, c, reports, n, n2, last_end, last_received)
SELECT authenticated, policy_domain, kind, coalesce(a, ''), coalesce(b, ''), coalesce(c, ''), count(*), sum(n), sum(n2),
       max(end_at), max(received_at)
FROM tlsrpt_fact WHERE report_pk IN (SELECT value FROM json_each(?1)) AND kind IN KINDS
GROUP BY 1, 2, 3, 4, 5, 6
ON CONFLICT (authenticated, policy_domain, kind, a, b, c) DO UPDATE SET
    reports = reports + excluded.reports, n = n + excluded.n, n2 = n2 + excluded.n2,
    last_end = max(last_end, excluded.last_end),
    last_received = max(coalesce(last_received, excluded.last_received),
                        coalesce(excluded.last_received, last_received))";

/// All-time sums of the counter facts, stored and pruned (the client adds the two).
const TOTALS: &str = "
SELECT authenticated, policy_domain, kind, coalesce(a, ''), coalesce(b, ''), NULL, count(*), sum(n), sum(n2),
       max(end_at), max(received_at), coalesce(c, '')
FROM tlsrpt_fact WHERE kind IN KINDS GROUP BY 1, 2, 3, 4, 5, 12
UNION ALL
SELECT authenticated, policy_domain, kind, a, b, NULL, reports, n, n2, last_end, last_received, c
FROM tlsrpt_fact_pruned";

/// Domain facts since ?1 per (DKIM, domain, organisation, UTC day of the start).
const HISTORY: &str = "
SELECT authenticated, policy_domain, kind, NULL, b, start_at - (start_at % 86400 + 86400) % 86400, count(*),
       sum(n), sum(n2), max(end_at), max(received_at), ''
FROM tlsrpt_fact WHERE kind = 'D' AND end_at > ?1 GROUP BY 1, 2, 3, 5, 6";

/// The sums of a window's facts (see crate::facts::Group): per (window, DKIM, domain,
/// kind, keys), the current window's Domain facts also per UTC day of their report's
/// start; of the sending IPs only the largest ?7 per (result type, MX) and ?8 per
/// domain. ?1 previous window's start, ?2 current window's start, ?3 its end, ?4 how
/// many domains ?5 (a JSON array) holds, ?6 reports without a DKIM pass counted with
/// the others.
const FIGURES: &str = "
WITH g AS (
SELECT end_at > ?2 AS cur, authenticated OR ?6 AS auth, policy_domain AS domain, kind, a, b, c,
       CASE WHEN kind = 'D' AND end_at > ?2 THEN start_at - (start_at % 86400 + 86400) % 86400 END AS day,
       count(*) AS rows, sum(n) AS n, sum(n2) AS n2, min(start_at) AS first, max(start_at) AS last
FROM tlsrpt_fact
WHERE end_at > ?1 AND end_at <= ?3 AND (end_at > ?2 OR kind = 'D') AND kind NOT IN ('u', 'v')
  AND (?4 = 0 OR policy_domain IN (SELECT value FROM json_each(?5)))
GROUP BY 1, 2, 3, 4, 5, 6, 7, 8)
SELECT * FROM g WHERE kind NOT IN ('I', 'S')
UNION ALL
SELECT cur, auth, domain, kind, a, b, c, day, rows, n, n2, first, last FROM (
    SELECT *, row_number() OVER (PARTITION BY cur, auth, domain, kind, a, b
                                 ORDER BY n DESC, c COLLATE BINARY) AS rank
    FROM g WHERE kind IN ('I', 'S')) AS ranked
WHERE rank <= CASE kind WHEN 'I' THEN ?7 ELSE ?8 END";
