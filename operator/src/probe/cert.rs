//! A certificate chain as shown by a server → what an operator needs to see, and the
//! verdicts senders reach: trusted by the public roots (webpki, as rustls clients and the
//! big senders' validators), valid for the host name (RFC 6125 as RFC 7672 §3.2.3 and RFC
//! 8461 §4.2 apply it), within its validity period. Pure but for the clock passed in.
//!
//! The three verdicts are taken apart, so that one failure does not hide another: webpki
//! stops at the first problem (an expired certificate is never checked for its name), so
//! the name is compared here, and the chain is checked again at a moment inside the
//! leaf's validity when the leaf has expired.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, RootCertStore};
use serde::Serialize;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};

/// The fields of one certificate, as shown in the output.
#[derive(Debug, Clone, Serialize)]
pub struct CertInfo {
    /// The DNS names it is valid for: subjectAltName dNSNames, or the subject CN when it
    /// has none (legacy; RFC 6125 §6.4.4).
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    #[serde(rename = "not-before")]
    pub not_before: String,
    #[serde(rename = "not-after")]
    pub not_after: String,
    /// The same as seconds since the epoch (for watch's metrics and history).
    #[serde(skip)]
    pub not_after_ts: i64,
    /// The chain leads to a trusted root (the system's public roots or `--ca-file`).
    pub trusted: bool,
    /// Valid for the host name asked for.
    #[serde(rename = "matches-host")]
    pub matches_host: bool,
    /// Whole days left until not-after (negative: expired that many days ago).
    #[serde(rename = "days-left")]
    pub days_left: i64,
    /// Certificates in the chain as sent, leaf first.
    #[serde(rename = "chain-length")]
    pub chain_length: usize,
    /// Why the chain is not trusted, in webpki's words, when it is not.
    #[serde(rename = "verify-error", skip_serializing_if = "Option::is_none")]
    pub verify_error: Option<String>,
    /// What a sender reports for this chain and name, when anything (RFC 8460 §4.3).
    #[serde(skip)]
    pub failure: Option<Failure>,
}

/// The RFC 8460 result type a validating sender reports for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    Expired,
    NotYetValid,
    HostMismatch,
    NotTrusted,
    /// Any other validation error (bad signature, wrong key usage, bad encoding, ...).
    Validation,
}

impl Failure {
    pub fn result_type(self) -> &'static str {
        match self {
            Failure::Expired | Failure::NotYetValid => "certificate-expired",
            Failure::HostMismatch => "certificate-host-mismatch",
            Failure::NotTrusted => "certificate-not-trusted",
            Failure::Validation => "validation-failure",
        }
    }
}

/// The parts of a leaf certificate the checks need.
pub struct Parsed {
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
    /// DER of the SubjectPublicKeyInfo (TLSA selector 1).
    pub spki: Vec<u8>,
}

/// Parses a DER certificate.
pub fn parse(der: &[u8]) -> Result<Parsed, String> {
    let (_, c) =
        X509Certificate::from_der(der).map_err(|e| format!("unreadable certificate: {e}"))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = c.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                // Untrusted text (an IA5String may hold control characters): made safe
                // here, once, for every output; such a name matches no host anyway.
                names.push(super::shown(&d.to_ascii_lowercase(), 253));
            }
        }
    }
    if names.is_empty() {
        for cn in c.subject().iter_common_name() {
            if let Ok(s) = cn.as_str() {
                names.push(super::shown(&s.to_ascii_lowercase(), 253));
            }
        }
    }
    Ok(Parsed {
        names,
        subject: super::shown(&c.subject().to_string(), 300),
        issuer: super::shown(&c.issuer().to_string(), 300),
        not_before: c.validity().not_before.timestamp(),
        not_after: c.validity().not_after.timestamp(),
        spki: c.public_key().raw.to_vec(),
    })
}

