//! Fault-injection points for the crash-safety tests.
//!
//! `TLSRPT_PIPE_FAULT=<point>` makes the process kill itself with SIGKILL (or panic,
//! for `panic`) when it reaches that point, so tests can prove that a delivery dying at
//! any step leaves no partial record and loses nothing. Unset (always, in production)
//! it costs one environment lookup per run.

use std::sync::OnceLock;

/// The points, in delivery order.
pub const POINTS: &[&str] = &[
    "panic",       // start of run(): a bug
    "after-lock",  // spool lock held, nothing written
    "mid-write",   // half of the new lines written
    "after-write", // all lines written, not yet fsynced
    "after-fsync", // durable, duplicate markers not yet created
    "after-mark",  // everything done, before quarantine and logging
];

fn armed() -> Option<&'static str> {
    static FAULT: OnceLock<Option<String>> = OnceLock::new();
    FAULT
        .get_or_init(|| std::env::var("TLSRPT_PIPE_FAULT").ok())
        .as_deref()
}

/// Is `point` armed? Used where the fault needs setting up (a half write).
pub fn armed_at(point: &str) -> bool {
    armed() == Some(point)
}

/// Dies here if `point` is armed.
pub fn point(point: &str) {
    if armed_at(point) {
        if point == "panic" {
            panic!("fault injected at {point}");
        }
        let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
    }
}
