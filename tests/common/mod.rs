//! Test helper: runs the real binary in a temporary spool, as an ordinary user or (as
//! root) through `--user nobody`, and reads back what it stored.
#![allow(dead_code)]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tlsrpt-pipe");

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// For the `#[ignore = "needs root"]` tests: they run as root in tests/run.sh's
/// disposable root (its own mount namespace, so a tmpfs they mount there is its own).
pub fn require_root() {
    assert!(
        is_root(),
        "needs root: tests/run.sh runs this test in its disposable root"
    );
}

mod require;
#[allow(unused_imports)]
pub use require::require_tool;

pub fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

pub fn fixture_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub spool: PathBuf,
}

impl Env {
    /// A fresh temporary directory (traversable by `nobody` when running as root) with
    /// a spool directory inside it that the delivery user owns.
    pub fn new() -> Env {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let spool = dir.path().join("spool");
        let env = Env { dir, spool };
        env.make_spool();
        env
    }

    /// Creates the spool directory as the program would (`--create-spool`).
    pub fn make_spool(&self) {
        let out = self
            .cmd(&["--create-spool", "--max-message-size", "1"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            self.spool.is_dir(),
            "spool not created: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The binary with `--spool`, stderr logging and, as root, `--user nobody`.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--spool").arg(&self.spool).arg("--log-stderr");
        if is_root() {
            c.args(["--user", "nobody"]);
        }
        c.args(args);
        c.env_remove("SENDER")
            .env_remove("RECIPIENT")
            .env_remove("MESSAGE_ID")
            .env_remove("TLSRPT_SPOOL");
        c
    }

    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Output {
        run_cmd(self.cmd(args), stdin)
    }

    /// Every stored record, in file order.
    pub fn records(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for f in self.jsonl_files() {
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(
                text.is_empty() || text.ends_with('\n'),
                "{} ends mid-line",
                f.display()
            );
            for line in text.lines() {
                out.push(
                    serde_json::from_str(line).unwrap_or_else(|e| panic!("bad line {line:?}: {e}")),
                );
            }
        }
        out
    }

    pub fn jsonl_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(&self.spool)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        v.retain(|p| p.extension().is_some_and(|e| e == "jsonl"));
        v.sort();
        v
    }

    /// (message bytes, reason metadata) of every quarantined message.
    pub fn quarantined(&self) -> Vec<(Vec<u8>, Value)> {
        let q = self.spool.join("quarantine");
        let mut names: Vec<PathBuf> = std::fs::read_dir(&q)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "eml"));
        names.sort();
        names
            .into_iter()
            .map(|p| {
                let meta = std::fs::read(p.with_extension("json")).unwrap();
                (
                    std::fs::read(&p).unwrap(),
                    serde_json::from_slice(&meta).unwrap(),
                )
            })
            .collect()
    }
}

pub fn run_cmd(mut c: Command, stdin: &[u8]) -> Output {
    c.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = c.spawn().expect("spawn tlsrpt-pipe");
    let mut si = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = si.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

pub fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts exit 0 and returns stderr.
#[track_caller]
pub fn ok(o: &Output) -> String {
    assert_eq!(code(o), 0, "exit status; stderr: {}", stderr(o));
    stderr(o)
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use flate2::Compression;
    use flate2::write::GzEncoder;
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::new();
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            s.push('\n');
        }
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for j in 0..4 {
            if j <= c.len() {
                s.push(T[(n >> (18 - 6 * j) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// One MIME part: headers (without the boundary) and body.
pub struct Part {
    pub headers: String,
    pub body: String,
}

/// An attachment part, base64-encoded.
pub fn attachment(content_type: &str, disposition: &str, data: &[u8]) -> Part {
    Part {
        headers: format!(
            "Content-Type: {content_type}\nContent-Disposition: {disposition}\nContent-Transfer-Encoding: base64\n"
        ),
        body: base64(data),
    }
}

pub fn text_part(text: &str) -> Part {
    Part {
        headers: "Content-Type: text/plain; charset=us-ascii\n".into(),
        body: text.into(),
    }
}

/// A multipart/report message in the RFC 8460 §5.3 shape, LF line endings.
pub fn report_message(extra_headers: &str, parts: &[Part]) -> Vec<u8> {
    let b = "----=_boundary_42";
    let mut s = format!(
        "From: tlsrpt-noreply@sender.example\nTo: tls-reports@example.com\nSubject: Report Domain: example.com Submitter: sender.example Report-ID: <x>\nDate: Fri, 3 Feb 2023 05:09:22 +0000\nMessage-ID: <t1@sender.example>\nTLS-Report-Domain: example.com\nTLS-Report-Submitter: sender.example\n{extra_headers}MIME-Version: 1.0\nContent-Type: multipart/report; report-type=\"tlsrpt\"; boundary=\"{b}\"\n\nThis is a MIME message.\n"
    );
    for p in parts {
        s.push_str(&format!("--{b}\n{}\n{}\n", p.headers, p.body));
    }
    s.push_str(&format!("--{b}--\n"));
    s.into_bytes()
}

/// A minimal valid report with one STS policy and the given failure-detail rows.
pub fn report_json(org: &str, id: &str, failed: u64, details: &str) -> String {
    format!(
        r#"{{"organization-name":"{org}","date-range":{{"start-datetime":"2024-05-01T00:00:00Z","end-datetime":"2024-05-01T23:59:59Z"}},"contact-info":"tls@sender.example","report-id":"{id}","policies":[{{"policy":{{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx1.example.com","max_age: 86400"],"policy-domain":"example.com","mx-host":["mx1.example.com"]}},"summary":{{"total-successful-session-count":100,"total-failure-session-count":{failed}}},"failure-details":[{details}]}}]}}"#
    )
}

#[path = "gen.rs"]
pub mod generate;

/// A report message with `doc` as its one gzipped `application/tlsrpt+gzip` part.
pub fn gzip_report_message(doc: &[u8]) -> Vec<u8> {
    report_message(
        "",
        &[attachment(
            "application/tlsrpt+gzip",
            "attachment",
            &gzip(doc),
        )],
    )
}
