//! The database: parsedmarc's SMTP TLS tables, our own beside them, and the typed
//! figure rows every `--db` command reads. One reader and one writer interface; the
//! SQLite and PostgreSQL stores hold only their connection code and their dialect's
//! SQL.
//!
//! - [`open_read`] never creates anything (a SQLite file must exist, a schema must be
//!   at [`SCHEMA_VERSION`]: the read commands refuse an old one with the fix, so a
//!   read-only role works); [`open_write`] creates and migrates (`load`, `prune`).
//! - One error type ([`DbError`]) and one conversion to an exit status
//!   ([`DbError::failure`]): the database unreachable or busy is temporary (75, the
//!   next run catches up); a missing directory, a permission, a missing database, an
//!   old schema are permanent (1), with the fix in the message; a bad URL is usage (2).
//! - Schema: parsedmarc's PostgreSQL tables and columns exactly (`smtp_tls_report`,
//!   `smtp_tls_policy`, `smtp_tls_failure_detail`), so its Grafana "SMTP TLS" panels
//!   run unchanged; ours are `tlsrpt_report_meta` (dedup key, receipt time, source
//!   spool, DKIM verdict and trust, transport, warnings, the record as JSON),
//!   `tlsrpt_checkpoint`, `tlsrpt_figure` (crate::db::figures), `tlsrpt_figure_pruned`
//!   and `tlsrpt_schema_version`. SQLite gets the same schema with the nearest types.
//! - Hostile data: report fields are parameters, never SQL text; NUL (which
//!   PostgreSQL text and jsonb cannot hold) becomes U+FFFD; text that is not an IP
//!   address goes to INET columns as NULL (the record JSON keeps the original).

pub mod figures;
pub mod postgres;
pub mod prune;
pub mod rows;
pub mod sqlite;
pub mod tls;

use std::collections::HashMap;
use std::path::Path;

pub use figures::{Group, Query, Total};
pub use rows::ReportRows;

use crate::exit::Failure;

/// The newest schema version; see each store's `MIGRATIONS`.
/// 5: the figure rows by the counting rule (tlsrpt_pipe::counting), with named columns
/// (`tlsrpt_figure`, replacing `tlsrpt_fact`), and each report's trust (`trust_needs`,
/// `transport`), recomputed from the stored records at the upgrade.
pub const SCHEMA_VERSION: i64 = 5;

/// Schema version 2, the same SQL on SQLite and PostgreSQL: indexes for the joins.
/// (Its view `tlsrpt_domain_report` is redefined over the figures by version 5.)
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

/// Schema version 4 (superseded by 5, kept so that a database at 3 passes through the
/// same steps): each report's figures as letter-keyed rows.
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

/// Schema version 5, the same SQL on SQLite and PostgreSQL (`BOOL_FALSE` is the
/// dialect's false). The figures of every stored report are computed again from its
/// record by the store after this runs; the pruned counters of version 4 are carried
/// over by their meaning (reports pruned before the upgrade keep the figures of the old
/// rule, which counted one policy per report and domain).
pub const SCHEMA_V5: &str = r#"
ALTER TABLE tlsrpt_report_meta ADD COLUMN transport TEXT;
ALTER TABLE tlsrpt_report_meta ADD COLUMN trust_needs TEXT;
ALTER TABLE tlsrpt_report_meta ADD COLUMN recipient TEXT;
ALTER TABLE tlsrpt_report_meta ADD COLUMN original_recipient TEXT;
CREATE TABLE tlsrpt_figure (
    report_pk BIGINT NOT NULL REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    end_at BIGINT NOT NULL,
    start_at BIGINT NOT NULL,
    authenticated BOOLEAN NOT NULL,
    trust_needs TEXT,
    received_at BIGINT,
    policy_domain TEXT NOT NULL,
    figure TEXT NOT NULL,
    organization TEXT,
    policy_type TEXT,
    result_type TEXT,
    mx_host TEXT,
    ip TEXT,
    reason TEXT,
    uri TEXT,
    sts_policy TEXT,
    successful BIGINT NOT NULL,
    failed BIGINT NOT NULL);
