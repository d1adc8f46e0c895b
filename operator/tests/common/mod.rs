//! Test helper: writes spools of generated records (record schema version 1, as
//! tlsrpt-pipe stores them) and runs the real `tlsrpt` binary on them.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{Value, json};

pub mod pg;
pub mod world;

pub const BIN: &str = env!("CARGO_BIN_EXE_tlsrpt");

#[path = "../../../tests/common/require.rs"]
mod require;
#[allow(unused_imports)]
pub use require::require_tool;
pub const DAY: i64 = 86_400;

/// 2026-03-01T00:00:00Z: the generated histories start here.
pub const T0: i64 = 1_772_323_200;

/// The clock, in Unix seconds.
pub fn now() -> i64 {
    tlsrpt_pipe::datetime::Timestamp::now().0
}

/// A Prometheus textfile's samples: series (name and labels as written) → value.
pub fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (k, v) = l.rsplit_once(' ').unwrap();
            (k.to_owned(), v.parse().unwrap())
        })
        .collect()
}

pub fn iso(t: i64) -> String {
    tlsrpt_pipe::datetime::Timestamp(t).rfc3339()
}

pub fn day_name(t: i64) -> String {
    format!("{}.jsonl", tlsrpt_pipe::datetime::Timestamp(t).utc_day())
}

/// One failure-detail row.
pub fn detail(result_type: &str, n: u64, sending_ip: &str, mx: &str) -> Value {
    json!({"result-type": result_type, "failed-session-count": n,
           "sending-mta-ip": sending_ip, "receiving-mx-hostname": mx,
           "receiving-ip": "192.0.2.25"})
}

/// One policy result.
pub fn policy(ptype: &str, domain: &str, ok: u64, failed: u64, details: Vec<Value>) -> Value {
    let mut p = json!({
        "policy": {"policy-type": ptype, "policy-domain": domain,
                   "policy-string": ["version: STSv1", "mode: enforce", "mx: mx1.example.net", "max_age: 86400"],
                   "mx-host": ["mx1.example.net"]},
        "summary": {"total-successful-session-count": ok, "total-failure-session-count": failed}
    });
    if !details.is_empty() {
        p["failure-details"] = Value::Array(details);
    }
    p
}

/// Microsoft's shape: the same sessions under an sts and a tlsa policy of one report.
pub fn sts_and_tlsa(domain: &str, ok: u64, failed: u64, details: Vec<Value>) -> Vec<Value> {
    vec![
        policy("sts", domain, ok, failed, details.clone()),
        policy("tlsa", domain, ok, failed, details),
    ]
}

/// SocketLabs' shape: one domain's sts sessions split over two policies of one report
/// (the successful ones in the first, the failed ones in the second).
pub fn two_sts(domain: &str, ok: u64, failed: u64, details: Vec<Value>) -> Vec<Value> {
    vec![
        policy("sts", domain, ok, 0, vec![]),
        policy("sts", domain, 0, failed, details),
    ]
}

/// A DANE sender's shape: one tlsa policy per MX host (`mx-host` naming it), the
/// failures at the last one.
pub fn tlsa_per_mx(domain: &str, oks: &[u64], failed: u64, details: Vec<Value>) -> Vec<Value> {
    let n = oks.len();
    oks.iter()
        .enumerate()
        .map(|(i, ok)| {
            let last = i + 1 == n;
            let mut p = policy(
                "tlsa",
                domain,
                *ok,
                if last { failed } else { 0 },
                if last { details.clone() } else { vec![] },
            );
            p["policy"]["mx-host"] = json!([format!("mx{i}.{domain}")]);
            p["policy"]["policy-string"] = json!([format!("3 1 1 {:064x}", i + 1)]);
            p
        })
        .collect()
}

/// Makes an unauthenticated record carry what an untrusted A-R header said: an aligned
/// `dkim=pass` (the contact-info domain) from `authserv_id` (record version 3), so that
/// trusting that id when reading makes it count.
pub fn with_untrusted_pass(mut rec: Value, authserv_id: &str) -> Value {
    rec["version"] = json!(3);
    rec["authentication"]["headers"] = json!([
        {"authserv-id": authserv_id, "dkim": [{"result": "pass", "header-d": "example.org", "selector": "s1"}]}
    ]);
    rec
}

/// A record for a daily report starting at `start`.
pub fn record(
    org: &str,
    id: &str,
    start: i64,
    received: i64,
    pass: bool,
    policies: Vec<Value>,
) -> Value {
    // The delivery's key is SHA-256(org, id); any stable 64-hex string serves here.
    let key = format!("{:032x}{:032x}", fnv(&format!("{org}\0{id}")), fnv(id));
    // Delivered to the report address of its first policy domain, as a domain's own
    // TLSRPT record (tests/world/up.sh: rua=mailto:tls-reports@DOMAIN) would send it.
    let envelope = match policies
        .first()
        .and_then(|p| p["policy"]["policy-domain"].as_str())
    {
        Some(d) => json!({"recipient": format!("tls-reports@{d}")}),
        None => json!({}),
    };
    json!({
        "version": 1,
        "received-at": iso(received),
        "dedup-key": key,
        "envelope": envelope,
        "headers": {},
        "authentication": {"verdict": if pass { "pass" } else { "unauthenticated" }, "dkim": []},
        "source": {},
        "totals": {},
        "warnings": [],
        "report": {
            "organization-name": org,
            "date-range": {"start-datetime": iso(start), "end-datetime": iso(start + DAY)},
            "contact-info": "tlsrpt@example.org",
            "report-id": id,
            "policies": policies
        }
    })
}

fn fnv(s: &str) -> u128 {
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for b in s.bytes() {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

pub struct Spool {
    pub dir: PathBuf,
}

impl Spool {
    pub fn new(parent: &Path, name: &str) -> Spool {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        Spool { dir }
    }

    /// Appends a record to the day file of `received` (as tlsrpt-pipe would).
    pub fn put(&self, rec: &Value) {
        let received = tlsrpt_pipe::datetime::parse(rec["received-at"].as_str().unwrap())
            .unwrap()
            .0
            .0;
        self.append_raw(&day_name(received), format!("{rec}\n").as_bytes());
    }

    pub fn append_raw(&self, file: &str, bytes: &[u8]) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(file))
            .unwrap();
        f.write_all(bytes).unwrap();
    }
}

pub fn run(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("TLSRPT_SPOOL")
        .env_remove("NO_COLOR")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `summary --format json` and parses the document; asserts exit 0.
pub fn summary_json(args: &[&str]) -> Value {
    let mut a = vec!["summary", "--format", "json"];
    a.extend_from_slice(args);
    let o = run(&a);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(&o)))
}

pub fn domain<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["domains"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["policy-domain"] == name)
        .unwrap_or_else(|| panic!("no domain {name} in {doc:#}"))
}

/// A tiny deterministic generator (LCG), so generated histories are reproducible.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The tlsrpt-pipe binary of this build (built first if `cargo test -p tlsrpt` did
/// not).
#[allow(dead_code)]
pub fn pipe_bin() -> PathBuf {
    let dir = Path::new(BIN).parent().unwrap();
    let bin = dir.join("tlsrpt-pipe");
    if !bin.exists() {
        let target = dir.parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-p", "tlsrpt-pipe", "--bin", "tlsrpt-pipe"])
            .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
            .env("CARGO_TARGET_DIR", target)
            .status()
            .unwrap()
            .success();
        assert!(ok && bin.exists(), "cannot build {}", bin.display());
    }
    bin
}
