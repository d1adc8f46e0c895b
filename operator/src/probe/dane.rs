//! DANE for SMTP (RFC 7672): TLSA records at `_25._tcp.MXHOST` matched against the chain
//! a server showed (pure).
//!
//! - Only usages DANE-TA(2) and DANE-EE(3) are usable for SMTP (§3.1.3); PKIX-TA(0) and
//!   PKIX-EE(1) records are "unusable" and so is any unknown usage, selector or matching
//!   type. Selector 0 is the whole certificate, 1 its SubjectPublicKeyInfo; matching type
//!   0 the data itself, 1 SHA-256, 2 SHA-512.
//! - DANE-EE(3) matches the leaf; names and validity dates are not checked (§3.1.1).
//! - DANE-TA(2) matches a certificate of the chain as sent other than the leaf (the trust
//!   anchor must be in the chain: §3.1.2 requires servers to send it); the chain from the
//!   leaf to it must verify and the leaf must be valid for the MX name (§3.2.2, §3.2.3).
//! - The records mean anything only when the resolver validated them (DNSSEC): deciding
//!   that is the caller's part.

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use serde::Serialize;
use sha2::{Digest, Sha256, Sha512};

/// A TLSA record's fields: usage, selector, matching type, association data.
pub type Record = (u8, u8, u8, Vec<u8>);

/// One TLSA record and what it says about the chain.
#[derive(Debug, Clone, Serialize)]
pub struct Tlsa {
    /// Presentation form, `3 1 1 ab12…` (data cut to 64 hex digits).
    pub record: String,
    pub usable: bool,
    pub matches: bool,
    /// For a matching DANE-TA record whose chain does not verify: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The digest of `data` as matching type `mtype` says, or None for an unknown type.
fn digest(mtype: u8, data: &[u8]) -> Option<Vec<u8>> {
    match mtype {
        0 => Some(data.to_vec()),
        1 => Some(Sha256::digest(data).to_vec()),
        2 => Some(Sha512::digest(data).to_vec()),
        _ => None,
    }
}

/// Does `cert` match (selector, matching type, data)?
fn matches_cert(cert: &[u8], selector: u8, mtype: u8, data: &[u8]) -> bool {
    let part = match selector {
        0 => cert.to_vec(),
        1 => match super::cert::parse(cert) {
            Ok(p) => p.spki,
            Err(_) => return false,
        },
        _ => return false,
    };
    digest(mtype, &part).is_some_and(|d| d == data)
}

/// Matches every record (`(usage, selector, matching type, data)`) against `chain`.
/// `host`: the MX name (DANE-TA checks it); `now`: Unix seconds.
pub fn check(
    records: &[Record],
    chain: &[CertificateDer<'static>],
    host: &str,
    now: i64,
) -> Vec<Tlsa> {
    records
        .iter()
        .map(|(usage, selector, mtype, data)| {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            let shown = if hex.len() > 64 {
                format!("{}…", &hex[..64])
            } else {
                hex
            };
            let record = format!("{usage} {selector} {mtype} {shown}");
            let usable =
                matches!(usage, 2 | 3) && matches!(selector, 0 | 1) && matches!(mtype, 0..=2);
            let mut t = Tlsa {
                record,
                usable,
                matches: false,
                problem: None,
            };
            if !usable || chain.is_empty() {
                return t;
            }
            if *usage == 3 {
                t.matches = matches_cert(&chain[0], *selector, *mtype, data);
                return t;
            }
            // DANE-TA: a certificate above the leaf, then the chain up to it must hold.
            let Some(ta) = chain[1..]
                .iter()
                .find(|c| matches_cert(c, *selector, *mtype, data))
            else {
                return t;
            };
            let mut roots = RootCertStore::empty();
            if roots.add(ta.clone()).is_err() {
                t.problem = Some("the matching certificate cannot serve as a trust anchor".into());
                return t;
            }
            match super::cert::judge(chain, host, &std::sync::Arc::new(roots), now) {
                Ok(ci) if ci.trusted && ci.matches_host && ci.failure.is_none() => t.matches = true,
                Ok(ci) => {
                    t.problem = Some(match ci.failure {
                        Some(f) => format!(
                            "the trust anchor matches, but the chain fails: {}",
                            f.result_type()
                        ),
                        None => "the trust anchor matches, but the chain does not verify".into(),
                    })
                }
                Err(e) => t.problem = Some(e),
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_and_usability() {
        let cert = CertificateDer::from(b"not really a certificate".to_vec());
        let chain = vec![cert.clone()];
        let full_sha256 = Sha256::digest(cert.as_ref()).to_vec();
        let r = check(
            &[
                (3, 0, 1, full_sha256.clone()),
                (3, 0, 0, cert.to_vec()),
                (3, 0, 2, Sha512::digest(cert.as_ref()).to_vec()),
                (3, 0, 1, vec![0; 32]),
                (1, 0, 1, full_sha256.clone()),
                (3, 2, 1, full_sha256.clone()),
                (3, 0, 9, full_sha256),
            ],
            &chain,
            "mx.example",
            0,
        );
        let got: Vec<(bool, bool)> = r.iter().map(|t| (t.usable, t.matches)).collect();
        assert_eq!(
            got,
            [
                (true, true),
                (true, true),
                (true, true),
                (true, false),
                (false, false),
                (false, false),
                (false, false)
            ]
        );
        assert!(r[0].record.starts_with("3 0 1 "));
    }
}
