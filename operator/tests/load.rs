//! `tlsrpt load` into a real SQLite file and a real PostgreSQL server (a cluster this
//! test makes with initdb in a temporary directory, as an unprivileged user, on its own
//! socket and port, and removes): idempotence, overlapping spools, a torn line, SIGKILL
//! mid-load, two loads at once, the database down then up, hostile strings, a migration
//! from the first schema version, and `summary --db` against `summary` on the spool.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};

use common::pg::Cluster;
use common::*;
use serde_json::Value;

/// A spool pair with overlap, unauthenticated and sts+tlsa reports: (spools, unique
/// report count).
fn history(t: &Path, n: usize) -> (Spool, Spool, usize) {
    let a = Spool::new(t, "mx1");
    let b = Spool::new(t, "mx2");
    let mut rng = Rng(7);
    for i in 0..n {
        let start = T0 + (i as i64 % 20) * DAY;
        let dual = i % 4 == 0;
        let d = format!("d{}.example", i % 9);
        let failed = rng.below(5);
        let details = if failed > 0 {
            vec![detail(
                "certificate-expired",
                failed,
                "203.0.113.7",
                "mx1.example.com",
            )]
        } else {
            vec![]
        };
        let mut pols = vec![policy(
            "sts",
            &d,
            100 + rng.below(100),
            failed,
            details.clone(),
        )];
        if dual {
            pols.push(policy("tlsa", &d, 100, failed, details));
        }
        let rec = record(
            if dual {
                "Microsoft Corporation"
            } else {
                "Google Inc."
            },
            &format!("r-{i}"),
            start,
            start + DAY + 3600,
            i % 7 != 0,
            pols,
        );
        match i % 3 {
            0 => a.put(&rec),
            1 => b.put(&rec),
            _ => {
                a.put(&rec);
                b.put(&rec);
            }
        }
    }
    (a, b, n)
}

fn load(db: &str, spools: &[&Path]) -> std::process::Output {
    let mut c = Command::new(BIN);
    c.args(["load", "-v", "--db", db]);
    for s in spools {
        c.arg("--spool").arg(s);
    }
    c.env_remove("TLSRPT_DB")
        .env_remove("TLSRPT_SPOOL")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn ok_load(db: &str, spools: &[&Path]) -> String {
    let o = load(db, spools);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn sqlite_count(path: &Path, sql: &str) -> i64 {
    let c = rusqlite::Connection::open(path).unwrap();
    c.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn summary_domains(args: &[&str]) -> Value {
    let mut a = vec![
        "--since",
        "2026-02-01",
        "--until",
        "2026-04-01",
        "--include-unauthenticated",
    ];
    a.extend_from_slice(args);
    let mut doc = summary_json(&a);
    // Everything but where the figures came from.
    doc.as_object_mut().unwrap().remove("spools");
    doc
}

#[test]
fn sqlite_idempotent_incremental_and_same_figures_as_the_spool() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, n) = history(t.path(), 300);
    let db_path = t.path().join("tlsrpt.db");
    let db = format!("sqlite://{}", db_path.display());
    let out = ok_load(&db, &[&a.dir, &b.dir]);
    assert!(out.contains(&format!("loaded {n} new reports")), "{out}");
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_report"),
        n as i64
    );
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM tlsrpt_report_meta"),
        n as i64
    );
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_policy"),
        375
    );
    // parsedmarc leaves these empty; we fill them from the RFC fields.
    assert_eq!(
        sqlite_count(
            &db_path,
            "SELECT count(*) FROM smtp_tls_policy WHERE mx_host_patterns = '[\"mx1.example.net\"]'"
        ),
        375
    );
    assert_eq!(
        sqlite_count(&db_path, "SELECT max(version) FROM tlsrpt_schema_version"),
        5
    );
    // Nothing new: nothing read.
    let out = ok_load(&db, &[&a.dir, &b.dir]);
    assert!(
        out.contains("loaded 0 new reports (0 already stored) from 0 day files"),
        "{out}"
    );
    // The view counts sts+tlsa once per report and domain.
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM tlsrpt_domain_report"),
        n as i64
    );

    // A torn last line is left for the next run, then loaded once.
    let rec = format!(
        "{}\n",
        record(
            "Late Org",
            "late-1",
            T0,
            T0 + 30 * DAY,
            true,
            vec![policy("sts", "d1.example", 5, 0, vec![])]
        )
    );
    let (head, tail) = rec.split_at(rec.len() / 2);
    a.append_raw(&day_name(T0 + 30 * DAY), head.as_bytes());
    let out = ok_load(&db, &[&a.dir, &b.dir]);
    assert!(out.contains("loaded 0 new reports"), "{out}");
    a.append_raw(&day_name(T0 + 30 * DAY), tail.as_bytes());
    let out = ok_load(&db, &[&a.dir, &b.dir]);
    assert!(out.contains("loaded 1 new reports"), "{out}");
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_report"),
        n as i64 + 1
    );

    // summary --db gives the figures summary gives over the spools.
    let from_spool = summary_domains(&[
        "--spool",
        a.dir.to_str().unwrap(),
        "--spool",
        b.dir.to_str().unwrap(),
    ]);
    let from_db = summary_domains(&["--db", &db]);
    assert_eq!(from_spool["domains"], from_db["domains"]);
    assert_eq!(from_spool["domains"].as_array().unwrap().len(), 9);
}

