//! The MTA wiring doctor can see: which delivery services run tlsrpt-pipe (Postfix
//! `pipe(8)` services in `postconf -M`, Exim transports in `exim -bP`, `/etc/aliases`
//! commands), as which user, into which spool; and where an address is routed
//! (`postmap -q` over `transport_maps`, `postalias -q` over `alias_maps`, `exim -bt`).
//! Only asks; what it cannot see (no Postfix, a map type it cannot list) is said.

use std::collections::BTreeSet;

use super::{Item, Level, ask, find_program, ok, problem};
use crate::cli::DoctorArgs;

/// A delivery that runs tlsrpt-pipe.
#[derive(Debug, Clone)]
pub struct Service {
    /// Where it is configured, for the lines ("Postfix service tlsrpt").
    pub source: String,
    /// The Postfix service or Exim transport name (the value a transport map gives).
    pub name: String,
    /// The account it runs as (`None`: not said, the MTA's default).
    pub user: Option<String>,
    /// The tlsrpt-pipe it runs.
    pub program: String,
    /// Its `--spool` (None: the default /var/spool/tlsrpt).
    pub spool: Option<String>,
    /// Its `--trusted-authserv-id` values.
    pub trusted: Vec<String>,
}

impl Service {
    /// The line saying what was found: who runs what into where (`unnamed`: the user
    /// when the configuration names none; `note`: after the user).
    fn found(&self, unnamed: &str, note: &str) -> Item {
        ok(
            "mta",
            format!(
                "{} runs {} as {}{note} into {}",
                self.source,
                self.program,
                self.user.as_deref().unwrap_or(unnamed),
                self.spool()
            ),
        )
    }

    pub fn spool(&self) -> String {
        self.spool
            .clone()
            .unwrap_or_else(|| crate::cli::DEFAULT_SPOOL.to_owned())
    }
}

/// What was found.
#[derive(Debug, Default)]
pub struct Wiring {
    pub services: Vec<Service>,
    /// Addresses the maps route to a tlsrpt-pipe service (listed from the maps).
    pub routed: BTreeSet<String>,
    postconf: Option<String>,
    config_dir: Option<String>,
    exim: Option<String>,
}

/// The arguments of a command line after the program: (spool, trusted ids).
fn pipe_options(args: &[&str]) -> (Option<String>, Vec<String>) {
    let mut spool = None;
    let mut trusted = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let (key, inline) = match args[i].split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_owned())),
            _ => (args[i], None),
        };
        if matches!(key, "--spool" | "--trusted-authserv-id") {
            let value = inline.or_else(|| {
                i += 1;
                args.get(i).map(|s| s.to_string())
            });
            if key == "--spool" {
                spool = value;
            } else {
                trusted.extend(value);
            }
        }
        i += 1;
    }
    (spool, trusted)
}

impl Wiring {
    /// Asks a Postfix tool, with `-c DIR` when a configuration directory was given.
    fn ask_postfix(&self, program: &str, args: &[&str]) -> Result<(i32, String), String> {
        let mut a: Vec<&str> = Vec::new();
        if let Some(d) = &self.config_dir {
            a.extend(["-c", d]);
        }
        a.extend_from_slice(args);
        ask(program, &a)
    }

    fn postconf(&self, args: &[&str]) -> Result<(i32, String), String> {
        let p = self.postconf.as_deref().ok_or("no postconf")?;
        self.ask_postfix(p, args)
    }

