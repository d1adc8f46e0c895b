//! A JSON writer for the report part of a record, for speed on large reports.
//!
//! Guarantee: `write_report` produces exactly the bytes `serde_json::to_writer` would
//! for the same `Report` (same key order, same escaping); tests and the fuzz target
//! compare the two. It exists because serde_json escapes one byte at a time and
//! escapes every key: on a report with 60,000 failure rows that was the largest
//! single cost of a delivery. Here keys are written as the constants they are, and
//! strings are scanned eight bytes at a time.

use serde_json::{Map, Value};

use crate::report::{DateRange, FailureDetail, Policy, PolicyResult, Report, Summary};

const LO: u64 = 0x0101_0101_0101_0101;
const HI: u64 = 0x8080_8080_8080_8080;

/// Does any byte of `w` need escaping: below 0x20, `"` or `\`?
#[inline]
fn word_needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(LO * 0x20) & !w & HI;
    let q = w ^ (LO * u64::from(b'"'));
    let quote = q.wrapping_sub(LO) & !q & HI;
    let b = w ^ (LO * u64::from(b'\\'));
    let backslash = b.wrapping_sub(LO) & !b & HI;
    (below_space | quote | backslash) != 0
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes `s` as a JSON string, escaping as serde_json does.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    // Nearly every string in a report needs no escaping: check eight bytes at a time,
    // then copy it in one go.
    let mut words = b.chunks_exact(8);
    let mut dirty = words.by_ref().any(|w| {
        word_needs_escape(u64::from_le_bytes([
            w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
        ]))
    });
    if !dirty {
        dirty = words
            .remainder()
            .iter()
            .any(|&c| c < 0x20 || c == b'"' || c == b'\\');
    }
    out.reserve(b.len() + 2);
    out.push(b'"');
    if dirty {
        escape_into(out, b);
    } else {
        out.extend_from_slice(b);
    }
    out.push(b'"');
}

fn escape_into(out: &mut Vec<u8>, b: &[u8]) {
    let mut start = 0;
    for (i, &c) in b.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            c if c < 0x20 => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(c >> 4) as usize],
                HEX[(c & 15) as usize],
            ],
            _ => continue,
        };
        out.extend_from_slice(&b[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&b[start..]);
}

/// An object being written: handles the commas.
struct Obj<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl<'a> Obj<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        out.push(b'{');
        Obj { out, first: true }
    }

    /// `key` is a constant that needs no escaping.
    fn key(&mut self, key: &str) -> &mut Vec<u8> {
        if !self.first {
            self.out.push(b',');
        }
        self.first = false;
        self.out.push(b'"');
        self.out.extend_from_slice(key.as_bytes());
        self.out.extend_from_slice(b"\":");
        self.out
    }

    fn str(&mut self, key: &str, v: &Option<String>) {
        if let Some(v) = v {
            string(self.key(key), v);
        }
    }

    fn u64(&mut self, key: &str, v: Option<u64>) {
        if let Some(v) = v {
            let out = self.key(key);
            out.extend_from_slice(v.to_string().as_bytes());
        }
    }

    fn strs(&mut self, key: &str, v: &Option<Vec<String>>) {
        if let Some(v) = v {
            let out = self.key(key);
            out.push(b'[');
            for (i, s) in v.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(out, s);
            }
            out.push(b']');
        }
    }

    fn with(&mut self, key: &str, f: impl FnOnce(&mut Vec<u8>)) {
        f(self.key(key));
    }

    /// Unknown fields, kept as sent: rare, so serde_json writes them.
    fn extra(&mut self, extra: &Map<String, Value>) {
        for (k, v) in extra {
            if !self.first {
                self.out.push(b',');
            }
            self.first = false;
            string(self.out, k);
            self.out.push(b':');
            // Writing a Value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut *self.out, v);
        }
    }

    fn end(self) {
        self.out.push(b'}');
    }
}

fn array<T>(out: &mut Vec<u8>, items: &[T], f: impl Fn(&mut Vec<u8>, &T)) {
    out.push(b'[');
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        f(out, it);
    }
    out.push(b']');
}

fn date_range(out: &mut Vec<u8>, d: &DateRange) {
    let mut o = Obj::new(out);
    o.str("start-datetime", &d.start_datetime);
    o.str("end-datetime", &d.end_datetime);
    o.extra(&d.extra);
    o.end();
}

