//! Thin entry point: parse arguments, call `run`, map the result to an exit status in
//! one place. A panic anywhere becomes exit 75 (the MTA defers), never 101 (bounce).

#![deny(unsafe_code)]

use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

use tlsrpt_pipe::error::{EX_DATAERR, EX_OK, Error};
use tlsrpt_pipe::{cli::Cli, log::Logger, sanitize};

/// With a file-size limit (RLIMIT_FSIZE, which an MTA may set for its delivery agents)
/// an oversized write raises SIGXFSZ, whose default action kills the process: Exim
/// bounces a message whose pipe command died by a signal. Ignored, the write fails with
/// EFBIG instead, the append is rolled back and we exit 75 like any other full disk.
#[allow(unsafe_code)]
fn ignore_sigxfsz() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_IGN installs no handler code; called once, before any other thread.
    let _ = unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) };
}

fn main() -> ExitCode {
    ignore_sigxfsz();
    // Silence the default panic message: it is multi-line; we print one line instead.
    panic::set_hook(Box::new(|_| {}));
    let env = |k: &str| std::env::var(k).ok();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if tlsrpt_pipe::cgi::invoked_as_cgi(env) => {
            // A bad TLSRPT_* setting in the web server: the sender should retry later.
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("bad settings")
                .to_owned();
            let mut log = Logger::stderr();
            let _ = fail(&mut log, &Error::Usage(first));
            let r = tlsrpt_pipe::cgi::answer(Err(Error::Usage(String::new())), 600);
            let _ = r.write(&mut std::io::stdout().lock());
            return ExitCode::from(EX_OK);
        }
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            let _ = e.print();
            return ExitCode::from(EX_OK);
        }
        Err(e) => {
            // A typo in master.cf must defer the queue, not bounce every report.
            let first = e
                .to_string()
                .lines()
                .next()
                .unwrap_or("bad arguments")
                .to_owned();
            return fail(&mut Logger::stderr(), &Error::Usage(first));
        }
    };
    let mut log = Logger::new(
        &cli.syslog_facility,
        cli.syslog_socket.as_deref(),
        cli.syslog_format,
        cli.log_stderr,
    );
    if cli.cgi || tlsrpt_pipe::cgi::invoked_as_cgi(env) {
        // CGI: the HTTP status carries the outcome; the exit status is always 0.
        let req = tlsrpt_pipe::cgi::Request::from_env(env);
        let served = panic::catch_unwind(AssertUnwindSafe(|| {
            tlsrpt_pipe::cgi::serve(
                &cli,
                &req,
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
                &mut log,
            )
        }));
        if served.is_err() {
            let _ = fail(&mut log, &Error::Panic("in CGI mode".into()));
            let r = tlsrpt_pipe::cgi::answer(Err(Error::Panic(String::new())), cli.retry_after);
            let _ = r.write(&mut std::io::stdout().lock());
        }
        return ExitCode::from(EX_OK);
    }
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        tlsrpt_pipe::run(&cli, std::io::stdin().lock(), &mut log)
    }));
    match result {
        // Nothing stored, nothing set aside: not a TLS report. A retriever keeps it.
        Ok(Ok(out))
            if cli.leave_unrecognized
                && out.no_report.is_some()
                && out.stored == 0
                && out.duplicates == 0
                && out.quarantined.is_none() =>
        {
            ExitCode::from(EX_DATAERR)
        }
        Ok(Ok(_)) => ExitCode::from(EX_OK),
        Ok(Err(e)) => fail(&mut log, &e),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            fail(&mut log, &Error::Panic(what))
        }
    }
}

/// One sanitised line on stderr (Postfix and Exim put it in their logs) and in syslog.
fn fail(log: &mut Logger, e: &Error) -> ExitCode {
    let line = sanitize::clean(&e.to_string(), 400);
    if !log.is_stderr() {
        let msg = format!("status=deferred reason={}", sanitize::value(&line, 400));
        log.log(tlsrpt_pipe::log::Severity::Err, &msg, &[]);
    }
    tlsrpt_pipe::log::write_line(
        &mut std::io::stderr().lock(),
        &format!("tlsrpt-pipe: {line}"),
    );
    ExitCode::from(e.exit_code())
}
