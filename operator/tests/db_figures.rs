//! The database gives the spools' figures (issue: "Years of a provider's reports in one
//! PostgreSQL"): `summary`, `check` and `metrics` with `--db` against the same commands
//! on the spools, over a generated history with totals known by construction —
//! copies of reports in two MX spools, Microsoft's sts+tlsa shape, unauthenticated
//! reports, reports arriving days late, a policy that changed — on a real SQLite file
//! (host) and a real PostgreSQL server (the disposable root). Then `prune --db`: exactly
//! the old reports go, the newer figures and the counters stay, a load after it reloads
//! nothing. And the memory of `summary --db` follows the groups, not the reports.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::pg::Cluster;
use common::*;
use serde_json::{Value, json};

fn today() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now.div_euclid(DAY) * DAY
}

/// The authserv-id some unauthenticated reports carry a pass from.
const UNTRUSTED_ID: &str = "mx.untrusted.test";

/// What the generator knows it wrote: per domain, authenticated unique reports' sessions
/// by the counting rule (sts+tlsa counted once, two sts or a tlsa per MX added up) whose
/// report ended in (since, until].
#[derive(Default)]
struct Known {
    /// (domain, report end, successful, failed, authenticated, counts when
    /// UNTRUSTED_ID is trusted)
    reports: Vec<(String, i64, u64, u64, bool, bool)>,
}

impl Known {
    fn sessions(
        &self,
        since: i64,
        until: i64,
        trusting: bool,
    ) -> BTreeMap<String, (u64, u64, u64)> {
        let mut m: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        for (d, end, s, f, auth, needs) in &self.reports {
            if (*auth || (trusting && *needs)) && since < *end && *end <= until {
                let e = m.entry(d.clone()).or_default();
                e.0 += 1;
                e.1 += s;
                e.2 += f;
            }
        }
        m
    }
}

/// Two MX spools: 40 days ending yesterday, 6 domains, 3 organisations.
fn history(t: &Path, n: usize) -> (Spool, Spool, Known) {
    let a = Spool::new(t, "mx1");
    let b = Spool::new(t, "mx2");
    let mut rng = Rng(23);
    let mut known = Known::default();
    let first = today() - 41 * DAY;
    let results = [
        ("certificate-expired", "expired"),
        ("starttls-not-supported", "no-starttls"),
        ("certificate-host-mismatch", "mismatch"),
        ("validation-failure", "chain"),
    ];
    for i in 0..n {
        let start = first + rng.below(40) as i64 * DAY;
        let d = format!("d{}.example", rng.below(6));
        let org = ["Google Inc.", "Microsoft Corporation", "Mail.ru"][rng.below(3) as usize];
        let ok = rng.below(500);
        let mut details = Vec::new();
        let mut failed = 0;
        for _ in 0..rng.below(3) {
            let (rt, code) = results[rng.below(4) as usize];
            let n = 1 + rng.below(20);
            failed += n;
            let mx = format!("mx{}.{d}", rng.below(2));
            let ip = format!("198.51.100.{}", 1 + rng.below(3));
            let mut det = detail(rt, n, &ip, &mx);
            det["failure-reason-code"] = json!(code);
            if rng.below(4) == 0 {
                det["additional-information"] = json!(format!("https://{org}/why/{code}"));
            }
            details.push(det);
        }
        // Sometimes failed sessions with no detail row.
        let failed = failed + if rng.below(5) == 0 { rng.below(4) } else { 0 };
        // The shapes real senders write; (successful, failed) by the counting rule.
        let (mut policies, counted) = match (org, rng.below(4)) {
            ("Microsoft Corporation", _) => (sts_and_tlsa(&d, ok, failed, details), (ok, failed)),
            ("Google Inc.", 0) => (two_sts(&d, ok, failed, details), (ok, failed)),
            ("Mail.ru", 0) => {
                let oks = [ok / 2, ok - ok / 2, 7];
                (tlsa_per_mx(&d, &oks, failed, details), (ok + 7, failed))
            }
            ("Mail.ru", 1) => {
                // sts over all sessions, and a tlsa per MX covering fewer (or more).
                let extra = rng.below(3) * 5;
                let mut v = vec![policy("sts", &d, ok, failed, details.clone())];
                v.extend(tlsa_per_mx(
                    &d,
                    &[ok / 2, ok - ok / 2 + extra],
                    failed,
                    details,
                ));
                let c = if extra > 0 {
                    (ok + extra, failed)
                } else {
                    (ok, failed)
                };
                (v, c)
            }
            _ => (vec![policy("sts", &d, ok, failed, details)], (ok, failed)),
        };
        if start > first + 25 * DAY {
            // The policy changed on day 25: the reports say which one senders applied.
            for p in policies
                .iter_mut()
                .filter(|p| p["policy"]["policy-type"] == "sts")
            {
                p["policy"]["policy-string"] = json!([
                    "version: STSv1",
                    "mode: testing",
                    "mx: mx0.example.net",
                    "max_age: 604800"
                ]);
            }
        }
        let pass = rng.below(7) != 0;
        // Half of the others carry a pass from an authserv-id not trusted at delivery.
        let needs = !pass && rng.below(2) == 0;
        // Some arrive days late; a fifth reach both MX hosts (one report, two copies).
        let received = start + DAY + 3600 + if rng.below(10) == 0 { 4 * DAY } else { 0 };
        let mut rec = record(org, &format!("r{i}"), start, received, pass, policies);
        if needs {
            rec = with_untrusted_pass(rec, UNTRUSTED_ID);
        }
        if rng.below(2) == 0 { &a } else { &b }.put(&rec);
        if rng.below(5) == 0 {
            // The sender delivered it to both MX hosts (or twice to one).
            if rng.below(2) == 0 { &a } else { &b }.put(&rec);
        }
        known
            .reports
            .push((d, start + DAY, counted.0, counted.1, pass, needs));
    }
    (a, b, known)
}

