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
