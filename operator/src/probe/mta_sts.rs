//! MTA-STS (RFC 8461): the `_mta-sts` TXT record, the policy file, and which MX hosts a
//! policy covers (pure; the fetch is `https`'s).
//!
//! Both are parsed by their ABNF exactly ([`parse_record`], [`parse_policy`]), as the
//! strictest sender (mox) reads them: a record or policy that breaks the grammar is
//! dropped whole by such senders, who then deliver with opportunistic TLS (RFC 8461
//! §3.1, §3.2: "senders MUST assume the recipient domain does not have an available
//! MTA-STS Policy"), so each violation is an error of its own that says which rule and
//! how to fix it. What the RFC allows but some sender mishandles is a warning (a space
//! before the first ";", a repeated field, other TXT records at `_mta-sts`); where the RFC
//! says "ignore" (unknown fields, repeated fields after the first) the entry is named and
//! ignored. Where the RFC and the senders part, the RFC decides (see README, MTA-STS).

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

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Testing => "testing",
            Mode::None => "none",
        }
    }

    /// How much it protects: enforce 2, testing 1, none 0.
    pub fn rank(self) -> u8 {
        match self {
            Mode::Enforce => 2,
            Mode::Testing => 1,
            Mode::None => 0,
        }
    }
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

/// What strict senders do with a record or policy that breaks the grammar.
const DROPPED_RECORD: &str = "strict senders (mox) ignore the record, so they see no MTA-STS policy and deliver with opportunistic TLS (RFC 8461 §3.1)";
const DROPPED_POLICY: &str = "strict senders (mox, Postfix's MTA-STS resolver) ignore the whole policy and deliver with opportunistic TLS (RFC 8461 §3.2)";

fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// `(ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")`: the extension names of the
/// record (`sts-ext-name`) and of the policy (`sts-policy-ext-name`).
fn ext_name_ok(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b.len() <= 32
        && b[0].is_ascii_alphanumeric()
        && b[1..]
            .iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.'))
}

/// The result of one `_mta-sts` record's parse (§3.1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// The policy id (the first `id=` field).
    pub id: Option<String>,
    /// Violations (errors) and interop traps (warnings), each its own finding.
    pub findings: Vec<Finding>,
}

impl Record {
    /// Strict senders use the record.
    pub fn valid(&self) -> bool {
        self.id.is_some() && !self.findings.iter().any(|f| f.severity == Severity::Error)
    }
}

