//! tlsrpt-pipe: SMTP TLS Reports (RFC 8460) from an MTA pipe into a durable spool.
//!
//! Data flow, one module per step:
//! stdin ([`input`]) → message ([`message`], MIME walk) → report parts ([`decode`]:
//! gzip, zip, sniffing) → reports ([`report`]: RFC 8460 types, normalisation) →
//! records ([`record`]) → spool ([`spool`]) and syslog ([`log`], [`alert`]).
//! [`run`] strings them together; `main.rs` only maps its result to an exit status.

#![forbid(unsafe_code)]

pub mod alert;
pub mod auth;
pub mod cgi;
pub mod cli;
pub mod counting;
pub mod datetime;
pub mod decode;
pub mod error;
pub mod fault;
pub mod input;
pub mod json;
pub mod layout;
pub mod limits;
pub mod log;
pub mod message;
pub mod privilege;
pub mod record;
pub mod report;
pub mod sanitize;
pub mod spool;

use std::io::{self, Read, Write};
use std::time::Duration;

use serde_json::json;

use crate::alert::Thresholds;
use crate::cli::Cli;
use crate::datetime::Timestamp;
use crate::error::Error;
use crate::input::Input;
use crate::limits::Limits;
use crate::log::{Logger, Severity};
use crate::message::Extraction;
use crate::record::{Envelope, Record};
use crate::report::{Parsed, ResultType};
use crate::spool::{Entry, Spool};

/// What happened to one message; every field feeds the delivery log line.
#[derive(Debug, Default)]
pub struct Outcome {
    pub stored: usize,
    pub duplicates: usize,
    /// Quarantine file name and reason.
    pub quarantined: Option<(String, String)>,
    /// Why the message held no report.
    pub no_report: Option<&'static str>,
    pub alerts: usize,
}

/// A report that survived parsing, ready to become a record.
#[derive(Debug)]
pub struct Accepted {
    pub parsed: Parsed,
    pub source: message::Source,
    pub key: String,
    pub auth: auth::Verdict,
    /// The source JSON's buffer, emptied, reused for the record line. The line is about
    /// as long as the JSON; reusing pages already faulted in, instead of growing a new
    /// buffer by doubling (which copies, and briefly doubles peak memory), is what
    /// keeps a large report at about 2.7 times its size in memory.
    spare: std::cell::RefCell<Vec<u8>>,
}

/// Everything learned from one message, before any I/O.
#[derive(Debug)]
pub struct Analysis {
    pub extraction: Extraction,
    pub accepted: Vec<Accepted>,
    /// Why (part of) the message must be quarantined; empty if nothing must.
    pub reasons: Vec<String>,
}

/// How reports are authenticated (RFC 8460 §3).
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    /// Lowercase authserv-ids whose Authentication-Results are believed.
    pub trusted: Vec<String>,
    /// Quarantine reports without a trusted, aligned DKIM pass.
    pub require_dkim: bool,
    /// Lowercase policy domains accepted (`--accept-domain`); empty accepts all.
    pub accept_domains: Vec<String>,
}

/// How a report arrived: the MTA's pipe, or an HTTP POST (CGI).
#[derive(Debug, Clone, Default)]
pub enum Transport {
    #[default]
    Mail,
    Https {
        remote_address: Option<String>,
        user_agent: Option<String>,
        content_type: Option<String>,
    },
}

