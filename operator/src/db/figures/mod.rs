//! A report's figures as typed rows (pure; no I/O): what `load` stores beside
//! parsedmarc's tables (`tlsrpt_figure`), and how the database's sums of them become the
//! same [`Tally`] a spool gives.
//!
//! Why rows of figures and not SQL over parsedmarc's tables: the counting rule
//! (tlsrpt_pipe::counting) and the breakdowns would have to be written a second time in
//! SQL, twice (PostgreSQL, SQLite), and choosing the counted policies of every report
//! by window functions costs more than the whole summary (measured on the
//! 200,000-report year in PostgreSQL 15: 3.5 s against 1.0 s for the two bare
//! GROUP BYs). Here the rule runs once per report, at load, in the code the spool path
//! uses; a summary is one GROUP BY over narrow rows.
//!
//! Each [`Figure`] is one kind of row with named fields, converted to and from the
//! table's named columns in one place ([`Figure::row`], [`Figure::from_row`]); the SQL
//! lists of figure names are generated from [`Name`]. A person writing SQL reads
//! `tlsrpt_figure` by these columns (documented in man/tlsrpt.1, DATABASE):
//!
//! | figure | keys | counts |
//! |---|---|---|
//! | `domain` | organization, policy_type (the counted type), sts_policy (the report's one sts policy-string) | successful, failed |
//! | `type` | policy_type (a type not counted: Microsoft's tlsa beside sts) | successful, failed |
//! | `type_result` | policy_type (not counted), result_type (NULL: failures without a detail row) | failed |
//! | `result` | result_type (NULL: failures without a detail row), organization, policy_type | failed |
//! | `mx` | result_type, mx_host (lower case, `(none)`) | failed |
//! | `mx_ip` | result_type, mx_host, ip (sending MTA) | failed |
//! | `reason` | result_type, reason (failure-reason-code, `(none)`) | failed |
//! | `uri` | result_type, uri (additional-information) | - |
//! | `sending_ip` | ip | failed |
//! | `receiving_mx` | mx_host (as written, dots trimmed) | failed |
//! | `receiving_ip` | ip | failed |
//! | `sts_policy` | sts_policy (lines as a JSON array), organization (a report with several sts policy-strings) | - |
//!
//! Guarantees:
//! - [`of_report`] and [`Tally::add`] apply the same rules to one report: a tally
//!   rebuilt from the sums of the figures ([`apply`]) equals the tally of the records
//!   (tested here and, end to end, against real SQLite and PostgreSQL in
//!   operator/tests/db_figures.rs). Two differences, both bounded: a breakdown past its
//!   bound keeps the largest keys rather than the first ones met; and counts above
//!   2^31 - 1 in one report are cut there, as parsedmarc's INT columns cut them.
//! - One row per (report, domain, figure, keys): the sums of a window are exact for
//!   any window, to the second, since every row carries its report's end time.

use std::collections::HashMap;

mod apply;
pub use apply::apply;

use crate::aggregate::{mx_key, policy_type, shares};
use crate::record::Report;

/// The kinds of figure rows, as stored in `tlsrpt_figure.figure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Name {
    Domain,
    Type,
    TypeResult,
    Result,
    Mx,
    MxIp,
    Reason,
    Uri,
    SendingIp,
    ReceivingMx,
    ReceivingIp,
    StsPolicy,
}

impl Name {
    pub const ALL: [Name; 12] = [
        Name::Domain,
        Name::Type,
        Name::TypeResult,
        Name::Result,
        Name::Mx,
        Name::MxIp,
        Name::Reason,
        Name::Uri,
        Name::SendingIp,
        Name::ReceivingMx,
        Name::ReceivingIp,
        Name::StsPolicy,
    ];

    /// The figures whose all-time sums `metrics --db` exports as counters, and which
    /// `prune --db` carries into `tlsrpt_figure_pruned` before it deletes their reports.
    pub const COUNTERS: [Name; 4] = [Name::Domain, Name::Type, Name::TypeResult, Name::Result];

