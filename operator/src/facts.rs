//! A report's figures as rows (pure; no I/O): what `load` stores beside parsedmarc's
//! tables (`tlsrpt_fact`), and how the database's sums of them become the same
//! [`Tally`] a spool gives.
//!
//! Why rows of figures and not SQL over parsedmarc's tables: the counting rules
//! (aggregate.rs: once per report and domain, the representative policy, domain names
//! compared without case or trailing dot, the breakdowns) would have to be written a
//! second time in SQL, twice (PostgreSQL, SQLite), and a window function choosing the
//! representative policy of every report costs more than the whole summary: measured
//! on the 200,000-report year in PostgreSQL 15, the GROUP BYs over parsedmarc's tables
//! that give every figure took 3.5 s, against 1.0 s for the two bare GROUP BYs. Here
//! the rules run once per report, at load, in the same Rust code the spool path uses;
//! a summary is one GROUP BY over narrow rows, and the client holds one entry per group.
//!
//! Guarantees:
//! - [`facts`] and [`Tally::add`] apply the same rules to one report: a tally rebuilt
//!   from the sums of the facts ([`apply`]) equals the tally of the records (tested
//!   here and, end to end, against real SQLite and PostgreSQL in operator/tests/load.rs).
//!   Two differences, both bounded: a breakdown past its bound keeps the largest keys
//!   (here) rather than the first ones met (a spool, in the order the readers meet
//!   them); and counts above 2^31 - 1 in one report are cut there, as parsedmarc's INT
//!   columns cut them.
//! - One fact per (report, domain, kind, keys): the sums of a window are exact for any
//!   window, to the second, since every fact carries its report's end time.

use std::collections::HashMap;

use crate::aggregate::{
    DomainStats, IpKey, MAX_IPS, MAX_MX, MAX_POLICIES, MAX_REASONS, PolicySeen, ResultStats,
    Summary, Tally, by_domain, mx_key, policy_type, representative,
};
use crate::record::{PolicyResult, Report};

/// What a fact counts. Stored as one letter (`tlsrpt_fact.kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A report for the domain: b = organisation, n = successful, n2 = failed sessions
    /// of the representative policy. When the report has one policy for the domain
    /// (most reports), its type's figures are these: a = the type, c = its `sts`
    /// policy-string, and no Type, TypeResult, TypeUnspecified or StsPolicy fact (a
    /// quarter of the rows fewer to sum).
    Domain,
    /// One policy type's own sessions: b = type, n = successful, n2 = failed (reports
    /// with several policies for the domain, as the kinds below that name a type).
    Type,
    /// A policy type's failed sessions of one result type: a = result type, b = type.
    TypeResult,
    /// A policy type's failed sessions without a detail row: b = type.
    TypeUnspecified,
    /// The representative policy's failed sessions of one result type: a = result
    /// type, b = organisation; c = the type when it is the report's only policy.
    Result,
    /// ... at one receiving MX host: a = result type, b = MX host (lower case).
    Mx,
    /// ... from one sending MTA at one MX host: a = result type, b = MX, c = IP.
    MxIp,
    /// ... with one failure-reason-code: a = result type, b = code.
    Reason,
    /// An additional-information URI of a result type: a = result type, b = URI.
    Uri,
    /// Failed sessions from one sending MTA: c = IP.
    SendingIp,
    /// Failed sessions at one receiving MX host as written (dots trimmed): b = host.
    ReceivingMx,
    /// Failed sessions at one receiving IP: c = IP.
    ReceivingIp,
    /// Failed sessions of the representative policy without a detail row; b = the
    /// type when it is the report's only policy.
    Unspecified,
    /// An `sts` policy-string: a = its lines (trimmed) as a JSON array, b =
    /// organisation, n = policies that carried it.
    StsPolicy,
}

impl Kind {
    pub const ALL: [Kind; 14] = [
        Kind::Domain,
        Kind::Type,
        Kind::TypeResult,
        Kind::TypeUnspecified,
        Kind::Result,
        Kind::Mx,
        Kind::MxIp,
        Kind::Reason,
        Kind::Uri,
        Kind::SendingIp,
        Kind::ReceivingMx,
        Kind::ReceivingIp,
        Kind::Unspecified,
        Kind::StsPolicy,
    ];

