//! Records → per-domain figures, with the counting rules (pure; no I/O).
//!
//! Counting rules, each pinned by a test in operator/tests/summary.rs:
//! - **The counting rule** (tlsrpt_pipe::counting, the one definition the alerts use
//!   too): within one report and policy domain, policies of the same type add up (one
//!   `tlsa` policy per MX host; SocketLabs' two `sts` policies), and policies of
//!   different types are the same sessions judged twice (Microsoft's `sts` and `tlsa`)
//!   and count once: the type with the most sessions, then the most failures. The
//!   domain's figures (sessions, result types, MX hosts, IPs, organisations, days) come
//!   from the counted type's policies. Summing every policy, as parsedmarc's dashboards
//!   and mox do, counts Microsoft's sessions twice; taking one policy, as this program
//!   did before, lost the other policies of the same type.
//! - **Per policy type, each type's own figures**: the `sts` and the `tlsa` rows each
//!   show what their policy reported.
//! - **A report stored twice counts once**: the same dedup key (SHA-256 of organisation
//!   and report id, RFC 8460 §5.3) in two spools, or twice in one, is counted at its
//!   first copy (spools in the order given, day files oldest first).
//! - **Unauthenticated reports apart**: a record whose DKIM verdict is not `pass` is
//!   tallied separately unless the caller mixes them in.
//!
//! Domain names are compared case-insensitively, without a trailing dot.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use tlsrpt_pipe::counting;

use crate::record::{Parsed, PolicyResult, Report};
use crate::trust::{LeftOut, Trust};
use crate::window::{DAY, Window};

/// Sessions in a group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sessions {
    pub reports: u64,
    pub successful: u64,
    pub failed: u64,
}

impl Sessions {
    pub fn total(&self) -> u64 {
        self.successful + self.failed
    }

    /// Failed / total, 0 when there were no sessions.
    pub fn failure_rate(&self) -> f64 {
        if self.total() == 0 {
            0.0
        } else {
            self.failed as f64 / self.total() as f64
        }
    }
}

/// One policy type's own figures for a domain.
#[derive(Debug, Default, Clone)]
pub struct TypeStats {
    pub sessions: Sessions,
    pub result_types: BTreeMap<String, u64>,
}

/// Most distinct failure-reason-codes kept per result type, and sending IPs per result
/// type and MX (evidence, not a ranking): a hostile or chatty sender cannot make a
/// summary grow without bound. Sessions beyond them are still counted, under `OTHER`.
pub const MAX_REASONS: usize = 128;
pub const MAX_IPS: usize = 3;
/// The key the sessions beyond a limit are counted under.
pub const OTHER: &str = "(other)";

/// Counts per key, at most `limit` keys (the rest under `OTHER`). A vector searched
/// in order, not a tree: these breakdowns hold a handful of keys each, and a provider's
/// year holds tens of thousands of them (a B-tree node costs ~400 bytes even for one).
#[derive(Debug, Default, Clone)]
pub struct Bounded(pub Vec<(Box<str>, u64)>);

impl Bounded {
    pub fn add(&mut self, key: &str, n: u64, limit: usize) {
        if let Some(e) = self.0.iter_mut().find(|(k, _)| &**k == key) {
            e.1 = e.1.saturating_add(n);
        } else if self.0.len() < limit {
            self.0.push((key.into(), n));
        } else if let Some(e) = self.0.iter_mut().find(|(k, _)| &**k == OTHER) {
            e.1 = e.1.saturating_add(n);
        } else {
            self.0.push((OTHER.into(), n));
        }
    }

    pub fn merge(&mut self, other: Bounded, limit: usize) {
        for (k, v) in other.0 {
            self.add(&k, v, limit);
        }
    }
}

/// One receiving MX host of one result type: its failed sessions, and the first sending
/// MTAs that saw them (the organisations are the result type's).
#[derive(Debug, Default, Clone)]
pub struct MxStats {
    pub failed: u64,
    /// The first `MAX_IPS` sending MTAs and their sessions (evidence for the live
    /// verdict; kept as `IpKey`s, no string per address: a provider's year has many).
    pub sending_ips: Vec<(IpKey, u64)>,
}

