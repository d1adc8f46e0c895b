//! `tlsrpt metrics`: spools → Prometheus text exposition for node_exporter's textfile
//! collector, incrementally.
//!
//! Guarantees:
//! - The textfile is replaced atomically (a temporary file in the same directory,
//!   fsynced, mode 0644, renamed over it): a scrape never sees half a file. It holds
//!   the report metrics only and is rewritten only when they change; every run writes
//!   `tlsrpt_metrics_last_run_timestamp_seconds` to a heartbeat file beside it
//!   (`NAME.run.prom`), the same way.
//! - Incremental: a state file (`--state`, default `TEXTFILE.state`, beside the textfile;
//!   node_exporter reads only `*.prom`) keeps the counters, how far each day file was
//!   read (inode and offset), the dedup keys seen (`STATE.keys`, 16 bytes each) and each
//!   reporter's recent history. A run reads only bytes appended since the last one; a
//!   torn last line is left for the next run. A day file that shrank or was replaced, a
//!   different set of spools, or a state that cannot be read makes a full recount.
//! - Two runs at once (an overlapping cron job) are serialised by a lock on
//!   `STATE.lock`; the state is written (keys first, then the state by rename) only
//!   after the textfile, so a crash at any point leaves the previous state, and the next
//!   run counts again from it: nothing counted twice, nothing lost.
//! - Bounded cardinality: no label per sending IP, receiving IP or report id. Counters
//!   come from reports with a trusted DKIM pass (`--include-unauthenticated` adds the
//!   others); `tlsrpt_unauthenticated_reports_total` names only domains that also have
//!   authenticated reports or were given with `--domain`, the rest are `(other)`, since
//!   anyone can send a report naming any domain.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::aggregate::{Share as DomainShare, dedup_id, domain_key, policy_type, shares, slot};
use crate::db::figures::Figure;
use crate::db::{DbError, Query, Reader};
use crate::record::{Parsed, PolicyResult};
use crate::silence::{self, History};
use crate::spool::{self, Share, Skipped};
use crate::trust::Trust;

/// 2: the counting rule (tlsrpt_pipe::counting), the options the counters were made
/// with, and the sessions of reports not counted.
const STATE_VERSION: u32 = 2;

/// How far a day file was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    pub ino: u64,
    pub offset: u64,
}

/// Keyed by policy domain: hashed, since a year of reports looks up a thousand domains
/// hundreds of thousands of times (a B-tree compares the names a dozen times a lookup);
/// [`render`] sorts them.
type PerDomain<T> = HashMap<String, T>;

/// The value at `key` of a per-domain map, inserted with its default first when absent
/// (the key copied only then).
fn domain_slot<'m, V: Default>(map: &'m mut PerDomain<V>, key: &str) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), V::default());
    }
    map.get_mut(key).expect("inserted above")
}

/// A per-domain map's entries, sorted by domain (the textfile's order).
fn by_domain<T>(map: &PerDomain<T>) -> Vec<(&String, &T)> {
    let mut v: Vec<_> = map.iter().collect();
    v.sort_unstable_by(|a, b| a.0.cmp(b.0));
    v
}

/// Everything a run needs from the last one.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub spools: Vec<String>,
    /// The options that decide what counts (domains, trust): counters made with other
    /// options are recounted.
    #[serde(default)]
    pub options: String,
    pub files: BTreeMap<String, Mark>,
    /// domain → organisation → reports.
    pub reports: PerDomain<BTreeMap<String, u64>>,
    /// domain → policy type → result → sessions (each type's own figures).
    pub sessions: PerDomain<BTreeMap<String, BTreeMap<String, u64>>>,
    /// domain → result → sessions, by the counting rule.
    pub domain_sessions: PerDomain<BTreeMap<String, u64>>,
    /// The same for reports that do not count (no trusted DKIM pass).
    #[serde(default)]
    pub unauthenticated_sessions: PerDomain<BTreeMap<String, u64>>,
    pub unauthenticated: PerDomain<u64>,
    pub last_received: PerDomain<i64>,
    /// When the latest report of any kind (any domain, trusted or not) was stored: the
    /// mailbox path's health ("reports are being fetched and stored").
    #[serde(default)]
    pub last_stored: Option<i64>,
    pub history: History,
    pub skipped_lines: u64,
    /// Number of dedup keys in `STATE.keys` that belong to this state.
    pub keys: u64,
    #[serde(skip)]
    pub seen: HashSet<u128>,
    /// The keys in file order (as loaded, then the new ones appended).
    #[serde(skip)]
    pub key_order: Vec<u128>,
}

