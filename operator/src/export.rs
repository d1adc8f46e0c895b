//! `tlsrpt export`: records → flat rows for other tools.
//!
//! CSV has exactly parsedmarc's SMTP TLS columns, one row per policy (its totals, empty
//! result type) and one per failure detail (that detail's count), as parsedmarc writes
//! them, but with every column filled where the report has the data (parsedmarc leaves
//! policy_domain and policy_type empty on failure rows and never fills mx_host_patterns
//! or additional_info_uri). JSONL has one object per failure detail, or per policy
//! without failures, with the report and policy context repeated, plus the record's
//! dedup key, receipt time and DKIM verdict. The same window, domain, duplicate and
//! authentication rules as `summary` apply. A CSV cell that a spreadsheet would read as
//! a formula (it begins with `=`, `+`, `-`, `@`) gets a leading `'`
//! (render::safe::csv_cell); JSON Lines are as the reports said.

use std::collections::{BTreeMap, HashSet};
use std::io::{self, Write};

use serde_json::json;

use crate::aggregate::{LeftOutStats, dedup_id, shares};
use crate::record::{FailureDetail, Parsed, PolicyResult};
use crate::render::safe::csv_cell;
use crate::trust::{LeftOut, Trust};
use crate::window::Window;

/// parsedmarc's SMTP TLS CSV header, in its order.
pub const CSV_HEADER: [&str; 17] = [
    "organization_name",
    "begin_date",
    "end_date",
    "report_id",
    "result_type",
    "successful_session_count",
    "failed_session_count",
    "policy_domain",
    "policy_type",
    "policy_strings",
    "mx_host_patterns",
    "sending_mta_ip",
    "receiving_ip",
    "receiving_mx_hostname",
    "receiving_mx_helo",
    "additional_info_uri",
    "failure_reason_code",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
}

/// Filters and writes records as they are read.
pub struct Exporter<W: Write> {
    format: Format,
    window: Window,
    domains: Vec<String>,
    trust: Trust,
    seen: HashSet<u128>,
    /// Reports of the window left out for want of trust (said on stderr at the end).
    pub left_out: BTreeMap<LeftOut, LeftOutStats>,
    csv: Option<csv::Writer<W>>,
    out: Option<W>,
    pub rows: u64,
}

fn s<'a>(v: &'a Option<std::borrow::Cow<'_, str>>) -> &'a str {
    v.as_deref().unwrap_or("")
}

impl<W: Write> Exporter<W> {
    pub fn new(
        out: W,
        format: Format,
        window: Window,
        domains: Vec<String>,
        trust: Trust,
    ) -> io::Result<Exporter<W>> {
        let (csv, out) = match format {
            Format::Csv => {
                let mut w = csv::Writer::from_writer(out);
                w.write_record(CSV_HEADER).map_err(io::Error::other)?;
                (Some(w), None)
            }
            Format::Jsonl => (None, Some(out)),
        };
        Ok(Exporter {
            format,
            window,
            domains: domains
                .iter()
                .map(|d| crate::aggregate::domain_key(Some(d)))
                .collect(),
            trust,
            seen: HashSet::new(),
            left_out: BTreeMap::new(),
            csv,
            out,
            rows: 0,
        })
    }

    pub fn add(&mut self, p: &Parsed) -> io::Result<()> {
        if !self.window.contains(p.end) {
            return Ok(());
        }
        let r = &p.record;
        if !self
            .seen
            .insert(dedup_id(r.dedup_key.as_deref(), &r.report))
        {
            return Ok(());
        }
        let judged = self.trust.judge(r);
        let domains = self.domains.clone();
        let wanted = |d: &str| domains.is_empty() || domains.iter().any(|x| x == d);
        if !judged.counted {
            let mut v = LeftOutStats::default();
            for sh in shares(&r.report).iter().filter(|sh| wanted(&sh.domain)) {
                v.reports = 1;
                v.successful = v.successful.saturating_add(sh.successful);
                v.failed = v.failed.saturating_add(sh.failed);
            }
            if let (Some(why), 1) = (judged.left_out, v.reports) {
                let e = self.left_out.entry(why).or_default();
                e.reports += 1;
                e.successful = e.successful.saturating_add(v.successful);
                e.failed = e.failed.saturating_add(v.failed);
            }
            return Ok(());
        }
        for sh in shares(&r.report) {
            if !wanted(&sh.domain) {
                continue;
            }
            for pol in sh.policies {
                match self.format {
                    Format::Csv => self.csv_rows(p, pol)?,
                    Format::Jsonl => self.json_rows(p, pol)?,
                }
            }
        }
        Ok(())
    }