/// Does `pattern` (a certificate name) cover `host`? Exact, case-insensitive, or a
/// wildcard `*.example.com` standing for exactly one leftmost label (RFC 6125 §6.4.3, as
/// RFC 7672 §3.2.3 and RFC 8461 §4.2 restrict it).
pub fn name_matches(pattern: &str, host: &str) -> bool {
    let p = pattern.trim_end_matches('.').to_ascii_lowercase();
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    if p == h {
        return true;
    }
    match (p.strip_prefix("*."), h.split_once('.')) {
        (Some(base), Some((first, rest))) => {
            !first.is_empty() && rest == base && base.contains('.')
        }
        _ => false,
    }
}

/// Judges the chain a server showed for `host` at time `now` (Unix seconds).
pub fn judge(
    chain: &[CertificateDer<'static>],
    host: &str,
    roots: &Arc<RootCertStore>,
    now: i64,
) -> Result<CertInfo, String> {
    let leaf = chain.first().ok_or("no certificate sent")?;
    let p = parse(leaf)?;
    let matches_host = p.names.iter().any(|n| name_matches(n, host));
    let verify = |at: i64| -> Result<(), rustls::Error> {
        let v =
            WebPkiServerVerifier::builder_with_provider(roots.clone(), crate::webpki::provider())
                .build()
                .map_err(|e| rustls::Error::General(e.to_string()))?;
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| rustls::Error::General(format!("{host:?} is not a host name")))?;
        v.verify_server_cert(
            leaf,
            &chain[1..],
            &name,
            &[],
            UnixTime::since_unix_epoch(std::time::Duration::from_secs(at.max(0) as u64)),
        )
        .map(|_| ())
    };
    let expired = now > p.not_after;
    let not_yet = now < p.not_before;
    // Inside the leaf's validity, when it is outside now: is the chain itself trusted?
    let at = if expired || not_yet {
        p.not_before + (p.not_after - p.not_before) / 2
    } else {
        now
    };
    // A self-signed leaf (often marked as a CA, like Debian's snakeoil certificate) is
    // what OpenSSL-based senders report as "self signed certificate": not trusted.
    let self_signed = p.subject == p.issuer && chain.len() == 1;
    let (trusted, verify_error, other) = match verify(at) {
        Ok(()) => (true, None, false),
        Err(_) if self_signed => (
            false,
            Some("a self-signed certificate: no CA vouches for it".to_owned()),
            false,
        ),
        Err(rustls::Error::InvalidCertificate(e)) => match e {
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => (true, None, false),
            CertificateError::UnknownIssuer => (false, Some("unknown issuer: the chain does not lead to a trusted root (self-signed, a private CA, or a missing intermediate certificate)".to_owned()), false),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } | CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                (false, Some("a certificate of the chain is outside its validity period".to_owned()), false)
            }
            other => (false, Some(format!("{other:?}")), true),
        },
        Err(e) => (false, Some(e.to_string()), true),
    };
    let failure = if expired {
        Some(Failure::Expired)
    } else if not_yet {
        Some(Failure::NotYetValid)
    } else if other {
        Some(Failure::Validation)
    } else if !trusted {
        Some(Failure::NotTrusted)
    } else if !matches_host {
        Some(Failure::HostMismatch)
    } else {
        None
    };
    Ok(CertInfo {
        names: p.names,
        subject: p.subject,
        issuer: p.issuer,
        not_before: rfc3339(p.not_before),
        not_after: rfc3339(p.not_after),
        not_after_ts: p.not_after,
        trusted,
        matches_host,
        days_left: (p.not_after - now).div_euclid(86_400),
        chain_length: chain.len(),
        verify_error,
        failure,
    })
}

pub fn rfc3339(t: i64) -> String {
    tlsrpt_pipe::datetime::Timestamp(t).rfc3339()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_stand_for_one_label() {
        assert!(name_matches("mx1.example.com", "MX1.example.com."));
        assert!(name_matches("*.example.com", "mx1.example.com"));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.com", "example.com"));
        assert!(!name_matches("mx*.example.com", "mx1.example.com"));
        assert!(!name_matches("mx2.example.com", "mx1.example.com"));
    }
}
