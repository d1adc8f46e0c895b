//! The exit-status contract with the MTA: 0 only when stored or deliberately set
//! aside; 75 for every local failure; never 101, never a bounce for a bad report.

mod common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

fn good() -> Vec<u8> {
    fixture("mjl-_mox/example.eml")
}

#[track_caller]
fn tempfail(o: &std::process::Output, want: &str) {
    let err = stderr(o);
    assert_eq!(code(o), 75, "stderr: {err}");
    let last = err.lines().last().unwrap_or("");
    assert!(
        last.starts_with("tlsrpt-pipe: ") && last.contains(want),
        "{err}"
    );
}

#[test]
fn unwritable_spool_defers_then_succeeds() {
    let env = Env::new();
    std::fs::set_permissions(&env.spool, std::fs::Permissions::from_mode(0o550)).unwrap();
    if is_root() {
        // nobody is not the owner of a root-owned 0550 directory.
        nix::unistd::chown(&env.spool, Some(nix::unistd::Uid::from_raw(0)), None).unwrap();
    }
    tempfail(&env.run(&[], &good()), "spool: cannot");
    assert!(env.records().is_empty());
    if is_root() {
        nix::unistd::chown(&env.spool, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
    }
    std::fs::set_permissions(&env.spool, std::fs::Permissions::from_mode(0o750)).unwrap();
    ok(&env.run(&[], &good()));
    assert_eq!(env.records().len(), 1);
}

#[test]
fn missing_spool_defers() {
    let env = Env::new();
    std::fs::remove_dir_all(&env.spool).unwrap();
    tempfail(&env.run(&[], &good()), "open spool directory");
    assert!(!env.spool.exists());
}

#[test]
fn world_writable_spool_is_refused() {
    let env = Env::new();
    std::fs::set_permissions(&env.spool, std::fs::Permissions::from_mode(0o777)).unwrap();
    tempfail(&env.run(&[], &good()), "world-writable");
}

#[test]
fn bad_arguments_defer_instead_of_bouncing() {
    let env = Env::new();
    tempfail(&env.run(&["--no-such-option"], &good()), "usage:");
    tempfail(&env.run(&["--max-message-size", "lots"], &good()), "usage:");
}

#[test]
fn help_and_version_exit_zero() {
    for a in ["--help", "--version"] {
        let o = Command::new(BIN).arg(a).output().unwrap();
        assert_eq!(code(&o), 0);
        assert!(!o.stdout.is_empty());
    }
}

#[test]
#[ignore = "needs root"]
fn root_without_user_is_refused() {
    require_root();
    let env = Env::new();
    let mut c = Command::new(BIN);
    c.arg("--spool").arg(&env.spool).arg("--log-stderr");
    tempfail(&run_cmd(c, &good()), "refusing to run as root");
    assert!(env.records().is_empty());
}

#[test]
fn empty_and_random_input_never_panic() {
    let env = Env::new();
    let err = ok(&env.run(&[], b""));
    assert!(err.contains("status=no-report"), "{err}");
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for len in [1usize, 7, 100, 4096, 100_000] {
        let mut buf = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            buf.push(seed as u8);
        }
        for prefix in [
            &b""[..],
            b"\x1f\x8b",
            b"PK\x03\x04",
            b"{",
            b"Content-Type: multipart/report; boundary=x\n\n--x\n",
        ] {
            let mut input = prefix.to_vec();
            input.extend(&buf);
            let o = env.run(&[], &input);
            assert_eq!(code(&o), 0, "len {len} prefix {prefix:?}: {}", stderr(&o));
            assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
        }
    }
    assert!(env.records().is_empty());
}

#[test]
fn a_panic_is_exit_75_not_101() {
    let env = Env::new();
    let o = run_cmd(
        {
            let mut c = env.cmd(&[]);
            c.env("TLSRPT_PIPE_FAULT", "panic");
            c
        },
        &good(),
    );
    tempfail(&o, "internal error: fault injected");
    assert_eq!(stderr(&o).lines().count(), 1);
}

#[test]
fn dry_run_prints_records_and_touches_nothing() {
    let env = Env::new();
    std::fs::remove_dir_all(&env.spool).unwrap();
    let o = env.run(&["--dry-run"], &good());
    ok(&o);
    let line: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["report"]["organization-name"], "Google Inc.");
    assert!(!env.spool.exists());
}

#[test]
fn envelope_from_options_and_exim_environment() {
    let env = Env::new();
    let args = [
        "--sender",
        "",
        "--recipient",
        "tls-reports@example.com",
        "--original-recipient",
        "TLS-Reports@example.com",
        "--queue-id",
        "4F2K1x0Zq",
        "--client-address",
        "",
        "--size",
        "4244",
    ];
    ok(&env.run(&args, &good()));
    let e = &env.records()[0]["envelope"];
    assert_eq!(e["sender"], "");
    assert_eq!(e["recipient"], "tls-reports@example.com");
    assert_eq!(e["original-recipient"], "TLS-Reports@example.com");
    assert_eq!(e["queue-id"], "4F2K1x0Zq");
    assert_eq!(e["client-address"], "");
    assert_eq!(e["size"], "4244");

    let env = Env::new();
    let mut c = env.cmd(&[]);
    c.env("SENDER", "noreply@google.com")
        .env("RECIPIENT", "tls@example.com")
        .env("MESSAGE_ID", "1qXyZ-000abc-Ab");
    ok(&run_cmd(c, &good()));
    let e = &env.records()[0]["envelope"];
    assert_eq!(e["sender"], "noreply@google.com");
    assert_eq!(e["recipient"], "tls@example.com");
    assert_eq!(e["queue-id"], "1qXyZ-000abc-Ab");
}