/// Parses one `_mta-sts` TXT record (its strings joined without separators) by RFC 8461
/// §3.1's ABNF, exactly:
///
/// ```text
/// sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
/// sts-field       = sts-id / sts-extension
/// sts-field-delim = *WSP ";" *WSP
/// sts-version     = %s"v=STSv1"
/// sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
/// sts-extension   = sts-ext-name "=" sts-ext-value
/// sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
/// sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)
/// ```
///
/// Every violation is its own finding (the parse goes on after one, to name them all).
/// A field named `id` must be an `sts-id` (a field named by the RFC obeys its rule, as
/// mox reads it); a second `id` is ignored (§3.2, last paragraph: the first counts), with
/// a warning, since mox rejects such a record.
pub fn parse_record(txt: &str) -> Record {
    let mut r = Record::default();
    let f = &mut r.findings;
    let err = |f: &mut Vec<Finding>, code: &'static str, m: String| {
        f.push(finding(
            code,
            Severity::Error,
            format!("{m}: {DROPPED_RECORD}"),
        ))
    };
    let shown = |s: &str| super::shown(s, 80);
    if !txt.is_ascii() || txt.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        err(
            f,
            "sts-record-characters",
            format!(
                "{:?} holds characters that are not printable US-ASCII (the record MUST be US-ASCII; no line breaks)",
                shown(txt)
            ),
        );
        return r;
    }
    let Some(mut rest) = txt.strip_prefix("v=STSv1") else {
        err(
            f,
            "sts-record-version",
            format!(
                "{:?} does not begin with exactly \"v=STSv1\" (case and spacing matter; nothing may come before it)",
                shown(txt)
            ),
        );
        return r;
    };
    let b = rest.as_bytes();
    if !b.is_empty() && !is_wsp(b[0]) && b[0] != b';' {
        err(
            f,
            "sts-record-version",
            format!(
                "{:?}: the version \"v=STSv1\" must be followed by \";\"",
                shown(txt)
            ),
        );
        return r;
    }
    let mut fields = 0;
    let mut first_delim = true;
    loop {
        // sts-field-delim = *WSP ";" *WSP
        let lead = rest.len() - rest.trim_start_matches([' ', '\t']).len();
        let after_wsp = &rest[lead..];
        if after_wsp.is_empty() {
            if lead > 0 {
                err(
                    f,
                    "sts-record-trailing-space",
                    "the record ends in spaces without a \";\" (only a delimiter, \"; \", may end it); remove them".into(),
                );
            }
            break;
        }
        let Some(after_semi) = after_wsp.strip_prefix(';') else {
            err(
                f,
                "sts-record-delimiter",
                format!(
                    "{:?}: fields must be separated by \";\" (a space inside a value, or two fields without \";\")",
                    shown(after_wsp)
                ),
            );
            return r;
        };
        if first_delim && lead > 0 {
            f.push(finding(
                "sts-record-space-before-semicolon",
                Severity::Warning,
                "a space between \"v=STSv1\" and \";\": allowed by RFC 8461's grammar, but a sender finding more than one TXT record keeps only those beginning with exactly \"v=STSv1;\" (and chasquid never reads it); write \"v=STSv1;\"",
            ));
        }
        first_delim = false;
        let field_start = after_semi.trim_start_matches([' ', '\t']);
        if field_start.is_empty() {
            // [sts-field-delim]: one delimiter may end the record, after a field.
            if fields == 0 {
                err(
                    f,
                    "sts-record-no-id",
                    "the record has no field after the version".into(),
                );
            }
            break;
        }
        if field_start.starts_with(';') {
            err(
                f,
                "sts-record-delimiter",
                "two \";\" in a row (an empty field): only one delimiter may separate fields or end the record; remove the extra \";\"".into(),
            );
            // Skip the empty field and go on.
            rest = field_start;
            continue;
        }
        // The field runs to the next WSP or ";".
        let end = field_start
            .find([' ', '\t', ';'])
            .unwrap_or(field_start.len());
        let field = &field_start[..end];
        rest = &field_start[end..];
        fields += 1;
        let Some((name, value)) = field.split_once('=') else {
            let next_is_eq = rest.trim_start_matches([' ', '\t']).starts_with('=');
            err(
                f,
                if next_is_eq {
                    "sts-record-space"
                } else {
                    "sts-record-field"
                },
                if next_is_eq {
                    format!("{:?}: no spaces around \"=\"", shown(field))
                } else {
                    format!("{:?} is not a name=value field", shown(field))
                },
            );
            continue;
        };
        if value.is_empty() && rest.starts_with([' ', '\t']) {
            err(
                f,
                "sts-record-space",
                format!("{:?}: no spaces around \"=\"", shown(field)),
            );
            continue;
        }
        if name == "id" {
            if value.is_empty()
                || value.len() > 32
                || !value.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                err(
                    f,
                    "sts-record-id",
                    format!(
                        "id={:?}: the id must be 1 to 32 letters or digits (sts-id); use a time stamp like 20260101T120000",
                        shown(value)
                    ),
                );
            } else if r.id.is_some() {
                f.push(finding(
                    "sts-record-duplicate-id",
                    Severity::Warning,
                    format!("a second id=, {value:?}: RFC 8461 §3.2 says the first counts and the others are ignored, but mox rejects the whole record; keep one id"),
                ));
            } else {
                r.id = Some(value.to_owned());
            }
            continue;
        }
        if !ext_name_ok(name) {
            err(
                f,
                "sts-record-extension-name",
                format!(
                    "{:?} is not a valid field name (a letter or digit, then up to 31 letters, digits, \"_\", \"-\" or \".\"; sts-ext-name)",
                    shown(name)
                ),
            );
            continue;
        }
        if value.is_empty()
            || !value
                .bytes()
                .all(|b| matches!(b, 0x21..=0x3A | 0x3C | 0x3E..=0x7E))
        {
            err(
                f,
                "sts-record-extension-value",
                format!(
                    "{:?}: an extension value must be non-empty printable ASCII without spaces, \"=\" or \";\" (sts-ext-value)",
                    shown(field)
                ),
            );
            continue;
        }
        f.push(finding(
            "sts-record-unknown-field",
            Severity::Info,
            format!(
                "{:?} is not a field of RFC 8461; senders ignore it",
                shown(name)
            ),
        ));
    }
    if r.id.is_none() && !f.iter().any(|x| x.code == "sts-record-id") {
        err(
            f,
            "sts-record-no-id",
            "the record has no id= field; add id=YYYYMMDDTHHMMSS and change it whenever the policy changes".into(),
        );
    }
    if !r.valid() {
        r.id = None;
    }
    r
}

