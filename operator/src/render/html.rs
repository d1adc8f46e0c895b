//! The summary as one self-contained HTML file: nothing is fetched (no script, external
//! style, font or image); charts are inline SVG; styles are inline attributes so a mail
//! client that drops `<style>` still shows it. Every text from a report is escaped; the
//! only links are to sections of the page itself (`#dN`).
//!
//! It opens with the answer — headline figures, one chart of all sessions and failures
//! per day, the result types across all domains, the worst domains linked to their
//! sections — then the details. A section with its own chart is written for the
//! `MAX_SECTIONS` most failing domains only; every domain is a row of the overview table,
//! so a provider's 1,000 domains stay readable and the page a few hundred KB.

use std::fmt::Write;

use crate::render::table::{count, percent, thousands};
use crate::summary::{DayDoc, Doc, DomainDoc};

/// Escapes text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters and bidirectional overrides (which would reorder what
            // the reader sees): render::safe's set.
            c if c != '\n' && super::safe::unsafe_char(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const TH: &str = "style=\"text-align:left;padding:2px 8px;border-bottom:1px solid #999\"";
const TD: &str = "style=\"padding:2px 8px;border-bottom:1px solid #ddd\"";
const TDN: &str = "style=\"padding:2px 8px;border-bottom:1px solid #ddd;text-align:right\"";
const OK: &str = "#4a8f3c";
/// Domains with a detailed section of their own (the most failing).
pub const MAX_SECTIONS: usize = 50;
/// Domains in the "worst domains" list at the top.
const WORST: usize = 10;
const BAD: &str = "#c62828";

/// What one bar of a series stands for (the window's `series-days`).
fn per(bucket: i64) -> &'static str {
    match bucket {
        1 => "day",
        7 => "week",
        30 => "30 days",
        91 => "quarter",
        _ => "year",
    }
}

/// Stacked bars per day (or bucket of days): successful (green) under failed (red); and
/// the failed sessions alone on their own scale below, so a handful of failures among
/// millions is visible.
fn chart(days: &[DayDoc], bucket: i64) -> String {
    let unit = per(bucket);
    let n = days.len().max(1);
    let (w, h, h2) = (720.0f64, 120.0f64, 50.0f64);
    let bw = (w / n as f64).max(1.0);
    let max_total = days
        .iter()
        .map(|d| d.successful + d.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let max_failed = days.iter().map(|d| d.failed).max().unwrap_or(0).max(1) as f64;
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"sessions per {unit}\">",
        h + h2 + 30.0,
        h + h2 + 30.0
    );
    for (i, d) in days.iter().enumerate() {
        let x = i as f64 * bw;
        let total = (d.successful + d.failed) as f64;
        let th = total / max_total * h;
        let fh = d.failed as f64 / max_total * h;
        let _ = write!(
            s,
            "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{OK}\"><title>{}: {} successful, {} failed</title></rect>",
            h - th,
            (bw - 1.0).max(0.5),
            th - fh,
            d.day,
            d.successful,
            d.failed
        );
        if d.failed > 0 {
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{fh:.1}\" fill=\"{BAD}\"/>",
                h - fh,
                (bw - 1.0).max(0.5)
            );
            let f2 = d.failed as f64 / max_failed * h2;
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{f2:.1}\" fill=\"{BAD}\"><title>{}: {} failed</title></rect>",
                h + 10.0 + h2 - f2,
                (bw - 1.0).max(0.5),
                d.day,
                d.failed
            );
        }
    }
    let _ = write!(
        s,
        "<line x1=\"0\" y1=\"{h}\" x2=\"{w}\" y2=\"{h}\" stroke=\"#999\"/><line x1=\"0\" y1=\"{0}\" x2=\"{w}\" y2=\"{0}\" stroke=\"#999\"/>",
        h + 10.0 + h2
    );
    if let (Some(first), Some(last)) = (days.first(), days.last()) {
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{0}\" font-size=\"11\" fill=\"#333\">{1}</text><text x=\"{w}\" y=\"{0}\" font-size=\"11\" fill=\"#333\" text-anchor=\"end\">{2}</text>",
            h + h2 + 25.0,
            first.day,
            last.day
        );
    }
    let _ = write!(
        s,
        "<text x=\"4\" y=\"12\" font-size=\"11\" fill=\"#333\">sessions per {unit} (max {})</text><text x=\"4\" y=\"{}\" font-size=\"11\" fill=\"#333\">failed per {unit} (max {})</text></svg>",
        max_total as u64,
        h + 22.0,
        max_failed as u64
    );
    s
}

