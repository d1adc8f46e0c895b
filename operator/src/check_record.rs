//! `tlsrpt check-record`: is the TLSRPT record of a domain right, and does it send the
//! reports here?
//!
//! DNS goes through `probe::dns` (hickory-proto messages over std sockets, bounded);
//! nothing of it is linked into tlsrpt-pipe. Answers are untrusted input: record text is
//! shown escaped, never interpreted beyond the grammar.
//!
//! Exit status, monitoring-plugins style: 0 valid, 1 warnings only, 2 errors (no usable
//! record included), 3 a lookup itself failed (SERVFAIL, timeout, refused: not "no
//! record").

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::proto::rr::{RData, RecordType};
use serde::Serialize;

use crate::probe::dns::{Lookup, Resolver};
use crate::txt_record::{self, Finding, Severity, finding};

/// Names where people publish the record by mistake, tried when `_smtp._tls` has none.
const LOOK_ALIKES: &[&str] = &[
    "_smtp.",
    "_tls.",
    "_smtp-tlsrpt.",
    "_tlsrpt.",
    "_smtp_tls.",
    "smtp._tls.",
    "_smtp.tls.",
    "",
];

/// Longest answer text kept per record (a TXT RRset can be large).
const MAX_RECORD: usize = 4096;

/// What one name's check found.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    /// The domain asked about (for `--mx`, the MX host).
    pub domain: String,
    /// The name looked up (`_smtp._tls.DOMAIN`), or `(record)` offline.
    pub name: String,
    /// The TXT records found there, strings joined.
    pub records: Vec<String>,
    /// The report URIs senders would use.
    pub rua: Vec<String>,
    pub findings: Vec<Finding>,
    #[serde(rename = "lookup-failed")]
    pub lookup_failed: bool,
}

impl Entry {
    fn new(domain: &str, name: &str) -> Entry {
        Entry {
            domain: domain.to_owned(),
            name: name.to_owned(),
            records: Vec::new(),
            rua: Vec::new(),
            findings: Vec::new(),
            lookup_failed: false,
        }
    }
}

/// The exit status for a set of entries.
pub fn status(entries: &[Entry]) -> u8 {
    if entries.iter().any(|e| e.lookup_failed) {
        return 3;
    }
    match entries
        .iter()
        .flat_map(|e| &e.findings)
        .map(|f| f.severity)
        .max()
    {
        Some(Severity::Error) => 2,
        Some(Severity::Warning) => 1,
        _ => 0,
    }
}

/// One TXT lookup's outcome.
enum Txt {
    Records {
        txts: Vec<(String, usize, u32)>,
        cname: Option<String>,
    },
    NxDomain,
    NoData,
    /// The answer does not validate (DNSSEC-bogus): validating senders see nothing.
    Bogus(String),
    Failed(String),
}

/// The DNS of check-record: the resolver of `probe::dns` (the same one check-domain uses).
pub struct Dns {
    resolver: Resolver,
}

impl Dns {
    /// The system resolver (/etc/resolv.conf), or one name server.
    pub fn new(nameserver: Option<SocketAddr>, timeout: Duration) -> Result<Dns, String> {
        Ok(Dns {
            resolver: Resolver::new(nameserver, timeout, false)?,
        })
    }

    /// Wraps a resolver already made.
    pub fn with(resolver: Resolver) -> Dns {
        Dns { resolver }
    }

    fn txt(&self, name: &str) -> Txt {
        match self.resolver.lookup(name, RecordType::TXT) {
            Lookup::Found {
                records,
                ttl,
                chain,
                ..
            } => {
                let mut txts = Vec::new();
                for r in &records {
                    if let RData::TXT(t) = r {
                        let mut s = String::new();
                        for part in t.txt_data.iter() {
                            s.push_str(&String::from_utf8_lossy(part));
                        }
                        // On a character boundary: a record of 4,095 ASCII bytes and then
                        // "é"s must not panic (it did).
                        let cut = crate::render::safe::cut(&s, MAX_RECORD).len();
                        s.truncate(cut);
                        txts.push((s, t.txt_data.len(), ttl));
                    }
                }
                Txt::Records {
                    txts,
                    cname: chain.last().cloned(),
                }
            }
            Lookup::NxDomain { .. } => Txt::NxDomain,
            Lookup::NoData { .. } => Txt::NoData,
            Lookup::Bogus(why) => Txt::Bogus(why),
            Lookup::Failed(why) => Txt::Failed(why),
        }
    }

    fn mx(&self, domain: &str) -> Result<Vec<String>, String> {
        match self.resolver.lookup(domain, RecordType::MX) {
            Lookup::Found { records, .. } => {
                let mut hosts: Vec<(u16, String)> = records
                    .iter()
                    .filter_map(|r| match r {
                        RData::MX(mx) => Some((
                            mx.preference,
                            mx.exchange
                                .to_ascii()
                                .trim_end_matches('.')
                                .to_ascii_lowercase(),
                        )),
                        _ => None,
                    })
                    .filter(|(_, h)| !h.is_empty())
                    .collect();
                hosts.sort();
                hosts.dedup_by(|a, b| a.1 == b.1);
                Ok(hosts.into_iter().map(|(_, h)| h).collect())
            }
            Lookup::NxDomain { .. } | Lookup::NoData { .. } => Ok(Vec::new()),
            Lookup::Bogus(why) => Err(format!("DNSSEC-bogus: {why}")),
            Lookup::Failed(why) => Err(why),
        }
    }
}

