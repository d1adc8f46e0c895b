//! Message bytes → report documents: the MIME walk (RFC 8460 §5.3 and every variant in
//! sender-quirks.md).
//!
//! Guarantee: no I/O, no panic, bounded work. "This message holds no TLS report" is an
//! ordinary value ([`Extraction::reports`] empty, [`Extraction::broken`] empty, with a
//! reason), not an error. A part that holds a report but cannot be decoded is listed in
//! `broken` with a reason, so the caller can quarantine the message; the other reports
//! in the same message are still returned.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use serde::Serialize;

use crate::decode::{self, DecodeError, Format};
use crate::limits::Limits;
use crate::report::Warning;

/// Where a report document came from inside the message.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Source {
    /// MIME part number (`1`, `2.1`, ...), `body` for a single-part message or a bare
    /// document on stdin.
    pub part: String,
    #[serde(rename = "content-type", skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// The attachment name as sent: attacker-controlled, never used in a path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    /// Layers removed, outermost first (`gzip`, `zip`, `json`).
    pub encoding: Vec<Format>,
    #[serde(rename = "zip-entry", skip_serializing_if = "Option::is_none")]
    pub zip_entry: Option<String>,
    /// How the report arrived (record schema 2): `mail`, or `https` with the fields below.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transport: Option<&'static str>,
    /// HTTPS: the client address the web server saw (REMOTE_ADDR; a proxy, maybe).
    #[serde(rename = "remote-address", skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    /// HTTPS: the User-Agent header, as sent.
    #[serde(rename = "user-agent", skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

/// One report document (JSON bytes) found in the message.
#[derive(Debug, Clone)]
pub struct ReportDoc {
    pub json: Vec<u8>,
    pub source: Source,
    /// Transport-level deviations (declared gzip holding plain JSON, trailing bytes).
    pub warnings: Vec<Warning>,
}

/// A part that holds (or claims to hold) a report that could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broken {
    pub part: String,
    pub reason: String,
}

/// The message headers a record carries. Values are unfolded; they are
/// attacker-controlled text and are sanitised before any log line.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Headers {
    #[serde(rename = "message-id", skip_serializing_if = "Option::is_none")]
    pub message_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub date: Option<String>,
    #[serde(rename = "tls-report-domain", skip_serializing_if = "Option::is_none")]
    pub tls_report_domain: Option<String>,
    #[serde(
        rename = "tls-report-submitter",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls_report_submitter: Option<String>,
    /// Every `Authentication-Results` header, top (most recent) first (RFC 8601).
    #[serde(skip)]
    pub authentication_results: Vec<String>,
}

/// The outcome of walking one message.
#[derive(Debug, Default)]
pub struct Extraction {
    pub headers: Headers,
    pub reports: Vec<ReportDoc>,
    pub broken: Vec<Broken>,
    /// Why there is no report, when `reports` and `broken` are both empty.
    pub no_report: Option<&'static str>,
}

/// How a part announced itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Claim {
    /// `application/tlsrpt+gzip`, `+json`, `tlsrpt`, `+x-gzip`: must decode or is broken.
    Declared,
    /// A generic container type or a report-like filename: decoded if it sniffs as one.
    Candidate,
}

const DECLARED: &[&str] = &[
    "application/tlsrpt+gzip",
    "application/tlsrpt+json",
    "application/tlsrpt",
    "application/tlsrpt+x-gzip",
];
const GENERIC: &[&str] = &[
    "application/gzip",
    "application/x-gzip",
    "application/json",
    "application/zip",
    "application/x-zip",
    "application/x-zip-compressed",
    "application/octet-stream",
];

fn report_like_name(name: &str) -> bool {
    let n = name.trim().to_ascii_lowercase();
    [".json", ".json.gz", ".gz", ".zip", ".gzip"]
        .iter()
        .any(|e| n.ends_with(e))
}

/// Strips a leading mbox `From ` line (Exim's default `message_prefix`, mbox files).
pub fn strip_mbox_from(b: &[u8]) -> &[u8] {
    if b.starts_with(b"From ") {
        match b.iter().position(|&c| c == b'\n') {
            Some(i) => &b[i + 1..],
            None => &[],
        }
    } else {
        b
    }
}

/// Walks a whole message. `raw` is the message as delivered, LF or CRLF.
pub fn extract(raw: &[u8], limits: &Limits) -> Extraction {
    let raw = strip_mbox_from(raw);
    let mut ex = Extraction::default();
    let Some(msg) = MessageParser::default().parse(raw) else {
        ex.no_report = Some("input is neither a mail message nor a report document");
        return ex;
    };
    ex.headers = headers(&msg);
    let flagged = is_tlsrpt_message(&msg);
    let mut walk = Walk {
        limits,
        flagged,
        ex,
        dmarc: false,
    };
    walk.message(&msg, "", 0);
    let mut ex = walk.ex;
    if ex.reports.is_empty() && ex.broken.is_empty() {
        ex.no_report = Some(if walk.dmarc {
            "DMARC aggregate report, not a TLS report"
        } else if flagged {
            "TLS report headers but no report attachment"
        } else {
            "no TLS report in message"
        });
    }
    ex
}

