//! The limits are generous enough for any plausible real report: 100,000
//! failure-detail rows pass with the default limits, whole.

mod common;
use common::*;

#[test]
fn hundred_thousand_failure_rows_pass_default_limits() {
    let doc = generate::large_report(100_000);
    eprintln!("100,000 rows: {} bytes of JSON", doc.len());
    let gz = gzip(doc.as_bytes());
    let msg = report_message(
        "",
        &[attachment(
            "application/tlsrpt+gzip",
            "attachment; filename=\"big.json.gz\"",
            &gz,
        )],
    );
    let env = Env::new();
    let err = ok(&env.run(&[], &msg));
    assert!(err.contains("status=stored records=1"), "{err}");
    let recs = env.records();
    assert_eq!(recs[0]["totals"]["failure-details"], 100_000);
    let source: serde_json::Value = serde_json::from_str(&doc).unwrap();
    assert_eq!(recs[0]["report"], source, "stored whole");
}
