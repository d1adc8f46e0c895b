//! The watch's node_exporter textfile: what each run saw of every domain, for
//! dashboards and alert rules (`contrib/prometheus/tlsrpt-watch.rules.yml`). Pure: the
//! text from the run's reports; `mod.rs` writes it atomically on every run, also when
//! nothing could be probed (then the findings and `tlsrpt_watch_domains` say why).
//!
//! Series per address exist only for what was observed: an address that was not probed
//! (its class refused, the run's time spent) has no `tlsrpt_mx_starttls` rather than a
//! misleading 0; an address that was tried and did not answer has
//! `tlsrpt_mx_probe_success 0`.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::check_domain::DomainReport;
use crate::metrics::{head, label};

/// What the run did, besides the domains' reports.
#[derive(Debug, Default)]
pub struct Run {
    pub now: i64,
    pub duration: f64,
    /// Domains from the spool that are not ours (not connected to).
    pub not_ours: usize,
    /// Domains of the reports whose TLSRPT record could not be looked up this run.
    pub undecided: usize,
    /// Domains the run's time did not reach.
    pub not_checked: Vec<String>,
    /// The run's exit status.
    pub status: u8,
}

/// The textfile.
pub fn render(reports: &[DomainReport], run: &Run) -> String {
    let mut o = String::new();
    head(
        &mut o,
        "tlsrpt_watch_last_run_timestamp_seconds",
        "gauge",
        "When the last tlsrpt watch run ended.",
    );
    let _ = writeln!(o, "tlsrpt_watch_last_run_timestamp_seconds {}", run.now);
    head(
        &mut o,
        "tlsrpt_watch_duration_seconds",
        "gauge",
        "How long the last tlsrpt watch run took.",
    );
    let _ = writeln!(o, "tlsrpt_watch_duration_seconds {:.3}", run.duration);
    head(
        &mut o,
        "tlsrpt_watch_status",
        "gauge",
        "The last run's exit status: 0 ok, 1 warnings, 2 errors, 3 could not check everything.",
    );
    let _ = writeln!(o, "tlsrpt_watch_status {}", run.status);
    head(
        &mut o,
        "tlsrpt_watch_domains",
        "gauge",
        "Domains of the last run: checked, not-ours (named by reports but not ours: not connected to), undecided (their TLSRPT record could not be looked up), not-checked (the run's time was spent).",
    );
    for (state, n) in [
        ("checked", reports.len()),
        ("not-ours", run.not_ours),
        ("undecided", run.undecided),
        ("not-checked", run.not_checked.len()),
    ] {
        let _ = writeln!(o, "tlsrpt_watch_domains{{state=\"{state}\"}} {n}");
    }

    head(
        &mut o,
        "tlsrpt_domain_check_status",
        "gauge",
        "Per domain, as check-domain's exit status: 0 ok, 1 warnings, 2 errors, 3 could not check.",
    );
    for r in reports {
        let _ = writeln!(
            o,
            "tlsrpt_domain_check_status{{policy_domain=\"{}\"}} {}",
            label(&r.domain),
            crate::check_domain::status(std::slice::from_ref(r))
        );
    }
    for d in &run.not_checked {
        let _ = writeln!(
            o,
            "tlsrpt_domain_check_status{{policy_domain=\"{}\"}} 3",
            label(d)
        );
    }

    head(
        &mut o,
        "tlsrpt_domain_finding",
        "gauge",
        "Findings present now, by code (check-domain's and watch's) and severity: how many (hosts) it concerns.",
    );
    for r in reports {
        let mut by: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for f in &r.findings {
            *by.entry((f.code, f.severity.label())).or_default() += 1;
        }
        for ((code, sev), n) in by {
            let _ = writeln!(
                o,
                "tlsrpt_domain_finding{{policy_domain=\"{}\",code=\"{code}\",severity=\"{sev}\"}} {n}",
                label(&r.domain)
            );
        }
    }

    head(
        &mut o,
        "tlsrpt_domain_sts_mode",
        "gauge",
        "The MTA-STS policy's mode (1 for the mode served now; no series without a valid policy).",
    );
    for r in reports {
        if let Some(m) = r.mta_sts.policy.as_ref().and_then(|p| p.mode)
            && r.facts.sts_fetch_error.is_none()
        {
            let _ = writeln!(
                o,
                "tlsrpt_domain_sts_mode{{policy_domain=\"{}\",mode=\"{}\"}} 1",
                label(&r.domain),
                m.label()
            );
        }
    }
    head(
        &mut o,
        "tlsrpt_domain_sts_max_age_seconds",
        "gauge",
        "The MTA-STS policy's max_age.",
    );
    for r in reports {
        if let Some(a) = r.mta_sts.policy.as_ref().and_then(|p| p.max_age)
            && r.facts.sts_fetch_error.is_none()
        {
            let _ = writeln!(
                o,
                "tlsrpt_domain_sts_max_age_seconds{{policy_domain=\"{}\"}} {a}",
                label(&r.domain)
            );
        }
    }

    // Per address.
    type Line = fn(&crate::check_domain::Address) -> Option<String>;
    let series: [(&str, &str, Line); 5] = [
        (
            "tlsrpt_mx_probe_success",
            "1 when port 25 of the address answered SMTP, 0 when it was tried and did not (no series: not tried, refused address class or the run's time spent).",
            |a| {
                (a.probed || a.facts.smtp_error.is_some())
                    .then(|| if a.probed { "1".into() } else { "0".into() })
            },
        ),
        (
            "tlsrpt_mx_starttls",
            "1 when the address offered STARTTLS and the TLS handshake completed, else 0 (no series when SMTP was not reached).",
            |a| {
                a.probed.then(|| {
                    if a.tls_version.is_some() {
                        "1".into()
                    } else {
                        "0".into()
                    }
                })
            },
        ),
        (
            "tlsrpt_mx_certificate_not_after_timestamp_seconds",
            "The not-after time of the certificate the address shows with SNI set to the MX name.",
            |a| a.certificate.as_ref().map(|c| c.not_after_ts.to_string()),
        ),
        (
            "tlsrpt_mx_certificate_valid",
            "1 when that certificate chains to a trusted root and names the MX host (what MTA-STS senders need), else 0.",
            |a| {
                a.certificate.as_ref().map(|c| {
                    if c.trusted && c.matches_host && c.days_left >= 0 {
                        "1".into()
                    } else {
                        "0".into()
                    }
                })
            },
        ),
        (
            "tlsrpt_mx_tlsa_match",
            "1 when a usable TLSA record of the MX matches the address's chain, 0 when none does (no series without TLSA records).",
            |a| {
                (a.tls_version.is_some() && a.tlsa.iter().any(|t| t.usable)).then(|| {
                    if a.tlsa
                        .iter()
                        .any(|t| t.usable && t.matches && t.problem.is_none())
                    {
                        "1".into()
                    } else {
                        "0".into()
                    }
                })
            },
        ),
    ];
    for (name, help, value) in &series {
        head(&mut o, name, "gauge", help);
        for r in reports {
            for m in &r.mx {
                for a in &m.addresses {
                    if let Some(v) = value(a) {
                        let _ = writeln!(
                            o,
                            "{name}{{policy_domain=\"{}\",mx=\"{}\",address=\"{}\"}} {v}",
                            label(&r.domain),
                            label(&m.host),
                            label(&a.address)
                        );
                    }
                }
            }
        }
    }
    head(
        &mut o,
        "tlsrpt_mx_tls_version",
        "gauge",
        "The TLS version the address negotiated (1 for that version).",
    );
    for r in reports {
        for m in &r.mx {
            for a in &m.addresses {
                if let Some(v) = &a.tls_version {
                    let _ = writeln!(
                        o,
                        "tlsrpt_mx_tls_version{{policy_domain=\"{}\",mx=\"{}\",address=\"{}\",version=\"{}\"}} 1",
                        label(&r.domain),
                        label(&m.host),
                        label(&a.address),
                        label(v)
                    );
                }
            }
        }
    }
    o
}
