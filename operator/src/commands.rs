//! One function per subcommand: arguments → the modules that read, judge and render →
//! output. Each command is wired the same way: its arguments, the trust and window it
//! reads with, one call to the module that does the work, and its output; failures are
//! crate::exit's. Nothing is computed here.

use std::io::{IsTerminal, Write};

use crate::cli::{
    CheckArgs, CheckDomainArgs, CheckRecordArgs, Cli, ColorChoice, Command, DoctorArgs,
    DomainFormat, ExportArgs, ExportFormat, LoadArgs, MetricsArgs, PruneArgs, QuarantineArgs,
    RecordFormat, Select, SummaryArgs, SummaryFormat, Trusted, WatchArgs,
};
use crate::exit::Failure;
use crate::trust::Trust;
use crate::window::{self, Window};
use crate::{
    check, check_domain, check_record, db, digest, export, load, metrics, render, spool, summary,
};

pub fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Summary(a) => summary_cmd(a),
        Command::Export(a) => export_cmd(a),
        Command::Metrics(a) => metrics_cmd(a),
        Command::Check(a) => check_cmd(a),
        Command::CheckRecord(a) => check_record_cmd(a),
        Command::CheckDomain(a) => check_domain_cmd(a),
        Command::Load(a) => load_cmd(a),
        Command::Prune(a) => prune_cmd(a),
        Command::Quarantine(a) => quarantine_cmd(a),
        Command::Watch(a) => watch_cmd(a),
        Command::Doctor(a) => doctor_cmd(a),
    }
}

fn watch_cmd(a: WatchArgs) -> Result<(), Failure> {
    if let Some(d) = &a.history {
        return write_stdout(&crate::watch::show_history(&a.state, d, a.format)?);
    }
    let (t, started) = (now(), std::time::Instant::now());
    let o = probe_settings(&a.probe)
        .and_then(|s| crate::watch::run(&a, &s, t))
        .inspect_err(|_| crate::watch::textfile_after_failure(&a, t, started))?;
    write_stdout(&o.out)?;
    match o.status {
        0 => Ok(()),
        s => Err(Failure::quiet(s)),
    }
}

fn doctor_cmd(a: DoctorArgs) -> Result<(), Failure> {
    let items = crate::doctor::run(&a, now());
    write_stdout(&crate::doctor::render(&items, a.format))?;
    match crate::doctor::status(&items) {
        0 => Ok(()),
        s => Err(Failure::quiet(s)),
    }
}

fn quarantine_cmd(a: QuarantineArgs) -> Result<(), Failure> {
    use crate::cli::QuarantineAction;
    let (out, status) = match &a.action {
        QuarantineAction::List => crate::quarantine::list(&a.spool),
        QuarantineAction::Show { name } => (crate::quarantine::show(&a.spool, name)?, 0),
        QuarantineAction::Retry {
            names,
            pipe,
            delivery_args,
        } => crate::quarantine::retry(
            &a.spool,
            names,
            &crate::quarantine::pipe_program(pipe.as_deref()),
            delivery_args,
        )?,
    };
    write_stdout(&out)?;
    match status {
        0 => Ok(()),
        s => Err(Failure::quiet(s)),
    }
}

/// The trust the read commands judge stored reports with.
fn trust(t: &Trusted, include_unauthenticated: bool) -> Result<Trust, Failure> {
    Trust::new(&t.trusted_authserv_id, include_unauthenticated).map_err(Failure::usage)
}

fn prune_cmd(a: PruneArgs) -> Result<(), Failure> {
    crate::prune::run(&a, now())
}

fn load_cmd(a: LoadArgs) -> Result<(), Failure> {
    let trust = trust(&a.trusted, false)?;
    let map = |e: load::LoadError| match e {
        load::LoadError::Database(e) => e.failure(),
        load::LoadError::NoSpool(m) => Failure::failed(format!("no spool could be read: {m}")),
    };
    let mut store = db::open_write(&a.db, true).map_err(db::DbError::failure)?;
    let l = load::load(store.as_mut(), &a.spool, a.jobs.into(), &trust).map_err(map)?;
    if a.verbose {
        write_stdout(&format!(
            "loaded {} new reports ({} already stored) from {} day files, {} bytes; {} lines skipped; {} transactions rerun\n",
            l.inserted, l.already, l.files_read, l.bytes_read, l.skipped_lines, l.reruns
        ))?;
    }
    Ok(())
}

