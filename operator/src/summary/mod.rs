//! `tlsrpt summary`: spools → per-domain figures → one document, rendered as a table,
//! JSON (schema/summary.schema.json), CSV or self-contained HTML, or mailed as a digest.
//!
//! The [`Doc`] built here is the single source of every format, so they cannot disagree.
//! `collect.rs` gathers the figures it is built from (spools, or a database).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Serialize;

use crate::advice;
use crate::aggregate::{DaySeries, DomainStats, LeftOutStats, Sessions, Summary, Tally};
use crate::spool::Skipped;
use crate::trust::{LeftOut, Trust};
use crate::window::{Window, rfc3339, utc_day};

/// How many sending IPs a domain lists.
mod collect;
pub use collect::{collect, collect_db, spool_contents};

pub const TOP_SENDING_IPS: usize = 10;
/// How many failure-reason-codes a result type lists before summing the rest.
pub const TOP_REASONS: usize = 5;

#[derive(Debug, Serialize)]
pub struct Doc {
    pub window: WindowDoc,
    pub domains: Vec<DomainDoc>,
    pub unauthenticated: UnauthDoc,
    #[serde(rename = "duplicates")]
    pub duplicates: u64,
    #[serde(rename = "skipped-lines")]
    pub skipped_lines: u64,
    #[serde(rename = "unreadable-files")]
    pub unreadable_files: u64,
    pub spools: Vec<String>,
    /// When the window holds no report: what the spools hold instead.
    #[serde(rename = "empty-window", skip_serializing_if = "Option::is_none")]
    pub empty_window: Option<EmptyWindow>,
    /// Messages the delivery set aside as unreadable in the window (their reports are
    /// in no figure above): `tlsrpt quarantine list`.
    pub quarantined: u64,
    /// `summary --watch-state DIR`: what `tlsrpt watch` last found (crate::watch).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<WatchRunDoc>,
}

