//! The command line of `tlsrpt`. Every option is documented in `--help` and in
//! man/tlsrpt.1.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub const DEFAULT_SPOOL: &str = "/var/spool/tlsrpt";
pub const DEFAULT_DB: &str = "sqlite:///var/lib/tlsrpt/tlsrpt.db";

/// The operator's view of SMTP TLS Reports (RFC 8460) stored by tlsrpt-pipe.
///
/// Reads spools read-only: a member of the spool's group without write access can run
/// every command. Exit status (crate::exit): 0 done, 1 nothing could be read or a
/// permanent local problem, 2 bad arguments, 75 the database unreachable (try again);
/// the monitoring plugins (check, check-record, check-domain) 0 OK, 1 WARNING,
/// 2 CRITICAL, 3 UNKNOWN.
#[derive(Debug, Parser)]
#[command(name = "tlsrpt", version, max_term_width = 100)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// What is wrong with my mail TLS: per policy domain, for a window.
    Summary(SummaryArgs),
    /// Flat rows (parsedmarc's CSV columns, or JSON Lines) for other tools.
    Export(ExportArgs),
    /// Load new records into a database (SQLite, or PostgreSQL), parsedmarc's schema.
    /// Exit 75 when the database cannot be reached (try again later).
    Load(LoadArgs),
    /// Prometheus metrics for node_exporter's textfile collector (incremental).
    Metrics(MetricsArgs),
    /// A monitoring plugin (Nagios, Icinga): failure ratio, critical failures, silence.
    /// Exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check(CheckArgs),
    /// Is the _smtp._tls TXT record of a domain right, and does it send reports here?
    /// Exit 0 valid, 1 warnings, 2 errors, 3 the lookup failed.
    CheckRecord(CheckRecordArgs),
    /// Check a domain's inbound mail TLS live, as senders judge it: TLSRPT and MTA-STS
    /// records, the policy, every MX address (STARTTLS, TLS, certificate with and without
    /// SNI), DANE. Exit 0 no problem, 1 warnings, 2 errors, 3 could not check.
    CheckDomain(CheckDomainArgs),
    /// Remove old day files, quarantined messages and duplicate markers from spools
    /// (with --db, only day files the database has loaded completely). Run as the
    /// spool's owner. Exit 1 something could not be removed, 75 database unreachable.
    Prune(PruneArgs),
    /// What the delivery set aside as unreadable, why, and feeding it to the delivery
    /// again after a fix. Exit 1 when something stays in the quarantine.
    Quarantine(QuarantineArgs),
    /// Check every domain of ours live, one pass per call (cron, a systemd timer), with
    /// a memory of what changed: certificates about to expire, STARTTLS lost, policies
    /// changed without a new id, certificates rolled under DANE. Metrics for
    /// node_exporter, one line per finding. Exit as check-domain, for the worst.
    Watch(WatchArgs),
    /// Is this installation set up right? One read-only pass: the binaries, the spool,
    /// the MTA wiring, each domain's record and route, whether reports arrive and count,
    /// the jobs, the database. One line per item with its fix. Exit 0 ok, 1 warnings,
    /// 2 errors, 3 something could not be checked.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// A domain whose reports come here (repeatable): its record, its route, its reports.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,

    /// Spool directory (repeatable); the spools the deliveries write are added.
    #[arg(long, env = "TLSRPT_SPOOL", value_name = "DIR", default_value = DEFAULT_SPOOL)]
    pub spool: Vec<PathBuf>,

    /// The database (default: the default SQLite file, when it exists).
    #[arg(long, value_name = "URL", env = "TLSRPT_DB")]
    pub db: Option<String>,

    /// A textfile of `metrics` or `watch` (repeatable; default: the contrib units' paths
    /// that exist).
    #[arg(long, value_name = "FILE")]
    pub textfile: Vec<PathBuf>,

    /// The account the operator jobs run as.
    #[arg(long, value_name = "NAME", default_value = "tlsrpt")]
    pub user: String,

    /// The operator's data directory (the default database, watch's memory).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/tlsrpt")]
    pub data_dir: PathBuf,

    /// Postfix's configuration directory (postconf -c), when not the default.
    #[arg(long, value_name = "DIR")]
    pub postfix_config: Option<PathBuf>,

    /// The aliases file local(8) reads.
    #[arg(long, value_name = "FILE", default_value = "/etc/aliases")]
    pub aliases: PathBuf,

    /// Where cron lines live.
    #[arg(long, value_name = "DIR", default_value = "/etc/cron.d")]
    pub cron_dir: PathBuf,

    /// DNS server for the records (default: /etc/resolv.conf).
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,

    /// Seconds to wait for each DNS answer.
    #[arg(long, value_name = "SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout: u64,

    #[command(flatten)]
    pub trusted: Trusted,

    #[arg(long, value_enum, default_value = "text")]
    pub format: RecordFormat,
}

