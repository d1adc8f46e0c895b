//! `tlsrpt`: the operator's side, spool → views. Parses the command line, runs the
//! command, and maps its result to the exit status in one place (crate::exit: 0 done,
//! 1 nothing could be read or a permanent local problem, 2 bad arguments, 75 the
//! database unreachable; the monitoring plugins 0 OK, 1 WARNING, 2 CRITICAL,
//! 3 UNKNOWN). A panic is reported on one line and exits 1 (3 for a plugin), never
//! with a backtrace.
//!
//! The data flows, by file: spool.rs (day files, read-only) → record.rs (a line's view)
//! → trust.rs (does it count) → aggregate.rs (figures by the counting rule) →
//! summary/ (collect.rs, then the document) → render/ (table, JSON, CSV, HTML),
//! check.rs, metrics.rs, export.rs; and load.rs (spool → db/) → db/ (figures summed by
//! the database) → the same document. check_record.rs, check_domain/, probe/ and
//! live.rs look at DNS and the domains' hosts live; watch/ does so on its own, with a
//! memory; doctor/ looks at the installation.

#![forbid(unsafe_code)]

mod advice;
mod aggregate;
mod check;
mod check_domain;
mod check_record;
mod cli;
mod commands;
mod db;
mod digest;
mod doctor;
mod exit;
mod export;
mod live;
mod load;
mod metrics;
mod ours;
mod probe;
mod prune;
mod quarantine;
mod record;
mod render;
mod silence;
mod spool;
mod summary;
mod trust;
mod txt_record;
mod watch;
mod webpki;
mod window;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let plugin = exit::is_plugin(std::env::args().nth(1).as_deref());
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // Bad arguments of a plugin are UNKNOWN (3), with a plugin's first line;
            // --help and --version are not errors.
            if plugin && e.use_stderr() {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("bad arguments");
                println!("TLSRPT UNKNOWN - {}", first.trim_start_matches("error: "));
                return ExitCode::from(exit::UNKNOWN);
            }
            e.exit();
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| commands::run(cli));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => {
            if f.plugin_line {
                println!("{}", f.message);
            } else if !f.message.is_empty() {
                eprintln!("tlsrpt: {}", f.message);
            }
            ExitCode::from(f.status)
        }
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            eprintln!("tlsrpt: internal error: {what}");
            // A plugin that cannot decide is UNKNOWN.
            ExitCode::from(if plugin { exit::UNKNOWN } else { exit::FAILED })
        }
    }
}
