//! Observing a domain: DNS, the MTA-STS policy and every MX address, probed in parallel
//! within the domain's deadline. Records what was seen; judges nothing (that is `judge`).
//!
//! Only the domain's own hosts are contacted: the MX hosts its DNS names now (or the
//! domain itself when it has no MX) on port 25, and `mta-sts.DOMAIN` on port 443.

use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_resolver::proto::rr::{RData, RecordType};
use sha2::{Digest, Sha256};

use super::{Address, AddressFacts, DomainReport, Facts, Mx, MxFacts, Sts};
use crate::check_record;
use crate::probe::dns::{Lookup, Resolver};
use crate::probe::{self, Limits, cert, dane, https, mta_sts, smtp, tls};

/// How many addresses are probed at once.
const PARALLEL: usize = 8;
/// Most MX hosts, and addresses per host, looked at (a hostile zone may list hundreds).
const MAX_MX: usize = 16;
const MAX_ADDRESSES: usize = 8;

/// What to check and how.
#[derive(Clone)]
pub struct Settings {
    pub resolver: Resolver,
    pub op_timeout: Duration,
    /// The whole check of one domain.
    pub domain_timeout: Duration,
    pub allow_private: bool,
    pub roots: std::sync::Arc<rustls::RootCertStore>,
    pub ehlo: String,
    /// Shared by the domains of one run (`summary --probe`): each (MX host, address) is
    /// probed once, however many domains name it; a second asker waits for the first.
    pub cache: Option<std::sync::Arc<Cache>>,
    /// The network's NAT64 prefixes, discovered once per run (probe::Limits::refused).
    pub nat64: std::sync::Arc<std::sync::OnceLock<Vec<crate::probe::Nat64>>>,
    /// Shared by the domains of one run: at most [`PER_ADDRESS`] probes of one address
    /// at a time, however many MX names point at it.
    pub gate: std::sync::Arc<Gate>,
}

/// Probes of one address at once (each is two connections in a row: with and without
/// SNI), so that a run over many domains that share a provider's MX hosts stays polite.
pub const PER_ADDRESS: usize = 2;

/// Counts the probes running per address ([`PER_ADDRESS`] at most).
#[derive(Default)]
pub struct Gate {
    running: Mutex<std::collections::HashMap<IpAddr, usize>>,
    freed: std::sync::Condvar,
}

/// A probe's place at the gate, given back when dropped.
pub struct Pass<'g> {
    gate: &'g Gate,
    ip: IpAddr,
}

impl Gate {
    /// Waits for a place to probe `ip`.
    pub fn enter(&self, ip: IpAddr) -> Pass<'_> {
        let mut running = self.running.lock().expect("no panics while held");
        while running.get(&ip).copied().unwrap_or(0) >= PER_ADDRESS {
            running = self.freed.wait(running).expect("no panics while held");
        }
        *running.entry(ip).or_default() += 1;
        Pass { gate: self, ip }
    }
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        let mut running = self.gate.running.lock().expect("no panics while held");
        if let Some(n) = running.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                running.remove(&self.ip);
            }
        }
        self.gate.freed.notify_all();
    }
}

/// Probe results by (MX host, address): only finished ones (a probe that the domain's
/// deadline cut short is not kept for the next domain). A second asker waits for the
/// first one's probe, and probes itself when that one did not finish.
pub type Cache =
    Mutex<std::collections::HashMap<(String, IpAddr), std::sync::Arc<Mutex<Option<Address>>>>>;

