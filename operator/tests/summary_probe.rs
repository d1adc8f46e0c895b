//! `tlsrpt summary --probe`: reports that name MX hosts of the local world of
//! tests/world/up.sh, checked live — a certificate still expired, one renewed since,
//! STARTTLS reported missing at an MX that offers it, a host that is not an MX (never
//! connected to), a stale policy-string, a mismatch only without SNI — and the digest
//! through the world's real Postfix carrying the verdicts. Run in the disposable root by
//! tests/run.sh (#[ignore]d on the host).

mod common;

use std::sync::atomic::Ordering;

use common::world::world;
use common::*;
use serde_json::{Value, json};

/// A report of `domain` with one sts policy and `details`; `policy` the policy-string.
fn report(s: &Spool, id: &str, domain: &str, policy_lines: &[&str], details: Vec<Value>) {
    let failed: u64 = details
        .iter()
        .map(|d| d["failed-session-count"].as_u64().unwrap())
        .sum();
    let mut p = policy("sts", domain, 100, failed, details);
    p["policy"]["policy-string"] = json!(policy_lines);
    p["policy"]["mx-host"] = json!([]);
    s.put(&record("Google Inc.", id, T0, T0 + DAY + 60, true, vec![p]));
}

/// A report of a certificate-expired at mx.expired.plain.test, whose certificate is
/// expired still.
fn still_expired(s: &Spool, id: &str) {
    report(
        s,
        id,
        "expired-sts.plain.test",
        &[
            "version: STSv1",
            "mode: enforce",
            "mx: mx.expired.plain.test",
            "max_age: 604800",
        ],
        vec![detail(
            "certificate-expired",
            7,
            "203.0.113.1",
            "mx.expired.plain.test",
        )],
    );
}

const GOOD_POLICY: [&str; 4] = [
    "version: STSv1",
    "mode: enforce",
    "mx: mx.good.plain.test",
    "max_age: 604800",
];

/// Runs `summary --probe` against the world over `spool` (the window of its reports),
/// with `extra` arguments.
fn probe_run(spool: &Spool, extra: &[&str]) -> std::process::Output {
    let w = world();
    let (since, until) = (iso(T0), iso(T0 + 10 * DAY));
    let mut a = vec![
        "summary",
        "--spool",
        spool.dir.to_str().unwrap(),
        "--since",
        &since,
        "--until",
        &until,
        "--probe",
        "--nameserver",
        "127.0.0.1",
        "--ca-file",
        w.ca.to_str().unwrap(),
        "--allow-private-addresses",
        "--timeout",
        "3",
    ];
    a.extend_from_slice(extra);
    run(&a)
}

/// `summary --probe --format json`, exit 0.
fn probe(spool: &Spool, extra: &[&str]) -> Value {
    let mut a = vec!["--format", "json"];
    a.extend_from_slice(extra);
    let o = probe_run(spool, &a);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn advice<'a>(doc: &'a Value, domain: &str, rt: &str) -> &'a Value {
    doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["policy-domain"] == domain)
        .and_then(|d| {
            d["advice"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["result-type"] == rt)
        })
        .unwrap_or_else(|| panic!("no {rt} for {domain}: {doc:#}"))
}

fn live_of<'a>(doc: &'a Value, domain: &str, rt: &str, mx: &str) -> &'a Value {
    let a = advice(doc, domain, rt);
    a["mx-hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["host"] == mx)
        .map(|m| &m["live"])
        .unwrap_or_else(|| panic!("no {mx} in {a:#}"))
}

