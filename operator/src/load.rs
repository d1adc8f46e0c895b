//! `tlsrpt load`: spool records → a database (SQLite by default, PostgreSQL to
//! centralise), incrementally, idempotently, crash-safely.
//!
//! Guarantees:
//! - **Schema**: crate::db (parsedmarc's tables exactly, ours beside them, the figure
//!   rows of every report in the same transaction as the report).
//! - **Trust**: a report is stored with the delivery's DKIM verdict, judged again with
//!   `--trusted-authserv-id` (crate::trust), and with the authserv-ids that would make
//!   it count, so that the read commands can apply a trust given later.
//! - **Stored once**: a report already present by parsedmarc's unique key
//!   (organisation, report id, begin, end) or by our dedup key is skipped, so two spools
//!   holding a report, a second run, and parsedmarc sharing the database all end with
//!   one copy.
//! - **Incremental, crash-safe**: per day file, one transaction inserts the new rows and
//!   moves the file's checkpoint (inode, bytes read) together; a run reads only bytes
//!   past the checkpoint; a torn last line is left for the next run. A kill at any point
//!   rolls back to the last commit, and the next run continues from there.
//! - **Concurrent**: each file's transaction holds a lock of that file (SQLite
//!   `BEGIN IMMEDIATE`, the database's one writer; PostgreSQL a two-key
//!   `pg_advisory_xact_lock` on the file) and rereads the checkpoint under it, so two
//!   loads at once, or the `--jobs` workers of one, neither corrupt nor double-insert.
//!   On PostgreSQL copies of one report loaded at once wait on each other's unique
//!   keys; the transaction that loses (a deadlock, a key committed first) is rolled back
//!   and rerun alone (see `crate::db::Writer::begin`), where it skips what the winner stored.

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::db::{DbError, DbResult, ReportRows, Writer};
use crate::spool::{self, Share, Skipped};
use crate::trust::Trust;

/// Reports handed to the store at once (bounds memory: ~1,000 records).
const BATCH: usize = 1000;

/// Transactions a day file gets before a lost race is an error (exit 75; the next run
/// starts over from the checkpoint). Reruns run alone, so the second attempt succeeds
/// but for a writer outside tlsrpt (parsedmarc) racing it.
const ATTEMPTS: usize = 3;

/// Why a load stopped.
#[derive(Debug)]
pub enum LoadError {
    /// The database refused the work (see crate::db::Trouble for the exit status).
    Database(DbError),
    /// Nothing could be read.
    NoSpool(String),
}

/// What a load did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    pub inserted: u64,
    pub already: u64,
    pub files_read: u64,
    pub bytes_read: u64,
    pub skipped_lines: u64,
    /// File transactions rerun after losing a race with a concurrent one.
    pub reruns: u64,
}

/// One day file with something new to load.
struct Work {
    spool: String,
    name: String,
    file: spool::DayFile,
    ino: u64,
    len: u64,
}

/// Loads every spool's new records, with up to `jobs` connections at once (PostgreSQL:
/// one server backend per connection, so the server's work, most of a load, spreads
/// over its cores; SQLite: one).
///
/// Day files are the unit of work and of transaction; they are handed out in name order
/// across spools, so copies of one report in two spools (same day file name) are mostly
/// loaded at the same time, the race the per-file locks and the retry exist for.
pub fn load(
    store: &mut dyn Writer,
    spools: &[PathBuf],
    jobs: usize,
    trust: &Trust,
) -> Result<Loaded, LoadError> {
    store.migrate().map_err(LoadError::Database)?;
    let mut work = pending(store, spools)?;
    work.sort_by(|a, b| (&a.name, &a.spool).cmp(&(&b.name, &b.spool)));
    let mut stores: Vec<Box<dyn Writer>> = Vec::new();
    while stores.len() + 1 < jobs.min(work.len()) {
        match store.another_writer() {
            Ok(Some(s)) => stores.push(s),
            Ok(None) => break,
            // A server at its connection limit still gets the load, with fewer workers.
            Err(e) => {
                spool::warn(&format!(
                    "another database connection failed, loading with {}: {e}",
                    stores.len() + 1
                ));
                break;
            }
        }
    }
    // Workers take the next file from one queue; after an error none takes another.
    let queue = std::sync::Mutex::new(work.into_iter());
    let failed = std::sync::atomic::AtomicBool::new(false);
    let worker = |store: &mut dyn Writer| -> Result<Loaded, DbError> {
        let mut done = Loaded::default();
        while !failed.load(std::sync::atomic::Ordering::Relaxed) {
            let next = queue.lock().unwrap_or_else(|p| p.into_inner()).next();
            let Some(w) = next else { break };
            match load_one(store, &w, trust) {
                Ok(l) => done.add(l),
                Err(e) => {
                    failed.store(true, std::sync::atomic::Ordering::Relaxed);
                    return Err(e);
                }
            }
        }
        Ok(done)
    };
    let results: Vec<Result<Loaded, DbError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = stores
            .iter_mut()
            .map(|s| scope.spawn(|| worker(s.as_mut())))
            .collect();
        let mut r = vec![worker(store)];
        r.extend(handles.into_iter().map(|h| {
            h.join()
                .unwrap_or_else(|_| Err(DbError::permanent("a load worker panicked")))
        }));
        r
    });
    let mut out = Loaded::default();
    for r in results {
        out.add(r.map_err(LoadError::Database)?);
    }
    Ok(out)
}

