//! The operator's exit statuses, in one table (as src/error.rs is for the delivery).
//!
//! | status | meaning | commands |
//! |---|---|---|
//! | 0 | done; for a plugin: OK | all |
//! | 1 | nothing could be read, a permanent local problem (a missing directory, no permission, a database that does not exist, an old schema), the digest not handed to sendmail, something not removed; for a plugin: WARNING | all |
//! | 2 | bad arguments; for a plugin: CRITICAL | all but plugins |
//! | 3 | a plugin could not decide (bad arguments, unreadable input, an internal error): UNKNOWN | plugins |
//! | 75 | EX_TEMPFAIL: the database could not be reached or was busy; the next run catches up | load, prune, and summary, metrics with --db |
//!
//! Plugins (`check`, `check-record`, `check-domain`, `watch`, `doctor`) follow the
//! monitoring-plugins guidelines: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN, and every
//! trouble that prevents an answer is 3 with a plugin's first line
//! (`TLSRPT UNKNOWN - ...`). A panic is one line on stderr and exits 1 (3 for plugins),
//! never a backtrace.

/// Done; a plugin's OK.
pub const OK: u8 = 0;
/// Nothing could be read, or a permanent local problem; a plugin's WARNING.
pub const FAILED: u8 = 1;
/// Bad arguments (not for plugins).
pub const USAGE: u8 = 2;
/// A plugin could not decide.
pub const UNKNOWN: u8 = 3;
/// EX_TEMPFAIL: try again later.
pub const TEMPFAIL: u8 = 75;

/// The commands that are monitoring plugins (their statuses are 0/1/2/3).
pub const PLUGINS: [&str; 5] = ["check", "check-record", "check-domain", "watch", "doctor"];

/// Is this subcommand (argv[1]) a monitoring plugin?
pub fn is_plugin(command: Option<&str>) -> bool {
    command.is_some_and(|c| PLUGINS.contains(&c))
}

/// A command's failure: the one line shown, and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub message: String,
    /// Printed on stdout as the plugin's first line, not on stderr.
    pub plugin_line: bool,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::with(USAGE, message)
    }
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure::with(FAILED, message)
    }
    pub fn tempfail(message: impl Into<String>) -> Failure {
        Failure::with(TEMPFAIL, message)
    }
    /// A plugin's UNKNOWN: `TLSRPT UNKNOWN - message` on stdout, exit 3.
    pub fn unknown(message: impl AsRef<str>) -> Failure {
        Failure {
            status: UNKNOWN,
            message: format!("TLSRPT UNKNOWN - {}", message.as_ref()),
            plugin_line: true,
        }
    }
    /// An exit status whose output was already written (a plugin's WARNING, say).
    pub fn quiet(status: u8) -> Failure {
        Failure::with(status, String::new())
    }
    pub fn with(status: u8, message: impl Into<String>) -> Failure {
        Failure {
            status,
            message: message.into(),
            plugin_line: false,
        }
    }
}
