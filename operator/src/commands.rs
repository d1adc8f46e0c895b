//! One function per subcommand: arguments → reading → output. Shared steps (the
//! window, the spool walk) live in the modules below; this file only wires them.

use std::io::{IsTerminal, Write};

use crate::cli::{
    CheckArgs, CheckDomainArgs, CheckRecordArgs, Cli, ColorChoice, Command, ExportArgs,
    ExportFormat, LoadArgs, MetricsArgs, PruneArgs, RecordFormat, Select, SummaryArgs,
    SummaryFormat,
};
use crate::window::{self, Window};
use crate::{
    Failure, aggregate, check, check_domain, check_record, digest, export, facts, load, metrics,
    render, silence, spool, summary,
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
    }
}

fn prune_cmd(a: PruneArgs) -> Result<(), Failure> {
    crate::prune::run(&a, now())
}

/// EX_TEMPFAIL: the database could not be reached; the next run catches up.
pub(crate) const TEMPFAIL: u8 = 75;

fn load_cmd(a: LoadArgs) -> Result<(), Failure> {
    let map = |e: load::LoadError| match e {
        load::LoadError::Database(m) => Failure {
            status: TEMPFAIL,
            message: m,
        },
        load::LoadError::NoSpool(m) => Failure::failed(format!("no spool could be read: {m}")),
        load::LoadError::Usage(m) => Failure::usage(format!("--db {m}")),
    };
    let mut store = load::open(&a.db).map_err(map)?;
    let l = load::load(store.as_mut(), &a.spool, a.jobs.into()).map_err(map)?;
    if a.verbose {
        write_stdout(&format!(
            "loaded {} new reports ({} already stored) from {} day files, {} bytes; {} lines skipped; {} transactions rerun\n",
            l.inserted, l.already, l.files_read, l.bytes_read, l.skipped_lines, l.reruns
        ))?;
    }
    Ok(())
}

fn check_record_cmd(a: CheckRecordArgs) -> Result<(), Failure> {
    // Like the other plugin-style command, trouble that prevents an answer is 3.
    let fail3 = |m: String| Failure {
        status: 3,
        message: m,
    };
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
        s => Err(Failure {
            status: s,
            message: String::new(),
        }),
    }
}

fn check_domain_cmd(a: CheckDomainArgs) -> Result<(), Failure> {
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
        RecordFormat::Text => check_domain::text::text(&reports),
        RecordFormat::Json => check_domain::json(&reports),
    };
    write_stdout(&out)?;
    match check_domain::status(&reports) {
        0 => Ok(()),
        s => Err(Failure {
            status: s,
            message: String::new(),
        }),
    }
}

/// The probes' settings from the command line (check-domain, summary --probe). Trouble
/// here prevents any answer: exit 3, as a monitoring plugin.
pub(crate) fn probe_settings(
    p: &crate::cli::ProbeArgs,
) -> Result<check_domain::observe::Settings, Failure> {
    let fail3 = |m: String| Failure {
        status: 3,
        message: m,
    };
    let ns = p
        .nameserver
        .as_deref()
        .map(check_record::parse_nameserver)
        .transpose()
        .map_err(|e| fail3(format!("--nameserver {e}")))?;
    let op = std::time::Duration::from_secs(p.timeout);
    let resolver = crate::probe::dns::Resolver::new(ns, op).map_err(fail3)?;
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
    })
}

/// Opens a `--db` for reading: unreachable is temporary (75), a bad URL is usage (2).
fn open_db(db: &str) -> Result<Box<dyn load::Store>, Failure> {
    let mut store = load::open(db).map_err(|e| match e {
        load::LoadError::Database(m) => Failure {
            status: TEMPFAIL,
            message: m,
        },
        load::LoadError::NoSpool(m) | load::LoadError::Usage(m) => {
            Failure::usage(format!("--db {m}"))
        }
    })?;
    // Reading needs the figures of schema version 4; only `tlsrpt load` (which has the
    // right to write) creates or upgrades the schema.
    let v = store.version().map_err(|e| Failure {
        status: TEMPFAIL,
        message: e.msg,
    })?;
    if v < load::SCHEMA_VERSION {
        return Err(Failure::failed(format!(
            "{db}: database schema version {v}, this tlsrpt reads version {}: run `tlsrpt load --db ...` once to create or upgrade it",
            load::SCHEMA_VERSION
        )));
    }
    Ok(store)
}

fn metrics_cmd(a: MetricsArgs) -> Result<(), Failure> {
    if let Some(db) = &a.db {
        let mut store = open_db(db)?;
        return metrics::run_db(
            store.as_mut(),
            &a.spool,
            &a.textfile,
            &a.domain,
            a.include_unauthenticated,
            now(),
        )
        .map_err(|m| Failure {
            status: TEMPFAIL,
            message: m,
        });
    }
    let state = a.state.clone().unwrap_or_else(|| {
        let mut s = a.textfile.as_os_str().to_owned();
        s.push(".state");
        s.into()
    });
    metrics::run(
        &a.spool,
        &a.textfile,
        &state,
        &a.domain,
        a.include_unauthenticated,
        now(),
    )
    .map(|_| ())
    .map_err(Failure::failed)
}