impl MxStats {
    fn add_ip(&mut self, ip: IpKey, n: u64) {
        if let Some(e) = self.sending_ips.iter_mut().find(|(k, _)| *k == ip) {
            e.1 = e.1.saturating_add(n);
        } else if self.sending_ips.len() < MAX_IPS {
            if self.sending_ips.is_empty() {
                self.sending_ips.reserve_exact(MAX_IPS);
            }
            self.sending_ips.push((ip, n));
        }
    }
}

/// A result type seen for a domain: failed sessions, when (report start times), and
/// why: at which MX hosts, with which failure-reason-codes, reported by whom.
#[derive(Debug, Clone)]
pub struct ResultStats {
    pub failed: u64,
    pub reports: u64,
    pub first_seen: i64,
    pub last_seen: i64,
    /// Receiving MX host (lower case, `(none)` when the report names none), at most
    /// `MAX_MX` (the rest under `OTHER`).
    pub mx: Vec<(Box<str>, MxStats)>,
    /// failure-reason-code → failed sessions (`(none)` when absent).
    pub reasons: Bounded,
    /// Organisation → failed sessions.
    pub organizations: Bounded,
    /// additional-information URIs, at most `MAX_URIS`.
    pub info_uris: Vec<Box<str>>,
}

/// Most receiving MX hosts and organisations kept per result type.
pub const MAX_MX: usize = 64;

/// Most additional-information URIs kept per result type.
pub const MAX_URIS: usize = 5;

/// A policy-string an `sts` policy of a report carried, and who applied it when.
#[derive(Debug, Clone, Default)]
pub struct PolicySeen {
    pub reports: u64,
    /// At most `MAX_POLICY_ORGS`.
    pub organizations: Vec<Box<str>>,
    pub first_seen: i64,
    pub last_seen: i64,
}

/// Most distinct `sts` policy-strings kept per domain.
pub const MAX_POLICIES: usize = 8;
/// Most organisations named per policy-string.
pub const MAX_POLICY_ORGS: usize = 8;

impl PolicySeen {
    pub(crate) fn add_org(&mut self, org: &str) {
        if self.organizations.len() < MAX_POLICY_ORGS
            && !self.organizations.iter().any(|o| &**o == org)
        {
            self.organizations.push(org.into());
        }
    }
}

impl ResultStats {
    pub(crate) fn new(start: i64) -> ResultStats {
        ResultStats {
            failed: 0,
            reports: 0,
            first_seen: start,
            last_seen: start,
            mx: Vec::new(),
            reasons: Bounded::default(),
            organizations: Bounded::default(),
            info_uris: Vec::new(),
        }
    }

    fn merge(&mut self, o: ResultStats) {
        self.failed = self.failed.saturating_add(o.failed);
        self.reports = self.reports.saturating_add(o.reports);
        self.first_seen = self.first_seen.min(o.first_seen);
        self.last_seen = self.last_seen.max(o.last_seen);
        for (k, v) in o.mx {
            let m = self.mx_entry(&k);
            m.failed = m.failed.saturating_add(v.failed);
            for (ip, n) in v.sending_ips {
                m.add_ip(ip, n);
            }
        }
        self.reasons.merge(o.reasons, MAX_REASONS);
        self.organizations.merge(o.organizations, MAX_MX);
        for u in o.info_uris {
            self.add_uri(&u);
        }
    }

    /// The stats of one receiving MX host (`OTHER` beyond `MAX_MX`).
    pub(crate) fn mx_entry(&mut self, host: &str) -> &mut MxStats {
        let i = match self.mx.iter().position(|(h, _)| &**h == host) {
            Some(i) => i,
            None if self.mx.len() < MAX_MX => {
                self.mx.push((host.into(), MxStats::default()));
                self.mx.len() - 1
            }
            None => match self.mx.iter().position(|(h, _)| &**h == OTHER) {
                Some(i) => i,
                None => {
                    self.mx.push((OTHER.into(), MxStats::default()));
                    self.mx.len() - 1
                }
            },
        };
        &mut self.mx[i].1
    }

