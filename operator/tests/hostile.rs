//! Hostile reports through every command and output format (issue "Hostile reports and
//! servers"): escape sequences, CR/LF, bidirectional overrides and NUL in every report
//! field, spreadsheet formulas, a guessed MIME boundary, multi-byte text at every cut.
//! No panic, no control character reaches a terminal or a CSV cell as a formula, no
//! part is injected into the digest. The live side (long TXT records, thousands of
//! TLSA records, a policy body with escapes, forged reports for foreign domains) is in
//! check_domain.rs and summary_probe.rs, in the probe world.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::*;
use serde_json::{Value, json};

/// Every kind of trouble a string can carry.
const EVIL: &str =
    "\u{1b}]0;pwned\u{7}\u{1b}[31mred\r\nSubject: injected\u{202e}gnp.exe\u{0}\u{9b}2J";

fn hostile_spool(t: &std::path::Path) -> Spool {
    let s = Spool::new(t, "spool");
    let start = now_day() - 2 * DAY;
    let evil_detail = json!({
        "result-type": format!("certificate-expired{EVIL}"),
        "failed-session-count": 3,
        "sending-mta-ip": format!("=HYPERLINK(\"http://evil.example\"){EVIL}"),
        "receiving-mx-hostname": format!("mx.example.com{EVIL}"),
        "receiving-mx-helo": EVIL,
        "receiving-ip": "+1+1",
        "additional-information": format!("@SUM(1){EVIL}"),
        "failure-reason-code": format!("-2+3{EVIL}")
    });
    let mut p = policy(
        "sts",
        &format!("evil.example{EVIL}"),
        5,
        3,
        vec![evil_detail],
    );
    p["policy"]["policy-string"] = json!([format!("version: STSv1{EVIL}"), "mode: enforce"]);
    p["policy"]["mx-host"] = json!([format!("=cmd|' /C calc'!A0{EVIL}")]);
    let mut r = record(
        &format!("Forger{EVIL}"),
        &format!("id{EVIL}"),
        start,
        start + DAY + 60,
        true,
        vec![p],
    );
    r["report"]["contact-info"] = json!(EVIL);
    s.put(&r);
    // A guess at the digest's boundary, and multi-byte text around every cut length.
    let boundary_guess = format!("--tlsrpt-digest-{}-{}", std::process::id(), start);
    let long = format!("{}{}", "a".repeat(4095), "é".repeat(50));
    let p2 = policy(
        "sts",
        "plain.example",
        1,
        1,
        vec![
            json!({"result-type": "starttls-not-supported", "failed-session-count": 1,
                    "receiving-mx-hostname": boundary_guess, "additional-information": long,
                    "failure-reason-code": "Content-Type: text/html\r\n\r\n<a href=https://phish.example>log in</a>"}),
        ],
    );
    s.put(&record(
        "=1+1",
        &format!("{}{}", "x".repeat(119), "é"),
        start,
        start + DAY + 60,
        true,
        vec![p2],
    ));
    s
}

fn now_day() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now.div_euclid(DAY) * DAY
}

/// No panic: an exit status that is a decision, and never "internal error".
fn decided(args: &[&str]) -> std::process::Output {
    let o = run(args);
    assert!(
        !stderr(&o).contains("internal error") && o.status.code().is_some(),
        "{args:?}: {}",
        stderr(&o)
    );
    o
}

/// No control character but the line breaks (and tabs) the format itself uses.
fn no_controls(what: &str, text: &str) {
    for (i, l) in text.lines().enumerate() {
        assert!(
            !l.chars().any(|c| c.is_control() && c != '\t')
                && !l.contains(['\u{202e}', '\u{202a}', '\u{2066}']),
            "{what}: line {}: {l:?}",
            i + 1
        );
    }
}

