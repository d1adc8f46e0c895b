//! `tlsrpt metrics` and `tlsrpt check` on generated spools, with the real Prometheus
//! tools: promtool lints the textfile and unit-tests contrib/prometheus's rules, and a
//! real node_exporter (on 127.0.0.1, started and stopped here) serves our series. Tests
//! that need those programs say so and skip where they are not installed (.ci/run
//! installs them).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;
use serde_json::Value;

fn metrics(spools: &[&Path], textfile: &Path) -> std::process::Output {
    let mut a: Vec<String> = vec![
        "metrics".into(),
        "--textfile".into(),
        textfile.display().to_string(),
    ];
    for s in spools {
        a.push("--spool".into());
        a.push(s.display().to_string());
    }
    let o = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    o
}

/// `name{labels} value` lines of a textfile, keyed by `name{labels}`.
fn get(m: &BTreeMap<String, f64>, key: &str) -> f64 {
    *m.get(key).unwrap_or_else(|| panic!("no sample {key}"))
}

fn promtool() -> PathBuf {
    require_tool(
        &["/usr/bin/promtool", "/usr/local/bin/promtool"],
        "prometheus",
    )
}

/// A history: Microsoft-style sts+tlsa, a copy in the second spool, an unauthenticated
/// report, failures without detail rows.
fn history(t: &Path) -> (Spool, Spool) {
    let a = Spool::new(t, "mx1");
    let b = Spool::new(t, "mx2");
    let ms = record(
        "Microsoft Corporation",
        "ms-1",
        T0,
        T0 + DAY + 60,
        true,
        sts_and_tlsa(
            "example.com",
            100,
            6,
            vec![detail(
                "starttls-not-supported",
                4,
                "203.0.113.1",
                "mx1.example.com",
            )],
        ),
    );
    a.put(&ms);
    b.put(&ms); // delivered to both MX hosts
    a.put(&record(
        "Google Inc.",
        "g-1",
        T0,
        T0 + DAY + 90,
        true,
        vec![policy("sts", "example.com", 50, 0, vec![])],
    ));
    b.put(&record(
        "Google Inc.",
        "g-2",
        T0 + DAY,
        T0 + 2 * DAY + 90,
        true,
        vec![policy(
            "sts",
            "example.net",
            7,
            1,
            vec![detail(
                "certificate-expired",
                1,
                "198.51.100.2",
                "mx.example.net",
            )],
        )],
    ));
    a.put(&record(
        "Forger",
        "f-1",
        T0,
        T0 + DAY + 5,
        false,
        vec![policy("sts", "example.com", 0, 999, vec![])],
    ));
    a.put(&record(
        "Forger",
        "f-2",
        T0,
        T0 + DAY + 6,
        false,
        vec![policy("sts", "random-1.example", 0, 1, vec![])],
    ));
    (a, b)
}

#[test]
fn metric_values_equal_totals_known_by_construction() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = history(t.path());
    let prom = t.path().join("prom");
    std::fs::create_dir(&prom).unwrap();
    let tf = prom.join("tlsrpt.prom");
    metrics(&[&a.dir, &b.dir], &tf);
    let text = std::fs::read_to_string(&tf).unwrap();
    let m = samples(&text);
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_reports_total{policy_domain="example.com",organization="Microsoft Corporation"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_reports_total{policy_domain="example.com",organization="Google Inc."}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_reports_total{policy_domain="example.net",organization="Google Inc."}"#
        ),
        1.0
    );
    // Each policy type's own figures...
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_sessions_total{policy_domain="example.com",policy_type="sts",result="successful"}"#
        ),
        150.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_sessions_total{policy_domain="example.com",policy_type="tlsa",result="successful"}"#
        ),
        100.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_sessions_total{policy_domain="example.com",policy_type="tlsa",result="starttls-not-supported"}"#
        ),
        4.0
    );
    // ...two failed sessions without a detail row...
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_sessions_total{policy_domain="example.com",policy_type="sts",result="unspecified-failure"}"#
        ),
        2.0
    );
    // ...and once per report and domain.
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_domain_sessions_total{policy_domain="example.com",result="successful",authenticated="true"}"#
        ),
        150.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_domain_sessions_total{policy_domain="example.com",result="starttls-not-supported",authenticated="true"}"#
        ),
        4.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_last_report_timestamp_seconds{policy_domain="example.net",organization="Google Inc."}"#
        ),
        (T0 + 2 * DAY) as f64
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_last_received_timestamp_seconds{policy_domain="example.com"}"#
        ),
        (T0 + DAY + 90) as f64
    );
    // Forged reports: counted apart, and a domain only forgers name is not a label.
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_unauthenticated_reports_total{policy_domain="example.com"}"#
        ),
        1.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_unauthenticated_reports_total{policy_domain="(other)"}"#
        ),
        1.0
    );
    assert!(!text.contains("random-1.example"));
    assert!(
        !text.contains("203.0.113.1") && !text.contains("ms-1"),
        "a per-IP or per-report label"
    );
    assert_eq!(get(&m, "tlsrpt_quarantined_total"), 0.0);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&tf).unwrap().permissions().mode() & 0o777,
        0o644
    );
    // Only the textfile and our state beside it: no temporary file left.
    let mut names: Vec<String> = std::fs::read_dir(&prom)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "tlsrpt.prom",
            "tlsrpt.prom.state",
            "tlsrpt.prom.state.keys",
            "tlsrpt.prom.state.lock",
            "tlsrpt.run.prom"
        ]
    );
    // The run's heartbeat is a textfile of its own.
    let heartbeat = std::fs::read_to_string(prom.join("tlsrpt.run.prom")).unwrap();
    assert!(
        get(
            &samples(&heartbeat),
            "tlsrpt_metrics_last_run_timestamp_seconds"
        ) > 1.7e9,
        "{heartbeat}"
    );
    assert!(!text.contains("tlsrpt_metrics_last_run"), "{text}");
}