/// Record text for a message: made safe by `probe::shown`, then quoted.
fn shown(s: &str) -> String {
    format!("{:?}", crate::probe::shown(s, 200))
}

/// Applies the expected report URIs to an entry.
pub fn expect(e: &mut Entry, expected: &[String]) {
    for want in expected {
        let w = txt_record::normalise_uri(want);
        if e.rua.iter().any(|u| txt_record::normalise_uri(u) == w) {
            e.findings.push(finding(
                "expected-rua-present",
                Severity::Info,
                format!("reports are sent to {want}"),
            ));
        } else if let Some(u) = e
            .rua
            .iter()
            .find(|u| txt_record::normalise_uri(u).eq_ignore_ascii_case(&w))
        {
            e.findings.push(finding(
                "expected-rua-case",
                Severity::Warning,
                format!("reports go to {u}, which differs from {want} only in the case of the local part: most mail servers deliver both to one mailbox, RFC 5321 lets them differ"),
            ));
        } else if e.rua.is_empty() {
            e.findings.push(finding(
                "expected-rua-missing",
                Severity::Error,
                format!("no usable record, so no reports reach {want}"),
            ));
        } else {
            e.findings.push(finding(
                "expected-rua-missing",
                Severity::Error,
                format!(
                    "reports go to {}, not to {want}: add it to rua",
                    e.rua.join(", ")
                ),
            ));
        }
    }
}

/// The offline check of one record text.
pub fn offline(txt: &str, expected: &[String]) -> Entry {
    let mut e = Entry::new("", "(record)");
    e.records.push(txt.to_owned());
    let c = txt_record::check(txt);
    e.rua = c.rua;
    e.findings = c.findings;
    expect(&mut e, expected);
    e
}

/// Checks `_smtp._tls.DOMAIN`. `is_mx`: the domain is an MX host (DANE's policy domain),
/// where a missing record is a warning rather than an error.
pub fn check_domain(dns: &Dns, domain: &str, expected: &[String], is_mx: bool) -> Entry {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = format!("_smtp._tls.{domain}");
    let mut e = Entry::new(&domain, &name);
    let missing = |e: &mut Entry, code: &'static str, why: String| {
        let (sev, msg) = if is_mx {
            (
                Severity::Warning,
                format!(
                    "{why}: DANE senders send reports about this MX to {name}; publish a TLSRPT record there too (it may use the same rua)"
                ),
            )
        } else {
            (Severity::Error, why)
        };
        e.findings.push(finding(code, sev, msg));
    };
    match dns.txt(&name) {
        Txt::Failed(why) => {
            e.lookup_failed = true;
            e.findings.push(finding(
                "lookup-failed",
                Severity::Error,
                format!("the lookup of {name} TXT failed ({why}): this says nothing about the record; check the domain's name servers"),
            ));
            return e;
        }
        Txt::Bogus(why) => {
            e.findings.push(finding(
                "dnssec-invalid",
                Severity::Error,
                format!("the answer for {name} TXT fails DNSSEC validation ({why}): validating senders see no record and send no reports; re-sign the zone, check the DS record at the parent"),
            ));
            return e;
        }
        Txt::NxDomain => missing(
            &mut e,
            "no-record-nxdomain",
            format!(
                "{name} does not exist (NXDOMAIN): publish {name}. TXT \"v=TLSRPTv1; rua=mailto:tls-reports@{domain}\""
            ),
        ),
        Txt::NoData => missing(
            &mut e,
            "no-record-nodata",
            format!(
                "{name} exists but has no TXT record (only other types, or names below it): add the TXT record \"v=TLSRPTv1; rua=mailto:tls-reports@{domain}\""
            ),
        ),
        Txt::Records { txts, cname } => {
            if let Some(target) = cname {
                e.findings.push(finding(
                    "cname",
                    Severity::Info,
                    format!("{name} is an alias (CNAME) of {target}; senders follow it"),
                ));
            }
            let (tlsrpt, other): (Vec<_>, Vec<_>) = txts
                .into_iter()
                .partition(|(t, _, _)| txt_record::looks_like_tlsrpt(t));
            for (t, _, _) in &other {
                // Was it answered through a wildcard?
                let probe = format!("tlsrpt-wildcard-probe-7d3f.{domain}");
                let wild = matches!(dns.txt(&probe), Txt::Records { ref txts, .. } if txts.iter().any(|(p, _, _)| p == t));
                let how = if wild {
                    format!(", answered through a wildcard (*.{domain})")
                } else {
                    String::new()
                };
                let sev = if tlsrpt.is_empty() {
                    Severity::Warning
                } else {
                    Severity::Info
                };
                e.findings.push(finding(
                    "unrelated-txt",
                    sev,
                    format!(
                        "an unrelated TXT record at {name}{how}: {}; senders ignore it",
                        shown(t)
                    ),
                ));
            }
            // RFC 8460 §3: among several TXT records, those not beginning with exactly
            // "v=TLSRPTv1;" are discarded; exactly one must be left. A record alone at
            // the name is read by the grammar (a space before ";" is then valid).
            let alone = tlsrpt.len() == 1 && other.is_empty();
            let chosen = |t: &str| alone || txt_record::selected_by_senders(t);
            let selected = tlsrpt.iter().filter(|(t, _, _)| chosen(t)).count();
            for (t, _, _) in tlsrpt.iter().filter(|(t, _, _)| !chosen(t)) {
                e.findings.push(finding(
                    "not-selected",
                    Severity::Error,
                    format!("{} is discarded: with several TXT records at {name}, senders keep only those beginning with exactly \"v=TLSRPTv1;\" (RFC 8460 §3)", shown(t)),
                ));
            }
            if tlsrpt.is_empty() {
                missing(
                    &mut e,
                    "no-tlsrpt-record",
                    format!(
                        "no TLSRPT record at {name}: publish one beginning with \"v=TLSRPTv1;\""
                    ),
                );
            } else if selected > 1 {
                e.findings.push(finding(
                    "multiple-records",
                    Severity::Error,
                    format!("{selected} TLSRPT records at {name}: senders then treat the domain as having none; delete one"),
                ));
            }
            for (t, strings, ttl) in &tlsrpt {
                e.records.push(t.clone());
                if *strings > 1 {
                    e.findings.push(finding(
                        "multi-string",
                        Severity::Info,
                        format!(
                            "the record is {strings} strings, joined without separators into {}",
                            shown(t)
                        ),
                    ));
                }
                if *ttl < 3600 {
                    e.findings.push(finding(
                        "short-ttl",
                        Severity::Info,
                        format!("TTL {ttl} s: RFC 8460 §7 encourages a long TTL (or DNSSEC) against spoofed records"),
                    ));
                }
                let c = txt_record::check(t);
                e.findings.extend(c.findings);
                if selected == 1 && chosen(t) {
                    e.rua = c.rua;
                }
            }
            if selected > 1 {
                e.rua.clear();
            }
        }
    }
    if e.records.is_empty() && !is_mx {
        // Published at the wrong name?
        for prefix in LOOK_ALIKES {
            let n = format!("{prefix}{domain}");
            if let Txt::Records { txts, .. } = dns.txt(&n)
                && txts
                    .iter()
                    .any(|(t, _, _)| txt_record::looks_like_tlsrpt(t))
            {
                e.findings.push(finding(
                        "record-at-wrong-name",
                        Severity::Error,
                        format!("a TLSRPT record is published at {n}, but senders look only at {name}: move it there"),
                    ));
            }
        }
    }
    expect(&mut e, expected);
    e
}

