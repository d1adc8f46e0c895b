//! `tlsrpt prune`: removes what is older than a cut from spools — day files,
//! quarantined messages, duplicate markers — and old reports from the database
//! ([`db`]). Arguments → plan (read-only) → act, one spool at a time, then the
//! database.
//!
//! Guarantees:
//! - **Explicit and bounded**: only the spools named with `--spool` are touched (no
//!   default, no environment), and nothing newer than 2 days: a cut more recent than
//!   that is refused, and today's and yesterday's day files (UTC) are never removed,
//!   whatever the cut, since deliveries may still append to them.
//! - **Only what is old**: a day file `YYYY-MM-DD.jsonl` goes when its day of receipt is
//!   before the cut's day *and* every record in it has a date-range ending before the
//!   cut (lines that are not records do not keep it); a quarantined message
//!   (`quarantine/NAME.eml` and `NAME.json`, together) when all its files were last
//!   modified before the cut; a duplicate marker (`.seen/ab/ab…`) when it was. Nothing
//!   else in a spool is touched: other names, symbolic links and anything that is not a
//!   regular file stay, and no link is followed inside the spool (see [`spool`]).
//! - **Loaded first** (`--db`): a day file goes only when the database's load
//!   checkpoint of it equals the file's inode and length (everything in it was
//!   loaded); then its checkpoint row is deleted in the same database transaction, so
//!   the checkpoint table stays bounded, and a later `tlsrpt load` neither reloads nor
//!   misses anything.
//! - **No lost delivery**: removals happen under the spool's own lock (`DIR/.lock`, the
//!   exclusive flock every tlsrpt-pipe delivery holds while it checks duplicates and
//!   appends), taken per day file and per small batch of other files, so a delivery
//!   waits at most briefly; under the lock each file is checked again (same inode,
//!   same length, still old) and the directory is fsynced after the unlink.
//! - **The database too** (`--db`, unless `--keep-rows`): reports that ended before the
//!   cut, in short transactions, their counters carried (see [`db`]).
//! - **Dry run changes nothing**: no lock file is made, no database row is written;
//!   the same plan is printed with `would remove`.
//!
//! Exit status: 0 done, 1 something could not be removed (the rest still is), 2 bad
//! arguments, 75 the database could not be reached.

pub mod spool;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use crate::cli::PruneArgs;
use crate::db::{self, DbError, Writer};
use crate::exit::Failure;
use crate::spool::{DayFile, Share, Skipped};
use crate::window::{self, DAY};
use spool::{Dir, Stat};

/// The youngest cut accepted, and the age below which a day file is never removed.
const MIN_AGE: i64 = 2 * DAY;
/// How long to wait for the spool lock (a delivery holds it for milliseconds).
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// Quarantine files or markers removed under one hold of the spool lock.
const BATCH: usize = 200;

/// The cut and the day boundaries it implies.
#[derive(Debug, Clone, Copy)]
struct Cut {
    /// Things older than this go.
    at: i64,
    /// 00:00 UTC of the cut's day: a day file goes only when its day is before it.
    day: i64,
    /// 00:00 UTC of yesterday: day files of this day and later always stay.
    yesterday: i64,
}

impl Cut {
    fn new(older_than: &str, now: i64) -> Result<Cut, Failure> {
        let at = window::parse_when(older_than, now)
            .map_err(|e| Failure::usage(format!("--older-than {e}")))?;
        if at > now - MIN_AGE {
            return Err(Failure::usage(format!(
                "--older-than {older_than:?}: the cut {} is less than 2 days ago (reports are still arriving for it)",
                window::rfc3339(at)
            )));
        }
        Ok(Cut {
            at,
            day: at.div_euclid(DAY) * DAY,
            yesterday: now.div_euclid(DAY) * DAY - DAY,
        })
    }
}

/// A day file that can go, as it was when read.
struct DayItem {
    name: String,
    stat: Stat,
    /// Just past its last whole line (a torn line may follow).
    complete: u64,
}

/// A quarantined message: its `.eml` and/or `.json`, all older than the cut.
struct Message {
    files: Vec<(String, Stat)>,
}

