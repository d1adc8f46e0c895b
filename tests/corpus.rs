//! Every real report in tests/fixtures (except those marked NEGATIVE in PROVENANCE.md)
//! yields exactly one record whose `report` keeps every field of its source, compared
//! field by field. The only differences allowed are the documented normalisations, and
//! each of those must be announced by a warning in the record.

mod common;
use common::*;
use serde_json::{Value, json};

/// Bare documents: (fixture, expected warning codes).
const DOCS: &[(&str, &[&str])] = &[
    (
        "YnkDK_tls_reporting/example.json",
        &["string-as-array", "legacy-key"],
    ),
    (
        "YnkDK_tls_reporting/example.gz",
        &["string-as-array", "legacy-key"],
    ),
    ("YnkDK_tls_reporting/no-policies.json", &[]),
    ("cry-inc_dmarc-report-viewer/google.json", &[]),
    ("cry-inc_dmarc-report-viewer/google@bbd2196.json", &[]),
    (
        "cry-inc_dmarc-report-viewer/microsoft.json",
        &["policy-string-json-in-string"],
    ),
    (
        "cry-inc_dmarc-report-viewer/no-contact.json",
        &["unexpected-type"],
    ),
    ("cry-inc_dmarc-report-viewer/no-policy.json", &[]),
    ("cry-inc_dmarc-report-viewer/no_ip_and_mx.json", &[]),
    ("cry-inc_dmarc-report-viewer/rfc-example.json", &[]),
    (
        "danmarg_tlsrpt_processor/sample.json",
        &["string-as-array", "legacy-key"],
    ),
    (
        "domainaware_parsedmarc/mail.ru.json",
        &["failure-count-mismatch"],
    ),
    ("domainaware_parsedmarc/rfc8460.json", &["string-as-array"]),
    ("domainaware_parsedmarc/smtp_tls.json", &[]),
    (
        "opus-codium_email-report-processor/google.com!example.com!1667520000!1667606399!001.json",
        &[],
    ),
    ("phi-ag_mta-sts-exporter/google.json", &[]),
    (
        "phi-ag_mta-sts-exporter/microsoft-2.json",
        &["datetime-no-zone"],
    ),
    ("phi-ag_mta-sts-exporter/microsoft.json", &[]),
    ("phi-ag_mta-sts-exporter/rfc-errata-6241.json", &[]),
    ("phi-ag_mta-sts-exporter/rfc.json", &["string-as-array"]),
    ("robalexdev_tlsrpt-be/report.json", &[]),
    ("stalwartlabs_mail-auth/rpt01.json", &[]),
    ("stalwartlabs_mail-auth/rpt02.json", &[]),
    (
        "stalwartlabs_mail-auth/rpt03.json",
        &["unknown-policy-type", "missing-field"],
    ),
];

/// Emails: (fixture, expected warning codes). Sources in fixtures/expected/.
const EMAILS: &[(&str, &[&str])] = &[
    ("deltachat_deltachat-core-rust/tlsrpt.eml", &[]),
    ("domainaware_parsedmarc/google.com_smtp_tls_report.eml", &[]),
    (
        "gene-hightower_internet-message-parser/encoding.test.ts__tlsrpt-google-digilicious.eml",
        &["policy-string-trailing-cr"],
    ),
    ("isseis_tlsrpt-digest/tlsrpt_failure.eml", &[]),
    ("isseis_tlsrpt-digest/tlsrpt_success_google_1.eml", &[]),
    ("isseis_tlsrpt-digest/tlsrpt_success_google_2.eml", &[]),
    ("isseis_tlsrpt-digest/tlsrpt_success_microsoft.eml", &[]),
    ("mjl-_mox/example.eml", &[]),
    ("mjl-_mox/microsoft.eml", &["datetime-no-zone"]),
    ("opus-codium_email-report-processor/report.elm.eml", &[]),
    ("stalwartlabs_mail-auth/rpt01.eml", &[]),
    ("stalwartlabs_mail-auth/rpt02.eml", &[]),
];

const LEGACY: &[(&str, &str)] = &[
    ("failure-error-code", "failure-reason-code"),
    ("receiving-mx-host-name", "receiving-mx-hostname"),
    ("additional-info-uri", "additional-information"),
];

/// Compares a source value with the stored one; returns the differences that are not
/// one of the documented normalisations.
fn compare(src: &Value, got: &Value, path: &str, diffs: &mut Vec<String>) {
    match (src, got) {
        (Value::Object(s), Value::Object(g)) => {
            for (k, sv) in s {
                let p = format!("{path}.{k}");
                let renamed = LEGACY.iter().find(|(old, _)| old == k).map(|(_, new)| *new);
                match (g.get(k), renamed) {
                    (Some(gv), _) => compare(sv, gv, &p, diffs),
                    (None, Some(new)) if g.contains_key(new) && !s.contains_key(new) => {
                        compare(sv, &g[new], &p, diffs)
                    }
                    (None, _) => diffs.push(format!("{p}: missing in record")),
                }
            }
            for k in g.keys() {
                let from_legacy = LEGACY
                    .iter()
                    .any(|(old, new)| new == k && s.contains_key(*old));
                if !s.contains_key(k) && !from_legacy {
                    diffs.push(format!("{path}.{k}: added"));
                }
            }
        }
        (Value::Array(s), Value::Array(g))
            if path.ends_with("policy-string") && s.len() == 1 && g.len() != 1 =>
        {
            // TLSA JSON-array-in-a-string.
            let inner: Value =
                serde_json::from_str(s[0].as_str().unwrap_or("")).unwrap_or(Value::Null);
            compare(&inner, got, path, diffs)
        }
        (Value::Array(s), Value::Array(g)) => {
            if s.len() != g.len() {
                diffs.push(format!("{path}: {} elements, stored {}", s.len(), g.len()));
            }
            for (i, (sv, gv)) in s.iter().zip(g).enumerate() {
                compare(sv, gv, &format!("{path}[{i}]"), diffs);
            }
        }
        (Value::String(s), Value::Array(g)) if path.ends_with("mx-host") => {
            if g != &vec![Value::String(s.clone())] {
                diffs.push(format!("{path}: {s:?} stored as {got}"));
            }
        }
        (Value::String(s), Value::String(g))
            if path.ends_with("datetime") && !s.ends_with('Z') && *g == format!("{s}Z") => {}
        (Value::String(s), Value::String(g))
            if path.contains("policy-string") && s.trim_end_matches('\r') == g => {}
        (s, g) if s == g => {}
        (s, g) => diffs.push(format!("{path}: {s} stored as {g}")),
    }
}