pub const DEFAULT_WATCH_STATE: &str = "/var/lib/tlsrpt/watch";

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// A domain to watch (repeatable).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,

    /// A file of domains to watch, one per line (# comments).
    #[arg(long, value_name = "FILE")]
    pub domains_file: Option<PathBuf>,

    /// Also watch the policy domains of this spool's reports (repeatable) that are ours:
    /// their TLSRPT record sends reports to an address reports were delivered to here
    /// (or an --our-rua). A domain only named by a report is never connected to.
    #[arg(long, value_name = "DIR")]
    pub spool: Vec<PathBuf>,

    /// The same from this database (filled by `tlsrpt load`).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,

    /// How far back the reports name domains to watch: a duration (30d, 8w) or an RFC
    /// 3339 date.
    #[arg(long, value_name = "WHEN", default_value = "30d")]
    pub reports_since: String,

    /// A report address of this installation (repeatable; `https://...` for a web
    /// endpoint): a domain whose TLSRPT rua names it is ours.
    #[arg(
        long,
        value_name = "URI",
        env = "TLSRPT_OUR_RUA",
        value_delimiter = ','
    )]
    pub our_rua: Vec<String>,

    /// node_exporter textfile to write (atomically, on every run).
    #[arg(long, value_name = "FILE")]
    pub textfile: Option<PathBuf>,

    /// The watch's memory (created when only it is missing).
    #[arg(long, value_name = "DIR", env = "TLSRPT_WATCH_STATE", default_value = DEFAULT_WATCH_STATE)]
    pub state: PathBuf,

    /// Forget what has not been seen for this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 400,
          value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub keep_days: u32,

    /// Warn when a certificate expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub expiry_warning: u32,

    /// The most seconds the whole run may take; domains not reached by then are listed
    /// as not checked (exit 3).
    #[arg(long, value_name = "SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(10..=86400))]
    pub max_run: u64,

    /// Show what changed for this domain (from the memory; nothing is probed).
    #[arg(long, value_name = "DOMAIN")]
    pub history: Option<String>,

    /// Output format (of the findings, or of --history).
    #[arg(long, value_enum, default_value = "text")]
    pub format: RecordFormat,

    /// Also list the info findings and the domains not watched, and why.
    #[arg(short, long)]
    pub verbose: bool,

    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, Args)]
pub struct QuarantineArgs {
    /// Spool directory (repeatable).
    #[arg(long, env = "TLSRPT_SPOOL", value_name = "DIR", default_value = DEFAULT_SPOOL, global = true)]
    pub spool: Vec<PathBuf>,

    #[command(subcommand)]
    pub action: QuarantineAction,
}

#[derive(Debug, Subcommand)]
pub enum QuarantineAction {
    /// One line per quarantined message: name, time, size, why.
    List,
    /// The stored reason and envelope of one message, and its header.
    Show {
        /// The message's NAME (from `list`).
        name: String,
    },
    /// Give messages to tlsrpt-pipe again (every one without NAME): only a message it
    /// would now store is delivered, as the spool's owner, and removed from the
    /// quarantine once stored. Options for tlsrpt-pipe after `--`.
    Retry {
        /// Messages to retry (from `list`).
        names: Vec<String>,
        /// The delivery program (default: tlsrpt-pipe beside tlsrpt, or /usr/bin/tlsrpt-pipe).
        #[arg(long, value_name = "PATH")]
        pipe: Option<PathBuf>,
        /// Options for tlsrpt-pipe, e.g. -- --trusted-authserv-id mx.example.com
        #[arg(last = true)]
        delivery_args: Vec<String>,
    },
}