#[test]
fn sqlite_hostile_strings_load_as_data() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    let long = "x".repeat(10_000);
    let mut d = detail(
        "certificate-expired",
        3,
        "not an ip'); DROP TABLE smtp_tls_report;--",
        "mx\\1\"'.example",
    );
    d["receiving-ip"] = Value::String("2001:db8::25".into());
    d["failure-reason-code"] = Value::String(format!("nul\u{0}byte {long}"));
    let rec = record(
        "O'Reilly \"Mail\" \\ Org\u{0}",
        "id'; --",
        T0,
        T0 + DAY,
        true,
        vec![policy("sts", "hostile.example", 1, 3, vec![d])],
    );
    s.put(&rec);
    let db_path = t.path().join("h.db");
    let db = format!("sqlite://{}", db_path.display());
    ok_load(&db, &[&s.dir]);
    let c = rusqlite::Connection::open(&db_path).unwrap();
    let (org, sip, rip, code): (String, Option<String>, Option<String>, String) = c
        .query_row("SELECT r.organization_name, f.sending_mta_ip, f.receiving_ip, f.failure_reason_code FROM smtp_tls_report r JOIN smtp_tls_policy p ON p.report_id = r.id JOIN smtp_tls_failure_detail f ON f.policy_id = p.id", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap();
    assert_eq!(org, "O'Reilly \"Mail\" \\ Org\u{FFFD}");
    assert_eq!(sip, None, "non-IP text in an IP column");
    assert_eq!(rip.as_deref(), Some("2001:db8::25"));
    assert!(code.starts_with("nul\u{FFFD}byte") && code.len() > 10_000);
    let rec_json: String = c
        .query_row("SELECT record FROM tlsrpt_report_meta", [], |r| r.get(0))
        .unwrap();
    assert!(
        rec_json.contains("DROP TABLE"),
        "the original stays in the record JSON"
    );
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_report"),
        1
    );
}

#[test]
fn sqlite_migrates_from_the_first_schema_version() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, n) = history(t.path(), 30);
    let db_path = t.path().join("m.db");
    let db = format!("sqlite://{}", db_path.display());
    let o = Command::new(BIN)
        .args(["load", "--db", &db, "--spool"])
        .arg(&a.dir)
        .env("TLSRPT_SCHEMA_TARGET", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        sqlite_count(&db_path, "SELECT max(version) FROM tlsrpt_schema_version"),
        1
    );
    assert_eq!(
        sqlite_count(
            &db_path,
            "SELECT count(*) FROM sqlite_master WHERE name = 'tlsrpt_domain_report'"
        ),
        0
    );
    let before = sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_report");
    ok_load(&db, &[&a.dir, &b.dir]);
    assert_eq!(
        sqlite_count(&db_path, "SELECT max(version) FROM tlsrpt_schema_version"),
        5
    );
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM tlsrpt_domain_report"),
        n as i64
    );
    assert!(before > 0 && before < n as i64);
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_report"),
        n as i64
    );
    // The reports stored before version 4 got their figures from their records: the
    // summary from the database is the spools' summary.
    let from_spool = summary_domains(&[
        "--spool",
        a.dir.to_str().unwrap(),
        "--spool",
        b.dir.to_str().unwrap(),
    ]);
    let from_db = summary_domains(&["--db", &db]);
    for k in ["window", "domains", "unauthenticated"] {
        assert_eq!(from_spool[k], from_db[k], "{k}");
    }
}

