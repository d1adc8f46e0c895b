//! The SQLite store: one file, no server. WAL journal with `synchronous=NORMAL`: a
//! crash of the process never loses a commit, and a power loss can lose only the last
//! commits, rows and checkpoint together, so the next run loads them again (the spool
//! is the durable copy; the database is derived from it). Foreign keys on, and a 60 s
//! busy timeout so a second load waits for the first one's file transaction. The WAL is
//! checkpointed every 64 MiB rather than every 4 MiB (each checkpoint syncs; a first
//! load of a year went from 11 s to 8 s) and truncated back to 64 MiB after one.
//!
//! This file: opening, the migrations, the writer (`load`, `prune`); `read.rs`: the
//! reader (the read commands' queries).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::figures::{KEYS, Name};
use super::rows::FigureRows;
use super::{DbError, DbResult, ReportRows, SCHEMA_VERSION, Space, Writer, target_version};

mod read;

/// Forward migrations; entry `i` takes a database from version `i` to `i + 1`
/// (versions 2, 4 and 5 are shared with PostgreSQL: [`super::SCHEMA_V2`], ...).
/// Version 1 is parsedmarc's tables (nearest SQLite types) plus ours; version 2 adds
/// indexes and the once-per-report-and-domain view; version 3 changes PostgreSQL's
/// compression of the record column only, and nothing here; version 4 the first figure
/// rows; version 5 the figures by the counting rule, with named columns, and trust.
pub const MIGRATIONS: [&str; 5] = [
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
    super::SCHEMA_V5,
];

/// The figures of one report (crate::db::figures) into `tlsrpt_figure`.
fn insert_figures(c: &Connection, pk: i64, f: &FigureRows) -> DbResult<()> {
    let mut st = c
        .prepare_cached(&format!(
            "INSERT INTO tlsrpt_figure (report_pk, end_at, start_at, authenticated, trust_needs, received_at,
             policy_domain, {KEYS}, successful, failed)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
        ))
        .map_err(e)?;
    for x in &f.figures {
        let r = x.figure.row();
        st.execute(params![
            pk,
            f.end_at,
            f.start_at,
            f.authenticated,
            f.trust_needs,
            f.received_at,
            x.domain,
            r.figure.map(Name::as_str),
            r.organization,
            r.policy_type,
            r.result_type,
            r.mx_host,
            r.ip,
            r.reason,
            r.uri,
            r.sts_policy,
            r.successful,
            r.failed
        ])
        .map_err(e)?;
    }
    Ok(())
}

/// Version 5: the figures of the reports stored before it, from their records, and
/// their trust and transport.
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
                c.prepare_cached(
                    "UPDATE tlsrpt_report_meta SET transport = ?2, trust_needs = ?3, recipient = ?4,
                     original_recipient = ?5 WHERE report_pk = ?1",
                )
                .map_err(e)?
                .execute(params![pk, f.transport, f.trust_needs, f.recipient, f.original_recipient])
                .map_err(e)?;
                insert_figures(c, *pk, &f)?;
            }
        }
    }
}

pub struct Sqlite {
    conn: Connection,
    /// The schema has `tlsrpt_figure` (version 5 or later; a test may migrate to less).
    figures: bool,
}

fn e(x: rusqlite::Error) -> DbError {
    let temporary = matches!(
        &x,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    );
    let msg = format!("sqlite: {x}");
    if temporary {
        DbError::from(msg)
    } else {
        DbError::permanent(msg)
    }
}

fn json_array(v: &[String]) -> String {
    serde_json::to_string(v).expect("strings")
}

/// Why a database file cannot be opened, said with the fix (the library's "unable to
/// open database file" names neither the file nor the cause).
fn open_error(path: &Path, create: bool, x: rusqlite::Error) -> DbError {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let writable = |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::W_OK).is_ok();
    if !path.exists() {
        if !create {
            return DbError::permanent(format!(
                "{}: no such database: run `tlsrpt load --db sqlite://{}` first",
                path.display(),
                path.display()
            ));
        }
        if !dir.is_dir() {
            return DbError::permanent(format!(
                "{}: the directory {} does not exist: create it for the user who runs tlsrpt (install -d -o tlsrpt -g tlsrpt -m 0750 {})",
                path.display(),
                dir.display(),
                dir.display()
            ));
        }
        if !writable(dir) {
            return DbError::permanent(format!(
                "{}: cannot create the database: {} is not writable by this user (run as its owner, e.g. sudo -u tlsrpt)",
                path.display(),
                dir.display()
            ));
        }
    } else if create && !writable(path) {
        return DbError::permanent(format!(
            "{}: not writable by this user (run as its owner, e.g. sudo -u tlsrpt)",
            path.display()
        ));
    }
    let mut d = e(x);
    d.msg = format!("{}: {}", path.display(), d.msg);
    d
}

