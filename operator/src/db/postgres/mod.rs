//! The PostgreSQL store, for one central database of every MX host's reports.
//!
//! Connection: a `postgresql://` URL or libpq `key=value` conninfo. As libpq does, a
//! missing user is `$PGUSER` or the login name, a missing host `$PGHOST` or the local
//! socket directory `/var/run/postgresql`, a missing port `$PGPORT` or 5432, and a
//! missing password `$PGPASSWORD` or the matching `~/.pgpass` (`$PGPASSFILE`) line.
//! `sslmode` (and `sslrootcert`) as libpq: see [`super::tls`].
//!
//! This file: connecting and the writer (`load`, `prune`); `schema.rs`: the migrations;
//! `read.rs`: the reader (the read commands' queries).

use std::collections::HashMap;
use std::str::FromStr;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use postgres::binary_copy::BinaryCopyInWriter;
use postgres::config::SslMode;
use postgres::types::{IsNull, ToSql, Type, to_sql_checked};
use postgres::{Client, Config, GenericClient, NoTls, Statement};
use tlsrpt_pipe::datetime::Timestamp;

use super::figures::Name;
use super::rows::FigureRows;
use super::tls::MakeRustls;
use super::{DbError, DbResult, ReportRows, SCHEMA_VERSION, Space, Writer, target_version};

mod read;
mod schema;
pub use schema::MIGRATIONS;
use schema::{backfill, copy_figures};

/// A lock id for `pg_advisory_xact_lock` around migrations: "tlsrpt" in ASCII.
const LOCK_ID: i64 = 0x746c_7372_7074;
/// The class of the per-day-file locks (two-key advisory locks, a key space apart from
/// the one-key lock above): "tl"; the second key is a hash of spool and file name.
const FILE_LOCK_CLASS: i32 = 0x746c;
/// The gate every file transaction holds shared, and a rerun after a lost race holds
/// exclusive (two-key lock ("tr", 0)): the rerun waits for the transactions in flight
/// and runs alone. Always taken before the file lock, so the locks cannot deadlock.
const GATE: (i32, i32) = (0x7472, 0);

struct Statements {
    checkpoint: Statement,
    set_checkpoint: Statement,
}

/// A JSON text sent as `jsonb` in binary form (format version 1, then the text): the
/// server parses it once, the client does not at all.
#[derive(Debug)]
struct Jsonb<'a>(&'a str);

impl ToSql for Jsonb<'_> {
    fn to_sql(
        &self,
        _: &Type,
        out: &mut bytes::BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        out.extend_from_slice(&[1]);
        out.extend_from_slice(self.0.as_bytes());
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::JSONB
    }
    to_sql_checked!();
}

fn system_time(t: Timestamp) -> SystemTime {
    match u64::try_from(t.0) {
        Ok(s) => UNIX_EPOCH + Duration::from_secs(s),
        Err(_) => UNIX_EPOCH - Duration::from_secs(t.0.unsigned_abs()),
    }
}

/// Connects; under `sslmode=prefer`, as libpq, a failed TLS attempt (a handshake the
/// server's old TLS or certificate cannot complete) is followed by one without TLS. An
/// answer of the server itself (wrong password, no such database) is final.
fn open(cfg: &Config, tls: &Option<MakeRustls>) -> Result<Client, postgres::Error> {
    let Some(t) = tls else {
        return cfg.connect(NoTls);
    };
    match cfg.connect(t.clone()) {
        Err(x) if cfg.get_ssl_mode() == SslMode::Prefer && x.as_db_error().is_none() => {
            let mut plain = cfg.clone();
            plain.ssl_mode(SslMode::Disable);
            plain.connect(NoTls).map_err(|_| x)
        }
        r => r,
    }
}

pub struct Pg {
    client: Client,
    config: Config,
    tls: Option<MakeRustls>,
    st: Option<Statements>,
    /// The schema has `tlsrpt_figure` (version 5 or later; a test may migrate to less).
    figures: bool,
}