/// The watch's last run, as the summary shows it.
#[derive(Debug, Serialize)]
pub struct WatchRunDoc {
    #[serde(rename = "last-run", skip_serializing_if = "Option::is_none")]
    pub last_run: Option<String>,
    /// Why what it says may not be current or complete (stale, unreadable, no run).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// What `tlsrpt watch` last found at a domain, and what changed inside the window.
#[derive(Debug, Serialize)]
pub struct DomainWatchDoc {
    #[serde(rename = "checked-at")]
    pub checked_at: String,
    /// check-domain's exit status for the domain: 0 ok, 1 warnings, 2 errors, 3 could
    /// not check.
    pub status: u8,
    pub findings: Vec<crate::watch::history::Stored>,
    pub changes: Vec<crate::watch::history::Change>,
}

/// What the spools hold when the window holds nothing.
#[derive(Debug, Serialize)]
pub struct EmptyWindow {
    /// Records in the spools, whatever their date.
    #[serde(rename = "spool-reports")]
    pub spool_reports: u64,
    /// The latest end of a date-range among them.
    #[serde(rename = "latest-end", skip_serializing_if = "Option::is_none")]
    pub latest_end: Option<String>,
    /// A `--since` that would include the latest report (when it ended before the window).
    #[serde(rename = "suggested-since", skip_serializing_if = "Option::is_none")]
    pub suggested_since: Option<String>,
    /// An `--until` that would include it (when it ended after the window).
    #[serde(rename = "suggested-until", skip_serializing_if = "Option::is_none")]
    pub suggested_until: Option<String>,
}

impl EmptyWindow {
    pub fn text(&self) -> String {
        let n = format!(
            "{} report{}",
            self.spool_reports,
            if self.spool_reports == 1 { "" } else { "s" }
        );
        match (&self.latest_end, &self.suggested_since, &self.suggested_until) {
            (Some(end), Some(since), _) => format!(
                "The spools hold {n}; the latest ended {end}: widen the window, e.g. --since {since}."
            ),
            (Some(end), None, Some(until)) => format!(
                "The spools hold {n}; the latest ended {end}, after this window: move it, e.g. --until {until}."
            ),
            _ => "The spools hold no report yet: check that the MTA delivers to tlsrpt-pipe (its syslog lines) and that the domain publishes a TLSRPT record (tlsrpt check-record DOMAIN).".into(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct WindowDoc {
    pub since: String,
    pub until: String,
    /// Days per entry of the domains' `daily` series (1 up to 100 days; then 7, 30,
    /// 91, 365: at most 100 entries).
    #[serde(rename = "series-days")]
    pub series_days: i64,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq)]
pub struct SessionsDoc {
    pub reports: u64,
    #[serde(rename = "successful-sessions")]
    pub successful: u64,
    #[serde(rename = "failed-sessions")]
    pub failed: u64,
    #[serde(rename = "failure-rate")]
    pub failure_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct TypeDoc {
    #[serde(flatten)]
    pub sessions: SessionsDoc,
    #[serde(rename = "result-types")]
    pub result_types: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct ResultDoc {
    #[serde(rename = "result-type")]
    pub result_type: String,
    #[serde(rename = "failed-sessions")]
    pub failed: u64,
    pub reports: u64,
    #[serde(rename = "first-seen")]
    pub first_seen: String,
    #[serde(rename = "last-seen")]
    pub last_seen: String,
    pub meaning: &'static str,
    pub check: &'static str,
    /// The receiving MX hosts of these failures, most failed sessions first.
    #[serde(rename = "mx-hosts")]
    pub mx_hosts: Vec<MxDoc>,
    /// failure-reason-codes, most sessions first: the top `TOP_REASONS`, the rest summed.
    pub reasons: Vec<ReasonDoc>,
    /// The organisations that reported it, most failed sessions first.
    pub organizations: Vec<String>,
    /// additional-information URIs the senders gave.
    #[serde(
        rename = "additional-information",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub additional_information: Vec<String>,
    /// Whether it still fails (`summary --probe`): the worst of its MX hosts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveDoc>,
}

/// A receiving MX host of one result type.
#[derive(Debug, Serialize)]
pub struct MxDoc {
    pub host: String,
    #[serde(rename = "failed-sessions")]
    pub failed: u64,
    /// The first sending MTAs that reported it there (at most 3, most sessions first).
    #[serde(rename = "sending-ips")]
    pub sending_ips: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveDoc>,
}

#[derive(Debug, Serialize)]
pub struct ReasonDoc {
    #[serde(rename = "failure-reason-code")]
    pub code: String,
    #[serde(rename = "failed-sessions")]
    pub failed: u64,
}

/// What a live probe says about a failure now.
#[derive(Debug, Clone, Serialize)]
pub struct LiveDoc {
    /// `still-failing`, `not-reproduced` or `not-probed`.
    pub verdict: &'static str,
    pub evidence: String,
    #[serde(rename = "checked-at", skip_serializing_if = "Option::is_none")]
    pub checked_at: Option<String>,
}

/// An `sts` policy-string the reports carried.
#[derive(Debug, Serialize)]
pub struct PolicyStringDoc {
    #[serde(rename = "policy-string")]
    pub policy_string: Vec<String>,
    pub reports: u64,
    pub organizations: Vec<String>,
    #[serde(rename = "first-seen")]
    pub first_seen: String,
    #[serde(rename = "last-seen")]
    pub last_seen: String,
}

/// What `summary --probe` found for a domain now (check-domain's findings for the MX
/// hosts the reports named, and policy-strings that differ from the live policy).
#[derive(Debug, Serialize)]
pub struct DomainLiveDoc {
    #[serde(rename = "checked-at")]
    pub checked_at: String,
    pub findings: Vec<crate::check_domain::Found>,
}

#[derive(Debug, Serialize)]
pub struct IpDoc {
    pub ip: String,
    #[serde(rename = "failed-sessions")]
    pub failed: u64,
}

/// A UTC day, kept as its start time (8 bytes, not a string: a year of 1,000 domains
/// has 365,000 of them) and written as `YYYY-MM-DD`.
#[derive(Debug, Clone, Copy)]
pub struct Day(pub i64);

impl Serialize for Day {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&utc_day(self.0))
    }
}

impl std::fmt::Display for Day {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&utc_day(self.0))
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub struct DayDoc {
    /// The day, or the first day of a bucket of several (`series-days` of the window).
    pub day: Day,
    #[serde(rename = "successful-sessions")]
    pub successful: u64,
    #[serde(rename = "failed-sessions")]
    pub failed: u64,
}

/// Most entries of a series: a long window is shown in buckets of several days.
pub const MAX_SERIES: i64 = 100;

/// Days per entry of a window's series: 1 for up to 100 days, then a week, a month (30
/// days), a quarter (91), a year (365): at most [`MAX_SERIES`] entries per domain, so a
/// summary of ten years (JSON, HTML, the digest) is as small as one of three months.
pub fn bucket_days(window_days: i64) -> i64 {
    [1, 7, 30, 91, 365]
        .into_iter()
        .find(|b| (window_days + b - 1) / b <= MAX_SERIES)
        .unwrap_or(365)
}

/// Every day (or bucket of days) of the window with its (successful, failed)
/// sessions, those without a report as zeros; written as a list of [`DayDoc`]. Held as
/// the tally's sparse series (moved, not copied): a year of 1,000 domains, and as many
/// unauthenticated ones, would otherwise be 730,000 dense days.
#[derive(Debug, Clone, Default)]
pub struct Daily {
    /// The first day's start (Unix seconds).
    pub first: i64,
    /// Entries (buckets) in the window.
    pub count: usize,
    /// Days per entry.
    pub bucket: i64,
    pub series: DaySeries,
}

impl Daily {
    pub fn iter(&self) -> impl Iterator<Item = DayDoc> + '_ {
        let bucket = self.bucket.max(1);
        (0..self.count).map(move |i| {
            let day = self.first + i as i64 * bucket * 86_400;
            let (s, f) = if bucket == 1 {
                self.series.get(day).unwrap_or((0, 0))
            } else {
                self.series.sum(day, day + bucket * 86_400)
            };
            DayDoc {
                day: Day(day),
                successful: s,
                failed: f,
            }
        })
    }
}

impl Serialize for Daily {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_seq(self.iter())
    }
}

#[derive(Debug, Serialize)]
pub struct PreviousDoc {
    #[serde(flatten)]
    pub sessions: SessionsDoc,
    /// Current minus previous.
    pub change: ChangeDoc,
}

#[derive(Debug, Serialize)]
pub struct ChangeDoc {
    pub reports: i64,
    #[serde(rename = "successful-sessions")]
    pub successful: i64,
    #[serde(rename = "failed-sessions")]
    pub failed: i64,
    #[serde(rename = "failure-rate")]
    pub failure_rate: f64,
}

#[derive(Debug, Serialize)]
pub struct DomainDoc {
    #[serde(rename = "policy-domain")]
    pub policy_domain: String,
    #[serde(flatten)]
    pub sessions: SessionsDoc,
    #[serde(rename = "policy-types")]
    pub policy_types: BTreeMap<String, TypeDoc>,
    #[serde(rename = "result-types")]
    pub result_types: BTreeMap<String, u64>,
    /// Per result type present: counts, first and last report start, what it means and
    /// what to check first.
    pub advice: Vec<ResultDoc>,
    pub organizations: BTreeMap<String, SessionsDoc>,
    #[serde(rename = "receiving-mx")]
    pub receiving_mx: BTreeMap<String, u64>,
    #[serde(rename = "receiving-ips")]
    pub receiving_ips: BTreeMap<String, u64>,
    #[serde(rename = "sending-ips")]
    pub sending_ips: Vec<IpDoc>,
    pub daily: Daily,
    pub previous: PreviousDoc,
    /// The `sts` policy-strings the reports carried (what each sender applied).
    #[serde(rename = "sts-policies", skip_serializing_if = "Vec::is_empty")]
    pub sts_policies: Vec<PolicyStringDoc>,
    /// `summary --probe`: the domain checked live.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<DomainLiveDoc>,
    /// `summary --watch-state`: what the watch last found here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watch: Option<DomainWatchDoc>,
    /// With --include-unauthenticated: how many of the reports counted here have no
    /// trusted DKIM pass.
    #[serde(rename = "unauthenticated-reports", skip_serializing_if = "is_zero")]
    pub unauthenticated_reports: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Serialize)]
pub struct UnauthDoc {
    /// `true` with --include-unauthenticated: then they are counted in `domains` and
    /// this block is empty.
    pub included: bool,
    #[serde(flatten)]
    pub sessions: SessionsDoc,
    pub domains: Vec<DomainDoc>,
    /// Why they were left out, and what would make them count.
    pub why: Vec<LeftOutDoc>,
}

/// Reports of the window left out for want of trust, of one kind.
#[derive(Debug, Serialize)]
pub struct LeftOutDoc {
    /// `needs-trust` (trusting `authserv-ids` makes them count), `https` (no DKIM over
    /// HTTPS), or `no-trusted-pass` (nothing would).
    pub kind: &'static str,
    #[serde(rename = "authserv-ids", skip_serializing_if = "Vec::is_empty")]
    pub authserv_ids: Vec<String>,
    pub reports: u64,
    pub successful: u64,
    pub failed: u64,
    /// What to do: the option to add, or why no option helps.
    pub fix: String,
}

impl LeftOutDoc {
    /// One line: "3 reports with 30 failed sessions carry dkim=pass from
    /// mx.example.com: add --trusted-authserv-id mx.example.com".
    pub fn line(&self) -> String {
        let what = format!(
            "{} {} with {} failed of {} sessions",
            self.reports,
            if self.reports == 1 {
                "report"
            } else {
                "reports"
            },
            self.failed,
            self.successful.saturating_add(self.failed)
        );
        match self.kind {
            "needs-trust" => format!(
                "{what} {} dkim=pass from {}: add {} (to tlsrpt-pipe too, for its alerts)",
                if self.reports == 1 {
                    "carries"
                } else {
                    "carry"
                },
                crate::probe::shown(&self.authserv_ids.join(", "), 300),
                crate::probe::shown(&self.fix, 600)
            ),
            "https" => format!("{what} came by HTTPS: {}", self.fix),
            _ => format!("{what}: {}", self.fix),
        }
    }
}

/// The left-out reports as documents, most failures first.
pub fn left_out_docs(left: &BTreeMap<LeftOut, LeftOutStats>) -> Vec<LeftOutDoc> {
    let mut v: Vec<LeftOutDoc> = left
        .iter()
        .map(|(k, st)| LeftOutDoc {
            kind: match k {
                LeftOut::Needs(_) => "needs-trust",
                LeftOut::Https => "https",
                LeftOut::Nothing => "no-trusted-pass",
            },
            authserv_ids: match k {
                LeftOut::Needs(ids) => ids.split(' ').map(str::to_owned).collect(),
                _ => Vec::new(),
            },
            reports: st.reports,
            successful: st.successful,
            failed: st.failed,
            fix: Trust::advice(k),
        })
        .collect();
    v.sort_by(|a, b| b.failed.cmp(&a.failed).then(b.reports.cmp(&a.reports)));
    v
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

fn sessions_doc(s: &Sessions) -> SessionsDoc {
    SessionsDoc {
        reports: s.reports,
        successful: s.successful,
        failed: s.failed,
        failure_rate: round6(s.failure_rate()),
    }
}

fn domain_doc(
    name: &str,
    mut d: DomainStats,
    prev: Option<&DomainStats>,
    window: &Window,
) -> DomainDoc {
    let mut ips: Vec<(String, u64)> = d
        .sending_ip
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    ips.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let p = prev.map(|p| p.sessions).unwrap_or_default();
    let cur = sessions_doc(&d.sessions);
    let pd = sessions_doc(&p);
    // Every day (or bucket) of the window, so a chart shows gaps as gaps.
    let first = window.since.div_euclid(86_400) * 86_400;
    let days = ((window.until - first + 86_399) / 86_400).clamp(0, 1_000_000);
    let bucket = bucket_days(days);
    let daily = Daily {
        first,
        count: ((days + bucket - 1) / bucket) as usize,
        bucket,
        series: std::mem::take(&mut d.daily),
    };
    let mut advice_rows: Vec<ResultDoc> = d
        .result_types
        .iter()
        .map(|(t, r)| {
            let (meaning, check) = advice::for_result_type(t);
            let mut mx: Vec<MxDoc> =
                r.mx.iter()
                    .map(|(host, m)| {
                        let mut ips: Vec<(String, u64)> = m
                            .sending_ips
                            .iter()
                            .map(|(ip, n)| (ip.to_string(), *n))
                            .collect();
                        ips.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
                        MxDoc {
                            host: host.to_string(),
                            failed: m.failed,
                            sending_ips: ips.into_iter().map(|(ip, _)| ip).collect(),
                            live: None,
                        }
                    })
                    .collect();
            mx.sort_by(|a, b| b.failed.cmp(&a.failed).then(a.host.cmp(&b.host)));
            let mut reasons: Vec<(&str, u64)> =
                r.reasons.0.iter().map(|(k, v)| (&**k, *v)).collect();
            reasons.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            let rest: u64 = reasons.iter().skip(TOP_REASONS).map(|(_, n)| *n).sum();
            let others = reasons.len().saturating_sub(TOP_REASONS);
            let mut reasons: Vec<ReasonDoc> = reasons
                .into_iter()
                .take(TOP_REASONS)
                .map(|(c, n)| ReasonDoc {
                    code: c.to_owned(),
                    failed: n,
                })
                .collect();
            if others > 0 {
                reasons.push(ReasonDoc {
                    code: format!("({others} other codes)"),
                    failed: rest,
                });
            }
            let mut orgs: Vec<(&str, u64)> =
                r.organizations.0.iter().map(|(k, v)| (&**k, *v)).collect();
            orgs.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            ResultDoc {
                result_type: t.clone(),
                failed: r.failed,
                reports: r.reports,
                first_seen: rfc3339(r.first_seen),
                last_seen: rfc3339(r.last_seen),
                meaning,
                check,
                mx_hosts: mx,
                reasons,
                organizations: orgs.into_iter().map(|(o, _)| o.to_owned()).collect(),
                additional_information: {
                    // Sorted: the spool path keeps the first met, the database any
                    // (both at most MAX_URIS); the order says nothing.
                    let mut u: Vec<String> = r.info_uris.iter().map(|u| u.to_string()).collect();
                    u.sort();
                    u
                },
                live: None,
            }
        })
        .collect();
    advice_rows.sort_by(|a, b| {
        b.failed
            .cmp(&a.failed)
            .then(a.result_type.cmp(&b.result_type))
    });
    DomainDoc {
        policy_domain: name.to_owned(),
        sessions: cur,
        policy_types: d
            .policy_types
            .iter()
            .map(|(t, s)| {
                (
                    t.clone(),
                    TypeDoc {
                        sessions: sessions_doc(&s.sessions),
                        result_types: s.result_types.clone(),
                    },
                )
            })
            .collect(),
        result_types: d
            .result_types
            .iter()
            .map(|(t, r)| (t.clone(), r.failed))
            .collect(),
        advice: advice_rows,
        organizations: d
            .organizations
            .iter()
            .map(|(o, s)| (o.clone(), sessions_doc(s)))
            .collect(),
        receiving_mx: d.receiving_mx.clone(),
        receiving_ips: d.receiving_ip.clone(),
        sending_ips: ips
            .into_iter()
            .take(TOP_SENDING_IPS)
            .map(|(ip, failed)| IpDoc { ip, failed })
            .collect(),
        daily,
        sts_policies: {
            let mut v: Vec<PolicyStringDoc> = d
                .sts_policies
                .iter()
                .map(|(lines, p)| PolicyStringDoc {
                    policy_string: lines.clone(),
                    reports: p.reports,
                    organizations: {
                        let mut o: Vec<String> =
                            p.organizations.iter().map(|x| x.to_string()).collect();
                        o.sort();
                        o
                    },
                    first_seen: rfc3339(p.first_seen),
                    last_seen: rfc3339(p.last_seen),
                })
                .collect();
            v.sort_by(|a, b| b.last_seen.cmp(&a.last_seen));
            v
        },
        live: None,
        watch: None,
        unauthenticated_reports: 0,
        previous: PreviousDoc {
            sessions: pd,
            change: ChangeDoc {
                reports: cur.reports as i64 - pd.reports as i64,
                successful: cur.successful as i64 - pd.successful as i64,
                failed: cur.failed as i64 - pd.failed as i64,
                failure_rate: round6(cur.failure_rate - pd.failure_rate),
            },
        },
    }
}

/// Domains, most failing first (failed sessions, then failure rate, then name). Takes the
/// tally: each domain's figures are dropped as soon as its document is built, so the
/// figures and the document of a large window are not both held whole.
fn domain_docs(cur: Tally, prev: &Tally, window: &Window) -> Vec<DomainDoc> {
    let mut v: Vec<DomainDoc> = Vec::with_capacity(cur.domains.len());
    for (n, d) in cur.domains {
        v.push(domain_doc(&n, d, prev.domains.get(&n), window));
    }
    v.sort_by(|a, b| {
        b.sessions
            .failed
            .cmp(&a.sessions.failed)
            .then(b.sessions.failure_rate.total_cmp(&a.sessions.failure_rate))
            .then(a.policy_domain.cmp(&b.policy_domain))
    });
    v
}

/// Builds the document from a finished tally (consumed: see `domain_docs`).
pub fn document(s: Summary, skipped: Skipped, spools: &[PathBuf]) -> Doc {
    let unauth_sessions = sessions_doc(&s.unauthenticated.totals());
    Doc {
        window: WindowDoc {
            since: rfc3339(s.window.since),
            until: rfc3339(s.window.until),
            series_days: bucket_days(
                (s.window.until - s.window.since.div_euclid(86_400) * 86_400 + 86_399) / 86_400,
            ),
        },
        domains: {
            let mut v = domain_docs(s.current, &s.previous, &s.window);
            if s.include_unauthenticated {
                for d in &mut v {
                    d.unauthenticated_reports = s
                        .left_out_domains
                        .get(&d.policy_domain)
                        .copied()
                        .unwrap_or(0);
                }
            }
            v
        },
        unauthenticated: UnauthDoc {
            included: s.include_unauthenticated,
            sessions: unauth_sessions,
            domains: domain_docs(s.unauthenticated, &s.unauthenticated_previous, &s.window),
            why: if s.include_unauthenticated {
                Vec::new()
            } else {
                left_out_docs(&s.left_out)
            },
        },
        duplicates: s.duplicates,
        skipped_lines: skipped.lines,
        unreadable_files: skipped.files,
        spools: spools.iter().map(|p| p.display().to_string()).collect(),
        empty_window: None,
        quarantined: 0,
        watch: None,
    }
}
