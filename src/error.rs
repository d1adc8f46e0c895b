//! Local failures and the one table that maps every outcome to an exit status.
//!
//! The exit status is the contract with the MTA (see mta-integration.md): 0 and 75 are
//! the only codes Postfix pipe(8) and Exim's pipe transport read the same way. So 0
//! means "stored, or deliberately set aside", and every local failure is 75
//! (EX_TEMPFAIL): the MTA keeps the message and retries, and nothing is lost. A bad
//! report is never an error here: it is quarantined and the delivery succeeds.

use std::fmt;
use std::io;

/// sysexits.h EX_OK.
pub const EX_OK: u8 = 0;
/// sysexits.h EX_TEMPFAIL: "deferred, retried" under both Postfix and Exim.
pub const EX_TEMPFAIL: u8 = 75;
/// sysexits.h EX_DATAERR, only with `--leave-unrecognized`: "this message is not a TLS
/// report". Mail retrievers (fetchmail, getmail) delete a message only after exit 0, so
/// it stays in the mailbox; an MTA would bounce it, hence opt-in.
pub const EX_DATAERR: u8 = 65;

/// A local failure: the message must stay with the MTA.
#[derive(Debug)]
pub enum Error {
    /// Bad command line or configuration. Deferred, not bounced: the operator fixes
    /// master.cf and the queued reports are delivered after all.
    Usage(String),
    /// Running as root without `--user`, or the switch to that user failed.
    Privileges(String),
    /// Standard input could not be read.
    Input(io::Error),
    /// A spool operation failed (`op` names it; `path` is operator-configured or ours).
    Spool {
        op: &'static str,
        path: String,
        source: io::Error,
    },
    /// A spool file or directory that must not be used (symlink, hard link, world-writable).
    Unsafe { path: String, why: &'static str },
    /// Another delivery held the spool lock for too long.
    LockTimeout { path: String, secs: u64 },
    /// A bug: a caught panic. Still a deferral, never exit 101 (which bounces).
    Panic(String),
}

impl Error {
    pub fn spool(op: &'static str, path: impl fmt::Display, source: impl Into<io::Error>) -> Self {
        Error::Spool {
            op,
            path: path.to_string(),
            source: source.into(),
        }
    }

    /// The one place an error becomes an exit status.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_)
            | Error::Privileges(_)
            | Error::Input(_)
            | Error::Spool { .. }
            | Error::Unsafe { .. }
            | Error::LockTimeout { .. }
            | Error::Panic(_) => EX_TEMPFAIL,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(m) => write!(f, "usage: {m}"),
            Error::Privileges(m) => write!(f, "privileges: {m}"),
            Error::Input(e) => write!(f, "cannot read message from stdin: {e}"),
            Error::Spool { op, path, source } => write!(f, "spool: cannot {op} {path}: {source}"),
            Error::Unsafe { path, why } => write!(f, "spool: refusing {path}: {why}"),
            Error::LockTimeout { path, secs } => {
                write!(
                    f,
                    "spool: lock {path} still held by another delivery after {secs}s"
                )
            }
            Error::Panic(m) => write!(f, "internal error: {m}"),
        }
    }
}

impl std::error::Error for Error {}