/// The first place where two JSON values differ, with both sides (short), or None.
fn first_difference(a: &Value, b: &Value, path: &str) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                let (u, v) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                if let Some(d) = first_difference(u, v, &format!("{path}.{k}")) {
                    return Some(d);
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (u, v))| first_difference(u, v, &format!("{path}[{i}]"))),
        _ if a == b => None,
        _ => {
            let short = |v: &Value| v.to_string().chars().take(300).collect::<String>();
            Some(format!("{path}: {} vs {}", short(a), short(b)))
        }
    }
}

/// Two texts are the same; else the first line that differs.
fn same_lines(a: &str, b: &str, what: &str) {
    if a != b {
        let (x, y): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
        let i = (0..x.len().max(y.len()))
            .find(|&i| x.get(i) != y.get(i))
            .unwrap_or(0);
        panic!("{what}: line {}: {:?} vs {:?}", i + 1, x.get(i), y.get(i));
    }
}

fn tlsrpt(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TLSRPT_DB")
        .env_remove("TLSRPT_SPOOL")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let o = tlsrpt(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

fn json_of(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

/// Every figure: the summary of each window from the spools and from the database are
/// the same document (but for where it came from, and the copies the spools hold,
/// which the database stored once).
fn same_summaries(spools: &[&Path], db: &str, known: &Known) {
    let sp: Vec<String> = spools.iter().map(|p| p.display().to_string()).collect();
    let t = today();
    let windows = [
        (t - 45 * DAY, t),
        (t - 20 * DAY, t - 5 * DAY),
        (t - 7 * DAY, t),
        (t - 100 * DAY, t - 60 * DAY),
    ];
    for (since, until) in windows {
        for extra in [
            vec![],
            vec!["--include-unauthenticated"],
            vec!["--domain", "D2.example."],
            vec!["--trusted-authserv-id", UNTRUSTED_ID],
        ] {
            let (since_s, until_s) = (iso(since), iso(until));
            let mut base = vec!["summary", "--format", "json", "--since", &since_s];
            base.extend(["--until", &until_s]);
            base.extend(extra.iter().copied());
            let mut from_spool = base.clone();
            for s in &sp {
                from_spool.extend(["--spool", s.as_str()]);
            }
            let mut from_db = base.clone();
            from_db.extend(["--db", db]);
            let (a, b) = (json_of(&from_spool), json_of(&from_db));
            for k in ["window", "domains", "unauthenticated"] {
                let d = first_difference(&a[k], &b[k], k);
                assert!(
                    d.is_none(),
                    "spool vs {from_db:?}: {}",
                    d.unwrap_or_default()
                );
            }
            if extra.is_empty() || extra[0] == "--trusted-authserv-id" {
                let want = known.sessions(since, until, !extra.is_empty());
                let got: BTreeMap<String, (u64, u64, u64)> = b["domains"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| {
                        (
                            d["policy-domain"].as_str().unwrap().to_owned(),
                            (
                                d["reports"].as_u64().unwrap(),
                                d["successful-sessions"].as_u64().unwrap(),
                                d["failed-sessions"].as_u64().unwrap(),
                            ),
                        )
                    })
                    .collect();
                assert_eq!(
                    got, want,
                    "sessions known by construction, {since_s}..{until_s}"
                );
            }
        }
    }
}

/// `check` judges the same from both; `metrics` writes the same textfile.
fn same_check_and_metrics(t: &Path, spools: &[&Path], db: &str) {
    let sp: Vec<String> = spools.iter().map(|p| p.display().to_string()).collect();
    for args in [
        vec!["check", "--since", "7d", "-w", "1", "-c", "3"],
        vec!["check", "--since", "30d", "--max-silence", "3d"],
        vec![
            "check",
            "--since",
            "3d",
            "--domain",
            "d1.example",
            "--include-unauthenticated",
        ],
        vec![
            "check",
            "--since",
            "10d",
            "--trusted-authserv-id",
            UNTRUSTED_ID,
        ],
    ] {
        let mut a = args.clone();
        for s in &sp {
            a.extend(["--spool", s.as_str()]);
        }
        let mut b = args.clone();
        b.extend(["--db", db]);
        let (x, y) = (tlsrpt(&a), tlsrpt(&b));
        same_lines(&stdout(&x), &stdout(&y), &format!("{args:?}"));
        assert_eq!(x.status.code(), y.status.code(), "{args:?}");
    }
    let prom = |name: &str, db: Option<&str>, extra: &[&str]| -> String {
        let f = t.join(name);
        let f_s = f.display().to_string();
        let mut a = vec!["metrics", "--textfile", f_s.as_str()];
        a.extend(extra);
        match db {
            Some(db) => a.extend(["--db", db]),
            None => {
                for s in &sp {
                    a.extend(["--spool", s.as_str()]);
                }
            }
        }
        ok(&a);
        std::fs::read_to_string(&f).unwrap()
    };
    for (i, extra) in [
        vec![],
        vec!["--trusted-authserv-id", UNTRUSTED_ID],
        vec!["--include-unauthenticated"],
    ]
    .iter()
    .enumerate()
    {
        let (x, y) = (
            prom(&format!("spool{i}.prom"), None, extra),
            prom(&format!("db{i}.prom"), Some(db), extra),
        );
        same_lines(&x, &y, &format!("metrics {extra:?}"));
        assert!(
            x.contains(",authenticated=\"false\"}") == (i < 2),
            "the sessions of reports not counted are labelled apart: {extra:?}"
        );
    }
}

/// The counter lines of a textfile (no gauge that depends on the history's days).
fn counters(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| {
            [
                "tlsrpt_reports_total",
                "tlsrpt_sessions_total",
                "tlsrpt_domain_sessions_total",
            ]
            .iter()
            .any(|m| l.starts_with(&format!("{m}{{")))
                || l.starts_with("tlsrpt_unauthenticated_reports_total{")
                || l.starts_with("tlsrpt_last_report_timestamp_seconds{")
        })
        .map(str::to_owned)
        .collect()
}

/// `prune --db`: exactly the reports that ended before the cut go; what is newer reads
/// the same; the counters do not go down; a load after it reloads nothing.
fn prune_rows(t: &Path, spools: &[&Path], db: &str, count: &dyn Fn(&str) -> i64) {
    let cut = today() - 20 * DAY;
    let cut_s = iso(cut);
    let old_reports = count(&format!(
        "SELECT count(*) FROM tlsrpt_figure WHERE figure = 'domain' AND end_at < {cut}"
    ));
    let all_reports = count("SELECT count(*) FROM smtp_tls_report");
    assert!(old_reports > 0 && old_reports < all_reports);
    let prom = |name: &str| {
        let f = t.join(name);
        ok(&["metrics", "--textfile", f.to_str().unwrap(), "--db", db]);
        std::fs::read_to_string(&f).unwrap()
    };
    // The window after the cut (its previous window, before the cut, is pruned).
    let recent = |db: &str| {
        let mut doc = json_of(&[
            "summary",
            "--format",
            "json",
            "--since",
            &cut_s,
            "--db",
            db,
            "--include-unauthenticated",
        ]);
        for d in doc["domains"].as_array_mut().unwrap() {
            d.as_object_mut().unwrap().remove("previous");
        }
        doc
    };
    let (before_metrics, before_recent) = (prom("before.prom"), recent(db));

    let dry = ok(&["prune", "--older-than", &cut_s, "--db", db, "--dry-run"]);
    assert_eq!(
        count("SELECT count(*) FROM smtp_tls_report"),
        all_reports,
        "{dry}"
    );
    let reports_old = count(&format!(
        "SELECT count(*) FROM smtp_tls_report WHERE end_date < '{}'",
        cut_s
    ));
    assert!(
        dry.contains(&format!("would remove {reports_old} reports")),
        "{dry}"
    );

    let out = ok(&["prune", "--older-than", &cut_s, "--db", db]);
    assert!(
        out.contains(&format!("removed {reports_old} reports")),
        "{out}"
    );
    assert_eq!(
        count("SELECT count(*) FROM smtp_tls_report"),
        all_reports - reports_old
    );
    assert_eq!(
        count(&format!(
            "SELECT count(*) FROM tlsrpt_figure WHERE end_at < {cut}"
        )),
        0
    );
    for orphan in [
        "SELECT count(*) FROM smtp_tls_policy p WHERE NOT EXISTS (SELECT 1 FROM smtp_tls_report r WHERE r.id = p.report_id)",
        "SELECT count(*) FROM tlsrpt_report_meta m WHERE NOT EXISTS (SELECT 1 FROM smtp_tls_report r WHERE r.id = m.report_pk)",
    ] {
        assert_eq!(count(orphan), 0, "{orphan}");
    }
    let d = first_difference(&recent(db)["domains"], &before_recent["domains"], "domains");
    assert!(d.is_none(), "after the prune: {}", d.unwrap_or_default());
    same_lines(
        &counters(&prom("after.prom")).join("\n"),
        &counters(&before_metrics).join("\n"),
        "counters after the prune",
    );
    // A load after the prune reads nothing again (the checkpoints are the spools').
    assert!(
        load_all(db, spools)
            .starts_with("loaded 0 new reports (0 already stored) from 0 day files")
    );
    // A second prune has nothing left to do.
    let out = ok(&["prune", "--older-than", &cut_s, "--db", db]);
    assert!(out.contains("removed 0 reports"), "{out}");
}

fn load_all(db: &str, spools: &[&Path]) -> String {
    let mut a = vec!["load", "-v", "--db", db];
    let sp: Vec<String> = spools.iter().map(|p| p.display().to_string()).collect();
    for s in &sp {
        a.extend(["--spool", s.as_str()]);
    }
    ok(&a)
}

/// The whole comparison on one database: load the history, the same figures as the
/// spools', then prune. `count` runs a count query on the database.
fn gives_the_spools_figures(
    t: &Path,
    a: &Spool,
    b: &Spool,
    known: &Known,
    db: &str,
    count: &dyn Fn(&str) -> i64,
) {
    let spools = [a.dir.as_path(), b.dir.as_path()];
    let l = load_all(db, &spools);
    assert!(
        l.starts_with(&format!("loaded {} new reports", known.reports.len())),
        "{l}"
    );
    same_summaries(&spools, db, known);
    same_check_and_metrics(t, &spools, db);
    prune_rows(t, &spools, db, count);
}

#[test]
fn sqlite_gives_the_spools_figures_and_prunes_old_reports() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, known) = history(t.path(), 1500);
    let path = t.path().join("t.db");
    let count = |sql: &str| -> i64 {
        rusqlite::Connection::open(&path)
            .unwrap()
            .query_row(sql, [], |r| r.get(0))
            .unwrap()
    };
    let db = format!("sqlite://{}", path.display());
    gives_the_spools_figures(t.path(), &a, &b, &known, &db, &count);
}

