//! `tlsrpt watch`: every domain of ours checked live, one pass per call, with a memory.
//!
//! Data flow: which domains (listed ones, and the policy domains of recent reports
//! that are ours, crate::ours) → `check_domain::observe` for each, several at once,
//! sharing one probe per (MX host, address) and at most a few connections per address
//! → `check_domain::judge` → `history` (what changed since the last runs, and the
//! findings only a memory gives) → `state` (written atomically) → `metrics` (the
//! textfile, written on every run) and one line per finding on stdout.
//!
//! Safety is check-domain's: only the domains' own MX hosts (port 25) and `mta-sts`
//! hosts (port 443), private addresses refused unless allowed, every wait bounded, the
//! whole run bounded by `--max-run`. A domain that reports name is probed only once its
//! TLSRPT record shows it is ours.
//!
//! Exit status as check-domain's for the worst domain (0 ok, 1 warnings, 2 errors, 3
//! could not check); the run's own trouble (a spool or the state unreadable, domains
//! the run's time did not reach, the textfile not written) is 3.

pub mod history;
pub mod metrics;
pub mod state;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::check_domain::observe::{Settings, observe};
use crate::check_domain::{DomainReport, judge::judge};
use crate::cli::{RecordFormat, WatchArgs};
use crate::exit::{Failure, UNKNOWN};
use crate::ours::Ours;
use crate::txt_record::Severity;
use history::{History, Stored};

/// Domains checked at once (each probes its addresses in parallel too).
const DOMAINS_AT_ONCE: usize = 8;
/// The most domains one run watches.
pub const MAX_DOMAINS: usize = 10_000;

/// One run's outcome: the lines for stdout and the exit status.
pub struct Outcome {
    pub out: String,
    pub status: u8,
}

/// `watch --history DOMAIN`: the domain's changes from the memory.
pub fn show_history(
    dir: &std::path::Path,
    domain: &str,
    format: RecordFormat,
) -> Result<String, Failure> {
    let st = state::read(dir)
        .map_err(|e| Failure::with(UNKNOWN, e))?
        .ok_or_else(|| {
            Failure::with(
                UNKNOWN,
                format!(
                    "{}: no watch state yet (run tlsrpt watch first, with the same --state)",
                    dir.display()
                ),
            )
        })?;
    let key = crate::aggregate::domain_key(Some(domain));
    let h = st.domains.get(&key).ok_or_else(|| {
        Failure::with(
            UNKNOWN,
            format!("{key}: not watched (no history in {})", dir.display()),
        )
    })?;
    let changes = h.changes();
    Ok(match format {
        RecordFormat::Json => {
            let mut s = serde_json::to_string_pretty(&serde_json::json!({
                "domain": key,
                "checked-at": crate::window::rfc3339(h.checked_at),
                "status": h.status,
                "findings": h.findings,
                "changes": changes,
                "seen": h.seen,
            }))
            .expect("plain data");
            s.push('\n');
            s
        }
        RecordFormat::Text => {
            let mut o = format!(
                "{key}: last checked {} (status {})\n",
                crate::window::rfc3339(h.checked_at),
                h.status
            );
            let mut seen = h.seen.clone();
            seen.sort_by(|a, b| {
                a.what
                    .kind()
                    .cmp(&b.what.kind())
                    .then(a.first.cmp(&b.first))
            });
            o.push_str("seen:\n");
            for s in &seen {
                o.push_str(&format!(
                    "  {} .. {}  {}\n",
                    crate::window::rfc3339(s.first),
                    crate::window::rfc3339(s.last),
                    crate::render::safe::terminal(&s.what.describe())
                ));
            }
            o.push_str(if changes.is_empty() {
                "changes: none since watching began\n"
            } else {
                "changes:\n"
            });
            for c in &changes {
                o.push_str(&format!(
                    "  {} {}: {}\n",
                    crate::window::rfc3339(c.at),
                    c.change,
                    crate::render::safe::terminal(&c.what)
                ));
            }
            o
        }
    })
}

