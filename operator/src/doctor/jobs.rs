//! The operator's jobs: the textfiles `metrics` and `watch` write (their age), the
//! database (reachable, its schema, the latest report loaded), and which jobs are
//! enabled (systemd timers, cron lines).

use std::path::{Path, PathBuf};

use super::{Item, Level, ask, find_program, ok, problem};
use crate::cli::DoctorArgs;

/// The textfiles looked at when none is given (the contrib units' paths).
const DEFAULT_TEXTFILES: [&str; 2] = [
    "/var/lib/prometheus/node-exporter/tlsrpt.prom",
    "/var/lib/prometheus/node-exporter/tlsrpt-watch.prom",
];
/// `metrics` runs every minute: a heartbeat older than this is a stopped job.
const METRICS_STALE: i64 = 15 * 60;
/// The jobs of contrib/systemd and contrib/cron.
const JOBS: [&str; 7] = [
    "load",
    "metrics",
    "watch",
    "digest",
    "prune",
    "fetchmail",
    "getmail",
];

pub fn check(a: &DoctorArgs, now: i64, items: &mut Vec<Item>) {
    let given = !a.textfile.is_empty();
    let files: Vec<PathBuf> = if given {
        a.textfile.clone()
    } else {
        DEFAULT_TEXTFILES
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.exists())
            .collect()
    };
    for f in &files {
        textfile(f, now, items);
    }
    database(a, items);
    enabled(a, items);
}

fn last_sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn age(now: i64, t: f64) -> String {
    let s = now - t as i64;
    if s < 120 {
        format!("{s} s ago")
    } else if s < 7200 {
        format!("{} min ago", s / 60)
    } else {
        format!("{} h ago", s / 3600)
    }
}

fn textfile(f: &Path, now: i64, items: &mut Vec<Item>) {
    let text = match std::fs::read_to_string(f) {
        Ok(t) => t,
        Err(e) => {
            items.push(problem(
                "jobs",
                Level::Error,
                format!("{}: {e}: its alerts see nothing", f.display()),
                "run tlsrpt metrics (or watch) with --textfile there, as the contrib units do",
            ));
            return;
        }
    };
    if let Some(t) = last_sample(&text, "tlsrpt_watch_last_run_timestamp_seconds") {
        let status = last_sample(&text, "tlsrpt_watch_status").unwrap_or(0.0) as u8;
        if now - t as i64 > crate::watch::STALE_AFTER {
            items.push(problem(
                "jobs",
                Level::Warning,
                format!("{}: tlsrpt watch last ran {}", f.display(), age(now, t)),
                "systemctl enable --now tlsrpt-watch.timer (or the cron line); journalctl -u tlsrpt-watch",
            ));
        } else if status == 3 {
            items.push(problem(
                "jobs",
                Level::Warning,
                format!(
                    "{}: tlsrpt watch ran {} but could not check everything",
                    f.display(),
                    age(now, t)
                ),
                "run tlsrpt watch by hand as its user: its \"unknown\" lines say what",
            ));
        } else {
            items.push(ok(
                "jobs",
                format!(
                    "{}: tlsrpt watch ran {} (status {status})",
                    f.display(),
                    age(now, t)
                ),
            ));
        }
        return;
    }
    let hb = crate::metrics::heartbeat_path(f);
    match std::fs::read_to_string(&hb)
        .ok()
        .and_then(|t| last_sample(&t, "tlsrpt_metrics_last_run_timestamp_seconds"))
    {
        Some(t) if now - t as i64 > METRICS_STALE => items.push(problem(
            "jobs",
            Level::Warning,
            format!("{}: tlsrpt metrics last ran {}: the dashboards and alerts are frozen", f.display(), age(now, t)),
            "systemctl enable --now tlsrpt-metrics.timer (or the cron line); run it by hand to see its error",
        )),
        Some(t) => items.push(ok(
            "jobs",
            format!("{}: tlsrpt metrics ran {}", f.display(), age(now, t)),
        )),
        None => items.push(problem(
            "jobs",
            Level::Warning,
            format!("{}: no heartbeat ({}): not written by tlsrpt metrics of this version", f.display(), hb.display()),
            "run tlsrpt metrics --textfile with this path",
        )),
    }
}

