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

/// Most TLSA records looked at per MX host (a real RRset has one to four; an attacker's
/// may have thousands): the rest are named, not matched.
pub const MAX_TLSA: usize = 32;
/// Most certificates of a chain looked at for DANE-TA (a real chain has two to four).
pub const MAX_CHAIN: usize = 12;

/// A digest, by (selector, matching type); None when they are not known.
type Memo = ((u8, u8), Option<Vec<u8>>);

/// The digests of one certificate, computed once per (selector, matching type).
struct Digests<'c> {
    cert: &'c [u8],
    spki: Option<Option<Vec<u8>>>,
    memo: Vec<Memo>,
}

impl<'c> Digests<'c> {
    fn new(cert: &'c [u8]) -> Self {
        Digests {
            cert,
            spki: None,
            memo: Vec::new(),
        }
    }

    /// Does the certificate match (selector, matching type, data)?
    fn matches(&mut self, selector: u8, mtype: u8, data: &[u8]) -> bool {
        if let Some((_, d)) = self.memo.iter().find(|(k, _)| *k == (selector, mtype)) {
            return d.as_deref() == Some(data);
        }
        let part: Option<Vec<u8>> = match selector {
            0 => Some(self.cert.to_vec()),
            1 => self
                .spki
                .get_or_insert_with(|| super::cert::parse(self.cert).ok().map(|p| p.spki))
                .clone(),
            _ => None,
        };
        let d = part.and_then(|p| digest(mtype, &p));
        let hit = d.as_deref() == Some(data);
        self.memo.push(((selector, mtype), d));
        hit
    }
}

/// A record in presentation form, `3 1 1 ab12…` (the data cut to 64 hex digits).
pub fn presentation((usage, selector, mtype, data): &Record) -> String {
    let hex: String = data.iter().take(32).map(|b| format!("{b:02x}")).collect();
    let ell = if data.len() > 32 { "…" } else { "" };
    format!("{usage} {selector} {mtype} {hex}{ell}")
}

/// Matches the records (`(usage, selector, matching type, data)`) against `chain`.
/// `host`: the MX name (DANE-TA checks it); `now`: Unix seconds. Bounded: at most
/// [`MAX_TLSA`] records and [`MAX_CHAIN`] certificates are looked at, each digest is
/// computed once, each trust anchor's chain verified once, and nothing more is done
/// after `deadline` (the rest are listed as not looked at).
pub fn check(
    records: &[Record],
    chain: &[CertificateDer<'static>],
    host: &str,
    now: i64,
    deadline: Option<std::time::Instant>,
) -> Vec<Tlsa> {
    let chain = &chain[..chain.len().min(MAX_CHAIN)];
    let mut digests: Vec<Digests> = chain.iter().map(|c| Digests::new(c.as_ref())).collect();
    // Per trust-anchor index: the verdict of the chain up to it (verified once).
    let mut ta_verdicts: Vec<(usize, Result<(), String>)> = Vec::new();
    let mut out = Vec::with_capacity(records.len().min(MAX_TLSA + 1));
    for (n, (usage, selector, mtype, data)) in records.iter().enumerate() {
        if n == MAX_TLSA || deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            out.push(Tlsa {
                record: format!(
                    "{} more TLSA records not looked at ({})",
                    records.len() - n,
                    if n == MAX_TLSA {
                        format!("at most {MAX_TLSA} are")
                    } else {
                        "the check ran out of time".to_owned()
                    }
                ),
                usable: false,
                matches: false,
                problem: None,
            });
            break;
        }
        let record = presentation(&(*usage, *selector, *mtype, data.clone()));
        let usable = matches!(usage, 2 | 3) && matches!(selector, 0 | 1) && matches!(mtype, 0..=2);
        let mut t = Tlsa {
            record,
            usable,
            matches: false,
            problem: None,
        };
        if !usable || chain.is_empty() {
            out.push(t);
            continue;
        }
        if *usage == 3 {
            t.matches = digests[0].matches(*selector, *mtype, data);
            out.push(t);
            continue;
        }
        // DANE-TA: a certificate above the leaf, then the chain up to it must hold.
        let Some(i) = (1..chain.len()).find(|&i| digests[i].matches(*selector, *mtype, data))
        else {
            out.push(t);
            continue;
        };
        let verdict = match ta_verdicts.iter().find(|(k, _)| *k == i) {
            Some((_, v)) => v.clone(),
            None => {
                let v = ta_verdict(chain, &chain[i], host, now);
                ta_verdicts.push((i, v.clone()));
                v
            }
        };
        match verdict {
            Ok(()) => t.matches = true,
            Err(e) => t.problem = Some(e),
        }
        out.push(t);
    }
    out
}

/// Does the chain verify up to the trust anchor `ta`, for `host`, at `now`?
fn ta_verdict(
    chain: &[CertificateDer<'static>],
    ta: &CertificateDer<'static>,
    host: &str,
    now: i64,
) -> Result<(), String> {
    let mut roots = RootCertStore::empty();
    if roots.add(ta.clone()).is_err() {
        return Err("the matching certificate cannot serve as a trust anchor".into());
    }
    match super::cert::judge(chain, host, &std::sync::Arc::new(roots), now) {
        Ok(ci) if ci.trusted && ci.matches_host && ci.failure.is_none() => Ok(()),
        Ok(ci) => Err(match ci.failure {
            Some(f) => format!(
                "the trust anchor matches, but the chain fails: {}",
                f.result_type()
            ),
            None => "the trust anchor matches, but the chain does not verify".into(),
        }),
        Err(e) => Err(e),
    }
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
            None,
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

    /// Thousands of records and a long chain: a bounded amount of work, said so.
    #[test]
    fn bounded_work() {
        let chain: Vec<CertificateDer<'static>> = (0..300)
            .map(|i| CertificateDer::from(format!("cert {i}").into_bytes()))
            .collect();
        let records: Vec<Record> = (0..1380).map(|i| (2, 0, 1, vec![i as u8; 32])).collect();
        let r = check(&records, &chain, "mx.example", 0, None);
        assert_eq!(r.len(), MAX_TLSA + 1);
        assert!(
            r[MAX_TLSA]
                .record
                .starts_with("1348 more TLSA records not looked at")
        );
        let past = Some(std::time::Instant::now());
        let r = check(&records, &chain, "mx.example", 0, past);
        assert_eq!(r.len(), 1);
        assert!(r[0].record.contains("ran out of time"));
    }
}
