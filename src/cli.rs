//! The command line. Every option is documented in `--help` and in man/tlsrpt-pipe.8.

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::limits::{self, Limits};

pub const DEFAULT_SPOOL: &str = "/var/spool/tlsrpt";

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SyslogFormat {
    Rfc3164,
    Rfc5424,
}

/// Receive SMTP TLS Reports (RFC 8460) from an MTA pipe and store them durably.
///
/// Reads one message (or a bare JSON, gzip or zip report) on stdin, stores every TLS
/// report in it as a JSON line in SPOOL/YYYY-MM-DD.jsonl, quarantines reports that
/// cannot be read, and logs to syslog. Exit status: 0 when the message was stored or
/// deliberately set aside, 75 (EX_TEMPFAIL, the MTA retries) on any local failure.
#[derive(Debug, Clone, Parser)]
#[command(name = "tlsrpt-pipe", version, max_term_width = 100)]
pub struct Cli {
    /// Spool directory for records (DIR/*.jsonl) and quarantine (DIR/quarantine/).
    #[arg(long, env = "TLSRPT_SPOOL", value_name = "DIR", default_value = DEFAULT_SPOOL)]
    pub spool: PathBuf,

    /// Create the spool directory (mode 0750; owned by --user when run as root) if missing.
    #[arg(long)]
    pub create_spool: bool,

    /// When started as root, switch to this user before reading input. Ignored otherwise.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    /// Print the records that would be stored on stdout (duplicates as a delivery would
    /// count them); touch nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,

    /// Keep messages that hold no TLS report in the quarantine instead of dropping them.
    #[arg(long, conflicts_with = "leave_unrecognized")]
    pub keep_unrecognized: bool,

    /// For a mail retriever (fetchmail, getmail): exit 65 (EX_DATAERR) for a message that
    /// holds no TLS report, so that the retriever leaves it in the mailbox (a DMARC
    /// report, ordinary mail). Never under an MTA: Postfix and Exim bounce on 65.
    #[arg(long)]
    pub leave_unrecognized: bool,

    /// Envelope sender (Postfix ${sender}). Default: $SENDER (Exim).
    #[arg(long, env = "SENDER", value_name = "ADDR")]
    pub sender: Option<String>,
    /// Envelope recipient (Postfix ${recipient}). Default: $RECIPIENT (Exim).
    #[arg(long, env = "RECIPIENT", value_name = "ADDR")]
    pub recipient: Option<String>,
    /// Original recipient before rewriting (Postfix ${original_recipient}).
    #[arg(long, value_name = "ADDR")]
    pub original_recipient: Option<String>,
    /// MTA queue id (Postfix ${queue_id}). Default: $MESSAGE_ID (Exim).
    #[arg(long, env = "MESSAGE_ID", value_name = "ID")]
    pub queue_id: Option<String>,
    /// SMTP client address (Postfix ${client_address}).
    #[arg(long, value_name = "IP")]
    pub client_address: Option<String>,
    /// Message size as counted by the MTA (Postfix ${size}).
    #[arg(long, value_name = "BYTES")]
    pub size: Option<String>,