    pub(crate) fn add_uri(&mut self, u: &str) {
        if self.info_uris.len() < MAX_URIS && !self.info_uris.iter().any(|x| &**x == u) {
            self.info_uris.push(u.into());
        }
    }
}

/// A sending MTA address: an IP in 17 bytes without a heap string (a large spool has
/// hundreds of thousands of domain × address pairs), or the text a sender wrote.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IpKey {
    Ip(std::net::IpAddr),
    Text(Box<str>),
}

impl IpKey {
    pub fn new(s: &str) -> IpKey {
        s.parse()
            .map(IpKey::Ip)
            .unwrap_or_else(|_| IpKey::Text(s.into()))
    }
}

impl std::fmt::Display for IpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpKey::Ip(ip) => ip.fmt(f),
            IpKey::Text(t) => f.write_str(t),
        }
    }
}

/// (day, successful, failed), sorted by day: vectors, not a tree — reports come in day
/// order (day files oldest first), so adding is a push. The days are day numbers (4
/// bytes) beside their counts (16): a year of 1,000 domains, with and without a DKIM
/// pass, is 730,000 of them, so every byte counts (a B-tree's half-empty nodes would
/// cost 3 times as much).
#[derive(Debug, Default, Clone)]
pub struct DaySeries {
    days: Vec<i32>,
    counts: Vec<(u64, u64)>,
}

/// The day number of a day's start, saturating (dates are checked RFC 3339 times, so
/// far from these bounds).
fn day_number(day: i64) -> i32 {
    day.div_euclid(DAY).clamp(i32::MIN as i64, i32::MAX as i64) as i32
}

impl DaySeries {
    pub fn add(&mut self, day: i64, s: u64, f: u64) {
        let d = day_number(day);
        match self.days.last() {
            Some(&l) if l == d => {
                let c = self.counts.last_mut().expect("same length");
                c.0 = c.0.saturating_add(s);
                c.1 = c.1.saturating_add(f);
            }
            Some(&l) if l > d => match self.days.binary_search(&d) {
                Ok(i) => {
                    self.counts[i].0 = self.counts[i].0.saturating_add(s);
                    self.counts[i].1 = self.counts[i].1.saturating_add(f);
                }
                Err(i) => {
                    self.days.insert(i, d);
                    self.counts.insert(i, (s, f));
                }
            },
            _ => {
                self.days.push(d);
                self.counts.push((s, f));
            }
        }
    }

    /// The start of the latest day with sessions.
    pub fn last_day(&self) -> Option<i64> {
        self.days.last().map(|&d| i64::from(d) * DAY)
    }

    /// (successful, failed) of one day.
    pub fn get(&self, day: i64) -> Option<(u64, u64)> {
        self.days
            .binary_search(&day_number(day))
            .ok()
            .map(|i| self.counts[i])
    }

    /// (successful, failed) summed over the days in [from, to) (day starts).
    pub fn sum(&self, from: i64, to: i64) -> (u64, u64) {
        let (a, b) = (day_number(from), day_number(to));
        let i = self.days.partition_point(|&d| d < a);
        let j = self.days.partition_point(|&d| d < b);
        self.counts[i..j.max(i)]
            .iter()
            .fold((0u64, 0u64), |(s, f), c| {
                (s.saturating_add(c.0), f.saturating_add(c.1))
            })
    }