    /// The maps a Postfix parameter names (`type:name`, comma or space separated).
    fn maps(&self, parameter: &str) -> Vec<String> {
        self.postconf(&["-h", parameter])
            .map(|(_, out)| {
                out.split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|m| m.contains(':'))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn postfix_tool(&self, tool: &str) -> String {
        let dir = self
            .postconf
            .as_deref()
            .and_then(|p| std::path::Path::new(p).parent())
            .map(|d| d.display().to_string())
            .unwrap_or_else(|| "/usr/sbin".into());
        format!("{dir}/{tool}")
    }

    fn lookup(&self, tool: &str, key: &str, map: &str) -> Option<String> {
        match self.ask_postfix(&self.postfix_tool(tool), &["-q", key, map]) {
            Ok((0, v)) => Some(v.trim().to_owned()),
            _ => None,
        }
    }

    /// Where `address` is delivered, when that is to tlsrpt-pipe: the service's line;
    /// `Err` with what it is routed to (or that nothing routes it) otherwise.
    pub fn route(&self, address: &str) -> Result<String, String> {
        let address = address.to_ascii_lowercase();
        let (local, domain) = address.rsplit_once('@').unwrap_or((&address, ""));
        let mut seen = Vec::new();
        if self.postconf.is_some() {
            for map in self.maps("transport_maps") {
                for key in [address.as_str(), domain] {
                    if let Some(v) = self.lookup("postmap", key, &map) {
                        let service = v.split(':').next().unwrap_or("").trim();
                        if let Some(s) = self.services.iter().find(|s| s.name == service) {
                            return Ok(format!("{map} routes {address} to {}", s.source));
                        }
                        seen.push(format!("{map} routes {key} to \"{v}\""));
                    }
                }
            }
            for map in self.maps("alias_maps") {
                if let Some(v) = self.lookup("postalias", local, &map)
                    && v.contains("tlsrpt-pipe")
                {
                    return Ok(format!("{map} delivers {local} to \"{v}\""));
                }
            }
        }
        if let Some(exim) = &self.exim
            && let Ok((_, out)) = ask(exim, &["-bt", &address])
        {
            for s in self
                .services
                .iter()
                .filter(|s| s.source.starts_with("Exim"))
            {
                if out.contains(&format!("transport = {}", s.name)) {
                    return Ok(format!("Exim routes {address} to {}", s.source));
                }
            }
            seen.push(format!(
                "exim -bt {address}: {}",
                out.lines().take(3).collect::<Vec<_>>().join(" ").trim()
            ));
        }
        Err(if seen.is_empty() {
            format!("nothing here routes {address} to tlsrpt-pipe")
        } else {
            seen.join("; ")
        })
    }
}

/// Finds the wiring, with a line for each delivery found and for what could not be
/// looked at.
pub fn wiring(a: &DoctorArgs, items: &mut Vec<Item>) -> Wiring {
    let mut w = Wiring {
        postconf: find_program(&["/usr/sbin/postconf", "/usr/local/sbin/postconf"]),
        config_dir: a.postfix_config.as_ref().map(|p| p.display().to_string()),
        exim: find_program(&["/usr/sbin/exim4", "/usr/sbin/exim"]),
        ..Wiring::default()
    };
    postfix(&mut w, items);
    exim(&mut w, items);
    aliases(&mut w, a, items);
    if w.services.is_empty() {
        items.push(problem(
            "mta",
            Level::Warning,
            "no delivery runs tlsrpt-pipe here (no Postfix pipe service, Exim transport or /etc/aliases command names it)",
            "wire it as README \"Wire the MTA\" shows (contrib/postfix/, contrib/exim4/ or contrib/aliases); on a machine that only reads the reports, ignore this",
        ));
    }
    w
}

fn postfix(w: &mut Wiring, items: &mut Vec<Item>) {
    if w.postconf.is_none() {
        items.push(ok(
            "mta",
            "Postfix: not installed here (postconf not found)",
        ));
        return;
    }
    let out = match w.postconf(&["-M"]) {
        Ok((0, out)) => out,
        Ok((code, _)) => {
            items.push(problem(
                "mta",
                Level::Unknown,
                format!("postconf -M exited {code}: the Postfix services could not be read"),
                "run tlsrpt doctor as root or as a user that can read /etc/postfix",
            ));
            return;
        }
        Err(e) => {
            items.push(problem(
                "mta",
                Level::Unknown,
                e,
                "check the Postfix installation",
            ));
            return;
        }
    };
    for line in out.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 || f[7] != "pipe" {
            continue;
        }
        let Some(i) = f.iter().position(|t| t.starts_with("argv=")) else {
            continue;
        };
        let program = f[i].trim_start_matches("argv=");
        if !program.ends_with("tlsrpt-pipe") {
            continue;
        }
        let (spool, trusted) = pipe_options(&f[i + 1..]);
        let user = f[8..i]
            .iter()
            .find_map(|t| t.strip_prefix("user="))
            .map(|u| u.split(':').next().unwrap_or(u).to_owned());
        let s = Service {
            source: format!("Postfix service {} (master.cf)", f[0]),
            name: f[0].to_owned(),
            user,
            program: program.to_owned(),
            spool,
            trusted,
        };
        items.push(s.found("(no user=)", ""));
        // One recipient per delivery: each exit status applies to one recipient.
        let limit = format!("{}_destination_recipient_limit", s.name);
        match w.postconf(&["-h", &limit]) {
            Ok((0, v)) if v.trim() == "1" => {}
            Ok((_, v)) => items.push(problem(
                "mta",
                Level::Warning,
                format!(
                    "{limit} is {} (not 1): one delivery's exit status would apply to several recipients",
                    if v.trim().is_empty() { "unset" } else { v.trim() }
                ),
                format!("postconf -e {limit}=1 (contrib/postfix/main.cf)"),
            )),
            Err(_) => {}
        }
        // Listed routes: the addresses the transport maps send to this service.
        for map in w.maps("transport_maps") {
            if let Ok((0, out)) = w.ask_postfix(&w.postfix_tool("postmap"), &["-s", &map]) {
                for l in out.lines() {
                    let mut kv = l.split_whitespace();
                    if let (Some(k), Some(v)) = (kv.next(), kv.next())
                        && v.split(':').next() == Some(&s.name)
                        && k.contains('@')
                    {
                        w.routed.insert(k.to_ascii_lowercase());
                    }
                }
            }
        }
        w.services.push(s);
    }
}

fn exim(w: &mut Wiring, items: &mut Vec<Item>) {
    let Some(exim) = w.exim.clone() else {
        items.push(ok("mta", "Exim: not installed here"));
        return;
    };
    let list = match ask(&exim, &["-bP", "transport_list"]) {
        Ok((0, out)) => out,
        _ => {
            items.push(problem(
                "mta",
                Level::Unknown,
                format!("{exim} -bP transport_list failed: its transports could not be read"),
                "run tlsrpt doctor as root (exim -bP needs an admin user)",
            ));
            return;
        }
    };
    let names: Vec<String> = list
        .trim()
        .trim_start_matches("transport_list")
        .trim_start_matches([' ', '='])
        .split(':')
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    for name in names {
        let Ok((0, out)) = ask(&exim, &["-bP", "transport", &name]) else {
            continue;
        };
        let opt = |k: &str| {
            out.lines().find_map(|l| {
                l.trim()
                    .strip_prefix(k)?
                    .trim()
                    .strip_prefix('=')
                    .map(|v| v.trim().to_owned())
            })
        };
        let Some(command) = opt("command") else {
            continue;
        };
        let argv: Vec<&str> = command.split_whitespace().collect();
        let Some(program) = argv.first().filter(|p| p.ends_with("tlsrpt-pipe")) else {
            continue;
        };
        let (spool, trusted) = pipe_options(&argv[1..]);
        let s = Service {
            source: format!("Exim transport {name}"),
            name: name.clone(),
            user: opt("user"),
            program: program.to_string(),
            spool,
            trusted,
        };
        items.push(s.found("(exim's default)", ""));
        w.services.push(s);
    }
}

fn aliases(w: &mut Wiring, a: &DoctorArgs, items: &mut Vec<Item>) {
    let path = &a.aliases;
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    // local(8) runs the command as the file's owner, or default_privs when root owns it.
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::metadata(path)
        .ok()
        .and_then(|m| {
            (m.uid() != 0)
                .then(|| nix::unistd::User::from_uid(m.uid().into()).ok().flatten())
                .flatten()
        })
        .map(|u| u.name)
        .unwrap_or_else(|| "nobody".into());
    for line in text.lines().take(10_000) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if line.starts_with('#') || !value.contains("tlsrpt-pipe") {
            continue;
        }
        let cmd = value.trim().trim_matches('"').trim_start_matches('|');
        let argv: Vec<&str> = cmd.split_whitespace().collect();
        let Some(program) = argv.first() else {
            continue;
        };
        let (spool, trusted) = pipe_options(&argv[1..]);
        let s = Service {
            source: format!("{} alias {}", path.display(), name.trim()),
            name: name.trim().to_owned(),
            user: Some(owner.clone()),
            program: program.to_string(),
            spool,
            trusted,
        };
        items.push(s.found("nobody", " (local(8): the file's owner, or default_privs)"));
        w.services.push(s);
    }
}

#[cfg(test)]
mod tests {
    use super::pipe_options;

    #[test]
    fn options_of_a_command_line() {
        let (s, t) = pipe_options(&[
            "--spool",
            "/srv/s",
            "--sender",
            "${sender}",
            "--trusted-authserv-id=mx.example.com",
            "--trusted-authserv-id",
            "b",
        ]);
        assert_eq!(s.as_deref(), Some("/srv/s"));
        assert_eq!(t, ["mx.example.com", "b"]);
        assert_eq!(pipe_options(&["--spool"]), (None, vec![]));
    }
}