/// The files of one quarantined message found so far; `keep` when one of them is
/// recent (or cannot be judged), which keeps them all.
#[derive(Default)]
struct Stem {
    files: Vec<(String, Stat)>,
    keep: bool,
}

/// A duplicate marker in `fans[fan]`.
struct Marker {
    fan: usize,
    name: String,
    stat: Stat,
}

/// What one spool would lose.
#[derive(Default)]
struct Plan {
    days: Vec<DayItem>,
    quarantine: Option<Dir>,
    messages: Vec<Message>,
    fans: Vec<Dir>,
    markers: Vec<Marker>,
}

/// What was (or would be) removed, over all spools.
#[derive(Debug, Default)]
struct Totals {
    days: u64,
    messages: u64,
    markers: u64,
    bytes: u64,
    /// Things that could not be removed or read.
    failures: u64,
}

/// The database of `--db`, and how to name it.
struct Db {
    url: String,
    store: Box<dyn Writer>,
}

fn db_failure(e: DbError) -> Failure {
    e.failure()
}

pub fn run(a: &PruneArgs, now: i64) -> Result<(), Failure> {
    let cut = Cut::new(&a.older_than, now)?;
    if a.spool.is_empty() && a.db.is_none() {
        return Err(Failure::usage(
            "nothing to prune: give --spool DIR (and/or --db URL)",
        ));
    }
    if a.keep_rows && (a.db.is_none() || a.spool.is_empty()) {
        return Err(Failure::usage(
            "--keep-rows keeps the database's rows while pruning spools: give --spool DIR and --db URL",
        ));
    }
    let mut out = Out;
    let mut t = Totals::default();
    // Every spool is opened and checked before anything is removed.
    let mut spools = Vec::new();
    let root = nix::unistd::geteuid().is_root();
    for path in &a.spool {
        match spool::open(path) {
            Ok((d, owner)) => {
                if root && owner != 0 {
                    return Err(Failure::usage(format!(
                        "{}: run as the spool's owner (sudo -u tlsrpt tlsrpt prune ...)",
                        path.display()
                    )));
                }
                spools.push(d);
            }
            Err(m) => {
                crate::spool::warn(&m);
                t.failures += 1;
            }
        }
    }
    let mut db = match &a.db {
        Some(url) => Some(open_db(url)?),
        None => None,
    };
    if a.verbose {
        eprintln!(
            "tlsrpt: prune: cut {}: day files before {}, quarantine and markers older than the cut",
            window::rfc3339(cut.at),
            window::utc_day(cut.day.min(cut.yesterday))
        );
    }
    for d in &spools {
        let spool_name = d.path.display().to_string();
        let checkpoints = match &mut db {
            Some(db) => Some(db.store.checkpoints(&spool_name).map_err(db_failure)?),
            None => None,
        };
        let plan = plan(
            d,
            &cut,
            &mut t,
            |name, stat, complete| {
                let (Some(cps), Some(db)) = (&checkpoints, &db) else {
                    return None;
                };
                (!loaded(cps.get(name).copied(), stat, complete)).then(|| not_loaded(d, &db.url))
            },
            &mut out,
        );
        let before = (t.days, t.messages, t.markers, t.bytes);
        if a.dry_run {
            dry(d, &plan, &mut t, &mut out);
        } else {
            act(d, &spool_name, &plan, &cut, db.as_mut(), &mut t, &mut out)?;
        }
        if a.verbose {
            eprintln!(
                "tlsrpt: prune: {}: {} day files, {} quarantined messages, {} duplicate markers, {} bytes",
                d.path.display(),
                t.days - before.0,
                t.messages - before.1,
                t.markers - before.2,
                t.bytes - before.3
            );
        }
    }
    // The database's rows, after the spools (whose day files the checkpoints guard).
    if let (Some(db), false) = (&mut db, a.keep_rows) {
        let p = db::prune::prune(db.store.as_mut(), cut.at, a.dry_run).map_err(db_failure)?;
        out.line(&db::prune::line(&p, &db.url, a.dry_run));
        if a.spool.is_empty() {
            return Ok(());
        }
    }
    let what = format!(
        "{} day files, {} quarantined messages, {} duplicate markers",
        t.days, t.messages, t.markers
    );
    if a.dry_run {
        out.line(&format!(
            "would remove {what}: {} bytes would be freed",
            t.bytes
        ));
    } else {
        out.line(&format!("removed {what}: {} bytes freed", t.bytes));
    }
    if t.failures > 0 {
        return Err(Failure::failed(format!(
            "{} could not be removed or read (see above)",
            plural(t.failures, "thing")
        )));
    }
    Ok(())
}

fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// Opens `--db` without creating anything: a SQLite file must exist (a load made it).
fn open_db(url: &str) -> Result<Db, Failure> {
    // No database yet (a fresh install whose first load has not run): deferred, as
    // the next run after a load will find it.
    if let Some(path) = url.strip_prefix("sqlite://")
        && !path.is_empty()
        && !std::path::Path::new(path).exists()
    {
        return Err(Failure::tempfail(format!(
            "{path}: no such database yet (has `tlsrpt load` run?)"
        )));
    }
    let mut store = db::open_write(url, false).map_err(db_failure)?;
    // The schema is brought to the version this tlsrpt writes (prune carries counters
    // into its tables), as a load would.
    store.migrate().map_err(db_failure)?;
    Ok(Db {
        url: url.to_owned(),
        store,
    })
}

/// Is a day file loaded completely? The checkpoint is at its end: its length, or
/// `complete` (just past its last whole line) when a torn last line, which no load
/// reads, follows.
fn loaded(checkpoint: Option<(u64, u64)>, stat: &Stat, complete: u64) -> bool {
    checkpoint.is_some_and(|(ino, read_to)| {
        ino == stat.ino && (read_to == stat.len || read_to == complete)
    })
}

fn not_loaded(d: &Dir, url: &str) -> String {
    format!(
        "not loaded yet into {url} (run: tlsrpt load --spool {} --db {url})",
        d.path.display()
    )
}

/// Reads one spool (nothing is changed) and returns what can go; day files that are
/// old enough but stay are printed with their reason. `keep(name, stat, complete)`
/// gives the database's reason to keep a day file, if any.
fn plan(
    d: &Dir,
    cut: &Cut,
    t: &mut Totals,
    keep: impl Fn(&str, &Stat, u64) -> Option<String>,
    out: &mut Out,
) -> Plan {
    let mut p = Plan::default();
    let names = match d.names() {
        Ok(n) => n,
        Err(e) => {
            crate::spool::warn(&format!("{}: cannot read spool: {e}", d.path.display()));
            t.failures += 1;
            return p;
        }
    };
    for name in &names {
        let Some(day) = crate::spool::day_of(name) else {
            continue;
        };
        if day >= cut.day || day >= cut.yesterday {
            continue;
        }
        let shown = d.shown(name);
        let stat = match d.stat(name) {
            Ok(Some(s)) => s,
            Ok(None) => continue,
            Err(e) => {
                crate::spool::warn(&format!("{shown}: cannot stat: {e}"));
                t.failures += 1;
                continue;
            }
        };
        if !stat.regular {
            out.line(&format!("kept {shown}: not a regular file"));
            continue;
        }
        let file = DayFile {
            path: d.path.join(name),
            day,
        };
        let mut newest: Option<i64> = None;
        let mut skipped = Skipped::default();
        let complete = crate::spool::read_lines(&file, 0, Share::ALL, &mut skipped, |_, line| {
            // A line that is not a record does not keep the file.
            if let Ok(r) = crate::record::parse(line) {
                newest = newest.max(Some(r.end));
            }
            Ok(())
        });
        if skipped.files > 0 {
            out.line(&format!("kept {shown}: cannot be read"));
            t.failures += 1;
            continue;
        }
        if let Some(end) = newest.filter(|&e| e >= cut.at) {
            out.line(&format!(
                "kept {shown}: holds a report ending {}, after the cut",
                window::rfc3339(end)
            ));
            continue;
        }
        if let Some(why) = keep(name, &stat, complete) {
            out.line(&format!("kept {shown}: {why}"));
            continue;
        }
        p.days.push(DayItem {
            name: name.clone(),
            stat,
            complete,
        });
    }
    plan_quarantine(d, cut, t, &mut p);
    plan_markers(d, cut, t, &mut p);
    p
}