    /// (day start, successful, failed), in day order.
    #[cfg(test)]
    pub fn entries(&self) -> impl Iterator<Item = (i64, u64, u64)> + '_ {
        self.days
            .iter()
            .zip(&self.counts)
            .map(|(&d, &(s, f))| (d as i64 * DAY, s, f))
    }

    /// Adds another series: one linear merge of the two sorted series.
    pub fn merge(&mut self, other: DaySeries) {
        if other.days.is_empty() {
            return;
        }
        let mine = std::mem::take(self);
        let mut out = DaySeries {
            days: Vec::with_capacity(mine.days.len() + other.days.len()),
            counts: Vec::with_capacity(mine.days.len() + other.days.len()),
        };
        let mut a = mine.days.into_iter().zip(mine.counts).peekable();
        let mut b = other.days.into_iter().zip(other.counts).peekable();
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) if x.0 == y.0 => {
                    let (x, y) = (a.next().expect("peeked"), b.next().expect("peeked"));
                    (
                        x.0,
                        (x.1.0.saturating_add(y.1.0), x.1.1.saturating_add(y.1.1)),
                    )
                }
                (Some(x), Some(y)) if x.0 < y.0 => a.next().expect("peeked"),
                (Some(_), Some(_)) | (None, Some(_)) => b.next().expect("peeked"),
                (Some(_), None) => a.next().expect("peeked"),
                (None, None) => break,
            };
            out.days.push(next.0);
            out.counts.push(next.1);
        }
        out.days.shrink_to_fit();
        out.counts.shrink_to_fit();
        *self = out;
    }
}

/// Everything the views show about one policy domain in one window.
#[derive(Debug, Default, Clone)]
pub struct DomainStats {
    pub sessions: Sessions,
    pub organizations: BTreeMap<String, Sessions>,
    pub policy_types: BTreeMap<String, TypeStats>,
    pub result_types: BTreeMap<String, ResultStats>,
    pub receiving_mx: BTreeMap<String, u64>,
    pub receiving_ip: BTreeMap<String, u64>,
    pub sending_ip: HashMap<IpKey, u64>,
    /// UTC day (of the report's start) → (successful, failed).
    pub daily: DaySeries,
    /// The `sts` policy-strings reports carried (lines as sent), at most `MAX_POLICIES`.
    pub sts_policies: BTreeMap<Vec<String>, PolicySeen>,
}

/// Per-domain figures of one window.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub domains: BTreeMap<String, DomainStats>,
    /// Sessions only (the previous window, which the views compare totals with): no
    /// breakdowns, so a long window does not cost twice the memory.
    pub sessions_only: bool,
}

/// Lower case, no trailing dot; `(none)` when the report names no policy domain (the
/// delivery crate's definition, shared by the alerts).
pub fn domain_key(d: Option<&str>) -> String {
    counting::domain_key(d)
}

/// A policy's type, `(none)` when the report names none.
pub(crate) fn policy_type<'p>(p: &'p PolicyResult) -> &'p str {
    p.policy.policy_type.as_deref().unwrap_or(counting::NONE)
}

/// The receiving MX host a failure is counted under: lower case, no trailing dot,
/// `(none)` when the report names none.
pub(crate) fn mx_key(m: Option<&str>) -> String {
    m.map(|m| m.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "(none)".to_owned())
}

/// The value at `key`, inserted with its default first when absent: the key is copied
/// only then (a year of reports looks up the same few keys millions of times).
pub(crate) fn slot<'m, V: Default>(map: &'m mut BTreeMap<String, V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// One report's policies of one domain, with the counting rule applied
/// (tlsrpt_pipe::counting: policies of one type add up, different types count once).
pub struct Share<'r, 'a> {
    pub domain: String,
    /// Every policy of the domain, in report order.
    pub policies: Vec<&'r PolicyResult<'a>>,
    /// The counted type and its summed sessions.
    pub counted_type: String,
    pub successful: u64,
    pub failed: u64,
}

impl<'r, 'a> Share<'r, 'a> {
    /// The policies whose sessions and failure details count for the domain.
    pub fn counted(&self) -> impl Iterator<Item = &'r PolicyResult<'a>> + '_ {
        self.policies
            .iter()
            .copied()
            .filter(|p| policy_type(p) == self.counted_type)
    }

    /// Each type's own sessions (type, successful, failed), in first-appearance order.
    pub fn types(&self) -> Vec<counting::Counted<'_>> {
        counting::by_type(self.policies.iter().map(|p| count_of(p)))
    }
}

