//! What each RFC 8460 §4.3 result type means and what to check first.

/// `(meaning, first things to check)` for a result type; unknown types get a generic
/// line pointing at the sender's own words.
pub fn for_result_type(t: &str) -> (&'static str, &'static str) {
    match t {
        "starttls-not-supported" => (
            "the MX did not offer STARTTLS: a misconfiguration, or STARTTLS stripped in transit (a downgrade attack)",
            "openssl s_client -starttls smtp -connect MX:25; Postfix smtpd_tls_security_level and a configured certificate",
        ),
        "certificate-host-mismatch" => (
            "the certificate does not name the MX host",
            "the SAN list covers every MX name; SNI per name when several domains share an MX",
        ),
        "certificate-expired" => (
            "the certificate is past its validity",
            "the renewal job, and that the MTA was reloaded after renewal",
        ),
        "certificate-not-trusted" => (
            "the chain cannot be verified (self-signed, missing intermediate)",
            "serve the full chain (Postfix smtpd_tls_chain_files)",
        ),
        "validation-failure" => (
            "another certificate validation error",
            "the sender's failure-reason-code",
        ),
        "tlsa-invalid" => (
            "the TLSA records do not match the certificate",
            "key rollover order: publish the new TLSA record before switching keys",
        ),
        "dnssec-invalid" => (
            "DNSSEC validation failed for the MX or TLSA lookup",
            "DS and RRSIG validity for the zone",
        ),
        "dane-required" => (
            "the sender required DANE and found no usable TLSA record",
            "TLSA records published and signed",
        ),
        "sts-policy-fetch-error" => (
            "https://mta-sts.DOMAIN/.well-known/mta-sts.txt could not be fetched",
            "that host's HTTPS certificate and reachability",
        ),
        "sts-policy-invalid" => (
            "the MTA-STS policy file does not parse",
            "its syntax and mx: lines",
        ),
        "sts-webpki-invalid" => (
            "the MX certificate is not WebPKI-valid, as MTA-STS requires",
            "a certificate from a public CA on every MX in the policy",
        ),
        _ => (
            "a result type RFC 8460 does not define",
            "the sender's failure-reason-code and additional-information",
        ),
    }
}