/// `DOMAIN` and, with `--mx`, each of its MX hosts.
pub fn check_with_mx(dns: &Dns, domain: &str, expected: &[String], mx: bool) -> Vec<Entry> {
    let mut out = vec![check_domain(dns, domain, expected, false)];
    if mx {
        match dns.mx(domain) {
            Ok(hosts) if hosts.is_empty() => {
                out[0].findings.push(finding(
                    "no-mx",
                    Severity::Info,
                    "no MX records: nothing to check for DANE",
                ));
            }
            Ok(hosts) => {
                for h in hosts {
                    out.push(check_domain(dns, &h, expected, true));
                }
            }
            Err(why) => {
                let mut e = Entry::new(domain, &format!("{domain} MX"));
                e.lookup_failed = true;
                e.findings.push(finding(
                    "lookup-failed",
                    Severity::Error,
                    format!("the MX lookup of {domain} failed ({why})"),
                ));
                out.push(e);
            }
        }
    }
    out
}

/// Parses `IP` or `IP:PORT` (`[v6]:port` for IPv6).
pub fn parse_nameserver(s: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    s.parse::<IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{s:?}: not IP or IP:PORT"))
}

/// The text report.
pub fn text(entries: &[Entry]) -> String {
    let mut out = String::new();
    for e in entries {
        match e.records.as_slice() {
            [] => out.push_str(&format!("{}: no TLSRPT record\n", e.name)),
            recs => {
                for r in recs {
                    out.push_str(&format!("{}: {}\n", e.name, shown(r)));
                }
            }
        }
        let mut fs: Vec<&Finding> = e.findings.iter().collect();
        fs.sort_by_key(|f| std::cmp::Reverse(f.severity));
        for f in fs {
            out.push_str(&format!("  {}: {}\n", f.severity.label(), f.message));
        }
        if !e.rua.is_empty() && !e.findings.iter().any(|f| f.severity == Severity::Error) {
            out.push_str(&format!("  ok: reports go to {}\n", e.rua.join(", ")));
        }
    }
    out
}

/// The JSON report.
pub fn json(entries: &[Entry]) -> String {
    let doc = serde_json::json!({ "status": status(entries), "entries": entries });
    let mut s = serde_json::to_string_pretty(&doc).expect("plain data");
    s.push('\n');
    s
}