#[test]
fn redelivery_is_stored_once() {
    let env = Env::new();
    ok(&env.run(&[], &good()));
    let err = ok(&env.run(&[], &good()));
    assert!(err.contains("status=duplicate"), "{err}");
    // The same report forwarded inside another message is the same report.
    let fwd = format!(
        "From: a@example.com\nSubject: Fwd\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"z\"\n\n--z\nContent-Type: message/rfc822\n\n{}\n--z--\n",
        String::from_utf8(good()).unwrap()
    );
    assert!(ok(&env.run(&[], fwd.as_bytes())).contains("status=duplicate"));
    assert_eq!(env.records().len(), 1);
}

#[test]
fn limits_quarantine_instead_of_failing() {
    // Oversized message: streamed to quarantine whole.
    let env = Env::new();
    let big = good();
    let err = ok(&env.run(&["--max-message-size", "1K"], &big));
    assert!(err.contains("message larger than 1024 bytes"), "{err}");
    let q = env.quarantined();
    assert_eq!(q[0].0, big);
    assert_eq!(q[0].1["truncated"], false);

    // Too many reports.
    let env = Env::new();
    let parts: Vec<Part> = (0..5)
        .map(|i| {
            attachment(
                "application/tlsrpt+json",
                "attachment",
                report_json("O", &format!("id{i}"), 0, "").as_bytes(),
            )
        })
        .collect();
    let err = ok(&env.run(&["--max-reports", "3"], &report_message("", &parts)));
    assert_eq!(env.records().len(), 3);
    assert!(err.contains("more than 3 report documents"), "{err}");

    // Too deep.
    let env = Env::new();
    let mut msg = String::from_utf8(good()).unwrap();
    for i in 0..5 {
        msg = format!(
            "Subject: fwd {i}\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"d{i}\"\n\n--d{i}\nContent-Type: message/rfc822\n\n{msg}\n--d{i}--\n"
        );
    }
    let err = ok(&env.run(&["--max-depth", "3"], msg.as_bytes()));
    assert!(err.contains("MIME nesting deeper than 3"), "{err}");
    assert_eq!(env.quarantined().len(), 1);

    // Decompressed size.
    let env = Env::new();
    let doc = report_json("O", "big", 0, "");
    let msg = gzip_report_message(doc.as_bytes());
    let err = ok(&env.run(&["--max-report-size", "100"], &msg));
    assert!(
        err.contains("decompressed report exceeds 100 bytes"),
        "{err}"
    );
}

#[test]
fn dry_run_tells_the_same_story_as_the_delivery() {
    // One message carrying the same report twice: a delivery stores one, logs a duplicate.
    let doc = report_json("Org", "twice-1", 2, "");
    let part = || attachment("application/tlsrpt+json", "attachment", doc.as_bytes());
    let msg = report_message("", &[part(), part()]);
    let env = Env::new();
    let dry = env.run(&["--dry-run"], &msg);
    let dry_log = ok(&dry);
    assert_eq!(String::from_utf8_lossy(&dry.stdout).lines().count(), 1);
    assert!(dry_log.contains("records=1 duplicates=1"), "{dry_log}");
    assert!(env.records().is_empty(), "a dry run stored something");
    let real_log = ok(&env.run(&[], &msg));
    assert!(real_log.contains("records=1 duplicates=1"), "{real_log}");
    assert_eq!(env.records().len(), 1);
    // Once the spool holds it, a dry run of the same message says duplicate too.
    let again = env.run(&["--dry-run"], &msg);
    let again_log = ok(&again);
    assert!(again.stdout.is_empty());
    assert!(again_log.contains("status=duplicate"), "{again_log}");
}

/// `--leave-unrecognized`, for mail retrievers: a message without a TLS report exits 65
/// (the retriever leaves it in the mailbox) and is neither stored nor quarantined; a
/// report, a duplicate, a quarantined report and local trouble keep their statuses.
#[test]
fn leave_unrecognized_tells_a_retriever_to_keep_non_reports() {
    let env = Env::new();
    let dmarc = b"From: noreply-dmarc-support@google.com\nSubject: Report domain: example.com Submitter: google.com\nContent-Type: text/plain\n\n<feedback/>\n";
    for msg in [
        &b"From: a@example.org\nSubject: hi\n\nhello\n"[..],
        &dmarc[..],
        b"",
    ] {
        let o = env.run(&["--leave-unrecognized"], msg);
        assert_eq!(code(&o), 65, "{}", stderr(&o));
        assert!(stderr(&o).contains("status=no-report"), "{}", stderr(&o));
    }
    assert!(env.records().is_empty() && env.quarantined().is_empty());
    ok(&env.run(&["--leave-unrecognized"], &good()));
    let err = ok(&env.run(&["--leave-unrecognized"], &good()));
    assert!(err.contains("status=duplicate"), "{err}");
    ok(&env.run(
        &["--leave-unrecognized"],
        &fixture("YnkDK_tls_reporting/truncated.gz"),
    ));
    assert_eq!(
        env.quarantined().len(),
        1,
        "a broken report is set aside, exit 0"
    );
    // Not with --keep-unrecognized: that would drop what it promises to keep.
    tempfail(
        &env.run(&["--leave-unrecognized", "--keep-unrecognized"], &good()),
        "usage:",
    );
}
