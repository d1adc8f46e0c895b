//! The summary as an aligned terminal view, most failing domain first, at most 100
//! columns wide. Colour (red for failures) only when asked for: the caller decides from
//! the terminal and `NO_COLOR`.

use std::fmt::Write;

use super::safe::terminal;
use crate::summary::{Doc, DomainDoc, SessionsDoc};

pub const WIDTH: usize = 100;

/// `12345678` → `12,345,678`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1 report`, `2 reports`, `1,000 reports`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", thousands(n), if n == 1 { one } else { many })
}

/// The change against the previous window: `new` when it had no sessions.
pub fn change_pp(d: &DomainDoc) -> String {
    let p = &d.previous.sessions;
    if p.successful + p.failed == 0 {
        "new".into()
    } else {
        format!("{:+.2}pp", d.previous.change.failure_rate * 100.0)
    }
}

pub fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

fn signed(n: i64) -> String {
    if n > 0 {
        format!("+{}", thousands(n as u64))
    } else if n < 0 {
        format!("-{}", thousands(n.unsigned_abs()))
    } else {
        "0".into()
    }
}

/// Cuts `s` to `n` characters, marking the cut with `~`; made safe for a terminal
/// (everything shown passes through here or through [`t`]).
fn fit(s: &str, n: usize) -> String {
    let s = terminal(s);
    if s.chars().count() <= n {
        s.into_owned()
    } else {
        let mut t: String = s.chars().take(n.saturating_sub(1)).collect();
        t.push('~');
        t
    }
}

/// Text from a report or a server, safe for a terminal.
fn t(s: &str) -> String {
    terminal(s).into_owned()
}

/// Word-wraps `text` to the width, every line after the first indented by `indent`.
/// What `tlsrpt watch` last found at a domain and what changed in the window.
fn watch_lines(out: &mut String, wd: &crate::summary::DomainWatchDoc) {
    let _ = writeln!(
        out,
        "  tlsrpt watch, checked {}: {}",
        wd.checked_at,
        match wd.status {
            0 => "no problem found",
            1 => "warnings",
            2 => "errors",
            _ => "could not check everything",
        }
    );
    for f in &wd.findings {
        let host = f
            .host
            .as_deref()
            .map(|h| format!(" {}", t(h)))
            .unwrap_or_default();
        wrap(
            out,
            &format!("    {} {}{host}:", f.severity, f.code),
            6,
            &t(&f.message),
        );
    }
    for c in &wd.changes {
        wrap(
            out,
            &format!("    {} {}:", crate::window::rfc3339(c.at), c.change),
            6,
            &t(&c.what),
        );
    }
}