fn table<'a>(out: &mut String, head: &[&str], rows: impl Iterator<Item = Vec<String>> + 'a) {
    out.push_str("<table style=\"border-collapse:collapse;margin:4px 0 12px 0\"><tr>");
    for h in head {
        let _ = write!(out, "<th {TH}>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for r in rows {
        out.push_str("<tr>");
        for (i, c) in r.iter().enumerate() {
            let _ = write!(out, "<td {}>{}</td>", if i == 0 { TD } else { TDN }, esc(c));
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

fn sorted(map: &std::collections::BTreeMap<String, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = map.iter().map(|(k, v)| (k.clone(), *v)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

fn domain(out: &mut String, d: &DomainDoc, id: usize) {
    let s = &d.sessions;
    let _ = write!(
        out,
        "<h2 id=\"d{id}\" style=\"font-size:18px;margin:24px 0 4px 0\">{}</h2><p style=\"margin:0 0 8px 0\"><b style=\"color:{}\">{} failed</b> of {} ({}) in {} from {}. Previous window: {} failed of {} ({}).</p>",
        esc(&d.policy_domain),
        if s.failed > 0 { BAD } else { OK },
        thousands(s.failed),
        count(s.successful + s.failed, "session", "sessions"),
        percent(s.failure_rate),
        count(s.reports, "report", "reports"),
        count(
            d.organizations.len() as u64,
            "organisation",
            "organisations"
        ),
        thousands(d.previous.sessions.failed),
        thousands(d.previous.sessions.successful + d.previous.sessions.failed),
        percent(d.previous.sessions.failure_rate)
    );
    out.push_str(&chart(&d.daily.iter().collect::<Vec<_>>(), d.daily.bucket));
    if !d.advice.is_empty() {
        out.push_str("<h3 style=\"font-size:15px;margin:12px 0 4px 0\">What failed, what it means, what to check</h3>");
        table(
            out,
            &[
                "result type",
                "failed sessions",
                "reports",
                "first .. last seen",
                "at MX",
                "reasons",
                "reported by",
                "meaning",
                "check first",
                "now",
            ],
            d.advice.iter().map(|r| {
                vec![
                    r.result_type.clone(),
                    thousands(r.failed),
                    r.reports.to_string(),
                    format!(
                        "{} .. {}",
                        &r.first_seen[..10.min(r.first_seen.len())],
                        &r.last_seen[..10.min(r.last_seen.len())]
                    ),
                    r.mx_hosts
                        .iter()
                        .map(|m| format!("{} ({})", m.host, thousands(m.failed)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.reasons
                        .iter()
                        .filter(|x| x.code != "(none)")
                        .map(|x| format!("{} ({})", x.code, thousands(x.failed)))
                        .collect::<Vec<_>>()
                        .join(", "),
                    r.organizations.join(", "),
                    r.meaning.to_owned(),
                    r.check.to_owned(),
                    live_cell(r),
                ]
            }),
        );
    }
    if let Some(l) = &d.live {
        let _ = write!(
            out,
            "<h3 style=\"font-size:15px;margin:12px 0 4px 0\">Checked live {}</h3>",
            esc(&l.checked_at)
        );
        if l.findings.is_empty() {
            out.push_str("<p>No problem found at the MX hosts the reports named.</p>");
        } else {
            table(
                out,
                &["severity", "code", "what is wrong, and the fix"],
                l.findings.iter().map(|f| {
                    vec![
                        f.severity.label().to_owned(),
                        f.code.to_owned(),
                        f.message.clone(),
                    ]
                }),
            );
        }
    }
    if let Some(wd) = &d.watch {
        let _ = write!(
            out,
            "<h3 style=\"font-size:15px;margin:12px 0 4px 0\">tlsrpt watch, checked {}</h3>",
            esc(&wd.checked_at)
        );
        if wd.findings.is_empty() {
            out.push_str(if wd.status == 3 {
                "<p>It could not check everything (run <code>tlsrpt watch</code> by hand).</p>"
            } else {
                "<p>No problem found.</p>"
            });
        } else {
            table(
                out,
                &["severity", "code", "host", "what is wrong, and the fix"],
                wd.findings.iter().map(|f| {
                    vec![
                        f.severity.clone(),
                        f.code.clone(),
                        f.host.clone().unwrap_or_default(),
                        f.message.clone(),
                    ]
                }),
            );
        }
        if !wd.changes.is_empty() {
            table(
                out,
                &["when", "change", "what"],
                wd.changes.iter().map(|c| {
                    vec![
                        crate::window::rfc3339(c.at),
                        c.change.to_owned(),
                        c.what.clone(),
                    ]
                }),
            );
        }
    }
    out.push_str("<h3 style=\"font-size:15px;margin:12px 0 4px 0\">By policy type</h3>");
    table(
        out,
        &[
            "policy type",
            "reports",
            "successful",
            "failed",
            "failure rate",
        ],
        d.policy_types.iter().map(|(t, ts)| {
            vec![
                t.clone(),
                thousands(ts.sessions.reports),
                thousands(ts.sessions.successful),
                thousands(ts.sessions.failed),
                percent(ts.sessions.failure_rate),
            ]
        }),
    );
    out.push_str("<h3 style=\"font-size:15px;margin:12px 0 4px 0\">By reporting organisation</h3>");
    table(
        out,
        &[
            "organisation",
            "reports",
            "successful",
            "failed",
            "failure rate",
        ],
        d.organizations.iter().map(|(o, s)| {
            vec![
                o.clone(),
                thousands(s.reports),
                thousands(s.successful),
                thousands(s.failed),
                percent(s.failure_rate),
            ]
        }),
    );
    for (title, map) in [
        ("Receiving MX host", &d.receiving_mx),
        ("Receiving IP", &d.receiving_ips),
    ] {
        if !map.is_empty() {
            let _ = write!(
                out,
                "<h3 style=\"font-size:15px;margin:12px 0 4px 0\">{title}</h3>"
            );
            table(
                out,
                &[title, "failed sessions"],
                sorted(map).into_iter().map(|(k, v)| vec![k, thousands(v)]),
            );
        }
    }
    if !d.sending_ips.is_empty() {
        out.push_str("<h3 style=\"font-size:15px;margin:12px 0 4px 0\">Top sending MTA IPs</h3>");
        table(
            out,
            &["sending IP", "failed sessions"],
            d.sending_ips
                .iter()
                .map(|i| vec![i.ip.clone(), thousands(i.failed)]),
        );
    }
}

/// The live verdicts of a result type, per MX host.
fn live_cell(r: &crate::summary::ResultDoc) -> String {
    let per: Vec<String> = r
        .mx_hosts
        .iter()
        .filter_map(|m| {
            m.live
                .as_ref()
                .map(|l| format!("{}: {} ({})", m.host, l.verdict, l.evidence))
        })
        .collect();
    if !per.is_empty() {
        return per.join("; ");
    }
    r.live
        .as_ref()
        .map(|l| format!("{} ({})", l.verdict, l.evidence))
        .unwrap_or_default()
}

/// The answer first: headline figures, all domains' days, result types across domains,
/// the worst domains linked to their sections.
fn headline(out: &mut String, doc: &Doc) {
    let mut total = crate::aggregate::Sessions::default();
    for d in &doc.domains {
        total.reports += d.sessions.reports;
        total.successful += d.sessions.successful;
        total.failed += d.sessions.failed;
    }
    let failing = doc.domains.iter().filter(|d| d.sessions.failed > 0).count();
    let big = |label: &str, value: String, colour: &str| {
        format!(
            "<td style=\"padding:4px 24px 4px 0\"><div style=\"font-size:26px;font-weight:bold;color:{colour}\">{}</div><div style=\"color:#555\">{}</div></td>",
            esc(&value),
            esc(label)
        )
    };
    let _ = write!(
        out,
        "<table style=\"margin:8px 0 12px 0\"><tr>{}{}{}{}</tr></table>",
        big("domains", thousands(doc.domains.len() as u64), "#222"),
        big("sessions", thousands(total.total()), "#222"),
        big(
            "failure rate",
            percent(total.failure_rate()),
            if total.failed > 0 { BAD } else { OK }
        ),
        big(
            "domains failing",
            thousands(failing as u64),
            if failing > 0 { BAD } else { OK }
        ),
    );
    // One chart: every domain's sessions per day.
    let mut days: Vec<DayDoc> = Vec::new();
    for d in &doc.domains {
        for (i, day) in d.daily.iter().enumerate() {
            match days.get_mut(i) {
                Some(x) => {
                    x.successful += day.successful;
                    x.failed += day.failed;
                }
                None => days.push(day),
            }
        }
    }
    out.push_str(&chart(&days, doc.window.series_days));
    // Result types across all domains.
    let mut types: std::collections::BTreeMap<&str, (u64, u64, u64)> = Default::default();
    for d in &doc.domains {
        for r in &d.advice {
            let e = types.entry(r.result_type.as_str()).or_default();
            e.0 += r.failed;
            e.1 += 1;
            e.2 += r.reports;
        }
    }
    if !types.is_empty() {
        let mut v: Vec<(&str, (u64, u64, u64))> = types.into_iter().collect();
        v.sort_by(|a, b| b.1.0.cmp(&a.1.0).then(a.0.cmp(b.0)));
        out.push_str(
            "<h2 style=\"font-size:18px;margin:16px 0 4px 0\">What failed, across all domains</h2>",
        );
        table(
            out,
            &[
                "result type",
                "failed sessions",
                "domains",
                "reports",
                "means",
            ],
            v.into_iter().map(|(t, (f, dn, rn))| {
                vec![
                    t.to_owned(),
                    thousands(f),
                    thousands(dn),
                    thousands(rn),
                    crate::advice::for_result_type(t).0.to_owned(),
                ]
            }),
        );
    }
    let worst: Vec<(usize, &DomainDoc)> = doc
        .domains
        .iter()
        .enumerate()
        .filter(|(_, d)| d.sessions.failed > 0)
        .take(WORST)
        .collect();
    if !worst.is_empty() {
        out.push_str("<h2 style=\"font-size:18px;margin:16px 0 4px 0\">Worst domains</h2><ol style=\"margin:4px 0 12px 0\">");
        for (i, d) in worst {
            let top = d
                .advice
                .first()
                .map(|r| format!(": mostly {}", r.result_type))
                .unwrap_or_default();
            let now = d
                .advice
                .first()
                .and_then(|r| r.live.as_ref())
                .map(|l| format!(" — now {}", l.verdict))
                .unwrap_or_default();
            let name = if i < MAX_SECTIONS {
                format!("<a href=\"#d{i}\">{}</a>", esc(&d.policy_domain))
            } else {
                esc(&d.policy_domain)
            };
            let _ = write!(
                out,
                "<li>{name}: <b style=\"color:{BAD}\">{} failed</b> ({}){}{}</li>",
                thousands(d.sessions.failed),
                percent(d.sessions.failure_rate),
                esc(&top),
                esc(&now)
            );
        }
        out.push_str("</ol>");
    }
}

/// One row per domain: its figures, and the change in failures when `change`.
fn overview(out: &mut String, domains: &[DomainDoc], change: bool) {
    let mut head = vec![
        "policy domain",
        "reports",
        "successful",
        "failed",
        "failure rate",
    ];
    if change {
        head.push("change (failed)");
    }
    table(
        out,
        &head,
        domains.iter().map(|d| {
            let mut row = vec![
                d.policy_domain.clone(),
                thousands(d.sessions.reports),
                thousands(d.sessions.successful),
                thousands(d.sessions.failed),
                percent(d.sessions.failure_rate),
            ];
            if change {
                row.push(format!("{:+}", d.previous.change.failed));
            }
            row
        }),
    );
}

pub fn render(doc: &Doc) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>TLS reports {} .. {}</title></head><body style=\"font-family:sans-serif;font-size:14px;color:#222;max-width:1000px;margin:16px\">",
        esc(&doc.window.since),
        esc(&doc.window.until)
    );
    let _ = write!(
        out,
        "<h1 style=\"font-size:22px\">TLS reports {} .. {}</h1><p>Spools: {}</p>",
        esc(&doc.window.since),
        esc(&doc.window.until),
        esc(&doc.spools.join(", "))
    );
    if doc.domains.is_empty() {
        out.push_str("<p>No authenticated reports in this window.</p>");
        if let Some(e) = &doc.empty_window {
            let _ = write!(out, "<p>{}</p>", esc(&e.text()));
        }
    } else {
        headline(&mut out, doc);
        // Sections keep the domain's index in the document as their id (#dN).
        let sections = doc
            .domains
            .iter()
            .enumerate()
            .take(MAX_SECTIONS)
            .filter(|(_, d)| d.sessions.failed > 0 || doc.domains.len() <= MAX_SECTIONS);
        let n = sections.clone().count();
        if n > 0 {
            out.push_str("<h2 style=\"font-size:18px;margin:24px 0 4px 0\">Details</h2>");
        }
        for (i, d) in sections {
            domain(&mut out, d, i);
        }
        let failing = doc.domains.iter().filter(|d| d.sessions.failed > 0).count();
        if failing > n {
            let _ = write!(
                out,
                "<p>{} more failing domains have no section of their own here: see the table below, or <code>tlsrpt summary --domain DOMAIN</code>.</p>",
                thousands((failing - n) as u64)
            );
        }
        out.push_str("<h2 style=\"font-size:18px;margin:24px 0 4px 0\">Every domain</h2>");
        overview(&mut out, &doc.domains, true);
    }
    let u = &doc.unauthenticated;
    if !u.domains.is_empty() {
        let _ = write!(
            out,
            "<h2 style=\"font-size:18px;margin:24px 0 4px 0\">Not counted above: reports without a trusted DKIM pass</h2><p>{} reports, {} failed of {} sessions. They may be forged; --include-unauthenticated counts them.</p>",
            thousands(u.sessions.reports),
            thousands(u.sessions.failed),
            thousands(u.sessions.successful + u.sessions.failed)
        );
        if !u.why.is_empty() {
            out.push_str("<ul>");
            for w in &u.why {
                let _ = write!(out, "<li>{}</li>", esc(&w.line()));
            }
            out.push_str("</ul>");
        }
        overview(&mut out, &u.domains, false);
    }
    if let Some(wr) = &doc.watch {
        match (&wr.last_run, &wr.problem) {
            (_, Some(p)) => {
                let _ = write!(out, "<p><b>Live checks</b>: {}</p>", esc(p));
            }
            (Some(at), None) => {
                let _ = write!(
                    out,
                    "<p>Live checks: tlsrpt watch last ran at {}; its findings are beside each domain it checks.</p>",
                    esc(at)
                );
            }
            (None, None) => {}
        }
    }
    if doc.quarantined > 0 {
        let _ = write!(
            out,
            "<p><b>{} set aside as unreadable in this window</b>: their reports are in no figure above (<code>tlsrpt quarantine list</code>).</p>",
            count(doc.quarantined, "message was", "messages were")
        );
    }
    let _ = write!(
        out,
        "<p style=\"color:#666\">{} duplicate copies counted once; {} lines skipped; {} day files unreadable.</p></body></html>",
        doc.duplicates, doc.skipped_lines, doc.unreadable_files
    );
    out.push('\n');
    out
}
