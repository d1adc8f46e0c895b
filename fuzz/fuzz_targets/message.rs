//! The whole message → records path: MIME walk, decoding, normalisation, DKIM
//! verdict and record encoding, exactly as a delivery runs it (minus the spool).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrpt_pipe::limits::Limits;
use tlsrpt_pipe::record::Envelope;
use tlsrpt_pipe::{AuthPolicy, analyse, encode_records};

fuzz_target!(|data: &[u8]| {
    // Small limits so that the fuzzer explores them instead of allocating.
    let limits = Limits { max_report_size: 1 << 20, max_reports: 8, max_depth: 8, ..Limits::default() };
    let policy = AuthPolicy { trusted: vec!["mx.example.com".into()], require_dkim: false, accept_domains: vec![] };
    let a = analyse(data, &limits, &policy);
    let lines = encode_records(&a, "2024-01-01T00:00:00Z", &Envelope::default()).expect("records encode");
    for l in &lines {
        // Every record is exactly one line of valid JSON.
        assert_eq!(l.line.iter().filter(|&&c| c == b'\n').count(), 1);
        let _: serde_json::Value = serde_json::from_slice(&l.line).expect("record is JSON");
    }
    for acc in &a.accepted {
        for alert in tlsrpt_pipe::alert::evaluate(&acc.parsed.report, &Default::default()) {
            assert!(!alert.line().chars().any(char::is_control));
        }
    }
});
