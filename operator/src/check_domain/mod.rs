//! `tlsrpt check-domain`: a domain's whole inbound mail TLS, checked live and judged the
//! way senders judge it, in the vocabulary of RFC 8460's result types.
//!
//! Data flow: `observe` asks DNS and the domain's own hosts (through `probe`, bounded,
//! the address policy applied) and records what it saw in a `DomainReport`; `judge`
//! (pure) turns the observations into findings, each error or warning by the policy that
//! applies to that MX (MTA-STS, validated DANE, or none); `text` and `json` render.
//!
//! Exit status, monitoring-plugins style like check-record: 0 no problem, 1 warnings
//! only, 2 errors, 3 could not check (DNS failed, no MX address reachable from here, bad
//! arguments).

pub mod judge;
pub mod observe;
pub mod plugin;
pub mod text;

use serde::Serialize;

use crate::check_record;
use crate::probe::cert::CertInfo;
use crate::probe::dane::Tlsa;
use crate::probe::mta_sts::Policy;
use crate::txt_record::Severity;

/// One finding: check-record's shape plus the host it concerns.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    /// An RFC 8460 result type where a sender would report the problem, else our own.
    pub code: &'static str,
    pub severity: Severity,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub message: String,
}

/// Everything seen for one domain, and what it means.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    pub domain: String,
    pub tlsrpt: check_record::Entry,
    #[serde(rename = "mta-sts")]
    pub mta_sts: Sts,
    pub mx: Vec<Mx>,
    pub findings: Vec<Found>,
    /// When the check ran (RFC 3339).
    #[serde(rename = "checked-at")]
    pub checked_at: String,
    #[serde(skip)]
    pub facts: Facts,
}

/// What was seen of MTA-STS.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Sts {
    /// The `v=STSv1` TXT record(s) at `_mta-sts.DOMAIN`.
    pub record: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The policy as fetched and parsed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    /// The address the policy was fetched from.
    #[serde(rename = "fetched-from", skip_serializing_if = "Option::is_none")]
    pub fetched_from: Option<String>,
    /// The certificate of `mta-sts.DOMAIN`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertInfo>,
    /// The `_mta-sts` lookup failed (SERVFAIL, REFUSED, a time-out, no route) or failed
    /// DNSSEC validation: whether there is a record is not known. Never "no record".
    #[serde(rename = "lookup-failed", skip_serializing_if = "Option::is_none")]
    pub lookup_failed: Option<String>,
}

/// One MX host.
#[derive(Debug, Clone, Serialize)]
pub struct Mx {
    pub host: String,
    pub preference: u16,
    /// The `mx:` pattern of the MTA-STS policy that covers it.
    #[serde(rename = "sts-pattern", skip_serializing_if = "Option::is_none")]
    pub sts_pattern: Option<String>,
    pub addresses: Vec<Address>,
}

/// One address of an MX host, and what its port 25 showed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Address {
    pub address: String,
    /// Connected and spoke SMTP.
    pub probed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub banner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub starttls: Option<bool>,
    #[serde(rename = "tls-version", skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cipher: Option<String>,
    /// The certificate shown with SNI = the MX name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertInfo>,
    /// The certificate shown to a client that sends no SNI.
    #[serde(
        rename = "certificate-without-sni",
        skip_serializing_if = "Option::is_none"
    )]
    pub certificate_without_sni: Option<CertInfo>,
    /// The TLSA records of the MX host, matched against this address's chain.
    pub tlsa: Vec<Tlsa>,
    /// `secure` (the resolver validated the TLSA answer), `insecure`, `bogus`, `none`
    /// (no TLSA record), `unknown` (the lookup failed).
    pub dnssec: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub facts: AddressFacts,
}

/// Observations the judgement needs beyond the JSON document.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// A lookup failed so that the answer is incomplete (exit 3).
    pub lookup_failed: Vec<String>,
    /// Every MX host of the domain now (before any `only` filter).
    pub mx_set: Vec<String>,
    /// The MX RRset validated (DNSSEC).
    pub mx_secure: bool,
    pub mx_bogus: Option<String>,
    /// No MX records: the domain itself is the implicit MX (RFC 5321 §5.1).
    pub implicit_mx: bool,
    /// A null MX (RFC 7505): the domain accepts no mail.
    pub null_mx: bool,
    pub nxdomain: bool,
    /// The resolver's AD bit is not believed here (why): nothing is DNSSEC-validated.
    pub ad_untrusted: Option<String>,
    pub sts_record_findings: Vec<crate::txt_record::Finding>,
    pub sts_policy_findings: Vec<crate::txt_record::Finding>,
    /// Why the policy could not be fetched (sts-policy-fetch-error).
    pub sts_fetch_error: Option<String>,
    /// Per MX host: address lookup problems, TLSA lookup state.
    pub mx: Vec<MxFacts>,
}

