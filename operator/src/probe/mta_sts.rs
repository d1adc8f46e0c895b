//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy file, and which MX hosts a
//! policy covers (pure; the fetch is `https`'s).
//!
//! ```text
//! sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]   ; §3.1
//! sts-version     = %s"v=STSv1"
//! sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
//! policy          = lines "key: value", CRLF (LF tolerated by real senders)        ; §3.2
//!   version: STSv1   mode: enforce | testing | none   max_age: 0..31557600   mx: pattern
//! ```
//!
//! Findings use RFC 8460's result types where a sender would report the problem
//! (`sts-policy-invalid`, `sts-policy-fetch-error` is the fetcher's) and codes of their own
//! for the rest. Unknown record fields and policy keys are allowed (ignored, as senders do).

use serde::Serialize;

use crate::txt_record::{Finding, Severity, finding};

/// The policy's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Enforce,
    Testing,
    None,
}

/// A policy as senders read it.
#[derive(Debug, Clone, Serialize)]
pub struct Policy {
    pub mode: Option<Mode>,
    #[serde(rename = "max-age")]
    pub max_age: Option<u64>,
    pub mx: Vec<String>,
    /// The policy text as fetched (for comparison with a report's `policy-string`).
    #[serde(skip)]
    pub lines: Vec<String>,
}

/// The id of the one usable `v=STSv1` record among a TXT RRset, with findings.
pub fn check_record(txts: &[String]) -> (Option<String>, Vec<Finding>) {
    let mut f = Vec::new();
    let sts: Vec<&String> = txts.iter().filter(|t| t.starts_with("v=STSv1")).collect();
    let near: Vec<&String> = txts
        .iter()
        .filter(|t| {
            !t.starts_with("v=STSv1")
                && t.trim()
                    .to_ascii_lowercase()
                    .replace(' ', "")
                    .starts_with("v=stsv1")
        })
        .collect();
    for t in &near {
        f.push(finding(
            "sts-record-invalid",
            Severity::Error,
            format!("{:?} is not read as an MTA-STS record: it must begin exactly with \"v=STSv1;\" (case and spacing matter)", super::shown(t, 120)),
        ));
    }
    match sts.len() {
        0 => return (None, f),
        1 => {}
        n => {
            f.push(finding(
                "sts-record-invalid",
                Severity::Error,
                format!("{n} MTA-STS records at _mta-sts: senders then see no policy at all (RFC 8461 §3.1); keep one"),
            ));
            return (None, f);
        }
    }
    let rec = sts[0];
    let mut id = None;
    let rest = &rec["v=STSv1".len()..];
    if !rest.is_empty() && !rest.trim_start().starts_with(';') {
        f.push(finding(
            "sts-record-invalid",
            Severity::Error,
            format!(
                "{:?}: the version must be followed by \";\"",
                super::shown(rec, 120)
            ),
        ));
        return (None, f);
    }
    for field in rest
        .split(';')
        .map(|x| x.trim_matches([' ', '\t']))
        .filter(|x| !x.is_empty())
    {
        match field.split_once('=') {
            Some(("id", v)) => {
                if id.is_some() {
                    f.push(finding(
                        "sts-record-invalid",
                        Severity::Warning,
                        "two id= fields; keep one",
                    ));
                } else if !v.is_empty()
                    && v.len() <= 32
                    && v.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    id = Some(v.to_owned());
                } else {
                    f.push(finding(
                        "sts-record-invalid",
                        Severity::Error,
                        format!("id={:?}: the id must be 1 to 32 letters or digits (RFC 8461 §3.1); senders ignore this record", super::shown(v, 60)),
                    ));
                    return (None, f);
                }
            }
            Some((k, _)) if k.trim() != k || k.is_empty() => {
                f.push(finding(
                    "sts-record-invalid",
                    Severity::Error,
                    format!("{:?}: no spaces around \"=\"", super::shown(field, 60)),
                ));
                return (None, f);
            }
            Some(_) => {}
            None => {
                f.push(finding(
                    "sts-record-invalid",
                    Severity::Error,
                    format!("{:?} is not a key=value field", super::shown(field, 60)),
                ));
                return (None, f);
            }
        }
    }
    if id.is_none() {
        f.push(finding(
            "sts-record-invalid",
            Severity::Error,
            "the MTA-STS record has no id= field: senders ignore it; add id=YYYYMMDDHHMMSS and change it whenever the policy changes",
        ));
    }
    (id, f)
}