#[test]
fn sqlite_sigkill_mid_load_and_concurrent_loads() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, n) = history(t.path(), 3000);
    for (round, delay_ms) in [5u64, 20, 60, 120].into_iter().enumerate() {
        let db_path = t.path().join(format!("k{round}.db"));
        let db = format!("sqlite://{}", db_path.display());
        let mut child = Command::new(BIN)
            .args(["load", "--db", &db, "--spool"])
            .arg(&a.dir)
            .arg("--spool")
            .arg(&b.dir)
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(child.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        ok_load(&db, &[&a.dir, &b.dir]);
        assert_eq!(
            sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_report"),
            n as i64,
            "after a kill at {delay_ms} ms"
        );
        assert_eq!(
            sqlite_count(&db_path, "SELECT count(*) FROM tlsrpt_report_meta"),
            n as i64
        );
        assert_eq!(
            sqlite_count(
                &db_path,
                "SELECT count(*) FROM smtp_tls_policy p WHERE NOT EXISTS (SELECT 1 FROM smtp_tls_report r WHERE r.id = p.report_id)"
            ),
            0
        );
    }
    // Two loads at once.
    let db_path = t.path().join("c.db");
    let db = format!("sqlite://{}", db_path.display());
    let spawn = || {
        Command::new(BIN)
            .args(["load", "--db", &db, "--spool"])
            .arg(&a.dir)
            .arg("--spool")
            .arg(&b.dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c1, c2) = (spawn(), spawn());
    for c in [c1, c2] {
        let o = c.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    assert_eq!(
        sqlite_count(&db_path, "SELECT count(*) FROM smtp_tls_report"),
        n as i64
    );
}

#[test]
fn database_unreachable_is_a_temporary_failure() {
    let t = tempfile::tempdir().unwrap();
    let (a, _, _) = history(t.path(), 3);
    // A missing directory is no temporary trouble: retrying will not create it. The
    // message names it and the fix.
    let o = load(
        &format!("sqlite://{}/no/such/dir/x.db", t.path().display()),
        &[&a.dir],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("/no/such/dir does not exist: create it"),
        "{}",
        stderr(&o)
    );
    let o = load(
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
        &[&a.dir],
    );
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    let o = load("mysql://x", &[&a.dir]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

// ---- PostgreSQL -------------------------------------------------------------------

#[test]
#[ignore = "needs PostgreSQL server"]
fn postgresql_end_to_end() {
    let pg = Cluster::start();
    let t = tempfile::tempdir().unwrap();
    let (a, b, n) = history(t.path(), 300);
    let db = pg.url();
    let out = ok_load(&db, &[&a.dir, &b.dir]);
    assert!(out.contains(&format!("loaded {n} new reports")), "{out}");
    assert_eq!(pg.count("SELECT count(*) FROM smtp_tls_report"), n as i64);
    // parsedmarc's column types, exactly.
    let types: Vec<(String, String)> = pg
        .query("SELECT column_name::text, data_type::text FROM information_schema.columns WHERE table_name = 'smtp_tls_failure_detail' ORDER BY ordinal_position")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(types[4], ("sending_mta_ip".into(), "inet".into()));
    assert_eq!(
        pg.count(
            "SELECT count(*) FROM smtp_tls_policy WHERE mx_host_patterns = ARRAY['mx1.example.net']"
        ),
        375
    );
    // Idempotent, incremental.
    let out = ok_load(&db, &[&a.dir, &b.dir]);
    assert!(out.contains("loaded 0 new reports"), "{out}");
    assert_eq!(
        pg.count("SELECT count(*) FROM tlsrpt_domain_report"),
        n as i64
    );

    // Hostile strings: parameters, NUL replaced, non-IP text → NULL in INET.
    let h = Spool::new(t.path(), "hostile");
    let mut d = detail(
        "certificate-expired",
        3,
        "not an ip'); DROP TABLE smtp_tls_report;--",
        "mx\\1\"'.example",
    );
    d["failure-reason-code"] = Value::String(format!("nul\u{0}byte {}", "y".repeat(10_000)));
    h.put(&record(
        "O'Reilly \\ Org\u{0}",
        "hostile'; --",
        T0,
        T0 + DAY,
        true,
        vec![policy("sts", "hostile.example", 1, 3, vec![d])],
    ));
    ok_load(&db, &[&h.dir]);
    let rows = pg.query("SELECT r.organization_name, f.sending_mta_ip IS NULL, m.record->'report'->'policies'->0->'failure-details'->0->>'sending-mta-ip' FROM smtp_tls_report r JOIN smtp_tls_policy p ON p.report_id = r.id JOIN smtp_tls_failure_detail f ON f.policy_id = p.id JOIN tlsrpt_report_meta m ON m.report_pk = r.id WHERE r.report_id = 'hostile''; --'");
    assert_eq!(rows[0].get::<_, String>(0), "O'Reilly \\ Org\u{FFFD}");
    assert!(rows[0].get::<_, bool>(1));
    assert_eq!(
        rows[0].get::<_, String>(2),
        "not an ip'); DROP TABLE smtp_tls_report;--"
    );

    // summary --db = summary over the spools (the hostile report aside: its NUL is
    // U+FFFD in the database).
    let from_spool = summary_domains(&[
        "--spool",
        a.dir.to_str().unwrap(),
        "--spool",
        b.dir.to_str().unwrap(),
    ]);
    let mut from_db = summary_domains(&["--db", &db]);
    from_db["domains"]
        .as_array_mut()
        .unwrap()
        .retain(|d| d["policy-domain"] != "hostile.example");
    assert_eq!(from_spool["domains"], from_db["domains"]);
    assert_eq!(from_spool["domains"].as_array().unwrap().len(), 9);

    // parsedmarc's Grafana "SMTP TLS" panels (its
    // dashboards/grafana/Grafana-DMARC_Reports-PostgreSQL.json, panels 21-24, Apache-2.0),
    // with Grafana's macros expanded as its PostgreSQL data source does for a 1d interval
    // and the window below, run unchanged on our tables and return the sums of the
    // records (every policy summed, as those panels do).
    let (from, to) = ("'2026-02-01T00:00:00Z'", "'2026-04-01T00:00:00Z'");
    let expand = |sql: &str| {
        sql.replace(
            "$__timeGroup(tr.begin_date, $__interval)",
            "floor(extract(epoch from tr.begin_date)/86400)*86400",
        )
        .replace(
            "$__timeFilter(tr.begin_date)",
            &format!("tr.begin_date BETWEEN {from} AND {to}"),
        )
    };
    let panel_21a = "SELECT\n  $__timeGroup(tr.begin_date, $__interval) AS time,\n  'Successful' AS metric,\n  SUM(p.successful_session_count) AS value\nFROM smtp_tls_report tr\nJOIN smtp_tls_policy p ON p.report_id = tr.id\nWHERE $__timeFilter(tr.begin_date)\nGROUP BY time\nORDER BY time";
    let panel_21b = "SELECT\n  $__timeGroup(tr.begin_date, $__interval) AS time,\n  'Failed' AS metric,\n  SUM(p.failed_session_count) AS value\nFROM smtp_tls_report tr\nJOIN smtp_tls_policy p ON p.report_id = tr.id\nWHERE $__timeFilter(tr.begin_date)\nGROUP BY time\nORDER BY time";
    let panel_22 = "SELECT\n  'Successful' AS metric,\n  SUM(p.successful_session_count) AS \"Sessions\"\nFROM smtp_tls_report tr\nJOIN smtp_tls_policy p ON p.report_id = tr.id\nWHERE $__timeFilter(tr.begin_date)\nUNION ALL\nSELECT\n  'Failed' AS metric,\n  SUM(p.failed_session_count) AS \"Sessions\"\nFROM smtp_tls_report tr\nJOIN smtp_tls_policy p ON p.report_id = tr.id\nWHERE $__timeFilter(tr.begin_date)";
    let panel_23 = "SELECT\n  tr.organization_name AS \"Organization\",\n  tr.begin_date AS \"Begin\",\n  tr.end_date AS \"End\",\n  COALESCE(p.policy_domain, '') AS \"Policy Domain\",\n  COALESCE(p.policy_type, '') AS \"Policy Type\",\n  COALESCE(array_to_string(p.policy_strings, ', '), '') AS \"Policy Strings\",\n  COALESCE(p.successful_session_count, 0) AS \"Successful Sessions\",\n  COALESCE(p.failed_session_count, 0) AS \"Failed Sessions\"\nFROM smtp_tls_report tr\nJOIN smtp_tls_policy p ON p.report_id = tr.id\nWHERE $__timeFilter(tr.begin_date)\nORDER BY p.failed_session_count DESC NULLS LAST";
    let panel_24 = "SELECT\n  tr.organization_name AS \"Organization\",\n  COALESCE(p.policy_domain, '') AS \"Policy Domain\",\n  COALESCE(p.policy_type, '') AS \"Policy Type\",\n  COALESCE(fd.result_type, '') AS \"Result Type\",\n  COALESCE(fd.sending_mta_ip::TEXT, '') AS \"Sending MTA IP\",\n  COALESCE(fd.receiving_ip::TEXT, '') AS \"Receiving IP\",\n  COALESCE(fd.receiving_mx_hostname, '') AS \"Receiving MX\",\n  COALESCE(fd.failure_reason_code, '') AS \"Failure Reason\",\n  COALESCE(fd.additional_info_uri, '') AS \"Additional Info\",\n  COALESCE(fd.failed_session_count, 0) AS \"Failed Sessions\"\nFROM smtp_tls_failure_detail fd\nJOIN smtp_tls_policy p ON p.id = fd.policy_id\nJOIN smtp_tls_report tr ON tr.id = p.report_id\nWHERE $__timeFilter(tr.begin_date)\nORDER BY fd.failed_session_count DESC NULLS LAST";
    // The expected sums, from the spool files themselves (each report once).
    let mut seen = std::collections::HashSet::new();
    let (mut ok, mut failed, mut policies, mut details, mut detail_sum) =
        (0i64, 0i64, 0usize, 0usize, 0i64);
    let mut per_day: std::collections::BTreeMap<i64, (i64, i64)> = Default::default();
    for dir in [&a.dir, &b.dir, &h.dir] {
        for f in std::fs::read_dir(dir).unwrap() {
            for line in std::fs::read_to_string(f.unwrap().path()).unwrap().lines() {
                let r: Value = serde_json::from_str(line).unwrap();
                if !seen.insert(r["dedup-key"].as_str().unwrap().to_owned()) {
                    continue;
                }
                let start = tlsrpt_pipe::datetime::parse(
                    r["report"]["date-range"]["start-datetime"]
                        .as_str()
                        .unwrap(),
                )
                .unwrap()
                .0
                .0;
                for p in r["report"]["policies"].as_array().unwrap() {
                    let (s, fl) = (
                        p["summary"]["total-successful-session-count"]
                            .as_i64()
                            .unwrap(),
                        p["summary"]["total-failure-session-count"]
                            .as_i64()
                            .unwrap(),
                    );
                    ok += s;
                    failed += fl;
                    policies += 1;
                    let e = per_day.entry(start / DAY * DAY).or_default();
                    e.0 += s;
                    e.1 += fl;
                    for d in p["failure-details"].as_array().into_iter().flatten() {
                        details += 1;
                        detail_sum += d["failed-session-count"].as_i64().unwrap();
                    }
                }
            }
        }
    }
    let series = |sql: &str| -> Vec<(i64, i64)> {
        pg.query(&format!(
            "SELECT time::text, value FROM ({}) AS panel",
            expand(sql)
        ))
        .iter()
        .map(|r| {
            (
                r.get::<_, String>(0).parse::<f64>().unwrap() as i64,
                r.get::<_, i64>(1),
            )
        })
        .collect()
    };
    let want_ok: Vec<(i64, i64)> = per_day.iter().map(|(d, v)| (*d, v.0)).collect();
    let want_failed: Vec<(i64, i64)> = per_day.iter().map(|(d, v)| (*d, v.1)).collect();
    assert_eq!(series(panel_21a), want_ok, "panel 21 Successful");
    assert_eq!(series(panel_21b), want_failed, "panel 21 Failed");
    let pie: Vec<(String, i64)> = pg
        .query(&expand(panel_22))
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        pie,
        vec![("Successful".into(), ok), ("Failed".into(), failed)],
        "panel 22"
    );
    let rows = pg.query(&expand(panel_23));
    assert_eq!(rows.len(), policies, "panel 23 rows");
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(7) as i64).sum::<i64>(),
        failed,
        "panel 23 failed"
    );
    let rows = pg.query(&expand(panel_24));
    assert_eq!(rows.len(), details, "panel 24 rows");
    assert_eq!(
        rows.iter().map(|r| r.get::<_, i32>(9) as i64).sum::<i64>(),
        detail_sum,
        "panel 24 failed"
    );

    // Down, then up: a temporary failure, then the next run catches up.
    let late = Spool::new(t.path(), "late");
    late.put(&record(
        "Late Org",
        "late-pg",
        T0,
        T0 + DAY,
        true,
        vec![policy("sts", "d2.example", 9, 0, vec![])],
    ));
    pg.pg_ctl_stop();
    let o = load(&db, &[&late.dir]);
    assert_eq!(o.status.code(), Some(75), "{}", stderr(&o));
    pg.pg_ctl_start();
    let out = ok_load(&db, &[&late.dir]);
    assert!(out.contains("loaded 1 new reports"), "{out}");

    // Two loads at once, and a kill mid-load, on a fresh database.
    for dbname in ["concurrent", "killed"] {
        pg.query(&format!("CREATE DATABASE {dbname}"));
    }
    let (a2, b2, n2) = history(&t.path().join("big"), 2000);
    let url = |name: &str| {
        format!(
            "host={} port={} user={} dbname={name}",
            pg.dir.path().display(),
            pg.port,
            pg.user
        )
    };
    let spawn = |u: String| {
        Command::new(BIN)
            .args(["load", "--db", &u, "--spool"])
            .arg(&a2.dir)
            .arg("--spool")
            .arg(&b2.dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (c1, c2) = (spawn(url("concurrent")), spawn(url("concurrent")));
    for c in [c1, c2] {
        let o = c.wait_with_output().unwrap();
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
    let count = |name: &str| {
        let mut c = postgres::Client::connect(&url(name), postgres::NoTls).unwrap();
        c.query_one("SELECT count(*) FROM smtp_tls_report", &[])
            .unwrap()
            .get::<_, i64>(0)
    };
    assert_eq!(count("concurrent"), n2 as i64);
    let mut child = spawn(url("killed"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = child.wait();
    ok_load(&url("killed"), &[&a2.dir, &b2.dir]);
    assert_eq!(count("killed"), n2 as i64);

    // A database of the first schema version is upgraded in place.
    pg.query("CREATE DATABASE migrated");
    let o = Command::new(BIN)
        .args(["load", "--db", &url("migrated"), "--spool"])
        .arg(&a.dir)
        .env("TLSRPT_SCHEMA_TARGET", "1")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    ok_load(&url("migrated"), &[&a.dir, &b.dir]);
    let mut c = postgres::Client::connect(&url("migrated"), postgres::NoTls).unwrap();
    assert_eq!(
        c.query_one("SELECT max(version) FROM tlsrpt_schema_version", &[])
            .unwrap()
            .get::<_, i32>(0),
        5
    );
    // Version 5: the reports stored under version 1 got their figures.
    assert_eq!(
        c.query_one(
            "SELECT count(*) FROM tlsrpt_figure WHERE figure = 'domain'",
            &[]
        )
        .unwrap()
        .get::<_, i64>(0),
        c.query_one("SELECT count(*) FROM tlsrpt_domain_report", &[])
            .unwrap()
            .get::<_, i64>(0)
    );
    // Version 3: the record and warnings columns compress with lz4 (Debian's
    // PostgreSQL is built with it); rows stored before keep what they had.
    let lz4: i64 = c
        .query_one(
            "SELECT count(*) FROM pg_attribute WHERE attrelid = 'tlsrpt_report_meta'::regclass
             AND attname IN ('record', 'warnings') AND attcompression::text = 'l'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(lz4, 2);
    assert_eq!(
        c.query_one("SELECT count(*) FROM tlsrpt_domain_report", &[])
            .unwrap()
            .get::<_, i64>(0),
        n as i64
    );
}

/// Parallel loads of one report set from two spools, in opposite orders, so that the
/// two file transactions wait for each other's rows (a deadlock PostgreSQL breaks by
/// aborting one): the loser is rerun from its checkpoint, and every report is stored
/// once with its policies. Repeated in fresh databases until the race was seen at
/// least once; the counts are checked every time.
#[test]
#[ignore = "needs PostgreSQL server"]
fn postgresql_parallel_workers_race_for_one_report_and_store_it_once() {
    let pg = Cluster::start();
    let t = tempfile::tempdir().unwrap();
    let a = Spool::new(t.path(), "mx1");
    let b = Spool::new(t.path(), "mx2");
    let n = 3000;
    let recs: Vec<Value> = (0..n)
        .map(|i| {
            record(
                "Google Inc.",
                &format!("race-{i}"),
                T0,
                T0 + DAY + 3600,
                true,
                vec![policy("sts", "race.example", 10, 1, vec![])],
            )
        })
        .collect();
    for r in &recs {
        a.put(r);
    }
    for r in recs.iter().rev() {
        b.put(r);
    }
    let url = |db: &str| {
        format!(
            "host={} port={} user={} dbname={db}",
            pg.dir.path().display(),
            pg.port,
            pg.user
        )
    };
    let mut raced = 0;
    for round in 0..5 {
        let db = format!("race{round}");
        pg.query(&format!("CREATE DATABASE {db}"));
        let o = Command::new(BIN)
            .args(["load", "-v", "--jobs", "2", "--db", &url(&db), "--spool"])
            .arg(&a.dir)
            .arg("--spool")
            .arg(&b.dir)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains(&format!("loaded {n} new reports ({n} already stored)")),
            "{out}"
        );
        let mut c = postgres::Client::connect(&url(&db), postgres::NoTls).unwrap();
        for (sql, want) in [
            ("SELECT count(*) FROM smtp_tls_report", n),
            ("SELECT count(DISTINCT report_id) FROM smtp_tls_report", n),
            ("SELECT count(*) FROM tlsrpt_report_meta", n),
            ("SELECT count(*) FROM smtp_tls_policy", n),
            ("SELECT count(*) FROM tlsrpt_checkpoint", 2),
        ] {
            let got: i64 = c.query_one(sql, &[]).unwrap().get(0);
            assert_eq!(got, want as i64, "{sql} (round {round}): {out}");
        }
        let reruns: u64 = out
            .split("; ")
            .find_map(|p| p.strip_suffix(" transactions rerun\n"))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no rerun count: {out}"));
        if reruns > 0 {
            raced += 1;
            break;
        }
    }
    assert!(raced > 0, "the two workers never raced in 5 rounds");

    // A role allowed one connection: the workers beyond it are not had, the load is.
    pg.query("CREATE ROLE loader LOGIN CONNECTION LIMIT 1");
    pg.query("CREATE DATABASE limited OWNER loader");
    let limited = format!(
        "host={} port={} user=loader dbname=limited",
        pg.dir.path().display(),
        pg.port
    );
    let o = Command::new(BIN)
        .args(["load", "-v", "--jobs", "4", "--db", &limited, "--spool"])
        .arg(&a.dir)
        .arg("--spool")
        .arg(&b.dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("another database connection failed, loading with 1"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains(&format!("loaded {n} new reports ({n} already stored)")),
        "{}",
        stdout(&o)
    );
}

/// Makes a CA and a certificate for `localhost` signed by it, and a second CA that
/// signed nothing, with the openssl command: (ca.pem, other-ca.pem, server.pem,
/// server.key) in `dir`.
fn certificates(dir: &Path) {
    let ossl = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
    };
    assert!(
        ossl(&["version"]).is_ok(),
        "no openssl command (Debian package openssl); this test runs in tests/run.sh's \
         disposable root, which has it"
    );
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    for (key, pem, cn) in [
        ("ca.key", "ca.pem", "tlsrpt test CA"),
        ("other.key", "other-ca.pem", "another CA"),
    ] {
        let subj = format!("/CN={cn}");
        let mut a = vec!["req", "-x509"];
        a.extend(ec);
        a.extend([
            "-keyout",
            key,
            "-out",
            pem,
            "-days",
            "2",
            "-subj",
            &subj,
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        assert_eq!(ossl(&a).ok(), Some(true), "openssl req -x509");
    }
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    assert_eq!(ossl(&a).ok(), Some(true), "openssl req");
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
    )
    .unwrap();
    assert_eq!(
        ossl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ])
        .ok(),
        Some(true),
        "openssl x509 -req"
    );
}

/// A cluster serving TLS on 127.0.0.1 with the certificates of `certificates` (in the
/// returned directory), `hba` put before the default pg_hba.conf lines and `opts`
/// added.
fn tls_cluster(hba: &str, opts: &str) -> (Cluster, tempfile::TempDir) {
    let certs = tempfile::tempdir().unwrap();
    certificates(certs.path());
    let certdir = certs.path();
    let root = nix::unistd::geteuid().is_root();
    let pg = Cluster::start_with(|data| {
        for f in ["server.pem", "server.key"] {
            std::fs::copy(certdir.join(f), data.join(f)).unwrap();
        }
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            data.join("server.key"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        if root {
            // The server runs as nobody and refuses a key it does not own.
            let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
            for f in ["server.pem", "server.key"] {
                nix::unistd::chown(&data.join(f), Some(nobody.uid), None).unwrap();
            }
        }
        let mut conf = std::fs::read_to_string(data.join("pg_hba.conf")).unwrap();
        conf.insert_str(0, hba);
        std::fs::write(data.join("pg_hba.conf"), conf).unwrap();
        format!(
            "-c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file=server.pem \
             -c ssl_key_file=server.key {opts}"
        )
    });
    (pg, certs)
}

/// `sslmode` as libpq means it, against a real server that accepts TCP connections only
/// over TLS (pg_hba `hostssl` trust, `hostnossl` reject) with a certificate for
/// `localhost` from a CA of the test's own.
#[test]
#[ignore = "needs PostgreSQL server"]
fn postgresql_over_tls_as_sslmode_says() {
    let (pg, certs) = tls_cluster(
        "hostssl all all 127.0.0.1/32 trust\nhostnossl all all 127.0.0.1/32 reject\n",
        "",
    );
    let t = tempfile::tempdir().unwrap();
    let (a, _b, _) = history(t.path(), 12);
    let ca = certs.path().join("ca.pem");
    let other = certs.path().join("other-ca.pem");
    let home = tempfile::tempdir().unwrap(); // no ~/.postgresql/root.crt of the machine's
    let try_load = |db: &str| {
        let o = Command::new(BIN)
            .args(["load", "-v", "--db", db, "--spool"])
            .arg(&a.dir)
            .env("HOME", home.path())
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .env_remove("TLSRPT_DB")
            .output()
            .unwrap();
        (o.status.code().unwrap(), stderr(&o))
    };
    let kv = |host: &str, rest: &str| {
        format!(
            "host={host} port={} user={} dbname=postgres {rest}",
            pg.port, pg.user
        )
    };
    let ca_s = ca.display().to_string();
    let other_s = other.display().to_string();
    // Plain text is refused by the server: proof that the others went over TLS.
    let (code, err) = try_load(&kv("localhost", "sslmode=disable"));
    assert_eq!(code, 75, "{err}");
    assert!(
        err.contains("no encryption") || err.contains("pg_hba"),
        "{err}"
    );
    for ok in [
        kv("localhost", "sslmode=require"),
        kv("localhost", ""), // libpq's default, prefer
        kv(
            "localhost",
            &format!("sslmode=verify-full sslrootcert={ca_s}"),
        ),
        kv(
            "127.0.0.1",
            &format!("sslmode=verify-ca sslrootcert='{ca_s}'"),
        ),
        format!(
            "postgresql://{}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
            pg.user,
            pg.port,
            ca_s.replace('/', "%2F")
        ),
    ] {
        let (code, err) = try_load(&ok);
        assert_eq!(code, 0, "{ok}: {err}");
    }
    // The certificate names localhost, not 127.0.0.1; another CA signed nothing here.
    for (bad, why) in [
        (
            kv(
                "127.0.0.1",
                &format!("sslmode=verify-full sslrootcert={ca_s}"),
            ),
            "not valid for name",
        ),
        (
            kv(
                "localhost",
                &format!("sslmode=verify-full sslrootcert={other_s}"),
            ),
            "UnknownIssuer",
        ),
        (
            kv(
                "localhost",
                &format!("sslmode=require sslrootcert={other_s}"),
            ),
            "UnknownIssuer",
        ),
    ] {
        let (code, err) = try_load(&bad);
        assert_eq!(code, 75, "{bad}: {err}");
        assert!(
            err.to_lowercase().contains(&why.to_lowercase()),
            "{bad}: {err}"
        );
    }
    let n = pg.count("SELECT count(*) FROM smtp_tls_report");
    assert!(n > 0, "nothing loaded over TLS");
}

/// `prefer` (libpq's default) falls back to a connection without TLS when the TLS
/// handshake fails, here against a server that offers only TLS 1.1, which rustls does
/// not speak; `require` then fails (exit 75).
#[test]
#[ignore = "needs PostgreSQL server"]
fn postgresql_prefer_falls_back_when_tls_fails() {
    let (pg, _certs) = tls_cluster(
        "host all all 127.0.0.1/32 trust\n",
        "-c ssl_min_protocol_version=TLSv1 -c ssl_max_protocol_version=TLSv1.1",
    );
    let t = tempfile::tempdir().unwrap();
    let (a, _b, _) = history(t.path(), 5);
    let home = tempfile::tempdir().unwrap();
    let try_load = |mode: &str| {
        let db = format!(
            "host=127.0.0.1 port={} user={} dbname=postgres {mode}",
            pg.port, pg.user
        );
        let o = Command::new(BIN)
            .args(["load", "--db", &db, "--spool"])
            .arg(&a.dir)
            .env("HOME", home.path())
            .env_remove("PGSSLMODE")
            .env_remove("PGSSLROOTCERT")
            .output()
            .unwrap();
        (o.status.code().unwrap(), stderr(&o))
    };
    let (code, err) = try_load("sslmode=require");
    assert_eq!(code, 75, "{err}");
    assert!(err.contains("TLS") || err.contains("tls"), "{err}");
    let (code, err) = try_load("");
    assert_eq!(code, 0, "prefer: {err}");
    assert!(pg.count("SELECT count(*) FROM smtp_tls_report") > 0);
}
