//! The installation: the binaries the deliveries run (present, the same version as this
//! tlsrpt), each spool (exists, owner and mode, writable by the user each delivery runs
//! as, free space, messages set aside), and the operator's data directory.

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::mta::Wiring;
use super::{Item, Level, ask, ok, problem};
use crate::cli::DoctorArgs;

/// Free space under which a spool is a warning (a day of a provider's reports is a few
/// MiB; the delivery defers, never loses, when the disk is full).
const LOW_SPACE: u64 = 100 << 20;

pub fn check(a: &DoctorArgs, w: &Wiring, items: &mut Vec<Item>) {
    binaries(w, items);
    let mut spools: BTreeSet<String> = a.spool.iter().map(|p| p.display().to_string()).collect();
    spools.extend(w.services.iter().map(|s| s.spool()));
    for dir in &spools {
        let users: BTreeSet<String> = w
            .services
            .iter()
            .filter(|s| &s.spool() == dir)
            .filter_map(|s| s.user.clone())
            .collect();
        spool(Path::new(dir), &users, items);
    }
    data_dir(&a.data_dir, &a.user, items);
}

fn binaries(w: &Wiring, items: &mut Vec<Item>) {
    let me = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "tlsrpt".into());
    let version = env!("CARGO_PKG_VERSION");
    items.push(ok("install", format!("tlsrpt {version} ({me})")));
    let mut programs: BTreeSet<String> = w.services.iter().map(|s| s.program.clone()).collect();
    if programs.is_empty() {
        let sibling = std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("tlsrpt-pipe")))
            .filter(|p| p.is_file());
        match sibling.or_else(|| {
            ["/usr/bin/tlsrpt-pipe", "/usr/local/bin/tlsrpt-pipe"]
                .iter()
                .map(std::path::PathBuf::from)
                .find(|p| p.is_file())
        }) {
            Some(p) => {
                programs.insert(p.display().to_string());
            }
            None => {
                items.push(problem(
                    "install",
                    Level::Error,
                    "tlsrpt-pipe is not installed (not beside tlsrpt, nor in /usr/bin or /usr/local/bin)",
                    "install the package, or cargo install --path . (README \"Install\")",
                ));
                return;
            }
        }
    }
    for p in programs {
        let path = Path::new(&p);
        let runnable = path
            .metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false);
        if !runnable {
            items.push(problem(
                "install",
                Level::Error,
                format!("{p} does not exist or is not executable, and a delivery runs it: reports for it bounce or wait in the MTA's queue"),
                "install tlsrpt-pipe there, or correct the path in the MTA's configuration",
            ));
            continue;
        }
        match ask(&p, &["--version"]) {
            Ok((0, out)) => {
                let v = out.split_whitespace().nth(1).unwrap_or("").to_owned();
                if v == version {
                    items.push(ok("install", format!("tlsrpt-pipe {v} ({p})")));
                } else {
                    items.push(problem(
                        "install",
                        Level::Warning,
                        format!("{p} is version {v}, this tlsrpt {version}: the record format may differ"),
                        "install both from one package or build",
                    ));
                }
            }
            Ok((code, _)) => items.push(problem(
                "install",
                Level::Error,
                format!("{p} --version exited {code}"),
                "reinstall tlsrpt-pipe",
            )),
            Err(e) => items.push(problem("install", Level::Error, e, "reinstall tlsrpt-pipe")),
        }
    }
}

/// The groups `user` is in (its primary group at least).
fn groups(user: &nix::unistd::User) -> Vec<u32> {
    std::ffi::CString::new(user.name.clone())
        .ok()
        .and_then(|n| nix::unistd::getgrouplist(&n, user.gid).ok())
        .map(|g| g.iter().map(|g| g.as_raw()).collect())
        .unwrap_or_else(|| vec![user.gid.as_raw()])
}

/// Has `user` all the `bits` (of rwx: 4, 2, 1) on a file of this owner and mode, by
/// the class it falls in (owner, group, other)? Root has all.
fn may(user: &nix::unistd::User, groups: &[u32], m: &std::fs::Metadata, bits: u32) -> bool {
    let shift = if user.uid.is_root() {
        return true;
    } else if user.uid.as_raw() == m.uid() {
        6
    } else if groups.contains(&m.gid()) {
        3
    } else {
        0
    };
    (m.mode() >> shift) & bits == bits
}

/// Can `user` create files in a directory of this owner and mode?
fn can_write(user: &nix::unistd::User, m: &std::fs::Metadata) -> bool {
    may(user, &groups(user), m, 0o3)
}

/// Can `user` reach `dir` (search permission on every directory above it)? The first
/// one that stops it, if any.
fn blocked_above(user: &nix::unistd::User, dir: &Path) -> Option<std::path::PathBuf> {
    let groups = groups(user);
    dir.ancestors()
        .skip(1)
        .find(|a| std::fs::metadata(a).is_ok_and(|m| !may(user, &groups, &m, 0o1)))
        .map(Path::to_path_buf)
}

