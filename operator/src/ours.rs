//! Which policy domains are the operator's own, so that `summary --probe` (and `watch`)
//! connect only to them. A trusted DKIM pass proves who *sent* a report, not that its
//! policy domain is ours: anyone who signs mail for their own domain can send a valid
//! report naming any domain, and probing it every hour would make this host a tool
//! against someone else's MX hosts.
//!
//! A domain is ours when it is listed (`--domain`, `--domains-file`), or when its
//! `_smtp._tls` TXT record names as rua a report address of this installation: an
//! address reports were delivered to (the envelope recipients the delivery stored in
//! the records), or an `https:` URL given with `--our-rua`. The TXT lookups go through
//! the same bounded resolver as the probes, several at once, in a budget of their own,
//! so that forged domains (whose DNS an attacker controls and can make slow) cannot eat
//! the time of the probes of ours.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::check_record::{Dns, check_domain};
use crate::txt_record::normalise_uri;

/// Most distinct addresses remembered from the records (a spool of forged reports must
/// not grow this without bound).
pub const MAX_ADDRESSES: usize = 1000;
/// Most domains whose TLSRPT record is looked up in one run.
pub const MAX_LOOKUPS: usize = 200;
/// Lookups at once.
const AT_ONCE: usize = 8;

/// The report addresses of this installation, and the listed domains.
#[derive(Debug, Clone, Default)]
pub struct Ours {
    /// Domain keys given by the operator.
    pub listed: BTreeSet<String>,
    /// Normalised rua URIs (`mailto:local@domain`, `https://host/path`).
    pub rua: BTreeSet<String>,
}

/// Why a domain is not probed.
pub const NOT_OURS: &str =
    "not one of our domains (its TLSRPT record does not send here): not connected to";

impl Ours {
    /// Remembers an address a report was delivered to (an envelope recipient).
    pub fn add_recipient(&mut self, addr: &str) {
        let a = addr.trim().trim_start_matches('<').trim_end_matches('>');
        if a.contains('@') && self.rua.len() < MAX_ADDRESSES {
            self.rua.insert(normalise_uri(&format!("mailto:{a}")));
        }
    }

    /// Adds an `https:` (or `mailto:`) report URI of this installation (`--our-rua`).
    pub fn add_uri(&mut self, uri: &str) {
        self.rua.insert(normalise_uri(uri));
    }

    /// Is one of these rua URIs ours?
    pub fn sends_here(&self, rua: &[String]) -> bool {
        rua.iter().any(|u| self.rua.contains(&normalise_uri(u)))
    }

    /// Judges `domains` (keys, in the order of importance): the ours, in that order, and
    /// the others with why. Listed domains need no lookup; the others one TXT lookup
    /// each, [`AT_ONCE`] at a time, at most [`MAX_LOOKUPS`], all within `budget`.
    pub fn split(
        &self,
        domains: &[String],
        dns: &Dns,
        budget: Duration,
    ) -> (Vec<String>, Vec<(String, String)>) {
        self.split_upto(domains, dns, budget, MAX_LOOKUPS)
    }

    /// [`split`](Ours::split) with at most `max_lookups` lookups (`watch`, whose run
    /// is the watching of every domain of the reports, looks up each).
    pub fn split_upto(
        &self,
        domains: &[String],
        dns: &Dns,
        budget: Duration,
        max_lookups: usize,
    ) -> (Vec<String>, Vec<(String, String)>) {
        let end = Instant::now() + budget;
        let verdicts: Vec<Mutex<Option<Result<(), String>>>> =
            domains.iter().map(|_| Mutex::new(None)).collect();
        let next = Mutex::new(0usize);
        let lookups = Mutex::new(0usize);
        std::thread::scope(|scope| {
            for _ in 0..AT_ONCE.min(domains.len()) {
                scope.spawn(|| {
                    loop {
                        let k = {
                            let mut n = next.lock().expect("no panics while held");
                            let k = *n;
                            *n += 1;
                            k
                        };
                        let Some(d) = domains.get(k) else { return };
                        let over_budget = || {
                            let mut l = lookups.lock().expect("no panics while held");
                            *l += 1;
                            *l > max_lookups
                        };
                        let v = if self.listed.contains(d) {
                            Ok(())
                        } else if Instant::now() >= end {
                            Err("not probed: no time was left to look up its TLSRPT record (whether it is ours)".into())
                        } else if over_budget() {
                            Err(format!("not probed: more than {max_lookups} domains to look up this run"))
                        } else {
                            let e = check_domain(dns, d, &[], false);
                            if e.lookup_failed {
                                Err("not probed: its TLSRPT record could not be looked up (whether it is ours is not known)".into())
                            } else if self.sends_here(&e.rua) {
                                Ok(())
                            } else {
                                Err(NOT_OURS.into())
                            }
                        };
                        *verdicts[k].lock().expect("no panics while held") = Some(v);
                    }
                });
            }
        });
        let mut ours = Vec::new();
        let mut not = Vec::new();
        for (d, v) in domains.iter().zip(verdicts) {
            match v.into_inner().expect("no panics while held") {
                Some(Ok(())) => ours.push(d.clone()),
                Some(Err(why)) => not.push((d.clone(), why)),
                None => not.push((d.clone(), "not probed".into())),
            }
        }
        // Listed domains first: they are the operator's word.
        ours.sort_by_key(|d| !self.listed.contains(d));
        (ours, not)
    }
}

/// Reads a `--domains-file`: one domain per line, `#` comments, blank lines ignored.
pub fn domains_file(path: &std::path::Path) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(|l| crate::aggregate::domain_key(Some(l)))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_compare_as_uris() {
        let mut o = Ours::default();
        o.add_recipient("<TLS-Reports@Example.COM>");
        o.add_uri("https://Reports.example.com/v1/tlsrpt");
        assert!(o.sends_here(&["mailto:TLS-Reports@example.com".into()]));
        assert!(o.sends_here(&["https://reports.example.com/v1/tlsrpt".into()]));
        assert!(!o.sends_here(&["mailto:tls-reports@victim.example".into()]));
        o.add_recipient("not-an-address");
        assert_eq!(o.rua.len(), 2);
    }
}
