//! Reports → spool records: one JSON line per report, schema version 3.
//!
//! A record is the normalised report under `"report"` (RFC 8460 field names, unknown
//! fields kept), plus what an operator needs around it: when and how it arrived, the
//! message headers, where in the message it was found, totals, a duplicate key and the
//! warnings. `schema/record.schema.json` describes it; bump `RECORD_VERSION` on any
//! incompatible change.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::auth::Verdict;
use crate::message::{Headers, Source};
use crate::report::{Report, Totals, Warning};

/// 2: `source.transport` (`mail` or `https`), and for HTTPS `source.remote-address` and
/// `source.user-agent` (the request's Content-Type is `source.content-type`).
/// 3: `authentication.headers`, every A-R header's DKIM results (crate::auth::ArHeader).
pub const RECORD_VERSION: u32 = 3;

/// Envelope data the MTA passed on the command line or in the environment. Values are
/// kept as given, including empty strings (Postfix expands absent macros to "").
#[derive(Debug, Clone, Default, Serialize)]
pub struct Envelope {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sender: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    #[serde(rename = "original-recipient", skip_serializing_if = "Option::is_none")]
    pub original_recipient: Option<String>,
    #[serde(rename = "queue-id", skip_serializing_if = "Option::is_none")]
    pub queue_id: Option<String>,
    #[serde(rename = "client-address", skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<String>,
}

/// Field order is the line's order; `report` is written last, by `json::write_report`.
#[derive(Debug, Serialize)]
pub struct Record<'a> {
    pub version: u32,
    #[serde(rename = "received-at")]
    pub received_at: &'a str,
    #[serde(rename = "dedup-key")]
    pub dedup_key: &'a str,
    pub envelope: &'a Envelope,
    pub headers: &'a Headers,
    pub authentication: &'a Verdict,
    pub source: &'a Source,
    pub totals: Totals,
    pub warnings: &'a [Warning],
    #[serde(skip)]
    pub report: &'a Report,
}

/// §5.3: duplicates are identified by (organization-name, report-id). Without a
/// report-id, the normalised content is the identity. SHA-256, so that a sender
/// cannot craft a key that collides with another sender's report and suppresses it.
pub fn dedup_key(report: &Report) -> String {
    let mut h = Sha256::new();
    match &report.report_id {
        Some(id) => {
            h.update(b"tlsrpt-pipe/1 org+id\0");
            h.update(report.organization_name.as_deref().unwrap_or("").as_bytes());
            h.update(b"\0");
            h.update(id.as_bytes());
        }
        None => {
            h.update(b"tlsrpt-pipe/1 content\0");
            h.update(serde_json::to_vec(report).unwrap_or_default());
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One JSON line, `\n`-terminated. Both writers escape every control character, so a
/// record can never contain a raw newline. `out` is an empty buffer to write into; its
/// capacity is reused.
pub fn encode(r: &Record<'_>, mut out: Vec<u8>) -> serde_json::Result<Vec<u8>> {
    out.clear();
    // The record is the report plus a few kilobytes of metadata.
    out.reserve(out.capacity() / 8 + 4096);
    serde_json::to_writer(&mut out, r)?;
    // Replace the closing brace: the report goes last, written by the fast writer.
    out.pop();
    out.extend_from_slice(b",\"report\":");
    crate::json::write_report(&mut out, r.report);
    out.extend_from_slice(b"}\n");
    Ok(out)
}