/// A bare report document on stdin (JSON, gzip or zip; no mail headers): the HTTPS-rua
/// bridge case and `tlsrpt-pipe < report.json.gz`.
pub fn extract_bare(raw: &[u8], limits: &Limits) -> Extraction {
    let mut walk = Walk {
        limits,
        flagged: true,
        ex: Extraction::default(),
        dmarc: false,
    };
    let src = Source {
        part: "body".into(),
        ..Source::default()
    };
    walk.decode(raw, src, Claim::Declared);
    walk.ex
}

fn unfold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for piece in s.split(['\r', '\n']) {
        if piece.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(piece.trim());
    }
    out.trim().to_owned()
}

fn headers(msg: &Message<'_>) -> Headers {
    let raw = |name: &str| msg.header_raw(name).map(unfold).filter(|s| !s.is_empty());
    Headers {
        message_id: raw("Message-ID"),
        from: raw("From"),
        subject: msg.subject().map(unfold).or_else(|| raw("Subject")),
        date: raw("Date"),
        tls_report_domain: raw("TLS-Report-Domain"),
        tls_report_submitter: raw("TLS-Report-Submitter"),
        authentication_results: msg
            .headers_raw()
            .filter(|(n, _)| n.eq_ignore_ascii_case("Authentication-Results"))
            .map(|(_, v)| unfold(v))
            .collect(),
    }
}

/// §5.3: `multipart/report; report-type="tlsrpt"`, or the §3 headers, or the §5.3
/// Subject form. Any one of them makes a broken report part worth quarantining.
fn is_tlsrpt_message(msg: &Message<'_>) -> bool {
    let rt = msg
        .content_type()
        .and_then(|ct| ct.attribute("report-type"))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("tlsrpt"));
    rt || msg.header_raw("TLS-Report-Domain").is_some()
        || msg
            .subject()
            .is_some_and(|s| s.trim_start().starts_with("Report Domain:"))
}

/// RFC 2045 §6.8 base64, ignoring whitespace; `None` on any other character.
fn decode_base64(text: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &c in text {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

struct Walk<'l> {
    limits: &'l Limits,
    flagged: bool,
    ex: Extraction,
    dmarc: bool,
}

fn content_type_of<'x>(part: &impl MimeHeaders<'x>) -> Option<String> {
    part.content_type().map(|ct| match ct.subtype() {
        Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
        None => ct.ctype().to_ascii_lowercase(),
    })
}

fn child_path(prefix: &str, i: usize) -> String {
    if prefix.is_empty() {
        (i + 1).to_string()
    } else {
        format!("{prefix}.{}", i + 1)
    }
}