/// The textfile and the heartbeat pass `promtool check metrics` (the linter Prometheus
/// users run on textfiles) without a single complaint.
#[test]
#[ignore = "needs promtool"]
fn textfiles_pass_promtool_check_metrics() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = history(t.path());
    let tf = t.path().join("tlsrpt.prom");
    let o = metrics(&[&a.dir, &b.dir], &tf);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&tf).unwrap();
    let heartbeat = std::fs::read_to_string(t.path().join("tlsrpt.run.prom")).unwrap();
    let mut c = Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    c.stdin
        .take()
        .unwrap()
        .write_all((text + &heartbeat).as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success() && o.stdout.is_empty() && o.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn incremental_runs_read_only_what_is_new() {
    let t = tempfile::tempdir().unwrap();
    let (a, b) = history(t.path());
    let tf = t.path().join("tlsrpt.prom");
    metrics(&[&a.dir, &b.dir], &tf);
    let first = std::fs::read_to_string(&tf).unwrap();
    let first_mtime = std::fs::metadata(&tf).unwrap().modified().unwrap();
    let hb = t.path().join("tlsrpt.run.prom");
    std::fs::write(&hb, "stale\n").unwrap();

    // Overwrite what was read with garbage of the same length (same inode, same size):
    // a run that read it again would skip those lines and change the counters.
    let day = a.dir.join(day_name(T0 + DAY + 60));
    let len = std::fs::metadata(&day).unwrap().len() as usize;
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new().write(true).open(&day).unwrap();
        let mut junk = vec![b'x'; len];
        junk[len - 1] = b'\n';
        f.write_all_at(&junk, 0).unwrap();
    }
    metrics(&[&a.dir, &b.dir], &tf);
    let second = std::fs::read_to_string(&tf).unwrap();
    assert_eq!(first, second, "a run with nothing new changed the metrics");
    assert_eq!(
        std::fs::metadata(&tf).unwrap().modified().unwrap(),
        first_mtime,
        "a run with nothing new rewrote the textfile"
    );
    // ... but it did run: its heartbeat was written.
    assert!(
        std::fs::read_to_string(&hb)
            .unwrap()
            .contains("tlsrpt_metrics_last_run_timestamp_seconds "),
        "no heartbeat"
    );

    // A new report, and a torn line after it: only the complete one counts.
    b.put(&record(
        "Google Inc.",
        "g-3",
        T0 + 2 * DAY,
        T0 + 3 * DAY,
        true,
        vec![policy("sts", "example.net", 10, 0, vec![])],
    ));
    let partial = format!(
        "{}\n",
        record(
            "Google Inc.",
            "g-4",
            T0 + 2 * DAY,
            T0 + 3 * DAY + 1,
            true,
            vec![policy("sts", "example.net", 1000, 0, vec![])]
        )
    );
    let (head, tail) = partial.split_at(partial.len() / 2);
    b.append_raw(&day_name(T0 + 3 * DAY), head.as_bytes());
    metrics(&[&a.dir, &b.dir], &tf);
    let m = samples(&std::fs::read_to_string(&tf).unwrap());
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_reports_total{policy_domain="example.net",organization="Google Inc."}"#
        ),
        2.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_sessions_total{policy_domain="example.net",policy_type="sts",result="successful"}"#
        ),
        17.0
    );
    b.append_raw(&day_name(T0 + 3 * DAY), tail.as_bytes());
    metrics(&[&a.dir, &b.dir], &tf);
    let m = samples(&std::fs::read_to_string(&tf).unwrap());
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_reports_total{policy_domain="example.net",organization="Google Inc."}"#
        ),
        3.0
    );
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_sessions_total{policy_domain="example.net",policy_type="sts",result="successful"}"#
        ),
        1017.0
    );
    // Unchanged: the garbage written earlier was never read again.
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_reports_total{policy_domain="example.com",organization="Google Inc."}"#
        ),
        1.0
    );

    // A day file replaced (new inode, as a restore from backup would): everything is
    // counted again from the files as they are now, nothing twice.
    let content = std::fs::read(&day).unwrap();
    std::fs::remove_file(&day).unwrap();
    std::fs::write(&day, &content).unwrap();
    metrics(&[&a.dir, &b.dir], &tf);
    let m = samples(&std::fs::read_to_string(&tf).unwrap());
    // The garbage now is what the file holds: the records it replaced are gone from a
    // recount, except those also in the other spool (the Microsoft report).
    assert_eq!(
        get(
            &m,
            r#"tlsrpt_reports_total{policy_domain="example.com",organization="Microsoft Corporation"}"#
        ),
        1.0
    );
    assert_eq!(get(&m, "tlsrpt_skipped_lines_total"), 1.0);
}