fn e(x: postgres::Error) -> DbError {
    use postgres::error::SqlState;
    // A deadlock with a concurrent load, or a key it committed while this transaction
    // waited for it: rerunning the file's transaction sees its rows and skips them.
    let retry = [
        SqlState::T_R_DEADLOCK_DETECTED,
        SqlState::UNIQUE_VIOLATION,
        SqlState::T_R_SERIALIZATION_FAILURE,
    ]
    .iter()
    .any(|c| x.code() == Some(c));
    // The server's message, when there is one, says more than the client's summary.
    // Otherwise the causes too: "error performing TLS handshake" alone does not say
    // that the certificate names another host.
    let msg = match x.as_db_error() {
        Some(db) => format!("postgresql: {}", db.message()),
        None => {
            let mut m = format!("postgresql: {x}");
            let mut cause = std::error::Error::source(&x);
            while let Some(c) = cause {
                m.push_str(&format!(": {c}"));
                cause = c.source();
            }
            m
        }
    };
    // Whatever the server answers (down, refusing, a wrong password, pg_hba), a load
    // from cron or a timer tries again at its next run: temporary (75), as libpq
    // clients report it. Only the schema checks of `open_read` are permanent.
    DbError {
        msg,
        retry,
        trouble: super::Trouble::Temporary,
    }
}

