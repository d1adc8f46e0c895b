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

use crate::counting;
use crate::log::Severity;
use crate::report::{PolicyResult, Report, ResultType};
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
        Thresholds {
            min_failed: 1,
            min_ratio: 0.0,
            per_type: Vec::new(),
            domains: Vec::new(),
        }
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
        CertificateHostMismatch
        | CertificateExpired
        | CertificateNotTrusted
        | ValidationFailure
        | StsWebpkiInvalid
        | TlsaInvalid
        | DnssecInvalid
        | DaneRequired => Severity::Err,
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

/// A policy's failed sessions: the summary's count, or the detail rows' sum when that
/// is larger (a summary that leaves out failures its own rows show).
fn failed_of(p: &PolicyResult) -> (u64, u64, u64) {
    let (successful, reported) = p.summary.as_ref().map_or((None, None), |s| {
        (
            s.total_successful_session_count,
            s.total_failure_session_count,
        )
    });
    let detail_sum = p
        .failure_details
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .fold(0u64, |a, d| {
            a.saturating_add(d.failed_session_count.unwrap_or(0))
        });
    (
        successful.unwrap_or(0),
        reported.unwrap_or(detail_sum).max(detail_sum),
        detail_sum,
    )
}

fn type_of(p: &PolicyResult) -> &str {
    p.policy
        .as_ref()
        .and_then(|p| p.policy_type.as_ref())
        .map_or(counting::NONE, |t| t.as_str())
}

/// Evaluates `report` against `t`: at most one alert per policy domain, on the sessions
/// the counting rule counts (crate::counting: policies of one type add up, of different
/// types the same sessions count once).
pub fn evaluate(report: &Report, t: &Thresholds) -> Vec<Alert> {
    let mut out = Vec::new();
    let (start, end) = report
        .date_range
        .as_ref()
        .map(|d| {
            (
                d.start_datetime.clone().unwrap_or_default(),
                d.end_datetime.clone().unwrap_or_default(),
            )
        })
        .unwrap_or_default();
    // The policies of each domain, in first-appearance order (a policy without a
    // `policy` object names no domain and is not judged).
    let mut groups: Vec<(String, &str, Vec<&PolicyResult>)> = Vec::new();
    for p in report.policies() {
        let Some(policy) = &p.policy else { continue };
        let raw = policy.policy_domain.as_deref().unwrap_or("");
        let key = counting::domain_key(Some(raw));
        match groups.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, _, v)) => v.push(p),
            None => groups.push((key, raw, vec![p])),
        }
    }
    for (key, domain, policies) in groups {
        if !t.domains.is_empty() && !t.domains.contains(&normalise_domain(&key)) {
            continue;
        }
        let Some(c) = counting::counted(policies.iter().map(|p| {
            let (successful, failed, _) = failed_of(p);
            counting::PolicyCount {
                policy_type: type_of(p),
                successful,
                failed,
            }
        })) else {
            continue;
        };
        let mut by_type: Vec<(ResultType, u64)> = Vec::new();
        let (mut mx_hosts, mut ips) = (Vec::new(), Vec::new());
        let mut detail_sum: u64 = 0;
        for p in policies.iter().filter(|p| type_of(p) == c.policy_type) {
            detail_sum = detail_sum.saturating_add(failed_of(p).2);
            for d in p.failure_details.as_deref().unwrap_or(&[]) {
                let n = d.failed_session_count.unwrap_or(0);
                let rt = d
                    .result_type
                    .clone()
                    .unwrap_or_else(|| ResultType::Other("unspecified".into()));
                match by_type.iter_mut().find(|(k, _)| *k == rt) {
                    Some((_, c)) => *c = c.saturating_add(n),
                    None => by_type.push((rt, n)),
                }
                push_unique(&mut mx_hosts, &d.receiving_mx_hostname);
                push_unique(&mut ips, &d.receiving_ip);
            }
        }
        let failed = c.failed;
        if failed == 0 {
            continue; // success-only: the heartbeat, not an alarm.
        }
        let total = c.total();
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
            policy_domain: domain.to_owned(),
            policy_type: if c.policy_type == counting::NONE {
                String::new()
            } else {
                c.policy_type.to_owned()
            },
            organization: report.organization_name.clone().unwrap_or_default(),
            report_id: report.report_id.clone().unwrap_or_default(),
            start: start.clone(),
            end: end.clone(),
            failed,
            total,
            result_types: by_type
                .into_iter()
                .map(|(k, n)| (k.as_str().to_owned(), n))
                .collect(),
            mx_hosts,
            ips,
        });
    }
    out
}