CREATE INDEX tlsrpt_figure_end_at ON tlsrpt_figure (end_at);
CREATE INDEX tlsrpt_figure_report_pk ON tlsrpt_figure (report_pk);
-- The reports left out for want of trust (summary's "not counted" section): a few of a
-- window's rows, found without reading the others.
CREATE INDEX tlsrpt_figure_left_out ON tlsrpt_figure (end_at) WHERE figure = 'domain' AND NOT authenticated;
CREATE TABLE tlsrpt_figure_pruned (
    authenticated BOOLEAN NOT NULL,
    trust_needs TEXT NOT NULL,
    policy_domain TEXT NOT NULL,
    figure TEXT NOT NULL,
    organization TEXT NOT NULL,
    policy_type TEXT NOT NULL,
    result_type TEXT NOT NULL,
    reports BIGINT NOT NULL,
    successful BIGINT NOT NULL,
    failed BIGINT NOT NULL,
    last_end BIGINT NOT NULL,
    last_received BIGINT,
    PRIMARY KEY (authenticated, trust_needs, policy_domain, figure, organization, policy_type, result_type));
INSERT INTO tlsrpt_figure_pruned
SELECT authenticated, '', policy_domain,
       CASE kind WHEN 'D' THEN 'domain' WHEN 'Y' THEN 'type' WHEN 'T' THEN 'type_result'
                 WHEN 'v' THEN 'type_result' ELSE 'result' END,
       CASE WHEN kind IN ('D', 'R') THEN b ELSE '' END,
       CASE kind WHEN 'D' THEN a WHEN 'Y' THEN b WHEN 'T' THEN b WHEN 'v' THEN b WHEN 'R' THEN c ELSE b END,
       CASE kind WHEN 'T' THEN a WHEN 'R' THEN a ELSE '' END,
       sum(reports), sum(CASE WHEN kind IN ('D', 'Y') THEN n ELSE 0 END),
       sum(CASE WHEN kind IN ('D', 'Y') THEN n2 ELSE n END), max(last_end), max(last_received)
FROM tlsrpt_fact_pruned GROUP BY 1, 2, 3, 4, 5, 6, 7;
DROP TABLE tlsrpt_fact_pruned;
DROP TABLE tlsrpt_fact;
DROP VIEW tlsrpt_domain_report;
CREATE VIEW tlsrpt_domain_report AS
SELECT f.report_pk, r.organization_name, r.begin_date, r.end_date, f.policy_domain,
       f.policy_type, f.successful AS successful_session_count,
       f.failed AS failed_session_count, f.authenticated, f.trust_needs
FROM tlsrpt_figure f JOIN smtp_tls_report r ON r.id = f.report_pk
WHERE f.figure = 'domain';
CREATE VIEW tlsrpt_failure AS
SELECT f.report_pk, r.organization_name, r.begin_date, r.end_date, f.policy_domain,
       f.policy_type, coalesce(f.result_type, 'unspecified-failure') AS result_type,
       f.failed AS failed_session_count, f.authenticated, f.trust_needs
FROM tlsrpt_figure f JOIN smtp_tls_report r ON r.id = f.report_pk
WHERE f.figure = 'result';
"#;

/// Reports deleted per transaction by `prune --db` (each transaction short: loads and
/// summaries go on in between).
pub const PRUNE_BATCH: usize = 2000;

/// Reports whose figures a migration computes per round (from the records stored in
/// `tlsrpt_report_meta`).
pub const BACKFILL_BATCH: i64 = 1000;

/// What `prune --db` removed (or would).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    pub reports: u64,
    /// Their policy, failure-detail, meta and figure rows.
    pub rows: u64,
    /// About how many bytes of table and index space they held.
    pub bytes: u64,
}

/// How a database error is to be met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trouble {
    /// Unreachable, busy, a lost race: the next run catches up (75).
    Temporary,
    /// A missing directory or database, a permission, an old or newer schema: only a
    /// person can fix it (1; the message says how).
    Permanent,
    /// A bad `--db` value (2).
    Usage,
}

/// A database error; `retry` when the transaction lost a race with a concurrent one
/// (a deadlock, a key another transaction committed first) and rerunning it is right.
#[derive(Debug)]
pub struct DbError {
    pub msg: String,
    pub retry: bool,
    pub trouble: Trouble,
}

