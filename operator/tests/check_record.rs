//! `tlsrpt check-record` against a real authoritative DNS server (Debian `nsd`, started
//! by the test on 127.0.0.1 and a free port, stopped after) serving a test zone, plus a
//! UDP responder that answers SERVFAIL and one that never answers. The offline parser's
//! table of records is in src/txt_record.rs. The nsd test is #[ignore]d on the host and
//! run by tests/run.sh in its disposable root.

mod common;

use std::net::UdpSocket;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;

const ZONE: &str = r#"$ORIGIN tlsrpt.test.
$TTL 3600
@               IN SOA ns.tlsrpt.test. hostmaster.tlsrpt.test. 1 3600 900 604800 300
@               IN NS  ns.tlsrpt.test.
ns              IN A   127.0.0.1
_smtp._tls.good IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@good.tlsrpt.test"
good            IN MX  10 mx1.good.tlsrpt.test.
good            IN MX  20 mx2.good.tlsrpt.test.
mx1.good        IN A   192.0.2.1
mx2.good        IN A   192.0.2.2
_smtp._tls.mx1.good IN TXT "v=TLSRPTv1; rua=mailto:tls-reports@good.tlsrpt.test"
_smtp._tls.two  IN TXT "v=TLSRPTv1; rua=mailto:a@two.tlsrpt.test"
_smtp._tls.two  IN TXT "v=TLSRPTv1; rua=mailto:b@two.tlsrpt.test"
_smtp._tls.multi 300 IN TXT "v=TLSRPTv1; rua=mailto:tls-rep" "orts@multi.tlsrpt.test"
nx              IN A   192.0.2.4
_smtp._tls.nodata IN A 192.0.2.5
apex            IN TXT "v=TLSRPTv1; rua=mailto:tls@apex.tlsrpt.test"
_smtp.lookalike IN TXT "v=TLSRPTv1; rua=mailto:tls@lookalike.tlsrpt.test"
*.wild          IN TXT "v=spf1 -all"
_smtp._tls.alias IN CNAME _smtp._tls.good.tlsrpt.test.
_smtp._tls.broken IN TXT "v=TLSRPTv1; rua=mailto:tls@broken.tlsrpt.test!10m"
"#;