fn plan_quarantine(d: &Dir, cut: &Cut, t: &mut Totals, p: &mut Plan) {
    let q = match d.subdir(spool::QUARANTINE_DIR) {
        Ok(Some(q)) => q,
        Ok(None) => return,
        Err(e) => {
            crate::spool::warn(&format!(
                "{}: cannot open: {e}",
                d.shown(spool::QUARANTINE_DIR)
            ));
            t.failures += 1;
            return;
        }
    };
    let names = match q.names() {
        Ok(n) => n,
        Err(e) => {
            crate::spool::warn(&format!("{}: cannot read: {e}", q.path.display()));
            t.failures += 1;
            return;
        }
    };
    // NAME → its files; a message goes only when all of them are old.
    let mut by_stem: BTreeMap<&str, Stem> = BTreeMap::new();
    for name in &names {
        let Some((stem, _)) = spool::quarantine_name(name) else {
            continue;
        };
        let entry = by_stem.entry(stem).or_default();
        match q.stat(name) {
            Ok(Some(s)) if s.regular && s.mtime < cut.at => entry.files.push((name.clone(), s)),
            Ok(None) => {}
            Ok(Some(_)) => entry.keep = true, // recent, or not a regular file: keep the message
            Err(e) => {
                crate::spool::warn(&format!("{}: cannot stat: {e}", q.shown(name)));
                t.failures += 1;
                entry.keep = true;
            }
        }
    }
    for (_, Stem { mut files, keep }) in by_stem {
        if keep || files.is_empty() {
            continue;
        }
        // The message before its reason.
        files.sort_by_key(|(n, _)| !n.ends_with(".eml"));
        p.messages.push(Message { files });
    }
    p.quarantine = Some(q);
}

fn plan_markers(d: &Dir, cut: &Cut, t: &mut Totals, p: &mut Plan) {
    let seen = match d.subdir(spool::SEEN_DIR) {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            crate::spool::warn(&format!("{}: cannot open: {e}", d.shown(spool::SEEN_DIR)));
            t.failures += 1;
            return;
        }
    };
    let fans = match seen.names() {
        Ok(n) => n,
        Err(e) => {
            crate::spool::warn(&format!("{}: cannot read: {e}", seen.path.display()));
            t.failures += 1;
            return;
        }
    };
    for fan in fans.iter().filter(|f| spool::fan_name(f)) {
        let dir = match seen.subdir(fan) {
            Ok(Some(x)) => x,
            Ok(None) => continue,
            Err(e) => {
                crate::spool::warn(&format!("{}: cannot open: {e}", seen.shown(fan)));
                t.failures += 1;
                continue;
            }
        };
        let names = match dir.names() {
            Ok(n) => n,
            Err(e) => {
                crate::spool::warn(&format!("{}: cannot read: {e}", dir.path.display()));
                t.failures += 1;
                continue;
            }
        };
        let index = p.fans.len();
        for name in names.into_iter().filter(|n| spool::marker_name(fan, n)) {
            match dir.stat(&name) {
                Ok(Some(s)) if s.regular && s.mtime < cut.at => p.markers.push(Marker {
                    fan: index,
                    name,
                    stat: s,
                }),
                Ok(_) => {}
                Err(e) => {
                    crate::spool::warn(&format!("{}: cannot stat: {e}", dir.shown(&name)));
                    t.failures += 1;
                }
            }
        }
        p.fans.push(dir);
    }
}

