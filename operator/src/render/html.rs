//! The summary as one self-contained HTML file: nothing is fetched (no script, external
//! style, font or image); charts are inline SVG; styles are inline attributes so a mail
//! client that drops `<style>` still shows it. Every text from a report is escaped.

use std::fmt::Write;

use crate::render::table::{percent, thousands};
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
            c if c.is_control() && c != '\n' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

const TH: &str = "style=\"text-align:left;padding:2px 8px;border-bottom:1px solid #999\"";
const TD: &str = "style=\"padding:2px 8px;border-bottom:1px solid #ddd\"";
const TDN: &str = "style=\"padding:2px 8px;border-bottom:1px solid #ddd;text-align:right\"";
const OK: &str = "#4a8f3c";
const BAD: &str = "#c62828";

/// Stacked bars per day: successful (green) under failed (red); and the failed sessions
/// alone on their own scale below, so a handful of failures among millions is visible.
fn chart(days: &[DayDoc]) -> String {
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
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{}\" viewBox=\"0 0 {w} {}\" role=\"img\" aria-label=\"sessions per day\">",
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
        "<text x=\"4\" y=\"12\" font-size=\"11\" fill=\"#333\">sessions per day (max {})</text><text x=\"4\" y=\"{}\" font-size=\"11\" fill=\"#333\">failed per day (max {})</text></svg>",
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

fn domain(out: &mut String, d: &DomainDoc) {
    let s = &d.sessions;
    let _ = write!(
        out,
        "<h2 style=\"font-size:18px;margin:24px 0 4px 0\">{}</h2><p style=\"margin:0 0 8px 0\"><b style=\"color:{}\">{} failed</b> of {} sessions ({}) in {} reports from {} organisations. Previous window: {} failed of {} ({}).</p>",
        esc(&d.policy_domain),
        if s.failed > 0 { BAD } else { OK },
        thousands(s.failed),
        thousands(s.successful + s.failed),
        percent(s.failure_rate),
        thousands(s.reports),
        d.organizations.len(),
        thousands(d.previous.sessions.failed),
        thousands(d.previous.sessions.successful + d.previous.sessions.failed),
        percent(d.previous.sessions.failure_rate)
    );
    out.push_str(&chart(&d.daily));
    if !d.advice.is_empty() {
        out.push_str("<h3 style=\"font-size:15px;margin:12px 0 4px 0\">What failed, what it means, what to check</h3>");
        table(
            out,
            &[
                "result type",
                "failed sessions",
                "reports",
                "first seen",
                "last seen",
                "meaning",
                "check first",
            ],
            d.advice.iter().map(|r| {
                vec![
                    r.result_type.clone(),
                    thousands(r.failed),
                    r.reports.to_string(),
                    r.first_seen.clone(),
                    r.last_seen.clone(),
                    r.meaning.to_owned(),
                    r.check.to_owned(),
                ]
            }),
        );
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
    } else {
        overview(&mut out, &doc.domains, true);
        for d in &doc.domains {
            domain(&mut out, d);
        }
    }
    let u = &doc.unauthenticated;
    if !u.domains.is_empty() {
        let _ = write!(
            out,
            "<h2 style=\"font-size:18px;margin:24px 0 4px 0\">Not counted above: reports without a trusted DKIM pass</h2><p>{} reports, {} failed of {} sessions. They may be forged; configure tlsrpt-pipe --trusted-authserv-id, or count them with --include-unauthenticated.</p>",
            thousands(u.sessions.reports),
            thousands(u.sessions.failed),
            thousands(u.sessions.successful + u.sessions.failed)
        );
        overview(&mut out, &u.domains, false);
    }
    let _ = write!(
        out,
        "<p style=\"color:#666\">{} duplicate copies counted once; {} lines skipped; {} day files unreadable.</p></body></html>",
        doc.duplicates, doc.skipped_lines, doc.unreadable_files
    );
    out.push('\n');
    out
}
