//! `summary --probe`: does each failure of the reports still happen? Every failing
//! (result type, receiving MX) of the counted domains is checked live, the way
//! `check-domain` checks, and its advice entry gains `live: {verdict, evidence,
//! checked-at}` — `still-failing` (the probe sees the same cause now), `not-reproduced`
//! (it sees it fixed, or sees why senders could have seen it while it works: STARTTLS
//! stripped on the way, no SNI), or `not-probed` (why not).
//!
//! Safety: only the counted reports' domains (authenticated ones unless
//! `--include-unauthenticated`) that are ours (crate::ours: listed with `--domain`, or
//! their TLSRPT record sends reports here; the rest `not-probed: not one of our
//! domains`), only MX hosts the domain's DNS names *now* — a `receiving-mx-hostname`
//! that is not one is `not-probed` and never connected to — and each (host, address)
//! once per run however many domains share it. Domains are checked four at a time,
//! listed ones first, then most failing; the run as a whole is bounded (`budget`), after
//! which the rest are `not-probed`. Nothing is kept after a domain is annotated but its
//! findings: memory follows the domains, not the probes.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::check_domain::observe::{Settings, observe};
use crate::check_domain::{DomainReport, Found, judge::judge};
use crate::ours::Ours;
use crate::probe::cert::Failure;
use crate::summary::{Doc, DomainDoc, DomainLiveDoc, LiveDoc, PolicyStringDoc};
use crate::txt_record::Severity;
use crate::window::rfc3339;

/// Domains checked at once (each probes its addresses in parallel too).
const DOMAINS_AT_ONCE: usize = 4;

/// Checks the failing domains of `doc` that are ours live, and annotates their advice;
/// the others' entries say why they were not probed (crate::ours).
pub fn annotate(doc: &mut Doc, settings: &Settings, now: i64, ours: &Ours) {
    let mut s = settings.clone();
    if s.cache.is_none() {
        s.cache = Some(Arc::new(Mutex::new(Default::default())));
    }
    let mut candidates: Vec<usize> = (0..doc.domains.len())
        .filter(|&i| {
            let d = &doc.domains[i];
            d.policy_domain != "(none)" && (!d.advice.is_empty() || !d.sts_policies.is_empty())
        })
        .collect();
    // Most failing first (the document's order), the listed ones before all.
    candidates.sort_by_key(|&i| !ours.listed.contains(&doc.domains[i].policy_domain));
    // Which are ours: one TXT lookup each (not for the listed ones), in a budget of
    // their own, so that forged domains cannot spend the probes' time.
    let names: Vec<String> = candidates
        .iter()
        .map(|&i| doc.domains[i].policy_domain.clone())
        .collect();
    let dns = crate::check_record::Dns::with(s.resolver.clone());
    let (ours_names, not_ours) = ours.split(&names, &dns, s.domain_timeout);
    for (name, why) in &not_ours {
        if let Some(d) = doc.domains.iter_mut().find(|d| &d.policy_domain == name) {
            for a in &mut d.advice {
                a.live = Some(not_probed(why.clone()));
                for m in &mut a.mx_hosts {
                    m.live = Some(not_probed(why.clone()));
                }
            }
        }
    }
    let targets: Vec<usize> = ours_names
        .iter()
        .filter_map(|n| doc.domains.iter().position(|d| &d.policy_domain == n))
        .collect();
    // The whole run: enough for every domain at the pace of the slowest, at most ten
    // domain checks in a row.
    let rounds = targets.len().div_ceil(DOMAINS_AT_ONCE).clamp(1, 10) as u32;
    let budget_end = Instant::now() + settings.domain_timeout * rounds + Duration::from_secs(1);
    let results: Vec<Mutex<Option<DomainReport>>> =
        targets.iter().map(|_| Mutex::new(None)).collect();
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..DOMAINS_AT_ONCE.min(targets.len()) {
            scope.spawn(|| {
                loop {
                    let k = {
                        let mut n = next.lock().expect("no panics while held");
                        let k = *n;
                        *n += 1;
                        k
                    };
                    let Some(&i) = targets.get(k) else { return };
                    if Instant::now() + s.domain_timeout > budget_end {
                        continue; // left not-probed: the run's time is spent
                    }
                    let d = &doc.domains[i];
                    let mut r = observe(&s, &d.policy_domain, reported_hosts(d).as_deref());
                    judge(&mut r, 14);
                    *results[k].lock().expect("no panics while held") = Some(r);
                }
            });
        }
    });
    let checked_at = rfc3339(now);
    for (k, &i) in targets.iter().enumerate() {
        let r = results[k].lock().expect("no panics while held").take();
        apply(&mut doc.domains[i], r.as_ref(), &checked_at);
    }
}