#[test]
#[ignore = "needs PostgreSQL server"]
fn postgresql_gives_the_spools_figures_and_prunes_old_reports() {
    let t = tempfile::tempdir().unwrap();
    let (a, b, known) = history(t.path(), 1500);
    let pg = Cluster::start();
    let count = |sql: &str| -> i64 {
        let sql = sql.replace("end_date < '", "end_date < timestamptz '");
        pg.count(&sql)
    };
    gives_the_spools_figures(t.path(), &a, &b, &known, &pg.url(), &count);
}

#[test]
fn read_commands_refuse_a_database_without_the_figures() {
    let t = tempfile::tempdir().unwrap();
    let (a, _, _) = history(t.path(), 20);
    let path = t.path().join("old.db");
    let db = format!("sqlite://{}", path.display());
    let o = Command::new(BIN)
        .args(["load", "--db", &db, "--spool"])
        .arg(&a.dir)
        .env("TLSRPT_SCHEMA_TARGET", "3")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = tlsrpt(&["summary", "--db", &db]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("run `tlsrpt load"), "{}", stderr(&o));
    let o = tlsrpt(&["check", "--db", &db]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).starts_with("TLSRPT UNKNOWN"), "{}", stdout(&o));
}

/// A spool of `n` reports spread over the same 600 domains and 30 days, whatever `n`.
fn many(t: &Path, name: &str, n: usize) -> Spool {
    let s = Spool::new(t, name);
    let mut rng = Rng(n as u64);
    let first = today() - 31 * DAY;
    for i in 0..n {
        let start = first + (i as i64 % 30) * DAY;
        let d = format!("c{:03}.example", i % 600);
        let details = if rng.below(4) == 0 {
            vec![detail(
                "certificate-expired",
                1 + rng.below(9),
                &format!("203.0.113.{}", rng.below(3)),
                &format!("mx.{d}"),
            )]
        } else {
            vec![]
        };
        let failed = details
            .iter()
            .map(|x| x["failed-session-count"].as_u64().unwrap())
            .sum();
        s.put(&record(
            "Google Inc.",
            &format!("m{i}"),
            start,
            start + DAY + 600,
            true,
            vec![policy("sts", &d, rng.below(1000), failed, details)],
        ));
    }
    s
}

