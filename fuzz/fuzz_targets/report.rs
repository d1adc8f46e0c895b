//! The report normaliser alone: any bytes → parse → the stored form must serialize
//! and parse again to the same report (normalisation is idempotent).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tlsrpt_pipe::report;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = report::parse(data) {
        let out = serde_json::to_vec(&p.report).expect("serialize");
        let mut fast = Vec::new();
        tlsrpt_pipe::json::write_report(&mut fast, &p.report);
        assert_eq!(fast, out, "the fast writer writes what serde_json writes");
        let again = report::parse(&out).expect("a stored report parses again");
        let out2 = serde_json::to_vec(&again.report).expect("serialize");
        assert_eq!(out, out2, "normalisation is idempotent");
    }
});
