//! Records → durable JSON Lines in the spool directory; messages → quarantine.
//!
//! Guarantees, in the manner of Postfix local(8):
//! - One exclusive `flock` on `DIR/.lock` serialises every delivery, so concurrent
//!   deliveries never interleave and the duplicate check and the append are atomic.
//! - A day file is opened relative to the spool directory with `O_NOFOLLOW`, then
//!   checked: a regular file, one link, owned by us. Names are ours (`YYYY-MM-DD.jsonl`,
//!   hex hashes); no text from a message ever reaches a path.
//! - An append is one `write` of whole lines followed by `fsync`. If either fails, the
//!   file is truncated back to its previous length and the error makes the caller exit
//!   75. A writer killed mid-line (SIGKILL) leaves a partial tail that the next writer
//!   trims back to the last newline, under the lock, before it appends: that line was
//!   never acknowledged to the MTA, which still holds the message.
//! - Duplicate markers (`.seen/ab/abcd...`) are created only after the records are
//!   durable. A crash between the two can store a report twice, never lose it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag, openat, renameat};
use nix::sys::stat::{Mode, fchmod, mkdirat};
use nix::unistd::{UnlinkatFlags, fdatasync, fsync, ftruncate, geteuid, unlinkat};

use crate::error::Error;

// The names and modes are the layout's (crate::layout), shared with the operator.
pub use crate::layout::QUARANTINE_DIR;
use crate::layout::{DIR_MODE, FILE_MODE, LOCK_FILE, SEEN_DIR};

/// Spool settings from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub lock_timeout: Duration,
    /// `false` only for benchmarks: without fsync a crash can lose acknowledged reports.
    pub fsync: bool,
}

pub struct Spool {
    dir: File,
    path: PathBuf,
    opts: Options,
}

/// The exclusive spool lock; released on drop (and by the kernel if we die).
pub struct Lock(#[allow(dead_code)] Flock<File>);

/// One record to append, with its duplicate key (lowercase hex).
pub struct Entry {
    pub key: String,
    /// One JSON line including its final `\n`.
    pub line: Vec<u8>,
}

/// Which entries were appended and which were already in the spool.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Stored {
    pub stored: Vec<usize>,
    pub duplicates: Vec<usize>,
}

/// Splits entries into new ones and duplicates: a key seen earlier in the same batch, or
/// one `seen` says the spool already holds. Shared by the delivery and `--dry-run`, so
/// both tell the same story.
pub fn classify(
    entries: &[Entry],
    mut seen: impl FnMut(&str) -> Result<bool, Error>,
) -> Result<Stored, Error> {
    let mut out = Stored::default();
    for (i, e) in entries.iter().enumerate() {
        let dup_in_batch = entries[..i].iter().any(|p| p.key == e.key);
        if dup_in_batch || seen(&e.key)? {
            out.duplicates.push(i);
        } else {
            out.stored.push(i);
        }
    }
    Ok(out)
}

/// Read-only duplicate check for `--dry-run`: is there a marker for `key` under `dir`?
/// No lock is taken and nothing is created; a spool that cannot be read counts as empty.
pub fn seen_readonly(dir: &Path, key: &str) -> bool {
    let (fan, name) = Spool::seen_path(key);
    std::fs::symlink_metadata(dir.join(SEEN_DIR).join(fan).join(name)).is_ok()
}

fn cflags() -> OFlag {
    OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC
}

fn mode(bits: u32) -> Mode {
    Mode::from_bits_truncate(bits)
}

/// Creates the spool directory with mode 0750 (`--create-spool`). Returns whether it
/// was created; an existing one is left as it is.
pub fn create_dir(path: &Path) -> Result<bool, Error> {
    match std::fs::create_dir(path) {
        Ok(()) => {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(DIR_MODE))
                .map_err(|e| Error::spool("set mode of", path.display(), e))?;
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::spool("create", path.display(), e)),
    }
}

