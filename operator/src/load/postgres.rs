//! The PostgreSQL store, for one central database of every MX host's reports.
//!
//! Connection: a `postgresql://` URL or libpq `key=value` conninfo. As libpq does, a
//! missing user is `$PGUSER` or the login name, a missing host `$PGHOST` or the local
//! socket directory `/var/run/postgresql`, a missing port `$PGPORT` or 5432, and a
//! missing password `$PGPASSWORD` or the matching `~/.pgpass` (`$PGPASSFILE`) line.
//! `sslmode=disable` and `prefer` work; TLS itself is not built in (`require` fails: use
//! the local socket, or a tunnel).

use std::collections::HashMap;
use std::str::FromStr;

use postgres::{Client, Config, NoTls, Statement};

use super::{ReportRows, SCHEMA_VERSION, Store};

/// A lock id for `pg_advisory_xact_lock`: "tlsrpt" in ASCII.
const LOCK_ID: i64 = 0x746c_7372_7074;

pub const MIGRATIONS: [&str; 2] = [
    r#"
CREATE TABLE IF NOT EXISTS smtp_tls_report (
    id BIGSERIAL PRIMARY KEY,
    organization_name TEXT NOT NULL,
    begin_date TIMESTAMPTZ NOT NULL,
    end_date TIMESTAMPTZ NOT NULL,
    contact_info TEXT,
    report_id TEXT NOT NULL,
    UNIQUE (organization_name, report_id, begin_date, end_date));
CREATE TABLE IF NOT EXISTS smtp_tls_policy (
    id BIGSERIAL PRIMARY KEY,
    report_id BIGINT REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    policy_domain TEXT,
    policy_type TEXT,
    policy_strings TEXT[],
    mx_host_patterns TEXT[],
    successful_session_count INT,
    failed_session_count INT);
CREATE TABLE IF NOT EXISTS smtp_tls_failure_detail (
    id BIGSERIAL PRIMARY KEY,
    policy_id BIGINT REFERENCES smtp_tls_policy(id) ON DELETE CASCADE,
    result_type TEXT,
    failed_session_count INT,
    sending_mta_ip INET,
    receiving_ip INET,
    receiving_mx_hostname TEXT,
    receiving_mx_helo TEXT,
    additional_info_uri TEXT,
    failure_reason_code TEXT);
CREATE TABLE tlsrpt_report_meta (
    report_pk BIGINT PRIMARY KEY REFERENCES smtp_tls_report(id) ON DELETE CASCADE,
    dedup_key TEXT NOT NULL UNIQUE,
    received_at TIMESTAMPTZ,
    source_spool TEXT,
    dkim_verdict TEXT,
    warnings JSONB,
    record JSONB NOT NULL);
CREATE TABLE tlsrpt_checkpoint (
    spool TEXT NOT NULL,
    file TEXT NOT NULL,
    inode BIGINT NOT NULL,
    read_to BIGINT NOT NULL,
    PRIMARY KEY (spool, file));
"#,
    super::SCHEMA_V2,
];

struct Statements {
    meta_known: Statement,
    report: Statement,
    policy: Statement,
    detail: Statement,
    meta: Statement,
    checkpoint: Statement,
    set_checkpoint: Statement,
}

pub struct Pg {
    client: Client,
    st: Option<Statements>,
}