/// A policy's sessions by result, each given to `f`: successful, each result type of
/// its failure details, and the failed sessions it gave no detail row for.
fn each_result(pol: &PolicyResult, mut f: impl FnMut(&str, u64)) {
    f("successful", pol.summary.successful);
    let mut detailed = 0u64;
    for fd in &pol.failure_details {
        f(
            fd.result_type.as_deref().unwrap_or("(none)"),
            fd.failed_session_count,
        );
        detailed = detailed.saturating_add(fd.failed_session_count);
    }
    if pol.summary.failed > detailed {
        f("unspecified-failure", pol.summary.failed - detailed);
    }
}

/// Adds `n` at `key` (the key copied only when new).
fn add_at(m: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    let e = slot(m, key);
    *e = e.saturating_add(n);
}

/// Adds the counted policies' sessions by result (the counting rule).
fn add_share(m: &mut BTreeMap<String, u64>, share: &DomainShare) {
    for pol in share.counted() {
        each_result(pol, |res, n| add_at(m, res, n));
    }
}

/// Adds one record to the counters (the caller has checked it is new).
fn count(st: &mut State, p: &Parsed, trust: &Trust, domains: &[String]) {
    let r = &p.record;
    let counted = trust.judge(r).counted;
    let org = r.report.organization_name.as_deref().unwrap_or("(unknown)");
    let received = r
        .received_at
        .as_deref()
        .and_then(tlsrpt_pipe::datetime::parse)
        .map(|(t, _)| t.0);
    if let Some(t) = received {
        st.last_stored = Some(st.last_stored.map_or(t, |l| l.max(t)));
    }
    for share in shares(&r.report) {
        let domain = share.domain.as_str();
        if !domains.is_empty() && !domains.iter().any(|d| d == domain) {
            continue;
        }
        if !counted {
            *domain_slot(&mut st.unauthenticated, domain) += 1;
            add_share(
                domain_slot(&mut st.unauthenticated_sessions, domain),
                &share,
            );
            continue;
        }
        *slot(domain_slot(&mut st.reports, domain), org) += 1;
        if let Some(t) = received {
            let e = domain_slot(&mut st.last_received, domain);
            *e = (*e).max(t);
        }
        st.history.add(domain, org, p.start, p.end);
        add_share(domain_slot(&mut st.domain_sessions, domain), &share);
        let types = domain_slot(&mut st.sessions, domain);
        for pol in &share.policies {
            let m = slot(types, policy_type(pol));
            each_result(pol, |res, n| add_at(m, res, n));
        }
    }
}

/// The options that decide what counts, as the state keeps them.
fn options(domains: &[String], trust: &Trust) -> String {
    format!(
        "domains={};trusted={};everything={}",
        domains.join(","),
        trust.ids.join(","),
        trust.everything
    )
}

fn state_paths(state: &Path) -> (PathBuf, PathBuf) {
    let s = state.as_os_str().to_owned();
    let mut keys = s.clone();
    keys.push(".keys");
    let mut lock = s;
    lock.push(".lock");
    (PathBuf::from(keys), PathBuf::from(lock))
}

/// Loads the state (without its keys: see [`load_keys`]); `None` (recount from scratch)
/// when missing, unreadable, or of another version or set of spools.
fn load(state: &Path, spools: &[String], options: &str) -> Option<State> {
    let text = std::fs::read(state).ok()?;
    let st: State = serde_json::from_slice(&text).ok()?;
    (st.version == STATE_VERSION && st.spools == spools && st.options == options).then_some(st)
}

/// Loads the dedup keys, needed only when there is something new to read; `None` when
/// the keys file does not hold the state's keys (then everything is counted again).
fn load_keys(state: &Path, st: &mut State) -> Option<()> {
    let (keys_path, _) = state_paths(state);
    let mut raw = Vec::new();
    File::open(keys_path).ok()?.read_to_end(&mut raw).ok()?;
    let want = usize::try_from(st.keys).ok()?.checked_mul(16)?;
    if raw.len() < want {
        return None;
    }
    st.key_order = raw[..want]
        .chunks_exact(16)
        .map(|c| u128::from_le_bytes(c.try_into().expect("16 bytes")))
        .collect();
    st.seen = st.key_order.iter().copied().collect();
    Some(())
}

/// Writes `data` to `path` atomically: temporary file beside it, fsync, mode, rename.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?
        .to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp.{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&tmp)?;
        f.write_all(data)?;
        f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(mode))?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename is durable once the directory is.
        File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes the keys file (when it gained keys) and then the state.