#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn verdicts_for_what_the_reports_said() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "spool");
    // Still expired.
    still_expired(&s, "r1");
    // Renewed since: mx.good shows a valid certificate now.
    report(
        &s,
        "r2",
        "good.plain.test",
        &GOOD_POLICY,
        vec![detail(
            "certificate-expired",
            5,
            "203.0.113.2",
            "mx.good.plain.test",
        )],
    );
    // STARTTLS reported missing where it is offered now.
    report(
        &s,
        "r3",
        "good.plain.test",
        &GOOD_POLICY,
        vec![detail(
            "starttls-not-supported",
            3,
            "198.51.100.77",
            "mx.good.plain.test",
        )],
    );
    // A host that is not an MX of the domain (it is the counting server's address).
    report(
        &s,
        "r4",
        "good.plain.test",
        &GOOD_POLICY,
        vec![detail(
            "certificate-not-trusted",
            2,
            "203.0.113.3",
            "mx.refused.plain.test",
        )],
    );
    // A mismatch that shows only without SNI.
    report(
        &s,
        "r5",
        "sni.plain.test",
        &["version: STSv1"],
        vec![detail(
            "certificate-host-mismatch",
            4,
            "203.0.113.4",
            "mx.sni.plain.test",
        )],
    );
    // A sender that applied an older policy.
    report(
        &s,
        "r6",
        "good.plain.test",
        &[
            "version: STSv1",
            "mode: testing",
            "mx: old-mx.good.plain.test",
            "max_age: 86400",
        ],
        vec![],
    );
    let w = world();
    let before = w.accepted[4].load(Ordering::SeqCst);
    let doc = probe(&s, &[]);

    let l = live_of(
        &doc,
        "expired-sts.plain.test",
        "certificate-expired",
        "mx.expired.plain.test",
    );
    assert_eq!(l["verdict"], "still-failing", "{l}");
    assert!(
        l["evidence"]
            .as_str()
            .unwrap()
            .contains("expired 2025-12-01"),
        "{l}"
    );
    assert!(l["checked-at"].is_string());
    assert_eq!(
        advice(&doc, "expired-sts.plain.test", "certificate-expired")["live"]["verdict"],
        "still-failing"
    );

    let l = live_of(
        &doc,
        "good.plain.test",
        "certificate-expired",
        "mx.good.plain.test",
    );
    assert_eq!(l["verdict"], "not-reproduced", "{l}");
    assert!(
        l["evidence"]
            .as_str()
            .unwrap()
            .contains("renewed after the report?"),
        "{l}"
    );

    let l = live_of(
        &doc,
        "good.plain.test",
        "starttls-not-supported",
        "mx.good.plain.test",
    );
    assert_eq!(l["verdict"], "not-reproduced", "{l}");
    let e = l["evidence"].as_str().unwrap();
    assert!(
        e.contains("offers STARTTLS now") && e.contains("stripped"),
        "{e}"
    );
    assert!(
        e.contains("198.51.100.77") && e.contains("Google Inc."),
        "names the sending IPs and organisations: {e}"
    );

    let l = live_of(
        &doc,
        "good.plain.test",
        "certificate-not-trusted",
        "mx.refused.plain.test",
    );
    assert_eq!(l["verdict"], "not-probed", "{l}");
    assert!(
        l["evidence"]
            .as_str()
            .unwrap()
            .contains("is not an MX of good.plain.test now"),
        "{l}"
    );
    assert_eq!(
        w.accepted[4].load(Ordering::SeqCst),
        before,
        "connected to a host that is not an MX"
    );

    let l = live_of(
        &doc,
        "sni.plain.test",
        "certificate-host-mismatch",
        "mx.sni.plain.test",
    );
    assert_eq!(l["verdict"], "still-failing", "{l}");
    assert!(
        l["evidence"].as_str().unwrap().contains("only without SNI"),
        "{l}"
    );

    let good = doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["policy-domain"] == "good.plain.test")
        .unwrap();
    let differs: Vec<&Value> = good["live"]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "sts-policy-differs")
        .collect();
    assert_eq!(
        differs.len(),
        1,
        "only the stale policy-string differs: {good:#}"
    );
    let m = differs[0]["message"].as_str().unwrap();
    assert!(
        m.contains("old-mx.good.plain.test") && m.contains("Google Inc.") && m.contains("cached"),
        "{m}"
    );

    // The table says the same in words.
    let o = probe_run(&s, &["--domain", "expired-sts.plain.test"]);
    // Words, with the table's line wrapping undone.
    let text = stdout(&o).split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        text.contains("now at mx.expired.plain.test: still-failing: the certificate of mx.expired.plain.test [127.0.0.12] expired 2025-12-01"),
        "{text}"
    );
}

/// Unauthenticated reports' domains are not probed unless asked; the per-run cache
/// probes a host once however many domains name it.
#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn only_counted_domains_are_probed() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "spool");
    let mut p = policy(
        "sts",
        "expired.plain.test",
        1,
        1,
        vec![detail(
            "certificate-expired",
            1,
            "203.0.113.9",
            "mx.expired.plain.test",
        )],
    );
    p["policy"]["policy-string"] = json!([]);
    s.put(&record("Forger", "f1", T0, T0 + DAY + 60, false, vec![p]));
    let doc = probe(&s, &[]);
    assert!(doc["domains"].as_array().unwrap().is_empty());
    assert!(
        doc["unauthenticated"]["domains"][0]["advice"][0]
            .get("live")
            .is_none(),
        "an unauthenticated domain was probed"
    );
    let doc = probe(&s, &["--include-unauthenticated"]);
    assert_eq!(
        advice(&doc, "expired.plain.test", "certificate-expired")["live"]["verdict"],
        "still-failing"
    );
}

