//! The counting rule and trust, through every view (issue "No failure may vanish"): the
//! real shapes — SocketLabs' two `sts` policies for one domain, a `tlsa` policy per MX
//! host, Microsoft's `sts` + `tlsa` over the same sessions, and a report mixing them —
//! with totals known by construction, in summary (table, JSON, CSV, HTML), check,
//! metrics and export; and a spool of reports nobody trusted yet, judged again with
//! `--trusted-authserv-id`.

mod common;

use common::*;
use serde_json::{Value, json};

/// (domain, successful, failed) by the rule, for the shapes below.
const KNOWN: [(&str, u64, u64); 4] = [
    ("two-sts.example", 12, 2),
    ("tlsa-per-mx.example", 147, 5),
    ("sts-and-tlsa.example", 10, 2),
    ("mixed.example", 20, 1),
];

fn mismatch(n: u64, mx: &str) -> Value {
    json!({"result-type": "certificate-host-mismatch", "failed-session-count": n,
           "receiving-mx-hostname": mx, "sending-mta-ip": "203.0.113.9"})
}

fn shapes() -> Vec<Value> {
    let mut v = two_sts(
        "two-sts.example",
        12,
        2,
        vec![mismatch(2, "mx.two-sts.example")],
    );
    let mut tl = tlsa_per_mx(
        "tlsa-per-mx.example",
        &[100, 40, 7],
        5,
        vec![
            json!({"result-type": "tlsa-invalid", "failed-session-count": 5,
                    "receiving-mx-hostname": "mx2.tlsa-per-mx.example"}),
        ],
    );
    v.append(&mut tl);
    v.extend(sts_and_tlsa(
        "sts-and-tlsa.example",
        10,
        2,
        vec![json!({"result-type": "certificate-expired", "failed-session-count": 2})],
    ));
    // sts over 21 sessions, and two tlsa policies (one per MX) over the same 21: a tie
    // on sessions and on failures, so the type met first (sts) counts.
    v.push(policy(
        "sts",
        "mixed.example",
        20,
        1,
        vec![json!({"result-type": "validation-failure", "failed-session-count": 1})],
    ));
    v.extend(tlsa_per_mx(
        "mixed.example",
        &[10, 10],
        1,
        vec![json!({"result-type": "dane-required", "failed-session-count": 1})],
    ));
    v
}

fn spool_of(t: &std::path::Path, pass: bool) -> Spool {
    let s = Spool::new(t, "mx");
    let start = today_start() - 2 * DAY;
    s.put(&record(
        "SocketLabs",
        "shapes-1",
        start,
        start + DAY + 60,
        pass,
        shapes(),
    ));
    s
}

fn today_start() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now.div_euclid(DAY) * DAY
}

fn ok_run(args: &[&str]) -> String {
    let o = run(args);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    stdout(&o)
}

