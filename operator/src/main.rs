//! `tlsrpt`: the operator's side, spool → views. Parses the command line, runs the
//! command, and maps its result to the exit status in one place:
//! 0 done, 1 nothing could be read (or the digest could not be sent), 2 bad arguments.
//! A panic is reported on one line and exits 1, never with a backtrace.

#![forbid(unsafe_code)]

mod advice;
mod aggregate;
mod check;
mod check_domain;
mod check_record;
mod cli;
mod commands;
mod digest;
mod export;
mod facts;
mod live;
mod load;
mod metrics;
mod probe;
mod prune;
mod record;
mod render;
mod silence;
mod spool;
mod summary;
mod txt_record;
mod webpki;
mod window;

use std::process::ExitCode;

use clap::Parser;

/// A command's failure: the one line shown, and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub status: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            status: 2,
            message: message.into(),
        }
    }
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            status: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `tlsrpt check`, `check-record` and `check-domain` follow the monitoring-plugins codes: bad
            // arguments are UNKNOWN (3), with a plugin's first line; --help and --version
            // are not errors.
            let is_check = matches!(
                std::env::args().nth(1).as_deref(),
                Some("check" | "check-record" | "check-domain")
            );
            if is_check && e.use_stderr() {
                let text = e.to_string();
                let first = text.lines().next().unwrap_or("bad arguments");
                println!("TLSRPT UNKNOWN - {}", first.trim_start_matches("error: "));
                return ExitCode::from(3);
            }
            e.exit();
        }
    };
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(|| commands::run(cli));
    match result {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(f)) => {
            if f.message.starts_with("TLSRPT ") {
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
            let is_check = matches!(
                std::env::args().nth(1).as_deref(),
                Some("check" | "check-record" | "check-domain")
            );
            ExitCode::from(if is_check { 3 } else { 1 })
        }
    }
}