fn check(name: &str, source: &Value, input: &[u8], want_codes: &[&str]) {
    let env = Env::new();
    let out = env.run(&[], input);
    ok(&out);
    let recs = env.records();
    assert_eq!(recs.len(), 1, "{name}: records: {}", stderr(&out));
    let rec = &recs[0];
    let mut diffs = Vec::new();
    compare(source, &rec["report"], "", &mut diffs);
    assert!(diffs.is_empty(), "{name}: {diffs:#?}");
    let mut codes: Vec<&str> = rec["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["code"].as_str().unwrap())
        .collect();
    codes.sort();
    codes.dedup();
    let mut want: Vec<&str> = want_codes.to_vec();
    want.sort();
    assert_eq!(codes, want, "{name}: warnings {}", rec["warnings"]);
    assert_eq!(rec["version"], 3);
    assert_eq!(rec["dedup-key"].as_str().unwrap().len(), 64);
    // Totals match the source's own numbers.
    let pols = source["policies"].as_array().unwrap();
    let sum = |k: &str| {
        pols.iter()
            .map(|p| p["summary"][k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(rec["totals"]["policies"], json!(pols.len()), "{name}");
    assert_eq!(
        rec["totals"]["successful-sessions"],
        json!(sum("total-successful-session-count")),
        "{name}"
    );
    assert_eq!(
        rec["totals"]["failed-sessions"],
        json!(sum("total-failure-session-count")),
        "{name}"
    );
    assert!(env.quarantined().is_empty(), "{name}: quarantined");
}

#[test]
fn every_real_document_is_stored_whole() {
    for (name, codes) in DOCS {
        let input = fixture(name);
        let raw = if name.ends_with(".gz") {
            use std::io::Read;
            let mut s = Vec::new();
            flate2::read::GzDecoder::new(&input[..])
                .read_to_end(&mut s)
                .unwrap();
            s
        } else {
            input.clone()
        };
        let source: Value = serde_json::from_slice(&raw).unwrap();
        check(name, &source, &input, codes);
    }
}

#[test]
fn every_real_email_is_stored_whole() {
    for (name, codes) in EMAILS {
        let exp = format!("expected/{}.json", name.replace('/', "__"));
        let source: Value = serde_json::from_slice(&fixture(&exp)).unwrap();
        check(name, &source, &fixture(name), codes);
    }
}

#[test]
fn email_records_carry_headers_and_source() {
    let env = Env::new();
    ok(&env.run(&[], &fixture("mjl-_mox/microsoft.eml")));
    let r = &env.records()[0];
    assert_eq!(r["headers"]["tls-report-domain"], "test.xmox.nl");
    assert_eq!(r["headers"]["tls-report-submitter"], "microsoft.com");
    assert_eq!(
        r["headers"]["message-id"],
        "<133198585438131172+test.xmox.nl@test.xmox.nl>"
    );
    assert_eq!(
        r["headers"]["subject"],
        "Report Domain: test.xmox.nl Submitter: microsoft.com Report-ID: 133198585438131172+test.xmox.nl"
    );
    assert_eq!(r["source"]["content-type"], "application/tlsrpt+gzip");
    assert_eq!(r["source"]["encoding"], json!(["gzip", "json"]));
    assert!(
        r["source"]["filename"]
            .as_str()
            .unwrap()
            .ends_with(".json.gz")
    );
    // §5.6: the body is authoritative; the Subject's Report-ID differs and is not used.
    let env = Env::new();
    ok(&env.run(
        &[],
        &fixture("domainaware_parsedmarc/google.com_smtp_tls_report.eml"),
    ));
    let r = &env.records()[0];
    assert_eq!(
        r["report"]["report-id"],
        "2024-09-03T00:00:00Z_cardinalhealth.ca"
    );
    assert!(
        r["headers"]["subject"]
            .as_str()
            .unwrap()
            .contains("2024.09.03T00.00.00Z")
    );
}

#[test]
fn negative_fixtures_are_quarantined_with_a_reason() {
    for (name, want) in [
        ("YnkDK_tls_reporting/truncated.gz", "broken gzip"),
        (
            "YnkDK_tls_reporting/date_error.json",
            "not an RFC 3339 date-time",
        ),
        (
            "YnkDK_tls_reporting/missing_required_field.json",
            "policy-type is missing",
        ),
    ] {
        let env = Env::new();
        let input = fixture(name);
        let out = env.run(&[], &input);
        let err = ok(&out);
        assert!(
            err.contains("status=quarantined") && err.contains(want),
            "{name}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{name}: one line: {err}");
        assert!(env.records().is_empty());
        let q = env.quarantined();
        assert_eq!(q.len(), 1, "{name}");
        assert_eq!(q[0].0, input, "{name}: quarantined copy is the whole input");
        assert!(q[0].1["reason"].as_str().unwrap().contains(want));
    }
}