impl DbError {
    pub fn permanent(msg: impl Into<String>) -> DbError {
        DbError {
            msg: msg.into(),
            retry: false,
            trouble: Trouble::Permanent,
        }
    }
    pub fn usage(msg: impl Into<String>) -> DbError {
        DbError {
            msg: msg.into(),
            retry: false,
            trouble: Trouble::Usage,
        }
    }

    /// The one conversion to an exit status (crate::exit).
    pub fn failure(self) -> Failure {
        match self.trouble {
            Trouble::Temporary => Failure::tempfail(self.msg),
            Trouble::Permanent => Failure::failed(self.msg),
            Trouble::Usage => Failure::usage(format!("--db {}", self.msg)),
        }
    }
}

impl From<String> for DbError {
    fn from(msg: String) -> DbError {
        DbError {
            msg,
            retry: false,
            trouble: Trouble::Temporary,
        }
    }
}

impl std::fmt::Display for DbError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

pub type DbResult<T> = Result<T, DbError>;

/// One group of the reports a window left out for want of trust.
#[derive(Debug, Clone)]
pub struct LeftOutGroup {
    /// `None`: a group of every domain; `Some`: the reports of one domain (their
    /// `needs` and `https` are not told apart).
    pub domain: Option<String>,
    /// `trust_needs` (NULL: no trust makes them count).
    pub needs: Option<String>,
    /// They came by HTTPS.
    pub https: bool,
    pub reports: u64,
    pub successful: u64,
    pub failed: u64,
}

/// Table and index bytes in use, and the reports they hold (for `prune`'s estimate).
#[derive(Debug, Clone, Copy, Default)]
pub struct Space {
    pub bytes: u64,
    pub reports: u64,
}

/// What the read commands ask of a database (`summary`, `check`, `metrics` with
/// `--db`). Every read runs in one snapshot.
pub trait Reader: Send {
    /// The schema version (0: no tlsrpt schema).
    fn version(&mut self) -> DbResult<i64>;
    /// Another connection to the same database, for a reader of another share of the
    /// domains; `None` where one reads as fast (SQLite).
    fn another_reader(&self) -> DbResult<Option<Box<dyn Reader>>> {
        Ok(None)
    }
    /// The sums of the figures of a window and the one before it, streamed: one
    /// GROUP BY in the database, one call per group.
    fn figures(&mut self, q: &Query, f: &mut dyn FnMut(Group)) -> DbResult<()>;
    /// The current window's reports that do not count for want of trust, grouped by
    /// what would make them count, then per domain.
    fn left_out(&mut self, q: &Query, f: &mut dyn FnMut(LeftOutGroup)) -> DbResult<()>;
    /// The all-time sums of the counter figures (figures::Name::COUNTERS), the pruned
    /// ones included: per (counted, domain, keys), with the latest end and receipt.
    fn totals(&mut self, q: &Query, f: &mut dyn FnMut(Total)) -> DbResult<()>;
    /// Domain figures of reports that ended after `since`, per (counted, domain,
    /// organisation, UTC day of the start): how many, the latest end.
    fn history(&mut self, since: i64, q: &Query, f: &mut dyn FnMut(Total)) -> DbResult<()>;
    /// The addresses the reports of the window were delivered to (envelope recipients,
    /// at most crate::ours::MAX_ADDRESSES).
    fn recipients(&mut self, q: &Query) -> DbResult<Vec<String>>;
}

