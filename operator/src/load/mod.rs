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
//! - **Concurrent**: each file's transaction holds a lock of that file (SQLite
//!   `BEGIN IMMEDIATE`, the database's one writer; PostgreSQL a two-key
//!   `pg_advisory_xact_lock` on the file) and rereads the checkpoint under it, so two
//!   loads at once, or the `--jobs` workers of one, neither corrupt nor double-insert.
//!   On PostgreSQL copies of one report loaded at once wait on each other's unique
//!   keys; the transaction that loses (a deadlock, a key committed first) is rolled back
//!   and rerun alone (see `Store::begin`), where it skips what the winner stored.
//! - **Hostile data**: report fields are parameters, never SQL text; NUL (which
//!   PostgreSQL text and jsonb cannot hold) becomes U+FFFD; text that is not an IP
//!   address goes to INET columns as NULL (the record JSON keeps the original).

pub mod postgres;
pub mod rows;
pub mod sqlite;
pub mod tls;

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

/// Schema version 4, the same SQL on SQLite and PostgreSQL: each report's figures as
/// rows (crate::facts), which `summary --db`, `check --db` and `metrics --db` sum with
/// one GROUP BY. Times are Unix seconds; rows go with their report (ON DELETE CASCADE,
/// so a report deleted by prune, by hand or by parsedmarc takes its figures along).
pub const SCHEMA_V4: &str = r#"
CREATE TABLE tlsrpt_fact (
    report_pk BIGINT NOT NULL REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    end_at BIGINT NOT NULL,
    start_at BIGINT NOT NULL,
    authenticated BOOLEAN NOT NULL,
    received_at BIGINT,
    policy_domain TEXT NOT NULL,
    kind TEXT NOT NULL,
    a TEXT,
    b TEXT,
    c TEXT,
    n BIGINT NOT NULL,
    n2 BIGINT NOT NULL);
CREATE INDEX tlsrpt_fact_end_at ON tlsrpt_fact (end_at);
CREATE INDEX tlsrpt_fact_report_pk ON tlsrpt_fact (report_pk);
CREATE TABLE tlsrpt_fact_pruned (
    authenticated BOOLEAN NOT NULL,
    policy_domain TEXT NOT NULL,
    kind TEXT NOT NULL,
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    c TEXT NOT NULL,
    reports BIGINT NOT NULL,
    n BIGINT NOT NULL,
    n2 BIGINT NOT NULL,
    last_end BIGINT NOT NULL,
    last_received BIGINT,
    PRIMARY KEY (authenticated, policy_domain, kind, a, b, c));
"#;

/// The kinds of facts whose all-time sums `metrics --db` exports as counters; `prune`
/// carries them into `tlsrpt_fact_pruned` before it deletes their reports, so that a
/// counter never goes down.
pub const COUNTER_KINDS: &str = "('D', 'Y', 'T', 'v', 'R', 'u')";

/// Reports deleted per transaction by `prune --db` (each transaction short: loads and
/// summaries go on in between).
pub const PRUNE_BATCH: usize = 2000;

/// What `prune --db` removed (or would).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub reports: u64,
    /// Their policy, failure-detail, meta and fact rows.
    pub rows: u64,
    /// About how many bytes of table and index space they held.
    pub bytes: u64,
}

/// Reports whose figures a migration to version 4 computes per round (from the
/// records stored in `tlsrpt_report_meta`).
pub const BACKFILL_BATCH: i64 = 1000;

/// The figures of a stored record, for the migration to version 4.
pub fn backfill_rows(record: &str) -> Option<rows::FactRows> {
    crate::record::parse(record)
        .ok()
        .map(|p| rows::FactRows::new(&p))
}

/// Reports handed to the store at once (bounds memory: ~1,000 records).
const BATCH: usize = 1000;

/// The newest schema version; see each backend's `MIGRATIONS`.
pub const SCHEMA_VERSION: i64 = 4;

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

/// A database error; `retry` when the transaction lost a race with a concurrent one
/// (a deadlock, a key another transaction committed first) and rerunning it is right.
#[derive(Debug)]
pub struct DbError {
    pub msg: String,
    pub retry: bool,
}

