//! Syslog delivery log and alerts, against a datagram socket the test binds (as
//! syslogd would) and against a real rsyslogd.

mod common;
use common::*;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary logging to `socket` (not env.cmd(), which logs to stderr). These reports
/// carry no trusted Authentication-Results, so alerts are allowed explicitly
/// (tests/auth.rs covers the default).
fn syslog_cmd(env: &Env, socket: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--spool")
        .arg(&env.spool)
        .arg("--syslog-socket")
        .arg(socket);
    c.arg("--alert-unauthenticated");
    if is_root() {
        c.args(["--user", "nobody"]);
    }
    c
}

/// Runs one delivery with `--syslog-socket` pointed at a socket bound here; returns
/// (exit status, datagrams received).
fn deliver(env: &Env, args: &[&str], input: &[u8]) -> (i32, Vec<String>) {
    let sock_path = env
        .dir
        .path()
        .join(format!("log-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&sock_path);
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    std::fs::set_permissions(
        &sock_path,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .unwrap();
    let mut c = syslog_cmd(env, &sock_path);
    c.args(args);
    let o = run_cmd(c, input);
    sock.set_nonblocking(true).unwrap();
    let mut lines = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sock.recv(&mut buf) {
        lines.push(String::from_utf8(buf[..n].to_vec()).expect("datagram is UTF-8"));
    }
    let _ = std::fs::remove_file(&sock_path);
    (code(&o), lines)
}

/// `<PRI>` of a datagram.
fn pri(line: &str) -> u32 {
    line[1..line.find('>').unwrap()].parse().unwrap()
}

const MAIL: u32 = 2 * 8;
const CRIT: u32 = 2;
const ERR: u32 = 3;
const WARNING: u32 = 4;
const INFO: u32 = 6;

fn failing(org: &str, id: &str, rows: &[(&str, u64)]) -> Vec<u8> {
    let details: Vec<String> = rows
        .iter()
        .map(|(t, n)| format!(r#"{{"result-type":"{t}","receiving-mx-hostname":"mx1.example.com","receiving-ip":"192.0.2.25","failed-session-count":{n}}}"#))
        .collect();
    let total: u64 = rows.iter().map(|r| r.1).sum();
    report_json(org, id, total, &details.join(",")).into_bytes()
}

#[test]
fn one_info_line_per_delivery_and_alert_severity_by_meaning() {
    let env = Env::new();
    let (rc, lines) = deliver(&env, &[], &fixture("mjl-_mox/example.eml"));
    assert_eq!(rc, 0);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(pri(&lines[0]), MAIL + INFO);
    assert!(
        lines[0].contains("tlsrpt-pipe[") && lines[0].contains("]: status=stored records=1"),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("organization=\"Google Inc.\""),
        "{}",
        lines[0]
    );

    for (rows, want, id) in [
        (
            vec![("starttls-not-supported", 3), ("certificate-expired", 1)],
            CRIT,
            "a1",
        ),
        (vec![("certificate-host-mismatch", 2)], ERR, "a2"),
        (vec![("dane-required", 2)], ERR, "a3"),
        (vec![("sts-policy-fetch-error", 5)], WARNING, "a4"),
        (vec![("some-future-type", 1)], WARNING, "a5"),
    ] {
        let (rc, lines) = deliver(&env, &[], &failing("Org", id, &rows));
        assert_eq!(rc, 0);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(pri(&lines[0]), MAIL + INFO);
        let alert = &lines[1];
        assert_eq!(pri(alert), MAIL + want, "{alert}");
        assert!(alert.contains(" tlsrpt-alert "), "{alert}");
        for field in [
            "policy-domain=example.com",
            "policy-type=sts",
            "organization=Org",
            &format!("report-id={id}"),
            "start=2024-05-01T00:00:00Z",
            "end=2024-05-01T23:59:59Z",
            "mx-hosts=mx1.example.com",
            "ips=192.0.2.25",
        ] {
            assert!(alert.contains(field), "{field} missing: {alert}");
        }
        let failed: u64 = rows.iter().map(|r| r.1).sum();
        assert!(
            alert.contains(&format!("failed={failed} total={}", failed + 100)),
            "{alert}"
        );
        for (t, n) in &rows {
            assert!(alert.contains(&format!("{t}:{n}")), "{alert}");
        }
    }
}

#[test]
fn no_alert_for_success_only_or_duplicates() {
    let env = Env::new();
    let (_, lines) = deliver(&env, &[], &report_json("Org", "ok1", 0, "").into_bytes());
    assert_eq!(lines.len(), 1, "{lines:?}");
    let bad = failing("Org", "dup", &[("starttls-not-supported", 1)]);
    let (_, first) = deliver(&env, &[], &bad);
    assert_eq!(first.len(), 2, "{first:?}");
    let (_, again) = deliver(&env, &[], &bad);
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(again[0].contains("status=duplicate"), "{}", again[0]);
}

#[test]
fn thresholds_from_the_command_line() {
    let env = Env::new();
    let rep = failing(
        "Org",
        "t1",
        &[("sts-policy-fetch-error", 3), ("starttls-not-supported", 1)],
    );
    let (_, lines) = deliver(
        &env,
        &[
            "--alert-result-type",
            "sts-policy-fetch-error=10",
            "--alert-min-failed",
            "5",
            "--alert-result-type",
            "starttls-not-supported=1",
        ],
        &rep,
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(pri(&lines[1]), MAIL + CRIT);
    let env = Env::new();
    let (_, lines) = deliver(&env, &["--alert-domain", "other.example"], &rep);
    assert_eq!(lines.len(), 1, "domain filter: {lines:?}");
    let env = Env::new();
    let (_, lines) = deliver(&env, &["--alert-min-ratio", "0.5"], &rep);
    assert_eq!(lines.len(), 1, "ratio 4/104 is below 0.5: {lines:?}");
}

#[test]
fn hostile_fields_cannot_forge_log_lines() {
    let env = Env::new();
    let doc = serde_json::json!({
        "organization-name": "Evil\r\n<11>Jan  1 00:00:00 host sshd[1]: Accepted password for root\u{1b}[2J",
        "date-range": {"start-datetime": "2024-05-01T00:00:00Z", "end-datetime": "2024-05-01T23:59:59Z"},
        "contact-info": "x@example.net",
        "report-id": "id\nsecond line\u{7f}\u{0}",
        "policies": [{
            "policy": {"policy-type": "sts\r\nfake", "policy-domain": "example.com\n"},
            "summary": {"total-successful-session-count": 1, "total-failure-session-count": 2},
            "failure-details": [{
                "result-type": "starttls-not-supported\r\nX",
                "receiving-mx-hostname": "mx\u{1b}]0;pwned\u{7}.example.com",
                "receiving-mx-helo": "mx ESMTP\r\n250-PIPELINING\r\n250 STARTTLS",
                "receiving-ip": "192.0.2.1\r\n",
                "failure-reason-code": "bad\r\ncode",
                "failed-session-count": 2
            }]
        }]
    });
    let (rc, lines) = deliver(&env, &[], doc.to_string().as_bytes());
    assert_eq!(rc, 0);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for l in &lines {
        assert!(
            !l.chars().any(|c| c.is_control()),
            "control character in {l:?}"
        );
    }
    assert!(
        lines[0].contains("organization=\"Evil  <11>Jan"),
        "{}",
        lines[0]
    );
    // The record keeps the report exactly as sent (JSON-escaped, one line).
    let rec = &env.records()[0];
    assert_eq!(
        rec["report"]["policies"][0]["failure-details"][0]["receiving-mx-helo"],
        "mx ESMTP\r\n250-PIPELINING\r\n250 STARTTLS"
    );
}

#[test]
fn rfc5424_carries_structured_data_and_facility_is_configurable() {
    let env = Env::new();
    let rep = failing("Org", "s1", &[("certificate-expired", 2)]);
    let (_, lines) = deliver(
        &env,
        &["--syslog-format", "rfc5424", "--syslog-facility", "local3"],
        &rep,
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    let local3 = 19 * 8;
    assert_eq!(pri(&lines[0]), local3 + INFO);
    assert!(
        lines[1].starts_with(&format!("<{}>1 ", local3 + ERR)),
        "{}",
        lines[1]
    );
    assert!(lines[1].contains("[tlsrpt@32473 "), "{}", lines[1]);
    assert!(
        lines[1].contains("policy-domain=\"example.com\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[1].contains("result-types=\"certificate-expired:2\""),
        "{}",
        lines[1]
    );
}

#[test]
fn without_syslog_lines_go_to_stderr_and_exit_status_is_unchanged() {
    let env = Env::new();
    // A socket path nobody listens on.
    let c = syslog_cmd(&env, &env.dir.path().join("nobody-listens.sock"));
    let o = run_cmd(c, &failing("Org", "e1", &[("certificate-expired", 1)]));
    assert_eq!(code(&o), 0);
    let err = stderr(&o);
    assert!(
        err.contains("info: status=stored") && err.contains("err: tlsrpt-alert"),
        "{err}"
    );
    assert_eq!(env.records().len(), 1);
}

/// A real rsyslogd with the contrib/ rules (paths moved into the test's directory).
#[test]
#[ignore = "needs rsyslogd"]
fn real_rsyslogd_routes_alerts_to_their_own_file() {
    let rsyslogd = require_tool(&["/usr/sbin/rsyslogd", "/sbin/rsyslogd"], "rsyslog");
    let env = Env::new();
    let d = env.dir.path();
    let logdir = d.join("logs");
    std::fs::create_dir(&logdir).unwrap();
    let sock = d.join("rsyslog.sock");
    let contrib = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/rsyslog/tlsrpt.conf"),
    )
    .unwrap();
    let rules = contrib.replace("/var/log/tlsrpt/", &format!("{}/", logdir.display()));
    let conf = format!(
        "global(workDirectory=\"{d}\")\nmodule(load=\"imuxsock\" SysSock.Use=\"off\")\ninput(type=\"imuxsock\" Socket=\"{s}\")\n{rules}\n",
        d = d.display(),
        s = sock.display()
    );
    let conf_path = d.join("rsyslog.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let mut daemon = Command::new(rsyslogd)
        .arg("-n")
        .arg("-f")
        .arg(&conf_path)
        .arg("-i")
        .arg(d.join("rsyslogd.pid"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rsyslogd");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(sock.exists(), "rsyslogd did not create its socket");
    std::fs::set_permissions(&sock, std::os::unix::fs::PermissionsExt::from_mode(0o666)).unwrap();
    let c = syslog_cmd(&env, &sock);
    let o = run_cmd(
        c,
        &failing("Real Syslog Org", "r1", &[("starttls-not-supported", 4)]),
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let alerts = logdir.join("alerts.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&alerts).unwrap_or_default();
        if text.contains("tlsrpt-alert") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let out = daemon.wait_with_output().unwrap();
    assert!(
        text.contains("tlsrpt-alert severity=crit policy-domain=example.com")
            && text.contains("organization=\"Real Syslog Org\""),
        "alerts.log: {text:?}; rsyslogd: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("status=stored"),
        "info lines must not go to alerts.log"
    );
    let deliveries = std::fs::read_to_string(logdir.join("deliveries.log")).unwrap_or_default();
    assert!(
        deliveries.contains("status=stored"),
        "deliveries.log: {deliveries:?}"
    );
}