/// The password of `~/.pgpass` (or `$PGPASSFILE`) for this connection, as libpq reads it.
fn pgpass(host: &str, port: u16, db: &str, user: &str) -> Option<String> {
    let path = std::env::var_os("PGPASSFILE")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")))?;
    let text = std::fs::read_to_string(path).ok()?;
    for line in text.lines() {
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        // Fields are separated by ':', with '\:' and '\\' escaped.
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut chars = line.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => cur.extend(chars.next()),
                ':' if fields.len() < 4 => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() != 5 {
            continue;
        }
        let port_s = port.to_string();
        let want = [host, port_s.as_str(), db, user];
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(f, w)| f == "*" || f == w)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

impl Pg {
    pub fn connect(conninfo: &str) -> DbResult<Pg> {
        let (conninfo, ssl) = super::tls::split(conninfo).map_err(DbError::usage)?;
        let mut cfg = Config::from_str(&conninfo)
            .map_err(|x| DbError::usage(format!("postgresql connection string: {x}")))?;
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        if cfg.get_user().is_none() {
            let user = env("PGUSER")
                .or_else(|| env("USER"))
                .or_else(|| {
                    nix::unistd::User::from_uid(nix::unistd::getuid())
                        .ok()
                        .flatten()
                        .map(|u| u.name)
                })
                .unwrap_or_else(|| "postgres".into());
            cfg.user(&user);
        }
        if cfg.get_hosts().is_empty() {
            cfg.host(&env("PGHOST").unwrap_or_else(|| "/var/run/postgresql".into()));
        }
        if cfg.get_ports().is_empty() {
            cfg.port(env("PGPORT").and_then(|p| p.parse().ok()).unwrap_or(5432));
        }
        let user = cfg.get_user().unwrap_or_default().to_owned();
        if cfg.get_dbname().is_none() {
            cfg.dbname(&env("PGDATABASE").unwrap_or_else(|| user.clone()));
        }
        if cfg.get_password().is_none() {
            let host = match cfg.get_hosts().first() {
                Some(postgres::config::Host::Tcp(h)) => h.clone(),
                _ => "localhost".into(),
            };
            let port = cfg.get_ports().first().copied().unwrap_or(5432);
            let db = cfg.get_dbname().unwrap_or_default().to_owned();
            if let Some(p) = env("PGPASSWORD").or_else(|| pgpass(&host, port, &db, &user)) {
                cfg.password(p);
            }
        }
        cfg.application_name("tlsrpt load");
        cfg.connect_timeout(std::time::Duration::from_secs(10));
        // As libpq: no TLS over a Unix socket, whatever sslmode says.
        let unix = !matches!(
            cfg.get_hosts().first(),
            Some(postgres::config::Host::Tcp(_))
        );
        cfg.ssl_mode(if unix {
            SslMode::Disable
        } else {
            ssl.mode.driver()
        });
        let tls = match cfg.get_ssl_mode() {
            SslMode::Disable => None,
            _ => Some(super::tls::connector(&ssl).map_err(DbError::permanent)?),
        };
        let client = open(&cfg, &tls).map_err(e)?;
        Ok(Pg {
            client,
            config: cfg,
            tls,
            st: None,
            figures: true,
        })
    }

    fn st(&mut self) -> DbResult<&Statements> {
        if self.st.is_none() {
            let c = &mut self.client;
            let st = Statements {
                checkpoint: c
                    .prepare("SELECT inode, read_to FROM tlsrpt_checkpoint WHERE spool = $1 AND file = $2")
                    .map_err(e)?,
                set_checkpoint: c
                    .prepare(
                        "INSERT INTO tlsrpt_checkpoint (spool, file, inode, read_to) VALUES ($1, $2, $3, $4)
                         ON CONFLICT (spool, file) DO UPDATE SET inode = excluded.inode, read_to = excluded.read_to",
                    )
                    .map_err(e)?,
            };
            self.st = Some(st);
        }
        Ok(self.st.as_ref().expect("prepared"))
    }
}

impl Writer for Pg {
    fn migrate(&mut self) -> DbResult<()> {
        let target = target_version();
        let mut tx = self.client.transaction().map_err(e)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_ID])
            .map_err(e)?;
        tx.batch_execute("CREATE TABLE IF NOT EXISTS tlsrpt_schema_version (version INT NOT NULL)")
            .map_err(e)?;
        let v: i32 = tx
            .query_one(
                "SELECT coalesce(max(version), 0) FROM tlsrpt_schema_version",
                &[],
            )
            .map_err(e)?
            .get(0);
        let v = i64::from(v);
        if v > SCHEMA_VERSION {
            return Err(DbError::permanent(format!(
                "database schema version {v} is newer than {SCHEMA_VERSION}: upgrade tlsrpt"
            )));
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target as usize)
            .skip(v as usize)
        {
            tx.batch_execute(sql).map_err(|x| {
                let mut d = e(x);
                d.msg = format!("migration to version {}: {}", i + 1, d.msg);
                d
            })?;
            tx.execute("DELETE FROM tlsrpt_schema_version", &[])
                .map_err(e)?;
            tx.execute(
                "INSERT INTO tlsrpt_schema_version (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .map_err(e)?;
            if i + 1 == 5 {
                backfill(&mut tx)?;
            }
        }
        self.figures = target >= 5;
        tx.commit().map_err(e)
    }

    fn checkpoints(&mut self, spool: &str) -> DbResult<HashMap<String, (u64, u64)>> {
        let rows = self
            .client
            .query(
                "SELECT file, inode, read_to FROM tlsrpt_checkpoint WHERE spool = $1",
                &[&spool],
            )
            .map_err(e)?;
        Ok(rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    (r.get::<_, i64>(1) as u64, r.get::<_, i64>(2) as u64),
                )
            })
            .collect())
    }

    /// Loads of different day files run at once (their rows never collide, but for
    /// copies of one report, which the unique keys settle: a transaction inserting a
    /// key another one holds waits for it, and two waiting for each other are a
    /// deadlock the server breaks by aborting one, rerun `alone`); a day file is loaded
    /// by one transaction at a time, which rereads its checkpoint under the lock.
    fn begin(&mut self, spool: &str, file: &str, alone: bool) -> DbResult<()> {
        self.client.batch_execute("BEGIN").map_err(e)?;
        let gate = if alone {
            "SELECT pg_advisory_xact_lock($1, $2)"
        } else {
            "SELECT pg_advisory_xact_lock_shared($1, $2)"
        };
        self.client.execute(gate, &[&GATE.0, &GATE.1]).map_err(e)?;
        self.client
            .execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                &[&FILE_LOCK_CLASS, &format!("{spool}/{file}")],
            )
            .map_err(e)?;
        Ok(())
    }

    fn another_writer(&self) -> DbResult<Option<Box<dyn Writer>>> {
        Ok(Some(Box::new(self.another()?)))
    }

    fn checkpoint(&mut self, spool: &str, file: &str) -> DbResult<Option<(u64, u64)>> {
        let st = self.st()?.checkpoint.clone();
        let rows = self.client.query(&st, &[&spool, &file]).map_err(e)?;
        Ok(rows
            .first()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)))
    }

    /// A batch in a fixed number of round trips, whatever its size: reports already
    /// stored (by our key) are filtered out first, ids are reserved from the tables' own
    /// sequences, the reports go in with one INSERT ... SELECT FROM unnest(...) (a report
    /// whose parsedmarc key is taken, because parsedmarc stored it, is skipped by ON
    /// CONFLICT, with its policies and details), and their policies, failure details and
    /// meta rows with one binary COPY each: no SQL text is built from report data, and
    /// the server does no per-row statement work.
    fn insert_batch(&mut self, rows: &[ReportRows]) -> DbResult<(u64, u64)> {
        use std::collections::HashSet;
        if rows.is_empty() {
            return Ok((0, 0));
        }
        let c = &mut self.client;
        let keys: Vec<&str> = rows.iter().map(|r| r.dedup_key.as_str()).collect();
        let known: HashSet<String> = c
            .query(
                "SELECT dedup_key FROM tlsrpt_report_meta WHERE dedup_key = ANY($1)",
                &[&keys],
            )
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let mut seen = HashSet::new();
        let fresh: Vec<&ReportRows> = rows
            .iter()
            .filter(|r| !known.contains(&r.dedup_key) && seen.insert(r.dedup_key.as_str()))
            .collect();
        if fresh.is_empty() {
            return Ok((0, rows.len() as u64));
        }
        let reserve = |c: &mut Client, table: &str, n: usize| -> DbResult<Vec<i64>> {
            Ok(c.query(
                "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1::bigint, $2::bigint)",
                &[&table, &(n as i64)],
            )
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect())
        };
        let ids = reserve(c, "smtp_tls_report", fresh.len())?;
        let col = |f: fn(&ReportRows) -> &str| fresh.iter().map(|r| f(r)).collect::<Vec<&str>>();
        let contacts: Vec<Option<&str>> = fresh.iter().map(|r| r.contact_info.as_deref()).collect();
        let inserted: HashSet<i64> = c
            .query(
                "INSERT INTO smtp_tls_report (id, organization_name, begin_date, end_date, contact_info, report_id)
                 SELECT u.id, u.org, u.b::timestamptz, u.e::timestamptz, u.ci, u.rid
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[])
                      AS u(id, org, b, e, ci, rid)
                 ON CONFLICT (organization_name, report_id, begin_date, end_date) DO NOTHING RETURNING id",
                &[
                    &ids,
                    &col(|r| &r.organization_name),
                    &col(|r| &r.begin_date),
                    &col(|r| &r.end_date),
                    &contacts,
                    &col(|r| &r.report_id),
                ],
            )
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let stored: Vec<(i64, &ReportRows)> = ids
            .iter()
            .zip(&fresh)
            .filter(|(id, _)| inserted.contains(id))
            .map(|(id, r)| (*id, *r))
            .collect();
        let n_pol: usize = stored.iter().map(|(_, r)| r.policies.len()).sum();
        let n_det: usize = stored
            .iter()
            .flat_map(|(_, r)| &r.policies)
            .map(|p| p.details.len())
            .sum();
        let pol_ids = if n_pol > 0 {
            reserve(c, "smtp_tls_policy", n_pol)?
        } else {
            Vec::new()
        };
        let mut next = pol_ids.iter();
        if n_pol > 0 {
            let mut w = BinaryCopyInWriter::new(
                c.copy_in(
                    "COPY smtp_tls_policy (id, report_id, policy_domain, policy_type, policy_strings,
                     mx_host_patterns, successful_session_count, failed_session_count) FROM STDIN BINARY",
                )
                .map_err(e)?,
                &[
                    Type::INT8,
                    Type::INT8,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT_ARRAY,
                    Type::TEXT_ARRAY,
                    Type::INT4,
                    Type::INT4,
                ],
            );
            for (rid, r) in &stored {
                for (p, pid) in r.policies.iter().zip(&mut next) {
                    w.write(&[
                        pid,
                        rid,
                        &p.policy_domain,
                        &p.policy_type,
                        &p.policy_strings,
                        &p.mx_host_patterns,
                        &p.successful_session_count,
                        &p.failed_session_count,
                    ])
                    .map_err(e)?;
                }
            }
            w.finish().map_err(e)?;
        }
        if n_det > 0 {
            let mut w = BinaryCopyInWriter::new(
                c.copy_in(
                    "COPY smtp_tls_failure_detail (policy_id, result_type, failed_session_count, sending_mta_ip,
                     receiving_ip, receiving_mx_hostname, receiving_mx_helo, additional_info_uri,
                     failure_reason_code) FROM STDIN BINARY",
                )
                .map_err(e)?,
                &[
                    Type::INT8,
                    Type::TEXT,
                    Type::INT4,
                    Type::INET,
                    Type::INET,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                    Type::TEXT,
                ],
            );
            let policies = stored.iter().flat_map(|(_, r)| &r.policies);
            for (p, pid) in policies.zip(&pol_ids) {
                for d in &p.details {
                    w.write(&[
                        pid,
                        &d.result_type,
                        &d.failed_session_count,
                        &d.sending_mta_ip,
                        &d.receiving_ip,
                        &d.receiving_mx_hostname,
                        &d.receiving_mx_helo,
                        &d.additional_info_uri,
                        &d.failure_reason_code,
                    ])
                    .map_err(e)?;
                }
            }
            w.finish().map_err(e)?;
        }
        if !stored.is_empty() {
            // A migration's intermediate target before version 5 has no figures' columns
            // in the meta row: the first seven columns only.
            let (more, n) = if self.figures {
                (
                    ", transport, trust_needs, recipient, original_recipient",
                    11,
                )
            } else {
                ("", 7)
            };
            let types = [
                Type::INT8,
                Type::TEXT,
                Type::TIMESTAMPTZ,
                Type::TEXT,
                Type::TEXT,
                Type::JSONB,
                Type::JSONB,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
                Type::TEXT,
            ];
            let mut w = BinaryCopyInWriter::new(
                c.copy_in(&format!(
                    "COPY tlsrpt_report_meta (report_pk, dedup_key, received_at, source_spool, dkim_verdict,
                     warnings, record{more}) FROM STDIN BINARY"
                ))
                .map_err(e)?,
                &types[..n],
            );
            for (id, r) in &stored {
                let received = r.received_at.map(system_time);
                let row: [&(dyn ToSql + Sync); 11] = [
                    id,
                    &r.dedup_key,
                    &received,
                    &r.source_spool,
                    &r.dkim_verdict,
                    &Jsonb(&r.warnings),
                    &Jsonb(&r.record),
                    &r.figures.transport,
                    &r.figures.trust_needs,
                    &r.figures.recipient,
                    &r.figures.original_recipient,
                ];
                w.write(&row[..n]).map_err(e)?;
            }
            w.finish().map_err(e)?;
        }
        let figures: Vec<(i64, &FigureRows)> =
            stored.iter().map(|(id, r)| (*id, &r.figures)).collect();
        if self.figures {
            copy_figures(c, &figures)?;
        }
        let new = stored.len() as u64;
        Ok((new, rows.len() as u64 - new))
    }

    fn set_checkpoint(&mut self, spool: &str, file: &str, inode: u64, offset: u64) -> DbResult<()> {
        let st = self.st()?.set_checkpoint.clone();
        self.client
            .execute(&st, &[&spool, &file, &(inode as i64), &(offset as i64)])
            .map_err(e)?;
        Ok(())
    }

    fn forget_checkpoint(&mut self, spool: &str, file: &str) -> DbResult<()> {
        self.client
            .execute(
                "DELETE FROM tlsrpt_checkpoint WHERE spool = $1 AND file = $2",
                &[&spool, &file],
            )
            .map_err(e)?;
        Ok(())
    }

    fn commit(&mut self) -> DbResult<()> {
        self.client.batch_execute("COMMIT").map_err(e)
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn space(&mut self) -> DbResult<Space> {
        // The tables' and indexes' size (PostgreSQL reuses what a DELETE frees; VACUUM
        // FULL gives it back to the system).
        let r = self
            .client
            .query_one(
                "SELECT (SELECT sum(pg_total_relation_size(t::regclass))::int8 FROM unnest(ARRAY['smtp_tls_report',
                         'smtp_tls_policy', 'smtp_tls_failure_detail', 'tlsrpt_report_meta', 'tlsrpt_figure']) AS t),
                        (SELECT count(*) FROM smtp_tls_report)",
                &[],
            )
            .map_err(e)?;
        Ok(Space {
            bytes: r.get::<_, Option<i64>>(0).unwrap_or(0).max(0) as u64,
            reports: r.get::<_, i64>(1).max(0) as u64,
        })
    }

    fn count_old(&mut self, cut: i64) -> DbResult<(u64, u64)> {
        let cut_t = system_time(Timestamp(cut));
        // Counted where they are, without fetching a million ids.
        let r = self
            .client
            .query_one(
                "WITH old AS (SELECT id FROM smtp_tls_report WHERE end_date < $1)
                 SELECT (SELECT count(*) FROM old),
                        (SELECT count(*) FROM smtp_tls_policy WHERE report_id IN (SELECT id FROM old))
                      + (SELECT count(*) FROM smtp_tls_failure_detail d JOIN smtp_tls_policy p ON p.id = d.policy_id
                         WHERE p.report_id IN (SELECT id FROM old))
                      + (SELECT count(*) FROM tlsrpt_report_meta WHERE report_pk IN (SELECT id FROM old))
                      + (SELECT count(*) FROM tlsrpt_figure WHERE report_pk IN (SELECT id FROM old))",
                &[&cut_t],
            )
            .map_err(e)?;
        Ok((r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64))
    }

    fn prune_batch(&mut self, cut: i64, limit: usize) -> DbResult<(u64, u64)> {
        let cut_t = system_time(Timestamp(cut));
        let mut tx = self.client.transaction().map_err(e)?;
        let ids: Vec<i64> = tx
            .query(
                "SELECT id FROM smtp_tls_report WHERE end_date < $1 ORDER BY id LIMIT $2",
                &[&cut_t, &(limit as i64)],
            )
            .map_err(e)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if ids.is_empty() {
            tx.commit().map_err(e)?;
            return Ok((0, 0));
        }
        let rows = count_rows(&mut tx, &ids)?;
        tx.execute(&carry(), &[&ids]).map_err(e)?;
        let reports = tx
            .execute("DELETE FROM smtp_tls_report WHERE id = ANY($1)", &[&ids])
            .map_err(e)?;
        tx.commit().map_err(e)?;
        Ok((reports, rows))
    }
}