/// What `load` and `prune` do to a database.
pub trait Writer: Send {
    /// Creates or upgrades the schema to [`SCHEMA_VERSION`].
    fn migrate(&mut self) -> DbResult<()>;
    /// Another connection to the same database, for a worker loading other files at
    /// the same time; `None` where writes are one at a time anyway (SQLite).
    fn another_writer(&self) -> DbResult<Option<Box<dyn Writer>>> {
        Ok(None)
    }
    /// Checkpoints of one spool: file name → (inode, bytes read).
    fn checkpoints(&mut self, spool: &str) -> DbResult<HashMap<String, (u64, u64)>>;
    /// Starts a transaction holding the lock of one day file of one spool (SQLite: the
    /// database's write lock). `alone`: for a rerun after a lost race, also wait until
    /// no other file transaction runs, and keep new ones out until this one ends, so
    /// that it sees every row the winners stored and cannot lose again.
    fn begin(&mut self, spool: &str, file: &str, alone: bool) -> DbResult<()>;
    /// Under the lock: the checkpoint of one file.
    fn checkpoint(&mut self, spool: &str, file: &str) -> DbResult<Option<(u64, u64)>>;
    /// Inserts a batch (reports of one day file, in order) but those already stored;
    /// returns (new, already stored).
    fn insert_batch(&mut self, rows: &[ReportRows]) -> DbResult<(u64, u64)>;
    fn set_checkpoint(&mut self, spool: &str, file: &str, inode: u64, offset: u64) -> DbResult<()>;
    /// Deletes the checkpoint of one file (`tlsrpt prune`, after removing the file; in
    /// the file's transaction, see [`Writer::begin`]).
    fn forget_checkpoint(&mut self, spool: &str, file: &str) -> DbResult<()>;
    fn commit(&mut self) -> DbResult<()>;
    fn rollback(&mut self);
    /// Bytes of the tables and indexes, and the reports they hold.
    fn space(&mut self) -> DbResult<Space>;
    /// How many reports ended before `cut` (Unix seconds), and their other rows,
    /// counted where they are.
    fn count_old(&mut self, cut: i64) -> DbResult<(u64, u64)>;
    /// One transaction: up to `limit` reports that ended before `cut`, their counter
    /// figures carried into `tlsrpt_figure_pruned`, then deleted with every row of
    /// theirs; returns (reports, their other rows), (0, 0) when none is left.
    fn prune_batch(&mut self, cut: i64, limit: usize) -> DbResult<(u64, u64)>;
}

/// A `--db` value, parsed.
enum Url<'a> {
    Sqlite(&'a Path),
    Postgres(&'a str),
}

fn url(db: &str) -> DbResult<Url<'_>> {
    if let Some(path) = db.strip_prefix("sqlite://") {
        if path.is_empty() {
            return Err(DbError::usage(
                "sqlite:// needs a path: sqlite:///var/lib/tlsrpt/tlsrpt.db",
            ));
        }
        return Ok(Url::Sqlite(Path::new(path)));
    }
    if db.starts_with("postgresql://") || db.starts_with("postgres://") || db.contains('=') {
        return Ok(Url::Postgres(db));
    }
    Err(DbError::usage(format!(
        "{db:?}: not a database URL (sqlite:///path/file.db, postgresql://user@host:port/db, or libpq key=value)"
    )))
}

/// Opens a database to read, never creating anything, and checks its schema version.
pub fn open_read(db: &str) -> DbResult<Box<dyn Reader>> {
    let mut r: Box<dyn Reader> = match url(db)? {
        Url::Sqlite(p) => Box::new(sqlite::Sqlite::open_read(p)?),
        Url::Postgres(c) => Box::new(postgres::Pg::connect(c)?),
    };
    let v = r.version()?;
    if v < SCHEMA_VERSION {
        return Err(DbError::permanent(format!(
            "{db}: database schema version {v}, this tlsrpt reads version {SCHEMA_VERSION}: run `tlsrpt load --db ...` once to create or upgrade it"
        )));
    }
    if v > SCHEMA_VERSION {
        return Err(DbError::permanent(format!(
            "{db}: database schema version {v} is newer than this tlsrpt ({SCHEMA_VERSION}): upgrade tlsrpt"
        )));
    }
    Ok(r)
}

/// Opens a database to write: `create` makes a SQLite file that does not exist
/// (`load`); otherwise it must exist (`prune`).
pub fn open_write(db: &str, create: bool) -> DbResult<Box<dyn Writer>> {
    Ok(match url(db)? {
        Url::Sqlite(p) => Box::new(sqlite::Sqlite::open_write(p, create)?),
        Url::Postgres(c) => Box::new(postgres::Pg::connect(c)?),
    })
}

/// The figures of a stored record, for the migrations (`None`: not a record).
pub fn backfill_rows(record: &str) -> Option<rows::FigureRows> {
    crate::record::parse(record)
        .ok()
        .map(|p| rows::FigureRows::new(&p))
}

/// The schema version a store migrates to: [`SCHEMA_VERSION`], or for a test
/// `TLSRPT_SCHEMA_TARGET` (to build a database as an older tlsrpt did).
pub fn target_version() -> i64 {
    std::env::var("TLSRPT_SCHEMA_TARGET")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|v| (1..=SCHEMA_VERSION).contains(v))
        .unwrap_or(SCHEMA_VERSION)
}
