//! The figures a summary is built from: the spools read by several readers in parallel
//! (each a disjoint share of the reports), or one GROUP BY of a database's figures; and,
//! for an empty window, what the spools hold instead.

use std::path::PathBuf;

use super::EmptyWindow;
use crate::aggregate::{LeftOutStats, Summary};
use crate::db::figures::{self, Group, Query};
use crate::db::{DbError, Reader};
use crate::record;
use crate::spool::{self, Skipped};
use crate::trust::{LeftOut, Trust};
use crate::window::{Window, rfc3339, utc_day};

/// Counts every record of the spools and finds the latest date-range end (for a window
/// that holds none). Reads every day file: only called when the window was empty.
pub fn spool_contents(spools: &[PathBuf], until: i64) -> EmptyWindow {
    let mut n = 0u64;
    let mut latest: Option<i64> = None;
    let mut skipped = Skipped::default();
    for dir in spools {
        let Ok(files) = spool::day_files(dir) else {
            continue;
        };
        for f in &files {
            spool::read_lines(
                f,
                0,
                spool::Share { index: 0, of: 1 },
                &mut skipped,
                |_, line| {
                    let p = record::parse(line)?;
                    n += 1;
                    latest = Some(latest.map_or(p.end, |l: i64| l.max(p.end)));
                    Ok(())
                },
            );
        }
    }
    let suggested_since = latest.filter(|&l| l <= until).map(|l| {
        let days = ((until - l).max(0) / 86_400 + 1).max(1);
        format!("{days}d")
    });
    let suggested_until = latest
        .filter(|&l| l > until)
        .map(|l| utc_day(l.div_euclid(86_400) * 86_400 + 86_400));
    EmptyWindow {
        spool_reports: n,
        latest_end: latest.map(rfc3339),
        suggested_since,
        suggested_until,
    }
}

/// Why nothing could be summarised.
#[derive(Debug)]
pub struct NoSpool(pub String);

/// Readers working in parallel: one per core, at most 4; `TLSRPT_READERS=N` overrides
/// (the benchmark uses it to show one reader against several).
fn readers() -> usize {
    std::env::var("TLSRPT_READERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=64).contains(&n))
        .unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(4)
        })
}

/// The summary of a window from a database: the sums of its figures
/// (crate::db::figures), one GROUP BY; memory follows the groups, not the reports. On
/// PostgreSQL the domains are split over up to 4 connections (one server process each,
/// as `load --jobs`), and the disjoint shares merged; one thread builds the figures.
/// `recipients`: also the addresses the window's reports were delivered to (what makes
/// a domain ours: `--probe`, `watch`), one more scan.
pub fn collect_db(
    reader: &mut dyn Reader,
    window: Window,
    domains: &[String],
    trust: &Trust,
    recipients: bool,
) -> Result<Summary, DbError> {
    let mut readers: Vec<Box<dyn Reader>> = Vec::new();
    let cores = self::readers();
    while readers.len() + 1 < cores {
        match reader.another_reader() {
            Ok(Some(r)) => readers.push(r),
            _ => break,
        }
    }
    let of = readers.len() as u32 + 1;
    let mut s = Summary::new(window, domains.to_vec(), trust.clone());
    let query = |index: u32| Query {
        previous_since: window.previous().since,
        since: window.since,
        until: window.until,
        domains: s.domains.clone(),
        everything: trust.everything,
        covered: trust.covered_needs(),
        share: (index, of),
    };
    let queries: Vec<Query> = (0..of).map(query).collect();
    reader.left_out(&queries[0], &mut |g| {
        if let Some(d) = g.domain {
            *s.left_out_domains.entry(d).or_default() += g.reports;
            return;
        }
        let why = match (g.needs, g.https) {
            (Some(ids), _) => LeftOut::Needs(ids),
            (None, true) => LeftOut::Https,
            (None, false) => LeftOut::Nothing,
        };
        s.add_left_out(
            why,
            LeftOutStats {
                reports: g.reports,
                successful: g.successful,
                failed: g.failed,
            },
        );
    })?;
    // An extra scan of the window: only for what decides which domains are ours.
    if recipients {
        s.recipients = reader.recipients(&queries[0])?.into_iter().collect();
    }
    // The connections fetch; this thread alone builds the figures, so they are held
    // once (and in one allocator arena), whatever the number of connections.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Group>>(2);
    let results: Vec<Result<(), DbError>> = std::thread::scope(|scope| {
        let mut all: Vec<&mut dyn Reader> = vec![reader];
        all.extend(readers.iter_mut().map(|r| r.as_mut() as &mut dyn Reader));
        let handles: Vec<_> = all
            .into_iter()
            .zip(&queries)
            .map(|(r, q)| {
                let tx = tx.clone();
                scope.spawn(move || {
                    let mut batch = Vec::with_capacity(256);
                    r.figures(q, &mut |g| {
                        batch.push(g);
                        if batch.len() == 256 {
                            // The receiver only goes away on a panic.
                            let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(256)));
                        }
                    })?;
                    let _ = tx.send(batch);
                    Ok(())
                })
            })
            .collect();
        drop(tx);
        for batch in rx {
            for g in batch {
                figures::apply(&mut s, g);
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(s)
}

/// Reads every spool for the window (and the one before it) into a [`Summary`].
/// Fails only when no spool directory at all could be read. Several readers share the
/// work by dedup key (see [`spool::Share`]); the result equals one reader's.
pub fn collect(
    spools: &[PathBuf],
    window: Window,
    domains: Vec<String>,
    trust: &Trust,
) -> Result<(Summary, Skipped), NoSpool> {
    let first = window.previous().first_day_file();
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut readable = 0;
    for dir in spools {
        match spool::day_files(dir) {
            Ok(f) => {
                readable += 1;
                files.extend(f.into_iter().filter(|f| f.day >= first));
            }
            Err(e) => {
                spool::warn(&format!("{}: cannot read spool: {e}", dir.display()));
                errors.push(format!("{}: {e}", dir.display()));
            }
        }
    }
    if readable == 0 {
        return Err(NoSpool(errors.join("; ")));
    }
    let n = readers();
    let read_share = |share: spool::Share| {
        let mut s = Summary::new(window, domains.clone(), trust.clone());
        let mut skipped = Skipped::default();
        for f in &files {
            spool::read_lines(f, 0, share, &mut skipped, |_, line| {
                s.add(&record::parse(line)?);
                Ok(())
            });
        }
        (s, skipped)
    };
    let parts: Vec<(Summary, Skipped)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|index| scope.spawn(move || read_share(spool::Share { index, of: n })))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    let mut parts = parts.into_iter();
    let (mut total, mut skipped) = parts.next().expect("at least one reader");
    for (s, k) in parts {
        total.merge(s);
        skipped.lines += k.lines;
        skipped.files += k.files;
    }
    Ok((total, skipped))
}