fn save(state: &Path, st: &State, new_keys: bool) -> io::Result<()> {
    let (keys_path, _) = state_paths(state);
    if new_keys {
        let mut raw = Vec::with_capacity(st.key_order.len() * 16);
        for k in &st.key_order {
            raw.extend_from_slice(&k.to_le_bytes());
        }
        write_atomic(&keys_path, &raw, 0o644)?;
    }
    let json = serde_json::to_vec(st).map_err(io::Error::other)?;
    write_atomic(state, &json, 0o644)
}

/// Escapes a label value (exposition format: `\`, `"`, newline).
pub fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c if crate::render::safe::unsafe_char(c) => s.push(' '),
            c => s.push(c),
        }
    }
    s
}

/// The exposition text for a state.
pub(crate) fn head(o: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The run's heartbeat, in a textfile of its own ([`heartbeat_path`]) so that the
/// report metrics stay byte for byte the same while no report comes.
pub fn heartbeat(now: i64) -> String {
    let mut o = String::new();
    head(
        &mut o,
        "tlsrpt_metrics_last_run_timestamp_seconds",
        "gauge",
        "Time of the last successful run of tlsrpt metrics.",
    );
    let _ = writeln!(o, "tlsrpt_metrics_last_run_timestamp_seconds {now}");
    o
}

/// `DIR/NAME.prom` → `DIR/NAME.run.prom` (any other name gets `.run.prom` appended):
/// beside the textfile, and read by the same collector.
pub fn heartbeat_path(textfile: &Path) -> PathBuf {
    let name = textfile
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(".prom").unwrap_or(&name);
    textfile.with_file_name(format!("{stem}.run.prom"))
}

pub fn render(st: &State, quarantined: u64, domains: &[String]) -> String {
    let mut o = String::new();
    head(
        &mut o,
        "tlsrpt_reports_total",
        "counter",
        "TLS reports with a trusted DKIM pass, by policy domain and reporting organisation.",
    );
    for (d, orgs) in by_domain(&st.reports) {
        for (org, n) in orgs {
            let _ = writeln!(
                o,
                "tlsrpt_reports_total{{policy_domain=\"{}\",organization=\"{}\"}} {n}",
                label(d),
                label(org)
            );
        }
    }
    head(
        &mut o,
        "tlsrpt_sessions_total",
        "counter",
        "Sessions by policy domain, policy type and result (successful, a result type, or unspecified-failure); each policy type's own figures: do not sum over policy_type.",
    );
    for (d, types) in by_domain(&st.sessions) {
        for (t, results) in types {
            for (r, n) in results {
                let _ = writeln!(
                    o,
                    "tlsrpt_sessions_total{{policy_domain=\"{}\",policy_type=\"{}\",result=\"{}\"}} {n}",
                    label(d),
                    label(t),
                    label(r)
                );
            }
        }
    }
    head(
        &mut o,
        "tlsrpt_domain_sessions_total",
        "counter",
        "Sessions by policy domain and result, by the counting rule (policies of one type add up; a session reported under sts and tlsa counts once). authenticated=\"false\": reports without a trusted DKIM pass, not counted elsewhere (domains with no authenticated report are (other)).",
    );
    for (d, results) in by_domain(&st.domain_sessions) {
        for (r, n) in results {
            let _ = writeln!(
                o,
                "tlsrpt_domain_sessions_total{{policy_domain=\"{}\",result=\"{}\",authenticated=\"true\"}} {n}",
                label(d),
                label(r)
            );
        }
    }
    let mut unauth_sessions: BTreeMap<&str, BTreeMap<&str, u64>> = BTreeMap::new();
    for (d, results) in by_domain(&st.unauthenticated_sessions) {
        let known = st.reports.contains_key(d) || domains.contains(d);
        let m = unauth_sessions
            .entry(if known { d.as_str() } else { "(other)" })
            .or_default();
        for (r, n) in results {
            let e = m.entry(r.as_str()).or_default();
            *e = e.saturating_add(*n);
        }
    }
    for (d, results) in unauth_sessions {
        for (r, n) in results {
            let _ = writeln!(
                o,
                "tlsrpt_domain_sessions_total{{policy_domain=\"{}\",result=\"{}\",authenticated=\"false\"}} {n}",
                label(d),
                label(r)
            );
        }
    }
    head(
        &mut o,
        "tlsrpt_last_report_timestamp_seconds",
        "gauge",
        "End of the date range of the latest report, by policy domain and reporting organisation.",
    );
    for (d, orgs) in &st.history.reporters {
        for (org, r) in orgs {
            let _ = writeln!(
                o,
                "tlsrpt_last_report_timestamp_seconds{{policy_domain=\"{}\",organization=\"{}\"}} {}",
                label(d),
                label(org),
                r.last_end
            );
        }
    }
    head(
        &mut o,
        "tlsrpt_reporter_interval_seconds",
        "gauge",
        "Learned report interval of a regular reporter (absent for irregular ones); silent when time() - last_report > interval + 129600.",
    );
    for (d, orgs) in &st.history.reporters {
        for (org, r) in orgs {
            if let Some(iv) = silence::interval(r) {
                let _ = writeln!(
                    o,
                    "tlsrpt_reporter_interval_seconds{{policy_domain=\"{}\",organization=\"{}\"}} {iv}",
                    label(d),
                    label(org)
                );
            }
        }
    }
    head(
        &mut o,
        "tlsrpt_last_received_timestamp_seconds",
        "gauge",
        "Time the latest authenticated report for the policy domain was received.",
    );
    for (d, t) in by_domain(&st.last_received) {
        let _ = writeln!(
            o,
            "tlsrpt_last_received_timestamp_seconds{{policy_domain=\"{}\"}} {t}",
            label(d)
        );
    }
    head(
        &mut o,
        "tlsrpt_last_stored_timestamp_seconds",
        "gauge",
        "Time the latest report of any domain, trusted or not, was stored: reports are being delivered (or fetched) and stored.",
    );
    if let Some(t) = st.last_stored {
        let _ = writeln!(o, "tlsrpt_last_stored_timestamp_seconds {t}");
    }
    head(
        &mut o,
        "tlsrpt_unauthenticated_reports_total",
        "counter",
        "Reports without a trusted DKIM pass (not counted above); domains with no authenticated report are (other).",
    );
    let mut unauth: BTreeMap<&str, u64> = BTreeMap::new();
    for (d, n) in by_domain(&st.unauthenticated) {
        let known = st.reports.contains_key(d) || domains.contains(d);
        *unauth
            .entry(if known { d.as_str() } else { "(other)" })
            .or_default() += n;
    }
    for (d, n) in unauth {
        let _ = writeln!(
            o,
            "tlsrpt_unauthenticated_reports_total{{policy_domain=\"{}\"}} {n}",
            label(d)
        );
    }
    head(
        &mut o,
        "tlsrpt_quarantined_total",
        "counter",
        "Messages in the spools' quarantine (reports that could not be read).",
    );
    let _ = writeln!(o, "tlsrpt_quarantined_total {quarantined}");
    head(
        &mut o,
        "tlsrpt_skipped_lines_total",
        "counter",
        "Spool lines that were not records.",
    );
    let _ = writeln!(o, "tlsrpt_skipped_lines_total {}", st.skipped_lines);
    o
}

/// Quarantined messages in all spools.
fn quarantined(spools: &[PathBuf]) -> u64 {
    spools
        .iter()
        .map(|s| {
            std::fs::read_dir(s.join(tlsrpt_pipe::layout::QUARANTINE_DIR)).map_or(0, |rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| {
                        tlsrpt_pipe::layout::quarantine_name(&e.file_name().to_string_lossy())
                            .is_some_and(|(_, eml)| !eml)
                    })
                    .count() as u64
            })
        })
        .sum()
}