impl Spool {
    /// Opens the spool directory and checks it. With `create`, a missing directory is
    /// made (mode 0750).
    pub fn open(path: &Path, opts: Options, create: bool) -> Result<Spool, Error> {
        let shown = path.display().to_string();
        if create {
            create_dir(path)?;
        }
        // The spool path itself is the operator's choice and may be a symlink; what
        // is opened inside it never follows one.
        let fd = nix::fcntl::open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::spool("open spool directory", &shown, e))?;
        let dir = File::from(fd);
        let meta = dir
            .metadata()
            .map_err(|e| Error::spool("stat", &shown, e))?;
        if meta.mode() & 0o002 != 0 {
            return Err(Error::Unsafe {
                path: shown,
                why: "spool directory is world-writable",
            });
        }
        Ok(Spool {
            dir,
            path: path.to_owned(),
            opts,
        })
    }

    fn shown(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }

    /// Takes the exclusive spool lock, polling until `lock_timeout`.
    pub fn lock(&self) -> Result<Lock, Error> {
        let f = self.open_file(
            &self.dir,
            LOCK_FILE,
            OFlag::O_RDWR | OFlag::O_CREAT,
            LOCK_FILE,
        )?;
        let start = Instant::now();
        let mut f = f;
        loop {
            match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
                Ok(l) => return Ok(Lock(l)),
                Err((back, Errno::EWOULDBLOCK)) if start.elapsed() < self.opts.lock_timeout => {
                    f = back;
                    sleep(Duration::from_millis(5));
                }
                Err((_, Errno::EWOULDBLOCK)) => {
                    return Err(Error::LockTimeout {
                        path: self.shown(LOCK_FILE),
                        secs: self.opts.lock_timeout.as_secs(),
                    });
                }
                Err((_, e)) => return Err(Error::spool("lock", self.shown(LOCK_FILE), e)),
            }
        }
    }

    /// Opens `name` inside `dir` without following a symlink and checks what was
    /// opened: a regular file with one link, owned by us. New files get mode 0640.
    fn open_file(&self, dir: &File, name: &str, flags: OFlag, shown: &str) -> Result<File, Error> {
        let fd =
            openat(dir.as_fd(), name, flags | cflags(), mode(FILE_MODE)).map_err(|e| match e {
                Errno::ELOOP => Error::Unsafe {
                    path: self.shown(shown),
                    why: "is a symbolic link",
                },
                e => Error::spool("open", self.shown(shown), e),
            })?;
        let f = File::from(fd);
        let meta = f
            .metadata()
            .map_err(|e| Error::spool("stat", self.shown(shown), e))?;
        if !meta.file_type().is_file() {
            return Err(Error::Unsafe {
                path: self.shown(shown),
                why: "is not a regular file",
            });
        }
        if meta.nlink() != 1 {
            return Err(Error::Unsafe {
                path: self.shown(shown),
                why: "has more than one hard link",
            });
        }
        if meta.uid() != geteuid().as_raw() {
            return Err(Error::Unsafe {
                path: self.shown(shown),
                why: "is owned by another user",
            });
        }
        if meta.len() == 0 && meta.mode() & 0o777 != FILE_MODE {
            fchmod(f.as_fd(), mode(FILE_MODE))
                .map_err(|e| Error::spool("set mode of", self.shown(shown), e))?;
        }
        Ok(f)
    }

    /// Opens (creating with mode 0750 if needed) a subdirectory without following a
    /// symlink.
    fn subdir(&self, parent: &File, name: &str, shown: &str) -> Result<File, Error> {
        match mkdirat(parent.as_fd(), name, mode(DIR_MODE)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(Error::spool("create directory", self.shown(shown), e)),
        }
        let fd = openat(
            parent.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | cflags(),
            Mode::empty(),
        )
        .map_err(|e| match e {
            Errno::ELOOP | Errno::ENOTDIR => Error::Unsafe {
                path: self.shown(shown),
                why: "is not a plain directory",
            },
            e => Error::spool("open directory", self.shown(shown), e),
        })?;
        let d = File::from(fd);
        let meta = d
            .metadata()
            .map_err(|e| Error::spool("stat", self.shown(shown), e))?;
        if meta.mode() & 0o002 != 0 {
            return Err(Error::Unsafe {
                path: self.shown(shown),
                why: "is world-writable",
            });
        }
        Ok(d)
    }

    fn seen_path(key: &str) -> (&str, &str) {
        crate::layout::marker(key)
    }

    /// Has a record with this key been stored before? Caller holds the lock.
    fn seen(&self, key: &str) -> Result<bool, Error> {
        let (fan, name) = Self::seen_path(key);
        let rel = format!("{SEEN_DIR}/{fan}/{name}");
        match nix::sys::stat::fstatat(
            self.dir.as_fd(),
            rel.as_str(),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        ) {
            Ok(_) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(e) => Err(Error::spool("check duplicate marker", self.shown(&rel), e)),
        }
    }

    fn mark_seen(&self, key: &str) -> Result<(), Error> {
        let (fan, name) = Self::seen_path(key);
        let seen = self.subdir(&self.dir, SEEN_DIR, SEEN_DIR)?;
        let shown = format!("{SEEN_DIR}/{fan}");
        let fan_dir = self.subdir(&seen, fan, &shown)?;
        match openat(
            fan_dir.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | cflags(),
            mode(FILE_MODE),
        ) {
            Ok(_) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(Error::spool(
                "create duplicate marker",
                self.shown(&format!("{shown}/{name}")),
                e,
            )),
        }
    }

    /// Appends the entries not seen before to `DIR/<day>.jsonl`, durably. Caller holds
    /// the lock. Returns which were stored and which were duplicates.
    pub fn append(&self, _lock: &Lock, day: &str, entries: &[Entry]) -> Result<Stored, Error> {
        let out = classify(entries, |key| self.seen(key))?;
        if out.stored.is_empty() {
            return Ok(out);
        }
        let name = crate::layout::day_file(day);
        let mut f = self.open_file(
            &self.dir,
            &name,
            OFlag::O_RDWR | OFlag::O_APPEND | OFlag::O_CREAT,
            &name,
        )?;
        let shown = self.shown(&name);
        let mut len = f
            .metadata()
            .map_err(|e| Error::spool("stat", &shown, e))?
            .len();
        if len > 0 {
            len = self.trim_partial_tail(&f, len, &shown)?;
        }
        crate::fault::point("after-lock");
        if crate::fault::armed_at("mid-write") {
            let first = &entries[out.stored[0]].line;
            let _ = f.write_all(&first[..first.len() / 2]);
            crate::fault::point("mid-write");
        }
        // Line by line, not one concatenated buffer: a large report's line is as big
        // as the report, and the lock already keeps other writers out.
        let result = out
            .stored
            .iter()
            .try_for_each(|&i| f.write_all(&entries[i].line))
            .map_err(|e| Error::spool("append to", &shown, e))
            .and_then(|()| {
                if self.opts.fsync {
                    crate::fault::point("after-write");
                    fdatasync(f.as_fd()).map_err(|e| Error::spool("fsync", &shown, e))
                } else {
                    Ok(())
                }
            });
        if result.is_ok() && !self.opts.fsync {
            crate::fault::point("after-write");
        }
        if let Err(e) = result {
            // Leave no partial record behind: back to the length before this append.
            let _ = ftruncate(f.as_fd(), len as i64);
            let _ = fsync(f.as_fd());
            return Err(e);
        }
        if len == 0 && self.opts.fsync {
            // A new file: make its directory entry durable too.
            fsync(self.dir.as_fd()).map_err(|e| Error::spool("fsync", self.path.display(), e))?;
        }
        crate::fault::point("after-fsync");
        for &i in &out.stored {
            self.mark_seen(&entries[i].key)?;
        }
        crate::fault::point("after-mark");
        Ok(out)
    }

    /// A writer killed mid-append can leave a line without its `\n`. It was never
    /// acknowledged to the MTA, so it is cut back to the last complete line.
    fn trim_partial_tail(&self, f: &File, len: u64, shown: &str) -> Result<u64, Error> {
        let mut pos = len;
        let mut chunk = [0u8; 4096];
        loop {
            let start = pos.saturating_sub(chunk.len() as u64);
            let n = (pos - start) as usize;
            f.read_exact_at(&mut chunk[..n], start)
                .map_err(|e| Error::spool("read", shown, e))?;
            let keep = match chunk[..n].iter().rposition(|&c| c == b'\n') {
                Some(i) => start + i as u64 + 1,
                None if start == 0 => 0,
                None => {
                    pos = start;
                    continue;
                }
            };
            if keep != len {
                ftruncate(f.as_fd(), keep as i64)
                    .map_err(|e| Error::spool("truncate", shown, e))?;
            }
            return Ok(keep);
        }
    }

    /// Keeps a whole message under `DIR/quarantine/NAME.eml` with `NAME.json` beside it
    /// holding the reason. `head` is what was read into memory; `rest`, if any, is
    /// streamed after it up to `cap` bytes in all. Returns NAME. Both files are durable
    /// before this returns; on failure neither is left behind.
    pub fn quarantine(
        &self,
        name: &str,
        head: &[u8],
        rest: Option<&mut dyn Read>,
        cap: u64,
        meta: &serde_json::Value,
    ) -> Result<u64, Error> {
        let qdir = self.subdir(&self.dir, QUARANTINE_DIR, QUARANTINE_DIR)?;
        let (eml, json) = crate::layout::quarantine_files(name);
        let tmp = format!(".{name}.tmp");
        let shown = self.shown(&format!("{QUARANTINE_DIR}/{eml}"));
        let create = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL;
        let cleanup = |names: &[&str]| {
            for n in names {
                let _ = unlinkat(qdir.as_fd(), *n, UnlinkatFlags::NoRemoveDir);
            }
        };
        let result = (|| -> Result<u64, Error> {
            let mut f = self.open_file(&qdir, &tmp, create, &format!("{QUARANTINE_DIR}/{tmp}"))?;
            f.write_all(head)
                .map_err(|e| Error::spool("write", &shown, e))?;
            let mut written = head.len() as u64;
            let mut truncated = false;
            if let Some(r) = rest {
                let mut limited = r.take(cap.saturating_sub(written));
                written +=
                    io::copy(&mut limited, &mut f).map_err(|e| Error::spool("write", &shown, e))?;
                let mut probe = [0u8; 1];
                truncated = limited
                    .into_inner()
                    .read(&mut probe)
                    .map(|n| n > 0)
                    .unwrap_or(false);
            }
            if self.opts.fsync {
                fsync(f.as_fd()).map_err(|e| Error::spool("fsync", &shown, e))?;
            }
            let mut meta = meta.clone();
            meta["quarantined-bytes"] = written.into();
            meta["truncated"] = truncated.into();
            let mut j =
                self.open_file(&qdir, &json, create, &format!("{QUARANTINE_DIR}/{json}"))?;
            let mut text = serde_json::to_vec_pretty(&meta).unwrap_or_default();
            text.push(b'\n');
            j.write_all(&text)
                .map_err(|e| Error::spool("write", self.shown(&json), e))?;
            if self.opts.fsync {
                fsync(j.as_fd()).map_err(|e| Error::spool("fsync", self.shown(&json), e))?;
            }
            renameat(qdir.as_fd(), tmp.as_str(), qdir.as_fd(), eml.as_str())
                .map_err(|e| Error::spool("rename", &shown, e))?;
            if self.opts.fsync {
                fsync(qdir.as_fd())
                    .map_err(|e| Error::spool("fsync", self.shown(QUARANTINE_DIR), e))?;
            }
            Ok(written)
        })();
        if result.is_err() {
            cleanup(&[&tmp, &json]);
        }
        result
    }
}
