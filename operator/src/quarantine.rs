//! `tlsrpt quarantine`: what the delivery set aside (`SPOOL/quarantine/NAME.eml` and
//! `NAME.json`, tlsrpt_pipe::layout) and why, and feeding a message to the delivery
//! again once the cause is fixed (a new tlsrpt-pipe, `--trusted-authserv-id`, a bigger
//! limit).
//!
//! - `list`: one line per message: its name, when it was set aside, its size, why.
//! - `show NAME`: the reason and envelope as stored, and the message's header lines,
//!   made safe for a terminal.
//! - `retry [NAME...]` (every message without a name): each message is first given to
//!   `tlsrpt-pipe --dry-run`; only a message it would now store is delivered for real,
//!   as the spool's owner (`--user` when run as root), with the envelope it came with
//!   and the options after `--`. It is removed from the quarantine only after the
//!   delivery said it was stored (or was a copy already stored), under the spool's own
//!   lock; a message that still cannot be read stays, with the new reason, and is not
//!   set aside a second time.
//!
//! Exit status: 0 done (every retried message stored), 1 something stayed in the
//! quarantine or could not be read, 2 bad arguments.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tlsrpt_pipe::layout::{QUARANTINE_DIR, quarantine_files, quarantine_name};

use crate::exit::Failure;
use crate::prune::spool as dir;
use crate::render::safe::terminal;

/// Most bytes of a quarantined message read to retry it (the delivery's own limits
/// apply to it again).
const MAX_MESSAGE: u64 = 64 * 1024 * 1024;
/// Most bytes of a reason file read.
const MAX_META: u64 = 1024 * 1024;

/// One quarantined message.
#[derive(Debug, Clone)]
pub struct Item {
    pub spool: PathBuf,
    pub name: String,
    /// When it was set aside (Unix seconds, from its name), if the name says.
    pub at: Option<i64>,
    pub size: u64,
    pub reason: String,
    pub meta: Value,
}

/// The time a quarantine name starts with (`YYYYMMDDTHHMMSSZ.`).
fn time_of(name: &str) -> Option<i64> {
    let t = name.split('.').next()?;
    if t.len() != 16 {
        return None;
    }
    let iso = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &t[0..4],
        &t[4..6],
        &t[6..8],
        &t[9..11],
        &t[11..13],
        &t[13..15]
    );
    tlsrpt_pipe::datetime::parse(&iso).map(|(ts, _)| ts.0)
}

/// The quarantined messages of the spools, oldest first; unreadable quarantines are
/// errors (said, never taken as empty).
pub fn items(spools: &[PathBuf]) -> (Vec<Item>, Vec<String>) {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for s in spools {
        let q = match dir::open(s).and_then(|(d, _)| {
            d.subdir(QUARANTINE_DIR)
                .map_err(|e| format!("{}: {e}", d.shown(QUARANTINE_DIR)))
        }) {
            Ok(Some(q)) => q,
            Ok(None) => continue,
            Err(e) => {
                errors.push(e);
                continue;
            }
        };
        let names = match q.names() {
            Ok(n) => n,
            Err(e) => {
                errors.push(format!("{}: {e}", q.path.display()));
                continue;
            }
        };
        let mut stems: BTreeMap<String, ()> = BTreeMap::new();
        for n in &names {
            if let Some((stem, _)) = quarantine_name(n) {
                stems.insert(stem.to_owned(), ());
            }
        }
        for stem in stems.into_keys() {
            let (eml, json) = quarantine_files(&stem);
            let size = q
                .stat(&eml)
                .ok()
                .flatten()
                .filter(|s| s.regular)
                .map_or(0, |s| s.len);
            let meta: Value = q
                .read(&json, MAX_META)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or(Value::Null);
            out.push(Item {
                spool: s.clone(),
                at: time_of(&stem),
                name: stem,
                size,
                reason: meta["reason"]
                    .as_str()
                    .unwrap_or("(no reason stored)")
                    .to_owned(),
                meta,
            });
        }
    }
    out.sort_by(|a, b| a.at.cmp(&b.at).then(a.name.cmp(&b.name)));
    (out, errors)
}

/// How many messages were set aside in (since, until].
pub fn count_in(spools: &[PathBuf], since: i64, until: i64) -> (u64, Vec<String>) {
    let (items, errors) = items(spools);
    let n = items
        .iter()
        .filter(|i| i.at.is_some_and(|t| since < t && t <= until))
        .count() as u64;
    (n, errors)
}

