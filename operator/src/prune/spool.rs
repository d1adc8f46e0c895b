//! The spool side of `tlsrpt prune`: what in one spool directory is old enough to go,
//! and removing it under the delivery's own lock.
//!
//! Everything is reached relative to the spool directory's descriptor, never through a
//! symbolic link (the spool path itself is the operator's choice and may be one, as for
//! tlsrpt-pipe). Only names of the delivery's own shapes are considered:
//! `YYYY-MM-DD.jsonl`, `quarantine/NAME.eml` and `quarantine/NAME.json`, and
//! `.seen/ab/<64 lowercase hex digits starting with ab>`; only regular files are
//! removed, and each is checked again under the lock (same inode, same length for a day
//! file, still older than the cut) just before it is unlinked.

use std::fs::File;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, Flock, FlockArg, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};
use nix::unistd::{UnlinkatFlags, fsync, unlinkat};

// The delivery's own names (tlsrpt_pipe::layout): prune takes its lock and knows its
// files by the same definitions.
/// The mode tlsrpt-pipe gives the files it creates (the lock file, when prune makes it).
use tlsrpt_pipe::layout::FILE_MODE;
use tlsrpt_pipe::layout::LOCK_FILE;
pub use tlsrpt_pipe::layout::{QUARANTINE_DIR, SEEN_DIR, fan_name, marker_name, quarantine_name};

/// What `fstatat` says about one name, without following a link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    pub regular: bool,
    pub ino: u64,
    pub len: u64,
    pub mtime: i64,
}

impl From<FileStat> for Stat {
    fn from(s: FileStat) -> Stat {
        let kind = SFlag::from_bits_truncate(s.st_mode & SFlag::S_IFMT.bits());
        Stat {
            regular: kind == SFlag::S_IFREG,
            ino: s.st_ino,
            len: s.st_size as u64,
            mtime: s.st_mtime,
        }
    }
}

/// An open directory: its descriptor and how to show it.
pub struct Dir {
    pub fd: File,
    pub path: PathBuf,
}

impl Dir {
    /// `name` inside this directory, as shown to the operator.
    pub fn shown(&self, name: &str) -> String {
        self.path.join(name).display().to_string()
    }

    /// Metadata of `name` (not following a link); `None` when it does not exist.
    pub fn stat(&self, name: &str) -> Result<Option<Stat>, Errno> {
        match fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(s) => Ok(Some(s.into())),
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The names in this directory (not `.` and `..`; names that are not UTF-8 are not
    /// ours and are left out), sorted.
    pub fn names(&self) -> Result<Vec<String>, Errno> {
        let mut d = nix::dir::Dir::openat(
            self.fd.as_fd(),
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut out = Vec::new();
        for entry in d.iter() {
            let entry = entry?;
            if let Ok(name) = entry.file_name().to_str()
                && name != "."
                && name != ".."
            {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// A subdirectory, opened without following a link; `None` when it does not exist
    /// or is not a plain directory (then nothing in it is ours to remove).
    pub fn subdir(&self, name: &str) -> Result<Option<Dir>, Errno> {
        match openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(Dir {
                fd: File::from(fd),
                path: self.path.join(name),
            })),
            Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Reads at most `max` bytes of a regular file, without following a link.
    pub fn read(&self, name: &str, max: u64) -> Result<Vec<u8>, Errno> {
        use std::io::Read;
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK,
            Mode::empty(),
        )?;
        let f = File::from(fd);
        if !f.metadata().map(|m| m.is_file()).unwrap_or(false) {
            return Err(Errno::EINVAL);
        }
        let mut buf = Vec::new();
        f.take(max)
            .read_to_end(&mut buf)
            .map_err(|e| Errno::from_raw(e.raw_os_error().unwrap_or(5)))?;
        Ok(buf)
    }

    /// Removes a file (never a directory).
    pub fn unlink(&self, name: &str) -> Result<(), Errno> {
        unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir)
    }

    /// Makes removals in this directory durable.
    pub fn sync(&self) -> Result<(), Errno> {
        fsync(self.fd.as_fd())
    }
}

/// Opens a spool directory (following the path itself, as tlsrpt-pipe does) and returns
/// it with its owner's uid.
pub fn open(path: &Path) -> Result<(Dir, u32), String> {
    let fd = nix::fcntl::open(
        path,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("{}: cannot open spool: {e}", path.display()))?;
    let fd = File::from(fd);
    let meta = fd
        .metadata()
        .map_err(|e| format!("{}: cannot stat spool: {e}", path.display()))?;
    Ok((
        Dir {
            fd,
            path: path.to_owned(),
        },
        std::os::unix::fs::MetadataExt::uid(&meta),
    ))
}

/// The spool's exclusive lock, the one every delivery takes; released on drop.
pub struct Lock(#[allow(dead_code)] Flock<File>);

/// Takes the spool lock (`DIR/.lock`, made with tlsrpt-pipe's mode if missing),
/// polling until `timeout`.
pub fn lock(spool: &Dir, timeout: Duration) -> Result<Lock, String> {
    let shown = spool.shown(LOCK_FILE);
    let fd = openat(
        spool.fd.as_fd(),
        LOCK_FILE,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(FILE_MODE),
    )
    .map_err(|e| format!("cannot open {shown}: {e}"))?;
    let mut f = File::from(fd);
    let is_file = f.metadata().map(|m| m.is_file()).unwrap_or(false);
    if !is_file {
        return Err(format!("{shown} is not a regular file"));
    }
    let start = Instant::now();
    loop {
        match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
            Ok(l) => return Ok(Lock(l)),
            Err((back, Errno::EWOULDBLOCK)) if start.elapsed() < timeout => {
                f = back;
                sleep(Duration::from_millis(5));
            }
            Err((_, Errno::EWOULDBLOCK)) => {
                return Err(format!(
                    "{shown}: still locked after {} s (a delivery hangs?)",
                    timeout.as_secs()
                ));
            }
            Err((_, e)) => return Err(format!("cannot lock {shown}: {e}")),
        }
    }
}