fn check_record_cmd(a: CheckRecordArgs) -> Result<(), Failure> {
    // Like the other plugins, trouble that prevents an answer is 3.
    let fail3 = |m: String| Failure::with(crate::exit::UNKNOWN, m);
    if a.record.is_some() && (!a.domains.is_empty() || a.mx || a.nameserver.is_some()) {
        return Err(Failure::unknown(
            "--record checks a record text offline, without a lookup: drop the DOMAIN (and --mx, --nameserver), or drop --record to look the domain's record up",
        ));
    }
    let entries = match &a.record {
        Some(txt) => vec![check_record::offline(txt, &a.expect_rua)],
        None => {
            let ns = a
                .nameserver
                .as_deref()
                .map(check_record::parse_nameserver)
                .transpose()
                .map_err(|e| fail3(format!("--nameserver {e}")))?;
            let dns = check_record::Dns::new(ns, std::time::Duration::from_secs(a.timeout.max(1)))
                .map_err(fail3)?;
            a.domains
                .iter()
                .flat_map(|d| check_record::check_with_mx(&dns, d, &a.expect_rua, a.mx))
                .collect()
        }
    };
    let out = match a.format {
        RecordFormat::Text => check_record::text(&entries),
        RecordFormat::Json => check_record::json(&entries),
    };
    write_stdout(&out)?;
    match check_record::status(&entries) {
        0 => Ok(()),
        s => Err(Failure::quiet(s)),
    }
}

fn check_domain_cmd(a: CheckDomainArgs) -> Result<(), Failure> {
    if a.sts_record.is_some() || a.sts_policy.is_some() {
        let body = match &a.sts_policy {
            None => None,
            Some(p) => Some(
                read_bounded(p, crate::probe::mta_sts::MAX_POLICY as u64 + 1).map_err(|e| {
                    Failure::with(
                        crate::exit::UNKNOWN,
                        format!("--sts-policy {}: {e}", p.display()),
                    )
                })?,
            ),
        };
        let items = check_domain::offline(a.sts_record.as_deref(), body.as_deref());
        let (text, status) = check_domain::offline_text(&items);
        let out = match a.format {
            DomainFormat::Text => text,
            DomainFormat::Plugin => {
                return Err(Failure::with(
                    crate::exit::UNKNOWN,
                    "--format plugin checks domains live: give a DOMAIN, not --sts-record or --sts-policy",
                ));
            }
            DomainFormat::Json => {
                let mut j = serde_json::to_string_pretty(
                    &serde_json::json!({ "status": status, "checked": items }),
                )
                .expect("plain data");
                j.push('\n');
                j
            }
        };
        write_stdout(&out)?;
        return match status {
            0 => Ok(()),
            s => Err(Failure::quiet(s)),
        };
    }
    let settings = probe_settings(&a.probe)?;
    let reports: Vec<check_domain::DomainReport> = a
        .domains
        .iter()
        .map(|d| {
            let mut r = check_domain::observe::observe(&settings, d, None);
            check_domain::judge::judge(&mut r, i64::from(a.expiry_warning));
            r
        })
        .collect();
    let out = match a.format {
        DomainFormat::Text => check_domain::text::text(&reports),
        DomainFormat::Json => check_domain::json(&reports),
        DomainFormat::Plugin => check_domain::plugin::output(&reports, a.expiry_warning),
    };
    write_stdout(&out)?;
    match check_domain::status(&reports) {
        0 => Ok(()),
        s => Err(Failure::quiet(s)),
    }
}

/// The probes' settings from the command line (check-domain, summary --probe). Trouble
/// here prevents any answer: exit 3, as a monitoring plugin.
pub(crate) fn probe_settings(
    p: &crate::cli::ProbeArgs,
) -> Result<check_domain::observe::Settings, Failure> {
    let fail3 = |m: String| Failure::with(crate::exit::UNKNOWN, m);
    let ns = p
        .nameserver
        .as_deref()
        .map(check_record::parse_nameserver)
        .transpose()
        .map_err(|e| fail3(format!("--nameserver {e}")))?;
    let op = std::time::Duration::from_secs(p.timeout);
    let resolver = crate::probe::dns::Resolver::new(ns, op, p.trust_ad).map_err(fail3)?;
    let mut roots = rustls::RootCertStore::empty();
    let system = std::path::Path::new(crate::webpki::SYSTEM_ROOTS);
    if system.exists() {
        crate::webpki::add_pem(&mut roots, system)
            .map_err(|e| fail3(format!("the system's roots: {e}")))?;
    } else {
        eprintln!(
            "tlsrpt: warning: no public roots at {} (apt install ca-certificates): no certificate can be trusted",
            system.display()
        );
    }
    if let Some(f) = &p.ca_file {
        match crate::webpki::add_pem(&mut roots, f) {
            Ok(0) => {
                return Err(fail3(format!(
                    "--ca-file {}: no usable certificate",
                    f.display()
                )));
            }
            Ok(_) => {}
            Err(e) => return Err(fail3(format!("--ca-file {e}"))),
        }
    }
    let ehlo = match &p.ehlo {
        Some(n) => n.clone(),
        None => nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .filter(|h| {
                !h.is_empty()
                    && h.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            })
            .unwrap_or_else(|| "localhost".into()),
    };
    if ehlo.is_empty() || !ehlo.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(fail3(format!("--ehlo {ehlo:?}: not a host name")));
    }
    Ok(check_domain::observe::Settings {
        resolver,
        op_timeout: op,
        domain_timeout: op * 6,
        allow_private: p.allow_private_addresses,
        roots: std::sync::Arc::new(roots),
        ehlo,
        cache: None,
        nat64: Default::default(),
        gate: Default::default(),
    })
}