#[test]
fn every_view_counts_every_policy_by_the_rule() {
    let t = tempfile::tempdir().unwrap();
    let s = spool_of(t.path(), true);
    let sp = s.dir.display().to_string();
    let base = ["--spool", sp.as_str(), "--since", "7d"];

    // JSON: each domain's figures.
    let doc = summary_json(&base);
    for (d, ok, failed) in KNOWN {
        let x = domain(&doc, d);
        assert_eq!(
            (
                x["successful-sessions"].as_u64(),
                x["failed-sessions"].as_u64()
            ),
            (Some(ok), Some(failed)),
            "{d}"
        );
    }
    // The counted type's result types only; each type's own figures beside.
    let m = domain(&doc, "sts-and-tlsa.example");
    assert_eq!(m["result-types"], json!({"certificate-expired": 2}));
    assert_eq!(m["policy-types"]["tlsa"]["failed-sessions"], 2);
    let p = domain(&doc, "tlsa-per-mx.example");
    assert_eq!(p["result-types"], json!({"tlsa-invalid": 5}));
    assert_eq!(
        p["advice"][0]["mx-hosts"][0]["host"],
        "mx2.tlsa-per-mx.example"
    );

    // Table: the line a postmaster reads.
    let table = ok_run(&[&["summary"][..], &base].concat());
    assert!(
        table.contains("two-sts.example: 2 failed of 14 sessions"),
        "{table}"
    );
    assert!(
        table.contains("tlsa-per-mx.example: 5 failed of 152 sessions"),
        "{table}"
    );

    // CSV: the domain columns.
    let csv = ok_run(&[&["summary", "--format", "csv"][..], &base].concat());
    let mut rows = ::csv::Reader::from_reader(csv.as_bytes());
    for r in rows.records() {
        let r = r.unwrap();
        let (d, ok, failed) = KNOWN.iter().find(|k| k.0 == &r[0]).copied().unwrap();
        assert_eq!(&r[1], "true");
        assert_eq!(
            (&r[6], &r[7]),
            (ok.to_string().as_str(), failed.to_string().as_str()),
            "{d}"
        );
    }

    // HTML: the figures in the overview table.
    let html = ok_run(&[&["summary", "--format", "html"][..], &base].concat());
    assert!(html.contains("two-sts.example"), "html");
    // 2 failed of 14 sessions, 5 of 152.
    assert!(html.contains("14.29%"), "html: two-sts.example's rate");
    assert!(html.contains("3.29%"), "html: tlsa-per-mx.example's rate");

    // check: 2 of 14 is 14.29%; 5 of 152 is 3.29%.
    let o = run(&[
        &[
            "check",
            "-w",
            "3",
            "-c",
            "50",
            "--critical-result-type",
            "none",
        ][..],
        &base,
    ]
    .concat());
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("two-sts.example: failure ratio 14.29% (2 of 14 sessions)"),
        "{out}"
    );
    assert!(
        out.contains("tlsa-per-mx.example: failure ratio 3.29% (5 of 152 sessions)"),
        "{out}"
    );

    // metrics: the domain series carry the failures.
    let tf = t.path().join("t.prom");
    ok_run(&[
        "metrics",
        "--spool",
        &sp,
        "--textfile",
        tf.to_str().unwrap(),
    ]);
    let prom = std::fs::read_to_string(&tf).unwrap();
    for (line, n) in [
        (
            r#"tlsrpt_domain_sessions_total{policy_domain="two-sts.example",result="certificate-host-mismatch",authenticated="true"}"#,
            2,
        ),
        (
            r#"tlsrpt_domain_sessions_total{policy_domain="two-sts.example",result="successful",authenticated="true"}"#,
            12,
        ),
        (
            r#"tlsrpt_domain_sessions_total{policy_domain="tlsa-per-mx.example",result="successful",authenticated="true"}"#,
            147,
        ),
        (
            r#"tlsrpt_domain_sessions_total{policy_domain="sts-and-tlsa.example",result="successful",authenticated="true"}"#,
            10,
        ),
        (
            r#"tlsrpt_domain_sessions_total{policy_domain="mixed.example",result="validation-failure",authenticated="true"}"#,
            1,
        ),
    ] {
        assert!(
            prom.contains(&format!("{line} {n}\n")),
            "{line} {n} in\n{prom}"
        );
    }
    assert!(
        !prom.contains(r#"policy_domain="mixed.example",result="dane-required""#),
        "{prom}"
    );

    // export: every policy as parsedmarc writes them (a row per policy and detail).
    let csv = ok_run(&[&["export", "--format", "csv"][..], &base].concat());
    let n = ::csv::Reader::from_reader(csv.as_bytes()).records().count();
    assert_eq!(n, 10 + 6, "10 policies, 6 failure details");
}