    pub fn letter(self) -> &'static str {
        match self {
            Kind::Domain => "D",
            Kind::Type => "Y",
            Kind::TypeResult => "T",
            Kind::TypeUnspecified => "v",
            Kind::Result => "R",
            Kind::Mx => "M",
            Kind::MxIp => "I",
            Kind::Reason => "C",
            Kind::Uri => "U",
            Kind::SendingIp => "S",
            Kind::ReceivingMx => "X",
            Kind::ReceivingIp => "Q",
            Kind::Unspecified => "u",
            Kind::StsPolicy => "P",
        }
    }

    pub fn from_letter(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.letter() == s)
    }
}

/// One row of `tlsrpt_fact` (the report's end, start, DKIM verdict and receipt time
/// are the report's, added by the store).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub domain: String,
    pub kind: Kind,
    pub a: Option<String>,
    pub b: Option<String>,
    pub c: Option<String>,
    pub n: i64,
    pub n2: i64,
}

/// A count as stored: at most 2^31 - 1, as parsedmarc's INT columns.
fn count(n: u64) -> i64 {
    n.min(i32::MAX as u64) as i64
}

/// A fact's keys: (domain, kind, a, b, c).
type FactKey = (String, Kind, Option<String>, Option<String>, Option<String>);

/// The facts of one report: keys summed within the report, so each (domain, kind,
/// keys) appears once.
pub fn facts(report: &Report) -> Vec<Fact> {
    let org = report
        .organization_name
        .as_deref()
        .unwrap_or("(unknown)")
        .to_owned();
    let mut out: Vec<Fact> = Vec::new();
    // (domain index in out order is irrelevant): sum into a map keyed by the row keys.
    let mut sums: HashMap<FactKey, usize> = HashMap::new();
    let mut add = |out: &mut Vec<Fact>,
                   domain: &str,
                   kind: Kind,
                   a: Option<&str>,
                   b: Option<&str>,
                   c: Option<&str>,
                   n: u64,
                   n2: u64| {
        let key = (
            domain.to_owned(),
            kind,
            a.map(str::to_owned),
            b.map(str::to_owned),
            c.map(str::to_owned),
        );
        match sums.get(&key) {
            Some(&i) => {
                let f = &mut out[i];
                f.n = count((f.n as u64).saturating_add(n));
                f.n2 = count((f.n2 as u64).saturating_add(n2));
            }
            None => {
                sums.insert(key.clone(), out.len());
                out.push(Fact {
                    domain: key.0,
                    kind,
                    a: key.2,
                    b: key.3,
                    c: key.4,
                    n: count(n),
                    n2: count(n2),
                });
            }
        }
    };
    for (domain, policies) in by_domain(report) {
        let d = domain.as_str();
        let rep = representative(&policies);
        let (s, f) = (rep.summary.successful, rep.summary.failed);
        // One policy (most reports): its type's figures are the domain's, so they ride
        // on the Domain, Result and Unspecified facts (a, c) instead of rows of their own.
        let single = (policies.len() == 1).then(|| policy_type(rep));
        let sts_key = |p: &PolicyResult| -> Option<String> {
            (policy_type(p) == "sts" && !p.policy.policy_string.is_empty()).then(|| {
                let lines: Vec<&str> = p.policy.policy_string.iter().map(|l| l.trim()).collect();
                serde_json::to_string(&lines).expect("strings")
            })
        };
        let single_sts = single.as_ref().and_then(|_| sts_key(rep));
        add(
            &mut out,
            d,
            Kind::Domain,
            single.as_deref(),
            Some(&org),
            single_sts.as_deref(),
            s,
            f,
        );
        let mut detailed = 0u64;
        for fd in &rep.failure_details {
            let t = fd.result_type.as_deref().unwrap_or("(none)");
            let n = fd.failed_session_count;
            detailed = detailed.saturating_add(n);
            add(
                &mut out,
                d,
                Kind::Result,
                Some(t),
                Some(&org),
                single.as_deref(),
                n,
                0,
            );
            let mx = mx_key(fd.receiving_mx_hostname.as_deref());
            add(&mut out, d, Kind::Mx, Some(t), Some(&mx), None, n, 0);
            if let Some(ip) = fd.sending_mta_ip.as_deref() {
                add(&mut out, d, Kind::MxIp, Some(t), Some(&mx), Some(ip), n, 0);
                add(&mut out, d, Kind::SendingIp, None, None, Some(ip), n, 0);
            }
            let reason = fd.failure_reason_code.as_deref().unwrap_or("(none)");
            add(&mut out, d, Kind::Reason, Some(t), Some(reason), None, n, 0);
            if let Some(u) = fd.additional_information.as_deref() {
                add(&mut out, d, Kind::Uri, Some(t), Some(u), None, 0, 0);
            }
            if let Some(mx) = fd.receiving_mx_hostname.as_deref() {
                let host = mx.trim_end_matches('.').to_ascii_lowercase();
                add(
                    &mut out,
                    d,
                    Kind::ReceivingMx,
                    None,
                    Some(&host),
                    None,
                    n,
                    0,
                );
            }
            if let Some(ip) = fd.receiving_ip.as_deref() {
                add(&mut out, d, Kind::ReceivingIp, None, None, Some(ip), n, 0);
            }
        }
        if f > detailed {
            add(
                &mut out,
                d,
                Kind::Unspecified,
                None,
                single.as_deref(),
                None,
                f - detailed,
                0,
            );
        }
        if single.is_some() {
            continue;
        }
        for p in &policies {
            let t = policy_type(p);
            if let Some(key) = sts_key(p) {
                add(
                    &mut out,
                    d,
                    Kind::StsPolicy,
                    Some(&key),
                    Some(&org),
                    None,
                    1,
                    0,
                );
            }
            add(
                &mut out,
                d,
                Kind::Type,
                None,
                Some(&t),
                None,
                p.summary.successful,
                p.summary.failed,
            );
            let mut detailed = 0u64;
            for fd in &p.failure_details {
                let rt = fd.result_type.as_deref().unwrap_or("(none)");
                detailed = detailed.saturating_add(fd.failed_session_count);
                add(
                    &mut out,
                    d,
                    Kind::TypeResult,
                    Some(rt),
                    Some(&t),
                    None,
                    fd.failed_session_count,
                    0,
                );
            }
            if p.summary.failed > detailed {
                let n = p.summary.failed - detailed;
                add(
                    &mut out,
                    d,
                    Kind::TypeUnspecified,
                    None,
                    Some(&t),
                    None,
                    n,
                    0,
                );
            }
        }
    }
    out
}