fn metrics_cmd(a: MetricsArgs) -> Result<(), Failure> {
    let trust = trust(&a.trusted, a.include_unauthenticated)?;
    if let Some(url) = &a.db {
        let mut r = db::open_read(url).map_err(db::DbError::failure)?;
        return metrics::run_db(r.as_mut(), &a.spool, &a.textfile, &a.domain, &trust, now())
            .map_err(db::DbError::failure);
    }
    let state = a.state.clone().unwrap_or_else(|| {
        let mut s = a.textfile.as_os_str().to_owned();
        s.push(".state");
        s.into()
    });
    metrics::run(&a.spool, &a.textfile, &state, &a.domain, &trust, now())
        .map(|_| ())
        .map_err(Failure::failed)
}

fn check_cmd(a: CheckArgs) -> Result<(), Failure> {
    let (out, status) = check::run(&a, now())?;
    write_stdout(&out)?;
    match status {
        check::Status::Ok => Ok(()),
        st => Err(Failure::quiet(st as u8)),
    }
}

/// At most `max` bytes of a file, or of standard input for "-".
fn read_bounded(p: &std::path::Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    if p.as_os_str() == "-" {
        std::io::stdin().lock().take(max).read_to_end(&mut buf)?;
    } else {
        std::fs::File::open(p)?.take(max).read_to_end(&mut buf)?;
    }
    Ok(buf)
}

fn now() -> i64 {
    tlsrpt_pipe::datetime::Timestamp::now().0
}

/// The window of `--since`/`--until`.
pub fn window_of(sel: &Select, now: i64) -> Result<Window, Failure> {
    let until = match &sel.until {
        Some(u) => {
            window::parse_when(u, now).map_err(|e| Failure::usage(format!("--until {e}")))?
        }
        None => now,
    };
    // A duration in --since counts back from --until: "--since 30d --until 2026-12-01" is
    // the 30 days before December 1st.
    let since = window::parse_when(&sel.since, until)
        .map_err(|e| Failure::usage(format!("--since {e}")))?;
    if since >= until {
        return Err(Failure::usage(format!(
            "--since {} is not before --until {}",
            window::rfc3339(since),
            window::rfc3339(until)
        )));
    }
    Ok(Window { since, until })
}

fn write_stdout(s: &str) -> Result<(), Failure> {
    let mut out = std::io::stdout().lock();
    match out.write_all(s.as_bytes()).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        // A closed pipe (`| head`) is the reader's choice, not a failure.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(Failure::failed(format!("writing output: {e}"))),
    }
}

