//! Each domain: its `_smtp._tls` record (as `check-record`), whether the addresses it
//! names are routed to tlsrpt-pipe here, whether its reports arrive; then trust: how
//! many recent reports count, and for the others the exact option that would make them
//! count.

use super::mta::Wiring;
use super::{Item, Level, ok, problem};
use crate::cli::DoctorArgs;
use crate::txt_record::Severity;

/// The window doctor reads the spools over.
const DAYS: i64 = 30;

pub fn check(a: &DoctorArgs, w: &Wiring, now: i64, items: &mut Vec<Item>) {
    let summary = recent(a, now, items);
    let dns = if a.domain.is_empty() {
        None
    } else {
        match a
            .nameserver
            .as_deref()
            .map(crate::check_record::parse_nameserver)
            .transpose()
            .and_then(|ns| {
                crate::check_record::Dns::new(ns, std::time::Duration::from_secs(a.timeout))
            }) {
            Ok(d) => Some(d),
            Err(e) => {
                items.push(problem(
                    "record",
                    Level::Unknown,
                    format!("no resolver: {e}"),
                    "give --nameserver IP, or fix /etc/resolv.conf",
                ));
                None
            }
        }
    };
    for d in &a.domain {
        let key = crate::aggregate::domain_key(Some(d));
        if let Some(dns) = &dns {
            record(dns, &key, w, items);
        }
        if let Some(s) = &summary {
            let stats = s
                .current
                .domains
                .get(&key)
                .or_else(|| s.unauthenticated.domains.get(&key));
            match stats {
                Some(st) => items.push(ok(
                    "reports",
                    format!(
                        "{key}: {} report(s) in the last {DAYS} days{}",
                        st.sessions.reports,
                        st.daily
                            .last_day()
                            .map(|t| format!(", the latest for {}", crate::window::utc_day(t)))
                            .unwrap_or_default()
                    ),
                )),
                None => items.push(problem(
                    "reports",
                    Level::Warning,
                    format!("{key}: no report in the last {DAYS} days"),
                    "senders report daily once the record is published: check the record above and the MTA's log for the rua address",
                )),
            }
        }
    }
    if let Some(s) = &summary {
        trust(a, w, s, items);
    }
}

/// The last days of the spools, every report (trust judged apart).
fn recent(a: &DoctorArgs, now: i64, items: &mut Vec<Item>) -> Option<crate::aggregate::Summary> {
    let trust = match crate::trust::Trust::new(&a.trusted.trusted_authserv_id, false) {
        Ok(t) => t,
        Err(e) => {
            items.push(problem(
                "trust",
                Level::Error,
                e,
                "correct --trusted-authserv-id",
            ));
            return None;
        }
    };
    let w = crate::window::Window {
        since: now - DAYS * crate::window::DAY,
        until: now,
    };
    match crate::summary::collect(&a.spool, w, Vec::new(), &trust) {
        Ok((s, skipped)) => {
            if skipped.lines + skipped.files > 0 {
                items.push(problem(
                    "spool",
                    Level::Warning,
                    format!(
                        "{} line(s) and {} day file(s) of the last {DAYS} days could not be read (see the warnings above)",
                        skipped.lines, skipped.files
                    ),
                    "run as the spool's owner; a torn last line is finished by the next delivery",
                ));
            }
            Some(s)
        }
        // A spool that does not exist is already an error of its own.
        Err(_) if !a.spool.iter().any(|p| p.is_dir()) => None,
        Err(e) => {
            items.push(problem(
                "spool",
                Level::Unknown,
                format!("no spool could be read: {}", e.0),
                "run tlsrpt doctor as root or as the spool's owner (--spool DIR)",
            ));
            None
        }
    }
}

