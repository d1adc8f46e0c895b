//! Spool directories → day files → lines, read-only.
//!
//! Guarantee: nothing in a spool is created, changed, locked or removed; a reader needs
//! only read access (a member of the spool's group will do). A day file is
//! `YYYY-MM-DD.jsonl` (the UTC day of receipt, as tlsrpt-pipe writes it); nothing else
//! in the directory is read. A line is handed on only when it ends with a newline (the
//! delivery writes whole lines in one write(2); a line without one is being written or
//! was cut by a crash, and is reported as torn). Every line that cannot be used is
//! reported once on stderr as `FILE:LINE: reason` (the first [`WARN_LIMIT`] per file)
//! and counted; an unreadable day file is reported and counted the same way.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::record::Unusable;

/// Warnings printed per day file; the rest are counted only.
pub const WARN_LIMIT: usize = 20;

/// The longest line read (a record holds a report of at most tlsrpt-pipe's
/// `--max-report-size`, 32 MiB by default, plus its metadata). Longer lines are skipped.
pub const MAX_LINE: usize = 64 << 20;

/// One `YYYY-MM-DD.jsonl` file; `day` is the Unix time of that day's 00:00 UTC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayFile {
    pub path: PathBuf,
    pub day: i64,
}

/// What could not be used, for the `skipped-lines` count.
#[derive(Debug, Default, Clone, Copy)]
pub struct Skipped {
    pub lines: u64,
    pub files: u64,
}

/// Parses a day file name.
pub fn day_of(name: &str) -> Option<i64> {
    let day = tlsrpt_pipe::layout::day_of_file(name)?;
    tlsrpt_pipe::datetime::parse(&format!("{day}T00:00:00Z")).map(|(t, _)| t.0)
}

/// The day files of one spool, oldest first. Fails only when the directory itself
/// cannot be read.
pub fn day_files(spool: &Path) -> io::Result<Vec<DayFile>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(spool)? {
        let entry = entry?;
        let name = entry.file_name();
        if let Some(day) = name.to_str().and_then(day_of) {
            out.push(DayFile {
                path: entry.path(),
                day,
            });
        }
    }
    out.sort_by_key(|f| f.day);
    Ok(out)
}

/// Which lines a reader takes when several threads read the same files: line `l` goes
/// to reader `owner(l) % of`, where the owner is read from the record's dedup key (the
/// first 16 hex digits; lines without one go to reader 0). Every copy of a report has
/// the same key, so each reader sees all copies of its reports and none of the others:
/// duplicates are found without sharing state, and each reader keeps file order.
#[derive(Debug, Clone, Copy)]
pub struct Share {
    pub index: usize,
    pub of: usize,
}

impl Share {
    pub const ALL: Share = Share { index: 0, of: 1 };

    fn owns(&self, line: &[u8]) -> bool {
        self.of <= 1 || key_prefix(line).map_or(0, |k| (k % self.of as u64) as usize) == self.index
    }

    /// File-level trouble (unreadable, torn tail) is reported by reader 0 only.
    fn reports_files(&self) -> bool {
        self.index == 0
    }
}

/// The first 64 bits of the `"dedup-key"` near the start of a record line.
fn key_prefix(line: &[u8]) -> Option<u64> {
    const NEEDLE: &[u8] = b"\"dedup-key\":\"";
    let head = &line[..line.len().min(512)];
    let at = memchr::memmem::find(head, NEEDLE)? + NEEDLE.len();
    let hex = std::str::from_utf8(line.get(at..at + 16)?).ok()?;
    u64::from_str_radix(hex, 16).ok()
}

/// Prints one warning line on stderr.
pub fn warn(what: &str) {
    eprintln!("tlsrpt: warning: {}", crate::render::safe::terminal(what));
}