/// A run that failed before it could judge anything (the resolver, the state, the
/// domains file): the textfile still says so (status 3, no domain checked), so that
/// the alerts on it fire instead of going quiet, unless another run holds the state
/// (its own textfile is the truth).
pub fn textfile_after_failure(a: &WatchArgs, now: i64, started: Instant) {
    let Some(tf) = &a.textfile else { return };
    if state::busy(&a.state) {
        return;
    }
    let run = metrics::Run {
        now,
        duration: started.elapsed().as_secs_f64(),
        status: UNKNOWN,
        ..Default::default()
    };
    // Best effort: the failure itself is what the caller reports.
    let _ = crate::metrics::write_atomic(tf, metrics::render(&[], &run).as_bytes(), 0o644);
}

/// How old the watch's last run may be before the summary says its findings are stale
/// (three runs of the hourly timer missed).
pub const STALE_AFTER: i64 = 3 * 3600;

/// `summary --watch-state DIR`: each domain of the summary that the watch checks gets
/// what the watch last found there and its changes inside the summary's window; the
/// document says when the watch last ran, and when its word is stale, could not be
/// read, or absent (never an empty section that reads as "nothing wrong").
pub fn annotate(
    doc: &mut crate::summary::Doc,
    dir: &std::path::Path,
    window: crate::window::Window,
    now: i64,
) {
    use crate::summary::{DomainWatchDoc, WatchRunDoc};
    let st = match state::read(dir) {
        Ok(Some(st)) => st,
        Ok(None) => {
            doc.watch = Some(WatchRunDoc {
                last_run: None,
                problem: Some(format!(
                    "{}: tlsrpt watch has not run yet (nothing checked live)",
                    dir.display()
                )),
            });
            return;
        }
        Err(e) => {
            doc.watch = Some(WatchRunDoc {
                last_run: None,
                problem: Some(format!("the watch's memory could not be read: {e}")),
            });
            return;
        }
    };
    let stale = now.saturating_sub(st.last_run) > STALE_AFTER;
    doc.watch = Some(WatchRunDoc {
        last_run: Some(crate::window::rfc3339(st.last_run)),
        problem: stale.then(|| {
            format!(
                "tlsrpt watch last ran at {}: what it found may have changed since (is its timer running?)",
                crate::window::rfc3339(st.last_run)
            )
        }),
    });
    for d in doc
        .domains
        .iter_mut()
        .chain(doc.unauthenticated.domains.iter_mut())
    {
        let Some(h) = st.domains.get(&d.policy_domain) else {
            continue;
        };
        d.watch = Some(DomainWatchDoc {
            checked_at: crate::window::rfc3339(h.checked_at),
            status: h.status,
            findings: h
                .findings
                .iter()
                .filter(|f| f.severity != "info")
                .cloned()
                .collect(),
            changes: h
                .changes()
                .into_iter()
                .filter(|c| c.at > window.since && c.at <= window.until)
                .collect(),
        });
    }
}