/// A spool of reports nobody trusted at delivery: check says WARNING and names the
/// authserv-id; trusting it when reading counts them everywhere; a header of another
/// authserv-id above it, or dkim=fail, stay out.
#[test]
fn reports_not_yet_trusted_are_never_silently_left_out() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "mx");
    let start = today_start() - 2 * DAY;
    let mk = |id: &str, auth: Value| {
        let mut r = record("SocketLabs", id, start, start + DAY + 60, false, shapes());
        r["version"] = json!(3);
        r["authentication"]["headers"] = auth;
        r
    };
    let pass = json!({"result": "pass", "header-d": "example.org"});
    s.put(&mk(
        "trusted-later",
        json!([{"authserv-id": "mx.example.com", "dkim": [pass]}]),
    ));
    s.put(&mk(
        "relay-above",
        json!([{"authserv-id": "relay.example", "dkim": []}, {"authserv-id": "mx.example.com", "dkim": [pass]}]),
    ));
    s.put(&mk(
        "failed",
        json!([{"authserv-id": "mx.example.com", "dkim": [{"result": "fail", "header-d": "example.org"}]}]),
    ));
    let sp = s.dir.display().to_string();

    // Nothing trusted: not OK, and the fix is named.
    let o = run(&["check", "--spool", &sp, "--since", "7d"]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(out.starts_with("TLSRPT WARNING - not judged: "), "{out}");
    assert!(
        out.contains("1 report with 10 failed of 199 sessions carries dkim=pass from mx.example.com: add --trusted-authserv-id mx.example.com"),
        "{out}"
    );
    assert!(
        out.contains("1 report with 10 failed of 199 sessions carries dkim=pass from mx.example.com, relay.example: add --trusted-authserv-id mx.example.com --trusted-authserv-id relay.example"),
        "{out}"
    );
    // summary says it too; export says it on stderr.
    let table = ok_run(&["summary", "--spool", &sp, "--since", "7d"]);
    let flat = table.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        flat.contains("from mx.example.com: add --trusted-authserv-id mx.example.com"),
        "{table}"
    );
    let o = run(&["export", "--format", "csv", "--spool", &sp, "--since", "7d"]);
    assert!(
        stderr(&o).contains("left out: 1 report with 10 failed of 199 sessions carries dkim=pass from mx.example.com"),
        "{}",
        stderr(&o)
    );

    // Trusted when reading: the one report counts; the others stay out.
    let trust = ["--trusted-authserv-id", "mx.example.com"];
    let doc = summary_json(&[&["--spool", &sp, "--since", "7d"][..], &trust].concat());
    assert_eq!(domain(&doc, "two-sts.example")["reports"], 1);
    // Two reports, four domains each.
    assert_eq!(doc["unauthenticated"]["reports"], 8);
    let o = run(&[
        &[
            "check", "--spool", &sp, "--since", "7d", "-w", "50", "-c", "60",
        ][..],
        &trust,
    ]
    .concat());
    let out = stdout(&o);
    // The counted report is judged by the thresholds (OK there); the left-out ones
    // with failures still warn.
    assert!(!out.contains("from mx.example.com: add"), "{out}");
    assert!(out.contains("relay.example"), "{out}");
    let tf = t.path().join("t.prom");
    ok_run(
        &[
            &[
                "metrics",
                "--spool",
                &sp,
                "--textfile",
                tf.to_str().unwrap(),
            ][..],
            &trust,
        ]
        .concat(),
    );
    let prom = std::fs::read_to_string(&tf).unwrap();
    assert!(
        prom.contains(r#"tlsrpt_domain_sessions_total{policy_domain="two-sts.example",result="certificate-host-mismatch",authenticated="true"} 2"#),
        "{prom}"
    );
    assert!(
        prom.contains(r#"tlsrpt_domain_sessions_total{policy_domain="two-sts.example",result="certificate-host-mismatch",authenticated="false"} 4"#),
        "{prom}"
    );
    // Both relay and mx trusted: two reports; dkim=fail never.
    let doc = summary_json(&[
        "--spool",
        &sp,
        "--since",
        "7d",
        "--trusted-authserv-id",
        "mx.example.com,relay.example",
    ]);
    assert_eq!(domain(&doc, "two-sts.example")["reports"], 2);
    assert_eq!(doc["unauthenticated"]["why"][0]["kind"], "no-trusted-pass");
    // --include-unauthenticated: CSV's authenticated column is false for mixed rows.
    let csv = ok_run(&[
        "summary",
        "--format",
        "csv",
        "--spool",
        &sp,
        "--since",
        "7d",
        "--include-unauthenticated",
    ]);
    let mut rows = ::csv::Reader::from_reader(csv.as_bytes());
    assert!(rows.records().all(|r| &r.unwrap()[1] == "false"), "{csv}");
}