/// A report, even with a trusted DKIM pass, does not make its domain ours: a domain
/// whose TLSRPT record sends its reports elsewhere is never connected to (its MX server
/// counts the connections it accepts: none); given with --domain, or by --our-rua, it
/// is; a domain that does not resolve says so, never "not-reproduced".
#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn only_our_domains_are_probed() {
    let w = world();
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "spool");
    // refused.plain.test's MX is the tests' own counting server (127.0.0.65); its
    // TLSRPT record sends to tls-reports@refused.plain.test, but this report was
    // delivered to another address: the domain is not ours.
    let p = policy(
        "sts",
        "refused.plain.test",
        1,
        1,
        vec![detail(
            "starttls-not-supported",
            1,
            "203.0.113.9",
            "mx.refused.plain.test",
        )],
    );
    let mut r = record("Signed Stranger", "s1", T0, T0 + DAY + 60, true, vec![p]);
    r["envelope"]["recipient"] = json!("tls-reports@ours.example");
    s.put(&r);
    let before = w.accepted[4].load(Ordering::SeqCst);
    let doc = probe(&s, &[]);
    let l = &advice(&doc, "refused.plain.test", "starttls-not-supported")["live"];
    assert_eq!(l["verdict"], "not-probed", "{l}");
    assert!(
        l["evidence"]
            .as_str()
            .unwrap()
            .contains("not one of our domains"),
        "{l}"
    );
    assert_eq!(
        w.accepted[4].load(Ordering::SeqCst),
        before,
        "a foreign domain's MX was connected to"
    );
    // Ours by the operator's word: probed (the counting server answers no SMTP, so no
    // verdict, but it was connected to).
    let doc = probe(&s, &["--our-rua", "mailto:tls-reports@refused.plain.test"]);
    let l = &advice(&doc, "refused.plain.test", "starttls-not-supported")["live"];
    assert!(
        !l["evidence"]
            .as_str()
            .unwrap()
            .contains("not one of our domains"),
        "{l}"
    );
    assert!(w.accepted[4].load(Ordering::SeqCst) > before);
    // A domain that does not exist (listed, so looked at): "does not resolve".
    let s2 = Spool::new(t.path(), "spool2");
    let p = policy(
        "sts",
        "no-such-domain.plain.test",
        1,
        1,
        vec![detail("sts-policy-fetch-error", 1, "203.0.113.9", "")],
    );
    s2.put(&record(
        "Google Inc.",
        "n1",
        T0,
        T0 + DAY + 60,
        true,
        vec![p],
    ));
    let doc = probe(&s2, &["--domain", "no-such-domain.plain.test"]);
    let l = &advice(&doc, "no-such-domain.plain.test", "sts-policy-fetch-error")["live"];
    assert_eq!(l["verdict"], "not-probed", "{l}");
    assert!(
        l["evidence"].as_str().unwrap().contains("does not resolve"),
        "{l}"
    );
}

/// The digest through the world's real Postfix (sendmail, pickup, local delivery to
/// /var/mail/digest) carries the live verdicts.
#[test]
#[ignore = "needs the probe world (Postfix, nginx, NSD, unbound)"]
fn the_digest_carries_the_live_verdicts() {
    let t = tempfile::tempdir().unwrap();
    let s = Spool::new(t.path(), "spool");
    still_expired(&s, "d1");
    let o = probe_run(
        &s,
        &[
            "--mail-to",
            "digest@world.plain.test",
            "--mail-from",
            "tlsrpt@world.plain.test",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mbox = std::path::Path::new("/var/mail/digest");
    let mut text = String::new();
    for _ in 0..200 {
        text = std::fs::read_to_string(mbox).unwrap_or_default();
        if text.contains("still-failing") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        text.contains("Subject: TLS report digest"),
        "no digest delivered: {text:?}"
    );
    let words = text.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.contains("now at mx.expired.plain.test: still-failing: the certificate of mx.expired.plain.test [127.0.0.12] expired 2025-12-01"),
        "{text}"
    );
}