/// One pass over every domain.
pub fn run(a: &WatchArgs, settings: &Settings, now: i64) -> Result<Outcome, Failure> {
    let started = Instant::now();
    let fail3 = |m: String| Failure::with(UNKNOWN, m);
    let (locked, mut st) = state::open(&a.state).map_err(fail3)?;
    let mut trouble: Vec<String> = Vec::new();

    // ---- which domains ------------------------------------------------------------
    let mut ours = Ours::default();
    for d in &a.domain {
        ours.listed.insert(crate::aggregate::domain_key(Some(d)));
    }
    if let Some(f) = &a.domains_file {
        ours.listed.extend(
            crate::ours::domains_file(f).map_err(|e| fail3(format!("--domains-file {e}")))?,
        );
    }
    for u in &a.our_rua {
        ours.add_uri(u);
    }
    let mut from_reports: BTreeSet<String> = BTreeSet::new();
    if !a.spool.is_empty() || a.db.is_some() {
        let since = crate::window::parse_when(&a.reports_since, now)
            .map_err(|e| fail3(format!("--reports-since {e}")))?;
        let w = crate::window::Window { since, until: now };
        // Every report names domains (the TLSRPT record check below decides), so
        // unauthenticated ones count here too.
        let trust = crate::trust::Trust::new(&[], true).map_err(fail3)?;
        let summary = if let Some(url) = &a.db {
            let mut r = crate::db::open_read(url).map_err(|e| fail3(e.to_string()))?;
            crate::summary::collect_db(r.as_mut(), w, &[], &trust, true)
                .map_err(|e| fail3(e.to_string()))
                .map(Some)?
        } else {
            match crate::summary::collect(&a.spool, w, Vec::new(), &trust) {
                Ok((s, skipped)) => {
                    if skipped.lines + skipped.files > 0 {
                        trouble.push(format!(
                            "{} spool line(s) and {} file(s) could not be read (see the warnings on stderr)",
                            skipped.lines, skipped.files
                        ));
                    }
                    Some(s)
                }
                Err(e) => {
                    trouble.push(format!("no spool could be read: {}", e.0));
                    None
                }
            }
        };
        if let Some(s) = summary {
            for r in &s.recipients {
                ours.add_recipient(r);
            }
            from_reports.extend(
                s.current
                    .domains
                    .keys()
                    .chain(s.unauthenticated.domains.keys())
                    .filter(|d| d.as_str() != tlsrpt_pipe::counting::NONE)
                    .cloned(),
            );
        }
    }
    let unlisted: Vec<String> = from_reports
        .into_iter()
        .filter(|d| !ours.listed.contains(d))
        .collect();
    let dns = crate::check_record::Dns::with(settings.resolver.clone());
    let (found_ours, not_ours) = if unlisted.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        // Every domain of the reports is looked up (not summary --probe's 200), in a
        // third of the run's time.
        ours.split_upto(
            &unlisted,
            &dns,
            Duration::from_secs(a.max_run / 3).max(settings.domain_timeout),
            MAX_DOMAINS,
        )
    };
    // Whether a domain is ours could not be told (its record not looked up, the run's
    // lookups or time spent): not judged, so not fine either.
    let undecided: Vec<&(String, String)> = not_ours
        .iter()
        .filter(|(_, why)| why != crate::ours::NOT_OURS)
        .collect();
    for (d, why) in undecided.iter().take(20) {
        trouble.push(format!("{d}: {why}"));
    }
    if undecided.len() > 20 {
        trouble.push(format!(
            "and {} more domain(s) of the reports not looked up",
            undecided.len() - 20
        ));
    }
    let mut domains: Vec<String> = ours.listed.iter().cloned().collect();
    domains.extend(found_ours);
    if domains.len() > MAX_DOMAINS {
        trouble.push(format!(
            "{} domains: only the first {MAX_DOMAINS} are watched",
            domains.len()
        ));
        domains.truncate(MAX_DOMAINS);
    }

    // ---- observe and judge, several domains at once ---------------------------------
    let mut s = settings.clone();
    if s.cache.is_none() {
        s.cache = Some(Arc::new(Mutex::new(Default::default())));
    }
    let end = started + Duration::from_secs(a.max_run);
    let results: Vec<Mutex<Option<DomainReport>>> =
        domains.iter().map(|_| Mutex::new(None)).collect();
    let next = Mutex::new(0usize);
    std::thread::scope(|scope| {
        for _ in 0..DOMAINS_AT_ONCE.min(domains.len()) {
            scope.spawn(|| {
                loop {
                    let k = {
                        let mut n = next.lock().expect("no panics while held");
                        let k = *n;
                        *n += 1;
                        k
                    };
                    let Some(d) = domains.get(k) else { return };
                    if Instant::now() + s.domain_timeout > end {
                        continue; // not checked: the run's time is spent
                    }
                    let mut r = observe(&s, d, None);
                    judge(&mut r, i64::from(a.expiry_warning));
                    *results[k].lock().expect("no panics while held") = Some(r);
                }
            });
        }
    });
    let mut reports: Vec<DomainReport> = Vec::new();
    let mut not_checked: Vec<String> = Vec::new();
    for (d, r) in domains.iter().zip(results) {
        match r.into_inner().expect("no panics while held") {
            Some(r) => reports.push(r),
            None => not_checked.push(d.clone()),
        }
    }
    if !not_checked.is_empty() {
        trouble.push(format!(
            "{} domain(s) not checked: the run's --max-run {} s was spent first (run less often, or with a larger --max-run)",
            not_checked.len(),
            a.max_run
        ));
    }

    // ---- remember, and what the memory says ----------------------------------------
    let keep = i64::from(a.keep_days) * crate::window::DAY;
    for r in &mut reports {
        let h = st.domains.entry(r.domain.clone()).or_default();
        h.update(history::observations(r), now, keep);
        for f in &mut r.findings {
            if f.code == "sts-mx-not-covered"
                && let Some(host) = &f.host
                && let Some(t) = h.mx_joined(host, now)
            {
                f.message.push_str(&format!(
                    " (it joined the MX set at {})",
                    crate::window::rfc3339(t)
                ));
            }
        }
        r.findings.extend(h.findings(&r.domain, now));
        h.checked_at = now;
        h.status = crate::check_domain::status(std::slice::from_ref(r));
        h.findings = r
            .findings
            .iter()
            .map(|f| Stored {
                code: f.code.into(),
                severity: f.severity.label().into(),
                host: f.host.clone(),
                message: f.message.clone(),
            })
            .collect();
    }
    // Domains no longer watched keep their memory until it is older than --keep-days.
    st.domains
        .retain(|_, h: &mut History| h.checked_at >= now.saturating_sub(keep));
    st.last_run = now;
    st.last_duration = started.elapsed().as_secs_f64();
    if let Err(e) = locked.save(&st) {
        trouble.push(format!("the watch's memory was not saved: {e}"));
    }

    // ---- status, textfile, lines ----------------------------------------------------
    let mut status = crate::check_domain::status(&reports);
    if !trouble.is_empty() || (domains.is_empty() && not_ours.is_empty()) {
        status = UNKNOWN;
    }
    if domains.is_empty() && trouble.is_empty() {
        trouble.push(
            "no domain to watch: give --domain or --domains-file, or --spool with reports of domains whose TLSRPT record sends here".into(),
        );
        status = UNKNOWN;
    }
    if let Some(tf) = &a.textfile {
        let run = metrics::Run {
            now,
            duration: started.elapsed().as_secs_f64(),
            not_ours: not_ours.len() - undecided.len(),
            undecided: undecided.len(),
            not_checked: not_checked.clone(),
            status,
        };
        let text = metrics::render(&reports, &run);
        if let Err(e) = crate::metrics::write_atomic(tf, text.as_bytes(), 0o644) {
            trouble.push(format!(
                "--textfile {}: {e} (the directory must exist and be writable by this user)",
                tf.display()
            ));
            status = UNKNOWN;
        }
    }
    let out = match a.format {
        RecordFormat::Json => {
            let mut j = serde_json::to_string_pretty(&serde_json::json!({
                "status": status,
                "trouble": trouble,
                "not-ours": not_ours.iter().map(|(d, why)| serde_json::json!({"domain": d, "why": why})).collect::<Vec<_>>(),
                "not-checked": not_checked,
                "domains": reports,
            }))
            .expect("plain data");
            j.push('\n');
            j
        }
        RecordFormat::Text => lines(&reports, &trouble, &not_ours, &not_checked, a.verbose),
    };
    Ok(Outcome { out, status })
}

