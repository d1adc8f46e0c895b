//! A TLSRPT TXT record (RFC 8460 §3) → findings (pure; no I/O).
//!
//! ```text
//! tlsrpt-record     = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
//! field-delim       = *WSP ";" *WSP
//! tlsrpt-field      = tlsrpt-rua / tlsrpt-extension     ; rua is required
//! tlsrpt-version    = %s"v=TLSRPTv1"
//! tlsrpt-rua        = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
//! tlsrpt-uri        = URI   ; "," "!" ";" inside it MUST be percent-encoded
//! tlsrpt-extension  = tlsrpt-ext-name "=" tlsrpt-ext-value
//! tlsrpt-ext-name   = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
//! tlsrpt-ext-value  = 1*(%x21-3A / %x3C / %x3E-7E)
//! ```
//!
//! Every finding is one line saying what is wrong and how to fix it. Errors make the
//! record unusable or lose reports; warnings are interoperability traps of real senders
//! (Postfix's tlsrpt-reporter needs `rua=` right after the version and no space after a
//! comma; Microsoft reportedly uses only the first rua); infos change nothing.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn label(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
}

pub fn finding(code: &'static str, severity: Severity, message: impl Into<String>) -> Finding {
    Finding {
        code,
        severity,
        message: message.into(),
    }
}

/// The record's meaning and what is wrong with it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Checked {
    /// The report URIs senders would use (empty when the record is unusable).
    pub rua: Vec<String>,
    pub findings: Vec<Finding>,
}

#[cfg(test)]
impl Checked {
    pub fn worst(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }
}

/// Does this TXT string look like an attempt at a TLSRPT record (for picking records out
/// of a TXT RRset and for look-alike names)?
pub fn looks_like_tlsrpt(txt: &str) -> bool {
    let t = txt.trim_start().to_ascii_lowercase();
    let t: String = t.chars().filter(|c| !c.is_whitespace()).collect();
    t.starts_with("v=tlsrpt")
}

/// Is this the exact start senders select records by (§3: "v=TLSRPTv1;")?
pub fn selected_by_senders(txt: &str) -> bool {
    txt.starts_with("v=TLSRPTv1;") || txt == "v=TLSRPTv1"
}

/// What a grammar violation costs: mox's `tlsrpt.ParseRecord` (and any parser that
/// follows the ABNF) returns a syntax error for the whole record, so those senders see no
/// TLSRPT record and send no report at all.
const STRICT: &str = "strict senders (mox) reject the whole record and send no reports";

fn is_wsp(c: char) -> bool {
    c == ' ' || c == '\t'
}

fn ext_name_ok(n: &str) -> bool {
    let mut cs = n.chars();
    matches!(cs.next(), Some(c) if c.is_ascii_alphanumeric())
        && n.len() <= 32
        && cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn ext_value_ok(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| matches!(b, 0x21..=0x3A | 0x3C | 0x3E..=0x7E))
}

/// Characters a URI (RFC 3986) never holds unencoded.
fn uri_char_ok(c: char) -> bool {
    c.is_ascii_graphic() && !matches!(c, '"' | '<' | '>' | '\\' | '^' | '`' | '{' | '|' | '}')
}

/// Checks one report URI; returns whether senders can use it.
/// What a URI of `rua` is to senders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Uri {
    /// A `mailto:` address or an `https:` URL.
    Usable,
    /// A URI, but of a scheme or form senders cannot send to: skipped (an error only
    /// when no URI is usable).
    Unsupported,
    /// Not a URI as RFC 8460 §3 allows it (spaces, unencoded "," "!" ";", bad
    /// percent-encoding): strict senders reject the whole record.
    Invalid,
}