/// Turns message bytes into accepted reports and reasons for quarantine. Pure: no
/// I/O, bounded by `limits`; the fuzz targets drive the whole program through here.
pub fn analyse(raw: &[u8], limits: &Limits, policy: &AuthPolicy) -> Analysis {
    let mut ex = match decode::sniff(message::strip_mbox_from(raw)) {
        Some(_) => message::extract_bare(raw, limits),
        None => message::extract(raw, limits),
    };
    let mut reasons: Vec<String> = ex
        .broken
        .iter()
        .map(|b| format!("part {}: {}", b.part, b.reason))
        .collect();
    let mut accepted = Vec::new();
    let dkim = auth::trusted_dkim(&ex.headers.authentication_results, &policy.trusted);
    let observed = auth::observed(&ex.headers.authentication_results);
    // Each document's JSON bytes are dropped as soon as it is parsed: for a large
    // report they are as big as the parsed form.
    for doc in std::mem::take(&mut ex.reports) {
        let message::ReportDoc {
            json,
            source,
            mut warnings,
        } = doc;
        let parsed = report::parse(&json);
        let mut spare = json;
        spare.clear();
        match parsed {
            Ok(mut parsed) => {
                warnings.append(&mut parsed.warnings);
                parsed.warnings = warnings;
                let h = &ex.headers;
                let mut verdict = auth::verdict(
                    dkim.clone(),
                    h.tls_report_submitter.as_deref(),
                    parsed.report.contact_info.as_deref(),
                    h.from.as_deref(),
                );
                verdict.headers = observed.clone();
                if !policy.accept_domains.is_empty() {
                    let outside: Vec<&str> = parsed
                        .report
                        .policy_domains()
                        .into_iter()
                        .filter(|d| {
                            let d = d.trim_end_matches('.').to_ascii_lowercase();
                            !policy.accept_domains.contains(&d)
                        })
                        .collect();
                    if !outside.is_empty() || parsed.report.policy_domains().is_empty() {
                        reasons.push(format!(
                            "part {}: policy domain {} not accepted (--accept-domain)",
                            source.part,
                            sanitize::value(&outside.join(","), 100)
                        ));
                        continue;
                    }
                }
                if policy.require_dkim && !verdict.is_pass() {
                    let part = &source.part;
                    reasons.push(format!(
                        "part {part}: no trusted, aligned DKIM pass (--require-dkim)"
                    ));
                    continue;
                }
                let key = record::dedup_key(&parsed.report);
                accepted.push(Accepted {
                    parsed,
                    source,
                    key,
                    auth: verdict,
                    spare: std::cell::RefCell::new(spare),
                });
            }
            Err(e) => reasons.push(format!("part {}: {e}", source.part)),
        }
    }
    Analysis {
        extraction: ex,
        accepted,
        reasons,
    }
}

/// One spool entry (JSON line and dedup key) per accepted report.
pub fn encode_records(
    a: &Analysis,
    received_at: &str,
    env: &Envelope,
) -> Result<Vec<Entry>, Error> {
    a.accepted
        .iter()
        .map(|acc| {
            let rec = Record {
                version: record::RECORD_VERSION,
                received_at,
                dedup_key: &acc.key,
                envelope: env,
                headers: &a.extraction.headers,
                authentication: &acc.auth,
                source: &acc.source,
                totals: acc.parsed.report.totals(),
                warnings: &acc.parsed.warnings,
                report: &acc.parsed.report,
            };
            let line = record::encode(&rec, acc.spare.take())
                .map_err(|e| Error::Panic(format!("cannot encode record: {e}")))?;
            Ok(Entry {
                key: acc.key.clone(),
                line,
            })
        })
        .collect()
}

fn envelope(cli: &Cli) -> Envelope {
    Envelope {
        sender: cli.sender.clone(),
        recipient: cli.recipient.clone(),
        original_recipient: cli.original_recipient.clone(),
        queue_id: cli.queue_id.clone(),
        client_address: cli.client_address.clone(),
        size: cli.size.clone(),
    }
}

fn thresholds(cli: &Cli) -> Thresholds {
    Thresholds {
        min_failed: cli.alert_min_failed,
        min_ratio: cli.alert_min_ratio,
        per_type: cli
            .alert_result_type
            .iter()
            .map(|(k, n)| (ResultType::from(k.clone()), *n))
            .collect(),
        domains: cli
            .alert_domain
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .collect(),
    }
}

/// Unique within the spool: time, pid and a nanosecond stamp; no message text.
fn quarantine_name(now: Timestamp) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{}.{}.{nanos:09}", now.compact(), std::process::id())
}

fn field(k: &str, v: &str) -> String {
    format!("{k}={}", sanitize::value(v, 200))
}

/// The whole delivery of a mail message. Privileges are dropped before the first byte
/// of input is read.
pub fn run(cli: &Cli, stdin: impl Read, log: &mut Logger) -> Result<Outcome, Error> {
    run_with(cli, stdin, log, &Transport::Mail)
}