#[test]
#[ignore = "needs promtool"]
fn promtool_rule_unit_tests_pass() {
    let promtool = promtool();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/prometheus");
    for args in [
        vec!["check", "rules", "tlsrpt.rules.yml"],
        vec!["test", "rules", "tlsrpt.rules.test.yml"],
        vec!["check", "rules", "tlsrpt-watch.rules.yml"],
        vec!["test", "rules", "tlsrpt-watch.rules.test.yml"],
    ] {
        let o = Command::new(&promtool)
            .args(&args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// The shipped rules on the textfiles `tlsrpt metrics` really writes, before and after
/// a report arrives: a first STARTTLS failure of a domain never seen before (its series
/// born non-zero) and a quarantined message alert; nothing alerts before.
#[test]
#[ignore = "needs promtool"]
fn shipped_rules_fire_on_series_born_non_zero() {
    let promtool = promtool();
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "spool");
    let start = now() - now() % DAY - DAY;
    s.put(&record(
        "Google Inc.",
        "a1",
        start,
        start + DAY + 60,
        true,
        vec![policy("sts", "a.example", 50, 0, vec![])],
    ));
    let tf = t.path().join("t.prom");
    metrics(&[&s.dir], &tf);
    let before = samples(&std::fs::read_to_string(&tf).unwrap());
    // The report that carries the first failure, and an unreadable message set aside.
    s.put(&record(
        "Google Inc.",
        "n1",
        start,
        start + DAY + 120,
        true,
        vec![policy(
            "sts",
            "new.example",
            10,
            4,
            vec![detail(
                "starttls-not-supported",
                4,
                "203.0.113.1",
                "mx.new.example",
            )],
        )],
    ));
    std::fs::create_dir(s.dir.join("quarantine")).unwrap();
    std::fs::write(
        s.dir.join("quarantine/20261201T000000Z.1.000000001.json"),
        "{}",
    )
    .unwrap();
    std::fs::write(
        s.dir.join("quarantine/20261201T000000Z.1.000000001.eml"),
        "x",
    )
    .unwrap();
    metrics(&[&s.dir], &tf);
    let after = samples(&std::fs::read_to_string(&tf).unwrap());
    // promtool's input: each series as the scrapes saw it, 1h apart: twice before, three
    // times after ("_": not there yet).
    let mut series = String::new();
    let keys: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for k in keys {
        let v = |m: &BTreeMap<String, f64>| m.get(k).map_or("_".to_owned(), |v| v.to_string());
        let labelled = match k.split_once('{') {
            Some((name, rest)) => format!("{name}{{instance=\"mx1\",job=\"node\",{rest}"),
            None => format!("{k}{{instance=\"mx1\",job=\"node\"}}"),
        };
        series.push_str(&format!(
            "      - series: '{labelled}'\n        values: '{b} {b} {a} {a} {a}'\n",
            b = v(&before),
            a = v(&after)
        ));
    }
    assert!(
        series.contains("result=\"starttls-not-supported\""),
        "{series}"
    );
    let rules =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/prometheus/tlsrpt.rules.yml");
    let alerts = [
        "      - eval_time: 1h",
        "        alertname: TlsrptStarttlsNotSupported",
        "        exp_alerts: []",
        "      - eval_time: 1h",
        "        alertname: TlsrptReportsQuarantined",
        "        exp_alerts: []",
        "      - eval_time: 3h",
        "        alertname: TlsrptStarttlsNotSupported",
        "        exp_alerts:",
        "          - exp_labels: {severity: critical, instance: mx1, job: node, policy_domain: new.example, policy_type: sts, result: starttls-not-supported}",
        "            exp_annotations:",
        "              summary: \"new.example: senders found no STARTTLS (sts)\"",
        "              description: \"4 sessions in the last day. Check: openssl s_client -starttls smtp -connect MX:25; tlsrpt summary --domain new.example\"",
        "      - eval_time: 3h",
        "        alertname: TlsrptReportsQuarantined",
        "        exp_alerts:",
        "          - exp_labels: {severity: warning, instance: mx1, job: node}",
        "            exp_annotations:",
        "              summary: \"1 report messages quarantined in the last day on mx1: tlsrpt quarantine list\"",
    ]
    .join("\n");
    let test = format!(
        "rule_files:\n  - {}\nevaluation_interval: 1m\ntests:\n  - interval: 1h\n    input_series:\n{series}    alert_rule_test:\n{alerts}\n",
        rules.display()
    );
    let f = t.path().join("generated.test.yml");
    std::fs::write(&f, &test).unwrap();
    let o = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "promtool test rules on the generated series:\n{test}\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
#[ignore = "needs node_exporter"]
fn node_exporter_serves_our_series() {
    let ne = require_tool(
        &[
            "/usr/bin/prometheus-node-exporter",
            "/usr/local/bin/node_exporter",
        ],
        "prometheus-node-exporter",
    );
    let t = tempfile::tempdir().unwrap();
    let (a, b) = history(t.path());
    let dir = t.path().join("textfile");
    std::fs::create_dir(&dir).unwrap();
    metrics(&[&a.dir, &b.dir], &dir.join("tlsrpt.prom"));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(ne)
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg(format!("--collector.textfile.directory={}", dir.display()))
        .args(["--collector.disable-defaults", "--collector.textfile"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut body = String::new();
    // Until it answers a whole scrape (it may accept before it is ready).
    for _ in 0..100 {
        let scrape = || -> std::io::Result<String> {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
            s.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
            let mut b = String::new();
            s.read_to_string(&mut b)?;
            Ok(b)
        };
        match scrape() {
            Ok(b) if b.starts_with("HTTP/1.0 200") || b.starts_with("HTTP/1.1 200") => {
                body = b;
                break;
            }
            _ => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(body.contains(r#"tlsrpt_reports_total{organization="Microsoft Corporation",policy_domain="example.com"} 1"#), "{body}");
    assert!(
        body.contains("tlsrpt_metrics_last_run_timestamp_seconds"),
        "{body}"
    );
    // node_exporter reports a textfile it could not parse in this metric; ours parsed.
    assert!(body.contains("node_textfile_scrape_error 0"), "{body}");
}

// ---- tlsrpt check ---------------------------------------------------------------

fn check(args: &[&str]) -> (i32, String) {
    let mut a = vec!["check"];
    a.extend_from_slice(args);
    let o = run(&a);
    let out = stdout(&o);
    let first = out.lines().next().unwrap_or("").to_owned();
    // The plugin contract: one status line first.
    let ok = ["OK", "WARNING", "CRITICAL", "UNKNOWN"]
        .iter()
        .any(|s| first.starts_with(&format!("TLSRPT {s} - ")));
    assert!(ok, "first line: {first:?}; stderr {}", stderr(&o));
    (o.status.code().unwrap(), out)
}

/// A reporter's daily reports for `days` days back from today (day offsets, 1 = yesterday).
fn reports(s: &Spool, org: &str, domain: &str, days_back: &[i64], failed: u64, result: &str) {
    let today = now() / DAY * DAY;
    for &d in days_back {
        let start = today - d * DAY;
        let details = if failed > 0 {
            vec![detail(result, failed, "203.0.113.5", "mx1.example.com")]
        } else {
            vec![]
        };
        s.put(&record(
            org,
            &format!("{org}-{domain}-{d}"),
            start,
            start + DAY + 3600,
            true,
            vec![policy("sts", domain, 1000, failed, details)],
        ));
    }
}

#[test]
fn check_status_output_and_exit_codes() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    let sp = s.dir.to_str().unwrap().to_owned();
    reports(
        &s,
        "Google Inc.",
        "ok.example",
        &(1..15).collect::<Vec<_>>(),
        0,
        "",
    );
    let (code, out) = check(&["--spool", &sp]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("TLSRPT OK - 1 domains"), "{out}");
    assert!(
        out.contains("'ok.example failure ratio'=0.0000%;1;5;0;100"),
        "{out}"
    );

    // 2% failures: WARNING at the default -w 1; OK with -w 3.
    reports(
        &s,
        "Google Inc.",
        "warn.example",
        &[1],
        20,
        "certificate-expired",
    );
    let (code, out) = check(&["--spool", &sp]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("warn.example: failure ratio 1.96%"), "{out}");
    let (code, _) = check(&["--spool", &sp, "-w", "3", "-c", "10"]);
    assert_eq!(code, 0);
    // Ranges with ~ and @ as the guidelines define them.
    let (code, _) = check(&["--spool", &sp, "-w", "~:3", "-c", "@50:100"]);
    assert_eq!(code, 0);

    // Any starttls-not-supported: CRITICAL, whatever the ratio.
    reports(
        &s,
        "Google Inc.",
        "crit.example",
        &[1],
        1,
        "starttls-not-supported",
    );
    let (code, out) = check(&["--spool", &sp, "-w", "50", "-c", "90"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("crit.example: 1 starttls-not-supported sessions"),
        "{out}"
    );

    // Scoped with --domain.
    let (code, _) = check(&["--spool", &sp, "--domain", "ok.example"]);
    assert_eq!(code, 0);

    // UNKNOWN: an unreadable spool, and bad arguments.
    let (code, out) = check(&["--spool", t.path().join("missing").to_str().unwrap()]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = check(&["--spool", &sp, "-w", "abc"]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = check(&["--spool", &sp, "--no-such-option"]);
    assert_eq!(code, 3, "{out}");
    let (code, out) = check(&["--spool", &sp, "--max-silence", "2026-01-01"]);
    assert_eq!(code, 3, "{out}");
}

#[test]
fn silence_on_generated_histories() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "a");
    let sp = s.dir.to_str().unwrap().to_owned();
    // A daily reporter that stopped 5 days ago.
    reports(
        &s,
        "Google Inc.",
        "stopped.example",
        &(5..20).collect::<Vec<_>>(),
        0,
        "",
    );
    // Every other day, last report yesterday: fine.
    reports(
        &s,
        "Microsoft Corporation",
        "alternate.example",
        &[1, 3, 5, 7, 9, 11, 13],
        0,
        "",
    );
    // Only on failure days (mox): irregular, never silent.
    reports(
        &s,
        "mox",
        "failures.example",
        &[6, 7, 12, 19, 25],
        1,
        "certificate-expired",
    );
    let (code, out) = check(&[
        "--spool",
        &sp,
        "-w",
        "100",
        "-c",
        "100",
        "--domain",
        "stopped.example",
        "--domain",
        "alternate.example",
        "--domain",
        "failures.example",
        "--domain",
        "new.example",
    ]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("stopped.example: no report from Google Inc. since"),
        "{out}"
    );
    assert!(out.contains("(it reported every 1 day(s))"), "{out}");
    assert!(!out.contains("alternate.example: no report"), "{out}");
    assert!(!out.contains("failures.example: no report"), "{out}");
    assert!(out.contains("new.example: no reports in the last"), "{out}");
    assert!(out.contains("tlsrpt check-record new.example"), "{out}");
    // --max-silence catches any domain quiet for too long, regular or not.
    let (_, out) = check(&[
        "--spool",
        &sp,
        "-w",
        "100",
        "-c",
        "100",
        "--domain",
        "failures.example",
        "--max-silence",
        "3d",
    ]);
    assert!(out.contains("failures.example: no report for"), "{out}");
    let (code, _) = check(&[
        "--spool",
        &sp,
        "-w",
        "100",
        "-c",
        "100",
        "--domain",
        "alternate.example",
    ]);
    assert_eq!(code, 0);
}

#[test]
fn summary_json_is_what_the_schema_file_describes() {
    // The schema's required top-level keys are exactly what the document has.
    let schema: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../schema/summary.schema.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let t = tempfile::tempdir().unwrap();
    let (a, _) = history(t.path());
    let doc = summary_json(&[
        "--spool",
        a.dir.to_str().unwrap(),
        "--since",
        &iso(T0),
        "--until",
        &iso(T0 + 5 * DAY),
    ]);
    let mut want: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    let mut have: Vec<&str> = doc
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    want.sort();
    have.sort();
    assert_eq!(want, have);
}