/// Checks one report URI (its findings: errors for an invalid one, warnings for an
/// unsupported one, raised to errors by the caller when nothing is usable).
fn check_uri(uri: &str, out: &mut Vec<Finding>) -> Uri {
    let lower = uri.to_ascii_lowercase();
    if uri.contains(is_wsp) {
        out.push(finding(
            "space-in-uri",
            Severity::Error,
            format!("{uri:?}: a space inside a URI; remove it (or percent-encode it as %20)"),
        ));
        return Uri::Invalid;
    }
    if let Some(bang) = uri.find('!') {
        let tail = &uri[bang + 1..];
        let size_suffix = !tail.is_empty()
            && tail
                .trim_end_matches(|c: char| "kmgtKMGT".contains(c))
                .bytes()
                .all(|b| b.is_ascii_digit());
        let msg = if size_suffix {
            format!("{uri:?}: DMARC's size limit \"!{tail}\" does not exist in TLSRPT; remove it")
        } else {
            format!("{uri:?}: \"!\" must be percent-encoded (%21) in a TLSRPT URI (RFC 8460 §3)")
        };
        out.push(finding("unencoded-bang", Severity::Error, msg));
        return Uri::Invalid;
    }
    let b = uri.as_bytes();
    if let Some(i) = (0..b.len()).find(|&i| {
        b[i] == b'%'
            && !(b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    }) {
        out.push(finding(
            "invalid-percent-encoding",
            Severity::Error,
            format!("{uri:?}: \"%\" at {} is not followed by two hex digits (RFC 3986 pct-encoded); write %25 for a percent sign", i + 1),
        ));
        return Uri::Invalid;
    }
    if let Some(c) = uri.chars().find(|&c| !uri_char_ok(c)) {
        out.push(finding(
            "invalid-uri-char",
            Severity::Error,
            format!("{uri:?}: {c:?} is not allowed in a URI; percent-encode it"),
        ));
        return Uri::Invalid;
    }
    if let Some(rest) = lower.strip_prefix("mailto:") {
        let addr = rest.split('?').next().unwrap_or("");
        match addr.split_once('@') {
            Some((local, domain))
                if !local.is_empty() && domain.contains('.') && !domain.ends_with('.') =>
            {
                Uri::Usable
            }
            Some(_) => {
                out.push(finding(
                    "mailto-bad-address",
                    Severity::Warning,
                    format!("{uri:?}: not a usable mail address; write mailto:LOCAL@DOMAIN"),
                ));
                Uri::Unsupported
            }
            None => {
                out.push(finding(
                    "mailto-no-at",
                    Severity::Warning,
                    format!("{uri:?}: a mailto URI needs an address with \"@\" (mailto:tls-reports@example.com)"),
                ));
                Uri::Unsupported
            }
        }
    } else if let Some(rest) = lower.strip_prefix("https://") {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        if host.is_empty() {
            out.push(finding(
                "https-no-host",
                Severity::Warning,
                format!("{uri:?}: an https URI needs a host"),
            ));
            Uri::Unsupported
        } else {
            Uri::Usable
        }
    } else if lower.starts_with("http://") {
        out.push(finding(
            "http-scheme",
            Severity::Warning,
            format!("{uri:?}: only mailto: and https: are allowed (RFC 8460 §3); use https://"),
        ));
        Uri::Unsupported
    } else if !lower.contains(':') && lower.contains('@') {
        out.push(finding(
            "no-scheme",
            Severity::Error,
            format!("{uri:?}: a bare address, not a URI; write mailto:{uri}"),
        ));
        Uri::Invalid
    } else {
        // A URI has a scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) ":" (RFC 3986).
        let scheme = lower.split_once(':').map(|(s, _)| s);
        let is_uri = scheme.is_some_and(|s| {
            let s = s.as_bytes();
            !s.is_empty()
                && s[0].is_ascii_alphabetic()
                && s.iter()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        });
        if !is_uri {
            out.push(finding(
                "not-a-uri",
                Severity::Error,
                format!("{uri:?} is not a URI (scheme:...); write mailto:tls-reports@YOUR-DOMAIN or an https: URL"),
            ));
            return Uri::Invalid;
        }
        out.push(finding(
            "bad-scheme",
            Severity::Warning,
            format!(
                "{uri:?}: scheme {:?} is not one senders send to; only mailto: and https: are (RFC 8460 §3)",
                scheme.unwrap_or("")
            ),
        ));
        Uri::Unsupported
    }
}

/// Checks one record (the TXT strings already joined without separators).
pub fn check(txt: &str) -> Checked {
    let mut out = Checked::default();
    let mut usable_grammar = true;
    let f = &mut out.findings;
    let trimmed = txt.trim_start_matches(is_wsp);
    // ---- version ---------------------------------------------------------------------
    let rest = if let Some(r) = txt.strip_prefix("v=TLSRPTv1") {
        r
    } else {
        let squeezed: String = trimmed.chars().filter(|c| !is_wsp(*c)).collect();
        let lower = squeezed.to_ascii_lowercase();
        let (code, msg) = if trimmed.len() != txt.len() && trimmed.starts_with("v=TLSRPTv1") {
            (
                "leading-space",
                "the record starts with a space; it must begin with v=TLSRPTv1;".to_owned(),
            )
        } else if lower.starts_with("v=tlsrptv1") && !squeezed.starts_with("v=TLSRPTv1") {
            ("version-case", "the version must be exactly \"v=TLSRPTv1\" (case-sensitive); senders ignore this record".to_owned())
        } else if squeezed.starts_with("v=TLSRPTv1") {
            (
                "version-spacing",
                "no spaces around \"=\": the record must begin with \"v=TLSRPTv1;\"".to_owned(),
            )
        } else if lower.starts_with("v=tlsrptv") {
            (
                "version-unknown",
                format!(
                    "{:?} is not a TLSRPT version; the only one is v=TLSRPTv1",
                    squeezed.split(';').next().unwrap_or("")
                ),
            )
        } else if lower.starts_with("v=stsv1") {
            ("mta-sts-record", "this is an MTA-STS record (v=STSv1); it belongs at _mta-sts.DOMAIN, and the TLSRPT record is v=TLSRPTv1; rua=...".to_owned())
        } else if lower.starts_with("v=spf1") {
            (
                "spf-record",
                "this is an SPF record, not a TLSRPT record".to_owned(),
            )
        } else if lower.starts_with("v=dmarc1") {
            (
                "dmarc-record",
                "this is a DMARC record, not a TLSRPT record".to_owned(),
            )
        } else {
            (
                "not-tlsrpt",
                "not a TLSRPT record: it must begin with \"v=TLSRPTv1;\"".to_owned(),
            )
        };
        f.push(finding(code, Severity::Error, msg));
        return out;
    };
    if rest.is_empty() || rest.trim_matches(is_wsp).is_empty() {
        f.push(finding(
            "missing-rua",
            Severity::Error,
            "no rua field: add \"; rua=mailto:tls-reports@YOUR-DOMAIN\" after the version",
        ));
        return out;
    }
    if !rest.starts_with(';') {
        if rest.trim_start_matches(is_wsp).starts_with(';') {
            f.push(finding(
                "space-before-semicolon",
                Severity::Warning,
                "a space between v=TLSRPTv1 and \";\": allowed by RFC 8460's grammar (field-delim = *WSP \";\" *WSP), but senders that find more than one TXT record keep only those beginning with exactly \"v=TLSRPTv1;\", and Postfix's tlsrpt-reporter never reads it; write \"v=TLSRPTv1;\"",
            ));
        } else {
            f.push(finding(
                "version-unknown",
                Severity::Error,
                "the version must be exactly \"v=TLSRPTv1\" followed by \";\"",
            ));
            return out;
        }
    }
    // A record may end in a delimiter (with its spaces), not in spaces alone.
    let body = txt.trim_end_matches(is_wsp);
    if body.len() != txt.len() && !body.ends_with(';') {
        f.push(finding(
            "trailing-space",
            Severity::Error,
            format!("the record ends in spaces after its last field (only \";\" and its spaces may end it; RFC 8460 §3): {STRICT}; remove them"),
        ));
        usable_grammar = false;
    }
    // ---- fields ----------------------------------------------------------------------
    let after = rest.trim_start_matches(is_wsp);
    let fields: Vec<&str> = after
        .strip_prefix(';')
        .unwrap_or(after)
        .split(';')
        .collect();
    let last = fields.len() - 1;
    let mut rua_fields = 0;
    let mut rua_position = None;
    let mut field_index = 0;
    let mut usable = usable_grammar;
    for (i, raw) in fields.iter().enumerate() {
        let field = raw.trim_matches(is_wsp);
        if field.is_empty() {
            if i != last {
                f.push(finding(
                    "empty-field",
                    Severity::Error,
                    format!("an empty field (\";;\"), against RFC 8460 §3's grammar: {STRICT}; remove the extra \";\""),
                ));
                usable = false;
            }
            continue;
        }
        let Some((name, value)) = field.split_once('=') else {
            f.push(finding(
                "field-without-value",
                Severity::Error,
                format!("{field:?} is not a name=value field (a \";\" inside a URI must be encoded as %3B)"),
            ));
            usable = false;
            continue;
        };
        if name.ends_with(is_wsp) || value.starts_with(is_wsp) {
            f.push(finding(
                "field-spacing",
                Severity::Error,
                format!(
                    "{field:?}: no spaces around \"=\" (write {}={})",
                    name.trim_end_matches(is_wsp),
                    value.trim_start_matches(is_wsp)
                ),
            ));
            if name.trim_end_matches(is_wsp) == "rua" {
                usable = false;
                rua_fields += 1;
            }
            continue;
        }
        field_index += 1;
        if name == "rua" {
            rua_fields += 1;
            if rua_fields > 1 {
                f.push(finding(
                    "duplicate-rua",
                    Severity::Warning,
                    "more than one rua= field: allowed by RFC 8460's grammar, but senders disagree on which they use (checkers reject it); merge them into one, separated by commas",
                ));
                for p in value.split(',') {
                    let uri = p.trim_matches(is_wsp);
                    if uri.is_empty() || check_uri(uri, f) == Uri::Invalid {
                        usable = false;
                    }
                }
                continue;
            }
            rua_position = Some(field_index);
            if value.is_empty() {
                f.push(finding(
                    "empty-rua",
                    Severity::Error,
                    "rua= is empty: give at least one mailto: or https: URI",
                ));
                usable = false;
                continue;
            }
            let parts: Vec<&str> = value.split(',').collect();
            if parts.iter().skip(1).any(|p| p.starts_with(is_wsp))
                || parts
                    .iter()
                    .any(|p| p.ends_with(is_wsp) && !p.trim().is_empty())
            {
                f.push(finding(
                    "space-after-comma",
                    Severity::Warning,
                    "a space around \",\" in rua: allowed by RFC 8460, but Postfix's tlsrpt-reporter then cannot read the URI after it; remove the spaces",
                ));
            }
            let mut uris = Vec::new();
            for p in parts {
                let uri = p.trim_matches(is_wsp);
                if uri.is_empty() {
                    f.push(finding(
                        "empty-uri",
                        Severity::Error,
                        format!("an empty entry in rua (\",,\" or a trailing \",\"), against RFC 8460 §3's grammar: {STRICT}; remove it"),
                    ));
                    usable = false;
                    continue;
                }
                let verdict = check_uri(uri, f);
                if verdict == Uri::Usable {
                    if uris.iter().any(|u: &String| u.eq_ignore_ascii_case(uri)) {
                        f.push(finding(
                            "duplicate-uri",
                            Severity::Warning,
                            format!("{uri:?} is listed twice in rua; remove one"),
                        ));
                    } else {
                        uris.push(uri.to_owned());
                    }
                } else if verdict == Uri::Invalid {
                    usable = false;
                }
            }
            if let (Some(first), true) = (
                uris.first(),
                uris.iter()
                    .any(|u| u.to_ascii_lowercase().starts_with("mailto:")),
            ) && first.to_ascii_lowercase().starts_with("https:")
            {
                f.push(finding(
                        "https-first",
                        Severity::Warning,
                        "an https URI is listed first: Microsoft reportedly sends only to the first rua; list the mailto: URI first",
                    ));
            }
            out.rua = uris;
        } else if name.eq_ignore_ascii_case("rua") {
            f.push(finding(
                "rua-case",
                Severity::Error,
                format!("{name:?}: field names are case-sensitive; write rua="),
            ));
            usable = false;
        } else if !ext_name_ok(name) {
            f.push(finding(
                "invalid-field-name",
                Severity::Error,
                format!("{name:?} is not a valid field name (a letter or digit, then letters, digits, \"_\", \"-\" or \".\"; RFC 8460 §3): {STRICT}; remove or rename it"),
            ));
            usable = false;
        } else if !ext_value_ok(value) {
            f.push(finding(
                "invalid-field-value",
                Severity::Error,
                format!("{field:?}: an extension value must be non-empty, without spaces, \"=\" or \";\" (RFC 8460 §3): {STRICT}; fix or remove the field"),
            ));
            usable = false;
        } else {
            f.push(finding(
                "unknown-field",
                Severity::Info,
                format!("{name:?} is not a field of RFC 8460; senders ignore it"),
            ));
        }
    }
    if rua_fields == 0 {
        f.push(finding("missing-rua", Severity::Error, "no rua field: senders have nowhere to send reports; add rua=mailto:tls-reports@YOUR-DOMAIN"));
        usable = false;
    } else if let Some(pos) = rua_position
        && pos != 1
    {
        f.push(finding(
                "rua-not-first",
                Severity::Warning,
                "rua= is not the first field after the version: allowed by RFC 8460, but Postfix's tlsrpt-reporter cannot read it; put rua= right after v=TLSRPTv1;",
            ));
    }
    if !usable || out.rua.is_empty() {
        out.rua.clear();
        // Nothing left to send to: the URIs skipped as unsupported are the reason.
        for x in &mut out.findings {
            if matches!(
                x.code,
                "mailto-bad-address"
                    | "mailto-no-at"
                    | "https-no-host"
                    | "http-scheme"
                    | "bad-scheme"
            ) {
                x.severity = Severity::Error;
            }
        }
        if !out.findings.iter().any(|x| x.severity == Severity::Error) {
            out.findings.push(finding(
                "no-usable-uri",
                Severity::Error,
                "no usable report URI in rua",
            ));
        }
    }
    out
}

/// Percent-decodes `%XX` (invalid escapes kept as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A URI in the form two URIs are compared in: scheme and domain (or host) lower case,
/// percent-encoding decoded, mailto query dropped.
pub fn normalise_uri(uri: &str) -> String {
    let uri = uri.trim();
    let lower = uri.to_ascii_lowercase();
    if lower.starts_with("mailto:") {
        let addr = percent_decode(uri[7..].split('?').next().unwrap_or(""));
        match addr.rsplit_once('@') {
            Some((local, domain)) => format!(
                "mailto:{local}@{}",
                domain.to_ascii_lowercase().trim_end_matches('.')
            ),
            None => format!("mailto:{addr}"),
        }
    } else if lower.starts_with("https://") {
        let rest = &uri[8..];
        let (host, path) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        format!(
            "https://{}{}",
            host.to_ascii_lowercase(),
            percent_decode(path)
        )
    } else {
        percent_decode(uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (record, usable rua count, worst severity, codes that must be present)
    const TABLE: &[(&str, usize, Option<Severity>, &[&str])] = &[
        // Valid.
        ("v=TLSRPTv1; rua=mailto:tls@example.com", 1, None, &[]),
        ("v=TLSRPTv1;rua=mailto:tls@example.com", 1, None, &[]),
        ("v=TLSRPTv1; rua=mailto:tls@example.com;", 1, None, &[]),
        ("v=TLSRPTv1;\trua=mailto:tls@example.com ;", 1, None, &[]),
        (
            "v=TLSRPTv1; rua=https://reports.example.com/v1/tlsrpt",
            1,
            None,
            &[],
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com,mailto:b@example.net",
            2,
            None,
            &[],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com,https://r.example.com/tls",
            2,
            None,
            &[],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls%2Breports@example.com",
            1,
            None,
            &[],
        ),
        (
            "v=TLSRPTv1; rua=mailto:reports@example.com?subject=tls",
            1,
            None,
            &[],
        ),
        // Unknown fields: ignored.
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; ext=1",
            1,
            Some(Severity::Info),
            &["unknown-field"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; x-note=hello",
            1,
            Some(Severity::Info),
            &["unknown-field"],
        ),
        // Interop warnings.
        (
            "v=TLSRPTv1; ext=1; rua=mailto:tls@example.com",
            1,
            Some(Severity::Warning),
            &["rua-not-first", "unknown-field"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com, mailto:b@example.com",
            2,
            Some(Severity::Warning),
            &["space-after-comma"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com ,mailto:b@example.com",
            2,
            Some(Severity::Warning),
            &["space-after-comma"],
        ),
        (
            "v=TLSRPTv1; rua=https://r.example.com/t,mailto:a@example.com",
            2,
            Some(Severity::Warning),
            &["https-first"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com; rua=mailto:b@example.com",
            1,
            Some(Severity::Warning),
            &["duplicate-rua"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com,mailto:A@example.com",
            1,
            Some(Severity::Warning),
            &["duplicate-uri"],
        ),
        (
            "v=TLSRPTv1;; rua=mailto:a@example.com",
            0,
            Some(Severity::Error),
            &["empty-field"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com,",
            0,
            Some(Severity::Error),
            &["empty-uri"],
        ),
        // Version errors.
        (
            "V=TLSRPTv1; rua=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["version-case"],
        ),
        (
            "v=tlsrptv1; rua=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["version-case"],
        ),
        (
            "v = TLSRPTv1; rua=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["version-spacing"],
        ),
        (
            "v=TLSRPTv1 ; rua=mailto:tls@example.com",
            1,
            Some(Severity::Warning),
            &["space-before-semicolon"],
        ),
        // RFC 8460 §3, rule by rule: field-delim = *WSP ";" *WSP; a record may end in
        // one delimiter, not in spaces alone.
        (
            "v=TLSRPTv1\t;\trua=mailto:tls@example.com",
            1,
            Some(Severity::Warning),
            &["space-before-semicolon"],
        ),
        ("v=TLSRPTv1; rua=mailto:tls@example.com; ", 1, None, &[]),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com ",
            0,
            Some(Severity::Error),
            &["trailing-space"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com;;",
            0,
            Some(Severity::Error),
            &["empty-field"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; ;",
            0,
            Some(Severity::Error),
            &["empty-field"],
        ),
        // tlsrpt-uri = URI: pct-encoded is "%" HEXDIG HEXDIG.
        (
            "v=TLSRPTv1; rua=mailto:tls%zz@example.com",
            0,
            Some(Severity::Error),
            &["invalid-percent-encoding"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls%2@example.com",
            0,
            Some(Severity::Error),
            &["invalid-percent-encoding"],
        ),
        ("v=TLSRPTv1; rua=mailto:tls@ex%41mple.com", 1, None, &[]),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; rua=http://x.example/",
            1,
            Some(Severity::Warning),
            &["duplicate-rua", "http-scheme"],
        ),
        // tlsrpt-ext-name and tlsrpt-ext-value.
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; a1234567890123456789012345678901=1",
            1,
            Some(Severity::Info),
            &["unknown-field"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; a12345678901234567890123456789012=1",
            0,
            Some(Severity::Error),
            &["invalid-field-name"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; -x=1",
            0,
            Some(Severity::Error),
            &["invalid-field-name"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; x=",
            0,
            Some(Severity::Error),
            &["invalid-field-value"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; x=a=b",
            0,
            Some(Severity::Error),
            &["invalid-field-value"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; x=é",
            0,
            Some(Severity::Error),
            &["invalid-field-value"],
        ),
        (
            "v=TLSRPTv2; rua=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["version-unknown"],
        ),
        (
            "v=STSv1; id=20240101",
            0,
            Some(Severity::Error),
            &["mta-sts-record"],
        ),
        ("v=spf1 -all", 0, Some(Severity::Error), &["spf-record"]),
        (
            "v=DMARC1; p=none; rua=mailto:d@example.com",
            0,
            Some(Severity::Error),
            &["dmarc-record"],
        ),
        (
            " v=TLSRPTv1; rua=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["leading-space"],
        ),
        (
            "rua=mailto:tls@example.com; v=TLSRPTv1",
            0,
            Some(Severity::Error),
            &["not-tlsrpt"],
        ),
        (
            "v=TLSRPTv1x; rua=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["version-unknown"],
        ),
        // rua errors.
        ("v=TLSRPTv1", 0, Some(Severity::Error), &["missing-rua"]),
        ("v=TLSRPTv1;", 0, Some(Severity::Error), &["missing-rua"]),
        (
            "v=TLSRPTv1; ruf=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["missing-rua"],
        ),
        ("v=TLSRPTv1; rua=", 0, Some(Severity::Error), &["empty-rua"]),
        (
            "v=TLSRPTv1; RUA=mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["rua-case"],
        ),
        (
            "v=TLSRPTv1; rua = mailto:tls@example.com",
            0,
            Some(Severity::Error),
            &["field-spacing"],
        ),
        (
            "v=TLSRPTv1; rua=http://r.example.com/tls",
            0,
            Some(Severity::Error),
            &["http-scheme"],
        ),
        (
            "v=TLSRPTv1; rua=tls@example.com",
            0,
            Some(Severity::Error),
            &["no-scheme"],
        ),
        (
            "v=TLSRPTv1; rua=ftp://r.example.com/tls",
            0,
            Some(Severity::Error),
            &["bad-scheme"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls.example.com",
            0,
            Some(Severity::Error),
            &["mailto-no-at"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:@example.com",
            0,
            Some(Severity::Error),
            &["mailto-bad-address"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com!10m",
            0,
            Some(Severity::Error),
            &["unencoded-bang"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tl!s@example.com",
            0,
            Some(Severity::Error),
            &["unencoded-bang"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@exa mple.com",
            0,
            Some(Severity::Error),
            &["space-in-uri"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com;x",
            0,
            Some(Severity::Error),
            &["field-without-value"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:<tls@example.com>",
            0,
            Some(Severity::Error),
            &["invalid-uri-char"],
        ),
        (
            "v=TLSRPTv1; rua=https:///tls",
            0,
            Some(Severity::Error),
            &["https-no-host"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; bad name=1",
            0,
            Some(Severity::Error),
            &["invalid-field-name"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; x=",
            0,
            Some(Severity::Error),
            &["invalid-field-value"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; _x=1",
            0,
            Some(Severity::Error),
            &["invalid-field-name"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; x=a b",
            0,
            Some(Severity::Error),
            &["invalid-field-value"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com",
            0,
            Some(Severity::Error),
            &["empty-uri"],
        ),
        (
            "v=TLSRPTv1; rua=mailto:tls@example.com; x=a=b",
            0,
            Some(Severity::Error),
            &["invalid-field-value"],
        ),
    ];

    #[test]
    fn the_table() {
        assert!(TABLE.len() >= 40);
        for (rec, n, worst, codes) in TABLE {
            let c = check(rec);
            assert_eq!(c.worst(), *worst, "{rec:?}: {:#?}", c.findings);
            assert_eq!(c.rua.len(), *n, "{rec:?}: {:?} {:#?}", c.rua, c.findings);
            // An error always means no usable record, and no usable record is an error.
            assert_eq!(*worst == Some(Severity::Error), *n == 0, "{rec:?}");
            for code in *codes {
                assert!(
                    c.findings.iter().any(|f| f.code == *code),
                    "{rec:?}: no {code}: {:#?}",
                    c.findings
                );
            }
            for f in &c.findings {
                assert!(!f.message.contains('\n') && !f.message.is_empty(), "{f:?}");
            }
        }
    }

    #[test]
    fn uris_compare_as_uris() {
        assert_eq!(
            normalise_uri("MAILTO:tls%2Dreports@Example.COM"),
            "mailto:tls-reports@example.com"
        );
        assert_eq!(
            normalise_uri("mailto:tls-reports@example.com?subject=x"),
            "mailto:tls-reports@example.com"
        );
        assert_ne!(
            normalise_uri("mailto:TLS@example.com"),
            normalise_uri("mailto:tls@example.com")
        );
        assert_eq!(
            normalise_uri("https://R.Example.com"),
            "https://r.example.com/"
        );
    }
}