/// The MX hosts the domain's reports named, or None (probe every MX) when a failure
/// names none or concerns the domain's policy rather than one MX.
fn reported_hosts(d: &DomainDoc) -> Option<Vec<String>> {
    let mut hosts = BTreeSet::new();
    for r in &d.advice {
        for m in &r.mx_hosts {
            if m.host == "(none)" {
                return None;
            }
            hosts.insert(m.host.clone());
        }
    }
    Some(hosts.into_iter().collect())
}

fn not_probed(why: String) -> LiveDoc {
    LiveDoc {
        verdict: "not-probed",
        evidence: why,
        checked_at: None,
    }
}

/// Annotates one domain's advice from what the probe saw (None: not probed in time).
fn apply(d: &mut DomainDoc, r: Option<&DomainReport>, checked_at: &str) {
    let Some(r) = r else {
        for a in &mut d.advice {
            a.live = Some(not_probed(
                "the probe's time for this run ran out before this domain".into(),
            ));
        }
        return;
    };
    for a in &mut d.advice {
        let rt = a.result_type.clone();
        let orgs = a.organizations.clone();
        for m in &mut a.mx_hosts {
            let mut l = verdict(
                &rt,
                &m.host,
                &m.sending_ips,
                &orgs,
                r,
                &a.reasons.iter().map(|x| x.code.clone()).collect::<Vec<_>>(),
            );
            if l.verdict != "not-probed" {
                l.checked_at = Some(checked_at.to_owned());
            }
            m.live = Some(l);
        }
        if a.mx_hosts.is_empty() {
            let mut l = verdict(&rt, "(none)", &[], &orgs, r, &[]);
            if l.verdict != "not-probed" {
                l.checked_at = Some(checked_at.to_owned());
            }
            a.live = Some(l);
        } else {
            // The entry's verdict: still failing anywhere, else reproduced nowhere.
            let worst = ["still-failing", "not-reproduced", "not-probed"]
                .into_iter()
                .find_map(|v| {
                    a.mx_hosts
                        .iter()
                        .filter_map(|m| m.live.as_ref())
                        .find(|l| l.verdict == v)
                })
                .cloned();
            a.live = worst;
        }
    }
    let mut findings: Vec<Found> = r
        .findings
        .iter()
        .filter(|f| f.severity > Severity::Info)
        .cloned()
        .collect();
    findings.extend(policy_differs(&d.sts_policies, r));
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    d.live = Some(DomainLiveDoc {
        checked_at: checked_at.to_owned(),
        findings,
    });
}