/// A delivery by any transport: the CGI mode hands the request body here.
pub fn run_with(
    cli: &Cli,
    stdin: impl Read,
    log: &mut Logger,
    transport: &Transport,
) -> Result<Outcome, Error> {
    fault::point("panic");
    privilege::drop_root(cli.user.as_deref(), Some(&cli.spool), cli.create_spool)?;
    let limits = cli.limits();
    let now = Timestamp::now();
    let received_at = now.rfc3339();
    let env = envelope(cli);
    let spool = if cli.dry_run {
        None
    } else {
        let opts = spool::Options {
            lock_timeout: Duration::from_secs(cli.lock_timeout),
            fsync: !cli.no_fsync,
        };
        Some(Spool::open(&cli.spool, opts, cli.create_spool)?)
    };
    // Appended to the delivery log line: the MTA's queue id ties it to the MTA's log;
    // for HTTPS the client address.
    let mut ctx = env
        .queue_id
        .as_deref()
        .map(|q| format!(" {}", field("queue-id", q)))
        .unwrap_or_default();
    if let Transport::Https { remote_address, .. } = transport {
        ctx.push_str(" transport=https");
        if let Some(a) = remote_address {
            ctx.push_str(&format!(" {}", field("remote-address", a)));
        }
    }
    let meta = |reason: &str, headers: Option<&message::Headers>| json!({ "reason": reason, "received-at": received_at, "envelope": env, "headers": headers });

    let raw = match input::read(stdin, limits.max_message_size).map_err(Error::Input)? {
        Input::Complete(raw) => raw,
        Input::Oversized { head, mut rest } => {
            let reason = format!("message larger than {} bytes", limits.max_message_size);
            let mut out = Outcome::default();
            if let Some(spool) = &spool {
                let name = quarantine_name(now);
                spool.quarantine(
                    &name,
                    &head,
                    Some(&mut rest),
                    limits.max_quarantine_size,
                    &meta(&reason, None),
                )?;
                out.quarantined = Some((name, reason));
            } else {
                io::copy(&mut rest, &mut io::sink()).map_err(Error::Input)?;
                out.quarantined = Some(("(dry run)".into(), reason));
            }
            log_outcome(log, &out, &[], &ctx);
            return Ok(out);
        }
    };

    let policy = AuthPolicy {
        trusted: cli
            .trusted_authserv_id
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect(),
        require_dkim: cli.require_dkim,
        accept_domains: cli
            .accept_domain
            .iter()
            .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
            .filter(|d| !d.is_empty())
            .collect(),
    };
    let mut analysis = analyse(&raw, &limits, &policy);
    for a in &mut analysis.accepted {
        match transport {
            Transport::Mail => a.source.transport = Some("mail"),
            Transport::Https {
                remote_address,
                user_agent,
                content_type,
            } => {
                a.source.transport = Some("https");
                a.source.remote_address = remote_address.clone();
                a.source.user_agent = user_agent.clone();
                a.source.content_type = content_type.clone();
            }
        }
    }
    let lines = encode_records(&analysis, &received_at, &env)?;
    let Analysis {
        extraction: ex,
        accepted,
        reasons,
    } = analysis;
    let mut out = Outcome {
        no_report: if accepted.is_empty() && reasons.is_empty() {
            ex.no_report
        } else {
            None
        },
        ..Outcome::default()
    };

    let Some(spool) = spool else {
        // The same classification as a delivery: repeats within the message, and reports
        // the spool already holds (read-only), are duplicates, not printed.
        let result = spool::classify(&lines, |key| Ok(spool::seen_readonly(&cli.spool, key)))?;
        let mut stdout = io::stdout().lock();
        for &i in &result.stored {
            stdout.write_all(&lines[i].line).map_err(Error::Input)?;
        }
        out.stored = result.stored.len();
        out.duplicates = result.duplicates.len();
        if !reasons.is_empty() {
            out.quarantined = Some(("(dry run)".into(), reasons.join("; ")));
        }
        let reports: Vec<&report::Report> = result
            .stored
            .iter()
            .map(|&i| &accepted[i].parsed.report)
            .collect();
        log_outcome(log, &out, &reports, &ctx);
        return Ok(out);
    };

    let mut fresh: Vec<&Accepted> = Vec::new();
    // The reports the log line names: those stored, or else the duplicates (which
    // report was it, when nothing new was stored?).
    let mut named: Vec<&Accepted> = Vec::new();
    if !lines.is_empty() {
        let lock = spool.lock()?;
        let result = spool.append(&lock, &now.utc_day(), &lines)?;
        drop(lock);
        out.stored = result.stored.len();
        out.duplicates = result.duplicates.len();
        fresh = result.stored.iter().map(|&i| &accepted[i]).collect();
        named = if fresh.is_empty() {
            result.duplicates.iter().map(|&i| &accepted[i]).collect()
        } else {
            fresh.clone()
        };
    }
    if !reasons.is_empty() {
        let reason = reasons.join("; ");
        let name = quarantine_name(now);
        spool.quarantine(
            &name,
            &raw,
            None,
            u64::MAX,
            &meta(&reason, Some(&ex.headers)),
        )?;
        out.quarantined = Some((name, reason));
    } else if let (Some(why), true) = (out.no_report, cli.keep_unrecognized) {
        let name = quarantine_name(now);
        spool.quarantine(&name, &raw, None, u64::MAX, &meta(why, Some(&ex.headers)))?;
    }

    // Logging happens after the commit point and cannot change the outcome.
    let reports: Vec<&report::Report> = named.iter().map(|a| &a.parsed.report).collect();
    let mut verdicts: Vec<&str> = named.iter().map(|a| a.auth.verdict).collect();
    verdicts.dedup();
    let mut auth_field = if verdicts.is_empty() {
        String::new()
    } else {
        format!(" dkim={}", verdicts.join(","))
    };
    // Why a report is unauthenticated, when an A-R header had DKIM results from an
    // authserv-id that is not trusted: the id to add with --trusted-authserv-id.
    if verdicts.contains(&"unauthenticated") {
        let mut ids: Vec<&str> = Vec::new();
        for h in named.iter().flat_map(|a| &a.auth.headers) {
            if !h.dkim.is_empty()
                && !policy.trusted.contains(&h.authserv_id)
                && !ids.contains(&h.authserv_id.as_str())
                && ids.len() < 4
            {
                ids.push(&h.authserv_id);
            }
        }
        if !ids.is_empty() {
            auth_field.push_str(&format!(
                " untrusted-authserv-ids={}",
                sanitize::value(&ids.join(","), 300)
            ));
        }
    }
    log_outcome(log, &out, &reports, &format!("{auth_field}{ctx}"));
    // Forged reports must not be able to flood the alert channel (RFC 8460 §3).
    let t = thresholds(cli);
    for a in fresh
        .iter()
        .filter(|a| a.auth.is_pass() || cli.alert_unauthenticated)
    {
        for a in alert::evaluate(&a.parsed.report, &t) {
            log.log(a.severity, &a.line(), &a.fields());
            out.alerts += 1;
        }
    }
    // The process exits right after this: freeing a large report row by row (hundreds
    // of thousands of small frees) costs more than letting the kernel drop the pages.
    std::mem::forget(accepted);
    Ok(out)
}

