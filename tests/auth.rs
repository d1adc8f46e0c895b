//! RFC 8460 §3 authenticity: the DKIM verdict from trusted Authentication-Results
//! headers, alignment, --require-dkim, and no alerts from unauthenticated reports.

mod common;
use common::*;
use serde_json::json;

const MOX_ID: &str = "komijn.test.xmox.nl";

fn run_log(env: &Env, args: &[&str], input: &[u8]) -> String {
    ok(&env.run(args, input))
}

/// A report message with a failure, with the given A-R headers on top.
fn failing_message(ar: &[&str], submitter: &str, from: &str) -> Vec<u8> {
    let doc = report_json(
        "Google Inc.",
        &format!("auth-{}", ar.len()),
        3,
        r#"{"result-type":"starttls-not-supported","failed-session-count":3}"#,
    )
    .replace(
        "tls@sender.example",
        &format!("smtp-tls-reporting@{submitter}"),
    );
    let mut head = String::new();
    for h in ar {
        head.push_str(&format!("Authentication-Results: {h}\n"));
    }
    let msg = gzip_report_message(doc.as_bytes());
    let msg = String::from_utf8(msg)
        .unwrap()
        .replace(
            "TLS-Report-Submitter: sender.example",
            &format!("TLS-Report-Submitter: {submitter}"),
        )
        .replace(
            "From: tlsrpt-noreply@sender.example",
            &format!("From: {from}"),
        );
    format!("{head}{msg}").into_bytes()
}

#[test]
fn trusted_pass_is_recorded_and_aligned() {
    let env = Env::new();
    let log = run_log(
        &env,
        &["--trusted-authserv-id", MOX_ID],
        &fixture("mjl-_mox/example.eml"),
    );
    let a = &env.records()[0]["authentication"];
    assert_eq!(a["verdict"], "pass", "{a}");
    assert_eq!(a["aligned-domain"], "google.com");
    assert_eq!(a["aligned-with"], "tls-report-submitter");
    assert_eq!(
        a["dkim"][0],
        json!({"authserv-id": MOX_ID, "result": "pass", "header-d": "google.com", "header-i": "@google.com", "selector": "20210112"})
    );
    assert!(log.contains("dkim=pass"), "{log}");
    // Microsoft: the signature does not cover TLS-Report-*; d= still aligns.
    let env = Env::new();
    run_log(
        &env,
        &["--trusted-authserv-id", MOX_ID],
        &fixture("mjl-_mox/microsoft.eml"),
    );
    let a = &env.records()[0]["authentication"];
    assert_eq!(
        (a["verdict"].as_str(), a["aligned-domain"].as_str()),
        (Some("pass"), Some("microsoft.com"))
    );
}

#[test]
fn untrusted_and_forged_headers_are_ignored() {
    // Not configured: the sample's header is from someone else's server.
    let env = Env::new();
    run_log(&env, &[], &fixture("mjl-_mox/example.eml"));
    let a = &env.records()[0]["authentication"];
    assert_eq!(a["verdict"], "unauthenticated");
    assert_eq!(a["dkim"], json!([]));

    let cases = [
        // Forged pass below a foreign header, carrying our id.
        vec![
            "other.example; dkim=pass header.d=google.com",
            "mx.example.com; dkim=pass header.d=google.com",
        ],
        // Ours says no signature; a forgery with our id below it says pass.
        vec![
            "mx.example.com; dkim=none",
            "mx.example.com; dkim=pass header.d=google.com",
        ],
        // A pass from an untrusted authserv-id only.
        vec!["evil.example; dkim=pass header.d=google.com"],
        // Ours passes, but for another domain (misaligned).
        vec!["mx.example.com; dkim=pass header.d=attacker.example"],
    ];
    for ar in cases {
        let env = Env::new();
        let msg = failing_message(&ar, "google.com", "noreply@google.com");
        run_log(&env, &["--trusted-authserv-id", "mx.example.com"], &msg);
        assert_eq!(
            env.records()[0]["authentication"]["verdict"],
            "unauthenticated",
            "{ar:?}"
        );
    }
}

#[test]
fn require_dkim_quarantines_unsigned_and_misaligned() {
    for (ar, what) in [
        (vec![], "unsigned"),
        (
            vec!["mx.example.com; dkim=pass header.d=attacker.example"],
            "misaligned",
        ),
        (
            vec!["mx.example.com; dkim=fail header.d=google.com"],
            "failed",
        ),
    ] {
        let env = Env::new();
        let msg = failing_message(&ar, "google.com", "noreply@google.com");
        let log = run_log(
            &env,
            &["--trusted-authserv-id", "mx.example.com", "--require-dkim"],
            &msg,
        );
        assert!(env.records().is_empty(), "{what}");
        assert!(
            log.contains("no trusted, aligned DKIM pass (--require-dkim)"),
            "{what}: {log}"
        );
        let q = env.quarantined();
        assert_eq!(q.len(), 1, "{what}");
        assert_eq!(q[0].0, msg);
    }
    let env = Env::new();
    let msg = failing_message(
        &["mx.example.com; dkim=pass header.d=google.com header.s=s1"],
        "google.com",
        "noreply@google.com",
    );
    run_log(
        &env,
        &["--trusted-authserv-id", "mx.example.com", "--require-dkim"],
        &msg,
    );
    assert_eq!(env.records()[0]["authentication"]["verdict"], "pass");
}

