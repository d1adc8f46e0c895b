//! One record → the rows of parsedmarc's three tables and our meta row (pure).

use std::net::IpAddr;

use tlsrpt_pipe::datetime::Timestamp;

use crate::facts::Fact;
use crate::record::Parsed;

/// Text safe for PostgreSQL (no NUL).
pub fn clean(s: &str) -> String {
    s.replace('\0', "\u{FFFD}")
}

fn opt(s: &Option<std::borrow::Cow<str>>) -> Option<String> {
    s.as_deref().map(clean)
}

/// An INET value: the address if the text is one, else NULL.
pub fn inet(s: &Option<std::borrow::Cow<str>>) -> Option<IpAddr> {
    s.as_deref().and_then(|t| t.trim().parse::<IpAddr>().ok())
}

/// A count for an INT column.
pub fn int(n: u64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub struct DetailRow {
    pub result_type: Option<String>,
    pub failed_session_count: i32,
    pub sending_mta_ip: Option<IpAddr>,
    pub receiving_ip: Option<IpAddr>,
    pub receiving_mx_hostname: Option<String>,
    pub receiving_mx_helo: Option<String>,
    pub additional_info_uri: Option<String>,
    pub failure_reason_code: Option<String>,
}

pub struct PolicyRow {
    pub policy_domain: Option<String>,
    pub policy_type: Option<String>,
    pub policy_strings: Vec<String>,
    pub mx_host_patterns: Vec<String>,
    pub successful_session_count: i32,
    pub failed_session_count: i32,
    pub details: Vec<DetailRow>,
}

/// The report's figures (`tlsrpt_fact`): see crate::facts.
pub struct FactRows {
    pub end_at: i64,
    pub start_at: i64,
    pub authenticated: bool,
    pub received_at: Option<i64>,
    pub facts: Vec<Fact>,
}

impl FactRows {
    pub fn new(p: &Parsed) -> FactRows {
        let r = &p.record;
        FactRows {
            end_at: p.end,
            start_at: p.start,
            authenticated: r.authenticated(),
            received_at: r
                .received_at
                .as_deref()
                .and_then(tlsrpt_pipe::datetime::parse)
                .map(|(t, _)| t.0),
            facts: crate::facts::facts(&r.report)
                .into_iter()
                .map(|f| Fact {
                    domain: clean(&f.domain),
                    a: f.a.as_deref().map(clean),
                    b: f.b.as_deref().map(clean),
                    c: f.c.as_deref().map(clean),
                    ..f
                })
                .collect(),
        }
    }
}

pub struct ReportRows {
    pub organization_name: String,
    /// RFC 3339, UTC.
    pub begin_date: String,
    pub end_date: String,
    pub contact_info: Option<String>,
    pub report_id: String,
    pub policies: Vec<PolicyRow>,
    // tlsrpt_report_meta
    pub dedup_key: String,
    pub received_at: Option<Timestamp>,
    pub source_spool: String,
    pub dkim_verdict: Option<String>,
    pub warnings: String,
    pub record: String,
    pub figures: FactRows,
}

impl ReportRows {
    pub fn new(p: &Parsed, spool: &str, line: &str) -> ReportRows {
        let r = &p.record;
        let rep = &r.report;
        // PostgreSQL's jsonb refuses \u0000 as well as text refuses NUL.
        let nul_free = |s: &str| {
            if s.contains("\\u0000") || s.contains('\0') {
                clean(s).replace("\\u0000", "\\ufffd")
            } else {
                s.to_owned()
            }
        };
        let record_json = nul_free(line);
        let warnings = nul_free(r.warnings.map_or("[]", |w| w.get()));
        ReportRows {
            organization_name: clean(rep.organization_name.as_deref().unwrap_or("")),
            begin_date: crate::window::rfc3339(p.start),
            end_date: crate::window::rfc3339(p.end),
            contact_info: opt(&rep.contact_info),
            report_id: clean(rep.report_id.as_deref().unwrap_or("")),
            policies: rep
                .policies
                .iter()
                .map(|pol| PolicyRow {
                    policy_domain: opt(&pol.policy.policy_domain),
                    policy_type: opt(&pol.policy.policy_type),
                    policy_strings: pol.policy.policy_string.iter().map(|s| clean(s)).collect(),
                    mx_host_patterns: pol.policy.mx_host.iter().map(|s| clean(s)).collect(),
                    successful_session_count: int(pol.summary.successful),
                    failed_session_count: int(pol.summary.failed),
                    details: pol
                        .failure_details
                        .iter()
                        .map(|d| DetailRow {
                            result_type: opt(&d.result_type),
                            failed_session_count: int(d.failed_session_count),
                            sending_mta_ip: inet(&d.sending_mta_ip),
                            receiving_ip: inet(&d.receiving_ip),
                            receiving_mx_hostname: opt(&d.receiving_mx_hostname),
                            receiving_mx_helo: opt(&d.receiving_mx_helo),
                            additional_info_uri: opt(&d.additional_information),
                            failure_reason_code: opt(&d.failure_reason_code),
                        })
                        .collect(),
                })
                .collect(),
            dedup_key: r
                .dedup_key
                .as_deref()
                .map(clean)
                .unwrap_or_else(|| format!("{:032x}", crate::aggregate::dedup_id(None, rep))),
            received_at: r
                .received_at
                .as_deref()
                .and_then(tlsrpt_pipe::datetime::parse)
                .map(|(t, _)| t),
            source_spool: clean(spool),
            dkim_verdict: opt(&r.authentication.verdict),
            warnings,
            record: record_json,
            figures: FactRows::new(p),
        }
    }
}