/// `list`: one line per message; the status 1 when a quarantine could not be read.
pub fn list(spools: &[PathBuf]) -> (String, u8) {
    let (items, errors) = items(spools);
    let mut o = String::new();
    for i in &items {
        o.push_str(&format!(
            "{}  {}  {} bytes  {}\n",
            i.name,
            i.at.map(crate::window::rfc3339)
                .unwrap_or_else(|| "?".into()),
            i.size,
            crate::probe::shown(&i.reason, 300)
        ));
    }
    o.push_str(&format!(
        "{} quarantined message{} in {}\n",
        items.len(),
        if items.len() == 1 { "" } else { "s" },
        spools
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if !errors.is_empty() {
        crate::spool::warn(&errors.join("; "));
        return (o, crate::exit::FAILED);
    }
    (o, crate::exit::OK)
}

fn find<'a>(items: &'a [Item], name: &str) -> Result<&'a Item, Failure> {
    items.iter().find(|i| i.name == name).ok_or_else(|| {
        Failure::usage(format!(
            "{name:?}: no such quarantined message (tlsrpt quarantine list)"
        ))
    })
}

/// `show NAME`: the reason, the envelope, and the message's header lines.
pub fn show(spools: &[PathBuf], name: &str) -> Result<String, Failure> {
    let (items, _) = items(spools);
    let i = find(&items, name)?;
    let mut o = format!(
        "{}/{QUARANTINE_DIR}/{}.eml  {} bytes\n",
        i.spool.display(),
        i.name,
        i.size
    );
    let pretty = serde_json::to_string_pretty(&i.meta).unwrap_or_default();
    for l in pretty.lines() {
        o.push_str(&terminal(l));
        o.push('\n');
    }
    let (q, _) = dir::open(&i.spool).map_err(Failure::failed)?;
    let q = q
        .subdir(QUARANTINE_DIR)
        .ok()
        .flatten()
        .ok_or_else(|| Failure::failed("the quarantine went away"))?;
    let (eml, _) = quarantine_files(&i.name);
    let head = q.read(&eml, 64 * 1024).unwrap_or_default();
    o.push_str("--- the message's header ---\n");
    for l in String::from_utf8_lossy(&head).lines().take(60) {
        if l.trim().is_empty() {
            break;
        }
        o.push_str(&terminal(&crate::probe::shown(l, 200)));
        o.push('\n');
    }
    Ok(o)
}

/// The delivery program: `--pipe`, else tlsrpt-pipe beside this program, else on PATH's
/// usual place.
pub fn pipe_program(given: Option<&Path>) -> PathBuf {
    if let Some(p) = given {
        return p.to_owned();
    }
    std::env::current_exe()
        .ok()
        .map(|e| e.with_file_name("tlsrpt-pipe"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("/usr/bin/tlsrpt-pipe"))
}

/// The delivery's outcome on its stderr log line (`status=stored`, ...).
fn status_of(log: &str) -> Option<&str> {
    log.lines()
        .flat_map(|l| l.split_whitespace())
        .find_map(|w| w.strip_prefix("status="))
}

/// One run of the delivery on a quarantined message.
fn deliver(
    pipe: &Path,
    item: &Item,
    dry: bool,
    user: Option<&str>,
    extra: &[String],
    message: &[u8],
) -> Result<(i32, String), String> {
    let mut c = Command::new(pipe);
    c.arg("--spool").arg(&item.spool).arg("--log-stderr");
    if dry {
        c.arg("--dry-run");
    }
    if let Some(u) = user {
        c.args(["--user", u]);
    }
    let env = &item.meta["envelope"];
    for (k, opt) in [
        ("sender", "--sender"),
        ("recipient", "--recipient"),
        ("original-recipient", "--original-recipient"),
        ("queue-id", "--queue-id"),
    ] {
        if let Some(v) = env[k].as_str().filter(|v| !v.is_empty()) {
            c.arg(opt).arg(v);
        }
    }
    c.args(extra);
    c.env_remove("SENDER")
        .env_remove("RECIPIENT")
        .env_remove("MESSAGE_ID");
    let mut child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", pipe.display()))?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("piped");
        // A delivery that stops reading early (a size limit) is its own answer.
        let _ = stdin.write_all(message);
    }
    let o = child.wait_with_output().map_err(|e| e.to_string())?;
    Ok((
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    ))
}

