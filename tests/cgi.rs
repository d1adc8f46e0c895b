//! The CGI contract (RFC 3875) of tlsrpt-pipe, running the real binary with the
//! meta-variables a web server sets: real corpus reports stored (gzip and JSON), a
//! duplicate, wrong method, length and type, oversize refused before reading, garbage,
//! a gzip bomb, an unwritable spool then retried, accepted domains, the record's
//! transport fields, and no alert from an unauthenticated HTTPS report.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

struct Answer {
    status: u16,
    headers: String,
    body: String,
    stderr: String,
    code: i32,
}

fn cgi(env: &Env, vars: &[(&str, &str)], body: &[u8], extra: &[&str]) -> Answer {
    let mut c: Command = env.cmd(extra);
    c.env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("REMOTE_ADDR", "192.0.2.77")
        .env("HTTP_USER_AGENT", "test-sender/1.0");
    for (k, v) in vars {
        c.env(k, v);
    }
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().unwrap();
    // The program may answer without reading (413): a closed pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(body);
    let o = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    let (headers, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end: {text:?}"));
    let status = headers
        .lines()
        .find_map(|l| l.strip_prefix("Status: "))
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no Status: {headers}"));
    Answer {
        status,
        headers: headers.to_owned(),
        body: body.to_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        code: o.status.code().unwrap_or(-1),
    }
}

fn post<'a>(ct: &'a str, len: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("REQUEST_METHOD", "POST"),
        ("CONTENT_TYPE", ct),
        ("CONTENT_LENGTH", len),
    ]
}

#[test]
fn real_reports_stored_duplicates_200() {
    let env = Env::new();
    // A real gzip report (Google's, from the corpus) and a real JSON one.
    let gz = fixture("YnkDK_tls_reporting/example.gz");
    let n = gz.len().to_string();
    let a = cgi(&env, &post("application/tlsrpt+gzip", &n), &gz, &[]);
    assert_eq!((a.status, a.code), (201, 0), "{} {}", a.body, a.stderr);
    assert!(
        a.headers.contains("Content-Type: text/plain"),
        "{}",
        a.headers
    );
    let a = cgi(&env, &post("application/tlsrpt+gzip", &n), &gz, &[]);
    assert_eq!(a.status, 200, "{}", a.body);
    let json = fixture("stalwartlabs_mail-auth/rpt02.json");
    let n = json.len().to_string();
    // A wrong declared type is overruled by the body's own signature.
    let a = cgi(&env, &post("application/octet-stream", &n), &json, &[]);
    assert_eq!(a.status, 201, "{} {}", a.body, a.stderr);
    let recs = env.records();
    assert_eq!(recs.len(), 2);
    for r in &recs {
        assert_eq!(r["version"], 3);
        assert_eq!(r["source"]["transport"], "https");
        assert_eq!(r["source"]["remote-address"], "192.0.2.77");
        assert_eq!(r["source"]["user-agent"], "test-sender/1.0");
        assert_eq!(r["authentication"]["verdict"], "unauthenticated");
        assert_eq!(r["envelope"], serde_json::json!({}));
    }
    assert_eq!(recs[0]["source"]["content-type"], "application/tlsrpt+gzip");
    assert!(
        a.stderr.contains("transport=https") && a.stderr.contains("remote-address=192.0.2.77"),
        "{}",
        a.stderr
    );
}

