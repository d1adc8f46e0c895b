//! Generates large, realistic report documents for tests and benchmarks: one STS
//! policy with `rows` failure-detail rows shaped like Google's and Microsoft's, about
//! 250 bytes of compact JSON per row. Deterministic for a given `rows`.

pub fn large_report(rows: usize) -> String {
    const TYPES: &[(&str, &str)] = &[
        ("certificate-host-mismatch", "X509_V_ERR_HOSTNAME_MISMATCH"),
        ("certificate-expired", "X509_V_ERR_CERT_HAS_EXPIRED"),
        (
            "starttls-not-supported",
            "EHLO response did not offer STARTTLS",
        ),
        (
            "validation-failure",
            "X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
        ),
        ("sts-policy-fetch-error", "HTTP 404 fetching policy"),
    ];
    let mut s = String::with_capacity(rows * 260 + 1024);
    s.push_str(r#"{"organization-name":"Large Sender Inc.","date-range":{"start-datetime":"2024-06-01T00:00:00Z","end-datetime":"2024-06-01T23:59:59Z"},"contact-info":"smtp-tls-reporting@large.example","report-id":"2024-06-01T00:00:00Z_example.com","policies":[{"policy":{"policy-type":"sts","policy-string":["version: STSv1","mode: enforce","mx: mx1.example.com","mx: mx2.example.com","max_age: 604800"],"policy-domain":"example.com","mx-host":["mx1.example.com","mx2.example.com"]},"summary":{"total-successful-session-count":987654,"total-failure-session-count":"#);
    let mut total = 0u64;
    let mut details = String::with_capacity(rows * 260);
    for i in 0..rows {
        let (t, code) = TYPES[i % TYPES.len()];
        let n = (i % 17 + 1) as u64;
        total += n;
        if i > 0 {
            details.push(',');
        }
        details.push_str(&format!(
            r#"{{"result-type":"{t}","sending-mta-ip":"209.85.{}.{}","receiving-mx-hostname":"mx{}.example.com","receiving-ip":"192.0.2.{}","failed-session-count":{n},"failure-reason-code":"{code}","additional-information":"https://tls.example/r/{i}"}}"#,
            (i / 250) % 250,
            i % 250,
            i % 2 + 1,
            i % 200 + 1,
        ));
    }
    s.push_str(&total.to_string());
    s.push_str(r#"},"failure-details":["#);
    s.push_str(&details);
    s.push_str("]}]}\n");
    s
}