impl From<String> for DbError {
    fn from(msg: String) -> DbError {
        DbError { msg, retry: false }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// Transactions a day file gets before a lost race is an error (exit 75; the next run
/// starts over from the checkpoint). Reruns run alone, so the second attempt succeeds
/// but for a writer outside tlsrpt (parsedmarc) racing it.
const ATTEMPTS: usize = 3;

/// What a database backend does for the loader.
pub trait Store: Send {
    /// Creates or upgrades the schema to [`SCHEMA_VERSION`].
    fn migrate(&mut self) -> DbResult<()>;
    /// The schema version (0: no tlsrpt schema), for the commands that only read.
    fn version(&mut self) -> DbResult<i64>;
    /// Checkpoints of one spool: file name → (inode, bytes read).
    fn checkpoints(&mut self, spool: &str) -> DbResult<HashMap<String, (u64, u64)>>;
    /// Starts a transaction holding the lock of one day file of one spool (SQLite: the
    /// database's write lock). `alone`: for a rerun after a lost race, also wait until
    /// no other file transaction runs, and keep new ones out until this one ends, so
    /// that it sees every row the winners stored and cannot lose again.
    fn begin(&mut self, spool: &str, file: &str, alone: bool) -> DbResult<()>;
    /// Another connection to the same database, for a worker loading other files at
    /// the same time; `None` where writes are one at a time anyway (SQLite).
    fn another(&self) -> DbResult<Option<Box<dyn Store>>> {
        Ok(None)
    }
    /// Under the lock: the checkpoint of one file.
    fn checkpoint(&mut self, spool: &str, file: &str) -> DbResult<Option<(u64, u64)>>;
    /// Inserts one report unless it is already stored; returns whether it was new.
    fn insert(&mut self, r: &ReportRows) -> DbResult<bool>;
    /// Inserts a batch (reports of one day file, in order); returns (new, already
    /// stored). The default inserts one by one; a backend may do it in a few statements.
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
    fn set_checkpoint(&mut self, spool: &str, file: &str, inode: u64, offset: u64) -> DbResult<()>;
    /// Deletes the checkpoint of one file (`tlsrpt prune`, after removing the file; in
    /// the file's transaction, see [`Store::begin`]).
    fn forget_checkpoint(&mut self, spool: &str, file: &str) -> DbResult<()>;
    fn commit(&mut self) -> DbResult<()>;
    fn rollback(&mut self);
    /// Deletes the reports whose date range ended before `cut` (Unix seconds), with
    /// their rows, [`PRUNE_BATCH`] reports per transaction, after carrying their
    /// counter facts into `tlsrpt_fact_pruned`; `dry_run` only counts.
    fn prune(&mut self, cut: i64, dry_run: bool) -> DbResult<Pruned>;
    /// The all-time sums of the counter facts ([`COUNTER_KINDS`]), the pruned ones
    /// included: per (DKIM, domain, kind, a, b, c), with the latest end and receipt time.
    fn totals(&mut self, f: &mut dyn FnMut(crate::facts::Total)) -> DbResult<()>;
    /// Domain facts of reports that ended after `since`, per (DKIM, domain,
    /// organisation, UTC day of the start): how many, the latest end.
    fn history(&mut self, since: i64, f: &mut dyn FnMut(crate::facts::Total)) -> DbResult<()>;
    /// The sums of the facts of a window and the one before it (crate::facts::Group),
    /// streamed: one GROUP BY in the database, one call per group.
    fn figures(
        &mut self,
        q: &crate::facts::Query,
        f: &mut dyn FnMut(crate::facts::Group),
    ) -> DbResult<()>;
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
    /// File transactions rerun after losing a race with a concurrent one.
    pub reruns: u64,
}

/// One day file with something new to load.
struct Work {
    spool: String,
    name: String,
    file: spool::DayFile,
    ino: u64,
    len: u64,
}

/// Loads every spool's new records, with up to `jobs` connections at once (PostgreSQL:
/// one server backend per connection, so the server's work, most of a load, spreads
/// over its cores; SQLite: one).
///
/// Day files are the unit of work and of transaction; they are handed out in name order
/// across spools, so copies of one report in two spools (same day file name) are mostly
/// loaded at the same time, the race the per-file locks and the retry exist for.
pub fn load(store: &mut dyn Store, spools: &[PathBuf], jobs: usize) -> Result<Loaded, LoadError> {
    store.migrate().map_err(|e| LoadError::Database(e.msg))?;
    let mut work = pending(store, spools)?;
    work.sort_by(|a, b| (&a.name, &a.spool).cmp(&(&b.name, &b.spool)));
    let mut stores: Vec<Box<dyn Store>> = Vec::new();
    while stores.len() + 1 < jobs.min(work.len()) {
        match store.another() {
            Ok(Some(s)) => stores.push(s),
            Ok(None) => break,
            // A server at its connection limit still gets the load, with fewer workers.
            Err(e) => {
                spool::warn(&format!(
                    "another database connection failed, loading with {}: {e}",
                    stores.len() + 1
                ));
                break;
            }
        }
    }
    // Workers take the next file from one queue; after an error none takes another.
    let queue = std::sync::Mutex::new(work.into_iter());
    let failed = std::sync::atomic::AtomicBool::new(false);
    let worker = |store: &mut dyn Store| -> Result<Loaded, String> {
        let mut done = Loaded::default();
        while !failed.load(std::sync::atomic::Ordering::Relaxed) {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some(w) = next else { break };
            match load_one(store, &w) {
                Ok(l) => done.add(l),
                Err(e) => {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(done)
    };
    let results: Vec<Result<Loaded, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter_mut()
            .map(|s| scope.spawn(|| worker(s.as_mut())))
            .collect();
        let mut r = vec![worker(store)];
        r.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|_| Err("a load worker panicked".into()))
        }));
        r
    });
    let mut out = Loaded::default();
    for r in results {
        out.add(r.map_err(LoadError::Database)?);
    }
    Ok(out)
}