/// Observes `domain`. `only`: probe just these MX hosts (when they are in the MX set).
pub fn observe(s: &Settings, domain: &str, only: Option<&[String]>) -> DomainReport {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let deadline = Instant::now() + s.domain_timeout;
    let limits = Limits {
        op_timeout: s.op_timeout,
        deadline,
        allow_private: s.allow_private,
        roots: s.roots.clone(),
        ehlo: s.ehlo.clone(),
        nat64: s.nat64.clone(),
        resolver: s.resolver.until(deadline),
    };
    let now = now();
    let mut facts = Facts {
        ad_untrusted: s.resolver.ad_trusted().err(),
        ..Facts::default()
    };
    // Every lookup ends by the domain's deadline too.
    let resolver = s.resolver.until(limits.deadline);
    let resolver = &resolver;
    let dns = check_record::Dns::with(resolver.clone());
    let tlsrpt = check_record::check_domain(&dns, &domain, &[], false);
    if tlsrpt.lookup_failed {
        facts.lookup_failed.push(format!("_smtp._tls.{domain} TXT"));
    }

    // The MX set, as senders resolve it.
    let mut mx: Vec<Mx> = Vec::new();
    match resolver.lookup(&domain, RecordType::MX) {
        Lookup::Found {
            records, secure, ..
        } => {
            facts.mx_secure = secure;
            let mut hosts: Vec<(u16, String)> = records
                .iter()
                .filter_map(|r| match r {
                    RData::MX(m) => Some((
                        m.preference,
                        m.exchange
                            .to_ascii()
                            .trim_end_matches('.')
                            .to_ascii_lowercase(),
                    )),
                    _ => None,
                })
                .collect();
            // One entry per host, at its best preference, then in preference order.
            hosts.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
            hosts.dedup_by(|a, b| a.1 == b.1);
            hosts.sort();
            if hosts.len() == 1 && hosts[0].1.is_empty() {
                facts.null_mx = true;
                hosts.clear();
            }
            hosts.retain(|(_, h)| !h.is_empty());
            facts.mx_set = hosts.iter().map(|(_, h)| h.clone()).collect();
            hosts.truncate(MAX_MX);
            mx = hosts
                .into_iter()
                .map(|(preference, host)| Mx {
                    host,
                    preference,
                    sts_pattern: None,
                    addresses: Vec::new(),
                })
                .collect();
        }
        Lookup::NoData { secure } => {
            facts.mx_secure = secure;
            facts.implicit_mx = true;
            mx.push(Mx {
                host: domain.clone(),
                preference: 0,
                sts_pattern: None,
                addresses: Vec::new(),
            });
        }
        Lookup::NxDomain { .. } => facts.nxdomain = true,
        Lookup::Bogus(why) => facts.mx_bogus = Some(why),
        Lookup::Failed(why) => facts.lookup_failed.push(format!("{domain} MX: {why}")),
    }
    if facts.mx_set.is_empty() {
        facts.mx_set = mx.iter().map(|m| m.host.clone()).collect();
    }
    if let Some(only) = only {
        mx.retain(|m| only.iter().any(|h| h.eq_ignore_ascii_case(&m.host)));
    }

    // MTA-STS and every MX host, side by side.
    let sts = Mutex::new(StsSeen::default());
    let mx_facts: Vec<Mutex<MxFacts>> = mx.iter().map(|_| Mutex::new(MxFacts::default())).collect();
    let tlsa_records: Vec<Mutex<Vec<dane::Record>>> =
        mx.iter().map(|_| Mutex::new(Vec::new())).collect();
    let addresses: Vec<Mutex<Vec<Address>>> = mx.iter().map(|_| Mutex::new(Vec::new())).collect();
    let queue: Mutex<std::vec::IntoIter<(usize, IpAddr)>> = Mutex::new(Vec::new().into_iter());
    std::thread::scope(|scope| {
        if !facts.nxdomain {
            scope.spawn(|| {
                let r = observe_sts(resolver, &domain, &limits);
                *sts.lock().expect("no panics while held") = r;
            });
        }
        // DNS per MX host (addresses, TLSA), then the probes from a shared queue.
        let jobs: Mutex<Vec<(usize, IpAddr)>> = Mutex::new(Vec::new());
        std::thread::scope(|dns_scope| {
            for (i, m) in mx.iter().enumerate() {
                let (jobs, facts, tlsa) = (&jobs, &mx_facts[i], &tlsa_records[i]);
                dns_scope.spawn(move || {
                    let (addrs, problems) = resolver.addresses(&m.host);
                    let mut f = facts.lock().expect("no panics while held");
                    f.address_problems = problems;
                    // DANE needs the address records validated too (RFC 7672 §2.2.2).
                    f.addresses_secure =
                        !addrs.is_empty() && addrs.iter().all(|(_, secure)| *secure);
                    match resolver.lookup(&format!("_25._tcp.{}", m.host), RecordType::TLSA) {
                        Lookup::Found {
                            records, secure, ..
                        } => {
                            f.tlsa_secure = secure;
                            f.tlsa_count = records.len();
                            let recs: Vec<dane::Record> = records
                                .iter()
                                .filter_map(|r| match r {
                                    RData::TLSA(t) => Some((
                                        u8::from(t.cert_usage),
                                        u8::from(t.selector),
                                        u8::from(t.matching),
                                        t.cert_data.clone(),
                                    )),
                                    _ => None,
                                })
                                .collect();
                            f.tlsa_records = recs
                                .iter()
                                .take(dane::MAX_TLSA)
                                .map(dane::presentation)
                                .collect();
                            *tlsa.lock().expect("no panics while held") = recs;
                        }
                        Lookup::NxDomain { secure } | Lookup::NoData { secure } => {
                            f.tlsa_secure = secure
                        }
                        Lookup::Bogus(why) => f.tlsa_bogus = Some(why),
                        Lookup::Failed(why) => f.tlsa_failed = Some(why),
                    }
                    let mut j = jobs.lock().expect("no panics while held");
                    for (ip, _) in addrs.into_iter().take(MAX_ADDRESSES) {
                        j.push((i, ip));
                    }
                });
            }
        });
        *queue.lock().expect("no panics while held") =
            jobs.into_inner().expect("no panics while held").into_iter();
        for _ in 0..PARALLEL {
            scope.spawn(|| {
                loop {
                    let Some((i, ip)) = queue.lock().expect("no panics while held").next() else {
                        return;
                    };
                    let tlsa = tlsa_records[i]
                        .lock()
                        .expect("no panics while held")
                        .clone();
                    let f = mx_facts[i].lock().expect("no panics while held").clone();
                    let host = &mx[i].host;
                    let a = match &s.cache {
                        // Out of time: not probed, and not cached for other domains.
                        _ if limits.expired() => Address {
                            address: ip.to_string(),
                            dnssec: "unknown",
                            error: Some(
                                "not probed: the check of the domain ran out of time".into(),
                            ),
                            facts: AddressFacts {
                                out_of_time: true,
                                ..AddressFacts::default()
                            },
                            ..Address::default()
                        },
                        Some(c) => {
                            let cell = c
                                .lock()
                                .expect("no panics while held")
                                .entry((host.clone(), ip))
                                .or_default()
                                .clone();
                            let mut slot = cell.lock().expect("no panics while held");
                            match &*slot {
                                Some(a) => a.clone(),
                                None => {
                                    let a =
                                        observe_address(host, ip, &tlsa, &f, &limits, now, &s.gate);
                                    if !limits.expired() {
                                        *slot = Some(a.clone());
                                    }
                                    a
                                }
                            }
                        }
                        None => observe_address(host, ip, &tlsa, &f, &limits, now, &s.gate),
                    };
                    addresses[i].lock().expect("no panics while held").push(a);
                }
            });
        }
    });
    for (i, m) in mx.iter_mut().enumerate() {
        let mut a = std::mem::take(&mut *addresses[i].lock().expect("no panics while held"));
        a.sort_by(|x, y| x.address.cmp(&y.address));
        m.addresses = a;
    }
    facts.mx = mx_facts
        .into_iter()
        .map(|m| m.into_inner().expect("no panics while held"))
        .collect();
    for (m, f) in mx.iter().zip(&facts.mx) {
        if let Some(why) = &f.tlsa_failed {
            facts
                .lookup_failed
                .push(format!("_25._tcp.{} TLSA: {why}", m.host));
        }
        for p in &f.address_problems {
            if !p.contains("DNSSEC-bogus") {
                facts.lookup_failed.push(p.clone());
            }
        }
    }
    let seen = sts.into_inner().expect("no panics while held");
    let mut sts = seen.sts;
    facts.sts_record_findings = seen.record_findings;
    facts.sts_policy_findings = seen.policy_findings;
    facts.sts_fetch_error = seen.fetch_error;
    facts.lookup_failed.extend(seen.lookup_failed);
    if let Some(p) = &sts.policy {
        for m in &mut mx {
            m.sts_pattern = mta_sts::covers(&p.mx, &m.host);
        }
    }
    if sts.record.is_empty() {
        sts.policy = None;
    }
    DomainReport {
        domain,
        tlsrpt,
        mta_sts: sts,
        mx,
        findings: Vec::new(),
        checked_at: cert::rfc3339(now),
        facts,
    }
}

