//! `check-domain --format plugin`: the monitoring-plugins form of the live check, for
//! Icinga, Nagios, Naemon or Sensu without Prometheus: one line
//! `TLSRPT STATUS - summary | days_to_expiry=N;WARN:;0: ...`, then one line per finding
//! (errors and warnings; `info` only counts), exit status 0/1/2/3 as the line says.
//!
//! The perfdata `days_to_expiry` is the fewest whole days left on any certificate an MX
//! address showed (negative once expired), with the plugin guidelines' ranges: warning
//! below the run's `--expiry-warning` (`14:`), critical once expired (`0:`);
//! `errors` (critical above 0) and `warnings` (warning above 0) beside it. With no
//! certificate seen there is no value rather than a made-up one.

use super::DomainReport;
use crate::check::{Status, Verdict};
use crate::txt_record::Severity;

/// The plugin output of `reports`, judged with an expiry warning of `warn_days`.
pub fn output(reports: &[DomainReport], warn_days: u32) -> String {
    verdict(reports, warn_days).output()
}

fn verdict(reports: &[DomainReport], warn_days: u32) -> Verdict {
    let status = match super::status(reports) {
        0 => Status::Ok,
        1 => Status::Warning,
        2 => Status::Critical,
        _ => Status::Unknown,
    };
    let mut findings = Vec::new();
    let (mut errors, mut warnings) = (0usize, 0usize);
    for r in reports {
        for l in &r.facts.lookup_failed {
            findings.push((
                Status::Unknown,
                format!("{}: could not look up {l}", r.domain),
            ));
        }
        for f in &r.findings {
            let st = match f.severity {
                Severity::Error => {
                    errors += 1;
                    Status::Critical
                }
                Severity::Warning => {
                    warnings += 1;
                    Status::Warning
                }
                Severity::Info => continue,
            };
            let host = f
                .host
                .as_deref()
                .map(|h| format!(" {h}"))
                .unwrap_or_default();
            findings.push((st, format!("{} {}{host}: {}", r.domain, f.code, f.message)));
        }
    }
    // The first certificate to expire, over every address of every domain.
    let first = reports
        .iter()
        .flat_map(|r| r.mx.iter())
        .flat_map(|m| m.addresses.iter().map(move |a| (m, a)))
        .filter_map(|(m, a)| a.certificate.as_ref().map(|c| (c.days_left, &m.host)))
        .min_by_key(|(d, _)| *d);
    let names = match reports {
        [one] => one.domain.clone(),
        _ => format!("{} domains", reports.len()),
    };
    let mut summary = match (errors, warnings) {
        (0, 0) if status == Status::Unknown => format!("{names}: could not check everything"),
        (0, 0) => format!("{names}: MTA-STS, TLS and DANE as senders need them"),
        _ => format!("{names}: {errors} error(s), {warnings} warning(s)"),
    };
    let mut perfdata = vec![
        format!("errors={errors};;0;0"),
        format!("warnings={warnings};0;;0"),
    ];
    match first {
        Some((days, host)) => {
            summary.push_str(&format!(
                "; first certificate expiry in {days} day(s) ({host})"
            ));
            perfdata.insert(0, format!("days_to_expiry={days};{warn_days}:;0:"));
        }
        None => summary.push_str("; no MX certificate seen"),
    }
    Verdict {
        status,
        findings,
        perfdata,
        summary,
    }
}
