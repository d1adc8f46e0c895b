//! `tlsrpt doctor`: is this installation set up right? One read-only pass, one line per
//! item (`ok`, `warning`, `error`, or `unknown` when it could not be checked), each
//! problem with its fix. Exit as a monitoring plugin: 2 an error, else 3 something
//! could not be checked, else 1 a warning, else 0.
//!
//! The rooms, in the order a report travels:
//! - `install`: the binaries and their versions, the spool (exists, owner, mode, the
//!   delivery user can write it, free space, quarantine), `/var/lib/tlsrpt`;
//! - `mta`: the wiring it can see (Postfix's pipe service, transport and alias maps,
//!   Exim's routing of the rua address, `/etc/aliases`); what it cannot see is said;
//! - `domains`: each domain's `_smtp._tls` record (as `check-record`, expecting an
//!   address the wiring routes to tlsrpt-pipe), whether its reports arrive, and
//!   whether they count (trust);
//! - `jobs`: the textfiles' age, the database, the enabled timers and cron lines.
//!
//! Nothing is changed: no file written, no service touched; external programs are
//! only asked (`postconf`, `postmap -q`/`-s`, `postalias -q`, `exim -bt`,
//! `systemctl is-enabled`), each bounded in time and output.

pub mod domains;
pub mod install;
pub mod jobs;
pub mod mta;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::cli::{DoctorArgs, RecordFormat};

/// What one item found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warning,
    Unknown,
    Error,
}

impl Level {
    fn label(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Unknown => "unknown",
            Level::Error => "error",
        }
    }
}

/// One line of the diagnosis.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub area: &'static str,
    pub level: Level,
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

pub fn ok(area: &'static str, text: impl Into<String>) -> Item {
    Item {
        area,
        level: Level::Ok,
        text: text.into(),
        fix: None,
    }
}

pub fn problem(
    area: &'static str,
    level: Level,
    text: impl Into<String>,
    fix: impl Into<String>,
) -> Item {
    Item {
        area,
        level,
        text: text.into(),
        fix: Some(fix.into()),
    }
}

/// The exit status of a diagnosis.
pub fn status(items: &[Item]) -> u8 {
    let has = |l: Level| items.iter().any(|i| i.level == l);
    if has(Level::Error) {
        2
    } else if has(Level::Unknown) {
        3
    } else if has(Level::Warning) {
        1
    } else {
        0
    }
}

/// The whole pass.
pub fn run(a: &DoctorArgs, now: i64) -> Vec<Item> {
    let mut items = Vec::new();
    let wiring = mta::wiring(a, &mut items);
    install::check(a, &wiring, &mut items);
    domains::check(a, &wiring, now, &mut items);
    jobs::check(a, now, &mut items);
    items
}

/// The text (one line per item) or JSON document.
pub fn render(items: &[Item], format: RecordFormat) -> String {
    match format {
        RecordFormat::Json => {
            let mut s = serde_json::to_string_pretty(&serde_json::json!({
                "status": status(items),
                "items": items,
            }))
            .expect("plain data");
            s.push('\n');
            s
        }
        RecordFormat::Text => {
            let safe = crate::render::safe::terminal;
            let mut o = String::new();
            for i in items {
                o.push_str(&format!(
                    "{:<8} {}: {}",
                    i.level.label(),
                    i.area,
                    safe(&i.text)
                ));
                if let Some(f) = &i.fix {
                    o.push_str(&format!(" — fix: {}", safe(f)));
                }
                o.push('\n');
            }
            let n = |l: Level| items.iter().filter(|i| i.level == l).count();
            o.push_str(&format!(
                "doctor: {} ok, {} warning(s), {} error(s), {} not checked\n",
                n(Level::Ok),
                n(Level::Warning),
                n(Level::Error),
                n(Level::Unknown)
            ));
            o
        }
    }
}

/// Most bytes read from a program asked.
const MAX_OUTPUT: u64 = 1 << 20;
/// Longest wait for a program asked.
const PROGRAM_WAIT: Duration = Duration::from_secs(10);

/// What a program said: (exit code, stdout), or why it could not be asked. Bounded in
/// time and output; stdin is /dev/null.
pub fn ask(program: &str, args: &[&str]) -> Result<(i32, String), String> {
    let mut c = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    let out = c.stdout.take().expect("piped");
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.take(MAX_OUTPUT).read_to_end(&mut s);
        s
    });
    let start = Instant::now();
    let status = loop {
        match c.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() < PROGRAM_WAIT => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Ok(None) => {
                let _ = c.kill();
                let _ = c.wait();
                return Err(format!(
                    "{program} {}: no answer within {} s",
                    args.join(" "),
                    PROGRAM_WAIT.as_secs()
                ));
            }
            Err(e) => return Err(format!("{program}: {e}")),
        }
    };
    let out = reader.join().unwrap_or_default();
    Ok((
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out).into_owned(),
    ))
}

/// The first of `candidates` that exists as a file.
pub fn find_program(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|p| std::path::Path::new(p).is_file())
        .map(|p| p.to_string())
}