/// Calls `f(line_number, line)` for every complete line of a day file, starting at byte
/// `offset`; unusable lines (torn, not UTF-8, too long) are warned about and counted in
/// `skipped`, and so are lines `f` rejects by returning `Err`. Returns the offset just
/// past the last complete line. An unreadable file is warned about, counted, and read
/// as empty.
pub fn read_lines(
    file: &DayFile,
    offset: u64,
    share: Share,
    skipped: &mut Skipped,
    mut f: impl FnMut(usize, &str) -> Result<(), Unusable>,
) -> u64 {
    let shown = file.path.display();
    let mut warned = 0usize;
    let mut note = |lineno: usize, why: &dyn std::fmt::Display, skipped: &mut Skipped| {
        skipped.lines += 1;
        warned += 1;
        if warned <= WARN_LIMIT {
            warn(&format!("{shown}:{lineno}: skipped: {why}"));
        } else if warned == WARN_LIMIT + 1 {
            warn(&format!("{shown}: further skipped lines not shown"));
        }
    };
    let opened = File::open(&file.path).and_then(|mut fh| {
        if offset > 0 {
            io::Seek::seek(&mut fh, io::SeekFrom::Start(offset))?;
        }
        Ok(fh)
    });
    let mut reader = match opened {
        Ok(fh) => BufReader::with_capacity(1 << 16, fh),
        Err(e) => {
            if share.reports_files() {
                warn(&format!("{shown}: cannot read: {e}"));
                skipped.files += 1;
            }
            return offset;
        }
    };
    let mut buf = Vec::with_capacity(1 << 16);
    let mut pos = offset;
    // Line numbers are counted from `offset` (the first line read is 1 when offset is 0).
    let mut lineno = 0usize;
    loop {
        buf.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut buf)
        {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                if share.reports_files() {
                    warn(&format!("{shown}: cannot read: {e}"));
                    skipped.files += 1;
                }
                break;
            }
        };
        lineno += 1;
        if buf.last() != Some(&b'\n') {
            if n > MAX_LINE {
                if share.reports_files() {
                    note(lineno, &"line longer than the limit", skipped);
                }
                // Skip the rest of this line.
                let mut rest = Vec::new();
                let _ = reader.read_until(b'\n', &mut rest);
                pos += (n + rest.len()) as u64;
                continue;
            }
            if share.reports_files() {
                note(lineno, &Unusable::Torn, skipped);
            }
            break;
        }
        pos += n as u64;
        let line = &buf[..buf.len() - 1];
        if !share.owns(line) {
            continue;
        }
        match std::str::from_utf8(line) {
            Ok(s) if s.trim().is_empty() => {}
            Ok(s) => {
                if let Err(why) = f(lineno, s) {
                    note(lineno, &why, skipped);
                }
            }
            Err(_) => note(lineno, &"not UTF-8", skipped),
        }
    }
    pos
}

use std::io::Read as _;

/// Reads every record of the day files from `first_day` on, in every spool, in order
/// (spools as given, files oldest first), handing each usable one to `f`. Returns how
/// many spool directories could be listed; each one that could not is warned about and
/// named in `errors`.
pub fn each_record(
    spools: &[std::path::PathBuf],
    first_day: i64,
    skipped: &mut Skipped,
    errors: &mut Vec<String>,
    mut f: impl FnMut(&crate::record::Parsed),
) -> usize {
    let mut readable = 0;
    for dir in spools {
        let files = match day_files(dir) {
            Ok(files) => files,
            Err(e) => {
                warn(&format!("{}: cannot read spool: {e}", dir.display()));
                errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        readable += 1;
        for file in files.iter().filter(|x| x.day >= first_day) {
            read_lines(file, 0, Share::ALL, skipped, |_, line| {
                f(&crate::record::parse(line)?);
                Ok(())
            });
        }
    }
    readable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_names() {
        assert_eq!(day_of("1970-01-02.jsonl"), Some(86_400));
        assert_eq!(day_of("1970-01-02.json"), None);
        assert_eq!(day_of("1970-1-2.jsonl"), None);
        assert_eq!(day_of("x970-01-02.jsonl"), None);
    }

    #[test]
    fn torn_and_bad_lines_are_counted() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("2024-05-01.jsonl");
        std::fs::write(&p, b"a\n\xff\n\nb\ntorn").unwrap();
        let f = DayFile { path: p, day: 0 };
        let mut skipped = Skipped::default();
        let mut seen = Vec::new();
        let end = read_lines(&f, 0, Share::ALL, &mut skipped, |n, s| {
            seen.push((n, s.to_owned()));
            if s == "b" {
                Err(Unusable::NotARecord("b".into()))
            } else {
                Ok(())
            }
        });
        assert_eq!(seen, vec![(1, "a".into()), (4, "b".into())]);
        assert_eq!(skipped.lines, 3); // not UTF-8, rejected, torn
        assert_eq!(end, 7); // just past "b\n"; the torn tail is left for later
    }

    #[test]
    fn shares_split_by_key_and_keep_copies_together() {
        let line =
            |k: &str| format!("{{\"version\":1,\"received-at\":\"x\",\"dedup-key\":\"{k}\"}}");
        let a = line("0000000000000001ffff");
        let b = line("0000000000000002ffff");
        let shares = [Share { index: 0, of: 2 }, Share { index: 1, of: 2 }];
        assert!(!shares[0].owns(a.as_bytes()) && shares[1].owns(a.as_bytes()));
        assert!(shares[0].owns(b.as_bytes()) && !shares[1].owns(b.as_bytes()));
        assert!(shares[0].owns(b"no key") && !shares[1].owns(b"no key"));
    }
}