impl Sqlite {
    /// Opens (and with `create`, creates) the database to write.
    pub fn open_write(path: &Path, create: bool) -> DbResult<Sqlite> {
        use rusqlite::OpenFlags;
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if create {
            flags |= OpenFlags::SQLITE_OPEN_CREATE;
        } else if !path.exists() {
            return Err(open_error(path, false, rusqlite::Error::InvalidQuery));
        }
        let conn =
            Connection::open_with_flags(path, flags).map_err(|x| open_error(path, create, x))?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(e)?;
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
                Err(x) => return Err(open_error(path, create, x)),
            }
        }
        Ok(Sqlite {
            conn,
            figures: true,
        })
    }

    /// Opens an existing database to read; never creates a file (a read-only user
    /// reads with a read-only connection).
    pub fn open_read(path: &Path) -> DbResult<Sqlite> {
        use rusqlite::OpenFlags;
        if !path.exists() {
            return Err(open_error(path, false, rusqlite::Error::InvalidQuery));
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .or_else(|_| {
            Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
        })
        .map_err(|x| open_error(path, false, x))?;
        conn.busy_timeout(Duration::from_secs(60)).map_err(e)?;
        Ok(Sqlite {
            conn,
            figures: true,
        })
    }
}

fn schema_version(conn: &Connection) -> DbResult<i64> {
    let has: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE name = 'tlsrpt_schema_version'",
            [],
            |r| r.get(0),
        )
        .map_err(e)?;
    if has == 0 {
        return Ok(0);
    }
    conn.query_row(
        "SELECT coalesce(max(version), 0) FROM tlsrpt_schema_version",
        [],
        |r| r.get(0),
    )
    .map_err(e)
}

impl Writer for Sqlite {
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
            return Err(DbError::permanent(format!(
                "database schema version {v} is newer than {SCHEMA_VERSION}: upgrade tlsrpt"
            )));
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target_version() as usize)
            .skip(v as usize)
        {
            tx.execute_batch(sql).map_err(|x| {
                DbError::permanent(format!("sqlite: migration to version {}: {x}", i + 1))
            })?;
            tx.execute("DELETE FROM tlsrpt_schema_version", [])
                .map_err(e)?;
            tx.execute(
                "INSERT INTO tlsrpt_schema_version (version) VALUES (?1)",
                params![i as i64 + 1],
            )
            .map_err(e)?;
            if i + 1 == 5 {
                backfill(&tx)?;
            }
        }
        self.figures = target_version() >= 5;
        tx.commit().map_err(e)
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

    fn insert_batch(&mut self, rows: &[ReportRows]) -> DbResult<(u64, u64)> {
        let mut n = (0, 0);
        for r in rows {
            if self.insert(r)? {
                n.0 += 1;
            } else {
                n.1 += 1;
            }
        }
        Ok(n)
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

    fn space(&mut self) -> DbResult<Space> {
        let c = &self.conn;
        let pragma = |name: &str| -> DbResult<i64> {
            c.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))
                .map_err(e)
        };
        let used = (pragma("page_count")? - pragma("freelist_count")?) * pragma("page_size")?;
        let reports: i64 = c
            .query_row("SELECT count(*) FROM smtp_tls_report", [], |r| r.get(0))
            .map_err(e)?;
        Ok(Space {
            bytes: used.max(0) as u64,
            reports: reports.max(0) as u64,
        })
    }

    fn count_old(&mut self, cut: i64) -> DbResult<(u64, u64)> {
        let cut = crate::window::rfc3339(cut);
        // Counted where they are, without fetching a million ids.
        let (reports, rows): (i64, i64) = self
            .conn
            .query_row(
                "WITH old AS (SELECT id FROM smtp_tls_report WHERE end_date < ?1)
                 SELECT (SELECT count(*) FROM old),
                        (SELECT count(*) FROM smtp_tls_policy WHERE report_id IN old)
                      + (SELECT count(*) FROM smtp_tls_failure_detail WHERE policy_id IN
                           (SELECT id FROM smtp_tls_policy WHERE report_id IN old))
                      + (SELECT count(*) FROM tlsrpt_report_meta WHERE report_pk IN old)
                      + (SELECT count(*) FROM tlsrpt_figure WHERE report_pk IN old)",
                params![cut],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(e)?;
        Ok((reports as u64, rows as u64))
    }

    fn prune_batch(&mut self, cut: i64, limit: usize) -> DbResult<(u64, u64)> {
        let cut = crate::window::rfc3339(cut);
        self.conn.execute_batch("BEGIN IMMEDIATE").map_err(e)?;
        let r = (|| -> DbResult<(u64, u64)> {
            let c = &self.conn;
            let ids: Vec<i64> = c
                .prepare("SELECT id FROM smtp_tls_report WHERE end_date < ?1 ORDER BY id LIMIT ?2")
                .map_err(e)?
                .query_map(params![cut, limit as i64], |r| r.get(0))
                .map_err(e)?
                .collect::<Result<_, _>>()
                .map_err(e)?;
            if ids.is_empty() {
                return Ok((0, 0));
            }
            let ids_json = serde_json::to_string(&ids).expect("ids");
            let rows: i64 = c
                .query_row(
                    "SELECT (SELECT count(*) FROM smtp_tls_policy WHERE report_id IN (SELECT value FROM json_each(?1)))
                          + (SELECT count(*) FROM smtp_tls_failure_detail WHERE policy_id IN
                               (SELECT id FROM smtp_tls_policy WHERE report_id IN (SELECT value FROM json_each(?1))))
                          + (SELECT count(*) FROM tlsrpt_report_meta WHERE report_pk IN (SELECT value FROM json_each(?1)))
                          + (SELECT count(*) FROM tlsrpt_figure WHERE report_pk IN (SELECT value FROM json_each(?1)))",
                    params![ids_json],
                    |r| r.get(0),
                )
                .map_err(e)?;
            c.execute(&carry(), params![ids_json]).map_err(e)?;
            let reports = c
                .execute(
                    "DELETE FROM smtp_tls_report WHERE id IN (SELECT value FROM json_each(?1))",
                    params![ids_json],
                )
                .map_err(e)?;
            Ok((reports as u64, rows as u64))
        })();
        match r {
            Ok(n) => {
                self.conn.execute_batch("COMMIT").map_err(e)?;
                Ok(n)
            }
            Err(x) => {
                let _ = self.conn.execute_batch("ROLLBACK");
                Err(x)
            }
        }
    }
}

