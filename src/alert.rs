//! Reports → alerts: which policies crossed the operator's thresholds, and how bad.
//!
//! Guarantee: `evaluate` is a pure function of a report and a threshold config; it does
//! no I/O and decides nothing about duplicates or authenticity (the caller only passes
//! reports that were newly stored and allowed to alert).
//!
//! Severity by meaning (documented in the man page, ALERTS):
//! - `crit`: `starttls-not-supported`: mail went (or would have gone) in plaintext;
//!   on your own MX this is a broken TLS setup or an active downgrade.
//! - `err`: certificate and validation failures (`certificate-*`, `validation-failure`,
//!   `sts-webpki-invalid`) and DANE failures (`tlsa-invalid`, `dnssec-invalid`,
//!   `dane-required`): senders that enforce a policy could not deliver.
//! - `warning`: policy publication problems (`sts-policy-fetch-error`,
//!   `sts-policy-invalid`), unknown result types, and failures without details.

use crate::log::Severity;
use crate::report::{Report, ResultType};
use crate::sanitize;

/// Operator thresholds (`--alert-*`).
#[derive(Debug, Clone)]
pub struct Thresholds {
    /// Alert when at least this many failed sessions are not covered by a per-type
    /// override; 0 disables this rule.
    pub min_failed: u64,
    /// And only when failed / (failed + successful) is at least this.
    pub min_ratio: f64,
    /// Per result type: alert when that type alone has at least N failed sessions;
    /// N = 0 never alerts on that type.
    pub per_type: Vec<(ResultType, u64)>,
    /// Only these policy domains (lowercase, no trailing dot); empty means all.
    pub domains: Vec<String>,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds { min_failed: 1, min_ratio: 0.0, per_type: Vec::new(), domains: Vec::new() }
    }
}

/// One policy that crossed the thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub severity: Severity,
    pub policy_domain: String,
    pub policy_type: String,
    pub organization: String,
    pub report_id: String,
    pub start: String,
    pub end: String,
    pub failed: u64,
    pub total: u64,
    /// (result type, failed sessions), in first-seen order.
    pub result_types: Vec<(String, u64)>,
    pub mx_hosts: Vec<String>,
    pub ips: Vec<String>,
}

/// The severity a result type earns by its meaning.
pub fn severity_of(t: &ResultType) -> Severity {
    use ResultType::*;
    match t {
        StarttlsNotSupported => Severity::Crit,
        CertificateHostMismatch | CertificateExpired | CertificateNotTrusted | ValidationFailure
        | StsWebpkiInvalid | TlsaInvalid | DnssecInvalid | DaneRequired => Severity::Err,
        StsPolicyFetchError | StsPolicyInvalid | Other(_) => Severity::Warning,
    }
}

fn normalise_domain(d: &str) -> String {
    d.trim().trim_end_matches('.').to_ascii_lowercase()
}

fn push_unique(v: &mut Vec<String>, s: &Option<String>) {
    if let Some(s) = s {
        if !s.is_empty() && !v.contains(s) && v.len() < 16 {
            v.push(s.clone());
        }
    }
}