/// The id of the one usable `v=STSv1` record among a TXT RRset, with findings.
///
/// §3.1: records that do not begin with "v=STSv1;" are discarded when there are
/// several; if the number left is not one, or that one is invalid, senders assume the
/// domain has no policy.
pub fn check_record(txts: &[String]) -> (Option<String>, Vec<Finding>) {
    let mut f = Vec::new();
    let looks_sts = |t: &str| {
        t.trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect::<String>()
            .starts_with("v=stsv1")
    };
    let candidates: Vec<&String> = if txts.len() > 1 {
        let kept: Vec<&String> = txts.iter().filter(|t| t.starts_with("v=STSv1;")).collect();
        for t in txts
            .iter()
            .filter(|t| !t.starts_with("v=STSv1;") && looks_sts(t))
        {
            f.push(finding(
                "sts-record-version",
                Severity::Error,
                format!("{:?} is discarded: with several TXT records at _mta-sts, senders keep only those beginning with exactly \"v=STSv1;\" (RFC 8461 §3.1)", super::shown(t, 120)),
            ));
        }
        if !kept.is_empty() && txts.len() > kept.len() {
            f.push(finding(
                "sts-record-other-txt",
                Severity::Warning,
                "other TXT records beside the MTA-STS record at _mta-sts: RFC 8461 discards them, but some senders (go-mtasts, used by maddy) then see no policy; keep _mta-sts for the one record",
            ));
        }
        kept
    } else {
        txts.iter().filter(|t| looks_sts(t)).collect()
    };
    match candidates.len() {
        0 => (None, f),
        1 => {
            let r = parse_record(candidates[0]);
            f.extend(r.findings.iter().cloned());
            (r.id.clone(), f)
        }
        n => {
            f.push(finding(
                "sts-record-multiple",
                Severity::Error,
                format!("{n} MTA-STS records at _mta-sts: senders then see no policy at all (RFC 8461 §3.1); keep one"),
            ));
            (None, f)
        }
    }
}

/// Most bytes of a policy senders read (RFC 8461 §3.3 suggests 64 KiB).
pub const MAX_POLICY: usize = 64 * 1024;

/// `["*."] Domain` (RFC 5321 §4.1.2): labels of letters, digits and hyphens, neither
/// starting nor ending with a hyphen, no trailing dot; `*` only as the whole leftmost
/// label. A-labels only (§3.2: not U-labels).
fn pattern_ok(p: &str) -> bool {
    let host = p.strip_prefix("*.").unwrap_or(p);
    !host.is_empty()
        && host.split('.').all(|l| {
            let b = l.as_bytes();
            !b.is_empty()
                && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
                && b[0].is_ascii_alphanumeric()
                && b[b.len() - 1].is_ascii_alphanumeric()
        })
}

/// `sts-policy-ext-value = sts-policy-vchar [*(%x20 / sts-policy-vchar) sts-policy-vchar]`:
/// printable ASCII or UTF-8 beyond ASCII, single spaces inside, no control characters
/// (no TAB, CR, NUL, DEL), not empty.
fn policy_ext_value_ok(v: &str) -> bool {
    !v.is_empty()
        && !v.starts_with(' ')
        && !v.ends_with(' ')
        && v.chars()
            .all(|c| c == ' ' || ('\u{21}'..='\u{7e}').contains(&c) || c as u32 >= 0x80)
}

