//! Silence: which reporters were regular and have stopped (pure; no I/O).
//!
//! RFC 8460 calls the success count a heartbeat (§1, §4.2.1), but sending is optional:
//! mox by default reports only days with a failure, Microsoft (and by some accounts
//! Google) only days on which they sent mail. So silence is judged per reporter
//! (reporting organisation × policy domain) from its own history, and only for
//! reporters that were regular.
//!
//! The rule:
//! - The history is the set of UTC days on which the reporter's reports start, within
//!   [`HISTORY_DAYS`] before its latest report.
//! - A reporter is **regular** when that history holds at least [`MIN_REPORTS`] reports
//!   and the gaps between consecutive report days are steady: every gap lies between half
//!   and twice the (lower) median gap, and the median gap is at most
//!   [`MAX_INTERVAL_DAYS`] days. Its
//!   **interval** is the longest gap seen (1 day for a daily reporter, 2 for one that
//!   sends every other day).
//! - A regular reporter is **silent** when more than its interval plus [`SLACK`] has
//!   passed since the end of its latest report's range: a report arrives hours after its
//!   UTC day and is retried for up to 24 hours (RFC 8460 §4.1, §5.5).
//! - Reporters with too few or irregular reports (failure-only senders, senders with
//!   occasional traffic) are never called silent; a domain that never had any report is
//!   its own finding (the TLSRPT record is the first suspect).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::window::DAY;

/// Days of history kept per reporter.
pub const HISTORY_DAYS: i64 = 28;
/// Reports needed before a reporter's cadence is trusted.
pub const MIN_REPORTS: usize = 5;
/// Longest median gap of a regular reporter.
pub const MAX_INTERVAL_DAYS: i64 = 7;
/// Delivery delay plus the RFC's 24 hours of retries, with a margin.
pub const SLACK: i64 = 36 * 3600;

/// One reporter's recent report days and latest report end.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reporter {
    /// UTC day numbers (Unix day) on which its reports start.
    pub days: BTreeSet<i64>,
    /// End of the latest report's date range (Unix seconds).
    pub last_end: i64,
}

impl Reporter {
    fn saw_end(&mut self, end: i64) {
        self.last_end = self.last_end.max(end);
        // Keep the history bounded: only the days the rule looks at (whatever the order
        // the reports come in, the days kept are those of the latest end's window).
        let keep_from = self.last_end.div_euclid(DAY) - HISTORY_DAYS;
        while self.days.first().is_some_and(|&d| d < keep_from) {
            self.days.pop_first();
        }
    }
}

/// Reporter history: (policy domain, organisation) → reporter.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    pub reporters: BTreeMap<String, BTreeMap<String, Reporter>>,
}

impl History {
    pub fn add(&mut self, domain: &str, org: &str, start: i64, end: i64) {
        let r = self.reporter(domain, org);
        r.days.insert(start.div_euclid(DAY));
        r.saw_end(end);
    }

    /// A report of this reporter ended at `end` (its start day is not known: a
    /// database's all-time latest end, with the days from [`History::add`]).
    pub fn saw_end(&mut self, domain: &str, org: &str, end: i64) {
        self.reporter(domain, org).saw_end(end);
    }

    fn reporter(&mut self, domain: &str, org: &str) -> &mut Reporter {
        self.reporters
            .entry(domain.to_owned())
            .or_default()
            .entry(org.to_owned())
            .or_default()
    }

    /// The latest report end per domain.
    pub fn last_end(&self, domain: &str) -> Option<i64> {
        self.reporters
            .get(domain)
            .and_then(|m| m.values().map(|r| r.last_end).max())
    }
}

/// The reporter's interval in seconds when it is regular.
pub fn interval(r: &Reporter) -> Option<i64> {
    let last_day = r.last_end.div_euclid(DAY);
    let days: Vec<i64> = r
        .days
        .iter()
        .copied()
        .filter(|&d| d >= last_day - HISTORY_DAYS)
        .collect();
    if days.len() < MIN_REPORTS {
        return None;
    }
    let mut gaps: Vec<i64> = days.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    // The lower median, so that a few long gaps cannot make an irregular sender look
    // regular; steady means every gap within a factor of two of it.
    let median = gaps[(gaps.len() - 1) / 2];
    let (shortest, longest) = (gaps[0], *gaps.last()?);
    let steady = longest <= 2 * median && 2 * shortest >= median;
    (median <= MAX_INTERVAL_DAYS && steady).then_some(longest * DAY)
}

/// One silent reporter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Silent {
    pub domain: String,
    pub organization: String,
    pub last_end: i64,
    pub interval: i64,
}

/// Regular reporters that are silent at `now`, most overdue first.
pub fn silent(h: &History, now: i64) -> Vec<Silent> {
    let mut out = Vec::new();
    for (domain, orgs) in &h.reporters {
        for (org, r) in orgs {
            if let Some(iv) = interval(r)
                && now > r.last_end + iv + SLACK
            {
                out.push(Silent {
                    domain: domain.clone(),
                    organization: org.clone(),
                    last_end: r.last_end,
                    interval: iv,
                });
            }
        }
    }
    out.sort_by_key(|s| s.last_end + s.interval);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_772_323_200; // a day start

    fn reporter(days: &[i64]) -> History {
        let mut h = History::default();
        for &d in days {
            h.add("example.com", "Org", T + d * DAY, T + (d + 1) * DAY);
        }
        h
    }

    #[test]
    fn a_daily_reporter_that_stops() {
        let h = reporter(&(0..14).collect::<Vec<_>>());
        let last_end = T + 14 * DAY;
        assert_eq!(interval(&h.reporters["example.com"]["Org"]), Some(DAY));
        // The next report is due a day later, plus slack: not yet silent at +2 days.
        assert!(silent(&h, last_end + DAY + SLACK).is_empty());
        let s = silent(&h, last_end + DAY + SLACK + 1);
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].organization, "Org");
    }

    #[test]
    fn every_other_day_is_regular_with_its_own_interval() {
        let h = reporter(&[0, 2, 4, 6, 8, 10, 12]);
        let r = &h.reporters["example.com"]["Org"];
        assert_eq!(interval(r), Some(2 * DAY));
        assert!(silent(&h, r.last_end + 2 * DAY + SLACK).is_empty());
        assert_eq!(silent(&h, r.last_end + 4 * DAY).len(), 1);
    }

    #[test]
    fn failure_only_and_sparse_reporters_never_raise_noise() {
        // mox: only days with a failure.
        let h = reporter(&[0, 1, 5, 6, 13, 20, 21]);
        assert_eq!(interval(&h.reporters["example.com"]["Org"]), None);
        assert!(silent(&h, T + 400 * DAY).is_empty());
        let h = reporter(&[0, 6, 13, 18, 19]);
        assert_eq!(interval(&h.reporters["example.com"]["Org"]), None);
        // A daily sender that skips a day now and then (no traffic) is still daily-ish.
        let h = reporter(&[0, 1, 2, 4, 5, 6, 7]);
        assert_eq!(interval(&h.reporters["example.com"]["Org"]), Some(2 * DAY));
        // Too few reports to know.
        let h = reporter(&[0, 1, 2]);
        assert!(silent(&h, T + 400 * DAY).is_empty());
    }

    #[test]
    fn history_stays_bounded() {
        let h = reporter(&(0..200).collect::<Vec<_>>());
        assert!(h.reporters["example.com"]["Org"].days.len() <= HISTORY_DAYS as usize + 1);
    }
}