fn policy(out: &mut Vec<u8>, p: &Policy) {
    let mut o = Obj::new(out);
    if let Some(t) = &p.policy_type {
        string(o.key("policy-type"), t.as_str());
    }
    o.strs("policy-string", &p.policy_string);
    o.str("policy-domain", &p.policy_domain);
    o.strs("mx-host", &p.mx_host);
    o.extra(&p.extra);
    o.end();
}

fn summary(out: &mut Vec<u8>, s: &Summary) {
    let mut o = Obj::new(out);
    o.u64(
        "total-successful-session-count",
        s.total_successful_session_count,
    );
    o.u64("total-failure-session-count", s.total_failure_session_count);
    o.extra(&s.extra);
    o.end();
}

fn failure_detail(out: &mut Vec<u8>, d: &FailureDetail) {
    let mut o = Obj::new(out);
    if let Some(t) = &d.result_type {
        string(o.key("result-type"), t.as_str());
    }
    o.str("sending-mta-ip", &d.sending_mta_ip);
    o.str("receiving-mx-hostname", &d.receiving_mx_hostname);
    o.str("receiving-mx-helo", &d.receiving_mx_helo);
    o.str("receiving-ip", &d.receiving_ip);
    o.u64("failed-session-count", d.failed_session_count);
    o.str("additional-information", &d.additional_information);
    o.str("failure-reason-code", &d.failure_reason_code);
    o.extra(&d.extra);
    o.end();
}

fn policy_result(out: &mut Vec<u8>, p: &PolicyResult) {
    let mut o = Obj::new(out);
    if let Some(pol) = &p.policy {
        o.with("policy", |out| policy(out, pol));
    }
    if let Some(s) = &p.summary {
        o.with("summary", |out| summary(out, s));
    }
    if let Some(d) = &p.failure_details {
        o.with("failure-details", |out| array(out, d, failure_detail));
    }
    o.extra(&p.extra);
    o.end();
}

/// Writes `r` as serde_json would (see the module guarantee).
pub fn write_report(out: &mut Vec<u8>, r: &Report) {
    let mut o = Obj::new(out);
    o.str("organization-name", &r.organization_name);
    if let Some(d) = &r.date_range {
        o.with("date-range", |out| date_range(out, d));
    }
    o.str("contact-info", &r.contact_info);
    o.str("report-id", &r.report_id);
    if let Some(p) = &r.policies {
        o.with("policies", |out| array(out, p, policy_result));
    }
    o.extra(&r.extra);
    o.end();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_write_exactly_as_serde_json_does() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let mut n = 0;
        let mut stack = vec![dir];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "json") {
                    let Ok(parsed) = crate::report::parse(&std::fs::read(&p).unwrap()) else {
                        continue;
                    };
                    let mut ours = Vec::new();
                    write_report(&mut ours, &parsed.report);
                    let theirs = serde_json::to_vec(&parsed.report).unwrap();
                    assert_eq!(ours, theirs, "{}", p.display());
                    // The stored form is stable: parsing it again changes nothing.
                    let again = crate::report::parse(&theirs).expect("stored form parses");
                    assert_eq!(
                        serde_json::to_vec(&again.report).unwrap(),
                        theirs,
                        "{}",
                        p.display()
                    );
                    n += 1;
                }
            }
        }
        assert!(n > 30, "only {n} reports compared");
    }

    #[test]
    fn strings_escape_like_serde_json() {
        let mut all: Vec<String> = (0u8..=127)
            .map(|c| format!("ab{}cdefghij", c as char))
            .collect();
        all.extend(
            [
                "",
                "plain",
                "x\"y\\z",
                "ünïcödé ✓",
                "\u{7f}\u{80}\u{2028}",
                "12345678\n2345678",
            ]
            .map(String::from),
        );
        all.push(
            (0u8..=255)
                .filter_map(|c| char::from_u32(u32::from(c)))
                .collect(),
        );
        for s in all {
            let mut ours = Vec::new();
            string(&mut ours, &s);
            assert_eq!(
                String::from_utf8(ours).unwrap(),
                serde_json::to_string(&s).unwrap(),
                "{s:?}"
            );
        }
    }
}