/// `--dry-run`: the plan, printed.
fn dry(d: &Dir, p: &Plan, t: &mut Totals, out: &mut Out) {
    for f in &p.days {
        out.removed(true, &d.shown(&f.name), f.stat.len);
        t.days += 1;
        t.bytes += f.stat.len;
    }
    if let Some(q) = &p.quarantine {
        for m in &p.messages {
            for (name, s) in &m.files {
                out.removed(true, &q.shown(name), s.len);
                t.bytes += s.len;
            }
            t.messages += 1;
        }
    }
    for m in &p.markers {
        out.removed(true, &p.fans[m.fan].shown(&m.name), m.stat.len);
        t.markers += 1;
        t.bytes += m.stat.len;
    }
}

/// Is `name` in `dir` still the file planned, and still old? (Under the lock.)
fn unchanged(dir: &Dir, name: &str, was: &Stat, cut: &Cut) -> Result<bool, String> {
    match dir.stat(name) {
        Ok(Some(s)) => Ok(s.regular && s.ino == was.ino && s.len == was.len && s.mtime < cut.at),
        Ok(None) => Ok(false),
        Err(e) => Err(format!("{}: cannot stat: {e}", dir.shown(name))),
    }
}

/// Removes the plan of one spool, under its lock.
fn act(
    d: &Dir,
    spool_name: &str,
    p: &Plan,
    cut: &Cut,
    mut db: Option<&mut Db>,
    t: &mut Totals,
    out: &mut Out,
) -> Result<(), Failure> {
    for f in &p.days {
        remove_day(d, spool_name, f, db.as_deref_mut(), t, out)?;
    }
    if let Some(q) = &p.quarantine {
        for batch in p.messages.chunks(BATCH) {
            let Some(_lock) = take_lock(d, t) else {
                continue;
            };
            let mut removed_any = false;
            for m in batch {
                let mut ok = true;
                for (name, s) in &m.files {
                    match unchanged(q, name, s, cut) {
                        Ok(true) => {}
                        Ok(false) => ok = false,
                        Err(e) => {
                            crate::spool::warn(&e);
                            t.failures += 1;
                            ok = false;
                        }
                    }
                }
                if !ok {
                    continue;
                }
                let mut all = true;
                for (name, s) in &m.files {
                    if unlink(q, name, s.len, t, out) {
                        removed_any = true;
                    } else {
                        all = false;
                    }
                }
                if all {
                    t.messages += 1;
                }
            }
            if removed_any {
                sync(q, t);
            }
        }
    }
    for batch in p.markers.chunks(BATCH) {
        let Some(_lock) = take_lock(d, t) else {
            continue;
        };
        let mut touched = vec![false; p.fans.len()];
        for m in batch {
            let dir = &p.fans[m.fan];
            match unchanged(dir, &m.name, &m.stat, cut) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => {
                    crate::spool::warn(&e);
                    t.failures += 1;
                    continue;
                }
            }
            if unlink(dir, &m.name, m.stat.len, t, out) {
                t.markers += 1;
                touched[m.fan] = true;
            }
        }
        for (i, dir) in p.fans.iter().enumerate() {
            if touched[i] {
                sync(dir, t);
            }
        }
    }
    Ok(())
}

