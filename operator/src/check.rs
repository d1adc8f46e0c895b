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

use crate::aggregate::Summary;
use crate::silence::{self, History};

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
    pub fn output(&self) -> String {
        let mut s = format!("TLSRPT {} - {}", self.status.label(), self.summary);
        if !self.perfdata.is_empty() {
            s.push_str(" | ");
            s.push_str(&self.perfdata.join(" "));
        }
        s.push('\n');
        for (st, f) in &self.findings {
            s.push_str(&format!("{}: {f}\n", st.label()));
        }
        s
    }
}

/// A perfdata label: quoted, with `'` and `=` (which would end it) replaced.
fn perf_label(s: &str) -> String {
    format!("'{}'", s.replace(['\'', '='], "_"))
}

/// Judges a window's figures and the reporters' history.
pub fn judge(s: &Summary, h: &History, p: &Params) -> Verdict {
    let mut findings: Vec<(Status, String)> = Vec::new();
    let mut perfdata = Vec::new();
    for (name, d) in &s.current.domains {
        let ratio = d.sessions.failure_rate() * 100.0;
        let st = if p.critical.alerts(ratio) {
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
    findings.sort_by_key(|f| std::cmp::Reverse(f.0));
    let status = findings.first().map_or(Status::Ok, |f| f.0);
    let summary = if findings.is_empty() {
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
