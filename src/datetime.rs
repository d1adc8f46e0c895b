//! RFC 3339 date-times: the subset RFC 8460 §4.4 uses, parsed without I/O.
//!
//! Parsing is strict about the calendar (month 1-12, a real day of that month, hour
//! 0-23) and tolerant about the one deviation real senders produce: a missing zone,
//! which Microsoft sent intermittently in 2023-2024 and which is read as UTC.

use std::time::{SystemTime, UNIX_EPOCH};

/// A parsed date-time, reduced to seconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub i64);

/// What `parse` saw besides the instant itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// `Z` or a numeric offset: a complete RFC 3339 date-time.
    Explicit,
    /// No zone at all: read as UTC, and the caller records a warning.
    Missing,
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<i64> {
    let s = b.get(at..at + n)?;
    s.iter().try_fold(0i64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
    })
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)?` (RFC 3339 §5.6; `t`, `z` and a space
/// separator are accepted as §5.6's NOTE allows). Returns `None` for anything else.
pub fn parse(s: &str) -> Option<(Timestamp, Zone)> {
    let b = s.as_bytes();
    let (y, mo, d) = (digits(b, 0, 4)?, digits(b, 5, 2)?, digits(b, 8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') {
        return None;
    }
    if !matches!(b.get(10), Some(b'T' | b't' | b' ')) {
        return None;
    }
    let (h, mi, se) = (digits(b, 11, 2)?, digits(b, 14, 2)?, digits(b, 17, 2)?);
    if b.get(13) != Some(&b':') || b.get(16) != Some(&b':') {
        return None;
    }
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60
    {
        return None;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    let (offset, zone) = match b.get(i) {
        None => (0, Zone::Missing),
        Some(b'Z' | b'z') if i + 1 == b.len() => (0, Zone::Explicit),
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() && b[i + 3] == b':' => {
            let (oh, om) = (digits(b, i + 1, 2)?, digits(b, i + 4, 2)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let off = oh * 3600 + om * 60;
            (if sign == b'+' { off } else { -off }, Zone::Explicit)
        }
        _ => return None,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se.min(59) - offset;
    Some((Timestamp(secs), zone))
}

impl Timestamp {
    pub fn now() -> Timestamp {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Timestamp(secs)
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn rfc3339(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(86_400));
        let s = self.0.rem_euclid(86_400);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    }

    /// `YYYY-MM-DD` of the UTC day: names the spool file.
    pub fn utc_day(self) -> String {
        let (y, m, d) = civil_from_days(self.0.div_euclid(86_400));
        format!("{y:04}-{m:02}-{d:02}")
    }

    /// `YYYYMMDDTHHMMSSZ`: a compact, sortable form for file names.
    pub fn compact(self) -> String {
        self.rfc3339().replace(['-', ':'], "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rfc8460_forms() {
        let (t, z) = parse("2019-04-14T00:00:00Z").unwrap();
        assert_eq!(
            (t.rfc3339().as_str(), z),
            ("2019-04-14T00:00:00Z", Zone::Explicit)
        );
        let (t, z) = parse("2023-01-10T00:00:00").unwrap();
        assert_eq!(
            (t.rfc3339().as_str(), z),
            ("2023-01-10T00:00:00Z", Zone::Missing)
        );
        let (t, _) = parse("2016-04-01T00:00:00+02:00").unwrap();
        assert_eq!(t.rfc3339(), "2016-03-31T22:00:00Z");
        let (t, _) = parse("2024-02-29T23:59:59.123Z").unwrap();
        assert_eq!(t.rfc3339(), "2024-02-29T23:59:59Z");
    }

    #[test]
    fn rejects_non_dates() {
        for s in [
            "April fools",
            "",
            "2023-02-29T00:00:00Z",
            "2023-13-01T00:00:00Z",
            "2023-01-01T24:00:00Z",
            "2023-01-01T00:00:00Zjunk",
            "2023-01-01T00:00:00+0200",
            "2023-01-01",
            "２０２３-01-01T00:00:00Z",
        ] {
            assert!(parse(s).is_none(), "{s:?} parsed");
        }
    }

    #[test]
    fn civil_round_trip() {
        for days in [-1_000_000, -1, 0, 1, 19_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(Timestamp(0).compact(), "19700101T000000Z");
    }
}