struct Nsd {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Nsd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_udp_port() -> u16 {
    // A port free for both UDP and TCP on loopback.
    loop {
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = u.local_addr().unwrap().port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

fn start_nsd() -> Nsd {
    let nsd = require_tool(&["/usr/sbin/nsd", "/usr/bin/nsd"], "nsd");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let port = free_udp_port();
    std::fs::write(dir.path().join("tlsrpt.test.zone"), ZONE).unwrap();
    std::fs::write(
        dir.path().join("nsd.conf"),
        format!(
            "server:\n  ip-address: 127.0.0.1\n  port: {port}\n  username: \"\"\n  chroot: \"\"\n  zonesdir: \"{d}\"\n  zonelistfile: \"{d}/zone.list\"\n  database: \"\"\n  pidfile: \"{d}/nsd.pid\"\n  xfrdfile: \"{d}/xfrd.state\"\n  xfrdir: \"{d}\"\n  logfile: \"{d}/nsd.log\"\n  server-count: 1\n  verbosity: 1\nremote-control:\n  control-enable: no\nzone:\n  name: tlsrpt.test\n  zonefile: tlsrpt.test.zone\n"
        ),
    )
    .unwrap();
    let child = Command::new(nsd)
        .args(["-d", "-c"])
        .arg(dir.path().join("nsd.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let n = Nsd {
        child,
        port,
        _dir: dir,
    };
    // Wait until it answers.
    for _ in 0..100 {
        let o = run(&[
            "check-record",
            "--nameserver",
            &format!("127.0.0.1:{port}"),
            "--timeout",
            "1",
            "good.tlsrpt.test",
        ]);
        if o.status.code() == Some(0) {
            return n;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!(
        "nsd did not answer on 127.0.0.1:{port}: {}",
        std::fs::read_to_string(n._dir.path().join("nsd.log")).unwrap_or_default()
    );
}

fn cr(port: u16, args: &[&str]) -> (i32, String) {
    let ns = format!("127.0.0.1:{port}");
    let mut a = vec!["check-record", "--nameserver", &ns, "--timeout", "2"];
    a.extend_from_slice(args);
    let o = run(&a);
    (o.status.code().unwrap(), stdout(&o) + &stderr(&o))
}

#[test]
#[ignore = "needs nsd"]
fn against_a_real_authoritative_server() {
    let nsd = start_nsd();
    let p = nsd.port;

    let (code, out) = cr(
        p,
        &[
            "good.tlsrpt.test",
            "--expect-rua",
            "MAILTO:tls-reports@GOOD.tlsrpt.test",
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("ok: reports go to mailto:tls-reports@good.tlsrpt.test"),
        "{out}"
    );
    assert!(
        out.contains("info: reports are sent to MAILTO:tls-reports@GOOD.tlsrpt.test"),
        "{out}"
    );
    let (code, out) = cr(
        p,
        &[
            "good.tlsrpt.test",
            "--expect-rua",
            "mailto:postmaster@good.tlsrpt.test",
        ],
    );
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("not to mailto:postmaster@good.tlsrpt.test: add it to rua"),
        "{out}"
    );

    let (code, out) = cr(p, &["two.tlsrpt.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("error: 2 TLSRPT records at _smtp._tls.two.tlsrpt.test: senders then treat the domain as having none; delete one"), "{out}");

    let (code, out) = cr(p, &["multi.tlsrpt.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("the record is 2 strings, joined without separators"),
        "{out}"
    );
    assert!(
        out.contains("reports go to mailto:tls-reports@multi.tlsrpt.test"),
        "{out}"
    );
    assert!(out.contains("TTL 300 s"), "{out}");

    // NXDOMAIN and NODATA: different findings, different advice.
    let (code, out) = cr(p, &["nx.tlsrpt.test", "--format", "json"]);
    assert_eq!(code, 2, "{out}");
    let doc: Value = serde_json::from_str(
        out.split_once("\n}\n")
            .map(|(a, _)| format!("{a}\n}}"))
            .as_deref()
            .unwrap_or(&out),
    )
    .unwrap();
    assert_eq!(doc["status"], 2);
    let codes: Vec<&str> = doc["entries"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"no-record-nxdomain"), "{codes:?}");
    let (code, out) = cr(p, &["nodata.tlsrpt.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("exists but has no TXT record"), "{out}");

    // Published at the apex, or at a look-alike name.
    let (code, out) = cr(p, &["apex.tlsrpt.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("a TLSRPT record is published at apex.tlsrpt.test, but senders look only at _smtp._tls.apex.tlsrpt.test"), "{out}");
    let (_, out) = cr(p, &["lookalike.tlsrpt.test"]);
    assert!(
        out.contains("published at _smtp.lookalike.tlsrpt.test"),
        "{out}"
    );

    // An SPF record answered through a wildcard.
    let (code, out) = cr(p, &["wild.tlsrpt.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("an unrelated TXT record at _smtp._tls.wild.tlsrpt.test, answered through a wildcard (*.wild.tlsrpt.test)"), "{out}");

    // A CNAME to a good record.
    let (code, out) = cr(p, &["alias.tlsrpt.test"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("is an alias (CNAME) of _smtp._tls.good.tlsrpt.test"),
        "{out}"
    );

    // The DMARC-style size suffix, through DNS.
    let (code, out) = cr(p, &["broken.tlsrpt.test"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("DMARC's size limit"), "{out}");

    // --mx: each MX host's own record (DANE); one is missing: a warning.
    let (code, out) = cr(p, &["good.tlsrpt.test", "--mx"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("_smtp._tls.mx1.good.tlsrpt.test: \"v=TLSRPTv1"),
        "{out}"
    );
    assert!(
        out.contains("_smtp._tls.mx2.good.tlsrpt.test: no TLSRPT record"),
        "{out}"
    );
    assert!(
        out.contains("warning: _smtp._tls.mx2.good.tlsrpt.test does not exist (NXDOMAIN)"),
        "{out}"
    );

    // Several domains: the worst status wins.
    let (code, _) = cr(p, &["good.tlsrpt.test", "two.tlsrpt.test"]);
    assert_eq!(code, 2);
}

/// A name server that answers every query with SERVFAIL.
fn servfail_server() -> u16 {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        while let Ok((n, from)) = sock.recv_from(&mut buf) {
            if n < 12 {
                continue;
            }
            let mut r = buf[..n].to_vec();
            r[2] = 0x80 | (buf[2] & 0x01); // QR, RD copied
            r[3] = 0x80 | 0x02; // RA, RCODE 2 = SERVFAIL
            r[6..12].fill(0); // no answer, authority or additional records
            let _ = sock.send_to(&r, from);
        }
    });
    port
}

#[test]
fn a_failed_lookup_is_status_3_not_no_record() {
    let port = servfail_server();
    let (code, out) = cr(port, &["example.com"]);
    assert_eq!(code, 3, "{out}");
    assert!(
        out.contains("the lookup of _smtp._tls.example.com TXT failed"),
        "{out}"
    );
    assert!(!out.contains("does not exist"), "{out}");
    // A server that never answers: a timeout is a failed lookup too.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let o = run(&[
        "check-record",
        "--nameserver",
        &format!("127.0.0.1:{port}"),
        "--timeout",
        "1",
        "example.com",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stdout(&o));
    drop(silent);
}

#[test]
fn offline_records_and_exit_codes() {
    let o = run(&[
        "check-record",
        "--record",
        "v=TLSRPTv1; rua=mailto:tls@example.com",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    let o = run(&[
        "check-record",
        "--record",
        "v=TLSRPTv1; ext=1; rua=mailto:tls@example.com",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    assert!(
        stdout(&o).contains("warning: rua= is not the first field"),
        "{}",
        stdout(&o)
    );
    let o = run(&[
        "check-record",
        "--record",
        "v=TLSRPTv1; rua=mailto:tls.example.com",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["check-record", "--record", "x", "example.com"]);
    assert_eq!(o.status.code(), Some(3), "bad arguments: {}", stdout(&o));
    let o = run(&[
        "check-record",
        "--format",
        "json",
        "--record",
        "v=TLSRPTv1; rua=http://x.example/",
    ]);
    let doc: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["status"], 2);
    let f = &doc["entries"][0]["findings"][0];
    assert_eq!(f["code"], "http-scheme");
    assert_eq!(f["severity"], "error");
    assert_eq!(
        doc["entries"][0]["records"][0],
        "v=TLSRPTv1; rua=http://x.example/"
    );
}

/// RFC 8460 §3 grammar violations are errors: strict senders (mox's ParseRecord) reject the
/// whole record and send no report, so the record is not usable (exit 2).
#[test]
fn grammar_violations_are_errors() {
    for rec in [
        "v=TLSRPTv1; rua=mailto:tls@example.com,",
        "v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com",
        "v=TLSRPTv1;; rua=mailto:tls@example.com",
        "v=TLSRPTv1; rua=mailto:tls@example.com; _x=1",
        "v=TLSRPTv1; rua=mailto:tls@example.com; x=a=b",
    ] {
        let o = run(&["check-record", "--record", rec]);
        let out = stdout(&o);
        assert_eq!(o.status.code(), Some(2), "{rec}: {out}");
        assert!(
            out.contains("strict senders (mox) reject the whole record"),
            "{rec}: {out}"
        );
        assert!(!out.contains("ok: reports go to"), "{rec}: {out}");
    }
    let o = run(&[
        "check-record",
        "--record",
        "v=TLSRPTv1; rua=mailto:tls@example.com;",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "a trailing ; is allowed: {}",
        stdout(&o)
    );
}