/// Peak RSS (KiB) of a `tlsrpt` run, measured by GNU time.
fn peak_kib(args: &[&str]) -> u64 {
    let t = tempfile::NamedTempFile::new().unwrap();
    let o = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(t.path())
        .arg(BIN)
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    std::fs::read_to_string(t.path())
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
#[ignore = "needs GNU time"]
fn summary_memory_follows_the_groups_not_the_reports() {
    require_tool(&["/usr/bin/time"], "time");
    let t = tempfile::tempdir().unwrap();
    let mut peaks = Vec::new();
    for n in [3_000, 30_000] {
        let s = many(t.path(), &format!("s{n}"), n);
        let db = format!("sqlite://{}/m{n}.db", t.path().display());
        ok(&["load", "--db", &db, "--spool", s.dir.to_str().unwrap()]);
        let peak = peak_kib(&["summary", "--format", "json", "--since", "60d", "--db", &db]);
        peaks.push((n, peak));
    }
    let (small, large) = (peaks[0].1, peaks[1].1);
    eprintln!("peak RSS of summary --db: {peaks:?} (reports, KiB)");
    // Ten times the reports, the same groups (600 domains x 30 days): the same memory,
    // give or take the allocator. Holding the reports would add ~40 MiB.
    assert!(large < small + 12 * 1024, "{peaks:?}");
    assert!(large < 64 * 1024, "{peaks:?}");
}