/// The day files of every spool with bytes past their checkpoint (or none yet). Fails
/// only when no spool directory at all could be read.
fn pending(store: &mut dyn Writer, spools: &[PathBuf]) -> Result<Vec<Work>, LoadError> {
    let mut readable = 0;
    let mut errors = Vec::new();
    let mut work = Vec::new();
    for dir in spools {
        let files = match spool::day_files(dir) {
            Ok(f) => f,
            Err(e) => {
                spool::warn(&format!("{}: cannot read spool: {e}", dir.display()));
                errors.push(format!("{}: {e}", dir.display()));
                continue;
            }
        };
        readable += 1;
        let spool_name = dir.display().to_string();
        let known = store
            .checkpoints(&spool_name)
            .map_err(LoadError::Database)?;
        for f in files {
            let name = f
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let Ok(meta) = std::fs::metadata(&f.path) else {
                continue;
            };
            let (ino, len) = (meta.ino(), meta.len());
            // Fast path, without the lock: nothing new in this file.
            if known.get(&name) == Some(&(ino, len)) {
                continue;
            }
            work.push(Work {
                spool: spool_name.clone(),
                name,
                file: f,
                ino,
                len,
            });
        }
    }
    if readable == 0 {
        return Err(LoadError::NoSpool(errors.join("; ")));
    }
    Ok(work)
}

impl Loaded {
    fn add(&mut self, o: Loaded) {
        self.inserted += o.inserted;
        self.already += o.already;
        self.files_read += o.files_read;
        self.bytes_read += o.bytes_read;
        self.skipped_lines += o.skipped_lines;
        self.reruns += o.reruns;
    }
}

/// One day file in one transaction, rerun from its checkpoint when it lost a race.
fn load_one(store: &mut dyn Writer, w: &Work, trust: &Trust) -> Result<Loaded, DbError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut l = Loaded::default();
        let r = store.begin(&w.spool, &w.name, attempt > 1).and_then(|()| {
            load_file(
                store,
                &w.spool,
                &w.name,
                &w.file,
                (w.ino, w.len),
                trust,
                &mut l,
            )?;
            store.commit()
        });
        match r {
            Ok(()) => {
                l.reruns = attempt as u64 - 1;
                return Ok(l);
            }
            Err(e) => {
                store.rollback();
                if !(e.retry && attempt < ATTEMPTS) {
                    return Err(e);
                }
            }
        }
    }
}

fn load_file(
    store: &mut dyn Writer,
    spool_name: &str,
    name: &str,
    f: &spool::DayFile,
    (ino, len): (u64, u64),
    trust: &Trust,
    out: &mut Loaded,
) -> DbResult<()> {
    // Under the lock: `tlsrpt prune` may have removed the file since the list was made
    // (it does so holding this lock); then there is nothing to load and no checkpoint
    // to keep.
    match std::fs::metadata(&f.path) {
        Ok(m) if m.ino() == ino => {}
        _ => return Ok(()),
    }
    // Reread under the lock: another load may have moved it.
    let from = match store.checkpoint(spool_name, name)? {
        Some((i, off)) if i == ino && off <= len => off,
        _ => 0, // new, or replaced: read it all (what is stored already is skipped)
    };
    if from == len {
        return Ok(());
    }
    let mut skipped = Skipped::default();
    let mut err = None;
    // Rows go to the store in batches (PostgreSQL inserts a batch in a few statements).
    let mut batch: Vec<ReportRows> = Vec::with_capacity(BATCH);
    let flush =
        |store: &mut dyn Writer, batch: &mut Vec<ReportRows>, out: &mut Loaded| -> DbResult<()> {
            let (new, old) = store.insert_batch(batch)?;
            out.inserted += new;
            out.already += old;
            batch.clear();
            Ok(())
        };
    let end = spool::read_lines(f, from, Share::ALL, &mut skipped, |_, line| {
        if err.is_some() {
            return Ok(());
        }
        let p = crate::record::parse(line)?;
        batch.push(ReportRows::new(&p, spool_name, line, trust));
        if batch.len() >= BATCH
            && let Err(e) = flush(store, &mut batch, out)
        {
            err = Some(e);
        }
        Ok(())
    });
    if err.is_none()
        && !batch.is_empty()
        && let Err(e) = flush(store, &mut batch, out)
    {
        err = Some(e);
    }
    if let Some(e) = err {
        return Err(e);
    }
    out.files_read += 1;
    out.bytes_read += end - from;
    out.skipped_lines += skipped.lines;
    store.set_checkpoint(spool_name, name, ino, end)
}