/// Evaluates every policy of `report` against `t`.
pub fn evaluate(report: &Report, t: &Thresholds) -> Vec<Alert> {
    let mut out = Vec::new();
    let (start, end) = report
        .date_range
        .as_ref()
        .map(|d| (d.start_datetime.clone().unwrap_or_default(), d.end_datetime.clone().unwrap_or_default()))
        .unwrap_or_default();
    for p in report.policies() {
        let Some(policy) = &p.policy else { continue };
        let domain = policy.policy_domain.clone().unwrap_or_default();
        if !t.domains.is_empty() && !t.domains.contains(&normalise_domain(&domain)) {
            continue;
        }
        let (successful, reported_failed) = p.summary.as_ref().map_or((None, None), |s| {
            (s.total_successful_session_count, s.total_failure_session_count)
        });
        let mut by_type: Vec<(ResultType, u64)> = Vec::new();
        let (mut mx_hosts, mut ips) = (Vec::new(), Vec::new());
        let mut detail_sum: u64 = 0;
        for d in p.failure_details.as_deref().unwrap_or(&[]) {
            let n = d.failed_session_count.unwrap_or(0);
            detail_sum = detail_sum.saturating_add(n);
            let rt = d.result_type.clone().unwrap_or_else(|| ResultType::Other("unspecified".into()));
            match by_type.iter_mut().find(|(k, _)| *k == rt) {
                Some((_, c)) => *c = c.saturating_add(n),
                None => by_type.push((rt, n)),
            }
            push_unique(&mut mx_hosts, &d.receiving_mx_hostname);
            push_unique(&mut ips, &d.receiving_ip);
        }
        let failed = reported_failed.unwrap_or(detail_sum).max(detail_sum);
        if failed == 0 {
            continue; // success-only: the heartbeat, not an alarm.
        }
        let total = failed.saturating_add(successful.unwrap_or(0));
        let ratio = failed as f64 / total as f64;
        if ratio < t.min_ratio {
            continue;
        }
        // Failures not covered by an override: typed rows plus any the rows don't explain.
        let mut general = failed.saturating_sub(detail_sum);
        let mut triggered: Vec<&ResultType> = Vec::new();
        for (rt, n) in &by_type {
            match t.per_type.iter().find(|(k, _)| k == rt) {
                Some((_, 0)) => {}
                Some((_, min)) if n >= min => triggered.push(rt),
                Some(_) => {}
                None => general = general.saturating_add(*n),
            }
        }
        let general_fires = t.min_failed > 0 && general >= t.min_failed;
        if !general_fires && triggered.is_empty() {
            continue;
        }
        let mut severity = Severity::Warning;
        for (rt, _) in &by_type {
            let counts = triggered.contains(&rt)
                || (general_fires && !t.per_type.iter().any(|(k, _)| k == rt));
            if counts && severity_of(rt) < severity {
                severity = severity_of(rt);
            }
        }
        out.push(Alert {
            severity,
            policy_domain: domain,
            policy_type: policy.policy_type.as_ref().map(|p| p.as_str().to_owned()).unwrap_or_default(),
            organization: report.organization_name.clone().unwrap_or_default(),
            report_id: report.report_id.clone().unwrap_or_default(),
            start: start.clone(),
            end: end.clone(),
            failed,
            total,
            result_types: by_type.into_iter().map(|(k, n)| (k.as_str().to_owned(), n)).collect(),
            mx_hosts,
            ips,
        });
    }
    out
}

impl Alert {
    pub fn ratio(&self) -> f64 {
        if self.total == 0 { 0.0 } else { self.failed as f64 / self.total as f64 }
    }

    /// `key=value` fields, sanitised, in line order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let join = |v: &[String]| v.iter().map(|s| sanitize::clean(s, 80)).collect::<Vec<_>>().join(",");
        vec![
            ("severity", crate::log::severity_label(self.severity).to_owned()),
            ("policy-domain", sanitize::clean(&self.policy_domain, 255)),
            ("policy-type", sanitize::clean(&self.policy_type, 40)),
            ("organization", sanitize::clean(&self.organization, 100)),
            ("report-id", sanitize::clean(&self.report_id, 120)),
            ("start", sanitize::clean(&self.start, 40)),
            ("end", sanitize::clean(&self.end, 40)),
            ("failed", self.failed.to_string()),
            ("total", self.total.to_string()),
            ("ratio", format!("{:.4}", self.ratio())),
            (
                "result-types",
                self.result_types
                    .iter()
                    .map(|(k, n)| format!("{}:{n}", sanitize::clean(k, 60)))
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("mx-hosts", join(&self.mx_hosts)),
            ("ips", join(&self.ips)),
        ]
    }

    /// The grep-able line: `tlsrpt-alert key=value ...`.
    pub fn line(&self) -> String {
        let mut s = String::from("tlsrpt-alert");
        for (k, v) in self.fields() {
            if v.is_empty() && matches!(k, "mx-hosts" | "ips") {
                continue;
            }
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(&sanitize::value(&v, 2000));
        }
        s
    }
}
