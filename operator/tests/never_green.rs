//! Monitoring that cannot stay silently green (issue "Monitoring that cannot stay
//! silently green"): check is UNKNOWN when a day file cannot be read (as the user who
//! meets it), WARNING when messages were quarantined in the window, and does not judge a
//! ratio below --min-sessions; `tlsrpt quarantine` lists, shows and retries through the
//! real tlsrpt-pipe, removing a message only once it is stored; metrics recounts when
//! its options change; errors name the cause and the fix with the right status.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use common::*;
use serde_json::json;

const NOBODY: u32 = 65_534;

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

fn today() -> i64 {
    tlsrpt_pipe::datetime::Timestamp::now().0.div_euclid(DAY) * DAY
}

/// `tlsrpt ARGS`, as `uid` when given.
fn run_as(args: &[&str], uid: Option<u32>) -> Output {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("TLSRPT_SPOOL")
        .env_remove("TLSRPT_DB")
        .stdin(Stdio::null());
    if let Some(u) = uid {
        use std::os::unix::process::CommandExt;
        c.uid(u).gid(u);
    }
    c.output().unwrap()
}

/// A spool in a directory others may enter, owned by `nobody` when we are root (as the
/// delivery user owns it), with one good report of yesterday.
fn spool(t: &Path) -> Spool {
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
    let s = Spool::new(t, "spool");
    let start = today() - DAY;
    s.put(&record(
        "Google Inc.",
        "g1",
        start,
        start + DAY + 60,
        true,
        vec![policy(
            "sts",
            "example.com",
            5,
            1,
            vec![detail(
                "certificate-expired",
                1,
                "192.0.2.1",
                "mx.example.com",
            )],
        )],
    ));
    std::fs::set_permissions(&s.dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if is_root() {
        chown_all(&s.dir, NOBODY);
    }
    s
}

fn chown_all(p: &Path, uid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(uid)).unwrap();
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            chown_all(&e.unwrap().path(), uid);
        }
    }
}