/// Spools and the report window, shared by the commands that read reports.
#[derive(Debug, Clone, Args)]
pub struct Select {
    /// Spool directory to read (repeatable: the spools of several MX hosts).
    #[arg(long, env = "TLSRPT_SPOOL", value_name = "DIR", default_value = DEFAULT_SPOOL)]
    pub spool: Vec<PathBuf>,

    /// Start of the window: a duration back from now (7d, 36h) or an RFC 3339 date.
    /// A report is in the window when its date-range ends in it.
    #[arg(long, value_name = "WHEN", default_value = "7d")]
    pub since: String,

    /// End of the window (default: now).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,

    /// Only this policy domain (repeatable; case-insensitive).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,

    /// Count reports without a trusted, aligned DKIM pass as well (they may be forged).
    #[arg(long)]
    pub include_unauthenticated: bool,

    #[command(flatten)]
    pub trusted: Trusted,
}

/// The authserv-ids whose Authentication-Results are believed when stored reports are
/// judged again (as tlsrpt-pipe's option of the same name; crate::trust).
#[derive(Debug, Clone, Default, Args)]
pub struct Trusted {
    /// Also count a stored report whose DKIM pass this authserv-id recorded (your MTA's
    /// or milter's Authentication-Results id), judged by tlsrpt-pipe's rule: reports
    /// stored before tlsrpt-pipe trusted it count too. Repeatable; the environment
    /// variable takes a comma-separated list.
    #[arg(
        long,
        value_name = "ID",
        env = "TLSRPT_TRUSTED_AUTHSERV_ID",
        value_delimiter = ','
    )]
    pub trusted_authserv_id: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Table,
    Json,
    Csv,
    Html,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Args)]
pub struct SummaryArgs {
    #[command(flatten)]
    pub select: Select,

    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: SummaryFormat,

    /// Colour in the table: auto = only on a terminal and without NO_COLOR.
    #[arg(long, value_enum, default_value = "auto")]
    pub color: ColorChoice,

    /// Mail the summary (text and HTML) to this address instead of printing it
    /// (repeatable).
    #[arg(long, value_name = "ADDR")]
    pub mail_to: Vec<String>,

    /// From address of the digest (also passed to sendmail -f).
    #[arg(long, value_name = "ADDR", requires = "mail_to")]
    pub mail_from: Option<String>,

    /// Read the reports from this database (filled by `tlsrpt load`) instead of spools.
    #[arg(long, value_name = "URL", env = "TLSRPT_DB")]
    pub db: Option<String>,

    /// The sendmail program the digest is handed to.
    #[arg(long, value_name = "PATH", default_value = crate::digest::DEFAULT_SENDMAIL, requires = "mail_to")]
    pub sendmail: String,

    /// Check live whether each failure still happens: every failing (result type,
    /// receiving MX) of the counted reports' domains that are ours, probed as
    /// check-domain does (only MX hosts the domain names now; each host once, in
    /// parallel, bounded in time). A domain is ours when given with --domain, or when
    /// its TLSRPT record sends reports here (to an address the reports were delivered
    /// to, or an --our-rua).
    #[arg(long)]
    pub probe: bool,

    /// Show what `tlsrpt watch` last found at each domain (its state directory), and
    /// what it saw change inside the window; said when its last run is stale.
    #[arg(long, value_name = "DIR", env = "TLSRPT_WATCH_STATE")]
    pub watch_state: Option<PathBuf>,