fn e(x: postgres::Error) -> String {
    // The server's message, when there is one, says more than the client's summary.
    match x.as_db_error() {
        Some(db) => format!("postgresql: {}", db.message()),
        None => format!("postgresql: {x}"),
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
    pub fn connect(conninfo: &str) -> Result<Pg, String> {
        let mut cfg =
            Config::from_str(conninfo).map_err(|x| format!("postgresql connection string: {x}"))?;
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
        let client = cfg.connect(NoTls).map_err(e)?;
        Ok(Pg { client, st: None })
    }

    fn st(&mut self) -> Result<&Statements, String> {
        if self.st.is_none() {
            let c = &mut self.client;
            let st = Statements {
                meta_known: c.prepare("SELECT 1 FROM tlsrpt_report_meta WHERE dedup_key = $1").map_err(e)?,
                report: c
                    .prepare(
                        "INSERT INTO smtp_tls_report (organization_name, begin_date, end_date, contact_info, report_id)
                         VALUES ($1, $2::text::timestamptz, $3::text::timestamptz, $4, $5)
                         ON CONFLICT (organization_name, report_id, begin_date, end_date) DO NOTHING RETURNING id",
                    )
                    .map_err(e)?,
                policy: c
                    .prepare(
                        "INSERT INTO smtp_tls_policy (report_id, policy_domain, policy_type, policy_strings,
                         mx_host_patterns, successful_session_count, failed_session_count)
                         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
                    )
                    .map_err(e)?,
                detail: c
                    .prepare(
                        "INSERT INTO smtp_tls_failure_detail (policy_id, result_type, failed_session_count,
                         sending_mta_ip, receiving_ip, receiving_mx_hostname, receiving_mx_helo,
                         additional_info_uri, failure_reason_code)
                         VALUES ($1, $2, $3, $4::text::inet, $5::text::inet, $6, $7, $8, $9)",
                    )
                    .map_err(e)?,
                meta: c
                    .prepare(
                        "INSERT INTO tlsrpt_report_meta (report_pk, dedup_key, received_at, source_spool,
                         dkim_verdict, warnings, record)
                         VALUES ($1, $2, $3::text::timestamptz, $4, $5, $6::text::jsonb, $7::text::jsonb)",
                    )
                    .map_err(e)?,
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

impl Store for Pg {
    fn migrate(&mut self) -> Result<(), String> {
        let target = super::sqlite::target_version();
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
            return Err(format!(
                "database schema version {v} is newer than {SCHEMA_VERSION}: upgrade tlsrpt"
            ));
        }
        for (i, sql) in MIGRATIONS
            .iter()
            .enumerate()
            .take(target as usize)
            .skip(v as usize)
        {
            tx.batch_execute(sql)
                .map_err(|x| format!("migration to version {}: {}", i + 1, e(x)))?;
            tx.execute("DELETE FROM tlsrpt_schema_version", &[])
                .map_err(e)?;
            tx.execute(
                "INSERT INTO tlsrpt_schema_version (version) VALUES ($1)",
                &[&(i as i32 + 1)],
            )
            .map_err(e)?;
        }
        tx.commit().map_err(e)
    }

    fn checkpoints(&mut self, spool: &str) -> Result<HashMap<String, (u64, u64)>, String> {
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

    fn begin(&mut self) -> Result<(), String> {
        self.client.batch_execute("BEGIN").map_err(e)?;
        self.client
            .execute("SELECT pg_advisory_xact_lock($1)", &[&LOCK_ID])
            .map_err(e)?;
        Ok(())
    }

    fn checkpoint(&mut self, spool: &str, file: &str) -> Result<Option<(u64, u64)>, String> {
        let st = self.st()?.checkpoint.clone();
        let rows = self.client.query(&st, &[&spool, &file]).map_err(e)?;
        Ok(rows
            .first()
            .map(|r| (r.get::<_, i64>(0) as u64, r.get::<_, i64>(1) as u64)))
    }

    fn insert(&mut self, r: &ReportRows) -> Result<bool, String> {
        let st = self.st()?;
        let (known, report, policy, detail, meta) = (
            st.meta_known.clone(),
            st.report.clone(),
            st.policy.clone(),
            st.detail.clone(),
            st.meta.clone(),
        );
        let c = &mut self.client;
        if !c.query(&known, &[&r.dedup_key]).map_err(e)?.is_empty() {
            return Ok(false);
        }
        let rows = c
            .query(
                &report,
                &[
                    &r.organization_name,
                    &r.begin_date,
                    &r.end_date,
                    &r.contact_info,
                    &r.report_id,
                ],
            )
            .map_err(e)?;
        let Some(row) = rows.first() else {
            return Ok(false); // stored already (by parsedmarc's key)
        };
        let id: i64 = row.get(0);
        for p in &r.policies {
            let pid: i64 = c
                .query_one(
                    &policy,
                    &[
                        &id,
                        &p.policy_domain,
                        &p.policy_type,
                        &p.policy_strings,
                        &p.mx_host_patterns,
                        &p.successful_session_count,
                        &p.failed_session_count,
                    ],
                )
                .map_err(e)?
                .get(0);
            for d in &p.details {
                c.execute(
                    &detail,
                    &[
                        &pid,
                        &d.result_type,
                        &d.failed_session_count,
                        &d.sending_mta_ip,
                        &d.receiving_ip,
                        &d.receiving_mx_hostname,
                        &d.receiving_mx_helo,
                        &d.additional_info_uri,
                        &d.failure_reason_code,
                    ],
                )
                .map_err(e)?;
            }
        }
        c.execute(
            &meta,
            &[
                &id,
                &r.dedup_key,
                &r.received_at,
                &r.source_spool,
                &r.dkim_verdict,
                &r.warnings,
                &r.record,
            ],
        )
        .map_err(e)?;
        Ok(true)
    }

    /// A batch in seven statements, whatever its size: reports already stored (by our
    /// key) are filtered out first, ids are reserved from the tables' own sequences, and
    /// each table gets one INSERT ... SELECT FROM unnest(...). A report whose
    /// parsedmarc key is taken (parsedmarc stored it) is skipped by ON CONFLICT, with its
    /// policies and details.
    fn insert_batch(&mut self, rows: &[ReportRows]) -> Result<(u64, u64), String> {
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
        let reserve = |c: &mut Client, table: &str, n: usize| -> Result<Vec<i64>, String> {
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
        // Policies and their details.
        let n_pol: usize = stored.iter().map(|(_, r)| r.policies.len()).sum();
        let pol_ids = if n_pol > 0 {
            reserve(c, "smtp_tls_policy", n_pol)?
        } else {
            Vec::new()
        };
        let (mut p_id, mut p_rid, mut p_dom, mut p_type) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut p_str, mut p_mx, mut p_s, mut p_f) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut d_pid, mut d_rt, mut d_n, mut d_sip, mut d_rip) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut d_mx, mut d_helo, mut d_uri, mut d_code) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut next = pol_ids.iter();
        for (rid, r) in &stored {
            for p in &r.policies {
                let pid = *next.next().expect("one id per policy");
                p_id.push(pid);
                p_rid.push(*rid);
                p_dom.push(p.policy_domain.as_deref());
                p_type.push(p.policy_type.as_deref());
                p_str.push(serde_json::to_string(&p.policy_strings).expect("strings"));
                p_mx.push(serde_json::to_string(&p.mx_host_patterns).expect("strings"));
                p_s.push(p.successful_session_count);
                p_f.push(p.failed_session_count);
                for d in &p.details {
                    d_pid.push(pid);
                    d_rt.push(d.result_type.as_deref());
                    d_n.push(d.failed_session_count);
                    d_sip.push(d.sending_mta_ip.as_deref());
                    d_rip.push(d.receiving_ip.as_deref());
                    d_mx.push(d.receiving_mx_hostname.as_deref());
                    d_helo.push(d.receiving_mx_helo.as_deref());
                    d_uri.push(d.additional_info_uri.as_deref());
                    d_code.push(d.failure_reason_code.as_deref());
                }
            }
        }
        if !p_id.is_empty() {
            c.execute(
                "INSERT INTO smtp_tls_policy (id, report_id, policy_domain, policy_type, policy_strings,
                 mx_host_patterns, successful_session_count, failed_session_count)
                 SELECT u.id, u.rid, u.d, u.t,
                        ARRAY(SELECT jsonb_array_elements_text(u.ps::jsonb)),
                        ARRAY(SELECT jsonb_array_elements_text(u.mx::jsonb)), u.s, u.f
                 FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::int[], $8::int[]) AS u(id, rid, d, t, ps, mx, s, f)",
                &[&p_id, &p_rid, &p_dom, &p_type, &p_str, &p_mx, &p_s, &p_f],
            )
            .map_err(e)?;
        }
        if !d_pid.is_empty() {
            c.execute(
                "INSERT INTO smtp_tls_failure_detail (policy_id, result_type, failed_session_count, sending_mta_ip,
                 receiving_ip, receiving_mx_hostname, receiving_mx_helo, additional_info_uri, failure_reason_code)
                 SELECT u.pid, u.rt, u.n, u.sip::inet, u.rip::inet, u.mx, u.helo, u.uri, u.code
                 FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[],
                             $8::text[], $9::text[]) AS u(pid, rt, n, sip, rip, mx, helo, uri, code)",
                &[&d_pid, &d_rt, &d_n, &d_sip, &d_rip, &d_mx, &d_helo, &d_uri, &d_code],
            )
            .map_err(e)?;
        }
        if !stored.is_empty() {
            let m_id: Vec<i64> = stored.iter().map(|(id, _)| *id).collect();
            let m = |f: fn(&ReportRows) -> Option<&str>| {
                stored
                    .iter()
                    .map(|(_, r)| f(r))
                    .collect::<Vec<Option<&str>>>()
            };
            c.execute(
                "INSERT INTO tlsrpt_report_meta (report_pk, dedup_key, received_at, source_spool, dkim_verdict,
                 warnings, record)
                 SELECT u.id, u.k, u.ra::timestamptz, u.sp, u.v, u.w::jsonb, u.rec::jsonb
                 FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
                      AS u(id, k, ra, sp, v, w, rec)",
                &[
                    &m_id,
                    &m(|r| Some(r.dedup_key.as_str())),
                    &m(|r| r.received_at.as_deref()),
                    &m(|r| Some(r.source_spool.as_str())),
                    &m(|r| r.dkim_verdict.as_deref()),
                    &m(|r| Some(r.warnings.as_str())),
                    &m(|r| Some(r.record.as_str())),
                ],
            )
            .map_err(e)?;
        }
        let new = stored.len() as u64;
        Ok((new, rows.len() as u64 - new))
    }

    fn set_checkpoint(
        &mut self,
        spool: &str,
        file: &str,
        inode: u64,
        offset: u64,
    ) -> Result<(), String> {
        let st = self.st()?.set_checkpoint.clone();
        self.client
            .execute(&st, &[&spool, &file, &(inode as i64), &(offset as i64)])
            .map_err(e)?;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), String> {
        self.client.batch_execute("COMMIT").map_err(e)
    }

    fn rollback(&mut self) {
        let _ = self.client.batch_execute("ROLLBACK");
    }

    fn records_since(&mut self, after: &str, f: &mut dyn FnMut(&str)) -> Result<(), String> {
        let rows = self
            .client
            .query(
                "SELECT m.record::text FROM tlsrpt_report_meta m JOIN smtp_tls_report r ON r.id = m.report_pk
                 WHERE r.end_date > $1::text::timestamptz ORDER BY m.report_pk",
                &[&after],
            )
            .map_err(e)?;
        for r in rows {
            let s: String = r.get(0);
            f(&s);
        }
        Ok(())
    }
}