/// The verdict for one (result type, receiving MX).
fn verdict(
    rt: &str,
    host: &str,
    ips: &[String],
    orgs: &[String],
    r: &DomainReport,
    reasons: &[String],
) -> LiveDoc {
    let domain = &r.domain;
    let live = |verdict: &'static str, evidence: String| LiveDoc {
        verdict,
        evidence,
        checked_at: None,
    };
    // What could not be looked up gives no verdict: never "not-reproduced" (nor
    // "still-failing") on an answer that never came.
    if r.facts.nxdomain {
        return not_probed(format!(
            "{domain} does not resolve now (NXDOMAIN): nothing to check; if it should exist, check the name and the delegation of its zone"
        ));
    }
    let policy_level = matches!(
        rt,
        "sts-policy-fetch-error" | "sts-policy-invalid" | "sts-webpki-invalid"
    );
    if policy_level && let Some(why) = &r.mta_sts.lookup_failed {
        return not_probed(format!(
            "could not check: the MTA-STS record's lookup failed ({why})"
        ));
    }
    if !policy_level
        && let Some(why) = r
            .facts
            .lookup_failed
            .iter()
            .find(|w| w.starts_with(&format!("{domain} MX")))
    {
        return not_probed(format!("could not check: the MX lookup failed ({why})"));
    }
    // Policy-level failures: the MX does not matter.
    if let Some(code) = [
        "sts-policy-fetch-error",
        "sts-policy-invalid",
        "sts-webpki-invalid",
    ]
    .into_iter()
    .find(|c| *c == rt)
    {
        // The policy's own violations have codes of their own (sts-policy-mode, ...):
        // any error about the record or the policy is what senders report as invalid.
        let found = r.findings.iter().find(|f| {
            f.code == code
                || (code == "sts-policy-invalid"
                    && f.severity == Severity::Error
                    && (f.code.starts_with("sts-policy-") || f.code.starts_with("sts-record-"))
                    && f.code != "sts-policy-fetch-error")
        });
        return match found {
            Some(f) => live("still-failing", f.message.clone()),
            None if r.mta_sts.record.is_empty() => live(
                "not-reproduced",
                format!(
                    "{domain} publishes no MTA-STS record now: senders with a cached policy keep it until its max_age runs out"
                ),
            ),
            None => live(
                "not-reproduced",
                format!(
                    "the MTA-STS policy of {domain} fetches and parses now (mode {}); if it failed then, the policy server or its certificate was fixed since",
                    r.mta_sts
                        .policy
                        .as_ref()
                        .and_then(|p| p.mode)
                        .map(|m| format!("{m:?}").to_ascii_lowercase())
                        .unwrap_or_else(|| "?".into())
                ),
            ),
        };
    }
    if rt == "dnssec-invalid"
        && let Some(why) = &r.facts.mx_bogus
    {
        return live(
            "still-failing",
            format!("the MX records of {domain} fail DNSSEC validation: {why}"),
        );
    }
    let mxs: Vec<&crate::check_domain::Mx> = if host == "(none)" {
        r.mx.iter().collect()
    } else {
        match r.mx.iter().find(|m| m.host.eq_ignore_ascii_case(host)) {
            Some(m) => vec![m],
            None if r.facts.mx_set.iter().any(|h| h.eq_ignore_ascii_case(host)) => {
                return not_probed(format!("{host} was not probed"));
            }
            None => {
                return not_probed(format!(
                    "{host} is not an MX of {domain} now (its MX: {}): not connected to",
                    if r.facts.mx_set.is_empty() {
                        "none".to_owned()
                    } else {
                        r.facts.mx_set.join(", ")
                    }
                ));
            }
        }
    };
    let addrs: Vec<(&str, &crate::check_domain::Address)> = mxs
        .iter()
        .flat_map(|m| m.addresses.iter().map(move |a| (m.host.as_str(), a)))
        .collect();
    let probed: Vec<&(&str, &crate::check_domain::Address)> =
        addrs.iter().filter(|(_, a)| a.probed).collect();
    let where_ = |h: &str, a: &crate::check_domain::Address| format!("{h} [{}]", a.address);
    if rt == "dnssec-invalid" || rt == "tlsa-invalid" {
        let i =
            r.mx.iter()
                .position(|m| mxs.iter().any(|x| x.host == m.host));
        let mf = i.and_then(|i| r.facts.mx.get(i));
        if let Some(why) = mf.and_then(|f| f.tlsa_bogus.as_ref()) {
            return live(
                "still-failing",
                format!("the TLSA lookup fails DNSSEC validation: {why}"),
            );
        }
        if rt == "dnssec-invalid" {
            return live(
                "not-reproduced",
                "the MX, address and TLSA answers validate (or are insecure) now".into(),
            );
        }
    }
    if probed.is_empty() {
        let why: Vec<String> = addrs
            .iter()
            .map(|(h, a)| match a.facts.refused {
                Some(class) => format!(
                    "{} is a {class} address (--allow-private-addresses probes it)",
                    where_(h, a)
                ),
                None => format!(
                    "{}: {}",
                    where_(h, a),
                    a.error.as_deref().unwrap_or("not reachable")
                ),
            })
            .collect();
        return not_probed(if why.is_empty() {
            format!("{host} has no address now")
        } else {
            why.join("; ")
        });
    }
    let who = || {
        let mut w = Vec::new();
        if !orgs.is_empty() {
            w.push(format!("reported by {}", orgs.join(", ")));
        }
        if !ips.is_empty() {
            w.push(format!("from {}", ips.join(", ")));
        }
        w.join(" ")
    };
    match rt {
        "starttls-not-supported" => {
            if let Some((h, a)) = probed
                .iter()
                .find(|(_, a)| a.starttls == Some(false) || a.facts.starttls_refused.is_some())
            {
                return live(
                    "still-failing",
                    format!("{} does not offer STARTTLS", where_(h, a)),
                );
            }
            live(
                "not-reproduced",
                format!(
                    "{} offers STARTTLS now on every address probed: if it did when those senders connected, something between them and the MX stripped it (a downgrade attack, or a middlebox), or another host answered at that address; {}",
                    mxs.iter()
                        .map(|m| m.host.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    who()
                ),
            )
        }
        "certificate-expired"
        | "certificate-host-mismatch"
        | "certificate-not-trusted"
        | "validation-failure" => {
            let want = match rt {
                "certificate-expired" => vec![Failure::Expired, Failure::NotYetValid],
                "certificate-host-mismatch" => vec![Failure::HostMismatch],
                "certificate-not-trusted" => vec![Failure::NotTrusted],
                _ => vec![Failure::Validation, Failure::NotTrusted],
            };
            let mut tls_seen = None;
            for (h, a) in &probed {
                let Some(c) = &a.certificate else {
                    continue;
                };
                tls_seen = Some((h, a, c));
                let bad = match rt {
                    "certificate-expired" => {
                        c.days_left < 0 || c.failure == Some(Failure::NotYetValid)
                    }
                    "certificate-host-mismatch" => !c.matches_host,
                    "certificate-not-trusted" => !c.trusted,
                    _ => c.failure.is_some_and(|f| want.contains(&f)) || !c.trusted,
                };
                if bad {
                    let what = match rt {
                        "certificate-expired" if c.days_left < 0 => {
                            format!("expired {}", &c.not_after[..10])
                        }
                        "certificate-expired" => format!("is not valid before {}", c.not_before),
                        "certificate-host-mismatch" => {
                            format!("is for {}, not {h}", c.names.join(", "))
                        }
                        _ => format!(
                            "is not trusted: {}",
                            c.verify_error.clone().unwrap_or_default()
                        ),
                    };
                    return live(
                        "still-failing",
                        format!("the certificate of {} {what}", where_(h, a)),
                    );
                }
            }
            // Only without SNI?
            for (h, a) in &probed {
                if let Some(c) = &a.certificate_without_sni {
                    let bad = match rt {
                        "certificate-expired" => c.days_left < 0,
                        "certificate-host-mismatch" => !c.matches_host,
                        _ => !c.trusted,
                    };
                    if bad {
                        return live(
                            "still-failing",
                            format!(
                                "only without SNI: {} shows a certificate for {} (valid until {}) to clients that send no SNI; those senders send no SNI — make the right certificate the default one",
                                where_(h, a),
                                c.names.join(", "),
                                &c.not_after[..10]
                            ),
                        );
                    }
                }
            }
            match tls_seen {
                Some((h, a, c)) => {
                    let extra = if rt == "validation-failure" && !reasons.is_empty() {
                        format!("; the senders said: {}", reasons.join(", "))
                    } else {
                        String::new()
                    };
                    live(
                        "not-reproduced",
                        format!(
                            "the certificate of {} for {} verifies now, valid until {} ({} days), with and without SNI{}{extra}",
                            where_(h, a),
                            c.names.join(", "),
                            &c.not_after[..10],
                            c.days_left,
                            if rt == "certificate-expired" {
                                "; renewed after the report?"
                            } else {
                                ""
                            }
                        ),
                    )
                }
                None => not_probed(format!(
                    "no TLS session to check the certificate: {}",
                    probed
                        .iter()
                        .map(|(h, a)| format!(
                            "{}: {}",
                            where_(h, a),
                            a.error.as_deref().unwrap_or("no STARTTLS")
                        ))
                        .collect::<Vec<_>>()
                        .join("; ")
                )),
            }
        }
        "tlsa-invalid" => {
            for (h, a) in &probed {
                if a.tlsa.iter().any(|t| t.usable) && !a.tlsa.iter().any(|t| t.usable && t.matches)
                {
                    return live(
                        "still-failing",
                        format!(
                            "no usable TLSA record matches the certificate of {}",
                            where_(h, a)
                        ),
                    );
                }
            }
            if probed.iter().all(|(_, a)| a.tlsa.is_empty()) {
                live(
                    "not-reproduced",
                    "no TLSA records are published for it now".into(),
                )
            } else {
                live(
                    "not-reproduced",
                    "a usable TLSA record matches the certificate now".into(),
                )
            }
        }
        "dnssec-invalid" => live("not-reproduced", "the answers validate now".into()),
        _ => not_probed(format!("no live check answers {rt}")),
    }
}