/// One day file: under the database's lock of that file (with `--db`), then the spool
/// lock; checked again, its checkpoint forgotten, unlinked, the directory synced, the
/// spool lock released, the transaction committed.
fn remove_day(
    d: &Dir,
    spool_name: &str,
    f: &DayItem,
    mut db: Option<&mut Db>,
    t: &mut Totals,
    out: &mut Out,
) -> Result<(), Failure> {
    let shown = d.shown(&f.name);
    if let Some(db) = db.as_deref_mut() {
        db.store
            .begin(spool_name, &f.name, false)
            .map_err(db_failure)?;
    }
    let rollback = |db: Option<&mut Db>| {
        if let Some(db) = db {
            db.store.rollback();
        }
    };
    let Some(lock) = take_lock(d, t) else {
        rollback(db);
        return Ok(());
    };
    match d.stat(&f.name) {
        Ok(Some(s)) if s.regular && s.ino == f.stat.ino && s.len == f.stat.len => {}
        Ok(_) => {
            drop(lock);
            rollback(db);
            out.line(&format!("kept {shown}: changed while pruning"));
            return Ok(());
        }
        Err(e) => {
            drop(lock);
            rollback(db);
            crate::spool::warn(&format!("{shown}: cannot stat: {e}"));
            t.failures += 1;
            return Ok(());
        }
    }
    if let Some(db) = db.as_deref_mut() {
        // Reread under the file's lock: a load may have moved it since.
        let cp = db.store.checkpoint(spool_name, &f.name);
        let cp = match cp {
            Ok(cp) => cp,
            Err(e) => {
                drop(lock);
                db.store.rollback();
                return Err(db_failure(e));
            }
        };
        if !loaded(cp, &f.stat, f.complete) {
            drop(lock);
            db.store.rollback();
            out.line(&format!("kept {shown}: {}", not_loaded(d, &db.url)));
            return Ok(());
        }
        if let Err(e) = db.store.forget_checkpoint(spool_name, &f.name) {
            drop(lock);
            db.store.rollback();
            return Err(db_failure(e));
        }
    }
    if !unlink(d, &f.name, f.stat.len, t, out) {
        drop(lock);
        rollback(db);
        return Ok(());
    }
    sync(d, t);
    drop(lock);
    t.days += 1;
    if let Some(db) = db
        && let Err(e) = db.store.commit()
    {
        db.store.rollback();
        return Err(Failure::tempfail(format!(
            "{shown} was removed, but its load checkpoint could not be deleted: {}",
            e.msg
        )));
    }
    Ok(())
}

fn take_lock(d: &Dir, t: &mut Totals) -> Option<spool::Lock> {
    match spool::lock(d, LOCK_TIMEOUT) {
        Ok(l) => Some(l),
        Err(m) => {
            crate::spool::warn(&m);
            t.failures += 1;
            None
        }
    }
}

/// Unlinks one planned file and says so; false (warned, counted) when it failed.
fn unlink(dir: &Dir, name: &str, len: u64, t: &mut Totals, out: &mut Out) -> bool {
    match dir.unlink(name) {
        Ok(()) => {
            out.removed(false, &dir.shown(name), len);
            t.bytes += len;
            true
        }
        Err(e) => {
            crate::spool::warn(&format!("{}: cannot remove: {e}", dir.shown(name)));
            t.failures += 1;
            false
        }
    }
}

fn sync(dir: &Dir, t: &mut Totals) {
    if let Err(e) = dir.sync() {
        crate::spool::warn(&format!("{}: fsync: {e}", dir.path.display()));
        t.failures += 1;
    }
}

/// stdout, line by line (a long run shows its progress); a closed pipe is ignored.
struct Out;

impl Out {
    fn line(&mut self, s: &str) {
        let mut o = std::io::stdout().lock();
        let _ = o.write_all(s.as_bytes()).and_then(|_| o.write_all(b"\n"));
        let _ = o.flush();
    }

    fn removed(&mut self, dry: bool, path: &str, len: u64) {
        let verb = if dry { "would remove" } else { "removed" };
        self.line(&format!("{verb} {path} ({len} bytes)"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts() {
        let now = 100 * DAY + 3600;
        assert!(Cut::new("1d", now).is_err());
        assert!(Cut::new("47h", now).is_err());
        let c = Cut::new("2d", now).unwrap();
        assert_eq!(
            (c.at, c.day, c.yesterday),
            (98 * DAY + 3600, 98 * DAY, 99 * DAY)
        );
        assert!(Cut::new("1970-01-02", now).is_ok());
        assert_eq!(Cut::new("x", now).unwrap_err().status, 2);
    }

    #[test]
    fn loaded_at_the_end() {
        let s = Stat {
            regular: true,
            ino: 7,
            len: 100,
            mtime: 0,
        };
        assert!(loaded(Some((7, 100)), &s, 100));
        assert!(loaded(Some((7, 90)), &s, 90)); // a torn tail follows
        assert!(!loaded(Some((7, 90)), &s, 100));
        assert!(!loaded(Some((8, 100)), &s, 100));
        assert!(!loaded(None, &s, 100));
    }
}