fn record(dns: &crate::check_record::Dns, domain: &str, w: &Wiring, items: &mut Vec<Item>) {
    let e = crate::check_record::check_domain(dns, domain, &[], false);
    if e.lookup_failed {
        items.push(problem(
            "record",
            Level::Unknown,
            format!("_smtp._tls.{domain}: the lookup failed (this says nothing about the record)"),
            "check the domain's name servers, or the resolver (--nameserver)",
        ));
        return;
    }
    let worst = e.findings.iter().map(|f| f.severity).max();
    let said = |sev: Severity| {
        e.findings
            .iter()
            .filter(|f| f.severity == sev)
            .map(|f| format!("{}: {}", f.code, f.message))
            .collect::<Vec<_>>()
            .join("; ")
    };
    match worst {
        Some(Severity::Error) => items.push(problem(
            "record",
            Level::Error,
            format!("_smtp._tls.{domain}: {}", said(Severity::Error)),
            format!("tlsrpt check-record {domain} gives the record to publish"),
        )),
        Some(Severity::Warning) => items.push(problem(
            "record",
            Level::Warning,
            format!("_smtp._tls.{domain}: {}", said(Severity::Warning)),
            format!("tlsrpt check-record {domain}"),
        )),
        _ => items.push(ok(
            "record",
            format!("_smtp._tls.{domain}: \"{}\"", e.records.join("\" \"")),
        )),
    }
    if e.rua.is_empty() || w.services.is_empty() {
        return;
    }
    // Does a report address of the record reach tlsrpt-pipe here?
    let mut why = Vec::new();
    for u in &e.rua {
        let Some(addr) = u.strip_prefix("mailto:") else {
            items.push(ok(
                "route",
                format!("{domain}: reports also come by HTTPS to {u} (tlsrpt-pipe --cgi)"),
            ));
            continue;
        };
        let addr = addr.split('?').next().unwrap_or(addr);
        match w.route(addr) {
            Ok(how) => {
                items.push(ok("route", format!("{domain}: rua {addr}: {how}")));
                return;
            }
            Err(e) => why.push(format!("{addr}: {e}")),
        }
    }
    if !why.is_empty() {
        let service = &w.services[0];
        items.push(problem(
            "route",
            Level::Error,
            format!(
                "{domain}: no rua address of its record reaches tlsrpt-pipe here ({})",
                why.join("; ")
            ),
            if service.source.starts_with("Postfix") {
                format!(
                    "add \"ADDRESS {}:\" to /etc/postfix/transport, postmap it, and set transport_maps (contrib/postfix/)",
                    service.name
                )
            } else {
                "route the rua address to tlsrpt-pipe (README \"Wire the MTA\")".into()
            },
        ));
    }
}

fn trust(a: &DoctorArgs, w: &Wiring, s: &crate::aggregate::Summary, items: &mut Vec<Item>) {
    let counted: u64 = s.current.domains.values().map(|d| d.sessions.reports).sum();
    let left = crate::summary::left_out_docs(&s.left_out);
    let left_n: u64 = left.iter().map(|l| l.reports).sum();
    if counted == 0 && left_n == 0 {
        // Nothing read, nothing judged: not "fine".
        items.push(problem(
            "trust",
            Level::Warning,
            format!("no report in the spools in the last {DAYS} days: whether reports arrive and count is not known"),
            "wait for the first daily report, or deliver one by hand (cat report.eml | tlsrpt-pipe --spool DIR) and run doctor again",
        ));
    } else if left_n == 0 {
        items.push(ok(
            "trust",
            format!("all {counted} report(s) of the last {DAYS} days count (DKIM-authenticated)"),
        ));
    }
    for l in &left {
        let level = if counted == 0 && l.kind != "https" {
            Level::Error
        } else {
            Level::Warning
        };
        let fix = if l.kind == "needs-trust" {
            format!(
                "{} on every tlsrpt command (or TLSRPT_TRUSTED_AUTHSERV_ID={} in the jobs' environment), and on tlsrpt-pipe",
                l.fix,
                l.authserv_ids.join(",")
            )
        } else {
            l.fix.clone()
        };
        items.push(problem(
            "trust",
            level,
            format!("not counted (last {DAYS} days): {}", l.line()),
            fix,
        ));
    }
    // The delivery judges trust too (its syslog alerts): it should trust the same ids.
    if !a.trusted.trusted_authserv_id.is_empty() {
        for svc in &w.services {
            let missing: Vec<&String> = a
                .trusted
                .trusted_authserv_id
                .iter()
                .filter(|id| !svc.trusted.contains(id))
                .collect();
            if !missing.is_empty() {
                items.push(problem(
                    "trust",
                    Level::Warning,
                    format!(
                        "{} runs tlsrpt-pipe without --trusted-authserv-id {}: its syslog alerts count those reports as unauthenticated",
                        svc.source,
                        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                    ),
                    format!(
                        "add --trusted-authserv-id {} to its command line",
                        missing.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(",")
                    ),
                ));
            }
        }
    }
}