    /// A report address of this installation (repeatable; `https://...` for a web
    /// endpoint, whose reports carry no address of delivery): a domain whose TLSRPT rua
    /// names it is ours (--probe). The environment variable takes a comma-separated list.
    #[arg(
        long,
        value_name = "URI",
        env = "TLSRPT_OUR_RUA",
        value_delimiter = ','
    )]
    pub our_rua: Vec<String>,

    /// A file of domains that are ours, one per line (# comments): probed with --probe
    /// without looking at their TLSRPT record first.
    #[arg(long, value_name = "FILE")]
    pub domains_file: Option<PathBuf>,

    #[command(flatten)]
    pub probe_args: ProbeArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub select: Select,

    /// Output format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
}

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Spool directory to read (repeatable).
    #[arg(long, env = "TLSRPT_SPOOL", value_name = "DIR", default_value = DEFAULT_SPOOL)]
    pub spool: Vec<PathBuf>,

    /// The .prom file to write (atomically), in node_exporter's textfile directory.
    #[arg(long, value_name = "PATH")]
    pub textfile: PathBuf,

    /// State of the incremental runs (default: TEXTFILE.state).
    #[arg(long, value_name = "PATH", conflicts_with = "db")]
    pub state: Option<PathBuf>,

    /// Count from this database (filled by `tlsrpt load` from every MX) instead of the
    /// spools: all-time sums computed by the database, no state file.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,

    /// Only this policy domain (repeatable).
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,

    /// Count reports without a trusted DKIM pass as well.
    #[arg(long)]
    pub include_unauthenticated: bool,

    #[command(flatten)]
    pub trusted: Trusted,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Spool directory to read (repeatable).
    #[arg(long, env = "TLSRPT_SPOOL", value_name = "DIR", default_value = DEFAULT_SPOOL)]
    pub spool: Vec<PathBuf>,

    /// Only this policy domain (repeatable); a domain without any report is a finding.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Vec<String>,

    /// Window judged: reports whose date-range ends after WHEN.
    #[arg(long, value_name = "WHEN", default_value = "2d")]
    pub since: String,

    /// Failure ratio (percent) range for WARNING.
    #[arg(
        short = 'w',
        long = "warning",
        value_name = "RANGE",
        default_value = "1"
    )]
    pub warning: String,

    /// Failure ratio (percent) range for CRITICAL.
    #[arg(
        short = 'c',
        long = "critical",
        value_name = "RANGE",
        default_value = "5"
    )]
    pub critical: String,

    /// Result type whose presence is CRITICAL (repeatable).
    #[arg(long, value_name = "TYPE", default_value = "starttls-not-supported")]
    pub critical_result_type: Vec<String>,

    /// WARNING when a domain's latest report ended longer ago than this (36h, 3d).
    #[arg(long, value_name = "DURATION")]
    pub max_silence: Option<String>,

    /// Judge a domain's failure ratio only from this many sessions in the window (below
    /// it the output says so; critical result types are judged whatever the count).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub min_sessions: u64,

    /// Count reports without a trusted DKIM pass as well.
    #[arg(long)]
    pub include_unauthenticated: bool,

    #[command(flatten)]
    pub trusted: Trusted,

    /// Judge from this database (filled by `tlsrpt load` from every MX) instead of the
    /// spools; an unreachable database is UNKNOWN.
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RecordFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct CheckRecordArgs {
    /// Domains whose _smtp._tls.DOMAIN TXT record to check.
    #[arg(value_name = "DOMAIN", required_unless_present = "record")]
    pub domains: Vec<String>,

    /// Check this record text instead of looking anything up (without a DOMAIN).
    #[arg(long, value_name = "TXT")]
    pub record: Option<String>,

    /// Say whether the record sends reports to this URI (repeatable), e.g.
    /// mailto:tls-reports@example.com.
    #[arg(long, value_name = "URI")]
    pub expect_rua: Vec<String>,

    /// Ask this name server (IP or IP:PORT) instead of the system resolver.
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,

    /// Also check _smtp._tls.<MX host> for each MX host (DANE's policy domain).
    #[arg(long)]
    pub mx: bool,

    /// Seconds to wait for each DNS answer.
    #[arg(long, value_name = "SECS", default_value_t = 5)]
    pub timeout: u64,

    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: RecordFormat,
}

/// How the live probes reach the domain's hosts (check-domain, summary --probe).
#[derive(Debug, Clone, Args)]
pub struct ProbeArgs {
    /// Ask this name server (IP or IP:PORT) instead of the system resolver. It should
    /// validate DNSSEC (its AD bit is what DANE senders trust).
    #[arg(long, value_name = "IP[:PORT]")]
    pub nameserver: Option<String>,