#[test]
fn hostile_reports_through_every_command_and_format() {
    let t = tempfile::tempdir().unwrap();
    let s = hostile_spool(t.path());
    let sp = s.dir.to_str().unwrap().to_owned();
    let base = ["--spool", sp.as_str(), "--since", "7d"];

    // Terminal views: the table (colour forced on and off), check, check-record.
    for extra in [&["--color", "never"][..], &["--color", "always"][..]] {
        let o = decided(&[&["summary"][..], &base, extra].concat());
        assert_eq!(o.status.code(), Some(0));
        let out = stdout(&o);
        // Our own colour escapes only: ESC [ 31 m, ESC [ 1 m, ESC [ 0 m.
        let without_ours = out
            .replace("\u{1b}[31m", "")
            .replace("\u{1b}[1m", "")
            .replace("\u{1b}[0m", "");
        no_controls("summary table", &without_ours);
        assert!(!out.contains("\u{1b}]0;"), "an OSC sequence went through");
    }
    let o = decided(&[&["check"][..], &base].concat());
    no_controls("check", &stdout(&o));
    let first = stdout(&o).lines().next().unwrap().to_owned();
    assert_eq!(
        first.matches('|').count(),
        1,
        "one perfdata separator: {first}"
    );

    // JSON: control characters escaped by the writer, the document parses.
    let doc: Value = summary_json(&base);
    assert!(doc["domains"].as_array().unwrap().len() == 2, "{doc:#}");

    // CSV (summary and export): no cell a spreadsheet runs as a formula.
    for args in [
        [&["summary", "--format", "csv"][..], &base].concat(),
        [&["export", "--format", "csv"][..], &base].concat(),
    ] {
        let o = decided(&args);
        assert_eq!(o.status.code(), Some(0), "{args:?}");
        let mut r = csv::Reader::from_reader(o.stdout.as_slice());
        let mut cells = 0;
        for rec in r.records() {
            for c in rec.unwrap().iter() {
                cells += 1;
                assert!(
                    !c.starts_with(['=', '+', '-', '@', '\t', '\r']),
                    "{args:?}: formula cell {c:?}"
                );
            }
        }
        assert!(cells > 10);
    }
    let o = decided(&[&["export", "--format", "jsonl"][..], &base].concat());
    for l in stdout(&o).lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }

    // HTML: escaped, no raw control character, nothing of the report as markup.
    let o = decided(&[&["summary", "--format", "html"][..], &base].concat());
    let html = stdout(&o);
    no_controls("html", &html);
    assert!(
        !html.contains("<a href=https://phish.example>"),
        "markup from a report"
    );

    // The digest: one text and one HTML part, whatever the reports say.
    let mail = t.path().join("mail.eml");
    let sendmail = t.path().join("sendmail");
    std::fs::write(
        &sendmail,
        format!("#!/bin/sh\ncat > '{}'\n", mail.display()),
    )
    .unwrap();
    std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
    let o = decided(
        &[
            &["summary"][..],
            &base,
            &[
                "--mail-to",
                "postmaster@example.com",
                "--sendmail",
                sendmail.to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let m = std::fs::read_to_string(&mail).unwrap();
    let boundary = m
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .unwrap()
        .to_owned();
    assert!(
        boundary.starts_with("tlsrpt-") && boundary.len() == 7 + 32,
        "{boundary}"
    );
    assert_eq!(
        m.matches(&format!("--{boundary}")).count(),
        3,
        "the parts: text, HTML, end"
    );
    let parts: Vec<&str> = m.split(&format!("--{boundary}\n")).collect();
    assert_eq!(parts.len(), 3, "two parts");
    assert!(
        parts[1].starts_with("Content-Type: text/plain"),
        "{}",
        parts[1]
    );
    assert!(
        parts[2].starts_with("Content-Type: text/html"),
        "{}",
        &parts[2][..100]
    );
    assert!(!m.contains("\nSubject: injected"), "a header from a report");
    let text_part = m.split(&format!("--{boundary}")).nth(1).unwrap();
    no_controls("digest text", text_part);

    // metrics: labels escaped, one sample per line.
    let tf = t.path().join("t.prom");
    let o = decided(&[
        "metrics",
        "--spool",
        &sp,
        "--textfile",
        tf.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let prom = std::fs::read_to_string(&tf).unwrap();
    no_controls("metrics", &prom);

    // The database: load and read back, the same document.
    let db = format!("sqlite://{}", t.path().join("h.db").display());
    assert_eq!(
        decided(&["load", "--db", &db, "--spool", &sp])
            .status
            .code(),
        Some(0)
    );
    let from_db: Value = summary_json(&["--db", &db, "--since", "7d"]);
    // The database holds NUL as U+FFFD (PostgreSQL's text cannot hold it): the one
    // documented difference.
    let spool_doc = doc["domains"].to_string().replace("\\u0000", "\u{FFFD}");
    let db_doc = from_db["domains"].to_string();
    if db_doc != spool_doc {
        let i = db_doc
            .bytes()
            .zip(spool_doc.bytes())
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        let at = |s: &str| {
            s.get(i.saturating_sub(60)..(i + 60).min(s.len()))
                .unwrap_or("")
                .to_owned()
        };
        panic!(
            "the database's document differs at {i}: {:?} vs {:?}",
            at(&db_doc),
            at(&spool_doc)
        );
    }
    let o = decided(&["summary", "--db", &db, "--since", "7d"]);
    no_controls("summary --db", &stdout(&o));

    // Offline record checks of hostile texts, cut on character boundaries (no NUL: an
    // argument cannot hold one).
    let evil = EVIL.replace('\0', "");
    for txt in [
        format!("{}{}", "a".repeat(4095), "é".repeat(20)),
        format!("v=TLSRPTv1; rua=mailto:a@b.example; x={evil}"),
        format!("v=TLSRPTv1; rua=mailto:{evil}@example.com"),
    ] {
        let o = decided(&["check-record", "--record", &txt]);
        no_controls("check-record", &stdout(&o));
        let o = decided(&["check-domain", "--sts-record", &txt]);
        no_controls("check-domain --sts-record", &stdout(&o));
    }
    let pf = t.path().join("policy.txt");
    std::fs::write(
        &pf,
        format!("version: STSv1\nmode: enforce\nmx: {EVIL}\nmax_age: 86400\nnote: {EVIL}\n"),
    )
    .unwrap();
    let o = decided(&["check-domain", "--sts-policy", pf.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    no_controls("check-domain --sts-policy", &stdout(&o));
}