/// A sum of facts from the database: one group of (window, DKIM, domain, kind, keys),
/// for [`Kind::Domain`] in the current window also of one UTC day (`day`).
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// In the current window (otherwise the previous one: sessions only).
    pub current: bool,
    pub authenticated: bool,
    pub domain: String,
    pub kind: Option<Kind>,
    pub a: Option<String>,
    pub b: Option<String>,
    pub c: Option<String>,
    /// The UTC day (its start) of a current window's Domain group.
    pub day: Option<i64>,
    /// Facts summed: for one-per-report kinds, the number of reports.
    pub rows: u64,
    pub n: u64,
    pub n2: u64,
    /// Earliest and latest report start.
    pub first: i64,
    pub last: i64,
    /// A Domain group of one day only (its other keys summed in a group of their own:
    /// PostgreSQL's grouping sets); otherwise a day, if any, comes with the keys
    /// (SQLite, which has no grouping sets, groups by both).
    pub day_only: bool,
}

/// An all-time (or history) sum of facts: `metrics --db`, `check --db`.
#[derive(Debug, Clone, Default)]
pub struct Total {
    pub authenticated: bool,
    pub domain: String,
    pub kind: Option<Kind>,
    pub a: String,
    pub b: String,
    pub c: String,
    /// For history rows: the UTC day (its start) of the reports' start.
    pub day: Option<i64>,
    pub rows: u64,
    pub n: u64,
    pub last_end: i64,
    pub last_received: Option<i64>,
}

