//! Group sums back into a summary: each [`Group`] the database sends (one GROUP BY
//! of a window's figures) added to the [`Tally`] the spool path would have built, by
//! the same rules (see the module above).

use super::{Figure, Group};
use crate::aggregate::{
    DomainStats, IpKey, MAX_IPS, MAX_MX, MAX_POLICIES, MAX_REASONS, PolicySeen, ResultStats,
    Summary, Tally,
};

/// Which of a summary's four tallies: (counted, current).
fn tally(s: &mut Summary, counted: bool, current: bool) -> &mut Tally {
    match (counted, current) {
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

fn add_type(d: &mut DomainStats, t: &str, reports: u64, s: u64, f: u64) {
    let ts = d.policy_types.entry(t.to_owned()).or_default();
    ts.sessions.reports += reports;
    ts.sessions.successful = ts.sessions.successful.saturating_add(s);
    ts.sessions.failed = ts.sessions.failed.saturating_add(f);
}

fn add_type_result(d: &mut DomainStats, t: &str, r: &str, n: u64) {
    let ts = d.policy_types.entry(t.to_owned()).or_default();
    let e = ts.result_types.entry(r.to_owned()).or_default();
    *e = e.saturating_add(n);
}

/// Adds one group to the summary (the tally it belongs to).
pub fn apply(s: &mut Summary, g: Group) {
    if !s.domains.is_empty() && !s.domains.contains(&g.domain) {
        return;
    }
    let tally = tally(s, g.counted, g.current);
    let sessions_only = tally.sessions_only;
    let d: &mut DomainStats = tally.domains.entry(g.domain.clone()).or_default();
    if let (Some(day), false) = (g.day, sessions_only) {
        d.daily.add(day, g.successful, g.failed);
    }
    let Some(figure) = g.figure else { return };
    match figure {
        Figure::Domain {
            organization,
            policy_type,
            sts_policy,
            successful,
            failed,
        } => {
            d.sessions.reports += g.rows;
            d.sessions.successful = d.sessions.successful.saturating_add(successful);
            d.sessions.failed = d.sessions.failed.saturating_add(failed);
            if !sessions_only {
                let o = d.organizations.entry(organization.clone()).or_default();
                o.reports += g.rows;
                o.successful = o.successful.saturating_add(successful);
                o.failed = o.failed.saturating_add(failed);
                add_type(d, &policy_type, g.rows, successful, failed);
                if let Some(lines) = sts_policy {
                    add_sts_policy(d, &lines, &organization, g.rows, g.first, g.last);
                }
            }
        }
        _ if sessions_only => {}
        Figure::Type {
            policy_type,
            successful,
            failed,
        } => add_type(d, &policy_type, g.rows, successful, failed),
        Figure::TypeResult {
            policy_type,
            result_type: Some(r),
            failed,
        } => add_type_result(d, &policy_type, &r, failed),
        Figure::TypeResult { .. } => {}
        Figure::Result {
            result_type: Some(a),
            organization,
            policy_type,
            failed,
        } => {
            let r = result(d, &a, g.first);
            r.failed = r.failed.saturating_add(failed);
            r.first_seen = r.first_seen.min(g.first);
            r.last_seen = r.last_seen.max(g.last);
            r.organizations.add(&organization, failed, MAX_MX);
            // One Result row per report and result type, one group per organisation
            // and type: the reports add up.
            r.reports += g.rows;
            add_type_result(d, &policy_type, &a, failed);
        }
        Figure::Result { .. } => {}
        Figure::Mx {
            result_type,
            mx_host,
            failed,
        } => {
            let m = result(d, &result_type, g.first).mx_entry(&mx_host);
            m.failed = m.failed.saturating_add(failed);
        }
        Figure::MxIp {
            result_type,
            mx_host,
            ip,
            failed,
        } => {
            let m = result(d, &result_type, g.first).mx_entry(&mx_host);
            keep_top(&mut m.sending_ips, &ip, failed, MAX_IPS);
        }
        Figure::Reason {
            result_type,
            reason,
            failed,
        } => result(d, &result_type, g.first)
            .reasons
            .add(&reason, failed, MAX_REASONS),
        Figure::Uri { result_type, uri } => result(d, &result_type, g.first).add_uri(&uri),
        Figure::SendingIp { ip, failed } => {
            // The tally's map holds at most the largest few here.
            let mut v: Vec<(IpKey, u64)> = d.sending_ip.drain().collect();
            keep_top(&mut v, &ip, failed, crate::summary::TOP_SENDING_IPS);
            d.sending_ip.extend(v);
        }
        Figure::ReceivingMx { mx_host, failed } => {
            let e = d.receiving_mx.entry(mx_host).or_default();
            *e = e.saturating_add(failed);
        }
        Figure::ReceivingIp { ip, failed } => {
            let e = d.receiving_ip.entry(ip).or_default();
            *e = e.saturating_add(failed);
        }
        Figure::StsPolicy {
            sts_policy,
            organization,
        } => add_sts_policy(d, &sts_policy, &organization, g.rows, g.first, g.last),
    }
}

/// `reports` more reports carried this `sts` policy-string (its lines as a JSON array).
fn add_sts_policy(
    d: &mut DomainStats,
    lines: &str,
    org: &str,
    reports: u64,
    first: i64,
    last: i64,
) {
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