fn database(a: &DoctorArgs, items: &mut Vec<Item>) {
    let default = crate::cli::DEFAULT_DB;
    let url = match &a.db {
        Some(u) => u.clone(),
        None if Path::new(default.trim_start_matches("sqlite://")).exists() => default.to_owned(),
        None => return,
    };
    let label = if url.starts_with("sqlite:") {
        url.clone()
    } else {
        "the PostgreSQL database (--db)".into()
    };
    let mut r = match crate::db::open_read(&url) {
        Ok(r) => r,
        Err(e) => {
            items.push(problem(
                "database",
                Level::Error,
                format!("{label}: {e}"),
                "start the database server or correct --db / TLSRPT_DB; a database of an older schema needs one tlsrpt load",
            ));
            return;
        }
    };
    let q = crate::db::figures::Query {
        previous_since: 0,
        since: 0,
        until: i64::MAX,
        domains: Vec::new(),
        everything: true,
        covered: Vec::new(),
        share: (0, 1),
    };
    let mut last: Option<i64> = None;
    let mut reports = 0u64;
    let res = r.totals(&q, &mut |t| {
        if matches!(t.figure, crate::db::figures::Figure::Domain { .. }) {
            reports += t.rows;
        }
        last = last.max(t.last_received);
    });
    match res {
        Ok(()) => items.push(ok(
            "database",
            format!(
                "{label}: reachable, schema current, {reports} domain figure(s){}",
                last.map(|t| format!(", the latest report received {}", crate::window::rfc3339(t)))
                    .unwrap_or_default()
            ),
        )),
        Err(e) => items.push(problem(
            "database",
            Level::Error,
            format!("{label}: {e}"),
            "check the database server's log",
        )),
    }
}

fn enabled(a: &DoctorArgs, items: &mut Vec<Item>) {
    let mut on: Vec<String> = Vec::new();
    let mut looked = Vec::new();
    if Path::new("/run/systemd/system").is_dir()
        && let Some(sc) = find_program(&["/usr/bin/systemctl", "/bin/systemctl"])
    {
        looked.push("systemd timers");
        for j in JOBS {
            let unit = format!("tlsrpt-{j}.timer");
            if let Ok((0, out)) = ask(&sc, &["is-enabled", &unit])
                && out.trim() == "enabled"
            {
                on.push(format!("{j} (timer)"));
            }
        }
    }
    if let Ok(rd) = std::fs::read_dir(&a.cron_dir) {
        looked.push("cron");
        for e in rd.flatten() {
            if !e.file_name().to_string_lossy().starts_with("tlsrpt") {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(e.path()) else {
                continue;
            };
            for l in text.lines().map(str::trim) {
                if l.is_empty() || l.starts_with('#') || !l.contains("tlsrpt") {
                    continue;
                }
                let job = if l.contains("tlsrpt load") {
                    "load"
                } else if l.contains("tlsrpt metrics") {
                    "metrics"
                } else if l.contains("tlsrpt watch") {
                    "watch"
                } else if l.contains("--mail-to") {
                    "digest"
                } else if l.contains("tlsrpt prune") {
                    "prune"
                } else if l.contains("fetchmail") {
                    "fetchmail"
                } else if l.contains("getmail") {
                    "getmail"
                } else {
                    continue;
                };
                on.push(format!("{job} (cron, {})", e.path().display()));
            }
        }
    }
    if on.is_empty() {
        items.push(problem(
            "jobs",
            Level::Warning,
            format!(
                "no operator job is enabled ({} looked at): load, metrics and watch run only by hand",
                if looked.is_empty() { "nothing".to_owned() } else { looked.join(", ") }
            ),
            "systemctl enable --now tlsrpt-metrics.timer tlsrpt-watch.timer (contrib/systemd/), or uncomment lines in /etc/cron.d/tlsrpt",
        ));
    } else {
        items.push(ok("jobs", format!("enabled: {}", on.join(", "))));
    }
}