/// What the database is asked for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Start of the previous window (exclusive), then the current window's bounds.
    pub previous_since: i64,
    pub since: i64,
    pub until: i64,
    /// Domain keys (aggregate::domain_key); empty means every domain.
    pub domains: Vec<String>,
    /// Reports without a DKIM pass are counted with the others (grouped together in
    /// the database, so that the largest sending IPs are chosen over both).
    pub include_unauthenticated: bool,
    /// (index, of): only the domains of this share, when the work is split over `of`
    /// connections (PostgreSQL, by a hash of the domain: every group of a domain comes
    /// through one of them). SQLite reads with one.
    pub share: (u32, u32),
}

/// Which of a summary's four tallies: (counted, current).
type Slot = (bool, bool);

fn tally(s: &mut Summary, slot: Slot) -> &mut Tally {
    match slot {
        (true, true) => &mut s.current,
        (true, false) => &mut s.previous,
        (false, true) => &mut s.unauthenticated,
        (false, false) => &mut s.unauthenticated_previous,
    }
}

/// Keeps the `k` largest in `v` (count, then the address as text, as the summary
/// orders them), with one more address. Each address comes in one group, its sessions
/// summed by the database, so keeping the largest as the groups stream is exact, and
/// costs a few entries per key however many addresses there are.
fn keep_top(v: &mut Vec<(IpKey, u64)>, ip: &str, n: u64, k: usize) {
    let order = |a: &(IpKey, u64), b: &(IpKey, u64)| {
        b.1.cmp(&a.1)
            .then_with(|| a.0.to_string().cmp(&b.0.to_string()))
    };
    let ip = IpKey::new(ip);
    if let Some(e) = v.iter_mut().find(|(x, _)| *x == ip) {
        // Only if the database sent one address twice: still its sum.
        e.1 = e.1.saturating_add(n);
    } else if v.len() < k {
        // Exactly k places: a vector grown by pushes would hold twice that, and a
        // year of 1,000 domains has tens of thousands of these.
        if v.capacity() == 0 {
            v.reserve_exact(k);
        }
        v.push((ip, n));
    } else {
        let new = (ip, n);
        match v.last_mut() {
            Some(last) if order(&new, last).is_lt() => *last = new,
            _ => return,
        }
    }
    v.sort_by(order);
}