/// One line per finding (`DOMAIN SEVERITY CODE [HOST]: message`), the run's trouble
/// first; info findings and the domains not watched with `--verbose`.
fn lines(
    reports: &[DomainReport],
    trouble: &[String],
    not_ours: &[(String, String)],
    not_checked: &[String],
    verbose: bool,
) -> String {
    let safe = crate::render::safe::terminal;
    let mut o = String::new();
    for t in trouble {
        o.push_str(&format!("watch unknown: {}\n", safe(t)));
    }
    for d in not_checked {
        o.push_str(&format!(
            "{} unknown not-checked: the run's time was spent before this domain\n",
            safe(d)
        ));
    }
    for r in reports {
        for f in &r.findings {
            if f.severity == Severity::Info && !verbose {
                continue;
            }
            let host = f
                .host
                .as_deref()
                .map(|h| format!(" {h}"))
                .unwrap_or_default();
            o.push_str(&format!(
                "{} {} {}{}: {}\n",
                safe(&r.domain),
                f.severity.label(),
                f.code,
                safe(&host),
                safe(&f.message)
            ));
        }
    }
    if verbose {
        for (d, why) in not_ours {
            o.push_str(&format!("{} info not-watched: {}\n", safe(d), safe(why)));
        }
        o.push_str(&format!(
            "watch: {} domain(s) checked, {} not ours, {} not checked\n",
            reports.len(),
            not_ours.len(),
            not_checked.len()
        ));
    }
    o
}