fn wrap(out: &mut String, first: &str, indent: usize, text: &str) {
    let mut line = first.to_owned();
    for word in text.split_whitespace() {
        // A word longer than a line (a 253-character domain name) is cut, not overflowed.
        let word = fit(word, WIDTH - indent);
        if line.chars().count() + 1 + word.chars().count() > WIDTH && !line.trim().is_empty() {
            out.push_str(line.trim_end());
            out.push('\n');
            line = " ".repeat(indent);
        } else if !line.ends_with(' ') && !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&word);
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

struct Paint {
    on: bool,
}

impl Paint {
    fn red(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[31m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
    fn bold(&self, s: &str) -> String {
        if self.on {
            format!("\x1b[1m{s}\x1b[0m")
        } else {
            s.to_owned()
        }
    }
}

fn overview(out: &mut String, domains: &[DomainDoc], paint: &Paint) {
    let _ = writeln!(
        out,
        "{:<34} {:>7} {:>13} {:>10} {:>7} {:>9} {:>5}",
        "DOMAIN", "REPORTS", "SUCCESSFUL", "FAILED", "RATE", "vs PREV", "ORGS"
    );
    for d in domains {
        let s = &d.sessions;
        let failed = format!("{:>10}", thousands(s.failed));
        let _ = writeln!(
            out,
            "{:<34} {:>7} {:>13} {} {:>7} {:>9} {:>5}",
            fit(&d.policy_domain, 34),
            thousands(s.reports),
            thousands(s.successful),
            if s.failed > 0 {
                paint.red(&failed)
            } else {
                failed
            },
            percent(s.failure_rate),
            change_pp(d),
            d.organizations.len()
        );
    }
}

fn kv_list(map: impl Iterator<Item = (String, u64)>, limit: usize) -> String {
    let mut v: Vec<(String, u64)> = map.collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let more = v.len().saturating_sub(limit);
    let mut s: Vec<String> = v
        .into_iter()
        .take(limit)
        .map(|(k, n)| format!("{} {}", t(&k), thousands(n)))
        .collect();
    if more > 0 {
        s.push(format!("(+{more} more)"));
    }
    s.join(", ")
}

fn sessions_line(s: &SessionsDoc) -> String {
    format!(
        "{}, {} successful, {} failed ({})",
        count(s.reports, "report", "reports"),
        thousands(s.successful),
        thousands(s.failed),
        percent(s.failure_rate)
    )
}

fn detail(out: &mut String, d: &DomainDoc, paint: &Paint) {
    let s = &d.sessions;
    let _ = writeln!(out);
    let head = format!(
        "{}: {} failed of {} ({}) in {} from {}",
        t(&d.policy_domain),
        thousands(s.failed),
        count(s.successful + s.failed, "session", "sessions"),
        percent(s.failure_rate),
        count(s.reports, "report", "reports"),
        count(
            d.organizations.len() as u64,
            "organisation",
            "organisations"
        )
    );
    wrap(out, "", 2, &paint.bold(&head));
    let p = &d.previous;
    if p.sessions.successful + p.sessions.failed == 0 {
        wrap(out, "  previous window:", 4, "no reports (new)");
    } else {
        wrap(
            out,
            "  previous window:",
            4,
            &format!(
                "{} failed of {} ({}); change {} failed, {} reports",
                thousands(p.sessions.failed),
                thousands(p.sessions.successful + p.sessions.failed),
                percent(p.sessions.failure_rate),
                signed(p.change.failed),
                signed(p.change.reports)
            ),
        );
    }
    let types: Vec<String> = d
        .policy_types
        .iter()
        .map(|(ty, ts)| {
            format!(
                "{} {} ok / {} failed",
                t(ty),
                thousands(ts.sessions.successful),
                thousands(ts.sessions.failed)
            )
        })
        .collect();
    wrap(out, "  policy types:", 4, &types.join("; "));
    let orgs: Vec<String> = d
        .organizations
        .iter()
        .map(|(o, s)| {
            format!(
                "{} ({}, {} failed)",
                t(o),
                count(s.reports, "report", "reports"),
                thousands(s.failed)
            )
        })
        .collect();
    wrap(out, "  organisations:", 4, &orgs.join("; "));
    if !d.advice.is_empty() {
        let _ = writeln!(out, "  result types:");
        for r in &d.advice {
            let line = format!(
                "    {:<26} {:>10} in {}, {} .. {}",
                fit(&r.result_type, 60),
                count(r.failed, "session", "sessions"),
                count(r.reports, "report", "reports"),
                &r.first_seen[..10.min(r.first_seen.len())],
                &r.last_seen[..10.min(r.last_seen.len())]
            );
            let _ = writeln!(out, "{}", paint.red(&line));
            wrap(out, "      means:", 13, r.meaning);
            wrap(out, "      check:", 13, r.check);
            why(out, r);
        }
    }
    if !d.receiving_mx.is_empty() {
        wrap(
            out,
            "  receiving MX:",
            4,
            &kv_list(d.receiving_mx.iter().map(|(k, v)| (k.clone(), *v)), 8),
        );
    }
    if !d.receiving_ips.is_empty() {
        wrap(
            out,
            "  receiving IP:",
            4,
            &kv_list(d.receiving_ips.iter().map(|(k, v)| (k.clone(), *v)), 8),
        );
    }
    if !d.sending_ips.is_empty() {
        wrap(
            out,
            "  top sending IPs:",
            4,
            &kv_list(d.sending_ips.iter().map(|i| (i.ip.clone(), i.failed)), 10),
        );
    }
}

/// Why a result type failed, from the reports (at which MX, the senders' reason codes,
/// who reported it), and whether it still fails (`--probe`).
fn why(out: &mut String, r: &crate::summary::ResultDoc) {
    let mx: Vec<(String, u64)> = r
        .mx_hosts
        .iter()
        .map(|m| {
            let h = if m.host == "(none)" {
                "(not named)"
            } else {
                m.host.as_str()
            };
            (h.to_owned(), m.failed)
        })
        .collect();
    if !mx.is_empty() {
        wrap(out, "      at MX:", 13, &kv_list(mx.into_iter(), 8));
    }
    let reasons: Vec<String> = r
        .reasons
        .iter()
        .filter(|x| x.code != "(none)" || r.reasons.len() > 1)
        .map(|x| format!("{} ({})", t(&x.code), thousands(x.failed)))
        .collect();
    if !reasons.is_empty() {
        wrap(out, "      reasons:", 13, &reasons.join("; "));
    }
    if !r.organizations.is_empty() {
        wrap(
            out,
            "      reported by:",
            13,
            &t(&r.organizations.join(", ")),
        );
    }
    for u in r.additional_information.iter().take(3) {
        wrap(out, "      details:", 13, &t(u));
    }
    for m in &r.mx_hosts {
        if let Some(l) = &m.live {
            let when = l
                .checked_at
                .as_deref()
                .map(|t| format!(" (checked {t})"))
                .unwrap_or_default();
            wrap(
                out,
                &format!("      now at {}:", fit(&m.host, 80)),
                13,
                &format!("{}: {}{when}", l.verdict, t(&l.evidence)),
            );
        }
    }
    if r.mx_hosts.iter().all(|m| m.live.is_none())
        && let Some(l) = &r.live
    {
        wrap(
            out,
            "      now:",
            13,
            &format!("{}: {}", l.verdict, t(&l.evidence)),
        );
    }
}

/// Renders the whole table view.
pub fn render(doc: &Doc, colour: bool) -> String {
    let paint = Paint { on: colour };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        paint.bold(&format!(
            "TLS reports for {} .. {}",
            doc.window.since, doc.window.until
        ))
    );
    wrap(&mut out, "spools:", 2, &t(&doc.spools.join(", ")));
    out.push('\n');
    if doc.domains.is_empty() {
        let _ = writeln!(out, "No authenticated reports in this window.");
        if let Some(e) = &doc.empty_window {
            wrap(&mut out, "", 2, &e.text());
        }
    } else {
        overview(&mut out, &doc.domains, &paint);
        for d in &doc.domains {
            detail(&mut out, d, &paint);
            if let Some(l) = &d.live {
                let _ = writeln!(
                    out,
                    "  checked live {} (check-domain's findings for the MX hosts above):",
                    l.checked_at
                );
                if l.findings.is_empty() {
                    let _ = writeln!(out, "    no problem found");
                }
                for f in &l.findings {
                    wrap(
                        &mut out,
                        &format!("    {} {}:", f.severity.label(), f.code),
                        6,
                        &t(&f.message),
                    );
                }
            }
            if let Some(wd) = &d.watch {
                watch_lines(&mut out, wd);
            }
        }
    }
    let u = &doc.unauthenticated;
    if !u.domains.is_empty() {
        out.push('\n');
        wrap(
            &mut out,
            "",
            2,
            &format!(
                "Not counted above: {} without a trusted, aligned DKIM pass ({} failed of {} sessions). They may be forged; --include-unauthenticated counts them.",
                count(u.sessions.reports, "report", "reports"),
                thousands(u.sessions.failed),
                thousands(u.sessions.successful + u.sessions.failed)
            ),
        );
        for w in &u.why {
            wrap(&mut out, "  -", 4, &w.line());
        }
        for d in &u.domains {
            wrap(
                &mut out,
                &format!("  {}:", fit(&d.policy_domain, 80)),
                4,
                &sessions_line(&d.sessions),
            );
        }
    }
    if let Some(wr) = &doc.watch {
        out.push('\n');
        match (&wr.last_run, &wr.problem) {
            (_, Some(p)) => wrap(&mut out, "", 2, &format!("Live checks: {}", t(p))),
            (Some(at), None) => wrap(
                &mut out,
                "",
                2,
                &format!(
                    "Live checks: tlsrpt watch last ran at {at}; its findings are beside each domain it checks."
                ),
            ),
            (None, None) => {}
        }
    }
    if doc.quarantined > 0 {
        out.push('\n');
        wrap(
            &mut out,
            "",
            2,
            &format!(
                "{} set aside as unreadable in this window: their reports are in no figure above; see tlsrpt quarantine list (and retry after a fix).",
                count(doc.quarantined, "message was", "messages were")
            ),
        );
    }
    if doc.duplicates > 0 || doc.skipped_lines > 0 || doc.unreadable_files > 0 {
        out.push('\n');
        let _ = writeln!(
            out,
            "{} duplicate copies counted once; {} lines skipped; {} day files unreadable (see stderr).",
            doc.duplicates, doc.skipped_lines, doc.unreadable_files
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_wrapping() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(signed(-1500), "-1,500");
        let mut out = String::new();
        wrap(&mut out, "  x:", 4, &"word ".repeat(60));
        assert!(out.lines().all(|l| l.chars().count() <= WIDTH));
        assert!(out.lines().skip(1).all(|l| l.starts_with("    word")));
    }
}