/// Days of history the check reads besides its window, to judge silence.
const CHECK_HISTORY: i64 = 30 * window::DAY;

fn check_cmd(a: CheckArgs) -> Result<(), Failure> {
    // Monitoring plugins report every trouble, bad arguments included, as UNKNOWN (3).
    let unknown = |msg: String| Failure {
        status: check::Status::Unknown as u8,
        message: format!("TLSRPT UNKNOWN - {msg}"),
    };
    let now = now();
    let since = window::parse_when(&a.since, now).map_err(|e| unknown(format!("--since {e}")))?;
    if since >= now {
        return Err(unknown(format!("--since {:?} is not in the past", a.since)));
    }
    let w = Window { since, until: now };
    let warning = check::Range::parse(&a.warning).map_err(|e| unknown(format!("-w {e}")))?;
    let critical = check::Range::parse(&a.critical).map_err(|e| unknown(format!("-c {e}")))?;
    let max_silence = match &a.max_silence {
        Some(d) => {
            let is_duration = d.trim().ends_with(|c: char| c.is_ascii_alphabetic());
            match window::parse_when(d, 0) {
                Ok(t) if t < 0 && is_duration => Some(-t),
                _ => {
                    return Err(unknown(format!(
                        "--max-silence {d:?}: not a duration (36h, 3d)"
                    )));
                }
            }
        }
        None => None,
    };
    let domains: Vec<String> = a
        .domain
        .iter()
        .map(|d| aggregate::domain_key(Some(d)))
        .collect();
    let horizon = (now - CHECK_HISTORY)
        .min(w.previous().since)
        .min(now - max_silence.unwrap_or(0) - 2 * window::DAY);
    let mut h = silence::History::default();
    let mut skipped = spool::Skipped::default();
    let s = match &a.db {
        Some(db) => {
            // From the database: the window's figures, and the reporters' history.
            let unknown_db = |m: String| unknown(format!("{db}: {m}"));
            let mut store = open_db(db).map_err(|f| unknown_db(f.message))?;
            let s = db_summary(store.as_mut(), w, &domains, a.include_unauthenticated)
                .map_err(|e| unknown_db(e.msg))?;
            store
                .history(horizon - window::DAY, &mut |t| {
                    let counted = t.authenticated || a.include_unauthenticated;
                    if counted
                        && (domains.is_empty() || domains.contains(&t.domain))
                        && let Some(day) = t.day
                    {
                        h.add(&t.domain, &t.b, day, t.last_end);
                    }
                })
                .map_err(|e| unknown_db(e.msg))?;
            s
        }
        None => {
            let mut s = aggregate::Summary::new(w, domains.clone(), a.include_unauthenticated);
            let mut errors = Vec::new();
            let first_day = horizon.div_euclid(window::DAY) * window::DAY - window::DAY;
            let readable =
                spool::each_record(&a.spool, first_day, &mut skipped, &mut errors, |p| {
                    s.add(p);
                    if p.record.authenticated() || a.include_unauthenticated {
                        let org = p
                            .record
                            .report
                            .organization_name
                            .as_deref()
                            .unwrap_or("(unknown)");
                        for (d, _) in aggregate::by_domain(&p.record.report) {
                            if domains.is_empty() || domains.contains(&d) {
                                h.add(&d, org, p.start, p.end);
                            }
                        }
                    }
                });
            if readable < a.spool.len() {
                // An unreadable spool hides reports: the check cannot decide.
                return Err(unknown(format!("cannot read spool: {}", errors.join("; "))));
            }
            s
        }
    };
    let v = check::judge(
        &s,
        &h,
        &check::Params {
            warning,
            critical,
            critical_types: &a.critical_result_type,
            max_silence,
            domains: &domains,
            horizon_days: (now - horizon) / window::DAY,
            now,
        },
    );
    let mut out = v.output();
    if skipped.lines > 0 || skipped.files > 0 {
        out.push_str(&format!(
            "note: {} spool lines skipped, {} day files unreadable\n",
            skipped.lines, skipped.files
        ));
    }
    write_stdout(&out)?;
    match v.status {
        check::Status::Ok => Ok(()),
        st => Err(Failure {
            status: st as u8,
            message: String::new(),
        }),
    }
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

/// RFC 5322 date-time (`Sun, 29 Nov 2026 20:00:00 +0000`).
fn rfc5322(t: i64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let iso = window::rfc3339(t); // YYYY-MM-DDTHH:MM:SSZ
    let month: usize = iso[5..7].parse().unwrap_or(1);
    let wd = DAYS[t.div_euclid(86_400).rem_euclid(7) as usize];
    format!(
        "{wd}, {} {} {} {} +0000",
        iso[8..10].trim_start_matches('0'),
        MONTHS[month - 1],
        &iso[0..4],
        &iso[11..19]
    )
}

fn summary_cmd(a: SummaryArgs) -> Result<(), Failure> {
    let now = now();
    let w = window_of(&a.select, now)?;
    let (s, skipped, sources) = match &a.db {
        None => {
            let (s, k) = summary::collect(
                &a.select.spool,
                w,
                a.select.domain.clone(),
                a.select.include_unauthenticated,
            )
            .map_err(|e| Failure::failed(format!("no spool could be read: {}", e.0)))?;
            (s, k, a.select.spool.clone())
        }
        Some(db) => {
            let fail = |m: String| Failure {
                status: TEMPFAIL,
                message: m,
            };
            let mut store = open_db(db)?;
            let s = db_summary(
                store.as_mut(),
                w,
                &a.select.domain,
                a.select.include_unauthenticated,
            )
            .map_err(|x| fail(x.msg))?;
            let skipped = spool::Skipped::default();
            (s, skipped, vec![std::path::PathBuf::from(db)])
        }
    };
    let mut doc = summary::document(s, skipped, &sources);
    if doc.domains.is_empty() && doc.unauthenticated.domains.is_empty() && a.db.is_none() {
        doc.empty_window = Some(summary::spool_contents(&a.select.spool, w.until));
    }
    if a.probe {
        let settings = probe_settings(&a.probe_args)?;
        crate::live::annotate(&mut doc, &settings, now);
    }
    if !a.mail_to.is_empty() {
        let boundary = format!("tlsrpt-digest-{}-{now}", std::process::id());
        let msg = digest::message(
            &doc,
            &a.mail_to,
            a.mail_from.as_deref(),
            &rfc5322(now),
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

/// The summary of a window from the database: the sums of its facts (crate::facts),
/// one GROUP BY; memory follows the groups, not the reports. On PostgreSQL the domains
/// are split over up to 4 connections (one server process each, as `load --jobs`), and
/// the disjoint shares merged.
pub(crate) fn db_summary(
    store: &mut dyn load::Store,
    w: Window,
    domains: &[String],
    include_unauthenticated: bool,
) -> Result<aggregate::Summary, load::DbError> {
    let mut stores: Vec<Box<dyn load::Store>> = Vec::new();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    while stores.len() + 1 < cores {
        match store.another() {
            Ok(Some(s)) => stores.push(s),
            _ => break,
        }
    }
    let of = stores.len() as u32 + 1;
    let mut s = aggregate::Summary::new(w, domains.to_vec(), include_unauthenticated);
    let query = |index: u32| facts::Query {
        previous_since: w.previous().since,
        since: w.since,
        until: w.until,
        domains: s.domains.clone(),
        include_unauthenticated,
        share: (index, of),
    };
    let queries: Vec<facts::Query> = (0..of).map(query).collect();
    // The connections fetch; this thread alone builds the figures, so they are held
    // once (and in one allocator arena), whatever the number of connections.
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<facts::Group>>(2);
    let results: Vec<Result<(), load::DbError>> = std::thread::scope(|scope| {
        let mut all: Vec<&mut dyn load::Store> = vec![store];
        all.extend(
            stores
                .iter_mut()
                .map(|s| s.as_mut() as &mut dyn load::Store),
        );
        let handles: Vec<_> = all
            .into_iter()
            .zip(&queries)
            .map(|(st, q)| {
                let tx = tx.clone();
                scope.spawn(move || {
                    let mut batch = Vec::with_capacity(256);
                    st.figures(q, &mut |g| {
                        batch.push(g);
                        if batch.len() == 256 {
                            // The receiver only goes away on a panic.
                            let _ = tx.send(std::mem::replace(&mut batch, Vec::with_capacity(256)));
                        }
                    })?;
                    let _ = tx.send(batch);
                    Ok(())
                })
            })
            .collect();
        drop(tx);
        for batch in rx {
            for g in batch {
                facts::apply(&mut s, g);
            }
        }
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    for r in results {
        r?;
    }
    Ok(s)
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
    let mut ex = export::Exporter::new(
        out,
        format,
        w,
        a.select.domain.clone(),
        a.select.include_unauthenticated,
    )
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
    ex.finish()
        .map_err(|e| io_fail(e).unwrap_or(Failure::failed("output closed")))?;
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
        assert_eq!(rfc5322(0), "Thu, 1 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322(1_796_000_000), "Mon, 30 Nov 2026 00:53:20 +0000"); // as GNU date -R says
    }
}