fn name_of_uid(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn name_of_gid(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

fn spool(dir: &Path, users: &BTreeSet<String>, items: &mut Vec<Item>) {
    let owner = users
        .iter()
        .next()
        .cloned()
        .unwrap_or_else(|| "tlsrpt".into());
    let m = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            items.push(problem(
                "spool",
                Level::Error,
                format!("{} is not a directory", dir.display()),
                "move it away; install -d -o USER -g USER -m 0750 DIR",
            ));
            return;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            items.push(problem(
                "spool",
                Level::Error,
                format!(
                    "{} does not exist: every delivery defers (exit 75)",
                    dir.display()
                ),
                format!("install -d -o {owner} -g {owner} -m 0750 {}", dir.display()),
            ));
            return;
        }
        Err(e) => {
            items.push(problem(
                "spool",
                Level::Unknown,
                format!("{}: {e}", dir.display()),
                "run tlsrpt doctor as root or as the spool's owner",
            ));
            return;
        }
    };
    let desc = format!(
        "{} (owner {}:{}, mode {:04o})",
        dir.display(),
        name_of_uid(m.uid()),
        name_of_gid(m.gid()),
        m.mode() & 0o7777
    );
    let mut fine = true;
    for u in users {
        match nix::unistd::User::from_name(u) {
            Ok(Some(user)) if user.uid.is_root() => {
                fine = false;
                items.push(problem(
                    "spool",
                    Level::Error,
                    format!("a delivery into {} runs as root: tlsrpt-pipe refuses to run as root", dir.display()),
                    "user=tlsrpt in the MTA's configuration (an unprivileged account owning the spool)",
                ));
            }
            Ok(Some(user)) => {
                if let Some(above) = blocked_above(&user, dir) {
                    fine = false;
                    items.push(problem(
                        "spool",
                        Level::Error,
                        format!(
                            "{u} cannot reach {}: {} is not searchable by it (every report defers)",
                            dir.display(),
                            above.display()
                        ),
                        format!(
                            "chmod o+x {} (or put the spool where {u} can reach it)",
                            above.display()
                        ),
                    ));
                } else if !can_write(&user, &m) {
                    fine = false;
                    items.push(problem(
                        "spool",
                        Level::Error,
                        format!("{desc} is not writable by {u}, the user a delivery runs as: every report defers (exit 75) and bounces after the queue lifetime"),
                        format!("chown {u}:{u} {0}; chmod 0750 {0}", dir.display()),
                    ));
                }
            }
            Ok(None) => {
                fine = false;
                items.push(problem(
                    "spool",
                    Level::Error,
                    format!("the delivery user {u} does not exist"),
                    format!("adduser --system --group --no-create-home {u}"),
                ));
            }
            Err(e) => items.push(problem(
                "spool",
                Level::Unknown,
                format!("the user {u} could not be looked up: {e}"),
                "check the system's user database",
            )),
        }
    }
    if fine {
        let who = if users.is_empty() {
            String::new()
        } else {
            format!(
                ", writable by {}",
                users.iter().cloned().collect::<Vec<_>>().join(", ")
            )
        };
        items.push(ok("spool", format!("{desc}{who}")));
    }
    if let Ok(st) = nix::sys::statvfs::statvfs(dir) {
        let free = st.blocks_available() * st.fragment_size();
        let total = st.blocks() * st.fragment_size();
        if free < LOW_SPACE || (total > 0 && free * 20 < total) {
            items.push(problem(
                "spool",
                Level::Warning,
                format!(
                    "{}: {} MiB free on its file system",
                    dir.display(),
                    free >> 20
                ),
                "free space (tlsrpt prune --older-than 400d); deliveries defer when it is full",
            ));
        }
    }
    let q = dir.join("quarantine");
    match std::fs::read_dir(&q) {
        Ok(rd) => {
            let n = rd
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().ends_with(".eml"))
                .count();
            if n > 0 {
                items.push(problem(
                    "spool",
                    Level::Warning,
                    format!("{n} message(s) set aside as unreadable in {}: their reports are in no figure", q.display()),
                    format!("tlsrpt quarantine list --spool {}; retry after a fix", dir.display()),
                ));
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => items.push(problem(
            "spool",
            Level::Unknown,
            format!("{}: {e}", q.display()),
            "run tlsrpt doctor as root or as the spool's owner",
        )),
    }
}

fn data_dir(dir: &Path, user: &str, items: &mut Vec<Item>) {
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => {
            let desc = format!(
                "{} (owner {}:{}, mode {:04o})",
                dir.display(),
                name_of_uid(m.uid()),
                name_of_gid(m.gid()),
                m.mode() & 0o7777
            );
            match nix::unistd::User::from_name(user) {
                Ok(Some(u)) if !can_write(&u, &m) => items.push(problem(
                    "install",
                    Level::Error,
                    format!("{desc} is not writable by {user}: load's default database and watch's memory cannot be written"),
                    format!("chown {user}:{user} {0}; chmod 0750 {0}", dir.display()),
                )),
                Ok(Some(_)) => items.push(ok("install", format!("{desc}, writable by {user}"))),
                _ => items.push(problem(
                    "install",
                    Level::Warning,
                    format!("the operator jobs' user {user} does not exist"),
                    format!("adduser --system --group --no-create-home {user} (or --user NAME)"),
                )),
            }
        }
        Ok(_) => items.push(problem(
            "install",
            Level::Error,
            format!("{} is not a directory", dir.display()),
            "move it away and create the directory",
        )),
        Err(_) => items.push(problem(
            "install",
            Level::Warning,
            format!(
                "{} does not exist: load's default database (sqlite) and watch's memory live there",
                dir.display()
            ),
            format!("install -d -o {user} -g {user} -m 0750 {}", dir.display()),
        )),
    }
}