impl Alert {
    pub fn ratio(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.failed as f64 / self.total as f64
        }
    }

    /// `key=value` fields, sanitised, in line order.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let join = |v: &[String]| {
            v.iter()
                .map(|s| sanitize::clean(s, 80))
                .collect::<Vec<_>>()
                .join(",")
        };
        vec![
            (
                "severity",
                crate::log::severity_label(self.severity).to_owned(),
            ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::parse;

    fn report(rows: &[(&str, u64)], failed: u64, successful: u64) -> Report {
        let details: Vec<String> = rows
            .iter()
            .map(|(t, n)| format!(r#"{{"result-type":"{t}","failed-session-count":{n}}}"#))
            .collect();
        let doc = format!(
            r#"{{"organization-name":"O","date-range":{{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"}},"report-id":"r","policies":[{{"policy":{{"policy-type":"sts","policy-domain":"Example.COM"}},"summary":{{"total-successful-session-count":{successful},"total-failure-session-count":{failed}}},"failure-details":[{}]}}]}}"#,
            details.join(",")
        );
        parse(doc.as_bytes()).unwrap().report
    }

    fn t(
        min_failed: u64,
        min_ratio: f64,
        per_type: &[(&str, u64)],
        domains: &[&str],
    ) -> Thresholds {
        Thresholds {
            min_failed,
            min_ratio,
            per_type: per_type
                .iter()
                .map(|(k, n)| (ResultType::from((*k).to_owned()), *n))
                .collect(),
            domains: domains.iter().map(|d| (*d).to_owned()).collect(),
        }
    }

    #[test]
    fn table() {
        let d = Thresholds::default();
        #[rustfmt::skip]
        let cases: Vec<(&str, Report, Thresholds, Option<Severity>)> = vec![
            ("success only", report(&[], 0, 10), d.clone(), None),
            ("starttls is crit", report(&[("starttls-not-supported", 1)], 1, 10), d.clone(), Some(Severity::Crit)),
            ("worst type wins", report(&[("sts-policy-fetch-error", 5), ("certificate-expired", 1)], 6, 0), d.clone(), Some(Severity::Err)),
            ("fetch error is warning", report(&[("sts-policy-fetch-error", 5)], 5, 0), d.clone(), Some(Severity::Warning)),
            ("unknown type is warning", report(&[("new-thing", 1)], 1, 0), d.clone(), Some(Severity::Warning)),
            ("failures without details", report(&[], 3, 0), d.clone(), Some(Severity::Warning)),
            ("below min-failed", report(&[("certificate-expired", 2)], 2, 0), t(3, 0.0, &[], &[]), None),
            ("below ratio", report(&[("certificate-expired", 2)], 2, 98), t(1, 0.05, &[], &[]), None),
            ("at ratio", report(&[("certificate-expired", 5)], 5, 95), t(1, 0.05, &[], &[]), Some(Severity::Err)),
            ("override ignores fetch errors below N", report(&[("sts-policy-fetch-error", 9)], 9, 0), t(1, 0.0, &[("sts-policy-fetch-error", 10)], &[]), None),
            ("override reached", report(&[("sts-policy-fetch-error", 10)], 10, 0), t(1, 0.0, &[("sts-policy-fetch-error", 10)], &[]), Some(Severity::Warning)),
            ("override 0 never alerts", report(&[("sts-policy-fetch-error", 99)], 99, 0), t(1, 0.0, &[("sts-policy-fetch-error", 0)], &[]), None),
            ("override fires despite high min-failed", report(&[("starttls-not-supported", 1)], 1, 0), t(100, 0.0, &[("starttls-not-supported", 1)], &[]), Some(Severity::Crit)),
            ("severity from triggered types only", report(&[("starttls-not-supported", 1), ("certificate-expired", 5)], 6, 0), t(1, 0.0, &[("starttls-not-supported", 2)], &[]), Some(Severity::Err)),
            ("domain filter matches case-insensitively", report(&[("certificate-expired", 1)], 1, 0), t(1, 0.0, &[], &["example.com"]), Some(Severity::Err)),
            ("domain filter excludes", report(&[("certificate-expired", 1)], 1, 0), t(1, 0.0, &[], &["other.example"]), None),
        ];
        for (name, r, th, want) in cases {
            let got = evaluate(&r, &th);
            assert_eq!(got.first().map(|a| a.severity), want, "{name}");
            assert!(got.len() <= 1, "{name}");
        }
    }

    /// (policy type, domain, successful, failed, (result type, failed) rows).
    type Shape<'a> = (&'a str, &'a str, u64, u64, &'a [(&'a str, u64)]);

    fn multi(policies: &[Shape]) -> Report {
        let ps: Vec<String> = policies
            .iter()
            .map(|(ty, dom, s, f, rows)| {
                let d: Vec<String> = rows
                    .iter()
                    .map(|(t, n)| format!(r#"{{"result-type":"{t}","receiving-mx-hostname":"mx-{t}.{dom}","failed-session-count":{n}}}"#))
                    .collect();
                format!(
                    r#"{{"policy":{{"policy-type":"{ty}","policy-domain":"{dom}"}},"summary":{{"total-successful-session-count":{s},"total-failure-session-count":{f}}},"failure-details":[{}]}}"#,
                    d.join(",")
                )
            })
            .collect();
        let doc = format!(
            r#"{{"organization-name":"O","date-range":{{"start-datetime":"2024-01-01T00:00:00Z","end-datetime":"2024-01-01T23:59:59Z"}},"report-id":"r","policies":[{}]}}"#,
            ps.join(",")
        );
        parse(doc.as_bytes()).unwrap().report
    }

    #[test]
    fn one_alert_per_domain_by_the_counting_rule() {
        let d = Thresholds::default();
        // SocketLabs: two sts policies, the second failing: 2 of 14 sessions.
        let r = multi(&[
            ("sts", "example.com", 12, 0, &[]),
            (
                "sts",
                "example.com",
                0,
                2,
                &[("certificate-host-mismatch", 2)],
            ),
        ]);
        let a = evaluate(&r, &d);
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].failed, a[0].total), (2, 14));
        assert_eq!(a[0].severity, Severity::Err);
        // One tlsa policy per MX host, one failing: 5 of 147.
        let r = multi(&[
            ("tlsa", "example.com", 100, 0, &[]),
            ("tlsa", "example.com", 40, 5, &[("tlsa-invalid", 5)]),
            ("tlsa", "example.com", 2, 0, &[]),
        ]);
        let a = evaluate(&r, &d);
        assert_eq!((a.len(), a[0].failed, a[0].total), (1, 5, 147));
        assert_eq!(a[0].mx_hosts, vec!["mx-tlsa-invalid.example.com"]);
        // Microsoft: sts and tlsa over the same 12 sessions: one alert, not two.
        let r = multi(&[
            ("sts", "example.com", 10, 2, &[("certificate-expired", 2)]),
            ("tlsa", "example.com", 10, 2, &[("dane-required", 2)]),
        ]);
        let a = evaluate(&r, &d);
        assert_eq!(a.len(), 1);
        assert_eq!(
            (a[0].policy_type.as_str(), a[0].failed, a[0].total),
            ("sts", 2, 12)
        );
        assert_eq!(
            a[0].result_types,
            vec![("certificate-expired".to_owned(), 2)]
        );
        // Mixed, two domains: each its own alert, each by the rule.
        let r = multi(&[
            ("sts", "a.example", 20, 1, &[("certificate-expired", 1)]),
            ("tlsa", "a.example", 10, 0, &[]),
            ("tlsa", "a.example", 10, 1, &[("tlsa-invalid", 1)]),
            ("tlsa", "b.example", 5, 0, &[]),
            ("tlsa", "B.example.", 0, 3, &[("starttls-not-supported", 3)]),
        ]);
        let a = evaluate(&r, &d);
        assert_eq!(a.len(), 2);
        assert_eq!(
            (a[0].policy_type.as_str(), a[0].failed, a[0].total),
            ("sts", 1, 21)
        );
        assert_eq!(
            (a[1].failed, a[1].total, a[1].severity),
            (3, 8, Severity::Crit)
        );
    }

    #[test]
    fn line_is_sanitised_and_greppable() {
        let mut r = report(&[("certificate-expired", 2)], 2, 2);
        r.organization_name = Some("Evil\nCorp \u{1b}[31m".into());
        let a = &evaluate(&r, &Thresholds::default())[0];
        let line = a.line();
        assert!(!line.chars().any(char::is_control), "{line:?}");
        assert!(line.starts_with("tlsrpt-alert severity=err policy-domain=Example.COM policy-type=sts organization=\"Evil Corp ?[31m\""), "{line}");
        assert!(
            line.contains(" failed=2 total=4 ratio=0.5000 result-types=certificate-expired:2"),
            "{line}"
        );
    }
}