/// The policy, failure-detail, meta and fact rows of some reports.
fn count_rows(c: &mut impl GenericClient, ids: &[i64]) -> DbResult<u64> {
    let n: i64 = c
        .query_one(
            "SELECT (SELECT count(*) FROM smtp_tls_policy WHERE report_id = ANY($1))
                  + (SELECT count(*) FROM smtp_tls_failure_detail d JOIN smtp_tls_policy p ON p.id = d.policy_id
                     WHERE p.report_id = ANY($1))
                  + (SELECT count(*) FROM tlsrpt_report_meta WHERE report_pk = ANY($1))
                  + (SELECT count(*) FROM tlsrpt_figure WHERE report_pk = ANY($1))",
            &[&ids],
        )
        .map_err(e)?
        .get(0);
    Ok(n as u64)
}

/// Counter figures of the reports $1, added to the pruned sums.
fn carry() -> String {
    format!(
        "INSERT INTO tlsrpt_figure_pruned (authenticated, trust_needs, policy_domain, figure, organization,
             policy_type, result_type, reports, successful, failed, last_end, last_received)
         SELECT authenticated, coalesce(trust_needs, ''), policy_domain, figure, coalesce(organization, ''),
                coalesce(policy_type, ''), coalesce(result_type, ''), count(*), sum(successful), sum(failed),
                max(end_at), max(received_at)
         FROM tlsrpt_figure WHERE report_pk = ANY($1) AND figure IN {}
         GROUP BY 1, 2, 3, 4, 5, 6, 7
         ON CONFLICT (authenticated, trust_needs, policy_domain, figure, organization, policy_type, result_type)
         DO UPDATE SET reports = tlsrpt_figure_pruned.reports + excluded.reports,
             successful = tlsrpt_figure_pruned.successful + excluded.successful,
             failed = tlsrpt_figure_pruned.failed + excluded.failed,
             last_end = greatest(tlsrpt_figure_pruned.last_end, excluded.last_end),
             last_received = greatest(tlsrpt_figure_pruned.last_received, excluded.last_received)",
        Name::sql_list(&Name::COUNTERS)
    )
}