/// Parses a fetched policy body (§3.2). `content_type`: the response's.
pub fn parse_policy(body: &[u8], content_type: Option<&str>) -> (Policy, Vec<Finding>) {
    let mut f = Vec::new();
    let invalid =
        |f: &mut Vec<Finding>, m: String| f.push(finding("sts-policy-invalid", Severity::Error, m));
    let mut p = Policy {
        mode: None,
        max_age: None,
        mx: Vec::new(),
        lines: Vec::new(),
    };
    match content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()) {
        Some(t) if t == "text/plain" => {}
        Some(t) => invalid(&mut f, format!("the policy is served as {t:?}, not text/plain (RFC 8461 §3.2): senders reject it; fix the web server's type for /.well-known/mta-sts.txt")),
        None => invalid(&mut f, "the policy is served without a Content-Type: senders require text/plain (RFC 8461 §3.2)".into()),
    }
    let Ok(text) = std::str::from_utf8(body) else {
        invalid(&mut f, "the policy is not text (not UTF-8)".into());
        return (p, f);
    };
    if !text.is_ascii() {
        f.push(finding(
            "sts-policy-non-ascii",
            Severity::Warning,
            "the policy holds non-ASCII characters; keep it ASCII",
        ));
    }
    let crlf = text.contains("\r\n");
    let bare_lf = text.replace("\r\n", "").contains('\n');
    if bare_lf {
        f.push(finding(
            "sts-policy-lf",
            Severity::Warning,
            if crlf {
                "the policy mixes CRLF and LF line ends; RFC 8461 says CRLF (most senders accept LF)"
            } else {
                "the policy's lines end in LF, not CRLF as RFC 8461 §3.2 says; most senders accept it, strict ones may not"
            },
        ));
    }
    let mut seen: Vec<&str> = Vec::new();
    let mut version = None;
    for raw in text.split('\n') {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        p.lines.push(line.to_owned());
        let Some((k, v)) = line.split_once(':') else {
            invalid(
                &mut f,
                format!("{:?} is not a \"key: value\" line", super::shown(line, 80)),
            );
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k != "mx" && seen.contains(&k) {
            f.push(finding(
                "sts-policy-duplicate-key",
                Severity::Warning,
                format!("{k:?} appears twice; senders use the first: remove the other"),
            ));
            continue;
        }
        seen.push(k);
        match k {
            "version" => version = Some(v.to_owned()),
            "mode" => {
                p.mode = match v {
                    "enforce" => Some(Mode::Enforce),
                    "testing" => Some(Mode::Testing),
                    "none" => Some(Mode::None),
                    _ => {
                        invalid(
                            &mut f,
                            format!(
                                "mode {:?}: must be enforce, testing or none",
                                super::shown(v, 40)
                            ),
                        );
                        None
                    }
                }
            }
            "max_age" => {
                if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) {
                    let n: u64 = v.parse().expect("digits");
                    if n > 31_557_600 {
                        invalid(
                            &mut f,
                            format!("max_age {n} is over the maximum 31557600 (one year)"),
                        );
                    } else {
                        p.max_age = Some(n);
                    }
                } else {
                    invalid(
                        &mut f,
                        format!(
                            "max_age {:?}: must be a number of seconds",
                            super::shown(v, 40)
                        ),
                    );
                }
            }
            "mx" => {
                let pat = v.to_ascii_lowercase();
                if valid_pattern(&pat) {
                    p.mx.push(pat);
                } else {
                    invalid(
                        &mut f,
                        format!(
                            "mx {:?} is not a host name or *.domain pattern",
                            super::shown(v, 80)
                        ),
                    );
                }
            }
            other => f.push(finding(
                "sts-policy-unknown-key",
                Severity::Info,
                format!(
                    "{:?} is not an RFC 8461 key; senders ignore it",
                    super::shown(other, 40)
                ),
            )),
        }
    }
    match version.as_deref() {
        Some("STSv1") => {}
        Some(v) => invalid(
            &mut f,
            format!("version {:?}: must be STSv1", super::shown(v, 40)),
        ),
        None => invalid(&mut f, "no \"version: STSv1\" line".into()),
    }
    match (p.mode, p.max_age) {
        (None, _) if !seen.contains(&"mode") => {
            invalid(&mut f, "no mode line (enforce, testing or none)".into())
        }
        (_, None) if !seen.contains(&"max_age") => invalid(&mut f, "no max_age line".into()),
        _ => {}
    }
    if matches!(p.mode, Some(Mode::Enforce | Mode::Testing)) && p.mx.is_empty() {
        invalid(&mut f, "no mx line: in enforce or testing mode the policy must name the MX hosts (mx: mail.example.com)".into());
    }
    if let Some(age) = p.max_age {
        if age < 86_400 {
            f.push(finding(
                "sts-max-age-short",
                Severity::Warning,
                format!("max_age {age} is under one day: senders refetch constantly and some ignore such policies; use 604800 (a week) or more"),
            ));
        } else if p.mode == Some(Mode::Enforce) && age < 604_800 {
            f.push(finding(
                "sts-max-age-short",
                Severity::Info,
                format!("max_age {age} is under a week for an enforce policy; RFC 8461 suggests weeks (604800 or more) so that an attacker cannot wait it out"),
            ));
        }
    }
    (p, f)
}