fn count_of<'p>(p: &'p PolicyResult) -> counting::PolicyCount<'p> {
    counting::PolicyCount {
        policy_type: policy_type(p),
        successful: p.summary.successful,
        failed: p.summary.failed,
    }
}

/// The report's policies grouped by domain (first-appearance order), each with the
/// counting rule applied.
pub fn shares<'r, 'a>(report: &'r Report<'a>) -> Vec<Share<'r, 'a>> {
    let mut groups: Vec<(String, Vec<&PolicyResult>)> = Vec::with_capacity(1);
    for p in &report.policies {
        // The key compared before it is made (domain_key, without its allocation).
        let raw = p
            .policy
            .policy_domain
            .as_deref()
            .map(|d| d.trim().trim_end_matches('.'))
            .filter(|d| !d.is_empty())
            .unwrap_or(counting::NONE);
        match groups.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(raw)) {
            Some((_, v)) => v.push(p),
            None => groups.push((domain_key(p.policy.policy_domain.as_deref()), vec![p])),
        }
    }
    groups
        .into_iter()
        .map(|(domain, policies)| {
            let c = counting::counted(policies.iter().map(|p| count_of(p)))
                .expect("a group has a policy");
            let (counted_type, successful, failed) =
                (c.policy_type.to_owned(), c.successful, c.failed);
            Share {
                domain,
                policies,
                counted_type,
                successful,
                failed,
            }
        })
        .collect()
}

/// The domains a report names (domain keys, first-appearance order).
pub fn domains_of(report: &Report) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for p in &report.policies {
        let d = domain_key(p.policy.policy_domain.as_deref());
        if !v.contains(&d) {
            v.push(d);
        }
    }
    v
}

impl Tally {
    /// Adds one report. `domains` empty means every domain.
    pub fn add(&mut self, report: &Report, start: i64, domains: &[String]) {
        let org = report.organization_name.as_deref().unwrap_or("(unknown)");
        let day = start.div_euclid(DAY) * DAY;
        for share in shares(report) {
            if !domains.is_empty() && !domains.contains(&share.domain) {
                continue;
            }
            let d = slot(&mut self.domains, &share.domain);
            let (s, f) = (share.successful, share.failed);
            d.sessions.reports += 1;
            d.sessions.successful = d.sessions.successful.saturating_add(s);
            d.sessions.failed = d.sessions.failed.saturating_add(f);
            if self.sessions_only {
                continue;
            }
            let o = slot(&mut d.organizations, org);
            o.reports += 1;
            o.successful = o.successful.saturating_add(s);
            o.failed = o.failed.saturating_add(f);
            d.daily.add(day, s, f);
            let mut seen_types: Vec<&str> = Vec::new();
            for fd in share.counted().flat_map(|p| &p.failure_details) {
                let t = fd.result_type.as_deref().unwrap_or("(none)");
                let n = fd.failed_session_count;
                if !d.result_types.contains_key(t) {
                    d.result_types.insert(t.to_owned(), ResultStats::new(start));
                }
                let r = d.result_types.get_mut(t).expect("inserted above");
                r.failed = r.failed.saturating_add(n);
                r.first_seen = r.first_seen.min(start);
                r.last_seen = r.last_seen.max(start);
                if !seen_types.contains(&t) {
                    seen_types.push(t);
                    r.reports += 1;
                }
                let m = r.mx_entry(&mx_key(fd.receiving_mx_hostname.as_deref()));
                m.failed = m.failed.saturating_add(n);
                if let Some(ip) = fd.sending_mta_ip.as_deref() {
                    m.add_ip(IpKey::new(ip), n);
                }
                r.reasons.add(
                    fd.failure_reason_code.as_deref().unwrap_or("(none)"),
                    n,
                    MAX_REASONS,
                );
                r.organizations.add(org, n, MAX_MX);
                if let Some(u) = fd.additional_information.as_deref() {
                    r.add_uri(u);
                }
                if let Some(mx) = fd.receiving_mx_hostname.as_deref() {
                    let e = d
                        .receiving_mx
                        .entry(mx.trim_end_matches('.').to_ascii_lowercase())
                        .or_default();
                    *e = e.saturating_add(n);
                }
                if let Some(ip) = fd.receiving_ip.as_deref() {
                    let e = slot(&mut d.receiving_ip, ip);
                    *e = e.saturating_add(n);
                }
                if let Some(ip) = fd.sending_mta_ip.as_deref() {
                    let e = d.sending_ip.entry(IpKey::new(ip)).or_default();
                    *e = e.saturating_add(n);
                }
            }
            // The sts policy-strings the report carried for the domain, each once.
            let mut strings: Vec<Vec<String>> = Vec::new();
            for p in share.policies.iter().filter(|p| policy_type(p) == "sts") {
                if p.policy.policy_string.is_empty() {
                    continue;
                }
                let lines: Vec<String> = p
                    .policy
                    .policy_string
                    .iter()
                    .map(|l| l.trim().to_owned())
                    .collect();
                if !strings.contains(&lines) {
                    strings.push(lines);
                }
            }
            for lines in strings {
                if d.sts_policies.contains_key(&lines) || d.sts_policies.len() < MAX_POLICIES {
                    let ps = d.sts_policies.entry(lines).or_insert_with(|| PolicySeen {
                        first_seen: start,
                        last_seen: start,
                        ..PolicySeen::default()
                    });
                    ps.reports += 1;
                    ps.first_seen = ps.first_seen.min(start);
                    ps.last_seen = ps.last_seen.max(start);
                    ps.add_org(org);
                }
            }
            // Per policy type: each type's own figures, once per report and type.
            for t in share.types() {
                let ts = slot(&mut d.policy_types, t.policy_type);
                ts.sessions.reports += 1;
                ts.sessions.successful = ts.sessions.successful.saturating_add(t.successful);
                ts.sessions.failed = ts.sessions.failed.saturating_add(t.failed);
            }
            for p in &share.policies {
                if p.failure_details.is_empty() {
                    continue;
                }
                let ts = slot(&mut d.policy_types, policy_type(p));
                for fd in &p.failure_details {
                    let rt = fd.result_type.as_deref().unwrap_or("(none)");
                    let e = slot(&mut ts.result_types, rt);
                    *e = e.saturating_add(fd.failed_session_count);
                }
            }
        }
    }