/// Days of reporter history `metrics --db` reads (the silence rule looks at the 28 days
/// before a reporter's latest report; a reporter silent for longer than a month has
/// long been alerted on).
pub const DB_HISTORY_DAYS: i64 = 60;

/// The counters of a database (`metrics --db`): the all-time sums of its figures, the
/// pruned ones included (crate::db::figures, crate::db::prune), so they never go down.
/// No state file: the database is the state. The same textfile and heartbeat as [`run`].
pub fn run_db(
    reader: &mut dyn Reader,
    spools: &[PathBuf],
    textfile: &Path,
    domains: &[String],
    trust: &Trust,
    now: i64,
) -> Result<(), DbError> {
    let domains: Vec<String> = domains.iter().map(|d| domain_key(Some(d))).collect();
    let mut st = State::default();
    let wanted = |d: &str| domains.is_empty() || domains.iter().any(|x| x == d);
    let q = Query {
        previous_since: 0,
        since: 0,
        until: now,
        domains: domains.clone(),
        everything: trust.everything,
        covered: trust.covered_needs(),
        share: (0, 1),
    };
    let add = |m: &mut BTreeMap<String, u64>, k: &str, n: u64| {
        let e = m.entry(k.to_owned()).or_default();
        *e = e.saturating_add(n);
    };
    let result_key = |r: &Option<String>| r.clone().unwrap_or_else(|| "unspecified-failure".into());
    reader.totals(&q, &mut |t| {
        if let Some(r) = t.last_received {
            st.last_stored = Some(st.last_stored.map_or(r, |l| l.max(r)));
        }
        if !wanted(&t.domain) {
            return;
        }
        let d = t.domain.clone();
        match (t.figure, t.counted) {
            (Figure::Domain { successful, .. }, false) => {
                let e = st.unauthenticated.entry(d.clone()).or_default();
                *e = e.saturating_add(t.rows);
                add(
                    st.unauthenticated_sessions.entry(d).or_default(),
                    "successful",
                    successful,
                );
            }
            (
                Figure::Result {
                    result_type,
                    failed,
                    ..
                },
                false,
            ) => {
                add(
                    st.unauthenticated_sessions.entry(d).or_default(),
                    &result_key(&result_type),
                    failed,
                );
            }
            (_, false) => {}
            (
                Figure::Domain {
                    organization,
                    policy_type,
                    successful,
                    ..
                },
                true,
            ) => {
                add(
                    st.reports.entry(d.clone()).or_default(),
                    &organization,
                    t.rows,
                );
                add(
                    st.domain_sessions.entry(d.clone()).or_default(),
                    "successful",
                    successful,
                );
                if let Some(r) = t.last_received {
                    let e = st.last_received.entry(d.clone()).or_insert(r);
                    *e = (*e).max(r);
                }
                st.history.saw_end(&d, &organization, t.last_end);
                // Reports pruned before version 5 may lack the counted type.
                if !policy_type.is_empty() {
                    let m = st.sessions.entry(d).or_default();
                    add(m.entry(policy_type).or_default(), "successful", successful);
                }
            }
            (
                Figure::Type {
                    policy_type,
                    successful,
                    ..
                },
                true,
            ) => {
                let m = st
                    .sessions
                    .entry(d)
                    .or_default()
                    .entry(policy_type)
                    .or_default();
                add(m, "successful", successful);
            }
            (
                Figure::TypeResult {
                    policy_type,
                    result_type,
                    failed,
                },
                true,
            ) => {
                let m = st
                    .sessions
                    .entry(d)
                    .or_default()
                    .entry(policy_type)
                    .or_default();
                add(m, &result_key(&result_type), failed);
            }
            (
                Figure::Result {
                    result_type,
                    policy_type,
                    failed,
                    ..
                },
                true,
            ) => {
                let r = result_key(&result_type);
                add(st.domain_sessions.entry(d.clone()).or_default(), &r, failed);
                if !policy_type.is_empty() {
                    let m = st.sessions.entry(d).or_default();
                    add(m.entry(policy_type).or_default(), &r, failed);
                }
            }
            _ => {}
        }
    })?;
    reader.history(now - DB_HISTORY_DAYS * crate::window::DAY, &q, &mut |t| {
        if let (true, Some(day), Figure::Domain { organization, .. }) =
            (t.counted, t.day, &t.figure)
            && wanted(&t.domain)
        {
            st.history.add(&t.domain, organization, day, t.last_end);
        }
    })?;
    textfile_dir(textfile).map_err(DbError::permanent)?;
    write_textfile(textfile, &render(&st, quarantined(spools), &domains), now)
        .map_err(DbError::permanent)
}

