//! The spool's layout: the names the delivery writes and the operator's commands read,
//! remove or lock (`tlsrpt prune` takes the delivery's own lock; `metrics`, `check` and
//! `quarantine` read the quarantine). Defined once, here, and imported by both sides, so
//! that they cannot drift: rename one and both change. Pure; no I/O.
//!
//! ```text
//! DIR/.lock                         the exclusive flock every delivery holds while it
//!                                   checks duplicates and appends
//! DIR/YYYY-MM-DD.jsonl              records, by UTC day of receipt, mode 0640
//! DIR/.seen/ab/ab<62 hex>           duplicate markers: the dedup key, fanned out
//! DIR/quarantine/NAME.eml           a message that could not be read, whole,
//! DIR/quarantine/NAME.json          and why (NAME: YYYYMMDDTHHMMSSZ.PID.NANOS)
//! DIR/quarantine/.NAME.tmp          being written (renamed into place when complete)
//! ```

/// The spool lock.
pub const LOCK_FILE: &str = ".lock";
/// The duplicate markers' directory.
pub const SEEN_DIR: &str = ".seen";
/// The quarantine's directory.
pub const QUARANTINE_DIR: &str = "quarantine";
/// The mode of every file of the spool.
pub const FILE_MODE: u32 = 0o640;
/// The mode of the spool's directories.
pub const DIR_MODE: u32 = 0o750;

/// The day file of a UTC day (`YYYY-MM-DD`).
pub fn day_file(day: &str) -> String {
    format!("{day}.jsonl")
}

/// The day (`YYYY-MM-DD`) of a day file's name, or None for any other name.
pub fn day_of_file(name: &str) -> Option<&str> {
    let day = name.strip_suffix(".jsonl")?;
    let b = day.as_bytes();
    (b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit()))
    .then_some(day)
}

/// The marker of a dedup key: (fan-out directory, file name).
pub fn marker(key: &str) -> (&str, &str) {
    (&key[..2.min(key.len())], key)
}

/// A fan-out directory of the duplicate markers: two lowercase hex digits.
pub fn fan_name(name: &str) -> bool {
    name.len() == 2 && name.bytes().all(is_lower_hex)
}

/// A duplicate marker in fan-out directory `fan`: the dedup key, 64 lowercase hex
/// digits, starting with `fan`.
pub fn marker_name(fan: &str, name: &str) -> bool {
    name.len() == 64 && name.starts_with(fan) && name.bytes().all(is_lower_hex)
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// The two files of a quarantined message: (`NAME.eml`, `NAME.json`).
pub fn quarantine_files(name: &str) -> (String, String) {
    (format!("{name}.eml"), format!("{name}.json"))
}

/// A quarantined message's file name: `NAME.eml` or `NAME.json`, where NAME is what the
/// delivery makes (letters, digits, `.`, `-`, `_`; not starting with a dot, which the
/// temporary files do). Returns (NAME, is the .eml).
pub fn quarantine_name(name: &str) -> Option<(&str, bool)> {
    let (stem, eml) = if let Some(s) = name.strip_suffix(".eml") {
        (s, true)
    } else {
        (name.strip_suffix(".json")?, false)
    };
    let ok = !stem.is_empty()
        && !stem.starts_with('.')
        && stem
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    ok.then_some((stem, eml))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(day_file("2026-12-07"), "2026-12-07.jsonl");
        assert_eq!(day_of_file("2026-12-07.jsonl"), Some("2026-12-07"));
        for bad in [
            "2026-12-7.jsonl",
            "x026-12-07.jsonl",
            "2026-12-07.json",
            "2026-12-07.jsonl.tmp",
        ] {
            assert_eq!(day_of_file(bad), None, "{bad}");
        }
        assert_eq!(
            quarantine_name("20261101T000000Z.42.000000001.eml"),
            Some(("20261101T000000Z.42.000000001", true))
        );
        assert_eq!(quarantine_name("a.json"), Some(("a", false)));
        for bad in [".a.tmp", ".a.eml", ".eml", "a b.eml", "a.txt"] {
            assert_eq!(quarantine_name(bad), None, "{bad}");
        }
        assert!(fan_name("ab") && !fan_name("AB") && !fan_name("abc") && !fan_name("g0"));
        let key = format!("ab{}", "0".repeat(62));
        assert_eq!(marker(&key).0, "ab");
        assert!(marker_name("ab", &key));
        assert!(!marker_name("ac", &key));
        assert!(!marker_name("ab", &key[..63]));
        assert!(!marker_name("ab", &key.to_uppercase()));
    }
}