impl Walk<'_> {
    fn message(&mut self, msg: &Message<'_>, prefix: &str, depth: usize) {
        let Some(root) = msg.parts.first() else {
            return;
        };
        match &root.body {
            PartType::Multipart(children) => self.multipart(msg, children, prefix, depth),
            _ => {
                let path = if prefix.is_empty() {
                    "body".to_owned()
                } else {
                    prefix.to_owned()
                };
                self.leaf(msg, 0, path, true);
            }
        }
    }

    fn multipart(&mut self, msg: &Message<'_>, children: &[u32], prefix: &str, depth: usize) {
        if depth >= self.limits.max_depth {
            self.ex.broken.push(Broken {
                part: if prefix.is_empty() {
                    "body".into()
                } else {
                    prefix.into()
                },
                reason: format!("MIME nesting deeper than {} levels", self.limits.max_depth),
            });
            return;
        }
        for (i, &id) in children.iter().enumerate() {
            let path = child_path(prefix, i);
            let Some(part) = msg.parts.get(id as usize) else {
                continue;
            };
            match &part.body {
                PartType::Multipart(grand) => self.multipart(msg, grand, &path, depth + 1),
                // A report forwarded as message/rfc822: walk the inner message.
                PartType::Message(inner) => {
                    if depth + 1 >= self.limits.max_depth {
                        self.ex.broken.push(Broken {
                            part: path,
                            reason: format!(
                                "MIME nesting deeper than {} levels",
                                self.limits.max_depth
                            ),
                        });
                    } else {
                        self.message(inner, &path, depth + 1)
                    }
                }
                _ => self.leaf(msg, id as usize, path, false),
            }
        }
    }

    fn leaf(&mut self, msg: &Message<'_>, id: usize, path: String, single: bool) {
        let Some(part) = msg.parts.get(id) else {
            return;
        };
        // Mail.ru's missing close delimiter shows up as an extra empty part.
        if part.contents().iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let ct = content_type_of(part);
        let filename = part.attachment_name().map(|n| n.trim().to_owned());
        let ct_str = ct.as_deref().unwrap_or("text/plain");
        let claim = if DECLARED.contains(&ct_str) {
            Some(Claim::Declared)
        } else if GENERIC.contains(&ct_str)
            || filename.as_deref().is_some_and(report_like_name)
            || single
        {
            Some(Claim::Candidate)
        } else {
            None
        };
        let Some(claim) = claim else {
            if ct_str.contains("xml") {
                self.dmarc = true;
            }
            return;
        };
        let src = Source {
            part: path,
            content_type: ct,
            filename,
            ..Source::default()
        };
        // Without a closing boundary mail-parser hands back the last part still
        // base64-encoded: decode it here rather than lose the report.
        let cte_b64 = part
            .content_transfer_encoding()
            .is_some_and(|c| c.trim().eq_ignore_ascii_case("base64"));
        if cte_b64 && decode::sniff(part.contents()).is_none() {
            if let Some(bytes) = decode_base64(part.contents()) {
                self.decode(&bytes, src, claim);
                return;
            }
        }
        self.decode(part.contents(), src, claim);
    }

    fn broken(&mut self, part: &str, claim: Claim, reason: String) {
        if claim == Claim::Declared || self.flagged {
            self.ex.broken.push(Broken {
                part: part.to_owned(),
                reason,
            });
        }
    }

    fn push(&mut self, json: Vec<u8>, src: Source, warnings: Vec<Warning>, claim: Claim) {
        // A generic attachment in an unflagged message counts only if it looks like a
        // report (§4.4 "policies"): an ordinary JSON attachment is not a TLS report.
        let looks = claim == Claim::Declared
            || self.flagged
            || memchr::memmem::find(&json, b"\"policies\"").is_some();
        if !looks {
            return;
        }
        if self.ex.reports.len() >= self.limits.max_reports {
            let limit = self.limits.max_reports;
            self.broken(
                &src.part,
                Claim::Declared,
                DecodeError::TooManyEntries { limit }.to_string(),
            );
            return;
        }
        self.ex.reports.push(ReportDoc {
            json,
            source: src,
            warnings,
        });
    }

    fn decode(&mut self, bytes: &[u8], mut src: Source, claim: Claim) {
        let limit = self.limits.max_report_size;
        let mut warnings = Vec::new();
        let declared_gzip = src
            .content_type
            .as_deref()
            .is_some_and(|c| c.ends_with("gzip"));
        match decode::sniff(bytes) {
            Some(Format::Json) => {
                if declared_gzip {
                    warnings.push(Warning::new("declared-gzip-holds-json", &src.part, ""));
                }
                if bytes.len() as u64 > limit {
                    self.broken(
                        &src.part,
                        claim,
                        DecodeError::TooLarge { limit }.to_string(),
                    );
                    return;
                }
                src.encoding.push(Format::Json);
                self.push(bytes.to_vec(), src, warnings, claim);
            }
            Some(Format::Gzip) => match decode::gunzip(bytes, limit) {
                Ok(g) => {
                    src.encoding.push(Format::Gzip);
                    if g.trailing > 0 {
                        warnings.push(Warning::new(
                            "gzip-trailing-bytes",
                            &src.part,
                            format!("{} byte(s) after the gzip data ignored", g.trailing),
                        ));
                    }
                    match decode::sniff(&g.data) {
                        Some(Format::Json) => {
                            src.encoding.push(Format::Json);
                            self.push(g.data, src, warnings, claim)
                        }
                        _ => self.not_json(&g.data, &src.part, claim),
                    }
                }
                Err(e) => self.broken(&src.part, claim, e.to_string()),
            },
            Some(Format::Zip) => match decode::unzip(bytes, limit, self.limits.max_reports) {
                Ok(entries) => {
                    for e in entries {
                        let mut s = src.clone();
                        s.encoding.push(Format::Zip);
                        s.zip_entry = Some(e.name);
                        let data = match decode::sniff(&e.data) {
                            Some(Format::Gzip) => match decode::gunzip(&e.data, limit) {
                                Ok(g) => {
                                    s.encoding.push(Format::Gzip);
                                    g.data
                                }
                                Err(err) => {
                                    self.broken(&s.part, claim, err.to_string());
                                    continue;
                                }
                            },
                            _ => e.data,
                        };
                        if decode::sniff(&data) == Some(Format::Json) {
                            s.encoding.push(Format::Json);
                            self.push(data, s, warnings.clone(), claim);
                        } else {
                            self.not_json(&data, &s.part, claim);
                        }
                    }
                }
                Err(e) => self.broken(&src.part, claim, e.to_string()),
            },
            None => self.not_json(bytes, &src.part, claim),
        }
    }

    fn not_json(&mut self, data: &[u8], part: &str, claim: Claim) {
        let head = &data[..data.len().min(512)];
        if head.windows(5).any(|w| w == b"<?xml") || head.windows(9).any(|w| w == b"<feedback") {
            self.dmarc = true;
            return;
        }
        if claim == Claim::Declared {
            self.broken(part, claim, "content is neither JSON, gzip nor zip".into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_fallback() {
        assert_eq!(
            decode_base64(b"aGVs\r\nbG8=").as_deref(),
            Some(&b"hello"[..])
        );
        assert_eq!(decode_base64(b"aGVsbA"), Some(b"hell".to_vec()));
        assert_eq!(decode_base64(b"not base64!"), None);
    }
}