    /// Also trust the CA certificates in this PEM file (besides the system's public roots,
    /// /etc/ssl/certs/ca-certificates.crt).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<PathBuf>,

    /// Probe loopback, private, link-local and unique-local addresses too (refused by
    /// default: a domain's DNS must not make this host connect into its own network).
    #[arg(long)]
    pub allow_private_addresses: bool,

    /// Believe the AD bit (DNSSEC-validated) of a --nameserver that is not on this host
    /// (a validating resolver reached over a network you trust). Without it only a
    /// loopback resolver, or "options trust-ad" in /etc/resolv.conf, is believed.
    #[arg(long)]
    pub trust_ad: bool,

    /// Seconds for each DNS answer, connect and read (the whole check of a domain is
    /// bounded to six times this).
    #[arg(long, value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub timeout: u64,

    /// The name to send in EHLO (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub ehlo: Option<String>,
}

#[derive(Debug, Args)]
pub struct CheckDomainArgs {
    /// Domains to check (the domain after @ in the mail addresses, not the MX host).
    #[arg(value_name = "DOMAIN", required_unless_present_any = ["sts_record", "sts_policy"])]
    pub domains: Vec<String>,

    /// Judge this _mta-sts TXT record text instead of looking anything up (by RFC 8461
    /// §3.1's grammar, as strict senders read it).
    #[arg(long, value_name = "TXT", conflicts_with = "domains")]
    pub sts_record: Option<String>,

    /// Judge this MTA-STS policy file ("-": standard input) instead of fetching one (by
    /// RFC 8461 §3.2's grammar; as if served as text/plain).
    #[arg(long, value_name = "FILE", conflicts_with = "domains")]
    pub sts_policy: Option<PathBuf>,

    #[command(flatten)]
    pub probe: ProbeArgs,

    /// Warn when a certificate expires within this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 14)]
    pub expiry_warning: u32,

    /// Output format: text, json, or plugin (the monitoring-plugins line with perfdata
    /// days_to_expiry, for Icinga/Nagios).
    #[arg(long, value_enum, default_value = "text")]
    pub format: DomainFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DomainFormat {
    Text,
    Json,
    Plugin,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Spool directory to read (repeatable: the spools of several MX hosts).
    #[arg(long, env = "TLSRPT_SPOOL", value_name = "DIR", default_value = DEFAULT_SPOOL)]
    pub spool: Vec<PathBuf>,

    /// sqlite:///path/file.db, postgresql://user@host:port/db, or libpq key=value.
    #[arg(long, value_name = "URL", env = "TLSRPT_DB", default_value = DEFAULT_DB)]
    pub db: String,

    /// Connections loading day files at once (PostgreSQL; SQLite writes with one).
    /// Default: one per core, at most 4.
    #[arg(long, value_name = "N", default_value_t = default_jobs(),
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: u16,

    /// Say what was loaded (one line on stdout).
    #[arg(short, long)]
    pub verbose: bool,

    #[command(flatten)]
    pub trusted: Trusted,
}

fn default_jobs() -> u16 {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4) as u16)
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove what is older than this: a duration back from now (400d, 60w) or an RFC 3339
    /// date. At least 2 days ago.
    #[arg(long, value_name = "WHEN")]
    pub older_than: String,

    /// Spool directory to prune (repeatable). No default: pruning removes files, so the
    /// targets are named.
    #[arg(long, value_name = "DIR")]
    pub spool: Vec<PathBuf>,

    /// Also remove this database's reports older than the cut (filled by `tlsrpt load`),
    /// and remove a spool's day file only if the database has loaded it completely
    /// (then forget its load checkpoint).
    #[arg(long, value_name = "URL")]
    pub db: Option<String>,

    /// With --spool and --db: keep the database's rows; use it only to check what was
    /// loaded (the database keeps a longer history than the spools).
    #[arg(long)]
    pub keep_rows: bool,

    /// Change nothing: list what would be removed, and the space it would free.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Say more (the cut, each spool's counts) on stderr.
    #[arg(short, long)]
    pub verbose: bool,
}