    /// Adds another tally of disjoint reports (another reader's share) to this one.
    pub fn merge(&mut self, other: Tally) {
        fn add_map<K: Ord>(a: &mut BTreeMap<K, u64>, b: BTreeMap<K, u64>) {
            for (k, v) in b {
                {
                    let e = a.entry(k).or_default();
                    *e = e.saturating_add(v);
                }
            }
        }
        fn add_s(a: &mut Sessions, b: &Sessions) {
            a.reports = a.reports.saturating_add(b.reports);
            a.successful = a.successful.saturating_add(b.successful);
            a.failed = a.failed.saturating_add(b.failed);
        }
        for (name, o) in other.domains {
            let d = self.domains.entry(name).or_default();
            add_s(&mut d.sessions, &o.sessions);
            for (k, v) in o.organizations {
                add_s(d.organizations.entry(k).or_default(), &v);
            }
            for (k, v) in o.policy_types {
                let t = d.policy_types.entry(k).or_default();
                add_s(&mut t.sessions, &v.sessions);
                add_map(&mut t.result_types, v.result_types);
            }
            for (k, v) in o.result_types {
                match d.result_types.get_mut(&k) {
                    Some(r) => r.merge(v),
                    None => {
                        d.result_types.insert(k, v);
                    }
                }
            }
            for (k, v) in o.sts_policies {
                if let Some(p) = d.sts_policies.get_mut(&k) {
                    p.reports = p.reports.saturating_add(v.reports);
                    p.first_seen = p.first_seen.min(v.first_seen);
                    p.last_seen = p.last_seen.max(v.last_seen);
                    for o in &v.organizations {
                        p.add_org(o);
                    }
                } else if d.sts_policies.len() < MAX_POLICIES {
                    d.sts_policies.insert(k, v);
                }
            }
            add_map(&mut d.receiving_mx, o.receiving_mx);
            add_map(&mut d.receiving_ip, o.receiving_ip);
            for (k, v) in o.sending_ip {
                {
                    let e = d.sending_ip.entry(k).or_default();
                    *e = e.saturating_add(v);
                }
            }
            d.daily.merge(o.daily);
        }
    }

