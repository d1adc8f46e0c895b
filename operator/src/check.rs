//! `tlsrpt check`: a monitoring plugin (Nagios, Icinga, Naemon, Sensu) per the
//! monitoring-plugins development guidelines.
//!
//! Exit status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN; the first line is
//! `TLSRPT STATUS - text | perfdata`, further lines one finding each. It judges, for the
//! window (`--since`, default 2 days, as the summary counts it: authenticated reports,
//! once per report and domain):
//! - each domain's failure ratio in percent against `-w`/`-c` ranges;
//! - any session of a critical result type (default `starttls-not-supported`: mail
//!   going out in clear, or a downgrade attack): CRITICAL;
//! - silence (see [`crate::silence`]): a regular reporter that stopped, a domain silent
//!   for longer than `--max-silence`, or a `--domain` that never had a report: WARNING.
//!
//! A spool that cannot be read is UNKNOWN, never OK.

use std::fmt;

use crate::aggregate::{self, Summary};
use crate::cli::CheckArgs;
use crate::exit::Failure;
use crate::silence::{self, History};
use crate::spool;
use crate::trust::Trust;
use crate::window::{self, Window};

/// A monitoring-plugins threshold range (`10`, `10:`, `~:10`, `10:20`, `@10:20`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range {
    pub low: f64,
    pub high: f64,
    /// `@`: alert inside the range instead of outside.
    pub inside: bool,
}

impl Range {
    pub fn parse(s: &str) -> Result<Range, String> {
        let bad = || format!("{s:?}: not a threshold range (10, 10:, ~:10, 10:20, @10:20)");
        let (inside, body) = match s.strip_prefix('@') {
            Some(b) => (true, b),
            None => (false, s),
        };
        let num = |t: &str| -> Result<f64, String> {
            let v: f64 = t.parse().map_err(|_| bad())?;
            if v.is_finite() { Ok(v) } else { Err(bad()) }
        };
        let (low, high) = match body.split_once(':') {
            None => (0.0, num(body)?),
            Some((l, h)) => {
                let low = if l == "~" { f64::NEG_INFINITY } else { num(l)? };
                let high = if h.is_empty() { f64::INFINITY } else { num(h)? };
                (low, high)
            }
        };
        if low > high {
            return Err(bad());
        }
        Ok(Range { low, high, inside })
    }

    /// Does `v` raise the alert?
    pub fn alerts(&self, v: f64) -> bool {
        let within = self.low <= v && v <= self.high;
        if self.inside { within } else { !within }
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        match (self.low, self.high) {
            (l, h) if l == 0.0 && h.is_finite() => write!(f, "{h}"),
            (l, h) => {
                if l == f64::NEG_INFINITY {
                    f.write_str("~")?;
                } else {
                    write!(f, "{l}")?;
                }
                f.write_str(":")?;
                if h.is_finite() {
                    write!(f, "{h}")
                } else {
                    Ok(())
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    Ok = 0,
    Warning = 1,
    Critical = 2,
    Unknown = 3,
}

// The plugin statuses are the exit table's (crate::exit).
const _: () = assert!(
    Status::Ok as u8 == crate::exit::OK
        && Status::Warning as u8 == crate::exit::FAILED
        && Status::Critical as u8 == crate::exit::USAGE
        && Status::Unknown as u8 == crate::exit::UNKNOWN
);

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warning => "WARNING",
            Status::Critical => "CRITICAL",
            Status::Unknown => "UNKNOWN",
        }
    }
}

/// What the check was asked to judge.
pub struct Params<'a> {
    pub warning: Range,
    pub critical: Range,
    pub critical_types: &'a [String],
    pub max_silence: Option<i64>,
    /// Domains named with `--domain` (normalised); empty = every domain seen.
    pub domains: &'a [String],
    /// How many days back the history was read (what "never" means).
    pub horizon_days: i64,
    pub now: i64,
    /// Below this many sessions a domain's ratio is not judged.
    pub min_sessions: u64,
    /// Messages quarantined in the window, and where.
    pub quarantined: (u64, String),
}