#[derive(Debug, Clone, Default)]
pub struct MxFacts {
    pub address_problems: Vec<String>,
    pub tlsa_secure: bool,
    pub tlsa_bogus: Option<String>,
    pub tlsa_failed: Option<String>,
    pub tlsa_count: usize,
    /// The TLSA records in presentation form (at most probe::dane::MAX_TLSA).
    pub tlsa_records: Vec<String>,
    /// Every address record of the host validated (DNSSEC).
    pub addresses_secure: bool,
}

#[derive(Debug, Clone, Default)]
pub struct AddressFacts {
    /// Not probed: the address class refused.
    pub refused: Option<&'static str>,
    pub smtp_error: Option<crate::probe::smtp::Error>,
    /// STARTTLS offered but refused.
    pub starttls_refused: Option<String>,
    pub tls_error: Option<crate::probe::tls::Error>,
    /// The TLS session failed without SNI only.
    pub no_sni_error: Option<String>,
    /// The chain is the same with and without SNI.
    pub same_without_sni: bool,
    /// SHA-256 of the leaf's SubjectPublicKeyInfo (the `3 1 1` record to publish).
    pub spki_sha256: Option<String>,
    /// Not probed: the domain's check ran out of time first.
    pub out_of_time: bool,
}

/// The exit status for a set of reports.
pub fn status(reports: &[DomainReport]) -> u8 {
    if reports.iter().any(|r| !r.facts.lookup_failed.is_empty()) {
        return 3;
    }
    match reports
        .iter()
        .flat_map(|r| &r.findings)
        .map(|f| f.severity)
        .max()
    {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// The JSON document.
pub fn json(reports: &[DomainReport]) -> String {
    let doc = serde_json::json!({ "status": status(reports), "domains": reports });
    let mut s = serde_json::to_string_pretty(&doc).expect("plain data");
    s.push('\n');
    s
}

/// What `check-domain --sts-record` / `--sts-policy` judged offline: the findings of a
/// record text or a policy body, without a lookup or a fetch (as `check-record
/// --record` does for TLSRPT), to check one before publishing it.
#[derive(Debug, Clone, Serialize)]
pub struct Offline {
    /// `mta-sts-record` or `mta-sts-policy`.
    pub what: &'static str,
    /// Senders would use it (no error).
    pub valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<Policy>,
    pub findings: Vec<crate::txt_record::Finding>,
}

/// Judges an `_mta-sts` record text and/or a policy body (served as text/plain).
pub fn offline(record: Option<&str>, policy: Option<&[u8]>) -> Vec<Offline> {
    let mut out = Vec::new();
    if let Some(txt) = record {
        let r = crate::probe::mta_sts::parse_record(txt);
        out.push(Offline {
            what: "mta-sts-record",
            valid: r.valid(),
            id: r.id.clone(),
            policy: None,
            findings: r.findings,
        });
    }
    if let Some(body) = policy {
        let (p, f) = crate::probe::mta_sts::parse_policy(body, Some("text/plain"));
        out.push(Offline {
            what: "mta-sts-policy",
            valid: !f.iter().any(|x| x.severity == Severity::Error),
            id: None,
            policy: Some(p),
            findings: f,
        });
    }
    out
}

/// The offline findings as text, one line each, and their exit status (0 valid, 1
/// warnings, 2 errors).
pub fn offline_text(items: &[Offline]) -> (String, u8) {
    let mut o = String::new();
    let mut worst = None;
    for it in items {
        o.push_str(&format!(
            "{}: {}\n",
            it.what,
            if it.valid {
                "valid"
            } else {
                "invalid: strict senders do not use it"
            }
        ));
        for f in &it.findings {
            worst = worst.max(Some(f.severity));
            o.push_str(&format!(
                "  {} {}: {}\n",
                f.severity.label(),
                f.code,
                crate::probe::shown(&f.message, 2000)
            ));
        }
    }
    let status = match worst {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    };
    (o, status)
}