    /// Messages larger than this are quarantined without parsing (K, M, G suffixes).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "32M")]
    pub max_message_size: u64,
    /// Largest decompressed report document; larger ones (gzip bombs) are quarantined.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "32M")]
    pub max_report_size: u64,
    /// Most report documents taken from one message.
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_REPORTS)]
    pub max_reports: usize,
    /// Deepest MIME nesting walked (multiparts and forwarded messages).
    #[arg(long, value_name = "N", default_value_t = limits::DEFAULT_MAX_DEPTH)]
    pub max_depth: usize,
    /// Bytes of an oversized message kept in quarantine.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256M")]
    pub max_quarantine_size: u64,
    /// Seconds to wait for the spool lock before deferring (exit 75).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub lock_timeout: u64,
    /// Do not fsync (benchmarks only: a crash may lose an acknowledged report).
    #[arg(long)]
    pub no_fsync: bool,

    /// Syslog facility.
    #[arg(long, value_name = "NAME", default_value = "mail")]
    pub syslog_facility: String,
    /// Syslog socket (default: /dev/log, /var/run/syslog, /var/run/log).
    #[arg(long, env = "TLSRPT_SYSLOG_SOCKET", value_name = "PATH")]
    pub syslog_socket: Option<PathBuf>,
    /// Syslog message format; rfc5424 carries alert fields as structured data.
    #[arg(long, value_enum, default_value = "rfc3164")]
    pub syslog_format: SyslogFormat,
    /// Log to stderr instead of syslog (for running by hand; in CGI mode the web server's
    /// error log).
    #[arg(long, env = "TLSRPT_LOG_STDERR", value_parser = clap::builder::FalseyValueParser::new())]
    pub log_stderr: bool,

    /// Believe Authentication-Results headers with this authserv-id (repeatable): the
    /// id your own MTA or milter (OpenDKIM, rspamd, Exim) writes.
    #[arg(long, value_name = "ID")]
    pub trusted_authserv_id: Vec<String>,
    /// Quarantine reports without a trusted, aligned DKIM pass (RFC 8460 §3).
    #[arg(long)]
    pub require_dkim: bool,
    /// Let reports without a trusted, aligned DKIM pass raise alerts too (HTTPS reports
    /// never have one).
    #[arg(long, env = "TLSRPT_ALERT_UNAUTHENTICATED", value_parser = clap::builder::FalseyValueParser::new())]
    pub alert_unauthenticated: bool,
    /// Accept only reports whose policy domains are all among these (repeatable, or
    /// comma-separated in the environment); others are quarantined. For HTTPS reports,
    /// which anyone can POST.
    #[arg(
        long,
        env = "TLSRPT_ACCEPT_DOMAINS",
        value_name = "DOMAIN",
        value_delimiter = ','
    )]
    pub accept_domain: Vec<String>,

    /// Serve one HTTP POST as a CGI program (RFC 3875); also when the web server sets
    /// GATEWAY_INTERFACE and REQUEST_METHOD. See CGI in the manual.
    #[arg(long)]
    pub cgi: bool,
    /// Largest HTTP body accepted in CGI mode (413 above it, refused before reading).
    #[arg(long, env = "TLSRPT_MAX_BODY_SIZE", value_name = "SIZE", value_parser = parse_size, default_value = "10M")]
    pub max_body_size: u64,
    /// Retry-After seconds of a 503 answer in CGI mode.
    #[arg(
        long,
        env = "TLSRPT_RETRY_AFTER",
        value_name = "SECS",
        default_value_t = 600
    )]
    pub retry_after: u64,

    /// Alert when a policy has at least this many failed sessions (0 disables).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub alert_min_failed: u64,
    /// Alert only when failed/(failed+successful) is at least this ratio (0.0-1.0).
    #[arg(long, value_name = "RATIO", default_value_t = 0.0)]
    pub alert_min_ratio: f64,
    /// Per result type minimum failed sessions, e.g. sts-policy-fetch-error=10 (repeatable).
    #[arg(long, value_name = "TYPE=N", value_parser = parse_override)]
    pub alert_result_type: Vec<(String, u64)>,
    /// Alert only for these policy domains (repeatable; default: all).
    #[arg(long, value_name = "DOMAIN")]
    pub alert_domain: Vec<String>,
}

impl Cli {
    pub fn limits(&self) -> Limits {
        Limits {
            max_message_size: self.max_message_size,
            max_report_size: self.max_report_size,
            max_reports: self.max_reports.max(1),
            max_depth: self.max_depth.max(1),
            max_quarantine_size: self.max_quarantine_size.max(self.max_message_size),
        }
    }
}

/// `123`, `64K`, `32M`, `1G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mul) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1u64 << 10),
        Some((i, 'm' | 'M')) => (&s[..i], 1 << 20),
        Some((i, 'g' | 'G')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("not a size: {s:?} (use e.g. 65536, 64K, 32M, 1G)"))
}

fn parse_override(s: &str) -> Result<(String, u64), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or("expected TYPE=N, e.g. starttls-not-supported=1")?;
    let n = v
        .trim()
        .parse()
        .map_err(|_| format!("not a number: {v:?}"))?;
    Ok((k.trim().to_owned(), n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("100"), Ok(100));
        assert!(parse_size("x").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn clap_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        assert_eq!(
            Limits::default().max_message_size,
            parse_size("32M").unwrap()
        );
        assert_eq!(
            Limits::default().max_report_size,
            parse_size("32M").unwrap()
        );
    }
}