fn summary_cmd(a: SummaryArgs) -> Result<(), Failure> {
    let now = now();
    let w = window_of(&a.select, now)?;
    let trust = trust(&a.select.trusted, a.select.include_unauthenticated)?;
    let (s, skipped, sources) = match &a.db {
        None => {
            let (s, k) = summary::collect(&a.select.spool, w, a.select.domain.clone(), &trust)
                .map_err(|e| Failure::failed(format!("no spool could be read: {}", e.0)))?;
            (s, k, a.select.spool.clone())
        }
        Some(url) => {
            let mut r = db::open_read(url).map_err(db::DbError::failure)?;
            let s = summary::collect_db(r.as_mut(), w, &a.select.domain, &trust, a.probe)
                .map_err(db::DbError::failure)?;
            (
                s,
                spool::Skipped::default(),
                vec![std::path::PathBuf::from(url)],
            )
        }
    };
    let mut ours = crate::ours::Ours::default();
    for d in &a.select.domain {
        ours.listed.insert(crate::aggregate::domain_key(Some(d)));
    }
    for r in &s.recipients {
        ours.add_recipient(r);
    }
    for u in &a.our_rua {
        ours.add_uri(u);
    }
    if let Some(f) = &a.domains_file {
        ours.listed.extend(
            crate::ours::domains_file(f)
                .map_err(|e| Failure::usage(format!("--domains-file {e}")))?,
        );
    }
    let mut doc = summary::document(s, skipped, &sources);
    if a.db.is_none() {
        let (n, errors) = crate::quarantine::count_in(&a.select.spool, w.since, w.until);
        if !errors.is_empty() {
            spool::warn(&format!(
                "the quarantine could not be read: {}",
                errors.join("; ")
            ));
        }
        doc.quarantined = n;
    }
    if doc.domains.is_empty() && doc.unauthenticated.domains.is_empty() && a.db.is_none() {
        doc.empty_window = Some(summary::spool_contents(&a.select.spool, w.until));
    }
    if a.probe {
        let settings = probe_settings(&a.probe_args)?;
        crate::live::annotate(&mut doc, &settings, now, &ours);
    }
    if let Some(dir) = &a.watch_state {
        crate::watch::annotate(&mut doc, dir, w, now);
    }
    if !a.mail_to.is_empty() {
        let boundary = digest::random_boundary().map_err(Failure::failed)?;
        let msg = digest::message(
            &doc,
            &a.mail_to,
            a.mail_from.as_deref(),
            &digest::rfc5322(now),
            &boundary,
        )
        .map_err(Failure::usage)?;
        return digest::send(&a.sendmail, a.mail_from.as_deref(), &msg).map_err(Failure::failed);
    }
    let text = match a.format {
        SummaryFormat::Table => {
            let colour = match a.color {
                ColorChoice::Always => true,
                ColorChoice::Never => false,
                ColorChoice::Auto => {
                    std::io::stdout().is_terminal()
                        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                }
            };
            render::table::render(&doc, colour)
        }
        SummaryFormat::Json => {
            return render::json(&doc, std::io::stdout().lock()).or_else(|e| {
                if e.kind() == std::io::ErrorKind::BrokenPipe {
                    Ok(())
                } else {
                    Err(Failure::failed(format!("writing output: {e}")))
                }
            });
        }
        SummaryFormat::Csv => render::csv::render(&doc),
        SummaryFormat::Html => render::html::render(&doc),
    };
    write_stdout(&text)
}

fn export_cmd(a: ExportArgs) -> Result<(), Failure> {
    let w = window_of(&a.select, now())?;
    let format = match a.format {
        ExportFormat::Csv => export::Format::Csv,
        ExportFormat::Jsonl => export::Format::Jsonl,
    };
    let out = std::io::BufWriter::new(std::io::stdout().lock());
    let io_fail = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            None
        } else {
            Some(Failure::failed(format!("writing output: {e}")))
        }
    };
    let trust = trust(&a.select.trusted, a.select.include_unauthenticated)?;
    let mut ex = export::Exporter::new(out, format, w, a.select.domain.clone(), trust)
        .map_err(|e| io_fail(e).unwrap_or(Failure::failed("output closed")))?;
    let mut skipped = spool::Skipped::default();
    let mut errors = Vec::new();
    let mut write_error = None;
    let readable = spool::each_record(
        &a.select.spool,
        w.first_day_file(),
        &mut skipped,
        &mut errors,
        |p| {
            if write_error.is_none()
                && let Err(e) = ex.add(p)
            {
                write_error = Some(e);
            }
        },
    );
    if let Some(e) = write_error {
        return io_fail(e).map_or(Ok(()), Err);
    }
    if readable == 0 {
        return Err(Failure::failed("no spool could be read"));
    }
    let left_out = summary::left_out_docs(&ex.left_out);
    ex.finish()
        .map_err(|e| io_fail(e).unwrap_or(Failure::failed("output closed")))?;
    for w in left_out {
        spool::warn(&format!("left out: {}", w.line()));
    }
    if skipped.lines > 0 || skipped.files > 0 {
        spool::warn(&format!(
            "{} lines skipped, {} day files unreadable",
            skipped.lines, skipped.files
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mail_dates() {
        assert_eq!(digest::rfc5322(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            digest::rfc5322(1_796_000_000),
            "Mon, 30 Nov 2026 00:53:20 +0000"
        ); // as GNU date -R says
    }
}