/// The plugin's verdict: status, first-line text, perfdata, and one line per finding.
pub struct Verdict {
    pub status: Status,
    pub findings: Vec<(Status, String)>,
    pub perfdata: Vec<String>,
    pub summary: String,
}

impl Verdict {
    /// The plugin output, first line then long text.
    /// Every text from a report made safe (one finding per line, no escape).
    pub fn output(&self) -> String {
        use crate::render::safe::terminal;
        // "|" would start the perfdata: not in the text.
        let mut s = format!(
            "TLSRPT {} - {}",
            self.status.label(),
            terminal(&self.summary).replace('|', "/")
        );
        if !self.perfdata.is_empty() {
            s.push_str(" | ");
            s.push_str(&self.perfdata.join(" "));
        }
        s.push('\n');
        for (st, f) in &self.findings {
            s.push_str(&format!("{}: {}\n", st.label(), terminal(f)));
        }
        s
    }
}

/// A perfdata label: quoted, with `'` and `=` (which would end it) replaced.
fn perf_label(s: &str) -> String {
    format!(
        "'{}'",
        crate::render::safe::terminal(s).replace(['\'', '=', '|'], "_")
    )
}

/// Days of history the check reads besides its window, to judge silence.
const CHECK_HISTORY: i64 = 30 * window::DAY;

/// `tlsrpt check`: reads the window and the reporters' history (from the spools or the
/// database), judges them; the plugin output and its status. Every trouble that
/// prevents an answer is UNKNOWN.
pub fn run(a: &CheckArgs, now: i64) -> Result<(String, Status), Failure> {
    let unknown = Failure::unknown;
    let since = window::parse_when(&a.since, now).map_err(|e| unknown(format!("--since {e}")))?;
    if since >= now {
        return Err(unknown(format!("--since {:?} is not in the past", a.since)));
    }
    let w = Window { since, until: now };
    let warning = Range::parse(&a.warning).map_err(|e| unknown(format!("-w {e}")))?;
    let critical = Range::parse(&a.critical).map_err(|e| unknown(format!("-c {e}")))?;
    let max_silence = match &a.max_silence {
        Some(d) => {
            let is_duration = d.trim().ends_with(|c: char| c.is_ascii_alphabetic());
            match window::parse_when(d, 0) {
                Ok(t) if t < 0 && is_duration => Some(-t),
                _ => {
                    return Err(unknown(format!(
                        "--max-silence {d:?}: not a duration (36h, 3d)"
                    )));
                }
            }
        }
        None => None,
    };
    let trust =
        Trust::new(&a.trusted.trusted_authserv_id, a.include_unauthenticated).map_err(unknown)?;
    let domains: Vec<String> = a
        .domain
        .iter()
        .map(|d| aggregate::domain_key(Some(d)))
        .collect();
    let horizon = (now - CHECK_HISTORY)
        .min(w.previous().since)
        .min(now - max_silence.unwrap_or(0) - 2 * window::DAY);
    let mut h = History::default();
    let mut skipped = spool::Skipped::default();
    let s = match &a.db {
        Some(db) => {
            // From the database: the window's figures, and the reporters' history.
            let unknown_db = |m: String| unknown(format!("{db}: {m}"));
            let mut r = crate::db::open_read(db).map_err(|e| unknown_db(e.msg))?;
            let s = crate::summary::collect_db(r.as_mut(), w, &domains, &trust, false)
                .map_err(|e| unknown_db(e.msg))?;
            let q = crate::db::Query {
                previous_since: w.previous().since,
                since: w.since,
                until: w.until,
                domains: domains.clone(),
                everything: trust.everything,
                covered: trust.covered_needs(),
                share: (0, 1),
            };
            r.history(horizon - window::DAY, &q, &mut |t| {
                if let (true, Some(day), crate::db::figures::Figure::Domain { organization, .. }) =
                    (t.counted, t.day, &t.figure)
                    && (domains.is_empty() || domains.contains(&t.domain))
                {
                    h.add(&t.domain, organization, day, t.last_end);
                }
            })
            .map_err(|e| unknown_db(e.msg))?;
            s
        }
        None => {
            let mut s = Summary::new(w, domains.clone(), trust.clone());
            let mut errors = Vec::new();
            let first_day = horizon.div_euclid(window::DAY) * window::DAY - window::DAY;
            let readable =
                spool::each_record(&a.spool, first_day, &mut skipped, &mut errors, |p| {
                    s.add(p);
                    if trust.judge(&p.record).counted {
                        let org = p
                            .record
                            .report
                            .organization_name
                            .as_deref()
                            .unwrap_or("(unknown)");
                        for d in aggregate::domains_of(&p.record.report) {
                            if domains.is_empty() || domains.contains(&d) {
                                h.add(&d, org, p.start, p.end);
                            }
                        }
                    }
                });
            if readable < a.spool.len() {
                // An unreadable spool hides reports: the check cannot decide.
                return Err(unknown(format!("cannot read spool: {}", errors.join("; "))));
            }
            if skipped.files > 0 {
                // An unreadable day file hides reports just the same.
                return Err(unknown(format!(
                    "{} day file{} of the spool could not be read (as this user: check its group and mode 0640): nothing judged",
                    skipped.files,
                    if skipped.files == 1 { "" } else { "s" }
                )));
            }
            s
        }
    };
    let (quarantined, qerr) = if a.db.is_none() {
        crate::quarantine::count_in(&a.spool, w.since, w.until)
    } else {
        (0, Vec::new())
    };
    if !qerr.is_empty() {
        return Err(unknown(format!(
            "the quarantine could not be read: {}",
            qerr.join("; ")
        )));
    }
    let where_ = a
        .spool
        .iter()
        .map(|p| format!("{}/{}", p.display(), tlsrpt_pipe::layout::QUARANTINE_DIR))
        .collect::<Vec<_>>()
        .join(", ");
    let v = judge(
        &s,
        &h,
        &Params {
            warning,
            critical,
            critical_types: &a.critical_result_type,
            max_silence,
            domains: &domains,
            horizon_days: (now - horizon) / window::DAY,
            now,
            min_sessions: a.min_sessions,
            quarantined: (quarantined, where_),
        },
    );
    let mut out = v.output();
    if skipped.lines > 0 || skipped.files > 0 {
        out.push_str(&format!(
            "note: {} spool lines skipped, {} day files unreadable\n",
            skipped.lines, skipped.files
        ));
    }
    Ok((out, v.status))
}