    /// All domains together (for the unauthenticated block and totals).
    pub fn totals(&self) -> Sessions {
        let mut t = Sessions::default();
        for d in self.domains.values() {
            t.reports = t.reports.saturating_add(d.sessions.reports);
            t.successful = t.successful.saturating_add(d.sessions.successful);
            t.failed = t.failed.saturating_add(d.sessions.failed);
        }
        t
    }
}

/// A dedup key as 128 bits: the first half of the SHA-256 hex the delivery stores, or a
/// hash of organisation and report id for a record without one.
pub fn dedup_id(key: Option<&str>, report: &Report) -> u128 {
    if let Some(k) = key.filter(|k| k.len() >= 32)
        && let Some(hex) = k.get(..32)
        && let Ok(v) = u128::from_str_radix(hex, 16)
    {
        return v;
    }
    // FNV-1a, 128-bit: stable across runs, no dependency.
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    let org = report.organization_name.as_deref().unwrap_or("");
    let id = report.report_id.as_deref().unwrap_or("");
    for b in org.bytes().chain([0u8]).chain(id.bytes()) {
        h ^= b as u128;
        h = h.wrapping_mul(0x0000000001000000000000000000013B);
    }
    h
}

/// Reports of the current window left out for want of trust, by what would make them
/// count (crate::trust::LeftOut).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LeftOutStats {
    pub reports: u64,
    /// Their sessions, by the counting rule, over the selected domains.
    pub successful: u64,
    pub failed: u64,
}

/// The figures of a window and of the one before it, authenticated and not.
#[derive(Debug)]
pub struct Summary {
    pub window: Window,
    pub trust: Trust,
    pub include_unauthenticated: bool,
    pub domains: Vec<String>,
    pub current: Tally,
    pub previous: Tally,
    pub unauthenticated: Tally,
    pub unauthenticated_previous: Tally,
    /// The current window's reports that are not authenticated, by what would make
    /// them count (also with --include-unauthenticated, which counts them anyway).
    pub left_out: BTreeMap<LeftOut, LeftOutStats>,
    /// The same reports per domain (how many), for the domains' rows.
    pub left_out_domains: BTreeMap<String, u64>,
    /// The addresses the window's reports were delivered to (envelope recipients, at
    /// most crate::ours::MAX_ADDRESSES): what makes a domain ours (crate::ours).
    pub recipients: BTreeSet<String>,
    seen: HashSet<u128>,
    /// Further copies of reports of the current window, not counted.
    pub duplicates: u64,
}

impl Summary {
    pub fn new(window: Window, domains: Vec<String>, trust: Trust) -> Summary {
        Summary {
            window,
            include_unauthenticated: trust.everything,
            trust,
            domains: domains.iter().map(|d| domain_key(Some(d))).collect(),
            current: Tally::default(),
            previous: Tally {
                sessions_only: true,
                ..Tally::default()
            },
            unauthenticated: Tally::default(),
            unauthenticated_previous: Tally {
                sessions_only: true,
                ..Tally::default()
            },
            left_out: BTreeMap::new(),
            left_out_domains: BTreeMap::new(),
            recipients: BTreeSet::new(),
            seen: HashSet::new(),
            duplicates: 0,
        }
    }

    /// Adds another reader's summary of a disjoint share of the reports.
    pub fn merge(&mut self, other: Summary) {
        self.current.merge(other.current);
        self.previous.merge(other.previous);
        self.unauthenticated.merge(other.unauthenticated);
        self.unauthenticated_previous
            .merge(other.unauthenticated_previous);
        for (k, v) in other.left_out {
            self.add_left_out(k, v);
        }
        for (k, v) in other.left_out_domains {
            *self.left_out_domains.entry(k).or_default() += v;
        }
        for r in other.recipients {
            if self.recipients.len() < crate::ours::MAX_ADDRESSES {
                self.recipients.insert(r);
            }
        }
        self.duplicates = self.duplicates.saturating_add(other.duplicates);
    }

