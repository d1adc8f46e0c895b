//! One record → the rows of parsedmarc's three tables, our meta row and the figure
//! rows (pure).

use std::net::IpAddr;

use tlsrpt_pipe::datetime::Timestamp;

use crate::db::figures::{DomainFigure, Figure};
use crate::record::Parsed;
use crate::trust::Trust;

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

/// The report's figures (`tlsrpt_figure`: see crate::db::figures), with what every row
/// of it repeats: the report's times and trust.
pub struct FigureRows {
    pub end_at: i64,
    pub start_at: i64,
    /// A trusted, aligned DKIM pass: the delivery's, or by the trust `load` was given.
    pub authenticated: bool,
    /// The authserv-ids that would make it count (crate::trust::LeftOut::Needs).
    pub trust_needs: Option<String>,
    pub received_at: Option<i64>,
    /// `mail` or `https`.
    pub transport: &'static str,
    /// The envelope recipient and original recipient (crate::ours).
    pub recipient: Option<String>,
    pub original_recipient: Option<String>,
    pub figures: Vec<DomainFigure>,
}

impl FigureRows {
    pub fn new(p: &Parsed) -> FigureRows {
        FigureRows::judged(p, &Trust::default())
    }

    /// The figures, the report judged by the delivery's verdict and `trust`.
    pub fn judged(p: &Parsed, trust: &Trust) -> FigureRows {
        let r = &p.record;
        let judged = trust.judge(r);
        FigureRows {
            end_at: p.end,
            start_at: p.start,
            authenticated: judged.authenticated,
            trust_needs: judged.left_out.as_ref().and_then(|l| l.needs()).map(clean),
            received_at: r
                .received_at
                .as_deref()
                .and_then(tlsrpt_pipe::datetime::parse)
                .map(|(t, _)| t.0),
            transport: if r.https() { "https" } else { "mail" },
            recipient: opt(&r.envelope.recipient),
            original_recipient: opt(&r.envelope.original_recipient),
            figures: crate::db::figures::of_report(&r.report)
                .into_iter()
                .map(|f| DomainFigure {
                    domain: clean(&f.domain),
                    figure: clean_figure(f.figure),
                })
                .collect(),
        }
    }
}

/// The figure with its text safe for PostgreSQL.
fn clean_figure(f: Figure) -> Figure {
    let mut row = f.row();
    for v in [
        &mut row.organization,
        &mut row.policy_type,
        &mut row.result_type,
        &mut row.mx_host,
        &mut row.ip,
        &mut row.reason,
        &mut row.uri,
        &mut row.sts_policy,
    ] {
        if let Some(s) = v.as_mut()
            && s.contains('\0')
        {
            *s = clean(s);
        }
    }
    // The sts policy-string is JSON text: its NUL is the escape \u0000.
    if let Some(p) = row.sts_policy.as_mut()
        && p.contains("\\u0000")
    {
        *p = p.replace("\\u0000", "\\ufffd");
    }
    Figure::from_row(row).expect("a figure's own row")
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
    pub figures: FigureRows,
}

impl ReportRows {
    pub fn new(p: &Parsed, spool: &str, line: &str, trust: &Trust) -> ReportRows {
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
            figures: FigureRows::judged(p, trust),
        }
    }
}
