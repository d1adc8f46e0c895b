//! The watch's memory on disk: `DIR/watch.json`, one document for every domain, written
//! whole and atomically (temporary file, fsync, rename) at the end of each run, so that
//! a crash leaves the previous run's memory, never a torn one. `DIR/watch.lock` (flock)
//! keeps two runs from interleaving; readers (`watch --history`, `summary`) need no lock.
//!
//! Nothing of a domain's name is in a path: one file holds them all. A state file that
//! cannot be read or parsed is an error naming it, never an empty memory (which would
//! make every change look new, or hide one).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::history::History;

/// The file names inside the state directory.
pub const STATE_FILE: &str = "watch.json";
pub const LOCK_FILE: &str = "watch.lock";
/// The largest state file read (1,000 domains of full history are a few MiB).
pub const MAX_STATE: u64 = 256 << 20;
/// The format; a later version's file is refused rather than misread.
pub const VERSION: u32 = 1;

/// Everything remembered.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    /// When the last run ended, and how long it took.
    #[serde(default, rename = "last-run")]
    pub last_run: i64,
    #[serde(default, rename = "last-duration-seconds")]
    pub last_duration: f64,
    #[serde(default)]
    pub domains: BTreeMap<String, History>,
}

/// The state directory, locked for one run.
pub struct Locked {
    dir: PathBuf,
    _lock: nix::fcntl::Flock<File>,
}

/// Reads the state without a lock (None: no run has written one yet).
pub fn read(dir: &Path) -> Result<Option<State>, String> {
    let path = dir.join(STATE_FILE);
    let f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut raw = Vec::new();
    f.take(MAX_STATE + 1)
        .read_to_end(&mut raw)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if raw.len() as u64 > MAX_STATE {
        return Err(format!(
            "{}: larger than {} MiB: not a state tlsrpt watch wrote",
            path.display(),
            MAX_STATE >> 20
        ));
    }
    let st: State = serde_json::from_slice(&raw).map_err(|e| {
        format!(
            "{}: not a watch state ({e}); move it away to start a new history",
            path.display()
        )
    })?;
    if st.version != VERSION {
        return Err(format!(
            "{}: state version {} (this tlsrpt reads {VERSION}): use the tlsrpt that wrote it",
            path.display(),
            st.version
        ));
    }
    Ok(Some(st))
}

/// Locks `dir` for a run (creating it, mode 0750, when only it is missing) and reads
/// the state. Another run holding the lock is an error: runs must not overlap.
pub fn open(dir: &Path) -> Result<(Locked, State), String> {
    match std::fs::DirBuilder::new().mode(0o750).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => {
            return Err(format!(
                "--state {}: {e} (create it, owned by the user watch runs as)",
                dir.display()
            ));
        }
    }
    let lock_path = dir.join(LOCK_FILE);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| {
            if e == nix::errno::Errno::EWOULDBLOCK {
                format!(
                    "{}: another tlsrpt watch is running (runs must not overlap: make the interval longer than a run)",
                    lock_path.display()
                )
            } else {
                format!("{}: lock: {e}", lock_path.display())
            }
        })?;
    let st = read(dir)?.unwrap_or(State {
        version: VERSION,
        ..State::default()
    });
    Ok((
        Locked {
            dir: dir.to_owned(),
            _lock: lock,
        },
        st,
    ))
}

/// Whether another run holds the lock of `dir` now.
pub fn busy(dir: &Path) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
        .open(dir.join(LOCK_FILE))
    else {
        return false;
    };
    matches!(
        nix::fcntl::Flock::lock(f, nix::fcntl::FlockArg::LockExclusiveNonblock),
        Err((_, nix::errno::Errno::EWOULDBLOCK))
    )
}

impl Locked {
    /// Writes the state atomically and durably.
    pub fn save(&self, st: &State) -> Result<(), String> {
        let path = self.dir.join(STATE_FILE);
        let json = serde_json::to_vec(st).map_err(|e| e.to_string())?;
        crate::metrics::write_atomic(&path, &json, 0o640)
            .map_err(|e| format!("{}: {e}", path.display()))
    }
}