    pub fn add_left_out(&mut self, k: LeftOut, v: LeftOutStats) {
        let e = self.left_out.entry(k).or_default();
        e.reports = e.reports.saturating_add(v.reports);
        e.successful = e.successful.saturating_add(v.successful);
        e.failed = e.failed.saturating_add(v.failed);
    }

    /// Counts one record if its date range ends in the window or the previous one.
    pub fn add(&mut self, p: &Parsed) {
        let current = self.window.contains(p.end);
        if !current && !self.window.previous().contains(p.end) {
            return;
        }
        let r = &p.record;
        if !self
            .seen
            .insert(dedup_id(r.dedup_key.as_deref(), &r.report))
        {
            if current {
                self.duplicates += 1;
            }
            return;
        }
        if current {
            for a in [&r.envelope.recipient, &r.envelope.original_recipient]
                .into_iter()
                .flatten()
            {
                if self.recipients.len() < crate::ours::MAX_ADDRESSES
                    && a.contains('@')
                    && !self.recipients.contains(&**a)
                {
                    self.recipients.insert(a.to_ascii_lowercase());
                }
            }
        }
        let judged = self.trust.judge(r);
        if let (Some(why), true) = (&judged.left_out, current) {
            let mut v = LeftOutStats::default();
            for sh in shares(&r.report) {
                if self.domains.is_empty() || self.domains.contains(&sh.domain) {
                    v.successful = v.successful.saturating_add(sh.successful);
                    v.failed = v.failed.saturating_add(sh.failed);
                    v.reports = 1;
                    *self.left_out_domains.entry(sh.domain).or_default() += 1;
                }
            }
            if v.reports > 0 {
                self.add_left_out(why.clone(), v);
            }
        }
        let tally = match (judged.counted, current) {
            (true, true) => &mut self.current,
            (true, false) => &mut self.previous,
            (false, true) => &mut self.unauthenticated,
            (false, false) => &mut self.unauthenticated_previous,
        };
        tally.add(&r.report, p.start, &self.domains);
    }
}

#[cfg(test)]
mod series_tests {
    use super::*;

    #[test]
    fn day_series_adds_out_of_order_and_merges_in_order() {
        let mut a = DaySeries::default();
        for (d, s, f) in [(3, 1, 0), (1, 2, 1), (3, 1, 1), (2, 5, 0), (1, 1, 1)] {
            a.add(d * DAY, s, f);
        }
        let all = |s: &DaySeries| s.entries().collect::<Vec<_>>();
        assert_eq!(all(&a), vec![(DAY, 3, 2), (2 * DAY, 5, 0), (3 * DAY, 2, 1)]);
        let mut b = DaySeries::default();
        b.add(0, 7, 7);
        b.add(2 * DAY, 1, 1);
        b.add(9 * DAY, 4, 0);
        a.merge(b);
        assert_eq!(
            all(&a),
            vec![
                (0, 7, 7),
                (DAY, 3, 2),
                (2 * DAY, 6, 1),
                (3 * DAY, 2, 1),
                (9 * DAY, 4, 0)
            ]
        );
        assert_eq!(a.get(2 * DAY), Some((6, 1)));
        assert_eq!(a.get(5 * DAY), None);
    }

    #[test]
    fn bounded_breakdowns_sum_what_they_cannot_keep() {
        let mut b = Bounded::default();
        for i in 0..10u64 {
            b.add(&format!("k{i}"), i, 4);
        }
        b.add("k1", 100, 4);
        assert_eq!(b.0.len(), 5);
        assert_eq!(b.0.iter().map(|(_, n)| n).sum::<u64>(), 145);
        assert_eq!(
            b.0.iter().find(|(k, _)| &**k == OTHER).map(|e| e.1),
            Some(39)
        );
    }
}