#[test]
fn unauthenticated_reports_raise_no_alert_by_default() {
    let forged = failing_message(&[], "google.com", "noreply@google.com");
    let env = Env::new();
    let log = run_log(&env, &["--trusted-authserv-id", "mx.example.com"], &forged);
    assert!(
        log.contains("status=stored") && !log.contains("tlsrpt-alert"),
        "{log}"
    );
    assert!(log.contains("dkim=unauthenticated"), "{log}");

    let env = Env::new();
    let log = run_log(
        &env,
        &[
            "--trusted-authserv-id",
            "mx.example.com",
            "--alert-unauthenticated",
        ],
        &forged,
    );
    assert!(log.contains("tlsrpt-alert severity=crit"), "{log}");

    let signed = failing_message(
        &["mx.example.com; dkim=pass header.d=google.com"],
        "google.com",
        "noreply@google.com",
    );
    let env = Env::new();
    let log = run_log(&env, &["--trusted-authserv-id", "mx.example.com"], &signed);
    assert!(log.contains("tlsrpt-alert severity=crit"), "{log}");
}

/// Every A-R header's DKIM results are kept in the record (version 3), trusted or not,
/// so that `tlsrpt --trusted-authserv-id` can judge the report again; the log line names
/// the authserv-id it did not trust.
#[test]
fn untrusted_headers_are_kept_and_named() {
    let env = Env::new();
    let log = run_log(&env, &[], &fixture("mjl-_mox/example.eml"));
    let r = &env.records()[0];
    assert_eq!(r["version"], 3);
    let a = &r["authentication"];
    assert_eq!(a["verdict"], "unauthenticated");
    assert_eq!(
        a["headers"],
        json!([{"authserv-id": MOX_ID, "dkim": [{"result": "pass", "header-d": "google.com", "header-i": "@google.com", "selector": "20210112"}]}])
    );
    assert!(
        log.contains(&format!(
            "dkim=unauthenticated untrusted-authserv-ids={MOX_ID}"
        )),
        "{log}"
    );
    // A header without DKIM results is kept too (it ends the trusted block), each value
    // bounded, and at most 16 headers.
    let long = "x".repeat(300) + "é";
    let mut ar: Vec<String> = vec![
        "relay.example; spf=pass smtp.mailfrom=google.com".into(),
        format!("mx.example.com; dkim=fail header.d={long}"),
    ];
    for i in 0..20 {
        ar.push(format!("h{i}.example; dkim=pass header.d=google.com"));
    }
    let refs: Vec<&str> = ar.iter().map(String::as_str).collect();
    let env = Env::new();
    run_log(
        &env,
        &["--trusted-authserv-id", "mx.example.com"],
        &failing_message(&refs, "google.com", "noreply@google.com"),
    );
    let h = env.records()[0]["authentication"]["headers"].clone();
    let h = h.as_array().unwrap();
    assert_eq!(h.len(), 16);
    assert_eq!(h[0], json!({"authserv-id": "relay.example", "dkim": []}));
    let d = h[1]["dkim"][0]["header-d"].as_str().unwrap();
    assert!(d.len() <= 255 && d.starts_with("xxx"), "{d}");
}

/// The alert follows the counting rule: one domain's sts sessions split over two
/// policies (SocketLabs) alert once, on 2 failed of 14; Microsoft's sts + tlsa over the
/// same sessions alert once, not twice.
#[test]
fn alerts_follow_the_counting_rule() {
    let doc = r#"{"organization-name":"SocketLabs","date-range":{"start-datetime":"2026-03-01T00:00:00Z","end-datetime":"2026-03-01T23:59:59Z"},"contact-info":"tlsrpt@socketlabs.com","report-id":"sl-1","policies":[
      {"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],"policy-domain":"example.com"},"summary":{"total-successful-session-count":12,"total-failure-session-count":0}},
      {"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx.example.com","max_age: 86400"],"policy-domain":"example.com"},"summary":{"total-successful-session-count":0,"total-failure-session-count":2},
       "failure-details":[{"result-type":"certificate-host-mismatch","receiving-mx-hostname":"mx.example.com","failed-session-count":2}]},
      {"policy":{"policy-type":"sts","policy-domain":"example.net"},"summary":{"total-successful-session-count":10,"total-failure-session-count":2},
       "failure-details":[{"result-type":"certificate-expired","failed-session-count":2}]},
      {"policy":{"policy-type":"tlsa","policy-domain":"example.net"},"summary":{"total-successful-session-count":10,"total-failure-session-count":2},
       "failure-details":[{"result-type":"dane-required","failed-session-count":2}]}]}"#;
    let env = Env::new();
    let log = run_log(&env, &["--alert-unauthenticated"], doc.as_bytes());
    let alerts: Vec<&str> = log.lines().filter(|l| l.contains("tlsrpt-alert")).collect();
    assert_eq!(alerts.len(), 2, "{log}");
    assert!(
        alerts[0].contains("policy-domain=example.com policy-type=sts")
            && alerts[0].contains(" failed=2 total=14 ")
            && alerts[0].contains("result-types=certificate-host-mismatch:2"),
        "{}",
        alerts[0]
    );
    assert!(
        alerts[1].contains("policy-domain=example.net policy-type=sts")
            && alerts[1].contains(" failed=2 total=12 ")
            && alerts[1].contains("result-types=certificate-expired:2"),
        "{}",
        alerts[1]
    );
    // Delivered again: nothing stored, no alert, and the line says which report it was.
    let log = run_log(&env, &["--alert-unauthenticated"], doc.as_bytes());
    assert!(!log.contains("tlsrpt-alert"), "{log}");
    assert!(
        log.contains("status=duplicate records=0 duplicates=1 organization=SocketLabs report-id=sl-1 policy-domains=example.com,example.net"),
        "{log}"
    );
}