/// Writes the textfile when its metrics changed (with nothing new it is left as it is:
/// same bytes, same mtime), and the run's time to the heartbeat file beside it.
fn write_textfile(textfile: &Path, text: &str, now: i64) -> Result<(), String> {
    if std::fs::read(textfile).ok().as_deref() != Some(text.as_bytes()) {
        write_atomic(textfile, text.as_bytes(), 0o644)
            .map_err(|e| format!("{}: {e}", textfile.display()))?;
    }
    let hb = heartbeat_path(textfile);
    write_atomic(&hb, heartbeat(now).as_bytes(), 0o644)
        .map_err(|e| format!("{}: {e}", hb.display()))
}

/// The textfile's directory must exist (node_exporter's textfile directory): said
/// first, naming it, rather than as a failure of a file beside the textfile.
fn textfile_dir(textfile: &Path) -> Result<(), String> {
    let dir = textfile
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(format!(
            "--textfile {}: the directory {} does not exist: point --textfile into node_exporter's --collector.textfile.directory (e.g. /var/lib/prometheus/node-exporter)",
            textfile.display(),
            dir.display()
        ));
    }
    if nix::unistd::access(dir, nix::unistd::AccessFlags::W_OK).is_err() {
        return Err(format!(
            "--textfile {}: this user cannot write in {}: run as a user that can (the package's tlsrpt user is in the directory's group)",
            textfile.display(),
            dir.display()
        ));
    }
    Ok(())
}