/// The one info line per delivery.
fn log_outcome(log: &mut Logger, out: &Outcome, reports: &[&report::Report], ctx: &str) {
    let mut line = String::new();
    if out.stored > 0 || out.duplicates > 0 {
        let join = |f: &dyn Fn(&report::Report) -> Vec<String>| {
            let mut v: Vec<String> = reports.iter().flat_map(|r| f(r)).collect();
            v.dedup();
            sanitize::value(&v.join(","), 300)
        };
        let totals = reports.iter().fold((0u64, 0u64), |(s, f), r| {
            let t = r.totals();
            (s + t.successful, f + t.failed)
        });
        line.push_str(&format!(
            "status={} records={} duplicates={} organization={} report-id={} policy-domains={} successful={} failed={}",
            if out.stored > 0 { "stored" } else { "duplicate" },
            out.stored,
            out.duplicates,
            join(&|r| r.organization_name.iter().cloned().collect()),
            join(&|r| r.report_id.iter().cloned().collect()),
            join(&|r| r.policy_domains().into_iter().map(str::to_owned).collect()),
            totals.0,
            totals.1,
        ));
    }
    if let Some((name, reason)) = &out.quarantined {
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&format!(
            "status=quarantined file={} {}",
            sanitize::value(name, 100),
            field("reason", reason)
        ));
    }
    if line.is_empty() {
        line = format!(
            "status=no-report {}",
            field(
                "reason",
                out.no_report.unwrap_or("no TLS report in message")
            )
        );
    }
    line.push_str(ctx);
    log.log(Severity::Info, &line, &[]);
}
