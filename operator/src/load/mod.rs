//! `tlsrpt load`: spool records → a database (SQLite by default, PostgreSQL to
//! centralise), incrementally, idempotently, crash-safely.
//!
//! Guarantees:
//! - **Schema**: parsedmarc's PostgreSQL tables and columns exactly (`smtp_tls_report`,
//!   `smtp_tls_policy`, `smtp_tls_failure_detail`), so its Grafana "SMTP TLS" panels run
//!   unchanged; what parsedmarc lacks is in tables of our own (`tlsrpt_report_meta`:
//!   dedup key, receipt time, source spool, DKIM verdict, warnings, the record as JSON;
//!   `tlsrpt_checkpoint`; `tlsrpt_schema_version`), never in theirs. `mx_host_patterns`
//!   and `additional_info_uri` are filled from the RFC fields. SQLite gets the same
//!   schema with the nearest types (arrays as JSON text, INET as text).
//! - **Stored once**: a report already present by parsedmarc's unique key
//!   (organisation, report id, begin, end) or by our dedup key is skipped, so two spools
//!   holding a report, a second run, and parsedmarc sharing the database all end with
//!   one copy.
//! - **Incremental, crash-safe**: per day file, one transaction inserts the new rows and
//!   moves the file's checkpoint (inode, bytes read) together; a run reads only bytes
//!   past the checkpoint; a torn last line is left for the next run. A kill at any point
//!   rolls back to the last commit, and the next run continues from there.
//! - **Concurrent**: each file's transaction holds the database's write lock (SQLite
//!   `BEGIN IMMEDIATE`, PostgreSQL `pg_advisory_xact_lock`) and rereads the checkpoint
//!   under it, so two loads at once neither corrupt nor double-insert.
//! - **Hostile data**: report fields are parameters, never SQL text; NUL (which
//!   PostgreSQL text and jsonb cannot hold) becomes U+FFFD; text that is not an IP
//!   address goes to INET columns as NULL (the record JSON keeps the original).

pub mod postgres;
pub mod rows;
pub mod sqlite;

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::spool::{self, Share, Skipped};

pub use rows::ReportRows;

/// Schema version 2, the same SQL on SQLite and PostgreSQL: indexes for the joins and
/// the view that counts a session reported under sts and tlsa once per report and
/// domain (the policy with the largest session count stands for the domain).
pub const SCHEMA_V2: &str = r#"
CREATE INDEX IF NOT EXISTS smtp_tls_policy_report_id ON smtp_tls_policy(report_id);
CREATE INDEX IF NOT EXISTS smtp_tls_failure_detail_policy_id ON smtp_tls_failure_detail(policy_id);
CREATE INDEX IF NOT EXISTS smtp_tls_report_end_date ON smtp_tls_report(end_date);
CREATE VIEW tlsrpt_domain_report AS
SELECT * FROM (
    SELECT r.id AS report_pk, r.organization_name, r.begin_date, r.end_date,
           lower(rtrim(p.policy_domain, '.')) AS policy_domain, p.id AS policy_pk,
           p.policy_type, p.successful_session_count, p.failed_session_count,
           ROW_NUMBER() OVER (
               PARTITION BY r.id, lower(rtrim(p.policy_domain, '.'))
               ORDER BY p.successful_session_count + p.failed_session_count DESC,
                        p.failed_session_count DESC, p.id) AS rn
    FROM smtp_tls_report r JOIN smtp_tls_policy p ON p.report_id = r.id) AS t
WHERE rn = 1;
"#;

/// Reports handed to the store at once (bounds memory: ~1,000 records).
const BATCH: usize = 1000;

/// The newest schema version; see each backend's `MIGRATIONS`.
pub const SCHEMA_VERSION: i64 = 2;

/// Why a load stopped.
#[derive(Debug)]
pub enum LoadError {
    /// The database could not be reached or refused the work: temporary, exit 75.
    Database(String),
    /// Nothing could be read.
    NoSpool(String),
    /// A bad --db value.
    Usage(String),
}