    fn csv_rows(&mut self, p: &Parsed, pol: &PolicyResult) -> io::Result<()> {
        let rep = &p.record.report;
        let w = self.csv.as_mut().expect("csv writer");
        let strings = pol.policy.policy_string.join("|");
        let mx = pol.policy.mx_host.join("|");
        let (succ, fail) = (
            pol.summary.successful.to_string(),
            pol.summary.failed.to_string(),
        );
        let head = [
            s(&rep.organization_name),
            s(&rep.date_range.start),
            s(&rep.date_range.end),
            s(&rep.report_id),
        ];
        let policy = [
            s(&pol.policy.policy_domain),
            s(&pol.policy.policy_type),
            strings.as_str(),
            mx.as_str(),
        ];
        let row: Vec<&str> = head
            .iter()
            .copied()
            .chain(["", succ.as_str(), fail.as_str()])
            .chain(policy.iter().copied())
            .chain(["", "", "", "", "", ""])
            .collect();
        w.write_record(row.iter().map(|c| csv_cell(c).into_owned()))
            .map_err(io::Error::other)?;
        self.rows += 1;
        for fd in &pol.failure_details {
            let n = fd.failed_session_count.to_string();
            let row: Vec<&str> = head
                .iter()
                .copied()
                .chain([s(&fd.result_type), "", n.as_str()])
                .chain(policy.iter().copied())
                .chain([
                    s(&fd.sending_mta_ip),
                    s(&fd.receiving_ip),
                    s(&fd.receiving_mx_hostname),
                    s(&fd.receiving_mx_helo),
                    s(&fd.additional_information),
                    s(&fd.failure_reason_code),
                ])
                .collect();
            w.write_record(row.iter().map(|c| csv_cell(c).into_owned()))
                .map_err(io::Error::other)?;
            self.rows += 1;
        }
        Ok(())
    }

    fn json_rows(&mut self, p: &Parsed, pol: &PolicyResult) -> io::Result<()> {
        let r = &p.record;
        let rep = &r.report;
        let base = json!({
            "organization-name": rep.organization_name,
            "report-id": rep.report_id,
            "start-datetime": rep.date_range.start,
            "end-datetime": rep.date_range.end,
            "contact-info": rep.contact_info,
            "policy-domain": pol.policy.policy_domain,
            "policy-type": pol.policy.policy_type,
            "policy-string": pol.policy.policy_string,
            "mx-host": pol.policy.mx_host,
            "total-successful-session-count": pol.summary.successful,
            "total-failure-session-count": pol.summary.failed,
            "dedup-key": r.dedup_key,
            "received-at": r.received_at,
            "dkim-verdict": r.authentication.verdict,
        });
        let out = self.out.as_mut().expect("jsonl writer");
        let write = |out: &mut W, v: &serde_json::Value| -> io::Result<()> {
            let mut line = serde_json::to_vec(v).map_err(io::Error::other)?;
            line.push(b'\n');
            out.write_all(&line)
        };
        if pol.failure_details.is_empty() {
            write(out, &base)?;
            self.rows += 1;
        }
        for fd in &pol.failure_details {
            let mut v = base.clone();
            let FailureDetail {
                result_type,
                sending_mta_ip,
                receiving_mx_hostname,
                receiving_mx_helo,
                receiving_ip,
                failed_session_count,
                additional_information,
                failure_reason_code,
            } = fd;
            let obj = v.as_object_mut().expect("object");
            for (k, val) in [
                ("result-type", json!(result_type)),
                ("failed-session-count", json!(failed_session_count)),
                ("sending-mta-ip", json!(sending_mta_ip)),
                ("receiving-ip", json!(receiving_ip)),
                ("receiving-mx-hostname", json!(receiving_mx_hostname)),
                ("receiving-mx-helo", json!(receiving_mx_helo)),
                ("additional-information", json!(additional_information)),
                ("failure-reason-code", json!(failure_reason_code)),
            ] {
                obj.insert(k.to_owned(), val);
            }
            write(out, &v)?;
            self.rows += 1;
        }
        Ok(())
    }

    pub fn finish(self) -> io::Result<()> {
        if let Some(mut w) = self.csv {
            w.flush()?;
        }
        if let Some(mut o) = self.out {
            o.flush()?;
        }
        Ok(())
    }
}