/// The day files of every spool with bytes past their checkpoint (or none yet). Fails
/// only when no spool directory at all could be read.
fn pending(store: &mut dyn Store, spools: &[PathBuf]) -> Result<Vec<Work>, LoadError> {
    let mut readable = 0;
    let mut errors = Vec::new();
    let mut work = Vec::new();
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
            .map_err(|e| LoadError::Database(e.msg))?;
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
            work.push(Work {
                spool: spool_name.clone(),
                name,
                file: f,
                ino,
                len,
            });
        }
    }
    if readable == 0 {
        return Err(LoadError::NoSpool(errors.join("; ")));
    }
    Ok(work)
}

impl Loaded {
    fn add(&mut self, o: Loaded) {
        self.inserted += o.inserted;
        self.already += o.already;
        self.files_read += o.files_read;
        self.bytes_read += o.bytes_read;
        self.skipped_lines += o.skipped_lines;
        self.reruns += o.reruns;
    }
}

/// One day file in one transaction, rerun from its checkpoint when it lost a race.
fn load_one(store: &mut dyn Store, w: &Work) -> Result<Loaded, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut l = Loaded::default();
        let r = store.begin(&w.spool, &w.name, attempt > 1).and_then(|()| {
            load_file(store, &w.spool, &w.name, &w.file, w.ino, w.len, &mut l)?;
            store.commit()
        });
        match r {
            Ok(()) => {
                l.reruns = attempt as u64 - 1;
                return Ok(l);
            }
            Err(e) => {
                store.rollback();
                if !(e.retry && attempt < ATTEMPTS) {
                    return Err(e.msg);
                }
            }
        }
    }
}

fn load_file(
    store: &mut dyn Store,
    spool_name: &str,
    name: &str,
    f: &spool::DayFile,
    ino: u64,
    len: u64,
    out: &mut Loaded,
) -> DbResult<()> {
    // Under the lock: `tlsrpt prune` may have removed the file since the list was made
    // (it does so holding this lock); then there is nothing to load and no checkpoint
    // to keep.
    match std::fs::metadata(&f.path) {
        Ok(m) if m.ino() == ino => {}
        _ => return Ok(()),
    }
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
    let flush =
        |store: &mut dyn Store, batch: &mut Vec<ReportRows>, out: &mut Loaded| -> DbResult<()> {
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