/// What a database backend does for the loader.
pub trait Store {
    /// Creates or upgrades the schema to [`SCHEMA_VERSION`].
    fn migrate(&mut self) -> Result<(), String>;
    /// Checkpoints of one spool: file name → (inode, bytes read).
    fn checkpoints(&mut self, spool: &str) -> Result<HashMap<String, (u64, u64)>, String>;
    /// Starts a transaction holding the write lock.
    fn begin(&mut self) -> Result<(), String>;
    /// Under the lock: the checkpoint of one file.
    fn checkpoint(&mut self, spool: &str, file: &str) -> Result<Option<(u64, u64)>, String>;
    /// Inserts one report unless it is already stored; returns whether it was new.
    fn insert(&mut self, r: &ReportRows) -> Result<bool, String>;
    /// Inserts a batch (reports of one day file, in order); returns (new, already
    /// stored). The default inserts one by one; a backend may do it in a few statements.
    fn insert_batch(&mut self, rows: &[ReportRows]) -> Result<(u64, u64), String> {
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
    fn set_checkpoint(
        &mut self,
        spool: &str,
        file: &str,
        inode: u64,
        offset: u64,
    ) -> Result<(), String>;
    fn commit(&mut self) -> Result<(), String>;
    fn rollback(&mut self);
    /// Records (as JSON lines) whose report ends after `after`, for `summary --db`.
    fn records_since(&mut self, after: &str, f: &mut dyn FnMut(&str)) -> Result<(), String>;
}

/// Opens the database of a `--db` value.
pub fn open(db: &str) -> Result<Box<dyn Store>, LoadError> {
    if let Some(path) = db.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(LoadError::Usage(
                "sqlite:// needs a path: sqlite:///var/lib/tlsrpt/tlsrpt.db".into(),
            ));
        }
        return sqlite::Sqlite::open(Path::new(path))
            .map(|s| Box::new(s) as Box<dyn Store>)
            .map_err(LoadError::Database);
    }
    if db.starts_with("postgresql://") || db.starts_with("postgres://") || db.contains('=') {
        return postgres::Pg::connect(db)
            .map(|s| Box::new(s) as Box<dyn Store>)
            .map_err(LoadError::Database);
    }
    Err(LoadError::Usage(format!(
        "{db:?}: not a database URL (sqlite:///path/file.db, postgresql://user@host:port/db, or libpq key=value)"
    )))
}

/// What a load did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub inserted: u64,
    pub already: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    pub skipped_lines: u64,
}

/// Loads every spool's new records.
pub fn load(store: &mut dyn Store, spools: &[PathBuf]) -> Result<Loaded, LoadError> {
    store.migrate().map_err(LoadError::Database)?;
    let mut out = Loaded::default();
    let mut readable = 0;
    let mut errors = Vec::new();
    for dir in spools {
        let files = match spool::day_files(dir) {
            Ok(f) => f,
            Err(e) => {
                spool::warn(&format!("{}: cannot read spool: {e}", dir.display()));
                errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        readable += 1;
        let spool_name = dir.display().to_string();
        let known = store
            .checkpoints(&spool_name)
            .map_err(LoadError::Database)?;
        for f in files {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(meta) = std::fs::metadata(&f.path) else {
                continue;
            };
            let (ino, len) = (meta.ino(), meta.len());
            // Fast path, without the lock: nothing new in this file.
            if known.get(&name) == Some(&(ino, len)) {
                continue;
            }
            store.begin().map_err(LoadError::Database)?;
            let result = load_file(store, &spool_name, &name, &f, ino, len, &mut out);
            match result {
                Ok(()) => store.commit().map_err(LoadError::Database)?,
                Err(e) => {
                    store.rollback();
                    return Err(LoadError::Database(e));
                }
            }
        }
    }
    if readable == 0 {
        return Err(LoadError::NoSpool(errors.join("; ")));
    }
    Ok(out)
}

fn load_file(
    store: &mut dyn Store,
    spool_name: &str,
    name: &str,
    f: &spool::DayFile,
    ino: u64,
    len: u64,
    out: &mut Loaded,
) -> Result<(), String> {
    // Reread under the lock: another load may have moved it.
    let from = match store.checkpoint(spool_name, name)? {
        Some((i, off)) if i == ino && off <= len => off,
        _ => 0, // new, or replaced: read it all (what is stored already is skipped)
    };
    if from == len {
        return Ok(());
    }
    let mut skipped = Skipped::default();
    let mut err = None;
    // Rows go to the store in batches (PostgreSQL inserts a batch in a few statements).
    let mut batch: Vec<ReportRows> = Vec::with_capacity(BATCH);
    let flush = |store: &mut dyn Store,
                 batch: &mut Vec<ReportRows>,
                 out: &mut Loaded|
     -> Result<(), String> {
        let (new, old) = store.insert_batch(batch)?;
        out.inserted += new;
        out.already += old;
        batch.clear();
        Ok(())
    };
    let end = spool::read_lines(f, from, Share::ALL, &mut skipped, |_, line| {
        if err.is_some() {
            return Ok(());
        }
        let p = crate::record::parse(line)?;
        batch.push(ReportRows::new(&p, spool_name, line));
        if batch.len() >= BATCH
            && let Err(e) = flush(store, &mut batch, out)
        {
            err = Some(e);
        }
        Ok(())
    });
    if err.is_none()
        && !batch.is_empty()
        && let Err(e) = flush(store, &mut batch, out)
    {
        err = Some(e);
    }
    if let Some(e) = err {
        return Err(e);
    }
    out.files_read += 1;
    out.bytes_read += end - from;
    out.skipped_lines += skipped.lines;
    store.set_checkpoint(spool_name, name, ino, end)
}