/// Adds one group to the summary (the tally it belongs to).
pub fn apply(s: &mut Summary, g: Group) {
    if !s.domains.is_empty() && !s.domains.contains(&g.domain) {
        return;
    }
    let slot = (g.authenticated || s.include_unauthenticated, g.current);
    let tally = tally(s, slot);
    let sessions_only = tally.sessions_only;
    let Some(kind) = g.kind else { return };
    let d: &mut DomainStats = tally.domains.entry(g.domain.clone()).or_default();
    if let (Some(day), false) = (g.day, sessions_only) {
        d.daily.add(day, g.n, g.n2);
    }
    if g.day_only {
        return;
    }
    let a = g.a.as_deref().unwrap_or("");
    let b = g.b.as_deref().unwrap_or("");
    match kind {
        Kind::Domain => {
            d.sessions.reports += g.rows;
            d.sessions.successful = d.sessions.successful.saturating_add(g.n);
            d.sessions.failed = d.sessions.failed.saturating_add(g.n2);
            if !sessions_only {
                let o = d.organizations.entry(b.to_owned()).or_default();
                o.reports += g.rows;
                o.successful = o.successful.saturating_add(g.n);
                o.failed = o.failed.saturating_add(g.n2);
                // The only policy of these reports: its type's figures.
                if let Some(t) = g.a.as_deref() {
                    let ts = d.policy_types.entry(t.to_owned()).or_default();
                    ts.sessions.reports += g.rows;
                    ts.sessions.successful = ts.sessions.successful.saturating_add(g.n);
                    ts.sessions.failed = ts.sessions.failed.saturating_add(g.n2);
                }
                if let Some(lines) = g.c.as_deref() {
                    sts_policy(d, lines, b, g.rows, g.first, g.last);
                }
            }
        }
        _ if sessions_only => {}
        Kind::Type => {
            let t = d.policy_types.entry(b.to_owned()).or_default();
            t.sessions.reports += g.rows;
            t.sessions.successful = t.sessions.successful.saturating_add(g.n);
            t.sessions.failed = t.sessions.failed.saturating_add(g.n2);
        }
        Kind::TypeResult => {
            let t = d.policy_types.entry(b.to_owned()).or_default();
            let e = t.result_types.entry(a.to_owned()).or_default();
            *e = e.saturating_add(g.n);
        }
        Kind::Result => {
            let r = result(d, a, g.first);
            r.failed = r.failed.saturating_add(g.n);
            r.first_seen = r.first_seen.min(g.first);
            r.last_seen = r.last_seen.max(g.last);
            r.organizations.add(b, g.n, MAX_MX);
            // One Result fact per report and result type, one group per
            // organisation: the reports add up.
            r.reports += g.rows;
            if let Some(t) = g.c.as_deref() {
                let ts = d.policy_types.entry(t.to_owned()).or_default();
                let e = ts.result_types.entry(a.to_owned()).or_default();
                *e = e.saturating_add(g.n);
            }
        }
        Kind::Mx => {
            let r = result(d, a, g.first);
            let m = r.mx_entry(b);
            m.failed = m.failed.saturating_add(g.n);
        }
        Kind::MxIp => {
            if let Some(ip) = g.c.as_deref() {
                let m = result(d, a, g.first).mx_entry(b);
                keep_top(&mut m.sending_ips, ip, g.n, MAX_IPS);
            }
        }
        Kind::Reason => {
            result(d, a, g.first).reasons.add(b, g.n, MAX_REASONS);
        }
        Kind::Uri => result(d, a, g.first).add_uri(b),
        Kind::SendingIp => {
            if let Some(ip) = g.c.as_deref() {
                // The tally's map holds at most the largest few here.
                let mut v: Vec<(IpKey, u64)> = d.sending_ip.drain().collect();
                keep_top(&mut v, ip, g.n, crate::summary::TOP_SENDING_IPS);
                d.sending_ip.extend(v);
            }
        }
        Kind::ReceivingMx => {
            let e = d.receiving_mx.entry(b.to_owned()).or_default();
            *e = e.saturating_add(g.n);
        }
        Kind::ReceivingIp => {
            if let Some(ip) = g.c {
                let e = d.receiving_ip.entry(ip).or_default();
                *e = e.saturating_add(g.n);
            }
        }
        Kind::Unspecified | Kind::TypeUnspecified => {}
        Kind::StsPolicy => sts_policy(d, a, b, g.n, g.first, g.last),
    }
}

/// `reports` more reports carried this `sts` policy-string (its lines as a JSON array).
fn sts_policy(d: &mut DomainStats, lines: &str, org: &str, reports: u64, first: i64, last: i64) {
    let Ok(lines) = serde_json::from_str::<Vec<String>>(lines) else {
        return;
    };
    if d.sts_policies.contains_key(&lines) || d.sts_policies.len() < MAX_POLICIES {
        let p = d.sts_policies.entry(lines).or_insert_with(|| PolicySeen {
            first_seen: first,
            last_seen: last,
            ..PolicySeen::default()
        });
        p.reports = p.reports.saturating_add(reports);
        p.first_seen = p.first_seen.min(first);
        p.last_seen = p.last_seen.max(last);
        p.add_org(org);
    }
}

fn result<'d>(d: &'d mut DomainStats, t: &str, start: i64) -> &'d mut ResultStats {
    d.result_types
        .entry(t.to_owned())
        .or_insert_with(|| ResultStats::new(start))
}