    /// The figures of which a summary keeps the largest few per key, not every group.
    pub const RANKED: [Name; 2] = [Name::MxIp, Name::SendingIp];

    pub fn as_str(self) -> &'static str {
        match self {
            Name::Domain => "domain",
            Name::Type => "type",
            Name::TypeResult => "type_result",
            Name::Result => "result",
            Name::Mx => "mx",
            Name::MxIp => "mx_ip",
            Name::Reason => "reason",
            Name::Uri => "uri",
            Name::SendingIp => "sending_ip",
            Name::ReceivingMx => "receiving_mx",
            Name::ReceivingIp => "receiving_ip",
            Name::StsPolicy => "sts_policy",
        }
    }

    pub fn parse(s: &str) -> Option<Name> {
        Name::ALL.into_iter().find(|n| n.as_str() == s)
    }

    /// `('a', 'b')`, for SQL: the names are constants of this program, never input.
    pub fn sql_list(names: &[Name]) -> String {
        let v: Vec<String> = names.iter().map(|n| format!("'{}'", n.as_str())).collect();
        format!("({})", v.join(", "))
    }
}

/// One figure of one report and domain (or, read back, the sum of a group of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Figure {
    /// The domain's sessions by the counting rule: `policy_type` is the counted type;
    /// `sts_policy` the report's one `sts` policy-string for the domain, when it had
    /// exactly one (otherwise [`Figure::StsPolicy`] rows).
    Domain {
        organization: String,
        policy_type: String,
        sts_policy: Option<String>,
        successful: u64,
        failed: u64,
    },
    /// A type's own sessions, for the types not counted (the counted type's are the
    /// Domain row's).
    Type {
        policy_type: String,
        successful: u64,
        failed: u64,
    },
    /// A type's failed sessions of one result type (`None`: without a detail row), for
    /// the types not counted.
    TypeResult {
        policy_type: String,
        result_type: Option<String>,
        failed: u64,
    },
    /// The counted type's failed sessions of one result type (`None`: without a detail
    /// row), by organisation.
    Result {
        result_type: Option<String>,
        organization: String,
        policy_type: String,
        failed: u64,
    },
    /// ... at one receiving MX host (lower case, `(none)`).
    Mx {
        result_type: String,
        mx_host: String,
        failed: u64,
    },
    /// ... from one sending MTA at one MX host.
    MxIp {
        result_type: String,
        mx_host: String,
        ip: String,
        failed: u64,
    },
    /// ... with one failure-reason-code (`(none)`).
    Reason {
        result_type: String,
        reason: String,
        failed: u64,
    },
    /// An additional-information URI of a result type.
    Uri { result_type: String, uri: String },
    /// Failed sessions from one sending MTA.
    SendingIp { ip: String, failed: u64 },
    /// Failed sessions at one receiving MX host as written (dots trimmed, lower case).
    ReceivingMx { mx_host: String, failed: u64 },
    /// Failed sessions at one receiving IP.
    ReceivingIp { ip: String, failed: u64 },
    /// An `sts` policy-string (its trimmed lines as a JSON array) of a report that
    /// carried several for the domain.
    StsPolicy {
        sts_policy: String,
        organization: String,
    },
}

/// The named columns of `tlsrpt_figure` a figure fills (beside the report's times,
/// trust and domain, which the store adds), in the tables' column order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Row {
    pub figure: Option<Name>,
    pub organization: Option<String>,
    pub policy_type: Option<String>,
    pub result_type: Option<String>,
    pub mx_host: Option<String>,
    pub ip: Option<String>,
    pub reason: Option<String>,
    pub uri: Option<String>,
    pub sts_policy: Option<String>,
    pub successful: i64,
    pub failed: i64,
}

/// The key columns, in the order the SQL of both stores names them.
pub const KEYS: &str =
    "figure, organization, policy_type, result_type, mx_host, ip, reason, uri, sts_policy";

/// A count as stored: at most 2^31 - 1, as parsedmarc's INT columns.
fn count(n: u64) -> i64 {
    n.min(i32::MAX as u64) as i64
}