/// Parses a fetched policy body by RFC 8461 §3.2's ABNF, exactly. `content_type`: the
/// response's.
///
/// ```text
/// sts-policy-record      = sts-policy-field *WSP *(sts-policy-term sts-policy-field *WSP)
///                          [sts-policy-term]
/// sts-policy-field       = sts-policy-version / sts-policy-mode / sts-policy-max-age /
///                          sts-policy-mx / sts-policy-extension
/// sts-policy-field-delim = ":" *WSP
/// version: %s"STSv1"   mode: %s"testing" / %s"enforce" / %s"none"
/// max_age: 1*10(DIGIT) (at most 31557600)   mx: ["*."] Domain
/// sts-policy-ext-name    = sts-policy-alphanum *31(sts-policy-alphanum / "_" / "-" / ".")
/// sts-policy-term        = LF / CRLF
/// ```
///
/// So: no blank lines (one line end may close the policy), nothing before a name, no
/// space before ":", names and values case-sensitive; a field named by the RFC must obey
/// its rule; a repeated field (but `mx`) counts once, the first (§3.2); unknown fields
/// are ignored. Each violation is its own finding.
pub fn parse_policy(body: &[u8], content_type: Option<&str>) -> (Policy, Vec<Finding>) {
    let mut f = Vec::new();
    let invalid = |f: &mut Vec<Finding>, code: &'static str, m: String| {
        f.push(finding(
            code,
            Severity::Error,
            format!("{m}: {DROPPED_POLICY}"),
        ))
    };
    let shown = |s: &str| super::shown(s, 80);
    let mut p = Policy {
        mode: None,
        max_age: None,
        mx: Vec::new(),
        lines: Vec::new(),
    };
    match content_type.map(|c| c.split(';').next().unwrap_or("").trim().to_ascii_lowercase()) {
        Some(t) if t == "text/plain" => {}
        Some(t) => invalid(&mut f, "sts-policy-content-type", format!("the policy is served as {t:?}, not text/plain (RFC 8461 §3.2; chasquid, Postfix's resolver and go-mtasts refuse it); fix the web server's type for /.well-known/mta-sts.txt")),
        None => invalid(&mut f, "sts-policy-content-type", "the policy is served without a Content-Type (senders require text/plain, RFC 8461 §3.2)".into()),
    }
    if body.len() > MAX_POLICY {
        invalid(
            &mut f,
            "sts-policy-too-large",
            format!(
                "the policy is {} bytes, over the 64 KiB senders read (RFC 8461 §3.3)",
                body.len()
            ),
        );
    }
    let Ok(text) = std::str::from_utf8(body) else {
        invalid(
            &mut f,
            "sts-policy-encoding",
            "the policy is not UTF-8 text".into(),
        );
        return (p, f);
    };
    if text.starts_with('\u{feff}') {
        invalid(&mut f, "sts-policy-encoding", "the policy begins with a byte-order mark (U+FEFF) before \"version\"; save it without one".into());
    }
    if text.is_empty() {
        invalid(&mut f, "sts-policy-missing", "the policy is empty".into());
        return (p, f);
    }
    // Lines end in LF or CRLF; the text may end with one line end.
    let body_text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(text);
    let mut seen: Vec<&str> = Vec::new();
    let mut version_seen = false;
    let mut blank_reported = false;
    for (n, raw) in body_text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let at = format!("line {}", n + 1);
        if line.contains('\r') {
            invalid(
                &mut f,
                "sts-policy-line-end",
                format!(
                    "{at}: a carriage return alone inside a line (lines end in LF or CRLF, sts-policy-term)"
                ),
            );
            continue;
        }
        if line.trim_matches([' ', '\t']).is_empty() {
            if !blank_reported {
                invalid(
                    &mut f,
                    "sts-policy-blank-line",
                    format!(
                        "{at} is blank: the grammar has no empty lines between fields (and at most one line end at the end); remove it"
                    ),
                );
                blank_reported = true;
            }
            continue;
        }
        p.lines.push(line.to_owned());
        let Some((name, value)) = line.split_once(':') else {
            invalid(
                &mut f,
                "sts-policy-line",
                format!("{at}: {:?} is not a \"name: value\" line", shown(line)),
            );
            continue;
        };
        if name.starts_with([' ', '\t']) || name.ends_with([' ', '\t']) {
            invalid(
                &mut f,
                "sts-policy-line",
                format!(
                    "{at}: {:?}: no space before the name or before \":\"",
                    shown(line)
                ),
            );
            continue;
        }
        let value = value
            .trim_start_matches([' ', '\t'])
            .trim_end_matches([' ', '\t']);
        if !ext_name_ok(name) {
            invalid(
                &mut f,
                "sts-policy-extension-name",
                format!(
                    "{at}: {:?} is not a valid field name (a letter or digit, then up to 31 letters, digits, \"_\", \"-\" or \".\")",
                    shown(name)
                ),
            );
            continue;
        }
        let repeated = name != "mx" && seen.contains(&name);
        // A field the RFC names obeys its rule, the first and the repeated ones alike.
        match name {
            "version" => {
                if value != "STSv1" {
                    invalid(
                        &mut f,
                        "sts-policy-version",
                        format!("{at}: version {:?}: must be exactly STSv1", shown(value)),
                    );
                    continue;
                }
                version_seen = true;
            }
            "mode" => {
                let m = match value {
                    "enforce" => Mode::Enforce,
                    "testing" => Mode::Testing,
                    "none" => Mode::None,
                    _ => {
                        invalid(
                            &mut f,
                            "sts-policy-mode",
                            format!(
                                "{at}: mode {:?}: must be enforce, testing or none, in lower case",
                                shown(value)
                            ),
                        );
                        continue;
                    }
                };
                if !repeated {
                    p.mode = Some(m);
                }
            }
            "max_age" => {
                if value.is_empty()
                    || value.len() > 10
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    invalid(
                        &mut f,
                        "sts-policy-max-age",
                        format!(
                            "{at}: max_age {:?}: must be a number of seconds (digits only)",
                            shown(value)
                        ),
                    );
                    continue;
                }
                let n: u64 = value.parse().expect("digits");
                if n > 31_557_600 {
                    invalid(
                        &mut f,
                        "sts-policy-max-age",
                        format!("{at}: max_age {n} is over the maximum 31557600 (one year)"),
                    );
                    continue;
                }
                if !repeated {
                    p.max_age = Some(n);
                }
            }
            "mx" => {
                if !pattern_ok(value) {
                    invalid(
                        &mut f,
                        "sts-policy-mx-pattern",
                        format!(
                            "{at}: mx {:?} is not a host name or *.domain pattern (letters, digits and hyphens; no trailing dot; \"*\" only as the whole first label; A-labels, not Unicode)",
                            shown(value)
                        ),
                    );
                    continue;
                }
                let pat = value.to_ascii_lowercase();
                let host = pat.strip_prefix("*.").unwrap_or(&pat);
                if host.parse::<std::net::Ipv4Addr>().is_ok() {
                    f.push(finding("sts-policy-mx-pattern-odd", Severity::Warning, format!("{at}: mx {pat:?} looks like an IP address: MX records name hosts, and mox rejects the policy; name the host")));
                } else if !host.contains('.') {
                    f.push(finding("sts-policy-mx-pattern-odd", Severity::Warning, format!("{at}: mx {pat:?} is a single label: valid, but it matches an MX of that bare name only{}", if pat.starts_with("*.") { " (or any host under a top-level domain)" } else { "" })));
                } else if host.split('.').any(|l| l.len() > 63) {
                    f.push(finding("sts-policy-mx-pattern-odd", Severity::Warning, format!("{at}: mx {pat:?} has a label over 63 characters: no host can have that name")));
                }
                p.mx.push(pat);
            }
            other => {
                if !policy_ext_value_ok(value) {
                    invalid(
                        &mut f,
                        "sts-policy-extension-value",
                        format!(
                            "{at}: {:?}: an extension's value must be non-empty, without control characters (TAB, NUL, CR, DEL) (sts-policy-ext-value)",
                            shown(line)
                        ),
                    );
                    continue;
                }
                if other.eq_ignore_ascii_case("version")
                    || other.eq_ignore_ascii_case("mode")
                    || other.eq_ignore_ascii_case("max_age")
                    || other.eq_ignore_ascii_case("mx")
                {
                    f.push(finding("sts-policy-name-case", Severity::Warning, format!("{at}: {:?} is not {:?}: names are case-sensitive, so senders read it as an unknown field", shown(other), other.to_ascii_lowercase())));
                } else {
                    f.push(finding(
                        "sts-policy-unknown-key",
                        Severity::Info,
                        format!(
                            "{at}: {:?} is not an RFC 8461 field; senders ignore it",
                            shown(other)
                        ),
                    ));
                }
            }
        }
        if repeated {
            f.push(finding(
                "sts-policy-duplicate-key",
                Severity::Warning,
                format!("{at}: {name:?} again: RFC 8461 §3.2 says the first counts, but most senders (Postfix's resolver, chasquid, go-mtasts) take the last; keep one"),
            ));
        }
        if !seen.contains(&name) {
            seen.push(name);
        }
    }
    if !version_seen && !seen.contains(&"version") {
        invalid(
            &mut f,
            "sts-policy-missing",
            "no \"version: STSv1\" line".into(),
        );
    }
    if p.mode.is_none() && !seen.contains(&"mode") {
        invalid(
            &mut f,
            "sts-policy-missing",
            "no mode line (mode: enforce, testing or none)".into(),
        );
    }
    if p.max_age.is_none() && !seen.contains(&"max_age") {
        invalid(
            &mut f,
            "sts-policy-missing",
            "no max_age line (max_age: 604800, in seconds)".into(),
        );
    }
    if matches!(p.mode, Some(Mode::Enforce | Mode::Testing))
        && p.mx.is_empty()
        && !seen.contains(&"mx")
    {
        invalid(&mut f, "sts-policy-missing", "no mx line: in enforce or testing mode the policy must name the MX hosts (mx: mail.example.com)".into());
    }
    if p.mode == Some(Mode::None) && p.mx.is_empty() {
        f.push(finding("sts-policy-none-without-mx", Severity::Info, "mode none without mx lines: valid (RFC 8461 §3.2), though chasquid requires an mx line in every policy"));
    }
    if let Some(age) = p.max_age {
        if age < 86_400 {
            f.push(finding(
                "sts-max-age-short",
                Severity::Warning,
                format!("max_age {age} is under one day: senders refetch constantly{}; use 604800 (a week) or more", if age == 0 { ", and chasquid rejects 0" } else { "" }),
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

/// Does any `mx:` pattern match `host` (§4.1 and Appendix B: the same name, or `*.` for
/// exactly one leftmost label)? Case-insensitive; the host's trailing dot ignored.
pub fn covers(patterns: &[String], host: &str) -> Option<String> {
    let h = host.trim_end_matches('.').to_ascii_lowercase();
    patterns
        .iter()
        .find(|p| {
            let p = p.to_ascii_lowercase();
            p == h
                || p.strip_prefix("*.").is_some_and(|base| {
                    h.split_once('.')
                        .is_some_and(|(first, rest)| !first.is_empty() && rest == base)
                })
        })
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(f: &[Finding]) -> Vec<&str> {
        f.iter().map(|x| x.code).collect()
    }

    /// (record, valid by RFC 8461 §3.1, the finding a violation gives) — each ABNF rule
    /// with valid and invalid cases.
    #[rustfmt::skip]
    const RECORDS: &[(&str, bool, &str)] = &[
        // sts-text-record: the example, WSP around ";", optional trailing delimiter.
        ("v=STSv1; id=20160831085700Z;", true, ""),
        ("v=STSv1; \t id=20160831085700Z  \t;", true, ""),
        ("v=STSv1;id=20160831085700Z", true, ""),
        ("v=STSv1; id=1; ", true, ""),
        ("v=STSv1;\tid=1", true, ""),
        ("v=STSv1  ;    id=foo", true, ""), // WSP before the first ";": valid (warning)
        // sts-version = %s"v=STSv1", first, followed by a delimiter.
        ("v=STSv0", false, "sts-record-version"),
        ("v=STSv10", false, "sts-record-version"),
        ("v=STSv12;id=1;", false, "sts-record-version"),
        ("V=STSv1; id=1", false, "sts-record-version"),
        ("v=STSV1; id=1", false, "sts-record-version"),
        (" v=STSv1; id=1", false, "sts-record-version"),
        ("v = STSv1; id=1", false, "sts-record-version"),
        ("id=20180907T090909; v=STSv1;", false, "sts-record-version"),
        ("v=STSv1 id=021120211155", false, "sts-record-delimiter"),
        ("v=STSv1,id=1", false, "sts-record-version"),
        ("", false, "sts-record-version"),
        // 1*(sts-field-delim sts-field): at least one field, and an id.
        ("v=STSv1", false, "sts-record-no-id"),
        ("v=STSv1;", false, "sts-record-no-id"),
        ("v=STSv1; ext=1", false, "sts-record-no-id"),
        ("v=STSv1; ID=1", false, "sts-record-no-id"),
        ("v=STSv1; v=STSv1", false, "sts-record-no-id"),
        // [sts-field-delim]: at most one delimiter at the end, none doubled.
        ("v=STSv1; id=a;;", false, "sts-record-delimiter"),
        ("v=STSv1; id=1;;;", false, "sts-record-delimiter"),
        ("v=STSv1;; id=1", false, "sts-record-delimiter"),
        // WSP only inside a delimiter: not at the end alone, not around "=", not in values.
        ("v=STSv1; id=1 ", false, "sts-record-trailing-space"),
        ("v=STSv1;        id=20160831085700Z   ", false, "sts-record-trailing-space"),
        ("v=STSv1; id = 1", false, "sts-record-space"),
        ("v=STSv1; id= 1", false, "sts-record-space"),
        ("v=STSv1;    id=foo include=foo.com", false, "sts-record-delimiter"),
        ("v=STSv1; id=1; ext=a b", false, "sts-record-delimiter"),
        // sts-id = %s"id=" 1*32(ALPHA / DIGIT)
        ("v=STSv1; id=a", true, ""),
        ("v=STSv1; id=01234567890123456789012345678901", true, ""),
        ("v=STSv1; id=012345678901234567890123456789012", false, "sts-record-id"),
        ("v=STSv1; id=", false, "sts-record-id"),
        ("v=STSv1; id=test-123", false, "sts-record-id"),
        ("v=STSv1; id=*", false, "sts-record-id"),
        ("v=STSv1; id=123v=STSv1", false, "sts-record-id"),
        ("v=STSv1; id=a; id=test-123", false, "sts-record-id"),
        // A second valid id: the first counts (§3.2), with a warning.
        ("v=STSv1; id=foo; id=bar", true, ""),
        // sts-extension: name (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."),
        // value 1*(%x21-3A / %x3C / %x3E-7E).
        ("v=STSv1; id=a; more=a; ext=2", true, ""),
        ("v=STSv1; id=1; a1234567890123456789012345678901=1", true, ""),
        ("v=STSv1; id=1; extension-1_2.3=!\"#$%&'()*+,-./0123456789:<>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", true, ""),
        ("v=STSv1; id=a; a12345678901234567890123456789012=1", false, "sts-record-extension-name"),
        ("v=STSv1; id=a; 1%=a", false, "sts-record-extension-name"),
        ("v=STSv1; id=1; -foo=1", false, "sts-record-extension-name"),
        ("v=STSv1; id=1; .foo=1", false, "sts-record-extension-name"),
        ("v=STSv1; id=1; _foo=1", false, "sts-record-extension-name"),
        ("v=STSv1; $$=@@; id=1", false, "sts-record-extension-name"),
        ("v=STSv1; id=a; more=", false, "sts-record-extension-value"),
        ("v=STSv1; id=a; test==", false, "sts-record-extension-value"),
        ("v=STSv1; id=1; a=b=c", false, "sts-record-extension-value"),
        ("v=STSv1;    id=foo include", false, "sts-record-delimiter"),
        ("v=STSv1; id=1; e=\"quoted value\"", false, "sts-record-delimiter"),
        // US-ASCII only, no line breaks.
        ("v=STSv1; id=1; key=£;", false, "sts-record-characters"),
        ("v=STSv1; id=été", false, "sts-record-characters"),
        ("v=STSv1; id=1;\n", false, "sts-record-characters"),
        ("azazaza;asdasdasdasd", false, "sts-record-version"),
        ("v=spf1 -all", false, "sts-record-version"),
    ];

    #[test]
    fn records_by_the_abnf() {
        for (txt, valid, code) in RECORDS {
            let r = parse_record(txt);
            assert_eq!(r.valid(), *valid, "{txt:?}: {:?}", r.findings);
            if *valid {
                assert!(r.id.is_some(), "{txt:?}");
            } else {
                assert!(
                    codes(&r.findings).contains(code),
                    "{txt:?}: want {code}, got {:?}",
                    r.findings
                );
                assert!(
                    r.findings.iter().any(|f| f.severity == Severity::Error
                        && f.message.contains("opportunistic TLS")),
                    "{txt:?}: says what senders do"
                );
            }
        }
        // The first id counts; warnings say what the peers do.
        let r = parse_record("v=STSv1; id=foo; id=bar");
        assert_eq!(
            (r.id.as_deref(), codes(&r.findings)),
            (Some("foo"), vec!["sts-record-duplicate-id"])
        );
        let r = parse_record("v=STSv1  ;    id=foo");
        assert_eq!(
            codes(&r.findings),
            vec!["sts-record-space-before-semicolon"]
        );
        let r = parse_record("v=STSv1; id=x1; ext=whatever");
        assert_eq!(
            (r.id.as_deref(), codes(&r.findings)),
            (Some("x1"), vec!["sts-record-unknown-field"])
        );
        // Every violation is named, not only the first.
        let r = parse_record("v=STSv1; id=a-b; -x=1; y=");
        assert_eq!(
            codes(&r.findings),
            vec![
                "sts-record-id",
                "sts-record-extension-name",
                "sts-record-extension-value"
            ]
        );
    }

    #[test]
    fn record_sets() {
        // Unrelated records are discarded (with a warning: go-mtasts needs one TXT).
        let (id, f) = check_record(&["v=STSv1; id=20240101000000Z".into(), "v=spf1 -all".into()]);
        assert_eq!(
            (id.as_deref(), codes(&f)),
            (Some("20240101000000Z"), vec!["sts-record-other-txt"])
        );
        // Two records: no policy.
        let (id, f) = check_record(&["v=STSv1; id=1".into(), "v=STSv1; id=2".into()]);
        assert_eq!((id, codes(&f)), (None, vec!["sts-record-multiple"]));
        // Among several, "v=STSv1 ;" is discarded (the literal prefix rule).
        let (id, f) = check_record(&["v=STSv1 ; id=1".into(), "v=spf1 -all".into()]);
        assert_eq!((id, codes(&f)), (None, vec!["sts-record-version"]));
        // Alone, it is valid by the ABNF.
        let (id, f) = check_record(&["v=STSv1 ; id=1".into()]);
        assert_eq!(
            (id.as_deref(), codes(&f)),
            (Some("1"), vec!["sts-record-space-before-semicolon"])
        );
        assert_eq!(check_record(&["v=spf1".into()]).0, None);
        assert_eq!(check_record(&[]).0, None);
    }

    /// (policy, valid by RFC 8461 §3.2, the finding a violation gives).
    #[rustfmt::skip]
    const POLICIES: &[(&str, bool, &str)] = &[
        // The example (Appendix A), LF and CRLF, mixed; trailing WSP; mode none.
        ("version: STSv1\nmode: testing\nmx: mx1.example.com\nmx: mx2.example.com\nmx: mx.backup-example.com\nmax_age: 1296000\n", true, ""),
        ("version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmax_age: 604800\r\n", true, ""),
        ("version:STSv1\r\nmode:\tenforce\r\nmx:  \t\t *.example.com\nmax_age: 86400\nmore:ext e  ns ion", true, ""),
        ("version: STSv1\nmode: enforce\t\nmx: *.example.com \nmax_age: 0 \n", true, ""),
        ("version: STSv1\nmode: none\nmax_age: 86400", true, ""),
        ("version: STSv1\nmode: enforce\nmx: localhost\nmax_age: 86400\n", true, ""), // one label: a Domain
        ("version: STSv1\nmode: enforce\nmx: 123.example\nmax_age: 31557600\n", true, ""),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nnote: déjà vu\n", true, ""),
        ("mx: a.example\r\nmax_age: 86400\r\nmode: enforce\r\nversion: STSv1", true, ""), // any order
        // sts-policy-term: LF / CRLF; one may end the policy; no blank lines, no bare CR.
        ("version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-blank-line"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n\n", false, "sts-policy-blank-line"),
        ("\nversion: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-blank-line"),
        ("version: STSv1\rmode: enforce\rmx: a.example\rmax_age: 86400\r", false, "sts-policy-line-end"),
        ("\u{feff}version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-encoding"),
        ("", false, "sts-policy-missing"),
        // name ":" *WSP: nothing before the name, no space before ":".
        (" version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-line"),
        ("version : STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-line"),
        ("version STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-line"),
        // version = %s"STSv1"; mode = %s"testing" / %s"enforce" / %s"none".
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-version"),
        ("version: stsv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-version"),
        ("Version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-missing"),
        ("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-mode"),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-mode"),
        ("version: STSv1\nmode:\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-mode"),
        // max_age = 1*10DIGIT, at most 31557600.
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", false, "sts-policy-max-age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: +5\n", false, "sts-policy-max-age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", false, "sts-policy-max-age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1e3\n", false, "sts-policy-max-age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", false, "sts-policy-max-age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: forever\n", false, "sts-policy-max-age"),
        // mx = ["*."] Domain.
        ("version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: mail.*.example.com\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: .example.com\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: mail.example.com.\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: -mail.example.com\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: mail_1.example.com\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: bücher.example\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx: a.example b.example\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        ("version: STSv1\nmode: enforce\nmx:\nmax_age: 86400\n", false, "sts-policy-mx-pattern"),
        // Required: version, mode, max_age; mx unless mode none.
        ("mode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-missing"),
        ("version: STSv1\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-missing"),
        ("version: STSv1\nmode: enforce\nmx: a.example\n", false, "sts-policy-missing"),
        ("version: STSv1\nmode: enforce\nmax_age: 86400\n", false, "sts-policy-missing"),
        ("version: STSv1\nmode: testing\nmax_age: 86400\n", false, "sts-policy-missing"),
        // sts-policy-extension: name grammar and length; value without controls.
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\n-ext: 1\n", false, "sts-policy-extension-name"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\na12345678901234567890123456789012: 1\n", false, "sts-policy-extension-name"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nfoo bar: 1\n", false, "sts-policy-extension-name"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\next:\n", false, "sts-policy-extension-value"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\next: a\tb\n", false, "sts-policy-extension-value"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\next: a\u{0}b\n", false, "sts-policy-extension-value"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\next: a\u{7f}b\n", false, "sts-policy-extension-value"),
        // A repeated field counts once (the first) but each must obey its rule.
        ("version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 86400\n", true, ""),
        ("version: STSv1\nmode: enforce\nmode: bogus\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-mode"),
        ("version: STSv1\nversion: STSv2\nmode: enforce\nmx: a.example\nmax_age: 86400\n", false, "sts-policy-version"),
    ];

    #[test]
    fn policies_by_the_abnf() {
        for (text, valid, code) in POLICIES {
            let (_, f) = parse_policy(text.as_bytes(), Some("text/plain"));
            let ok = !f.iter().any(|x| x.severity == Severity::Error);
            assert_eq!(ok, *valid, "{text:?}: {f:?}");
            if !valid {
                assert!(codes(&f).contains(code), "{text:?}: want {code}, got {f:?}");
            }
        }
        let (p, f) = parse_policy(b"version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmx: *.b.example\nmax_age: 604800", Some("text/plain; charset=utf-8"));
        assert_eq!(
            (p.mode, p.max_age, p.mx.len()),
            (Some(Mode::Enforce), Some(604800), 2)
        );
        assert_eq!(codes(&f), vec!["sts-policy-duplicate-key"]);
        let (_, f) = parse_policy(
            b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 604800\n",
            Some("text/html"),
        );
        assert_eq!(codes(&f), vec!["sts-policy-content-type"]);
        let (_, f) = parse_policy(
            b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 604800\n",
            None,
        );
        assert_eq!(codes(&f), vec!["sts-policy-content-type"]);
        let (p, f) = parse_policy(
            b"version: STSv1\r\nmode: none\r\nmax_age: 3600\r\nfoo: bar\r\n",
            Some("text/plain"),
        );
        assert_eq!(
            (p.mode, codes(&f)),
            (
                Some(Mode::None),
                vec![
                    "sts-policy-unknown-key",
                    "sts-policy-none-without-mx",
                    "sts-max-age-short"
                ]
            )
        );
        let (_, f) = parse_policy(
            b"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 86400\nMode: testing\n",
            Some("text/plain"),
        );
        assert_eq!(codes(&f), vec!["sts-policy-name-case", "sts-max-age-short"]);
        let (_, f) = parse_policy(
            b"version: STSv1\nmode: enforce\nmx: 192.0.2.1\nmax_age: 86400\n",
            Some("text/plain"),
        );
        assert_eq!(
            codes(&f),
            vec!["sts-policy-mx-pattern-odd", "sts-max-age-short"]
        );
        let (_, f) = parse_policy(b"<html>nope</html>", Some("text/plain"));
        assert!(
            f.iter().all(|x| x.severity == Severity::Error) && f.len() >= 3,
            "{f:?}"
        );
        let big = vec![b'x'; MAX_POLICY + 1];
        assert!(codes(&parse_policy(&big, Some("text/plain")).1).contains(&"sts-policy-too-large"));
    }

    #[test]
    fn coverage_by_appendix_b() {
        let pats = vec![
            "mx1.example.com".to_owned(),
            "*.relay.example.com".to_owned(),
            "*.test".to_owned(),
            "localhost".to_owned(),
        ];
        assert!(covers(&pats, "MX1.example.com.").is_some());
        assert!(covers(&pats, "a.relay.example.com").is_some());
        assert!(covers(&pats, "relay.example.com").is_none());
        assert!(covers(&pats, "a.b.relay.example.com").is_none());
        assert!(covers(&pats, "mx2.example.com").is_none());
        assert!(covers(&pats, "x.test").is_some());
        assert!(covers(&pats, "localhost").is_some());
        assert!(covers(&pats, "mx1.example.com.evil.net").is_none());
    }
}
