//! The summary as CSV: one row per policy domain × result type (a domain without
//! failures gets one row with an empty result type), authenticated domains first, then
//! the unauthenticated ones (`authenticated` column `false`; with
//! --include-unauthenticated, `false` too for a domain whose figures count any report
//! without a trusted DKIM pass). The why of each result
//! type (receiving MX hosts, failure-reason-codes, organisations) is in `;`-separated
//! cells, and with `--probe` the live verdict and its evidence. A cell that begins with
//! `=`, `+`, `-` or `@` gets a leading `'`, so that no spreadsheet runs it as a formula.

use crate::summary::{Doc, DomainDoc};

pub const HEADER: [&str; 15] = [
    "policy_domain",
    "authenticated",
    "result_type",
    "failed_session_count",
    "reports_with_result_type",
    "domain_reports",
    "domain_successful_session_count",
    "domain_failed_session_count",
    "domain_failure_rate",
    "previous_failed_session_count",
    "mx_hosts",
    "failure_reason_codes",
    "organizations",
    "live_verdict",
    "live_evidence",
];

/// Writes one row, every cell safe from spreadsheet formulas (render::safe::csv_cell).
fn write<'a>(
    w: &mut csv::Writer<Vec<u8>>,
    cells: impl IntoIterator<Item = &'a str>,
) -> csv::Result<()> {
    w.write_record(
        cells
            .into_iter()
            .map(|c| super::safe::csv_cell(c).into_owned()),
    )
}

fn rows(w: &mut csv::Writer<Vec<u8>>, d: &DomainDoc, authenticated: bool) -> csv::Result<()> {
    let s = &d.sessions;
    let common = [
        s.reports.to_string(),
        s.successful.to_string(),
        s.failed.to_string(),
        format!("{:.6}", s.failure_rate),
        d.previous.sessions.failed.to_string(),
    ];
    // `true` only for rows of authenticated reports alone: a domain's row that
    // --include-unauthenticated mixed them into is `false`.
    let auth = if authenticated && d.unauthenticated_reports == 0 {
        "true"
    } else {
        "false"
    };
    if d.advice.is_empty() {
        write(
            w,
            [d.policy_domain.as_str(), auth, "", "0", "0"]
                .into_iter()
                .chain(common.iter().map(String::as_str))
                .chain(["", "", "", "", ""]),
        )?;
    }
    for r in &d.advice {
        let (n, reps) = (r.failed.to_string(), r.reports.to_string());
        let mx: Vec<String> = r
            .mx_hosts
            .iter()
            .map(|m| format!("{} {}", m.host, m.failed))
            .collect();
        let reasons: Vec<String> = r
            .reasons
            .iter()
            .map(|x| format!("{} {}", x.code, x.failed))
            .collect();
        let (verdict, evidence) = match &r.live {
            Some(l) => (l.verdict, l.evidence.as_str()),
            None => ("", ""),
        };
        let why = [
            mx.join("; "),
            reasons.join("; "),
            r.organizations.join("; "),
        ];
        write(
            w,
            [
                d.policy_domain.as_str(),
                auth,
                r.result_type.as_str(),
                &n,
                &reps,
            ]
            .into_iter()
            .chain(common.iter().map(String::as_str))
            .chain(why.iter().map(String::as_str))
            .chain([verdict, evidence]),
        )?;
    }
    Ok(())
}

pub fn render(doc: &Doc) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let result = (|| -> csv::Result<()> {
        w.write_record(HEADER)?;
        for d in &doc.domains {
            rows(&mut w, d, true)?;
        }
        for d in &doc.unauthenticated.domains {
            rows(&mut w, d, false)?;
        }
        w.flush()?;
        Ok(())
    })();
    result.expect("writing CSV to memory cannot fail");
    String::from_utf8(w.into_inner().expect("in-memory writer")).expect("CSV of UTF-8 fields")
}