fn n(v: i64) -> u64 {
    v.max(0) as u64
}

impl Figure {
    pub fn name(&self) -> Name {
        match self {
            Figure::Domain { .. } => Name::Domain,
            Figure::Type { .. } => Name::Type,
            Figure::TypeResult { .. } => Name::TypeResult,
            Figure::Result { .. } => Name::Result,
            Figure::Mx { .. } => Name::Mx,
            Figure::MxIp { .. } => Name::MxIp,
            Figure::Reason { .. } => Name::Reason,
            Figure::Uri { .. } => Name::Uri,
            Figure::SendingIp { .. } => Name::SendingIp,
            Figure::ReceivingMx { .. } => Name::ReceivingMx,
            Figure::ReceivingIp { .. } => Name::ReceivingIp,
            Figure::StsPolicy { .. } => Name::StsPolicy,
        }
    }

    /// The row that stores this figure (the one place figures become columns).
    pub fn row(&self) -> Row {
        let s = |v: &String| Some(v.clone());
        let mut r = Row {
            figure: Some(self.name()),
            ..Row::default()
        };
        match self {
            Figure::Domain {
                organization,
                policy_type,
                sts_policy,
                successful,
                failed,
            } => {
                r.organization = s(organization);
                r.policy_type = s(policy_type);
                r.sts_policy = sts_policy.clone();
                r.successful = count(*successful);
                r.failed = count(*failed);
            }
            Figure::Type {
                policy_type,
                successful,
                failed,
            } => {
                r.policy_type = s(policy_type);
                r.successful = count(*successful);
                r.failed = count(*failed);
            }
            Figure::TypeResult {
                policy_type,
                result_type,
                failed,
            } => {
                r.policy_type = s(policy_type);
                r.result_type = result_type.clone();
                r.failed = count(*failed);
            }
            Figure::Result {
                result_type,
                organization,
                policy_type,
                failed,
            } => {
                r.result_type = result_type.clone();
                r.organization = s(organization);
                r.policy_type = s(policy_type);
                r.failed = count(*failed);
            }
            Figure::Mx {
                result_type,
                mx_host,
                failed,
            } => {
                r.result_type = s(result_type);
                r.mx_host = s(mx_host);
                r.failed = count(*failed);
            }
            Figure::MxIp {
                result_type,
                mx_host,
                ip,
                failed,
            } => {
                r.result_type = s(result_type);
                r.mx_host = s(mx_host);
                r.ip = s(ip);
                r.failed = count(*failed);
            }
            Figure::Reason {
                result_type,
                reason,
                failed,
            } => {
                r.result_type = s(result_type);
                r.reason = s(reason);
                r.failed = count(*failed);
            }
            Figure::Uri { result_type, uri } => {
                r.result_type = s(result_type);
                r.uri = s(uri);
            }
            Figure::SendingIp { ip, failed } => {
                r.ip = s(ip);
                r.failed = count(*failed);
            }
            Figure::ReceivingMx { mx_host, failed } => {
                r.mx_host = s(mx_host);
                r.failed = count(*failed);
            }
            Figure::ReceivingIp { ip, failed } => {
                r.ip = s(ip);
                r.failed = count(*failed);
            }
            Figure::StsPolicy {
                sts_policy,
                organization,
            } => {
                r.sts_policy = s(sts_policy);
                r.organization = s(organization);
            }
        }
        r
    }