#[test]
fn the_refusals() {
    let env = Env::new();
    let a = cgi(&env, &[("REQUEST_METHOD", "GET")], b"", &[]);
    assert_eq!(a.status, 405);
    assert!(a.headers.contains("Allow: POST"), "{}", a.headers);
    let a = cgi(
        &env,
        &[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_TYPE", "application/tlsrpt+json"),
        ],
        b"{}",
        &[],
    );
    assert_eq!(a.status, 411);
    let a = cgi(&env, &post("text/html", "6"), b"<html>", &[]);
    assert_eq!(a.status, 415);
    // Over the limit: refused from the declared length, the body never read (stdin
    // holds nothing, so reading would have answered 400 "body ended").
    let a = cgi(&env, &post("application/tlsrpt+gzip", "20000000"), b"", &[]);
    assert_eq!(a.status, 413, "{}", a.body);
    // A de-chunked body without a length: read to the end under the cap.
    let json = report_json("Chunky", "chunk-1", 0, "");
    let a = cgi(
        &env,
        &[
            ("REQUEST_METHOD", "POST"),
            ("CONTENT_TYPE", "application/tlsrpt+json"),
            ("HTTP_TRANSFER_ENCODING", "chunked"),
        ],
        json.as_bytes(),
        &[],
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let big = vec![b' '; 2048];
    let a = cgi(
        &env,
        &[
            ("REQUEST_METHOD", "POST"),
            ("HTTP_TRANSFER_ENCODING", "chunked"),
        ],
        &big,
        &["--max-body-size", "1K"],
    );
    assert_eq!(a.status, 413);
    assert!(env.quarantined().is_empty());
    assert!(!a.body.contains('/'), "a path in a body: {}", a.body);
}

#[test]
fn bad_bodies_are_400_and_kept() {
    let env = Env::new();
    let a = cgi(
        &env,
        &post("application/tlsrpt+json", "9"),
        b"{\"a\": 1}\n",
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.starts_with("not a usable TLS report"), "{}", a.body);
    let g = gzip(b"not json at all");
    let a = cgi(
        &env,
        &post("application/tlsrpt+gzip", &g.len().to_string()),
        &g,
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(env.quarantined().len(), 2);
    assert!(env.records().is_empty());
    // A gzip bomb: quarantined, memory bounded (the decompressed limit).
    let bomb = gzip(&vec![b'{'; 64 << 20]);
    let a = cgi(
        &env,
        &post("application/tlsrpt+gzip", &bomb.len().to_string()),
        &bomb,
        &[],
    );
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("exceeds"), "{}", a.body);
    assert!(!a.body.contains('/'), "{}", a.body);
}

#[test]
fn local_trouble_is_503_then_the_retry_is_stored_once() {
    let env = Env::new();
    let json = report_json("Retry Org", "retry-1", 1, "");
    let n = json.len().to_string();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&env.spool).unwrap().permissions().mode();
    // Unwritable even for root: replace the spool by a file.
    std::fs::rename(&env.spool, env.dir.path().join("spool.away")).unwrap();
    std::fs::write(&env.spool, b"not a directory").unwrap();
    let a = cgi(
        &env,
        &post("application/tlsrpt+json", &n),
        json.as_bytes(),
        &[],
    );
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.headers.contains("Retry-After: 600"), "{}", a.headers);
    assert!(!a.body.contains("spool"), "{}", a.body);
    std::fs::remove_file(&env.spool).unwrap();
    std::fs::rename(env.dir.path().join("spool.away"), &env.spool).unwrap();
    std::fs::set_permissions(&env.spool, std::fs::Permissions::from_mode(mode)).unwrap();
    let a = cgi(
        &env,
        &post("application/tlsrpt+json", &n),
        json.as_bytes(),
        &[],
    );
    assert_eq!(a.status, 201, "{}", a.body);
    let a = cgi(
        &env,
        &post("application/tlsrpt+json", &n),
        json.as_bytes(),
        &[],
    );
    assert_eq!(a.status, 200);
    assert_eq!(env.records().len(), 1);
}

#[test]
fn accepted_domains_and_alerts() {
    let env = Env::new();
    let json = report_json(
        "Stranger",
        "acc-1",
        5,
        r#"{"result-type":"starttls-not-supported","failed-session-count":5}"#,
    );
    let n = json.len().to_string();
    let mut vars = post("application/tlsrpt+json", &n);
    vars.push(("TLSRPT_ACCEPT_DOMAINS", "example.net,other.example"));
    let a = cgi(&env, &vars, json.as_bytes(), &[]);
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("not accepted"), "{}", a.body);
    assert_eq!(env.quarantined().len(), 1);
    // Accepted, but unauthenticated: stored, no alert...
    let mut vars = post("application/tlsrpt+json", &n);
    vars.push(("TLSRPT_ACCEPT_DOMAINS", "example.com"));
    let a = cgi(&env, &vars, json.as_bytes(), &[]);
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(!a.stderr.contains("tlsrpt-alert"), "{}", a.stderr);
    // ...unless the web server opts in.
    let json2 = report_json(
        "Stranger",
        "acc-2",
        5,
        r#"{"result-type":"starttls-not-supported","failed-session-count":5}"#,
    );
    let n2 = json2.len().to_string();
    let mut vars = post("application/tlsrpt+json", &n2);
    vars.push(("TLSRPT_ALERT_UNAUTHENTICATED", "1"));
    let a = cgi(&env, &vars, json2.as_bytes(), &[]);
    assert_eq!(a.status, 201, "{}", a.body);
    assert!(
        a.stderr.contains("tlsrpt-alert severity=crit"),
        "{}",
        a.stderr
    );
}
