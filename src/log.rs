//! Delivery log and alert lines → syslog (or stderr).
//!
//! Guarantee: logging never fails a delivery and never changes the exit status; the
//! spool write is the commit point. Every line is built from `sanitize`d values, so a
//! hostile report cannot add a line or a control sequence to the log. If no syslog
//! socket is reachable, or a send fails, the line goes to stderr instead.

use std::io::Write;
use std::path::Path;

use std::collections::BTreeMap;

use syslog::{Facility, Formatter3164, Formatter5424, LoggerBackend};

use crate::cli::SyslogFormat;

/// syslog severities this program uses (RFC 5424 §6.2.1), most severe first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Crit,
    Err,
    Warning,
    Notice,
    Info,
}

/// RFC 5424 structured data, as the syslog crate takes it.
type StructuredData = BTreeMap<String, BTreeMap<String, String>>;

/// RFC 5424 SD-ID for alert fields: `name@PEN`; 32473 is the documentation PEN (RFC 5612).
pub const SD_ID: &str = "tlsrpt@32473";

enum Sink {
    Rfc3164(syslog::Logger<LoggerBackend, Formatter3164>),
    Rfc5424(syslog::Logger<LoggerBackend, Formatter5424>),
    Stderr,
}

pub struct Logger {
    sink: Sink,
    pid: u32,
}

const PROCESS: &str = "tlsrpt-pipe";
const DEFAULT_SOCKETS: &[&str] = &["/dev/log", "/var/run/syslog", "/var/run/log"];

pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Crit => "crit",
        Severity::Err => "err",
        Severity::Warning => "warning",
        Severity::Notice => "notice",
        Severity::Info => "info",
    }
}

impl Logger {
    /// A logger writing to stderr only.
    pub fn stderr() -> Logger {
        Logger {
            sink: Sink::Stderr,
            pid: std::process::id(),
        }
    }

    /// Connects to the syslog socket; falls back to stderr when none answers.
    pub fn new(
        facility: &str,
        socket: Option<&Path>,
        format: SyslogFormat,
        to_stderr: bool,
    ) -> Logger {
        let pid = std::process::id();
        if to_stderr {
            return Logger {
                sink: Sink::Stderr,
                pid,
            };
        }
        let facility: Facility = facility.parse().unwrap_or(Facility::LOG_MAIL);
        let candidates: Vec<&Path> = match socket {
            Some(p) => vec![p],
            None => DEFAULT_SOCKETS.iter().map(Path::new).collect(),
        };
        for path in candidates {
            let sink = match format {
                SyslogFormat::Rfc3164 => {
                    let f = Formatter3164 {
                        facility,
                        hostname: None,
                        process: PROCESS.into(),
                        pid,
                    };
                    syslog::unix_custom(f, path).map(Sink::Rfc3164)
                }
                SyslogFormat::Rfc5424 => {
                    let hostname = std::fs::read_to_string("/etc/hostname")
                        .ok()
                        .map(|h| h.trim().to_owned());
                    let f = Formatter5424 {
                        facility,
                        hostname,
                        process: PROCESS.into(),
                        pid,
                    };
                    syslog::unix_custom(f, path).map(Sink::Rfc5424)
                }
            };
            if let Ok(sink) = sink {
                return Logger { sink, pid };
            }
        }
        Logger {
            sink: Sink::Stderr,
            pid,
        }
    }

    pub fn is_stderr(&self) -> bool {
        matches!(self.sink, Sink::Stderr)
    }

    /// Logs one line. `msg` must already be sanitised; `fields` become RFC 5424
    /// structured data (and are ignored in RFC 3164, where `msg` carries them).
    pub fn log(&mut self, severity: Severity, msg: &str, fields: &[(&'static str, String)]) {
        let sent = match &mut self.sink {
            Sink::Rfc3164(l) => send(l, severity, msg.to_owned()),
            Sink::Rfc5424(l) => {
                let mut sd = StructuredData::new();
                if !fields.is_empty() {
                    let params = fields
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), v.clone()))
                        .collect();
                    sd.insert(SD_ID.to_owned(), params);
                }
                send(l, severity, (1u32, sd, msg.to_owned()))
            }
            Sink::Stderr => false,
        };
        if !sent {
            // One write(2) per line: stderr is unbuffered, and `writeln!` on it issues a
            // write per formatted piece, so lines of deliveries sharing a stderr (an MTA's
            // pipe, a terminal) could interleave mid-line.
            let line = format!(
                "{PROCESS}[{}]: {}: {msg}",
                self.pid,
                severity_label(severity)
            );
            write_line(&mut std::io::stderr().lock(), &line);
        }
    }
}

/// Writes `line` and its newline in one `write` call (a pipe write of up to PIPE_BUF
/// bytes is atomic, so lines from concurrent processes sharing the pipe stay whole).
/// Errors are ignored: logging never changes the outcome.
pub fn write_line(out: &mut impl Write, line: &str) {
    let mut buf = Vec::with_capacity(line.len() + 1);
    buf.extend_from_slice(line.as_bytes());
    buf.push(b'\n');
    let _ = out.write_all(&buf);
}

fn send<F: syslog::LogFormat<T>, T>(
    l: &mut syslog::Logger<LoggerBackend, F>,
    s: Severity,
    m: T,
) -> bool {
    let r = match s {
        Severity::Crit => l.crit(m),
        Severity::Err => l.err(m),
        Severity::Warning => l.warning(m),
        Severity::Notice => l.notice(m),
        Severity::Info => l.info(m),
    };
    r.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records every `write` call it receives.
    #[derive(Default)]
    struct Calls(Vec<Vec<u8>>);
    impl Write for Calls {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.push(b.to_vec());
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_is_one_write_call() {
        let mut w = Calls::default();
        let pid = 42;
        let line = format!("{PROCESS}[{pid}]: {}: status=stored records=1", "info");
        write_line(&mut w, &line);
        assert_eq!(w.0, vec![format!("{line}\n").into_bytes()]);
    }
}