    /// The figure a row (or a sum of rows) holds; `None` for a row of another program
    /// or a figure this program does not know.
    pub fn from_row(r: Row) -> Option<Figure> {
        let req = |v: Option<String>| v.unwrap_or_default();
        Some(match r.figure? {
            Name::Domain => Figure::Domain {
                organization: req(r.organization),
                policy_type: req(r.policy_type),
                sts_policy: r.sts_policy,
                successful: n(r.successful),
                failed: n(r.failed),
            },
            Name::Type => Figure::Type {
                policy_type: req(r.policy_type),
                successful: n(r.successful),
                failed: n(r.failed),
            },
            Name::TypeResult => Figure::TypeResult {
                policy_type: req(r.policy_type),
                result_type: r.result_type,
                failed: n(r.failed),
            },
            Name::Result => Figure::Result {
                result_type: r.result_type,
                organization: req(r.organization),
                policy_type: req(r.policy_type),
                failed: n(r.failed),
            },
            Name::Mx => Figure::Mx {
                result_type: req(r.result_type),
                mx_host: req(r.mx_host),
                failed: n(r.failed),
            },
            Name::MxIp => Figure::MxIp {
                result_type: req(r.result_type),
                mx_host: req(r.mx_host),
                ip: req(r.ip),
                failed: n(r.failed),
            },
            Name::Reason => Figure::Reason {
                result_type: req(r.result_type),
                reason: req(r.reason),
                failed: n(r.failed),
            },
            Name::Uri => Figure::Uri {
                result_type: req(r.result_type),
                uri: req(r.uri),
            },
            Name::SendingIp => Figure::SendingIp {
                ip: req(r.ip),
                failed: n(r.failed),
            },
            Name::ReceivingMx => Figure::ReceivingMx {
                mx_host: req(r.mx_host),
                failed: n(r.failed),
            },
            Name::ReceivingIp => Figure::ReceivingIp {
                ip: req(r.ip),
                failed: n(r.failed),
            },
            Name::StsPolicy => Figure::StsPolicy {
                sts_policy: req(r.sts_policy),
                organization: req(r.organization),
            },
        })
    }
}

/// A report's figures in one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainFigure {
    pub domain: String,
    pub figure: Figure,
}

/// Sums figures of equal keys within one report, so each (domain, figure, keys) is
/// one row.
#[derive(Default)]
struct Sums {
    out: Vec<(String, Row)>,
    index: HashMap<(String, Row), usize>,
}

impl Sums {
    fn add(&mut self, domain: &str, f: Figure) {
        let mut row = f.row();
        let (s, fl) = (row.successful, row.failed);
        row.successful = 0;
        row.failed = 0;
        let key = (domain.to_owned(), row);
        match self.index.get(&key) {
            Some(&i) => {
                let r = &mut self.out[i].1;
                r.successful = count(n(r.successful).saturating_add(n(s)));
                r.failed = count(n(r.failed).saturating_add(n(fl)));
            }
            None => {
                self.index.insert(key.clone(), self.out.len());
                let (d, mut r) = key;
                r.successful = s;
                r.failed = fl;
                self.out.push((d, r));
            }
        }
    }
}

