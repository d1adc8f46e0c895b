//! In-process stage timings: MIME walk, inflate, JSON parse + normalise, record encode.
//!
//!   cargo bench --bench stages                 full run
//!   cargo bench --bench stages -- --quick      a few iterations (CI: it still works)
//!   cargo bench --bench stages -- --write-inputs DIR   write bench inputs for bench/run.sh
//!
//! A small harness instead of criterion: warm-up, N timed iterations, median and
//! throughput per stage; no extra dependency tree for one number per stage.

#[path = "../tests/common/gen.rs"]
mod generate;

use std::hint::black_box;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use tlsrpt_pipe::limits::Limits;
use tlsrpt_pipe::record::Envelope;
use tlsrpt_pipe::{AuthPolicy, analyse, decode, encode_records, message, report};

fn fixture(rel: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(rel),
    )
    .expect("fixture")
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn base64(data: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(data.len() * 4 / 3 + data.len() / 57 + 4);
    for (i, c) in data.chunks(3).enumerate() {
        if i > 0 && i % 19 == 0 {
            s.push_str("\r\n");
        }
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for j in 0..4 {
            s.push(if j <= c.len() {
                T[(n >> (18 - 6 * j) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    s
}

/// The 60,000-row report as Google would mail it: multipart/report, gzip, base64, CRLF.
pub fn large_message(rows: usize) -> (Vec<u8>, Vec<u8>) {
    let json = generate::large_report(rows);
    let gz = gzip(json.as_bytes());
    let msg = format!(
        "From: noreply-smtp-tls-reporting@large.example\r\nTo: tls-reports@example.com\r\nSubject: Report Domain: example.com Submitter: large.example Report-ID: <2024-06-01T00:00:00Z_example.com>\r\nTLS-Report-Domain: example.com\r\nTLS-Report-Submitter: large.example\r\nMessage-ID: <large@large.example>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=tlsrpt; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nThis is an aggregate TLS report.\r\n--b\r\nContent-Type: application/tlsrpt+gzip; name=\"large.example!example.com!1717200000!1717286399!001.json.gz\"\r\nContent-Disposition: attachment; filename=\"large.example!example.com!1717200000!1717286399!001.json.gz\"\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
        base64(&gz)
    );
    (msg.into_bytes(), gz)
}

fn bench(name: &str, bytes: usize, iters: usize, mut f: impl FnMut()) {
    for _ in 0..iters.div_ceil(5) {
        f();
    }
    let mut times: Vec<Duration> = (0..iters)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    let med = times[times.len() / 2];
    let mbps = bytes as f64 / med.as_secs_f64() / 1e6;
    println!(
        "{name:<40} median {:>10.1} µs  {:>8.1} MB/s  ({iters} iterations)",
        med.as_secs_f64() * 1e6,
        mbps
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--write-inputs") {
        let dir = Path::new(args.get(i + 1).expect("--write-inputs DIR"));
        std::fs::create_dir_all(dir).unwrap();
        let (msg, gz) = large_message(60_000);
        std::fs::write(dir.join("large-60k.eml"), msg).unwrap();
        std::fs::write(dir.join("large-60k.json.gz"), gz).unwrap();
        std::fs::write(
            dir.join("google-small.eml"),
            fixture("mjl-_mox/example.eml"),
        )
        .unwrap();
        std::fs::write(dir.join("microsoft.eml"), fixture("mjl-_mox/microsoft.eml")).unwrap();
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let (small_n, large_n) = if quick { (20, 2) } else { (2000, 15) };
    let limits = Limits::default();
    let policy = AuthPolicy::default();
    let env = Envelope::default();

    for (name, msg) in [
        ("google-small", fixture("mjl-_mox/example.eml")),
        ("microsoft", fixture("mjl-_mox/microsoft.eml")),
    ] {
        bench(
            &format!("{name}: MIME walk + inflate"),
            msg.len(),
            small_n,
            || {
                black_box(message::extract(&msg, &limits));
            },
        );
        bench(
            &format!("{name}: whole analyse + encode"),
            msg.len(),
            small_n,
            || {
                let a = analyse(&msg, &limits, &policy);
                black_box(encode_records(&a, "2024-01-01T00:00:00Z", &env).unwrap());
            },
        );
    }

    let (msg, gz) = large_message(60_000);
    let json = decode::gunzip(&gz, limits.max_report_size).unwrap().data;
    println!(
        "large-60k: message {} bytes, gzip {} bytes, JSON {} bytes",
        msg.len(),
        gz.len(),
        json.len()
    );
    bench(
        "large-60k: MIME walk (base64 decode) + inflate",
        json.len(),
        large_n,
        || {
            black_box(message::extract(&msg, &limits));
        },
    );
    bench("large-60k: inflate only", json.len(), large_n, || {
        black_box(decode::gunzip(&gz, limits.max_report_size).unwrap());
    });
    bench(
        "large-60k: JSON parse + normalise",
        json.len(),
        large_n,
        || {
            black_box(report::parse(&json).unwrap());
        },
    );
    let a = analyse(&msg, &limits, &policy);
    bench("large-60k: record encode", json.len(), large_n, || {
        black_box(encode_records(&a, "2024-01-01T00:00:00Z", &env).unwrap());
    });
    bench(
        "large-60k: whole analyse + encode",
        json.len(),
        large_n,
        || {
            let a = analyse(&msg, &limits, &policy);
            black_box(encode_records(&a, "2024-01-01T00:00:00Z", &env).unwrap());
        },
    );
}