/// `sts-policy-differs`: reports whose `sts` policy-string is not the live policy — those
/// senders applied a cached or older one (RFC 8461 §5.1: a policy lives for max_age).
fn policy_differs(seen: &[PolicyStringDoc], r: &DomainReport) -> Vec<Found> {
    let norm = |lines: &[String]| -> BTreeSet<String> {
        lines
            .iter()
            .filter_map(|l| {
                l.split_once(':').map(|(k, v)| {
                    format!(
                        "{}: {}",
                        k.trim().to_ascii_lowercase(),
                        v.trim().to_ascii_lowercase()
                    )
                })
            })
            .collect()
    };
    let live = r.mta_sts.policy.as_ref().map(|p| norm(&p.lines));
    let mut out = Vec::new();
    for p in seen {
        let theirs = norm(&p.policy_string);
        let differs = match &live {
            Some(l) => *l != theirs,
            None => true,
        };
        if !differs {
            continue;
        }
        let now = match (&r.mta_sts.policy, r.mta_sts.record.is_empty()) {
            (_, true) => "no MTA-STS record is published now".to_owned(),
            (Some(l), false) => format!("the live policy is \"{}\"", l.lines.join("; ")),
            (None, false) => "the live policy could not be fetched".to_owned(),
        };
        let age = r
            .mta_sts
            .policy
            .as_ref()
            .and_then(|p| p.max_age)
            .map(|a| format!(" (max_age {a} s)"))
            .unwrap_or_default();
        out.push(Found {
            code: "sts-policy-differs",
            severity: Severity::Warning,
            host: Some(format!("mta-sts.{}", r.domain)),
            message: format!(
                "{} applied the policy \"{}\" in {} report{} from {} to {}, but {now}: those senders used a cached or older policy{age}; when changing the policy, change the id in _mta-sts.{} so that senders fetch it again",
                p.organizations.join(", "),
                p.policy_string.join("; "),
                p.reports,
                if p.reports == 1 { "" } else { "s" },
                &p.first_seen[..10],
                &p.last_seen[..10],
                r.domain
            ),
        });
    }
    out
}