/// The figures of one report: each (domain, figure, keys) once, counts summed within
/// the report.
pub fn of_report(report: &Report) -> Vec<DomainFigure> {
    let org = report
        .organization_name
        .as_deref()
        .unwrap_or("(unknown)")
        .to_owned();
    let mut sums = Sums::default();
    for share in shares(report) {
        let d = share.domain.as_str();
        // The sts policy-strings the report carried for the domain, each once.
        let mut strings: Vec<String> = Vec::new();
        for p in share.policies.iter().filter(|p| policy_type(p) == "sts") {
            if p.policy.policy_string.is_empty() {
                continue;
            }
            let lines: Vec<&str> = p.policy.policy_string.iter().map(|l| l.trim()).collect();
            let key = serde_json::to_string(&lines).expect("strings");
            if !strings.contains(&key) {
                strings.push(key);
            }
        }
        let one_string = (strings.len() == 1).then(|| strings[0].clone());
        sums.add(
            d,
            Figure::Domain {
                organization: org.clone(),
                policy_type: share.counted_type.clone(),
                sts_policy: one_string.clone(),
                successful: share.successful,
                failed: share.failed,
            },
        );
        if one_string.is_none() {
            for s in strings {
                sums.add(
                    d,
                    Figure::StsPolicy {
                        sts_policy: s,
                        organization: org.clone(),
                    },
                );
            }
        }
        for p in share.counted() {
            let mut detailed = 0u64;
            for fd in &p.failure_details {
                let t = fd.result_type.as_deref().unwrap_or("(none)").to_owned();
                let n = fd.failed_session_count;
                detailed = detailed.saturating_add(n);
                sums.add(
                    d,
                    Figure::Result {
                        result_type: Some(t.clone()),
                        organization: org.clone(),
                        policy_type: share.counted_type.clone(),
                        failed: n,
                    },
                );
                let mx = mx_key(fd.receiving_mx_hostname.as_deref());
                if let Some(ip) = fd.sending_mta_ip.as_deref() {
                    sums.add(
                        d,
                        Figure::MxIp {
                            result_type: t.clone(),
                            mx_host: mx.clone(),
                            ip: ip.to_owned(),
                            failed: n,
                        },
                    );
                    sums.add(
                        d,
                        Figure::SendingIp {
                            ip: ip.to_owned(),
                            failed: n,
                        },
                    );
                }
                sums.add(
                    d,
                    Figure::Mx {
                        result_type: t.clone(),
                        mx_host: mx,
                        failed: n,
                    },
                );
                sums.add(
                    d,
                    Figure::Reason {
                        result_type: t.clone(),
                        reason: fd
                            .failure_reason_code
                            .as_deref()
                            .unwrap_or("(none)")
                            .to_owned(),
                        failed: n,
                    },
                );
                if let Some(u) = fd.additional_information.as_deref() {
                    sums.add(
                        d,
                        Figure::Uri {
                            result_type: t.clone(),
                            uri: u.to_owned(),
                        },
                    );
                }
                if let Some(mx) = fd.receiving_mx_hostname.as_deref() {
                    sums.add(
                        d,
                        Figure::ReceivingMx {
                            mx_host: mx.trim_end_matches('.').to_ascii_lowercase(),
                            failed: n,
                        },
                    );
                }
                if let Some(ip) = fd.receiving_ip.as_deref() {
                    sums.add(
                        d,
                        Figure::ReceivingIp {
                            ip: ip.to_owned(),
                            failed: n,
                        },
                    );
                }
            }
            if p.summary.failed > detailed {
                sums.add(
                    d,
                    Figure::Result {
                        result_type: None,
                        organization: org.clone(),
                        policy_type: share.counted_type.clone(),
                        failed: p.summary.failed - detailed,
                    },
                );
            }
        }
        // The types not counted: their own figures.
        for p in &share.policies {
            let t = policy_type(p);
            if t == share.counted_type {
                continue;
            }
            sums.add(
                d,
                Figure::Type {
                    policy_type: t.to_owned(),
                    successful: p.summary.successful,
                    failed: p.summary.failed,
                },
            );
            let mut detailed = 0u64;
            for fd in &p.failure_details {
                detailed = detailed.saturating_add(fd.failed_session_count);
                sums.add(
                    d,
                    Figure::TypeResult {
                        policy_type: t.to_owned(),
                        result_type: Some(fd.result_type.as_deref().unwrap_or("(none)").to_owned()),
                        failed: fd.failed_session_count,
                    },
                );
            }
            if p.summary.failed > detailed {
                sums.add(
                    d,
                    Figure::TypeResult {
                        policy_type: t.to_owned(),
                        result_type: None,
                        failed: p.summary.failed - detailed,
                    },
                );
            }
        }
    }
    sums.out
        .into_iter()
        .filter_map(|(domain, row)| {
            Figure::from_row(row).map(|figure| DomainFigure { domain, figure })
        })
        .collect()
}

/// A sum of figures from the database: one group of (window, counted, domain, figure,
/// keys), for Domain figures of the current window also of one UTC day (`day`).
#[derive(Debug, Clone)]
pub struct Group {
    /// In the current window (otherwise the previous one: sessions only).
    pub current: bool,
    /// Counted (authenticated by the delivery or the trust given, or everything).
    pub counted: bool,
    pub domain: String,
    /// `None` for a day-only group (PostgreSQL's second grouping set).
    pub figure: Option<Figure>,
    /// The UTC day (its start) of a current window's Domain group.
    pub day: Option<i64>,
    /// Rows summed: for one-per-report figures, the number of reports.
    pub rows: u64,
    /// The group's sums (also of a day-only group).
    pub successful: u64,
    pub failed: u64,
    /// Earliest and latest report start.
    pub first: i64,
    pub last: i64,
}