/// Judges a window's figures and the reporters' history.
pub fn judge(s: &Summary, h: &History, p: &Params) -> Verdict {
    let mut findings: Vec<(Status, String)> = Vec::new();
    let mut perfdata = Vec::new();
    for (name, d) in &s.current.domains {
        let ratio = d.sessions.failure_rate() * 100.0;
        let st = if d.sessions.total() < p.min_sessions {
            findings.push((
                Status::Ok,
                format!(
                    "{name}: {} of {} sessions failed, fewer than --min-sessions {}: ratio not judged",
                    d.sessions.failed,
                    d.sessions.total(),
                    p.min_sessions
                ),
            ));
            Status::Ok
        } else if p.critical.alerts(ratio) {
            Status::Critical
        } else if p.warning.alerts(ratio) {
            Status::Warning
        } else {
            Status::Ok
        };
        if st != Status::Ok {
            findings.push((
                st,
                format!(
                    "{name}: failure ratio {ratio:.2}% ({} of {} sessions)",
                    d.sessions.failed,
                    d.sessions.total()
                ),
            ));
        }
        for t in p.critical_types {
            if let Some(r) = d.result_types.get(t) {
                findings.push((
                    Status::Critical,
                    format!("{name}: {} {t} sessions in {} reports", r.failed, r.reports),
                ));
            }
        }
        perfdata.push(format!(
            "{}={ratio:.4}%;{};{};0;100",
            perf_label(&format!("{name} failure ratio")),
            p.warning,
            p.critical
        ));
        perfdata.push(format!(
            "{}={};;;0",
            perf_label(&format!("{name} failed")),
            d.sessions.failed
        ));
        perfdata.push(format!(
            "{}={};;;0",
            perf_label(&format!("{name} sessions")),
            d.sessions.total()
        ));
    }
    for sil in silence::silent(h, p.now) {
        if !p.domains.is_empty() && !p.domains.contains(&sil.domain) {
            continue;
        }
        findings.push((
            Status::Warning,
            format!(
                "{}: no report from {} since {} (it reported every {} day(s))",
                sil.domain,
                sil.organization,
                crate::window::rfc3339(sil.last_end),
                sil.interval / crate::window::DAY
            ),
        ));
    }
    let mut watched: Vec<String> = p.domains.to_vec();
    if watched.is_empty() {
        watched = h.reporters.keys().cloned().collect();
    }
    for d in &watched {
        match h.last_end(d) {
            None => findings.push((
                Status::Warning,
                format!(
                    "{d}: no reports in the last {} days: check the TLSRPT record with `tlsrpt check-record {d}`",
                    p.horizon_days
                ),
            )),
            Some(last) => {
                if let Some(max) = p.max_silence
                    && p.now - last > max {
                        findings.push((
                            Status::Warning,
                            format!(
                                "{d}: no report for {}h (latest ended {})",
                                (p.now - last) / 3600,
                                crate::window::rfc3339(last)
                            ),
                        ));
                    }
            }
        }
    }
    if p.quarantined.0 > 0 {
        findings.push((
            Status::Warning,
            format!(
                "{} message{} quarantined in the window (unreadable reports, not judged) in {}: see tlsrpt quarantine list",
                p.quarantined.0,
                if p.quarantined.0 == 1 { "" } else { "s" },
                p.quarantined.1
            ),
        ));
    }
    // Reports left out for want of trust that carry failures: not judged is not OK.
    if !s.include_unauthenticated {
        for w in crate::summary::left_out_docs(&s.left_out) {
            if w.failed > 0 {
                findings.push((Status::Warning, format!("not judged: {}", w.line())));
            }
        }
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.0));
    let status = findings.first().map_or(Status::Ok, |f| f.0);
    let summary = if status == Status::Ok {
        let t = s.current.totals();
        format!(
            "{} domains, {} reports, {} of {} sessions failed",
            s.current.domains.len(),
            t.reports,
            t.failed,
            t.total()
        )
    } else {
        let worst: Vec<&str> = findings
            .iter()
            .filter(|f| f.0 == status)
            .map(|f| f.1.as_str())
            .take(3)
            .collect();
        let more = findings.len() - worst.len();
        let mut s = worst.join("; ");
        if more > 0 {
            s.push_str(&format!(" (+{more} more)"));
        }
        s
    };
    Verdict {
        status,
        findings,
        perfdata,
        summary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_as_the_guidelines_define_them() {
        let r = Range::parse("10").unwrap();
        assert!(!r.alerts(0.0) && !r.alerts(10.0) && r.alerts(10.1) && r.alerts(-1.0));
        let r = Range::parse("10:").unwrap();
        assert!(r.alerts(9.9) && !r.alerts(1e9));
        let r = Range::parse("~:10").unwrap();
        assert!(!r.alerts(-1e9) && r.alerts(11.0));
        let r = Range::parse("10:20").unwrap();
        assert!(r.alerts(9.0) && !r.alerts(15.0) && r.alerts(21.0));
        let r = Range::parse("@10:20").unwrap();
        assert!(!r.alerts(9.0) && r.alerts(15.0) && !r.alerts(21.0));
        for bad in ["", "x", "20:10", "1:2:3", "inf", "@"] {
            assert!(Range::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Range::parse("~:10").unwrap().to_string(), "~:10");
        assert_eq!(Range::parse("5").unwrap().to_string(), "5");
    }

    #[test]
    fn perf_labels_cannot_break_out() {
        assert_eq!(perf_label("a'b=c"), "'a_b_c'");
    }
}