/// What a run did, for the tests and the benchmark.
#[derive(Debug, Default)]
pub struct RunInfo {
    pub bytes_read: u64,
    pub recounted: bool,
}

/// One run: load state, read what is new, write the textfile, then the state.
pub fn run(
    spools: &[PathBuf],
    textfile: &Path,
    state_path: &Path,
    domains: &[String],
    trust: &Trust,
    now: i64,
) -> Result<RunInfo, String> {
    textfile_dir(textfile)?;
    let names: Vec<String> = spools.iter().map(|p| p.display().to_string()).collect();
    let domains: Vec<String> = domains.iter().map(|d| domain_key(Some(d))).collect();
    let opts = options(&domains, trust);
    let (_, lock_path) = state_paths(state_path);
    let lock_file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o644)
        .open(&lock_path)
        .map_err(|e| format!("{}: {e}", lock_path.display()))?;
    let _lock = nix::fcntl::Flock::lock(lock_file, nix::fcntl::FlockArg::LockExclusive)
        .map_err(|(_, e)| format!("{}: lock: {e}", lock_path.display()))?;

    let mut info = RunInfo::default();
    let mut st = load(state_path, &names, &opts).unwrap_or_default();
    let mut new_keys = 0usize;
    // Each day file: where to continue, or a reason to count everything again.
    let mut plan = Vec::new();
    let mut readable = 0;
    for dir in spools {
        match spool::day_files(dir) {
            Ok(files) => {
                readable += 1;
                for f in files {
                    let Ok(meta) = std::fs::metadata(&f.path) else {
                        continue;
                    };
                    let key = f.path.display().to_string();
                    let from = match st.files.get(&key) {
                        Some(m) if m.ino == meta.ino() && m.offset <= meta.len() => m.offset,
                        Some(_) => {
                            info.recounted = true;
                            0
                        }
                        None => 0,
                    };
                    plan.push((f, meta.ino(), meta.len(), from));
                }
            }
            Err(e) => spool::warn(&format!("{}: cannot read spool: {e}", dir.display())),
        }
    }
    if readable == 0 {
        return Err("no spool could be read".into());
    }
    let anything_new = plan.iter().any(|p| p.3 < p.2);
    if !info.recounted
        && st.version == STATE_VERSION
        && anything_new
        && load_keys(state_path, &mut st).is_none()
    {
        info.recounted = true;
    }
    if info.recounted || st.version != STATE_VERSION {
        st = State::default();
        for p in &mut plan {
            p.3 = 0;
        }
    }
    st.version = STATE_VERSION;
    st.spools = names;
    st.options = opts;
    let mut skipped = Skipped::default();
    for (f, ino, len, from) in &plan {
        if *from >= *len {
            continue;
        }
        let end = spool::read_lines(f, *from, Share::ALL, &mut skipped, |_, line| {
            let p = crate::record::parse(line)?;
            let id = dedup_id(p.record.dedup_key.as_deref(), &p.record.report);
            if st.seen.insert(id) {
                st.key_order.push(id);
                new_keys += 1;
                count(&mut st, &p, trust, &domains);
            }
            Ok(())
        });
        info.bytes_read += end - from;
        st.files.insert(
            f.path.display().to_string(),
            Mark {
                ino: *ino,
                offset: end,
            },
        );
    }
    st.skipped_lines += skipped.lines;
    // Report metrics change only when reports do; the run itself shows in the heartbeat.
    write_textfile(textfile, &render(&st, quarantined(spools), &domains), now)?;
    // Nothing read: the state on disk is still right (only the run time changed).
    if info.bytes_read > 0 || info.recounted || st.keys != st.key_order.len() as u64 {
        st.keys = st.key_order.len() as u64;
        save(state_path, &st, new_keys > 0 || info.recounted)
            .map_err(|e| format!("{}: {e}", state_path.display()))?;
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd\te"), "a\\\"b\\\\c\\nd e");
    }
}