/// An all-time (or history) sum of figures: `metrics --db`, `check --db`.
#[derive(Debug, Clone)]
pub struct Total {
    pub counted: bool,
    pub domain: String,
    pub figure: Figure,
    /// For history rows: the UTC day (its start) of the reports' start.
    pub day: Option<i64>,
    pub rows: u64,
    pub last_end: i64,
    pub last_received: Option<i64>,
}

/// What the database is asked for.
#[derive(Debug, Clone)]
pub struct Query {
    /// Start of the previous window (exclusive), then the current window's bounds.
    pub previous_since: i64,
    pub since: i64,
    pub until: i64,
    /// Domain keys (aggregate::domain_key); empty means every domain.
    pub domains: Vec<String>,
    /// Every report counts (--include-unauthenticated).
    pub everything: bool,
    /// The `trust_needs` values the operator's trust covers (crate::trust).
    pub covered: Vec<String>,
    /// (index, of): only the domains of this share, when the work is split over `of`
    /// connections (PostgreSQL, by a hash of the domain: every group of a domain comes
    /// through one of them). SQLite reads with one.
    pub share: (u32, u32),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_figure_round_trips_through_its_row() {
        let line = r#"{"version":3,"authentication":{"verdict":"pass"},"report":{"organization-name":"Microsoft","date-range":{"start-datetime":"2026-03-01T00:00:00Z","end-datetime":"2026-03-01T23:59:59Z"},
            "policies":[
             {"policy":{"policy-type":"sts","policy-domain":"Example.com","policy-string":["version: STSv1","mode: enforce"]},"summary":{"total-successful-session-count":10,"total-failure-session-count":3},
              "failure-details":[{"result-type":"certificate-expired","sending-mta-ip":"192.0.2.1","receiving-mx-hostname":"MX.example.com.","receiving-ip":"198.51.100.1","failed-session-count":2,"failure-reason-code":"X509_V_ERR","additional-information":"https://x"}]},
             {"policy":{"policy-type":"tlsa","policy-domain":"example.com"},"summary":{"total-successful-session-count":10,"total-failure-session-count":3},
              "failure-details":[{"result-type":"dane-required","failed-session-count":3}]}]}}"#;
        let p = crate::record::parse(line).unwrap();
        let figs = of_report(&p.record.report);
        for f in &figs {
            assert_eq!(Figure::from_row(f.figure.row()).as_ref(), Some(&f.figure));
        }
        let names: Vec<Name> = figs.iter().map(|f| f.figure.name()).collect();
        for n in Name::ALL {
            if n != Name::StsPolicy {
                assert!(names.contains(&n), "{n:?} in {names:?}");
            }
        }
        // sts counted (13 sessions, tie on sessions, sts first): failures of 1 not
        // detailed, as a Result without a result type; tlsa as a type of its own.
        assert!(figs.iter().any(|f| f.figure
            == Figure::Domain {
                organization: "Microsoft".into(),
                policy_type: "sts".into(),
                sts_policy: Some(r#"["version: STSv1","mode: enforce"]"#.into()),
                successful: 10,
                failed: 3
            }));
        assert!(figs.iter().any(|f| f.figure
            == Figure::Result {
                result_type: None,
                organization: "Microsoft".into(),
                policy_type: "sts".into(),
                failed: 1
            }));
        assert!(figs.iter().any(|f| f.figure
            == Figure::TypeResult {
                policy_type: "tlsa".into(),
                result_type: Some("dane-required".into()),
                failed: 3
            }));
        assert_eq!(Name::sql_list(&Name::RANKED), "('mx_ip', 'sending_ip')");
    }
}
