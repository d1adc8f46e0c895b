//! Time windows: `--since`/`--until` values, which reports fall in a window, and which
//! day files a window needs.
//!
//! The rule, stated once: a report belongs to the window `(since, until]` when the *end*
//! of its date-range lies in it (a daily report for Monday, ending Tuesday 00:00Z, is in
//! a window that holds Tuesday 00:00Z). A report is sent only after its range ends, so
//! it cannot have been received before `end`; allowing a day of sender clock error, the
//! day files from the day before the earliest window start onward hold every report of
//! the window. Every later day file is read too, however late, so a report that arrived
//! days or weeks after its range is never left out.

use tlsrpt_pipe::datetime::Timestamp;

/// One day in seconds.
pub const DAY: i64 = 86_400;

/// `(since, until]` in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

impl Window {
    pub fn contains(&self, end: i64) -> bool {
        self.since < end && end <= self.until
    }

    /// The window of the same length just before this one.
    pub fn previous(&self) -> Window {
        Window {
            since: self.since - (self.until - self.since),
            until: self.since,
        }
    }

    /// The first day file (UTC day start) that can hold a report of this window.
    pub fn first_day_file(&self) -> i64 {
        self.since.div_euclid(DAY) * DAY - DAY
    }
}

/// Parses a WHEN: a duration before `now` (`90s`, `15m`, `36h`, `7d`, `2w`), an RFC 3339
/// date-time, or a date `YYYY-MM-DD` (00:00 UTC).
pub fn parse_when(s: &str, now: i64) -> Result<i64, String> {
    let s = s.trim();
    let unit = s.chars().last().filter(|c| c.is_ascii_alphabetic());
    if let Some(unit) =
        unit.filter(|_| s.len() > 1 && s[..s.len() - 1].bytes().all(|b| b.is_ascii_digit()))
    {
        let n: i64 = s[..s.len() - 1]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        let mult = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => DAY,
            'w' => 7 * DAY,
            _ => {
                return Err(format!(
                    "{s:?}: unknown unit {unit:?} (use s, m, h, d or w)"
                ));
            }
        };
        return n
            .checked_mul(mult)
            .map(|d| now - d)
            .ok_or_else(|| format!("{s:?}: too long"));
    }
    let full = if s.len() == 10 {
        format!("{s}T00:00:00Z")
    } else {
        s.to_owned()
    };
    tlsrpt_pipe::datetime::parse(&full)
        .map(|(t, _)| t.0)
        .ok_or_else(|| {
            format!("{s:?}: not a duration (7d, 36h) or an RFC 3339 date (2026-11-01T00:00:00Z)")
        })
}

pub fn rfc3339(t: i64) -> String {
    Timestamp(t).rfc3339()
}

pub fn utc_day(t: i64) -> String {
    Timestamp(t).utc_day()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whens() {
        let now = 1_000_000;
        assert_eq!(parse_when("7d", now), Ok(now - 7 * DAY));
        assert_eq!(parse_when("36h", now), Ok(now - 36 * 3600));
        assert_eq!(parse_when("1970-01-02", now), Ok(DAY));
        assert_eq!(parse_when("1970-01-02T01:00:00+01:00", now), Ok(DAY));
        assert!(parse_when("7x", now).is_err());
        assert!(parse_when("yesterday", now).is_err());
        assert!(parse_when("99999999999999999999d", now).is_err());
    }

    #[test]
    fn window_rule() {
        let w = Window {
            since: 10 * DAY + 3600,
            until: 17 * DAY,
        };
        assert!(!w.contains(10 * DAY + 3600));
        assert!(w.contains(17 * DAY));
        assert!(!w.contains(17 * DAY + 1));
        assert_eq!(w.previous().until, w.since);
        assert_eq!(w.first_day_file(), 9 * DAY);
    }
}