impl Sqlite {
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
        if self.figures {
            c.prepare_cached(
                "INSERT INTO tlsrpt_report_meta (report_pk, dedup_key, received_at, source_spool, dkim_verdict, warnings,
                 record, transport, trust_needs, recipient, original_recipient)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )
            .map_err(e)?
            .execute(params![id, r.dedup_key, r.received_at.map(|t| t.rfc3339()), r.source_spool, r.dkim_verdict,
                r.warnings, r.record, r.figures.transport, r.figures.trust_needs, r.figures.recipient,
                r.figures.original_recipient])
            .map_err(e)?;
            insert_figures(c, id, &r.figures)?;
        } else {
            c.prepare_cached(
                "INSERT INTO tlsrpt_report_meta (report_pk, dedup_key, received_at, source_spool, dkim_verdict, warnings, record)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )
            .map_err(e)?
            .execute(params![id, r.dedup_key, r.received_at.map(|t| t.rfc3339()), r.source_spool, r.dkim_verdict, r.warnings, r.record])
            .map_err(e)?;
        }
        Ok(true)
    }
}

/// Counter figures of the reports ?1 (a JSON array of ids), added to the pruned sums.
fn carry() -> String {
    format!(
        "INSERT INTO tlsrpt_figure_pruned (authenticated, trust_needs, policy_domain, figure, organization,
             policy_type, result_type, reports, successful, failed, last_end, last_received)
         SELECT authenticated, coalesce(trust_needs, ''), policy_domain, figure, coalesce(organization, ''),
                coalesce(policy_type, ''), coalesce(result_type, ''), count(*), sum(successful), sum(failed),
                max(end_at), max(received_at)
         FROM tlsrpt_figure WHERE report_pk IN (SELECT value FROM json_each(?1)) AND figure IN {}
         GROUP BY 1, 2, 3, 4, 5, 6, 7
         ON CONFLICT (authenticated, trust_needs, policy_domain, figure, organization, policy_type, result_type)
         DO UPDATE SET reports = reports + excluded.reports, successful = successful + excluded.successful,
             failed = failed + excluded.failed, last_end = max(last_end, excluded.last_end),
             last_received = max(coalesce(last_received, excluded.last_received),
                                 coalesce(excluded.last_received, last_received))",
        Name::sql_list(&Name::COUNTERS)
    )
}