fn valid_pattern(p: &str) -> bool {
    let host = p.strip_prefix("*.").unwrap_or(p);
    host.contains('.')
        && host.len() <= 253
        && host.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// Does any `mx:` pattern match `host` (§4.1: exact, or `*.` for one leftmost label)?
pub fn covers(patterns: &[String], host: &str) -> Option<String> {
    patterns
        .iter()
        .find(|p| super::cert::name_matches(p, host))
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|x| x.code).collect()
    }

    #[test]
    fn records() {
        assert_eq!(
            check_record(&["v=STSv1; id=20240101T000000".into()])
                .0
                .as_deref(),
            Some("20240101T000000")
        );
        let (id, f) = check_record(&["v=STSv1; id=20240101000000Z".into(), "v=spf1 -all".into()]);
        assert_eq!((id.as_deref(), f.len()), (Some("20240101000000Z"), 0));
        let (id, f) = check_record(&["v=STSv1; id=1".into(), "v=STSv1; id=2".into()]);
        assert_eq!((id, codes(&f)), (None, vec!["sts-record-invalid"]));
        let (id, f) = check_record(&["v=STSv1;".into()]);
        assert_eq!((id, codes(&f)), (None, vec!["sts-record-invalid"]));
        let (id, f) = check_record(&["v=STSv1; id=a-b".into()]);
        assert_eq!((id, codes(&f)), (None, vec!["sts-record-invalid"]));
        let (id, f) = check_record(&["v=STSv1; id=x1; ext=whatever".into()]);
        assert_eq!(
            (id.as_deref(), f.len()),
            (Some("x1"), 0),
            "unknown fields are ignored"
        );
        let (id, f) = check_record(&["V=STSv1; id=1".into()]);
        assert_eq!((id, codes(&f)), (None, vec!["sts-record-invalid"]));
        assert_eq!(check_record(&["v=spf1".into()]).0, None);
    }

    #[test]
    fn policies() {
        let good = b"version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.mx.example.com\r\nmax_age: 604800\r\n";
        let (p, f) = parse_policy(good, Some("text/plain; charset=utf-8"));
        assert!(f.is_empty(), "{f:?}");
        assert_eq!(
            (p.mode, p.max_age, p.mx.len()),
            (Some(Mode::Enforce), Some(604800), 2)
        );
        let (_, f) = parse_policy(
            &good
                .iter()
                .copied()
                .filter(|&b| b != b'\r')
                .collect::<Vec<_>>(),
            Some("text/plain"),
        );
        assert_eq!(codes(&f), vec!["sts-policy-lf"]);
        let (_, f) = parse_policy(good, Some("text/html"));
        assert_eq!(codes(&f), vec!["sts-policy-invalid"]);
        let (_, f) = parse_policy(
            b"version: STSv1\r\nmode: enforce\r\nmax_age: 604800\r\n",
            Some("text/plain"),
        );
        assert_eq!(codes(&f), vec!["sts-policy-invalid"]);
        let (_, f) = parse_policy(
            b"version: STSv2\r\nmode: strict\r\nmx: a.example\r\nmax_age: 99999999999\r\n",
            Some("text/plain"),
        );
        assert_eq!(codes(&f), vec!["sts-policy-invalid"; 3]);
        let (p, f) = parse_policy(
            b"version: STSv1\r\nmode: none\r\nmax_age: 3600\r\nfoo: bar\r\n",
            Some("text/plain"),
        );
        assert_eq!(
            (p.mode, codes(&f)),
            (
                Some(Mode::None),
                vec!["sts-policy-unknown-key", "sts-max-age-short"]
            )
        );
        let (_, f) = parse_policy(b"<html>nope</html>", Some("text/plain"));
        assert!(
            codes(&f).iter().all(|c| *c == "sts-policy-invalid") && f.len() >= 3,
            "{f:?}"
        );
    }

    #[test]
    fn coverage() {
        let pats = vec![
            "mx1.example.com".to_owned(),
            "*.relay.example.com".to_owned(),
        ];
        assert!(covers(&pats, "MX1.example.com.").is_some());
        assert!(covers(&pats, "a.relay.example.com").is_some());
        assert!(covers(&pats, "relay.example.com").is_none());
        assert!(covers(&pats, "a.b.relay.example.com").is_none());
        assert!(covers(&pats, "mx2.example.com").is_none());
    }
}