/// A day file this user cannot read: check cannot decide (UNKNOWN), never OK.
#[test]
fn an_unreadable_day_file_is_unknown() {
    let t = tempfile::tempdir().unwrap();
    let s = spool(t.path());
    let f = std::fs::read_dir(&s.dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    // As root, the user who meets it: a member of nothing, who cannot read the file.
    if is_root() {
        std::os::unix::fs::chown(&f, Some(0), Some(0)).unwrap();
    }
    let uid = is_root().then_some(NOBODY);
    let o = run_as(
        &["check", "--spool", s.dir.to_str().unwrap(), "--since", "7d"],
        uid,
    );
    assert_eq!(o.status.code(), Some(3), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("TLSRPT UNKNOWN - 1 day file of the spool could not be read"),
        "{}",
        stdout(&o)
    );
}

/// A quarantined message in the window is WARNING (how many, where); the summary counts
/// it; --min-sessions leaves a small domain's ratio unjudged, and says so.
#[test]
fn quarantine_and_min_sessions_in_check() {
    let t = tempfile::tempdir().unwrap();
    let s = spool(t.path());
    let sp = s.dir.to_str().unwrap();
    // 1 failed of 6 sessions: CRITICAL at -c 5...
    let o = run(&["check", "--spool", sp, "--since", "7d"]);
    assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
    // ...unless fewer than --min-sessions.
    let o = run(&[
        "check",
        "--spool",
        sp,
        "--since",
        "7d",
        "--min-sessions",
        "100",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("OK: example.com: 1 of 6 sessions failed, fewer than --min-sessions 100: ratio not judged"),
        "{}",
        stdout(&o)
    );
    // A message set aside an hour ago.
    let q = s.dir.join("quarantine");
    std::fs::create_dir(&q).unwrap();
    let now = tlsrpt_pipe::datetime::Timestamp::now();
    let name = format!(
        "{}.42.000000001",
        tlsrpt_pipe::datetime::Timestamp(now.0 - 3600).compact()
    );
    std::fs::write(
        q.join(format!("{name}.eml")),
        b"Subject: x\n\nnot a report\n",
    )
    .unwrap();
    std::fs::write(
        q.join(format!("{name}.json")),
        json!({"reason": "part 1: not JSON"}).to_string(),
    )
    .unwrap();
    let o = run(&[
        "check",
        "--spool",
        sp,
        "--since",
        "7d",
        "--min-sessions",
        "100",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains(&format!(
            "1 message quarantined in the window (unreadable reports, not judged) in {}/quarantine",
            s.dir.display()
        )),
        "{}",
        stdout(&o)
    );
    let doc = summary_json(&["--spool", sp, "--since", "7d"]);
    assert_eq!(doc["quarantined"], 1);
    let table = stdout(&run(&["summary", "--spool", sp, "--since", "7d"]));
    assert!(
        table.contains("1 message was set aside as unreadable in this window"),
        "{table}"
    );
    // Older than the window: not counted.
    let doc = summary_json(&[
        "--spool",
        sp,
        "--since",
        "2026-01-01",
        "--until",
        "2026-01-02",
    ]);
    assert_eq!(doc["quarantined"], 0);
}

/// Delivers `msg` with the real tlsrpt-pipe (as nobody when root) and `args`.
fn deliver(spool: &Path, msg: &[u8], args: &[&str]) -> Output {
    let mut c = Command::new(pipe_bin());
    c.arg("--spool").arg(spool).arg("--log-stderr").args(args);
    if is_root() {
        c.args(["--user", "nobody"]);
    }
    let mut child = c
        .env_remove("TLSRPT_SPOOL")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(msg).unwrap();
    child.wait_with_output().unwrap()
}

/// list, show, retry through the real delivery: a message set aside by a limit is
/// stored once the limit is lifted, and only then leaves the quarantine; one that is
/// still unreadable stays, and is not set aside twice.
#[test]
fn quarantine_list_show_retry() {
    let t = tempfile::tempdir().unwrap();
    let s = spool(t.path());
    let sp = s.dir.to_str().unwrap();
    let start = today() - DAY;
    let report = record(
        "Google Inc.",
        "q1",
        start,
        start + DAY + 60,
        true,
        vec![policy("sts", "example.com", 5, 0, vec![])],
    )["report"]
        .to_string();
    let msg = format!(
        "From: tlsrpt@google.com\nTo: tls-reports@example.com\nSubject: Report\nContent-Type: application/tlsrpt+json\n\n{report}\n"
    );
    // Over --max-message-size: set aside whole.
    let o = deliver(
        &s.dir,
        msg.as_bytes(),
        &[
            "--max-message-size",
            "200",
            "--recipient",
            "tls-reports@example.com",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stderr(&o).contains("status=quarantined"), "{}", stderr(&o));
    // Garbage: unreadable whatever the options.
    let o = deliver(
        &s.dir,
        b"Content-Type: application/tlsrpt+json\n\n{not json",
        &[],
    );
    assert!(stderr(&o).contains("status=quarantined"), "{}", stderr(&o));

    let o = run(&["quarantine", "--spool", sp, "list"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let listing = stdout(&o);
    assert!(
        listing.contains("message larger than 200 bytes"),
        "{listing}"
    );
    assert!(
        listing.ends_with(&format!("2 quarantined messages in {sp}\n")),
        "{listing}"
    );
    let big = listing
        .lines()
        .find(|l| l.contains("larger than"))
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let o = run(&["quarantine", "--spool", sp, "show", &big]);
    assert!(
        stdout(&o).contains("\"recipient\": \"tls-reports@example.com\""),
        "{}",
        stdout(&o)
    );
    assert!(stdout(&o).contains("Subject: Report"), "{}", stdout(&o));

    // Retry everything: the big one is stored and leaves; the garbage stays, once.
    let o = run(&[
        "quarantine",
        "--spool",
        sp,
        "retry",
        "--pipe",
        pipe_bin().to_str().unwrap(),
    ]);
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{}", stderr(&o));
    assert!(
        out.contains(&format!("{big}: stored, removed from the quarantine")),
        "{out}"
    );
    assert!(out.contains("still not readable, kept"), "{out}");
    assert!(
        out.ends_with("1 stored, 1 kept in the quarantine\n"),
        "{out}"
    );
    let left: Vec<_> = std::fs::read_dir(s.dir.join("quarantine"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 2, "the garbage's two files, not a second copy");
    // (The retried report has no DKIM verdict, as it came without A-R headers.)
    let doc = summary_json(&["--spool", sp, "--since", "7d", "--include-unauthenticated"]);
    assert_eq!(domain(&doc, "example.com")["reports"], 2);
    // The stored report kept its envelope.
    assert!(std::fs::read_dir(&s.dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        p.extension().is_some_and(|x| x == "jsonl")
            && std::fs::read_to_string(&p)
                .unwrap()
                .contains("\"recipient\":\"tls-reports@example.com\"")
    }));
    // Again: nothing more stored.
    let o = run(&[
        "quarantine",
        "--spool",
        sp,
        "retry",
        "--pipe",
        pipe_bin().to_str().unwrap(),
    ]);
    assert!(
        stdout(&o).ends_with("0 stored, 1 kept in the quarantine\n"),
        "{}",
        stdout(&o)
    );
    let o = run(&["quarantine", "--spool", sp, "show", "no-such"]);
    assert_eq!(o.status.code(), Some(2));
}

/// metrics made with other options are recounted, not kept.
#[test]
fn metrics_recount_when_options_change() {
    let t = tempfile::tempdir().unwrap();
    let s = spool(t.path());
    let start = today() - DAY;
    s.put(&record(
        "Forger",
        "f1",
        start,
        start + DAY + 60,
        false,
        vec![policy("sts", "example.com", 0, 7, vec![])],
    ));
    let sp = s.dir.to_str().unwrap();
    let tf = t.path().join("t.prom");
    let tfs = tf.to_str().unwrap();
    let successful = |text: &str| -> String {
        text.lines()
            .find(|l| l.starts_with("tlsrpt_domain_sessions_total{policy_domain=\"example.com\",result=\"unspecified-failure\",authenticated=\"true\"}"))
            .unwrap_or("none")
            .to_owned()
    };
    assert_eq!(
        run(&["metrics", "--spool", sp, "--textfile", tfs])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(successful(&std::fs::read_to_string(&tf).unwrap()), "none");
    assert_eq!(
        run(&[
            "metrics",
            "--spool",
            sp,
            "--textfile",
            tfs,
            "--include-unauthenticated"
        ])
        .status
        .code(),
        Some(0)
    );
    assert!(
        successful(&std::fs::read_to_string(&tf).unwrap()).ends_with(" 7"),
        "the option was ignored"
    );
    assert_eq!(
        run(&["metrics", "--spool", sp, "--textfile", tfs])
            .status
            .code(),
        Some(0)
    );
    assert_eq!(successful(&std::fs::read_to_string(&tf).unwrap()), "none");
}

/// Errors that name the cause and the fix, with statuses that match.
#[test]
fn errors_name_the_cause_and_the_fix() {
    let t = tempfile::tempdir().unwrap();
    let s = spool(t.path());
    let sp = s.dir.to_str().unwrap();
    // check --db of a file that does not exist: UNKNOWN, and nothing created.
    let db = t.path().join("typo.db");
    let o = run(&["check", "--db", &format!("sqlite://{}", db.display())]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    assert!(stdout(&o).contains("no such database"), "{}", stdout(&o));
    assert!(!db.exists(), "check --db created the database");
    let o = run(&["summary", "--db", &format!("sqlite://{}", db.display())]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!db.exists());
    // metrics into a directory that does not exist: the directory named.
    let o = run(&[
        "metrics",
        "--spool",
        sp,
        "--textfile",
        "/nonexistent-dir/x.prom",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the directory /nonexistent-dir does not exist"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(".lock"), "{}", stderr(&o));
    // check-record with a domain and --record: what to drop.
    let o = run(&[
        "check-record",
        "example.com",
        "--record",
        "v=TLSRPTv1; rua=mailto:a@example.com",
    ]);
    assert_eq!(o.status.code(), Some(3));
    assert!(stdout(&o).contains("drop the DOMAIN"), "{}", stdout(&o));
    // load into a directory that does not exist: permanent (1), not retried forever.
    let o = run(&[
        "load",
        "--spool",
        sp,
        "--db",
        "sqlite:///nonexistent-dir/x.db",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("create it"), "{}", stderr(&o));
}

/// A window of years: the daily series in buckets (at most 100 entries per domain), the
/// sessions all there; JSON and HTML stay small.
#[test]
fn long_windows_stay_small() {
    let t = tempfile::tempdir().unwrap();
    let s = spool(t.path());
    let sp = s.dir.to_str().unwrap();
    for (i, days_back) in [3i64, 40, 400, 2000].iter().enumerate() {
        let start = today() - days_back * DAY;
        s.put(&record(
            "Google Inc.",
            &format!("old{i}"),
            start,
            start + DAY + 60,
            true,
            vec![policy("sts", "example.com", 10, 1, vec![])],
        ));
    }
    let o = run(&[
        "summary",
        "--spool",
        sp,
        "--since",
        "2015-01-01",
        "--format",
        "json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        o.stdout.len() < 64 * 1024,
        "{} bytes of JSON",
        o.stdout.len()
    );
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["window"]["series-days"], 91);
    let d = domain(&doc, "example.com");
    let daily = d["daily"].as_array().unwrap();
    assert!(daily.len() <= 100, "{} entries", daily.len());
    let sum = |k: &str| daily.iter().map(|x| x[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(
        (sum("successful-sessions"), sum("failed-sessions")),
        (5 + 40, 1 + 4)
    );
    let o = run(&[
        "summary",
        "--spool",
        sp,
        "--since",
        "2015-01-01",
        "--format",
        "html",
    ]);
    assert!(
        o.stdout.len() < 128 * 1024,
        "{} bytes of HTML",
        o.stdout.len()
    );
    assert!(stdout(&o).contains("sessions per quarter"));
    // A week: days.
    let doc = summary_json(&["--spool", sp, "--since", "7d"]);
    assert_eq!(doc["window"]["series-days"], 1);
}