pub fn now() -> i64 {
    tlsrpt_pipe::datetime::Timestamp::now().0
}

/// What `observe_sts` saw: the document part and the facts the judgement needs.
#[derive(Default)]
struct StsSeen {
    sts: Sts,
    record_findings: Vec<crate::txt_record::Finding>,
    policy_findings: Vec<crate::txt_record::Finding>,
    fetch_error: Option<String>,
    lookup_failed: Vec<String>,
}

/// The `_mta-sts` record and, when there is one, the policy.
fn observe_sts(resolver: &Resolver, domain: &str, limits: &Limits) -> StsSeen {
    let mut seen = StsSeen::default();
    let name = format!("_mta-sts.{domain}");
    // Parsed as sent (a tab is a separator), made safe only for showing.
    let txts: Vec<String> = match resolver.lookup(&name, RecordType::TXT) {
        Lookup::Found { records, .. } => records
            .iter()
            .filter_map(|r| match r {
                RData::TXT(t) => Some(
                    t.txt_data
                        .iter()
                        .map(|p| String::from_utf8_lossy(p))
                        .collect::<String>(),
                ),
                _ => None,
            })
            .map(|t| t.chars().take(1024).collect())
            .collect(),
        Lookup::NxDomain { .. } | Lookup::NoData { .. } => Vec::new(),
        Lookup::Bogus(why) => {
            seen.sts.lookup_failed = Some(format!("{name} TXT fails DNSSEC validation: {why}"));
            seen.record_findings.push(crate::txt_record::finding(
                "dnssec-invalid",
                crate::txt_record::Severity::Error,
                format!("the answer for {name} TXT fails DNSSEC validation ({why}): validating senders find no MTA-STS record; re-sign the zone, check the DS record at the parent"),
            ));
            return seen;
        }
        Lookup::Failed(why) => {
            seen.sts.lookup_failed = Some(format!("{name} TXT: {why}"));
            seen.lookup_failed.push(format!("{name} TXT: {why}"));
            return seen;
        }
    };
    let (id, record_findings) = mta_sts::check_record(&txts);
    seen.record_findings = record_findings;
    let sts = &mut seen.sts;
    sts.record = txts
        .iter()
        .filter(|t| {
            t.trim()
                .to_ascii_lowercase()
                .replace(' ', "")
                .starts_with("v=stsv1")
        })
        .map(|t| probe::shown(t, 1024))
        .collect();
    sts.id = id;
    if sts.record.is_empty() {
        return seen;
    }
    // The policy host: resolved here, checked against the address policy, then fetched.
    let host = format!("mta-sts.{domain}");
    let (addrs, problems) = resolver.addresses(&host);
    if addrs.is_empty() {
        let why = if problems.is_empty() {
            format!(
                "{host} does not resolve (no A or AAAA record): publish it, pointing at the web server that serves the policy"
            )
        } else {
            format!("{host} could not be resolved ({})", problems.join("; "))
        };
        seen.fetch_error = Some(why);
        return seen;
    }
    let mut fetch_err = None;
    for (ip, _) in addrs.iter().take(MAX_ADDRESSES) {
        if let Some(class) = limits.refused(*ip) {
            fetch_err = Some(format!(
                "{host} resolves to {ip}, a {class} address: not fetched (--allow-private-addresses fetches it); senders on the Internet cannot reach it"
            ));
            continue;
        }
        if limits.expired() {
            fetch_err = Some("the check ran out of time before the policy was fetched".into());
            break;
        }
        sts.fetched_from = Some(ip.to_string());
        match https::get(
            SocketAddr::new(*ip, 443),
            &host,
            "/.well-known/mta-sts.txt",
            limits,
        ) {
            Ok((session, resp)) => {
                sts.certificate = cert::judge(&session.chain, &host, &limits.roots, now()).ok();
                fetch_err = None;
                if (300..400).contains(&resp.status) {
                    fetch_err = Some(format!(
                        "HTTP {} redirect to {}: senders do not follow redirects (RFC 8461 §3.3); serve the policy itself with 200",
                        resp.status,
                        resp.header("location").unwrap_or("(no Location)")
                    ));
                } else if resp.status != 200 {
                    fetch_err = Some(format!(
                        "HTTP {} for https://{host}/.well-known/mta-sts.txt: senders need 200 with the policy",
                        resp.status
                    ));
                } else {
                    let (policy, mut f) =
                        mta_sts::parse_policy(&resp.body, resp.header("content-type"));
                    if resp.truncated {
                        f.push(crate::txt_record::finding(
                            "sts-policy-too-large",
                            crate::txt_record::Severity::Error,
                            format!("the policy is larger than {} KiB: senders stop reading (RFC 8461 §3.3 suggests 64 KiB)", https::MAX_BODY / 1024),
                        ));
                    }
                    sts.policy = Some(policy);
                    seen.policy_findings = f;
                }
                break;
            }
            Err(https::Error::Http(session, why)) => {
                sts.certificate = cert::judge(&session.chain, &host, &limits.roots, now()).ok();
                fetch_err = Some(why);
                break;
            }
            Err(e) => {
                fetch_err = Some(format!("{host} [{ip}]: {e}"));
            }
        }
    }
    seen.fetch_error = fetch_err;
    seen
}