/// `retry [NAME...]`: see the module docs. Returns the report, one line per message,
/// and the status (1 when something stayed).
pub fn retry(
    spools: &[PathBuf],
    names: &[String],
    pipe: &Path,
    extra: &[String],
) -> Result<(String, u8), Failure> {
    let (items, errors) = items(spools);
    let chosen: Vec<&Item> = if names.is_empty() {
        items.iter().collect()
    } else {
        names
            .iter()
            .map(|n| find(&items, n))
            .collect::<Result<_, _>>()?
    };
    let root = nix::unistd::geteuid().is_root();
    let mut o = String::new();
    let (mut stored, mut stayed) = (0u64, 0u64);
    for i in chosen {
        let (spool, owner) = dir::open(&i.spool).map_err(Failure::failed)?;
        let user = if root {
            let u = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(owner))
                .ok()
                .flatten()
                .map(|u| u.name)
                .ok_or_else(|| {
                    Failure::failed(format!("{}: its owner has no name", i.spool.display()))
                })?;
            if owner == 0 {
                return Err(Failure::usage(format!(
                    "{}: owned by root: the delivery refuses to run as root (chown it to the delivery user)",
                    i.spool.display()
                )));
            }
            Some(u)
        } else {
            None
        };
        let Some(q) = spool.subdir(QUARANTINE_DIR).ok().flatten() else {
            continue;
        };
        let (eml, json) = quarantine_files(&i.name);
        let message = match q.read(&eml, MAX_MESSAGE) {
            Ok(m) => m,
            Err(e) => {
                stayed += 1;
                o.push_str(&format!("{}: cannot read {}: {e}\n", i.name, q.shown(&eml)));
                continue;
            }
        };
        let line = |what: &str| format!("{}: {}\n", i.name, terminal(what));
        let (code, log) =
            deliver(pipe, i, true, user.as_deref(), extra, &message).map_err(Failure::failed)?;
        match (code, status_of(&log)) {
            (0, Some("stored" | "duplicate")) => {}
            (0, Some("quarantined")) => {
                stayed += 1;
                let why = log
                    .split("reason=")
                    .nth(1)
                    .and_then(|r| r.lines().next())
                    .unwrap_or("still not readable");
                o.push_str(&line(&format!("still not readable, kept: {why}")));
                continue;
            }
            (_, s) => {
                stayed += 1;
                o.push_str(&line(&format!(
                    "kept: the delivery said {} (exit {code}): {}",
                    s.unwrap_or("nothing"),
                    log.lines().last().unwrap_or("")
                )));
                continue;
            }
        }
        let (code, log) =
            deliver(pipe, i, false, user.as_deref(), extra, &message).map_err(Failure::failed)?;
        match (code, status_of(&log)) {
            (0, Some(s @ ("stored" | "duplicate"))) => {
                // Stored: only now leaves the quarantine, under the spool's lock.
                let _lock = dir::lock(&spool, Duration::from_secs(60)).map_err(Failure::failed)?;
                for f in [&eml, &json] {
                    match q.unlink(f) {
                        Ok(()) | Err(nix::errno::Errno::ENOENT) => {}
                        Err(e) => {
                            return Err(Failure::failed(format!(
                                "{} was {s}, but {} could not be removed: {e}",
                                i.name,
                                q.shown(f)
                            )));
                        }
                    }
                }
                let _ = q.sync();
                stored += 1;
                o.push_str(&line(if s == "stored" {
                    "stored, removed from the quarantine"
                } else {
                    "already stored (a copy), removed from the quarantine"
                }));
            }
            (_, s) => {
                stayed += 1;
                o.push_str(&line(&format!(
                    "kept: the delivery said {} (exit {code}): {}",
                    s.unwrap_or("nothing"),
                    log.lines().last().unwrap_or("")
                )));
            }
        }
    }
    o.push_str(&format!(
        "{stored} stored, {stayed} kept in the quarantine\n"
    ));
    if !errors.is_empty() {
        crate::spool::warn(&errors.join("; "));
    }
    let status = if stayed > 0 || !errors.is_empty() {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    };
    Ok((o, status))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(
            time_of("20261101T000000Z.42.000000001"),
            Some(1_793_491_200)
        );
        assert_eq!(time_of("bogus"), None);
        assert_eq!(
            status_of("tlsrpt-pipe[1]: status=stored records=1"),
            Some("stored")
        );
        assert_eq!(status_of("x"), None);
    }
}