/// Port 25 of one address: SMTP, STARTTLS, TLS with SNI, and again without.
fn observe_address(
    host: &str,
    ip: IpAddr,
    tlsa: &[dane::Record],
    mf: &MxFacts,
    limits: &Limits,
    now: i64,
    gate: &Gate,
) -> Address {
    let _pass = gate.enter(ip);
    let mut a = Address {
        address: ip.to_string(),
        dnssec: if mf.tlsa_bogus.is_some() {
            "bogus"
        } else if mf.tlsa_failed.is_some() {
            "unknown"
        } else if mf.tlsa_count == 0 {
            "none"
        } else if mf.tlsa_secure {
            "secure"
        } else {
            "insecure"
        },
        ..Address::default()
    };
    let mut facts = AddressFacts::default();
    if let Some(class) = limits.refused(ip) {
        facts.refused = Some(class);
        a.facts = facts;
        return a;
    }
    let addr = SocketAddr::new(ip, 25);
    let first = smtp::open(addr, limits);
    let (conn, greeting) = match first {
        Ok(x) => x,
        Err(e) => {
            a.error = Some(e.to_string());
            facts.smtp_error = Some(e);
            a.facts = facts;
            return a;
        }
    };
    a.probed = true;
    a.banner = Some(greeting.banner.shown());
    a.starttls = Some(greeting.starttls);
    if !greeting.starttls {
        conn.quit();
        a.facts = facts;
        return a;
    }
    let chain = match starttls_session(conn, host, true, limits) {
        Ok(s) => {
            a.tls_version = Some(s.version.clone());
            a.cipher = Some(s.cipher.clone());
            s.chain
        }
        Err(Step::Smtp(e)) => {
            match &e {
                smtp::Error::Refused(_, r) => facts.starttls_refused = Some(r.shown()),
                _ => facts.smtp_error = Some(e.clone()),
            }
            a.error = Some(e.to_string());
            a.facts = facts;
            return a;
        }
        Err(Step::Tls(e)) => {
            a.error = Some(e.to_string());
            facts.tls_error = Some(e);
            a.facts = facts;
            return a;
        }
    };
    match cert::judge(&chain, host, &limits.roots, now) {
        Ok(c) => a.certificate = Some(c),
        Err(e) => a.error = Some(e),
    }
    if let Some(leaf) = chain.first()
        && let Ok(p) = cert::parse(leaf)
    {
        facts.spki_sha256 = Some(
            Sha256::digest(&p.spki)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
        );
    }
    a.tlsa = dane::check(tlsa, &chain, host, now, Some(limits.deadline));
    // The same without SNI: what senders that send none are shown.
    if !limits.expired() {
        match smtp::open(addr, limits)
            .map_err(Step::Smtp)
            .and_then(|(c, _)| starttls_session(c, host, false, limits))
        {
            Ok(s) if s.chain == chain => facts.same_without_sni = true,
            Ok(s) => {
                a.certificate_without_sni = cert::judge(&s.chain, host, &limits.roots, now).ok()
            }
            Err(e) => facts.no_sni_error = Some(e.to_string()),
        }
    }
    a.facts = facts;
    a
}

enum Step {
    Smtp(smtp::Error),
    Tls(tls::Error),
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Smtp(e) => write!(f, "{e}"),
            Step::Tls(e) => write!(f, "{e}"),
        }
    }
}

fn starttls_session(
    conn: smtp::Conn,
    host: &str,
    sni: bool,
    limits: &Limits,
) -> Result<tls::Session, Step> {
    let mut sock = conn.starttls().map_err(Step::Smtp)?;
    let until = Instant::now() + limits.op();
    let (session, mut c) =
        tls::handshake(&mut sock, tls::config(sni), host, until).map_err(Step::Tls)?;
    // Polite end: QUIT inside TLS, close_notify; errors do not matter any more.
    let _ = tls::write_all(
        &mut sock,
        &mut c,
        b"QUIT\r\n",
        Instant::now() + Duration::from_secs(1).min(limits.op()),
    );
    tls::close(&mut sock, &mut c);
    Ok(session)
}
